package blockstore

import (
	"cmp"
	"slices"

	"github.com/vbs-storage/vbs/blockstore/index"
)

// heldSet holds preserved versions that are not in the index yet (see
// snapsync.go). Most blocks have one; a block preserved for two cuts
// before the versions reach the index has more, the newest in one and
// the older ones in more. Versions of a block are added oldest first.
// Store.mu guards it; only the writer mutates it.
type heldSet struct {
	one  map[blockKey]index.Version
	more map[blockKey][]index.Version
}

func newHeldSet() heldSet {
	return heldSet{one: make(map[blockKey]index.Version), more: make(map[blockKey][]index.Version)}
}

func (h *heldSet) len() int { return len(h.one) }

// add holds ver as the newest version of k.
func (h *heldSet) add(k blockKey, ver index.Version) {
	if prev, ok := h.one[k]; ok {
		h.more[k] = append(h.more[k], prev)
	}
	h.one[k] = ver
}

// find returns the version of k a snapshot at q sees, if one is held.
func (h *heldSet) find(k blockKey, q uint64) (index.Version, bool) {
	ver, ok := h.one[k]
	if !ok {
		return index.Version{}, false
	}
	if visibleAt(ver, q) {
		return ver, true
	}
	for _, ver := range h.more[k] {
		if visibleAt(ver, q) {
			return ver, true
		}
	}
	return index.Version{}, false
}

// names reports whether a held version of k lives at (seg, off).
func (h *heldSet) names(k blockKey, seg, off uint64) bool {
	ver, ok := h.one[k]
	if !ok {
		return false
	}
	if ver.Loc.Seg == seg && ver.Loc.Off == off {
		return true
	}
	return slices.ContainsFunc(h.more[k], func(ver index.Version) bool { return ver.Loc.Seg == seg && ver.Loc.Off == off })
}

// repoint moves the held versions of k at old to newLoc's place (the
// cleaner moved the data) and reports whether there was one.
func (h *heldSet) repoint(k blockKey, old, newLoc index.Location) bool {
	ver, ok := h.one[k]
	if !ok {
		return false
	}
	moved := false
	if ver.Loc.Seg == old.Seg && ver.Loc.Off == old.Off {
		ver.Loc.Seg, ver.Loc.Off = newLoc.Seg, newLoc.Off
		h.one[k] = ver
		moved = true
	}
	vers := h.more[k]
	for i := range vers {
		if vers[i].Loc.Seg == old.Seg && vers[i].Loc.Off == old.Off {
			vers[i].Loc.Seg, vers[i].Loc.Off = newLoc.Seg, newLoc.Off
			moved = true
		}
	}
	return moved
}

// appendUpTo appends to out every held version whose data is at or below
// seq (Loc.Seq), sorted by volume, block and seq (pebble inserts sorted
// keys much faster).
func (h *heldSet) appendUpTo(out []heldVersion, seq uint64) []heldVersion {
	start := len(out)
	for k, ver := range h.one {
		if ver.Loc.Seq <= seq {
			out = append(out, heldVersion{vol: k.vol, ver: ver})
		}
	}
	for k, vers := range h.more {
		for _, ver := range vers {
			if ver.Loc.Seq <= seq {
				out = append(out, heldVersion{vol: k.vol, ver: ver})
			}
		}
	}
	slices.SortFunc(out[start:], func(a, b heldVersion) int {
		if c := cmp.Compare(a.vol, b.vol); c != 0 {
			return c
		}
		if c := cmp.Compare(a.ver.LBA, b.ver.LBA); c != 0 {
			return c
		}
		return cmp.Compare(a.ver.Loc.Seq, b.ver.Loc.Seq)
	})
	return out
}

// clear forgets every held version (they are all in the index now).
func (h *heldSet) clear() {
	clear(h.one)
	clear(h.more)
}

// dropVolume forgets the held versions of a deleted volume.
func (h *heldSet) dropVolume(vol uint64) {
	for k := range h.one {
		if k.vol == vol {
			delete(h.one, k)
			delete(h.more, k)
		}
	}
}

// volume calls fn with every held version of vol.
func (h *heldSet) volume(vol uint64, fn func(index.Version)) {
	for k, ver := range h.one {
		if k.vol != vol {
			continue
		}
		fn(ver)
		for _, ver := range h.more[k] {
			fn(ver)
		}
	}
}
