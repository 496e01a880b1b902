package api

import (
	"context"

	"connectrpc.com/connect"

	"github.com/vbs-storage/vbs/control/catalog"
	"github.com/vbs-storage/vbs/control/domain"
	"github.com/vbs-storage/vbs/control/reconcile"
	vbsv1 "github.com/vbs-storage/vbs/proto/gen/vbs/v1"
)

type exportService struct{ a *API }

func (s exportService) GrantAccess(ctx context.Context, req *connect.Request[vbsv1.GrantAccessRequest]) (*connect.Response[vbsv1.GrantAccessResponse], error) {
	m := req.Msg
	if err := domain.ValidateName("volume", m.Volume); err != nil {
		return nil, invalid(err)
	}
	if err := domain.ValidateIQN("initiator_iqn", m.InitiatorIqn); err != nil {
		return nil, invalid(err)
	}
	// The portal is that of the node holding the volume.
	portal := s.a.cfg.Portal
	s.a.view(func(st *catalog.State) {
		if v, ok := st.Volumes[m.Volume]; ok {
			if n, ok := st.Nodes[v.Node]; ok && v.Node != s.a.cfg.NodeName && n.ISCSIAddress != "" {
				portal = n.ISCSIAddress
			}
		}
	})
	cmd := catalog.GrantAccess{
		Volume: m.Volume, InitiatorIQN: m.InitiatorIqn, Portal: portal,
		TargetIQN: domain.TargetIQN(s.a.cfg.BaseIQN, m.Volume), Time: s.a.cfg.Now(),
	}
	if m.Chap != nil {
		if err := domain.ValidateCHAP("chap", m.Chap.User, m.Chap.Secret); err != nil {
			return nil, invalid(err)
		}
		cmd.CHAP = &catalog.CHAP{User: m.Chap.User, Secret: m.Chap.Secret}
	}
	e, err := s.a.apply(ctx, cmd)
	if err != nil {
		return nil, err
	}
	if err := s.a.sync(ctx, reconcile.ExportKey(m.Volume, m.InitiatorIqn)); err != nil {
		return nil, err
	}
	return connect.NewResponse(&vbsv1.GrantAccessResponse{Export: toExport(e.(catalog.Export))}), nil
}

func (s exportService) RevokeAccess(ctx context.Context, req *connect.Request[vbsv1.RevokeAccessRequest]) (*connect.Response[vbsv1.RevokeAccessResponse], error) {
	m := req.Msg
	if err := domain.ValidateName("volume", m.Volume); err != nil {
		return nil, invalid(err)
	}
	if err := domain.ValidateIQN("initiator_iqn", m.InitiatorIqn); err != nil {
		return nil, invalid(err)
	}
	if _, err := s.a.apply(ctx, catalog.RevokeAccess{Volume: m.Volume, InitiatorIQN: m.InitiatorIqn, Time: s.a.cfg.Now()}); err != nil {
		return nil, err
	}
	if err := s.a.sync(ctx, reconcile.ExportKey(m.Volume, m.InitiatorIqn)); err != nil {
		return nil, err
	}
	return connect.NewResponse(&vbsv1.RevokeAccessResponse{}), nil
}

func (s exportService) ListExports(_ context.Context, req *connect.Request[vbsv1.ListExportsRequest]) (*connect.Response[vbsv1.ListExportsResponse], error) {
	m := req.Msg
	if m.Volume != "" {
		if err := domain.ValidateName("volume", m.Volume); err != nil {
			return nil, invalid(err)
		}
	}
	out := &vbsv1.ListExportsResponse{}
	found := m.Volume == ""
	s.a.view(func(st *catalog.State) {
		if !found {
			_, found = st.Volumes[m.Volume]
		}
		for _, e := range st.VolumeExports(m.Volume) {
			out.Exports = append(out.Exports, toExport(*e))
		}
	})
	if !found {
		return nil, notFound("volume %q not found", m.Volume)
	}
	return connect.NewResponse(out), nil
}
