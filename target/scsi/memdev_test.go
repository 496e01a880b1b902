package scsi

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
)

// memDev is a small in-memory Device for tests: a real block store (byte
// slice plus an allocation map), not a scripted mock. failNext makes the
// next I/O fail with the given error, to exercise error mapping.
type memDev struct {
	mu     sync.RWMutex
	bs     uint32
	data   []byte
	mapped []bool

	flushes   atomic.Int64
	fuaWrites atomic.Int64
	writes    atomic.Int64
	failNext  atomic.Pointer[error]
}

func newMemDev(bs uint32, blocks uint64) *memDev {
	return &memDev{bs: bs, data: make([]byte, uint64(bs)*blocks), mapped: make([]bool, blocks)}
}

func (d *memDev) BlockSize() uint32 { return d.bs }

func (d *memDev) Blocks() uint64 {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return uint64(len(d.mapped))
}

// grow extends the device by n blocks (online resize).
func (d *memDev) grow(n uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.data = append(d.data, make([]byte, uint64(d.bs)*n)...)
	d.mapped = append(d.mapped, make([]bool, n)...)
}

func (d *memDev) injected() error {
	if p := d.failNext.Swap(nil); p != nil {
		return *p
	}
	return nil
}

func (d *memDev) check(p []byte, lba uint64) error {
	if len(p) == 0 || len(p)%int(d.bs) != 0 {
		return fmt.Errorf("memdev: bad buffer length %d", len(p))
	}
	if lba+uint64(len(p))/uint64(d.bs) > uint64(len(d.mapped)) {
		return ErrOutOfRange
	}
	return nil
}

func (d *memDev) ReadAt(ctx context.Context, p []byte, lba uint64) error {
	if err := d.injected(); err != nil {
		return err
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	if err := d.check(p, lba); err != nil {
		return err
	}
	copy(p, d.data[lba*uint64(d.bs):])
	return nil
}

func (d *memDev) WriteAt(ctx context.Context, p []byte, lba uint64, fua bool) error {
	if err := d.injected(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.check(p, lba); err != nil {
		return err
	}
	copy(d.data[lba*uint64(d.bs):], p)
	for i := uint64(0); i < uint64(len(p))/uint64(d.bs); i++ {
		d.mapped[lba+i] = true
	}
	d.writes.Add(1)
	if fua {
		d.fuaWrites.Add(1)
	}
	return nil
}

func (d *memDev) Flush(ctx context.Context) error {
	if err := d.injected(); err != nil {
		return err
	}
	d.flushes.Add(1)
	return nil
}

// contents returns a copy of blocks [lba, lba+n).
func (d *memDev) contents(lba, n uint64) []byte {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return bytes.Clone(d.data[lba*uint64(d.bs) : (lba+n)*uint64(d.bs)])
}

// thinDev adds every optional capability to memDev: thin provisioning,
// zeroing, LBA status, metadata, atomic writes, compare-and-write and copy.
type thinDev struct {
	*memDev
	metaMu sync.Mutex
	meta   map[string][]byte
}

func newThinDev(bs uint32, blocks uint64) *thinDev {
	return &thinDev{memDev: newMemDev(bs, blocks), meta: map[string][]byte{}}
}

func (d *thinDev) Unmap(ctx context.Context, lba, blocks uint64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if lba+blocks > uint64(len(d.mapped)) {
		return ErrOutOfRange
	}
	clear(d.data[lba*uint64(d.bs) : (lba+blocks)*uint64(d.bs)])
	for i := lba; i < lba+blocks; i++ {
		d.mapped[i] = false
	}
	return nil
}

func (d *thinDev) WriteZeroes(ctx context.Context, lba, blocks uint64, unmap bool) error {
	if unmap {
		return d.Unmap(ctx, lba, blocks)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	clear(d.data[lba*uint64(d.bs) : (lba+blocks)*uint64(d.bs)])
	for i := lba; i < lba+blocks; i++ {
		d.mapped[i] = true
	}
	return nil
}

func (d *thinDev) LBAStatus(ctx context.Context, lba, maxBlocks uint64) (bool, uint64, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	state := d.mapped[lba]
	n := uint64(1)
	for n < maxBlocks && lba+n < uint64(len(d.mapped)) && d.mapped[lba+n] == state {
		n++
	}
	return state, n, nil
}

func (d *thinDev) GetMetadata(key string) ([]byte, error) {
	d.metaMu.Lock()
	defer d.metaMu.Unlock()
	return bytes.Clone(d.meta[key]), nil
}

func (d *thinDev) SetMetadata(key string, value []byte) error {
	d.metaMu.Lock()
	defer d.metaMu.Unlock()
	d.meta[key] = bytes.Clone(value)
	return nil
}

func (d *thinDev) WriteAtomic(ctx context.Context, p []byte, lba uint64, fua bool) error {
	return d.WriteAt(ctx, p, lba, fua)
}

func (d *thinDev) MaxAtomicBlocks() uint32 { return 64 }

func (d *thinDev) CompareAndWrite(ctx context.Context, lba uint64, compare, write []byte, fua bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	cur := d.data[lba*uint64(d.bs):]
	for i := range compare {
		if cur[i] != compare[i] {
			return &MiscompareError{Offset: i}
		}
	}
	copy(cur, write)
	return nil
}

func (d *thinDev) CopyFrom(ctx context.Context, src Device, srcLBA, dstLBA, blocks uint64) error {
	buf := make([]byte, blocks*uint64(d.bs))
	if err := src.ReadAt(ctx, buf, srcLBA); err != nil {
		return err
	}
	return d.WriteAt(ctx, buf, dstLBA, false)
}
