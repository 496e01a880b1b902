package local

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"testing"

	"github.com/vbs-storage/vbs/blockstore"
	"github.com/vbs-storage/vbs/control/node"
	"github.com/vbs-storage/vbs/target"
)

const mib = 1 << 20

func newNode(t *testing.T) (*Node, *target.Server) {
	t.Helper()
	st, err := blockstore.Open(t.TempDir(), blockstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tgt := target.NewServer(target.Options{Logger: slog.New(slog.DiscardHandler)})
	n := New(st, tgt)
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Error(err)
		}
	})
	return n, tgt
}

func TestVolumes(t *testing.T) {
	n, _ := newNode(t)
	ctx := context.Background()
	spec := node.VolumeSpec{Name: "v", SizeBytes: 8 * mib, BlockSize: 4096}
	for i := 0; i < 2; i++ { // idempotent
		if err := n.EnsureVolume(ctx, spec); err != nil {
			t.Fatal(err)
		}
	}
	spec.SizeBytes = 16 * mib
	if err := n.EnsureVolume(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := n.ResizeVolume(ctx, "v", 8*mib); err != nil { // never shrinks
		t.Fatal(err)
	}
	st, err := n.Stats(ctx)
	if err != nil || len(st.Volumes) != 1 || st.Volumes[0].SizeBytes != 16*mib || st.CapacityBytes == 0 {
		t.Fatalf("stats = %+v, %v", st, err)
	}
	if err := n.ResizeVolume(ctx, "missing", mib); !errors.Is(err, node.ErrNotFound) {
		t.Fatalf("resize missing = %v", err)
	}
	if err := n.EnsureVolume(ctx, node.VolumeSpec{Name: "v", SizeBytes: 16 * mib, BlockSize: 512}); err == nil {
		t.Fatal("block size mismatch accepted")
	}
	for i := 0; i < 2; i++ {
		if err := n.DeleteVolume(ctx, "v"); err != nil {
			t.Fatal(err)
		}
	}
}

func TestExports(t *testing.T) {
	n, tgt := newNode(t)
	ctx := context.Background()
	if err := n.EnsureVolume(ctx, node.VolumeSpec{Name: "v", SizeBytes: 8 * mib, BlockSize: 512}); err != nil {
		t.Fatal(err)
	}
	if err := n.Export(ctx, node.ExportSpec{Volume: "missing", TargetIQN: "iqn.2026-01.io.vbs:missing", InitiatorIQN: "iqn.2026-01.x:a"}); !errors.Is(err, node.ErrNotFound) {
		t.Fatalf("export of missing volume = %v", err)
	}
	a := node.ExportSpec{Volume: "v", TargetIQN: "iqn.2026-01.io.vbs:v", InitiatorIQN: "iqn.2026-01.x:a"}
	b := a
	b.InitiatorIQN, b.CHAP = "iqn.2026-01.x:b", &node.CHAP{User: "u", Secret: "0123456789ab"}
	for _, e := range []node.ExportSpec{a, b, b} {
		if err := n.Export(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	got, err := n.Exports(ctx)
	if err != nil || len(got) != 2 || got[0].InitiatorIQN != a.InitiatorIQN || got[1].CHAP == nil || got[1].CHAP.Secret != "0123456789ab" {
		t.Fatalf("exports = %+v, %v", got, err)
	}
	// Deleting an exported volume is refused by the store while served;
	// DeleteVolume stops serving first.
	if err := n.Unexport(ctx, "v", a.InitiatorIQN); err != nil {
		t.Fatal(err)
	}
	if err := n.Unexport(ctx, "v", a.InitiatorIQN); err != nil { // idempotent
		t.Fatal(err)
	}
	if err := tgt.SetAccess(a.TargetIQN, nil); err != nil {
		t.Fatalf("target removed while b still has a grant: %v", err)
	}
	if err := n.Unexport(ctx, "v", b.InitiatorIQN); err != nil {
		t.Fatal(err)
	}
	if err := tgt.RemoveTarget(a.TargetIQN); !errors.Is(err, target.ErrNoSuchTarget) {
		t.Fatalf("target still served after the last unexport: %v", err)
	}
	if err := n.Export(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := n.DeleteVolume(ctx, "v"); err != nil {
		t.Fatalf("delete exported volume: %v", err)
	}
	if got, _ := n.Exports(ctx); len(got) != 0 {
		t.Fatalf("exports after delete = %+v", got)
	}
}

// TestSnapshotsClonesRevertFlatten drives the data operations through the
// driver and checks the bytes a volume serves after each.
func TestSnapshotsClonesRevertFlatten(t *testing.T) {
	n, _ := newNode(t)
	ctx := context.Background()
	if err := n.EnsureVolume(ctx, node.VolumeSpec{Name: "v", SizeBytes: 8 * mib, BlockSize: 4096}); err != nil {
		t.Fatal(err)
	}
	write := func(vol string, b byte) {
		t.Helper()
		h, err := n.store.OpenVolume(vol)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		if err := h.WriteAt(ctx, bytes.Repeat([]byte{b}, 4096), 0, false); err != nil {
			t.Fatal(err)
		}
	}
	read := func(vol string) byte {
		t.Helper()
		h, err := n.store.OpenVolume(vol)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		p := make([]byte, 4096)
		if err := h.ReadAt(ctx, p, 0); err != nil {
			t.Fatal(err)
		}
		return p[0]
	}
	write("v", 0xaa)
	s := node.SnapshotRef{Volume: "v", Snapshot: "s"}
	for i := 0; i < 2; i++ { // idempotent
		if err := n.CreateSnapshot(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	write("v", 0xbb)
	clone := node.VolumeSpec{Name: "c", SizeBytes: 16 * mib, BlockSize: 4096, Source: &s}
	for i := 0; i < 2; i++ {
		if err := n.EnsureVolume(ctx, clone); err != nil {
			t.Fatal(err)
		}
	}
	if got := read("c"); got != 0xaa {
		t.Fatalf("clone reads %#x, want the snapshot's 0xaa", got)
	}
	if err := n.DeleteSnapshot(ctx, s); !errors.Is(err, node.ErrBusy) {
		t.Fatalf("delete snapshot with a clone = %v", err)
	}
	var calls int
	if err := n.FlattenVolume(ctx, "c", func(done, total uint64) { calls++ }); err != nil {
		t.Fatal(err)
	}
	if calls == 0 || read("c") != 0xaa {
		t.Fatalf("flatten: %d progress calls, clone reads %#x", calls, read("c"))
	}
	if err := n.RevertVolume(ctx, s); err != nil {
		t.Fatal(err)
	}
	if got := read("v"); got != 0xaa {
		t.Fatalf("reverted volume reads %#x", got)
	}
	if err := n.Export(ctx, node.ExportSpec{Volume: "v", TargetIQN: "iqn.2026-01.io.vbs:v", InitiatorIQN: "iqn.2026-01.x:a"}); err != nil {
		t.Fatal(err)
	}
	if err := n.RevertVolume(ctx, s); !errors.Is(err, node.ErrBusy) {
		t.Fatalf("revert of an exported volume = %v", err)
	}
	for i := 0; i < 2; i++ {
		if err := n.DeleteSnapshot(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.CreateSnapshot(ctx, node.SnapshotRef{Volume: "missing", Snapshot: "s"}); !errors.Is(err, node.ErrNotFound) {
		t.Fatalf("snapshot of a missing volume = %v", err)
	}
}
