package blockstore

import (
	"errors"
	"fmt"
)

// Errors callers tell apart with errors.Is.
var (
	// ErrCorrupt: stored data failed checksum verification.
	ErrCorrupt = errors.New("blockstore: data corruption")
	// ErrNoSpace: the pool is full. Reads keep working.
	ErrNoSpace = errors.New("blockstore: no space left in pool")
	// ErrOutOfRange: the request reaches past the end of the volume.
	ErrOutOfRange = errors.New("blockstore: lba out of range")
	// ErrVolumeExists: a volume with that name already exists.
	ErrVolumeExists = errors.New("blockstore: volume exists")
	// ErrVolumeNotFound: no such volume (or it was deleted).
	ErrVolumeNotFound = errors.New("blockstore: volume not found")
	// ErrVolumeBusy: the volume has open handles.
	ErrVolumeBusy = errors.New("blockstore: volume in use")
	// ErrShrink: a shrink would drop mapped data.
	ErrShrink = errors.New("blockstore: shrink would discard data")
	// ErrInvalid: a malformed request (bad block size, misaligned buffer).
	ErrInvalid = errors.New("blockstore: invalid argument")
	// ErrClosed: the store or volume handle is closed.
	ErrClosed = errors.New("blockstore: closed")
	// ErrOvercommit: creating or growing the volume would exceed the
	// pool's over-commit limit.
	ErrOvercommit = errors.New("blockstore: over-commit limit reached")
	// ErrMiscompare: CompareAndWrite found different data (see
	// *MiscompareError for where).
	ErrMiscompare = errors.New("blockstore: miscompare")
)

// CorruptionError says which block failed verification.
type CorruptionError struct {
	Volume string
	LBA    uint64
	Seg    uint64
	Off    uint64
}

func (e *CorruptionError) Error() string {
	return fmt.Sprintf("blockstore: checksum mismatch: volume %q lba %d (segment %d offset %d)", e.Volume, e.LBA, e.Seg, e.Off)
}

// Unwrap makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptionError) Unwrap() error { return ErrCorrupt }

// MiscompareError reports the offset of the first differing byte of a
// failed CompareAndWrite.
type MiscompareError struct {
	Offset int
}

func (e *MiscompareError) Error() string {
	return fmt.Sprintf("blockstore: miscompare at byte %d", e.Offset)
}

// Unwrap makes errors.Is(err, ErrMiscompare) true.
func (e *MiscompareError) Unwrap() error { return ErrMiscompare }
