package blockstore

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/vfs"
)

// BenchmarkFlush8QD1Prep is BenchmarkFlush8QD1 with 16 MiB segments, so the
// run crosses many segments: "created" makes each segment when it rolls,
// "prepared" rolls into files the preparer zero-filled and synced ahead.
// The timer starts in the first prepared segment (or the second created
// one).
func BenchmarkFlush8QD1Prep(b *testing.B) {
	for _, prepared := range []bool{false, true} {
		name := "created"
		if prepared {
			name = "prepared"
		}
		b.Run(name, func(b *testing.B) {
			const segSize = 16 << 20
			s, err := open(b.TempDir(), Options{FS: vfs.Default, SegmentSize: segSize}.withDefaults(), prepared)
			if err != nil {
				b.Fatal(err)
			}
			v := mustCreate(b, s, "bench", benchVolBytes, 4096)
			defer s.Close()
			defer v.Close()
			ctx := context.Background()
			blocks := v.Blocks()
			rng := rand.New(rand.NewPCG(1, 1))
			p := make([]byte, 4096)
			// Start in the first segment that was prepared (or the second).
			deadline := time.Now().Add(time.Minute)
			for i := 0; (prepared && s.stats.prepUsed.Load() == 0 || s.activeSeg.Load() == 1) && time.Now().Before(deadline); i++ {
				// FUA now and then: the preparer only prepares for a log that syncs.
				if err := v.WriteAt(ctx, p, rng.Uint64N(blocks), i%8 == 0); err != nil {
					b.Fatal(err)
				}
			}
			if prepared && s.stats.prepUsed.Load() == 0 {
				b.Fatal("never rolled into a prepared segment")
			}
			if err := v.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			seg0, used0 := s.activeSeg.Load(), s.stats.prepUsed.Load()
			runFlush8QD1(b, v, rng)
			// Segment IDs are shared with the cleaner's head, which does not
			// run here, so the difference counts the writer's rolls.
			b.ReportMetric(float64(s.activeSeg.Load()-seg0), "rolls")
			b.ReportMetric(float64(s.stats.prepUsed.Load()-used0), "prepared-rolls")
		})
	}
}
