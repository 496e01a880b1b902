package api

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"

	"connectrpc.com/connect"
)

// Auth is a Connect interceptor that requires a bearer token on every
// call. The admin token may call everything; the optional read-only token
// may call only Get, List and Watch procedures (others are
// PermissionDenied).
type Auth struct {
	admin    []byte
	readOnly []byte
}

// NewAuth returns an interceptor accepting the admin token and, when not
// empty, a read-only token.
func NewAuth(admin, readOnly string) *Auth {
	a := &Auth{admin: []byte(admin)}
	if readOnly != "" {
		a.readOnly = []byte(readOnly)
	}
	return a
}

const bearerPrefix = "Bearer "

var (
	errNoToken  = errors.New("missing bearer token: send 'Authorization: Bearer TOKEN' (the token is in DATA_DIR/api-token)")
	errBadToken = errors.New("invalid bearer token")
	errReadOnly = errors.New("this token is read-only")
)

// readOnly reports whether a procedure only reads: its method name
// starts with Get, List or Watch.
func readOnly(procedure string) bool {
	i := strings.LastIndexByte(procedure, '/')
	if i < 0 {
		return false
	}
	m := procedure[i+1:]
	return strings.HasPrefix(m, "Get") || strings.HasPrefix(m, "List") || strings.HasPrefix(m, "Watch")
}

func (a *Auth) check(h http.Header, procedure string) error {
	v := h.Get("Authorization")
	if !strings.HasPrefix(v, bearerPrefix) {
		return connect.NewError(connect.CodeUnauthenticated, errNoToken)
	}
	tok := []byte(strings.TrimSpace(v[len(bearerPrefix):]))
	if subtle.ConstantTimeCompare(tok, a.admin) == 1 {
		return nil
	}
	if a.readOnly != nil && subtle.ConstantTimeCompare(tok, a.readOnly) == 1 {
		if readOnly(procedure) {
			return nil
		}
		return connect.NewError(connect.CodePermissionDenied, errReadOnly)
	}
	return connect.NewError(connect.CodeUnauthenticated, errBadToken)
}

// WrapUnary implements connect.Interceptor.
func (a *Auth) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if req.Spec().IsClient {
			return next(ctx, req)
		}
		if err := a.check(req.Header(), req.Spec().Procedure); err != nil {
			return nil, err
		}
		return next(ctx, req)
	}
}

// WrapStreamingClient implements connect.Interceptor.
func (a *Auth) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

// WrapStreamingHandler implements connect.Interceptor.
func (a *Auth) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		if err := a.check(conn.RequestHeader(), conn.Spec().Procedure); err != nil {
			return err
		}
		return next(ctx, conn)
	}
}

// Bearer is the client side of Auth: a Connect interceptor that sends the
// token on every call, unary or streaming. The CLI and the leader's calls
// to other nodes' agents use it.
type Bearer string

// WrapUnary implements connect.Interceptor.
func (b Bearer) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		req.Header().Set("Authorization", "Bearer "+string(b))
		return next(ctx, req)
	}
}

// WrapStreamingClient implements connect.Interceptor.
func (b Bearer) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		conn.RequestHeader().Set("Authorization", "Bearer "+string(b))
		return conn
	}
}

// WrapStreamingHandler implements connect.Interceptor; a client
// interceptor leaves handlers alone.
func (b Bearer) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}
