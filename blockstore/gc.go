package blockstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/vfs"
	"github.com/vbs-storage/vbs/blockstore/index"
	"github.com/vbs-storage/vbs/blockstore/record"
)

// relocItem is one block the cleaner wants moved out of an old segment.
type relocItem struct {
	vol    uint64
	lba    uint64
	seq    uint64
	old    index.Location
	data   []byte
	newLoc index.Location // set once the cleaner has written the copy
}

// GCStats reports one cleaning pass and the store's totals.
type GCStats struct {
	SegmentsCleaned int
	BytesRelocated  uint64
	BytesFreed      int64
	// WriteAmplification is (bytes written by users + bytes relocated by
	// the cleaner) / bytes written by users, since Open.
	WriteAmplification float64
}

// segUsage is what the cleaner knows about one sealed segment.
type segUsage struct {
	id    uint64
	size  int64
	live  int64
	score float64
}

// CollectGarbage cleans up to maxSegments sealed segments chosen by the
// cost-benefit policy (LFS): score = (1-u)*age/(1+u), u the fraction of the
// segment still referenced, age how many segments were sealed after it.
// Live blocks are rewritten through the writer, behind foreground writes,
// at most rateBytes per second (0: unthrottled); then the segment is
// deleted. A segment whose utilisation is above maxUtil is left alone.
func (s *Store) CollectGarbage(ctx context.Context, maxSegments int, maxUtil float64, rateBytes int64) (GCStats, error) {
	s.gcRun.Lock()
	defer s.gcRun.Unlock()
	var st GCStats
	usage, err := s.segmentUsage()
	if err != nil {
		return st, fmt.Errorf("gc: %w", err)
	}
	active, newest := s.activeSeg.Load(), s.nextSeg.Load()
	var cands []segUsage
	var reclaimable int64
	for _, u := range usage {
		if u.id == active || u.id == s.gcHead.id || u.size <= record.SegmentHeaderSize {
			continue
		}
		reclaimable += u.size - u.live
		util := float64(u.live) / float64(u.size-record.SegmentHeaderSize)
		if util > maxUtil {
			continue
		}
		u.score = (1 - util) * float64(newest-u.id) / (1 + util)
		cands = append(cands, u)
	}
	s.reclaimable.Store(reclaimable)
	slices.SortFunc(cands, func(a, b segUsage) int { return cmp.Compare(b.score, a.score) })
	if len(cands) > maxSegments {
		cands = cands[:maxSegments]
	}
	start := s.opts.Clock.Now()
	gc0 := s.stats.gcBytes.Load()
	var submitted uint64 // bytes handed to relocation this pass, for throttling
	for _, c := range cands {
		if err := s.cleanSegment(ctx, c.id, rateBytes, start, &submitted); err != nil {
			st.BytesRelocated = s.stats.gcBytes.Load() - gc0
			return st, fmt.Errorf("gc: segment %d: %w", c.id, err)
		}
		st.SegmentsCleaned++
		st.BytesFreed += c.size
	}
	st.BytesRelocated = s.stats.gcBytes.Load() - gc0
	user := s.stats.bytesIn.Load()
	if user > 0 {
		st.WriteAmplification = float64(user+s.stats.gcBytes.Load()) / float64(user)
	}
	return st, nil
}

// segmentUsage counts, per segment, the bytes the index still refers to
// (live mappings and preserved versions of every volume).
func (s *Store) segmentUsage() (map[uint64]segUsage, error) {
	usage := make(map[uint64]segUsage)
	s.segMu.RLock()
	for id, f := range s.segs {
		fi, err := f.Stat()
		if err != nil {
			s.segMu.RUnlock()
			return nil, fmt.Errorf("stat segment %d: %w", id, err)
		}
		usage[id] = segUsage{id: id, size: fi.Size()}
	}
	s.segMu.RUnlock()
	s.catMu.Lock()
	vols := make([]*volState, 0, len(s.vols))
	for _, v := range s.vols {
		vols = append(vols, v)
	}
	s.catMu.Unlock()
	add := func(loc index.Location, bs uint32) {
		if u, ok := usage[loc.Seg]; ok && loc.Seg != 0 {
			u.live += int64(bs)
			usage[loc.Seg] = u
		}
	}
	for _, v := range vols {
		err := s.idx.Scan(v.id, 0, liveView, func(m index.Mapping) bool { add(m.Loc, v.blockSize); return true })
		if err != nil {
			return nil, err
		}
		err = s.idx.ScanVersions(v.id, func(ver index.Version) bool { add(ver.Loc, v.blockSize); return true })
		if err != nil {
			return nil, err
		}
	}
	return usage, nil
}

// cleanSegment moves the still-referenced blocks of segment id and deletes
// it. done counts the bytes examined for relocation during the pass, which
// the throttle paces. gcRun is held.
func (s *Store) cleanSegment(ctx context.Context, id uint64, rateBytes int64, start time.Time, done *uint64) error {
	f := s.segFile(id)
	if f == nil {
		return nil
	}
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat: %w", err)
	}
	size := uint64(fi.Size())
	var batch []relocItem
	var batchBytes int
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		live, err := s.gcAppend(batch)
		if err != nil {
			return err
		}
		batch, batchBytes = nil, 0
		if len(live) == 0 {
			return nil
		}
		r := getRequest()
		r.kind, r.reloc = opRelocate, live
		err = s.submit(r)
		putRequest(r)
		return err
	}
	off := uint64(record.SegmentHeaderSize)
	var hdr [record.HeaderSize]byte
	for off+record.HeaderSize <= size {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := f.ReadAt(hdr[:], int64(off)); err != nil {
			// Not knowing what follows, the segment must stay.
			return fmt.Errorf("read record header at %d: %w", off, err)
		}
		h, err := record.DecodeHeader(hdr[:])
		if err != nil {
			break // the end of the valid log in this segment
		}
		end := off + record.HeaderSize + uint64(h.DataLen)
		if end > size {
			break
		}
		if h.Type == record.TypeTrim {
			off = end
			continue
		}
		data := make([]byte, h.DataLen)
		if _, err := f.ReadAt(data, int64(off+record.HeaderSize)); err != nil {
			return fmt.Errorf("read record at %d: %w", off, err)
		}
		if err := record.Verify(hdr[:], data); err != nil {
			// Never turn a bad record into data: count it; any block it
			// still backs keeps failing its reads with ErrCorrupt, so the
			// segment must stay.
			s.stats.corruptions.Add(1)
			return &CorruptionError{Seg: id, Off: off}
		}
		bs := uint64(h.DataLen / h.Blocks)
		for k := uint64(0); k < uint64(h.Blocks); k++ {
			blk := data[k*bs : (k+1)*bs]
			batch = append(batch, relocItem{
				vol: h.Volume, lba: h.LBA + k, seq: h.Seq,
				old:  index.Location{Seg: id, Off: off + record.HeaderSize + k*bs, CRC: record.Checksum(blk), Seq: h.Seq},
				data: blk,
			})
			batchBytes += int(bs)
		}
		off = end
		if batchBytes >= relocBatchBytes {
			*done += uint64(batchBytes)
			if err := flush(); err != nil {
				return err
			}
			if err := s.throttle(ctx, rateBytes, start, *done); err != nil {
				return err
			}
		}
	}
	*done += uint64(batchBytes)
	if err := flush(); err != nil {
		return err
	}
	// The new locations went to the index unsynced; make them durable
	// before the old copies go.
	if err := s.syncIndex(id); err != nil {
		return err
	}
	return s.removeSegment(id, size)
}

// throttle waits until relocating done bytes since start fits rateBytes
// per second.
func (s *Store) throttle(ctx context.Context, rateBytes int64, start time.Time, done uint64) error {
	if rateBytes <= 0 {
		return nil
	}
	due := start.Add(time.Duration(float64(done) / float64(rateBytes) * float64(time.Second)))
	wait := due.Sub(s.opts.Clock.Now())
	if wait <= 0 {
		return nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// relocate (on the writer) points every reference that still names an
// item's old location (the index's live entry, or a preserved version) at
// the copy the cleaner wrote and synced. It does no I/O but an unsynced
// index commit: the copies are already durable (invariant 1), and the
// cleaner syncs the index before it deletes the old segment.
func (w *writer) relocate(_ int, items []relocItem) error {
	s := w.s
	for k := range items {
		it := &items[k]
		moved := false
		// The index's own entry, not the overlay-shadowed view: the
		// overlay's newer write may never become durable, and then the
		// index entry is what a crash leaves behind.
		if l, ok, err := s.idx.Get(it.vol, it.lba); err != nil {
			w.ib.Reset()
			return err
		} else if ok && l.Seg == it.old.Seg && l.Off == it.old.Off {
			l.Seg, l.Off = it.newLoc.Seg, it.newLoc.Off
			w.ib.Put(it.vol, it.lba, l)
			moved = true
		}
		err := s.versionsOf(it.vol, it.lba, func(ver index.Version) bool {
			if ver.Loc.Seg == it.old.Seg && ver.Loc.Off == it.old.Off {
				ver.Loc.Seg, ver.Loc.Off = it.newLoc.Seg, it.newLoc.Off
				w.ib.PutVersion(it.vol, ver)
				moved = true
			}
			return true
		})
		if err != nil {
			w.ib.Reset()
			return err
		}
		if moved {
			s.stats.gcBytes.Add(uint64(len(it.data)))
		}
	}
	if err := w.ib.Commit(false); err != nil {
		w.fail(err)
		return err
	}
	// Until now a cached old location was still good (the old segment
	// outlives this call); from now on the index has the new one.
	s.mu.Lock()
	for k := range items {
		delete(s.cache, blockKey{items[k].vol, items[k].lba})
	}
	s.mu.Unlock()
	return nil
}

// gcHead is the segment the cleaner appends relocated blocks to: a log
// head of its own, so relocation never makes foreground writes wait for
// its fsyncs, and cold data collects apart from hot. Guarded by gcRun.
type gcHead struct {
	f   vfs.File
	id  uint64
	off uint64
}

// gcAppend writes the still-referenced items to the cleaner's head
// segment, syncs them, and returns them with their new locations. Items
// nothing refers to any more are dropped. gcRun is held.
func (s *Store) gcAppend(items []relocItem) ([]relocItem, error) {
	live := items[:0]
	var buf []byte
	for _, it := range items {
		ok, err := s.referenced(it)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		size := uint64(record.HeaderSize + len(it.data))
		if s.gcHead.f == nil || s.gcHead.off+uint64(len(buf))+size > uint64(s.opts.SegmentSize) {
			if err := s.gcWrite(buf); err != nil {
				return nil, err
			}
			buf = buf[:0]
			if err := s.gcRoll(); err != nil {
				return nil, err
			}
		}
		it.newLoc = index.Location{Seg: s.gcHead.id, Off: s.gcHead.off + uint64(len(buf)) + record.HeaderSize}
		buf = record.AppendRecord(buf, &record.Header{Type: record.TypeRelocate, Volume: it.vol, LBA: it.lba, Blocks: 1, Seq: it.seq}, it.data)
		live = append(live, it)
	}
	if err := s.gcWrite(buf); err != nil {
		return nil, err
	}
	return live, nil
}

// referenced reports whether anything in the index still names it.old.
func (s *Store) referenced(it relocItem) (bool, error) {
	l, ok, err := s.idx.Get(it.vol, it.lba)
	if err != nil || (ok && l.Seg == it.old.Seg && l.Off == it.old.Off) {
		return err == nil, err
	}
	found := false
	err = s.versionsOf(it.vol, it.lba, func(ver index.Version) bool {
		found = ver.Loc.Seg == it.old.Seg && ver.Loc.Off == it.old.Off
		return !found
	})
	return found, err
}

// gcWrite appends buf to the head segment and syncs it.
func (s *Store) gcWrite(buf []byte) error {
	h := &s.gcHead
	if len(buf) == 0 || h.f == nil {
		return nil
	}
	if _, err := h.f.Write(buf); err != nil {
		// The head's tail is unknown now: seal what is good and start a
		// new head next time.
		_ = s.gcSeal()
		return fmt.Errorf("append to segment %d: %w", h.id, classify(err))
	}
	if err := h.f.SyncData(); err != nil {
		_ = s.gcSeal()
		return fmt.Errorf("sync segment %d: %w", h.id, err)
	}
	h.off += uint64(len(buf))
	s.gcHeadEnd.Store(h.off)
	s.stats.logBytes.Add(int64(len(buf)))
	return nil
}

// gcRoll seals the current head and starts a new one.
func (s *Store) gcRoll() error {
	if err := s.gcSeal(); err != nil {
		return err
	}
	id := s.nextSeg.Add(1)
	path := s.segPath(id)
	f, err := s.fs.Create(path)
	if err != nil {
		return fmt.Errorf("create segment %d: %w", id, classify(err))
	}
	var hb [record.SegmentHeaderSize]byte
	if _, err := f.Write(record.AppendSegmentHeader(hb[:0], record.SegmentHeader{ID: id})); err != nil {
		_ = f.Close()
		_ = s.fs.Remove(path)
		return fmt.Errorf("write segment %d header: %w", id, classify(err))
	}
	if err := s.syncDir(s.segDir); err != nil {
		_ = f.Close()
		return err
	}
	s.segMu.Lock()
	s.segs[id] = f
	s.segMu.Unlock()
	s.stats.logBytes.Add(record.SegmentHeaderSize)
	s.gcHead = gcHead{f: f, id: id, off: record.SegmentHeaderSize}
	s.gcHeadID.Store(id)
	s.gcHeadEnd.Store(record.SegmentHeaderSize)
	return nil
}

// gcSeal records the head's valid length (synced) and forgets it.
func (s *Store) gcSeal() error {
	h := &s.gcHead
	if h.f == nil {
		return nil
	}
	ib := s.idx.NewBatch()
	defer ib.Close()
	ib.SetMeta(sealKey(h.id), encodeSeal(h.off))
	if err := ib.Commit(true); err != nil {
		return fmt.Errorf("seal segment %d: %w", h.id, err)
	}
	*h = gcHead{}
	s.gcHeadID.Store(0)
	return nil
}

// syncIndex makes every index commit so far durable (pebble syncs its log
// up to and including this batch).
func (s *Store) syncIndex(seg uint64) error {
	ib := s.idx.NewBatch()
	defer ib.Close()
	ib.SetMeta([]byte(metaGC), encodeSeal(seg))
	if err := ib.Commit(true); err != nil {
		return fmt.Errorf("sync index: %w", err)
	}
	return nil
}

// versionsOf is index.VersionsOf, skipped for volumes without snapshots:
// deleting a volume's last snapshot drops all of its preserved versions.
func (s *Store) versionsOf(vol, lba uint64, fn func(index.Version) bool) error {
	s.catMu.Lock()
	v := s.vols[vol]
	s.catMu.Unlock()
	if v != nil && v.lastSnap.Load() == 0 {
		return nil
	}
	return s.idx.VersionsOf(vol, lba, fn)
}

// removeSegment deletes a cleaned segment once no read can still resolve
// to it.
func (s *Store) removeSegment(id, size uint64) error {
	s.gcMu.Lock()
	s.segMu.Lock()
	f := s.segs[id]
	delete(s.segs, id)
	s.segMu.Unlock()
	s.gcMu.Unlock()
	if f == nil {
		return nil
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	if err := s.fs.Remove(s.segPath(id)); err != nil {
		return fmt.Errorf("remove: %w", err)
	}
	s.stats.logBytes.Add(-int64(size))
	s.stats.gcSegments.Add(1)
	return s.syncDir(s.segDir)
}

// relocBatchBytes is how much the cleaner writes and syncs at once before
// it hands the new locations to the writer (one unsynced index commit).
const relocBatchBytes = 4 << 20
