package blockstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/vfs"
)

// model is the obviously-correct reference: every volume and snapshot is a
// map from LBA to block contents (absent: zeros). A clone starts as a copy
// of its snapshot's map.
type model struct {
	bs     int
	blocks uint64
	vols   map[string]*modelVol
}

type modelVol struct {
	data    map[uint64][]byte
	snaps   map[string]map[uint64][]byte
	order   []string // snapshot names, oldest first
	parent  string   // "vol/snap" a clone reads through, or ""
	clones  int
	deleted bool
}

type metaConfig struct {
	segSize   int64
	maxDirty  int
	recBytes  int
	blockSize int
}

func (c metaConfig) String() string {
	return fmt.Sprintf("seg=%d dirty=%d rec=%d bs=%d", c.segSize, c.maxDirty, c.recBytes, c.blockSize)
}

// TestMetamorphic runs one random sequence of writes, unmaps, snapshots,
// clones, reverts, deletes, segment cleaning and reopens against several store
// configurations and checks every one against the model.
func TestMetamorphic(t *testing.T) {
	n := seedCount(t, 30)
	configs := []metaConfig{
		{segSize: 8 << 10, maxDirty: 3, recBytes: 1024, blockSize: 512},
		{segSize: 1 << 20, maxDirty: 1 << 16, recBytes: 256 << 10, blockSize: 512},
		{segSize: 64 << 10, maxDirty: 17, recBytes: 4096, blockSize: 4096},
	}
	for seed := 0; seed < n; seed++ {
		for _, cfg := range configs {
			t.Run(fmt.Sprintf("%d/%v", seed, cfg), func(t *testing.T) {
				runMetamorphic(t, uint64(seed), cfg)
			})
		}
	}
}

type metaRun struct {
	t       *testing.T
	ctx     context.Context
	cfg     metaConfig
	fs      vfs.FS
	opts    Options
	s       *Store
	handles map[string]*Volume
	m       *model
	tag     uint64
	marks   map[string]mark
}

// mark is a volume's sequence number and contents at one point, for
// ChangedSince.
type mark struct {
	seq  uint64
	data map[uint64][]byte
}

func runMetamorphic(t *testing.T, seed uint64, cfg metaConfig) {
	// The operation sequence depends only on the seed, never on cfg.
	rng := rand.New(rand.NewPCG(seed, 0x3e7a))
	r := &metaRun{
		t: t, ctx: context.Background(), cfg: cfg, fs: vfs.NewMem(),
		opts:    Options{SegmentSize: cfg.segSize, MaxDirty: cfg.maxDirty, MaxRecordBytes: cfg.recBytes},
		handles: make(map[string]*Volume),
		marks:   make(map[string]mark),
		m:       &model{bs: cfg.blockSize, blocks: 48, vols: make(map[string]*modelVol)},
		tag:     seed << 40,
	}
	r.opts.FS = r.fs
	r.open()
	r.createVolume("v0")
	nextName := 1
	for op := 0; op < 150; op++ {
		names := r.liveNames()
		vol := names[rng.IntN(len(names))]
		mv := r.m.vols[vol]
		switch x := rng.IntN(100); {
		case x < 40:
			n := 1 + rng.IntN(5)
			lba := rng.Uint64N(r.m.blocks - uint64(n) + 1)
			r.write(vol, lba, n)
		case x < 50:
			n := 1 + rng.IntN(8)
			lba := rng.Uint64N(r.m.blocks - uint64(n) + 1)
			r.unmap(vol, lba, uint64(n))
		case x < 60:
			r.snapshot(vol, fmt.Sprintf("s%d", op))
		case x < 66:
			if len(mv.order) > 0 {
				r.clone(vol, mv.order[rng.IntN(len(mv.order))], fmt.Sprintf("v%d", nextName))
				nextName++
			}
		case x < 71:
			if len(mv.order) > 0 {
				r.revert(vol, mv.order[rng.IntN(len(mv.order))])
			}
		case x < 76:
			if len(mv.order) > 0 {
				r.deleteSnapshot(vol, mv.order[rng.IntN(len(mv.order))])
			}
		case x < 79:
			if len(names) > 1 {
				r.deleteVolume(vol)
			}
		case x < 83:
			r.reopen()
		case x < 86:
			if len(mv.order) > 0 {
				r.diff(vol, mv.order[rng.IntN(len(mv.order))])
			}
			r.changedSince(vol)
		case x < 90:
			if _, err := r.s.CollectGarbage(r.ctx, 1+rng.IntN(4), []float64{0.5, 1}[rng.IntN(2)], 0); err != nil {
				t.Fatalf("gc: %v", err)
			}
		default:
			r.checkRandom(rng, vol)
		}
	}
	r.checkAll("end")
	r.reopen()
	r.checkAll("after reopen")
	r.close()
}

func (r *metaRun) open() {
	r.t.Helper()
	s, err := Open(testDir, r.opts)
	if err != nil {
		r.t.Fatalf("open: %v", err)
	}
	r.s = s
	for name, mv := range r.m.vols {
		if mv.deleted {
			continue
		}
		h, err := s.OpenVolume(name)
		if err != nil {
			r.t.Fatalf("open volume %q: %v", name, err)
		}
		r.handles[name] = h
	}
}

func (r *metaRun) close() {
	r.t.Helper()
	for name, h := range r.handles {
		h.Close()
		delete(r.handles, name)
	}
	if err := r.s.Close(); err != nil {
		r.t.Fatalf("close: %v", err)
	}
}

func (r *metaRun) reopen() {
	r.close()
	r.open()
}

func (r *metaRun) liveNames() []string {
	var out []string
	for name, mv := range r.m.vols {
		if !mv.deleted {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

func (r *metaRun) createVolume(name string) {
	r.t.Helper()
	if _, err := r.s.CreateVolume(r.ctx, name, VolumeOptions{SizeBytes: r.m.blocks * uint64(r.m.bs), BlockSize: uint32(r.m.bs)}); err != nil {
		r.t.Fatalf("create %q: %v", name, err)
	}
	h, err := r.s.OpenVolume(name)
	if err != nil {
		r.t.Fatal(err)
	}
	r.handles[name] = h
	r.m.vols[name] = &modelVol{data: map[uint64][]byte{}, snaps: map[string]map[uint64][]byte{}}
}

func (r *metaRun) write(vol string, lba uint64, n int) {
	r.t.Helper()
	p := make([]byte, n*r.m.bs)
	r.tag++
	stamp(p, r.m.bs, r.tag)
	if err := r.handles[vol].WriteAt(r.ctx, p, lba, false); err != nil {
		r.t.Fatalf("write %q: %v", vol, err)
	}
	for k := 0; k < n; k++ {
		r.m.vols[vol].data[lba+uint64(k)] = p[k*r.m.bs : (k+1)*r.m.bs]
	}
}

func (r *metaRun) unmap(vol string, lba, n uint64) {
	r.t.Helper()
	if err := r.handles[vol].Unmap(r.ctx, lba, n); err != nil {
		r.t.Fatalf("unmap %q: %v", vol, err)
	}
	for k := uint64(0); k < n; k++ {
		delete(r.m.vols[vol].data, lba+k)
	}
}

func (r *metaRun) snapshot(vol, name string) {
	r.t.Helper()
	if _, err := r.s.CreateSnapshot(r.ctx, vol, name); err != nil {
		r.t.Fatalf("snapshot %q of %q: %v", name, vol, err)
	}
	mv := r.m.vols[vol]
	mv.snaps[name] = maps.Clone(mv.data)
	mv.order = append(mv.order, name)
}

func (r *metaRun) clone(vol, snap, name string) {
	r.t.Helper()
	if _, err := r.s.CreateClone(r.ctx, vol, snap, name); err != nil {
		r.t.Fatalf("clone %q of %q@%q: %v", name, vol, snap, err)
	}
	h, err := r.s.OpenVolume(name)
	if err != nil {
		r.t.Fatal(err)
	}
	r.handles[name] = h
	r.m.vols[name] = &modelVol{data: maps.Clone(r.m.vols[vol].snaps[snap]), snaps: map[string]map[uint64][]byte{}, parent: vol + "/" + snap}
	r.m.vols[vol].clones++
}

func (r *metaRun) revert(vol, snap string) {
	r.t.Helper()
	r.handles[vol].Close()
	if err := r.s.RevertVolume(r.ctx, vol, snap); err != nil {
		r.t.Fatalf("revert %q to %q: %v", vol, snap, err)
	}
	h, err := r.s.OpenVolume(vol)
	if err != nil {
		r.t.Fatal(err)
	}
	r.handles[vol] = h
	mv := r.m.vols[vol]
	mv.data = maps.Clone(mv.snaps[snap])
}

func (r *metaRun) deleteSnapshot(vol, snap string) {
	r.t.Helper()
	busy := false
	for _, c := range r.m.vols {
		busy = busy || (!c.deleted && c.parent == vol+"/"+snap)
	}
	err := r.s.DeleteSnapshot(r.ctx, vol, snap)
	if busy {
		if !errors.Is(err, ErrSnapshotBusy) {
			r.t.Fatalf("delete snapshot %q of %q with clones: %v", snap, vol, err)
		}
		return
	}
	if err != nil {
		r.t.Fatalf("delete snapshot %q of %q: %v", snap, vol, err)
	}
	mv := r.m.vols[vol]
	delete(mv.snaps, snap)
	mv.order = slices.DeleteFunc(mv.order, func(s string) bool { return s == snap })
}

func (r *metaRun) deleteVolume(vol string) {
	r.t.Helper()
	mv := r.m.vols[vol]
	r.handles[vol].Close()
	delete(r.handles, vol)
	err := r.s.DeleteVolume(r.ctx, vol)
	if mv.clones > 0 {
		if !errors.Is(err, ErrVolumeBusy) {
			r.t.Fatalf("delete volume %q with clones: %v", vol, err)
		}
		h, err := r.s.OpenVolume(vol)
		if err != nil {
			r.t.Fatal(err)
		}
		r.handles[vol] = h
		return
	}
	if err != nil {
		r.t.Fatalf("delete volume %q: %v", vol, err)
	}
	mv.deleted = true
	if mv.parent != "" {
		for name, p := range r.m.vols {
			if len(mv.parent) > len(name) && mv.parent[:len(name)+1] == name+"/" {
				p.clones--
			}
		}
	}
}

// diff checks that Diff(snap, live) covers every block that differs.
func (r *metaRun) diff(vol, snap string) {
	r.t.Helper()
	ext, err := r.s.Diff(r.ctx, vol, snap, "")
	if err != nil {
		r.t.Fatalf("diff %q %q: %v", vol, snap, err)
	}
	mv := r.m.vols[vol]
	old := mv.snaps[snap]
	covered := func(lba uint64) bool {
		for _, e := range ext {
			if lba >= e.LBA && lba < e.LBA+e.Blocks {
				return true
			}
		}
		return false
	}
	for lba := uint64(0); lba < r.m.blocks; lba++ {
		a, b := old[lba], mv.data[lba]
		if !bytes.Equal(a, b) && !covered(lba) {
			r.t.Fatalf("diff %q from %q misses changed lba %d (extents %v)", vol, snap, lba, ext)
		}
	}
}

// changedSince checks ChangedSince against the volume's last mark, then
// marks the volume again.
func (r *metaRun) changedSince(vol string) {
	r.t.Helper()
	mv := r.m.vols[vol]
	if mk, ok := r.marks[vol]; ok {
		ext, err := r.s.ChangedSince(r.ctx, vol, mk.seq)
		if err != nil {
			r.t.Fatalf("changed since %d on %q: %v", mk.seq, vol, err)
		}
		for lba := uint64(0); lba < r.m.blocks; lba++ {
			if bytes.Equal(mk.data[lba], mv.data[lba]) {
				continue
			}
			ok := false
			for _, e := range ext {
				ok = ok || (lba >= e.LBA && lba < e.LBA+e.Blocks)
			}
			if !ok {
				r.t.Fatalf("changed since %d on %q misses lba %d (extents %v)", mk.seq, vol, lba, ext)
			}
		}
	}
	info, err := r.s.StatVolume(vol)
	if err != nil {
		r.t.Fatal(err)
	}
	r.marks[vol] = mark{seq: info.Seq, data: maps.Clone(mv.data)}
}

func (r *metaRun) expect(what string, want []byte, got []byte) {
	r.t.Helper()
	if want == nil {
		want = make([]byte, r.m.bs)
	}
	if !bytes.Equal(want, got) {
		r.t.Fatalf("%s: got %x..., want %x...", what, got[:16], want[:16])
	}
}

func (r *metaRun) checkRandom(rng *rand.Rand, vol string) {
	r.t.Helper()
	lba := rng.Uint64N(r.m.blocks)
	got := make([]byte, r.m.bs)
	if err := r.handles[vol].ReadAt(r.ctx, got, lba); err != nil {
		r.t.Fatalf("read %q: %v", vol, err)
	}
	r.expect(fmt.Sprintf("%q lba %d", vol, lba), r.m.vols[vol].data[lba], got)
	mv := r.m.vols[vol]
	if len(mv.order) > 0 {
		snap := mv.order[rng.IntN(len(mv.order))]
		if err := r.handles[vol].ReadSnapshotAt(r.ctx, snap, got, lba); err != nil {
			r.t.Fatalf("read %q@%q: %v", vol, snap, err)
		}
		r.expect(fmt.Sprintf("%q@%q lba %d", vol, snap, lba), mv.snaps[snap][lba], got)
	}
}

func (r *metaRun) checkAll(when string) {
	r.t.Helper()
	got := make([]byte, r.m.bs*int(r.m.blocks))
	for _, vol := range r.liveNames() {
		mv := r.m.vols[vol]
		h := r.handles[vol]
		if err := h.ReadAt(r.ctx, got, 0); err != nil {
			r.t.Fatalf("%s: read %q: %v", when, vol, err)
		}
		for lba := uint64(0); lba < r.m.blocks; lba++ {
			r.expect(fmt.Sprintf("%s: %q lba %d", when, vol, lba), mv.data[lba], got[lba*uint64(r.m.bs):(lba+1)*uint64(r.m.bs)])
		}
		for _, snap := range mv.order {
			if err := h.ReadSnapshotAt(r.ctx, snap, got, 0); err != nil {
				r.t.Fatalf("%s: read %q@%q: %v", when, vol, snap, err)
			}
			for lba := uint64(0); lba < r.m.blocks; lba++ {
				r.expect(fmt.Sprintf("%s: %q@%q lba %d", when, vol, snap, lba), mv.snaps[snap][lba], got[lba*uint64(r.m.bs):(lba+1)*uint64(r.m.bs)])
			}
		}
		list, err := r.s.ListSnapshots(vol)
		if err != nil {
			r.t.Fatal(err)
		}
		var names []string
		for _, sn := range list {
			names = append(names, sn.Name)
		}
		if !slices.Equal(names, mv.order) {
			r.t.Fatalf("%s: snapshots of %q = %v, want %v", when, vol, names, mv.order)
		}
	}
}
