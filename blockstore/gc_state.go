package blockstore

import (
	"sync"
	"sync/atomic"
	"time"
)

// gcHead is the segment cleaner's state (Store.gcHead; the field is named
// for the log head, the first thing it held). Fields marked gcRun are
// guarded by Store.gcRun; the rest are safe for concurrent use.
type gcHead struct {
	seg     gcSeg  // gcRun: the cleaner's log head
	readBuf []byte // gcRun: the victim read window
	mv      mover  // gcRun

	// plan is the background cleaner's victim list, best first, from the
	// usage scan made when the newest segment was planSeg and planSegs
	// segments could be cleaned. Usage only falls between scans (blocks
	// die, none are born in old segments), so a stale plan overestimates
	// what cleaning costs and never picks a segment that is worse than it
	// looks; it is rescanned once a quarter as many segments were created.
	plan     []segUsage // gcRun
	planSeg  uint64     // gcRun
	planSegs int        // gcRun
	// rescanEvery, when set (by tests), replaces the quarter: a rescan
	// after that many new segments.
	rescanEvery int // gcRun

	live, known []bool // gcRun: scratch for referencedBatch

	// exhausted is set when a fresh usage scan found nothing to reclaim
	// while the pool was short of space; rescan asks the next background
	// pass to scan again whatever the plan's age.
	exhausted atomic.Bool
	rescan    atomic.Bool
	// more asks the background cleaner for one more victim whatever the
	// free space (set by waiting writes).
	more atomic.Bool

	kickOnce sync.Once
	kickCh   chan struct{}

	// chunkHook, when set (by tests, before any cleaning), is called on
	// the writer with each relocation chunk before it is applied.
	chunkHook func([]relocItem)

	n cleanerCounters
}

type cleanerCounters struct {
	passes         atomic.Uint64
	scans          atomic.Uint64
	scanNanos      atomic.Uint64
	chunks         atomic.Uint64
	bytesRead      atomic.Uint64
	bytesAppended  atomic.Uint64
	bytesFreed     atomic.Uint64
	spaceWaits     atomic.Uint64
	spaceWaitNanos atomic.Uint64
	spaceFailures  atomic.Uint64
	maxOvershoot   atomic.Int64
	idleSkips      atomic.Uint64
	// freedGen counts operations that may have freed log space without
	// appending to the log (spaceMayHaveFreed).
	freedGen atomic.Uint64
}

// spaceMayHaveFreed notes that a catalog change (a deleted snapshot or
// volume, a revert, a flatten) may have left log bytes unreferenced
// without appending to the log, and wakes the background cleaner. Callers
// defer it, so a failed attempt costs at most one extra usage scan.
func (s *Store) spaceMayHaveFreed() {
	s.gcHead.n.freedGen.Add(1)
	s.gcHead.wake()
}

// kick returns the channel that wakes the background cleaner early.
func (g *gcHead) kick() chan struct{} {
	g.kickOnce.Do(func() { g.kickCh = make(chan struct{}, 1) })
	return g.kickCh
}

// wake asks the background cleaner for a pass now.
func (g *gcHead) wake() {
	select {
	case g.kick() <- struct{}{}:
	default:
	}
}

// CleanerStats reports what segment cleaning has done since Open. Stats
// has the totals users see (GCBytes, GCSegments, WriteAmplification); this
// is the cleaner's own accounting, for tuning and tests.
type CleanerStats struct {
	// Passes counts background passes that cleaned at least one segment.
	Passes uint64
	// UsageScans counts full index scans to measure segment usage, and
	// UsageScanTime their total duration. IdleSkips counts background
	// passes skipped (without a capacity) because nothing had changed
	// since a pass that found nothing to clean.
	UsageScans    uint64
	UsageScanTime time.Duration
	IdleSkips     uint64
	// RelocateChunks counts writer requests that repointed moved blocks.
	RelocateChunks uint64
	// BytesRead is what the cleaner read from victims; BytesAppended is
	// everything it appended to the log (block data, record and segment
	// headers, and blocks that died before the writer repointed them);
	// BytesFreed is the size of the segments it deleted.
	BytesRead     uint64
	BytesAppended uint64
	BytesFreed    uint64
	// SpaceWaits counts writes that found the pool full and waited for
	// the cleaner, SpaceWaitTime how long they waited in all, and
	// SpaceWaitFailures the waits that ended without space (the write then
	// fails with ErrNoSpace).
	SpaceWaits        uint64
	SpaceWaitTime     time.Duration
	SpaceWaitFailures uint64
	// MaxOvershoot is the most the log has exceeded CapacityBytes, seen at
	// the end of a relocation batch: the cleaner appends a victim's live
	// blocks before it can delete the victim, so it may pass the capacity
	// by up to one segment while the pool is full.
	MaxOvershoot int64
}

// CleanerStats returns the segment cleaner's counters.
func (s *Store) CleanerStats() CleanerStats {
	n := &s.gcHead.n
	return CleanerStats{
		Passes:            n.passes.Load(),
		UsageScans:        n.scans.Load(),
		UsageScanTime:     time.Duration(n.scanNanos.Load()),
		IdleSkips:         n.idleSkips.Load(),
		RelocateChunks:    n.chunks.Load(),
		BytesRead:         n.bytesRead.Load(),
		BytesAppended:     n.bytesAppended.Load(),
		BytesFreed:        n.bytesFreed.Load(),
		SpaceWaits:        n.spaceWaits.Load(),
		SpaceWaitTime:     time.Duration(n.spaceWaitNanos.Load()),
		SpaceWaitFailures: n.spaceFailures.Load(),
		MaxOvershoot:      n.maxOvershoot.Load(),
	}
}

// notifySpace wakes writers waiting for the cleaner (waitForSpace).
func (s *Store) notifySpace() {
	s.cleanedMu.Lock()
	close(s.cleaned)
	s.cleaned = make(chan struct{})
	s.cleanedMu.Unlock()
}

// freeBytes is what is left of the capacity, lowered to keep the disk
// reserve (negative when the cleaner has passed it).
func (s *Store) freeBytes() int64 {
	return s.spaceLimit() - s.stats.logBytes.Load()
}

// noteOvershoot records how far the log is past the capacity.
func (s *Store) noteOvershoot() {
	if s.opts.CapacityBytes <= 0 {
		return
	}
	over := -s.freeBytes()
	for {
		cur := s.gcHead.n.maxOvershoot.Load()
		if over <= cur || s.gcHead.n.maxOvershoot.CompareAndSwap(cur, over) {
			return
		}
	}
}
