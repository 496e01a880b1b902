package blockstore

import (
	"context"
	"testing"
)

// BenchmarkWriteSeq128K is one submitter writing 128 KiB sequentially
// through a 256 MiB volume (wrapping), no flushes: log bandwidth, which
// pre-formatting segments competes with.
func BenchmarkWriteSeq128K(b *testing.B) {
	s, v := benchStore(b)
	ctx := context.Background()
	const n = 32 // blocks of 4 KiB
	blocks := v.Blocks()
	p := make([]byte, n*4096)
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	b.ResetTimer()
	lba := uint64(0)
	for i := 0; i < b.N; i++ {
		if err := v.WriteAt(ctx, p, lba, false); err != nil {
			b.Fatal(err)
		}
		lba += n
		if lba+n > blocks {
			lba = 0
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(s.Stats().AllocatedBytes)/float64(b.N*len(p)), "alloc/written")
}
