// Package index owns the blockstore's persistent LBA index and small
// metadata records, kept in pebble. It is the only package of VBS that
// imports pebble.
//
// The index maps (volume, LBA) to the Location of that block's newest data
// in the segment log, and holds metadata records under a separate key space.
// It knows nothing about segments or durability rules: the blockstore
// decides what to commit and when (see the blockstore package doc for the
// index/log invariant). Writes are grouped into a Batch that commits
// atomically; a crash keeps a prefix of the committed batches.
package index

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/vfs"
)

// Key-space prefixes. Every key starts with one of them.
const (
	prefixMapping byte = 'm' // 'm' vol(8, BE) lba(8, BE) -> Location
	prefixMeta    byte = 'x' // 'x' name -> opaque value owned by the caller
	// 'p' vol(8, BE) lba(8, BE) seq(8, BE) -> Location + superseded-by
	// seq(8): an older version of a block kept for snapshots.
	prefixPreserved byte = 'p'
	// 't' vol(8, BE) seq(8, BE) lba(8, BE) -> blocks(8): the trim log, so
	// "what changed since seq N" sees trims that left no mapping behind.
	prefixTrim byte = 't'
)

const trimKeySize = 25

const preservedKeySize = 25

const mappingKeySize = 17

// LocationSize is the encoded size of a Location. LocationVersion is the
// version of that encoding; it is the first byte of every value.
const (
	LocationSize    = 1 + 8 + 8 + 4 + 8
	LocationVersion = 1
)

// Location says where the data of one block lives in the segment log.
type Location struct {
	// Seg is the segment file ID and Off the byte offset of the block's
	// data inside it.
	Seg uint64
	Off uint64
	// CRC is the CRC-32C of the block's data; reads verify it.
	CRC uint32
	// Seq is the store sequence number of the write that produced it.
	Seq uint64
}

// ErrCorrupt reports an index value that cannot be decoded.
var ErrCorrupt = errors.New("index: corrupt value")

// Options tune the index.
type Options struct {
	// CacheBytes is the block cache size; MemTableBytes the memtable size.
	CacheBytes    int64
	MemTableBytes uint64
	Logger        *slog.Logger
	// Churn bounds how much deleted or overwritten history reads may have
	// to step over (see Churn); zero fields take the defaults.
	Churn Churn
}

// Churn says when the index flushes its memtable to bound read cost.
//
// pebble keeps every version, point deletion and range deletion in the
// memtable until the memtable is flushed, and a memtable is flushed only
// when full (32 MiB, after a ramp of smaller ones that are not flushed
// until they add up to half of that). A scan has to step over every
// entry in its range, and every new range deletion makes the next
// iterator re-fragment all range deletions in the memtable. A workload
// that writes, flushes and trims the same blocks again and again (a
// filesystem's journal, libiscsi's test suite) would make reads slower
// and slower. A flush writes one entry per key (older versions and keys
// covered by a range deletion of the same memtable are dropped) and
// pebble's compactions then drop the tombstones.
type Churn struct {
	// RangeDeletes is how many range deletions the memtable may collect.
	RangeDeletes int
	// Deletes is how many point deletions it may collect.
	Deletes int
	// ScanSkips is how many entries one scan may step over beyond those it
	// returns before the index flushes (when the memtable holds at least
	// that many changes).
	ScanSkips int
}

// Default churn limits.
const (
	DefaultChurnRangeDeletes = 32
	DefaultChurnDeletes      = 64 << 10
	DefaultChurnScanSkips    = 2048
)

// Stats are cumulative index counters.
type Stats struct {
	// Scans is the number of mapping scans; ScanPoints the entries they
	// stepped over (returned or not), as counted by pebble.
	Scans      uint64
	ScanPoints uint64
	// Flushes is how many memtable flushes churn has started.
	Flushes uint64
}

// Index is the pebble-backed LBA index. Its methods are safe for
// concurrent use.
type Index struct {
	db    *pebble.DB
	keys  sync.Pool // of *[mappingKeySize]byte
	churn Churn
	log   *slog.Logger

	// Changes committed since the last churn flush started.
	rangeDels atomic.Int64
	pointDels atomic.Int64
	changes   atomic.Int64

	scans      atomic.Uint64
	scanPoints atomic.Uint64
	flushes    atomic.Uint64

	// The flusher goroutine (started by Open, stopped by Close) starts
	// churn flushes, so that no reader or commit ever waits on pebble's
	// memtable rotation. busy is set from a request until its flush is
	// done, and idle is closed then.
	flushReq chan struct{}
	quit     chan struct{}
	stopped  chan struct{}
	flushMu  sync.Mutex
	busy     bool
	idle     chan struct{}
}

type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...interface{}) {
	p.l.Debug(fmt.Sprintf(format, args...), "component", "pebble")
}

// Fatalf is how pebble reports an unrecoverable state; pebble must not
// continue after it, so we log and panic.
func (p pebbleLogger) Fatalf(format string, args ...interface{}) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error(msg, "component", "pebble")
	panic("pebble: " + msg)
}

// Open opens (or creates) the index in dir on fs.
func Open(fs vfs.FS, dir string, o Options) (*Index, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.CacheBytes <= 0 {
		o.CacheBytes = 128 << 20
	}
	if o.MemTableBytes == 0 {
		o.MemTableBytes = 32 << 20
	}
	cache := pebble.NewCache(o.CacheBytes)
	defer cache.Unref()
	po := &pebble.Options{
		FS:           fs,
		Cache:        cache,
		MemTableSize: o.MemTableBytes,
		Logger:       pebbleLogger{o.Logger},
	}
	// Index values are small and random (offsets, checksums): compression
	// saves little and costs a decode on every block-cache miss.
	po.Levels = make([]pebble.LevelOptions, 7)
	for i := range po.Levels {
		po.Levels[i].Compression = pebble.NoCompression
	}
	db, err := pebble.Open(dir, po)
	if err != nil {
		return nil, fmt.Errorf("open index %s: %w", dir, err)
	}
	if o.Churn.RangeDeletes <= 0 {
		o.Churn.RangeDeletes = DefaultChurnRangeDeletes
	}
	if o.Churn.Deletes <= 0 {
		o.Churn.Deletes = DefaultChurnDeletes
	}
	if o.Churn.ScanSkips <= 0 {
		o.Churn.ScanSkips = DefaultChurnScanSkips
	}
	x := &Index{
		db: db, churn: o.Churn, log: o.Logger,
		flushReq: make(chan struct{}, 1), quit: make(chan struct{}), stopped: make(chan struct{}),
	}
	x.keys.New = func() any { return new([mappingKeySize]byte) }
	go x.flusher()
	return x, nil
}

// Close closes the index. Unsynced batches may be lost. A churn flush in
// progress is finished first.
func (x *Index) Close() error {
	close(x.quit)
	<-x.stopped
	if err := x.db.Close(); err != nil {
		return fmt.Errorf("close index: %w", err)
	}
	return nil
}

func mappingKey(k *[mappingKeySize]byte, vol, lba uint64) []byte {
	k[0] = prefixMapping
	binary.BigEndian.PutUint64(k[1:], vol)
	binary.BigEndian.PutUint64(k[9:], lba)
	return k[:]
}

func encodeLocation(v *[LocationSize]byte, l Location) []byte {
	v[0] = LocationVersion
	binary.LittleEndian.PutUint64(v[1:], l.Seg)
	binary.LittleEndian.PutUint64(v[9:], l.Off)
	binary.LittleEndian.PutUint32(v[17:], l.CRC)
	binary.LittleEndian.PutUint64(v[21:], l.Seq)
	return v[:]
}

func decodeLocation(v []byte) (Location, error) {
	if len(v) != LocationSize || v[0] != LocationVersion {
		return Location{}, fmt.Errorf("%w: location of %d bytes, version %d", ErrCorrupt, len(v), firstByte(v))
	}
	return Location{
		Seg: binary.LittleEndian.Uint64(v[1:]),
		Off: binary.LittleEndian.Uint64(v[9:]),
		CRC: binary.LittleEndian.Uint32(v[17:]),
		Seq: binary.LittleEndian.Uint64(v[21:]),
	}, nil
}

func firstByte(b []byte) int {
	if len(b) == 0 {
		return -1
	}
	return int(b[0])
}

// Get returns the location of (vol, lba), or ok=false when it is unmapped.
func (x *Index) Get(vol, lba uint64) (loc Location, ok bool, err error) {
	// pebble keeps the key for the life of its internal iterator, so a
	// stack key would escape: take one from a pool instead.
	k := x.keys.Get().(*[mappingKeySize]byte)
	defer x.keys.Put(k)
	v, closer, err := x.db.Get(mappingKey(k, vol, lba))
	if errors.Is(err, pebble.ErrNotFound) {
		return Location{}, false, nil
	}
	if err != nil {
		return Location{}, false, fmt.Errorf("index get vol %d lba %d: %w", vol, lba, err)
	}
	loc, err = decodeLocation(v)
	closer.Close()
	if err != nil {
		return Location{}, false, fmt.Errorf("index get vol %d lba %d: %w", vol, lba, err)
	}
	return loc, true, nil
}

// Stats returns the index's cumulative counters.
func (x *Index) Stats() Stats {
	return Stats{Scans: x.scans.Load(), ScanPoints: x.scanPoints.Load(), Flushes: x.flushes.Load()}
}

// noteCommit accounts for a committed batch and flushes when the memtable
// holds more deletions than reads should step over.
func (x *Index) noteCommit(rangeDels, pointDels, changes int) {
	if rangeDels == 0 && pointDels == 0 && changes == 0 {
		return
	}
	r := x.rangeDels.Add(int64(rangeDels))
	p := x.pointDels.Add(int64(pointDels))
	x.changes.Add(int64(changes))
	if r >= int64(x.churn.RangeDeletes) || p >= int64(x.churn.Deletes) {
		x.flushChurn()
	}
}

// noteScan accounts for a scan that stepped over points entries to return
// n, and flushes when it stepped over too many and the memtable holds
// enough changes to explain it.
func (x *Index) noteScan(points uint64, n int) {
	x.scans.Add(1)
	x.scanPoints.Add(points)
	budget := uint64(x.churn.ScanSkips)
	if points > uint64(n)+budget && x.changes.Load() >= int64(budget) {
		x.flushChurn()
	}
}

// flushChurn asks the flusher for a memtable flush unless one is already
// requested or running. It never waits.
func (x *Index) flushChurn() {
	x.flushMu.Lock()
	defer x.flushMu.Unlock()
	if x.busy {
		return
	}
	x.busy, x.idle = true, make(chan struct{})
	x.rangeDels.Store(0)
	x.pointDels.Store(0)
	x.changes.Store(0)
	x.flushReq <- struct{}{} // never blocks: one request at a time
}

// flusher starts the flushes flushChurn asks for, one at a time, and waits
// for each to finish before it takes the next request.
func (x *Index) flusher() {
	defer close(x.stopped)
	for {
		select {
		case <-x.quit:
			x.flushDone()
			return
		case <-x.flushReq:
		}
		done, err := x.db.AsyncFlush()
		if err != nil {
			// Only read cost depends on the flush; the next commit or scan
			// over a bound asks again.
			x.log.Warn("index: churn flush failed", "err", err)
		} else {
			x.flushes.Add(1)
			select {
			case <-done:
			case <-x.quit: // pebble's Close waits for the flush
				x.flushDone()
				return
			}
		}
		x.flushDone()
	}
}

func (x *Index) flushDone() {
	x.flushMu.Lock()
	defer x.flushMu.Unlock()
	if x.busy {
		x.busy = false
		close(x.idle)
	}
}

// WaitForFlush returns once no churn flush is requested or running (tests
// and benchmarks use it to measure a settled index).
func (x *Index) WaitForFlush() {
	x.flushMu.Lock()
	busy, idle := x.busy, x.idle
	x.flushMu.Unlock()
	if busy {
		<-idle
	}
}

// Mapping is one (lba, Location) pair yielded by Scan.
type Mapping struct {
	LBA uint64
	Loc Location
}

// Scan calls fn for every mapped block of vol in [from, end), in LBA order,
// until fn returns false or an error occurs.
func (x *Index) Scan(vol, from, end uint64, fn func(Mapping) bool) error {
	if from >= end {
		return nil
	}
	var lo, hi [mappingKeySize]byte
	it, err := x.db.NewIter(&pebble.IterOptions{
		LowerBound: mappingKey(&lo, vol, from),
		UpperBound: mappingKey(&hi, vol, end),
	})
	if err != nil {
		return fmt.Errorf("index scan vol %d: %w", vol, err)
	}
	n := 0
	for valid := it.First(); valid; valid = it.Next() {
		k := it.Key()
		loc, err := decodeLocation(it.Value())
		if err != nil {
			it.Close()
			return fmt.Errorf("index scan vol %d: %w", vol, err)
		}
		n++
		if !fn(Mapping{LBA: binary.BigEndian.Uint64(k[9:]), Loc: loc}) {
			break
		}
	}
	x.noteScan(it.Stats().InternalStats.PointCount, n)
	if err := it.Close(); err != nil {
		return fmt.Errorf("index scan vol %d: %w", vol, err)
	}
	return nil
}

func metaKey(name []byte) []byte {
	k := make([]byte, 0, 1+len(name))
	return append(append(k, prefixMeta), name...)
}

// GetMeta returns a copy of the metadata value stored under name, or
// ok=false when there is none.
func (x *Index) GetMeta(name []byte) (val []byte, ok bool, err error) {
	v, closer, err := x.db.Get(metaKey(name))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("index get meta %q: %w", name, err)
	}
	val = bytes.Clone(v)
	closer.Close()
	return val, true, nil
}

// ScanMeta calls fn with every metadata record whose name starts with
// prefix, in name order. fn must not retain its arguments.
func (x *Index) ScanMeta(prefix []byte, fn func(name, val []byte) error) error {
	lo := metaKey(prefix)
	hi := append(bytes.Clone(lo), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	it, err := x.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return fmt.Errorf("index scan meta %q: %w", prefix, err)
	}
	for valid := it.First(); valid; valid = it.Next() {
		if err := fn(it.Key()[1:], it.Value()); err != nil {
			it.Close()
			return err
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("index scan meta %q: %w", prefix, err)
	}
	return nil
}

// Version is a preserved (no longer live) version of a block: it was live
// from Loc.Seq until the write or trim with sequence number Superseded.
type Version struct {
	LBA        uint64
	Loc        Location
	Superseded uint64
}

func preservedKey(k *[preservedKeySize]byte, vol, lba, seq uint64) []byte {
	k[0] = prefixPreserved
	binary.BigEndian.PutUint64(k[1:], vol)
	binary.BigEndian.PutUint64(k[9:], lba)
	binary.BigEndian.PutUint64(k[17:], seq)
	return k[:]
}

// FindVersion returns the newest preserved version of (vol, lba) with
// Loc.Seq <= maxSeq, or ok=false when there is none.
func (x *Index) FindVersion(vol, lba, maxSeq uint64) (v Version, ok bool, err error) {
	var lo, hi [preservedKeySize]byte
	opts := pebble.IterOptions{LowerBound: preservedKey(&lo, vol, lba, 0)}
	if maxSeq == ^uint64(0) {
		opts.UpperBound = preservedKey(&hi, vol, lba+1, 0)
	} else {
		opts.UpperBound = preservedKey(&hi, vol, lba, maxSeq+1)
	}
	it, err := x.db.NewIter(&opts)
	if err != nil {
		return Version{}, false, fmt.Errorf("index find version vol %d lba %d: %w", vol, lba, err)
	}
	if it.Last() {
		v, err = decodeVersion(it.Key(), it.Value())
		ok = err == nil
	}
	if cerr := it.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return Version{}, false, fmt.Errorf("index find version vol %d lba %d: %w", vol, lba, err)
	}
	return v, ok, nil
}

func decodeVersion(k, val []byte) (Version, error) {
	if len(k) != preservedKeySize || len(val) != LocationSize+8 {
		return Version{}, fmt.Errorf("%w: preserved version", ErrCorrupt)
	}
	loc, err := decodeLocation(val[:LocationSize])
	if err != nil {
		return Version{}, err
	}
	return Version{
		LBA:        binary.BigEndian.Uint64(k[9:]),
		Loc:        loc,
		Superseded: binary.LittleEndian.Uint64(val[LocationSize:]),
	}, nil
}

// VersionsOf calls fn for every preserved version of (vol, lba), oldest
// first, until fn returns false.
func (x *Index) VersionsOf(vol, lba uint64, fn func(Version) bool) error {
	var lo, hi [preservedKeySize]byte
	it, err := x.db.NewIter(&pebble.IterOptions{
		LowerBound: preservedKey(&lo, vol, lba, 0),
		UpperBound: preservedKey(&hi, vol, lba+1, 0),
	})
	if err != nil {
		return fmt.Errorf("index versions of vol %d lba %d: %w", vol, lba, err)
	}
	for valid := it.First(); valid; valid = it.Next() {
		v, err := decodeVersion(it.Key(), it.Value())
		if err != nil {
			it.Close()
			return fmt.Errorf("index versions of vol %d lba %d: %w", vol, lba, err)
		}
		if !fn(v) {
			break
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("index versions of vol %d lba %d: %w", vol, lba, err)
	}
	return nil
}

// ScanVersions calls fn for every preserved version of vol, in (LBA, seq)
// order, until fn returns false.
func (x *Index) ScanVersions(vol uint64, fn func(Version) bool) error {
	var lo, hi [preservedKeySize]byte
	it, err := x.db.NewIter(&pebble.IterOptions{
		LowerBound: preservedKey(&lo, vol, 0, 0),
		UpperBound: preservedKey(&hi, vol+1, 0, 0),
	})
	if err != nil {
		return fmt.Errorf("index scan versions vol %d: %w", vol, err)
	}
	for valid := it.First(); valid; valid = it.Next() {
		v, err := decodeVersion(it.Key(), it.Value())
		if err != nil {
			it.Close()
			return fmt.Errorf("index scan versions vol %d: %w", vol, err)
		}
		if !fn(v) {
			break
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("index scan versions vol %d: %w", vol, err)
	}
	return nil
}

func trimKey(k *[trimKeySize]byte, vol, seq, lba uint64) []byte {
	k[0] = prefixTrim
	binary.BigEndian.PutUint64(k[1:], vol)
	binary.BigEndian.PutUint64(k[9:], seq)
	binary.BigEndian.PutUint64(k[17:], lba)
	return k[:]
}

// Trim is one entry of a volume's trim log.
type Trim struct {
	Seq    uint64
	LBA    uint64
	Blocks uint64
}

// ScanTrims calls fn for every trim of vol with Seq > after, oldest first,
// until fn returns false.
func (x *Index) ScanTrims(vol, after uint64, fn func(Trim) bool) error {
	var lo, hi [trimKeySize]byte
	if after == ^uint64(0) {
		return nil
	}
	it, err := x.db.NewIter(&pebble.IterOptions{LowerBound: trimKey(&lo, vol, after+1, 0), UpperBound: trimKey(&hi, vol+1, 0, 0)})
	if err != nil {
		return fmt.Errorf("index scan trims vol %d: %w", vol, err)
	}
	for valid := it.First(); valid; valid = it.Next() {
		k, v := it.Key(), it.Value()
		if len(k) != trimKeySize || len(v) != 8 {
			it.Close()
			return fmt.Errorf("index scan trims vol %d: %w: trim entry", vol, ErrCorrupt)
		}
		t := Trim{Seq: binary.BigEndian.Uint64(k[9:]), LBA: binary.BigEndian.Uint64(k[17:]), Blocks: binary.LittleEndian.Uint64(v)}
		if !fn(t) {
			break
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("index scan trims vol %d: %w", vol, err)
	}
	return nil
}

// Batch collects index changes that commit atomically. A Batch is not safe
// for concurrent use; it may be reused after Commit or Reset.
type Batch struct {
	x *Index
	b *pebble.Batch
	k [mappingKeySize]byte
	e [mappingKeySize]byte
	v [LocationSize]byte

	// Churn this batch adds (see Churn).
	rangeDels, pointDels, changes int
	// puts lists the mappings this batch sets, so that DeleteRange can
	// delete them as well; past maxTrackedPuts it stops listing and
	// DeleteRange falls back to a range deletion.
	puts         []blockRef
	putsOverflow bool
	found        []uint64 // reused by DeleteRange
}

type blockRef struct{ vol, lba uint64 }

// maxTrackedPuts bounds Batch.puts: an overlay commit sets up to 64K
// mappings and never deletes any.
const maxTrackedPuts = 4096

// maxPointDeletes is the most mapped blocks a DeleteRange removes with
// point deletions; a range holding more gets one range deletion. Point
// deletions are history only for their own key; a range deletion costs
// every later iterator a re-fragmentation of all of them in the memtable.
const maxPointDeletes = 512

// NewBatch returns an empty batch.
func (x *Index) NewBatch() *Batch {
	return &Batch{x: x, b: x.db.NewBatch()}
}

// Put maps (vol, lba) to loc.
func (b *Batch) Put(vol, lba uint64, loc Location) {
	// pebble copies key and value into the batch representation.
	_ = b.b.Set(mappingKey(&b.k, vol, lba), encodeLocation(&b.v, loc), nil)
	b.changes++
	if !b.putsOverflow {
		if len(b.puts) < maxTrackedPuts {
			b.puts = append(b.puts, blockRef{vol, lba})
		} else {
			b.putsOverflow = true
		}
	}
}

// DeleteRange unmaps blocks [lba, lba+n) of vol.
//
// For more than one block it deletes only what is there: the mappings the index holds when it is
// called and those this batch set before, so a trim of unmapped blocks
// adds nothing to the index and a trim of a few mapped ones adds a point
// deletion each; only a range holding many mappings gets a range deletion.
// The caller must make sure no other batch sets mappings of vol in the
// range before this one commits (in the blockstore, only the writer
// changes mappings).
func (b *Batch) DeleteRange(vol, lba, n uint64) {
	if n == 0 {
		return
	}
	if n == 1 {
		// Callers that delete single blocks found them mapped; a lookup
		// would cost more than the deletion.
		b.deleteOne(vol, lba)
		return
	}
	end := lba + n
	if end < lba { // overflow: everything to the end of the volume
		end = ^uint64(0)
	}
	if !b.putsOverflow {
		found, ok := b.x.mappedIn(vol, lba, end, maxPointDeletes, b.found[:0])
		b.found = found
		if ok {
			for _, l := range found {
				b.deleteOne(vol, l)
			}
			for _, p := range b.puts {
				if p.vol == vol && p.lba >= lba && p.lba < end {
					b.deleteOne(vol, p.lba)
				}
			}
			return
		}
	}
	_ = b.b.DeleteRange(mappingKey(&b.k, vol, lba), mappingKey(&b.e, vol, end), nil)
	b.rangeDels++
	b.changes++
}

func (b *Batch) deleteOne(vol, lba uint64) {
	_ = b.b.Delete(mappingKey(&b.k, vol, lba), nil)
	b.pointDels++
	b.changes++
}

// mappedIn appends to dst the mapped blocks of vol in [from, end) and
// returns ok=true, or ok=false when there are more than limit of them or
// the scan fails (the caller then deletes the whole range).
func (x *Index) mappedIn(vol, from, end uint64, limit int, dst []uint64) ([]uint64, bool) {
	ok := true
	err := x.Scan(vol, from, end, func(m Mapping) bool {
		if len(dst) == limit {
			ok = false
			return false
		}
		dst = append(dst, m.LBA)
		return true
	})
	return dst, ok && err == nil
}

// DeleteVolume unmaps every block of vol and drops its preserved versions.
func (b *Batch) DeleteVolume(vol uint64) {
	var lo, hi [mappingKeySize]byte
	_ = b.b.DeleteRange(mappingKey(&lo, vol, 0), mappingKey(&hi, vol+1, 0), nil)
	var plo, phi [preservedKeySize]byte
	_ = b.b.DeleteRange(preservedKey(&plo, vol, 0, 0), preservedKey(&phi, vol+1, 0, 0), nil)
	var tlo, thi [trimKeySize]byte
	_ = b.b.DeleteRange(trimKey(&tlo, vol, 0, 0), trimKey(&thi, vol+1, 0, 0), nil)
	b.rangeDels += 3
	b.changes += 3
}

// PutTrim records a trim in vol's trim log.
func (b *Batch) PutTrim(vol uint64, t Trim) {
	var k [trimKeySize]byte
	var v [8]byte
	binary.LittleEndian.PutUint64(v[:], t.Blocks)
	_ = b.b.Set(trimKey(&k, vol, t.Seq, t.LBA), v[:], nil)
}

// PutVersion preserves v (a version of vol's block v.LBA) for snapshots.
func (b *Batch) PutVersion(vol uint64, v Version) {
	var k [preservedKeySize]byte
	var val [LocationSize + 8]byte
	encodeLocation((*[LocationSize]byte)(val[:LocationSize]), v.Loc)
	binary.LittleEndian.PutUint64(val[LocationSize:], v.Superseded)
	_ = b.b.Set(preservedKey(&k, vol, v.LBA, v.Loc.Seq), val[:], nil)
	b.changes++
}

// DeleteVersion drops the preserved version of (vol, lba) written at seq.
func (b *Batch) DeleteVersion(vol, lba, seq uint64) {
	var k [preservedKeySize]byte
	_ = b.b.Delete(preservedKey(&k, vol, lba, seq), nil)
	b.pointDels++
	b.changes++
}

// SetMeta stores val under the metadata name.
func (b *Batch) SetMeta(name, val []byte) { _ = b.b.Set(metaKey(name), val, nil) }

// DeleteMeta removes the metadata record name.
func (b *Batch) DeleteMeta(name []byte) { _ = b.b.Delete(metaKey(name), nil) }

// Empty reports whether the batch holds no changes.
func (b *Batch) Empty() bool { return b.b.Empty() }

// Commit applies the batch atomically; with sync it, and every batch
// committed before it, is durable on return (also when it is empty).
// The batch is reset afterwards, also on error.
func (b *Batch) Commit(sync bool) error {
	opts := pebble.NoSync
	if sync {
		opts = pebble.Sync
		if b.b.Empty() {
			// pebble skips an empty batch, sync or not, and a DeleteRange
			// of unmapped blocks adds nothing: a log-only record makes the
			// commit sync every batch committed before it, as promised.
			_ = b.b.LogData(nil, nil)
		}
	}
	err := b.b.Commit(opts)
	rangeDels, pointDels, changes := b.rangeDels, b.pointDels, b.changes
	b.Reset()
	if err != nil {
		return fmt.Errorf("index commit: %w", err)
	}
	b.x.noteCommit(rangeDels, pointDels, changes)
	return nil
}

// Reset discards the batch's changes.
func (b *Batch) Reset() {
	b.b.Reset()
	b.rangeDels, b.pointDels, b.changes = 0, 0, 0
	b.puts = b.puts[:0]
	b.putsOverflow = false
}

// Close releases the batch.
func (b *Batch) Close() { _ = b.b.Close() }
