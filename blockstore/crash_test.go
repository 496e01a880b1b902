package blockstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/vfs"
	"github.com/cockroachdb/pebble/vfs/errorfs"
)

// seedCount returns how many seeds a randomized test runs: def normally,
// VBS_STRESS_SEEDS when set (the opt-in stress target).
func seedCount(t *testing.T, def int) int {
	if s := os.Getenv("VBS_STRESS_SEEDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("VBS_STRESS_SEEDS=%q: %v", s, err)
		}
		return n
	}
	if testing.Short() {
		return max(def/10, 1)
	}
	return def
}

// blockModel tracks, per block, every value a crash may leave behind: the
// value known durable and every value written after it.
type blockModel struct {
	bs    int
	cands [][][]byte
}

func newBlockModel(blocks, bs int) *blockModel {
	m := &blockModel{bs: bs, cands: make([][][]byte, blocks)}
	zero := make([]byte, bs)
	for i := range m.cands {
		m.cands[i] = [][]byte{zero}
	}
	return m
}

// write records p written at lba; durable collapses the candidates.
func (m *blockModel) write(lba uint64, p []byte, durable bool) {
	for k := 0; k < len(p)/m.bs; k++ {
		blk := p[k*m.bs : (k+1)*m.bs]
		if durable {
			m.cands[lba+uint64(k)] = [][]byte{blk}
		} else {
			m.cands[lba+uint64(k)] = append(m.cands[lba+uint64(k)], blk)
		}
	}
}

// maybe records a write whose outcome is unknown (it failed or raced a
// crash): the block may hold it, but the current value stays possible.
func (m *blockModel) maybe(lba uint64, p []byte) {
	for k := 0; k < len(p)/m.bs; k++ {
		i := lba + uint64(k)
		last := m.cands[i][len(m.cands[i])-1]
		m.cands[i] = append(m.cands[i], p[k*m.bs:(k+1)*m.bs], last)
	}
}

func (m *blockModel) latest(lba uint64) []byte {
	c := m.cands[lba]
	return c[len(c)-1]
}

// flush: every completed write is now durable.
func (m *blockModel) flush() {
	for i, c := range m.cands {
		m.cands[i] = c[len(c)-1:]
	}
}

// verify reads every block and checks it holds one of its candidates, and
// exactly the durable one when there are no others. It then takes what it
// read as the new durable state.
func (m *blockModel) verify(t *testing.T, ctx context.Context, v *Volume, what string) {
	t.Helper()
	got := make([]byte, m.bs)
	for lba := range m.cands {
		if err := v.ReadAt(ctx, got, uint64(lba)); err != nil {
			t.Fatalf("%s: read lba %d: %v", what, lba, err)
		}
		found := -1
		for i, c := range m.cands[lba] {
			if bytes.Equal(got, c) {
				found = i
			}
		}
		if found < 0 {
			t.Fatalf("%s: lba %d holds %x..., none of its %d candidates (newest %x...)", what, lba, got[:8], len(m.cands[lba]), m.latest(uint64(lba))[:8])
		}
		m.cands[lba] = [][]byte{m.cands[lba][found]}
	}
}

// stamp fills a block-aligned buffer with data unique to (tag, block).
func stamp(p []byte, bs int, tag uint64) {
	for k := 0; k < len(p)/bs; k++ {
		blk := p[k*bs : (k+1)*bs]
		for i := 0; i+16 <= len(blk); i += 16 {
			binary.LittleEndian.PutUint64(blk[i:], tag)
			binary.LittleEndian.PutUint64(blk[i+8:], uint64(k)<<32|uint64(i))
		}
	}
}

// crash simulates a machine crash: whatever was not synced is lost.
func crash(t *testing.T, fs *vfs.MemFS, s *Store, handles ...*Volume) {
	t.Helper()
	fs.SetIgnoreSyncs(true)
	for _, h := range handles {
		_ = h.Close()
	}
	_ = s.Close()
	fs.ResetToSyncedState()
	fs.SetIgnoreSyncs(false)
}

type crashConfig struct {
	segSize  int64
	maxDirty int
	bs       int
	blocks   int
}

func randomCrashConfig(rng *rand.Rand) crashConfig {
	return crashConfig{
		segSize:  []int64{8 << 10, 64 << 10, 4 << 20}[rng.IntN(3)],
		maxDirty: []int{3, 64, 1 << 16}[rng.IntN(3)],
		bs:       []int{512, 4096}[rng.IntN(2)],
		blocks:   16 + rng.IntN(48),
	}
}

// TestCrashSequential runs a random single-threaded workload, crashes at a
// random point keeping only synced data, reopens and checks every block,
// twice per seed (so recovery's own output survives a second crash).
func TestCrashSequential(t *testing.T) {
	n := seedCount(t, 300)
	for seed := 0; seed < n; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { runCrashSequential(t, uint64(seed)) })
	}
}

func runCrashSequential(t *testing.T, seed uint64) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	cfg := randomCrashConfig(rng)
	fs := vfs.NewStrictMem()
	opts := Options{SegmentSize: cfg.segSize, MaxDirty: cfg.maxDirty, MaxRecordBytes: 2 * cfg.bs}
	s := openMem(t, fs, opts)
	v := mustCreate(t, s, "vol", uint64(cfg.blocks*cfg.bs), uint32(cfg.bs))
	// A write-through volume makes every write durable before it returns.
	writeThrough := rng.IntN(5) == 0
	if writeThrough {
		if err := v.SetWriteThrough(ctx, true); err != nil {
			t.Fatal(err)
		}
	}
	m := newBlockModel(cfg.blocks, cfg.bs)
	snaps := map[string][][]byte{} // snapshot name -> block contents
	tag := seed << 32
	for cycle := 0; cycle < 2; cycle++ {
		ops := rng.IntN(120)
		for op := 0; op < ops; op++ {
			switch r := rng.IntN(100); {
			case r < 55:
				n := 1 + rng.IntN(6)
				lba := uint64(rng.IntN(cfg.blocks - n + 1))
				p := make([]byte, n*cfg.bs)
				tag++
				stamp(p, cfg.bs, tag)
				fua := rng.IntN(8) == 0
				if rng.IntN(10) == 0 {
					if err := v.WriteAtomic(ctx, p, lba, fua); err != nil {
						t.Fatalf("seed %d: atomic write: %v", seed, err)
					}
				} else if err := v.WriteAt(ctx, p, lba, fua); err != nil {
					t.Fatalf("seed %d: write: %v", seed, err)
				}
				m.write(lba, p, fua || writeThrough)
			case r < 65:
				n := 1 + rng.IntN(8)
				lba := uint64(rng.IntN(cfg.blocks - n + 1))
				if err := v.Unmap(ctx, lba, uint64(n)); err != nil {
					t.Fatalf("seed %d: unmap: %v", seed, err)
				}
				m.write(lba, make([]byte, n*cfg.bs), false)
			case r < 70:
				if err := v.Flush(ctx); err != nil {
					t.Fatalf("seed %d: flush: %v", seed, err)
				}
				m.flush()
			case r < 72:
				// A snapshot is durable when it returns, with everything
				// it sees.
				name := fmt.Sprintf("c%d-%d", cycle, op)
				if _, err := s.CreateSnapshot(ctx, "vol", name); err != nil {
					t.Fatalf("seed %d: snapshot: %v", seed, err)
				}
				m.flush()
				img := make([][]byte, cfg.blocks)
				for lba := range img {
					img[lba] = m.latest(uint64(lba))
				}
				snaps[name] = img
			case r < 74:
				// Segment cleaning moves data and deletes segments; a
				// crash at any later point must not lose what it moved.
				if _, err := s.CollectGarbage(ctx, 4, 1.0, 0); err != nil {
					t.Fatalf("seed %d: gc: %v", seed, err)
				}
			case r < 75:
				// Clean restart: Close makes everything durable.
				v.Close()
				if err := s.Close(); err != nil {
					t.Fatalf("seed %d: close: %v", seed, err)
				}
				m.flush()
				s = openMem(t, fs, opts)
				var err error
				if v, err = s.OpenVolume("vol"); err != nil {
					t.Fatal(err)
				}
			default:
				lba := uint64(rng.IntN(cfg.blocks))
				got := make([]byte, cfg.bs)
				if err := v.ReadAt(ctx, got, lba); err != nil {
					t.Fatalf("seed %d: read: %v", seed, err)
				}
				if !bytes.Equal(got, m.latest(lba)) {
					t.Fatalf("seed %d: lba %d does not read back its last write", seed, lba)
				}
			}
		}
		crash(t, fs, s, v)
		s = openMem(t, fs, opts)
		var err error
		if v, err = s.OpenVolume("vol"); err != nil {
			t.Fatalf("seed %d: reopen after crash: %v", seed, err)
		}
		m.verify(t, ctx, v, fmt.Sprintf("seed %d cycle %d (%+v)", seed, cycle, cfg))
		got := make([]byte, cfg.bs)
		for name, img := range snaps {
			for lba := range img {
				if err := v.ReadSnapshotAt(ctx, name, got, uint64(lba)); err != nil {
					t.Fatalf("seed %d: read snapshot %s: %v", seed, name, err)
				}
				if !bytes.Equal(got, img[lba]) {
					t.Fatalf("seed %d cycle %d: snapshot %s lba %d changed across the crash", seed, cycle, name, lba)
				}
			}
		}
	}
	v.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestCrashConcurrent crashes the store while several writers, each on its
// own range, run with group commit batching them together.
func TestCrashConcurrent(t *testing.T) {
	n := seedCount(t, 40)
	for seed := 0; seed < n; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { runCrashConcurrent(t, uint64(seed)) })
	}
}

func runCrashConcurrent(t *testing.T, seed uint64) {
	const workers, per = 4, 16
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, 0xc0c0))
	bs := []int{512, 4096}[rng.IntN(2)]
	fs := vfs.NewStrictMem()
	opts := Options{SegmentSize: []int64{16 << 10, 1 << 20}[rng.IntN(2)], MaxDirty: []int{5, 1 << 16}[rng.IntN(2)]}
	s := openMem(t, fs, opts)
	v := mustCreate(t, s, "vol", uint64(workers*per*bs), uint32(bs))
	models := make([]*blockModel, workers)
	var crashed atomic.Bool
	var started sync.WaitGroup
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		models[w] = newBlockModel(per, bs)
		wrng := rand.New(rand.NewPCG(seed, uint64(w)))
		started.Add(1)
		wg.Add(1)
		go func(w int, m *blockModel) {
			defer wg.Done()
			base := uint64(w * per)
			tag := seed<<32 | uint64(w)<<24
			for i := 0; ; i++ {
				if i == 20 {
					started.Done()
				}
				select {
				case <-stop:
					if i < 20 {
						started.Done()
					}
					return
				default:
				}
				if wrng.IntN(10) == 0 {
					err := v.Flush(ctx)
					if err == nil && !crashed.Load() {
						m.flush()
					}
					continue
				}
				n := 1 + wrng.IntN(3)
				lba := uint64(wrng.IntN(per - n + 1))
				p := make([]byte, n*bs)
				tag++
				stamp(p, bs, tag)
				fua := wrng.IntN(6) == 0
				err := v.WriteAt(ctx, p, base+lba, fua)
				switch {
				case err != nil || crashed.Load():
					m.maybe(lba, p)
				default:
					m.write(lba, p, fua)
				}
			}
		}(w, models[w])
	}
	started.Wait()
	crashed.Store(true)
	fs.SetIgnoreSyncs(true)
	close(stop)
	wg.Wait()
	crash(t, fs, s, v)
	s = openMem(t, fs, opts)
	defer s.Close()
	v, err := s.OpenVolume("vol")
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	for w, m := range models {
		// Each model covers the worker's own range: shift reads by base.
		sub := &offsetVolume{v: v, base: uint64(w * per)}
		m.verifyAt(t, ctx, sub, fmt.Sprintf("seed %d worker %d", seed, w))
	}
}

type offsetVolume struct {
	v    *Volume
	base uint64
}

func (m *blockModel) verifyAt(t *testing.T, ctx context.Context, o *offsetVolume, what string) {
	t.Helper()
	got := make([]byte, m.bs)
	for lba := range m.cands {
		if err := o.v.ReadAt(ctx, got, o.base+uint64(lba)); err != nil {
			t.Fatalf("%s: read lba %d: %v", what, lba, err)
		}
		ok := false
		for _, c := range m.cands[lba] {
			ok = ok || bytes.Equal(got, c)
		}
		if !ok {
			t.Fatalf("%s: lba %d holds none of its %d candidates", what, lba, len(m.cands[lba]))
		}
	}
}

// TestErrorInjection fails the n-th filesystem operation of a fixed
// workload for n = 0, 1, 2, ... Every failure must surface as an error
// (never a panic or wrong data), and after a crash the store must reopen
// with every block holding an allowed value.
func TestErrorInjection(t *testing.T) {
	for n := int32(0); ; n++ {
		fired := runErrorInjection(t, n)
		if !fired {
			t.Logf("workload needs %d filesystem operations; all failure points checked", n)
			return
		}
		if n > 5000 {
			t.Fatalf("workload never finished")
		}
	}
}

// segmentOnly limits injection to the store's own files: pebble treats a
// failed WAL write as fatal by design, and its own error handling is
// pebble's to test.
func segmentOnly(inj *errorfs.InjectIndex) errorfs.Injector {
	return errorfs.InjectorFunc(func(op errorfs.Op, path string) error {
		if strings.Contains(path, "/"+indexDirName) {
			return nil
		}
		return inj.MaybeError(op, path)
	})
}

func runErrorInjection(t *testing.T, n int32) bool {
	ctx := context.Background()
	const bs, blocks = 512, 32
	mem := vfs.NewStrictMem()
	inj := errorfs.OnIndex(n)
	fs := errorfs.Wrap(mem, segmentOnly(inj))
	opts := Options{SegmentSize: 4 << 10, MaxDirty: 8, FS: fs}
	m := newBlockModel(blocks, bs)
	var s *Store
	var v *Volume
	// workload returns at the first error: from then on the store may
	// refuse writes, which is fine as long as it is clean.
	workload := func() error {
		var err error
		if s, err = Open(testDir, opts); err != nil {
			return err
		}
		if _, err = s.CreateVolume(ctx, "vol", VolumeOptions{SizeBytes: blocks * bs, BlockSize: bs}); err != nil {
			return err
		}
		if v, err = s.OpenVolume("vol"); err != nil {
			return err
		}
		rng := rand.New(rand.NewPCG(1, 2))
		for i := 0; i < 60; i++ {
			switch r := rng.IntN(10); {
			case r < 6:
				k := 1 + rng.IntN(4)
				lba := uint64(rng.IntN(blocks - k + 1))
				p := make([]byte, k*bs)
				stamp(p, bs, uint64(i))
				fua := r == 0
				if err := v.WriteAt(ctx, p, lba, fua); err != nil {
					m.maybe(lba, p)
					return err
				}
				m.write(lba, p, fua)
			case r < 7:
				lba := uint64(rng.IntN(blocks - 2))
				if err := v.Unmap(ctx, lba, 2); err != nil {
					m.maybe(lba, make([]byte, 2*bs))
					return err
				}
				m.write(lba, make([]byte, 2*bs), false)
			case r < 8:
				if err := v.Flush(ctx); err != nil {
					return err
				}
				m.flush()
			case r < 9:
				if _, err := s.CollectGarbage(ctx, 2, 1.0, 0); err != nil {
					return err
				}
			default:
				lba := uint64(rng.IntN(blocks))
				got := make([]byte, bs)
				if err := v.ReadAt(ctx, got, lba); err != nil {
					return err
				}
				if !bytes.Equal(got, m.latest(lba)) {
					t.Fatalf("n=%d: lba %d reads wrong data before any failure", n, lba)
				}
			}
		}
		return nil
	}
	werr := workload()
	if werr != nil && !errors.Is(werr, errorfs.ErrInjected) {
		t.Fatalf("n=%d: error does not carry the injected cause: %v", n, werr)
	}
	fired := inj.Index() < 0
	if v != nil {
		_ = v.Close()
	}
	if s != nil {
		mem.SetIgnoreSyncs(true)
		_ = s.Close()
		mem.SetIgnoreSyncs(false)
	}
	mem.ResetToSyncedState()
	s2, err := Open(testDir, Options{SegmentSize: 4 << 10, MaxDirty: 8, FS: mem})
	if err != nil {
		t.Fatalf("n=%d: reopen after injected failure (%v): %v", n, werr, err)
	}
	defer s2.Close()
	v2, err := s2.OpenVolume("vol")
	if errors.Is(err, ErrVolumeNotFound) && s == nil || errors.Is(err, ErrVolumeNotFound) && v == nil {
		return fired // the volume was never created
	}
	if err != nil {
		t.Fatalf("n=%d: open volume after failure: %v", n, err)
	}
	defer v2.Close()
	m.verify(t, ctx, v2, fmt.Sprintf("n=%d (%v)", n, werr))
	return fired
}
