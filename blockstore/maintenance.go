package blockstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/vbs-storage/vbs/blockstore/index"
	"github.com/vbs-storage/vbs/blockstore/record"
)

// ScrubProgress reports how far a scrub got.
type ScrubProgress struct {
	Segments     int
	SegmentsDone int
	Bytes        int64
	BytesDone    int64
	Records      uint64
	// Corrupt counts records whose checksum failed (each is also counted
	// in Stats.Corruptions and logged).
	Corrupt uint64
}

// Scrub reads every record of every segment and verifies its checksum,
// calling progress (when non-nil) after each segment. It stops early when
// ctx is done. Segments the cleaner deletes meanwhile are skipped.
func (s *Store) Scrub(ctx context.Context, progress func(ScrubProgress)) (ScrubProgress, error) {
	var p ScrubProgress
	type seg struct {
		id   uint64
		size int64
	}
	var segs []seg
	active, activeEnd := s.activeSeg.Load(), s.activeEnd.Load()
	s.segMu.RLock()
	for id, f := range s.segs {
		fi, err := f.Stat()
		if err != nil {
			s.segMu.RUnlock()
			return p, fmt.Errorf("scrub: stat segment %d: %w", id, err)
		}
		size := fi.Size()
		if id == active {
			size = int64(activeEnd)
		}
		if id == s.gcHeadID.Load() {
			size = min(size, int64(s.gcHeadEnd.Load()))
		}
		segs = append(segs, seg{id, size})
		p.Bytes += size
	}
	s.segMu.RUnlock()
	slices.SortFunc(segs, func(a, b seg) int { return cmp.Compare(a.id, b.id) })
	p.Segments = len(segs)
	var buf []byte
	var hdr [record.HeaderSize]byte
	for _, sg := range segs {
		off := int64(record.SegmentHeaderSize)
		for off+record.HeaderSize <= sg.size {
			if err := ctx.Err(); err != nil {
				return p, err
			}
			n, gone, err := s.scrubRecord(sg.id, off, sg.size, hdr[:], &buf)
			if gone {
				break
			}
			if errors.Is(err, record.ErrChecksum) {
				p.Corrupt++
				s.stats.corruptions.Add(1)
				s.opts.Logger.Error("blockstore: scrub found a corrupt record", "segment", sg.id, "offset", off)
			} else if err != nil {
				break // the end of the valid log in this segment
			}
			p.Records++
			off += n
		}
		p.SegmentsDone++
		p.BytesDone += sg.size
		if progress != nil {
			progress(p)
		}
	}
	return p, nil
}

// scrubRecord verifies the record at off. It returns the record's size,
// gone=true when the segment was deleted, or the decode/verify error.
func (s *Store) scrubRecord(id uint64, off, limit int64, hdr []byte, buf *[]byte) (int64, bool, error) {
	s.gcMu.RLock()
	defer s.gcMu.RUnlock()
	f := s.segFile(id)
	if f == nil {
		return 0, true, nil
	}
	if _, err := f.ReadAt(hdr, off); err != nil {
		return 0, false, err
	}
	h, err := record.DecodeHeader(hdr)
	if err != nil {
		return 0, false, err
	}
	size := int64(record.HeaderSize) + int64(h.DataLen)
	if off+size > limit {
		return 0, false, record.ErrTruncated
	}
	if cap(*buf) < int(h.DataLen) {
		*buf = make([]byte, h.DataLen)
	}
	data := (*buf)[:h.DataLen]
	if _, err := f.ReadAt(data, off+record.HeaderSize); err != nil {
		return 0, false, err
	}
	return size, false, record.Verify(hdr, data)
}

// FlattenVolume copies into a linked clone every block it still reads from
// its parent, in the background of foreground I/O (one writer request per
// chunk), then detaches it: the clone stops depending on its parent.
// progress (when non-nil) gets blocks done and total after each chunk. A
// clone with snapshots of its own cannot be flattened (they may read
// through to the parent too).
func (s *Store) FlattenVolume(ctx context.Context, name string, progress func(done, total uint64)) error {
	v, err := s.volume(name)
	if err != nil {
		return fmt.Errorf("flatten: %w", err)
	}
	if v.parent.Load() == nil {
		return nil
	}
	if len(v.snapshots()) > 0 {
		return fmt.Errorf("flatten %q: the clone has snapshots: %w", name, ErrInvalid)
	}
	total := v.blocks.Load()
	for lba := uint64(0); lba < total; lba += readChunk {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(readChunk, total-lba)
		err := s.run(v, func(w *writer) error { return w.flattenChunk(v, lba, n) })
		if err != nil {
			return fmt.Errorf("flatten %q at lba %d: %w", name, lba, err)
		}
		if progress != nil {
			progress(lba+n, total)
		}
	}
	err = s.run(v, func(w *writer) error {
		if err := w.syncLog(false); err != nil {
			return err
		}
		p := v.parent.Load()
		m := v.meta()
		m.ParentID, m.ParentSeq = 0, 0
		w.ib.SetMeta(volKey(v.id), encodeVolumeMeta(m))
		if err := w.ib.Commit(true); err != nil {
			w.fail(err)
			return err
		}
		s.mu.Lock()
		v.parent.Store(nil)
		s.mu.Unlock()
		s.catMu.Lock()
		p.clones--
		s.catMu.Unlock()
		return nil
	})
	if err != nil {
		return fmt.Errorf("flatten %q: %w", name, err)
	}
	return nil
}

// flattenChunk (on the writer) copies the parent's blocks into clone v
// where v has no mapping of its own.
func (w *writer) flattenChunk(v *volState, lba, n uint64) error {
	s := w.s
	bs := uint64(v.blockSize)
	p := v.parent.Load()
	if p == nil {
		return nil
	}
	for i := uint64(0); i < n; i++ {
		if _, own, err := s.liveLocked(blockKey{v.id, lba + i}); err != nil || own {
			if err != nil {
				return err
			}
			continue
		}
		s.mu.RLock()
		loc, mapped, err := s.resolveLocked(p, lba+i, v.parentSeq)
		s.mu.RUnlock()
		if err != nil {
			return err
		}
		if !mapped {
			continue
		}
		data := make([]byte, bs)
		s.gcMu.RLock()
		err = s.readRun(v, data, lba+i, []index.Location{loc})
		s.gcMu.RUnlock()
		if err != nil {
			return err
		}
		r := &request{kind: opWrite, vol: v, lba: lba + i, data: data}
		w.addWrite(w.chunkStart, r)
		if r.err != nil {
			return r.err
		}
	}
	return w.flushPending(w.chunkStart)
}

// runBackgroundGC cleans segments every interval until ctx is done. Open
// starts it when Options.GCInterval is set; Close stops it and waits. With
// a capacity set it cleans only when less than a quarter is free, and
// cleans any segment at full speed when writes are about to fail.
func (s *Store) runBackgroundGC(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(s.opts.GCInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		maxUtil, rate := s.opts.GCMaxUtilization, s.opts.GCRateBytes
		if c := s.opts.CapacityBytes; c > 0 {
			free := c - s.stats.logBytes.Load()
			switch {
			case free > c/4:
				continue // plenty of room: cleaning now only adds write amplification
			case free < 4*s.opts.SegmentSize:
				// Writes are about to fail: clean whatever frees space, at
				// full speed.
				maxUtil, rate = 1, 0
			}
		}
		st, err := s.CollectGarbage(ctx, s.opts.GCMaxSegments, maxUtil, rate)
		s.cleanedMu.Lock()
		close(s.cleaned)
		s.cleaned = make(chan struct{})
		s.cleanedMu.Unlock()
		if err != nil && ctx.Err() == nil {
			s.opts.Logger.Warn("blockstore: background segment cleaning failed", "err", err)
		} else if st.SegmentsCleaned > 0 {
			s.opts.Logger.Info("blockstore: cleaned segments", "segments", st.SegmentsCleaned,
				"relocated", st.BytesRelocated, "freed", st.BytesFreed, "write_amplification", st.WriteAmplification)
		}
	}
}

// maxSpaceWait bounds how long a write waits for the background cleaner to
// free space before it fails with ErrNoSpace.
const maxSpaceWait = 5 * time.Second

// waitForSpace waits for the next background cleaning pass when the pool
// is full but holds dead space the cleaner can free. It reports whether a
// retry makes sense.
func (s *Store) waitForSpace(ctx context.Context, deadline time.Time) bool {
	if s.bgCancel == nil || s.reclaimable.Load() < 2*s.opts.SegmentSize {
		return false
	}
	wait := deadline.Sub(s.opts.Clock.Now())
	if wait <= 0 {
		return false
	}
	s.cleanedMu.Lock()
	ch := s.cleaned
	s.cleanedMu.Unlock()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
}
