package blockstore

import (
	"context"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/vfs"
	"github.com/vbs-storage/vbs/blockstore/index"
)

// The access pattern that made libiscsi's suite crawl on a store LUN: the
// same few hundred blocks near LBA 0 are written, flushed and unmapped
// again, round after round (the UNMAP, WRITE SAME, GET LBA STATUS, COMPARE
// AND WRITE and VERIFY tests all work there), and small reads of those
// blocks miss the mapping cache, since unmapped blocks are not cached.
// Before the fix every trim of more than one block was a pebble range
// deletion, whether or not the blocks were in the index, and every overlay
// commit added a version of each block; pebble kept all of it in the
// memtable (never full in the suite), so each read stepped over the whole
// history of its blocks and re-fragmented every range deletion.

// churnMode says whether the writes reach the index each round.
type churnMode struct {
	name string
	// maxDirty is Options.MaxDirty: 256 moves each round's 257-block write
	// into the index (as a busy store, a segment roll or a snapshot does);
	// 0 (the default) leaves it in the overlay, so the index sees mostly
	// the trims.
	maxDirty int
}

var churnModes = []churnMode{{"trims", 0}, {"commits", 256}}

// churnNearZero runs rounds of: write blocks [0, 257), Flush, unmap
// [0, 2+i%255).
func churnNearZero(tb testing.TB, v *Volume, rounds int) {
	tb.Helper()
	ctx := context.Background()
	p := pattern(1, 257*int(v.BlockSize()))
	for i := 0; i < rounds; i++ {
		if err := v.WriteAt(ctx, p, 0, false); err != nil {
			tb.Fatal(err)
		}
		if err := v.Flush(ctx); err != nil {
			tb.Fatal(err)
		}
		if err := v.Unmap(ctx, 0, uint64(2+i%255)); err != nil {
			tb.Fatal(err)
		}
	}
}

// TestReadCostBoundedByHistory checks, by counting the index entries pebble
// steps over, that a small read of unmapped blocks costs the same after
// 200 and after 3000 rounds of write/flush/unmap of those blocks.
func TestReadCostBoundedByHistory(t *testing.T) {
	ctx := context.Background()
	for _, m := range churnModes {
		t.Run(m.name, func(t *testing.T) {
			var perScan []float64
			for _, rounds := range []int{200, 3000} {
				s := openMem(t, vfs.NewMem(), Options{MaxDirty: m.maxDirty})
				v := mustCreate(t, s, "lun", 128<<20, BlockSize512)
				churnNearZero(t, v, rounds)
				buf := make([]byte, 64*512)
				// The first reads may start a flush; measure the settled
				// index after it.
				for i := 0; i < 2; i++ {
					if err := v.ReadAt(ctx, buf, 0); err != nil {
						t.Fatal(err)
					}
					s.idx.WaitForFlush()
				}
				before := s.idx.Stats()
				for i := 0; i < 100; i++ {
					if err := v.ReadAt(ctx, buf, 0); err != nil {
						t.Fatal(err)
					}
					if _, _, err := v.LBAStatus(ctx, 0, 1024); err != nil {
						t.Fatal(err)
					}
				}
				after := s.idx.Stats()
				scans := after.Scans - before.Scans
				if scans == 0 {
					t.Fatalf("%d rounds: no index scans; the test no longer reaches the index", rounds)
				}
				points := float64(after.ScanPoints-before.ScanPoints) / float64(scans)
				t.Logf("%d rounds: %d scans, %.1f index entries stepped over per scan, %d churn flushes", rounds, scans, points, after.Flushes)
				perScan = append(perScan, points)
				v.Close()
				s.Close()
			}
			// A scan may step over what the index lets pile up before it
			// flushes, and over each of its blocks (up to 256 here, for
			// LBAStatus) once per memtable or sstable that holds it; it must
			// not step over the blocks' whole history.
			const bound = index.DefaultChurnScanSkips + 256*8
			for i, p := range perScan {
				if p > bound {
					t.Errorf("run %d: %.1f entries per scan, want at most %d", i, p, bound)
				}
			}
		})
	}
}

// BenchmarkReadAfterChurn reads 64 unmapped blocks at LBA 0 (one index scan
// per read) after rounds of write/flush/unmap there; the cost per read must
// not grow with the number of rounds.
func BenchmarkReadAfterChurn(b *testing.B) {
	for _, m := range churnModes {
		for _, rounds := range []int{0, 500, 4000} {
			b.Run(fmt.Sprintf("%s/rounds=%d", m.name, rounds), func(b *testing.B) {
				v := churnedVolume(b, m.maxDirty, rounds)
				ctx := context.Background()
				buf := make([]byte, 64*512)
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if err := v.ReadAt(ctx, buf, 0); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkTrimThenRead is the suite's inner loop once history has built
// up: each op unmaps two blocks it has just written and reads 64 unmapped
// blocks near them, so every read follows a trim.
func BenchmarkTrimThenRead(b *testing.B) {
	for _, m := range churnModes {
		b.Run(m.name, func(b *testing.B) {
			v := churnedVolume(b, m.maxDirty, 2000)
			ctx := context.Background()
			p := pattern(2, 2*512)
			buf := make([]byte, 64*512)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				lba := uint64(i%128) * 2
				if err := v.WriteAt(ctx, p, lba, false); err != nil {
					b.Fatal(err)
				}
				if err := v.Unmap(ctx, lba, 2); err != nil {
					b.Fatal(err)
				}
				if err := v.ReadAt(ctx, buf, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// churnedVolume opens a store on the local disk with the given MaxDirty and
// a 128 MiB volume of 512-byte blocks, closed when b ends, after rounds of
// churnNearZero.
func churnedVolume(b *testing.B, maxDirty, rounds int) *Volume {
	s, err := Open(b.TempDir(), Options{FS: vfs.Default, MaxDirty: maxDirty})
	if err != nil {
		b.Fatal(err)
	}
	v := mustCreate(b, s, "lun", 128<<20, BlockSize512)
	b.Cleanup(func() {
		v.Close()
		s.Close()
	})
	churnNearZero(b, v, rounds)
	return v
}
