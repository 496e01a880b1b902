package blockstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/vfs"
	"github.com/cockroachdb/pebble/vfs/errorfs"
)

func openPrep(t *testing.T, fs vfs.FS, o Options) *Store {
	t.Helper()
	o.FS = fs
	s, err := open(testDir, o.withDefaults(), true)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return s
}

// waitSettled waits (polling, with a deadline) until the preparer has
// nothing to do: a file is ready, or none is wanted yet; and it is not
// writing one.
func waitSettled(t *testing.T, s *Store) {
	t.Helper()
	p := s.prep
	deadline := time.Now().Add(10 * time.Second)
	for p.busy.Load() || (len(p.ready) == 0 && p.wanted() && p.hasRoom()) {
		if time.Now().After(deadline) {
			t.Fatal("the preparer did not settle within 10s")
		}
		time.Sleep(time.Millisecond) // polling, not synchronisation: the deadline bounds it
	}
}

// writeUntil writes 4 KiB blocks with FUA (so the log syncs, which the
// preparer waits for), recording them in m, until cond holds.
func writeUntil(t *testing.T, v *Volume, m *blockModel, tag *uint64, cond func() bool) {
	t.Helper()
	ctx := context.Background()
	for i := 0; !cond(); i++ {
		if i > 100000 {
			t.Fatal("condition never held")
		}
		p := make([]byte, 4096)
		*tag++
		stamp(p, 4096, *tag)
		lba := *tag % uint64(len(m.cands))
		if err := v.WriteAt(ctx, p, lba, true); err != nil {
			t.Fatal(err)
		}
		m.write(lba, p, true)
	}
}

// checkAllocated checks that the allocated bytes the store reports are
// exactly the sizes of the files in its segment directory (segments and
// prepared files alike).
func checkAllocated(t *testing.T, fs vfs.FS, s *Store, what string) {
	t.Helper()
	names, err := fs.List(s.segDir)
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, n := range names {
		fi, err := fs.Stat(fs.PathJoin(s.segDir, n))
		if err != nil {
			t.Fatal(err)
		}
		sum += fi.Size()
	}
	if got := s.Stats().AllocatedBytes; got != sum {
		t.Fatalf("%s: allocated bytes %d, files hold %d", what, got, sum)
	}
}

// TestPreparedSegments rolls into pre-formatted segments, checks that the
// writer used them (sealed segments keep their full size), that the
// accounting matches the files, and that a crash at any point of the
// workload (writes, flushes, rolls, cleaning) keeps every flushed write and
// leaves every block old-or-new.
func TestPreparedSegments(t *testing.T) {
	ctx := context.Background()
	// Big enough for prepMinSyncs padded FUA writes in half a segment.
	const bs, blocks, segSize = 4096, 64, 192 << 10
	fs := vfs.NewStrictMem()
	opts := Options{SegmentSize: segSize, MaxDirty: 1 << 16}
	s := openPrep(t, fs, opts)
	v := mustCreate(t, s, "vol", blocks*bs, bs)
	m := newBlockModel(blocks, bs)
	rng := rand.New(rand.NewPCG(3, 4))
	tag := uint64(0)
	used := 0
	for round := 0; round < 40; round++ {
		// Past the half of the segment (with syncs), wait for the prepared
		// file, then write on into the next segment.
		writeUntil(t, v, m, &tag, func() bool { return s.prep.wanted() })
		waitSettled(t, s)
		seg0, _, _ := writerPos(t, s)
		writeUntil(t, v, m, &tag, func() bool {
			seg, off, _ := writerPos(t, s)
			return seg != seg0 && off > segSize/4
		})
		for i := 0; i < 10; i++ {
			lba := rng.Uint64N(blocks)
			p := make([]byte, bs)
			tag++
			stamp(p, bs, tag)
			if err := v.WriteAt(ctx, p, lba, false); err != nil {
				t.Fatal(err)
			}
			m.write(lba, p, false)
			if rng.IntN(4) == 0 {
				if err := v.Flush(ctx); err != nil {
					t.Fatal(err)
				}
				m.flush()
			}
		}
		seg1, _, _ := writerPos(t, s)
		if seg1 != seg0 {
			fi, err := fs.Stat(s.segPath(seg1))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Size() == segSize {
				used++
			}
		}
		waitSettled(t, s) // the preparer is idle: its files are accounted
		checkAllocated(t, fs, s, fmt.Sprintf("round %d", round))
		switch rng.IntN(8) {
		case 0:
			if _, err := s.CollectGarbage(ctx, 4, 1.0, 0); err != nil {
				t.Fatal(err)
			}
			checkAllocated(t, fs, s, "after cleaning")
		case 1:
			crash(t, fs, s, v)
			s = openPrep(t, fs, opts)
			var err error
			if v, err = s.OpenVolume("vol"); err != nil {
				t.Fatal(err)
			}
			m.verify(t, ctx, v, fmt.Sprintf("round %d after crash", round))
			waitSettled(t, s)
			checkAllocated(t, fs, s, "after reopen")
		}
	}
	if used == 0 || s.stats.prepUsed.Load() == 0 {
		t.Fatalf("the writer never rolled into a prepared segment (%d, %d)", used, s.stats.prepUsed.Load())
	}
	if s.stats.prepBytes.Load() == 0 {
		t.Fatal("nothing was prepared")
	}
	p, err := s.Scrub(ctx, nil)
	if err != nil || p.Corrupt != 0 {
		t.Fatalf("scrub: %+v, %v", p, err)
	}
	v.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Close deletes the prepared file nobody took.
	names, err := fs.List(fs.PathJoin(testDir, segDirName))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if strings.HasSuffix(n, prepSuffix) {
			t.Fatalf("%s left behind after Close", n)
		}
	}
}

// blockingFS holds the preparer's second write of a file (mid-fill) until
// released, after making what it wrote so far durable, as if the kernel had
// written it back just before a crash.
type blockingFS struct {
	vfs.FS
	held    chan struct{}
	release chan struct{}
}

func (b *blockingFS) Create(name string) (vfs.File, error) {
	f, err := b.FS.Create(name)
	if err != nil || !strings.HasSuffix(name, prepSuffix) {
		return f, err
	}
	return &blockingFile{File: f, fs: b, dir: b.FS.PathDir(name)}, nil
}

type blockingFile struct {
	vfs.File
	fs     *blockingFS
	dir    string
	writes int
}

func (f *blockingFile) Write(p []byte) (int, error) {
	f.writes++
	if f.writes == 2 {
		if err := f.File.Sync(); err != nil {
			return 0, err
		}
		d, err := f.fs.FS.OpenDir(f.dir)
		if err != nil {
			return 0, err
		}
		if err := d.Sync(); err != nil {
			return 0, err
		}
		_ = d.Close()
		close(f.fs.held)
		<-f.fs.release
	}
	return f.File.Write(p)
}

// TestCrashMidPrepare crashes while the preparer is half-way through
// zero-filling a file whose first part (and name) are durable: the file
// must never be taken as a segment, and Open must delete it.
func TestCrashMidPrepare(t *testing.T) {
	ctx := context.Background()
	mem := vfs.NewStrictMem()
	bfs := &blockingFS{FS: mem, held: make(chan struct{}), release: make(chan struct{})}
	// Two chunks per file, so the second write is mid-fill.
	opts := Options{SegmentSize: 2 * prepChunk, MaxDirty: 1 << 16}
	s := openPrep(t, bfs, opts)
	v := mustCreate(t, s, "vol", 4<<20, 4096)
	m := newBlockModel(1024, 4096)
	tag := uint64(0)
	writeUntil(t, v, m, &tag, func() bool { return s.prep.wanted() })
	want := pattern(5, 4096)
	if err := v.WriteAt(ctx, want, 1023, true); err != nil {
		t.Fatal(err)
	}
	select {
	case <-bfs.held:
	case <-time.After(30 * time.Second):
		close(bfs.release)
		t.Fatal("the preparer never reached its second write")
	}
	mem.SetIgnoreSyncs(true)
	_ = v.Close()
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	close(bfs.release)
	<-closed
	mem.ResetToSyncedState()
	mem.SetIgnoreSyncs(false)

	segDir := mem.PathJoin(testDir, segDirName)
	names, err := mem.List(segDir)
	if err != nil {
		t.Fatal(err)
	}
	half := ""
	for _, n := range names {
		if strings.HasSuffix(n, prepSuffix) {
			half = n
		}
	}
	if half == "" {
		t.Fatal("the half-prepared file did not survive the crash; the test proves nothing")
	}
	if fi, err := mem.Stat(mem.PathJoin(segDir, half)); err != nil || fi.Size() >= opts.SegmentSize {
		t.Fatalf("half-prepared file: %v, %v", fi, err)
	}

	// Reopen without a preparer, whose first file would take the same name.
	s, err = open(testDir, Options{FS: mem, SegmentSize: opts.SegmentSize}.withDefaults(), false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	names, err = mem.List(segDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if n == half {
			t.Fatalf("Open kept the half-prepared file %s", half)
		}
	}
	s.segMu.RLock()
	for id, f := range s.segs {
		if fi, err := f.Stat(); err == nil && fi.Size() == opts.SegmentSize {
			t.Errorf("segment %d has the size of a prepared file", id)
		}
	}
	s.segMu.RUnlock()
	v, err = s.OpenVolume("vol")
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	got := make([]byte, 4096)
	if err := v.ReadAt(ctx, got, 1023); err != nil || string(got) != string(want) {
		t.Fatalf("FUA write after the crash: %v", err)
	}
	checkAllocated(t, mem, s, "after reopen")
}

// manualPreparer gives s a preparer without a goroutine: the test prepares
// files itself, so the order of file operations is fixed.
func manualPreparer(t *testing.T, s *Store) *preparer {
	t.Helper()
	p := &preparer{s: s, ready: make(chan preparedFile, 1), kick: make(chan struct{}, 1), cancel: func() {}, done: make(chan struct{})}
	close(p.done)
	if err := s.run(nil, func(*writer) error { s.prep = p; return nil }); err != nil {
		t.Fatal(err)
	}
	return p
}

// prepOnly injects into operations on prepared files only: their creation,
// writes, sync, close, and the rename that makes one a segment.
func prepOnly(inj *errorfs.InjectIndex) errorfs.Injector {
	return errorfs.InjectorFunc(func(op errorfs.Op, path string) error {
		if !strings.HasSuffix(path, prepSuffix) {
			return nil
		}
		return inj.MaybeError(op, path)
	})
}

// TestPrepareErrorInjection fails the n-th operation on prepared files for
// n = 0, 1, 2, ...: a failure must never fail a write or lose data (the
// writer falls back to creating segments), must leave no file behind that
// the accounting does not know, and the store must reopen intact.
func TestPrepareErrorInjection(t *testing.T) {
	ctx := context.Background()
	const bs, blocks, segSize = 4096, 32, 16 << 10
	for n := int32(0); ; n++ {
		mem := vfs.NewStrictMem()
		inj := errorfs.OnIndex(n)
		fs := errorfs.Wrap(mem, prepOnly(inj))
		opts := Options{SegmentSize: segSize, MaxDirty: 8, FS: fs}
		s, err := open(testDir, opts.withDefaults(), false)
		if err != nil {
			t.Fatal(err)
		}
		p := manualPreparer(t, s)
		v := mustCreate(t, s, "vol", blocks*bs, bs)
		m := newBlockModel(blocks, bs)
		rng := rand.New(rand.NewPCG(5, 6))
		for round := 0; round < 6; round++ {
			if len(p.ready) == 0 && p.hasRoom() {
				if pf, err := p.prepare(ctx); err == nil {
					p.ready <- pf
				} else if !errors.Is(err, errorfs.ErrInjected) {
					t.Fatalf("n=%d: prepare failed without the injected cause: %v", n, err)
				}
			}
			checkAllocated(t, mem, s, fmt.Sprintf("n=%d round %d", n, round))
			for i := 0; i < 5; i++ {
				lba := rng.Uint64N(blocks)
				buf := make([]byte, bs)
				stamp(buf, bs, uint64(round*100+i))
				if err := v.WriteAt(ctx, buf, lba, i == 4); err != nil {
					t.Fatalf("n=%d: write failed: %v", n, err)
				}
				m.write(lba, buf, i == 4)
			}
		}
		fired := inj.Index() < 0
		mem.SetIgnoreSyncs(true)
		_ = v.Close()
		_ = s.Close()
		mem.SetIgnoreSyncs(false)
		mem.ResetToSyncedState()
		s2, err := open(testDir, Options{SegmentSize: segSize, MaxDirty: 8, FS: mem}.withDefaults(), false)
		if err != nil {
			t.Fatalf("n=%d: reopen: %v", n, err)
		}
		v2, err := s2.OpenVolume("vol")
		if err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		m.verify(t, ctx, v2, fmt.Sprintf("n=%d", n))
		checkAllocated(t, mem, s2, fmt.Sprintf("n=%d after reopen", n))
		v2.Close()
		if err := s2.Close(); err != nil {
			t.Fatal(err)
		}
		if !fired {
			t.Logf("%d operations on prepared files; all failure points checked", n)
			return
		}
		if n > 500 {
			t.Fatal("workload never finished")
		}
	}
}

// TestPreparedSegmentAccounting: a write that fits in a pre-formatted
// segment adds nothing to the allocated bytes (they were counted when the
// zeros were written), and the preparer leaves a segment's worth of the
// capacity free.
func TestPreparedSegmentAccounting(t *testing.T) {
	ctx := context.Background()
	fs := vfs.NewStrictMem()
	const segSize = 64 << 10
	s := openPrep(t, fs, Options{SegmentSize: segSize, CapacityBytes: 3 * segSize})
	defer s.Close()
	v := mustCreate(t, s, "vol", 1<<20, 4096)
	defer v.Close()
	m := newBlockModel(256, 4096)
	tag := uint64(0)
	writeUntil(t, v, m, &tag, func() bool { return s.prep.wanted() })
	waitSettled(t, s)
	if len(s.prep.ready) != 1 {
		t.Fatal("nothing prepared")
	}
	// Roll into it: fill the active segment.
	writeUntil(t, v, m, &tag, func() bool { seg, _, _ := writerPos(t, s); return seg != 1 })
	if s.stats.prepUsed.Load() != 1 {
		t.Fatalf("rolled into %d prepared segments, want 1", s.stats.prepUsed.Load())
	}
	before := s.Stats().AllocatedBytes
	if err := v.WriteAt(ctx, pattern(9, 4096), 3, false); err != nil {
		t.Fatal(err)
	}
	if after := s.Stats().AllocatedBytes; after != before {
		t.Fatalf("a write into a pre-formatted segment changed allocated bytes %d -> %d", before, after)
	}
	checkAllocated(t, fs, s, "in a prepared segment")
	// 1 sealed + 1 active (pre-formatted) + a prepared one would leave
	// less than a segment free: the preparer must not prepare it.
	if s.prep.hasRoom() {
		t.Fatalf("preparer has room with %d of %d bytes allocated", s.Stats().AllocatedBytes, 3*segSize)
	}
}

// TestNoPrepareWithoutSyncs: a log that is written without flushes never
// pays for zero-filling (it would double the bytes written for nothing).
func TestNoPrepareWithoutSyncs(t *testing.T) {
	ctx := context.Background()
	fs := vfs.NewStrictMem()
	const segSize = 64 << 10
	s := openPrep(t, fs, Options{SegmentSize: segSize})
	defer s.Close()
	v := mustCreate(t, s, "vol", 1<<20, 4096)
	defer v.Close()
	for i := uint64(0); i < 64; i++ { // four segments' worth
		if err := v.WriteAt(ctx, pattern(byte(i), 4096), i, false); err != nil {
			t.Fatal(err)
		}
	}
	if seg, _, _ := writerPos(t, s); seg < 4 {
		t.Fatalf("only reached segment %d", seg)
	}
	waitSettled(t, s)
	if n := s.stats.prepBytes.Load(); n != 0 {
		t.Fatalf("prepared %d bytes for a log that never synced", n)
	}
}
