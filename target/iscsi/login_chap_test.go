package iscsi

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// driver runs a login from Go, for tests that compute values the golden
// files cannot express.
type driver struct {
	t    *testing.T
	l    *Login
	resp PDU
}

func newDriver(t *testing.T, chap, mutual *Credentials) *driver {
	cfg := LoginConfig{
		LookupTarget: func(name string) (TargetInfo, bool) {
			return TargetInfo{Name: name, Authorize: func(string) (*Credentials, *Credentials, bool) {
				return chap, mutual, true
			}}, name == "iqn.2026-01.io.vbs:vol1"
		},
		Rand: &counterReader{next: 0x80},
	}
	return &driver{t: t, l: NewLogin(cfg)}
}

func (d *driver) step(transit bool, csg, nsg Stage, text string) (StepResult, map[string]string) {
	d.t.Helper()
	var req PDU
	req.SetOpcode(OpLoginReq, true)
	req.SetLoginStages(transit, false, csg, nsg)
	req.SetISID(0x400001370000)
	req.SetITT(5)
	req.Data = []byte(text)
	res := d.l.Step(&req, &d.resp)
	kvs, err := ParseText(d.resp.Data)
	if err != nil {
		d.t.Fatal(err)
	}
	m := make(map[string]string)
	for _, kv := range kvs {
		m[kv.Key] = kv.Value
	}
	return res, m
}

func TestMutualChapLibiscsiStyle(t *testing.T) {
	chap := &Credentials{User: "alice", Secret: "alice-secret-1"}
	mutual := &Credentials{User: "vbs-target", Secret: "target-secret-2"}
	d := newDriver(t, chap, mutual)
	res, m := d.step(true, StageSecurity, StageOperational,
		"InitiatorName=iqn.2026-01.io.vbs:host1\x00TargetName=iqn.2026-01.io.vbs:vol1\x00SessionType=Normal\x00AuthMethod=CHAP,None\x00")
	if res != StepContinue || m[KeyAuthMethod] != ValueCHAP || d.resp.Transit() {
		t.Fatalf("AuthMethod step: %v %v T=%v", res, m, d.resp.Transit())
	}
	res, m = d.step(false, StageSecurity, StageOperational, "CHAP_A=5\x00")
	if res != StepContinue || m[KeyChapA] != "5" {
		t.Fatalf("CHAP_A step: %v %v", res, m)
	}
	id, err := strconv.Atoi(m[KeyChapI])
	if err != nil || id != 0x80 {
		t.Fatalf("CHAP_I %q from the deterministic source, want 128", m[KeyChapI])
	}
	challenge, err := DecodeBinary(m[KeyChapC])
	if err != nil || len(challenge) != ChapChallengeLength {
		t.Fatalf("CHAP_C %q: %v", m[KeyChapC], err)
	}
	// libiscsi writes upper-case hex and sends its challenge in base64 here
	// to cover both encodings.
	r := ChapResponse(byte(id), []byte(chap.Secret), challenge)
	myChallenge := []byte("initiator-challenge-32-bytes-xyz")
	text := fmt.Sprintf("CHAP_N=alice\x00CHAP_R=0x%s\x00CHAP_I=200\x00CHAP_C=0b%s\x00",
		strings.ToUpper(EncodeHex(r[:])[2:]), base64.StdEncoding.EncodeToString(myChallenge))
	res, m = d.step(true, StageSecurity, StageOperational, text)
	if res != StepContinue || !d.resp.Transit() || d.resp.NSG() != StageOperational {
		t.Fatalf("response step: %v %v T=%v", res, m, d.resp.Transit())
	}
	if m[KeyChapN] != mutual.User {
		t.Fatalf("CHAP_N %q", m[KeyChapN])
	}
	tr, err := DecodeBinary(m[KeyChapR])
	if err != nil || !ChapVerify(200, []byte(mutual.Secret), myChallenge, tr) {
		t.Fatalf("target CHAP_R %q does not verify: %v", m[KeyChapR], err)
	}
	res, _ = d.step(true, StageOperational, StageFullFeature, "HeaderDigest=None\x00")
	if res != StepDone {
		t.Fatalf("operational step: %v", res)
	}
}

func TestLoginErrorStatus(t *testing.T) {
	var err error = loginErr(StatusInitiatorError, DetailTargetNotFound, "no target %q", "x")
	var le *LoginError
	if !errors.As(err, &le) || le.Status() != 0x0203 {
		t.Fatalf("got %v", err)
	}
	if want := `iscsi login: status 0x0203 (target not found): no target "x"`; err.Error() != want {
		t.Fatalf("Error() = %q, want %q", err.Error(), want)
	}
}

// TestCompleteErrors checks how Complete's answers reach the wire.
func TestCompleteErrors(t *testing.T) {
	tests := []struct {
		name   string
		result func(*Params) (uint16, error)
		status uint16
	}{
		{"login error", func(*Params) (uint16, error) {
			return 0, &LoginError{Class: StatusInitiatorError, Detail: DetailTooManyConnections}
		}, 0x0206},
		{"wrapped login error", func(*Params) (uint16, error) {
			return 0, fmt.Errorf("glue: %w", &LoginError{Class: StatusTargetError, Detail: DetailOutOfResources})
		}, 0x0302},
		{"plain error", func(*Params) (uint16, error) { return 0, errors.New("boom") }, 0x0300},
		{"zero TSIH", func(*Params) (uint16, error) { return 0, nil }, 0x0300},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := NewLogin(LoginConfig{
				LookupTarget: func(name string) (TargetInfo, bool) { return TargetInfo{Name: name}, true },
				Complete:     tt.result,
			})
			var req, resp PDU
			req.SetOpcode(OpLoginReq, true)
			req.SetLoginStages(true, false, StageOperational, StageFullFeature)
			req.Data = []byte("InitiatorName=iqn.i\x00TargetName=iqn.t\x00")
			if res := l.Step(&req, &resp); res != StepFail {
				t.Fatalf("got %v", res)
			}
			got := uint16(resp.BHS[offLoginStatusClass])<<8 | uint16(resp.BHS[offLoginStatusDetail])
			if got != tt.status {
				t.Fatalf("status 0x%04x, want 0x%04x", got, tt.status)
			}
		})
	}
}
