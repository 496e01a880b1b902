package api

import (
	"context"

	"connectrpc.com/connect"

	"github.com/vbs-storage/vbs/control/catalog"
	"github.com/vbs-storage/vbs/control/domain"
	vbsv1 "github.com/vbs-storage/vbs/proto/gen/vbs/v1"
)

type snapshotService struct{ a *API }

func validateSnapshotID(volume, name string) error {
	if err := domain.ValidateName("volume", volume); err != nil {
		return invalid(err)
	}
	if err := domain.ValidateName("name", name); err != nil {
		return invalid(err)
	}
	return nil
}

func (s snapshotService) CreateSnapshot(ctx context.Context, req *connect.Request[vbsv1.CreateSnapshotRequest]) (*connect.Response[vbsv1.CreateSnapshotResponse], error) {
	m := req.Msg
	if err := validateSnapshotID(m.Volume, m.Name); err != nil {
		return nil, err
	}
	sn, err := s.a.apply(ctx, catalog.CreateSnapshot{Volume: m.Volume, Name: m.Name, Time: s.a.cfg.Now()})
	if err != nil {
		return nil, err
	}
	s.a.cfg.Syncer.Kick()
	return connect.NewResponse(&vbsv1.CreateSnapshotResponse{Snapshot: toSnapshot(sn.(catalog.Snapshot))}), nil
}

func (s snapshotService) GetSnapshot(_ context.Context, req *connect.Request[vbsv1.GetSnapshotRequest]) (*connect.Response[vbsv1.GetSnapshotResponse], error) {
	m := req.Msg
	if err := validateSnapshotID(m.Volume, m.Name); err != nil {
		return nil, err
	}
	var out *vbsv1.Snapshot
	s.a.view(func(st *catalog.State) {
		if sn, ok := st.Snapshots[m.Volume+"@"+m.Name]; ok {
			out = toSnapshot(*sn)
		}
	})
	if out == nil {
		return nil, notFound("snapshot %s@%s not found", m.Volume, m.Name)
	}
	return connect.NewResponse(&vbsv1.GetSnapshotResponse{Snapshot: out}), nil
}

func (s snapshotService) ListSnapshots(_ context.Context, req *connect.Request[vbsv1.ListSnapshotsRequest]) (*connect.Response[vbsv1.ListSnapshotsResponse], error) {
	m := req.Msg
	if err := domain.ValidateName("volume", m.Volume); err != nil {
		return nil, invalid(err)
	}
	size, err := domain.ValidatePageSize("page_size", m.PageSize)
	if err != nil {
		return nil, invalid(err)
	}
	after, err := domain.DecodePageToken("page_token", m.PageToken)
	if err != nil {
		return nil, invalid(err)
	}
	out := &vbsv1.ListSnapshotsResponse{}
	found := false
	s.a.view(func(st *catalog.State) {
		_, found = st.Volumes[m.Volume]
		for _, sn := range st.VolumeSnapshots(m.Volume) {
			if sn.Name <= after {
				continue
			}
			if len(out.Snapshots) == size {
				out.NextPageToken = domain.EncodePageToken(out.Snapshots[size-1].Name)
				return
			}
			out.Snapshots = append(out.Snapshots, toSnapshot(*sn))
		}
	})
	if !found {
		return nil, notFound("volume %q not found", m.Volume)
	}
	return connect.NewResponse(out), nil
}

func (s snapshotService) DeleteSnapshot(ctx context.Context, req *connect.Request[vbsv1.DeleteSnapshotRequest]) (*connect.Response[vbsv1.DeleteSnapshotResponse], error) {
	m := req.Msg
	if err := validateSnapshotID(m.Volume, m.Name); err != nil {
		return nil, err
	}
	sn, err := s.a.apply(ctx, catalog.DeleteSnapshot{Volume: m.Volume, Name: m.Name})
	if err != nil {
		return nil, err
	}
	s.a.cfg.Syncer.Kick()
	return connect.NewResponse(&vbsv1.DeleteSnapshotResponse{Snapshot: toSnapshot(sn.(catalog.Snapshot))}), nil
}

func (s snapshotService) RevertVolume(ctx context.Context, req *connect.Request[vbsv1.RevertVolumeRequest]) (*connect.Response[vbsv1.RevertVolumeResponse], error) {
	m := req.Msg
	if err := domain.ValidateName("volume", m.Volume); err != nil {
		return nil, invalid(err)
	}
	if err := domain.ValidateName("snapshot", m.Snapshot); err != nil {
		return nil, invalid(err)
	}
	o, err := s.a.apply(ctx, catalog.CreateOperation{
		ID: s.a.cfg.NewID(), Kind: catalog.OpRevert, Volume: m.Volume, Snapshot: m.Snapshot, Time: s.a.cfg.Now(),
	})
	if err != nil {
		return nil, err
	}
	s.a.cfg.Syncer.Kick()
	return connect.NewResponse(&vbsv1.RevertVolumeResponse{Operation: toOperation(o.(catalog.Operation))}), nil
}
