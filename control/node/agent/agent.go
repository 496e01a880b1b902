// Package agent carries the internal node API over Connect: Handler serves
// a node.Driver (the node's own block store and target) to the Raft
// leader, and Client is the node.Driver the leader uses for a remote node.
// Errors keep their node sentinel across the wire (NotFound, NoSpace,
// Busy, Unsupported), so the reconcile loop treats a remote node exactly
// like the local one. It owns no state.
package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"connectrpc.com/connect"

	"github.com/vbs-storage/vbs/control/node"
	nodev1 "github.com/vbs-storage/vbs/proto/gen/vbs/node/v1"
	"github.com/vbs-storage/vbs/proto/gen/vbs/node/v1/nodev1connect"
)

// toConnect keeps a driver error's class on the wire.
func toConnect(err error) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, node.ErrNotFound):
		return connect.NewError(connect.CodeNotFound, err)
	case errors.Is(err, node.ErrNoSpace):
		return connect.NewError(connect.CodeResourceExhausted, err)
	case errors.Is(err, node.ErrBusy):
		return connect.NewError(connect.CodeFailedPrecondition, err)
	case errors.Is(err, node.ErrUnsupported):
		return connect.NewError(connect.CodeUnimplemented, err)
	case errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeCanceled, err)
	}
	return connect.NewError(connect.CodeInternal, err)
}

// fromConnect turns a wire error back into a driver error.
func fromConnect(op string, err error) error {
	if err == nil {
		return nil
	}
	var sentinel error
	switch connect.CodeOf(err) {
	case connect.CodeNotFound:
		sentinel = node.ErrNotFound
	case connect.CodeResourceExhausted:
		sentinel = node.ErrNoSpace
	case connect.CodeFailedPrecondition:
		sentinel = node.ErrBusy
	case connect.CodeUnimplemented:
		sentinel = node.ErrUnsupported
	default:
		return fmt.Errorf("node agent %s: %w", op, err)
	}
	return fmt.Errorf("node agent %s: %w: %w", op, sentinel, err)
}

// Handler returns the route and handler serving d as the node agent.
func Handler(d node.Driver, opts ...connect.HandlerOption) (string, http.Handler) {
	return nodev1connect.NewNodeAgentServiceHandler(server{d}, opts...)
}

type server struct{ d node.Driver }

func empty[T any](err error) (*connect.Response[T], error) {
	if err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(new(T)), nil
}

func (s server) EnsureVolume(ctx context.Context, r *connect.Request[nodev1.EnsureVolumeRequest]) (*connect.Response[nodev1.EnsureVolumeResponse], error) {
	m := r.Msg
	spec := node.VolumeSpec{Name: m.Name, SizeBytes: m.SizeBytes, BlockSize: m.BlockSize}
	if m.SourceVolume != "" {
		spec.Source = &node.SnapshotRef{Volume: m.SourceVolume, Snapshot: m.SourceSnapshot}
	}
	return empty[nodev1.EnsureVolumeResponse](s.d.EnsureVolume(ctx, spec))
}

func (s server) DeleteVolume(ctx context.Context, r *connect.Request[nodev1.DeleteVolumeRequest]) (*connect.Response[nodev1.DeleteVolumeResponse], error) {
	return empty[nodev1.DeleteVolumeResponse](s.d.DeleteVolume(ctx, r.Msg.Name))
}

func (s server) ResizeVolume(ctx context.Context, r *connect.Request[nodev1.ResizeVolumeRequest]) (*connect.Response[nodev1.ResizeVolumeResponse], error) {
	return empty[nodev1.ResizeVolumeResponse](s.d.ResizeVolume(ctx, r.Msg.Name, r.Msg.SizeBytes))
}

func (s server) CreateSnapshot(ctx context.Context, r *connect.Request[nodev1.CreateSnapshotRequest]) (*connect.Response[nodev1.CreateSnapshotResponse], error) {
	return empty[nodev1.CreateSnapshotResponse](s.d.CreateSnapshot(ctx, node.SnapshotRef{Volume: r.Msg.Volume, Snapshot: r.Msg.Snapshot}))
}

func (s server) DeleteSnapshot(ctx context.Context, r *connect.Request[nodev1.DeleteSnapshotRequest]) (*connect.Response[nodev1.DeleteSnapshotResponse], error) {
	return empty[nodev1.DeleteSnapshotResponse](s.d.DeleteSnapshot(ctx, node.SnapshotRef{Volume: r.Msg.Volume, Snapshot: r.Msg.Snapshot}))
}

func (s server) RevertVolume(ctx context.Context, r *connect.Request[nodev1.RevertVolumeRequest]) (*connect.Response[nodev1.RevertVolumeResponse], error) {
	return empty[nodev1.RevertVolumeResponse](s.d.RevertVolume(ctx, node.SnapshotRef{Volume: r.Msg.Volume, Snapshot: r.Msg.Snapshot}))
}

func (s server) FlattenVolume(ctx context.Context, r *connect.Request[nodev1.FlattenVolumeRequest], st *connect.ServerStream[nodev1.FlattenVolumeResponse]) error {
	var sendErr error
	err := s.d.FlattenVolume(ctx, r.Msg.Name, func(done, total uint64) {
		if sendErr == nil {
			sendErr = st.Send(&nodev1.FlattenVolumeResponse{DoneBlocks: done, TotalBlocks: total})
		}
	})
	if err != nil {
		return toConnect(err)
	}
	return sendErr
}

func toGrant(e node.ExportSpec) *nodev1.Grant {
	g := &nodev1.Grant{Volume: e.Volume, TargetIqn: e.TargetIQN, InitiatorIqn: e.InitiatorIQN}
	if e.CHAP != nil {
		g.ChapUser, g.ChapSecret = e.CHAP.User, e.CHAP.Secret
	}
	return g
}

func fromGrant(g *nodev1.Grant) node.ExportSpec {
	e := node.ExportSpec{Volume: g.GetVolume(), TargetIQN: g.GetTargetIqn(), InitiatorIQN: g.GetInitiatorIqn()}
	if g.GetChapUser() != "" {
		e.CHAP = &node.CHAP{User: g.ChapUser, Secret: g.ChapSecret}
	}
	return e
}

func (s server) Export(ctx context.Context, r *connect.Request[nodev1.ExportRequest]) (*connect.Response[nodev1.ExportResponse], error) {
	if r.Msg.Grant == nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("grant is required"))
	}
	return empty[nodev1.ExportResponse](s.d.Export(ctx, fromGrant(r.Msg.Grant)))
}

func (s server) Unexport(ctx context.Context, r *connect.Request[nodev1.UnexportRequest]) (*connect.Response[nodev1.UnexportResponse], error) {
	return empty[nodev1.UnexportResponse](s.d.Unexport(ctx, r.Msg.Volume, r.Msg.InitiatorIqn))
}

func (s server) ListExports(ctx context.Context, _ *connect.Request[nodev1.ListExportsRequest]) (*connect.Response[nodev1.ListExportsResponse], error) {
	es, err := s.d.Exports(ctx)
	if err != nil {
		return nil, toConnect(err)
	}
	out := &nodev1.ListExportsResponse{}
	for _, e := range es {
		out.Grants = append(out.Grants, toGrant(e))
	}
	return connect.NewResponse(out), nil
}

func (s server) GetStats(ctx context.Context, _ *connect.Request[nodev1.GetStatsRequest]) (*connect.Response[nodev1.GetStatsResponse], error) {
	st, err := s.d.Stats(ctx)
	if err != nil {
		return nil, toConnect(err)
	}
	out := &nodev1.GetStatsResponse{CapacityBytes: st.CapacityBytes, UsedBytes: st.UsedBytes}
	for _, v := range st.Volumes {
		out.Volumes = append(out.Volumes, &nodev1.VolumeStats{
			Name: v.Name, SizeBytes: v.SizeBytes, ReadOps: v.ReadOps, WriteOps: v.WriteOps,
			ReadBytes: v.ReadBytes, WrittenBytes: v.WrittenBytes, QueueDepth: v.QueueDepth,
			Latency: v.Latency[:], LatencySumSeconds: v.LatencySum,
		})
	}
	return connect.NewResponse(out), nil
}
