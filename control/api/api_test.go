package api

import (
	"context"
	"crypto/tls"
	"errors"
	"github.com/vbs-storage/vbs/control/node/nodetest"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"go.uber.org/goleak"

	"github.com/vbs-storage/vbs/control/catalog"
	"github.com/vbs-storage/vbs/control/reconcile"
	vbsv1 "github.com/vbs-storage/vbs/proto/gen/vbs/v1"
	"github.com/vbs-storage/vbs/proto/gen/vbs/v1/vbsv1connect"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	gib         = 1 << 30
	adminToken  = "admin-secret-token"
	readerToken = "reader-secret-token"
	hostIQN     = "iqn.2026-01.com.example:host1"
)

type clients struct {
	vol  vbsv1connect.VolumeServiceClient
	snap vbsv1connect.SnapshotServiceClient
	exp  vbsv1connect.ExportServiceClient
	node vbsv1connect.NodeServiceClient
	op   vbsv1connect.OperationServiceClient
}

type env struct {
	t    *testing.T
	srv  *httptest.Server
	drv  *nodetest.Driver
	base string
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// newEnv starts a real one-node catalog, a reconcile loop over an
// in-memory driver, and the API on an HTTP/2 (TLS) test server.
func newEnv(t *testing.T) *env {
	t.Helper()
	st, err := catalog.Open(catalog.Config{
		NodeName: "n1", DataDir: t.TempDir(), BindAddr: freeAddr(t), Bootstrap: true,
		ElectionTimeout: 50 * time.Millisecond,
		Limits:          catalog.Limits{MaxVolumes: 8, MaxSnapshotsPerVolume: 4, MaxExportsPerVolume: 2, MaxFinishedOperations: 100},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for !st.IsLeader() {
		select {
		case <-ctx.Done():
			t.Fatal("no leader")
		case <-st.LeaderCh():
		case <-time.After(5 * time.Millisecond):
		}
	}
	drv := nodetest.NewDriver()
	rec := reconcile.New(reconcile.Config{NodeName: "n1", Driver: drv, Catalog: st, Interval: time.Hour,
		Self: reconcile.NodeInfo{Name: "n1", State: catalog.NodeAlive, ISCSIAddress: "127.0.0.1:3260"}})
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); rec.Run(runCtx) }()
	a := New(Config{Catalog: st, Syncer: rec, NodeName: "n1", Portal: "127.0.0.1:3260",
		BaseIQN: "iqn.2026-01.io.vbs", Auth: NewAuth(adminToken, readerToken)})
	mux := http.NewServeMux()
	a.Register(mux)
	srv := httptest.NewUnstartedServer(mux)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(func() {
		srv.Close()
		stop()
		<-done
		if err := st.Close(); err != nil {
			t.Error(err)
		}
	})
	return &env{t: t, srv: srv, drv: drv, base: srv.URL}
}

func tokenInterceptor(token string) connect.Interceptor {
	return connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			if token != "" {
				req.Header().Set("Authorization", "Bearer "+token)
			}
			return next(ctx, req)
		}
	})
}

type streamToken string

func (s streamToken) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return tokenInterceptor(string(s)).WrapUnary(next)
}

func (s streamToken) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		conn.RequestHeader().Set("Authorization", "Bearer "+string(s))
		return conn
	}
}

func (s streamToken) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

func (e *env) clients(token string, opts ...connect.ClientOption) clients {
	hc := e.srv.Client()
	opts = append(opts, connect.WithInterceptors(streamToken(token)))
	return clients{
		vol:  vbsv1connect.NewVolumeServiceClient(hc, e.base, opts...),
		snap: vbsv1connect.NewSnapshotServiceClient(hc, e.base, opts...),
		exp:  vbsv1connect.NewExportServiceClient(hc, e.base, opts...),
		node: vbsv1connect.NewNodeServiceClient(hc, e.base, opts...),
		op:   vbsv1connect.NewOperationServiceClient(hc, e.base, opts...),
	}
}

func protocols() map[string][]connect.ClientOption {
	return map[string][]connect.ClientOption{
		"connect":     nil,
		"grpc":        {connect.WithGRPC()},
		"grpcweb":     {connect.WithGRPCWeb()},
		"connectjson": {connect.WithProtoJSON()},
	}
}

func code(err error) connect.Code { return connect.CodeOf(err) }

func waitVolume(t *testing.T, c clients, name string, want vbsv1.VolumeState) *vbsv1.Volume {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := c.vol.GetVolume(context.Background(), connect.NewRequest(&vbsv1.GetVolumeRequest{Name: name}))
		if err != nil {
			t.Fatalf("GetVolume %s: %v", name, err)
		}
		if r.Msg.Volume.State == want {
			return r.Msg.Volume
		}
		if time.Now().After(deadline) {
			t.Fatalf("volume %s is %v, want %v", name, r.Msg.Volume.State, want)
		}
		time.Sleep(5 * time.Millisecond) // polling an API with a deadline
	}
}

func waitSnapshot(t *testing.T, c clients, vol, name string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := c.snap.GetSnapshot(context.Background(), connect.NewRequest(&vbsv1.GetSnapshotRequest{Volume: vol, Name: name}))
		if err != nil {
			t.Fatal(err)
		}
		if r.Msg.Snapshot.State == vbsv1.SnapshotState_SNAPSHOT_STATE_READY {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("snapshot %s@%s is %v", vol, name, r.Msg.Snapshot.State)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// watch follows an operation to its end over the server stream.
func watch(t *testing.T, c clients, id string) *vbsv1.Operation {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := c.op.WatchOperation(ctx, connect.NewRequest(&vbsv1.WatchOperationRequest{Id: id}))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var last *vbsv1.Operation
	for st.Receive() {
		last = st.Msg().Operation
	}
	if err := st.Err(); err != nil {
		t.Fatalf("watch %s: %v", id, err)
	}
	if last == nil {
		t.Fatalf("watch %s: no messages", id)
	}
	return last
}

func TestVolumeFlow(t *testing.T) {
	for name, opts := range protocols() {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			c := e.clients(adminToken, opts...)
			ctx := context.Background()

			cr, err := c.vol.CreateVolume(ctx, connect.NewRequest(&vbsv1.CreateVolumeRequest{
				Name: "db", SizeBytes: gib, Labels: map[string]string{"app": "pg"}, RequestId: "req-1"}))
			if err != nil {
				t.Fatal(err)
			}
			if cr.Msg.Volume.State != vbsv1.VolumeState_VOLUME_STATE_CREATING || cr.Msg.Volume.BlockSize != 4096 {
				t.Fatalf("created = %v", cr.Msg.Volume)
			}
			// Retrying with the same request id returns the same volume.
			if _, err := c.vol.CreateVolume(ctx, connect.NewRequest(&vbsv1.CreateVolumeRequest{
				Name: "db", SizeBytes: gib, Labels: map[string]string{"app": "pg"}, RequestId: "req-1"})); err != nil {
				t.Fatalf("idempotent retry: %v", err)
			}
			waitVolume(t, c, "db", vbsv1.VolumeState_VOLUME_STATE_AVAILABLE)

			for _, n := range []string{"web-1", "web-2"} {
				if _, err := c.vol.CreateVolume(ctx, connect.NewRequest(&vbsv1.CreateVolumeRequest{Name: n, SizeBytes: gib, Labels: map[string]string{"app": "web"}})); err != nil {
					t.Fatal(err)
				}
			}
			// Filters and pagination.
			lr, err := c.vol.ListVolumes(ctx, connect.NewRequest(&vbsv1.ListVolumesRequest{LabelSelector: map[string]string{"app": "web"}, PageSize: 1}))
			if err != nil || len(lr.Msg.Volumes) != 1 || lr.Msg.Volumes[0].Name != "web-1" || lr.Msg.NextPageToken == "" {
				t.Fatalf("page 1 = %v, %v", lr, err)
			}
			lr, err = c.vol.ListVolumes(ctx, connect.NewRequest(&vbsv1.ListVolumesRequest{LabelSelector: map[string]string{"app": "web"}, PageSize: 1, PageToken: lr.Msg.NextPageToken}))
			if err != nil || len(lr.Msg.Volumes) != 1 || lr.Msg.Volumes[0].Name != "web-2" || lr.Msg.NextPageToken != "" {
				t.Fatalf("page 2 = %v, %v", lr, err)
			}
			lr, err = c.vol.ListVolumes(ctx, connect.NewRequest(&vbsv1.ListVolumesRequest{NamePrefix: "d"}))
			if err != nil || len(lr.Msg.Volumes) != 1 {
				t.Fatalf("prefix list = %v, %v", lr, err)
			}

			// Snapshot and linked clone.
			if _, err := c.snap.CreateSnapshot(ctx, connect.NewRequest(&vbsv1.CreateSnapshotRequest{Volume: "db", Name: "s1"})); err != nil {
				t.Fatal(err)
			}
			waitSnapshot(t, c, "db", "s1")
			clone, err := c.vol.CreateVolume(ctx, connect.NewRequest(&vbsv1.CreateVolumeRequest{Name: "db-clone", SourceSnapshot: "db@s1"}))
			if err != nil || clone.Msg.Volume.SizeBytes != gib || clone.Msg.Volume.SourceSnapshot != "db@s1" {
				t.Fatalf("clone = %v, %v", clone, err)
			}
			waitVolume(t, c, "db-clone", vbsv1.VolumeState_VOLUME_STATE_AVAILABLE)
			if _, err := c.snap.DeleteSnapshot(ctx, connect.NewRequest(&vbsv1.DeleteSnapshotRequest{Volume: "db", Name: "s1"})); code(err) != connect.CodeFailedPrecondition {
				t.Fatalf("delete snapshot with clone = %v", err)
			}
			// A second clone, flattened, no longer holds the snapshot.
			if _, err := c.vol.CreateVolume(ctx, connect.NewRequest(&vbsv1.CreateVolumeRequest{Name: "db-copy", SourceSnapshot: "db@s1"})); err != nil {
				t.Fatal(err)
			}
			waitVolume(t, c, "db-copy", vbsv1.VolumeState_VOLUME_STATE_AVAILABLE)
			fr, err := c.vol.FlattenVolume(ctx, connect.NewRequest(&vbsv1.FlattenVolumeRequest{Name: "db-copy"}))
			if err != nil {
				t.Fatal(err)
			}
			if op := watch(t, c, fr.Msg.Operation.Id); op.State != vbsv1.OperationState_OPERATION_STATE_SUCCEEDED || op.Kind != vbsv1.OperationKind_OPERATION_KIND_FLATTEN {
				t.Fatalf("flatten op = %v", op)
			}
			if v := waitVolume(t, c, "db-copy", vbsv1.VolumeState_VOLUME_STATE_AVAILABLE); v.SourceSnapshot != "" {
				t.Fatalf("flattened volume still has source %q", v.SourceSnapshot)
			}
			if _, err := c.vol.FlattenVolume(ctx, connect.NewRequest(&vbsv1.FlattenVolumeRequest{Name: "db-copy"})); code(err) != connect.CodeFailedPrecondition {
				t.Fatalf("flatten of a non-clone = %v", err)
			}
			if _, err := c.vol.DeleteVolume(ctx, connect.NewRequest(&vbsv1.DeleteVolumeRequest{Name: "db-copy"})); err != nil {
				t.Fatal(err)
			}

			// Grant: enforced on the node before the call returns.
			gr, err := c.exp.GrantAccess(ctx, connect.NewRequest(&vbsv1.GrantAccessRequest{Volume: "db", InitiatorIqn: hostIQN,
				Chap: &vbsv1.ChapCredentials{User: "host1", Secret: "0123456789abcdef"}}))
			if err != nil {
				t.Fatal(err)
			}
			if got := gr.Msg.Export.Url; got != "iscsi://127.0.0.1:3260/iqn.2026-01.io.vbs:db/0" || !gr.Msg.Export.Chap {
				t.Fatalf("export = %v", gr.Msg.Export)
			}
			e.drv.Mu.Lock()
			_, exported := e.drv.Exported[[2]string{"db", hostIQN}]
			e.drv.Mu.Unlock()
			if !exported {
				t.Fatal("grant returned before the node exported the volume")
			}
			waitVolume(t, c, "db", vbsv1.VolumeState_VOLUME_STATE_IN_USE)
			le, err := c.exp.ListExports(ctx, connect.NewRequest(&vbsv1.ListExportsRequest{Volume: "db"}))
			if err != nil || len(le.Msg.Exports) != 1 || le.Msg.Exports[0].ChapUser != "host1" {
				t.Fatalf("ListExports = %v, %v", le, err)
			}
			if _, err := c.vol.DeleteVolume(ctx, connect.NewRequest(&vbsv1.DeleteVolumeRequest{Name: "db"})); code(err) != connect.CodeFailedPrecondition {
				t.Fatalf("delete exported volume = %v", err)
			}
			if _, err := c.snap.RevertVolume(ctx, connect.NewRequest(&vbsv1.RevertVolumeRequest{Volume: "db", Snapshot: "s1"})); code(err) != connect.CodeFailedPrecondition {
				t.Fatalf("revert exported volume = %v", err)
			}

			// Online resize while exported, followed with Watch.
			rr, err := c.vol.ResizeVolume(ctx, connect.NewRequest(&vbsv1.ResizeVolumeRequest{Name: "db", SizeBytes: 2 * gib}))
			if err != nil {
				t.Fatal(err)
			}
			if op := watch(t, c, rr.Msg.Operation.Id); op.State != vbsv1.OperationState_OPERATION_STATE_SUCCEEDED || op.ProgressPercent != 100 {
				t.Fatalf("resize op = %v", op)
			}
			if v := waitVolume(t, c, "db", vbsv1.VolumeState_VOLUME_STATE_IN_USE); v.SizeBytes != 2*gib {
				t.Fatalf("size after resize = %d", v.SizeBytes)
			}
			if _, err := c.vol.ResizeVolume(ctx, connect.NewRequest(&vbsv1.ResizeVolumeRequest{Name: "db", SizeBytes: gib})); code(err) != connect.CodeFailedPrecondition {
				t.Fatalf("shrink = %v", err)
			}

			// Revoke, then revert.
			if _, err := c.exp.RevokeAccess(ctx, connect.NewRequest(&vbsv1.RevokeAccessRequest{Volume: "db", InitiatorIqn: hostIQN})); err != nil {
				t.Fatal(err)
			}
			e.drv.Mu.Lock()
			n := len(e.drv.Exported)
			e.drv.Mu.Unlock()
			if n != 0 {
				t.Fatal("revoke returned before the node withdrew the export")
			}
			vr, err := c.snap.RevertVolume(ctx, connect.NewRequest(&vbsv1.RevertVolumeRequest{Volume: "db", Snapshot: "s1"}))
			if err != nil {
				t.Fatal(err)
			}
			if op := watch(t, c, vr.Msg.Operation.Id); op.State != vbsv1.OperationState_OPERATION_STATE_SUCCEEDED {
				t.Fatalf("revert op = %v", op)
			}
			ol, err := c.op.ListOperations(ctx, connect.NewRequest(&vbsv1.ListOperationsRequest{Volume: "db"}))
			if err != nil || len(ol.Msg.Operations) != 2 || ol.Msg.Operations[0].Kind != vbsv1.OperationKind_OPERATION_KIND_REVERT {
				t.Fatalf("ListOperations = %v, %v", ol, err)
			}

			nl, err := c.node.ListNodes(ctx, connect.NewRequest(&vbsv1.ListNodesRequest{}))
			if err != nil || len(nl.Msg.Nodes) != 1 || !nl.Msg.Nodes[0].Leader || nl.Msg.Nodes[0].CapacityBytes == 0 {
				t.Fatalf("ListNodes = %v, %v", nl, err)
			}

			// Delete without cascade is refused (clone, snapshot); with cascade it goes.
			if _, err := c.vol.DeleteVolume(ctx, connect.NewRequest(&vbsv1.DeleteVolumeRequest{Name: "db"})); code(err) != connect.CodeFailedPrecondition {
				t.Fatalf("delete with clone = %v", err)
			}
			if _, err := c.vol.DeleteVolume(ctx, connect.NewRequest(&vbsv1.DeleteVolumeRequest{Name: "db", Cascade: true})); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(10 * time.Second)
			for {
				_, err := c.vol.GetVolume(ctx, connect.NewRequest(&vbsv1.GetVolumeRequest{Name: "db"}))
				if code(err) == connect.CodeNotFound {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("volume not removed: %v", err)
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
}

func TestAuth(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	list := func(c clients) error {
		_, err := c.vol.ListVolumes(ctx, connect.NewRequest(&vbsv1.ListVolumesRequest{}))
		return err
	}
	if err := list(e.clients("")); code(err) != connect.CodeUnauthenticated {
		t.Fatalf("no token = %v", err)
	}
	if err := list(e.clients("wrong")); code(err) != connect.CodeUnauthenticated {
		t.Fatalf("bad token = %v", err)
	}
	if err := list(e.clients(readerToken, connect.WithGRPC())); err != nil {
		t.Fatalf("read-only list = %v", err)
	}
	_, err := e.clients(readerToken).vol.CreateVolume(ctx, connect.NewRequest(&vbsv1.CreateVolumeRequest{Name: "v", SizeBytes: gib}))
	if code(err) != connect.CodePermissionDenied {
		t.Fatalf("read-only create = %v", err)
	}
	// Streams are checked too.
	st, err := e.clients("wrong").op.WatchOperation(ctx, connect.NewRequest(&vbsv1.WatchOperationRequest{Id: "x"}))
	if err == nil {
		for st.Receive() {
		}
		err = st.Err()
		st.Close()
	}
	if code(err) != connect.CodeUnauthenticated {
		t.Fatalf("watch with bad token = %v", err)
	}
}

// TestJSONOverHTTP1 calls the API the way docs/api.md shows with curl.
func TestJSONOverHTTP1(t *testing.T) {
	e := newEnv(t)
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // test server cert
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	post := func(path, body string) (int, string) {
		req, err := http.NewRequest(http.MethodPost, e.base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+adminToken)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.ProtoMajor != 1 {
			t.Fatalf("proto = %s", resp.Proto)
		}
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	status, body := post("/vbs.v1.VolumeService/CreateVolume", `{"name":"v1","sizeBytes":"1073741824"}`)
	if status != http.StatusOK || !strings.Contains(body, `"VOLUME_STATE_CREATING"`) {
		t.Fatalf("create = %d %s", status, body)
	}
	status, body = post("/vbs.v1.VolumeService/CreateVolume", `{"name":"Bad","sizeBytes":"1073741824"}`)
	if status != http.StatusBadRequest || !strings.Contains(body, `"invalid_argument"`) || !strings.Contains(body, "name:") {
		t.Fatalf("bad create = %d %s", status, body)
	}
}

func TestBadInput(t *testing.T) {
	e := newEnv(t)
	c := e.clients(adminToken, connect.WithGRPC())
	ctx := context.Background()
	if _, err := c.vol.CreateVolume(ctx, connect.NewRequest(&vbsv1.CreateVolumeRequest{Name: "v", SizeBytes: gib})); err != nil {
		t.Fatal(err)
	}
	waitVolume(t, c, "v", vbsv1.VolumeState_VOLUME_STATE_AVAILABLE)
	long := strings.Repeat("a", 64)
	type tc struct {
		name  string
		call  func() error
		code  connect.Code
		field string
	}
	r := func(err error) error { return err }
	tests := []tc{
		{"create no name", func() error {
			_, err := c.vol.CreateVolume(ctx, connect.NewRequest(&vbsv1.CreateVolumeRequest{SizeBytes: gib}))
			return r(err)
		}, connect.CodeInvalidArgument, "name"},
		{"create long name", func() error {
			_, err := c.vol.CreateVolume(ctx, connect.NewRequest(&vbsv1.CreateVolumeRequest{Name: long, SizeBytes: gib}))
			return err
		}, connect.CodeInvalidArgument, "name"},
		{"create unaligned", func() error {
			_, err := c.vol.CreateVolume(ctx, connect.NewRequest(&vbsv1.CreateVolumeRequest{Name: "x", SizeBytes: gib + 1}))
			return err
		}, connect.CodeInvalidArgument, "size_bytes"},
		{"create huge", func() error {
			_, err := c.vol.CreateVolume(ctx, connect.NewRequest(&vbsv1.CreateVolumeRequest{Name: "x", SizeBytes: 1 << 62}))
			return err
		}, connect.CodeInvalidArgument, "size_bytes"},
		{"create zero", func() error {
			_, err := c.vol.CreateVolume(ctx, connect.NewRequest(&vbsv1.CreateVolumeRequest{Name: "x"}))
			return err
		}, connect.CodeInvalidArgument, "size_bytes"},
		{"create bad block size", func() error {
			_, err := c.vol.CreateVolume(ctx, connect.NewRequest(&vbsv1.CreateVolumeRequest{Name: "x", SizeBytes: gib, BlockSize: 1024}))
			return err
		}, connect.CodeInvalidArgument, "block_size"},
		{"create on unknown node", func() error {
			_, err := c.vol.CreateVolume(ctx, connect.NewRequest(&vbsv1.CreateVolumeRequest{Name: "x", SizeBytes: gib, Node: "nope"}))
			return err
		}, connect.CodeNotFound, ""},
		{"create bad label", func() error {
			_, err := c.vol.CreateVolume(ctx, connect.NewRequest(&vbsv1.CreateVolumeRequest{Name: "x", SizeBytes: gib, Labels: map[string]string{"a b": "c"}}))
			return err
		}, connect.CodeInvalidArgument, "labels"},
		{"create bad source", func() error {
			_, err := c.vol.CreateVolume(ctx, connect.NewRequest(&vbsv1.CreateVolumeRequest{Name: "x", SourceSnapshot: "nosnap"}))
			return err
		}, connect.CodeInvalidArgument, "source_snapshot"},
		{"create missing source", func() error {
			_, err := c.vol.CreateVolume(ctx, connect.NewRequest(&vbsv1.CreateVolumeRequest{Name: "x", SourceSnapshot: "v@nope"}))
			return err
		}, connect.CodeNotFound, ""},
		{"create bad request id", func() error {
			_, err := c.vol.CreateVolume(ctx, connect.NewRequest(&vbsv1.CreateVolumeRequest{Name: "x", SizeBytes: gib, RequestId: "a b"}))
			return err
		}, connect.CodeInvalidArgument, "request_id"},
		{"create duplicate", func() error {
			_, err := c.vol.CreateVolume(ctx, connect.NewRequest(&vbsv1.CreateVolumeRequest{Name: "v", SizeBytes: gib}))
			return err
		}, connect.CodeAlreadyExists, ""},
		{"get bad name", func() error {
			_, err := c.vol.GetVolume(ctx, connect.NewRequest(&vbsv1.GetVolumeRequest{Name: "A"}))
			return err
		}, connect.CodeInvalidArgument, "name"},
		{"get missing", func() error {
			_, err := c.vol.GetVolume(ctx, connect.NewRequest(&vbsv1.GetVolumeRequest{Name: "nope"}))
			return err
		}, connect.CodeNotFound, ""},
		{"list page size", func() error {
			_, err := c.vol.ListVolumes(ctx, connect.NewRequest(&vbsv1.ListVolumesRequest{PageSize: -1}))
			return err
		}, connect.CodeInvalidArgument, "page_size"},
		{"list page token", func() error {
			_, err := c.vol.ListVolumes(ctx, connect.NewRequest(&vbsv1.ListVolumesRequest{PageToken: "%%%"}))
			return err
		}, connect.CodeInvalidArgument, "page_token"},
		{"list state", func() error {
			_, err := c.vol.ListVolumes(ctx, connect.NewRequest(&vbsv1.ListVolumesRequest{State: 99}))
			return err
		}, connect.CodeInvalidArgument, "state"},
		{"delete bad name", func() error {
			_, err := c.vol.DeleteVolume(ctx, connect.NewRequest(&vbsv1.DeleteVolumeRequest{Name: ""}))
			return err
		}, connect.CodeInvalidArgument, "name"},
		{"delete missing", func() error {
			_, err := c.vol.DeleteVolume(ctx, connect.NewRequest(&vbsv1.DeleteVolumeRequest{Name: "nope"}))
			return err
		}, connect.CodeNotFound, ""},
		{"resize unaligned", func() error {
			_, err := c.vol.ResizeVolume(ctx, connect.NewRequest(&vbsv1.ResizeVolumeRequest{Name: "v", SizeBytes: 2*gib + 512}))
			return err
		}, connect.CodeInvalidArgument, "size_bytes"},
		{"flatten bad name", func() error {
			_, err := c.vol.FlattenVolume(ctx, connect.NewRequest(&vbsv1.FlattenVolumeRequest{Name: "-x"}))
			return err
		}, connect.CodeInvalidArgument, "name"},
		{"flatten missing", func() error {
			_, err := c.vol.FlattenVolume(ctx, connect.NewRequest(&vbsv1.FlattenVolumeRequest{Name: "nope"}))
			return err
		}, connect.CodeNotFound, ""},
		{"resize missing", func() error {
			_, err := c.vol.ResizeVolume(ctx, connect.NewRequest(&vbsv1.ResizeVolumeRequest{Name: "nope", SizeBytes: 2 * gib}))
			return err
		}, connect.CodeNotFound, ""},
		{"snapshot bad name", func() error {
			_, err := c.snap.CreateSnapshot(ctx, connect.NewRequest(&vbsv1.CreateSnapshotRequest{Volume: "v", Name: "S"}))
			return err
		}, connect.CodeInvalidArgument, "name"},
		{"snapshot missing volume", func() error {
			_, err := c.snap.CreateSnapshot(ctx, connect.NewRequest(&vbsv1.CreateSnapshotRequest{Volume: "nope", Name: "s"}))
			return err
		}, connect.CodeNotFound, ""},
		{"get snapshot bad volume", func() error {
			_, err := c.snap.GetSnapshot(ctx, connect.NewRequest(&vbsv1.GetSnapshotRequest{Volume: "", Name: "s"}))
			return err
		}, connect.CodeInvalidArgument, "volume"},
		{"get snapshot missing", func() error {
			_, err := c.snap.GetSnapshot(ctx, connect.NewRequest(&vbsv1.GetSnapshotRequest{Volume: "v", Name: "s"}))
			return err
		}, connect.CodeNotFound, ""},
		{"list snapshots missing volume", func() error {
			_, err := c.snap.ListSnapshots(ctx, connect.NewRequest(&vbsv1.ListSnapshotsRequest{Volume: "nope"}))
			return err
		}, connect.CodeNotFound, ""},
		{"list snapshots page size", func() error {
			_, err := c.snap.ListSnapshots(ctx, connect.NewRequest(&vbsv1.ListSnapshotsRequest{Volume: "v", PageSize: 5000}))
			return err
		}, connect.CodeInvalidArgument, "page_size"},
		{"delete snapshot bad name", func() error {
			_, err := c.snap.DeleteSnapshot(ctx, connect.NewRequest(&vbsv1.DeleteSnapshotRequest{Volume: "v", Name: "s@1"}))
			return err
		}, connect.CodeInvalidArgument, "name"},
		{"watch op no id", func() error {
			st, err := c.op.WatchOperation(ctx, connect.NewRequest(&vbsv1.WatchOperationRequest{}))
			if err != nil {
				return err
			}
			defer st.Close()
			for st.Receive() {
			}
			return st.Err()
		}, connect.CodeInvalidArgument, "id"},
		{"delete snapshot missing", func() error {
			_, err := c.snap.DeleteSnapshot(ctx, connect.NewRequest(&vbsv1.DeleteSnapshotRequest{Volume: "v", Name: "s"}))
			return err
		}, connect.CodeNotFound, ""},
		{"revert bad snapshot", func() error {
			_, err := c.snap.RevertVolume(ctx, connect.NewRequest(&vbsv1.RevertVolumeRequest{Volume: "v", Snapshot: "-"}))
			return err
		}, connect.CodeInvalidArgument, "snapshot"},
		{"revert missing snapshot", func() error {
			_, err := c.snap.RevertVolume(ctx, connect.NewRequest(&vbsv1.RevertVolumeRequest{Volume: "v", Snapshot: "s"}))
			return err
		}, connect.CodeNotFound, ""},
		{"grant bad iqn", func() error {
			_, err := c.exp.GrantAccess(ctx, connect.NewRequest(&vbsv1.GrantAccessRequest{Volume: "v", InitiatorIqn: "host1"}))
			return err
		}, connect.CodeInvalidArgument, "initiator_iqn"},
		{"grant short chap secret", func() error {
			_, err := c.exp.GrantAccess(ctx, connect.NewRequest(&vbsv1.GrantAccessRequest{Volume: "v", InitiatorIqn: hostIQN,
				Chap: &vbsv1.ChapCredentials{User: "u", Secret: "short"}}))
			return err
		}, connect.CodeInvalidArgument, "chap.secret"},
		{"grant missing volume", func() error {
			_, err := c.exp.GrantAccess(ctx, connect.NewRequest(&vbsv1.GrantAccessRequest{Volume: "nope", InitiatorIqn: hostIQN}))
			return err
		}, connect.CodeNotFound, ""},
		{"revoke bad iqn", func() error {
			_, err := c.exp.RevokeAccess(ctx, connect.NewRequest(&vbsv1.RevokeAccessRequest{Volume: "v", InitiatorIqn: "IQN"}))
			return err
		}, connect.CodeInvalidArgument, "initiator_iqn"},
		{"revoke not granted", func() error {
			_, err := c.exp.RevokeAccess(ctx, connect.NewRequest(&vbsv1.RevokeAccessRequest{Volume: "v", InitiatorIqn: hostIQN}))
			return err
		}, connect.CodeNotFound, ""},
		{"list exports bad volume", func() error {
			_, err := c.exp.ListExports(ctx, connect.NewRequest(&vbsv1.ListExportsRequest{Volume: "B"}))
			return err
		}, connect.CodeInvalidArgument, "volume"},
		{"list exports missing volume", func() error {
			_, err := c.exp.ListExports(ctx, connect.NewRequest(&vbsv1.ListExportsRequest{Volume: "nope"}))
			return err
		}, connect.CodeNotFound, ""},
		{"get node no name", func() error {
			_, err := c.node.GetNode(ctx, connect.NewRequest(&vbsv1.GetNodeRequest{}))
			return err
		}, connect.CodeInvalidArgument, "name"},
		{"get node missing", func() error {
			_, err := c.node.GetNode(ctx, connect.NewRequest(&vbsv1.GetNodeRequest{Name: "nope"}))
			return err
		}, connect.CodeNotFound, ""},
		{"get op no id", func() error {
			_, err := c.op.GetOperation(ctx, connect.NewRequest(&vbsv1.GetOperationRequest{}))
			return err
		}, connect.CodeInvalidArgument, "id"},
		{"get op missing", func() error {
			_, err := c.op.GetOperation(ctx, connect.NewRequest(&vbsv1.GetOperationRequest{Id: "op-x"}))
			return err
		}, connect.CodeNotFound, ""},
		{"list ops bad token", func() error {
			_, err := c.op.ListOperations(ctx, connect.NewRequest(&vbsv1.ListOperationsRequest{PageToken: "eA"}))
			return err
		}, connect.CodeInvalidArgument, "page_token"},
		{"cancel op long id", func() error {
			_, err := c.op.CancelOperation(ctx, connect.NewRequest(&vbsv1.CancelOperationRequest{Id: strings.Repeat("x", 65)}))
			return err
		}, connect.CodeInvalidArgument, "id"},
		{"cancel op missing", func() error {
			_, err := c.op.CancelOperation(ctx, connect.NewRequest(&vbsv1.CancelOperationRequest{Id: "op-x"}))
			return err
		}, connect.CodeNotFound, ""},
		{"watch op missing", func() error {
			st, err := c.op.WatchOperation(ctx, connect.NewRequest(&vbsv1.WatchOperationRequest{Id: "op-x"}))
			if err != nil {
				return err
			}
			defer st.Close()
			for st.Receive() {
			}
			return st.Err()
		}, connect.CodeNotFound, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			var ce *connect.Error
			if !errors.As(err, &ce) || ce.Code() != tc.code {
				t.Fatalf("err = %v, want code %v", err, tc.code)
			}
			if tc.field != "" && ce.Meta().Get(FieldMetaKey) != tc.field {
				t.Fatalf("field = %q, want %q (err %v)", ce.Meta().Get(FieldMetaKey), tc.field, err)
			}
		})
	}
	// Limits: the env allows 8 volumes.
	for i := 0; ; i++ {
		_, err := c.vol.CreateVolume(ctx, connect.NewRequest(&vbsv1.CreateVolumeRequest{Name: "x" + string(rune('a'+i)), SizeBytes: gib}))
		if err == nil {
			continue
		}
		if code(err) != connect.CodeResourceExhausted || i != 7 {
			t.Fatalf("volume %d: %v, want ResourceExhausted at 8", i+1, err)
		}
		break
	}
}

// TestGrantNotEnforced checks that a grant the node could not apply is
// reported (Unavailable, retry) instead of returned as done, and that the
// retry succeeds once the node recovers.
func TestGrantNotEnforced(t *testing.T) {
	e := newEnv(t)
	c := e.clients(adminToken)
	ctx := context.Background()
	if _, err := c.vol.CreateVolume(ctx, connect.NewRequest(&vbsv1.CreateVolumeRequest{Name: "v", SizeBytes: gib})); err != nil {
		t.Fatal(err)
	}
	waitVolume(t, c, "v", vbsv1.VolumeState_VOLUME_STATE_AVAILABLE)
	e.drv.SetFail("Export", errors.New("portal offline"))
	req := &vbsv1.GrantAccessRequest{Volume: "v", InitiatorIqn: hostIQN}
	_, err := c.exp.GrantAccess(ctx, connect.NewRequest(req))
	if code(err) != connect.CodeUnavailable || !strings.Contains(err.Error(), "portal offline") {
		t.Fatalf("grant with failing node = %v", err)
	}
	e.drv.SetFail("Export", nil)
	if _, err := c.exp.GrantAccess(ctx, connect.NewRequest(req)); err != nil {
		t.Fatalf("retry = %v", err)
	}
}
