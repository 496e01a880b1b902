package scsi

import (
	"encoding/binary"
	"testing"
)

func (h *harness) prOut(n Nexus, sa, typ byte, key, saKey uint64, flags byte) *Result {
	h.t.Helper()
	return h.runAs(n, 0, cdbPROut(sa, typ, prOutBasicLen), prParams(key, saKey, flags))
}

func (h *harness) readKeys(n Nexus) (gen uint32, keys []uint64) {
	h.t.Helper()
	r := h.runAs(n, 0, cdbPRIn(prInReadKeys, 1024), nil)
	expectGood(h.t, r)
	gen = be32(r.DataIn)
	l := be32(r.DataIn[4:])
	for i := 0; i < int(l)/8; i++ {
		keys = append(keys, be64(r.DataIn[8+8*i:]))
	}
	return gen, keys
}

func (h *harness) readReservation(n Nexus) (key uint64, typ byte, ok bool) {
	h.t.Helper()
	r := h.runAs(n, 0, cdbPRIn(prInReadResv, 1024), nil)
	expectGood(h.t, r)
	if be32(r.DataIn[4:]) == 0 {
		return 0, 0, false
	}
	return be64(r.DataIn[8:]), r.DataIn[21] & prTypeMask, true
}

func TestPRRegisterAndKeys(t *testing.T) {
	h := newHarness(t, nil, LUOptions{})
	a, b := h.n, testNexus(1)
	h.login(b)
	expectGood(t, h.prOut(a, prOutRegister, 0, 0, 0xA, 0))
	// A wrong current key on an unregistered nexus conflicts.
	if r := h.prOut(b, prOutRegister, 0, 0x99, 0xB, 0); r.Status != StatusReservationConflict {
		t.Fatalf("register with bad key: %#x", r.Status)
	}
	expectGood(t, h.prOut(b, prOutRegisterIgnore, 0, 0x99, 0xB, 0))
	gen, keys := h.readKeys(a)
	if gen != 2 || len(keys) != 2 || keys[0] != 0xA || keys[1] != 0xB {
		t.Fatalf("gen %d keys %x", gen, keys)
	}
	// Changing a key needs the current one.
	if r := h.prOut(a, prOutRegister, 0, 0xB, 0xC, 0); r.Status != StatusReservationConflict {
		t.Fatalf("re-register with wrong key: %#x", r.Status)
	}
	expectGood(t, h.prOut(a, prOutRegister, 0, 0xA, 0xC, 0))
	// Unregister.
	expectGood(t, h.prOut(a, prOutRegister, 0, 0xC, 0, 0))
	_, keys = h.readKeys(a)
	if len(keys) != 1 || keys[0] != 0xB {
		t.Fatalf("keys %x", keys)
	}
	// Only registered nexuses may reserve.
	if r := h.prOut(a, prOutReserve, prTypeWE, 0xC, 0, 0); r.Status != StatusReservationConflict {
		t.Fatalf("reserve unregistered: %#x", r.Status)
	}
}

// TestPRAccess checks every reservation type against SPC-4 table 63: what a
// registered and an unregistered non-holder may do.
func TestPRAccess(t *testing.T) {
	cases := []struct {
		name                  string
		typ                   byte
		regRead, regWrite     bool
		unregRead, unregWrite bool
	}{
		{"WE", prTypeWE, true, false, true, false},
		{"EA", prTypeEA, false, false, false, false},
		{"WE-RO", prTypeWERO, true, true, true, false},
		{"EA-RO", prTypeEARO, true, true, false, false},
		{"WE-AR", prTypeWEAR, true, true, true, false},
		{"EA-AR", prTypeEAAR, true, true, false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, nil, LUOptions{WriteCache: true})
			holder, reg, unreg := h.n, testNexus(1), testNexus(2)
			h.login(reg)
			h.login(unreg)
			expectGood(t, h.prOut(holder, prOutRegister, 0, 0, 1, 0))
			expectGood(t, h.prOut(reg, prOutRegister, 0, 0, 2, 0))
			expectGood(t, h.prOut(holder, prOutReserve, c.typ, 1, 0, 0))
			check := func(n Nexus, cdb, out []byte, allowed bool) {
				t.Helper()
				r := h.runAs(n, 0, cdb, out)
				if allowed && r.Status != StatusGood || !allowed && r.Status != StatusReservationConflict {
					t.Fatalf("%x from %s: status %#x, allowed=%v", cdb[0], n.InitiatorPort, r.Status, allowed)
				}
			}
			read, write := cdbRW10(opRead10, 0, 1, 0), cdbRW10(opWrite10, 0, 1, 0)
			data := fill(512, 7)
			check(holder, read, nil, true)
			check(holder, write, data, true)
			check(reg, read, nil, c.regRead)
			check(reg, write, data, c.regWrite)
			check(unreg, read, nil, c.unregRead)
			check(unreg, write, data, c.unregWrite)
			// INQUIRY, REPORT LUNS and READ CAPACITY never conflict.
			check(unreg, cdbInquiry(false, 0, 96), nil, true)
			check(unreg, []byte{opReadCapacity10, 0, 0, 0, 0, 0, 0, 0, 0, 0}, nil, true)
			_, typ, ok := h.readReservation(unreg)
			if !ok || typ != c.typ {
				t.Fatalf("read reservation type %d ok=%v", typ, ok)
			}
		})
	}
}

func TestPRReleaseAndOwnership(t *testing.T) {
	h := newHarness(t, nil, LUOptions{})
	a, b := h.n, testNexus(1)
	h.login(b)
	expectGood(t, h.prOut(a, prOutRegister, 0, 0, 1, 0))
	expectGood(t, h.prOut(b, prOutRegister, 0, 0, 2, 0))
	expectGood(t, h.prOut(a, prOutReserve, prTypeWERO, 1, 0, 0))
	// b may not reserve over it.
	if r := h.prOut(b, prOutReserve, prTypeWERO, 2, 0, 0); r.Status != StatusReservationConflict {
		t.Fatalf("second reserve: %#x", r.Status)
	}
	// Release with the wrong type is INVALID RELEASE.
	expectSense(t, h.prOut(a, prOutRelease, prTypeWE, 1, 0, 0), SenseIllegalRequest, ASCInvalidReleaseOfPR)
	// Unregistering the holder of a registrants-only reservation drops it
	// and tells the other registrants.
	expectGood(t, h.prOut(a, prOutRegister, 0, 1, 0, 0))
	if _, _, ok := h.readReservation(a); ok {
		t.Fatal("reservation survived its holder")
	}
	expectSense(t, h.runAs(b, 0, cdbTUR(), nil), SenseUnitAttention, ASCReservationsReleased)

	// All-registrants: the reservation stays while any registrant is left.
	expectGood(t, h.prOut(a, prOutRegister, 0, 0, 1, 0))
	expectGood(t, h.prOut(a, prOutReserve, prTypeEAAR, 1, 0, 0))
	expectGood(t, h.prOut(a, prOutRegister, 0, 1, 0, 0))
	if _, typ, ok := h.readReservation(b); !ok || typ != prTypeEAAR {
		t.Fatal("all-registrants reservation dropped with one registrant left")
	}
	expectGood(t, h.prOut(b, prOutRelease, prTypeEAAR, 2, 0, 0))
	if _, _, ok := h.readReservation(b); ok {
		t.Fatal("release did not release")
	}
}

func TestPRPreemptAndClear(t *testing.T) {
	h := newHarness(t, nil, LUOptions{})
	a, b := h.n, testNexus(1)
	h.login(b)
	expectGood(t, h.prOut(a, prOutRegister, 0, 0, 1, 0))
	expectGood(t, h.prOut(b, prOutRegister, 0, 0, 2, 0))
	expectGood(t, h.prOut(a, prOutReserve, prTypeWE, 1, 0, 0))
	// b preempts a: a loses registration and reservation.
	expectGood(t, h.prOut(b, prOutPreempt, prTypeEA, 2, 1, 0))
	key, typ, ok := h.readReservation(b)
	if !ok || key != 2 || typ != prTypeEA {
		t.Fatalf("after preempt: key %d type %d ok %v", key, typ, ok)
	}
	expectSense(t, h.run(cdbTUR(), nil), SenseUnitAttention, ASCRegistrationsPreempted)
	if r := h.run(cdbRW10(opRead10, 0, 1, 0), nil); r.Status != StatusReservationConflict {
		t.Fatalf("preempted nexus read: %#x", r.Status)
	}
	// Preempting a key nobody has conflicts.
	if r := h.prOut(b, prOutPreempt, prTypeEA, 2, 0x77, 0); r.Status != StatusReservationConflict {
		t.Fatalf("preempt missing key: %#x", r.Status)
	}
	// CLEAR drops everything.
	expectGood(t, h.prOut(a, prOutRegister, 0, 0, 1, 0))
	expectGood(t, h.prOut(a, prOutClear, 0, 1, 0, 0))
	if _, keys := h.readKeys(a); len(keys) != 0 {
		t.Fatalf("keys after clear: %x", keys)
	}
	expectSense(t, h.runAs(b, 0, cdbTUR(), nil), SenseUnitAttention, ASCReservationsPreempted)
}

func TestPRAPTPLPersists(t *testing.T) {
	dev := newThinDev(512, 1024)
	h := newHarness(t, dev, LUOptions{})
	expectGood(t, h.prOut(h.n, prOutRegister, 0, 0, 0x1234, prOutAPTPL|prOutAllTgPt))
	expectGood(t, h.prOut(h.n, prOutReserve, prTypeWEAR, 0x1234, 0, 0))
	caps := h.run(cdbPRIn(prInReportCaps, 8), nil)
	expectGood(t, caps)
	if caps.DataIn[3]&prCapsPTPLA == 0 || caps.DataIn[2]&prCapsPTPLC == 0 {
		t.Fatalf("report capabilities %x", caps.DataIn)
	}
	// A new target over the same device (a restart) reloads them.
	tgt := NewTarget(TargetOptions{Name: testIQN})
	if err := tgt.AddLU(0, dev, LUOptions{}); err != nil {
		t.Fatal(err)
	}
	h2 := &harness{t: t, tgt: tgt, n: h.n}
	h2.login(h.n)
	_, keys := h2.readKeys(h.n)
	if len(keys) != 1 || keys[0] != 0x1234 {
		t.Fatalf("reloaded keys %x", keys)
	}
	if _, typ, ok := h2.readReservation(h.n); !ok || typ != prTypeWEAR {
		t.Fatal("reservation not reloaded")
	}
	// Dropping APTPL clears the saved copy; a restart then finds nothing.
	expectGood(h2.t, h2.prOut(h.n, prOutRegister, 0, 0x1234, 0x1234, 0))
	if blob, _ := dev.GetMetadata(prMetaKey); len(blob) != 0 {
		t.Fatalf("saved reservations kept after APTPL=0: %x", blob)
	}
	// APTPL on a device without a metadata store is refused.
	h3 := newHarness(t, nil, LUOptions{})
	expectSense(t, h3.prOut(h3.n, prOutRegister, 0, 0, 1, prOutAPTPL), SenseIllegalRequest, ASCInvalidFieldInParameterList)
}

func TestPRReadFullStatus(t *testing.T) {
	h := newHarness(t, nil, LUOptions{})
	expectGood(t, h.prOut(h.n, prOutRegister, 0, 0, 5, 0))
	expectGood(t, h.prOut(h.n, prOutReserve, prTypeEA, 5, 0, 0))
	r := h.run(cdbPRIn(prInReadFullStatus, 1024), nil)
	expectGood(t, r)
	d := r.DataIn[8:]
	if be64(d) != 5 || d[12]&prFullHolder == 0 || d[13] != prTypeEA {
		t.Fatalf("full status descriptor %x", d)
	}
	tidLen := be32(d[20:])
	ini, ok := parseTransportID(d[24 : 24+tidLen])
	if !ok || ini != h.n.InitiatorPort {
		t.Fatalf("transport id %q", ini)
	}
}

func TestPRRegisterAndMove(t *testing.T) {
	h := newHarness(t, nil, LUOptions{})
	a, b := h.n, testNexus(1)
	h.login(b)
	expectGood(t, h.prOut(a, prOutRegister, 0, 0, 1, 0))
	expectGood(t, h.prOut(a, prOutReserve, prTypeWE, 1, 0, 0))
	tid := transportID(b.InitiatorPort)
	p := make([]byte, prMoveTIDAt+len(tid))
	binary.BigEndian.PutUint64(p[0:], 1)
	binary.BigEndian.PutUint64(p[8:], 9)
	p[17] = prMoveUnreg
	binary.BigEndian.PutUint16(p[prMoveRelPort:], b.RelativePort)
	binary.BigEndian.PutUint32(p[prMoveTIDLenAt:], uint32(len(tid)))
	copy(p[prMoveTIDAt:], tid)
	expectGood(t, h.runAs(a, 0, cdbPROut(prOutRegisterMove, prTypeWE, uint32(len(p))), p))
	key, typ, ok := h.readReservation(b)
	if !ok || key != 9 || typ != prTypeWE {
		t.Fatalf("moved reservation: key %d type %d", key, typ)
	}
	if _, keys := h.readKeys(a); len(keys) != 1 || keys[0] != 9 {
		t.Fatalf("keys after move %x", keys)
	}
	if r := h.runAs(a, 0, cdbRW10(opWrite10, 0, 1, 0), fill(512, 1)); r.Status != StatusReservationConflict {
		t.Fatalf("old holder write: %#x", r.Status)
	}
}

func TestPRDecodeRejectsGarbage(t *testing.T) {
	p := prState{generation: 3, regs: []prReg{{key: 1, initiator: "i", targetPort: "t"}}, reserved: true, resType: prTypeWE, holder: 0, aptpl: true}
	blob := encodePR(&p)
	got, err := decodePR(blob)
	if err != nil || got.generation != 3 || len(got.regs) != 1 || got.regs[0].initiator != "i" {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	for i := 0; i < len(blob); i++ {
		if _, err := decodePR(blob[:i]); err == nil {
			t.Fatalf("truncated blob of %d bytes accepted", i)
		}
	}
}
