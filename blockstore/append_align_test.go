package blockstore

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/vfs"
)

// writeAtLog records every positioned write to segment files.
type writeAtLog struct {
	mu     sync.Mutex
	writes [][2]int64 // offset, length
}

// fs returns fs with its segment files recording into l.
func (l *writeAtLog) fs(fs vfs.FS) vfs.FS {
	return segWrapFS{FS: fs, wrap: func(f vfs.File) vfs.File { return &writeAtFile{File: f, log: l} }}
}

type writeAtFile struct {
	vfs.File
	log *writeAtLog
}

func (f *writeAtFile) WriteAt(p []byte, off int64) (int, error) {
	f.log.mu.Lock()
	f.log.writes = append(f.log.writes, [2]int64{off, int64(len(p))})
	f.log.mu.Unlock()
	return f.File.WriteAt(p, off)
}

// TestAppendsCoverWholePages checks that every append to the log starts and
// ends on a page boundary (or ends at SegmentSize), whatever the record
// sizes, and that a log whose last page ends in the zeros of that padding
// replays completely: the machine keeps everything the process wrote, as
// after kill -9, and no Flush ever ran.
func TestAppendsCoverWholePages(t *testing.T) {
	ctx := context.Background()
	const bs, blocks = 512, 1024
	const segSize = 64<<10 - 1000 // not a multiple of the page
	mem := vfs.NewStrictMem()
	rec := &writeAtLog{}
	s := openMem(t, rec.fs(mem), Options{SegmentSize: segSize, MaxDirty: 1 << 16})
	v := mustCreate(t, s, "vol", blocks*bs, bs)
	m := newBlockModel(blocks, bs)
	rng := rand.New(rand.NewPCG(11, 12))
	for tag := uint64(1); tag <= 600; tag++ {
		k := 1 + rng.IntN(9)
		lba := rng.Uint64N(blocks - uint64(k))
		p := make([]byte, k*bs)
		stamp(p, bs, tag)
		if err := v.WriteAt(ctx, p, lba, false); err != nil {
			t.Fatalf("write %d: %v", tag, err)
		}
		m.write(lba, p, true)
	}
	rec.mu.Lock()
	writes := append([][2]int64(nil), rec.writes...)
	rec.mu.Unlock()
	if len(writes) < 100 {
		t.Fatalf("only %d positioned writes to segments; want one per append", len(writes))
	}
	for _, w := range writes {
		off, end := w[0], w[0]+w[1]
		if off%syncAlign != 0 || (end%syncAlign != 0 && end != segSize) {
			t.Fatalf("append [%d, %d) does not cover whole pages", off, end)
		}
	}

	// Keep every byte written (the OS would), then lose the process.
	names, err := mem.List(s.segDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		f, err := mem.Open(mem.PathJoin(s.segDir, n))
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		_ = f.Close()
	}
	crash(t, mem, s, v)
	s = openMem(t, mem, Options{SegmentSize: segSize, MaxDirty: 1 << 16})
	defer s.Close()
	v, err = s.OpenVolume("vol")
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	m.verify(t, ctx, v, "after replay")
}
