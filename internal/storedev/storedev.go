// Package storedev adapts a blockstore volume to the target's scsi.Device
// contract. It owns nothing but the translation: blockstore's typed errors
// become the scsi sentinels the SCSI layer turns into sense data
// (corruption -> MEDIUM ERROR, pool full -> SPACE ALLOCATION FAILED WRITE
// PROTECT, past the end -> LBA OUT OF RANGE, miscompare -> MISCOMPARE).
//
// It is the one place allowed to import both blockstore and target/scsi.
package storedev

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/vbs-storage/vbs/blockstore"
	"github.com/vbs-storage/vbs/target/scsi"
)

// DefaultVolume is the volume name `vbs target --lun store:DIR` uses.
const DefaultVolume = "lun0"

// Volume is a blockstore volume seen as a scsi.Device. It also implements
// scsi.Unmapper, ZeroWriter, LBAStatusReporter, CompareAndWriter,
// AtomicWriter, MetadataStore and io.Closer.
type Volume struct {
	vol   *blockstore.Volume
	store *blockstore.Store // non-nil when Close must close the store too
}

var (
	_ scsi.Device            = (*Volume)(nil)
	_ scsi.Unmapper          = (*Volume)(nil)
	_ scsi.ZeroWriter        = (*Volume)(nil)
	_ scsi.LBAStatusReporter = (*Volume)(nil)
	_ scsi.CompareAndWriter  = (*Volume)(nil)
	_ scsi.AtomicWriter      = (*Volume)(nil)
	_ scsi.MetadataStore     = (*Volume)(nil)
)

// Open opens (or creates) the store in dir and opens the named volume in
// it, creating it with size bytes and blockSize on first use. With size 0
// the volume must exist. A size larger than the existing volume grows it;
// a smaller one is refused (shrinking is an explicit operation). Close
// closes the store as well. The store's pool is the disk it lives on
// (blockstore.DiskPoolBytes), it keeps a reserve of that disk free for its
// index whatever else fills it (blockstore.DiskReserveBytes), and its
// background cleaner reclaims space as that pool fills.
func Open(ctx context.Context, dir, name string, size uint64, blockSize uint32) (*Volume, error) {
	capacity, err := blockstore.DiskPoolBytes(dir)
	if err != nil {
		return nil, fmt.Errorf("storedev: %w", err)
	}
	reserve, err := blockstore.DiskReserveBytes(dir)
	if err != nil {
		return nil, fmt.Errorf("storedev: %w", err)
	}
	return OpenWith(ctx, dir, name, size, blockSize, blockstore.Options{
		Logger: slog.Default(), CapacityBytes: capacity, DiskReserveBytes: reserve,
		GCInterval: blockstore.DefaultGCInterval, GCRateBytes: blockstore.DefaultGCRateBytes,
	})
}

// OpenWith is Open with explicit store options (filesystem, clock, logger).
func OpenWith(ctx context.Context, dir, name string, size uint64, blockSize uint32, o blockstore.Options) (*Volume, error) {
	st, err := blockstore.Open(dir, o)
	if err != nil {
		return nil, fmt.Errorf("storedev: %w", err)
	}
	v, err := openVolume(ctx, st, name, size, blockSize)
	if err != nil {
		_ = st.Close()
		return nil, fmt.Errorf("storedev: %w", err)
	}
	return &Volume{vol: v, store: st}, nil
}

func openVolume(ctx context.Context, st *blockstore.Store, name string, size uint64, blockSize uint32) (*blockstore.Volume, error) {
	info, err := st.StatVolume(name)
	switch {
	case errors.Is(err, blockstore.ErrVolumeNotFound):
		if size == 0 {
			return nil, fmt.Errorf("volume %q does not exist and no size was given: %w", name, err)
		}
		if _, err := st.CreateVolume(ctx, name, blockstore.VolumeOptions{SizeBytes: size, BlockSize: blockSize}); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	default:
		if info.BlockSize != blockSize {
			return nil, fmt.Errorf("volume %q has %d-byte blocks, not %d: %w", name, info.BlockSize, blockSize, blockstore.ErrInvalid)
		}
		cur := info.Blocks * uint64(info.BlockSize)
		if size > cur {
			if err := st.ResizeVolume(ctx, name, size); err != nil {
				return nil, err
			}
		} else if size != 0 && size < cur {
			return nil, fmt.Errorf("volume %q holds %d bytes, more than size %d: %w", name, cur, size, blockstore.ErrShrink)
		}
	}
	return st.OpenVolume(name)
}

// New wraps a volume handle whose store the caller owns; Close closes only
// the handle.
func New(v *blockstore.Volume) *Volume { return &Volume{vol: v} }

// Close closes the volume handle, and the store when Open opened it.
func (d *Volume) Close() error {
	err := d.vol.Close()
	if d.store != nil {
		if serr := d.store.Close(); err == nil {
			err = serr
		}
	}
	return err
}

// Store returns the store behind an Open'ed volume (nil for New).
func (d *Volume) Store() *blockstore.Store { return d.store }

// BlockSize implements scsi.Device.
func (d *Volume) BlockSize() uint32 { return d.vol.BlockSize() }

// Blocks implements scsi.Device.
func (d *Volume) Blocks() uint64 { return d.vol.Blocks() }

// ReadAt implements scsi.Device.
func (d *Volume) ReadAt(ctx context.Context, p []byte, lba uint64) error {
	return translate(d.vol.ReadAt(ctx, p, lba))
}

// WriteAt implements scsi.Device.
func (d *Volume) WriteAt(ctx context.Context, p []byte, lba uint64, fua bool) error {
	return translate(d.vol.WriteAt(ctx, p, lba, fua))
}

// Flush implements scsi.Device.
func (d *Volume) Flush(ctx context.Context) error { return translate(d.vol.Flush(ctx)) }

// Unmap implements scsi.Unmapper.
func (d *Volume) Unmap(ctx context.Context, lba, blocks uint64) error {
	return translate(d.vol.Unmap(ctx, lba, blocks))
}

// WriteZeroes implements scsi.ZeroWriter.
func (d *Volume) WriteZeroes(ctx context.Context, lba, blocks uint64, unmap bool) error {
	return translate(d.vol.WriteZeroes(ctx, lba, blocks, unmap))
}

// LBAStatus implements scsi.LBAStatusReporter.
func (d *Volume) LBAStatus(ctx context.Context, lba, maxBlocks uint64) (bool, uint64, error) {
	m, n, err := d.vol.LBAStatus(ctx, lba, maxBlocks)
	return m, n, translate(err)
}

// CompareAndWrite implements scsi.CompareAndWriter.
func (d *Volume) CompareAndWrite(ctx context.Context, lba uint64, compare, write []byte, fua bool) error {
	return translate(d.vol.CompareAndWrite(ctx, lba, compare, write, fua))
}

// WriteAtomic implements scsi.AtomicWriter.
func (d *Volume) WriteAtomic(ctx context.Context, p []byte, lba uint64, fua bool) error {
	return translate(d.vol.WriteAtomic(ctx, p, lba, fua))
}

// MaxAtomicBlocks implements scsi.AtomicWriter.
func (d *Volume) MaxAtomicBlocks() uint32 { return d.vol.MaxAtomicBlocks() }

// GetMetadata implements scsi.MetadataStore.
func (d *Volume) GetMetadata(key string) ([]byte, error) {
	b, err := d.vol.GetMetadata(key)
	return b, translate(err)
}

// SetMetadata implements scsi.MetadataStore.
func (d *Volume) SetMetadata(key string, value []byte) error {
	return translate(d.vol.SetMetadata(key, value))
}

// translate maps blockstore's error classes onto the scsi sentinels,
// keeping the original error in the chain. It allocates only on error.
func translate(err error) error {
	if err == nil {
		return nil
	}
	var mis *blockstore.MiscompareError
	switch {
	case errors.As(err, &mis):
		return fmt.Errorf("%w: %w", &scsi.MiscompareError{Offset: mis.Offset}, err)
	case errors.Is(err, blockstore.ErrCorrupt):
		return fmt.Errorf("%w: %w", scsi.ErrMedium, err)
	case errors.Is(err, blockstore.ErrNoSpace):
		return fmt.Errorf("%w: %w", scsi.ErrNoSpace, err)
	case errors.Is(err, blockstore.ErrOutOfRange):
		return fmt.Errorf("%w: %w", scsi.ErrOutOfRange, err)
	}
	return err
}
