package api

import (
	"context"
	"fmt"
	"strings"

	"connectrpc.com/connect"

	"github.com/vbs-storage/vbs/control/catalog"
	"github.com/vbs-storage/vbs/control/domain"
	vbsv1 "github.com/vbs-storage/vbs/proto/gen/vbs/v1"
)

type volumeService struct{ a *API }

func (s volumeService) CreateVolume(ctx context.Context, req *connect.Request[vbsv1.CreateVolumeRequest]) (*connect.Response[vbsv1.CreateVolumeResponse], error) {
	m := req.Msg
	if err := domain.ValidateName("name", m.Name); err != nil {
		return nil, invalid(err)
	}
	if err := domain.ValidateLabels("labels", m.Labels); err != nil {
		return nil, invalid(err)
	}
	if err := domain.ValidateRequestID("request_id", m.RequestId); err != nil {
		return nil, invalid(err)
	}
	bs, err := domain.ValidateBlockSize("block_size", m.BlockSize)
	if err != nil {
		return nil, invalid(err)
	}
	cmd := catalog.CreateVolume{
		Name: m.Name, SizeBytes: m.SizeBytes, BlockSize: bs, Labels: m.Labels,
		RequestID: m.RequestId, Node: s.a.cfg.NodeName, Time: s.a.cfg.Now(),
	}
	if m.SourceSnapshot != "" {
		vol, snap, err := domain.ParseSnapshotRef("source_snapshot", m.SourceSnapshot)
		if err != nil {
			return nil, invalid(err)
		}
		cmd.Source = &catalog.SnapshotRef{Volume: vol, Snapshot: snap}
		var (
			srcSize  uint64
			srcBlock uint32
			found    bool
		)
		s.a.view(func(st *catalog.State) {
			sn, ok := st.Snapshots[vol+"@"+snap]
			src, vok := st.Volumes[vol]
			if ok && vok {
				srcSize, srcBlock, found = sn.SizeBytes, src.BlockSize, true
			}
		})
		if !found {
			return nil, notFound("source snapshot %s@%s not found", vol, snap)
		}
		if m.BlockSize != 0 && m.BlockSize != srcBlock {
			return nil, invalid(&domain.FieldError{Field: "block_size", Reason: "must match the source volume's block size"})
		}
		cmd.BlockSize = srcBlock
		if cmd.SizeBytes == 0 {
			cmd.SizeBytes = srcSize
		}
	}
	if err := domain.ValidateSize("size_bytes", cmd.SizeBytes); err != nil {
		return nil, invalid(err)
	}
	if err := s.place(&cmd, m.Node); err != nil {
		return nil, err
	}
	v, err := s.a.apply(ctx, cmd)
	if err != nil {
		return nil, err
	}
	s.a.cfg.Syncer.Kick()
	return connect.NewResponse(&vbsv1.CreateVolumeResponse{Volume: toVolume(v.(catalog.Volume))}), nil
}

func (s volumeService) getVolume(name string) (*vbsv1.Volume, error) {
	if err := domain.ValidateName("name", name); err != nil {
		return nil, invalid(err)
	}
	var (
		v  catalog.Volume
		ok bool
	)
	s.a.view(func(st *catalog.State) { v, ok = st.Volume(name) })
	if !ok {
		return nil, notFound("volume %q not found", name)
	}
	return toVolume(v), nil
}

func (s volumeService) GetVolume(_ context.Context, req *connect.Request[vbsv1.GetVolumeRequest]) (*connect.Response[vbsv1.GetVolumeResponse], error) {
	v, err := s.getVolume(req.Msg.Name)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&vbsv1.GetVolumeResponse{Volume: v}), nil
}

func (s volumeService) ListVolumes(_ context.Context, req *connect.Request[vbsv1.ListVolumesRequest]) (*connect.Response[vbsv1.ListVolumesResponse], error) {
	m := req.Msg
	size, err := domain.ValidatePageSize("page_size", m.PageSize)
	if err != nil {
		return nil, invalid(err)
	}
	after, err := domain.DecodePageToken("page_token", m.PageToken)
	if err != nil {
		return nil, invalid(err)
	}
	if err := domain.ValidateLabels("label_selector", m.LabelSelector); err != nil {
		return nil, invalid(err)
	}
	var state catalog.VolumeState
	if m.State != vbsv1.VolumeState_VOLUME_STATE_UNSPECIFIED {
		var ok bool
		if state, ok = volumeStateFromProto(m.State); !ok {
			return nil, invalid(&domain.FieldError{Field: "state", Reason: "is not a volume state"})
		}
	}
	out := &vbsv1.ListVolumesResponse{}
	s.a.view(func(st *catalog.State) {
		for _, v := range st.SortedVolumes() {
			if v.Name <= after || !strings.HasPrefix(v.Name, m.NamePrefix) ||
				(state != "" && v.State != state) || !hasLabels(v.Labels, m.LabelSelector) {
				continue
			}
			if len(out.Volumes) == size {
				out.NextPageToken = domain.EncodePageToken(out.Volumes[size-1].Name)
				return
			}
			out.Volumes = append(out.Volumes, toVolume(*v))
		}
	})
	return connect.NewResponse(out), nil
}

func hasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if hv, ok := have[k]; !ok || hv != v {
			return false
		}
	}
	return true
}

func (s volumeService) DeleteVolume(ctx context.Context, req *connect.Request[vbsv1.DeleteVolumeRequest]) (*connect.Response[vbsv1.DeleteVolumeResponse], error) {
	if err := domain.ValidateName("name", req.Msg.Name); err != nil {
		return nil, invalid(err)
	}
	v, err := s.a.apply(ctx, catalog.DeleteVolume{Name: req.Msg.Name, Cascade: req.Msg.Cascade, Time: s.a.cfg.Now()})
	if err != nil {
		return nil, err
	}
	s.a.cfg.Syncer.Kick()
	return connect.NewResponse(&vbsv1.DeleteVolumeResponse{Volume: toVolume(v.(catalog.Volume))}), nil
}

func (s volumeService) ResizeVolume(ctx context.Context, req *connect.Request[vbsv1.ResizeVolumeRequest]) (*connect.Response[vbsv1.ResizeVolumeResponse], error) {
	m := req.Msg
	if err := domain.ValidateName("name", m.Name); err != nil {
		return nil, invalid(err)
	}
	if err := domain.ValidateSize("size_bytes", m.SizeBytes); err != nil {
		return nil, invalid(err)
	}
	o, err := s.a.apply(ctx, catalog.CreateOperation{
		ID: s.a.cfg.NewID(), Kind: catalog.OpResize, Volume: m.Name, SizeBytes: m.SizeBytes, Time: s.a.cfg.Now(),
	})
	if err != nil {
		return nil, err
	}
	s.a.cfg.Syncer.Kick()
	v, err := s.getVolume(m.Name)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&vbsv1.ResizeVolumeResponse{Volume: v, Operation: toOperation(o.(catalog.Operation))}), nil
}

func (s volumeService) FlattenVolume(ctx context.Context, req *connect.Request[vbsv1.FlattenVolumeRequest]) (*connect.Response[vbsv1.FlattenVolumeResponse], error) {
	name := req.Msg.Name
	if err := domain.ValidateName("name", name); err != nil {
		return nil, invalid(err)
	}
	o, err := s.a.apply(ctx, catalog.CreateOperation{ID: s.a.cfg.NewID(), Kind: catalog.OpFlatten, Volume: name, Time: s.a.cfg.Now()})
	if err != nil {
		return nil, err
	}
	s.a.cfg.Syncer.Kick()
	v, err := s.getVolume(name)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&vbsv1.FlattenVolumeResponse{Volume: v, Operation: toOperation(o.(catalog.Operation))}), nil
}

// place picks the node for a new volume: a clone's source node, else the
// requested node (which must be known and alive), else this node.
func (s volumeService) place(cmd *catalog.CreateVolume, want string) error {
	var err error
	s.a.view(func(st *catalog.State) {
		if cmd.Source != nil {
			if src, ok := st.Volumes[cmd.Source.Volume]; ok {
				if want != "" && want != src.Node {
					err = invalid(&domain.FieldError{Field: "node", Reason: "a clone lives on its source's node " + src.Node})
				}
				cmd.Node = src.Node
			}
			return
		}
		if want == "" || want == s.a.cfg.NodeName {
			return
		}
		n, ok := st.Nodes[want]
		switch {
		case !ok:
			err = notFound("node %q not found", want)
		case n.State != catalog.NodeAlive:
			err = connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("node %q is %s", want, n.State))
		default:
			cmd.Node = want
		}
	})
	return err
}
