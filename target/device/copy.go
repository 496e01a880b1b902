package device

import (
	"context"
	"fmt"

	"github.com/vbs-storage/vbs/target/scsi"
)

// copyBufferBytes is the most a copy moves per read/write round.
const copyBufferBytes = 1 << 20

// copyBlocks copies blocks blocks from src at srcLBA to dst at dstLBA, the
// way a Copier does it without help from the source's internals: it reads
// into a bounce buffer and writes. When src reports LBA status, unmapped
// source extents are unmapped (or zeroed) in dst instead of copied, so a
// copy stays as thin as its source. src may be dst, with overlapping
// ranges: the copy then behaves like memmove.
func copyBlocks(ctx context.Context, dst, src scsi.Device, srcLBA, dstLBA, blocks uint64) error {
	if blocks == 0 {
		return nil
	}
	bs := dst.BlockSize()
	if sbs := src.BlockSize(); sbs != bs {
		return fmt.Errorf("copy: source block size %d differs from destination block size %d", sbs, bs)
	}
	if err := checkBlocks("copy from", src.Blocks(), srcLBA, blocks); err != nil {
		return err
	}
	if err := checkBlocks("copy to", dst.Blocks(), dstLBA, blocks); err != nil {
		return err
	}
	perRound := uint64(copyBufferBytes) / uint64(bs)
	buf := make([]byte, min(blocks, perRound)*uint64(bs))
	same := any(dst) == any(src)
	if same && dstLBA > srcLBA && dstLBA < srcLBA+blocks {
		// Overlap with the destination ahead: copy from the end so that
		// no source block is overwritten before it is read.
		for done := uint64(0); done < blocks; {
			n := min(blocks-done, perRound)
			off := blocks - done - n
			if err := copyRound(ctx, dst, src, buf[:n*uint64(bs)], srcLBA+off, dstLBA+off); err != nil {
				return err
			}
			done += n
		}
		return nil
	}
	status, _ := src.(scsi.LBAStatusReporter)
	for done := uint64(0); done < blocks; {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("copy at source lba %d: %w", srcLBA+done, err)
		}
		n := min(blocks-done, perRound)
		if status != nil {
			mapped, extent, err := status.LBAStatus(ctx, srcLBA+done, blocks-done)
			if err != nil {
				return fmt.Errorf("copy: lba status of source lba %d: %w", srcLBA+done, err)
			}
			if !mapped {
				n = min(max(extent, 1), blocks-done)
				if err := zeroBlocks(ctx, dst, dstLBA+done, n, buf); err != nil {
					return err
				}
				done += n
				continue
			}
			n = min(n, max(extent, 1))
		}
		if err := copyRound(ctx, dst, src, buf[:n*uint64(bs)], srcLBA+done, dstLBA+done); err != nil {
			return err
		}
		done += n
	}
	return nil
}

// copyRound copies len(buf) bytes from src at srcLBA to dst at dstLBA.
func copyRound(ctx context.Context, dst, src scsi.Device, buf []byte, srcLBA, dstLBA uint64) error {
	if err := src.ReadAt(ctx, buf, srcLBA); err != nil {
		return fmt.Errorf("copy: read source lba %d: %w", srcLBA, err)
	}
	if err := dst.WriteAt(ctx, buf, dstLBA, false); err != nil {
		return fmt.Errorf("copy: write destination lba %d: %w", dstLBA, err)
	}
	return nil
}

// zeroBlocks makes blocks of dev at lba read as zeros, as cheaply as dev
// allows: unmap, write zeroes, or write a zeroed buffer.
func zeroBlocks(ctx context.Context, dev scsi.Device, lba, blocks uint64, buf []byte) error {
	if u, ok := dev.(scsi.Unmapper); ok {
		if err := u.Unmap(ctx, lba, blocks); err != nil {
			return fmt.Errorf("copy: unmap destination lba %d: %w", lba, err)
		}
		return nil
	}
	if z, ok := dev.(scsi.ZeroWriter); ok {
		if err := z.WriteZeroes(ctx, lba, blocks, true); err != nil {
			return fmt.Errorf("copy: write zeroes at destination lba %d: %w", lba, err)
		}
		return nil
	}
	clear(buf)
	bs := uint64(dev.BlockSize())
	per := uint64(len(buf)) / bs
	for done := uint64(0); done < blocks; {
		n := min(blocks-done, per)
		if err := dev.WriteAt(ctx, buf[:n*bs], lba+done, false); err != nil {
			return fmt.Errorf("copy: write zeros at destination lba %d: %w", lba+done, err)
		}
		done += n
	}
	return nil
}
