package iscsi

import (
	"fmt"
	"testing"
)

func loginReq(transit, cont bool, csg, nsg Stage, data []byte) *PDU {
	var req PDU
	req.SetOpcode(OpLoginReq, true)
	req.SetLoginStages(transit, cont, csg, nsg)
	req.SetISID(0x400001370000)
	req.SetITT(1)
	req.Data = data
	return &req
}

func openConfig() LoginConfig {
	return LoginConfig{
		LookupTarget: func(name string) (TargetInfo, bool) { return TargetInfo{Name: name}, true },
		Rand:         &counterReader{},
	}
}

func TestLoginLimits(t *testing.T) {
	t.Run("too many PDUs", func(t *testing.T) {
		l := NewLogin(openConfig())
		var resp PDU
		for i := range maxLoginPDUs {
			if res := l.Step(loginReq(false, true, StageOperational, 0, []byte("X")), &resp); res != StepContinue {
				t.Fatalf("PDU %d: %v", i, res)
			}
		}
		if res := l.Step(loginReq(false, true, StageOperational, 0, []byte("X")), &resp); res != StepFail || resp.BHS[offLoginStatusClass] != StatusInitiatorError {
			t.Fatalf("PDU %d: %v", maxLoginPDUs, res)
		}
	})
	t.Run("text too long", func(t *testing.T) {
		l := NewLogin(openConfig())
		var resp PDU
		chunk := make([]byte, loginMaxDataSegment)
		for i := range chunk {
			chunk[i] = 'a'
		}
		var res StepResult
		for i := 0; i*loginMaxDataSegment <= MaxTextDataLength; i++ {
			res = l.Step(loginReq(false, true, StageOperational, 0, chunk), &resp)
		}
		if res != StepFail || len(l.reqBuf) > MaxTextDataLength {
			t.Fatalf("got %v with %d bytes kept", res, len(l.reqBuf))
		}
	})
	t.Run("too many keys", func(t *testing.T) {
		l := NewLogin(openConfig())
		var resp PDU
		data := []byte("InitiatorName=iqn.i\x00TargetName=iqn.t\x00")
		for i := range maxLoginKeys {
			data = AppendText(data, fmt.Sprintf("X-%d", i), "1")
		}
		if res := l.Step(loginReq(true, false, StageOperational, StageFullFeature, data), &resp); res != StepFail {
			t.Fatalf("got %v", res)
		}
		if len(l.seen) > maxLoginKeys {
			t.Fatalf("%d keys kept", len(l.seen))
		}
	})
}

// BenchmarkLogin measures a whole libiscsi-style login (operational stage
// only, every key): login is not a hot path, this only keeps its cost
// visible.
func BenchmarkLogin(b *testing.B) {
	data := []byte("InitiatorName=iqn.2026-01.io.vbs:host1\x00TargetName=iqn.2026-01.io.vbs:vol1\x00SessionType=Normal\x00" +
		"HeaderDigest=None,CRC32C\x00DataDigest=None\x00InitialR2T=No\x00ImmediateData=Yes\x00MaxBurstLength=262144\x00" +
		"FirstBurstLength=262144\x00DefaultTime2Wait=2\x00DefaultTime2Retain=0\x00MaxOutstandingR2T=1\x00ErrorRecoveryLevel=0\x00" +
		"IFMarker=No\x00OFMarker=No\x00MaxConnections=1\x00MaxRecvDataSegmentLength=262144\x00DataPDUInOrder=Yes\x00DataSequenceInOrder=Yes\x00")
	req := loginReq(true, false, StageOperational, StageFullFeature, data)
	cfg := openConfig()
	var resp PDU
	b.ReportAllocs()
	for b.Loop() {
		if NewLogin(cfg).Step(req, &resp) != StepDone {
			b.Fatal("login failed")
		}
	}
}
