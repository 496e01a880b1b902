package api

import (
	"context"
	"strconv"

	"connectrpc.com/connect"

	"github.com/vbs-storage/vbs/control/catalog"
	"github.com/vbs-storage/vbs/control/domain"
	vbsv1 "github.com/vbs-storage/vbs/proto/gen/vbs/v1"
)

// maxOpIDLen bounds operation ids in requests.
const maxOpIDLen = 64

type operationService struct{ a *API }

func fieldRequired(field string) error {
	return &domain.FieldError{Field: field, Reason: "is required"}
}

func validateOpID(id string) error {
	if id == "" {
		return invalid(fieldRequired("id"))
	}
	if len(id) > maxOpIDLen {
		return invalid(&domain.FieldError{Field: "id", Reason: "is too long"})
	}
	return nil
}

func (s operationService) get(id string) (catalog.Operation, error) {
	if err := validateOpID(id); err != nil {
		return catalog.Operation{}, err
	}
	var (
		o  catalog.Operation
		ok bool
	)
	s.a.view(func(st *catalog.State) {
		var p *catalog.Operation
		if p, ok = st.Operations[id]; ok {
			o = *p
		}
	})
	if !ok {
		return o, notFound("operation %q not found", id)
	}
	return o, nil
}

func (s operationService) GetOperation(_ context.Context, req *connect.Request[vbsv1.GetOperationRequest]) (*connect.Response[vbsv1.GetOperationResponse], error) {
	o, err := s.get(req.Msg.Id)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&vbsv1.GetOperationResponse{Operation: toOperation(o)}), nil
}

func (s operationService) ListOperations(_ context.Context, req *connect.Request[vbsv1.ListOperationsRequest]) (*connect.Response[vbsv1.ListOperationsResponse], error) {
	m := req.Msg
	if m.Volume != "" {
		if err := domain.ValidateName("volume", m.Volume); err != nil {
			return nil, invalid(err)
		}
	}
	size, err := domain.ValidatePageSize("page_size", m.PageSize)
	if err != nil {
		return nil, invalid(err)
	}
	tok, err := domain.DecodePageToken("page_token", m.PageToken)
	if err != nil {
		return nil, invalid(err)
	}
	skip := 0
	if tok != "" {
		if skip, err = strconv.Atoi(tok); err != nil || skip < 0 {
			return nil, invalid(&domain.FieldError{Field: "page_token", Reason: "is not a token from a previous response"})
		}
	}
	out := &vbsv1.ListOperationsResponse{}
	s.a.view(func(st *catalog.State) {
		n := 0
		for _, o := range st.SortedOperations() {
			if m.Volume != "" && o.Volume != m.Volume {
				continue
			}
			n++
			if n <= skip {
				continue
			}
			if len(out.Operations) == size {
				out.NextPageToken = domain.EncodePageToken(strconv.Itoa(skip + size))
				return
			}
			out.Operations = append(out.Operations, toOperation(*o))
		}
	})
	return connect.NewResponse(out), nil
}

func (s operationService) CancelOperation(ctx context.Context, req *connect.Request[vbsv1.CancelOperationRequest]) (*connect.Response[vbsv1.CancelOperationResponse], error) {
	if err := validateOpID(req.Msg.Id); err != nil {
		return nil, err
	}
	o, err := s.a.apply(ctx, catalog.CancelOperation{ID: req.Msg.Id, Time: s.a.cfg.Now()})
	if err != nil {
		return nil, err
	}
	s.a.cfg.Syncer.Kick()
	return connect.NewResponse(&vbsv1.CancelOperationResponse{Operation: toOperation(o.(catalog.Operation))}), nil
}

func (s operationService) WatchOperation(ctx context.Context, req *connect.Request[vbsv1.WatchOperationRequest], stream *connect.ServerStream[vbsv1.WatchOperationResponse]) error {
	var last catalog.Operation
	first := true
	for {
		changed := s.a.cfg.Catalog.Changed()
		o, err := s.get(req.Msg.Id)
		if err != nil {
			return err
		}
		if first || o.State != last.State || o.Progress != last.Progress || o.Message != last.Message || o.CancelRequested != last.CancelRequested {
			if err := stream.Send(&vbsv1.WatchOperationResponse{Operation: toOperation(o)}); err != nil {
				return err
			}
			first, last = false, o
		}
		if o.State.Final() {
			return nil
		}
		select {
		case <-ctx.Done():
			return connect.NewError(connect.CodeCanceled, ctx.Err())
		case <-changed:
		}
	}
}
