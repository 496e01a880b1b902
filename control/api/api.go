// Package api serves the VBS Connect API (Connect, gRPC, gRPC-Web and JSON
// over HTTP). Handlers are thin: they validate input with package domain,
// turn a request into one catalog command, and translate the catalog's
// answer and errors into API messages and Connect codes. They never touch
// a node directly; the reconcile loop does that.
package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"time"

	"connectrpc.com/connect"

	"github.com/vbs-storage/vbs/control/catalog"
	"github.com/vbs-storage/vbs/control/reconcile"
	"github.com/vbs-storage/vbs/proto/gen/vbs/v1/vbsv1connect"
)

// Catalog is what handlers need from the catalog; *catalog.Store has it.
type Catalog interface {
	Apply(ctx context.Context, c catalog.Command) (any, error)
	View(fn func(*catalog.State))
	Changed() <-chan struct{}
	Leader() (addr, id string)
}

// Syncer is what handlers need from the reconcile loop.
type Syncer interface {
	Kick()
	Sync(ctx context.Context, key reconcile.Key) error
}

// Config configures the API.
type Config struct {
	Catalog Catalog
	Syncer  Syncer
	// NodeName is where new volumes are placed (one node for now).
	NodeName string
	// Portal is the iSCSI portal (host:port) initiators connect to.
	Portal string
	// BaseIQN prefixes target names: BaseIQN:VOLUME.
	BaseIQN string
	// Auth checks bearer tokens; nil disables authentication (tests of
	// handlers only).
	Auth *Auth
	// SyncTimeout bounds how long a grant or revoke waits for the target.
	SyncTimeout time.Duration
	Now         func() time.Time
	NewID       func() string
}

// DefaultSyncTimeout bounds waits for the reconcile loop.
const DefaultSyncTimeout = 30 * time.Second

// opIDBytes is the size of a random operation id.
const opIDBytes = 8

// API implements every VBS service.
type API struct {
	cfg Config
}

// New returns the API over a catalog and a reconcile loop.
func New(cfg Config) *API {
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return time.Now().UTC() }
	}
	if cfg.NewID == nil {
		cfg.NewID = randomID
	}
	if cfg.SyncTimeout == 0 {
		cfg.SyncTimeout = DefaultSyncTimeout
	}
	return &API{cfg: cfg}
}

func randomID() string {
	var b [opIDBytes]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return "op-" + hex.EncodeToString(b[:])
}

// Register mounts every service on mux. opts are added to each handler
// after the authentication interceptor.
func (a *API) Register(mux *http.ServeMux, opts ...connect.HandlerOption) {
	if a.cfg.Auth != nil {
		opts = append([]connect.HandlerOption{connect.WithInterceptors(a.cfg.Auth)}, opts...)
	}
	mux.Handle(vbsv1connect.NewVolumeServiceHandler(volumeService{a}, opts...))
	mux.Handle(vbsv1connect.NewSnapshotServiceHandler(snapshotService{a}, opts...))
	mux.Handle(vbsv1connect.NewExportServiceHandler(exportService{a}, opts...))
	mux.Handle(vbsv1connect.NewNodeServiceHandler(nodeService{a}, opts...))
	mux.Handle(vbsv1connect.NewOperationServiceHandler(operationService{a}, opts...))
}

func (a *API) view(fn func(*catalog.State)) { a.cfg.Catalog.View(fn) }

// apply runs one command and maps its error to a Connect error.
func (a *API) apply(ctx context.Context, c catalog.Command) (any, error) {
	v, err := a.cfg.Catalog.Apply(ctx, c)
	if err != nil {
		return nil, a.toConnect(err)
	}
	return v, nil
}

// sync waits for the reconcile loop to carry out a change on the node.
func (a *API) sync(ctx context.Context, key reconcile.Key) error {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.SyncTimeout)
	defer cancel()
	if err := a.cfg.Syncer.Sync(ctx, key); err != nil {
		return connect.NewError(connect.CodeUnavailable,
			errorf("recorded, but the node has not applied it yet (%v); retry the same call", err))
	}
	return nil
}
