package scsi

import "testing"

func TestTargetResetAndNexusLoss(t *testing.T) {
	h := newHarness(t, nil, LUOptions{})
	if err := h.tgt.AddLU(1, newMemDev(512, 16), LUOptions{}); err != nil {
		t.Fatal(err)
	}
	n1 := testNexus(1)
	h.login(n1)
	h.run(cdbTUR(), nil) // REPORTED LUNS DATA HAS CHANGED from AddLU
	expectGood(t, h.runAs(n1, 0, []byte{opReserve6, 0, 0, 0, 0, 0}, nil))
	expectGood(t, h.prOut(n1, prOutRegister, 0, 0, 7, 0))

	// A warm reset: every nexus gets POWER ON on every LU, RESERVE(6)
	// reservations go, persistent registrations stay.
	if got := h.tgt.TaskManagement(h.n, TMFTargetWarmReset, 0); got != TMFComplete {
		t.Fatalf("warm reset = %v", got)
	}
	for _, lun := range []uint64{0, 1} {
		expectSense(t, h.runAs(h.n, lun, cdbTUR(), nil), SenseUnitAttention, ASCPowerOnResetOccurred)
		expectSense(t, h.runAs(n1, lun, cdbTUR(), nil), SenseUnitAttention, ASCPowerOnResetOccurred)
	}
	// n1's RESERVE(6) is gone: h.n may read again. RESERVE itself still
	// conflicts because a persistent registration exists (CRH=1), which
	// also shows the registration survived.
	expectGood(t, h.run(cdbRW10(opRead10, 0, 1, 0), nil))
	if r := h.run([]byte{opReserve6, 0, 0, 0, 0, 0}, nil); r.Status != StatusReservationConflict {
		t.Fatalf("RESERVE(6) with a registration present: %#x", r.Status)
	}
	if _, keys := h.readKeys(h.n); len(keys) != 1 || keys[0] != 7 {
		t.Fatalf("registration lost on reset: %x", keys)
	}
	if got := h.tgt.TaskManagement(h.n, TMFClearACA, 0); got != TMFNotSupported {
		t.Fatalf("clear aca = %v", got)
	}
	if got := h.tgt.TaskManagement(h.n, TMFAbortTask, 9); got != TMFIncorrectLUN {
		t.Fatalf("abort task on unknown lun = %v", got)
	}

	// Nexus loss drops n1's RESERVE(6) but not its registration.
	if got := h.tgt.TaskManagement(h.n, TMFLogicalUnitReset, 0); got != TMFComplete {
		t.Fatal(got)
	}
	h.NexusReset()
	h.tgt.NexusClosed(n1)
	if _, keys := h.readKeys(h.n); len(keys) != 1 {
		t.Fatalf("registration lost on nexus loss: %x", keys)
	}
}

// NexusReset consumes the unit attention the harness nexus has on LU 0.
func (h *harness) NexusReset() {
	h.t.Helper()
	for i := 0; i < 4; i++ {
		if r := h.run(cdbTUR(), nil); r.Status == StatusGood {
			return
		}
	}
	h.t.Fatal("unit attentions do not clear")
}

func TestReserve6ReleasedOnNexusClose(t *testing.T) {
	h := newHarness(t, nil, LUOptions{})
	n1 := testNexus(1)
	h.login(n1)
	expectGood(t, h.runAs(n1, 0, []byte{opReserve6, 0, 0, 0, 0, 0}, nil))
	if r := h.run([]byte{opReserve6, 0, 0, 0, 0, 0}, nil); r.Status != StatusReservationConflict {
		t.Fatalf("second reserve: %#x", r.Status)
	}
	// RELEASE from a non-holder is a no-op.
	expectGood(t, h.run([]byte{opRelease6, 0, 0, 0, 0, 0}, nil))
	h.tgt.NexusClosed(n1)
	expectGood(t, h.run([]byte{opReserve6, 0, 0, 0, 0, 0}, nil))
	expectGood(t, h.run([]byte{opRelease6, 0, 0, 0, 0, 0}, nil))
}

func TestPRAllTargetPorts(t *testing.T) {
	h := newHarness(t, nil, LUOptions{})
	other := h.n
	other.TargetPort = testIQN + ",t,0x2"
	other.RelativePort = 2
	h.login(other)
	// Registered with ALL_TG_PT through port 1, the initiator is registered
	// through port 2 as well.
	expectGood(t, h.prOut(h.n, prOutRegister, 0, 0, 5, prOutAllTgPt))
	expectGood(t, h.prOut(other, prOutReserve, prTypeWE, 5, 0, 0))
	// Without ALL_TG_PT a registration covers only its own port.
	n2 := testNexus(2)
	h.login(n2)
	o2 := n2
	o2.TargetPort, o2.RelativePort = other.TargetPort, 2
	h.login(o2)
	expectGood(t, h.prOut(n2, prOutRegister, 0, 0, 6, 0))
	if r := h.prOut(o2, prOutRegister, 0, 6, 7, 0); r.Status != StatusReservationConflict {
		t.Fatalf("register through another port with the key of this one: %#x", r.Status)
	}
}
