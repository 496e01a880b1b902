package scsi

import (
	"context"
	"testing"
)

// benchIO runs 4 KiB commands against a 4096-byte-block memDev the way a
// transport does: one Command and one Result reused for every I/O.
func benchIO(b *testing.B, cdb []byte, out []byte) {
	dev := newMemDev(4096, 1<<12)
	h := newHarness(b, dev, LUOptions{WriteCache: true})
	ctx := context.Background()
	cmd := &Command{Nexus: h.n, CDB: cdb, DataOut: out, ExpectedDataIn: 4096}
	res := &Result{}
	b.SetBytes(4096)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Vary the LBA like a random workload would.
		lba := uint32(i*7919) & (1<<12 - 1)
		cdb[2], cdb[3], cdb[4], cdb[5] = byte(lba>>24), byte(lba>>16), byte(lba>>8), byte(lba)
		res.Reset()
		h.tgt.Execute(ctx, cmd, res)
		if res.Status != StatusGood {
			b.Fatalf("status %#x", res.Status)
		}
	}
}

func BenchmarkRead4K(b *testing.B) {
	benchIO(b, cdbRW10(opRead10, 0, 1, 0), nil)
}

func BenchmarkWrite4K(b *testing.B) {
	benchIO(b, cdbRW10(opWrite10, 0, 1, 0), fill(4096, 0xA5))
}

// TestHotPathAllocations guards the zero-allocation promise of READ and
// WRITE in steady state.
func TestHotPathAllocations(t *testing.T) {
	dev := newMemDev(4096, 64)
	h := newHarness(t, dev, LUOptions{WriteCache: true})
	ctx := context.Background()
	for _, c := range []struct {
		name string
		cmd  *Command
	}{
		{"read", &Command{Nexus: h.n, CDB: cdbRW10(opRead10, 3, 1, 0), ExpectedDataIn: 4096}},
		{"write", &Command{Nexus: h.n, CDB: cdbRW10(opWrite10, 3, 1, 0), DataOut: fill(4096, 1)}},
		{"write fua", &Command{Nexus: h.n, CDB: cdbRW10(opWrite10, 3, 1, rwFUA), DataOut: fill(4096, 1)}},
	} {
		res := &Result{}
		h.tgt.Execute(ctx, c.cmd, res) // warm the buffers
		allocs := testing.AllocsPerRun(100, func() {
			res.Reset()
			h.tgt.Execute(ctx, c.cmd, res)
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per command", c.name, allocs)
		}
	}
}
