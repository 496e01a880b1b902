package agent

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.uber.org/goleak"

	"github.com/vbs-storage/vbs/blockstore"
	"github.com/vbs-storage/vbs/control/node"
	"github.com/vbs-storage/vbs/control/node/local"
	"github.com/vbs-storage/vbs/target"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const mib = 1 << 20

// TestRoundTrip drives a real local node through the agent over HTTP and
// checks results and error classes survive the wire.
func TestRoundTrip(t *testing.T) {
	st, err := blockstore.Open(t.TempDir(), blockstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	n := local.New(st, target.NewServer(target.Options{Logger: slog.New(slog.DiscardHandler)}))
	defer func() {
		if err := n.Close(); err != nil {
			t.Error(err)
		}
	}()
	mux := http.NewServeMux()
	mux.Handle(Handler(n))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c := NewClient(srv.Client(), srv.URL)
	ctx := context.Background()

	if err := c.EnsureVolume(ctx, node.VolumeSpec{Name: "v", SizeBytes: 8 * mib, BlockSize: 4096}); err != nil {
		t.Fatal(err)
	}
	if err := c.ResizeVolume(ctx, "v", 16*mib); err != nil {
		t.Fatal(err)
	}
	s := node.SnapshotRef{Volume: "v", Snapshot: "s"}
	if err := c.CreateSnapshot(ctx, s); err != nil {
		t.Fatal(err)
	}
	if err := c.EnsureVolume(ctx, node.VolumeSpec{Name: "c", SizeBytes: 16 * mib, BlockSize: 4096, Source: &s}); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteSnapshot(ctx, s); !errors.Is(err, node.ErrBusy) {
		t.Fatalf("delete snapshot with clone = %v, want ErrBusy", err)
	}
	var progress int
	if err := c.FlattenVolume(ctx, "c", func(done, total uint64) { progress++ }); err != nil || progress == 0 {
		t.Fatalf("flatten = %v after %d progress messages", err, progress)
	}
	if err := c.RevertVolume(ctx, s); err != nil {
		t.Fatal(err)
	}
	g := node.ExportSpec{Volume: "v", TargetIQN: "iqn.2026-01.io.vbs:v", InitiatorIQN: "iqn.2026-01.x:h", CHAP: &node.CHAP{User: "u", Secret: "0123456789ab"}}
	if err := c.Export(ctx, g); err != nil {
		t.Fatal(err)
	}
	es, err := c.Exports(ctx)
	if err != nil || len(es) != 1 || es[0].CHAP == nil || *es[0].CHAP != *g.CHAP || es[0].TargetIQN != g.TargetIQN {
		t.Fatalf("exports = %+v, %v", es, err)
	}
	if err := c.RevertVolume(ctx, s); !errors.Is(err, node.ErrBusy) {
		t.Fatalf("revert exported = %v, want ErrBusy", err)
	}
	if err := c.Unexport(ctx, "v", g.InitiatorIQN); err != nil {
		t.Fatal(err)
	}
	stats, err := c.Stats(ctx)
	if err != nil || len(stats.Volumes) != 2 || stats.CapacityBytes == 0 {
		t.Fatalf("stats = %+v, %v", stats, err)
	}
	if err := c.ResizeVolume(ctx, "missing", mib); !errors.Is(err, node.ErrNotFound) {
		t.Fatalf("resize missing = %v, want ErrNotFound", err)
	}
	for _, name := range []string{"c", "v", "v"} {
		if err := c.DeleteVolume(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	srv.Client().CloseIdleConnections()
}
