package server

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	vbsv1 "github.com/vbs-storage/vbs/proto/gen/vbs/v1"
	"github.com/vbs-storage/vbs/proto/gen/vbs/v1/vbsv1connect"
)

type testNode struct {
	addrs  Addrs
	token  string
	cancel context.CancelFunc
	done   chan error
}

func startNode(t *testing.T, name string, join []string, token ...string) *testNode {
	t.Helper()
	dir := t.TempDir()
	if len(token) > 0 { // share the cluster's token
		if err := os.WriteFile(filepath.Join(dir, TokenFile), []byte(token[0]+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ready := make(chan Addrs, 1)
	ctx, cancel := context.WithCancel(context.Background())
	n := &testNode{cancel: cancel, done: make(chan error, 1)}
	go func() {
		n.done <- Run(ctx, Config{
			DataDir: dir, NodeName: name, APIListen: "127.0.0.1:0", ISCSIListen: "127.0.0.1:0",
			RaftListen: "127.0.0.1:0", SerfListen: "127.0.0.1:0", Join: join,
			ElectionTimeout: 100 * time.Millisecond, ReconcileInterval: 200 * time.Millisecond,
			Ready: func(a Addrs) { ready <- a },
		}, testLogger(t, name))
	}()
	select {
	case n.addrs = <-ready:
	case err := <-n.done:
		t.Fatalf("Run %s: %v", name, err)
	case <-time.After(30 * time.Second):
		t.Fatalf("%s not started", name)
	}
	tok, err := ReadToken(filepath.Join(dir, TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	n.token = tok
	return n
}

// testLogger sends warnings and errors to the test log, so a failing
// cluster test shows what raft and serf said.
func testLogger(t *testing.T, name string) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})).With("test_node", name)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func (n *testNode) stop(t *testing.T) {
	t.Helper()
	n.cancel()
	select {
	case err := <-n.done:
		if err != nil {
			t.Errorf("Run returned %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("node did not stop")
	}
}

func authed[T any](msg *T, token string) *connect.Request[T] {
	r := connect.NewRequest(msg)
	r.Header().Set("Authorization", "Bearer "+token)
	return r
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond) // polling other nodes, bounded
	}
}

// TestJoinAndLeave grows a one-node cluster to two with --join, checks the
// catalog replicates, then stops the second node and checks the first
// still accepts writes (the leaver was removed from the raft voters, so
// quorum was not lost).
func TestJoinAndLeave(t *testing.T) {
	a := startNode(t, "a", nil)
	defer a.stop(t)
	hc := &http.Client{}
	defer hc.CloseIdleConnections()
	av := vbsv1connect.NewVolumeServiceClient(hc, "http://"+a.addrs.API)
	an := vbsv1connect.NewNodeServiceClient(hc, "http://"+a.addrs.API)
	ctx := context.Background()
	eventually(t, "a leads", func() bool {
		_, err := av.CreateVolume(ctx, authed(&vbsv1.CreateVolumeRequest{Name: "v1", SizeBytes: 1 << 30}, a.token))
		return err == nil
	})

	b := startNode(t, "b", []string{a.addrs.Serf})
	bv := vbsv1connect.NewVolumeServiceClient(hc, "http://"+b.addrs.API)
	eventually(t, "b has the catalog", func() bool {
		r, err := bv.GetVolume(ctx, authed(&vbsv1.GetVolumeRequest{Name: "v1"}, b.token))
		return err == nil && r.Msg.Volume.Name == "v1"
	})
	eventually(t, "two alive nodes", func() bool {
		r, err := an.ListNodes(ctx, authed(&vbsv1.ListNodesRequest{}, a.token))
		return err == nil && len(r.Msg.Nodes) == 2 && r.Msg.Nodes[1].State == vbsv1.NodeState_NODE_STATE_ALIVE
	})
	// A follower refuses writes and names the leader.
	if _, err := bv.CreateVolume(ctx, authed(&vbsv1.CreateVolumeRequest{Name: "v2", SizeBytes: 1 << 30}, b.token)); connect.CodeOf(err) != connect.CodeUnavailable {
		t.Fatalf("write on follower = %v", err)
	}

	b.stop(t)
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := av.CreateVolume(wctx, authed(&vbsv1.CreateVolumeRequest{Name: "v3", SizeBytes: 1 << 30}, a.token)); err != nil {
		t.Fatalf("write after b left: %v", err)
	}
}

// TestLeaderLeaves stops the node that bootstrapped (and leads) a
// two-node cluster: it hands leadership over and is removed, and the
// remaining node keeps accepting writes.
func TestLeaderLeaves(t *testing.T) {
	a := startNode(t, "a", nil)
	hc := &http.Client{}
	defer hc.CloseIdleConnections()
	av := vbsv1connect.NewVolumeServiceClient(hc, "http://"+a.addrs.API)
	ctx := context.Background()
	eventually(t, "a leads", func() bool {
		_, err := av.CreateVolume(ctx, authed(&vbsv1.CreateVolumeRequest{Name: "v1", SizeBytes: 1 << 30}, a.token))
		return err == nil
	})
	b := startNode(t, "b", []string{a.addrs.Serf})
	defer b.stop(t)
	bv := vbsv1connect.NewVolumeServiceClient(hc, "http://"+b.addrs.API)
	// b holds the catalog only once the leader made it a voter.
	eventually(t, "b is a voter", func() bool {
		_, err := bv.GetVolume(ctx, authed(&vbsv1.GetVolumeRequest{Name: "v1"}, b.token))
		return err == nil
	})
	a.stop(t)
	eventually(t, "b accepts writes alone", func() bool {
		_, err := bv.CreateVolume(ctx, authed(&vbsv1.CreateVolumeRequest{Name: "v2", SizeBytes: 1 << 30}, b.token))
		return err == nil
	})
}

// TestRemoteVolume places a volume on the follower: the leader drives the
// follower's block store and target through its node agent, and the grant
// points initiators at the follower's portal.
func TestRemoteVolume(t *testing.T) {
	a := startNode(t, "a", nil)
	defer a.stop(t)
	hc := &http.Client{}
	defer hc.CloseIdleConnections()
	av := vbsv1connect.NewVolumeServiceClient(hc, "http://"+a.addrs.API)
	ae := vbsv1connect.NewExportServiceClient(hc, "http://"+a.addrs.API)
	an := vbsv1connect.NewNodeServiceClient(hc, "http://"+a.addrs.API)
	ctx := context.Background()
	b := startNode(t, "b", []string{a.addrs.Serf}, a.token)
	defer b.stop(t)
	eventually(t, "b alive in the catalog", func() bool {
		r, err := an.GetNode(ctx, authed(&vbsv1.GetNodeRequest{Name: "b"}, a.token))
		return err == nil && r.Msg.Node.State == vbsv1.NodeState_NODE_STATE_ALIVE && r.Msg.Node.CapacityBytes > 0
	})
	if _, err := av.CreateVolume(ctx, authed(&vbsv1.CreateVolumeRequest{Name: "rv", SizeBytes: 1 << 30, Node: "b"}, a.token)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "rv available on b", func() bool {
		r, err := av.GetVolume(ctx, authed(&vbsv1.GetVolumeRequest{Name: "rv"}, a.token))
		return err == nil && r.Msg.Volume.State == vbsv1.VolumeState_VOLUME_STATE_AVAILABLE && r.Msg.Volume.Node == "b"
	})
	g, err := ae.GrantAccess(ctx, authed(&vbsv1.GrantAccessRequest{Volume: "rv", InitiatorIqn: "iqn.2026-01.com.example:h"}, a.token))
	if err != nil {
		t.Fatal(err)
	}
	if g.Msg.Export.Portal != b.addrs.ISCSI {
		t.Fatalf("portal = %s, want b's %s", g.Msg.Export.Portal, b.addrs.ISCSI)
	}
	r, err := an.GetNode(ctx, authed(&vbsv1.GetNodeRequest{Name: "b"}, a.token))
	if err != nil || r.Msg.Node.Volumes != 1 {
		t.Fatalf("node b = %v, %v", r, err)
	}
	if _, err := av.DeleteVolume(ctx, authed(&vbsv1.DeleteVolumeRequest{Name: "rv", Cascade: true}, a.token)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "rv deleted on b", func() bool {
		_, err := av.GetVolume(ctx, authed(&vbsv1.GetVolumeRequest{Name: "rv"}, a.token))
		return connect.CodeOf(err) == connect.CodeNotFound
	})
}
