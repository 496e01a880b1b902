package blockstore

import (
	"github.com/vbs-storage/vbs/blockstore/index"
)

// liveView is the sequence number that selects a volume's live view rather
// than a snapshot's.
const liveView = ^uint64(0)

// liveLocked returns the live mapping of k: the overlay's, else the
// index's. A tombstone (Seg 0) is returned as a mapping. The caller holds
// s.mu (shared) or is the writer.
func (s *Store) liveLocked(k blockKey) (index.Location, bool, error) {
	if l, ok := s.dirty[k]; ok {
		return l, true, nil
	}
	if l, ok := s.cache[k]; ok {
		return l, true, nil
	}
	return s.idx.Get(k.vol, k.lba)
}

// cacheCommitted moves the overlay's entries, now in pebble, into the
// cache, evicting arbitrary entries when it is full. s.mu is held
// exclusively by the writer.
func (s *Store) cacheCommitted() {
	limit := s.opts.CacheEntries
	if len(s.cache)+len(s.dirty) > limit {
		// Map iteration order is random: this evicts a random sample.
		evict := len(s.cache) + len(s.dirty) - limit
		for k := range s.cache {
			if evict <= 0 {
				break
			}
			delete(s.cache, k)
			evict--
		}
	}
	for k, l := range s.dirty {
		if len(s.cache) >= limit {
			break
		}
		s.cache[k] = l
	}
}

// resolveLocked returns where block lba of v lives as seen at sequence
// number q (liveView for the live volume). ok=false means the block reads
// as zeros. A snapshot sees, per block, the newest version written at or
// before its seq; a block absent there falls through to a clone's parent,
// as of the clone's snapshot. Cost: two index lookups per level of clone
// nesting, whatever the number of snapshots.
func (s *Store) resolveLocked(v *volState, lba, q uint64) (index.Location, bool, error) {
	for {
		loc, ok, err := s.liveLocked(blockKey{v.id, lba})
		if err != nil {
			return index.Location{}, false, err
		}
		if ok && loc.Seq <= q {
			return loc, loc.Seg != 0, nil
		}
		if q != liveView && v.lastSnap.Load() != 0 {
			if ver, found := s.held.find(blockKey{v.id, lba}, q); found {
				return ver.Loc, ver.Loc.Seg != 0, nil
			}
			ver, found, err := s.idx.FindVersion(v.id, lba, q)
			if err != nil {
				return index.Location{}, false, err
			}
			if found && ver.Superseded > q {
				return ver.Loc, ver.Loc.Seg != 0, nil
			}
		}
		p := v.parent.Load()
		if p == nil || (ok && q == liveView) {
			return index.Location{}, false, nil
		}
		v, q = p, v.parentSeq
	}
}

// forLive calls fn with every live mapping (tombstones included) of vol in
// [from, end): overlay entries first, then index entries the overlay does
// not shadow. Only the writer calls it.
func (s *Store) forLive(vol, from, end uint64, fn func(lba uint64, loc index.Location)) error {
	if end-from <= uint64(len(s.dirty)) {
		for lba := from; lba < end; lba++ {
			if l, ok := s.dirty[blockKey{vol, lba}]; ok {
				fn(lba, l)
			}
		}
	} else {
		for k, l := range s.dirty {
			if k.vol == vol && k.lba >= from && k.lba < end {
				fn(k.lba, l)
			}
		}
	}
	return s.idx.Scan(vol, from, end, func(m index.Mapping) bool {
		if _, shadowed := s.dirty[blockKey{vol, m.LBA}]; !shadowed {
			fn(m.LBA, m.Loc)
		}
		return true
	})
}

// cloneTombstones returns the blocks of [from, end) a trim of clone v must
// cover with tombstones: every block any ancestor has a live mapping or a
// preserved version for (a superset of what the parent's view maps). The
// cost follows the ancestors' entries in the range, not its size: their
// index entries, overlay entries (a snapshot does not move the overlay
// into the index, so a parent's blocks written before the clone's
// snapshot may still be there) and held versions (snapsync.go). Only the
// writer calls it.
func (s *Store) cloneTombstones(v *volState, from, end uint64) ([]uint64, error) {
	set := make(map[uint64]struct{})
	for a := v.parent.Load(); a != nil; a = a.parent.Load() {
		err := s.idx.Scan(a.id, from, end, func(m index.Mapping) bool {
			set[m.LBA] = struct{}{}
			return true
		})
		if err != nil {
			return nil, err
		}
		if a.lastSnap.Load() != 0 {
			err = s.idx.ScanVersions(a.id, func(ver index.Version) bool {
				if ver.LBA >= from && ver.LBA < end {
					set[ver.LBA] = struct{}{}
				}
				return true
			})
			if err != nil {
				return nil, err
			}
		}
		s.held.volume(a.id, func(ver index.Version) {
			if ver.LBA >= from && ver.LBA < end {
				set[ver.LBA] = struct{}{}
			}
		})
		if end-from <= uint64(len(s.dirty)) {
			for lba := from; lba < end; lba++ {
				if _, ok := s.dirty[blockKey{a.id, lba}]; ok {
					set[lba] = struct{}{}
				}
			}
		} else {
			for k := range s.dirty {
				if k.vol == a.id && k.lba >= from && k.lba < end {
					set[k.lba] = struct{}{}
				}
			}
		}
	}
	out := make([]uint64, 0, len(set))
	for lba := range set {
		out = append(out, lba)
	}
	return out, nil
}
