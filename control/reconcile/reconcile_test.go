package reconcile

import (
	"context"
	"errors"
	"github.com/vbs-storage/vbs/control/node/nodetest"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vbs-storage/vbs/control/catalog"
	"github.com/vbs-storage/vbs/control/node"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const gib = 1 << 30

// harness runs a real one-node catalog and a Reconciler over a nodetest.Driver.
type harness struct {
	t     *testing.T
	store *catalog.Store
	drv   *nodetest.Driver
	rec   *Reconciler
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

func newHarness(t *testing.T) *harness {
	t.Helper()
	st, err := catalog.Open(catalog.Config{
		NodeName: "n1", DataDir: t.TempDir(), BindAddr: freeAddr(t), Bootstrap: true,
		ElectionTimeout: 50 * time.Millisecond,
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
	h := &harness{t: t, store: st, drv: nodetest.NewDriver()}
	h.rec = New(Config{
		NodeName: "n1", Driver: h.drv, Catalog: st, Interval: time.Hour,
		Self: NodeInfo{Name: "n1", State: catalog.NodeAlive, APIAddress: "127.0.0.1:1"},
	})
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.rec.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		<-done
		if err := st.Close(); err != nil {
			t.Error(err)
		}
	})
	return h
}

func (h *harness) apply(c catalog.Command) {
	h.t.Helper()
	if _, err := h.store.Apply(context.Background(), c); err != nil {
		h.t.Fatalf("apply %T: %v", c, err)
	}
}

func (h *harness) sync(key Key) error {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return h.rec.Sync(ctx, key)
}

func (h *harness) volume(name string) catalog.Volume {
	var v catalog.Volume
	h.store.View(func(s *catalog.State) { v, _ = s.Volume(name) })
	return v
}

func (h *harness) waitOp(id string) catalog.Operation {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var o catalog.Operation
		changed := h.store.Changed()
		h.store.View(func(s *catalog.State) { o = *s.Operations[id] })
		if o.State.Final() {
			return o
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("operation %s still %s", id, o.State)
		}
		select {
		case <-changed:
		case <-time.After(time.Second):
		}
	}
}

func TestReconcileLifecycle(t *testing.T) {
	h := newHarness(t)
	h.apply(catalog.CreateVolume{Name: "a", SizeBytes: gib, BlockSize: 4096, Node: "n1"})
	if err := h.sync(VolumeKey("a")); err != nil {
		t.Fatal(err)
	}
	if v := h.volume("a"); v.State != catalog.VolumeAvailable {
		t.Fatalf("volume after pass = %+v", v)
	}
	if _, ok := h.drv.Volumes["a"]; !ok {
		t.Fatal("driver has no volume a")
	}
	var nodes int
	h.store.View(func(s *catalog.State) { nodes = len(s.Nodes) })
	if nodes != 1 {
		t.Fatalf("node records = %d", nodes)
	}

	// Snapshot, then a linked clone of it.
	h.apply(catalog.CreateSnapshot{Volume: "a", Name: "s"})
	if err := h.sync(SnapshotKey("a", "s")); err != nil {
		t.Fatal(err)
	}
	h.apply(catalog.CreateVolume{Name: "c", SizeBytes: gib, BlockSize: 4096, Node: "n1", Source: &catalog.SnapshotRef{Volume: "a", Snapshot: "s"}})
	if err := h.sync(VolumeKey("c")); err != nil {
		t.Fatal(err)
	}
	if h.drv.Volumes["c"].Source == nil {
		t.Fatal("clone made without source")
	}

	// Grant and revoke are enforced by the end of the next pass.
	h.apply(catalog.GrantAccess{Volume: "a", InitiatorIQN: "iqn.2026-01.x:h", TargetIQN: "iqn.t:a", CHAP: &catalog.CHAP{User: "u", Secret: "0123456789ab"}})
	if err := h.sync(ExportKey("a", "iqn.2026-01.x:h")); err != nil {
		t.Fatal(err)
	}
	if e := h.drv.Exported[[2]string{"a", "iqn.2026-01.x:h"}]; e.CHAP == nil || e.CHAP.Secret != "0123456789ab" {
		t.Fatalf("driver export = %+v", e)
	}
	// An export the catalog does not hold is withdrawn.
	h.drv.Mu.Lock()
	h.drv.Exported[[2]string{"a", "iqn.2026-01.x:stray"}] = node.ExportSpec{Volume: "a", TargetIQN: "iqn.t:a", InitiatorIQN: "iqn.2026-01.x:stray"}
	h.drv.Mu.Unlock()
	h.apply(catalog.RevokeAccess{Volume: "a", InitiatorIQN: "iqn.2026-01.x:h"})
	if err := h.sync(ExportKey("a", "iqn.2026-01.x:h")); err != nil {
		t.Fatal(err)
	}
	if len(h.drv.Exported) != 0 {
		t.Fatalf("driver exports after revoke = %+v", h.drv.Exported)
	}

	// Resize and revert run as operations.
	h.apply(catalog.CreateOperation{ID: "r1", Kind: catalog.OpResize, Volume: "a", SizeBytes: 2 * gib})
	h.rec.Kick()
	if o := h.waitOp("r1"); o.State != catalog.OpSucceeded || o.Progress != 100 {
		t.Fatalf("resize op = %+v", o)
	}
	if h.volume("a").SizeBytes != 2*gib || h.drv.Volumes["a"].SizeBytes != 2*gib {
		t.Fatalf("size after resize: catalog %d, driver %d", h.volume("a").SizeBytes, h.drv.Volumes["a"].SizeBytes)
	}
	h.apply(catalog.CreateOperation{ID: "v1", Kind: catalog.OpRevert, Volume: "a", Snapshot: "s"})
	h.rec.Kick()
	if o := h.waitOp("v1"); o.State != catalog.OpSucceeded || len(h.drv.Reverted) != 1 {
		t.Fatalf("revert op = %+v, reverted %v", o, h.drv.Reverted)
	}

	// Cascade delete removes the clone, the snapshot and the source.
	h.apply(catalog.DeleteVolume{Name: "a", Cascade: true})
	// Each pass removes one level of the tree (the clone, then its source).
	records := func() int {
		n := 0
		h.store.View(func(s *catalog.State) { n = len(s.Volumes) + len(s.Snapshots) })
		return n
	}
	for i := 0; i < 5 && records() > 0; i++ {
		if err := h.sync(VolumeKey("a")); err != nil {
			t.Fatal(err)
		}
	}
	var left int
	h.store.View(func(s *catalog.State) { left = len(s.Volumes) + len(s.Snapshots) })
	if len(h.drv.Volumes) != 0 || left != 0 {
		t.Fatalf("after cascade delete: driver %v, catalog has %d records", h.drv.Volumes, left)
	}
}

func TestReconcileDriverErrors(t *testing.T) {
	h := newHarness(t)
	boom := errors.New("pool offline")
	h.drv.SetFail("EnsureVolume", boom)
	h.apply(catalog.CreateVolume{Name: "a", SizeBytes: gib, BlockSize: 4096, Node: "n1"})
	if err := h.sync(VolumeKey("a")); !errors.Is(err, boom) {
		t.Fatalf("Sync = %v, want %v", err, boom)
	}
	if v := h.volume("a"); v.State != catalog.VolumeError || v.Reason != boom.Error() {
		t.Fatalf("volume = %+v, want error with reason", v)
	}
	// The next pass after the fault clears recovers the volume.
	h.drv.SetFail("EnsureVolume", nil)
	if err := h.sync(VolumeKey("a")); err != nil {
		t.Fatal(err)
	}
	if v := h.volume("a"); v.State != catalog.VolumeAvailable || v.Reason != "" {
		t.Fatalf("volume after recovery = %+v", v)
	}
	// A volume that errs while exported keeps its grants on the node.
	h.apply(catalog.GrantAccess{Volume: "a", InitiatorIQN: "iqn.2026-01.x:g", TargetIQN: "iqn.t:a"})
	if err := h.sync(ExportKey("a", "iqn.2026-01.x:g")); err != nil {
		t.Fatal(err)
	}
	h.drv.SetFail("EnsureVolume", boom)
	for i := 0; i < 2; i++ {
		if err := h.sync(VolumeKey("a")); !errors.Is(err, boom) {
			t.Fatalf("Sync = %v", err)
		}
	}
	h.drv.Mu.Lock()
	_, served := h.drv.Exported[[2]string{"a", "iqn.2026-01.x:g"}]
	h.drv.Mu.Unlock()
	if v := h.volume("a"); v.State != catalog.VolumeError || !served {
		t.Fatalf("volume %s, still exported %v", v.State, served)
	}
	h.drv.SetFail("EnsureVolume", nil)
	if err := h.sync(VolumeKey("a")); err != nil {
		t.Fatal(err)
	}
	if v := h.volume("a"); v.State != catalog.VolumeInUse {
		t.Fatalf("volume after recovery with a grant = %s", v.State)
	}
	h.apply(catalog.RevokeAccess{Volume: "a", InitiatorIQN: "iqn.2026-01.x:g"})

	// A failing export is reported to the caller waiting on it.
	h.drv.SetFail("Export", boom)
	h.apply(catalog.GrantAccess{Volume: "a", InitiatorIQN: "iqn.2026-01.x:h", TargetIQN: "iqn.t:a"})
	if err := h.sync(ExportKey("a", "iqn.2026-01.x:h")); !errors.Is(err, boom) {
		t.Fatalf("Sync(export) = %v", err)
	}
}

func TestReconcileCancelOperation(t *testing.T) {
	h := newHarness(t)
	h.apply(catalog.CreateVolume{Name: "a", SizeBytes: gib, BlockSize: 4096, Node: "n1"})
	if err := h.sync(VolumeKey("a")); err != nil {
		t.Fatal(err)
	}
	h.drv.Mu.Lock()
	h.drv.Block = make(chan struct{})
	h.drv.Mu.Unlock()
	h.apply(catalog.CreateOperation{ID: "r1", Kind: catalog.OpResize, Volume: "a", SizeBytes: 2 * gib})
	h.rec.Kick()
	// Wait until it is running, then cancel it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var st catalog.OpState
		changed := h.store.Changed()
		h.store.View(func(s *catalog.State) { st = s.Operations["r1"].State })
		if st == catalog.OpRunning {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("op state %s", st)
		}
		<-changed
	}
	h.apply(catalog.CancelOperation{ID: "r1"})
	h.rec.Kick()
	if o := h.waitOp("r1"); o.State != catalog.OpCancelled {
		t.Fatalf("op after cancel = %+v", o)
	}
	if h.volume("a").SizeBytes != gib {
		t.Fatal("cancelled resize changed the size")
	}
}

// TestReconcileRemoteNode places a volume on another node: the loop drives
// that node's driver (the node agent in production), not the local one,
// and reports a node it cannot reach.
func TestReconcileRemoteNode(t *testing.T) {
	h := newHarness(t)
	remote := nodetest.NewDriver()
	h.rec.cfg.Remote = func(n catalog.Node) node.Driver {
		if n.Name != "n2" || n.APIAddress != "10.0.0.2:7480" {
			t.Errorf("Remote(%+v)", n)
		}
		return remote
	}
	h.rec.cfg.Members = func() []NodeInfo {
		return []NodeInfo{
			{Name: "n1", State: catalog.NodeAlive},
			{Name: "n2", State: catalog.NodeAlive, APIAddress: "10.0.0.2:7480"},
		}
	}
	if err := h.sync(Key("node/n2")); err != nil { // records n2
		t.Fatal(err)
	}
	h.apply(catalog.CreateVolume{Name: "r", SizeBytes: gib, BlockSize: 4096, Node: "n2"})
	if err := h.sync(VolumeKey("r")); err != nil {
		t.Fatal(err)
	}
	h.apply(catalog.GrantAccess{Volume: "r", InitiatorIQN: "iqn.2026-01.x:h", TargetIQN: "iqn.t:r"})
	if err := h.sync(ExportKey("r", "iqn.2026-01.x:h")); err != nil {
		t.Fatal(err)
	}
	remote.Mu.Lock()
	_, vol := remote.Volumes["r"]
	_, exp := remote.Exported[[2]string{"r", "iqn.2026-01.x:h"}]
	remote.Mu.Unlock()
	h.drv.Mu.Lock()
	localVols := len(h.drv.Volumes)
	h.drv.Mu.Unlock()
	if !vol || !exp || localVols != 0 {
		t.Fatalf("remote volume %v export %v, local volumes %d", vol, exp, localVols)
	}
	// An unreachable node: its volumes go to ERROR saying why.
	h.rec.cfg.Members = func() []NodeInfo {
		return []NodeInfo{{Name: "n1", State: catalog.NodeAlive}, {Name: "n2", State: catalog.NodeFailed, APIAddress: "10.0.0.2:7480"}}
	}
	_ = h.sync(Key("node/n2")) // records n2 as failed
	err := h.sync(VolumeKey("r"))
	var nd *errNoDriver
	if !errors.As(err, &nd) || h.volume("r").State != catalog.VolumeError {
		t.Fatalf("unreachable node: %v, volume %s", err, h.volume("r").State)
	}
}
