package blockstore

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/vfs"
)

// TestSustainedOverwrite is the opt-in space benchmark: VBS_SUSTAINED=10m
// overwrites a volume that fills 80% of the pool with 4 KiB random writes
// from 32 submitters, with the background cleaner on, and reports write
// amplification and p99 latency against the first seconds (empty store).
func TestSustainedOverwrite(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("VBS_SUSTAINED"))
	if err != nil {
		t.Skip("set VBS_SUSTAINED=<duration> to run")
	}
	const volBytes = 256 << 20
	ctx := context.Background()
	s, err := Open(t.TempDir(), Options{
		FS: vfs.Default, CapacityBytes: volBytes * 10 / 8, SegmentSize: 4 << 20,
		GCInterval: 5 * time.Millisecond, GCMaxSegments: 8,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	v := mustCreate(t, s, "vol", volBytes, 4096)
	defer v.Close()
	blocks := v.Blocks()
	type sample struct {
		at  time.Duration
		lat time.Duration
	}
	var mu sync.Mutex
	var samples []sample
	var nospace int
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			p := make([]byte, 4096)
			var local []sample
			for time.Since(start) < d {
				t0 := time.Now()
				err := v.WriteAt(ctx, p, rng.Uint64N(blocks), false)
				if errors.Is(err, ErrNoSpace) {
					mu.Lock()
					nospace++
					mu.Unlock()
					continue
				} else if err != nil {
					t.Error(err)
					return
				}
				local = append(local, sample{at: t0.Sub(start), lat: time.Since(t0)})
			}
			mu.Lock()
			samples = append(samples, local...)
			mu.Unlock()
		}(w)
	}
	wg.Wait()
	p99 := func(from, to time.Duration) (time.Duration, int) {
		var l []time.Duration
		for _, s := range samples {
			if s.at >= from && s.at < to {
				l = append(l, s.lat)
			}
		}
		if len(l) == 0 {
			return 0, 0
		}
		slices.Sort(l)
		return l[len(l)*99/100], len(l)
	}
	emptyP99, n0 := p99(0, 2*time.Second)
	lateP99, n1 := p99(d/2, d)
	st := s.Stats()
	t.Logf("%d writes in %v (%.0f IOPS), %d ErrNoSpace", len(samples), d, float64(len(samples))/d.Seconds(), nospace)
	t.Logf("write amplification %.2f (user %d MiB, cleaner %d MiB, %d segments cleaned)", st.WriteAmplification, st.BytesWritten>>20, st.GCBytes>>20, st.GCSegments)
	t.Logf("p99 latency: first 2s %v (%d writes), second half %v (%d writes): %.2fx", emptyP99, n0, lateP99, n1, float64(lateP99)/float64(max(emptyP99, 1)))
}
