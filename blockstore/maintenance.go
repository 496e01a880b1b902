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
	defer s.spaceMayHaveFreed()
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

// runBackgroundGC cleans segments until ctx is done. Open starts it when
// Options.GCInterval is set; Close stops it and waits. It looks every
// GCInterval, and at once when a write finds the pool full. With a
// capacity it cleans only to keep GCFreeBytes free (cleanForSpace), so it
// works exactly as fast as writes consume space; without one it cleans up
// to GCMaxSegments segments under GCMaxUtilization each time, and skips
// the pass (its full usage scan) while nothing changed since one that
// found nothing to clean: no append to the log, no snapshot or volume
// deleted, reverted or flattened (see spaceMayHaveFreed).
func (s *Store) runBackgroundGC(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(s.opts.GCInterval)
	defer t.Stop()
	kick := s.gcHead.kick()
	type logMark struct{ seg, end, freed uint64 }
	var idleAt logMark
	idle := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-kick:
		}
		var err error
		cleaned := 0
		if merr := s.measureDisk(); merr != nil && ctx.Err() == nil {
			s.opts.Logger.Warn("blockstore: cannot measure the disk's free space; keeping the last limit", "err", merr)
		}
		if s.opts.CapacityBytes > 0 {
			cleaned, err = s.cleanForSpace(ctx)
		} else {
			mark := logMark{s.activeSeg.Load(), s.activeEnd.Load(), s.gcHead.n.freedGen.Load()}
			if idle && mark == idleAt {
				s.gcHead.n.idleSkips.Add(1)
				continue
			}
			var st GCStats
			st, err = s.CollectGarbage(ctx, s.opts.GCMaxSegments, s.opts.GCMaxUtilization, s.opts.GCRateBytes)
			cleaned = st.SegmentsCleaned
			idle, idleAt = err == nil && cleaned == 0, mark
		}
		if cleaned > 0 {
			s.gcHead.n.passes.Add(1)
		}
		if err != nil || s.gcHead.exhausted.Load() {
			s.notifySpace()
		}
		if err != nil && ctx.Err() == nil {
			s.opts.Logger.Warn("blockstore: background segment cleaning failed", "err", err)
		}
	}
}

// cleanForSpace cleans segments, best first, until GCFreeBytes of the
// capacity are free (and one more when a waiting write asked for it) or
// nothing is left to reclaim, and reports how many it cleaned. Victims come from the plan of the last usage scan (see
// gcHead.plan); every removal wakes writers waiting for space.
func (s *Store) cleanForSpace(ctx context.Context) (int, error) {
	g := &s.gcHead
	if s.freeBytes() >= s.opts.GCFreeBytes && !s.rescanWanted() && !g.more.Load() {
		return 0, nil
	}
	s.gcRun.Lock()
	defer s.gcRun.Unlock()
	cleaned := 0
	scanned := false
	for s.freeBytes() < s.opts.GCFreeBytes || s.rescanWanted() || g.more.Swap(false) {
		if err := ctx.Err(); err != nil {
			return cleaned, err
		}
		every := max(4, g.planSegs/4)
		if g.rescanEvery > 0 {
			every = g.rescanEvery
		}
		if len(g.plan) == 0 || g.rescan.Swap(false) || int(s.nextSeg.Load()-g.planSeg) >= every {
			if scanned && len(g.plan) == 0 {
				break // a fresh scan found nothing better to do
			}
			plan, err := s.planCleaning(1)
			if err != nil {
				return cleaned, err
			}
			g.plan, g.planSeg, g.planSegs = plan, s.nextSeg.Load(), len(plan)
			g.exhausted.Store(len(plan) == 0)
			scanned = true
			if len(plan) == 0 {
				break
			}
		}
		c := g.plan[0]
		g.plan = g.plan[1:]
		if c.id == s.activeSeg.Load() || c.id == g.seg.id || s.segFile(c.id) == nil {
			continue
		}
		if err := s.cleanSegment(ctx, c.id, nil); err != nil {
			return cleaned, fmt.Errorf("gc: segment %d: %w", c.id, err)
		}
		cleaned++
		g.exhausted.Store(false)
		s.reclaimable.Add(-min(c.gain, s.reclaimable.Load()))
		s.notifySpace()
	}
	return cleaned, nil
}

// rescanWanted reports whether a writer asked for a fresh scan.
func (s *Store) rescanWanted() bool { return s.gcHead.rescan.Load() }

// maxSpaceWait bounds how long a write waits for the background cleaner to
// free something before it fails with ErrNoSpace.
const maxSpaceWait = 5 * time.Second

// waitForSpace is called by a write that found the pool full. With the
// background cleaner on it wakes the cleaner and waits until it frees a
// segment (every removal wakes all waiters), and reports that a retry
// makes sense. It reports false, and the write fails with ErrNoSpace, when
// there is no cleaner, when a fresh usage scan made for this wait finds
// nothing to reclaim (the pool is full of live data), or when the cleaner
// frees nothing for maxSpaceWait. The caller's deadline is not a bound
// while the cleaner keeps freeing space: a writer that keeps losing the
// space freed to other writers (the writer admits whoever comes first)
// must wait longer, not be told the pool is full.
func (s *Store) waitForSpace(ctx context.Context, _ time.Time) bool {
	if s.bgCancel == nil {
		return false
	}
	g := &s.gcHead
	g.n.spaceWaits.Add(1)
	start := time.Now()
	defer func() { g.n.spaceWaitNanos.Add(uint64(time.Since(start))) }()
	wait := maxSpaceWait
	s.cleanedMu.Lock()
	ch := s.cleaned
	s.cleanedMu.Unlock()
	wasExhausted := g.exhausted.Load()
	if wasExhausted {
		g.rescan.Store(true)
	}
	// At least one more victim, even if the cleaner has met its free
	// target meanwhile: the segment it deleted may have been deleted (and
	// its wake-up sent) before this write started to wait, or this write
	// may need more than the target.
	g.more.Store(true)
	g.wake()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ch:
		if wasExhausted && g.exhausted.Load() {
			g.n.spaceFailures.Add(1)
			return false
		}
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	g.n.spaceFailures.Add(1)
	return false
}
