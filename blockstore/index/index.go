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
}

// Index is the pebble-backed LBA index. Its methods are safe for
// concurrent use.
type Index struct {
	db   *pebble.DB
	keys sync.Pool // of *[mappingKeySize]byte
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
	x := &Index{db: db}
	x.keys.New = func() any { return new([mappingKeySize]byte) }
	return x, nil
}

// Close closes the index. Unsynced batches may be lost.
func (x *Index) Close() error {
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
	for valid := it.First(); valid; valid = it.Next() {
		k := it.Key()
		loc, err := decodeLocation(it.Value())
		if err != nil {
			it.Close()
			return fmt.Errorf("index scan vol %d: %w", vol, err)
		}
		if !fn(Mapping{LBA: binary.BigEndian.Uint64(k[9:]), Loc: loc}) {
			break
		}
	}
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
}

// NewBatch returns an empty batch.
func (x *Index) NewBatch() *Batch {
	return &Batch{x: x, b: x.db.NewBatch()}
}

// Put maps (vol, lba) to loc.
func (b *Batch) Put(vol, lba uint64, loc Location) {
	// pebble copies key and value into the batch representation.
	_ = b.b.Set(mappingKey(&b.k, vol, lba), encodeLocation(&b.v, loc), nil)
}

// DeleteRange unmaps blocks [lba, lba+n) of vol.
func (b *Batch) DeleteRange(vol, lba, n uint64) {
	if n == 0 {
		return
	}
	if n == 1 {
		_ = b.b.Delete(mappingKey(&b.k, vol, lba), nil)
		return
	}
	end := lba + n
	if end < lba { // overflow: everything to the end of the volume
		end = ^uint64(0)
	}
	_ = b.b.DeleteRange(mappingKey(&b.k, vol, lba), mappingKey(&b.e, vol, end), nil)
}

// DeleteVolume unmaps every block of vol and drops its preserved versions.
func (b *Batch) DeleteVolume(vol uint64) {
	var lo, hi [mappingKeySize]byte
	_ = b.b.DeleteRange(mappingKey(&lo, vol, 0), mappingKey(&hi, vol+1, 0), nil)
	var plo, phi [preservedKeySize]byte
	_ = b.b.DeleteRange(preservedKey(&plo, vol, 0, 0), preservedKey(&phi, vol+1, 0, 0), nil)
	var tlo, thi [trimKeySize]byte
	_ = b.b.DeleteRange(trimKey(&tlo, vol, 0, 0), trimKey(&thi, vol+1, 0, 0), nil)
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
}

// DeleteVersion drops the preserved version of (vol, lba) written at seq.
func (b *Batch) DeleteVersion(vol, lba, seq uint64) {
	var k [preservedKeySize]byte
	_ = b.b.Delete(preservedKey(&k, vol, lba, seq), nil)
}

// SetMeta stores val under the metadata name.
func (b *Batch) SetMeta(name, val []byte) { _ = b.b.Set(metaKey(name), val, nil) }

// DeleteMeta removes the metadata record name.
func (b *Batch) DeleteMeta(name []byte) { _ = b.b.Delete(metaKey(name), nil) }

// Empty reports whether the batch holds no changes.
func (b *Batch) Empty() bool { return b.b.Empty() }

// Commit applies the batch atomically; with sync it is durable on return.
// The batch is reset afterwards, also on error.
func (b *Batch) Commit(sync bool) error {
	opts := pebble.NoSync
	if sync {
		opts = pebble.Sync
	}
	err := b.b.Commit(opts)
	b.b.Reset()
	if err != nil {
		return fmt.Errorf("index commit: %w", err)
	}
	return nil
}

// Reset discards the batch's changes.
func (b *Batch) Reset() { b.b.Reset() }

// Close releases the batch.
func (b *Batch) Close() { _ = b.b.Close() }
