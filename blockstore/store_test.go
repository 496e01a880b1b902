package blockstore

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/vfs"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const testDir = "/store"

// segWrapFS passes every segment file the store opens through wrap, so a
// test can watch or hold what the store does to its log.
type segWrapFS struct {
	vfs.FS
	wrap func(vfs.File) vfs.File
}

func (fs segWrapFS) seg(f vfs.File, name string, err error) (vfs.File, error) {
	if err != nil || !strings.Contains(name, "/"+segDirName+"/") {
		return f, err
	}
	return fs.wrap(f), nil
}

func (fs segWrapFS) Create(name string) (vfs.File, error) {
	f, err := fs.FS.Create(name)
	return fs.seg(f, name, err)
}

func (fs segWrapFS) Open(name string, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := fs.FS.Open(name, opts...)
	return fs.seg(f, name, err)
}

func (fs segWrapFS) OpenReadWrite(name string, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := fs.FS.OpenReadWrite(name, opts...)
	return fs.seg(f, name, err)
}

func openMem(t testing.TB, fs vfs.FS, o Options) *Store {
	t.Helper()
	o.FS = fs
	s, err := Open(testDir, o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func mustCreate(t testing.TB, s *Store, name string, size uint64, bs uint32) *Volume {
	t.Helper()
	ctx := context.Background()
	if _, err := s.CreateVolume(ctx, name, VolumeOptions{SizeBytes: size, BlockSize: bs}); err != nil {
		t.Fatalf("CreateVolume: %v", err)
	}
	v, err := s.OpenVolume(name)
	if err != nil {
		t.Fatalf("OpenVolume: %v", err)
	}
	return v
}

func pattern(seed byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

func TestWriteReadReopen(t *testing.T) {
	ctx := context.Background()
	for _, bs := range []uint32{BlockSize512, BlockSize4096} {
		fs := vfs.NewStrictMem()
		s := openMem(t, fs, Options{SegmentSize: 64 << 10})
		v := mustCreate(t, s, "vol", 1<<20, bs)
		blocks := v.Blocks()
		zero := make([]byte, bs)
		got := make([]byte, bs)
		if err := v.ReadAt(ctx, got, 3); err != nil || !bytes.Equal(got, zero) {
			t.Fatalf("thin read: %v", err)
		}
		// Enough data to roll segments several times.
		want := make(map[uint64][]byte)
		for i := uint64(0); i < 200; i++ {
			lba := (i * 37) % (blocks - 4)
			p := pattern(byte(i), int(bs)*3)
			if err := v.WriteAt(ctx, p, lba, false); err != nil {
				t.Fatalf("WriteAt: %v", err)
			}
			for k := uint64(0); k < 3; k++ {
				want[lba+k] = p[k*uint64(bs) : (k+1)*uint64(bs)]
			}
		}
		if err := v.Unmap(ctx, 10, 5); err != nil {
			t.Fatal(err)
		}
		for k := uint64(10); k < 15; k++ {
			delete(want, k)
		}
		check := func(v *Volume) {
			t.Helper()
			for lba := uint64(0); lba < blocks; lba++ {
				if err := v.ReadAt(ctx, got, lba); err != nil {
					t.Fatalf("ReadAt %d: %v", lba, err)
				}
				w, ok := want[lba]
				if !ok {
					w = zero
				}
				if !bytes.Equal(got, w) {
					t.Fatalf("bs %d lba %d: wrong data", bs, lba)
				}
			}
		}
		check(v)
		if err := v.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = openMem(t, fs, Options{SegmentSize: 64 << 10})
		v, err := s.OpenVolume("vol")
		if err != nil {
			t.Fatal(err)
		}
		check(v)
		v.Close()
		s.Close()
	}
}

func TestVolumeCatalog(t *testing.T) {
	ctx := context.Background()
	fs := vfs.NewStrictMem()
	s := openMem(t, fs, Options{})
	defer s.Close()
	if _, err := s.CreateVolume(ctx, "a", VolumeOptions{SizeBytes: 1 << 20, BlockSize: 4096}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		o    VolumeOptions
		want error
	}{
		{"a", VolumeOptions{SizeBytes: 1 << 20, BlockSize: 4096}, ErrVolumeExists},
		{"b", VolumeOptions{SizeBytes: 1 << 20, BlockSize: 1024}, ErrInvalid},
		{"b", VolumeOptions{SizeBytes: 1000, BlockSize: 512}, ErrInvalid},
		{"", VolumeOptions{SizeBytes: 1 << 20, BlockSize: 512}, ErrInvalid},
	}
	for _, tt := range tests {
		if _, err := s.CreateVolume(ctx, tt.name, tt.o); !errors.Is(err, tt.want) {
			t.Errorf("CreateVolume(%q, %+v) = %v, want %v", tt.name, tt.o, err, tt.want)
		}
	}
	v, err := s.OpenVolume("a")
	if err != nil {
		t.Fatal(err)
	}
	if err := v.WriteAt(ctx, pattern(1, 4096), 100, false); err != nil {
		t.Fatal(err)
	}
	if err := s.ResizeVolume(ctx, "a", 100*4096); !errors.Is(err, ErrShrink) {
		t.Fatalf("shrink over data: %v", err)
	}
	if err := s.ResizeVolume(ctx, "a", 101*4096); err != nil {
		t.Fatalf("shrink to data end: %v", err)
	}
	if err := v.WriteAt(ctx, pattern(1, 4096), 101, false); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("write past end: %v", err)
	}
	if err := s.ResizeVolume(ctx, "a", 4<<20); err != nil {
		t.Fatal(err)
	}
	if v.Blocks() != 1024 {
		t.Fatalf("blocks after grow = %d", v.Blocks())
	}
	if err := s.DeleteVolume(ctx, "a"); !errors.Is(err, ErrVolumeBusy) {
		t.Fatalf("delete open volume: %v", err)
	}
	v.Close()
	if err := s.DeleteVolume(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if got := s.ListVolumes(); len(got) != 0 {
		t.Fatalf("volumes after delete: %+v", got)
	}
	// A new volume with the same name starts empty.
	v = mustCreate(t, s, "a", 1<<20, 4096)
	got := make([]byte, 4096)
	if err := v.ReadAt(ctx, got, 100); err != nil || !bytes.Equal(got, make([]byte, 4096)) {
		t.Fatalf("recreated volume not empty: %v", err)
	}
	v.Close()
}
