package blockstore

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/cockroachdb/pebble/vfs"
)

// TestLBAStatusModel checks LBAStatus on a plain volume against a model of
// which blocks are mapped, with mappings spread over the overlay and the
// index (a small MaxDirty moves the overlay often) and runs longer than
// one status chunk.
func TestLBAStatusModel(t *testing.T) {
	for seed := uint64(1); seed <= 4; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			ctx := context.Background()
			rng := rand.New(rand.NewPCG(seed, 5))
			s := openMem(t, vfs.NewMem(), Options{MaxDirty: 64 + int(rng.IntN(2000))})
			defer s.Close()
			const blocks = 3 * statusChunk
			v := mustCreate(t, s, "vol", blocks*512, BlockSize512)
			defer v.Close()
			mapped := make([]bool, blocks)
			for round := 0; round < 150; round++ {
				lba := rng.Uint64N(blocks)
				n := min(rng.Uint64N(3*statusChunk/2)+1, blocks-lba)
				switch rng.IntN(4) {
				case 0, 1:
					n = min(n, 2048)
					if err := v.WriteAt(ctx, make([]byte, n*512), lba, false); err != nil {
						t.Fatal(err)
					}
					for i := lba; i < lba+n; i++ {
						mapped[i] = true
					}
				case 2:
					if err := v.Unmap(ctx, lba, n); err != nil {
						t.Fatal(err)
					}
					for i := lba; i < lba+n; i++ {
						mapped[i] = false
					}
				default:
					if err := v.Flush(ctx); err != nil {
						t.Fatal(err)
					}
				}
				for k := 0; k < 20; k++ {
					at := rng.Uint64N(blocks)
					maxBlocks := rng.Uint64N(2*blocks) + 1
					m, got, err := v.LBAStatus(ctx, at, maxBlocks)
					if err != nil {
						t.Fatal(err)
					}
					want := uint64(0)
					for at+want < blocks && want < maxBlocks && mapped[at+want] == mapped[at] {
						want++
					}
					if m != mapped[at] || got != want {
						t.Fatalf("round %d: LBAStatus(%d, %d) = %v, %d; want %v, %d", round, at, maxBlocks, m, got, mapped[at], want)
					}
				}
			}
		})
	}
}

// BenchmarkLBAStatusMapped asks for the status of a fully mapped 64K-block
// extent whose mappings are in the index (GET LBA STATUS on a written LUN).
func BenchmarkLBAStatusMapped(b *testing.B) {
	s, err := Open(b.TempDir(), Options{FS: vfs.Default, MaxDirty: 4096})
	if err != nil {
		b.Fatal(err)
	}
	const blocks = 1 << 16
	v := mustCreate(b, s, "lun", blocks*512, BlockSize512)
	b.Cleanup(func() {
		v.Close()
		s.Close()
	})
	ctx := context.Background()
	p := make([]byte, 1024*512)
	for lba := uint64(0); lba < blocks; lba += 1024 {
		if err := v.WriteAt(ctx, p, lba, false); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m, n, err := v.LBAStatus(ctx, 0, blocks)
		if err != nil || !m || n != blocks {
			b.Fatalf("LBAStatus = %v, %d, %v; want a mapped run of %d", m, n, err, blocks)
		}
	}
}
