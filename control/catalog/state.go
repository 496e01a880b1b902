package catalog

import (
	"sort"
	"strings"
	"time"
)

// VolumeState is where a volume is in its life cycle.
type VolumeState string

// Volume states. See volumeTransitions for the allowed moves.
const (
	VolumeCreating  VolumeState = "creating"
	VolumeAvailable VolumeState = "available"
	VolumeInUse     VolumeState = "in-use"
	VolumeDeleting  VolumeState = "deleting"
	VolumeError     VolumeState = "error"
)

// CanTransition reports whether a volume may move from one state to
// another. Staying in the same state (to update the reason) is allowed.
// A deleting volume never comes back: it is removed once the node has
// deleted it, and a failed delete is retried, not undone.
func CanTransition(from, to VolumeState) bool {
	if from == to {
		return true
	}
	switch from {
	case VolumeCreating:
		return to == VolumeAvailable || to == VolumeError || to == VolumeDeleting
	case VolumeAvailable:
		return to == VolumeInUse || to == VolumeDeleting || to == VolumeError
	case VolumeInUse:
		return to == VolumeAvailable || to == VolumeError
	case VolumeError:
		return to == VolumeAvailable || to == VolumeInUse || to == VolumeDeleting
	}
	return false
}

// SnapshotState is where a snapshot is in its life cycle.
type SnapshotState string

// Snapshot states.
const (
	SnapshotCreating SnapshotState = "creating"
	SnapshotReady    SnapshotState = "ready"
	SnapshotDeleting SnapshotState = "deleting"
	SnapshotError    SnapshotState = "error"
)

// OpKind is what an operation does.
type OpKind string

// Operation kinds.
const (
	OpResize  OpKind = "resize"
	OpRevert  OpKind = "revert"
	OpFlatten OpKind = "flatten"
)

// OpState is where an operation is.
type OpState string

// Operation states; succeeded, failed and cancelled are final.
const (
	OpPending   OpState = "pending"
	OpRunning   OpState = "running"
	OpSucceeded OpState = "succeeded"
	OpFailed    OpState = "failed"
	OpCancelled OpState = "cancelled"
)

// Final reports whether an operation in state s will never change again.
func (s OpState) Final() bool {
	return s == OpSucceeded || s == OpFailed || s == OpCancelled
}

// NodeState is what membership last said about a node.
type NodeState string

// Node states, as Serf reports them.
const (
	NodeAlive   NodeState = "alive"
	NodeSuspect NodeState = "suspect"
	NodeFailed  NodeState = "failed"
	NodeLeft    NodeState = "left"
)

// SnapshotRef names a snapshot of a volume.
type SnapshotRef struct {
	Volume   string `json:"volume"`
	Snapshot string `json:"snapshot"`
}

// String formats the reference as VOLUME@SNAPSHOT.
func (r SnapshotRef) String() string { return r.Volume + "@" + r.Snapshot }

// Volume is the catalog's record of a volume.
type Volume struct {
	Name       string            `json:"name"`
	SizeBytes  uint64            `json:"size_bytes"`
	BlockSize  uint32            `json:"block_size"`
	Labels     map[string]string `json:"labels,omitempty"`
	State      VolumeState       `json:"state"`
	Reason     string            `json:"reason,omitempty"`
	Source     *SnapshotRef      `json:"source,omitempty"`
	Node       string            `json:"node"`
	RequestID  string            `json:"request_id,omitempty"`
	CreateTime time.Time         `json:"create_time"`
	UpdateTime time.Time         `json:"update_time"`
}

// Snapshot is the catalog's record of a snapshot.
type Snapshot struct {
	Volume     string        `json:"volume"`
	Name       string        `json:"name"`
	SizeBytes  uint64        `json:"size_bytes"`
	State      SnapshotState `json:"state"`
	Reason     string        `json:"reason,omitempty"`
	CreateTime time.Time     `json:"create_time"`
}

// CHAP holds the credentials an initiator must present.
type CHAP struct {
	User   string `json:"user"`
	Secret string `json:"secret"`
}

// Export is one initiator's access to one volume.
type Export struct {
	Volume       string    `json:"volume"`
	InitiatorIQN string    `json:"initiator_iqn"`
	TargetIQN    string    `json:"target_iqn"`
	Portal       string    `json:"portal"`
	CHAP         *CHAP     `json:"chap,omitempty"`
	CreateTime   time.Time `json:"create_time"`
}

// Operation is one piece of long-running work.
type Operation struct {
	ID              string    `json:"id"`
	Kind            OpKind    `json:"kind"`
	Volume          string    `json:"volume"`
	SizeBytes       uint64    `json:"size_bytes,omitempty"`
	Snapshot        string    `json:"snapshot,omitempty"`
	State           OpState   `json:"state"`
	Progress        uint32    `json:"progress"`
	Message         string    `json:"message,omitempty"`
	CancelRequested bool      `json:"cancel_requested,omitempty"`
	CreateTime      time.Time `json:"create_time"`
	UpdateTime      time.Time `json:"update_time"`
}

// Node is the catalog's record of a storage node.
type Node struct {
	Name          string    `json:"name"`
	State         NodeState `json:"state"`
	APIAddress    string    `json:"api_address"`
	ISCSIAddress  string    `json:"iscsi_address"`
	RaftAddress   string    `json:"raft_address"`
	CapacityBytes uint64    `json:"capacity_bytes"`
	UsedBytes     uint64    `json:"used_bytes"`
	UpdateTime    time.Time `json:"update_time"`
}

// Limits bound what the catalog accepts. Every replica must use the same
// limits, since they are checked when a command is applied.
type Limits struct {
	MaxVolumes            int `json:"max_volumes"`
	MaxSnapshotsPerVolume int `json:"max_snapshots_per_volume"`
	MaxExportsPerVolume   int `json:"max_exports_per_volume"`
	// MaxFinishedOperations is how many final operations are kept; older
	// ones are dropped when new ones are created.
	MaxFinishedOperations int `json:"max_finished_operations"`
}

// DefaultLimits are the limits of a default server.
func DefaultLimits() Limits {
	return Limits{
		MaxVolumes:            4096,
		MaxSnapshotsPerVolume: 256,
		MaxExportsPerVolume:   16,
		MaxFinishedOperations: 1000,
	}
}

// State is the whole catalog: what the cluster should look like. It is a
// plain value; Apply is its only mutator and is deterministic, so every
// replica that applies the same log holds the same State.
type State struct {
	Volumes    map[string]*Volume    `json:"volumes"`
	Snapshots  map[string]*Snapshot  `json:"snapshots"` // key: volume@name
	Exports    map[string]*Export    `json:"exports"`   // key: volume/initiator
	Operations map[string]*Operation `json:"operations"`
	Nodes      map[string]*Node      `json:"nodes"`
	// RequestIDs maps CreateVolume request ids to the volume they made.
	RequestIDs map[string]string `json:"request_ids"`
	Limits     Limits            `json:"limits"`
}

// NewState returns an empty catalog with the given limits.
func NewState(l Limits) *State {
	return &State{
		Volumes:    map[string]*Volume{},
		Snapshots:  map[string]*Snapshot{},
		Exports:    map[string]*Export{},
		Operations: map[string]*Operation{},
		Nodes:      map[string]*Node{},
		RequestIDs: map[string]string{},
		Limits:     l,
	}
}

func snapKey(volume, name string) string        { return volume + "@" + name }
func exportKey(volume, initiator string) string { return volume + "/" + initiator }

// Clone returns a deep copy, for readers that must not see later changes.
func (s *State) Clone() *State {
	c := NewState(s.Limits)
	for k, v := range s.Volumes {
		vv := *v
		if v.Labels != nil {
			vv.Labels = make(map[string]string, len(v.Labels))
			for lk, lv := range v.Labels {
				vv.Labels[lk] = lv
			}
		}
		if v.Source != nil {
			src := *v.Source
			vv.Source = &src
		}
		c.Volumes[k] = &vv
	}
	for k, v := range s.Snapshots {
		vv := *v
		c.Snapshots[k] = &vv
	}
	for k, v := range s.Exports {
		vv := *v
		if v.CHAP != nil {
			ch := *v.CHAP
			vv.CHAP = &ch
		}
		c.Exports[k] = &vv
	}
	for k, v := range s.Operations {
		vv := *v
		c.Operations[k] = &vv
	}
	for k, v := range s.Nodes {
		vv := *v
		c.Nodes[k] = &vv
	}
	for k, v := range s.RequestIDs {
		c.RequestIDs[k] = v
	}
	return c
}

// Volume returns a copy of the named volume.
func (s *State) Volume(name string) (Volume, bool) {
	v, ok := s.Volumes[name]
	if !ok {
		return Volume{}, false
	}
	return *v, true
}

// SortedVolumes returns the volumes in name order.
func (s *State) SortedVolumes() []*Volume {
	out := make([]*Volume, 0, len(s.Volumes))
	for _, v := range s.Volumes {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// VolumeSnapshots returns a volume's snapshots in name order.
func (s *State) VolumeSnapshots(volume string) []*Snapshot {
	var out []*Snapshot
	for _, sn := range s.Snapshots {
		if sn.Volume == volume {
			out = append(out, sn)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// SortedSnapshots returns every snapshot ordered by volume, then name.
func (s *State) SortedSnapshots() []*Snapshot {
	out := make([]*Snapshot, 0, len(s.Snapshots))
	for _, sn := range s.Snapshots {
		out = append(out, sn)
	}
	sort.Slice(out, func(i, j int) bool {
		return snapKey(out[i].Volume, out[i].Name) < snapKey(out[j].Volume, out[j].Name)
	})
	return out
}

// VolumeExports returns a volume's exports (all exports when volume is
// empty), ordered by volume then initiator.
func (s *State) VolumeExports(volume string) []*Export {
	var out []*Export
	for _, e := range s.Exports {
		if volume == "" || e.Volume == volume {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return exportKey(out[i].Volume, out[i].InitiatorIQN) < exportKey(out[j].Volume, out[j].InitiatorIQN)
	})
	return out
}

// Clones returns the volumes cloned from the given snapshot (any snapshot
// of the volume when snapshot is empty).
func (s *State) Clones(volume, snapshot string) []*Volume {
	var out []*Volume
	for _, v := range s.SortedVolumes() {
		if v.Source != nil && v.Source.Volume == volume && (snapshot == "" || v.Source.Snapshot == snapshot) {
			out = append(out, v)
		}
	}
	return out
}

// SortedOperations returns operations newest first (ties by id).
func (s *State) SortedOperations() []*Operation {
	out := make([]*Operation, 0, len(s.Operations))
	for _, o := range s.Operations {
		out = append(out, o)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreateTime.Equal(out[j].CreateTime) {
			return out[i].CreateTime.After(out[j].CreateTime)
		}
		return strings.Compare(out[i].ID, out[j].ID) < 0
	})
	return out
}

// SortedNodes returns nodes in name order.
func (s *State) SortedNodes() []*Node {
	out := make([]*Node, 0, len(s.Nodes))
	for _, n := range s.Nodes {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
