package blockstore

import (
	"bytes"
	"context"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/vfs"
)

// TestAtomicWriteVisibility races atomic writes that straddle a 64-block
// boundary against reads that cover them: every read must see one atomic
// write whole, never a mix.
func TestAtomicWriteVisibility(t *testing.T) {
	ctx := context.Background()
	s := openMem(t, vfs.NewMem(), Options{MaxDirty: 100})
	defer s.Close()
	v := mustCreate(t, s, "vol", 256*512, 512)
	defer v.Close()
	const at, n = 32, 64
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		for i := 0; i < 300; i++ {
			p := bytes.Repeat([]byte{byte(i%250) + 1}, n*512)
			if err := v.WriteAtomic(ctx, p, at, false); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	buf := make([]byte, 128*512)
	for reads := 0; ; reads++ {
		select {
		case <-done:
			wg.Wait()
			if reads == 0 {
				t.Fatal("no read raced the writes")
			}
			return
		default:
		}
		if err := v.ReadAt(ctx, buf, 0); err != nil {
			t.Fatal(err)
		}
		w := buf[at*512 : (at+n)*512]
		if !bytes.Equal(w, bytes.Repeat(w[:1], len(w))) {
			t.Fatalf("read %d saw a torn atomic write", reads)
		}
	}
}
