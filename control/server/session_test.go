package server

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/vbs-storage/vbs/initiator/iscsi"
	vbsv1 "github.com/vbs-storage/vbs/proto/gen/vbs/v1"
	"github.com/vbs-storage/vbs/proto/gen/vbs/v1/vbsv1connect"
)

// TestGrantResizeRevokeLiveSession drives a real iSCSI session (the pure-Go
// initiator) against a node: CHAP is enforced, an online resize shows up
// in READ CAPACITY, and revoking the grant drops the live session and
// refuses the next login.
func TestGrantResizeRevokeLiveSession(t *testing.T) {
	a := startNode(t, "a", nil)
	defer a.stop(t)
	hc := &http.Client{}
	defer hc.CloseIdleConnections()
	base := "http://" + a.addrs.API
	vc := vbsv1connect.NewVolumeServiceClient(hc, base)
	ec := vbsv1connect.NewExportServiceClient(hc, base)
	oc := vbsv1connect.NewOperationServiceClient(hc, base)
	ctx := context.Background()
	const gib = 1 << 30
	const host = "iqn.2026-01.com.example:host1"
	eventually(t, "leader", func() bool {
		_, err := vc.CreateVolume(ctx, authed(&vbsv1.CreateVolumeRequest{Name: "v", SizeBytes: gib}, a.token))
		return err == nil
	})
	eventually(t, "available", func() bool {
		r, err := vc.GetVolume(ctx, authed(&vbsv1.GetVolumeRequest{Name: "v"}, a.token))
		return err == nil && r.Msg.Volume.State == vbsv1.VolumeState_VOLUME_STATE_AVAILABLE
	})
	g, err := ec.GrantAccess(ctx, authed(&vbsv1.GrantAccessRequest{Volume: "v", InitiatorIqn: host,
		Chap: &vbsv1.ChapCredentials{User: "host1", Secret: "host1-chap-secret"}}, a.token))
	if err != nil {
		t.Fatal(err)
	}
	cfg := iscsi.Config{Addr: g.Msg.Export.Portal, InitiatorName: host, TargetName: g.Msg.Export.TargetIqn,
		CHAP: &iscsi.Credentials{User: "host1", Secret: "wrong-chap-secret"}}
	if s, err := iscsi.Dial(ctx, cfg); err == nil {
		s.Close()
		t.Fatal("login with a wrong CHAP secret succeeded")
	}
	cfg.CHAP.Secret = "host1-chap-secret"
	s, err := iscsi.Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// A new session starts with a POWER ON unit attention; clear it.
	eventually(t, "unit ready", func() bool { return s.TestUnitReady(ctx, 0) == nil })
	block := bytes.Repeat([]byte{0x5a}, 4096)
	if err := s.Write16(ctx, 0, 7, 4096, block, true); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4096)
	if err := s.Read16(ctx, 0, 7, 4096, got); err != nil || !bytes.Equal(got, block) {
		t.Fatalf("read back: %v", err)
	}

	// Online resize: the session sees the new capacity (after the unit
	// attention the target raises).
	rr, err := vc.ResizeVolume(ctx, authed(&vbsv1.ResizeVolumeRequest{Name: "v", SizeBytes: 2 * gib}, a.token))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "resize done", func() bool {
		r, err := oc.GetOperation(ctx, authed(&vbsv1.GetOperationRequest{Id: rr.Msg.Operation.Id}, a.token))
		return err == nil && r.Msg.Operation.State == vbsv1.OperationState_OPERATION_STATE_SUCCEEDED
	})
	eventually(t, "the session sees 2 GiB", func() bool {
		c, err := s.ReadCapacity16(ctx, 0)
		return err == nil && c.Blocks*uint64(c.BlockSize) == 2*gib
	})

	// Revoke: the live session is dropped and a new login refused.
	if _, err := ec.RevokeAccess(ctx, authed(&vbsv1.RevokeAccessRequest{Volume: "v", InitiatorIqn: host}, a.token)); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	eventually(t, "the session to fail", func() bool {
		return s.Read16(cctx, 0, 7, 4096, got) != nil
	})
	if s2, err := iscsi.Dial(ctx, cfg); err == nil {
		s2.Close()
		t.Fatal("login after revoke succeeded")
	}
}
