package catalog

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func openTestStore(t *testing.T, dir string, trans raft.Transport) *Store {
	t.Helper()
	s, err := Open(Config{
		NodeName: "n1", DataDir: dir, Bootstrap: true,
		ElectionTimeout: 50 * time.Millisecond, transport: trans,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for !s.IsLeader() {
		select {
		case <-ctx.Done():
			t.Fatal("no leader")
		case <-s.LeaderCh():
		case <-time.After(10 * time.Millisecond):
		}
	}
	return s
}

// TestStoreRestart runs a one-voter raft on a real bbolt log, forces a
// snapshot, applies more commands, and checks a restarted store rebuilds
// the same state from the snapshot plus the log tail.
func TestStoreRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	_, trans := raft.NewInmemTransport("")
	s := openTestStore(t, dir, trans)
	cmds := []Command{
		CreateVolume{Name: "a", SizeBytes: gib, BlockSize: 4096, Node: "n1", Time: t0},
		SetVolumeState{Name: "a", State: VolumeAvailable, Time: t0},
		CreateSnapshot{Volume: "a", Name: "s", Time: t0},
	}
	for _, c := range cmds {
		if _, err := s.Apply(ctx, c); err != nil {
			t.Fatalf("apply %T: %v", c, err)
		}
	}
	if err := s.Snapshot(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply(ctx, GrantAccess{Volume: "a", InitiatorIQN: "iqn.h", Time: t0}); err != nil {
		t.Fatal(err)
	}
	// A refused command comes back as the FSM's error.
	if _, err := s.Apply(ctx, CreateVolume{Name: "a", SizeBytes: gib, BlockSize: 4096}); !errors.Is(err, ErrAlreadyExists) {
		t.Fatalf("duplicate create = %v", err)
	}
	var want *State
	s.View(func(st *State) { want = st.Clone() })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	_, trans2 := raft.NewInmemTransport(trans.LocalAddr())
	s2 := openTestStore(t, dir, trans2)
	defer s2.Close()
	// Wait until the log tail is re-applied.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var got *State
		s2.View(func(st *State) { got = st.Clone() })
		if equalJSON(t, want, got) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restored state differs:\n got %+v\nwant %+v", got, want)
		}
		<-s2.Changed()
	}
	if h := s2.Health(); h.Voters != 1 || !h.HasLeader {
		t.Fatalf("health after restart = %+v", h)
	}
}

type bufSink struct {
	buf []byte
}

func (b *bufSink) Write(p []byte) (int, error) { b.buf = append(b.buf, p...); return len(p), nil }
func (b *bufSink) Close() error                { return nil }
func (b *bufSink) Cancel() error               { return nil }
func (b *bufSink) ID() string                  { return "test" }

func newReadCloser(b []byte) io.ReadCloser { return io.NopCloser(bytes.NewReader(b)) }

func TestFSMSnapshotRestore(t *testing.T) {
	f := NewFSM(DefaultLimits(), nil)
	st := newTestState(t)
	mustApply(t, st, GrantAccess{Volume: "a", InitiatorIQN: "iqn.h", CHAP: &CHAP{User: "u", Secret: "0123456789ab"}})
	mustApply(t, st, CreateOperation{ID: "o", Kind: OpResize, Volume: "a", SizeBytes: 2 * gib})
	f.state = st
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	// Changes after Snapshot must not leak into what it persists.
	mustApply(t, st, RevokeAccess{Volume: "a", InitiatorIQN: "iqn.h"})
	sink := &bufSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	g := NewFSM(DefaultLimits(), nil)
	changed := g.Changed()
	if err := g.Restore(newReadCloser(sink.buf)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	default:
		t.Fatal("Restore did not signal a change")
	}
	g.View(func(s *State) {
		if len(s.Exports) != 1 || s.Exports["a/iqn.h"].CHAP.Secret != "0123456789ab" || s.Operations["o"] == nil {
			t.Fatalf("restored state = %+v", s)
		}
	})
	if err := g.Restore(newReadCloser([]byte{9, '{', '}'})); !errors.Is(err, ErrInvalid) {
		t.Fatalf("restore of unknown version = %v", err)
	}
}
