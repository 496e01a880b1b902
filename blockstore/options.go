package blockstore

import (
	"log/slog"
	"time"

	"github.com/cockroachdb/pebble/vfs"
	"github.com/vbs-storage/vbs/blockstore/record"
)

// Clock is the store's only source of time.
type Clock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Defaults for Options fields left zero.
const (
	DefaultSegmentSize   = 256 << 20
	DefaultMaxBatchBytes = 8 << 20
	DefaultMaxDirty      = 1 << 16
	DefaultRecordBytes   = 256 << 10
	defaultQueueDepth    = 1024
	DefaultCacheEntries  = 1 << 21
)

// Options configure a Store. The zero value is usable: every field has a
// default filled in by withDefaults.
type Options struct {
	// FS is the filesystem seam for both the log and the index
	// (vfs.Default when nil).
	FS vfs.FS
	// Clock is read for timestamps (the system clock when nil).
	Clock Clock
	// Logger receives operational messages (discarded when nil).
	Logger *slog.Logger
	// SegmentSize is the size at which the writer starts a new segment.
	SegmentSize int64
	// MaxBatchBytes bounds the data the writer gathers into one append.
	MaxBatchBytes int
	// MaxDirty is how many blocks may wait in the in-memory overlay before
	// the writer syncs the log and moves them into the index.
	MaxDirty int
	// MaxRecordBytes bounds the data of one record (not of atomic writes,
	// which always take one record).
	MaxRecordBytes int
	// CapacityBytes, when non-zero, is the most log space the store may
	// use; writes beyond it fail with ErrNoSpace.
	CapacityBytes int64
	// DiskReserveBytes, when non-zero, is free space the store keeps on
	// the filesystem it lives on, whatever else fills that filesystem:
	// writes that would need log space past it fail with ErrNoSpace, so
	// the index always has room to write (a full filesystem is fatal to
	// it). The filesystem must report its free space (vfs.FS
	// GetDiskUsage); see diskguard.go, and DiskReserveBytes for a size.
	DiskReserveBytes int64
	// OvercommitRatio bounds the sum of volume sizes to this multiple of
	// CapacityBytes (0 means no limit).
	OvercommitRatio float64
	// IndexCacheBytes sizes the index block cache.
	IndexCacheBytes int64
	// CacheEntries bounds the in-memory cache of live mappings that lets
	// hot reads skip the index (about 60 bytes each; the default, 2M
	// entries, covers 8 GiB of 4 KiB blocks in about 120 MiB).
	CacheEntries int
	// GCInterval, when non-zero, runs the segment cleaner in the
	// background: it looks that often, and at once when a write finds the
	// pool full. With CapacityBytes set it cleans whenever less than
	// GCFreeBytes of the capacity is free, the emptiest segments first,
	// until that much is free again: its pace follows how fast writes
	// consume space, and it adds no write amplification while the pool
	// has room. Without a capacity it cleans up to GCMaxSegments segments
	// whose utilisation is at most GCMaxUtilization each time, examining
	// at most GCRateBytes per second (0: unthrottled).
	GCInterval       time.Duration
	GCMaxSegments    int
	GCMaxUtilization float64
	GCRateBytes      int64
	// GCFreeBytes is the free space the background cleaner keeps in a
	// pool with a capacity, so writes do not wait for it: default two
	// segments, at most an eighth of the capacity. More costs write
	// amplification (the same live data in less space), less risks
	// writes waiting while a segment is cleaned.
	GCFreeBytes int64
	// NoSegmentViews reads segments with pread only. By default the store
	// maps every segment file it can (read-only, shared) and copies reads
	// out of the mapping: no system call per read (segview.go).
	NoSegmentViews bool
}

// DefaultGCInterval and DefaultGCRateBytes are what the vbs binaries run
// the background cleaner with (Options.GCInterval, Options.GCRateBytes):
// a look every second and, in a pool without a capacity, at most 256 MiB of
// victims examined per second. The library leaves cleaning off unless
// asked, so tests and tools that open a store see no background work.
const (
	DefaultGCInterval  = time.Second
	DefaultGCRateBytes = 256 << 20
)

func (o Options) withDefaults() Options {
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.Clock == nil {
		o.Clock = systemClock{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.SegmentSize <= 0 {
		o.SegmentSize = DefaultSegmentSize
	}
	if o.MaxBatchBytes <= 0 {
		o.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if o.MaxDirty <= 0 {
		o.MaxDirty = DefaultMaxDirty
	}
	if o.CacheEntries <= 0 {
		o.CacheEntries = DefaultCacheEntries
	}
	if o.GCMaxSegments <= 0 {
		o.GCMaxSegments = 4
	}
	if o.GCMaxUtilization <= 0 {
		o.GCMaxUtilization = 0.75
	}
	if o.GCFreeBytes <= 0 {
		o.GCFreeBytes = 2 * o.SegmentSize
		if o.CapacityBytes > 0 {
			o.GCFreeBytes = min(o.GCFreeBytes, o.CapacityBytes/8)
		}
	}
	if o.MaxRecordBytes <= 0 {
		o.MaxRecordBytes = DefaultRecordBytes
	}
	// Replay refuses records larger than the format allows.
	o.MaxRecordBytes = min(o.MaxRecordBytes, record.MaxDataLen)
	return o
}
