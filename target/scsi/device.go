package scsi

import (
	"context"
	"errors"
)

// Device is the backing store of one logical unit. The SCSI layer validates
// every request (range, alignment, transfer limits) before it reaches a
// Device, so implementations may assume:
//
//   - len(p) is a non-zero multiple of BlockSize();
//   - lba+len(p)/BlockSize() <= Blocks() at the time of the call.
//
// Methods may be called concurrently from many goroutines. A Device must
// never retain p after a call returns.
//
// Durability contract (write-back cache semantics): a WriteAt that returned
// nil is visible to every later ReadAt; it is durable once a Flush that
// started after it returned nil, or at once when it was called with fua set.
type Device interface {
	// BlockSize returns the logical block size in bytes (512 or 4096). It
	// never changes while the device is open.
	BlockSize() uint32
	// Blocks returns the number of logical blocks. It may grow while the
	// device is open (online resize); the SCSI layer notices and raises
	// CAPACITY DATA HAS CHANGED.
	Blocks() uint64
	// ReadAt fills p with the blocks starting at lba. Unwritten blocks read
	// as zeros.
	ReadAt(ctx context.Context, p []byte, lba uint64) error
	// WriteAt writes p at lba. With fua set the data is durable before it
	// returns.
	WriteAt(ctx context.Context, p []byte, lba uint64, fua bool) error
	// Flush makes every write that completed before Flush was called durable.
	Flush(ctx context.Context) error
}

// Nonblocking is a Device whose ReadAt and WriteAt never wait: not for I/O,
// not for locks held across I/O, not for other commands (a null or RAM
// device). The transport may then run READ and WRITE commands on the
// goroutine that received them, with no hand-off to a worker. A device that
// can ever block must not implement it, or return false.
type Nonblocking interface {
	Nonblocking() bool
}

// Unmapper is a Device that can deallocate blocks (thin provisioning).
// Deallocated blocks must read as zeros (the SCSI layer reports LBPRZ=1).
type Unmapper interface {
	Unmap(ctx context.Context, lba, blocks uint64) error
}

// ZeroWriter is a Device that can write zeros without a data buffer. With
// unmap set the device may deallocate the range instead of writing zeros.
type ZeroWriter interface {
	WriteZeroes(ctx context.Context, lba, blocks uint64, unmap bool) error
}

// LBAStatusReporter is a Device that knows which blocks are allocated.
// LBAStatus reports the state of the extent that starts at lba: whether it
// is mapped, and how many blocks (at least 1, at most maxBlocks) share that
// state.
type LBAStatusReporter interface {
	LBAStatus(ctx context.Context, lba, maxBlocks uint64) (mapped bool, blocks uint64, err error)
}

// CompareAndWriter is a Device that can compare and write a range
// atomically against every other write to the same blocks. When the
// compare fails it writes nothing and returns a *MiscompareError.
type CompareAndWriter interface {
	CompareAndWrite(ctx context.Context, lba uint64, compare, write []byte, fua bool) error
}

// AtomicWriter is a Device that can write a multi-block range so that a
// reader, or a crash, sees all of it or none of it. The SCSI layer offers
// WRITE ATOMIC(16) only on devices that implement it.
type AtomicWriter interface {
	WriteAtomic(ctx context.Context, p []byte, lba uint64, fua bool) error
	// MaxAtomicBlocks is the largest range WriteAtomic accepts.
	MaxAtomicBlocks() uint32
}

// Copier is a Device that can copy blocks from another Device (or itself)
// without the data crossing the network: the EXTENDED COPY hook. src may be
// the receiver itself. A Device that does not implement Copier gets a
// read-then-write loop from the SCSI layer.
type Copier interface {
	CopyFrom(ctx context.Context, src Device, srcLBA, dstLBA, blocks uint64) error
}

// MetadataStore is a Device that keeps small named blobs durably next to
// its data. The SCSI layer keeps persistent reservations (APTPL) there.
// Get returns (nil, nil) for a key that was never set. Keys are at most 128
// bytes: segments of [A-Za-z0-9._-] separated by single slashes, no segment
// empty or starting with a dot ("scsi/persistent-reservations"). A set is
// atomic and durable when it returns.
type MetadataStore interface {
	GetMetadata(key string) ([]byte, error)
	SetMetadata(key string, value []byte) error
}

// Errors a Device returns so that the SCSI layer can answer with the right
// sense data. Devices wrap them (fmt.Errorf("...: %w", scsi.ErrMedium)) and
// the SCSI layer tests them with errors.Is.
var (
	// ErrMedium means the stored data failed verification (a checksum
	// mismatch) or could not be read: MEDIUM ERROR, never data.
	ErrMedium = errors.New("medium error")
	// ErrNoSpace means the backing pool is full: DATA PROTECT, SPACE
	// ALLOCATION FAILED WRITE PROTECT. Reads keep working.
	ErrNoSpace = errors.New("no space left in pool")
	// ErrWriteProtected means the device refuses writes: DATA PROTECT,
	// WRITE PROTECTED.
	ErrWriteProtected = errors.New("write protected")
	// ErrOutOfRange means the request reaches past the end of the device
	// (it shrank under the request): LBA OUT OF RANGE.
	ErrOutOfRange = errors.New("lba out of range")
)

// MiscompareError reports where COMPARE AND WRITE found the first
// differing byte, as an offset into the compared range.
type MiscompareError struct {
	Offset int
}

func (e *MiscompareError) Error() string {
	return "compare and write: miscompare"
}
