// Package node defines the internal node API: the few operations the
// control plane needs from one storage node's blockstore and iSCSI target.
//
// The leader's reconcile loop drives every node through a Driver. The
// package owns the contract only; it must never import the blockstore, the
// target or the catalog, so that the control plane and the data path can
// evolve (and be tested) separately. The one real implementation wires a
// *blockstore.Store and a target.Server together in cmd/vbs.
package node

import (
	"context"
	"errors"
)

// Errors a Driver returns for cases its caller must tell apart. Other
// errors are treated as transient and retried by the next reconcile pass.
var (
	// ErrNotFound: the volume or snapshot does not exist on this node.
	ErrNotFound = errors.New("node: not found")
	// ErrNoSpace: the node's pool cannot hold the request.
	ErrNoSpace = errors.New("node: no space left in pool")
	// ErrBusy: the volume has sessions and the operation needs it idle.
	ErrBusy = errors.New("node: volume busy")
	// ErrUnsupported: this node's storage cannot do that (yet).
	ErrUnsupported = errors.New("node: not supported by this node's storage")
)

// SnapshotRef names a snapshot of a volume.
type SnapshotRef struct {
	Volume   string
	Snapshot string
}

// VolumeSpec is the desired shape of a volume.
type VolumeSpec struct {
	Name      string
	SizeBytes uint64
	BlockSize uint32
	// Source, when set, makes the volume a linked clone of that snapshot.
	Source *SnapshotRef
}

// CHAP holds the credentials an initiator must present.
type CHAP struct {
	User   string
	Secret string
}

// ExportSpec is one initiator's access to one volume.
type ExportSpec struct {
	Volume       string
	TargetIQN    string
	InitiatorIQN string
	// CHAP is nil when the initiator logs in without authentication.
	CHAP *CHAP
}

// LatencyBuckets is the number of finite latency buckets; see
// LatencyBounds.
const LatencyBuckets = 12

// LatencyBounds returns the upper bounds, in seconds, of the latency
// buckets of VolumeStats: 50 µs doubling up to about 100 ms.
func LatencyBounds() [LatencyBuckets]float64 {
	var b [LatencyBuckets]float64
	v := 50e-6
	for i := range b {
		b[i] = v
		v *= 2
	}
	return b
}

// VolumeStats are a volume's data-path counters since the node started.
type VolumeStats struct {
	Name                    string
	SizeBytes               uint64
	ReadOps, WriteOps       uint64
	ReadBytes, WrittenBytes uint64
	// QueueDepth is the number of commands in flight now.
	QueueDepth uint32
	// Latency counts commands by latency: Latency[i] counts those at or
	// under LatencyBounds()[i] and above the bound before it; the last
	// entry counts the slower ones. LatencySum is their total, in seconds.
	Latency    [LatencyBuckets + 1]uint64
	LatencySum float64
}

// Stats describes the node's pool and volumes.
type Stats struct {
	CapacityBytes uint64
	UsedBytes     uint64
	// WrittenBytes is what volumes wrote into the pool and RelocatedBytes
	// what segment cleaning rewrote on top of that (write amplification is
	// (WrittenBytes+RelocatedBytes)/WrittenBytes); SegmentsCleaned counts
	// the segments cleaning gave back, and Corruptions the checksum
	// mismatches reads and scrubs found. All count since the node started.
	WrittenBytes    uint64
	RelocatedBytes  uint64
	SegmentsCleaned uint64
	Corruptions     uint64
	Volumes         []VolumeStats
}

// Driver carries out the control plane's decisions on one node. Every
// method is idempotent: the reconcile loop calls it again after any error
// and on every periodic pass, so "already done" must be success.
type Driver interface {
	// EnsureVolume creates the volume if it does not exist, and grows it
	// if it is smaller than spec.SizeBytes. It never shrinks a volume.
	EnsureVolume(ctx context.Context, spec VolumeSpec) error
	// DeleteVolume removes a volume and its snapshots. A missing volume
	// is success.
	DeleteVolume(ctx context.Context, name string) error
	// ResizeVolume grows a volume online; the target raises CAPACITY DATA
	// HAS CHANGED to initiators. Growing to the current size is success.
	ResizeVolume(ctx context.Context, name string, sizeBytes uint64) error
	// CreateSnapshot takes a snapshot; an existing one is success.
	CreateSnapshot(ctx context.Context, ref SnapshotRef) error
	// DeleteSnapshot removes a snapshot; a missing one is success.
	DeleteSnapshot(ctx context.Context, ref SnapshotRef) error
	// RevertVolume rolls a volume back to a snapshot. It returns ErrBusy
	// while the volume is exported.
	RevertVolume(ctx context.Context, ref SnapshotRef) error
	// FlattenVolume copies into a linked clone every block it still reads
	// from its source snapshot, then detaches it. progress, when not nil,
	// is called with blocks done and total as it goes. A volume that is
	// not a clone is success.
	FlattenVolume(ctx context.Context, name string, progress func(done, total uint64)) error
	// Export lets spec.InitiatorIQN log in to spec.TargetIQN (LUN 0 is the
	// volume). Re-exporting with other CHAP credentials replaces them.
	Export(ctx context.Context, spec ExportSpec) error
	// Unexport withdraws access and drops the initiator's sessions on
	// that volume. A missing export is success.
	Unexport(ctx context.Context, volume, initiatorIQN string) error
	// Exports lists the exports in force on the node, so the reconcile
	// loop can withdraw any the catalog no longer holds.
	Exports(ctx context.Context) ([]ExportSpec, error)
	// Stats reports pool capacity and per-volume counters.
	Stats(ctx context.Context) (Stats, error)
}
