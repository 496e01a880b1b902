package server

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"go.uber.org/goleak"

	vbsv1 "github.com/vbs-storage/vbs/proto/gen/vbs/v1"
	"github.com/vbs-storage/vbs/proto/gen/vbs/v1/vbsv1connect"
)

// raft's TCP transport does not close the connections it accepted when it
// closes, so with two nodes in one process the reader goroutine of a
// connection from a stopped peer outlives the test.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/hashicorp/raft.(*NetworkTransport).handleConn"),
		goleak.IgnoreAnyFunction("github.com/hashicorp/raft.(*NetworkTransport).handleConn"))
}

// TestRunServesAndStops runs a whole node in-process on free ports: it
// writes the token, serves the API over h2c (gRPC) and HTTP/1.1, reports
// ready and Raft/pool metrics, and stops cleanly when ctx ends.
func TestRunServesAndStops(t *testing.T) {
	dir := t.TempDir()
	ready := make(chan Addrs, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{
			DataDir: dir, NodeName: "n1", APIListen: "127.0.0.1:0", ISCSIListen: "127.0.0.1:0",
			RaftListen: "127.0.0.1:0", SerfListen: "127.0.0.1:0", ElectionTimeout: 100 * time.Millisecond,
			Ready: func(a Addrs) { ready <- a },
		}, nil)
	}()
	var addrs Addrs
	select {
	case addrs = <-ready:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("not started")
	}
	base := "http://" + addrs.API
	st, err := os.Stat(filepath.Join(dir, TokenFile))
	if err != nil || st.Mode().Perm() != secretMode {
		t.Fatalf("token file: %v %v", err, st.Mode())
	}
	token, err := ReadToken(filepath.Join(dir, TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, _ := get(PathReadyz)
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("never ready")
		}
		time.Sleep(20 * time.Millisecond) // polling an endpoint with a deadline
	}
	if code, body := get(PathHealthz); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("healthz = %d %q", code, body)
	}

	// gRPC over cleartext HTTP/2 (h2c) with the token.
	hc := &http.Client{Transport: &http.Transport{Protocols: h2cOnly()}}
	vc := vbsv1connect.NewVolumeServiceClient(hc, base, connect.WithGRPC())
	req := connect.NewRequest(&vbsv1.CreateVolumeRequest{Name: "v1", SizeBytes: 1 << 30})
	req.Header().Set("Authorization", "Bearer "+token)
	if _, err := vc.CreateVolume(ctx, req); err != nil {
		t.Fatalf("CreateVolume over gRPC/h2c: %v", err)
	}
	noAuth := connect.NewRequest(&vbsv1.ListVolumesRequest{})
	if _, err := vc.ListVolumes(ctx, noAuth); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("no token = %v", err)
	}

	_, metrics := get(PathMetrics)
	for _, want := range []string{"vbs_raft_is_leader 1", "vbs_raft_voters 1", "vbs_pool_capacity_bytes", `vbs_serf_members{status="alive"} 1`,
		"vbs_pool_written_bytes_total 0", "vbs_pool_gc_relocated_bytes_total 0", "vbs_pool_gc_segments_total 0",
		"vbs_pool_write_amplification 1", "vbs_pool_corruptions_total 0",
		`vbs_api_requests_total{code="ok",procedure="/vbs.v1.VolumeService/CreateVolume"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	hc.CloseIdleConnections()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not stop")
	}
}

func h2cOnly() *http.Protocols {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	return p
}
