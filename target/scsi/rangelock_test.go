package scsi

import (
	"context"
	"errors"
	"testing"
	"time"
)

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached before the deadline")
		}
		time.Sleep(time.Millisecond) // polling with a deadline, not waiting for an event
	}
}

func TestRangeLockExclusiveNotStarved(t *testing.T) {
	var r rangeLock
	ctx := context.Background()
	a, err := r.lock(ctx, 0, 8, false)
	if err != nil {
		t.Fatal(err)
	}
	// Shared lockers of disjoint or overlapping ranges coexist.
	b, err := r.lock(ctx, 4, 8, false)
	if err != nil {
		t.Fatal(err)
	}
	r.unlock(b)

	got := make(chan uint64)
	go func() {
		id, err := r.lock(ctx, 2, 1, true)
		if err != nil {
			t.Error(err)
		}
		got <- id
	}()
	waitFor(t, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.pending) == 1
	})
	// A new overlapping shared locker waits behind the exclusive one...
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := r.lock(short, 0, 4, false); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("shared lock jumped the exclusive waiter: %v", err)
	}
	// ...but a disjoint one does not.
	c, err := r.lock(ctx, 100, 1, false)
	if err != nil {
		t.Fatal(err)
	}
	r.unlock(c)
	r.unlock(a)
	e := <-got
	r.unlock(e)
	if len(r.held) != 0 || len(r.pending) != 0 {
		t.Fatalf("left held %v pending %v", r.held, r.pending)
	}
}

func TestRangeLockCancelWhileQueued(t *testing.T) {
	var r rangeLock
	ctx := context.Background()
	a, _ := r.lock(ctx, 0, 1, false)
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() {
		_, err := r.lock(cctx, 0, 1, true)
		done <- err
	}()
	waitFor(t, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.pending) == 1
	})
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
	// The cancelled exclusive waiter no longer blocks shared lockers.
	b, err := r.lock(ctx, 0, 1, false)
	if err != nil {
		t.Fatal(err)
	}
	r.unlock(b)
	r.unlock(a)
}
