package blockstore

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/cockroachdb/pebble/vfs"
)

// TestPoolFullAndReclaim fills a capacity-limited pool until writes fail
// with ErrNoSpace, checks reads keep working and nothing written is
// harmed, then frees space (unmap + cleaning) and checks writes work again.
func TestPoolFullAndReclaim(t *testing.T) {
	ctx := context.Background()
	fs := vfs.NewStrictMem()
	opts := Options{CapacityBytes: 256 << 10, SegmentSize: 16 << 10}
	s := openMem(t, fs, opts)
	v := mustCreate(t, s, "vol", 1<<20, 4096)
	var lba uint64
	var err error
	for ; lba < v.Blocks(); lba++ {
		if err = v.WriteAt(ctx, pattern(byte(lba), 4096), lba, false); err != nil {
			break
		}
	}
	if !errors.Is(err, ErrNoSpace) {
		t.Fatalf("filling the pool: %v", err)
	}
	full := lba
	if full < 32 {
		t.Fatalf("pool full after only %d blocks", full)
	}
	got := make([]byte, 4096)
	check := func(what string, from, to uint64, zero bool) {
		t.Helper()
		for i := from; i < to; i++ {
			if err := v.ReadAt(ctx, got, i); err != nil {
				t.Fatalf("%s: read %d: %v", what, i, err)
			}
			want := pattern(byte(i), 4096)
			if zero {
				want = make([]byte, 4096)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%s: lba %d wrong", what, i)
			}
		}
	}
	check("pool full", 0, full, false)
	if err := v.Unmap(ctx, 0, full/2); err != nil {
		t.Fatalf("unmap in a full pool: %v", err)
	}
	if err := v.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	before := s.Stats().AllocatedBytes
	st, err := s.CollectGarbage(ctx, 1000, 1.0, 0)
	if err != nil {
		t.Fatalf("gc: %v", err)
	}
	after := s.Stats().AllocatedBytes
	if st.SegmentsCleaned == 0 || after >= before {
		t.Fatalf("gc cleaned %d segments, allocated %d -> %d", st.SegmentsCleaned, before, after)
	}
	if st.WriteAmplification < 1 || st.WriteAmplification > 2 {
		t.Fatalf("write amplification %.2f", st.WriteAmplification)
	}
	for i := full; i < full+8; i++ {
		if err := v.WriteAt(ctx, pattern(byte(i), 4096), i, false); err != nil {
			t.Fatalf("write after reclaim: %v", err)
		}
	}
	check("after gc", 0, full/2, true)
	check("after gc", full/2, full+8, false)
	v.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openMem(t, fs, opts)
	defer s.Close()
	v, err = s.OpenVolume("vol")
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	check("reopen", 0, full/2, true)
	check("reopen", full/2, full+8, false)
}

// TestGCKeepsSnapshots cleans segments whose data only a snapshot still
// sees, and checks that deleting the snapshot lets cleaning free it.
func TestGCKeepsSnapshots(t *testing.T) {
	ctx := context.Background()
	fs := vfs.NewStrictMem()
	s := openMem(t, fs, Options{SegmentSize: 16 << 10})
	defer s.Close()
	v := mustCreate(t, s, "vol", 256<<10, 4096)
	defer v.Close()
	for i := uint64(0); i < 64; i++ {
		if err := v.WriteAt(ctx, pattern(1, 4096), i, false); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.CreateSnapshot(ctx, "vol", "snap"); err != nil {
		t.Fatal(err)
	}
	for i := uint64(0); i < 64; i++ {
		if err := v.WriteAt(ctx, pattern(2, 4096), i, false); err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.ListSnapshots("vol")
	if err != nil || len(list) != 1 || list[0].ExclusiveBytes != 64*4096 {
		t.Fatalf("snapshots = %+v, %v", list, err)
	}
	if _, err := s.CollectGarbage(ctx, 1000, 1.0, 0); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4096)
	for i := uint64(0); i < 64; i++ {
		if err := v.ReadSnapshotAt(ctx, "snap", got, i); err != nil || !bytes.Equal(got, pattern(1, 4096)) {
			t.Fatalf("snapshot lba %d after gc: %v", i, err)
		}
		if err := v.ReadAt(ctx, got, i); err != nil || !bytes.Equal(got, pattern(2, 4096)) {
			t.Fatalf("live lba %d after gc: %v", i, err)
		}
	}
	before := s.Stats().AllocatedBytes
	pad0 := s.stats.padBytes.Load()
	if err := s.DeleteSnapshot(ctx, "vol", "snap"); err != nil {
		t.Fatal(err)
	}
	if err := v.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CollectGarbage(ctx, 1000, 1.0, 0); err != nil {
		t.Fatal(err)
	}
	// The syncs since pad the log to a page boundary: new allocation that
	// is not the snapshot's.
	padded := int64(s.stats.padBytes.Load() - pad0)
	if after := s.Stats().AllocatedBytes; before-after+padded < 64*4096 {
		t.Fatalf("deleting the snapshot freed %d bytes (%d padding appended), want at least %d", before-after, padded, 64*4096)
	}
}

func TestOvercommitLimit(t *testing.T) {
	ctx := context.Background()
	s := openMem(t, vfs.NewStrictMem(), Options{CapacityBytes: 1 << 20, OvercommitRatio: 2})
	defer s.Close()
	if _, err := s.CreateVolume(ctx, "a", VolumeOptions{SizeBytes: 1 << 20, BlockSize: 4096}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateVolume(ctx, "b", VolumeOptions{SizeBytes: 1<<20 + 4096, BlockSize: 4096}); !errors.Is(err, ErrOvercommit) {
		t.Fatalf("create past the over-commit limit: %v", err)
	}
	if _, err := s.CreateVolume(ctx, "b", VolumeOptions{SizeBytes: 1 << 20, BlockSize: 4096}); err != nil {
		t.Fatalf("create up to the limit: %v", err)
	}
	if err := s.ResizeVolume(ctx, "b", 2<<20); !errors.Is(err, ErrOvercommit) {
		t.Fatalf("grow past the limit: %v", err)
	}
	if st := s.Stats(); st.LogicalBytes != 2<<20 || st.CapacityBytes != 1<<20 || st.FreeBytes <= 0 {
		t.Fatalf("stats %+v", st)
	}
}
