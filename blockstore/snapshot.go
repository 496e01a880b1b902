package blockstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/vbs-storage/vbs/blockstore/index"
)

// Snapshot errors.
var (
	// ErrSnapshotNotFound: no snapshot of that name on the volume.
	ErrSnapshotNotFound = errors.New("blockstore: snapshot not found")
	// ErrSnapshotExists: the volume already has a snapshot of that name.
	ErrSnapshotExists = errors.New("blockstore: snapshot exists")
	// ErrSnapshotBusy: a linked clone still reads through the snapshot.
	ErrSnapshotBusy = errors.New("blockstore: snapshot has clones")
)

// SnapshotInfo describes a snapshot.
type SnapshotInfo struct {
	Name string
	// Seq is the store sequence number the snapshot froze: it sees every
	// write with a smaller or equal sequence number.
	Seq     uint64
	Created int64
	// ExclusiveBytes is the data only this snapshot still refers to: what
	// deleting it gives back (once segment cleaning runs).
	ExclusiveBytes uint64
}

// Extent is a run of blocks.
type Extent struct {
	LBA    uint64
	Blocks uint64
}

func (s *Store) volume(name string) (*volState, error) {
	s.catMu.Lock()
	defer s.catMu.Unlock()
	v, ok := s.names[name]
	if !ok {
		return nil, fmt.Errorf("volume %q: %w", name, ErrVolumeNotFound)
	}
	return v, nil
}

func findSnap(v *volState, name string) (snapshotMeta, bool) {
	for _, m := range v.snapshots() {
		if m.Name == name {
			return m, true
		}
	}
	return snapshotMeta{}, false
}

// CreateSnapshot freezes the volume's current contents under name: every
// write completed before it is in the snapshot, none that starts after it
// returns. It costs one log sync and one synced index commit, whatever the
// volume's size: a snapshot is a sequence-number boundary, not a copy.
// Later writes keep the versions it sees (see applyPend). The writer does
// not wait for the sync (snapsync.go); CreateSnapshot returns when the
// snapshot is durable, and only then do ListSnapshots and the reads of
// the snapshot see it.
func (s *Store) CreateSnapshot(ctx context.Context, volume, name string) (SnapshotInfo, error) {
	if err := ctx.Err(); err != nil {
		return SnapshotInfo{}, err
	}
	if name == "" || len(name) > maxVolumeName {
		return SnapshotInfo{}, fmt.Errorf("create snapshot %q: bad name: %w", name, ErrInvalid)
	}
	v, err := s.volume(volume)
	if err != nil {
		return SnapshotInfo{}, fmt.Errorf("create snapshot: %w", err)
	}
	var m snapshotMeta
	done := make(chan error, 1)
	err = s.run(v, func(w *writer) (err error) {
		m, err = w.cutSnapshot(v, name, done)
		return err
	})
	if err == nil {
		// Not bounded by ctx: the cut is made, and the outcome follows
		// within one sync.
		err = <-done
	}
	if err != nil {
		return SnapshotInfo{}, fmt.Errorf("create snapshot %q of %q: %w", name, volume, err)
	}
	return SnapshotInfo{Name: name, Seq: m.Seq, Created: m.Created}, nil
}

// visibleAt reports whether a version is what a snapshot at seq q sees.
func visibleAt(ver index.Version, q uint64) bool {
	return ver.Loc.Seq <= q && q < ver.Superseded
}

// seesVersion returns how many of snaps (sorted by Seq) see ver and the
// index of the first one that does.
func seesVersion(snaps []snapshotMeta, ver index.Version) (n, first int) {
	i := sort.Search(len(snaps), func(i int) bool { return snaps[i].Seq >= ver.Loc.Seq })
	first = i
	for ; i < len(snaps) && snaps[i].Seq < ver.Superseded; i++ {
		n++
	}
	return n, first
}

// DeleteSnapshot deletes a snapshot that no clone reads through, and drops
// every preserved version no remaining snapshot sees.
func (s *Store) DeleteSnapshot(ctx context.Context, volume, name string) error {
	defer s.spaceMayHaveFreed()
	if err := ctx.Err(); err != nil {
		return err
	}
	v, err := s.volume(volume)
	if err != nil {
		return fmt.Errorf("delete snapshot: %w", err)
	}
	err = s.run(v, func(w *writer) error {
		// Every version must be in the index to be pruned, and lastSnap
		// must not name a cut still pending.
		if err := w.syncLog(false); err != nil {
			return err
		}
		m, ok := findSnap(v, name)
		if !ok {
			return ErrSnapshotNotFound
		}
		if s.snapshotHasClones(v, m.Seq) {
			return ErrSnapshotBusy
		}
		rest := slices.DeleteFunc(slices.Clone(v.snapshots()), func(x snapshotMeta) bool { return x.Seq == m.Seq })
		err := s.idx.ScanVersions(v.id, func(ver index.Version) bool {
			if n, _ := seesVersion(rest, ver); n == 0 {
				w.ib.DeleteVersion(v.id, ver.LBA, ver.Loc.Seq)
			}
			return true
		})
		if err != nil {
			w.ib.Reset()
			return err
		}
		w.ib.DeleteMeta(snapKey(v.id, m.Seq))
		if err := w.ib.Commit(true); err != nil {
			w.fail(err)
			return err
		}
		v.setSnapshots(rest)
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete snapshot %q of %q: %w", name, volume, err)
	}
	return nil
}

func (s *Store) snapshotHasClones(v *volState, seq uint64) bool {
	s.catMu.Lock()
	defer s.catMu.Unlock()
	for _, c := range s.vols {
		if c.parent.Load() == v && c.parentSeq == seq && !c.deleted.Load() {
			return true
		}
	}
	return false
}

// ListSnapshots returns the volume's snapshots, oldest first, with the
// bytes each holds exclusively.
func (s *Store) ListSnapshots(volume string) ([]SnapshotInfo, error) {
	v, err := s.volume(volume)
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	snaps := v.snapshots()
	out := make([]SnapshotInfo, len(snaps))
	for i, m := range snaps {
		out[i] = SnapshotInfo{Name: m.Name, Seq: m.Seq, Created: m.Created}
	}
	if len(snaps) == 0 {
		return out, nil
	}
	s.submitMu.RLock()
	defer s.submitMu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	count := func(ver index.Version) bool {
		if n, first := seesVersion(snaps, ver); n == 1 && ver.Loc.Seg != 0 {
			out[first].ExclusiveBytes += uint64(v.blockSize)
		}
		return true
	}
	// Versions held for a pending cut are not in the index yet; a version
	// in both (its cut just completed) is counted once.
	type verKey struct{ lba, seq uint64 }
	held := make(map[verKey]index.Version)
	s.mu.RLock()
	s.held.volume(v.id, func(ver index.Version) { held[verKey{ver.LBA, ver.Loc.Seq}] = ver })
	s.mu.RUnlock()
	err = s.idx.ScanVersions(v.id, func(ver index.Version) bool {
		if _, dup := held[verKey{ver.LBA, ver.Loc.Seq}]; dup {
			return true
		}
		return count(ver)
	})
	if err != nil {
		return nil, fmt.Errorf("list snapshots of %q: %w", volume, err)
	}
	for _, ver := range held {
		count(ver)
	}
	return out, nil
}

// ReadSnapshotAt reads blocks of the named snapshot of the volume.
func (h *Volume) ReadSnapshotAt(ctx context.Context, snapshot string, p []byte, lba uint64) error {
	if err := h.check(ctx, p, lba, uint64(len(p))/uint64(h.v.blockSize)); err != nil {
		return fmt.Errorf("read snapshot %q of %q: %w", snapshot, h.v.name, err)
	}
	m, ok := findSnap(h.v, snapshot)
	if !ok {
		return fmt.Errorf("read snapshot %q of %q: %w", snapshot, h.v.name, ErrSnapshotNotFound)
	}
	h.s.submitMu.RLock()
	defer h.s.submitMu.RUnlock()
	if h.s.closed {
		return ErrClosed
	}
	return h.s.readBlocks(h.v, p, lba, m.Seq)
}

// RevertVolume makes the volume's live contents those of the snapshot. The
// volume must have no open handles. Snapshots (older and newer) and clones
// are unaffected. Its cost follows the number of blocks that changed.
func (s *Store) RevertVolume(ctx context.Context, volume, snapshot string) error {
	defer s.spaceMayHaveFreed()
	if err := ctx.Err(); err != nil {
		return err
	}
	v, err := s.volume(volume)
	if err != nil {
		return fmt.Errorf("revert: %w", err)
	}
	s.catMu.Lock()
	busy := v.open > 0
	s.catMu.Unlock()
	if busy {
		return fmt.Errorf("revert %q: %w", volume, ErrVolumeBusy)
	}
	err = s.run(v, func(w *writer) error {
		m, ok := findSnap(v, snapshot)
		if !ok {
			return ErrSnapshotNotFound
		}
		if err := w.syncLog(false); err != nil {
			return err
		}
		q, last := m.Seq, v.lastSnap.Load()
		w.seq++
		r := w.seq
		// The versions the snapshot sees become live again (with a new
		// sequence number, so Diff and ChangedSince see the change).
		var back []index.Version
		if err := s.idx.ScanVersions(v.id, func(ver index.Version) bool {
			if visibleAt(ver, q) {
				back = append(back, ver)
			}
			return true
		}); err != nil {
			return err
		}
		handled := make(map[uint64]struct{}, len(back))
		for _, ver := range back {
			handled[ver.LBA] = struct{}{}
			cur, ok, err := s.idx.Get(v.id, ver.LBA)
			if err != nil {
				w.ib.Reset()
				return err
			}
			if ok && cur.Seq <= last {
				w.ib.PutVersion(v.id, index.Version{LBA: ver.LBA, Loc: cur, Superseded: r})
			}
			loc := ver.Loc
			loc.Seq = r
			w.ib.Put(v.id, ver.LBA, loc)
		}
		// Live blocks written after the snapshot that it saw no version of
		// go back to unmapped (or, for a clone, to the parent's data).
		err := s.idx.Scan(v.id, 0, liveView, func(mp index.Mapping) bool {
			if _, done := handled[mp.LBA]; done || mp.Loc.Seq <= q {
				return true
			}
			if mp.Loc.Seq <= last {
				w.ib.PutVersion(v.id, index.Version{LBA: mp.LBA, Loc: mp.Loc, Superseded: r})
			}
			w.ib.DeleteRange(v.id, mp.LBA, 1)
			w.ib.PutTrim(v.id, index.Trim{Seq: r, LBA: mp.LBA, Blocks: 1})
			return true
		})
		if err != nil {
			w.ib.Reset()
			return err
		}
		v.seq.Store(r)
		w.touched[v.id] = v
		if err := w.commitOverlay(true, false); err != nil {
			return err
		}
		s.mu.Lock()
		for k := range s.cache {
			if k.vol == v.id {
				delete(s.cache, k)
			}
		}
		s.mu.Unlock()
		return nil
	})
	if err != nil {
		return fmt.Errorf("revert %q to %q: %w", volume, snapshot, err)
	}
	return nil
}

// CreateClone creates a writable linked clone of a snapshot. It shares the
// snapshot's data until it overwrites it; clones of clones read through
// each level (cost: one lookup pair per level).
func (s *Store) CreateClone(ctx context.Context, volume, snapshot, clone string) (VolumeInfo, error) {
	if err := ctx.Err(); err != nil {
		return VolumeInfo{}, err
	}
	if clone == "" || len(clone) > maxVolumeName || strings.ContainsRune(clone, 0) {
		return VolumeInfo{}, fmt.Errorf("create clone %q: bad name: %w", clone, ErrInvalid)
	}
	s.catMu.Lock()
	defer s.catMu.Unlock()
	if s.isClosed() {
		return VolumeInfo{}, ErrClosed
	}
	p, ok := s.names[volume]
	if !ok || p.deleted.Load() {
		return VolumeInfo{}, fmt.Errorf("create clone %q: volume %q: %w", clone, volume, ErrVolumeNotFound)
	}
	m, ok := findSnap(p, snapshot)
	if !ok {
		return VolumeInfo{}, fmt.Errorf("create clone %q: snapshot %q of %q: %w", clone, snapshot, volume, ErrSnapshotNotFound)
	}
	if _, ok := s.names[clone]; ok {
		return VolumeInfo{}, fmt.Errorf("create clone %q: %w", clone, ErrVolumeExists)
	}
	size := p.blocks.Load() * uint64(p.blockSize)
	if err := s.checkOvercommit(size); err != nil {
		return VolumeInfo{}, fmt.Errorf("create clone %q: %w", clone, err)
	}
	v := &volState{id: s.nextVol, name: clone, blockSize: p.blockSize, created: s.opts.Clock.Now().UnixNano(), parentSeq: m.Seq}
	v.parent.Store(p)
	v.blocks.Store(p.blocks.Load())
	ib := s.idx.NewBatch()
	defer ib.Close()
	ib.SetMeta(volKey(v.id), encodeVolumeMeta(v.meta()))
	ib.SetMeta([]byte(metaStore), encodeStoreMeta(storeMeta{NextVolume: v.id + 1}))
	if err := ib.Commit(true); err != nil {
		return VolumeInfo{}, fmt.Errorf("create clone %q: %w", clone, err)
	}
	s.nextVol++
	s.vols[v.id] = v
	s.names[clone] = v
	p.clones++
	return v.info(), nil
}

// Diff returns the extents that may differ between snapshot from and
// snapshot to of the volume (to == "": the live volume). It reports every
// block written or trimmed in between, so a block changed and changed back
// is included; a backup or resync that copies the extents is exact.
func (s *Store) Diff(ctx context.Context, volume, from, to string) ([]Extent, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	v, err := s.volume(volume)
	if err != nil {
		return nil, fmt.Errorf("diff: %w", err)
	}
	var out []Extent
	err = s.run(v, func(w *writer) error {
		a, ok := findSnap(v, from)
		if !ok {
			return fmt.Errorf("snapshot %q: %w", from, ErrSnapshotNotFound)
		}
		qb := liveView
		if to != "" {
			b, ok := findSnap(v, to)
			if !ok {
				return fmt.Errorf("snapshot %q: %w", to, ErrSnapshotNotFound)
			}
			qb = b.Seq
		}
		if qb < a.Seq {
			return fmt.Errorf("snapshot %q is older than %q: %w", to, from, ErrInvalid)
		}
		if err := w.syncLog(false); err != nil {
			return err
		}
		in := func(seq uint64) bool { return seq > a.Seq && seq <= qb }
		var lbas []uint64
		if err := s.idx.Scan(v.id, 0, liveView, func(m index.Mapping) bool {
			if in(m.Loc.Seq) {
				lbas = append(lbas, m.LBA)
			}
			return true
		}); err != nil {
			return err
		}
		if err := s.idx.ScanVersions(v.id, func(ver index.Version) bool {
			if in(ver.Loc.Seq) || in(ver.Superseded) {
				lbas = append(lbas, ver.LBA)
			}
			return true
		}); err != nil {
			return err
		}
		out = extents(lbas)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("diff %q: %w", volume, err)
	}
	return out, nil
}

// ChangedSince returns the extents of the live volume written or trimmed
// after store sequence number seq (see Volume.Seq): what a replica that was
// current at seq must copy to catch up. Like Diff it is a superset: a block
// changed and changed back is included.
func (s *Store) ChangedSince(ctx context.Context, volume string, seq uint64) ([]Extent, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	v, err := s.volume(volume)
	if err != nil {
		return nil, fmt.Errorf("changed since: %w", err)
	}
	var out []Extent
	err = s.run(v, func(w *writer) error {
		if err := w.syncLog(false); err != nil {
			return err
		}
		var lbas []uint64
		if err := s.idx.Scan(v.id, 0, liveView, func(m index.Mapping) bool {
			if m.Loc.Seq > seq {
				lbas = append(lbas, m.LBA)
			}
			return true
		}); err != nil {
			return err
		}
		var trims []Extent
		if err := s.idx.ScanTrims(v.id, seq, func(t index.Trim) bool {
			trims = append(trims, Extent{LBA: t.LBA, Blocks: t.Blocks})
			return true
		}); err != nil {
			return err
		}
		out = mergeExtents(extents(lbas), trims)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("changed since %d on %q: %w", seq, volume, err)
	}
	return out, nil
}

// mergeExtents returns the union of a and b, sorted and coalesced.
func mergeExtents(a, b []Extent) []Extent {
	all := append(slices.Clone(a), b...)
	slices.SortFunc(all, func(x, y Extent) int { return cmp.Compare(x.LBA, y.LBA) })
	var out []Extent
	for _, e := range all {
		if n := len(out); n > 0 && e.LBA <= out[n-1].LBA+out[n-1].Blocks {
			out[n-1].Blocks = max(out[n-1].Blocks, e.LBA+e.Blocks-out[n-1].LBA)
			continue
		}
		out = append(out, e)
	}
	return out
}

// extents sorts and coalesces block numbers into runs.
func extents(lbas []uint64) []Extent {
	slices.Sort(lbas)
	lbas = slices.Compact(lbas)
	var out []Extent
	for _, lba := range lbas {
		if n := len(out); n > 0 && out[n-1].LBA+out[n-1].Blocks == lba {
			out[n-1].Blocks++
			continue
		}
		out = append(out, Extent{LBA: lba, Blocks: 1})
	}
	return out
}
