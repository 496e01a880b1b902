package blockstore

import (
	"fmt"
	"runtime/debug"

	"github.com/cockroachdb/pebble/vfs"
)

// Segment views: reads copy log data out of a read-only shared mapping of
// each segment file instead of calling pread once per scattered run. A
// 128 KiB read of blocks that random writes left all over the log was 32
// system calls; through a view it is 32 copies from the page cache.
//
// Contracts:
//   - A view maps the first len(view) bytes of its file, MAP_SHARED and
//     PROT_READ, so it shows every byte written to the file through any
//     descriptor. Reads only ever ask for bytes that were written before
//     the index could point at them.
//   - Views exist only for files with a descriptor (the OS filesystem);
//     files of other vfs.FS implementations, and any mapping that fails,
//     are read with ReadAt as before.
//   - A view is unmapped only while nothing can read it: in removeSegment
//     under gcMu held exclusively (a read holds it shared from lookup to
//     copy), or in closeFiles after Close stopped every reader.
//   - A page past the end of the file (a segment cut short behind the
//     store's back) faults; copyView turns that fault into an error, which
//     the read reports as corruption, instead of a crash.
//   - At most maxSegmentViews segments have views. Every mapping counts
//     against the kernel's per-process limit (vm.max_map_count, 65,530 by
//     default), which the Go runtime and pebble need too: a process that
//     reaches it cannot grow its heap and dies. Segments past the cap are
//     read with pread.
//   - Only Linux builds map segments: it has one page cache for mapped and
//     written pages (OpenBSD, for one, does not).

// maxSegmentViews caps the mappings one store makes: 16,384 segments is
// 4 TiB of 256 MiB segments, a quarter of the default vm.max_map_count.
const maxSegmentViews = 16384

// segViewBytes is how much of a segment file a view maps: a whole segment,
// or the file's size when that is larger (the writer may end a segment a
// record past SegmentSize).
func (s *Store) segViewBytes(f vfs.File) int64 {
	n := s.opts.SegmentSize
	if st, err := f.Stat(); err == nil {
		n = max(n, st.Size())
	}
	return n
}

// addSegment registers f as segment id for reads, with a view when one can
// be made.
func (s *Store) addSegment(id uint64, f vfs.File) {
	var view []byte
	s.segMu.RLock()
	views := len(s.views)
	s.segMu.RUnlock()
	if fd := f.Fd(); fd != vfs.InvalidFd && !s.opts.NoSegmentViews && views < maxSegmentViews {
		v, err := mapSegment(fd, s.segViewBytes(f))
		if err != nil {
			s.opts.Logger.Debug("blockstore: segment read through pread, not a mapping", "segment", id, "err", err)
		} else {
			view = v
		}
	}
	s.segMu.Lock()
	s.segs[id] = f
	if view != nil {
		s.views[id] = view
	}
	s.segMu.Unlock()
}

// dropSegment forgets segment id and unmaps its view, and returns its file
// (nil when there is none) for the caller to close. The caller guarantees
// that no read uses the view any more (see the contracts above).
func (s *Store) dropSegment(id uint64) vfs.File {
	s.segMu.Lock()
	f, view := s.segs[id], s.views[id]
	delete(s.segs, id)
	delete(s.views, id)
	s.segMu.Unlock()
	if view != nil {
		if err := unmapSegment(view); err != nil {
			s.opts.Logger.Warn("blockstore: unmapping a segment failed", "segment", id, "err", err)
		}
	}
	return f
}

// segment returns segment id's file and view (nil when it has none).
func (s *Store) segment(id uint64) (vfs.File, []byte) {
	s.segMu.RLock()
	f, view := s.segs[id], s.views[id]
	s.segMu.RUnlock()
	return f, view
}

// copyView copies len(dst) bytes at off out of view. A fault (the file
// shorter than the view) is returned as an error.
func copyView(dst, view []byte, off uint64) (err error) {
	if off > uint64(len(view)) || uint64(len(dst)) > uint64(len(view))-off {
		return fmt.Errorf("mapped read of %d bytes at %d: past the %d mapped", len(dst), off, len(view))
	}
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			err = fmt.Errorf("mapped read of %d bytes at %d: %v", len(dst), off, r)
		}
	}()
	copy(dst, view[off:])
	return nil
}
