package blockstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/cockroachdb/pebble/vfs"
	"github.com/vbs-storage/vbs/blockstore/record"
)

// writerPos reads the writer's append position and whether it marked the
// active segment full, on the writer goroutine (race-free).
func writerPos(t *testing.T, s *Store) (seg, off uint64, full bool) {
	t.Helper()
	err := s.run(nil, func(w *writer) error {
		seg, off, full = w.activeID, w.activeOff, w.full
		return nil
	})
	if err != nil {
		t.Fatalf("read writer position: %v", err)
	}
	return seg, off, full
}

// TestPadEveryPosition drives flushes after random runs of writes of 512-byte
// blocks (record sizes 48+512k; up to 40 records between syncs, so the log
// end before a sync takes every offset in a page that is a multiple of 16) and checks that every sync
// leaves the log page-aligned, that every kind of gap was padded (none, a
// bare header, a gap shorter than a header, which skips a page, and no
// room left in the segment), and that replay after a crash, scrub and
// segment cleaning all step over the padding.
func TestPadEveryPosition(t *testing.T) {
	ctx := context.Background()
	const bs, blocks = 512, 2048
	fs := vfs.NewStrictMem()
	// A segment size that is not a multiple of the page leaves a last page
	// no padding fits in.
	s := openMem(t, fs, Options{SegmentSize: 64<<10 - 1000, MaxDirty: 1 << 16})
	v := mustCreate(t, s, "vol", blocks*bs, bs)
	m := newBlockModel(blocks, bs)
	rng := rand.New(rand.NewPCG(7, 7))
	var zeroGap, headerGap, shortGap, pageGap, full int
	tag := uint64(0)
	for flushes := 0; flushes < 1500; flushes++ {
		for n := 1 + rng.IntN(40); n > 0; n-- {
			k := 1 + rng.IntN(16)
			lba := rng.Uint64N(blocks - uint64(k))
			p := make([]byte, k*bs)
			tag++
			stamp(p, bs, tag)
			if err := v.WriteAt(ctx, p, lba, false); err != nil {
				t.Fatalf("write: %v", err)
			}
			m.write(lba, p, false)
		}
		_, before, _ := writerPos(t, s)
		pad0 := s.stats.padBytes.Load()
		if err := v.Flush(ctx); err != nil {
			t.Fatalf("flush: %v", err)
		}
		m.flush()
		_, after, isFull := writerPos(t, s)
		pad := s.stats.padBytes.Load() - pad0
		switch {
		case isFull:
			full++
			if pad != 0 || after != before {
				t.Fatalf("segment full at %d: padded %d bytes to %d", before, pad, after)
			}
			continue
		case after%syncAlign != 0:
			t.Fatalf("log ends at %d after a sync (was %d, padded %d)", after, before, pad)
		case after != before+pad:
			t.Fatalf("log end %d, want %d + pad %d", after, before, pad)
		}
		gap := syncAlign - before%syncAlign
		switch {
		case pad == 0:
			zeroGap++
		case pad == record.MinPad:
			headerGap++
		case gap < record.MinPad:
			if pad != gap+syncAlign {
				t.Fatalf("gap %d padded with %d bytes", gap, pad)
			}
			shortGap++
		default:
			pageGap++
		}
	}
	t.Logf("flushes with no pad %d, header-only pad %d, gap shorter than a header %d, other %d, segment full %d",
		zeroGap, headerGap, shortGap, pageGap, full)
	if zeroGap == 0 || headerGap == 0 || shortGap == 0 || pageGap == 0 || full == 0 {
		t.Fatalf("not every kind of padding was exercised")
	}

	// Padding is a record every log reader must step over.
	p, err := s.Scrub(ctx, nil)
	if err != nil || p.Corrupt != 0 || p.Records == 0 {
		t.Fatalf("scrub: %+v, %v", p, err)
	}
	crash(t, fs, s, v)
	s = openMem(t, fs, Options{SegmentSize: 64<<10 - 1000, MaxDirty: 1 << 16})
	v, err = s.OpenVolume("vol")
	if err != nil {
		t.Fatal(err)
	}
	m.verify(t, ctx, v, "after crash")
	if _, err := s.CollectGarbage(ctx, 1<<20, 1.0, 0); err != nil {
		t.Fatalf("gc: %v", err)
	}
	m.verify(t, ctx, v, "after cleaning")
	p, err = s.Scrub(ctx, nil)
	if err != nil || p.Corrupt != 0 {
		t.Fatalf("scrub after cleaning: %+v, %v", p, err)
	}
	v.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestFlushDefersIndexCommit checks that a Flush completes without moving
// the overlay into the index, and that a crash right after it (before any
// index commit) loses no flushed write: replay recovers them from the log.
func TestFlushDefersIndexCommit(t *testing.T) {
	ctx := context.Background()
	fs := vfs.NewStrictMem()
	opts := Options{MaxDirty: 1 << 16}
	s := openMem(t, fs, opts)
	v := mustCreate(t, s, "vol", 1<<20, 4096)
	m := newBlockModel(256, 4096)
	tag := uint64(0)
	write := func(lba uint64) {
		t.Helper()
		p := make([]byte, 4096)
		tag++
		stamp(p, 4096, tag)
		if err := v.WriteAt(ctx, p, lba, false); err != nil {
			t.Fatal(err)
		}
		m.write(lba, p, false)
	}
	for round := 0; round < 4; round++ {
		for i := uint64(0); i < 8; i++ {
			write(uint64(round)*8 + i)
		}
		if err := v.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		m.flush()
	}
	// Nothing went to the index: the flushes only synced the log.
	for lba := uint64(0); lba < 32; lba++ {
		if _, ok, err := s.idx.Get(v.v.id, lba); err != nil || ok {
			t.Fatalf("lba %d is in the index after a flush (ok=%v, err=%v)", lba, ok, err)
		}
	}
	// Unflushed writes after the last flush: old or new after the crash.
	for i := uint64(0); i < 8; i++ {
		write(i * 3)
	}
	crash(t, fs, s, v)
	for reopen := 0; reopen < 2; reopen++ {
		s = openMem(t, fs, opts)
		var err error
		v, err = s.OpenVolume("vol")
		if err != nil {
			t.Fatal(err)
		}
		m.verify(t, ctx, v, "after crash")
		crash(t, fs, s, v)
	}
}

// TestCheckpointCommitsOverlay: checkpoint moves a flushed overlay into the
// index, and does nothing when there is nothing to move.
func TestCheckpointCommitsOverlay(t *testing.T) {
	ctx := context.Background()
	s := openMem(t, vfs.NewStrictMem(), Options{})
	defer s.Close()
	v := mustCreate(t, s, "vol", 1<<20, 4096)
	defer v.Close()
	if err := v.WriteAt(ctx, pattern(3, 4096), 5, false); err != nil {
		t.Fatal(err)
	}
	if err := v.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if s.Stats().DirtyBlocks != 1 {
		t.Fatalf("dirty blocks %d after a flush, want 1", s.Stats().DirtyBlocks)
	}
	syncs := s.stats.syncs.Load()
	if err := s.checkpoint(); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.idx.Get(v.v.id, 5); err != nil || !ok || s.Stats().DirtyBlocks != 0 {
		t.Fatalf("after checkpoint: in index %v (%v), dirty %d", ok, err, s.Stats().DirtyBlocks)
	}
	if err := s.checkpoint(); err != nil || s.stats.syncs.Load() != syncs+1 {
		t.Fatalf("second checkpoint: %v, syncs %d, want %d", err, s.stats.syncs.Load(), syncs+1)
	}
}

// TestOverlayBoundedWithFlushes: with flushes no longer committing the
// overlay, it still never grows past MaxDirty.
func TestOverlayBoundedWithFlushes(t *testing.T) {
	ctx := context.Background()
	const maxDirty = 16
	s := openMem(t, vfs.NewStrictMem(), Options{MaxDirty: maxDirty})
	defer s.Close()
	v := mustCreate(t, s, "vol", 1<<20, 4096)
	defer v.Close()
	commits := 0
	for i := uint64(0); i < 200; i++ {
		if err := v.WriteAt(ctx, pattern(byte(i), 4096), i, false); err != nil {
			t.Fatal(err)
		}
		if i%8 == 7 {
			if err := v.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
		d := s.Stats().DirtyBlocks
		if d >= maxDirty {
			t.Fatalf("overlay holds %d blocks, bound %d", d, maxDirty)
		}
		if d == 0 {
			commits++
		}
	}
	if commits == 0 {
		t.Fatal("the overlay was never moved into the index")
	}
}

// TestReplayVersion1Record: a log written before padding existed (record
// version 1) still replays.
func TestReplayVersion1Record(t *testing.T) {
	ctx := context.Background()
	fs := vfs.NewStrictMem()
	s := openMem(t, fs, Options{})
	v := mustCreate(t, s, "vol", 1<<20, 4096)
	seg, off, _ := writerPos(t, s)
	want := pattern(9, 4096)
	if err := v.WriteAt(ctx, want, 3, true); err != nil {
		t.Fatal(err)
	}
	crash(t, fs, s, v)

	// Re-encode the record as version 1, in place.
	f, err := fs.OpenReadWrite(s.segPath(seg))
	if err != nil {
		t.Fatal(err)
	}
	rec := make([]byte, record.HeaderSize+4096)
	if _, err := f.ReadAt(rec, int64(off)); err != nil {
		t.Fatal(err)
	}
	if h, err := record.DecodeHeader(rec); err != nil || h.Version != record.RecordVersion || h.LBA != 3 {
		t.Fatalf("record at %d: %+v, %v", off, h, err)
	}
	rec[4] = 1
	binary.LittleEndian.PutUint32(rec[40:], 0)
	binary.LittleEndian.PutUint32(rec[40:], record.Checksum(rec))
	if h, _, _, err := record.Decode(rec); err != nil || h.Version != 1 {
		t.Fatalf("re-encoded record: %+v, %v", h, err)
	}
	if _, err := f.WriteAt(rec, int64(off)); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()

	s = openMem(t, fs, Options{})
	defer s.Close()
	v, err = s.OpenVolume("vol")
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	got := make([]byte, 4096)
	if err := v.ReadAt(ctx, got, 3); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read after replaying a version 1 record: %v", err)
	}
}
