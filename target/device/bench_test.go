package device

import (
	"context"
	"testing"

	"github.com/vbs-storage/vbs/target/scsi"
)

// benchBlocks is the size of benchmark devices: 256 MiB of 512-byte blocks.
const benchBlocks = (256 << 20) / 512

// benchLBAs is a fixed scatter of 4 KiB-aligned block numbers across the
// device, so the benchmarks touch many chunks and stripes without calling
// a random number generator in the loop.
func benchLBAs(blocks uint64) []uint64 {
	lbas := make([]uint64, 4096)
	x := uint64(0x9e3779b97f4a7c15)
	for i := range lbas {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		lbas[i] = (x % (blocks / 8)) * 8
	}
	return lbas
}

// prefill writes every 4 KiB the benchmarks may touch, so that they measure
// steady state (chunks allocated, file blocks allocated).
func prefill(tb testing.TB, d scsi.Device, lbas []uint64) {
	tb.Helper()
	p := pattern(4096, 1)
	for _, lba := range lbas {
		if err := d.WriteAt(context.Background(), p, lba, false); err != nil {
			tb.Fatal(err)
		}
	}
}

func benchIO(b *testing.B, d scsi.Device, write bool) {
	ctx := context.Background()
	lbas := benchLBAs(d.Blocks())
	prefill(b, d, lbas)
	p := pattern(4096, 2)
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		lba := lbas[i%len(lbas)]
		i++
		var err error
		if write {
			err = d.WriteAt(ctx, p, lba, false)
		} else {
			err = d.ReadAt(ctx, p, lba)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}

func benchIOParallel(b *testing.B, d scsi.Device, write bool) {
	ctx := context.Background()
	lbas := benchLBAs(d.Blocks())
	prefill(b, d, lbas)
	b.SetBytes(4096)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		p := pattern(4096, 3)
		i := 0
		for pb.Next() {
			lba := lbas[i%len(lbas)]
			i += 7
			var err error
			if write {
				err = d.WriteAt(ctx, p, lba, false)
			} else {
				err = d.ReadAt(ctx, p, lba)
			}
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkNullRead4K(b *testing.B) {
	d, err := NewNull(512, benchBlocks)
	if err != nil {
		b.Fatal(err)
	}
	benchIO(b, d, false)
}

func BenchmarkNullWrite4K(b *testing.B) {
	d, err := NewNull(512, benchBlocks)
	if err != nil {
		b.Fatal(err)
	}
	benchIO(b, d, true)
}

func BenchmarkMemWrite4K(b *testing.B) { benchIO(b, openMem(b, 512, benchBlocks), true) }
func BenchmarkMemRead4K(b *testing.B)  { benchIO(b, openMem(b, 512, benchBlocks), false) }
func BenchmarkMemWrite4KParallel(b *testing.B) {
	benchIOParallel(b, openMem(b, 512, benchBlocks), true)
}
func BenchmarkMemRead4KParallel(b *testing.B) {
	benchIOParallel(b, openMem(b, 512, benchBlocks), false)
}
func BenchmarkFileWrite4K(b *testing.B) { benchIO(b, openFileDev(b, 512, benchBlocks), true) }
func BenchmarkFileRead4K(b *testing.B)  { benchIO(b, openFileDev(b, 512, benchBlocks), false) }

func BenchmarkFileWrite4KParallel(b *testing.B) {
	benchIOParallel(b, openFileDev(b, 512, benchBlocks), true)
}

// TestZeroAllocs enforces what the benchmarks report: a steady-state 4 KiB
// read or write allocates nothing on any backend.
func TestZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation counts")
	}
	ctx := context.Background()
	null, err := NewNull(512, 1<<16)
	if err != nil {
		t.Fatal(err)
	}
	devs := []struct {
		name string
		d    scsi.Device
	}{
		{"null", null},
		{"mem", openMem(t, 512, 1<<16)},
		{"file", openFileDev(t, 512, 1<<16)},
	}
	for _, dv := range devs {
		lbas := benchLBAs(dv.d.Blocks())
		prefill(t, dv.d, lbas)
		p := pattern(4096, 4)
		i := 0
		ops := []struct {
			name string
			op   func() error
		}{
			{"read", func() error { return dv.d.ReadAt(ctx, p, lbas[i%len(lbas)]) }},
			{"write", func() error { return dv.d.WriteAt(ctx, p, lbas[i%len(lbas)], false) }},
		}
		for _, o := range ops {
			var opErr error
			n := testing.AllocsPerRun(500, func() {
				if err := o.op(); err != nil {
					opErr = err
				}
				i++
			})
			if opErr != nil {
				t.Fatalf("%s %s: %v", dv.name, o.name, opErr)
			}
			if n != 0 {
				t.Errorf("%s %s: %.1f allocations per 4 KiB, want 0", dv.name, o.name, n)
			}
		}
	}
}
