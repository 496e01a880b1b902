package api

import (
	"errors"
	"fmt"

	"connectrpc.com/connect"

	"github.com/vbs-storage/vbs/control/catalog"
	"github.com/vbs-storage/vbs/control/domain"
)

// FieldMetaKey is the response metadata (header or trailer) that names the
// request field an InvalidArgument error is about.
const FieldMetaKey = "Vbs-Field"

func errorf(format string, a ...any) error { return fmt.Errorf(format, a...) }

// invalid turns a validation error into InvalidArgument naming the field.
func invalid(err error) error {
	ce := connect.NewError(connect.CodeInvalidArgument, err)
	var fe *domain.FieldError
	if errors.As(err, &fe) {
		ce.Meta().Set(FieldMetaKey, fe.Field)
	}
	return ce
}

// toConnect maps catalog errors to the Connect codes clients act on.
func (a *API) toConnect(err error) error {
	var ce *connect.Error
	switch {
	case errors.As(err, &ce):
		return err
	case errors.Is(err, domain.ErrInvalid):
		return invalid(err)
	case errors.Is(err, catalog.ErrNotFound):
		return connect.NewError(connect.CodeNotFound, err)
	case errors.Is(err, catalog.ErrAlreadyExists):
		return connect.NewError(connect.CodeAlreadyExists, err)
	case errors.Is(err, catalog.ErrFailedPrecondition):
		return connect.NewError(connect.CodeFailedPrecondition, err)
	case errors.Is(err, catalog.ErrLimit):
		return connect.NewError(connect.CodeResourceExhausted, err)
	case errors.Is(err, catalog.ErrInvalid):
		return connect.NewError(connect.CodeInvalidArgument, err)
	case errors.Is(err, catalog.ErrNotLeader):
		_, id := a.cfg.Catalog.Leader()
		return connect.NewError(connect.CodeUnavailable, fmt.Errorf("%w; the leader is %q: send the call there or retry", err, id))
	}
	return connect.NewError(connect.CodeInternal, err)
}

func notFound(format string, a ...any) error {
	return connect.NewError(connect.CodeNotFound, fmt.Errorf(format, a...))
}
