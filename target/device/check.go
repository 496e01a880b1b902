package device

import (
	"fmt"

	"github.com/vbs-storage/vbs/target/scsi"
)

// checkRange enforces the scsi.Device preconditions on a request of n bytes
// at lba: the SCSI layer already validated it, so a failure here means the
// device shrank under the request or a caller broke the contract. It
// allocates nothing unless it fails.
func checkRange(op string, bs uint32, blocks, lba, n uint64) error {
	if n == 0 || n%uint64(bs) != 0 {
		return fmt.Errorf("%s at lba %d: length %d is not a positive multiple of the block size %d", op, lba, n, bs)
	}
	nb := n / uint64(bs)
	if lba >= blocks || nb > blocks-lba {
		return fmt.Errorf("%s %d blocks at lba %d of %d: %w", op, nb, lba, blocks, scsi.ErrOutOfRange)
	}
	return nil
}

// checkBlocks is checkRange for requests counted in blocks (Unmap,
// WriteZeroes). Zero blocks is a valid no-op.
func checkBlocks(op string, blocks, lba, nb uint64) error {
	if nb == 0 {
		return nil
	}
	if lba >= blocks || nb > blocks-lba {
		return fmt.Errorf("%s %d blocks at lba %d of %d: %w", op, nb, lba, blocks, scsi.ErrOutOfRange)
	}
	return nil
}

// firstDiff returns the offset of the first byte where a and b differ, or -1.
// They have the same length.
func firstDiff(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

// checkCompareAndWrite validates COMPARE AND WRITE buffers.
func checkCompareAndWrite(bs uint32, compare, write []byte) error {
	if len(compare) != len(write) {
		return fmt.Errorf("compare and write: compare buffer is %d bytes, write buffer %d", len(compare), len(write))
	}
	if len(compare) == 0 || len(compare)%int(bs) != 0 {
		return fmt.Errorf("compare and write: length %d is not a positive multiple of the block size %d", len(compare), bs)
	}
	return nil
}
