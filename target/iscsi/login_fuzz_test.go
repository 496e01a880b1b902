package iscsi

import (
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

var writeSeeds = flag.Bool("write-seeds", false, "rewrite testdata/fuzz/FuzzLogin seed files")

// Fuzz input format: a sequence of records, each
//
//	byte 0: byte 1 of the BHS (T, C, CSG, NSG)
//	byte 1: bit 7 sends opcode byte1&0x3f instead of a Login Request,
//	        bit 6 changes the ISID, bits 0..1 are Version-min
//	bytes 2..3: data length (big endian), then that many data bytes
//
// so that the fuzzer spends its effort on stage bits and key text.
const (
	fuzzRecordHeader = 4
	fuzzNonLogin     = 0x80
	fuzzOtherISID    = 0x40
	fuzzVersionMask  = 0x03
)

type fuzzPDU struct {
	flags, ctl byte
	data       string
}

func encodeFuzz(pdus ...fuzzPDU) []byte {
	var b []byte
	for _, p := range pdus {
		b = append(b, p.flags, p.ctl)
		b = binary.BigEndian.AppendUint16(b, uint16(len(p.data)))
		b = append(b, p.data...)
	}
	return b
}

func stages(transit, cont bool, csg, nsg Stage) byte {
	var h BHS
	h.SetLoginStages(transit, cont, csg, nsg)
	return h[1]
}

func fuzzSeeds() [][]byte {
	const (
		ini = "InitiatorName=iqn.2026-01.io.vbs:host1\x00"
		tgt = "TargetName=iqn.2026-01.io.vbs:open\x00"
		cht = "TargetName=iqn.2026-01.io.vbs:chap\x00"
	)
	return [][]byte{
		encodeFuzz(fuzzPDU{flags: stages(true, false, StageOperational, StageFullFeature),
			data: ini + tgt + "HeaderDigest=CRC32C,None\x00MaxRecvDataSegmentLength=65536\x00MaxBurstLength=262144\x00FirstBurstLength=65536\x00ImmediateData=Yes\x00InitialR2T=No\x00"}),
		encodeFuzz(
			fuzzPDU{flags: stages(true, false, StageSecurity, StageOperational), data: ini + tgt + "AuthMethod=None\x00"},
			fuzzPDU{flags: stages(true, false, StageOperational, StageFullFeature), data: "MaxConnections=1\x00X-vendor=1\x00IFMarkInt=1\x00"}),
		encodeFuzz(
			fuzzPDU{flags: stages(true, false, StageSecurity, StageOperational), data: ini + cht + "AuthMethod=CHAP,None\x00"},
			fuzzPDU{flags: stages(false, false, StageSecurity, 0), data: "CHAP_A=5\x00"},
			fuzzPDU{flags: stages(true, false, StageSecurity, StageOperational), data: "CHAP_N=alice\x00CHAP_R=0x00112233445566778899aabbccddeeff\x00CHAP_I=1\x00CHAP_C=0x1234\x00"}),
		encodeFuzz(
			fuzzPDU{flags: stages(false, true, StageOperational, 0), data: ini + "Target"},
			fuzzPDU{flags: stages(true, false, StageOperational, StageFullFeature), data: "Name=iqn.2026-01.io.vbs:open\x00"}),
		encodeFuzz(fuzzPDU{flags: stages(true, false, StageSecurity, StageOperational), data: ini + "SessionType=Discovery\x00AuthMethod=None\x00"},
			fuzzPDU{flags: stages(true, false, StageOperational, StageFullFeature), data: "MaxRecvDataSegmentLength=8192\x00"}),
		encodeFuzz(fuzzPDU{flags: stages(true, false, StageOperational, StageFullFeature), ctl: 1, data: ini + tgt}),
		encodeFuzz(fuzzPDU{flags: stages(true, false, StageOperational, StageFullFeature), data: ini + tgt},
			fuzzPDU{ctl: fuzzNonLogin | byte(OpSCSICommand)}),
		encodeFuzz(fuzzPDU{flags: stages(true, false, StageSecurity, StageOperational), data: ini + "TargetName=iqn.2026-01.io.vbs:moved\x00AuthMethod=None\x00"}),
	}
}

func fuzzConfig() LoginConfig {
	return LoginConfig{
		LookupTarget: func(name string) (TargetInfo, bool) {
			switch name {
			case "iqn.2026-01.io.vbs:open":
				return TargetInfo{Name: name, PortalGroupTag: 1}, true
			case "iqn.2026-01.io.vbs:moved":
				return TargetInfo{Name: name, Redirect: "10.0.0.2:3260,1"}, true
			case "iqn.2026-01.io.vbs:chap":
				return TargetInfo{Name: name, Authorize: func(string) (*Credentials, *Credentials, bool) {
					return &Credentials{User: "alice", Secret: "alice-secret-1"}, &Credentials{User: "t", Secret: "target-secret-2"}, true
				}}, true
			}
			return TargetInfo{}, false
		},
		MaxBurstLength: 65536,
		Rand:           &counterReader{},
	}
}

// FuzzLogin feeds arbitrary sequences of login PDUs to a Login: it must
// never panic, answer every request with a well-formed Login Response,
// end only with a matching status, and keep its memory bounded.
func FuzzLogin(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		l := NewLogin(fuzzConfig())
		var req, resp PDU
		for len(data) >= fuzzRecordHeader {
			flags, ctl := data[0], data[1]
			n := int(binary.BigEndian.Uint16(data[2:4]))
			data = data[fuzzRecordHeader:]
			n = min(n, len(data), loginMaxDataSegment)
			req.Reset()
			req.SetOpcode(OpLoginReq, true)
			if ctl&fuzzNonLogin != 0 {
				req.SetOpcode(Opcode(ctl&opcodeMask), false)
			}
			req.SetFlags(flags)
			req.SetByte3(ctl & fuzzVersionMask)
			req.SetByte2(ctl & fuzzVersionMask)
			isid := uint64(0x400001370000)
			if ctl&fuzzOtherISID != 0 {
				isid++
			}
			req.SetISID(isid)
			req.SetITT(1)
			req.SetCmdSN(1)
			req.Data = append(req.Data[:0], data[:n]...)
			data = data[n:]

			res := l.Step(&req, &resp)
			checkLoginResponse(t, l, res, &req, &resp)
			if res != StepContinue {
				if again := l.Step(&req, &resp); again != StepFail {
					t.Fatalf("Step after %v returned %v", res, again)
				}
				return
			}
		}
	})
}

func checkLoginResponse(t *testing.T, l *Login, res StepResult, req, resp *PDU) {
	t.Helper()
	if resp.Opcode() != OpLoginResp || resp.ITT() != req.ITT() || resp.ISID() != req.ISID() {
		t.Fatalf("bad response header %x", resp.BHS[:24])
	}
	if len(resp.Data) > loginMaxDataSegment {
		t.Fatalf("response data %d > %d", len(resp.Data), loginMaxDataSegment)
	}
	class := resp.BHS[offLoginStatusClass]
	switch res {
	case StepFail:
		if class == StatusSuccess || len(resp.Data) != 0 && class != StatusRedirect || resp.Transit() {
			t.Fatalf("failure with status class %d, %d data bytes, T=%v", class, len(resp.Data), resp.Transit())
		}
	case StepDone:
		if class != StatusSuccess || !resp.Transit() || resp.NSG() != StageFullFeature || resp.TSIH() == 0 {
			t.Fatalf("done with class %d T=%v NSG=%d TSIH=%d", class, resp.Transit(), resp.NSG(), resp.TSIH())
		}
	case StepContinue:
		if class != StatusSuccess {
			t.Fatalf("continue with status class %d", class)
		}
		if resp.Transit() && resp.Continue() {
			t.Fatal("response with T and C")
		}
	}
	if len(l.reqBuf) > MaxTextDataLength || len(l.seen) > maxLoginKeys || len(l.offered) > 2 {
		t.Fatalf("unbounded state: reqBuf %d, seen %d, offered %d", len(l.reqBuf), len(l.seen), len(l.offered))
	}
	// Every key gets at most one answer of bounded size.
	if maxResp := maxLoginKeys * (MaxKeyLength + 1 + 2*maxNameLength + 1); len(l.resp) > maxResp {
		t.Fatalf("response text %d bytes > %d", len(l.resp), maxResp)
	}
}

// TestWriteLoginFuzzSeeds writes the seed corpus under testdata when run
// with -write-seeds; otherwise it checks the committed corpus is current.
func TestWriteLoginFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzLogin")
	for i, s := range fuzzSeeds() {
		path := filepath.Join(dir, fmt.Sprintf("seed-%02d", i))
		content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s)
		if *writeSeeds {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != content {
			t.Errorf("%s is stale or missing (run go test -run TestWriteLoginFuzzSeeds -write-seeds): %v", path, err)
		}
	}
}
