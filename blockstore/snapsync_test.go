package blockstore

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/vfs"
)

// syncGate makes the next SyncData of a segment file block, once armed,
// until it is released: it holds a snapshot's log sync open. Its FS
// passes the segment files through it.
type syncGate struct {
	vfs.FS
	mu      sync.Mutex
	armed   bool
	entered chan struct{} // closed when the armed sync has started
	release chan struct{} // closed by open: lets that sync go on
	once    *sync.Once
}

func newSyncGate(fs vfs.FS) *syncGate {
	g := &syncGate{}
	g.FS = segWrapFS{FS: fs, wrap: func(f vfs.File) vfs.File { return &gatedFile{File: f, g: g} }}
	return g
}

// arm makes the next segment sync block until open is called (at the
// latest when the test ends, so a failing test does not hang in Close).
func (g *syncGate) arm(t *testing.T) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.armed = true
	g.entered, g.release, g.once = make(chan struct{}), make(chan struct{}), new(sync.Once)
	t.Cleanup(g.open)
}

// open lets the blocked sync go on.
func (g *syncGate) open() {
	g.mu.Lock()
	release, once := g.release, g.once
	g.mu.Unlock()
	once.Do(func() { close(release) })
}

type gatedFile struct {
	vfs.File
	g *syncGate
}

func (f *gatedFile) SyncData() error {
	f.g.mu.Lock()
	armed := f.g.armed
	f.g.armed = false
	entered, release := f.g.entered, f.g.release
	f.g.mu.Unlock()
	if armed {
		close(entered)
		<-release
	}
	return f.File.SyncData()
}

func (f *gatedFile) Sync() error { return f.SyncData() }

// startSnapshot takes a snapshot on its own goroutine; the result arrives
// on the returned channel.
func startSnapshot(s *Store, vol, name string) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := s.CreateSnapshot(context.Background(), vol, name)
		done <- err
	}()
	return done
}

func block(bs int, b byte) []byte { return bytes.Repeat([]byte{b}, bs) }

func readBlock(t *testing.T, v *Volume, snap string, lba uint64, bs int) []byte {
	t.Helper()
	got := make([]byte, bs)
	var err error
	if snap == "" {
		err = v.ReadAt(context.Background(), got, lba)
	} else {
		err = v.ReadSnapshotAt(context.Background(), snap, got, lba)
	}
	if err != nil {
		t.Fatalf("read %q lba %d: %v", snap, lba, err)
	}
	return got
}

func wantBlock(t *testing.T, v *Volume, snap string, lba uint64, want []byte) {
	t.Helper()
	if got := readBlock(t, v, snap, lba, len(want)); !bytes.Equal(got, want) {
		t.Fatalf("snapshot %q lba %d reads %x..., want %x...", snap, lba, got[:4], want[:4])
	}
}

// TestSnapshotSyncDoesNotStopWrites holds a snapshot's log sync open and
// checks that writes and reads go on meanwhile: a write to a block the
// pending snapshot sees keeps that block's old version, which an older
// snapshot reads while it is only held in memory, and which the new
// snapshot reads once CreateSnapshot returned.
func TestSnapshotSyncDoesNotStopWrites(t *testing.T) {
	ctx := context.Background()
	const bs = 4096
	gate := newSyncGate(vfs.NewStrictMem())
	s := openMem(t, gate, Options{SegmentSize: 4 << 20, MaxDirty: 1 << 16})
	v := mustCreate(t, s, "vol", 16*bs, bs)
	// Cleanups, not defers: they run after the gate's, which a failure
	// leaves shut.
	t.Cleanup(func() { v.Close(); s.Close() })
	write := func(lba uint64, b byte) {
		t.Helper()
		if err := v.WriteAt(ctx, block(bs, b), lba, false); err != nil {
			t.Fatal(err)
		}
	}
	write(0, 'a')
	write(1, 'a')
	if _, err := s.CreateSnapshot(ctx, "vol", "s1"); err != nil {
		t.Fatal(err)
	}
	write(1, 'b') // s1 keeps 'a' in the index

	gate.arm(t)
	pending := startSnapshot(s, "vol", "s2")
	<-gate.entered
	// The cut is made: these writes come after it, while its sync is
	// still running.
	write(0, 'c')
	write(1, 'c')
	write(2, 'c')
	wantBlock(t, v, "", 0, block(bs, 'c'))
	wantBlock(t, v, "s1", 0, block(bs, 'a')) // a version held in memory
	wantBlock(t, v, "s1", 1, block(bs, 'a'))
	if _, err := s.CreateSnapshot(ctx, "vol", "s2"); !errors.Is(err, ErrSnapshotExists) {
		t.Fatalf("second snapshot s2 while the first is pending: %v, want ErrSnapshotExists", err)
	}
	select {
	case err := <-pending:
		t.Fatalf("snapshot returned before its sync did: %v", err)
	default:
	}
	if list, err := s.ListSnapshots("vol"); err != nil || len(list) != 1 {
		t.Fatalf("list while s2 is pending: %v %v, want s1 only", list, err)
	}
	gate.open()
	if err := <-pending; err != nil {
		t.Fatal(err)
	}
	wantBlock(t, v, "s2", 0, block(bs, 'a'))
	wantBlock(t, v, "s2", 1, block(bs, 'b'))
	wantBlock(t, v, "s2", 2, make([]byte, bs))
	wantBlock(t, v, "s1", 1, block(bs, 'a'))
	list, err := s.ListSnapshots("vol")
	if err != nil || len(list) != 2 || list[1].Name != "s2" {
		t.Fatalf("list: %v %v", list, err)
	}
	// s2 alone holds block 1's 'b'; block 0's 'a' is shared with s1.
	if list[1].ExclusiveBytes != bs || list[0].ExclusiveBytes != bs {
		t.Fatalf("exclusive bytes s1 %d s2 %d, want %d each", list[0].ExclusiveBytes, list[1].ExclusiveBytes, bs)
	}
}

// TestCrashWhileSnapshotPending crashes the machine while a snapshot's log
// sync is held open: the snapshot, never reported taken, is gone; the
// older one and every flushed write are intact. Then it checks the
// snapshot taken after reopening sees exactly what it should, across a
// second crash (its seq must not be handed out again).
func TestCrashWhileSnapshotPending(t *testing.T) {
	ctx := context.Background()
	const bs = 512
	mem := vfs.NewStrictMem()
	gate := newSyncGate(mem)
	opts := Options{SegmentSize: 1 << 20, MaxDirty: 1 << 16}
	s := openMem(t, gate, opts)
	v := mustCreate(t, s, "vol", 8*bs, bs)
	for lba := uint64(0); lba < 4; lba++ {
		if err := v.WriteAt(ctx, block(bs, 'a'), lba, false); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.CreateSnapshot(ctx, "vol", "s1"); err != nil {
		t.Fatal(err)
	}
	if err := v.WriteAt(ctx, block(bs, 'b'), 0, true); err != nil {
		t.Fatal(err)
	}
	if err := v.WriteAt(ctx, block(bs, 'b'), 1, false); err != nil {
		t.Fatal(err)
	}
	gate.arm(t)
	pending := startSnapshot(s, "vol", "s2")
	<-gate.entered
	if err := v.WriteAt(ctx, block(bs, 'c'), 1, false); err != nil {
		t.Fatal(err)
	}
	if err := v.Unmap(ctx, 2, 1); err != nil {
		t.Fatal(err)
	}
	// Crash with the sync still held: nothing after the FUA write is
	// durable.
	mem.SetIgnoreSyncs(true)
	gate.open()
	_ = v.Close()
	_ = s.Close()
	<-pending
	mem.ResetToSyncedState()
	mem.SetIgnoreSyncs(false)

	s = openMem(t, mem, opts)
	v, err := s.OpenVolume("vol")
	if err != nil {
		t.Fatal(err)
	}
	list, err := s.ListSnapshots("vol")
	if err != nil || len(list) != 1 || list[0].Name != "s1" {
		t.Fatalf("snapshots after the crash: %v %v, want s1 only", list, err)
	}
	wantBlock(t, v, "", 0, block(bs, 'b'))
	for lba := uint64(0); lba < 4; lba++ {
		wantBlock(t, v, "s1", lba, block(bs, 'a'))
	}
	// Block 1 and 2 read old or new; whichever, s1 still sees 'a'.
	if _, err := s.CreateSnapshot(ctx, "vol", "s3"); err != nil {
		t.Fatal(err)
	}
	img := make([][]byte, 4)
	for lba := range img {
		img[lba] = readBlock(t, v, "", uint64(lba), bs)
	}
	// Not durable: the log holds nothing newer than s3 after the crash.
	if err := v.WriteAt(ctx, block(bs, 'd'), 3, false); err != nil {
		t.Fatal(err)
	}
	crash(t, mem, s, v)
	s = openMem(t, mem, opts)
	defer s.Close()
	if v, err = s.OpenVolume("vol"); err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	// A write after reopening takes a seq above s3's: s3 must not see it.
	if err := v.WriteAt(ctx, block(bs, 'e'), 0, true); err != nil {
		t.Fatal(err)
	}
	for lba := range img {
		wantBlock(t, v, "s3", uint64(lba), img[lba])
	}
	wantBlock(t, v, "", 0, block(bs, 'e'))
}

// TestReplayCrossesSnapshots reopens a store whose log tail (past the
// index's marker, which a snapshot does not move) holds writes on both
// sides of two snapshots: replay must preserve for each snapshot the
// version it saw, and no version for writes older than a snapshot.
func TestReplayCrossesSnapshots(t *testing.T) {
	ctx := context.Background()
	const bs = 512
	mem := vfs.NewStrictMem()
	opts := Options{SegmentSize: 1 << 20, MaxDirty: 1 << 16}
	s := openMem(t, mem, opts)
	v := mustCreate(t, s, "vol", 4*bs, bs)
	steps := []struct {
		b    byte
		snap string
	}{{'a', "s1"}, {'b', "s2"}, {'c', ""}}
	for _, st := range steps {
		if err := v.WriteAt(ctx, block(bs, st.b), 0, false); err != nil {
			t.Fatal(err)
		}
		if st.snap != "" {
			if _, err := s.CreateSnapshot(ctx, "vol", st.snap); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := v.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	crash(t, mem, s, v)
	s = openMem(t, mem, opts)
	defer s.Close()
	v, err := s.OpenVolume("vol")
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	wantBlock(t, v, "", 0, block(bs, 'c'))
	wantBlock(t, v, "s1", 0, block(bs, 'a'))
	wantBlock(t, v, "s2", 0, block(bs, 'b'))
	list, err := s.ListSnapshots("vol")
	if err != nil || len(list) != 2 {
		t.Fatalf("list: %v %v", list, err)
	}
	for _, m := range list {
		if m.ExclusiveBytes != bs {
			t.Fatalf("%s holds %d bytes exclusively, want %d (one version each)", m.Name, m.ExclusiveBytes, bs)
		}
	}
}

// TestCleanerMovesHeldVersions has a write overwrite a block while the
// cleaner is moving it (from the cleaner's hook, on the writer): the
// version the write preserves for a snapshot is held in memory, naming the
// victim segment, and the cleaner must move it with the block, or the
// snapshot reads a deleted segment.
func TestCleanerMovesHeldVersions(t *testing.T) {
	ctx := context.Background()
	const bs = 4096
	s := openMem(t, vfs.NewMem(), Options{SegmentSize: 256 << 10})
	defer s.Close()
	v := mustCreate(t, s, "vol", 256*bs, bs)
	defer v.Close()
	// Block 0 lands in the first segment; the rest rolls to a second, so
	// the first is sealed (and the overlay is in the index).
	for lba := uint64(0); lba < 100; lba++ {
		if err := v.WriteAt(ctx, block(bs, byte(lba)), lba, false); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.CreateSnapshot(ctx, "vol", "s1"); err != nil {
		t.Fatal(err)
	}
	overwrote := false
	s.gcHead.chunkHook = func(items []relocItem) { // on the writer
		i := slices.IndexFunc(items, func(it relocItem) bool { return it.vol == v.v.id && it.lba == 0 })
		if overwrote || i < 0 {
			return
		}
		overwrote = true
		w := s.w
		r := &request{kind: opWrite, vol: v.v, lba: 0, data: block(bs, 'z')}
		w.addWrite(w.chunkStart, r)
		if r.err != nil {
			t.Error(r.err)
			return
		}
		if err := w.flushPending(w.chunkStart); err != nil {
			t.Error(err)
		}
		if !s.held.names(blockKey{v.v.id, 0}, items[i].old.Seg, items[i].old.Off) {
			t.Error("the overwrite did not hold block 0's old version")
		}
	}
	st, err := s.CollectGarbage(ctx, 1, 1, 0)
	s.gcHead.chunkHook = nil
	if err != nil {
		t.Fatal(err)
	}
	if !overwrote || st.SegmentsCleaned != 1 {
		t.Fatalf("overwrote during cleaning: %v; cleaned %d segments, want 1", overwrote, st.SegmentsCleaned)
	}
	wantBlock(t, v, "s1", 0, block(bs, 0))
	wantBlock(t, v, "", 0, block(bs, 'z'))
	// And once the held version is in the index.
	if err := s.checkpoint(); err != nil {
		t.Fatal(err)
	}
	wantBlock(t, v, "s1", 0, block(bs, 0))
}
