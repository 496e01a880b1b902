package storedev

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/vfs"
	"github.com/vbs-storage/vbs/blockstore"
	"github.com/vbs-storage/vbs/target/scsi"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func open(t *testing.T, fs vfs.FS, size uint64, bs uint32, o blockstore.Options) *Volume {
	t.Helper()
	o.FS = fs
	d, err := OpenWith(context.Background(), "/st", DefaultVolume, size, bs, o)
	if err != nil {
		t.Fatalf("OpenWith: %v", err)
	}
	return d
}

func fill(b byte, n int) []byte { return bytes.Repeat([]byte{b}, n) }

func TestDeviceContract(t *testing.T) {
	ctx := context.Background()
	fs := vfs.NewStrictMem()
	d := open(t, fs, 1<<20, 4096, blockstore.Options{})
	if d.BlockSize() != 4096 || d.Blocks() != 256 {
		t.Fatalf("geometry %d x %d", d.BlockSize(), d.Blocks())
	}
	got := make([]byte, 8192)
	if err := d.ReadAt(ctx, got, 10); err != nil || !bytes.Equal(got, make([]byte, 8192)) {
		t.Fatalf("unwritten blocks must read zero: %v", err)
	}
	if err := d.WriteAt(ctx, fill(0xaa, 8192), 10, false); err != nil {
		t.Fatal(err)
	}
	if err := d.WriteAt(ctx, fill(0xbb, 4096), 20, true); err != nil {
		t.Fatal(err)
	}
	if err := d.ReadAt(ctx, got, 10); err != nil || !bytes.Equal(got, fill(0xaa, 8192)) {
		t.Fatalf("read back: %v", err)
	}
	status := []struct {
		lba, max   uint64
		mapped     bool
		wantBlocks uint64
	}{
		{0, 256, false, 10},
		{10, 256, true, 2},
		{11, 256, true, 1},
		{12, 256, false, 8},
		{12, 3, false, 3},
		{20, 256, true, 1},
		{21, 1000, false, 235},
	}
	for _, s := range status {
		m, n, err := d.LBAStatus(ctx, s.lba, s.max)
		if err != nil || m != s.mapped || n != s.wantBlocks {
			t.Errorf("LBAStatus(%d, %d) = %v, %d, %v; want %v, %d", s.lba, s.max, m, n, err, s.mapped, s.wantBlocks)
		}
	}
	if err := d.Unmap(ctx, 11, 1); err != nil {
		t.Fatal(err)
	}
	if err := d.WriteZeroes(ctx, 20, 1, false); err != nil {
		t.Fatal(err)
	}
	if m, n, _ := d.LBAStatus(ctx, 11, 256); m || n != 245 {
		t.Errorf("after unmap: mapped=%v n=%d", m, n)
	}
	if err := d.SetMetadata("pr", []byte("reservation")); err != nil {
		t.Fatal(err)
	}
	if err := d.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopen with size 0: the existing volume, its data and metadata.
	d = open(t, fs, 0, 4096, blockstore.Options{})
	defer d.Close()
	if err := d.ReadAt(ctx, got, 10); err != nil || !bytes.Equal(got[:4096], fill(0xaa, 4096)) || !bytes.Equal(got[4096:], make([]byte, 4096)) {
		t.Fatalf("after reopen: %v", err)
	}
	if b, err := d.GetMetadata("pr"); err != nil || string(b) != "reservation" {
		t.Fatalf("metadata after reopen = %q, %v", b, err)
	}
	if b, err := d.GetMetadata("missing"); b != nil || err != nil {
		t.Fatalf("missing metadata = %q, %v", b, err)
	}
}

func TestOpenSizes(t *testing.T) {
	ctx := context.Background()
	fs := vfs.NewStrictMem()
	if _, err := OpenWith(ctx, "/st", "v", 0, 512, blockstore.Options{FS: fs}); !errors.Is(err, blockstore.ErrVolumeNotFound) {
		t.Fatalf("size 0 on a missing volume: %v", err)
	}
	d := open(t, fs, 1<<20, 512, blockstore.Options{})
	d.Close()
	if _, err := OpenWith(ctx, "/st", DefaultVolume, 1<<20, 4096, blockstore.Options{FS: fs}); !errors.Is(err, blockstore.ErrInvalid) {
		t.Fatalf("block size change: %v", err)
	}
	if _, err := OpenWith(ctx, "/st", DefaultVolume, 1<<19, 512, blockstore.Options{FS: fs}); !errors.Is(err, blockstore.ErrShrink) {
		t.Fatalf("implicit shrink: %v", err)
	}
	d = open(t, fs, 2<<20, 512, blockstore.Options{})
	if d.Blocks() != 4096 {
		t.Fatalf("grow on open: %d blocks", d.Blocks())
	}
	d.Close()
}

func TestErrorTranslation(t *testing.T) {
	ctx := context.Background()

	t.Run("corruption is MEDIUM ERROR", func(t *testing.T) {
		fs := vfs.NewStrictMem()
		d := open(t, fs, 1<<20, 512, blockstore.Options{})
		defer d.Close()
		if err := d.WriteAt(ctx, fill(0x11, 512), 7, true); err != nil {
			t.Fatal(err)
		}
		corruptSegments(t, fs, "/st/segments")
		err := d.ReadAt(ctx, make([]byte, 512), 7)
		if !errors.Is(err, scsi.ErrMedium) || !errors.Is(err, blockstore.ErrCorrupt) {
			t.Fatalf("read of a corrupt block: %v", err)
		}
		if c := d.Store().Stats().Corruptions; c != 1 {
			t.Fatalf("corruptions counted: %d", c)
		}
	})

	t.Run("pool full is NO SPACE and reads keep working", func(t *testing.T) {
		fs := vfs.NewStrictMem()
		d := open(t, fs, 1<<20, 4096, blockstore.Options{CapacityBytes: 64 << 10})
		defer d.Close()
		var err error
		lba := uint64(0)
		for ; lba < 256 && err == nil; lba++ {
			err = d.WriteAt(ctx, fill(byte(lba), 4096), lba, false)
		}
		if !errors.Is(err, scsi.ErrNoSpace) {
			t.Fatalf("filling the pool: %v", err)
		}
		got := make([]byte, 4096)
		for i := uint64(0); i < lba-1; i++ {
			if err := d.ReadAt(ctx, got, i); err != nil || !bytes.Equal(got, fill(byte(i), 4096)) {
				t.Fatalf("read lba %d after pool full: %v", i, err)
			}
		}
		if err := d.Flush(ctx); err != nil {
			t.Fatalf("flush after pool full: %v", err)
		}
	})

	t.Run("miscompare", func(t *testing.T) {
		fs := vfs.NewStrictMem()
		d := open(t, fs, 1<<20, 512, blockstore.Options{})
		defer d.Close()
		if err := d.WriteAt(ctx, fill(1, 1024), 0, false); err != nil {
			t.Fatal(err)
		}
		cmp := fill(1, 1024)
		cmp[700] = 2
		err := d.CompareAndWrite(ctx, 0, cmp, fill(3, 1024), false)
		var me *scsi.MiscompareError
		if !errors.As(err, &me) || me.Offset != 700 {
			t.Fatalf("miscompare: %v", err)
		}
		if err := d.CompareAndWrite(ctx, 0, fill(1, 1024), fill(3, 1024), false); err != nil {
			t.Fatalf("matching compare: %v", err)
		}
		got := make([]byte, 1024)
		if err := d.ReadAt(ctx, got, 0); err != nil || !bytes.Equal(got, fill(3, 1024)) {
			t.Fatalf("after compare and write: %v", err)
		}
	})

	t.Run("out of range", func(t *testing.T) {
		fs := vfs.NewStrictMem()
		d := open(t, fs, 1<<20, 512, blockstore.Options{})
		defer d.Close()
		if err := d.ReadAt(ctx, make([]byte, 1024), d.Blocks()-1); !errors.Is(err, scsi.ErrOutOfRange) {
			t.Fatalf("read past end: %v", err)
		}
		if err := d.WriteAt(ctx, make([]byte, 512), d.Blocks(), false); !errors.Is(err, scsi.ErrOutOfRange) {
			t.Fatalf("write past end: %v", err)
		}
	})
}

// corruptSegments flips a byte in the data area of every segment file.
func corruptSegments(t *testing.T, fs vfs.FS, dir string) {
	t.Helper()
	names, err := fs.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if !strings.HasSuffix(n, ".seg") {
			continue
		}
		f, err := fs.OpenReadWrite(fs.PathJoin(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		st, _ := f.Stat()
		if st.Size() > 100 {
			b := make([]byte, 1)
			if _, err := f.ReadAt(b, 100); err != nil {
				t.Fatal(err)
			}
			b[0] ^= 0xff
			if _, err := f.WriteAt(b, 100); err != nil {
				t.Fatal(err)
			}
		}
		f.Close()
	}
}
