package iscsi

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	wire "github.com/vbs-storage/vbs/target/iscsi"
)

// loginSeeds are login response streams of a CHAP login (with mutual
// authentication) that the fuzzer mutates.
func loginSeeds() [][]byte {
	chal := wire.EncodeHex([]byte("0123456789abcdef"))
	return [][]byte{
		encode(loginResp(wire.StageSecurity, false, 0, 0, kv(keyAuthMethod, valueCHAP)),
			loginResp(wire.StageSecurity, false, 0, 0, kv(keyChapA, "5"), kv(keyChapI, "9"), kv(keyChapC, chal)),
			loginResp(wire.StageSecurity, true, wire.StageOperational, 0, kv(keyChapN, "t"), kv(keyChapR, chal)),
			loginResp(wire.StageOperational, true, wire.StageFullFeature, 5, kv(keyMaxRecvDSL, "8192"), kv(keyImmediateData, valueNo))),
		encode(loginResp(wire.StageSecurity, false, 0, 0, kv(keyTargetAddress, "10.0.0.1:3260,1"))),
	}
}

// FuzzLoginResponse feeds arbitrary Login Responses to the login machine:
// it must never panic, and every error must be one of the typed classes.
func FuzzLoginResponse(f *testing.F) {
	for _, s := range loginSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		cfg := Config{Addr: "h:1", InitiatorName: "iqn.i", TargetName: "iqn.t",
			CHAP: &Credentials{User: "u", Secret: "initiator"}, MutualCHAP: &Credentials{Secret: "target"}, ISID: 1}
		cfg, err := cfg.withDefaults(true)
		if err != nil {
			t.Fatal(err)
		}
		m := newLoginMachine(&cfg, false, fixedRand(3))
		r := wire.NewReader(bytes.NewReader(in), wire.Limits{MaxRecvDataSegmentLength: defaultMaxRecvDSL})
		var req, resp wire.PDU
		for {
			if err := m.request(&req); err != nil {
				t.Fatalf("request: %v", err)
			}
			if r.Read(&resp) != nil {
				return
			}
			done, err := m.response(&resp)
			if err != nil {
				var le *LoginError
				var re *RedirectError
				if !errors.Is(err, ErrProtocol) && !errors.Is(err, ErrAuth) && !errors.Is(err, ErrNegotiation) &&
					!errors.As(err, &le) && !errors.As(err, &re) {
					t.Fatalf("untyped login error: %v", err)
				}
				return
			}
			if done {
				p := m.params()
				if p.FirstBurstLength > p.MaxBurstLength || p.MaxXmitDataSegmentLength < minDataSegmentLength ||
					p.MaxBurstLength > cfg.MaxBurstLength || p.MaxOutstandingR2T > uint32(cfg.MaxOutstandingR2T) {
					t.Fatalf("params outside what we offered: %+v", p)
				}
				return
			}
		}
	})
}

// TestLoginSeedCorpus keeps testdata/fuzz/FuzzLoginResponse equal to
// loginSeeds (-update-seeds rewrites it).
func TestLoginSeedCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzLoginResponse")
	for i, seed := range loginSeeds() {
		path := filepath.Join(dir, "seed-"+strconv.Itoa(i))
		want := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", seed)
		if *updateSeeds {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run with -update-seeds)", err)
		}
		if string(got) != want {
			t.Errorf("%s is stale (run with -update-seeds)", path)
		}
	}
}
