package scsi

import (
	"context"
	"sync"
)

// rangeLock serialises writes that must be atomic (COMPARE AND WRITE,
// ORWRITE) against every other write of the same LU. Plain writes hold
// ranges shared (they may overlap each other, SCSI does not order simple
// tasks); atomic writers hold them exclusive. The uncontended path does not
// allocate.
type rangeLock struct {
	mu      sync.Mutex
	held    []heldRange
	nextID  uint64
	changed chan struct{} // closed and replaced when a range is released; nil when nobody waits
}

type heldRange struct {
	id        uint64
	lba, n    uint64
	exclusive bool
}

func (h heldRange) overlaps(lba, n uint64) bool {
	return lba < h.lba+h.n && h.lba < lba+n
}

// lock takes [lba, lba+n) and returns a token for unlock. It fails only
// when ctx ends while it waits.
func (r *rangeLock) lock(ctx context.Context, lba, n uint64, exclusive bool) (uint64, error) {
	if n == 0 {
		n = 1
	}
	r.mu.Lock()
	for {
		conflict := false
		for _, h := range r.held {
			if h.overlaps(lba, n) && (exclusive || h.exclusive) {
				conflict = true
				break
			}
		}
		if !conflict {
			break
		}
		if r.changed == nil {
			r.changed = make(chan struct{})
		}
		ch := r.changed
		r.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		r.mu.Lock()
	}
	r.nextID++
	id := r.nextID
	r.held = append(r.held, heldRange{id: id, lba: lba, n: n, exclusive: exclusive})
	r.mu.Unlock()
	return id, nil
}

// unlock releases the range taken under id.
func (r *rangeLock) unlock(id uint64) {
	r.mu.Lock()
	for i := range r.held {
		if r.held[i].id == id {
			last := len(r.held) - 1
			r.held[i] = r.held[last]
			r.held = r.held[:last]
			break
		}
	}
	if r.changed != nil {
		close(r.changed)
		r.changed = nil
	}
	r.mu.Unlock()
}
