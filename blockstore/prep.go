package blockstore

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/cockroachdb/pebble/vfs"
	"github.com/vbs-storage/vbs/blockstore/record"
)

// Pre-formatted segments.
//
// Appending to a growing file makes every fdatasync commit file-system
// metadata (the new size, newly allocated blocks), which on ext4 costs a
// journal commit: measured, 8 appends of 4096 bytes + fdatasync take
// 544 µs on a growing file and 348 µs on one whose blocks were written and
// synced before (fallocate'd, unwritten extents are no better than
// appending). So a background preparer writes the next segment file full of
// zeros and syncs it ahead of time, and the writer rolls into it: its
// appends are overwrites of allocated blocks. When no prepared file is
// ready the writer creates a segment as before.
//
// A file is only ever prepared under a name replay ignores (prepSuffix). It
// becomes a segment when the writer renames it to the segment's name (and
// syncs the directory), after it was completely written and synced, so a
// crash while the preparer is mid-fill leaves only a file Open deletes.
// Zeros end a segment's valid log like the end of a file does (a zero
// header has a bad magic), so a segment's tail past its last record reads
// as the end of the log to replay, scrub and the cleaner.
//
// Space: a prepared file counts in the log's allocated bytes (Stats,
// CapacityBytes) from the moment its bytes are written, as does a
// pre-formatted segment's unused tail, because the disk holds them. The
// preparer only prepares while that leaves a segment's worth of capacity
// free.

// prepSuffix names a file being prepared or ready to become a segment.
const prepSuffix = ".prep"

// When to prepare, and how fast. Zero-filling doubles the bytes the log
// writes and competes with foreground writes for the disk and the CPU
// (measured: while a 256 MiB file was being filled the 4 KiB QD1 flush and
// the QD32 write benchmarks got slower than without preparing), and it only
// pays off for fdatasync. So the preparer starts on the next segment only
// once the active one is half full and has seen prepMinSyncs syncs for
// durability (a store that writes little, or streams without flushing,
// never pays; a prepared file is rarely thrown away at Close). It writes
// prepChunk at a time, syncs every prepSyncBytes so no sync has much to
// write, and holds itself to prepRateBytes per second. A writer that fills
// the second half of a segment faster falls back to creating the next one.
const (
	prepChunk     = 1 << 20
	prepSyncBytes = 8 << 20
	prepRateBytes = 256 << 20
	prepMinSyncs  = 8
)

// preparedFile is a segment-sized file of synced zeros.
type preparedFile struct {
	f    vfs.File
	path string
	size int64
}

// preparer keeps one pre-formatted file ready for the writer's next roll.
// It is owned by the Store, which starts it in Open and stops it in Close.
type preparer struct {
	s      *Store
	ready  chan preparedFile // at most one file waits here
	kick   chan struct{}     // the writer took a file, or space may be back
	cancel context.CancelFunc
	done   chan struct{}
	busy   atomic.Bool // writing a file (tests wait for it to settle)
	next   uint64      // name counter; only the preparer goroutine uses it
	zeros  []byte      // prepChunk bytes; only the preparer goroutine uses it
}

func (s *Store) startPreparer() {
	ctx, cancel := context.WithCancel(context.Background())
	p := &preparer{
		s:      s,
		ready:  make(chan preparedFile, 1),
		kick:   make(chan struct{}, 1),
		cancel: cancel,
		done:   make(chan struct{}),
	}
	s.prep = p
	go p.run(ctx)
}

// stopPreparer stops the preparer, waits for it, and deletes a prepared
// file nobody took.
func (s *Store) stopPreparer() {
	p := s.prep
	if p == nil {
		return
	}
	p.cancel()
	<-p.done
	select {
	case pf := <-p.ready:
		p.discard(pf, 0)
	default:
	}
	s.prep = nil
}

// poke wakes the preparer to check whether it should prepare a file.
func (p *preparer) poke() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

func (p *preparer) run(ctx context.Context) {
	defer close(p.done)
	for {
		// Only this goroutine fills ready, so an empty slot stays free
		// until the send below: one file is prepared ahead, never two.
		if len(p.ready) == 0 && p.wanted() && p.hasRoom() {
			p.busy.Store(true)
			pf, err := p.prepare(ctx)
			p.busy.Store(false)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				p.s.opts.Logger.Warn("blockstore: preparing a segment failed; the writer creates segments itself until the next roll", "err", err)
			} else {
				select {
				case p.ready <- pf:
				case <-ctx.Done():
					p.discard(pf, 0)
					return
				}
			}
		}
		// Wait for the writer to take the file (or for space to come back,
		// which a roll is the cheapest moment to check), then look again.
		select {
		case <-p.kick:
		case <-ctx.Done():
			return
		}
	}
}

// wanted reports whether the next segment is worth preparing: the active
// one is half full and has been synced for durability prepMinSyncs times.
// The writer pokes the preparer when either becomes true.
func (p *preparer) wanted() bool {
	return int64(p.s.activeEnd.Load()) >= p.s.opts.SegmentSize/2 && p.s.activeSyncs.Load() >= prepMinSyncs
}

// hasRoom reports whether preparing one more segment leaves a segment's
// worth of capacity free.
func (p *preparer) hasRoom() bool {
	return p.s.stats.logBytes.Load()+2*p.s.opts.SegmentSize <= p.s.spaceLimit()
}

// prepare writes and syncs a file of SegmentSize zeros under a prep name.
// Whatever fails, it leaves no file behind that counts as allocated.
func (p *preparer) prepare(ctx context.Context) (preparedFile, error) {
	s := p.s
	p.next++
	pf := preparedFile{path: s.fs.PathJoin(s.segDir, fmt.Sprintf("%016x%s", p.next, prepSuffix))}
	f, err := s.fs.Create(pf.path)
	if err != nil {
		return pf, fmt.Errorf("create %s: %w", pf.path, classify(err))
	}
	pf.f = f
	if p.zeros == nil {
		p.zeros = make([]byte, prepChunk)
	}
	zeros := p.zeros
	pace := pacer{rate: prepRateBytes, start: s.opts.Clock.Now()}
	last := 0
	for pf.size < s.opts.SegmentSize {
		if err := pace.wait(ctx, s.opts.Clock, uint64(last)); err != nil {
			p.discard(pf, 0)
			return pf, err
		}
		chunk := zeros[:min(int64(len(zeros)), s.opts.SegmentSize-pf.size)]
		clear(chunk) // vfs.File.Write may modify what it is given
		n, err := f.Write(chunk)
		last = n
		pf.size += int64(n)
		s.stats.logBytes.Add(int64(n))
		s.stats.prepBytes.Add(uint64(n))
		if err != nil {
			p.discard(pf, 0)
			return pf, fmt.Errorf("zero-fill %s: %w", pf.path, classify(err))
		}
		if pf.size%prepSyncBytes == 0 && pf.size < s.opts.SegmentSize {
			if err := f.SyncData(); err != nil {
				p.discard(pf, 0)
				return pf, fmt.Errorf("sync %s: %w", pf.path, err)
			}
		}
	}
	if err := f.Sync(); err != nil {
		p.discard(pf, 0)
		return pf, fmt.Errorf("sync %s: %w", pf.path, err)
	}
	return pf, nil
}

// discard closes and deletes a prepared file (found under path, or under
// the segment name of seg when seg is non-zero) and gives its bytes back.
func (p *preparer) discard(pf preparedFile, seg uint64) {
	s := p.s
	if pf.f != nil {
		_ = pf.f.Close()
	}
	path := pf.path
	if seg != 0 {
		path = s.segPath(seg)
	}
	if err := s.fs.Remove(path); err != nil {
		s.opts.Logger.Warn("blockstore: removing a prepared segment file failed", "path", path, "err", err)
		return // it still takes the space
	}
	s.stats.logBytes.Add(-pf.size)
}

// takePrepared returns a ready pre-formatted file, if there is one.
func (s *Store) takePrepared() (preparedFile, bool) {
	if s.prep == nil {
		return preparedFile{}, false
	}
	select {
	case pf := <-s.prep.ready:
		return pf, true
	default:
		return preparedFile{}, false
	}
}

// installPrepared makes pf segment id: it renames the file (durably) and
// writes the segment header over its first bytes. It returns the segment
// open for reading and writing, positioned after the header. On failure the
// file is deleted.
func (s *Store) installPrepared(pf preparedFile, id uint64) (vfs.File, error) {
	defer s.prep.poke()
	path := s.segPath(id)
	if err := s.fs.Rename(pf.path, path); err != nil {
		s.prep.discard(pf, 0)
		return nil, fmt.Errorf("install prepared segment %d: %w", id, err)
	}
	_ = pf.f.Close()
	pf.f = nil
	if err := s.syncDir(s.segDir); err != nil {
		s.prep.discard(pf, id)
		return nil, fmt.Errorf("install prepared segment %d: %w", id, err)
	}
	f, err := s.fs.OpenReadWrite(path)
	if err != nil {
		s.prep.discard(pf, id)
		return nil, fmt.Errorf("install prepared segment %d: open: %w", id, err)
	}
	var hb [record.SegmentHeaderSize]byte
	if _, err := f.Write(record.AppendSegmentHeader(hb[:0], record.SegmentHeader{ID: id})); err != nil {
		pf.f = f
		s.prep.discard(pf, id)
		return nil, fmt.Errorf("write segment %d header: %w", id, classify(err))
	}
	s.stats.prepUsed.Add(1)
	return f, nil
}

// removeStalePrep deletes files a preparer left behind (a crash or a
// failed removal): none of them is known to be complete, and none holds
// data.
func (s *Store) removeStalePrep(names []string) error {
	for _, n := range names {
		if !strings.HasSuffix(n, prepSuffix) {
			continue
		}
		if err := s.fs.Remove(s.fs.PathJoin(s.segDir, n)); err != nil {
			return fmt.Errorf("open store: remove stale prepared file %s: %w", n, err)
		}
	}
	return nil
}
