package scsi

import (
	"context"
	"sync"
)

// rangeLock serialises writes that must be atomic (COMPARE AND WRITE,
// ORWRITE, a merged partial block) against every other write of the same
// LU. Plain writes hold ranges shared (they may overlap each other: SCSI
// does not order simple tasks); atomic writers hold them exclusive. A
// waiting exclusive locker also holds back new overlapping shared lockers,
// so a COMPARE AND WRITE heartbeat cannot be starved by a stream of writes.
// The uncontended path does not allocate.
type rangeLock struct {
	mu      sync.Mutex
	held    []heldRange
	pending []heldRange // exclusive lockers waiting
	nextID  uint64
	changed chan struct{} // closed and replaced when held or pending shrink; nil when nobody waits
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
	r.nextID++
	me := heldRange{id: r.nextID, lba: lba, n: n, exclusive: exclusive}
	queued := false
	for r.conflicts(me) {
		if exclusive && !queued {
			r.pending = append(r.pending, me)
			queued = true
		}
		if r.changed == nil {
			r.changed = make(chan struct{})
		}
		ch := r.changed
		r.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			r.mu.Lock()
			if queued {
				r.pending = removeRange(r.pending, me.id)
				r.wake()
			}
			r.mu.Unlock()
			return 0, ctx.Err()
		}
		r.mu.Lock()
	}
	if queued {
		r.pending = removeRange(r.pending, me.id)
	}
	r.held = append(r.held, me)
	r.mu.Unlock()
	return me.id, nil
}

// conflicts reports whether me must wait. r.mu held.
func (r *rangeLock) conflicts(me heldRange) bool {
	for _, h := range r.held {
		if h.overlaps(me.lba, me.n) && (me.exclusive || h.exclusive) {
			return true
		}
	}
	if !me.exclusive {
		for _, p := range r.pending {
			if p.overlaps(me.lba, me.n) {
				return true
			}
		}
	}
	return false
}

// unlock releases the range taken under id.
func (r *rangeLock) unlock(id uint64) {
	r.mu.Lock()
	r.held = removeRange(r.held, id)
	r.wake()
	r.mu.Unlock()
}

// wake lets every waiter re-check. r.mu held.
func (r *rangeLock) wake() {
	if r.changed != nil {
		close(r.changed)
		r.changed = nil
	}
}

// removeRange deletes the entry with id (order is not kept).
func removeRange(s []heldRange, id uint64) []heldRange {
	for i := range s {
		if s[i].id == id {
			last := len(s) - 1
			s[i] = s[last]
			return s[:last]
		}
	}
	return s
}
