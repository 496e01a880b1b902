package blockstore

import (
	"bytes"
	"context"
	"errors"
	"os"
	"sync"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/vfs"
)

// diskFS is a filesystem of a fixed size over an in-memory one: it reports
// its free space, lets a test take space away as another program on the
// disk would (hog), and fails a write that would need more space than is
// free with ENOSPC, as a full disk does. It remembers every write it
// refused, by path.
type diskFS struct {
	vfs.FS
	size int64

	mu      sync.Mutex
	hogged  int64
	refused []string
}

func newDiskFS(size int64) *diskFS { return &diskFS{FS: vfs.NewMem(), size: size} }

// used sums the sizes of every file under the root.
func (fs *diskFS) used() int64 {
	var n int64
	var walk func(dir string)
	walk = func(dir string) {
		names, err := fs.FS.List(dir)
		if err != nil {
			return
		}
		for _, name := range names {
			p := fs.FS.PathJoin(dir, name)
			fi, err := fs.FS.Stat(p)
			if err != nil {
				continue
			}
			if fi.IsDir() {
				walk(p)
			} else {
				n += fi.Size()
			}
		}
	}
	walk("/")
	return n
}

func (fs *diskFS) avail() int64 {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.size - fs.hogged - fs.used()
}

// hog takes n bytes away from the free space (negative n gives them back).
func (fs *diskFS) hog(n int64) {
	fs.mu.Lock()
	fs.hogged += n
	fs.mu.Unlock()
}

func (fs *diskFS) refusedWrites() []string {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return append([]string(nil), fs.refused...)
}

func (fs *diskFS) GetDiskUsage(string) (vfs.DiskUsage, error) {
	a := max(fs.avail(), 0)
	return vfs.DiskUsage{AvailBytes: uint64(a), TotalBytes: uint64(fs.size), UsedBytes: uint64(fs.size - a)}, nil
}

func (fs *diskFS) wrap(f vfs.File, path string, err error) (vfs.File, error) {
	if err != nil {
		return f, err
	}
	return &diskFile{File: f, fs: fs, path: path}, nil
}

func (fs *diskFS) Create(name string) (vfs.File, error) {
	f, err := fs.FS.Create(name)
	return fs.wrap(f, name, err)
}

func (fs *diskFS) OpenReadWrite(name string, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := fs.FS.OpenReadWrite(name, opts...)
	return fs.wrap(f, name, err)
}

func (fs *diskFS) ReuseForWrite(oldname, newname string) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname)
	return fs.wrap(f, newname, err)
}

type diskFile struct {
	vfs.File
	fs   *diskFS
	path string
	off  int64 // for Write
}

// room fails with ENOSPC when writing n bytes at off would grow the file
// by more than the disk has free.
func (f *diskFile) room(off, n int64) error {
	fi, err := f.File.Stat()
	if err != nil {
		return err
	}
	if grow := off + n - fi.Size(); grow > 0 && grow > f.fs.avail() {
		f.fs.mu.Lock()
		f.fs.refused = append(f.fs.refused, f.path)
		f.fs.mu.Unlock()
		return &os.PathError{Op: "write", Path: f.path, Err: syscall.ENOSPC}
	}
	return nil
}

func (f *diskFile) Write(p []byte) (int, error) {
	if err := f.room(f.off, int64(len(p))); err != nil {
		return 0, err
	}
	n, err := f.File.Write(p)
	f.off += int64(n)
	return n, err
}

func (f *diskFile) WriteAt(p []byte, off int64) (int, error) {
	if err := f.room(off, int64(len(p))); err != nil {
		return 0, err
	}
	return f.File.WriteAt(p, off)
}

// TestDiskReserveKeepsIndexRoom fills the disk under a store from outside,
// as another program sharing it would. With a disk reserve, writes fail
// with ErrNoSpace before the disk is full, so the index never meets a
// full disk (pebble treats that as fatal: the process would die). Reads
// keep working and return what was written; giving the space back makes
// writes work again without reopening; the reserve shows in Stats.
func TestDiskReserveKeepsIndexRoom(t *testing.T) {
	ctx := context.Background()
	const (
		bs      = 4096
		blocks  = 2048 // an 8 MiB volume
		size    = 64 << 20
		reserve = 12 << 20
	)
	fs := newDiskFS(size)
	s := openMem(t, fs, Options{SegmentSize: 1 << 20, DiskReserveBytes: reserve})
	defer s.Close()
	v := mustCreate(t, s, "vol", blocks*bs, bs)
	defer v.Close()

	want := make(map[uint64][]byte)
	write := func(i int) error {
		lba := uint64(i*7919) % blocks
		p := bytes.Repeat([]byte{byte(i), byte(i >> 8), 0xa5, 0x5a}, bs/4)
		if err := v.WriteAt(ctx, p, lba, false); err != nil {
			return err
		}
		want[lba] = p
		return nil
	}
	for i := range 1000 {
		if err := write(i); err != nil {
			t.Fatalf("write %d with the disk nearly empty: %v", i, err)
		}
	}
	// Another program takes all but 20 MiB: 8 MiB above the reserve.
	fs.hog(fs.avail() - 20<<20)
	i := 1000
	for ; ; i++ {
		err := write(i)
		if errors.Is(err, ErrNoSpace) {
			break
		}
		if err != nil {
			t.Fatalf("write %d: want success or ErrNoSpace, got %v", i, err)
		}
		if i > 1000+20<<20/bs {
			t.Fatalf("20 MiB of writes after the disk filled up, and none refused (avail %d)", fs.avail())
		}
	}
	refusedAt := i
	if a := fs.avail(); a < reserve-diskCheckBytes {
		t.Fatalf("the log ate into the reserve: %d bytes free, reserve %d", a, reserve)
	}
	if st := s.Stats(); st.FreeBytes != 0 || st.DiskReserveBytes != reserve {
		t.Fatalf("Stats with the disk at its reserve: FreeBytes %d, DiskReserveBytes %d; want 0, %d", st.FreeBytes, st.DiskReserveBytes, reserve)
	}
	// The store still works for everything that needs no new log space,
	// and the index still writes (a flush moves nothing, a snapshot does).
	if err := v.Flush(ctx); err != nil {
		t.Fatalf("flush with the disk at its reserve: %v", err)
	}
	if _, err := s.CreateSnapshot(ctx, "vol", "at-reserve"); err != nil {
		t.Fatalf("snapshot with the disk at its reserve: %v", err)
	}
	got := make([]byte, bs)
	for lba, p := range want {
		if err := v.ReadAt(ctx, got, lba); err != nil {
			t.Fatalf("read lba %d with the disk at its reserve: %v", lba, err)
		}
		if !bytes.Equal(got, p) {
			t.Fatalf("lba %d reads wrong data with the disk at its reserve", lba)
		}
	}
	// The other program frees its space: writes work again at once.
	fs.hog(-(fs.hogged))
	for j := range 100 {
		if err := write(refusedAt + j); err != nil {
			t.Fatalf("write after the disk was freed again: %v", err)
		}
	}
	if r := fs.refusedWrites(); len(r) > 0 {
		t.Fatalf("the filesystem refused writes for lack of space (the reserve should have prevented it): %v", r)
	}
	for lba, p := range want {
		if err := v.ReadAt(ctx, got, lba); err != nil || !bytes.Equal(got, p) {
			t.Fatalf("lba %d after the disk was freed: err %v, data equal %v", lba, err, bytes.Equal(got, p))
		}
	}
}

// TestDiskReserveNeedsDiskUsage: a reserve on a filesystem that cannot
// report its free space is refused when the store opens, not ignored.
func TestDiskReserveNeedsDiskUsage(t *testing.T) {
	_, err := Open(testDir, Options{FS: vfs.NewMem(), DiskReserveBytes: 1 << 20})
	if err == nil || !errors.Is(err, vfs.ErrUnsupported) {
		t.Fatalf("Open with a disk reserve on MemFS: got %v, want an error wrapping vfs.ErrUnsupported", err)
	}
}
