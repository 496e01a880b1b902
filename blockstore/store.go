package blockstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/vfs"
	"github.com/vbs-storage/vbs/blockstore/index"
	"github.com/vbs-storage/vbs/blockstore/record"
)

// Directory and file names inside a store directory.
const (
	lockName     = "LOCK"
	segDirName   = "segments"
	indexDirName = "index"
	segSuffix    = ".seg"
)

// Block sizes a volume may have.
const (
	BlockSize512  = 512
	BlockSize4096 = 4096
)

// blockKey names one block of one volume in the overlay.
type blockKey struct {
	vol uint64
	lba uint64
}

// volState is the in-memory state of one volume, shared by its handles.
type volState struct {
	id        uint64
	name      string
	blockSize uint32
	created   int64
	blocks    atomic.Uint64
	flags     atomic.Uint32
	seq       atomic.Uint64
	deleted   atomic.Bool
	open      int // handles; guarded by Store.catMu
	clones    int // clones reading through this volume; guarded by Store.catMu

	// parent is the volume a linked clone reads through to, as of
	// parentSeq; nil for a plain volume (or once flattened).
	parent    atomic.Pointer[volState]
	parentSeq uint64

	// snaps is the volume's snapshots sorted by Seq (copy on write, only
	// the writer replaces it); lastSnap is the newest one's Seq (0: none).
	// lastSnap is the newest cut, which may still be pending (snapsync.go).
	snaps    atomic.Pointer[[]snapshotMeta]
	lastSnap atomic.Uint64

	// fresh marks blocks written since the snapshot at seq freshFor (a
	// sparse bitmap: word index -> 64 bits), so the writer can skip looking
	// up the version it would otherwise have to preserve. Owned by the
	// writer; reset when the snapshot a write is checked against changes
	// (a cut, or replay crossing one); bounded by maxFreshWords.
	fresh    map[uint64]uint64
	freshFor uint64
}

// snapBefore returns the seq of the newest snapshot older than a write at
// seq (0: none): the one whose versions that write must preserve. At run
// time that is the newest cut; replay also applies writes made before it.
func (v *volState) snapBefore(seq uint64) uint64 {
	if q := v.lastSnap.Load(); q < seq {
		return q
	}
	snaps := v.snapshots()
	i, _ := slices.BinarySearchFunc(snaps, seq, func(m snapshotMeta, seq uint64) int { return cmp.Compare(m.Seq, seq) })
	if i == 0 {
		return 0
	}
	return snaps[i-1].Seq
}

const maxFreshWords = 1 << 18 // 16M blocks tracked per volume

func (v *volState) isFresh(lba uint64) bool {
	return v.fresh[lba/64]&(1<<(lba%64)) != 0
}

// markFresh marks lba; it reports false when the bitmap is full.
func (v *volState) markFresh(lba uint64) bool {
	if v.fresh == nil {
		v.fresh = make(map[uint64]uint64)
	}
	w, ok := v.fresh[lba/64]
	if !ok && len(v.fresh) >= maxFreshWords {
		return false
	}
	v.fresh[lba/64] = w | 1<<(lba%64)
	return true
}

func (v *volState) meta() volumeMeta {
	m := volumeMeta{
		ID: v.id, Name: v.name, BlockSize: v.blockSize, Blocks: v.blocks.Load(),
		Flags: v.flags.Load(), Seq: v.seq.Load(), Created: v.created,
	}
	if p := v.parent.Load(); p != nil {
		m.ParentID, m.ParentSeq = p.id, v.parentSeq
	}
	return m
}

func (v *volState) snapshots() []snapshotMeta {
	if p := v.snaps.Load(); p != nil {
		return *p
	}
	return nil
}

func (v *volState) setSnapshots(snaps []snapshotMeta) {
	v.snaps.Store(&snaps)
	if len(snaps) == 0 {
		v.lastSnap.Store(0)
	} else {
		v.lastSnap.Store(snaps[len(snaps)-1].Seq)
	}
}

// Store is one node's log-structured block store. Its methods are safe for
// concurrent use.
type Store struct {
	opts   Options
	fs     vfs.FS
	dir    string
	segDir string
	lock   io.Closer
	idx    *index.Index

	// disk lowers the log's limit to keep Options.DiskReserveBytes of the
	// filesystem free (diskguard.go).
	disk diskGuard

	// mu guards dirty, the overlay of mappings whose log bytes may not be
	// durable yet (see the package doc). Only the writer mutates it.
	mu    sync.RWMutex
	dirty map[blockKey]index.Location
	// cache holds live mappings already in pebble, so hot reads skip the
	// pebble lookup. It is a subset of pebble's live entries: every change
	// to one of them outside the overlay path drops or updates it. Guarded
	// by mu; only the writer mutates it; bounded by Options.CacheEntries.
	cache map[blockKey]index.Location
	// held holds preserved versions not in the index yet (snapsync.go).
	// Guarded by mu; only the writer mutates it.
	held heldSet

	// The log syncer (snapsync.go): syncKick wakes it, syncSeq is the seq
	// up to which it must make the log durable, syncMu is held while it
	// syncs (so the cleaner does not close the file under it).
	syncKick chan struct{}
	syncSeq  atomic.Uint64
	syncMu   sync.Mutex
	syncQuit chan struct{}
	syncDone chan struct{}

	// segMu guards segs and views, the segments readers can reach and
	// their read-only mappings (segview.go).
	segMu sync.RWMutex
	segs  map[uint64]vfs.File
	views map[uint64][]byte
	// gcMu is held shared from a read's lookup until its data is read, and
	// exclusively while the cleaner removes a segment, so a read never
	// resolves to a segment that disappears under it.
	gcMu sync.RWMutex
	// activeSeg and activeEnd publish the writer's position for scrub and
	// the cleaner (which never touch the active segment past it).
	activeSeg atomic.Uint64
	activeEnd atomic.Uint64
	// activeSyncs counts the writer's fdatasyncs of the active segment
	// (the preparer only prepares for a log that syncs).
	activeSyncs atomic.Uint64
	// nextSeg is the highest segment ID handed out (writer and cleaner).
	nextSeg atomic.Uint64

	// gcRun serialises cleaning passes and guards gcHead; gcHeadID and
	// gcHeadEnd publish the head's synced end for scrub.
	gcRun     sync.Mutex
	gcHead    gcHead
	gcHeadID  atomic.Uint64
	gcHeadEnd atomic.Uint64

	catMu   sync.Mutex
	vols    map[uint64]*volState
	names   map[string]*volState
	nextVol uint64

	// submitMu orders request submission against Close: submitters hold it
	// shared while they enqueue.
	submitMu sync.RWMutex
	closed   bool

	w     *writer
	stats counters
	// prep keeps a pre-formatted segment ready (nil: none, see prep.go).
	// Set before the writer starts and cleared after it stopped.
	prep *preparer

	bgCancel context.CancelFunc
	bgDone   chan struct{}

	// reclaimable is what the last cleaning pass saw as dead space in
	// sealed segments. cleaned is closed (and replaced) after every
	// background pass, waking writers that wait for space.
	reclaimable atomic.Int64
	cleanedMu   sync.Mutex
	cleaned     chan struct{}
}

type counters struct {
	logBytes    atomic.Int64
	gcBytes     atomic.Uint64
	gcSegments  atomic.Uint64
	corruptions atomic.Uint64
	writes      atomic.Uint64
	batches     atomic.Uint64
	syncs       atomic.Uint64
	bytesIn     atomic.Uint64
	padBytes    atomic.Uint64 // padding records appended before syncs
	prepBytes   atomic.Uint64 // zeros written by the segment preparer
	prepUsed    atomic.Uint64 // segments that were pre-formatted
}

// Open opens the store in dir, creating it if needed, and replays the log
// tail past the index's marker (see the package doc). On the operating
// system's filesystem it keeps the next segment pre-formatted (prep.go).
func Open(dir string, opts Options) (*Store, error) {
	o := opts.withDefaults()
	return open(dir, o, o.FS == vfs.Default)
}

// open is Open with the choice of pre-formatting segments made: tests turn
// it on for in-memory filesystems, where it is off by default because
// every prepared segment would take SegmentSize bytes of memory.
func open(dir string, o Options, prepare bool) (_ *Store, err error) {
	s := &Store{
		opts:    o,
		fs:      o.FS,
		dir:     dir,
		segDir:  o.FS.PathJoin(dir, segDirName),
		dirty:   make(map[blockKey]index.Location),
		cache:   make(map[blockKey]index.Location),
		held:    newHeldSet(),
		segs:    make(map[uint64]vfs.File),
		views:   make(map[uint64][]byte),
		cleaned: make(chan struct{}),
		vols:    make(map[uint64]*volState),
		names:   make(map[string]*volState),
	}
	for _, d := range []string{dir, s.segDir, o.FS.PathJoin(dir, indexDirName)} {
		if err := s.fs.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("open store: create %s: %w", d, err)
		}
	}
	if err := s.syncDir(s.fs.PathDir(dir)); err != nil {
		return nil, err
	}
	if err := s.syncDir(dir); err != nil {
		return nil, err
	}
	s.disk.limit.Store(math.MaxInt64) // until initDiskGuard
	s.lock, err = s.fs.Lock(s.fs.PathJoin(dir, lockName))
	if err != nil {
		return nil, fmt.Errorf("open store: lock %s: %w", dir, err)
	}
	defer func() {
		if err != nil {
			s.closeFiles()
		}
	}()
	s.idx, err = index.Open(s.fs, s.fs.PathJoin(dir, indexDirName), index.Options{
		CacheBytes: o.IndexCacheBytes,
		Logger:     o.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if err := s.loadCatalog(); err != nil {
		return nil, err
	}
	s.w = newWriter(s)
	if err := s.recover(); err != nil {
		s.w.ib.Close()
		return nil, err
	}
	if err := s.initDiskGuard(); err != nil {
		s.w.ib.Close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	if err := s.w.roll(); err != nil {
		s.w.ib.Close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	if prepare {
		s.startPreparer()
	}
	go s.w.run()
	s.syncKick, s.syncQuit, s.syncDone = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
	go s.runLogSyncer()
	if o.GCInterval > 0 {
		ctx, cancel := context.WithCancel(context.Background())
		s.bgCancel, s.bgDone = cancel, make(chan struct{})
		go s.runBackgroundGC(ctx, s.bgDone)
	}
	return s, nil
}

// Close stops the writer after it has finished every queued request, makes
// everything written durable, and closes the files. Open volume handles
// fail with ErrClosed afterwards.
func (s *Store) Close() error {
	if s.bgCancel != nil {
		s.bgCancel()
		<-s.bgDone
		s.bgCancel = nil
	}
	s.submitMu.Lock()
	if s.closed {
		s.submitMu.Unlock()
		return ErrClosed
	}
	s.closed = true
	s.submitMu.Unlock()
	close(s.w.quit)
	<-s.w.stopped
	close(s.syncQuit)
	<-s.syncDone
	s.stopPreparer()
	err := s.w.failed
	// A CollectGarbage call still running adds and removes segments (and
	// their mappings): wait for it; its requests to the stopped writer fail
	// at once, and later calls fail on the closed index.
	s.gcRun.Lock()
	defer s.gcRun.Unlock()
	if cerr := s.closeFiles(); err == nil {
		err = cerr
	}
	if err != nil && !errors.Is(err, ErrClosed) {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

func (s *Store) closeFiles() error {
	var first error
	s.segMu.RLock()
	ids := make([]uint64, 0, len(s.segs))
	for id := range s.segs {
		ids = append(ids, id)
	}
	s.segMu.RUnlock()
	for _, id := range ids {
		f := s.dropSegment(id)
		if f == nil {
			continue
		}
		if err := f.Close(); err != nil && first == nil {
			first = fmt.Errorf("close segment %d: %w", id, err)
		}
	}
	if s.idx != nil {
		if err := s.idx.Close(); err != nil && first == nil {
			first = err
		}
		s.idx = nil
	}
	if s.lock != nil {
		if err := s.lock.Close(); err != nil && first == nil {
			first = fmt.Errorf("unlock: %w", err)
		}
		s.lock = nil
	}
	return first
}

func (s *Store) syncDir(d string) error {
	f, err := s.fs.OpenDir(d)
	if err != nil {
		return fmt.Errorf("open dir %s: %w", d, err)
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync dir %s: %w", d, err)
	}
	return nil
}

func (s *Store) segPath(id uint64) string {
	return s.fs.PathJoin(s.segDir, fmt.Sprintf("%016x%s", id, segSuffix))
}

func (s *Store) segFile(id uint64) vfs.File {
	s.segMu.RLock()
	f := s.segs[id]
	s.segMu.RUnlock()
	return f
}

func (s *Store) loadCatalog() error {
	b, ok, err := s.idx.GetMeta([]byte(metaStore))
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	if ok {
		m, err := decodeStoreMeta(b)
		if err != nil {
			return fmt.Errorf("open store: %w", err)
		}
		s.nextVol = m.NextVolume
	} else {
		s.nextVol = 1
		ib := s.idx.NewBatch()
		defer ib.Close()
		ib.SetMeta([]byte(metaStore), encodeStoreMeta(storeMeta{NextVolume: s.nextVol}))
		if err := ib.Commit(true); err != nil {
			return fmt.Errorf("open store: initialise: %w", err)
		}
	}
	parents := make(map[*volState]volumeMeta)
	err = s.idx.ScanMeta([]byte(metaVolPfx), func(_, val []byte) error {
		m, err := decodeVolumeMeta(val)
		if err != nil {
			return fmt.Errorf("open store: %w", err)
		}
		v := &volState{id: m.ID, name: m.Name, blockSize: m.BlockSize, created: m.Created, parentSeq: m.ParentSeq}
		v.blocks.Store(m.Blocks)
		v.flags.Store(m.Flags)
		v.seq.Store(m.Seq)
		s.vols[m.ID] = v
		s.names[m.Name] = v
		if m.ParentID != 0 {
			parents[v] = m
		}
		return nil
	})
	if err != nil {
		return err
	}
	for v, m := range parents {
		p := s.vols[m.ParentID]
		if p == nil {
			return fmt.Errorf("open store: clone %q: parent volume %d: %w", v.name, m.ParentID, ErrCorrupt)
		}
		v.parent.Store(p)
		p.clones++
	}
	snaps := make(map[uint64][]snapshotMeta)
	err = s.idx.ScanMeta([]byte(metaSnapPfx), func(name, val []byte) error {
		m, err := decodeSnapshotMeta(val)
		if err != nil || len(name) != len(metaSnapPfx)+16 {
			return fmt.Errorf("open store: %w: snapshot record", ErrCorrupt)
		}
		id := beUint64(name[len(metaSnapPfx):])
		snaps[id] = append(snaps[id], m) // keys sort by seq
		return nil
	})
	if err != nil {
		return err
	}
	for id, list := range snaps {
		if v := s.vols[id]; v != nil {
			v.setSnapshots(list)
		}
	}
	return nil
}

// recover replays the log past the marker through the writer's own apply
// path (so snapshots' versions are preserved exactly as at run time) and
// leaves the writer positioned at the end of the valid log; Open then
// rolls, which syncs and seals the last segment and records the marker
// durably before any new write.
func (s *Store) recover() error {
	w := s.w
	var m marker
	if b, ok, err := s.idx.GetMeta([]byte(metaMarker)); err != nil {
		return fmt.Errorf("open store: %w", err)
	} else if ok {
		if m, err = decodeMarker(b); err != nil {
			return fmt.Errorf("open store: %w", err)
		}
	}
	w.seq = m.Seq
	// A snapshot takes a sequence number without a log record, and the
	// marker need not have moved past it.
	for _, v := range s.vols {
		w.seq = max(w.seq, v.lastSnap.Load())
	}
	seals := make(map[uint64]uint64)
	err := s.idx.ScanMeta([]byte(metaSealPfx), func(name, val []byte) error {
		n, err := decodeSeal(val)
		if err != nil {
			return err
		}
		if len(name) != len(metaSealPfx)+8 {
			return fmt.Errorf("%w: seal key", ErrCorrupt)
		}
		seals[beUint64(name[len(metaSealPfx):])] = n
		return nil
	})
	if err != nil {
		return fmt.Errorf("open store: load seals: %w", err)
	}
	names, err := s.fs.List(s.segDir)
	if err != nil {
		return fmt.Errorf("open store: list segments: %w", err)
	}
	if err := s.removeStalePrep(names); err != nil {
		return err
	}
	var ids []uint64
	for _, n := range names {
		hex, ok := strings.CutSuffix(n, segSuffix)
		if !ok {
			continue
		}
		id, err := strconv.ParseUint(hex, 16, 64)
		if err != nil || len(hex) != 16 {
			continue
		}
		ids = append(ids, id)
	}
	slices.SortFunc(ids, cmp.Compare)

	rp := &replayer{s: s, w: w}
	for _, id := range ids {
		f, err := s.fs.Open(s.segPath(id))
		if err != nil {
			return fmt.Errorf("open store: open segment %d: %w", id, err)
		}
		s.addSegment(id, f)
		st, err := f.Stat()
		if err != nil {
			return fmt.Errorf("open store: stat segment %d: %w", id, err)
		}
		size := uint64(st.Size())
		s.stats.logBytes.Add(int64(size))
		w.active, w.activeID, w.activeOff, w.activeAlloc = f, id, size, size
		s.nextSeg.Store(id)
		if id < m.Seg {
			continue
		}
		limit := size
		sealed, isSealed := seals[id]
		if isSealed {
			limit = min(limit, sealed)
		}
		start := uint64(record.SegmentHeaderSize)
		if id == m.Seg && m.Off > start {
			start = m.Off
		}
		// What replay reads may only be in the page cache (after a kill
		// -9); the versions it preserves for trims go to the index at
		// once, so the log they name must be durable first.
		if err := f.SyncData(); err != nil {
			return fmt.Errorf("open store: sync segment %d: %w", id, err)
		}
		end, err := rp.scan(f, id, start, limit)
		if err != nil {
			return fmt.Errorf("open store: replay segment %d: %w", id, err)
		}
		if end < limit && (isSealed || id != ids[len(ids)-1]) {
			s.opts.Logger.Warn("blockstore: log ends early in a sealed segment", "segment", id, "valid", end, "limit", limit)
		}
		w.activeOff = end
	}
	if rp.records > 0 {
		s.opts.Logger.Info("blockstore: replayed log tail", "records", rp.records, "seq", w.seq)
	}
	return nil
}

func beUint64(b []byte) uint64 {
	_ = b[7]
	return uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
		uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
}

// replayer feeds log records to the writer's apply path in log order.
type replayer struct {
	s       *Store
	w       *writer
	records int
	buf     []byte
}

// scan applies the valid records of segment id in [start, limit) and
// returns the offset where the valid log ends.
func (rp *replayer) scan(f vfs.File, id, start, limit uint64) (uint64, error) {
	var hb [record.SegmentHeaderSize]byte
	if _, err := f.ReadAt(hb[:], 0); err != nil {
		return 0, nil // a segment whose header never became durable holds nothing
	}
	if h, err := record.DecodeSegmentHeader(hb[:]); err != nil || h.ID != id {
		return 0, nil
	}
	off := start
	var hdr [record.HeaderSize]byte
	for off+record.HeaderSize <= limit {
		if _, err := f.ReadAt(hdr[:], int64(off)); err != nil {
			break
		}
		h, err := record.DecodeHeader(hdr[:])
		if err != nil {
			break
		}
		end := off + record.HeaderSize + uint64(h.DataLen)
		if end > limit {
			break
		}
		if cap(rp.buf) < int(h.DataLen) {
			rp.buf = make([]byte, h.DataLen)
		}
		data := rp.buf[:h.DataLen]
		if len(data) > 0 {
			if _, err := f.ReadAt(data, int64(off+record.HeaderSize)); err != nil {
				break
			}
		}
		if record.Verify(hdr[:], data) != nil {
			break
		}
		if h.IsPad() {
			off = end
			continue
		}
		if err := rp.apply(h, id, off+record.HeaderSize, data); err != nil {
			return off, err
		}
		off = end
		if len(rp.s.dirty) >= rp.s.opts.MaxDirty {
			// Bound the overlay: make what was replayed durable (it may
			// only be in the page cache after a kill -9) and move it into
			// the index with the marker at this point.
			if err := f.SyncData(); err != nil {
				return off, fmt.Errorf("sync segment %d: %w", id, err)
			}
			rp.w.activeID, rp.w.activeOff = id, off
			if err := rp.w.commitOverlay(false, false); err != nil {
				return off, err
			}
		}
	}
	return off, nil
}

func (rp *replayer) apply(h record.Header, seg, dataOff uint64, data []byte) error {
	rp.records++
	w := rp.w
	w.seq = max(w.seq, h.Seq)
	w.synced = w.seq // recover synced the segment before replaying it
	if h.Type == record.TypeRelocate {
		return nil // see record.TypeRelocate
	}
	v := rp.s.vols[h.Volume]
	if v == nil {
		return nil // the volume was deleted after this record
	}
	w.pend = w.pend[:0]
	switch h.Type {
	case record.TypeWrite:
		bs := uint64(h.DataLen / h.Blocks)
		for i := uint64(0); i < uint64(h.Blocks); i++ {
			blk := data[i*bs : (i+1)*bs]
			w.pend = append(w.pend, pendUpdate{vol: v, lba: h.LBA + i, loc: index.Location{
				Seg: seg, Off: dataOff + i*bs, CRC: record.Checksum(blk), Seq: h.Seq,
			}})
		}
	case record.TypeTrim:
		w.pend = append(w.pend, pendUpdate{vol: v, lba: h.LBA, n: uint64(h.Blocks), trim: true, loc: index.Location{Seq: h.Seq}})
	}
	err := w.applyPend()
	w.pend = w.pend[:0]
	return err
}
