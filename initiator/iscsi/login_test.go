package iscsi

import (
	"bytes"
	"errors"
	"strconv"
	"testing"

	wire "github.com/vbs-storage/vbs/target/iscsi"
)

// loginResp builds a Login Response.
func loginResp(csg wire.Stage, transit bool, nsg wire.Stage, tsih uint16, kvs ...wire.KV) *wire.PDU {
	p := &wire.PDU{}
	p.SetOpcode(wire.OpLoginResp, false)
	p.SetLoginStages(transit, false, csg, nsg)
	p.SetITT(loginITT)
	p.SetTSIH(tsih)
	p.SetStatSN(100)
	p.SetExpCmdSN(loginCmdSN)
	p.SetMaxCmdSN(loginCmdSN + 31)
	p.Data = wire.EncodeText(kvs)
	return p
}

// keysOf parses a request's keys into a map and checks its header.
func keysOf(t *testing.T, p *wire.PDU) map[string]string {
	t.Helper()
	if p.Opcode() != wire.OpLoginReq || !p.Immediate() || p.ISID() != 0x80_1234_5678 {
		t.Fatalf("bad login request header % x", p.BHS[:])
	}
	kvs, err := wire.ParseText(p.Data)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, kv := range kvs {
		m[kv.Key] = kv.Value
	}
	return m
}

// fixedRand is a deterministic randomness source.
func fixedRand(b byte) *bytes.Reader { return bytes.NewReader(bytes.Repeat([]byte{b}, 4096)) }

// step sends one request and feeds the response, returning the request's
// keys.
func step(t *testing.T, m *loginMachine, resp *wire.PDU) (map[string]string, *wire.PDU, bool, error) {
	t.Helper()
	var req wire.PDU
	if err := m.request(&req); err != nil {
		t.Fatal(err)
	}
	keys := keysOf(t, &req)
	done, err := m.response(resp)
	return keys, &req, done, err
}

func TestLoginNoAuth(t *testing.T) {
	cfg := testConfig(t, nil)
	m := newLoginMachine(&cfg, false, fixedRand(1))
	keys, req, done, err := step(t, m, loginResp(wire.StageSecurity, true, wire.StageOperational, 0, kv(keyAuthMethod, valueNone)))
	if err != nil || done {
		t.Fatalf("security: done=%v err=%v", done, err)
	}
	if keys[keyAuthMethod] != valueNone || keys[keyInitiatorName] != cfg.InitiatorName || keys[keyTargetName] != cfg.TargetName ||
		keys[keySessionType] != valueNormal || !req.Transit() || req.CSG() != wire.StageSecurity || req.NSG() != wire.StageOperational {
		t.Fatalf("first request %v flags %#x", keys, req.Flags())
	}
	// The target answers some keys, then asks for more with T=0.
	keys, req, done, err = step(t, m, loginResp(wire.StageOperational, false, 0, 0, kv(keyMaxBurstLength, "65536"), kv("X-com.example-k", "v")))
	if err != nil || done {
		t.Fatalf("operational 1: done=%v err=%v", done, err)
	}
	if keys[keyMaxBurstLength] != "1048576" || keys[keyMaxRecvDSL] != "262144" || req.NSG() != wire.StageFullFeature {
		t.Fatalf("offers %v", keys)
	}
	keys, _, done, err = step(t, m, loginResp(wire.StageOperational, true, wire.StageFullFeature, 9, kv(keyMaxRecvDSL, "8192")))
	if err != nil || !done {
		t.Fatalf("operational 2: done=%v err=%v", done, err)
	}
	if keys["X-com.example-k"] != wire.ValueNotUnderstood || len(keys) != 1 {
		t.Fatalf("answers %v", keys)
	}
	p := m.params()
	if p.TSIH != 9 || p.MaxBurstLength != 65536 || p.MaxXmitDataSegmentLength != 8192 || m.expStatSN != 101 {
		t.Fatalf("params %+v expStatSN %d", p, m.expStatSN)
	}
}

// chapTarget plays the target side of a CHAP exchange for tests.
func chapSteps(t *testing.T, cfg *Config, tamper func(id byte, chal []byte) wire.KV) error {
	t.Helper()
	m := newLoginMachine(cfg, false, fixedRand(7))
	keys, _, _, err := step(t, m, loginResp(wire.StageSecurity, false, 0, 0, kv(keyAuthMethod, valueCHAP)))
	if err != nil {
		return err
	}
	if keys[keyAuthMethod] != valueCHAP {
		t.Fatalf("AuthMethod %q", keys[keyAuthMethod])
	}
	chal := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	keys, _, _, err = step(t, m, loginResp(wire.StageSecurity, false, 0, 0,
		kv(keyChapA, "5"), kv(keyChapI, "42"), kv(keyChapC, wire.EncodeHex(chal))))
	if err != nil {
		return err
	}
	if keys[keyChapA] != "5" {
		t.Fatalf("CHAP_A %q", keys[keyChapA])
	}
	// The next request carries our response (and our challenge).
	var req wire.PDU
	if err := m.request(&req); err != nil {
		t.Fatal(err)
	}
	keys = keysOf(t, &req)
	want := wire.ChapResponse(42, []byte(cfg.CHAP.Secret), chal)
	if keys[keyChapN] != cfg.CHAP.User || keys[keyChapR] != wire.EncodeHex(want[:]) {
		t.Fatalf("chap reply %v", keys)
	}
	var final []wire.KV
	if cfg.MutualCHAP != nil {
		id, err := strconv.Atoi(keys[keyChapI])
		if err != nil {
			t.Fatal(err)
		}
		ours, err := wire.DecodeBinary(keys[keyChapC])
		if err != nil || len(ours) != wire.ChapChallengeLength || bytes.Equal(ours, chal) {
			t.Fatalf("our challenge %q", keys[keyChapC])
		}
		final = append(final, kv(keyChapN, "tgt"), tamper(byte(id), ours))
	}
	_, err = m.response(loginResp(wire.StageSecurity, true, wire.StageOperational, 0, final...))
	return err
}

func TestLoginCHAP(t *testing.T) {
	secret := "target-secret"
	good := func(id byte, chal []byte) wire.KV {
		r := wire.ChapResponse(id, []byte(secret), chal)
		return kv(keyChapR, wire.EncodeHex(r[:]))
	}
	tests := []struct {
		name   string
		mutual *Credentials
		tamper func(id byte, chal []byte) wire.KV
		want   error
	}{
		{name: "one-way"},
		{name: "mutual", mutual: &Credentials{User: "tgt", Secret: secret}, tamper: good},
		{name: "mutual any name", mutual: &Credentials{Secret: secret}, tamper: good},
		{name: "mutual wrong name", mutual: &Credentials{User: "other", Secret: secret}, tamper: good, want: ErrAuth},
		{name: "mutual wrong secret", mutual: &Credentials{User: "tgt", Secret: "nope-nope"}, tamper: good, want: ErrAuth},
		{name: "mutual garbage", mutual: &Credentials{User: "tgt", Secret: secret},
			tamper: func(byte, []byte) wire.KV { return kv(keyChapR, "zz") }, want: ErrAuth},
		{name: "mutual reflection", mutual: &Credentials{User: "tgt", Secret: secret},
			tamper: func(byte, []byte) wire.KV {
				// The target sends back our own response.
				r := wire.ChapResponse(42, []byte("initiator-secret"), []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
				return kv(keyChapR, wire.EncodeHex(r[:]))
			}, want: ErrAuth},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, func(c *Config) {
				c.CHAP = &Credentials{User: "alice", Secret: "initiator-secret"}
				c.MutualCHAP = tc.mutual
			})
			err := chapSteps(t, &cfg, tc.tamper)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestLoginCHAPBadChallenge(t *testing.T) {
	for name, kvs := range map[string][]wire.KV{
		"wrong algorithm":   {kv(keyChapA, "7"), kv(keyChapI, "1"), kv(keyChapC, "0x0102")},
		"bad identifier":    {kv(keyChapA, "5"), kv(keyChapI, "300"), kv(keyChapC, "0x0102")},
		"empty challenge":   {kv(keyChapA, "5"), kv(keyChapI, "1"), kv(keyChapC, "0x")},
		"missing challenge": {kv(keyChapA, "5"), kv(keyChapI, "1")},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(t, func(c *Config) { c.CHAP = &Credentials{User: "u", Secret: "s"} })
			m := newLoginMachine(&cfg, false, fixedRand(1))
			if _, _, _, err := step(t, m, loginResp(wire.StageSecurity, false, 0, 0, kv(keyAuthMethod, valueCHAP))); err != nil {
				t.Fatal(err)
			}
			if _, _, _, err := step(t, m, loginResp(wire.StageSecurity, false, 0, 0, kvs...)); !errors.Is(err, ErrAuth) {
				t.Fatalf("got %v, want ErrAuth", err)
			}
		})
	}
	// A target that skips authentication we asked for is refused.
	cfg := testConfig(t, func(c *Config) { c.CHAP = &Credentials{User: "u", Secret: "s"} })
	m := newLoginMachine(&cfg, false, fixedRand(1))
	if _, _, _, err := step(t, m, loginResp(wire.StageSecurity, true, wire.StageOperational, 0, kv(keyAuthMethod, valueNone))); !errors.Is(err, ErrAuth) {
		t.Fatalf("AuthMethod=None answer: %v, want ErrAuth", err)
	}
}

func TestLoginStatus(t *testing.T) {
	cfg := testConfig(t, nil)
	fail := func(class, detail byte, kvs ...wire.KV) error {
		m := newLoginMachine(&cfg, false, fixedRand(1))
		p := loginResp(wire.StageSecurity, false, 0, 0, kvs...)
		p.BHS[offStatusClass], p.BHS[offStatusDetail] = class, detail
		_, _, _, err := step(t, m, p)
		return err
	}
	err := fail(LoginClassRedirection, LoginDetailMovedPermanently, kv(keyTargetAddress, "10.1.2.3:3260,2"))
	var re *RedirectError
	if !errors.As(err, &re) || !re.Permanent || re.Addr != "10.1.2.3:3260,2" || re.Host() != "10.1.2.3:3260" {
		t.Fatalf("redirect: %v", err)
	}
	var le *LoginError
	if err := fail(LoginClassInitiatorErr, LoginDetailForbidden); !errors.As(err, &le) || le.Detail != LoginDetailForbidden || le.AuthFailure() {
		t.Fatalf("forbidden: %v", err)
	}
	if err := fail(LoginClassTargetErr, 0); !errors.As(err, &le) || le.Class != LoginClassTargetErr {
		t.Fatalf("target error: %v", err)
	}
}

func TestLoginProtocolErrors(t *testing.T) {
	cfg := testConfig(t, nil)
	tests := map[string]func(p *wire.PDU){
		"wrong opcode":    func(p *wire.PDU) { p.SetOpcode(wire.OpTextResp, false) },
		"wrong itt":       func(p *wire.PDU) { p.SetITT(5) },
		"wrong version":   func(p *wire.PDU) { p.SetByte3(1) },
		"C and T":         func(p *wire.PDU) { p.SetFlags(p.Flags() | wire.FlagContinue) },
		"stage mismatch":  func(p *wire.PDU) { p.SetLoginStages(true, false, wire.StageOperational, wire.StageFullFeature) },
		"bad text":        func(p *wire.PDU) { p.Data = []byte("novalue\x00") },
		"reserved stage2": func(p *wire.PDU) { p.SetLoginStages(true, false, wire.StageSecurity, 2) },
	}
	for name, mod := range tests {
		t.Run(name, func(t *testing.T) {
			m := newLoginMachine(&cfg, false, fixedRand(1))
			p := loginResp(wire.StageSecurity, true, wire.StageOperational, 0, kv(keyAuthMethod, valueNone))
			mod(p)
			if _, _, _, err := step(t, m, p); !errors.Is(err, ErrProtocol) {
				t.Fatalf("got %v, want ErrProtocol", err)
			}
		})
	}
	// A target that never finishes is cut off.
	m := newLoginMachine(&cfg, false, fixedRand(1))
	var err error
	for i := 0; i <= maxLoginSteps && err == nil; i++ {
		_, _, _, err = step(t, m, loginResp(wire.StageSecurity, false, 0, 0))
	}
	if !errors.Is(err, ErrProtocol) {
		t.Fatalf("endless login: %v", err)
	}
	// TSIH 0 on the final response is refused.
	m = newLoginMachine(&cfg, false, fixedRand(1))
	if _, _, _, err := step(t, m, loginResp(wire.StageSecurity, true, wire.StageOperational, 0)); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := step(t, m, loginResp(wire.StageOperational, true, wire.StageFullFeature, 0)); !errors.Is(err, ErrProtocol) {
		t.Fatalf("TSIH 0: %v", err)
	}
}

func TestLoginContinuation(t *testing.T) {
	cfg := testConfig(t, nil)
	m := newLoginMachine(&cfg, true, fixedRand(1))
	first := loginResp(wire.StageSecurity, false, 0, 0)
	first.SetFlags(wire.FlagContinue)
	first.Data = []byte("AuthMeth")
	keys, _, done, err := step(t, m, first)
	if err != nil || done || keys[keySessionType] != valueDiscovery {
		t.Fatalf("first: %v %v %v", keys, done, err)
	}
	second := loginResp(wire.StageSecurity, true, wire.StageOperational, 0)
	second.Data = []byte("od=None\x00")
	keys, req, done, err := step(t, m, second)
	// The request after a C response is empty and does not transit.
	if len(keys) != 0 || req.Transit() {
		t.Fatalf("continuation request %v flags %#x", keys, req.Flags())
	}
	if err != nil || done || m.stage != wire.StageOperational {
		t.Fatalf("joined text: done=%v err=%v stage %d", done, err, m.stage)
	}
	// Discovery offers only the keys that matter there.
	keys, _, _, _ = step(t, m, loginResp(wire.StageOperational, true, wire.StageFullFeature, 3))
	if _, ok := keys[keyMaxBurstLength]; ok || keys[keyHeaderDigest] != valueNone {
		t.Fatalf("discovery offers %v", keys)
	}
}
