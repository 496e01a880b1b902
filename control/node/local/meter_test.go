package local

import (
	"context"
	"testing"
	"time"

	"github.com/vbs-storage/vbs/blockstore"
	"github.com/vbs-storage/vbs/control/node"
	"github.com/vbs-storage/vbs/internal/storedev"
)

func TestMeterBuckets(t *testing.T) {
	m := newMeter()
	t0 := time.Now()
	m.inflight.Add(1)
	m.done(t0.Add(-30*time.Microsecond), false, 4096) // <= 50 µs
	m.inflight.Add(1)
	m.done(t0.Add(-time.Second), true, 8192) // beyond the last bound
	s := m.stats("v", 1<<20)
	if s.ReadOps != 1 || s.WriteOps != 1 || s.ReadBytes != 4096 || s.WrittenBytes != 8192 || s.QueueDepth != 0 {
		t.Fatalf("stats = %+v", s)
	}
	if s.Latency[0] != 1 || s.Latency[node.LatencyBuckets] != 1 || s.LatencySum < 1 {
		t.Fatalf("latency = %v sum %v", s.Latency, s.LatencySum)
	}
}

func TestMeteredExportCounts(t *testing.T) {
	n, _ := newNode(t)
	ctx := context.Background()
	if err := n.EnsureVolume(ctx, node.VolumeSpec{Name: "v", SizeBytes: 8 * mib, BlockSize: 4096}); err != nil {
		t.Fatal(err)
	}
	if err := n.Export(ctx, node.ExportSpec{Volume: "v", TargetIQN: "iqn.2026-01.io.vbs:v", InitiatorIQN: "iqn.2026-01.x:a"}); err != nil {
		t.Fatal(err)
	}
	dev := n.served["v"].dev
	buf := make([]byte, 8192)
	if err := dev.WriteAt(ctx, buf, 0, false); err != nil {
		t.Fatal(err)
	}
	if err := dev.ReadAt(ctx, buf[:4096], 0); err != nil {
		t.Fatal(err)
	}
	st, err := n.Stats(ctx)
	if err != nil || len(st.Volumes) != 1 {
		t.Fatal(st, err)
	}
	if v := st.Volumes[0]; v.WriteOps != 1 || v.WrittenBytes != 8192 || v.ReadOps != 1 || v.ReadBytes != 4096 {
		t.Fatalf("volume stats = %+v", v)
	}
	// The pool's counters come from the block store: the 8 KiB written,
	// nothing cleaned or found corrupt yet.
	if st.WrittenBytes != 8192 || st.RelocatedBytes != 0 || st.SegmentsCleaned != 0 || st.Corruptions != 0 {
		t.Fatalf("pool stats = %+v", st)
	}
}

// BenchmarkMeteredWrite shows the meter adds no allocation per I/O.
func BenchmarkMeteredWrite(b *testing.B) {
	st, err := blockstore.Open(b.TempDir(), blockstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	if _, err := st.CreateVolume(ctx, "v", blockstore.VolumeOptions{SizeBytes: 64 * mib, BlockSize: 4096}); err != nil {
		b.Fatal(err)
	}
	h, err := st.OpenVolume("v")
	if err != nil {
		b.Fatal(err)
	}
	dev := meteredDevice{Volume: storedev.New(h), m: newMeter()}
	defer dev.Close()
	buf := make([]byte, 4096)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := dev.WriteAt(ctx, buf, uint64(i%16384), false); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMeter measures the meter alone.
func BenchmarkMeter(b *testing.B) {
	m := newMeter()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		m.done(m.start(), i&1 == 0, 4096)
	}
}
