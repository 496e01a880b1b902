package catalog

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/hashicorp/raft"
)

// snapshotVersion1 is the first byte of an FSM snapshot; the JSON of the
// State follows. Bump it when the State's encoding changes incompatibly.
const snapshotVersion1 byte = 1

// ApplyResult is what FSM.Apply returns through raft's ApplyFuture.
type ApplyResult struct {
	Value any
	Err   error
}

// FSM is the catalog's raft.FSM: a State behind a lock, plus a channel
// that is closed after every change so that watchers can wake up.
type FSM struct {
	log *slog.Logger

	mu      sync.RWMutex
	state   *State
	changed chan struct{}
	index   uint64
}

var _ raft.FSM = (*FSM)(nil)

// NewFSM returns an FSM holding an empty catalog with the given limits.
func NewFSM(l Limits, log *slog.Logger) *FSM {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &FSM{log: log, state: NewState(l), changed: make(chan struct{})}
}

// Apply implements raft.FSM. A command this binary does not know is
// skipped (and logged), so that a newer leader can add commands without
// stopping older followers.
func (f *FSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	cmd, err := Decode(l.Data)
	if err != nil {
		if errors.Is(err, ErrUnknownCommand) {
			f.log.Warn("skipping unknown catalog command", "index", l.Index, "err", err)
		}
		return ApplyResult{Err: err}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	v, err := f.state.Apply(cmd)
	f.index = l.Index
	if err == nil {
		close(f.changed)
		f.changed = make(chan struct{})
	}
	return ApplyResult{Value: v, Err: err}
}

// View calls fn with the current state under a read lock. fn must not
// keep or modify the state.
func (f *FSM) View(fn func(*State)) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	fn(f.state)
}

// Changed returns a channel that is closed at the next change.
func (f *FSM) Changed() <-chan struct{} {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.changed
}

// AppliedIndex is the raft index of the last applied command.
func (f *FSM) AppliedIndex() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.index
}

// Snapshot implements raft.FSM: it copies the state so that Persist can
// run while later commands are applied.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return &fsmSnapshot{state: f.state.Clone()}, nil
}

// Restore implements raft.FSM: it replaces the whole state.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	st, err := ReadSnapshot(rc)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	st.Limits = f.state.Limits // limits are configuration, not data
	f.state = st
	close(f.changed)
	f.changed = make(chan struct{})
	return nil
}

// WriteSnapshot writes a state in the snapshot format.
func WriteSnapshot(w io.Writer, st *State) error {
	if _, err := w.Write([]byte{snapshotVersion1}); err != nil {
		return fmt.Errorf("write catalog snapshot header: %w", err)
	}
	if err := json.NewEncoder(w).Encode(st); err != nil {
		return fmt.Errorf("write catalog snapshot: %w", err)
	}
	return nil
}

// ReadSnapshot parses the snapshot format.
func ReadSnapshot(r io.Reader) (*State, error) {
	var hdr [1]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("read catalog snapshot header: %w", err)
	}
	if hdr[0] != snapshotVersion1 {
		return nil, fmt.Errorf("read catalog snapshot: version %d: %w", hdr[0], ErrInvalid)
	}
	st := NewState(Limits{})
	if err := json.NewDecoder(r).Decode(st); err != nil {
		return nil, fmt.Errorf("read catalog snapshot: %w", err)
	}
	// Maps absent from the JSON decode as nil; make them usable.
	fresh := NewState(st.Limits)
	if st.Volumes == nil {
		st.Volumes = fresh.Volumes
	}
	if st.Snapshots == nil {
		st.Snapshots = fresh.Snapshots
	}
	if st.Exports == nil {
		st.Exports = fresh.Exports
	}
	if st.Operations == nil {
		st.Operations = fresh.Operations
	}
	if st.Nodes == nil {
		st.Nodes = fresh.Nodes
	}
	if st.RequestIDs == nil {
		st.RequestIDs = fresh.RequestIDs
	}
	return st, nil
}

type fsmSnapshot struct{ state *State }

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := WriteSnapshot(sink, s.state); err != nil {
		_ = sink.Cancel()
		return err
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("close catalog snapshot: %w", err)
	}
	return nil
}

func (s *fsmSnapshot) Release() {}
