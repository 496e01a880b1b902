package device

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/vbs-storage/vbs/target/scsi"
)

// Null is a device that reads zeros and discards writes. It is for
// measuring the protocol path: nothing it does costs more than clearing the
// read buffer. Every block is unmapped, so zeros are also what thin
// provisioning promises.
type Null struct {
	bs     uint32
	blocks atomic.Uint64
}

// Interfaces Null satisfies.
var (
	_ scsi.Device            = (*Null)(nil)
	_ scsi.Nonblocking       = (*Null)(nil)
	_ scsi.Unmapper          = (*Null)(nil)
	_ scsi.ZeroWriter        = (*Null)(nil)
	_ scsi.LBAStatusReporter = (*Null)(nil)
	_ scsi.CompareAndWriter  = (*Null)(nil)
)

// NewNull returns a Null device of blocks blocks of blockSize bytes
// (512 or 4096).
func NewNull(blockSize uint32, blocks uint64) (*Null, error) {
	if err := checkGeometry(blockSize, blocks); err != nil {
		return nil, fmt.Errorf("new null device: %w", err)
	}
	d := &Null{bs: blockSize}
	d.blocks.Store(blocks)
	return d, nil
}

// checkGeometry validates a block size and a (non-zero) block count.
func checkGeometry(blockSize uint32, blocks uint64) error {
	if !validBlockSize(blockSize) {
		return fmt.Errorf("block size %d: want %d or %d", blockSize, BlockSize512, BlockSize4096)
	}
	if blocks == 0 {
		return fmt.Errorf("size must be at least one block")
	}
	if blocks > maxBytes/uint64(blockSize) {
		return fmt.Errorf("%d blocks of %d bytes: larger than %s", blocks, blockSize, FormatSize(maxBytes))
	}
	return nil
}

// maxBytes is the largest device any backend here supports: byte offsets
// must fit in an int64 (off_t).
const maxBytes = 1<<63 - 1

// BlockSize implements scsi.Device.
func (d *Null) BlockSize() uint32 { return d.bs }

// Blocks implements scsi.Device.
func (d *Null) Blocks() uint64 { return d.blocks.Load() }

// Resize grows the device to blocks blocks. It refuses to shrink.
func (d *Null) Resize(blocks uint64) error {
	return growCounter(&d.blocks, d.bs, blocks)
}

// growCounter raises *c to blocks if that is a valid grow.
func growCounter(c *atomic.Uint64, bs uint32, blocks uint64) error {
	if err := checkGeometry(bs, blocks); err != nil {
		return fmt.Errorf("resize: %w", err)
	}
	for {
		cur := c.Load()
		if blocks < cur {
			return fmt.Errorf("resize to %d blocks: %w (have %d)", blocks, ErrShrink, cur)
		}
		if c.CompareAndSwap(cur, blocks) {
			return nil
		}
	}
}

// ReadAt implements scsi.Device: it fills p with zeros.
func (d *Null) ReadAt(_ context.Context, p []byte, lba uint64) error {
	if err := checkRange("read", d.bs, d.blocks.Load(), lba, uint64(len(p))); err != nil {
		return err
	}
	clear(p)
	return nil
}

// WriteAt implements scsi.Device: it discards p.
func (d *Null) WriteAt(_ context.Context, p []byte, lba uint64, _ bool) error {
	return checkRange("write", d.bs, d.blocks.Load(), lba, uint64(len(p)))
}

// Flush implements scsi.Device; there is nothing to make durable.
func (d *Null) Flush(context.Context) error { return nil }

// Nonblocking reports true: Null never waits, so the transport may run its
// reads and writes on its receive path (scsi.Nonblocking).
func (d *Null) Nonblocking() bool { return true }

// Unmap implements scsi.Unmapper.
func (d *Null) Unmap(_ context.Context, lba, blocks uint64) error {
	return checkBlocks("unmap", d.blocks.Load(), lba, blocks)
}

// WriteZeroes implements scsi.ZeroWriter.
func (d *Null) WriteZeroes(_ context.Context, lba, blocks uint64, _ bool) error {
	return checkBlocks("write zeroes", d.blocks.Load(), lba, blocks)
}

// LBAStatus implements scsi.LBAStatusReporter: everything is unmapped.
func (d *Null) LBAStatus(_ context.Context, lba, maxBlocks uint64) (bool, uint64, error) {
	total := d.blocks.Load()
	if err := checkBlocks("get lba status", total, lba, 1); err != nil {
		return false, 0, err
	}
	return false, min(max(maxBlocks, 1), total-lba), nil
}

// CompareAndWrite implements scsi.CompareAndWriter against the zeros the
// device reads as; the write is discarded like any other.
func (d *Null) CompareAndWrite(_ context.Context, lba uint64, compare, write []byte, _ bool) error {
	if err := checkCompareAndWrite(d.bs, compare, write); err != nil {
		return err
	}
	if err := checkRange("compare and write", d.bs, d.blocks.Load(), lba, uint64(len(compare))); err != nil {
		return err
	}
	for i, c := range compare {
		if c != 0 {
			return &scsi.MiscompareError{Offset: i}
		}
	}
	return nil
}
