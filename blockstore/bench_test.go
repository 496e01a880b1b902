package blockstore

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/vfs"
)

const benchVolBytes = 256 << 20

func benchStore(b *testing.B) (*Store, *Volume) {
	b.Helper()
	s, err := Open(b.TempDir(), Options{FS: vfs.Default})
	if err != nil {
		b.Fatal(err)
	}
	v := mustCreate(b, s, "bench", benchVolBytes, 4096)
	b.Cleanup(func() {
		v.Close()
		s.Close()
	})
	return s, v
}

// BenchmarkWrite4K is 4 KiB random writes from 32 concurrent submitters
// (the QD32 case): the writer batches them into group commits.
func BenchmarkWrite4K(b *testing.B) {
	s, v := benchStore(b)
	writeRandom4K(b, v, nil)
	b.StopTimer()
	st := s.Stats()
	b.ReportMetric(float64(st.Writes)/float64(max(st.Batches, 1)), "writes/batch")
}

// BenchmarkWrite4KFlush8 issues a Flush after every 8 writes per submitter.
func BenchmarkWrite4KFlush8(b *testing.B) {
	s, v := benchStore(b)
	ctx := context.Background()
	writeRandom4K(b, v, func(i int) error {
		if i%8 == 0 {
			return v.Flush(ctx)
		}
		return nil
	})
	b.StopTimer()
	st := s.Stats()
	b.ReportMetric(float64(st.Syncs), "fsyncs")
}

// BenchmarkRead4K reads random mapped 4 KiB blocks whose mappings are in
// the pebble index (the steady state after a flush).
func BenchmarkRead4K(b *testing.B) {
	_, v := benchStore(b)
	ctx := context.Background()
	const span = 16384 // 64 MiB mapped
	p := make([]byte, 64*4096)
	for lba := uint64(0); lba < span; lba += 64 {
		if err := v.WriteAt(ctx, p, lba, false); err != nil {
			b.Fatal(err)
		}
	}
	if err := v.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	var seed atomic.Uint64
	b.SetBytes(4096)
	b.ReportAllocs()
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		rng := rand.New(rand.NewPCG(seed.Add(1), 2))
		buf := make([]byte, 4096)
		for pb.Next() {
			if err := v.ReadAt(ctx, buf, rng.Uint64N(span)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkReadOverlay4K reads blocks whose mappings are still in the
// in-memory overlay (written, not yet flushed).
func BenchmarkReadOverlay4K(b *testing.B) {
	_, v := benchStore(b)
	ctx := context.Background()
	const span = 4096
	p := make([]byte, 4096)
	for lba := uint64(0); lba < span; lba++ {
		if err := v.WriteAt(ctx, p, lba, false); err != nil {
			b.Fatal(err)
		}
	}
	buf := make([]byte, 4096)
	rng := rand.New(rand.NewPCG(3, 3))
	b.SetBytes(4096)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := v.ReadAt(ctx, buf, rng.Uint64N(span)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWrite4KSnapshots is BenchmarkWrite4K on a volume that has 0 or
// 100 snapshots, each taken after a round of overwrites: the write cost
// must not depend on how many there are.
func BenchmarkWrite4KSnapshots(b *testing.B) {
	for _, n := range []int{0, 1, 100} {
		b.Run(fmt.Sprintf("snapshots=%d", n), func(b *testing.B) {
			s, v := benchStore(b)
			ctx := context.Background()
			blocks := v.Blocks()
			p := make([]byte, 4096)
			rng := rand.New(rand.NewPCG(9, 9))
			for i := 0; i < n; i++ {
				for k := 0; k < 64; k++ {
					if err := v.WriteAt(ctx, p, rng.Uint64N(blocks), false); err != nil {
						b.Fatal(err)
					}
				}
				if _, err := s.CreateSnapshot(ctx, "bench", fmt.Sprint(i)); err != nil {
					b.Fatal(err)
				}
			}
			writeRandom4K(b, v, nil)
		})
	}
}

// BenchmarkRead128K reads random 128 KiB extents (one index scan resolves
// each 64-block chunk).
func BenchmarkRead128K(b *testing.B) {
	_, v := benchStore(b)
	ctx := context.Background()
	const span = 16384
	p := make([]byte, 64*4096)
	for lba := uint64(0); lba < span; lba += 64 {
		if err := v.WriteAt(ctx, p, lba, false); err != nil {
			b.Fatal(err)
		}
	}
	if err := v.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 128<<10)
	rng := rand.New(rand.NewPCG(4, 4))
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := v.ReadAt(ctx, buf, rng.Uint64N(span/32)*32); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFlush8QD1 is the durable write path one request at a time, as
// fio's randwrite-4k-qd1-fsync8 job drives it: eight 4 KiB random writes,
// then a Flush. One op is one write; flush-ns/op is the mean Flush time.
func BenchmarkFlush8QD1(b *testing.B) {
	_, v := benchStore(b)
	runFlush8QD1(b, v, rand.New(rand.NewPCG(1, 1)))
}

// runFlush8QD1 resets the timer and does b.N 4 KiB writes at random LBAs of
// v, one at a time, with a Flush after every eighth; it reports the mean
// Flush time as flush-ns.
func runFlush8QD1(b *testing.B, v *Volume, rng *rand.Rand) {
	ctx := context.Background()
	blocks := v.Blocks()
	p := make([]byte, 4096)
	var flushNS, flushes int64
	b.SetBytes(4096)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 1; i <= b.N; i++ {
		if err := v.WriteAt(ctx, p, rng.Uint64N(blocks), false); err != nil {
			b.Fatal(err)
		}
		if i%8 == 0 {
			t0 := time.Now()
			if err := v.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			flushNS += int64(time.Since(t0))
			flushes++
		}
	}
	b.StopTimer()
	if flushes > 0 {
		b.ReportMetric(float64(flushNS)/float64(flushes), "flush-ns")
	}
}

// BenchmarkWrite4KSnapshotting is BenchmarkWrite4K on a filled volume
// while snapshots are taken, one per 6,500 writes (5 a second at 32K
// IOPS, what `make bench-snapshots` asks of a node), against none. It
// reports how long each CreateSnapshot took.
func BenchmarkWrite4KSnapshotting(b *testing.B) {
	for _, every := range []int64{0, 6500} {
		b.Run(fmt.Sprintf("every=%d", every), func(b *testing.B) {
			s, v := benchStore(b)
			ctx := context.Background()
			blocks := v.Blocks()
			p := make([]byte, 128<<10)
			for lba := uint64(0); lba < blocks; lba += 32 {
				if err := v.WriteAt(ctx, p, lba, false); err != nil {
					b.Fatal(err)
				}
			}
			var done atomic.Uint64
			var snaps int
			var snapTime, snapMax time.Duration
			due := make(chan struct{}, 1)
			taker := make(chan struct{})
			go func() {
				defer close(taker)
				for range due {
					t0 := time.Now()
					if _, err := s.CreateSnapshot(ctx, "bench", fmt.Sprint(snaps)); err != nil {
						b.Error(err)
						return
					}
					d := time.Since(t0)
					snapTime += d
					snapMax = max(snapMax, d)
					snaps++
				}
			}()
			var after func(int) error
			if every > 0 {
				after = func(int) error {
					if done.Add(1)%uint64(every) == 0 {
						select {
						case due <- struct{}{}:
						default: // the last one is still being taken
						}
					}
					return nil
				}
			}
			writeRandom4K(b, v, after)
			b.StopTimer()
			close(due)
			<-taker
			if snaps > 0 {
				b.ReportMetric(float64(snaps), "snapshots")
				b.ReportMetric(float64(snapTime.Microseconds())/float64(snaps), "snap-µs")
				b.ReportMetric(float64(snapMax.Microseconds()), "snap-max-µs")
			}
		})
	}
}

// writeRandom4K resets the timer and writes 4 KiB blocks at random LBAs of
// v from 32 submitters (16 per core on this 2-core box: the QD32 case)
// until b.N writes are done. After the i-th write of a submitter (from 1)
// it calls after(i), if set; an error fails the benchmark.
func writeRandom4K(b *testing.B, v *Volume, after func(i int) error) {
	ctx := context.Background()
	blocks := v.Blocks()
	var seed atomic.Uint64
	b.SetBytes(4096)
	b.ReportAllocs()
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		rng := rand.New(rand.NewPCG(seed.Add(1), 1))
		p := make([]byte, 4096)
		for i := 1; pb.Next(); i++ {
			if err := v.WriteAt(ctx, p, rng.Uint64N(blocks), false); err != nil {
				b.Error(err)
				return
			}
			if after != nil {
				if err := after(i); err != nil {
					b.Error(err)
					return
				}
			}
		}
	})
}

// BenchmarkRead128KScattered reads 128 KiB extents of a volume whose
// blocks were all overwritten at random after a sequential fill: each
// extent's blocks lie scattered over the log, as after fio's random-write
// jobs. views=false reads each run with pread, views=true copies it out of
// the segment's mapping (segview.go).
func BenchmarkRead128KScattered(b *testing.B) {
	for _, views := range []bool{false, true} {
		b.Run(fmt.Sprintf("views=%v", views), func(b *testing.B) {
			s, err := Open(b.TempDir(), Options{FS: vfs.Default, NoSegmentViews: !views})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			v := mustCreate(b, s, "bench", benchVolBytes, 4096)
			defer v.Close()
			ctx := context.Background()
			blocks := v.Blocks()
			p := make([]byte, 32*4096)
			for lba := uint64(0); lba < blocks; lba += 32 {
				if err := v.WriteAt(ctx, p, lba, false); err != nil {
					b.Fatal(err)
				}
			}
			rng := rand.New(rand.NewPCG(5, 5))
			for i := uint64(0); i < 2*blocks; i++ {
				if err := v.WriteAt(ctx, p[:4096], rng.Uint64N(blocks), false); err != nil {
					b.Fatal(err)
				}
			}
			buf := make([]byte, 128<<10)
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := v.ReadAt(ctx, buf, rng.Uint64N(blocks/32)*32); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
