package blockstore

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"
)

// Keeping the index's room on a shared disk.
//
// The log's space is bounded by Options.CapacityBytes, which the binaries
// size from the disk's free space when the store opens (DiskPoolBytes).
// Other files on the same filesystem can take that space afterwards, and
// when the filesystem is full the index cannot write its WAL: pebble
// treats that as fatal, and the process dies with every volume it serves
// (measured with `vbs target --lun store:` on a 400 MiB tmpfs, a 300 MiB
// file written beside it and fio random writes: "panic: write
// .../index/000004.log: no space left on device").
//
// With Options.DiskReserveBytes set, the store measures the filesystem's
// free space and lowers the log's limit so that the reserve stays free:
// limit = log bytes + available - reserve, measured at Open, whenever the
// log has grown by diskCheckBytes since the last measurement, on every
// background cleaner tick, and again before a write is refused (so space
// freed by others makes writes work again without a restart). Writes past
// the limit fail with ErrNoSpace like writes past the capacity: reads
// keep working, nothing written is harmed, the background cleaner works
// to get under the lowered limit, and the index keeps the reserve for its
// own writes. Between two measurements the log may grow by at most
// diskCheckBytes, and the cleaner may pass the limit by what it moves
// before it deletes a victim (at most a segment), so the reserve should
// exceed both with room for the index's WAL and compactions
// (DiskReserveBytes sizes it so).

// diskCheckBytes is how far the log may grow between two measurements of
// the filesystem's free space.
const diskCheckBytes = 16 << 20

// diskGuard holds the limit the filesystem's free space puts on the log.
type diskGuard struct {
	reserve int64
	// limit is the log size at which the reserve would be reached, as of
	// the last measurement (math.MaxInt64 with no reserve).
	limit atomic.Int64
	// at is the log size at the last measurement.
	at atomic.Int64
	mu sync.Mutex // one measurement at a time
}

// initDiskGuard sets the reserve up and takes the first measurement. A
// reserve on a filesystem that cannot report its free space is refused.
func (s *Store) initDiskGuard() error {
	g := &s.disk
	g.reserve = s.opts.DiskReserveBytes
	g.limit.Store(math.MaxInt64)
	if g.reserve <= 0 {
		return nil
	}
	if err := s.measureDisk(); err != nil {
		return fmt.Errorf("disk reserve: %w", err)
	}
	return nil
}

// measureDisk measures the filesystem's free space and moves the limit.
func (s *Store) measureDisk() error {
	g := &s.disk
	if g.reserve <= 0 {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	used := s.stats.logBytes.Load()
	du, err := s.fs.GetDiskUsage(s.dir)
	if err != nil { // the limit stays where it was
		return fmt.Errorf("measure free space of %s: %w", s.dir, err)
	}
	avail := int64(min(du.AvailBytes, math.MaxInt64/2))
	g.limit.Store(used + avail - g.reserve)
	g.at.Store(used)
	return nil
}

// spaceLimit is how large the log may grow: the capacity, lowered to keep
// the disk reserve free (math.MaxInt64 when neither applies).
func (s *Store) spaceLimit() int64 {
	lim := s.disk.limit.Load()
	if c := s.opts.CapacityBytes; c > 0 {
		lim = min(lim, c)
	}
	return lim
}

// hasSpaceFor reports whether the log may grow by n more bytes. With a
// disk reserve it measures the free space again when the log has grown by
// diskCheckBytes since the last measurement, or when the answer would be
// no. Only the writer calls it.
func (s *Store) hasSpaceFor(n int64) bool {
	used := s.stats.logBytes.Load()
	g := &s.disk
	if g.reserve > 0 && used+n-g.at.Load() >= diskCheckBytes {
		_ = s.measureDisk() // a failure keeps the last limit; the cleaner logs it
	}
	if used+n <= s.spaceLimit() {
		return true
	}
	if g.reserve <= 0 || used+n > s.opts.CapacityBytes && s.opts.CapacityBytes > 0 {
		return false
	}
	// Others may have freed space since the last measurement.
	if err := s.measureDisk(); err != nil {
		return false
	}
	return used+n <= s.spaceLimit()
}
