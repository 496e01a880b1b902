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

// relocItem is one block the cleaner moves out of an old segment: its data
// is already durable at newLoc when the writer sees it.
type relocItem struct {
	vol    uint64
	lba    uint64
	size   uint32         // block size
	old    index.Location // Seg and Off of the copy being moved
	newLoc index.Location // Seg and Off of the cleaner's copy
	// repointed is set by the writer when it moved the live entry (newLoc
	// then holds the whole new entry).
	repointed bool
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
	id     uint64
	size   int64 // file size
	live   int64 // block bytes the index refers to
	blocks int64 // blocks the index refers to
	// moveCost is what relocating the live blocks appends to the log (one
	// record per block), and gain what cleaning the segment frees net.
	moveCost int64
	gain     int64
}

// util is the fraction of the segment's log bytes cleaning has to rewrite:
// the greedy policy cleans the segment with the lowest first.
func (u segUsage) util() float64 {
	return float64(u.moveCost) / float64(max(u.size, 1))
}

// CollectGarbage cleans up to maxSegments sealed segments, the ones with
// the fewest live bytes per byte they hold first (greedy: for uniform
// overwrites no policy moves fewer bytes, and unlike an age-weighted
// score it cannot be misled by the cleaner's own young segments of old
// data). Live blocks are appended to the cleaner's own log head, synced,
// and handed to the writer in small chunks, so a foreground request waits
// behind at most one chunk; at most rateBytes per second are examined (0:
// unthrottled). A segment whose data utilisation (live block bytes over
// its size) is above maxUtil is left alone. It first makes the overlay
// durable and moves it into the index (a Flush leaves it in memory), so
// blocks overwritten since count as dead.
func (s *Store) CollectGarbage(ctx context.Context, maxSegments int, maxUtil float64, rateBytes int64) (GCStats, error) {
	s.gcRun.Lock()
	defer s.gcRun.Unlock()
	var st GCStats
	cands, err := s.planCleaning(maxUtil)
	if err != nil {
		return st, fmt.Errorf("gc: %w", err)
	}
	if len(cands) > maxSegments {
		cands = cands[:maxSegments]
	}
	p := pacer{rate: rateBytes, start: s.opts.Clock.Now()}
	gc0 := s.stats.gcBytes.Load()
	for _, c := range cands {
		if err := s.cleanSegment(ctx, c.id, &p); err != nil {
			st.BytesRelocated = s.stats.gcBytes.Load() - gc0
			return st, fmt.Errorf("gc: segment %d: %w", c.id, err)
		}
		st.SegmentsCleaned++
		st.BytesFreed += c.size
		s.notifySpace()
	}
	st.BytesRelocated = s.stats.gcBytes.Load() - gc0
	user := s.stats.bytesIn.Load()
	if user > 0 {
		st.WriteAmplification = float64(user+s.stats.gcBytes.Load()) / float64(user)
	}
	return st, nil
}

// planCleaning measures every sealed segment's usage and returns those
// whose data utilisation is at most maxUtil and whose cleaning frees
// space, lowest util first. It records the reclaimable total. It first
// moves the overlay into the index, so blocks overwritten since the last
// move count as dead (without, they count as live: measured 6% more write
// amplification at 15 blocks per segment, and no better tail latency).
// gcRun is held.
func (s *Store) planCleaning(maxUtil float64) ([]segUsage, error) {
	if err := s.checkpoint(); err != nil {
		return nil, err
	}
	g := &s.gcHead
	t0 := time.Now()
	usage, err := s.segmentUsage()
	g.n.scans.Add(1)
	g.n.scanNanos.Add(uint64(time.Since(t0)))
	if err != nil {
		return nil, err
	}
	active := s.activeSeg.Load()
	var cands []segUsage
	var reclaimable int64
	for _, u := range usage {
		if u.id == active || u.id == g.seg.id || u.size <= record.SegmentHeaderSize {
			continue
		}
		u.moveCost = u.live + u.blocks*record.HeaderSize
		u.gain = u.size - u.moveCost
		if u.gain <= 0 {
			continue
		}
		reclaimable += u.gain
		if float64(u.live)/float64(u.size-record.SegmentHeaderSize) > maxUtil {
			continue
		}
		cands = append(cands, u)
	}
	s.reclaimable.Store(reclaimable)
	slices.SortFunc(cands, func(a, b segUsage) int {
		if c := cmp.Compare(a.util(), b.util()); c != 0 {
			return c
		}
		return cmp.Compare(a.id, b.id)
	})
	return cands, nil
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
			u.blocks++
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
// it. It reads the segment in large windows outside the writer, appends
// the live blocks to the cleaner's head (synced every relocBatchBytes),
// and hands their new locations to the writer relocChunk blocks at a time.
// p (nil: unthrottled) paces the bytes examined. gcRun is held.
func (s *Store) cleanSegment(ctx context.Context, id uint64, p *pacer) error {
	f := s.segFile(id)
	if f == nil {
		return nil
	}
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat: %w", err)
	}
	size := uint64(fi.Size())
	g := &s.gcHead
	mv := &g.mv
	// Whatever an earlier victim that failed left behind is dropped: the
	// records appended for it are dead data in the head.
	clear(mv.data)
	mv.s, mv.cand, mv.data, mv.out, mv.moved = s, mv.cand[:0], mv.data[:0], mv.out[:0], mv.moved[:0]
	off := uint64(record.SegmentHeaderSize)
	window := uint64(relocReadBytes)
	for off+record.HeaderSize <= size {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(window, size-off)
		if uint64(cap(g.readBuf)) < n {
			g.readBuf = make([]byte, n)
		}
		buf := g.readBuf[:n]
		if _, err := f.ReadAt(buf, int64(off)); err != nil {
			// Not knowing what follows, the segment must stay.
			return fmt.Errorf("read at %d: %w", off, err)
		}
		g.n.bytesRead.Add(n)
		pos, end, err := s.parseWindow(id, off, size, buf, mv)
		if err != nil {
			return err
		}
		if err := mv.move(ctx); err != nil {
			return err
		}
		if p != nil {
			if err := p.wait(ctx, s.opts.Clock, pos); err != nil {
				return err
			}
		}
		off += pos
		if end {
			break
		}
		if pos == 0 {
			// One record longer than the window: read it whole next time.
			h, _ := record.DecodeHeader(buf[:record.HeaderSize])
			window = record.HeaderSize + uint64(h.DataLen)
		}
	}
	if err := mv.flush(ctx); err != nil {
		return err
	}
	// The new locations went to the index unsynced; make them durable
	// before the old copies go.
	if err := s.syncIndex(id); err != nil {
		return err
	}
	return s.removeSegment(id, size)
}

// parseWindow collects the blocks of the whole records in buf (the bytes
// of segment id at off; the segment is size bytes) into mv. It returns how
// many bytes of buf it consumed and end=true at the end of the valid log.
func (s *Store) parseWindow(id, off, size uint64, buf []byte, mv *mover) (uint64, bool, error) {
	pos := uint64(0)
	for pos+record.HeaderSize <= uint64(len(buf)) {
		hdr := buf[pos : pos+record.HeaderSize]
		h, err := record.DecodeHeader(hdr)
		if err != nil {
			return pos, true, nil // the end of the valid log in this segment
		}
		end := pos + record.HeaderSize + uint64(h.DataLen)
		if off+end > size {
			return pos, true, nil
		}
		if end > uint64(len(buf)) {
			return pos, false, nil // continues past the window
		}
		if h.Type == record.TypeTrim || h.Blocks == 0 {
			pos = end
			continue
		}
		data := buf[pos+record.HeaderSize : end]
		if err := record.Verify(hdr, data); err != nil {
			// Never turn a bad record into data: count it; any block it
			// still backs keeps failing its reads with ErrCorrupt, so the
			// segment must stay.
			s.stats.corruptions.Add(1)
			return pos, true, &CorruptionError{Seg: id, Off: off + pos}
		}
		bs := uint64(h.DataLen / h.Blocks)
		for k := uint64(0); k < uint64(h.Blocks); k++ {
			mv.add(relocItem{
				vol: h.Volume, lba: h.LBA + k, size: uint32(bs),
				old: index.Location{Seg: id, Off: off + pos + record.HeaderSize + k*bs, Seq: h.Seq},
			}, data[k*bs:(k+1)*bs])
		}
		pos = end
	}
	return pos, false, nil
}

// mover carries blocks from a victim's read window to the cleaner's head
// and then to the writer. It lives in gcHead (its buffers are reused from
// one victim to the next); gcRun is held while it is used.
type mover struct {
	s     *Store
	cand  []relocItem // blocks of the current window, not yet checked
	data  [][]byte    // their data (in the read window)
	out   []byte      // encoded relocate records not yet appended
	moved []relocItem // blocks encoded in out, not yet relocated
}

func (m *mover) add(it relocItem, data []byte) {
	m.cand = append(m.cand, it)
	m.data = append(m.data, data)
}

// move drops the window's blocks nothing refers to any more and encodes
// the others, appending and relocating once relocBatchBytes are waiting.
// The window's buffer may be reused afterwards.
func (m *mover) move(ctx context.Context) error {
	s := m.s
	live, err := s.referencedBatch(m.cand)
	if err != nil {
		return err
	}
	for i, it := range m.cand {
		if !live[i] {
			continue
		}
		size := uint64(record.HeaderSize + len(m.data[i]))
		h := &s.gcHead.seg
		if h.f == nil || h.off+uint64(len(m.out))+size > uint64(s.opts.SegmentSize) {
			if err := m.flush(ctx); err != nil {
				return err
			}
			if err := s.gcRoll(); err != nil {
				return err
			}
		}
		it.newLoc = index.Location{Seg: h.id, Off: h.off + uint64(len(m.out)) + record.HeaderSize}
		m.out = record.AppendRecord(m.out, &record.Header{Type: record.TypeRelocate, Volume: it.vol, LBA: it.lba, Blocks: 1, Seq: it.old.Seq}, m.data[i])
		m.moved = append(m.moved, it)
	}
	clear(m.data)
	m.cand, m.data = m.cand[:0], m.data[:0]
	if len(m.out) >= relocBatchBytes {
		return m.flush(ctx)
	}
	return nil
}

// flush appends and syncs the encoded records, then has the writer point
// the index at them, relocChunk blocks per request.
func (m *mover) flush(ctx context.Context) error {
	s := m.s
	if err := s.gcWrite(m.out); err != nil {
		return err
	}
	m.out = m.out[:0]
	err := s.relocateChunks(ctx, m.moved)
	m.moved = m.moved[:0]
	return err
}

// relocateChunks hands items to the writer relocChunk at a time, with the
// next chunk queued while the writer applies one (so the writer does not
// wait for the cleaner between chunks), and never more: a foreground
// request that arrives meanwhile queues behind at most two chunks, the
// one being applied and the next.
func (s *Store) relocateChunks(ctx context.Context, items []relocItem) error {
	var inflight *request
	wait := func() error {
		if inflight == nil {
			return nil
		}
		err := <-inflight.done
		putRequest(inflight)
		inflight = nil
		if err == nil {
			s.gcHead.n.chunks.Add(1)
		}
		return err
	}
	for len(items) > 0 {
		if err := ctx.Err(); err != nil {
			_ = wait()
			return err
		}
		n := min(len(items), relocChunk)
		r := getRequest()
		r.kind, r.reloc = opRelocate, items[:n]
		if err := s.enqueue(r); err != nil {
			putRequest(r)
			_ = wait()
			return err
		}
		if err := wait(); err != nil {
			// r is queued; its result must be collected before the
			// request goes back to the pool.
			inflight = r
			_ = wait()
			return err
		}
		inflight = r
		items = items[n:]
	}
	return wait()
}

// enqueue hands r to the writer without waiting for its result (received
// on r.done).
func (s *Store) enqueue(r *request) error {
	s.submitMu.RLock()
	defer s.submitMu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	s.w.reqCh <- r
	return nil
}

// referencedBatch reports for each item whether anything in the index
// still names its old location: the mapping cache (a subset of the index's
// live entries) answers most without a lookup.
func (s *Store) referencedBatch(items []relocItem) ([]bool, error) {
	g := &s.gcHead
	live := slices.Grow(g.live[:0], len(items))[:len(items)]
	known := slices.Grow(g.known[:0], len(items))[:len(items)]
	g.live, g.known = live, known
	s.mu.RLock()
	for i, it := range items {
		l, ok := s.cache[blockKey{it.vol, it.lba}]
		known[i] = ok
		live[i] = ok && l.Seg == it.old.Seg && l.Off == it.old.Off
	}
	s.mu.RUnlock()
	for i, it := range items {
		if live[i] {
			continue
		}
		ok, err := s.referenced(it, !known[i])
		if err != nil {
			return nil, err
		}
		live[i] = ok
	}
	return live, nil
}

// referenced reports whether anything in the index still names it.old:
// the live entry (looked up when lookup is set; else the caller knows it
// does not) or a preserved version, in the index or held for a pending
// snapshot.
func (s *Store) referenced(it relocItem, lookup bool) (bool, error) {
	s.mu.RLock()
	held := s.held.names(blockKey{it.vol, it.lba}, it.old.Seg, it.old.Off)
	s.mu.RUnlock()
	if held {
		return true, nil
	}
	if lookup {
		l, ok, err := s.idx.Get(it.vol, it.lba)
		if err != nil || (ok && l.Seg == it.old.Seg && l.Off == it.old.Off) {
			return err == nil, err
		}
	}
	found := false
	err := s.versionsOf(it.vol, it.lba, func(ver index.Version) bool {
		found = ver.Loc.Seg == it.old.Seg && ver.Loc.Off == it.old.Off
		return !found
	})
	return found, err
}

// pacer spreads background work (the cleaner, the segment preparer) at
// rate bytes per second (0: no limit).
type pacer struct {
	rate  int64
	start time.Time
	done  uint64
}

// wait accounts n more bytes and waits until they fit the rate.
func (p *pacer) wait(ctx context.Context, clock Clock, n uint64) error {
	p.done += n
	if p.rate <= 0 {
		return nil
	}
	due := p.start.Add(time.Duration(float64(p.done) / float64(p.rate) * float64(time.Second)))
	wait := due.Sub(clock.Now())
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
// cleaner syncs the index before it deletes the old segment. The cleaner
// sends at most relocChunk items per call, so foreground requests queued
// meanwhile wait for a chunk or two, not for a whole segment.
func (w *writer) relocate(_ int, items []relocItem) error {
	s := w.s
	if h := s.gcHead.chunkHook; h != nil {
		h(items)
	}
	for k := range items {
		it := &items[k]
		moved := false
		// The index's own entry, not the overlay-shadowed view: the
		// overlay's newer write may never become durable, and then the
		// index entry is what a crash leaves behind. The cache holds the
		// index's entries (only the writer changes it, so no lock here).
		l, ok := s.cache[blockKey{it.vol, it.lba}]
		if !ok {
			var err error
			if l, ok, err = s.idx.Get(it.vol, it.lba); err != nil {
				w.ib.Reset()
				return err
			}
		}
		if ok && l.Seg == it.old.Seg && l.Off == it.old.Off {
			l.Seg, l.Off = it.newLoc.Seg, it.newLoc.Off
			w.ib.Put(it.vol, it.lba, l)
			it.newLoc, it.repointed = l, true
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
		if s.held.names(blockKey{it.vol, it.lba}, it.old.Seg, it.old.Off) {
			s.mu.Lock()
			s.held.repoint(blockKey{it.vol, it.lba}, it.old, it.newLoc)
			s.mu.Unlock()
			moved = true
		}
		if moved {
			s.stats.gcBytes.Add(uint64(it.size))
		}
	}
	if err := w.ib.Commit(false); err != nil {
		w.fail(err)
		return err
	}
	// Until now a cached old location was still good (the old segment
	// outlives this call); from now on the index has the new one, and so
	// does the cache.
	s.mu.Lock()
	for k := range items {
		it := &items[k]
		key := blockKey{it.vol, it.lba}
		if _, ok := s.cache[key]; !ok {
			continue
		}
		if it.repointed {
			s.cache[key] = it.newLoc
		} else if l := s.cache[key]; l.Seg == it.old.Seg && l.Off == it.old.Off {
			delete(s.cache, key)
		}
	}
	s.mu.Unlock()
	return nil
}

// gcSeg is the segment the cleaner appends relocated blocks to: a log head
// of its own, so relocation never makes foreground writes wait for its
// fsyncs, and cold data collects apart from hot. Guarded by gcRun.
type gcSeg struct {
	f   vfs.File
	id  uint64
	off uint64
}

// gcWrite appends buf to the head segment and syncs it.
func (s *Store) gcWrite(buf []byte) error {
	h := &s.gcHead.seg
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
	s.gcHead.n.bytesAppended.Add(uint64(len(buf)))
	s.noteOvershoot()
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
	s.addSegment(id, f)
	s.stats.logBytes.Add(record.SegmentHeaderSize)
	s.gcHead.n.bytesAppended.Add(record.SegmentHeaderSize)
	s.gcHead.seg = gcSeg{f: f, id: id, off: record.SegmentHeaderSize}
	s.gcHeadID.Store(id)
	s.gcHeadEnd.Store(record.SegmentHeaderSize)
	return nil
}

// gcSeal records the head's valid length (synced) and forgets it.
func (s *Store) gcSeal() error {
	h := &s.gcHead.seg
	if h.f == nil {
		return nil
	}
	ib := s.idx.NewBatch()
	defer ib.Close()
	ib.SetMeta(sealKey(h.id), encodeSeal(h.off))
	if err := ib.Commit(true); err != nil {
		return fmt.Errorf("seal segment %d: %w", h.id, err)
	}
	*h = gcSeg{}
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
	f := s.dropSegment(id)
	s.gcMu.Unlock()
	if f == nil {
		return nil
	}
	s.syncMu.Lock() // not while the log syncer syncs it
	err := f.Close()
	s.syncMu.Unlock()
	if err != nil {
		return fmt.Errorf("close: %w", err)
	}
	if err := s.fs.Remove(s.segPath(id)); err != nil {
		return fmt.Errorf("remove: %w", err)
	}
	s.stats.logBytes.Add(-int64(size))
	s.stats.gcSegments.Add(1)
	s.gcHead.n.bytesFreed.Add(size)
	return s.syncDir(s.segDir)
}

const (
	// relocReadBytes is how much of a victim the cleaner reads at once.
	relocReadBytes = 1 << 20
	// relocBatchBytes is how much the cleaner appends and syncs at once
	// before it hands the new locations to the writer.
	relocBatchBytes = 2 << 20
	// relocChunk is how many blocks one writer request relocates: what a
	// foreground request queued behind it may have to wait for (about
	// one lookup in the mapping cache and one index batch entry each).
	relocChunk = 128
)
