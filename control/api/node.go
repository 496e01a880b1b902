package api

import (
	"context"

	"connectrpc.com/connect"

	"github.com/vbs-storage/vbs/control/catalog"
	vbsv1 "github.com/vbs-storage/vbs/proto/gen/vbs/v1"
)

type nodeService struct{ a *API }

func (s nodeService) nodes() []*vbsv1.Node {
	_, leader := s.a.cfg.Catalog.Leader()
	var out []*vbsv1.Node
	s.a.view(func(st *catalog.State) {
		count := map[string]int{}
		for _, v := range st.Volumes {
			count[v.Node]++
		}
		for _, n := range st.SortedNodes() {
			out = append(out, toNode(*n, leader, count[n.Name]))
		}
	})
	return out
}

func (s nodeService) ListNodes(context.Context, *connect.Request[vbsv1.ListNodesRequest]) (*connect.Response[vbsv1.ListNodesResponse], error) {
	return connect.NewResponse(&vbsv1.ListNodesResponse{Nodes: s.nodes()}), nil
}

func (s nodeService) GetNode(_ context.Context, req *connect.Request[vbsv1.GetNodeRequest]) (*connect.Response[vbsv1.GetNodeResponse], error) {
	if req.Msg.Name == "" {
		return nil, invalid(fieldRequired("name"))
	}
	for _, n := range s.nodes() {
		if n.Name == req.Msg.Name {
			return connect.NewResponse(&vbsv1.GetNodeResponse{Node: n}), nil
		}
	}
	return nil, notFound("node %q not found", req.Msg.Name)
}
