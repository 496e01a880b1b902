package device

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/vbs-storage/vbs/target/scsi"
)

// Mem chunk geometry: the unit of allocation, of unmapping and of lock
// striping.
const (
	memChunkShift = 16
	memChunkSize  = 1 << memChunkShift
	memChunkMask  = memChunkSize - 1
)

// memMaxAtomicBytes bounds WriteAtomic. Every Mem write is atomic against
// readers (it holds all its stripes), so the bound only keeps one request
// from holding many stripes for long.
const memMaxAtomicBytes = 4 << 20

// memMaxStatusScan bounds how many chunks one LBAStatus call inspects, so
// that a query over a huge empty device stays cheap; the caller asks again
// from where the answer stopped.
const memMaxStatusScan = 1 << 16

// chunk is one allocated piece of a Mem device.
type chunk [memChunkSize]byte

// Mem is a thin, sparse, in-memory device. Memory is allocated in 64 KiB
// chunks on first write of non-zero data; unwritten chunks read as zeros;
// Unmap and WriteZeroes free whole chunks and zero partial ones.
//
// Concurrency: chunks are spread over lock stripes. A read holds the stripes
// it covers shared and a write holds them exclusively, all at once, so
// every read and write is atomic against every other (which is what makes
// CompareAndWrite and WriteAtomic trivially correct), while I/O to
// different chunks rarely contends. ReadAt and WriteAt allocate nothing
// once the chunks they touch exist. Blocks may grow (Resize) under I/O.
type Mem struct {
	bs        uint32
	blocks    atomic.Uint64
	allocated atomic.Int64 // chunks in memory
	lock      stripedLock
	meta      memMetadata
}

// Interfaces Mem satisfies.
var (
	_ scsi.Device            = (*Mem)(nil)
	_ scsi.Nonblocking       = (*Mem)(nil)
	_ scsi.Unmapper          = (*Mem)(nil)
	_ scsi.ZeroWriter        = (*Mem)(nil)
	_ scsi.LBAStatusReporter = (*Mem)(nil)
	_ scsi.CompareAndWriter  = (*Mem)(nil)
	_ scsi.AtomicWriter      = (*Mem)(nil)
	_ scsi.Copier            = (*Mem)(nil)
	_ scsi.MetadataStore     = (*Mem)(nil)
)

// NewMem returns an empty Mem device of blocks blocks of blockSize bytes
// (512 or 4096). It allocates no data memory until written.
func NewMem(blockSize uint32, blocks uint64) (*Mem, error) {
	if err := checkGeometry(blockSize, blocks); err != nil {
		return nil, fmt.Errorf("new mem device: %w", err)
	}
	d := &Mem{bs: blockSize}
	d.blocks.Store(blocks)
	d.lock.shift = memChunkShift
	for i := range d.lock.stripes {
		d.lock.stripes[i].chunks = make(map[uint64]*chunk)
	}
	return d, nil
}

// BlockSize implements scsi.Device.
func (d *Mem) BlockSize() uint32 { return d.bs }

// Blocks implements scsi.Device.
func (d *Mem) Blocks() uint64 { return d.blocks.Load() }

// Resize grows the device to blocks blocks; it is safe under concurrent
// I/O. It refuses to shrink (ErrShrink).
func (d *Mem) Resize(blocks uint64) error {
	return growCounter(&d.blocks, d.bs, blocks)
}

// AllocatedBytes returns how much data memory the device holds.
func (d *Mem) AllocatedBytes() uint64 {
	return uint64(d.allocated.Load()) * memChunkSize
}

// ReadAt implements scsi.Device.
func (d *Mem) ReadAt(_ context.Context, p []byte, lba uint64) error {
	n := uint64(len(p))
	if err := checkRange("read", d.bs, d.blocks.Load(), lba, n); err != nil {
		return err
	}
	off := lba * uint64(d.bs)
	d.lock.lock(off, n, false)
	d.readLocked(p, off)
	d.lock.unlock(off, n, false)
	return nil
}

// readLocked copies [off, off+len(p)) into p; the caller holds the stripes.
func (d *Mem) readLocked(p []byte, off uint64) {
	for pos := 0; pos < len(p); {
		at := off + uint64(pos)
		r, in := at>>memChunkShift, int(at&memChunkMask)
		k := min(memChunkSize-in, len(p)-pos)
		if c := d.lock.stripeOf(r).chunks[r]; c != nil {
			copy(p[pos:pos+k], c[in:in+k])
		} else {
			clear(p[pos : pos+k])
		}
		pos += k
	}
}

// WriteAt implements scsi.Device. Memory is volatile, so fua changes
// nothing: a write is as durable as it will ever be when it returns.
func (d *Mem) WriteAt(_ context.Context, p []byte, lba uint64, _ bool) error {
	n := uint64(len(p))
	if err := checkRange("write", d.bs, d.blocks.Load(), lba, n); err != nil {
		return err
	}
	off := lba * uint64(d.bs)
	d.lock.lock(off, n, true)
	d.writeLocked(p, off)
	d.lock.unlock(off, n, true)
	return nil
}

// writeLocked stores p at off; the caller holds the stripes exclusively.
// Zeros written to an unallocated chunk allocate nothing: they already read
// as zeros, and a guest zeroing its disk must not inflate a thin device.
func (d *Mem) writeLocked(p []byte, off uint64) {
	for pos := 0; pos < len(p); {
		at := off + uint64(pos)
		r, in := at>>memChunkShift, int(at&memChunkMask)
		k := min(memChunkSize-in, len(p)-pos)
		s := d.lock.stripeOf(r)
		c := s.chunks[r]
		if c == nil {
			if allZero(p[pos : pos+k]) {
				pos += k
				continue
			}
			c = new(chunk)
			s.chunks[r] = c
			d.allocated.Add(1)
		}
		copy(c[in:in+k], p[pos:pos+k])
		pos += k
	}
}

func allZero(p []byte) bool {
	for _, b := range p {
		if b != 0 {
			return false
		}
	}
	return true
}

// Flush implements scsi.Device; memory has nothing to flush.
func (d *Mem) Flush(context.Context) error { return nil }

// Nonblocking reports true: Mem only copies memory under short stripe
// locks, so the transport may run its reads and writes on its receive path
// (scsi.Nonblocking).
func (d *Mem) Nonblocking() bool { return true }

// WriteAtomic implements scsi.AtomicWriter: every Mem write is atomic.
func (d *Mem) WriteAtomic(ctx context.Context, p []byte, lba uint64, fua bool) error {
	if len(p) > memMaxAtomicBytes {
		return fmt.Errorf("write atomic of %d bytes: more than the %d-byte limit", len(p), memMaxAtomicBytes)
	}
	return d.WriteAt(ctx, p, lba, fua)
}

// MaxAtomicBlocks implements scsi.AtomicWriter.
func (d *Mem) MaxAtomicBlocks() uint32 { return memMaxAtomicBytes / d.bs }

// CompareAndWrite implements scsi.CompareAndWriter. The compare and the
// write happen under the exclusive stripes of the range, so no other read
// or write of those blocks interleaves.
func (d *Mem) CompareAndWrite(_ context.Context, lba uint64, compare, write []byte, _ bool) error {
	if err := checkCompareAndWrite(d.bs, compare, write); err != nil {
		return err
	}
	n := uint64(len(compare))
	if err := checkRange("compare and write", d.bs, d.blocks.Load(), lba, n); err != nil {
		return err
	}
	off := lba * uint64(d.bs)
	d.lock.lock(off, n, true)
	defer d.lock.unlock(off, n, true)
	if i := d.compareLocked(compare, off); i >= 0 {
		return &scsi.MiscompareError{Offset: i}
	}
	d.writeLocked(write, off)
	return nil
}

// compareLocked returns the offset of the first byte of want that differs
// from the data at off, or -1.
func (d *Mem) compareLocked(want []byte, off uint64) int {
	for pos := 0; pos < len(want); {
		at := off + uint64(pos)
		r, in := at>>memChunkShift, int(at&memChunkMask)
		k := min(memChunkSize-in, len(want)-pos)
		var i int
		if c := d.lock.stripeOf(r).chunks[r]; c != nil {
			i = firstDiff(want[pos:pos+k], c[in:in+k])
		} else {
			i = firstNonZero(want[pos : pos+k])
		}
		if i >= 0 {
			return pos + i
		}
		pos += k
	}
	return -1
}

func firstNonZero(p []byte) int {
	for i, b := range p {
		if b != 0 {
			return i
		}
	}
	return -1
}

// Unmap implements scsi.Unmapper: whole chunks in the range are freed,
// partly covered ones zeroed in the range.
func (d *Mem) Unmap(_ context.Context, lba, blocks uint64) error {
	if err := checkBlocks("unmap", d.blocks.Load(), lba, blocks); err != nil {
		return err
	}
	d.zero(lba*uint64(d.bs), blocks*uint64(d.bs))
	return nil
}

// WriteZeroes implements scsi.ZeroWriter. Zeros are what unmapped chunks
// read as, so it frees whole chunks whatever unmap says: a thin in-memory
// device has no reason to pin zeroed memory.
func (d *Mem) WriteZeroes(_ context.Context, lba, blocks uint64, _ bool) error {
	if err := checkBlocks("write zeroes", d.blocks.Load(), lba, blocks); err != nil {
		return err
	}
	d.zero(lba*uint64(d.bs), blocks*uint64(d.bs))
	return nil
}

// memZeroDirectChunks is the range size, in chunks, up to which zero walks
// the range chunk by chunk; beyond it, it walks the allocated chunks.
const memZeroDirectChunks = 4 * stripeCount

// zero makes [off, off+n) read as zeros. It is not atomic as a whole (SBC
// does not ask UNMAP to be), but each chunk changes under its stripe lock.
func (d *Mem) zero(off, n uint64) {
	if n == 0 {
		return
	}
	first, last := d.lock.regions(off, n)
	if last-first+1 <= memZeroDirectChunks {
		d.lock.lock(off, n, true)
		for r := first; r <= last; r++ {
			d.zeroChunkLocked(r, off, off+n)
		}
		d.lock.unlock(off, n, true)
		return
	}
	// A large range: visit the chunks that exist instead of every chunk
	// index, one stripe at a time.
	for i := range d.lock.stripes {
		s := &d.lock.stripes[i]
		s.mu.Lock()
		for r := range s.chunks {
			if r >= first && r <= last {
				d.zeroChunkLocked(r, off, off+n)
			}
		}
		s.mu.Unlock()
	}
}

// zeroChunkLocked zeros the part of chunk r inside [start, end), freeing the
// chunk when the range covers it; the caller holds r's stripe exclusively.
func (d *Mem) zeroChunkLocked(r, start, end uint64) {
	s := d.lock.stripeOf(r)
	c := s.chunks[r]
	if c == nil {
		return
	}
	cs, ce := r<<memChunkShift, (r+1)<<memChunkShift
	lo, hi := max(cs, start), min(ce, end)
	if lo == cs && hi == ce {
		delete(s.chunks, r)
		d.allocated.Add(-1)
		return
	}
	clear(c[lo-cs : hi-cs])
}

// LBAStatus implements scsi.LBAStatusReporter at chunk granularity: a block
// is mapped when its chunk is allocated. One call inspects at most
// memMaxStatusScan chunks.
func (d *Mem) LBAStatus(_ context.Context, lba, maxBlocks uint64) (bool, uint64, error) {
	total := d.blocks.Load()
	if err := checkBlocks("get lba status", total, lba, 1); err != nil {
		return false, 0, err
	}
	bs := uint64(d.bs)
	limit := min(max(maxBlocks, 1), total-lba) // blocks
	start := lba * bs
	end := start + limit*bs
	r := start >> memChunkShift
	mapped := d.chunkAllocated(r)
	scanned := 1
	next := (r + 1) << memChunkShift
	for next < end && scanned < memMaxStatusScan && d.chunkAllocated(next>>memChunkShift) == mapped {
		next += memChunkSize
		scanned++
	}
	return mapped, (min(next, end) - start) / bs, nil
}

func (d *Mem) chunkAllocated(r uint64) bool {
	s := d.lock.stripeOf(r)
	s.mu.RLock()
	c := s.chunks[r]
	s.mu.RUnlock()
	return c != nil
}

// CopyFrom implements scsi.Copier. Unmapped source extents stay unmapped
// in the copy; src may be d itself, with overlapping ranges.
func (d *Mem) CopyFrom(ctx context.Context, src scsi.Device, srcLBA, dstLBA, blocks uint64) error {
	return copyBlocks(ctx, d, src, srcLBA, dstLBA, blocks)
}

// GetMetadata implements scsi.MetadataStore (in memory only).
func (d *Mem) GetMetadata(key string) ([]byte, error) { return d.meta.get(key) }

// SetMetadata implements scsi.MetadataStore (in memory only).
func (d *Mem) SetMetadata(key string, value []byte) error { return d.meta.set(key, value) }
