package blockstore

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"slices"
	"sync"
	"syscall"

	"github.com/cockroachdb/pebble/vfs"
	"github.com/vbs-storage/vbs/blockstore/index"
	"github.com/vbs-storage/vbs/blockstore/record"
)

type opKind uint8

const (
	opWrite opKind = iota + 1
	opTrim
	opFlush
	opCompareWrite
	opFunc
	opRelocate
)

// request is one unit of work for the writer. Requests are pooled; the
// submitter owns a request from get until it has received on done.
type request struct {
	kind    opKind
	vol     *volState
	lba     uint64
	blocks  uint64
	data    []byte
	compare []byte
	fua     bool
	atomic  bool
	fn      func(w *writer) error
	reloc   []relocItem
	err     error
	done    chan error
}

var requestPool = sync.Pool{New: func() any { return &request{done: make(chan error, 1)} }}

func getRequest() *request { return requestPool.Get().(*request) }

func putRequest(r *request) {
	done := r.done
	*r = request{done: done}
	requestPool.Put(r)
}

// pendUpdate is an index change waiting for its log bytes to be written.
type pendUpdate struct {
	vol  *volState
	lba  uint64
	n    uint64 // trims: number of blocks; writes: 0
	loc  index.Location
	trim bool
}

// writebackBytes is how much the writer appends before it asks the log
// syncer for a sync that nothing waits for. Without it the page cache
// holds a whole segment's data until the seal's fdatasync, which the
// writer (and every write behind it) waits for: 0.3 s per 256 MiB
// segment, measured at 4 KiB QD32.
const writebackBytes = 32 << 20

// writer is the single goroutine that appends to the log. All of its fields
// are owned by that goroutine (and by Open before it starts).
type writer struct {
	s       *Store
	reqCh   chan *request
	quit    chan struct{}
	stopped chan struct{}

	active    vfs.File
	activeID  uint64
	activeOff uint64
	// activeAlloc is how much of the active segment file is counted in
	// the log's allocated bytes: its end, or all of it when pre-formatted.
	activeAlloc uint64
	broken      bool  // the last append failed part-way; roll before the next
	full        bool  // no room to pad before a sync; roll before the next append
	failed      error // sync or index failure: refuse writes until reopen

	seq uint64
	// buf is what the next append writes: the first head bytes are the
	// active segment's bytes from the last syncAlign boundary before
	// activeOff (already written; see flushPending), then the records
	// encoded since.
	buf        []byte
	head       int
	pend       []pendUpdate
	batch      []*request
	chunkStart int
	needSync   bool
	ib         *index.Batch
	touched    map[uint64]*volState
	seen       map[blockKey]struct{}
	keys       []blockKey // reused by commitOverlay
	// pendSnaps are snapshot cuts waiting for their log sync, oldest
	// first; heldNew are versions preserved for them by the current
	// applyPend, not yet in Store.held (snapsync.go).
	pendSnaps []pendingSnap
	heldNew   []heldVersion
	heldOut   []heldVersion // reused by stageSnapshots
	// heldTrims are the held versions trims preserved (also in
	// Store.held): they go to the index with their snapshot.
	heldTrims []heldVersion
	// synced is the highest seq whose log bytes are known durable.
	synced uint64
	// askedOff is where the active segment ended when the log syncer was
	// last asked to sync it.
	askedOff uint64
}

func newWriter(s *Store) *writer {
	return &writer{
		s:       s,
		reqCh:   make(chan *request, defaultQueueDepth),
		quit:    make(chan struct{}),
		stopped: make(chan struct{}),
		buf:     make([]byte, 0, s.opts.MaxBatchBytes+record.HeaderSize*64+2*syncAlign),
		ib:      s.idx.NewBatch(),
		touched: make(map[uint64]*volState),
		seen:    make(map[blockKey]struct{}),
	}
}

// submit hands r to the writer and waits for its result.
func (s *Store) submit(r *request) error {
	s.submitMu.RLock()
	if s.closed {
		s.submitMu.RUnlock()
		return ErrClosed
	}
	s.w.reqCh <- r
	s.submitMu.RUnlock()
	return <-r.done
}

func (w *writer) run() {
	defer close(w.stopped)
	for {
		var r *request
		select {
		case r = <-w.reqCh:
		case <-w.quit:
			w.shutdown()
			return
		}
		w.gather(r)
		w.process()
	}
}

// gather collects r and every request already waiting, up to the batch
// limit: this is the group commit.
func (w *writer) gather(r *request) {
	w.batch = append(w.batch[:0], r)
	size := len(r.data)
	for size < w.s.opts.MaxBatchBytes {
		select {
		case r := <-w.reqCh:
			w.batch = append(w.batch, r)
			size += len(r.data)
		default:
			return
		}
	}
}

func (w *writer) shutdown() {
	// Close holds submitMu exclusively before it closes quit, so nothing
	// new can arrive: finish what is queued.
	for {
		select {
		case r := <-w.reqCh:
			w.gather(r)
			w.process()
			continue
		default:
		}
		break
	}
	if w.failed == nil && w.active != nil {
		if err := w.syncLog(true); err != nil {
			w.s.opts.Logger.Error("blockstore: final sync failed", "err", err)
		}
	}
	w.failSnapshots(ErrClosed) // none left unless the final sync failed
	w.ib.Close()
}

// process carries out the gathered batch. When a request in it needs
// durability, or the overlay reaches Options.MaxDirty, the batch ends with
// padding to a page boundary and one fdatasync; its requests complete as
// soon as that returned. The overlay moves into the index only when it has
// reached MaxDirty (after the requests completed: their log bytes are
// already durable, so the index may lag behind; see invariant 1).
func (w *writer) process() {
	s := w.s
	s.stats.batches.Add(1)
	w.chunkStart = 0
	w.needSync = false
	for i, r := range w.batch {
		w.add(i, r)
	}
	// The overlay can only grow by what is pending, so this never misses a
	// batch that brings it to MaxDirty.
	sync := w.failed == nil && (w.needSync || len(s.dirty)+len(w.pend) >= s.opts.MaxDirty)
	if sync {
		w.pad()
	}
	w.flushPending(len(w.batch))
	if sync && w.failed == nil {
		if err := w.syncData(); err != nil {
			for _, r := range w.batch {
				if r.err == nil && w.wantsDurability(r) {
					r.err = err
				}
			}
		}
	} else if w.activeOff-w.askedOff >= writebackBytes && w.failed == nil {
		w.askSync()
	}
	for i, r := range w.batch {
		r.done <- r.err
		w.batch[i] = nil
	}
	if sync && w.failed == nil && len(s.dirty) >= s.opts.MaxDirty {
		// The log is durable up to activeOff (synced above).
		_ = w.commitOverlay(false, false) // a failure fails the store (w.fail)
	}
}

func (w *writer) wantsDurability(r *request) bool {
	return r.fua || r.kind == opFlush || (r.vol != nil && r.vol.flags.Load()&volFlagWriteThrough != 0)
}

// add encodes r into the pending buffer (or carries it out, for requests
// that must see the effect of everything before them).
func (w *writer) add(i int, r *request) {
	if w.failed != nil {
		r.err = fmt.Errorf("blockstore: store failed, reopen needed: %w", w.failed)
		return
	}
	if r.vol != nil && r.vol.deleted.Load() {
		r.err = ErrVolumeNotFound
		return
	}
	switch r.kind {
	case opFlush:
		w.needSync = true
	case opFunc:
		w.flushPending(i)
		r.err = r.fn(w)
	case opRelocate:
		w.flushPending(i)
		r.err = w.relocate(i, r.reloc)
	case opCompareWrite:
		w.flushPending(i)
		cur := make([]byte, len(r.compare))
		if err := w.s.readBlocks(r.vol, cur, r.lba, liveView); err != nil {
			r.err = err
			return
		}
		if d := firstDiff(cur, r.compare); d >= 0 {
			r.err = &MiscompareError{Offset: d}
			return
		}
		w.addWrite(i, r)
	case opWrite:
		w.addWrite(i, r)
	case opTrim:
		if r.lba+r.blocks > r.vol.blocks.Load() || r.lba+r.blocks < r.lba {
			r.err = ErrOutOfRange
			return
		}
		if err := w.makeRoom(i, record.HeaderSize); err != nil {
			r.err = err
			return
		}
		w.seq++
		for left, lba := r.blocks, r.lba; left > 0; {
			n := min(left, uint64(^uint32(0)))
			w.buf = record.AppendRecord(w.buf, &record.Header{Type: record.TypeTrim, Volume: r.vol.id, LBA: lba, Blocks: uint32(n), Seq: w.seq}, nil)
			left -= n
			lba += n
		}
		w.pend = append(w.pend, pendUpdate{vol: r.vol, lba: r.lba, n: r.blocks, trim: true, loc: index.Location{Seq: w.seq}})
		if w.wantsDurability(r) {
			w.needSync = true
		}
	}
}

func firstDiff(a, b []byte) int {
	if bytes.Equal(a, b) {
		return -1
	}
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return len(a)
}

func (w *writer) addWrite(i int, r *request) {
	bs := uint64(r.vol.blockSize)
	blocks := uint64(len(r.data)) / bs
	if r.lba+blocks > r.vol.blocks.Load() || r.lba+blocks < r.lba {
		r.err = ErrOutOfRange
		return
	}
	perRec := max(uint64(w.s.opts.MaxRecordBytes)/bs, 1)
	if r.atomic {
		perRec = blocks
	}
	nrec := (blocks + perRec - 1) / perRec
	size := int(nrec)*record.HeaderSize + len(r.data)
	if !w.s.hasSpaceFor(w.newBytes(size)) {
		r.err = fmt.Errorf("write %d blocks at lba %d: %w", blocks, r.lba, ErrNoSpace)
		return
	}
	if err := w.makeRoom(i, size); err != nil {
		r.err = err
		return
	}
	w.seq++
	for b := uint64(0); b < blocks; b += perRec {
		n := min(perRec, blocks-b)
		data := r.data[b*bs : (b+n)*bs]
		var flags uint16
		if r.atomic {
			flags = record.FlagAtomic
		}
		dataOff := w.end() + record.HeaderSize
		w.buf = record.AppendRecord(w.buf, &record.Header{Type: record.TypeWrite, Flags: flags, Volume: r.vol.id, LBA: r.lba + b, Blocks: uint32(n), Seq: w.seq}, data)
		for k := uint64(0); k < n; k++ {
			w.pend = append(w.pend, pendUpdate{vol: r.vol, lba: r.lba + b + k, loc: index.Location{
				Seg: w.activeID, Off: dataOff + k*bs, CRC: record.Checksum(data[k*bs : (k+1)*bs]), Seq: w.seq,
			}})
		}
	}
	w.s.stats.writes.Add(1)
	w.s.stats.bytesIn.Add(uint64(len(r.data)))
	if w.wantsDurability(r) {
		w.needSync = true
	}
}

// accountTo counts the active segment file up to end in the log's
// allocated bytes, except what was counted before (or what a
// pre-formatted segment already counted).
func (w *writer) accountTo(end uint64) {
	if end > w.activeAlloc {
		w.s.stats.logBytes.Add(int64(end - w.activeAlloc))
		w.activeAlloc = end
	}
}

// newBytes is how many bytes appending size more would add to the log's
// allocated bytes: none inside a pre-formatted segment, or when the next
// segment is ready pre-formatted.
func (w *writer) newBytes(size int) int64 {
	end := w.end() + uint64(size)
	if !w.broken && !w.full && end <= uint64(w.s.opts.SegmentSize) {
		return int64(end - min(end, w.activeAlloc))
	}
	if w.s.prep != nil && len(w.s.prep.ready) > 0 {
		return 0
	}
	return int64(len(w.buf) - w.head + size)
}

// makeRoom rolls to a new segment when size more bytes would not fit (or
// the active one is broken or sealed).
func (w *writer) makeRoom(i, size int) error {
	used := w.end()
	if !w.broken && !w.full && (used+uint64(size) <= uint64(w.s.opts.SegmentSize) || used == record.SegmentHeaderSize) {
		return nil
	}
	if err := w.flushPending(i); err != nil {
		return err
	}
	if err := w.roll(); err != nil {
		if w.failed != nil {
			return fmt.Errorf("blockstore: store failed, reopen needed: %w", w.failed)
		}
		return err
	}
	return nil
}

// end is the log offset in the active segment after what w.buf holds.
func (w *writer) end() uint64 { return w.activeOff + uint64(len(w.buf)-w.head) }

// flushPending appends the buffered records with one write and applies
// their index changes; requests batch[chunkStart:upto] own them, and get
// its error. It returns the error too.
//
// The write covers whole pages: it starts at the syncAlign boundary before
// activeOff, rewriting the bytes of that page already in the file (the
// head of w.buf), and ends with zeros up to the next boundary, which the
// next append overwrites. Replay reads zeros as the end of the log, as it
// does in a pre-formatted segment. A write that covers only part of a page
// the page cache does not hold makes the kernel zero the rest of the page
// first; on ext4 that doubled the cost of every append (measured: 12.8 µs
// for 8 KiB of unaligned records against 7.6 µs aligned, 2 KiB more). The
// zeros count as allocated bytes (the file holds them) until overwritten.
func (w *writer) flushPending(upto int) (ferr error) {
	defer func() {
		w.pend = w.pend[:0]
		w.chunkStart = upto
	}()
	if len(w.buf) == w.head {
		return nil
	}
	start := w.activeOff - uint64(w.head)
	end := w.end()
	// Never past SegmentSize: a segment file stays within its size.
	if gap := int(min(-end%syncAlign, max(uint64(w.s.opts.SegmentSize), end)-end)); gap > 0 {
		n := len(w.buf)
		w.buf = slices.Grow(w.buf, gap)[:n+gap]
		clear(w.buf[n:])
	}
	n, err := w.active.WriteAt(w.buf, int64(start))
	if err != nil {
		w.accountTo(start + uint64(n))
		w.broken = true
		w.buf, w.head = w.buf[:0], 0
		err = fmt.Errorf("append to segment %d: %w", w.activeID, classify(err))
		for _, r := range w.batch[w.chunkStart:upto] {
			if r.err == nil && r.kind != opFlush {
				r.err = err
			}
		}
		return err
	}
	w.accountTo(start + uint64(len(w.buf)))
	half := uint64(w.s.opts.SegmentSize / 2)
	if w.s.prep != nil && w.activeOff < half && end >= half {
		defer w.s.prep.poke() // after activeEnd moved: the next segment is wanted
	}
	w.activeOff = end
	w.s.activeEnd.Store(end)
	// Keep the bytes of the last, partly written page for the next append.
	keep := int(end % syncAlign)
	used := int(end - start)
	w.buf = append(w.buf[:0], w.buf[used-keep:used]...)
	w.head = keep
	if err := w.applyPend(); err != nil {
		w.fail(err)
		for _, r := range w.batch[w.chunkStart:upto] {
			if r.err == nil {
				r.err = err
			}
		}
		return err
	}
	return nil
}

// applyPend applies w.pend, in order, to the index and the overlay. For a
// volume with snapshots it first preserves every live version a snapshot
// can still see (Loc.Seq <= the seq of the newest snapshot older than the
// change) as a Version superseded by the new write or trim. Those
// versions' log bytes are durable once their snapshot's sync is done, so
// they go to pebble at once, or, while a cut still waits for that sync,
// are held in memory until it is (snapsync.go).
// Trims delete the live mappings (in pebble first, so a concurrent reader
// never sees data older than the overlay's); trims of a clone also write
// tombstones, which hide the parent's data.
func (w *writer) applyPend() error {
	s := w.s
	touchIdx := false
	if len(w.seen) > 0 {
		clear(w.seen)
	}
	for i := range w.pend {
		p := &w.pend[i]
		q := p.vol.snapBefore(p.loc.Seq)
		if q != p.vol.freshFor {
			p.vol.fresh, p.vol.freshFor = nil, q
		}
		if !p.trim {
			if q == 0 {
				continue
			}
			if p.vol.isFresh(p.lba) {
				continue // its live version is newer than every snapshot
			}
			k := blockKey{p.vol.id, p.lba}
			if !p.vol.markFresh(p.lba) {
				// The bitmap is full: fall back to per-flush dedup.
				if _, dup := w.seen[k]; dup {
					continue
				}
				w.seen[k] = struct{}{}
			}
			old, ok, err := s.liveLocked(k)
			if err != nil {
				return err
			}
			if ok && old.Seq <= q && w.preserve(p.vol.id, index.Version{LBA: p.lba, Loc: old, Superseded: p.loc.Seq}, false) {
				touchIdx = true
			}
			continue
		}
		if q > 0 {
			err := s.forLive(p.vol.id, p.lba, p.lba+p.n, func(lba uint64, old index.Location) {
				if p.vol.isFresh(lba) {
					return
				}
				k := blockKey{p.vol.id, lba}
				if !p.vol.markFresh(lba) {
					if _, dup := w.seen[k]; dup {
						return
					}
					w.seen[k] = struct{}{}
				}
				if old.Seq <= q && w.preserve(p.vol.id, index.Version{LBA: lba, Loc: old, Superseded: p.loc.Seq}, true) {
					touchIdx = true
				}
			})
			if err != nil {
				return err
			}
		}
		w.publishHeld()
		w.settleHeld(p.vol.id, p.lba, p.n)
		w.ib.DeleteRange(p.vol.id, p.lba, p.n)
		w.ib.PutTrim(p.vol.id, index.Trim{Seq: p.loc.Seq, LBA: p.lba, Blocks: p.n})
		touchIdx = true
		if p.vol.parent.Load() != nil {
			// Tombstones hide the parent's data. They refer to no log bytes,
			// so they go to the index with the range deletion, in one batch:
			// a reader never sees the parent's data in between.
			lbas, err := s.cloneTombstones(p.vol, p.lba, p.lba+p.n)
			if err != nil {
				return err
			}
			for _, lba := range lbas {
				w.ib.Put(p.vol.id, lba, index.Location{Seq: p.loc.Seq})
			}
		}
	}
	w.publishHeld()
	if touchIdx {
		if err := w.ib.Commit(false); err != nil {
			return err
		}
	}
	s.mu.Lock()
	for _, p := range w.pend {
		if p.trim {
			dropDirty(s.dirty, p.vol.id, p.lba, p.n)
			dropDirty(s.cache, p.vol.id, p.lba, p.n)
		} else {
			s.dirty[blockKey{p.vol.id, p.lba}] = p.loc
		}
		if p.loc.Seq > p.vol.seq.Load() {
			p.vol.seq.Store(p.loc.Seq)
			w.touched[p.vol.id] = p.vol
		}
	}
	s.mu.Unlock()
	return nil
}

func dropDirty(m map[blockKey]index.Location, vol, lba, n uint64) {
	if n <= uint64(len(m)) {
		for i := uint64(0); i < n; i++ {
			delete(m, blockKey{vol, lba + i})
		}
		return
	}
	for k := range m {
		if k.vol == vol && k.lba >= lba && k.lba-lba < n {
			delete(m, k)
		}
	}
}

func classify(err error) error {
	if errors.Is(err, syscall.ENOSPC) {
		return fmt.Errorf("%w: %w", ErrNoSpace, err)
	}
	return err
}

func (w *writer) fail(err error) {
	if w.failed == nil {
		w.failed = err
		w.s.opts.Logger.Error("blockstore: writer failed; writes refused until reopen", "err", err)
	}
	w.failSnapshots(fmt.Errorf("blockstore: store failed, reopen needed: %w", err))
}

// syncLog makes the active segment durable and moves the overlay into the
// index (invariant 1 in the package doc). Callers that need the index to
// reflect everything written so far (snapshots, revert, flatten, close) use
// it; a Flush only needs syncData.
func (w *writer) syncLog(syncIndex bool) error {
	if w.failed != nil {
		return w.failed
	}
	if err := w.syncData(); err != nil {
		return err
	}
	return w.commitOverlay(syncIndex, false)
}

// checkpoint makes the log durable and moves the overlay into the index,
// so that the index alone says which log bytes are still referenced. A
// Flush leaves the overlay where it is (its log bytes are durable, and
// replay recovers it), so until the next checkpoint the index may still
// name older locations of overwritten blocks; the segment cleaner, which
// counts references in the index, calls this first to see them as dead.
func (s *Store) checkpoint() error {
	return s.run(nil, func(w *writer) error {
		if len(s.dirty) == 0 && len(w.touched) == 0 {
			return nil
		}
		return w.syncLog(false)
	})
}

// syncData makes the active segment durable up to activeOff. It leaves the
// overlay alone: replay recovers it from the log (invariant 3).
func (w *writer) syncData() error {
	if w.failed != nil {
		return w.failed
	}
	if err := w.active.SyncData(); err != nil {
		err = fmt.Errorf("sync segment %d: %w", w.activeID, err)
		w.fail(err)
		return err
	}
	w.synced = w.seq
	w.s.stats.syncs.Add(1)
	if n := w.s.activeSyncs.Add(1); n == prepMinSyncs && w.s.prep != nil {
		w.s.prep.poke() // the next segment may be wanted now
	}
	return nil
}

func (w *writer) commitOverlay(syncIndex, seal bool) error {
	s := w.s
	// Only this goroutine mutates dirty, so it may read it unlocked. Keys
	// go in sorted: pebble's memtable inserts adjacent keys far faster.
	w.keys = w.keys[:0]
	for k := range s.dirty {
		w.keys = append(w.keys, k)
	}
	slices.SortFunc(w.keys, func(a, b blockKey) int {
		if c := cmp.Compare(a.vol, b.vol); c != 0 {
			return c
		}
		return cmp.Compare(a.lba, b.lba)
	})
	for _, k := range w.keys {
		w.ib.Put(k.vol, k.lba, s.dirty[k])
	}
	for id, v := range w.touched {
		if !v.deleted.Load() {
			w.ib.SetMeta(volKey(id), encodeVolumeMeta(v.meta()))
		}
		delete(w.touched, id)
	}
	w.ib.SetMeta([]byte(metaMarker), encodeMarker(marker{Seg: w.activeID, Off: w.activeOff, Seq: w.seq}))
	if seal {
		w.ib.SetMeta(sealKey(w.activeID), encodeSeal(w.activeOff))
	}
	// Every caller synced the log first: pending snapshots are durable
	// now, and their records must be before they are reported taken. The
	// held versions go in with the mappings that supersede them.
	if w.stageSnapshots(w.seq, true) > 0 {
		syncIndex = true
	}
	if err := w.ib.Commit(syncIndex); err != nil {
		w.fail(err)
		return err
	}
	w.finishSnapshots(w.seq, true, nil)
	s.mu.Lock()
	s.cacheCommitted()
	clear(s.dirty)
	s.mu.Unlock()
	return nil
}

// roll seals the active segment (durably) and starts the next one.
func (w *writer) roll() error {
	if w.failed != nil {
		return w.failed
	}
	if w.active != nil {
		if err := w.active.SyncData(); err != nil {
			err = fmt.Errorf("sync segment %d: %w", w.activeID, err)
			w.fail(err)
			return err
		}
		w.synced = w.seq
		if err := w.commitOverlay(true, true); err != nil {
			return err
		}
		// Sealed: nothing more may be appended here, even if the next
		// segment cannot be created.
		w.broken = true
	}
	if pf, ok := w.s.takePrepared(); ok {
		id := w.s.nextSeg.Add(1)
		f, err := w.s.installPrepared(pf, id)
		if err == nil {
			w.setActive(f, id, uint64(pf.size))
			return nil
		}
		w.s.opts.Logger.Warn("blockstore: using a prepared segment failed; creating one", "err", err)
	}
	id := w.s.nextSeg.Add(1)
	path := w.s.segPath(id)
	f, err := w.s.fs.Create(path)
	if err != nil {
		return fmt.Errorf("create segment %d: %w", id, classify(err))
	}
	var hb [record.SegmentHeaderSize]byte
	hdr := record.AppendSegmentHeader(hb[:0], record.SegmentHeader{ID: id})
	if _, err := f.Write(hdr); err != nil {
		_ = f.Close()
		_ = w.s.fs.Remove(path)
		return fmt.Errorf("write segment %d header: %w", id, classify(err))
	}
	if err := w.s.syncDir(w.s.segDir); err != nil {
		_ = f.Close()
		return err
	}
	w.s.stats.logBytes.Add(record.SegmentHeaderSize)
	w.setActive(f, id, record.SegmentHeaderSize)
	if w.s.prep != nil {
		w.s.prep.poke() // none was ready: maybe there is room again
	}
	return nil
}

// setActive makes f (segment id, with alloc bytes counted as allocated) the
// segment appends go to, right after its header.
func (w *writer) setActive(f vfs.File, id, alloc uint64) {
	w.s.addSegment(id, f)
	w.active, w.activeID, w.activeOff, w.activeAlloc = f, id, record.SegmentHeaderSize, alloc
	w.askedOff = w.activeOff
	// The header is the start of the first page the next append rewrites.
	w.buf = record.AppendSegmentHeader(w.buf[:0], record.SegmentHeader{ID: id})
	w.head = len(w.buf)
	w.broken, w.full = false, false
	w.s.activeSeg.Store(id)
	w.s.activeEnd.Store(w.activeOff)
	w.s.activeSyncs.Store(0)
}
