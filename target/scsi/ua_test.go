package scsi

import (
	"testing"
)

func TestUnitAttentionPowerOnOncePerNexus(t *testing.T) {
	h := newHarness(t, nil, LUOptions{})
	// login() consumed it for nexus 0; a second command is clean.
	expectGood(t, h.run(cdbTUR(), nil))
	// INQUIRY does not report (nor clear) a unit attention.
	n1 := testNexus(1)
	h.tgt.NexusOpened(n1)
	expectGood(t, h.runAs(n1, 0, cdbInquiry(false, 0, 96), nil))
	expectSense(t, h.runAs(n1, 0, cdbTUR(), nil), SenseUnitAttention, ASCPowerOnResetOccurred)
	expectGood(t, h.runAs(n1, 0, cdbTUR(), nil))
}

func TestUnitAttentionRequestSenseClears(t *testing.T) {
	h := newHarness(t, nil, LUOptions{})
	n1 := testNexus(1)
	h.tgt.NexusOpened(n1)
	r := h.runAs(n1, 0, []byte{opRequestSense, 0, 0, 0, 252, 0}, nil)
	expectGood(t, r)
	s, ok := ParseSense(r.DataIn)
	if !ok || s.Key != SenseUnitAttention || s.ASC != ASCPowerOnResetOccurred {
		t.Fatalf("request sense %+v", s)
	}
	expectGood(t, h.runAs(n1, 0, cdbTUR(), nil))
	// Nothing pending: NO SENSE, in descriptor format when DESC=1.
	r = h.runAs(n1, 0, []byte{opRequestSense, reqSenseDesc, 0, 0, 252, 0}, nil)
	expectGood(t, r)
	if r.DataIn[0] != senseDescriptorCurrent || r.DataIn[1] != byte(SenseNoSense) {
		t.Fatalf("request sense %x", r.DataIn)
	}
}

func TestUnitAttentionModeParametersChanged(t *testing.T) {
	h := newHarness(t, nil, LUOptions{WriteCache: true})
	n1 := testNexus(1)
	h.login(n1)
	// Nexus 0 clears WCE.
	r := h.run(cdbModeSense6(pageCaching, 0, pcCurrent, true, 255), nil)
	expectGood(t, r)
	p := append([]byte(nil), r.DataIn...)
	p[0] = 0
	p[modeHdr6Len+2] &^= cachingWCE
	expectGood(t, h.run(cdbModeSelect6(byte(len(p))), p))
	// The issuer gets no UA, the other nexus does, once.
	expectGood(t, h.run(cdbTUR(), nil))
	expectSense(t, h.runAs(n1, 0, cdbTUR(), nil), SenseUnitAttention, ASCModeParametersChanged)
	expectGood(t, h.runAs(n1, 0, cdbTUR(), nil))
	// And with WCE=0 every write is forced FUA.
	before := h.dev.fuaWrites.Load()
	expectGood(t, h.run(cdbRW10(opWrite10, 0, 1, 0), fill(512, 3)))
	if h.dev.fuaWrites.Load() != before+1 {
		t.Fatalf("write with WCE=0 was not FUA")
	}
}

func TestUnitAttentionCapacityChanged(t *testing.T) {
	h := newHarness(t, nil, LUOptions{})
	n1 := testNexus(1)
	h.login(n1)
	h.dev.grow(100)
	expectSense(t, h.run(cdbTUR(), nil), SenseUnitAttention, ASCCapacityDataChanged)
	expectGood(t, h.run(cdbTUR(), nil))
	expectSense(t, h.runAs(n1, 0, cdbTUR(), nil), SenseUnitAttention, ASCCapacityDataChanged)
	expectGood(t, h.runAs(n1, 0, cdbTUR(), nil))
	r := h.run([]byte{opReadCapacity10, 0, 0, 0, 0, 0, 0, 0, 0, 0}, nil)
	expectGood(t, r)
	if be32(r.DataIn) != 4096+100-1 {
		t.Fatalf("last lba %d", be32(r.DataIn))
	}
}

func TestUnitAttentionReportedLUNsChanged(t *testing.T) {
	h := newHarness(t, nil, LUOptions{})
	if err := h.tgt.AddLU(1, newMemDev(512, 16), LUOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := h.tgt.AddLU(1, newMemDev(512, 16), LUOptions{}); err == nil {
		t.Fatal("duplicate LUN accepted")
	}
	expectSense(t, h.run(cdbTUR(), nil), SenseUnitAttention, ASCReportedLUNsDataChanged)
	// REPORT LUNS clears it too.
	if err := h.tgt.RemoveLU(1); err != nil {
		t.Fatal(err)
	}
	r := h.run([]byte{opReportLUNs, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0}, nil)
	expectGood(t, r)
	if be32(r.DataIn) != 8 {
		t.Fatalf("lun list length %d", be32(r.DataIn))
	}
	expectGood(t, h.run(cdbTUR(), nil))
}

func TestUnitAttentionPrecedence(t *testing.T) {
	var s itState
	s.raise(uaReportedLUNsChanged)
	s.raise(uaModeParametersChanged)
	s.raise(uaCapacityChanged)
	want := []uaBit{uaModeParametersChanged, uaCapacityChanged, uaReportedLUNsChanged}
	for _, w := range want {
		if u, ok := s.pop(); !ok || u != w {
			t.Fatalf("pop = %v, want %v", u, w)
		}
	}
	s.raise(uaCapacityChanged)
	s.raise(uaPowerOn) // a reset supersedes everything before it
	if u, _ := s.pop(); u != uaPowerOn {
		t.Fatalf("pop = %v", u)
	}
	if _, ok := s.pop(); ok {
		t.Fatal("power-on did not clear older conditions")
	}
}

func TestLogicalUnitResetTMF(t *testing.T) {
	h := newHarness(t, nil, LUOptions{})
	n1 := testNexus(1)
	h.login(n1)
	expectGood(t, h.runAs(n1, 0, []byte{opReserve6, 0, 0, 0, 0, 0}, nil))
	if r := h.run(cdbTUR(), nil); r.Status != StatusReservationConflict {
		t.Fatalf("TUR under another nexus's RESERVE: status %#x", r.Status)
	}
	if got := h.tgt.TaskManagement(h.n, TMFLogicalUnitReset, 0); got != TMFComplete {
		t.Fatalf("lu reset = %v", got)
	}
	if got := h.tgt.TaskManagement(h.n, TMFLogicalUnitReset, 7); got != TMFIncorrectLUN {
		t.Fatalf("lu reset on unknown lun = %v", got)
	}
	if got := h.tgt.TaskManagement(h.n, TMFQueryAsyncEvent, 0); got != TMFSucceeded {
		t.Fatalf("query async event = %v", got)
	}
	expectSense(t, h.run(cdbTUR(), nil), SenseUnitAttention, ASCBusDeviceResetOccurred)
	// The reset released the RESERVE(6) of nexus 1.
	expectGood(t, h.run(cdbTUR(), nil))
}
