package blockstore

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/vfs"
)

func TestScrub(t *testing.T) {
	ctx := context.Background()
	fs := vfs.NewStrictMem()
	s := openMem(t, fs, Options{SegmentSize: 16 << 10})
	defer s.Close()
	v := mustCreate(t, s, "vol", 1<<20, 4096)
	defer v.Close()
	for i := uint64(0); i < 20; i++ {
		if err := v.WriteAt(ctx, pattern(byte(i), 4096), i, false); err != nil {
			t.Fatal(err)
		}
	}
	var calls int
	p, err := s.Scrub(ctx, func(ScrubProgress) { calls++ })
	if err != nil || p.Corrupt != 0 || p.Records != 20 || p.SegmentsDone != p.Segments || calls != p.Segments {
		t.Fatalf("clean scrub: %+v, %d progress calls, %v", p, calls, err)
	}
	// Damage one data byte of the first segment.
	names, _ := fs.List(testDir + "/segments")
	for _, n := range names {
		if strings.HasSuffix(n, "0001.seg") {
			f, err := fs.OpenReadWrite(testDir + "/segments/" + n)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt([]byte{0xff}, 200); err != nil {
				t.Fatal(err)
			}
			f.Close()
		}
	}
	p, err = s.Scrub(ctx, nil)
	if err != nil || p.Corrupt != 1 || p.Records != 20 {
		t.Fatalf("scrub of a damaged segment: %+v, %v", p, err)
	}
	if s.Stats().Corruptions != 1 {
		t.Fatalf("corruptions = %d", s.Stats().Corruptions)
	}
}

func TestFlatten(t *testing.T) {
	ctx := context.Background()
	fs := vfs.NewStrictMem()
	s := openMem(t, fs, Options{SegmentSize: 32 << 10})
	base := mustCreate(t, s, "base", 256*512, 512)
	for i := uint64(0); i < 200; i += 2 {
		if err := base.WriteAt(ctx, pattern(byte(i), 512), i, false); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.CreateSnapshot(ctx, "base", "gold"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateClone(ctx, "base", "gold", "c1"); err != nil {
		t.Fatal(err)
	}
	c, err := s.OpenVolume("c1")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WriteAt(ctx, pattern(0xee, 512), 4, false); err != nil {
		t.Fatal(err)
	}
	if err := c.Unmap(ctx, 10, 4); err != nil {
		t.Fatal(err)
	}
	// The parent moves on; the clone must not see it.
	if err := base.WriteAt(ctx, pattern(0x77, 512), 20, false); err != nil {
		t.Fatal(err)
	}
	want := func(lba uint64) []byte {
		switch {
		case lba == 4:
			return pattern(0xee, 512)
		case lba >= 10 && lba < 14, lba%2 == 1, lba >= 200:
			return make([]byte, 512)
		}
		return pattern(byte(lba), 512)
	}
	check := func(what string, c *Volume) {
		t.Helper()
		got := make([]byte, 512)
		for lba := uint64(0); lba < 256; lba++ {
			if err := c.ReadAt(ctx, got, lba); err != nil || !bytes.Equal(got, want(lba)) {
				t.Fatalf("%s: lba %d: %v", what, lba, err)
			}
		}
	}
	check("clone", c)
	var last, total uint64
	if err := s.FlattenVolume(ctx, "c1", func(d, tot uint64) { last, total = d, tot }); err != nil {
		t.Fatal(err)
	}
	if last != total || total != 256 {
		t.Fatalf("progress ended at %d/%d", last, total)
	}
	check("flattened", c)
	base.Close()
	if err := s.DeleteSnapshot(ctx, "base", "gold"); err != nil {
		t.Fatalf("delete the snapshot a flattened clone came from: %v", err)
	}
	if err := s.DeleteVolume(ctx, "base"); err != nil {
		t.Fatalf("delete the parent of a flattened clone: %v", err)
	}
	if _, err := s.CollectGarbage(ctx, 100, 1, 0); err != nil {
		t.Fatal(err)
	}
	check("parent deleted", c)
	c.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openMem(t, fs, Options{SegmentSize: 32 << 10})
	defer s.Close()
	if c, err = s.OpenVolume("c1"); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	check("reopened", c)
}

// TestBackgroundGC checks the store-owned cleaner runs, and stops on Close
// (goleak in TestMain catches a goroutine left behind).
func TestBackgroundGC(t *testing.T) {
	ctx := context.Background()
	fs := vfs.NewStrictMem()
	s := openMem(t, fs, Options{SegmentSize: 8 << 10, GCInterval: time.Millisecond, GCMaxUtilization: 1})
	defer s.Close()
	v := mustCreate(t, s, "vol", 64<<10, 4096)
	defer v.Close()
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; s.Stats().GCSegments == 0; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("background cleaning never ran: %+v", s.Stats())
		}
		if err := v.WriteAt(ctx, pattern(byte(i), 4096), uint64(i%4), false); err != nil {
			t.Fatal(err)
		}
	}
	got := make([]byte, 4096)
	for i := uint64(0); i < 4; i++ {
		if err := v.ReadAt(ctx, got, i); err != nil {
			t.Fatal(err)
		}
	}
}
