package device

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"unsafe"

	"go.uber.org/goleak"

	"github.com/vbs-storage/vbs/target/scsi"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// backend opens a fresh device of a kind for a test.
type backend struct {
	name string
	open func(t testing.TB, bs uint32, blocks uint64) scsi.Device
}

func openMem(t testing.TB, bs uint32, blocks uint64) scsi.Device {
	d, err := NewMem(bs, blocks)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func openFileDev(t testing.TB, bs uint32, blocks uint64) scsi.Device {
	d, err := OpenFile(filepath.Join(t.TempDir(), "lun.img"), FileOptions{BlockSize: bs, Size: blocks * uint64(bs)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return d
}

// storing lists the backends that keep data.
func storing() []backend {
	return []backend{{"mem", openMem}, {"file", openFileDev}}
}

var blockSizes = [...]uint32{BlockSize512, BlockSize4096}

// pattern returns n bytes that differ per seed and per position.
func pattern(n int, seed byte) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*7+i/251) ^ seed | 1
	}
	return p
}

func mustRead(t testing.TB, d scsi.Device, lba uint64, blocks uint64) []byte {
	t.Helper()
	p := make([]byte, blocks*uint64(d.BlockSize()))
	if err := d.ReadAt(context.Background(), p, lba); err != nil {
		t.Fatalf("read %d blocks at lba %d: %v", blocks, lba, err)
	}
	return p
}

func mustWrite(t testing.TB, d scsi.Device, lba uint64, p []byte) {
	t.Helper()
	if err := d.WriteAt(context.Background(), p, lba, false); err != nil {
		t.Fatalf("write %d bytes at lba %d: %v", len(p), lba, err)
	}
}

func TestStripeIsOneCacheLine(t *testing.T) {
	if s := unsafe.Sizeof(stripe{}); s != cacheLine {
		t.Fatalf("stripe is %d bytes, want %d", s, cacheLine)
	}
}

func TestStripeSpan(t *testing.T) {
	tests := []struct {
		first, last    uint64
		a0, a1, b0, b1 int
	}{
		{0, 0, 0, 0, 1, 0},
		{3, 5, 3, 5, 1, 0},
		{62, 65, 0, 1, 62, 63},
		{64, 64, 0, 0, 1, 0},
		{10, 73, 0, 63, 1, 0},
		{10, 72, 0, 8, 10, 63},
	}
	for _, tc := range tests {
		a0, a1, b0, b1 := stripeSpan(tc.first, tc.last)
		if a0 != tc.a0 || a1 != tc.a1 || b0 != tc.b0 || b1 != tc.b1 {
			t.Errorf("stripeSpan(%d, %d) = %d..%d, %d..%d; want %d..%d, %d..%d",
				tc.first, tc.last, a0, a1, b0, b1, tc.a0, tc.a1, tc.b0, tc.b1)
		}
	}
}

func TestUnwrittenReadsZeros(t *testing.T) {
	all := append(storing(), backend{"null", func(t testing.TB, bs uint32, blocks uint64) scsi.Device {
		d, err := NewNull(bs, blocks)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}})
	for _, b := range all {
		for _, bs := range blockSizes {
			t.Run(fmt.Sprintf("%s/%d", b.name, bs), func(t *testing.T) {
				d := b.open(t, bs, (4<<20)/uint64(bs))
				p := bytes.Repeat([]byte{0xaa}, 1<<20)
				if err := d.ReadAt(context.Background(), p, d.Blocks()-uint64(len(p))/uint64(bs)); err != nil {
					t.Fatal(err)
				}
				if !allZero(p) {
					t.Fatal("unwritten blocks did not read as zeros")
				}
			})
		}
	}
}

func TestWriteReadBack(t *testing.T) {
	for _, b := range storing() {
		for _, bs := range blockSizes {
			t.Run(fmt.Sprintf("%s/%d", b.name, bs), func(t *testing.T) {
				const size = 8 << 20
				d := b.open(t, bs, size/uint64(bs))
				model := make([]byte, size)
				// Writes inside a chunk, across mem chunk (64 KiB) and file
				// stripe (1 MiB) boundaries, and at both ends.
				writes := []struct{ off, n int }{
					{0, 4096}, {64<<10 - 4096, 8192}, {1<<20 - 512*8, 3 << 20},
					{5<<20 + 4096, 4096}, {size - 8192, 8192}, {1 << 20, 4096},
				}
				for i, w := range writes {
					p := pattern(w.n, byte(i))
					mustWrite(t, d, uint64(w.off)/uint64(bs), p)
					copy(model[w.off:], p)
				}
				got := mustRead(t, d, 0, d.Blocks())
				if i := firstDiff(got, model); i >= 0 {
					t.Fatalf("read back differs at byte %d", i)
				}
				// Reads that start mid-chunk see the same bytes.
				part := mustRead(t, d, (64<<10-4096)/uint64(bs), (128<<10)/uint64(bs))
				if !bytes.Equal(part, model[64<<10-4096:][:128<<10]) {
					t.Fatal("partial read differs")
				}
			})
		}
	}
}

func TestOutOfRange(t *testing.T) {
	for _, b := range storing() {
		t.Run(b.name, func(t *testing.T) {
			d := b.open(t, 512, 16)
			ctx := context.Background()
			p := make([]byte, 1024)
			if err := d.ReadAt(ctx, p, 15); !errors.Is(err, scsi.ErrOutOfRange) {
				t.Errorf("read past the end: %v, want ErrOutOfRange", err)
			}
			if err := d.WriteAt(ctx, p, 16, false); !errors.Is(err, scsi.ErrOutOfRange) {
				t.Errorf("write past the end: %v, want ErrOutOfRange", err)
			}
			if err := d.WriteAt(ctx, p[:100], 0, false); err == nil {
				t.Error("write of a partial block: no error")
			}
			if err := d.(scsi.Unmapper).Unmap(ctx, 10, 7); !errors.Is(err, scsi.ErrOutOfRange) {
				t.Errorf("unmap past the end: %v, want ErrOutOfRange", err)
			}
		})
	}
}

// allocated returns the data space a storing device holds.
func allocated(t *testing.T, d scsi.Device) uint64 {
	t.Helper()
	switch d := d.(type) {
	case *Mem:
		return d.AllocatedBytes()
	case *File:
		n, err := d.AllocatedBytes()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	t.Fatalf("%T has no allocation count", d)
	return 0
}

func TestUnmapGivesZerosAndFreesSpace(t *testing.T) {
	for _, b := range storing() {
		for _, bs := range blockSizes {
			t.Run(fmt.Sprintf("%s/%d", b.name, bs), func(t *testing.T) {
				const size = 8 << 20
				ctx := context.Background()
				d := b.open(t, bs, size/uint64(bs))
				data := pattern(4<<20, 3)
				mustWrite(t, d, (1<<20)/uint64(bs), data)
				if err := d.Flush(ctx); err != nil { // let the file system allocate
					t.Fatal(err)
				}
				before := allocated(t, d)
				if before < 4<<20 {
					t.Fatalf("%d bytes allocated after writing 4 MiB", before)
				}
				// Unmap 2 MiB + 4 KiB starting 4 KiB into the data: partial
				// chunks at the start, whole ones inside.
				start, n := uint64(1<<20+4096), uint64(2<<20+4096)
				if err := d.(scsi.Unmapper).Unmap(ctx, start/uint64(bs), n/uint64(bs)); err != nil {
					t.Fatal(err)
				}
				if err := d.Flush(ctx); err != nil {
					t.Fatal(err)
				}
				after := allocated(t, d)
				// Only whole allocation units are freed: mem chunks (64 KiB)
				// or file system blocks.
				if freed := before - after; freed < n-2*memChunkSize {
					t.Errorf("unmapping %d bytes freed only %d (%d -> %d)", n, freed, before, after)
				}
				model := make([]byte, size)
				copy(model[1<<20:], data)
				clear(model[start : start+n])
				if i := firstDiff(mustRead(t, d, 0, d.Blocks()), model); i >= 0 {
					t.Fatalf("after unmap, byte %d differs", i)
				}
				// Unmap of a range that was never written, and of nothing.
				if err := d.(scsi.Unmapper).Unmap(ctx, d.Blocks()-8, 8); err != nil {
					t.Fatal(err)
				}
				if err := d.(scsi.Unmapper).Unmap(ctx, 0, 0); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

func TestWriteZeroes(t *testing.T) {
	for _, b := range storing() {
		for _, unmap := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/unmap=%v", b.name, unmap), func(t *testing.T) {
				ctx := context.Background()
				d := b.open(t, 512, (4<<20)/512)
				data := pattern(2<<20, 5)
				mustWrite(t, d, 0, data)
				// 1 MiB + 1 block from block 3: partial at both ends.
				lba, n := uint64(3), uint64(2049)
				if err := d.(scsi.ZeroWriter).WriteZeroes(ctx, lba, n, unmap); err != nil {
					t.Fatal(err)
				}
				model := make([]byte, 4<<20)
				copy(model, data)
				clear(model[lba*512 : (lba+n)*512])
				if i := firstDiff(mustRead(t, d, 0, d.Blocks()), model); i >= 0 {
					t.Fatalf("after write zeroes, byte %d differs", i)
				}
				if _, ok := d.(*File); ok && !unmap {
					// Without unmap the file keeps the blocks allocated.
					mapped, _, err := d.(scsi.LBAStatusReporter).LBAStatus(ctx, lba+1024, 1)
					if err != nil || !mapped {
						t.Errorf("after write zeroes without unmap, lba %d mapped=%v, %v", lba+1024, mapped, err)
					}
				}
			})
		}
	}
}

// extent is one LBAStatus answer.
type extent struct {
	mapped bool
	blocks uint64
}

// extents walks the whole device with LBAStatus, merging adjacent answers
// with the same state.
func extents(t *testing.T, d scsi.Device, maxBlocks uint64) []extent {
	t.Helper()
	var out []extent
	r := d.(scsi.LBAStatusReporter)
	for lba := uint64(0); lba < d.Blocks(); {
		mapped, n, err := r.LBAStatus(context.Background(), lba, maxBlocks)
		if err != nil {
			t.Fatalf("lba status at %d: %v", lba, err)
		}
		if n == 0 || n > maxBlocks || lba+n > d.Blocks() {
			t.Fatalf("lba status at %d: %d blocks (max %d, device %d)", lba, n, maxBlocks, d.Blocks())
		}
		if len(out) > 0 && out[len(out)-1].mapped == mapped {
			out[len(out)-1].blocks += n
		} else {
			out = append(out, extent{mapped, n})
		}
		lba += n
	}
	return out
}

func TestLBAStatus(t *testing.T) {
	for _, b := range storing() {
		for _, bs := range blockSizes {
			t.Run(fmt.Sprintf("%s/%d", b.name, bs), func(t *testing.T) {
				const mib = 1 << 20
				ctx := context.Background()
				d := b.open(t, bs, 8*mib/uint64(bs))
				blk := func(bytes uint64) uint64 { return bytes / uint64(bs) }
				if got, want := extents(t, d, d.Blocks()), []extent{{false, blk(8 * mib)}}; !equalExtents(got, want) {
					t.Fatalf("empty device: %v, want %v", got, want)
				}
				mustWrite(t, d, blk(2*mib), pattern(mib, 1))
				mustWrite(t, d, blk(5*mib), pattern(512<<10, 2))
				want := []extent{{false, blk(2 * mib)}, {true, blk(mib)}, {false, blk(2 * mib)}, {true, blk(512 << 10)}, {false, blk(2*mib + 512<<10)}}
				for _, maxBlocks := range []uint64{d.Blocks(), 1000, 7, 1} {
					if got := extents(t, d, maxBlocks); !equalExtents(got, want) {
						t.Errorf("max %d: %v, want %v", maxBlocks, got, want)
					}
				}
				if err := d.(scsi.Unmapper).Unmap(ctx, blk(2*mib), blk(mib)); err != nil {
					t.Fatal(err)
				}
				want = []extent{{false, blk(5 * mib)}, {true, blk(512 << 10)}, {false, blk(2*mib + 512<<10)}}
				if got := extents(t, d, d.Blocks()); !equalExtents(got, want) {
					t.Errorf("after unmap: %v, want %v", got, want)
				}
				if _, _, err := d.(scsi.LBAStatusReporter).LBAStatus(ctx, d.Blocks(), 1); !errors.Is(err, scsi.ErrOutOfRange) {
					t.Errorf("lba status past the end: %v, want ErrOutOfRange", err)
				}
			})
		}
	}
}

func equalExtents(a, b []extent) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestCompareAndWrite(t *testing.T) {
	for _, b := range storing() {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			d := b.open(t, 512, 4096)
			caw := d.(scsi.CompareAndWriter)
			old := pattern(1024, 1)
			// The range straddles a mem chunk boundary (lba 128).
			const lba = 127
			mustWrite(t, d, lba, old)
			compare := bytes.Clone(old)
			compare[700] ^= 0xff
			newData := pattern(1024, 2)
			err := caw.CompareAndWrite(ctx, lba, compare, newData, false)
			var mis *scsi.MiscompareError
			if !errors.As(err, &mis) || mis.Offset != 700 {
				t.Fatalf("miscompare: %v (%+v), want offset 700", err, mis)
			}
			if got := mustRead(t, d, lba, 2); !bytes.Equal(got, old) {
				t.Fatal("a failed compare and write changed the data")
			}
			if err := caw.CompareAndWrite(ctx, lba, old, newData, true); err != nil {
				t.Fatalf("matching compare and write: %v", err)
			}
			if got := mustRead(t, d, lba, 2); !bytes.Equal(got, newData) {
				t.Fatal("compare and write did not write")
			}
			// Against unwritten blocks the comparison is with zeros.
			zeros := make([]byte, 512)
			if err := caw.CompareAndWrite(ctx, 2000, zeros, pattern(512, 3), false); err != nil {
				t.Fatalf("compare and write against zeros: %v", err)
			}
			err = caw.CompareAndWrite(ctx, 3000, pattern(512, 4), zeros, false)
			if !errors.As(err, &mis) || mis.Offset != 0 {
				t.Fatalf("miscompare against zeros: %v, want offset 0", err)
			}
			if err := caw.CompareAndWrite(ctx, lba, old[:512], newData, false); err == nil {
				t.Fatal("buffers of different lengths: no error")
			}
		})
	}
}

// TestCompareAndWriteConcurrent uses COMPARE AND WRITE as the only
// synchronization of a shared counter: if two could interleave, increments
// would be lost. Plain writers hammer the neighbouring block (same lock
// stripe) meanwhile. Run it with -race.
func TestCompareAndWriteConcurrent(t *testing.T) {
	const workers, increments = 4, 150
	for _, b := range storing() {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			d := b.open(t, 512, 1024)
			caw := d.(scsi.CompareAndWriter)
			var wg sync.WaitGroup
			errs := make(chan error, workers+1)
			stop := make(chan struct{})
			wg.Add(1)
			go func() { // plain writes next door
				defer wg.Done()
				p := pattern(512, 9)
				for {
					select {
					case <-stop:
						return
					default:
					}
					if err := d.WriteAt(ctx, p, 1, false); err != nil {
						errs <- err
						return
					}
				}
			}()
			var incWG sync.WaitGroup
			for w := range workers {
				incWG.Add(1)
				go func() {
					defer incWG.Done()
					cur, next := make([]byte, 512), make([]byte, 512)
					for i := 0; i < increments; {
						if err := d.ReadAt(ctx, cur, 0); err != nil {
							errs <- err
							return
						}
						v := binary.LittleEndian.Uint64(cur)
						clear(next)
						binary.LittleEndian.PutUint64(next, v+1)
						next[511] = byte(w) // writer identity, not compared by value
						err := caw.CompareAndWrite(ctx, 0, cur, next, false)
						var mis *scsi.MiscompareError
						switch {
						case err == nil:
							i++
						case errors.As(err, &mis):
						default:
							errs <- err
							return
						}
					}
				}()
			}
			incWG.Wait()
			close(stop)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			if got := binary.LittleEndian.Uint64(mustRead(t, d, 0, 1)); got != workers*increments {
				t.Fatalf("counter = %d, want %d: compare and write is not atomic", got, workers*increments)
			}
		})
	}
}

// TestMemWriteAtomic checks that readers never see a torn WriteAtomic that
// spans three chunks (hence several lock stripes).
func TestMemWriteAtomic(t *testing.T) {
	ctx := context.Background()
	d, err := NewMem(512, 4096)
	if err != nil {
		t.Fatal(err)
	}
	const lba, n = 100, 3 * memChunkSize // starts mid-chunk: touches 4 chunks
	if max := uint64(d.MaxAtomicBlocks()) * 512; max < n {
		t.Fatalf("MaxAtomicBlocks %d too small for the test", d.MaxAtomicBlocks())
	}
	const rounds = 200
	var wg sync.WaitGroup
	torn := make(chan int, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		p := make([]byte, n)
		for v := 1; v <= rounds; v++ {
			for i := range p {
				p[i] = byte(v)
			}
			if err := d.WriteAtomic(ctx, p, lba, false); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := make([]byte, n)
			for {
				if err := d.ReadAt(ctx, p, lba); err != nil {
					t.Error(err)
					return
				}
				for i := range p {
					if p[i] != p[0] {
						select {
						case torn <- i:
						default:
						}
						return
					}
				}
				if p[0] == byte(rounds) {
					return
				}
			}
		}()
	}
	wg.Wait()
	select {
	case i := <-torn:
		t.Fatalf("a reader saw a torn atomic write at byte %d", i)
	default:
	}
	if err := d.WriteAtomic(ctx, make([]byte, memMaxAtomicBytes+512), 0, false); err == nil {
		t.Error("WriteAtomic beyond MaxAtomicBlocks: no error")
	}
}
