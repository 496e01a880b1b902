package iscsi

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	wire "github.com/vbs-storage/vbs/target/iscsi"
)

var updateGolden = flag.Bool("update-golden", false, "rewrite testdata/*.golden")

// describe renders a login PDU as one line: stages, flags and keys.
func describe(dir string, p *wire.PDU) string {
	kvs, err := wire.ParseText(p.Data)
	keys := make([]string, 0, len(kvs))
	for _, kv := range kvs {
		keys = append(keys, kv.Key+"="+kv.Value)
	}
	if err != nil {
		keys = append(keys, "<"+err.Error()+">")
	}
	return fmt.Sprintf("%s CSG=%d NSG=%d T=%v C=%v %s", dir, p.CSG(), p.NSG(), p.Transit(), p.Continue(), strings.Join(keys, " "))
}

// TestLoginTranscriptGolden records a whole mutual-CHAP login, request by
// request, against a scripted target, and compares it with the golden
// file (go test -run TestLoginTranscriptGolden -update-golden rewrites it).
func TestLoginTranscriptGolden(t *testing.T) {
	cfg := testConfig(t, func(c *Config) {
		c.InitiatorAlias = "host1"
		c.HeaderDigest = true
		c.CHAP = &Credentials{User: "alice", Secret: "initiator-secret"}
		c.MutualCHAP = &Credentials{User: "tgt", Secret: "target-secret"}
	})
	m := newLoginMachine(&cfg, false, fixedRand(0x5a))
	chal := []byte("0123456789abcdef")
	script := []func(req map[string]string) *wire.PDU{
		func(map[string]string) *wire.PDU {
			return loginResp(wire.StageSecurity, false, 0, 0, kv(keyAuthMethod, valueCHAP), kv(keyTargetPortalGroupTag, "1"))
		},
		func(map[string]string) *wire.PDU {
			return loginResp(wire.StageSecurity, false, 0, 0, kv(keyChapA, "5"), kv(keyChapI, "17"), kv(keyChapC, wire.EncodeHex(chal)))
		},
		func(req map[string]string) *wire.PDU {
			ours, err := wire.DecodeBinary(req[keyChapC])
			if err != nil {
				t.Fatal(err)
			}
			var id int
			fmt.Sscan(req[keyChapI], &id)
			r := wire.ChapResponse(byte(id), []byte("target-secret"), ours)
			return loginResp(wire.StageSecurity, true, wire.StageOperational, 0, kv(keyChapN, "tgt"), kv(keyChapR, wire.EncodeHex(r[:])))
		},
		func(map[string]string) *wire.PDU {
			return loginResp(wire.StageOperational, false, wire.StageOperational, 0,
				kv(keyHeaderDigest, valueCRC32C), kv(keyDataDigest, valueNone), kv(keyInitialR2T, valueYes),
				kv(keyImmediateData, valueYes), kv(keyMaxBurstLength, "262144"), kv(keyFirstBurstLength, "65536"),
				kv(keyMaxOutstandingR2T, "1"), kv(keyMaxConnections, "1"), kv(keyDataPDUInOrder, valueYes),
				kv(keyDataSequenceInOrder, valueYes), kv(keyDefaultTime2Wait, "2"), kv(keyDefaultTime2Retain, "0"),
				kv(keyErrorRecoveryLevel, "0"), kv(keyMaxRecvDSL, "8192"), kv("X-org.example.Quirk", "1"))
		},
		func(map[string]string) *wire.PDU {
			return loginResp(wire.StageOperational, true, wire.StageFullFeature, 0x42)
		},
	}
	var b strings.Builder
	for i, respond := range script {
		var req wire.PDU
		if err := m.request(&req); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		fmt.Fprintln(&b, describe("->", &req))
		resp := respond(keysOf(t, &req))
		fmt.Fprintln(&b, describe("<-", resp))
		done, err := m.response(resp)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if done != (i == len(script)-1) {
			t.Fatalf("step %d: done=%v", i, done)
		}
	}
	fmt.Fprintf(&b, "params %+v\n", m.params())
	path := filepath.Join("testdata", "login_mutual_chap.golden")
	if *updateGolden {
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update-golden)", err)
	}
	if b.String() != string(want) {
		t.Errorf("login transcript differs from %s:\n got:\n%s\nwant:\n%s", path, b.String(), want)
	}
}
