package blockstore

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"

	"github.com/cockroachdb/pebble/vfs"
)

// TestSegmentViews checks reads through segment mappings against reads
// through pread: the same data, across segments and after cleaning, and
// no view at all when they are turned off or the FS has no descriptors.
func TestSegmentViews(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fs    vfs.FS
		off   bool
		views bool
	}{
		{"os", vfs.Default, false, true},
		{"os-no-views", vfs.Default, true, false},
		{"mem", vfs.NewMem(), false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			o := Options{FS: tc.fs, SegmentSize: 1 << 20, NoSegmentViews: tc.off}
			s, err := Open(dir, o)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			v := mustCreate(t, s, "v", 4<<20, 4096)
			want := make([]byte, 4<<20)
			for i := range want {
				want[i] = byte(i/4096) ^ byte(i)
			}
			// Whole volume, then scattered overwrites: reads cross many
			// segments and runs.
			for lba := uint64(0); lba < 1024; lba += 64 {
				if err := v.WriteAt(ctx, want[lba*4096:(lba+64)*4096], lba, false); err != nil {
					t.Fatal(err)
				}
			}
			for i := uint64(0); i < 1024; i += 7 {
				copy(want[i*4096:], bytes.Repeat([]byte{byte(i)}, 4096))
				if err := v.WriteAt(ctx, want[i*4096:(i+1)*4096], i, false); err != nil {
					t.Fatal(err)
				}
			}
			check := func(when string) {
				t.Helper()
				got := make([]byte, len(want))
				for lba := uint64(0); lba < 1024; lba += 32 {
					if err := v.ReadAt(ctx, got[lba*4096:(lba+32)*4096], lba); err != nil {
						t.Fatalf("%s: read lba %d: %v", when, lba, err)
					}
				}
				if i := firstDiff(got, want); i >= 0 {
					t.Fatalf("%s: byte %d differs", when, i)
				}
			}
			check("written")
			s.segMu.RLock()
			segs, views := len(s.segs), len(s.views)
			s.segMu.RUnlock()
			if segs < 3 {
				t.Fatalf("%d segments; the test wants reads across several", segs)
			}
			if tc.views && views != segs {
				t.Fatalf("%d views for %d segments", views, segs)
			}
			if !tc.views && views != 0 {
				t.Fatalf("%d views, want none", views)
			}
			if _, err := s.CollectGarbage(ctx, 100, 1, 0); err != nil {
				t.Fatal(err)
			}
			check("after cleaning")
			s.segMu.RLock()
			segs, views = len(s.segs), len(s.views)
			s.segMu.RUnlock()
			if tc.views && views != segs {
				t.Fatalf("after cleaning: %d views for %d segments", views, segs)
			}
		})
	}
}

// TestSegmentViewFault cuts a segment file short behind the store's back.
// A read of a block past the new end faults in the mapping; it must fail
// as corruption, be counted, and leave the process and other reads alone.
func TestSegmentViewFault(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(dir, Options{FS: vfs.Default, SegmentSize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	v := mustCreate(t, s, "v", 1<<20, 4096)
	data := bytes.Repeat([]byte{0x5a}, 64*4096)
	if err := v.WriteAt(ctx, data, 0, false); err != nil {
		t.Fatal(err)
	}
	if err := v.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	seg := s.activeSeg.Load()
	if _, view := s.segment(seg); view == nil {
		t.Fatal("the active segment has no view")
	}
	// Keep the first pages: block 0 still reads, block 40 (about 160 KiB
	// in) lies in a page past the end.
	if err := os.Truncate(s.segPath(seg), 16<<10); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	before := s.Stats().Corruptions
	err = v.ReadAt(ctx, buf, 40)
	var ce *CorruptionError
	if !errors.As(err, &ce) || ce.LBA != 40 || ce.Seg != seg {
		t.Fatalf("read past the cut: %v, want a CorruptionError for lba 40 in segment %d", err, seg)
	}
	if got := s.Stats().Corruptions; got != before+1 {
		t.Fatalf("corruptions %d, want %d", got, before+1)
	}
	if err := v.ReadAt(ctx, buf, 0); err != nil || buf[0] != 0x5a {
		t.Fatalf("read before the cut: %v (byte %#x)", err, buf[0])
	}
}

// TestDiskPoolBytes: the pool of a store on the OS filesystem is its
// segment files plus most of the free space, for a directory that does
// not exist yet too.
func TestDiskPoolBytes(t *testing.T) {
	dir := t.TempDir()
	fresh, err := DiskPoolBytes(dir + "/not/yet")
	if err != nil || fresh <= 0 {
		t.Fatalf("DiskPoolBytes of a new directory: %d, %v", fresh, err)
	}
	s, err := Open(dir, Options{FS: vfs.Default, SegmentSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	v := mustCreate(t, s, "v", 8<<20, 4096)
	if err := v.WriteAt(context.Background(), make([]byte, 8<<20), 0, false); err != nil {
		t.Fatal(err)
	}
	allocated := s.Stats().AllocatedBytes
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	du, err := vfs.Default.GetDiskUsage(dir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DiskPoolBytes(dir)
	if err != nil {
		t.Fatal(err)
	}
	// The segment files count in full, the free space at 90%; the disk
	// may change a little between the two measurements.
	want := allocated + int64(float64(du.AvailBytes)*diskPoolShare)
	if d := got - want; d < -(64<<20) || d > 64<<20 {
		t.Fatalf("DiskPoolBytes %d, want about %d (segments %d + 90%% of %d free)", got, want, allocated, du.AvailBytes)
	}
}
