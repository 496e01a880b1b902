package api

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vbs-storage/vbs/control/catalog"
	"github.com/vbs-storage/vbs/control/domain"
	vbsv1 "github.com/vbs-storage/vbs/proto/gen/vbs/v1"
)

// exportLUN is the LUN a volume has inside its own target.
const exportLUN = 0

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func volumeState(s catalog.VolumeState) vbsv1.VolumeState {
	switch s {
	case catalog.VolumeCreating:
		return vbsv1.VolumeState_VOLUME_STATE_CREATING
	case catalog.VolumeAvailable:
		return vbsv1.VolumeState_VOLUME_STATE_AVAILABLE
	case catalog.VolumeInUse:
		return vbsv1.VolumeState_VOLUME_STATE_IN_USE
	case catalog.VolumeDeleting:
		return vbsv1.VolumeState_VOLUME_STATE_DELETING
	case catalog.VolumeError:
		return vbsv1.VolumeState_VOLUME_STATE_ERROR
	}
	return vbsv1.VolumeState_VOLUME_STATE_UNSPECIFIED
}

func volumeStateFromProto(s vbsv1.VolumeState) (catalog.VolumeState, bool) {
	for _, c := range []catalog.VolumeState{catalog.VolumeCreating, catalog.VolumeAvailable,
		catalog.VolumeInUse, catalog.VolumeDeleting, catalog.VolumeError} {
		if volumeState(c) == s {
			return c, true
		}
	}
	return "", false
}

func toVolume(v catalog.Volume) *vbsv1.Volume {
	out := &vbsv1.Volume{
		Name: v.Name, SizeBytes: v.SizeBytes, BlockSize: v.BlockSize, Labels: v.Labels,
		State: volumeState(v.State), StateReason: v.Reason, Node: v.Node,
		CreateTime: ts(v.CreateTime), UpdateTime: ts(v.UpdateTime),
	}
	if v.Source != nil {
		out.SourceSnapshot = v.Source.String()
	}
	return out
}

func toSnapshot(s catalog.Snapshot) *vbsv1.Snapshot {
	st := map[catalog.SnapshotState]vbsv1.SnapshotState{
		catalog.SnapshotCreating: vbsv1.SnapshotState_SNAPSHOT_STATE_CREATING,
		catalog.SnapshotReady:    vbsv1.SnapshotState_SNAPSHOT_STATE_READY,
		catalog.SnapshotDeleting: vbsv1.SnapshotState_SNAPSHOT_STATE_DELETING,
		catalog.SnapshotError:    vbsv1.SnapshotState_SNAPSHOT_STATE_ERROR,
	}[s.State]
	return &vbsv1.Snapshot{Volume: s.Volume, Name: s.Name, SizeBytes: s.SizeBytes, State: st,
		StateReason: s.Reason, CreateTime: ts(s.CreateTime)}
}

func toExport(e catalog.Export) *vbsv1.Export {
	out := &vbsv1.Export{
		Volume: e.Volume, InitiatorIqn: e.InitiatorIQN, Portal: e.Portal, TargetIqn: e.TargetIQN,
		Lun: exportLUN, Url: domain.ISCSIURL(e.Portal, e.TargetIQN, exportLUN), CreateTime: ts(e.CreateTime),
	}
	if e.CHAP != nil {
		out.Chap, out.ChapUser = true, e.CHAP.User
	}
	return out
}

func toOperation(o catalog.Operation) *vbsv1.Operation {
	kind := map[catalog.OpKind]vbsv1.OperationKind{
		catalog.OpResize:  vbsv1.OperationKind_OPERATION_KIND_RESIZE,
		catalog.OpRevert:  vbsv1.OperationKind_OPERATION_KIND_REVERT,
		catalog.OpFlatten: vbsv1.OperationKind_OPERATION_KIND_FLATTEN,
	}[o.Kind]
	st := map[catalog.OpState]vbsv1.OperationState{
		catalog.OpPending:   vbsv1.OperationState_OPERATION_STATE_PENDING,
		catalog.OpRunning:   vbsv1.OperationState_OPERATION_STATE_RUNNING,
		catalog.OpSucceeded: vbsv1.OperationState_OPERATION_STATE_SUCCEEDED,
		catalog.OpFailed:    vbsv1.OperationState_OPERATION_STATE_FAILED,
		catalog.OpCancelled: vbsv1.OperationState_OPERATION_STATE_CANCELLED,
	}[o.State]
	return &vbsv1.Operation{Id: o.ID, Kind: kind, Volume: o.Volume, State: st, ProgressPercent: o.Progress,
		Message: o.Message, CancelRequested: o.CancelRequested, CreateTime: ts(o.CreateTime), UpdateTime: ts(o.UpdateTime)}
}

func toNode(n catalog.Node, leaderID string, volumes int) *vbsv1.Node {
	st := map[catalog.NodeState]vbsv1.NodeState{
		catalog.NodeAlive:   vbsv1.NodeState_NODE_STATE_ALIVE,
		catalog.NodeSuspect: vbsv1.NodeState_NODE_STATE_SUSPECT,
		catalog.NodeFailed:  vbsv1.NodeState_NODE_STATE_FAILED,
		catalog.NodeLeft:    vbsv1.NodeState_NODE_STATE_LEFT,
	}[n.State]
	return &vbsv1.Node{Name: n.Name, State: st, ApiAddress: n.APIAddress, IscsiAddress: n.ISCSIAddress,
		RaftAddress: n.RaftAddress, Leader: n.Name == leaderID, CapacityBytes: n.CapacityBytes,
		UsedBytes: n.UsedBytes, Volumes: uint32(volumes), UpdateTime: ts(n.UpdateTime)}
}
