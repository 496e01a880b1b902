//go:build linux

package device

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/vbs-storage/vbs/target/scsi"
)

// Fallocate modes the file device uses.
const (
	fallocPunchHole = unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_KEEP_SIZE
	fallocZeroRange = unix.FALLOC_FL_ZERO_RANGE | unix.FALLOC_FL_KEEP_SIZE
	fallocAllocate  = unix.FALLOC_FL_KEEP_SIZE
)

// File permissions of images and metadata the device creates.
const (
	imageMode   os.FileMode = 0o600
	metaDirMode os.FileMode = 0o700
)

// metaDirSuffix names the directory next to an image that holds its
// metadata: PATH.meta/KEY.
const metaDirSuffix = ".meta"

// fileZeroBufferBytes bounds the buffer of the write-zeros fallback.
const fileZeroBufferBytes = 1 << 20

// File is a device backed by a sparse regular file: reads and writes are
// pread/pwrite through the page cache, Flush is fdatasync (fsync after the
// file's size or allocation changed), a FUA write is a write then
// fdatasync, Unmap punches holes, and LBAStatus asks SEEK_DATA/SEEK_HOLE.
// The image is locked (flock) while open, so two processes cannot serve it.
//
// Errors: EIO, EBADMSG (file system checksum) and EUCLEAN wrap
// scsi.ErrMedium; ENOSPC and EDQUOT wrap scsi.ErrNoSpace; EROFS wraps
// scsi.ErrWriteProtected. A failed fdatasync is sticky: the kernel may
// have dropped the dirty pages it could not write, so every later write
// and flush fails (wrapping scsi.ErrMedium) until the device is reopened.
// Reads keep working.
//
// Close must be called once, after all I/O has returned; later calls fail
// with ErrClosed.
type File struct {
	path   string
	f      *os.File
	fd     int
	bs     uint32
	blocks atomic.Uint64

	// lock: writes hold their stripes shared, CompareAndWrite exclusively,
	// so a COMPARE AND WRITE is atomic against every other write.
	lock stripedLock
	// syncMeta is set when the size or block allocation changed since the
	// last fsync, so that Flush must sync metadata too.
	syncMeta atomic.Bool
	// broken holds the sticky failure of a data sync, if any.
	broken atomic.Pointer[stickyError]
	closed atomic.Bool
	// resizeMu serializes Resize.
	resizeMu sync.Mutex
	// metaMu serializes SetMetadata (it owns the temporary file names).
	metaMu sync.Mutex
	// cawBufs holds *[]byte read buffers for CompareAndWrite.
	cawBufs sync.Pool
	// fallocate is unix.Fallocate; tests wrap it to inject EOPNOTSUPP and
	// exercise the fallbacks of file systems that lack a mode.
	fallocate func(fd int, mode uint32, off, n int64) error
}

// stickyError is a failure that poisons the device.
type stickyError struct{ err error }

// Interfaces File satisfies.
var (
	_ scsi.Device            = (*File)(nil)
	_ scsi.Unmapper          = (*File)(nil)
	_ scsi.ZeroWriter        = (*File)(nil)
	_ scsi.LBAStatusReporter = (*File)(nil)
	_ scsi.CompareAndWriter  = (*File)(nil)
	_ scsi.Copier            = (*File)(nil)
	_ scsi.MetadataStore     = (*File)(nil)
	_ io.Closer              = (*File)(nil)
)

func openFileDevice(path string, opts FileOptions) (scsi.Device, error) {
	d, err := OpenFile(path, opts)
	if err != nil {
		return nil, err
	}
	return d, nil
}

// OpenFile opens (or, with opts.Size, creates or extends) the image at path
// and locks it. Without opts.Size the image must exist and its size must be
// a positive multiple of the block size. An image larger than opts.Size is
// an error, never truncated. The caller must Close the device.
func OpenFile(path string, opts FileOptions) (*File, error) {
	opts = opts.withDefaults()
	d, err := openFile(path, opts)
	if err != nil {
		return nil, fmt.Errorf("open file device %s: %w", path, err)
	}
	return d, nil
}

func openFile(path string, opts FileOptions) (*File, error) {
	bs := opts.BlockSize
	if !validBlockSize(bs) {
		return nil, fmt.Errorf("block size %d: want %d or %d", bs, BlockSize512, BlockSize4096)
	}
	flags := os.O_RDWR
	created := false
	if opts.Size != 0 {
		if opts.Size%uint64(bs) != 0 || opts.Size > maxBytes {
			return nil, fmt.Errorf("size %d is not a multiple of the block size %d below %d", opts.Size, bs, uint64(maxBytes))
		}
		flags |= os.O_CREATE
		if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
			created = true
		}
	}
	f, err := os.OpenFile(path, flags, imageMode)
	if err != nil {
		return nil, err
	}
	d, err := setupFile(f, path, opts, created)
	if err != nil {
		f.Close()
		return nil, err
	}
	return d, nil
}

// setupFile locks and sizes an open image.
func setupFile(f *os.File, path string, opts FileOptions, created bool) (*File, error) {
	bs := uint64(opts.BlockSize)
	fd := int(f.Fd())
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, errors.New("image is in use (locked by another opener)")
		}
		return nil, fmt.Errorf("lock image: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file (%s)", fi.Mode().Type())
	}
	size := uint64(fi.Size())
	switch {
	case opts.Size == 0:
		if size == 0 || size%bs != 0 {
			return nil, fmt.Errorf("image is %d bytes, not a positive multiple of the block size %d (give size= to create or extend it)", size, bs)
		}
	case size > opts.Size:
		return nil, fmt.Errorf("image is %d bytes, larger than size=%d: refusing to shrink it", size, opts.Size)
	case size < opts.Size:
		if err := f.Truncate(int64(opts.Size)); err != nil {
			return nil, fmt.Errorf("extend image to %d bytes: %w", opts.Size, classifyErrno(err))
		}
		if err := unix.Fsync(fd); err != nil {
			return nil, fmt.Errorf("sync extended image: %w", err)
		}
		size = opts.Size
	}
	if created {
		if err := syncDir(filepath.Dir(path)); err != nil {
			return nil, err
		}
	}
	d := &File{path: path, f: f, fd: fd, bs: opts.BlockSize, fallocate: unix.Fallocate}
	d.blocks.Store(size / bs)
	d.lock.shift = fileRegionShift
	return d, nil
}

// syncDir makes a directory's entries durable.
func syncDir(dir string) error {
	df, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory to sync: %w", err)
	}
	defer df.Close()
	if err := df.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// Path returns the image's path.
func (d *File) Path() string { return d.path }

// BlockSize implements scsi.Device.
func (d *File) BlockSize() uint32 { return d.bs }

// Blocks implements scsi.Device.
func (d *File) Blocks() uint64 { return d.blocks.Load() }

// ReadAt implements scsi.Device.
func (d *File) ReadAt(_ context.Context, p []byte, lba uint64) error {
	if err := checkRange("read", d.bs, d.blocks.Load(), lba, uint64(len(p))); err != nil {
		return err
	}
	_, err := d.f.ReadAt(p, int64(lba*uint64(d.bs)))
	if err != nil {
		if errors.Is(err, io.EOF) {
			// Someone truncated the image under us.
			return fmt.Errorf("read %s at lba %d: image shorter than the device: %w", d.path, lba, scsi.ErrOutOfRange)
		}
		return d.ioError("read", lba, err)
	}
	return nil
}

// WriteAt implements scsi.Device.
func (d *File) WriteAt(_ context.Context, p []byte, lba uint64, fua bool) error {
	if b := d.broken.Load(); b != nil {
		return b.err
	}
	n := uint64(len(p))
	if err := checkRange("write", d.bs, d.blocks.Load(), lba, n); err != nil {
		return err
	}
	off := lba * uint64(d.bs)
	d.lock.lock(off, n, false)
	_, err := d.f.WriteAt(p, int64(off))
	d.lock.unlock(off, n, false)
	if err != nil {
		return d.ioError("write", lba, err)
	}
	if fua {
		return d.dataSync()
	}
	return nil
}

// Flush implements scsi.Device: fdatasync, or fsync when the size or the
// allocation changed since the last one.
func (d *File) Flush(context.Context) error {
	if b := d.broken.Load(); b != nil {
		return b.err
	}
	if d.closed.Load() {
		return fmt.Errorf("flush %s: %w", d.path, ErrClosed)
	}
	if d.syncMeta.Swap(false) {
		if err := unix.Fsync(d.fd); err != nil {
			d.syncMeta.Store(true)
			return d.syncFailed("fsync", err)
		}
		return nil
	}
	return d.dataSync()
}

func (d *File) dataSync() error {
	if d.closed.Load() {
		return fmt.Errorf("sync %s: %w", d.path, ErrClosed)
	}
	if err := unix.Fdatasync(d.fd); err != nil {
		return d.syncFailed("fdatasync", err)
	}
	return nil
}

// syncFailed poisons the device after a failed sync (see File).
func (d *File) syncFailed(op string, err error) error {
	werr := fmt.Errorf("%s %s: device failed, reopen it: %w: %w", op, d.path, scsi.ErrMedium, err)
	if errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT) {
		// Delayed allocation ran out of space: the data never reached
		// the disk either, so the device is just as unreliable.
		werr = fmt.Errorf("%s %s: device failed, reopen it: %w: %w", op, d.path, scsi.ErrNoSpace, err)
	}
	d.broken.CompareAndSwap(nil, &stickyError{werr})
	return d.broken.Load().err
}

// ioError wraps a failed pread/pwrite/fallocate with the sentinel the SCSI
// layer needs.
func (d *File) ioError(op string, lba uint64, err error) error {
	return fmt.Errorf("%s %s at lba %d: %w", op, d.path, lba, classifyErrno(err))
}

// classifyErrno adds the scsi sentinel that matches err's errno, if any.
func classifyErrno(err error) error {
	switch {
	case errors.Is(err, unix.EIO), errors.Is(err, unix.EBADMSG), errors.Is(err, unix.EUCLEAN):
		return fmt.Errorf("%w: %w", scsi.ErrMedium, err)
	case errors.Is(err, unix.ENOSPC), errors.Is(err, unix.EDQUOT):
		return fmt.Errorf("%w: %w", scsi.ErrNoSpace, err)
	case errors.Is(err, unix.EROFS):
		return fmt.Errorf("%w: %w", scsi.ErrWriteProtected, err)
	case errors.Is(err, os.ErrClosed):
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return err
}

// Unmap implements scsi.Unmapper by punching a hole; on a file system that
// cannot, it writes zeros.
func (d *File) Unmap(ctx context.Context, lba, blocks uint64) error {
	return d.zeroRange(ctx, "unmap", lba, blocks, true)
}

// WriteZeroes implements scsi.ZeroWriter: with unmap it punches a hole;
// without, it zeroes the range in place (FALLOC_FL_ZERO_RANGE, else a hole
// punched and allocated again, else written zeros) so the blocks stay
// allocated.
func (d *File) WriteZeroes(ctx context.Context, lba, blocks uint64, unmap bool) error {
	return d.zeroRange(ctx, "write zeroes", lba, blocks, unmap)
}

func (d *File) zeroRange(ctx context.Context, op string, lba, blocks uint64, unmap bool) error {
	if b := d.broken.Load(); b != nil {
		return b.err
	}
	if err := checkBlocks(op, d.blocks.Load(), lba, blocks); err != nil {
		return err
	}
	if blocks == 0 {
		return nil
	}
	if d.closed.Load() {
		return fmt.Errorf("%s %s: %w", op, d.path, ErrClosed)
	}
	off, n := lba*uint64(d.bs), blocks*uint64(d.bs)
	d.lock.lock(off, n, false)
	defer d.lock.unlock(off, n, false)
	// The allocation changes: the next Flush must fsync. Marked when the
	// change is done, so a Flush racing with it cannot clear the mark
	// before the change it must cover.
	defer d.syncMeta.Store(true)
	if unmap {
		err := d.fallocate(d.fd, fallocPunchHole, int64(off), int64(n))
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EOPNOTSUPP) {
			return d.ioError(op, lba, err)
		}
		return d.writeZerosLocked(ctx, op, lba, off, n)
	}
	err := d.fallocate(d.fd, fallocZeroRange, int64(off), int64(n))
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EOPNOTSUPP) {
		return d.ioError(op, lba, err)
	}
	if err := d.fallocate(d.fd, fallocPunchHole, int64(off), int64(n)); err == nil {
		if err := d.fallocate(d.fd, fallocAllocate, int64(off), int64(n)); err != nil && !errors.Is(err, unix.EOPNOTSUPP) {
			return d.ioError(op, lba, err)
		}
		// Without preallocation support the hole still reads as zeros.
		return nil
	} else if !errors.Is(err, unix.EOPNOTSUPP) {
		return d.ioError(op, lba, err)
	}
	return d.writeZerosLocked(ctx, op, lba, off, n)
}

// writeZerosLocked writes n zero bytes at off; the caller holds the range.
func (d *File) writeZerosLocked(ctx context.Context, op string, lba, off, n uint64) error {
	buf := make([]byte, min(n, fileZeroBufferBytes))
	for done := uint64(0); done < n; {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%s %s at lba %d: %w", op, d.path, lba, err)
		}
		k := min(n-done, uint64(len(buf)))
		if _, err := d.f.WriteAt(buf[:k], int64(off+done)); err != nil {
			return d.ioError(op, lba, err)
		}
		done += k
	}
	return nil
}

// LBAStatus implements scsi.LBAStatusReporter with SEEK_DATA/SEEK_HOLE:
// a block is mapped when any of it holds data. File systems without hole
// support report everything mapped.
func (d *File) LBAStatus(_ context.Context, lba, maxBlocks uint64) (bool, uint64, error) {
	total := d.blocks.Load()
	if err := checkBlocks("get lba status", total, lba, 1); err != nil {
		return false, 0, err
	}
	if d.closed.Load() {
		return false, 0, fmt.Errorf("get lba status %s: %w", d.path, ErrClosed)
	}
	bs := uint64(d.bs)
	limit := min(max(maxBlocks, 1), total-lba)
	off := int64(lba * bs)
	data, err := unix.Seek(d.fd, off, unix.SEEK_DATA)
	switch {
	case errors.Is(err, unix.ENXIO):
		return false, limit, nil // no data from here to the end
	case err != nil:
		return false, 0, d.ioError("seek data", lba, err)
	}
	if holeBlocks := uint64(data-off) / bs; holeBlocks > 0 {
		return false, min(holeBlocks, limit), nil
	}
	hole, err := unix.Seek(d.fd, off, unix.SEEK_HOLE)
	if err != nil {
		return false, 0, d.ioError("seek hole", lba, err)
	}
	// Round up: a block that holds any data is mapped.
	mapped := (uint64(hole-off) + bs - 1) / bs
	return true, min(max(mapped, 1), limit), nil
}

// CompareAndWrite implements scsi.CompareAndWriter. It holds the stripes
// of the range exclusively while it reads, compares and writes, so no other
// write to those blocks interleaves.
func (d *File) CompareAndWrite(_ context.Context, lba uint64, compare, write []byte, fua bool) error {
	if b := d.broken.Load(); b != nil {
		return b.err
	}
	if err := checkCompareAndWrite(d.bs, compare, write); err != nil {
		return err
	}
	n := uint64(len(compare))
	if err := checkRange("compare and write", d.bs, d.blocks.Load(), lba, n); err != nil {
		return err
	}
	bp, _ := d.cawBufs.Get().(*[]byte)
	if bp == nil || cap(*bp) < len(compare) {
		b := make([]byte, len(compare))
		bp = &b
	}
	defer d.cawBufs.Put(bp)
	cur := (*bp)[:len(compare)]
	off := lba * uint64(d.bs)
	d.lock.lock(off, n, true)
	defer d.lock.unlock(off, n, true)
	if _, err := d.f.ReadAt(cur, int64(off)); err != nil {
		return d.ioError("compare and write: read", lba, err)
	}
	if i := firstDiff(compare, cur); i >= 0 {
		return &scsi.MiscompareError{Offset: i}
	}
	if _, err := d.f.WriteAt(write, int64(off)); err != nil {
		return d.ioError("compare and write: write", lba, err)
	}
	if fua {
		return d.dataSync()
	}
	return nil
}

// CopyFrom implements scsi.Copier: holes in the source stay holes in the
// copy; src may be d itself, with overlapping ranges. From another File (or
// a distinct range of d) the data moves with copy_file_range, so it never
// enters user space and file systems with reflinks (XFS, btrfs) share the
// extents instead of copying them.
func (d *File) CopyFrom(ctx context.Context, src scsi.Device, srcLBA, dstLBA, blocks uint64) error {
	if s, ok := src.(*File); ok && s.bs == d.bs && !(s == d && srcLBA < dstLBA+blocks && dstLBA < srcLBA+blocks) {
		err := d.copyFileRange(ctx, s, srcLBA, dstLBA, blocks)
		if !errors.Is(err, errNoCopyFileRange) {
			return err
		}
	}
	return copyBlocks(ctx, d, src, srcLBA, dstLBA, blocks)
}

// errNoCopyFileRange means the kernel or file system cannot copy between
// these files; nothing was copied and the caller falls back.
var errNoCopyFileRange = errors.New("copy_file_range not supported")

// copyFileRange copies extent by extent: source holes are punched in the
// destination, source data is copied by the kernel.
func (d *File) copyFileRange(ctx context.Context, src *File, srcLBA, dstLBA, blocks uint64) error {
	if err := checkBlocks("copy from", src.blocks.Load(), srcLBA, blocks); err != nil {
		return err
	}
	if err := checkBlocks("copy to", d.blocks.Load(), dstLBA, blocks); err != nil {
		return err
	}
	if b := d.broken.Load(); b != nil {
		return b.err
	}
	if d.closed.Load() || src.closed.Load() {
		return fmt.Errorf("copy from %s to %s: %w", src.path, d.path, ErrClosed)
	}
	bs := uint64(d.bs)
	first := true
	for done := uint64(0); done < blocks; {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("copy from %s at lba %d: %w", src.path, srcLBA+done, err)
		}
		mapped, n, err := src.LBAStatus(ctx, srcLBA+done, blocks-done)
		if err != nil {
			return fmt.Errorf("copy: %w", err)
		}
		if !mapped {
			if err := d.zeroRange(ctx, "copy: unmap", dstLBA+done, n, true); err != nil {
				return err
			}
			done += n
			continue
		}
		if err := d.copyExtent(src, (srcLBA+done)*bs, (dstLBA+done)*bs, n*bs, first); err != nil {
			return err
		}
		first = false
		done += n
	}
	return nil
}

// copyExtent copies n bytes with copy_file_range under the destination's
// write stripes. Only on the first extent may an unsupported copy turn into
// errNoCopyFileRange: later, some data has moved, and holes were punched
// before it either way, so a fallback from the start is still correct.
func (d *File) copyExtent(src *File, soff, doff, n uint64, first bool) error {
	d.lock.lock(doff, n, false)
	defer d.lock.unlock(doff, n, false)
	roff, woff := int64(soff), int64(doff)
	for left := n; left > 0; {
		k, err := unix.CopyFileRange(src.fd, &roff, d.fd, &woff, int(min(left, 1<<30)), 0)
		switch {
		case err != nil && (errors.Is(err, unix.EXDEV) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL)):
			if first && left == n {
				return errNoCopyFileRange
			}
			return fmt.Errorf("copy from %s to %s: %w", src.path, d.path, err)
		case err != nil:
			return d.ioError("copy to", doff/uint64(d.bs), err)
		case k == 0:
			return fmt.Errorf("copy from %s at byte %d: source ends early: %w", src.path, roff, scsi.ErrOutOfRange)
		}
		left -= uint64(k)
	}
	return nil
}

// Resize grows the device (and its image, sparsely) to blocks blocks and
// makes the new size durable. It refuses to shrink (ErrShrink). It is safe
// under concurrent I/O: the new blocks exist in the file before Blocks
// reports them.
func (d *File) Resize(blocks uint64) error {
	d.resizeMu.Lock()
	defer d.resizeMu.Unlock()
	if d.closed.Load() {
		return fmt.Errorf("resize %s: %w", d.path, ErrClosed)
	}
	if err := checkGeometry(d.bs, blocks); err != nil {
		return fmt.Errorf("resize %s: %w", d.path, err)
	}
	if cur := d.blocks.Load(); blocks < cur {
		return fmt.Errorf("resize %s to %d blocks: %w (have %d)", d.path, blocks, ErrShrink, cur)
	} else if blocks == cur {
		return nil
	}
	if err := d.f.Truncate(int64(blocks * uint64(d.bs))); err != nil {
		return fmt.Errorf("resize %s: %w", d.path, classifyErrno(err))
	}
	if err := unix.Fsync(d.fd); err != nil {
		return fmt.Errorf("resize %s: %w", d.path, d.syncFailed("fsync", err))
	}
	d.blocks.Store(blocks)
	return nil
}

// AllocatedBytes returns the space the image occupies on disk (st_blocks).
func (d *File) AllocatedBytes() (uint64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(d.fd, &st); err != nil {
		return 0, fmt.Errorf("stat %s: %w", d.path, err)
	}
	const statBlockSize = 512 // st_blocks counts 512-byte units
	return uint64(st.Blocks) * statBlockSize, nil
}

// metaDir returns the directory holding the image's metadata.
func (d *File) metaDir() string { return d.path + metaDirSuffix }

// GetMetadata implements scsi.MetadataStore: it reads PATH.meta/KEY.
func (d *File) GetMetadata(key string) ([]byte, error) {
	if err := checkMetadataKey(key); err != nil {
		return nil, fmt.Errorf("get metadata of %s: %w", d.path, err)
	}
	b, err := os.ReadFile(filepath.Join(d.metaDir(), metaFileName(key)))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get metadata %q of %s: %w", key, d.path, classifyErrno(err))
	}
	return b, nil
}

// SetMetadata implements scsi.MetadataStore: it replaces PATH.meta/KEY
// atomically and durably (write a temporary file, fsync, rename, fsync the
// directory), so a crash leaves the old value or the new one.
func (d *File) SetMetadata(key string, value []byte) error {
	if err := checkMetadataKey(key); err != nil {
		return fmt.Errorf("set metadata of %s: %w", d.path, err)
	}
	d.metaMu.Lock()
	defer d.metaMu.Unlock()
	if err := d.setMetadataLocked(key, value); err != nil {
		return fmt.Errorf("set metadata %q of %s: %w", key, d.path, err)
	}
	return nil
}

func (d *File) setMetadataLocked(key string, value []byte) error {
	dir := d.metaDir()
	if err := os.Mkdir(dir, metaDirMode); err == nil {
		if err := syncDir(filepath.Dir(dir)); err != nil {
			return err
		}
	} else if !errors.Is(err, os.ErrExist) {
		return classifyErrno(err)
	}
	// Keys never start with a dot, so the temporary name cannot collide
	// with a key.
	tmp := filepath.Join(dir, "."+metaFileName(key)+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, imageMode)
	if err != nil {
		return classifyErrno(err)
	}
	_, werr := f.Write(value)
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		os.Remove(tmp)
		return classifyErrno(werr)
	}
	if err := os.Rename(tmp, filepath.Join(dir, metaFileName(key))); err != nil {
		os.Remove(tmp)
		return classifyErrno(err)
	}
	return syncDir(dir)
}

// Close makes every completed write durable (so an orderly shutdown loses
// nothing even to a later power cut), then releases the image and its lock.
// It must be called once, after all I/O has returned. The image is closed
// even when the final sync fails; that error is returned.
func (d *File) Close() error {
	if d.closed.Load() {
		return fmt.Errorf("close %s: %w", d.path, ErrClosed)
	}
	serr := d.Flush(context.Background())
	d.closed.Store(true)
	if err := d.f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", d.path, err)
	}
	if serr != nil {
		return fmt.Errorf("close %s: %w", d.path, serr)
	}
	return nil
}
