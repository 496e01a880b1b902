package local

import (
	"context"
	"math"
	"sync/atomic"
	"time"

	"github.com/vbs-storage/vbs/control/node"
	"github.com/vbs-storage/vbs/internal/storedev"
	"github.com/vbs-storage/vbs/target/scsi"
)

// meter holds one volume's data-path counters. It outlives the volume's
// exports (counters are since the node started) and is updated with
// atomics only, so the I/O path takes no lock and allocates nothing.
type meter struct {
	readOps, writeOps       atomic.Uint64
	readBytes, writtenBytes atomic.Uint64
	inflight                atomic.Int64
	latency                 [node.LatencyBuckets + 1]atomic.Uint64
	latencyNanos            atomic.Uint64
	bounds                  [node.LatencyBuckets]time.Duration
}

func newMeter() *meter {
	m := &meter{}
	for i, b := range node.LatencyBounds() {
		m.bounds[i] = time.Duration(math.Round(b * float64(time.Second)))
	}
	return m
}

func (m *meter) start() time.Time {
	m.inflight.Add(1)
	return time.Now()
}

func (m *meter) done(start time.Time, write bool, bytes uint64) {
	d := time.Since(start)
	m.inflight.Add(-1)
	if write {
		m.writeOps.Add(1)
		m.writtenBytes.Add(bytes)
	} else {
		m.readOps.Add(1)
		m.readBytes.Add(bytes)
	}
	i := 0
	for i < len(m.bounds) && d > m.bounds[i] {
		i++
	}
	m.latency[i].Add(1)
	m.latencyNanos.Add(uint64(d))
}

func (m *meter) stats(name string, size uint64) node.VolumeStats {
	s := node.VolumeStats{
		Name: name, SizeBytes: size,
		ReadOps: m.readOps.Load(), WriteOps: m.writeOps.Load(),
		ReadBytes: m.readBytes.Load(), WrittenBytes: m.writtenBytes.Load(),
		QueueDepth: uint32(max(m.inflight.Load(), 0)),
		LatencySum: time.Duration(m.latencyNanos.Load()).Seconds(),
	}
	for i := range m.latency {
		s.Latency[i] = m.latency[i].Load()
	}
	return s
}

// meteredDevice is a volume as the target sees it: the block store
// volume, with every data command counted. It forwards exactly the
// optional interfaces storedev.Volume implements.
type meteredDevice struct {
	*storedev.Volume
	m *meter
}

var (
	_ scsi.Device            = meteredDevice{}
	_ scsi.Unmapper          = meteredDevice{}
	_ scsi.ZeroWriter        = meteredDevice{}
	_ scsi.LBAStatusReporter = meteredDevice{}
	_ scsi.CompareAndWriter  = meteredDevice{}
	_ scsi.AtomicWriter      = meteredDevice{}
	_ scsi.MetadataStore     = meteredDevice{}
)

// ReadAt implements scsi.Device.
func (d meteredDevice) ReadAt(ctx context.Context, p []byte, lba uint64) error {
	t := d.m.start()
	err := d.Volume.ReadAt(ctx, p, lba)
	d.m.done(t, false, uint64(len(p)))
	return err
}

// WriteAt implements scsi.Device.
func (d meteredDevice) WriteAt(ctx context.Context, p []byte, lba uint64, fua bool) error {
	t := d.m.start()
	err := d.Volume.WriteAt(ctx, p, lba, fua)
	d.m.done(t, true, uint64(len(p)))
	return err
}

// WriteAtomic implements scsi.AtomicWriter.
func (d meteredDevice) WriteAtomic(ctx context.Context, p []byte, lba uint64, fua bool) error {
	t := d.m.start()
	err := d.Volume.WriteAtomic(ctx, p, lba, fua)
	d.m.done(t, true, uint64(len(p)))
	return err
}

// CompareAndWrite implements scsi.CompareAndWriter.
func (d meteredDevice) CompareAndWrite(ctx context.Context, lba uint64, compare, write []byte, fua bool) error {
	t := d.m.start()
	err := d.Volume.CompareAndWrite(ctx, lba, compare, write, fua)
	d.m.done(t, true, uint64(len(write)))
	return err
}

// WriteZeroes implements scsi.ZeroWriter.
func (d meteredDevice) WriteZeroes(ctx context.Context, lba, blocks uint64, unmap bool) error {
	t := d.m.start()
	err := d.Volume.WriteZeroes(ctx, lba, blocks, unmap)
	d.m.done(t, true, blocks*uint64(d.BlockSize()))
	return err
}
