package index

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/vfs"
)

// tinyChurn makes churn flushes happen every few batches.
var tinyChurn = Churn{RangeDeletes: 2, Deletes: 40, ScanSkips: 16}

// indexModel is what the mappings of one volume should be.
type indexModel map[uint64]Location

func readModel(t *testing.T, x *Index, vol uint64) indexModel {
	t.Helper()
	got := make(indexModel)
	err := x.Scan(vol, 0, ^uint64(0), func(mp Mapping) bool {
		got[mp.LBA] = mp.Loc
		return true
	})
	if err != nil {
		t.Fatalf("scan: %v", err)
	}
	return got
}

func (m indexModel) equal(o indexModel) bool {
	if len(m) != len(o) {
		return false
	}
	for k, v := range m {
		if w, ok := o[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func (m indexModel) check(t *testing.T, x *Index, vol uint64, when string) {
	t.Helper()
	got := readModel(t, x, vol)
	for lba, want := range m {
		if l, ok := got[lba]; !ok || l != want {
			t.Fatalf("%s: lba %d = %+v (mapped %v), want %+v", when, lba, l, ok, want)
		}
	}
	for lba := range got {
		if _, ok := m[lba]; !ok {
			t.Fatalf("%s: lba %d mapped, want unmapped", when, lba)
		}
	}
	// Spot-check point lookups too: they read through the same deletions.
	for lba := uint64(0); lba < 64; lba++ {
		_, ok, err := x.Get(vol, lba)
		if _, want := m[lba]; err != nil || ok != want {
			t.Fatalf("%s: Get(%d) ok=%v err=%v, want ok=%v", when, lba, ok, err, want)
		}
	}
}

// TestDeleteRangeModel checks DeleteRange's three shapes (nothing for an
// unmapped range, point deletions for a few mappings, one range deletion
// for many or when the batch set too many keys to track) against a model,
// with puts and deletes of the same blocks mixed in one batch, churn
// flushes every few batches, and crashes that keep only synced commits.
func TestDeleteRangeModel(t *testing.T) {
	for seed := uint64(1); seed <= 6; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { runDeleteRangeModel(t, seed) })
	}
}

func runDeleteRangeModel(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 77))
	fs := vfs.NewStrictMem()
	open := func() *Index {
		x, err := Open(fs, "/idx", Options{Churn: tinyChurn})
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	x := open()
	defer func() { x.Close() }()
	// Make the index directory itself durable, as the store does.
	syncRoot(t, fs)
	const vol, other = 3, 4
	// since holds the state after each commit from the last synced one on:
	// a crash keeps one of them (a prefix of the committed batches; a
	// flush makes unsynced batches durable too).
	model := make(indexModel)
	since := []indexModel{maps(model)}
	// A neighbour volume's mappings must survive every deletion of vol's.
	nb := x.NewBatch()
	nb.Put(other, 0, Location{Seg: 9, Seq: 1})
	nb.Put(vol-1, ^uint64(0)-1, Location{Seg: 9, Seq: 1})
	if err := nb.Commit(true); err != nil {
		t.Fatal(err)
	}
	nb.Close()
	seq := uint64(1)
	var flushes uint64 // by the Index instances closed so far
	const span = 2048
	for round := 0; round < 300; round++ {
		b := x.NewBatch()
		next := maps(model)
		for op := rng.IntN(6) + 1; op > 0; op-- {
			seq++
			switch r := rng.IntN(10); {
			case r < 4: // a few puts
				for k := rng.IntN(8) + 1; k > 0; k-- {
					lba := rng.Uint64N(span)
					l := Location{Seg: seq, Off: lba, Seq: seq}
					b.Put(vol, lba, l)
					next[lba] = l
				}
			case r < 5: // a run of puts, sometimes past what a batch tracks
				n := uint64(600)
				if rng.IntN(4) == 0 {
					n = maxTrackedPuts + 10
				}
				start := rng.Uint64N(span)
				for lba := start; lba < start+n; lba++ {
					l := Location{Seg: seq, Off: lba, Seq: seq}
					b.Put(vol, lba, l)
					next[lba] = l
				}
			default: // a trim of 1, a few, many or all blocks
				lba := rng.Uint64N(span)
				var n uint64
				switch rng.IntN(4) {
				case 0:
					n = 1
				case 1:
					n = rng.Uint64N(16) + 2
				case 2:
					n = rng.Uint64N(1500) + 2
				default:
					n = ^uint64(0) - lba // to the end of the key space
				}
				b.DeleteRange(vol, lba, n)
				for k := range next {
					if k >= lba && k-lba < n {
						delete(next, k)
					}
				}
			}
		}
		sync := rng.IntN(3) == 0
		if err := b.Commit(sync); err != nil {
			t.Fatal(err)
		}
		b.Close()
		model = next
		if sync {
			since = since[:0]
		}
		since = append(since, maps(model))
		model.check(t, x, vol, fmt.Sprintf("round %d", round))
		if rng.IntN(40) == 0 {
			// Crash: only synced commits survive. (Crash between flushes:
			// with syncs ignored a flush would look durable to pebble.)
			quiesce(t, x)
			flushes += x.Stats().Flushes
			fs.SetIgnoreSyncs(true)
			_ = x.Close()
			fs.ResetToSyncedState()
			fs.SetIgnoreSyncs(false)
			x = open()
			got := readModel(t, x, vol)
			i := slices.IndexFunc(since, got.equal)
			if i < 0 {
				for k, st := range since {
					miss, extra, diff := 0, 0, 0
					for l, v := range st {
						if w, ok := got[l]; !ok {
							miss++
						} else if w != v {
							diff++
						}
					}
					for l := range got {
						if _, ok := st[l]; !ok {
							extra++
						}
					}
					t.Logf("state %d: %d missing, %d extra, %d differ", k, miss, extra, diff)
				}
				t.Fatalf("round %d: after a crash the index holds none of the %d states since the last synced commit", round, len(since))
			}
			model = maps(since[i])
			since = []indexModel{maps(model)}
			model.check(t, x, vol, fmt.Sprintf("round %d after crash", round))
		}
	}
	if _, ok, _ := x.Get(other, 0); !ok {
		t.Fatal("deletions of one volume removed another's mapping")
	}
	if _, ok, _ := x.Get(vol-1, ^uint64(0)-1); !ok {
		t.Fatal("deletions of one volume removed the previous volume's last mapping")
	}
	x.WaitForFlush()
	if flushes+x.Stats().Flushes == 0 {
		t.Fatal("no churn flush happened; the test does not cover them")
	}
}

func maps(m indexModel) indexModel {
	c := make(indexModel, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// TestDeleteRangeAddsOnlyWhatIsThere checks the shape DeleteRange gives a
// trim: nothing for unmapped blocks, point deletions for a few mapped ones,
// a range deletion for many.
func TestDeleteRangeAddsOnlyWhatIsThere(t *testing.T) {
	x := openTest(t)
	b := x.NewBatch()
	defer b.Close()
	for lba := uint64(100); lba < 100+maxPointDeletes+20; lba++ {
		b.Put(1, lba, Location{Seg: 1, Seq: 1})
	}
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name                   string
		lba, n                 uint64
		rangeDels, pointDels   int
		mappedAfter, checkFrom uint64
	}{
		{"unmapped", 0, 100, 0, 0, maxPointDeletes + 20, 0},
		{"a few mapped", 90, 20, 0, 10, maxPointDeletes + 10, 0},
		{"many mapped", 0, 1 << 20, 1, 0, 0, 0},
	} {
		b.DeleteRange(1, tt.lba, tt.n)
		if b.rangeDels != tt.rangeDels || b.pointDels != tt.pointDels {
			t.Errorf("%s: %d range and %d point deletions, want %d and %d", tt.name, b.rangeDels, b.pointDels, tt.rangeDels, tt.pointDels)
		}
		if err := b.Commit(false); err != nil {
			t.Fatal(err)
		}
		var n uint64
		_ = x.Scan(1, 0, ^uint64(0), func(Mapping) bool { n++; return true })
		if n != tt.mappedAfter {
			t.Errorf("%s: %d blocks mapped after, want %d", tt.name, n, tt.mappedAfter)
		}
	}
	// Blocks this batch set are deleted as well, though the index does not
	// hold them yet.
	var lbas []uint64
	for lba := uint64(5); lba < 9; lba++ {
		b.Put(1, lba, Location{Seg: 2, Seq: 2})
	}
	b.DeleteRange(1, 6, 2)
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	_ = x.Scan(1, 0, ^uint64(0), func(m Mapping) bool { lbas = append(lbas, m.LBA); return true })
	if !slices.Equal(lbas, []uint64{5, 8}) {
		t.Fatalf("mapped after put and delete in one batch: %v, want [5 8]", lbas)
	}
}

// TestChurnFlushBoundsScans checks that a scan over blocks rewritten and
// deleted many times steps over a bounded number of entries, not their
// history.
func TestChurnFlushBoundsScans(t *testing.T) {
	for _, churn := range []Churn{{}, {ScanSkips: 256}} {
		x, err := Open(vfs.NewMem(), "/idx", Options{Churn: churn})
		if err != nil {
			t.Fatal(err)
		}
		b := x.NewBatch()
		for r := 0; r < 3000; r++ {
			for lba := uint64(0); lba < 16; lba++ {
				b.Put(1, lba, Location{Seg: 1, Seq: uint64(r)})
			}
			if err := b.Commit(false); err != nil {
				t.Fatal(err)
			}
			b.DeleteRange(1, 0, 16)
			if err := b.Commit(false); err != nil {
				t.Fatal(err)
			}
		}
		b.Close()
		scan := func() uint64 {
			before := x.Stats().ScanPoints
			if err := x.Scan(1, 0, 16, func(Mapping) bool { return true }); err != nil {
				t.Fatal(err)
			}
			return x.Stats().ScanPoints - before
		}
		// A scan starts a flush unless one is running; settle both.
		for i := 0; i < 2; i++ {
			scan()
			x.WaitForFlush()
		}
		// The history is 6000 entries per block; what may remain is the
		// unflushed budget and one entry per block per sstable that L0
		// compactions have not merged yet.
		if got, limit := scan(), uint64(x.churn.ScanSkips+16*32); got > limit {
			t.Errorf("churn %+v: a 16-block scan stepped over %d entries after 3000 rewrites, want at most %d", churn, got, limit)
		}
		if x.Stats().Flushes == 0 {
			t.Errorf("churn %+v: no flush", churn)
		}
		x.Close()
	}
}

// TestEmptySyncCommitSyncsEarlierBatches: a DeleteRange of unmapped blocks
// adds nothing to its batch, and pebble skips an empty batch; a synced
// commit of it must still make the batches before it durable.
func TestEmptySyncCommitSyncsEarlierBatches(t *testing.T) {
	fs := vfs.NewStrictMem()
	x, err := Open(fs, "/idx", Options{})
	if err != nil {
		t.Fatal(err)
	}
	syncRoot(t, fs)
	b := x.NewBatch()
	b.Put(1, 7, Location{Seg: 1, Seq: 1})
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	b.DeleteRange(1, 100, 10)
	if !b.Empty() {
		t.Fatal("DeleteRange of unmapped blocks wrote something")
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	b.Close()
	fs.SetIgnoreSyncs(true)
	_ = x.Close()
	fs.ResetToSyncedState()
	fs.SetIgnoreSyncs(false)
	x, err = Open(fs, "/idx", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	if _, ok, err := x.Get(1, 7); err != nil || !ok {
		t.Fatalf("unsynced put before an empty synced commit lost in a crash (ok=%v, err=%v)", ok, err)
	}
}

// syncRoot makes the root directory of fs, which holds the index,
// durable, as the store does for its index directory.
func syncRoot(t *testing.T, fs vfs.FS) {
	t.Helper()
	root, err := fs.OpenDir("/")
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Sync(); err != nil {
		t.Fatal(err)
	}
	root.Close()
}
