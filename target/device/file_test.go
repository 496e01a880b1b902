//go:build linux

package device

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vbs-storage/vbs/target/scsi"
)

func TestFileCreateIsSparseAndReopens(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "a.img")
	d, err := OpenFile(path, FileOptions{Size: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := d.AllocatedBytes(); err != nil || n > 64<<10 {
		t.Fatalf("a new 1 GiB image occupies %d bytes (%v), want it sparse", n, err)
	}
	data := pattern(8192, 1)
	if err := d.WriteAt(ctx, data, 1000, true); err != nil { // FUA
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	got := make([]byte, len(data))
	if _, err := raw.ReadAt(got, 1000*512); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the image does not hold the written data at its offset (%v)", err)
	}
	if fi, err := raw.Stat(); err != nil || fi.Size() != 1<<30 {
		t.Fatalf("image size: %v, %v", fi, err)
	}
	// Reopen without a size: the image's size is used.
	d, err = OpenFile(path, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Blocks() != (1<<30)/512 {
		t.Fatalf("reopened with %d blocks", d.Blocks())
	}
	if !bytes.Equal(mustRead(t, d, 1000, 16), data) {
		t.Fatal("reopened image lost data")
	}
}

func TestFileExtendOnOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.img")
	if err := os.WriteFile(path, pattern(4096, 1), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := OpenFile(path, FileOptions{Size: 1 << 20, BlockSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Blocks() != 256 {
		t.Fatalf("%d blocks after extending to 1 MiB", d.Blocks())
	}
	if !bytes.Equal(mustRead(t, d, 0, 1), pattern(4096, 1)) || !allZero(mustRead(t, d, 1, 255)) {
		t.Fatal("extending changed the old data or left garbage")
	}
}

func TestFileOpenErrors(t *testing.T) {
	dir := t.TempDir()
	odd := filepath.Join(dir, "odd.img")
	if err := os.WriteFile(odd, make([]byte, 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.img")
	if err := os.WriteFile(big, make([]byte, 8192), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.img")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		opts FileOptions
		msg  string
	}{
		{filepath.Join(dir, "missing.img"), FileOptions{}, "no such file"},
		{odd, FileOptions{}, "image is 1000 bytes, not a positive multiple of the block size 512 (give size= to create or extend it)"},
		{empty, FileOptions{}, "image is 0 bytes"},
		{big, FileOptions{BlockSize: 4096, Size: 4096}, "image is 8192 bytes, larger than size=4096: refusing to shrink it"},
		{big, FileOptions{Size: 1000}, "not a multiple of the block size"},
		{big, FileOptions{BlockSize: 1024}, "block size 1024"},
		{dir, FileOptions{}, "is a directory"},
	}
	for _, tc := range tests {
		d, err := OpenFile(tc.path, tc.opts)
		if err == nil {
			d.Close()
			t.Errorf("OpenFile(%s, %+v): no error, want %q", tc.path, tc.opts, tc.msg)
			continue
		}
		if d != nil || !strings.Contains(err.Error(), tc.msg) || !strings.Contains(err.Error(), tc.path) {
			t.Errorf("OpenFile(%s, %+v) = %v, %v; want an error naming the path and containing %q", tc.path, tc.opts, d, err, tc.msg)
		}
	}
	// The big image must not have been truncated by the refused open.
	if fi, err := os.Stat(big); err != nil || fi.Size() != 8192 {
		t.Fatalf("refused open changed the image: %v, %v", fi, err)
	}
}

func TestFileExclusive(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.img")
	d, err := OpenFile(path, FileOptions{Size: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if d2, err := OpenFile(path, FileOptions{}); err == nil || !strings.Contains(err.Error(), "in use") {
		if d2 != nil {
			d2.Close()
		}
		t.Fatalf("second open of an image in use: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second close: %v, want ErrClosed", err)
	}
	if err := d.Flush(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("flush after close: %v, want ErrClosed", err)
	}
	if err := d.ReadAt(context.Background(), make([]byte, 512), 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("read after close: %v, want ErrClosed", err)
	}
	d, err = OpenFile(path, FileOptions{})
	if err != nil {
		t.Fatalf("reopen after close: %v", err)
	}
	d.Close()
}

func TestFileMetadataFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.img")
	d, err := OpenFile(path, FileOptions{Size: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.SetMetadata("pr", []byte("aptpl state")); err != nil {
		t.Fatal(err)
	}
	if err := d.SetMetadata("pr", []byte("aptpl state 2")); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(path + ".meta")
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "pr" {
		t.Fatalf("metadata directory holds %v, want just pr (no temporary files)", entries)
	}
	d, err = OpenFile(path, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if v, err := d.GetMetadata("pr"); err != nil || string(v) != "aptpl state 2" {
		t.Fatalf("metadata after reopen: %q, %v", v, err)
	}
}

func TestFileResizePersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.img")
	d, err := OpenFile(path, FileOptions{Size: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Resize((4 << 20) / 512); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != 4<<20 {
		t.Fatalf("image after resize: %v, %v", fi, err)
	}
}

func TestFileErrorClassification(t *testing.T) {
	tests := []struct {
		errno error
		want  error
	}{
		{unix.EIO, scsi.ErrMedium},
		{unix.EBADMSG, scsi.ErrMedium},
		{unix.ENOSPC, scsi.ErrNoSpace},
		{unix.EDQUOT, scsi.ErrNoSpace},
		{unix.EROFS, scsi.ErrWriteProtected},
		{os.ErrClosed, ErrClosed},
	}
	for _, tc := range tests {
		wrapped := &os.PathError{Op: "pwrite", Path: "x", Err: tc.errno}
		err := classifyErrno(wrapped)
		if !errors.Is(err, tc.want) || !errors.Is(err, tc.errno) {
			t.Errorf("classifyErrno(%v) = %v, want it to match %v and keep the cause", tc.errno, err, tc.want)
		}
	}
}

// TestFileCopyBetweenFiles copies between two images with copy_file_range
// and checks data and holes.
func TestFileCopyBetweenFiles(t *testing.T) {
	ctx := context.Background()
	src := openFileDev(t, 512, (4<<20)/512).(*File)
	dst := openFileDev(t, 512, (4<<20)/512).(*File)
	mustWrite(t, src, 0, pattern(1<<20, 1))
	mustWrite(t, src, (2<<20)/512, pattern(1<<20, 2))
	mustWrite(t, dst, (1<<20)/512, pattern(1<<20, 3)) // becomes a hole
	// Call the fast path itself, so that a silent fallback cannot pass.
	err := dst.copyFileRange(ctx, src, 0, 0, src.Blocks())
	if errors.Is(err, errNoCopyFileRange) {
		t.Skip("this file system cannot copy_file_range")
	}
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mustRead(t, dst, 0, dst.Blocks()), mustRead(t, src, 0, src.Blocks())) {
		t.Fatal("copy differs from its source")
	}
	want := []extent{{true, 2048}, {false, 2048}, {true, 2048}, {false, 2048}}
	if got := extents(t, dst, dst.Blocks()); !equalExtents(got, want) {
		t.Fatalf("copy extents %v, want %v", got, want)
	}
}

// TestFileSyncFailureIsSticky checks that after a failed data sync the
// device refuses writes and flushes but keeps serving reads.
func TestFileSyncFailureIsSticky(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "a.img")
	d, err := OpenFile(path, FileOptions{Size: 64 * 512})
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, d, 0, pattern(512, 1))
	if err := d.syncFailed("fdatasync", unix.EIO); !errors.Is(err, scsi.ErrMedium) {
		t.Fatalf("sync failure: %v, want ErrMedium", err)
	}
	if err := d.WriteAt(ctx, pattern(512, 2), 1, false); !errors.Is(err, scsi.ErrMedium) || !errors.Is(err, unix.EIO) {
		t.Errorf("write after a failed sync: %v, want the sticky ErrMedium", err)
	}
	if err := d.Flush(ctx); !errors.Is(err, scsi.ErrMedium) {
		t.Errorf("flush after a failed sync: %v, want the sticky ErrMedium", err)
	}
	if err := d.Unmap(ctx, 0, 1); !errors.Is(err, scsi.ErrMedium) {
		t.Errorf("unmap after a failed sync: %v, want the sticky ErrMedium", err)
	}
	if !bytes.Equal(mustRead(t, d, 0, 1), pattern(512, 1)) {
		t.Error("reads stopped working after a failed sync")
	}
	// A later failure does not replace the first.
	if err := d.syncFailed("fsync", unix.ENOSPC); errors.Is(err, scsi.ErrNoSpace) {
		t.Errorf("second failure replaced the first: %v", err)
	}
	// Close reports the failure but still releases the image.
	if err := d.Close(); !errors.Is(err, scsi.ErrMedium) {
		t.Errorf("close of a failed device: %v, want ErrMedium", err)
	}
	d, err = OpenFile(path, FileOptions{})
	if err != nil {
		t.Fatalf("reopen after a failed close: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestFileWriteZeroesFallbacks runs WriteZeroes and Unmap on a file system
// that lacks fallocate modes (injected EOPNOTSUPP) and checks each fallback
// still reads back zeros, and which modes it tried.
func TestFileWriteZeroesFallbacks(t *testing.T) {
	tests := []struct {
		name        string
		unsupported []uint32
		unmap       bool
		wantModes   []uint32
	}{
		{"zero range", nil, false, []uint32{fallocZeroRange}},
		{"punch and allocate", []uint32{fallocZeroRange}, false, []uint32{fallocZeroRange, fallocPunchHole, fallocAllocate}},
		{"punch without allocate", []uint32{fallocZeroRange, fallocAllocate}, false, []uint32{fallocZeroRange, fallocPunchHole, fallocAllocate}},
		{"write zeros", []uint32{fallocZeroRange, fallocPunchHole}, false, []uint32{fallocZeroRange, fallocPunchHole}},
		{"unmap punches", nil, true, []uint32{fallocPunchHole}},
		{"unmap writes zeros", []uint32{fallocPunchHole}, true, []uint32{fallocPunchHole}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			d := openFileDev(t, 512, 4096).(*File)
			var modes []uint32
			d.fallocate = func(fd int, mode uint32, off, n int64) error {
				modes = append(modes, mode)
				for _, m := range tc.unsupported {
					if m == mode {
						return unix.EOPNOTSUPP
					}
				}
				return unix.Fallocate(fd, mode, off, n)
			}
			data := pattern(1<<20, 1)
			mustWrite(t, d, 0, data)
			if err := d.WriteZeroes(ctx, 5, 1000, tc.unmap); err != nil {
				t.Fatal(err)
			}
			clear(data[5*512 : 1005*512])
			if !bytes.Equal(mustRead(t, d, 0, 2048), data) {
				t.Fatal("the zeroed range does not read back as zeros around intact data")
			}
			if len(modes) != len(tc.wantModes) {
				t.Fatalf("fallocate modes %v, want %v", modes, tc.wantModes)
			}
			for i := range modes {
				if modes[i] != tc.wantModes[i] {
					t.Fatalf("fallocate modes %v, want %v", modes, tc.wantModes)
				}
			}
		})
	}
}

// TestFileFlushAfterAllocationChange checks that a hole punch or a resize
// makes the next Flush a full fsync, and only the next one.
func TestFileFlushAfterAllocationChange(t *testing.T) {
	ctx := context.Background()
	d := openFileDev(t, 512, 4096).(*File)
	if d.syncMeta.Load() {
		t.Fatal("a freshly opened image needs a metadata sync")
	}
	mustWrite(t, d, 0, pattern(4096, 1))
	if d.syncMeta.Load() {
		t.Fatal("a plain write asked for a metadata sync")
	}
	if err := d.Unmap(ctx, 0, 8); err != nil {
		t.Fatal(err)
	}
	if !d.syncMeta.Load() {
		t.Fatal("unmap did not ask for a metadata sync")
	}
	if err := d.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if d.syncMeta.Load() {
		t.Fatal("flush did not clear the metadata sync request")
	}
}
