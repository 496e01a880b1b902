package device

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/vbs-storage/vbs/target/scsi"
)

func TestMetadata(t *testing.T) {
	for _, b := range storing() {
		t.Run(b.name, func(t *testing.T) {
			d := b.open(t, 512, 64)
			ms := d.(scsi.MetadataStore)
			if v, err := ms.GetMetadata("pr"); v != nil || err != nil {
				t.Fatalf("unset key: %q, %v; want nil, nil", v, err)
			}
			val := []byte("reservation v1")
			if err := ms.SetMetadata("pr", val); err != nil {
				t.Fatal(err)
			}
			val[0] = 'X' // the store must have copied it
			if v, err := ms.GetMetadata("pr"); err != nil || string(v) != "reservation v1" {
				t.Fatalf("get: %q, %v", v, err)
			}
			if err := ms.SetMetadata("pr", []byte("v2")); err != nil {
				t.Fatal(err)
			}
			if err := ms.SetMetadata("scsi/pr", []byte("ns")); err != nil {
				t.Fatal(err)
			}
			if v, err := ms.GetMetadata("scsi/pr"); err != nil || string(v) != "ns" {
				t.Fatalf("namespaced key: %q, %v", v, err)
			}
			if err := ms.SetMetadata("other.key_1-a", nil); err != nil {
				t.Fatal(err)
			}
			if v, err := ms.GetMetadata("pr"); err != nil || string(v) != "v2" {
				t.Fatalf("get after overwrite: %q, %v", v, err)
			}
			if v, err := ms.GetMetadata("other.key_1-a"); err != nil || v == nil || len(v) != 0 {
				t.Fatalf("empty value: %q (nil=%v), %v; want a non-nil empty value", v, v == nil, err)
			}
			for _, bad := range []string{"", ".hidden", "a/.b", "a//b", "/a", "a/", "..", "sp ace", "a%2Fb", string(make([]byte, 200))} {
				if err := ms.SetMetadata(bad, []byte("x")); !errors.Is(err, ErrBadMetadataKey) {
					t.Errorf("SetMetadata(%q): %v, want ErrBadMetadataKey", bad, err)
				}
				if _, err := ms.GetMetadata(bad); !errors.Is(err, ErrBadMetadataKey) {
					t.Errorf("GetMetadata(%q): %v, want ErrBadMetadataKey", bad, err)
				}
			}
		})
	}
}

type resizer interface {
	scsi.Device
	Resize(blocks uint64) error
}

func TestResize(t *testing.T) {
	all := append(storing(), backend{"null", func(t testing.TB, bs uint32, blocks uint64) scsi.Device {
		d, err := NewNull(bs, blocks)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}})
	for _, b := range all {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			d := b.open(t, 4096, 256).(resizer)
			if err := d.Resize(128); !errors.Is(err, ErrShrink) {
				t.Fatalf("shrink: %v, want ErrShrink", err)
			}
			if err := d.Resize(0); err == nil {
				t.Fatal("resize to 0: no error")
			}
			if err := d.Resize(256); err != nil || d.Blocks() != 256 {
				t.Fatalf("resize to the same size: %v, %d blocks", err, d.Blocks())
			}
			if err := d.Resize(1000); err != nil {
				t.Fatal(err)
			}
			if d.Blocks() != 1000 {
				t.Fatalf("Blocks() = %d after growing to 1000", d.Blocks())
			}
			p := pattern(8192, 4)
			if err := d.WriteAt(ctx, p, 998, false); err != nil {
				t.Fatalf("write at the new end: %v", err)
			}
			got := make([]byte, 8192)
			if err := d.ReadAt(ctx, got, 998); err != nil {
				t.Fatal(err)
			}
			if _, isNull := d.(*Null); !isNull && !bytes.Equal(got, p) {
				t.Fatal("data written past the old end did not read back")
			}
			if err := d.ReadAt(ctx, got, 500); err != nil || (!allZero(got)) {
				t.Fatalf("grown area: %v, zeros=%v", err, allZero(got))
			}
		})
	}
}

// TestResizeUnderIO grows a device while writers and readers use blocks up
// to the current end. Run it with -race.
func TestResizeUnderIO(t *testing.T) {
	for _, b := range storing() {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			d := b.open(t, 512, 64).(resizer)
			stop := make(chan struct{})
			errs := make(chan error, 2)
			var wg sync.WaitGroup
			for w := range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					p := make([]byte, 512)
					for i := uint64(0); ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						end := d.Blocks()
						lba := end - 1 - i%end
						var err error
						if w == 0 {
							p[0] = byte(i)
							err = d.WriteAt(ctx, p, lba, false)
						} else {
							err = d.ReadAt(ctx, p, lba)
						}
						if err != nil {
							errs <- fmt.Errorf("lba %d of %d: %w", lba, end, err)
							return
						}
					}
				}()
			}
			for n := uint64(65); n <= 200; n++ {
				if err := d.Resize(n); err != nil {
					t.Error(err)
					break
				}
			}
			close(stop)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if d.Blocks() != 200 {
				t.Errorf("Blocks() = %d, want 200", d.Blocks())
			}
		})
	}
}

func TestCopyFrom(t *testing.T) {
	for _, b := range storing() {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			const size = 8 << 20
			d := b.open(t, 512, size/512)
			model := make([]byte, size)
			// Source: [0, 1 MiB) data, [1, 2 MiB) hole, [2, 3 MiB) data.
			for _, off := range []int{0, 2 << 20} {
				p := pattern(1<<20, byte(off>>20))
				mustWrite(t, d, uint64(off)/512, p)
				copy(model[off:], p)
			}
			// The destination hole must be a hole after the copy, even where
			// it had data.
			junk := pattern(1<<20, 77)
			mustWrite(t, d, (5<<20)/512, junk)
			copy(model[5<<20:], junk)
			cp := d.(scsi.Copier)
			if err := cp.CopyFrom(ctx, d, 0, (4<<20)/512, (3<<20)/512); err != nil {
				t.Fatal(err)
			}
			copy(model[4<<20:], model[:3<<20])
			if i := firstDiff(mustRead(t, d, 0, d.Blocks()), model); i >= 0 {
				t.Fatalf("after copy, byte %d differs", i)
			}
			want := []extent{{true, 2048}, {false, 2048}, {true, 2048}, {false, 2048}, {true, 2048}, {false, 2048}, {true, 2048}, {false, 2048}}
			if got := extents(t, d, d.Blocks()); !equalExtents(got, want) {
				t.Errorf("extents after a sparse copy: %v, want %v", got, want)
			}
			// Overlapping copy forward by 3 blocks, then backward by 5: memmove.
			for _, mv := range []struct{ src, dst, n int }{{100, 103, 3000}, {4000, 3995, 3000}} {
				if err := cp.CopyFrom(ctx, d, uint64(mv.src), uint64(mv.dst), uint64(mv.n)); err != nil {
					t.Fatal(err)
				}
				copy(model[mv.dst*512:], model[mv.src*512:(mv.src+mv.n)*512])
				if i := firstDiff(mustRead(t, d, 0, d.Blocks()), model); i >= 0 {
					t.Fatalf("after overlapping copy %+v, byte %d differs", mv, i)
				}
			}
			// From another device of another kind.
			other, err := NewMem(512, 16)
			if err != nil {
				t.Fatal(err)
			}
			mustWrite(t, other, 8, pattern(4096, 5))
			if err := cp.CopyFrom(ctx, other, 0, 0, 16); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(mustRead(t, d, 0, 16), mustRead(t, other, 0, 16)) {
				t.Fatal("copy from another device differs")
			}
			if err := cp.CopyFrom(ctx, other, 8, 0, 16); !errors.Is(err, scsi.ErrOutOfRange) {
				t.Errorf("copy past the source end: %v, want ErrOutOfRange", err)
			}
			big, err := NewMem(4096, 16)
			if err != nil {
				t.Fatal(err)
			}
			if err := cp.CopyFrom(ctx, big, 0, 0, 1); err == nil {
				t.Error("copy between block sizes: no error")
			}
		})
	}
}

func TestNull(t *testing.T) {
	ctx := context.Background()
	d, err := NewNull(512, 1024)
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, d, 0, pattern(4096, 1))
	if !allZero(mustRead(t, d, 0, 8)) {
		t.Fatal("null device did not read zeros after a write")
	}
	if err := d.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.Unmap(ctx, 0, 1024); err != nil {
		t.Fatal(err)
	}
	if err := d.WriteZeroes(ctx, 0, 1024, false); err != nil {
		t.Fatal(err)
	}
	if mapped, n, err := d.LBAStatus(ctx, 10, 100000); mapped || n != 1014 || err != nil {
		t.Fatalf("LBAStatus = %v, %d, %v; want unmapped to the end", mapped, n, err)
	}
	compare := make([]byte, 1024)
	if err := d.CompareAndWrite(ctx, 0, compare, pattern(1024, 2), false); err != nil {
		t.Fatal(err)
	}
	compare[600] = 1
	var mis *scsi.MiscompareError
	if err := d.CompareAndWrite(ctx, 0, compare, compare, false); !errors.As(err, &mis) || mis.Offset != 600 {
		t.Fatalf("miscompare: %v, want offset 600", err)
	}
	if err := d.ReadAt(ctx, make([]byte, 1024), 1023); !errors.Is(err, scsi.ErrOutOfRange) {
		t.Fatalf("read past the end: %v", err)
	}
	for _, bad := range []struct {
		bs     uint32
		blocks uint64
	}{{1024, 1}, {512, 0}, {4096, 1 << 62}} {
		if _, err := NewNull(bad.bs, bad.blocks); err == nil {
			t.Errorf("NewNull(%d, %d): no error", bad.bs, bad.blocks)
		}
	}
}

func TestMemThin(t *testing.T) {
	d, err := NewMem(512, 1<<40/512) // 1 TiB costs nothing until written
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, d, 0, make([]byte, 1<<20)) // zeros allocate nothing
	if n := d.AllocatedBytes(); n != 0 {
		t.Fatalf("writing zeros allocated %d bytes", n)
	}
	mustWrite(t, d, d.Blocks()-1, pattern(512, 1))
	if n := d.AllocatedBytes(); n != memChunkSize {
		t.Fatalf("one block written: %d bytes allocated, want %d", n, memChunkSize)
	}
	// A large unmap walks the allocated chunks, not the 16M chunk indexes.
	if err := d.Unmap(context.Background(), 0, d.Blocks()); err != nil {
		t.Fatal(err)
	}
	if n := d.AllocatedBytes(); n != 0 {
		t.Fatalf("after unmapping everything: %d bytes allocated", n)
	}
	mapped, n, err := d.LBAStatus(context.Background(), 0, d.Blocks())
	if err != nil || mapped || n != memMaxStatusScan*memChunkSize/512 {
		t.Fatalf("LBAStatus of an empty 1 TiB device = %v, %d, %v; want one capped unmapped extent", mapped, n, err)
	}
}
