package target

import (
	"errors"
	"testing"

	"github.com/vbs-storage/vbs/target/iscsi"
	"github.com/vbs-storage/vbs/target/scsi"
)

func TestAuthorize(t *testing.T) {
	targetCHAP := &iscsi.Credentials{User: "t", Secret: "target-wide-1"}
	targetMutual := &iscsi.Credentials{User: "m", Secret: "target-mutual-1"}
	ownCHAP := &iscsi.Credentials{User: "own", Secret: "own-secret-123"}
	tests := []struct {
		name       string
		access     []AccessEntry
		initiator  string
		chap, mut  *iscsi.Credentials
		wantAccess bool
	}{
		{"open target", nil, "iqn.a", targetCHAP, targetMutual, true},
		{"listed", []AccessEntry{{Initiator: "iqn.a"}}, "iqn.a", targetCHAP, targetMutual, true},
		{"not listed", []AccessEntry{{Initiator: "iqn.a"}}, "iqn.b", nil, nil, false},
		{"own CHAP overrides", []AccessEntry{{Initiator: "iqn.a", CHAP: ownCHAP}}, "iqn.a", ownCHAP, targetMutual, true},
	}
	for _, tt := range tests {
		e := &exported{cfg: TargetConfig{IQN: "iqn.t", CHAP: targetCHAP, MutualCHAP: targetMutual, Access: tt.access}}
		chap, mut, ok := e.authorize(tt.initiator)
		if ok != tt.wantAccess || chap != tt.chap || mut != tt.mut {
			t.Errorf("%s: authorize = %v, %v, %v", tt.name, chap, mut, ok)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	s := NewServer(Options{})
	defer s.Close()
	st := scsi.NewTarget(scsi.TargetOptions{})
	tests := []struct {
		name string
		cfg  TargetConfig
		want error
	}{
		{"no IQN", TargetConfig{SCSI: st}, ErrBadConfig},
		{"no LUNs", TargetConfig{IQN: "iqn.x"}, ErrBadConfig},
		{"mutual without CHAP", TargetConfig{IQN: "iqn.x", SCSI: st, MutualCHAP: &iscsi.Credentials{User: "a", Secret: "b"}}, ErrBadConfig},
		{"empty access entry", TargetConfig{IQN: "iqn.x", SCSI: st, Access: []AccessEntry{{}}}, ErrBadConfig},
	}
	for _, tt := range tests {
		if err := s.AddTarget(tt.cfg); !errors.Is(err, tt.want) {
			t.Errorf("%s: AddTarget = %v; want %v", tt.name, err, tt.want)
		}
	}
	if err := s.AddTarget(TargetConfig{IQN: "iqn.x", SCSI: st}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddTarget(TargetConfig{IQN: "iqn.x", SCSI: st}); !errors.Is(err, ErrTargetExists) {
		t.Errorf("second AddTarget = %v; want ErrTargetExists", err)
	}
	if err := s.RemoveTarget("iqn.y"); !errors.Is(err, ErrNoSuchTarget) {
		t.Errorf("RemoveTarget(unknown) = %v", err)
	}
	if err := s.SetAccess("iqn.y", nil); !errors.Is(err, ErrNoSuchTarget) {
		t.Errorf("SetAccess(unknown) = %v", err)
	}
}

// TestMaxSessions: logins beyond MaxSessions fail with "out of resources".
func TestMaxSessions(t *testing.T) {
	ts := startServer(t, Options{MaxSessions: 1}, nil)
	a := dial(t, ts.addr)
	a.mustLogin(loginKeys(testInitiator))
	b := dial(t, ts.addr)
	b.isid++
	if c, d := b.login(loginKeys(testInitiator)); c != iscsi.StatusTargetError || d != iscsi.DetailOutOfResources {
		t.Fatalf("second session: 0x%02x%02x; want 0x0302", c, d)
	}
	// Reinstating the one session is still allowed.
	c := dial(t, ts.addr)
	c.mustLogin(loginKeys(testInitiator))
	a.expectClosed()
}

// TestMCSRefused: a second connection naming an existing TSIH is refused
// (MC/S is not offered).
func TestMCSRefused(t *testing.T) {
	ts := startServer(t, Options{}, nil)
	a := dial(t, ts.addr)
	a.mustLogin(loginKeys(testInitiator))
	b := dial(t, ts.addr)
	b.tsih = a.tsih
	if c, d := b.login(loginKeys(testInitiator)); c != iscsi.StatusInitiatorError || d != iscsi.DetailTooManyConnections {
		t.Fatalf("second connection: 0x%02x%02x; want 0x0206", c, d)
	}
	u := dial(t, ts.addr)
	u.tsih = 0x7777
	if c, d := u.login(loginKeys(testInitiator)); c != iscsi.StatusInitiatorError || d != iscsi.DetailSessionDoesNotExist {
		t.Fatalf("unknown TSIH: 0x%02x%02x; want 0x020a", c, d)
	}
	a.writeImmediate(0, make([]byte, testBlockSize))
}
