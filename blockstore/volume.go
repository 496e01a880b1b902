package blockstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vbs-storage/vbs/blockstore/index"
	"github.com/vbs-storage/vbs/blockstore/record"
)

// VolumeOptions describe a new volume.
type VolumeOptions struct {
	// SizeBytes is the volume size; it must be a multiple of BlockSize.
	SizeBytes uint64
	// BlockSize is 512 or 4096.
	BlockSize uint32
	// WriteThrough makes every write durable before it completes.
	WriteThrough bool
}

// VolumeInfo describes a volume.
type VolumeInfo struct {
	Name         string
	ID           uint64
	BlockSize    uint32
	Blocks       uint64
	WriteThrough bool
	// Seq is the store sequence number of the newest write to the volume.
	Seq     uint64
	Created int64
}

const maxVolumeName = 1024

// CreateVolume creates an empty (thin) volume. It is durable on return.
func (s *Store) CreateVolume(ctx context.Context, name string, o VolumeOptions) (VolumeInfo, error) {
	if err := ctx.Err(); err != nil {
		return VolumeInfo{}, err
	}
	if name == "" || len(name) > maxVolumeName || strings.ContainsRune(name, 0) {
		return VolumeInfo{}, fmt.Errorf("create volume %q: bad name: %w", name, ErrInvalid)
	}
	if o.BlockSize != BlockSize512 && o.BlockSize != BlockSize4096 {
		return VolumeInfo{}, fmt.Errorf("create volume %q: block size %d: %w", name, o.BlockSize, ErrInvalid)
	}
	if o.SizeBytes == 0 || o.SizeBytes%uint64(o.BlockSize) != 0 {
		return VolumeInfo{}, fmt.Errorf("create volume %q: size %d: %w", name, o.SizeBytes, ErrInvalid)
	}
	s.catMu.Lock()
	defer s.catMu.Unlock()
	if s.isClosed() {
		return VolumeInfo{}, ErrClosed
	}
	if _, ok := s.names[name]; ok {
		return VolumeInfo{}, fmt.Errorf("create volume %q: %w", name, ErrVolumeExists)
	}
	if err := s.checkOvercommit(o.SizeBytes); err != nil {
		return VolumeInfo{}, fmt.Errorf("create volume %q: %w", name, err)
	}
	v := &volState{id: s.nextVol, name: name, blockSize: o.BlockSize, created: s.opts.Clock.Now().UnixNano()}
	v.blocks.Store(o.SizeBytes / uint64(o.BlockSize))
	if o.WriteThrough {
		v.flags.Store(volFlagWriteThrough)
	}
	ib := s.idx.NewBatch()
	defer ib.Close()
	ib.SetMeta(volKey(v.id), encodeVolumeMeta(v.meta()))
	ib.SetMeta([]byte(metaStore), encodeStoreMeta(storeMeta{NextVolume: v.id + 1}))
	if err := ib.Commit(true); err != nil {
		return VolumeInfo{}, fmt.Errorf("create volume %q: %w", name, err)
	}
	s.nextVol++
	s.vols[v.id] = v
	s.names[name] = v
	return v.info(), nil
}

// checkOvercommit reports ErrOvercommit when adding extra logical bytes
// would pass the pool's limit. catMu must be held.
func (s *Store) checkOvercommit(extra uint64) error {
	if s.opts.CapacityBytes <= 0 || s.opts.OvercommitRatio <= 0 {
		return nil
	}
	limit := uint64(float64(s.opts.CapacityBytes) * s.opts.OvercommitRatio)
	var total uint64
	for _, v := range s.vols {
		total += v.blocks.Load() * uint64(v.blockSize)
	}
	if total+extra > limit {
		return fmt.Errorf("%d logical bytes over a limit of %d: %w", total+extra, limit, ErrOvercommit)
	}
	return nil
}

func (s *Store) isClosed() bool {
	s.submitMu.RLock()
	defer s.submitMu.RUnlock()
	return s.closed
}

func (v *volState) info() VolumeInfo {
	return VolumeInfo{
		Name: v.name, ID: v.id, BlockSize: v.blockSize, Blocks: v.blocks.Load(),
		WriteThrough: v.flags.Load()&volFlagWriteThrough != 0, Seq: v.seq.Load(), Created: v.created,
	}
}

// ListVolumes returns every volume, sorted by name.
func (s *Store) ListVolumes() []VolumeInfo {
	s.catMu.Lock()
	out := make([]VolumeInfo, 0, len(s.names))
	for _, v := range s.names {
		out = append(out, v.info())
	}
	s.catMu.Unlock()
	slices.SortFunc(out, func(a, b VolumeInfo) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// StatVolume describes one volume.
func (s *Store) StatVolume(name string) (VolumeInfo, error) {
	s.catMu.Lock()
	defer s.catMu.Unlock()
	v, ok := s.names[name]
	if !ok {
		return VolumeInfo{}, fmt.Errorf("stat volume %q: %w", name, ErrVolumeNotFound)
	}
	return v.info(), nil
}

// DeleteVolume deletes a volume that has no open handles. Its blocks are
// unmapped and the deletion is durable on return.
func (s *Store) DeleteVolume(ctx context.Context, name string) error {
	defer s.spaceMayHaveFreed()
	if err := ctx.Err(); err != nil {
		return err
	}
	s.catMu.Lock()
	v, ok := s.names[name]
	if !ok {
		s.catMu.Unlock()
		return fmt.Errorf("delete volume %q: %w", name, ErrVolumeNotFound)
	}
	if v.open > 0 || v.clones > 0 {
		s.catMu.Unlock()
		return fmt.Errorf("delete volume %q: %d open handles, %d clones: %w", name, v.open, v.clones, ErrVolumeBusy)
	}
	s.catMu.Unlock()
	err := s.run(v, func(w *writer) error {
		// A pending snapshot of it completes first: its record must not
		// land after the volume's are gone.
		if err := w.settleSnapshots(); err != nil {
			return err
		}
		// Re-check under catMu: a clone may have been made meanwhile.
		s.catMu.Lock()
		busy := v.open > 0 || v.clones > 0
		if !busy {
			v.deleted.Store(true)
		}
		s.catMu.Unlock()
		if busy {
			return ErrVolumeBusy
		}
		ib := w.ib
		ib.DeleteVolume(v.id)
		ib.DeleteMeta(volKey(v.id))
		err := s.idx.ScanMeta(userKey(v.id, ""), func(name, _ []byte) error {
			ib.DeleteMeta(name)
			return nil
		})
		if err == nil {
			for _, m := range v.snapshots() {
				ib.DeleteMeta(snapKey(v.id, m.Seq))
			}
		}
		if err != nil {
			ib.Reset()
			v.deleted.Store(false)
			return err
		}
		if err := ib.Commit(true); err != nil {
			v.deleted.Store(false)
			return err
		}
		s.mu.Lock()
		for k := range s.dirty {
			if k.vol == v.id {
				delete(s.dirty, k)
			}
		}
		s.held.dropVolume(v.id)
		w.heldTrims = slices.DeleteFunc(w.heldTrims, func(h heldVersion) bool { return h.vol == v.id })
		for k := range s.cache {
			if k.vol == v.id {
				delete(s.cache, k)
			}
		}
		s.mu.Unlock()
		delete(w.touched, v.id)
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete volume %q: %w", name, err)
	}
	s.catMu.Lock()
	delete(s.names, name)
	delete(s.vols, v.id)
	if p := v.parent.Load(); p != nil {
		p.clones--
	}
	s.catMu.Unlock()
	return nil
}

// ResizeVolume changes a volume's size. Growing works online; shrinking is
// refused with ErrShrink when mapped blocks lie beyond the new end.
func (s *Store) ResizeVolume(ctx context.Context, name string, sizeBytes uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.catMu.Lock()
	v, ok := s.names[name]
	if !ok {
		s.catMu.Unlock()
		return fmt.Errorf("resize volume %q: %w", name, ErrVolumeNotFound)
	}
	if sizeBytes == 0 || sizeBytes%uint64(v.blockSize) != 0 {
		s.catMu.Unlock()
		return fmt.Errorf("resize volume %q to %d: %w", name, sizeBytes, ErrInvalid)
	}
	newBlocks := sizeBytes / uint64(v.blockSize)
	if old := v.blocks.Load(); newBlocks > old {
		if err := s.checkOvercommit((newBlocks - old) * uint64(v.blockSize)); err != nil {
			s.catMu.Unlock()
			return fmt.Errorf("resize volume %q: %w", name, err)
		}
	}
	s.catMu.Unlock()
	err := s.run(v, func(w *writer) error {
		old := v.blocks.Load()
		if newBlocks < old {
			mapped, err := s.anyMapped(v, newBlocks, old)
			if err != nil {
				return err
			}
			if mapped {
				return ErrShrink
			}
		}
		m := v.meta()
		m.Blocks = newBlocks
		w.ib.SetMeta(volKey(v.id), encodeVolumeMeta(m))
		if err := w.ib.Commit(true); err != nil {
			return err
		}
		v.blocks.Store(newBlocks)
		return nil
	})
	if err != nil {
		return fmt.Errorf("resize volume %q: %w", name, err)
	}
	return nil
}

// anyMapped reports whether any block of vol in [from, end) is mapped.
func (s *Store) anyMapped(v *volState, from, end uint64) (bool, error) {
	if v.parent.Load() != nil {
		for lba := from; lba < end; lba++ {
			if m, err := s.isMapped(v, lba); err != nil || m {
				return m, err
			}
		}
		return false, nil
	}
	vol := v.id
	s.mu.RLock()
	for k := range s.dirty {
		if k.vol == vol && k.lba >= from && k.lba < end {
			s.mu.RUnlock()
			return true, nil
		}
	}
	s.mu.RUnlock()
	found := false
	err := s.idx.Scan(vol, from, end, func(index.Mapping) bool { found = true; return false })
	return found, err
}

// run executes fn on the writer goroutine, ordered against every write.
func (s *Store) run(v *volState, fn func(w *writer) error) error {
	r := getRequest()
	r.kind, r.vol, r.fn = opFunc, v, fn
	err := s.submit(r)
	putRequest(r)
	return err
}

// OpenVolume returns a handle to the named volume.
func (s *Store) OpenVolume(name string) (*Volume, error) {
	s.catMu.Lock()
	defer s.catMu.Unlock()
	if s.isClosed() {
		return nil, ErrClosed
	}
	v, ok := s.names[name]
	if !ok || v.deleted.Load() {
		return nil, fmt.Errorf("open volume %q: %w", name, ErrVolumeNotFound)
	}
	v.open++
	return &Volume{s: s, v: v}, nil
}

// Volume is a handle to one volume. Its methods are safe for concurrent
// use; none of them retains a caller's buffer after it returns.
//
// Durability: a write that returned nil is visible to every later read and
// has been handed to the OS (it survives the process being killed). It is
// durable against a machine crash once a Flush that started after it
// returned nil, or at once when written with fua or to a write-through
// volume.
type Volume struct {
	s      *Store
	v      *volState
	closed atomic.Bool
}

var _ io.Closer = (*Volume)(nil)

// Close releases the handle. It does not flush.
func (h *Volume) Close() error {
	if h.closed.Swap(true) {
		return ErrClosed
	}
	h.s.catMu.Lock()
	h.v.open--
	h.s.catMu.Unlock()
	return nil
}

// Name returns the volume's name.
func (h *Volume) Name() string { return h.v.name }

// BlockSize returns the logical block size in bytes.
func (h *Volume) BlockSize() uint32 { return h.v.blockSize }

// Blocks returns the current number of logical blocks.
func (h *Volume) Blocks() uint64 { return h.v.blocks.Load() }

// Seq returns the store sequence number of the newest write to the volume.
// It only grows; "what changed since N" is asked in terms of it.
func (h *Volume) Seq() uint64 { return h.v.seq.Load() }

// Info describes the volume.
func (h *Volume) Info() VolumeInfo { return h.v.info() }

func (h *Volume) check(ctx context.Context, p []byte, lba, blocks uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if h.closed.Load() {
		return ErrClosed
	}
	if h.v.deleted.Load() {
		return ErrVolumeNotFound
	}
	if p != nil && (len(p) == 0 || len(p)%int(h.v.blockSize) != 0) {
		return fmt.Errorf("buffer of %d bytes: %w", len(p), ErrInvalid)
	}
	if lba+blocks > h.v.blocks.Load() || lba+blocks < lba {
		return fmt.Errorf("blocks [%d, %d) of %d: %w", lba, lba+blocks, h.v.blocks.Load(), ErrOutOfRange)
	}
	return nil
}

// ReadAt fills p with the blocks starting at lba. Unwritten blocks read as
// zeros. A block whose checksum does not verify fails the read with a
// *CorruptionError.
func (h *Volume) ReadAt(ctx context.Context, p []byte, lba uint64) error {
	if err := h.check(ctx, p, lba, uint64(len(p))/uint64(h.v.blockSize)); err != nil {
		return fmt.Errorf("read %q: %w", h.v.name, err)
	}
	// Holding submitMu shared keeps Close from closing files under us.
	h.s.submitMu.RLock()
	defer h.s.submitMu.RUnlock()
	if h.s.closed {
		return ErrClosed
	}
	return h.s.readBlocks(h.v, p, lba, liveView)
}

// WriteAt writes p at lba. With fua it is durable before it returns.
func (h *Volume) WriteAt(ctx context.Context, p []byte, lba uint64, fua bool) error {
	return h.write(ctx, p, lba, fua, false)
}

// WriteAtomic writes p at lba so that readers and crashes see all of it or
// none of it. p may hold at most MaxAtomicBlocks blocks.
func (h *Volume) WriteAtomic(ctx context.Context, p []byte, lba uint64, fua bool) error {
	if len(p)/int(h.v.blockSize) > int(h.MaxAtomicBlocks()) {
		return fmt.Errorf("atomic write of %d bytes: %w", len(p), ErrInvalid)
	}
	return h.write(ctx, p, lba, fua, true)
}

// MaxAtomicBlocks is the largest range WriteAtomic accepts: what one log
// record carries. An atomic write is one record (a crash keeps all of it
// or none), and a read resolves all its blocks under one lock of the
// overlay (a reader sees all of it or none), whatever the read's length.
func (h *Volume) MaxAtomicBlocks() uint32 { return uint32(record.MaxDataLen / h.v.blockSize) }

func (h *Volume) write(ctx context.Context, p []byte, lba uint64, fua, atomic bool) error {
	if err := h.check(ctx, p, lba, uint64(len(p))/uint64(h.v.blockSize)); err != nil {
		return fmt.Errorf("write %q: %w", h.v.name, err)
	}
	var deadline time.Time
	for {
		r := getRequest()
		r.kind, r.vol, r.lba, r.data, r.fua, r.atomic = opWrite, h.v, lba, p, fua, atomic
		err := h.s.submit(r)
		putRequest(r)
		if err == nil {
			return nil
		}
		if errors.Is(err, ErrNoSpace) {
			// A log full of dead space is not a full pool: give the
			// background cleaner a chance first.
			if deadline.IsZero() {
				deadline = h.s.opts.Clock.Now().Add(maxSpaceWait)
			}
			if h.s.waitForSpace(ctx, deadline) {
				continue
			}
		}
		return fmt.Errorf("write %q lba %d: %w", h.v.name, lba, err)
	}
}

// CompareAndWrite writes write at lba only if the blocks there equal
// compare, atomically against every other write. On a mismatch it writes
// nothing and returns a *MiscompareError.
func (h *Volume) CompareAndWrite(ctx context.Context, lba uint64, compare, write []byte, fua bool) error {
	if len(compare) != len(write) {
		return fmt.Errorf("compare and write: %d compare bytes, %d write bytes: %w", len(compare), len(write), ErrInvalid)
	}
	if err := h.check(ctx, write, lba, uint64(len(write))/uint64(h.v.blockSize)); err != nil {
		return fmt.Errorf("compare and write %q: %w", h.v.name, err)
	}
	r := getRequest()
	r.kind, r.vol, r.lba, r.data, r.compare, r.fua = opCompareWrite, h.v, lba, write, compare, fua
	err := h.s.submit(r)
	putRequest(r)
	if err != nil {
		return fmt.Errorf("compare and write %q lba %d: %w", h.v.name, lba, err)
	}
	return nil
}

// Unmap deallocates blocks; they read as zeros afterwards.
func (h *Volume) Unmap(ctx context.Context, lba, blocks uint64) error {
	return h.trim(ctx, lba, blocks, false)
}

// WriteZeroes makes blocks read as zeros. The store always deallocates them,
// whatever unmap says: a deallocated block reads as zeros.
func (h *Volume) WriteZeroes(ctx context.Context, lba, blocks uint64, unmap bool) error {
	return h.trim(ctx, lba, blocks, false)
}

func (h *Volume) trim(ctx context.Context, lba, blocks uint64, fua bool) error {
	if blocks == 0 {
		return nil
	}
	if err := h.check(ctx, nil, lba, blocks); err != nil {
		return fmt.Errorf("unmap %q: %w", h.v.name, err)
	}
	r := getRequest()
	r.kind, r.vol, r.lba, r.blocks, r.fua = opTrim, h.v, lba, blocks, fua
	err := h.s.submit(r)
	putRequest(r)
	if err != nil {
		return fmt.Errorf("unmap %q lba %d: %w", h.v.name, lba, err)
	}
	return nil
}

// Flush makes every write that completed before it was called durable.
func (h *Volume) Flush(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if h.closed.Load() {
		return ErrClosed
	}
	r := getRequest()
	r.kind, r.vol = opFlush, h.v
	err := h.s.submit(r)
	putRequest(r)
	if err != nil {
		return fmt.Errorf("flush %q: %w", h.v.name, err)
	}
	return nil
}

// SetWriteThrough turns write-through on or off (durably).
func (h *Volume) SetWriteThrough(ctx context.Context, on bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	v := h.v
	return h.s.run(v, func(w *writer) error {
		f := v.flags.Load() &^ volFlagWriteThrough
		if on {
			f |= volFlagWriteThrough
		}
		m := v.meta()
		m.Flags = f
		w.ib.SetMeta(volKey(v.id), encodeVolumeMeta(m))
		if err := w.ib.Commit(true); err != nil {
			return fmt.Errorf("set write-through %q: %w", v.name, err)
		}
		v.flags.Store(f)
		return nil
	})
}

// LBAStatus reports whether the extent starting at lba is mapped and how
// many blocks (at least 1, at most maxBlocks) share that state.
func (h *Volume) LBAStatus(ctx context.Context, lba, maxBlocks uint64) (mapped bool, blocks uint64, err error) {
	if err := h.check(ctx, nil, lba, 1); err != nil {
		return false, 0, fmt.Errorf("lba status %q: %w", h.v.name, err)
	}
	h.s.submitMu.RLock()
	defer h.s.submitMu.RUnlock()
	if h.s.closed {
		return false, 0, ErrClosed
	}
	end := min(h.v.blocks.Load(), lba+max(maxBlocks, 1))
	if end < lba {
		end = h.v.blocks.Load()
	}
	s := h.s
	first, err := s.isMapped(h.v, lba)
	if err != nil {
		return false, 0, err
	}
	if first && h.v.parent.Load() == nil {
		n, err := s.mappedRun(h.v.id, lba+1, min(end, lba+maxStatusRun))
		if err != nil {
			return false, 0, fmt.Errorf("lba status %q: %w", h.v.name, err)
		}
		return true, 1 + n, nil
	}
	if first {
		// A clone's mapped runs depend on its ancestors: resolve them
		// block by block, bounded per call.
		n := uint64(1)
		for lba+n < end && n < maxStatusRun {
			m, err := s.isMapped(h.v, lba+n)
			if err != nil {
				return false, 0, err
			}
			if !m {
				break
			}
			n++
		}
		return true, n, nil
	}
	if h.v.parent.Load() != nil {
		// A clone's unmapped runs depend on its ancestors: resolve them
		// block by block, bounded per call.
		n := uint64(1)
		for lba+n < end && n < maxStatusRun {
			m, err := s.isMapped(h.v, lba+n)
			if err != nil {
				return false, 0, err
			}
			if m {
				break
			}
			n++
		}
		return false, n, nil
	}
	next := end
	s.mu.RLock()
	if end-lba <= uint64(len(s.dirty)) {
		for p := lba + 1; p < end; p++ {
			if _, ok := s.dirty[blockKey{h.v.id, p}]; ok {
				next = p
				break
			}
		}
	} else {
		for k := range s.dirty {
			if k.vol == h.v.id && k.lba > lba && k.lba < next {
				next = k.lba
			}
		}
	}
	s.mu.RUnlock()
	err = s.idx.Scan(h.v.id, lba+1, next, func(m index.Mapping) bool { next = m.LBA; return false })
	if err != nil {
		return false, 0, fmt.Errorf("lba status %q: %w", h.v.name, err)
	}
	return false, next - lba, nil
}

const maxStatusRun = 1 << 16

// statusChunk is how many blocks mappedRun resolves under one shared lock
// of the overlay, so a long run does not hold up the writer.
const statusChunk = 4096

// mappedRun returns how many consecutive blocks of plain volume vol from
// lba on (stopping at end) are mapped, in the overlay or in the index. It
// costs one index scan per statusChunk blocks rather than a lookup per
// block.
func (s *Store) mappedRun(vol, lba, end uint64) (uint64, error) {
	for p := lba; p < end; {
		chunkEnd := min(end, p+statusChunk)
		q, err := s.mappedRunChunk(vol, p, chunkEnd)
		if err != nil {
			return 0, err
		}
		if q < chunkEnd {
			return q - lba, nil
		}
		p = q
	}
	return end - lba, nil
}

// mappedRunChunk returns the first block of [p, end) of plain volume vol
// that is not mapped, or end.
func (s *Store) mappedRunChunk(vol, p, end uint64) (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	inOverlay := func(lba uint64) bool {
		l, ok := s.dirty[blockKey{vol, lba}]
		return ok && l.Seg != 0
	}
	gap := false
	err := s.idx.Scan(vol, p, end, func(m index.Mapping) bool {
		for ; p < m.LBA; p++ {
			if !inOverlay(p) {
				gap = true
				return false
			}
		}
		if m.Loc.Seg == 0 && !inOverlay(p) {
			gap = true
			return false
		}
		p++
		return true
	})
	if err != nil {
		return 0, err
	}
	for !gap && p < end && inOverlay(p) {
		p++
	}
	return p, nil
}

func (s *Store) isMapped(v *volState, lba uint64) (bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok, err := s.resolveLocked(v, lba, liveView)
	return ok, err
}

// GetMetadata returns the blob stored under key, or (nil, nil).
func (h *Volume) GetMetadata(key string) ([]byte, error) {
	h.s.submitMu.RLock()
	defer h.s.submitMu.RUnlock()
	if h.s.closed {
		return nil, ErrClosed
	}
	b, ok, err := h.s.idx.GetMeta(userKey(h.v.id, key))
	if err != nil || !ok {
		return nil, err
	}
	return b, nil
}

// SetMetadata stores a small blob durably next to the volume's data.
func (h *Volume) SetMetadata(key string, value []byte) error {
	v := h.v
	return h.s.run(v, func(w *writer) error {
		w.ib.SetMeta(userKey(v.id, key), value)
		return w.ib.Commit(true)
	})
}

// readChunk is how many blocks a read resolves into stack arrays; longer
// reads use pooled buffers.
const readChunk = 64

// readBlocks resolves and reads the blocks of p. All lookups happen under
// one read lock of the overlay, so an atomic write is seen whole or not at
// all.
func (s *Store) readBlocks(v *volState, p []byte, lba, q uint64) error {
	s.gcMu.RLock()
	defer s.gcMu.RUnlock()
	bs := uint64(v.blockSize)
	n := uint64(len(p)) / bs
	var stackLocs [readChunk]index.Location
	var stackMapped [readChunk]bool
	locs, mapped := stackLocs[:], stackMapped[:]
	if n > readChunk {
		rs := readPool.Get().(*readState)
		defer readPool.Put(rs)
		if uint64(cap(rs.locs)) < n {
			rs.locs, rs.mapped = make([]index.Location, n), make([]bool, n)
		}
		locs, mapped = rs.locs, rs.mapped
	}
	locs, mapped = locs[:n], mapped[:n]
	// One lookup round under one lock for the whole read: an atomic write
	// is seen whole or not at all.
	if err := s.lookup(v, lba, q, locs, mapped); err != nil {
		return fmt.Errorf("read %q lba %d: %w", v.name, lba, err)
	}
	for i := uint64(0); i < n; {
		if !mapped[i] {
			clear(p[i*bs : (i+1)*bs])
			i++
			continue
		}
		j := i + 1
		for j < n && mapped[j] && locs[j].Seg == locs[i].Seg && locs[j].Off == locs[i].Off+(j-i)*bs {
			j++
		}
		if err := s.readRun(v, p[i*bs:j*bs], lba+i, locs[i:j]); err != nil {
			return err
		}
		i = j
	}
	return nil
}

// readState holds the locations of a read longer than readChunk blocks.
type readState struct {
	locs   []index.Location
	mapped []bool
}

var readPool = sync.Pool{New: func() any { return new(readState) }}

func (s *Store) readRun(v *volState, buf []byte, lba uint64, locs []index.Location) error {
	bs := uint64(v.blockSize)
	f, view := s.segment(locs[0].Seg)
	if f == nil {
		s.stats.corruptions.Add(1)
		return &CorruptionError{Volume: v.name, LBA: lba, Seg: locs[0].Seg, Off: locs[0].Off}
	}
	off := locs[0].Off
	if view != nil && off <= uint64(len(view)) && uint64(len(buf)) <= uint64(len(view))-off {
		if err := copyView(buf, view, off); err != nil {
			s.stats.corruptions.Add(1)
			return fmt.Errorf("read segment %d: %w: %w", locs[0].Seg, &CorruptionError{Volume: v.name, LBA: lba, Seg: locs[0].Seg, Off: off}, err)
		}
	} else if n, err := f.ReadAt(buf, int64(off)); n != len(buf) {
		s.stats.corruptions.Add(1)
		return fmt.Errorf("read segment %d: %w: %w", locs[0].Seg, &CorruptionError{Volume: v.name, LBA: lba, Seg: locs[0].Seg, Off: off}, err)
	}
	for k := range locs {
		if record.Checksum(buf[uint64(k)*bs:uint64(k+1)*bs]) != locs[k].CRC {
			s.stats.corruptions.Add(1)
			return &CorruptionError{Volume: v.name, LBA: lba + uint64(k), Seg: locs[k].Seg, Off: locs[k].Off}
		}
	}
	return nil
}

func (s *Store) lookup(v *volState, lba, q uint64, locs []index.Location, mapped []bool) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if q == liveView && v.parent.Load() == nil {
		// The overlay and the cache answer most reads of hot data; the
		// index is asked only for the rest, with one scan when many miss.
		misses := 0
		for i := range locs {
			k := blockKey{v.id, lba + uint64(i)}
			if l, ok := s.dirty[k]; ok {
				locs[i], mapped[i] = l, l.Seg != 0
			} else if l, ok := s.cache[k]; ok {
				locs[i], mapped[i] = l, l.Seg != 0
			} else {
				mapped[i] = false
				locs[i].Seg = missing
				misses++
			}
		}
		if misses == 0 {
			return nil
		}
		if misses >= scanLookupBlocks {
			return s.scanLookupLocked(v, lba, locs, mapped)
		}
		for i := range locs {
			if locs[i].Seg != missing || mapped[i] {
				continue
			}
			l, ok, err := s.idx.Get(v.id, lba+uint64(i))
			if err != nil {
				return err
			}
			locs[i], mapped[i] = l, ok && l.Seg != 0
		}
		return nil
	}
	for i := range locs {
		l, ok, err := s.resolveLocked(v, lba+uint64(i), q)
		if err != nil {
			return err
		}
		locs[i], mapped[i] = l, ok
	}
	return nil
}

// scanLookupBlocks is how many cache misses in one read make one index scan
// cheaper than a point lookup per block.
const scanLookupBlocks = 8

// missing marks a location lookup has not resolved yet (no segment has
// this ID: IDs count up from 1 and this is the largest uint64).
const missing = ^uint64(0)

// scanLookupLocked resolves len(locs) consecutive live blocks of a plain
// volume with one index scan, then the overlay on top. s.mu is held.
func (s *Store) scanLookupLocked(v *volState, lba uint64, locs []index.Location, mapped []bool) error {
	clear(mapped)
	err := s.idx.Scan(v.id, lba, lba+uint64(len(locs)), func(m index.Mapping) bool {
		i := m.LBA - lba
		locs[i], mapped[i] = m.Loc, m.Loc.Seg != 0
		return true
	})
	if err != nil {
		return err
	}
	if len(s.dirty) == 0 {
		return nil
	}
	for i := range locs {
		if l, ok := s.dirty[blockKey{v.id, lba + uint64(i)}]; ok {
			locs[i], mapped[i] = l, l.Seg != 0
		}
	}
	return nil
}

// Stats is a snapshot of pool-level accounting and counters.
type Stats struct {
	// LogicalBytes is the sum of volume sizes.
	LogicalBytes uint64
	// AllocatedBytes is the space the log occupies.
	AllocatedBytes int64
	// CapacityBytes is the configured pool capacity (0: unlimited) and
	// FreeBytes what is left of it, or less when the filesystem's free
	// space, less DiskReserveBytes, is smaller (Options.DiskReserveBytes).
	CapacityBytes    int64
	FreeBytes        int64
	DiskReserveBytes int64
	Volumes          int
	Corruptions      uint64
	Writes           uint64
	Batches          uint64
	Syncs            uint64
	BytesWritten     uint64
	DirtyBlocks      int
	// GCBytes is what segment cleaning rewrote and GCSegments how many
	// segments it deleted; WriteAmplification is (BytesWritten + GCBytes) /
	// BytesWritten.
	GCBytes            uint64
	GCSegments         uint64
	WriteAmplification float64
	// IndexScans counts index range scans and IndexScanPoints the entries
	// they stepped over, live or dead: IndexScanPoints/IndexScans well
	// above a read's length means reads pay for trim/rewrite history.
	// IndexChurnFlushes is how often that history made the index flush.
	IndexScans        uint64
	IndexScanPoints   uint64
	IndexChurnFlushes uint64
}

// Stats returns pool-level accounting and counters.
func (s *Store) Stats() Stats {
	st := Stats{
		AllocatedBytes: s.stats.logBytes.Load(),
		CapacityBytes:  s.opts.CapacityBytes,
		Corruptions:    s.stats.corruptions.Load(),
		Writes:         s.stats.writes.Load(),
		Batches:        s.stats.batches.Load(),
		Syncs:          s.stats.syncs.Load(),
		BytesWritten:   s.stats.bytesIn.Load(),
		GCBytes:        s.stats.gcBytes.Load(),
		GCSegments:     s.stats.gcSegments.Load(),
	}
	s.submitMu.RLock() // Close drops the index
	if !s.closed {
		is := s.idx.Stats()
		st.IndexScans, st.IndexScanPoints, st.IndexChurnFlushes = is.Scans, is.ScanPoints, is.Flushes
	}
	s.submitMu.RUnlock()
	if st.BytesWritten > 0 {
		st.WriteAmplification = float64(st.BytesWritten+st.GCBytes) / float64(st.BytesWritten)
	}
	s.catMu.Lock()
	for _, v := range s.vols {
		st.LogicalBytes += v.blocks.Load() * uint64(v.blockSize)
	}
	st.Volumes = len(s.vols)
	s.catMu.Unlock()
	st.DiskReserveBytes = s.disk.reserve
	if lim := s.spaceLimit(); lim < math.MaxInt64 {
		st.FreeBytes = max(lim-st.AllocatedBytes, 0)
	} else if du, err := s.fs.GetDiskUsage(s.dir); err == nil {
		st.FreeBytes = int64(du.AvailBytes)
	}
	s.mu.RLock()
	st.DirtyBlocks = len(s.dirty)
	s.mu.RUnlock()
	return st
}
