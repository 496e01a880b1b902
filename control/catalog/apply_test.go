package catalog

import (
	"errors"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

const gib = 1 << 30

// mustApply applies a command through the wire format, as raft would.
func mustApply(t *testing.T, s *State, c Command) any {
	t.Helper()
	v, err := applyWire(s, c)
	if err != nil {
		t.Fatalf("apply %T: %v", c, err)
	}
	return v
}

func applyWire(s *State, c Command) (any, error) {
	b, err := Encode(c)
	if err != nil {
		return nil, err
	}
	d, err := Decode(b)
	if err != nil {
		return nil, err
	}
	return s.Apply(d)
}

func newTestState(t *testing.T) *State {
	t.Helper()
	s := NewState(Limits{MaxVolumes: 3, MaxSnapshotsPerVolume: 2, MaxExportsPerVolume: 2, MaxFinishedOperations: 2})
	mustApply(t, s, CreateVolume{Name: "a", SizeBytes: gib, BlockSize: 4096, Node: "n1", Time: t0})
	mustApply(t, s, SetVolumeState{Name: "a", State: VolumeAvailable, Time: t0})
	return s
}

func TestCanTransition(t *testing.T) {
	all := []VolumeState{VolumeCreating, VolumeAvailable, VolumeInUse, VolumeDeleting, VolumeError}
	allowed := map[[2]VolumeState]bool{
		{VolumeCreating, VolumeAvailable}: true, {VolumeCreating, VolumeError}: true, {VolumeCreating, VolumeDeleting}: true,
		{VolumeAvailable, VolumeInUse}: true, {VolumeAvailable, VolumeDeleting}: true, {VolumeAvailable, VolumeError}: true,
		{VolumeInUse, VolumeAvailable}: true, {VolumeInUse, VolumeError}: true,
		{VolumeError, VolumeAvailable}: true, {VolumeError, VolumeInUse}: true, {VolumeError, VolumeDeleting}: true,
	}
	for _, from := range all {
		for _, to := range all {
			want := from == to || allowed[[2]VolumeState{from, to}]
			if got := CanTransition(from, to); got != want {
				t.Errorf("CanTransition(%s, %s) = %v, want %v", from, to, got, want)
			}
		}
	}
}

func TestApplyErrors(t *testing.T) {
	tests := []struct {
		name  string
		setup []Command
		cmd   Command
		want  error
	}{
		{"duplicate volume", nil, CreateVolume{Name: "a", SizeBytes: gib, BlockSize: 4096}, ErrAlreadyExists},
		{"unaligned size", nil, CreateVolume{Name: "b", SizeBytes: gib + 1, BlockSize: 4096}, ErrInvalid},
		{"volume limit", []Command{
			CreateVolume{Name: "b", SizeBytes: gib, BlockSize: 4096},
			CreateVolume{Name: "c", SizeBytes: gib, BlockSize: 4096},
		}, CreateVolume{Name: "d", SizeBytes: gib, BlockSize: 4096}, ErrLimit},
		{"clone of missing snapshot", nil, CreateVolume{Name: "b", SizeBytes: gib, BlockSize: 4096, Source: &SnapshotRef{"a", "s"}}, ErrNotFound},
		{"clone of unready snapshot", []Command{CreateSnapshot{Volume: "a", Name: "s"}},
			CreateVolume{Name: "b", SizeBytes: gib, BlockSize: 4096, Source: &SnapshotRef{"a", "s"}}, ErrFailedPrecondition},
		{"clone smaller than snapshot", []Command{CreateSnapshot{Volume: "a", Name: "s"}, SetSnapshotState{Volume: "a", Name: "s", State: SnapshotReady}},
			CreateVolume{Name: "b", SizeBytes: 4096, BlockSize: 4096, Source: &SnapshotRef{"a", "s"}}, ErrFailedPrecondition},
		{"bad transition", []Command{DeleteVolume{Name: "a"}}, SetVolumeState{Name: "a", State: VolumeAvailable}, ErrFailedPrecondition},
		{"state of missing volume", nil, SetVolumeState{Name: "x", State: VolumeAvailable}, ErrNotFound},
		{"delete exported", []Command{GrantAccess{Volume: "a", InitiatorIQN: "iqn.x"}}, DeleteVolume{Name: "a"}, ErrFailedPrecondition},
		{"delete with snapshot", []Command{CreateSnapshot{Volume: "a", Name: "s"}}, DeleteVolume{Name: "a"}, ErrFailedPrecondition},
		{"delete missing", nil, DeleteVolume{Name: "x"}, ErrNotFound},
		{"remove undeleted", nil, RemoveVolume{Name: "a"}, ErrFailedPrecondition},
		{"snapshot limit", []Command{CreateSnapshot{Volume: "a", Name: "s1"}, CreateSnapshot{Volume: "a", Name: "s2"}},
			CreateSnapshot{Volume: "a", Name: "s3"}, ErrLimit},
		{"duplicate snapshot", []Command{CreateSnapshot{Volume: "a", Name: "s"}}, CreateSnapshot{Volume: "a", Name: "s"}, ErrAlreadyExists},
		{"snapshot of missing volume", nil, CreateSnapshot{Volume: "x", Name: "s"}, ErrNotFound},
		{"snapshot of creating volume", []Command{CreateVolume{Name: "b", SizeBytes: gib, BlockSize: 4096}},
			CreateSnapshot{Volume: "b", Name: "s"}, ErrFailedPrecondition},
		{"delete snapshot with clone", []Command{
			CreateSnapshot{Volume: "a", Name: "s"}, SetSnapshotState{Volume: "a", Name: "s", State: SnapshotReady},
			CreateVolume{Name: "b", SizeBytes: gib, BlockSize: 4096, Source: &SnapshotRef{"a", "s"}},
		}, DeleteSnapshot{Volume: "a", Name: "s"}, ErrFailedPrecondition},
		{"grant on creating volume", []Command{CreateVolume{Name: "b", SizeBytes: gib, BlockSize: 4096}},
			GrantAccess{Volume: "b", InitiatorIQN: "iqn.x"}, ErrFailedPrecondition},
		{"export limit", []Command{GrantAccess{Volume: "a", InitiatorIQN: "iqn.1"}, GrantAccess{Volume: "a", InitiatorIQN: "iqn.2"}},
			GrantAccess{Volume: "a", InitiatorIQN: "iqn.3"}, ErrLimit},
		{"revoke missing", nil, RevokeAccess{Volume: "a", InitiatorIQN: "iqn.x"}, ErrNotFound},
		{"shrink", nil, CreateOperation{ID: "o", Kind: OpResize, Volume: "a", SizeBytes: 4096}, ErrFailedPrecondition},
		{"revert while exported", []Command{
			CreateSnapshot{Volume: "a", Name: "s"}, SetSnapshotState{Volume: "a", Name: "s", State: SnapshotReady},
			GrantAccess{Volume: "a", InitiatorIQN: "iqn.x"},
		}, CreateOperation{ID: "o", Kind: OpRevert, Volume: "a", Snapshot: "s"}, ErrFailedPrecondition},
		{"two resizes", []Command{CreateOperation{ID: "o1", Kind: OpResize, Volume: "a", SizeBytes: 2 * gib}},
			CreateOperation{ID: "o2", Kind: OpResize, Volume: "a", SizeBytes: 3 * gib}, ErrFailedPrecondition},
		{"grant during revert", []Command{
			CreateSnapshot{Volume: "a", Name: "s"}, SetSnapshotState{Volume: "a", Name: "s", State: SnapshotReady},
			CreateOperation{ID: "o", Kind: OpRevert, Volume: "a", Snapshot: "s"},
		}, GrantAccess{Volume: "a", InitiatorIQN: "iqn.x"}, ErrFailedPrecondition},
		{"update finished op", []Command{
			CreateOperation{ID: "o", Kind: OpResize, Volume: "a", SizeBytes: 2 * gib},
			UpdateOperation{ID: "o", State: OpSucceeded, Progress: 100},
		}, UpdateOperation{ID: "o", State: OpRunning}, ErrFailedPrecondition},
		{"progress over 100", []Command{CreateOperation{ID: "o", Kind: OpResize, Volume: "a", SizeBytes: 2 * gib}},
			UpdateOperation{ID: "o", State: OpRunning, Progress: 101}, ErrInvalid},
		{"unknown op kind", nil, CreateOperation{ID: "o", Kind: "scrub", Volume: "a"}, ErrInvalid},
		{"flatten a volume that is not a clone", nil, CreateOperation{ID: "o", Kind: OpFlatten, Volume: "a"}, ErrFailedPrecondition},
		{"cancel missing op", nil, CancelOperation{ID: "o"}, ErrNotFound},
		{"request id reused", []Command{CreateVolume{Name: "b", SizeBytes: gib, BlockSize: 4096, RequestID: "r"}},
			CreateVolume{Name: "c", SizeBytes: gib, BlockSize: 4096, RequestID: "r"}, ErrAlreadyExists},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestState(t)
			for _, c := range tc.setup {
				mustApply(t, s, c)
			}
			before := s.Clone()
			_, err := applyWire(s, tc.cmd)
			if !errors.Is(err, tc.want) {
				t.Fatalf("apply %T = %v, want %v", tc.cmd, err, tc.want)
			}
			if !equalJSON(t, before, s) {
				t.Fatalf("refused command changed the state")
			}
		})
	}
}

func TestVolumeLifecycle(t *testing.T) {
	s := newTestState(t)
	// Idempotent create by request id.
	c := CreateVolume{Name: "b", SizeBytes: gib, BlockSize: 4096, RequestID: "r1", Labels: map[string]string{"k": "v"}}
	first := mustApply(t, s, c).(Volume)
	again := mustApply(t, s, c).(Volume)
	if first.Name != again.Name || len(s.Volumes) != 2 {
		t.Fatalf("retry with request id made another volume: %+v", s.Volumes)
	}
	// Export makes it in use; revoking the last export makes it available.
	mustApply(t, s, GrantAccess{Volume: "a", InitiatorIQN: "iqn.h1", TargetIQN: "iqn.t:a"})
	mustApply(t, s, GrantAccess{Volume: "a", InitiatorIQN: "iqn.h2", TargetIQN: "iqn.t:a"})
	if s.Volumes["a"].State != VolumeInUse {
		t.Fatalf("state after grant = %s", s.Volumes["a"].State)
	}
	mustApply(t, s, RevokeAccess{Volume: "a", InitiatorIQN: "iqn.h1"})
	if s.Volumes["a"].State != VolumeInUse {
		t.Fatalf("state with one export left = %s", s.Volumes["a"].State)
	}
	mustApply(t, s, RevokeAccess{Volume: "a", InitiatorIQN: "iqn.h2"})
	if s.Volumes["a"].State != VolumeAvailable {
		t.Fatalf("state after last revoke = %s", s.Volumes["a"].State)
	}
	// Snapshot, clone, then cascade delete takes the clone and exports too.
	mustApply(t, s, CreateSnapshot{Volume: "a", Name: "s"})
	mustApply(t, s, SetSnapshotState{Volume: "a", Name: "s", State: SnapshotReady})
	mustApply(t, s, SetVolumeState{Name: "b", State: VolumeAvailable})
	mustApply(t, s, DeleteVolume{Name: "b"})
	mustApply(t, s, RemoveVolume{Name: "b"})
	if _, ok := s.RequestIDs["r1"]; ok {
		t.Fatalf("request id outlived its volume")
	}
	mustApply(t, s, CreateVolume{Name: "c", SizeBytes: 2 * gib, BlockSize: 4096, Source: &SnapshotRef{"a", "s"}})
	mustApply(t, s, SetVolumeState{Name: "c", State: VolumeAvailable})
	// Flattening detaches a clone: once done, the snapshot has no clone.
	mustApply(t, s, CreateVolume{Name: "f", SizeBytes: gib, BlockSize: 4096, Source: &SnapshotRef{"a", "s"}})
	mustApply(t, s, SetVolumeState{Name: "f", State: VolumeAvailable})
	mustApply(t, s, CreateOperation{ID: "fl", Kind: OpFlatten, Volume: "f"})
	mustApply(t, s, UpdateOperation{ID: "fl", State: OpSucceeded, Progress: 100})
	if s.Volumes["f"].Source != nil || len(s.Clones("a", "s")) != 1 {
		t.Fatalf("after flatten: source %v, clones %v", s.Volumes["f"].Source, s.Clones("a", "s"))
	}
	mustApply(t, s, DeleteVolume{Name: "f"})
	mustApply(t, s, RemoveVolume{Name: "f"})
	mustApply(t, s, GrantAccess{Volume: "c", InitiatorIQN: "iqn.h1"})
	mustApply(t, s, DeleteVolume{Name: "a", Cascade: true})
	if s.Volumes["c"].State != VolumeDeleting || len(s.Exports) != 0 || s.Snapshots["a@s"].State != SnapshotDeleting {
		t.Fatalf("cascade delete left %+v %+v %+v", s.Volumes["c"], s.Exports, s.Snapshots)
	}
	if _, err := applyWire(s, RemoveVolume{Name: "a"}); !errors.Is(err, ErrFailedPrecondition) {
		t.Fatalf("removing a volume before its clone = %v", err)
	}
	mustApply(t, s, RemoveVolume{Name: "c"})
	mustApply(t, s, RemoveVolume{Name: "a"})
	if len(s.Volumes) != 0 || len(s.Snapshots) != 0 {
		t.Fatalf("left over: %+v %+v", s.Volumes, s.Snapshots)
	}
}

func TestOperations(t *testing.T) {
	s := newTestState(t)
	mustApply(t, s, CreateOperation{ID: "o1", Kind: OpResize, Volume: "a", SizeBytes: 2 * gib, Time: t0})
	mustApply(t, s, UpdateOperation{ID: "o1", State: OpRunning, Progress: 50})
	if s.Volumes["a"].SizeBytes != gib {
		t.Fatalf("size changed before the resize finished")
	}
	mustApply(t, s, UpdateOperation{ID: "o1", State: OpSucceeded, Progress: 100})
	if s.Volumes["a"].SizeBytes != 2*gib {
		t.Fatalf("size after resize = %d", s.Volumes["a"].SizeBytes)
	}
	// Cancelling a pending operation finishes it; a running one is flagged.
	mustApply(t, s, CreateOperation{ID: "o2", Kind: OpResize, Volume: "a", SizeBytes: 3 * gib, Time: t0.Add(time.Second)})
	o := mustApply(t, s, CancelOperation{ID: "o2"}).(Operation)
	if o.State != OpCancelled {
		t.Fatalf("cancelled pending op state = %s", o.State)
	}
	mustApply(t, s, CreateOperation{ID: "o3", Kind: OpResize, Volume: "a", SizeBytes: 3 * gib, Time: t0.Add(2 * time.Second)})
	mustApply(t, s, UpdateOperation{ID: "o3", State: OpRunning})
	o = mustApply(t, s, CancelOperation{ID: "o3"}).(Operation)
	if o.State != OpRunning || !o.CancelRequested {
		t.Fatalf("cancelled running op = %+v", o)
	}
	mustApply(t, s, UpdateOperation{ID: "o3", State: OpCancelled})
	// Finished operations beyond the limit (2) are pruned oldest first.
	mustApply(t, s, CreateOperation{ID: "o4", Kind: OpResize, Volume: "a", SizeBytes: 3 * gib, Time: t0.Add(3 * time.Second)})
	if _, ok := s.Operations["o1"]; ok {
		t.Fatalf("oldest finished operation kept: %v", s.SortedOperations())
	}
	if _, ok := s.Operations["o3"]; !ok {
		t.Fatalf("newest finished operation pruned")
	}
}
