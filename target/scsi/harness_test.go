package scsi

import (
	"context"
	"encoding/binary"
	"testing"
)

const testIQN = "iqn.2026-11.io.vbs:target0"

func testNexus(i int) Nexus {
	return Nexus{
		InitiatorPort: "iqn.2026-11.io.vbs:host" + string(rune('a'+i)) + ",i,0x23d000000001",
		TargetPort:    testIQN + ",t,0x1",
		RelativePort:  1,
	}
}

// harness drives a Target the way a transport does.
type harness struct {
	t   testing.TB
	tgt *Target
	dev *memDev
	n   Nexus
}

// newHarness returns a target with LU 0 on dev (a plain memDev with 512
// byte blocks unless given) and nexus 0 logged in with its power-on unit
// attention already cleared.
func newHarness(t testing.TB, dev Device, opts LUOptions) *harness {
	t.Helper()
	tgt := NewTarget(TargetOptions{Name: testIQN})
	if dev == nil {
		dev = newMemDev(512, 4096)
	}
	if err := tgt.AddLU(0, dev, opts); err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, tgt: tgt, n: testNexus(0)}
	switch d := dev.(type) {
	case *memDev:
		h.dev = d
	case *thinDev:
		h.dev = d.memDev
	}
	h.login(h.n)
	return h
}

// login opens n and consumes its power-on unit attention.
func (h *harness) login(n Nexus) {
	h.t.Helper()
	h.tgt.NexusOpened(n)
	for _, lun := range h.tgt.LUNs() {
		r := h.runAs(n, lun, cdbTUR(), nil)
		if s, _ := ParseSense(r.Sense); r.Status != StatusCheckCondition || s.ASC != ASCPowerOnResetOccurred {
			h.t.Fatalf("login: want power-on UA, got status %#x sense %+v", r.Status, s)
		}
	}
}

func (h *harness) run(cdb []byte, out []byte) *Result {
	return h.runAs(h.n, 0, cdb, out)
}

func (h *harness) runAs(n Nexus, lun uint64, cdb []byte, out []byte) *Result {
	h.t.Helper()
	res := &Result{}
	res.Reset()
	cmd := &Command{Nexus: n, LUN: lun, CDB: cdb, DataOut: out, ExpectedDataIn: 1 << 24}
	h.tgt.execute(context.Background(), cmd, res)
	return res
}

func expectGood(t testing.TB, r *Result) {
	t.Helper()
	if r.Status != StatusGood {
		s, _ := ParseSense(r.Sense)
		t.Fatalf("status %#x, sense key %#x asc %#04x, want GOOD", r.Status, s.Key, s.ASC)
	}
}

func expectSense(t testing.TB, r *Result, key SenseKey, asc ASC) SenseInfo {
	t.Helper()
	if r.Status != StatusCheckCondition {
		t.Fatalf("status %#x, want CHECK CONDITION %#x/%#04x", r.Status, key, asc)
	}
	s, ok := ParseSense(r.Sense)
	if !ok || s.Key != key || s.ASC != asc {
		t.Fatalf("sense key %#x asc %#04x, want %#x/%#04x", s.Key, s.ASC, key, asc)
	}
	return s
}

// CDB builders.

func cdbTUR() []byte { return make([]byte, 6) }

func cdbInquiry(evpd bool, page byte, alloc uint16) []byte {
	c := []byte{opInquiry, 0, page, 0, 0, 0}
	if evpd {
		c[1] = inqEVPD
	}
	binary.BigEndian.PutUint16(c[3:], alloc)
	return c
}

func cdbRW10(op byte, lba uint32, blocks uint16, flags byte) []byte {
	c := make([]byte, 10)
	c[0], c[1] = op, flags
	binary.BigEndian.PutUint32(c[2:], lba)
	binary.BigEndian.PutUint16(c[7:], blocks)
	return c
}

func cdbRW16(op byte, lba uint64, blocks uint32, flags byte) []byte {
	c := make([]byte, 16)
	c[0], c[1] = op, flags
	binary.BigEndian.PutUint64(c[2:], lba)
	binary.BigEndian.PutUint32(c[10:], blocks)
	return c
}

func cdbRW12(op byte, lba uint32, blocks uint32, flags byte) []byte {
	c := make([]byte, 12)
	c[0], c[1] = op, flags
	binary.BigEndian.PutUint32(c[2:], lba)
	binary.BigEndian.PutUint32(c[6:], blocks)
	return c
}

func cdbRW6(op byte, lba uint32, blocks byte) []byte {
	return []byte{op, byte(lba>>16) & 0x1F, byte(lba >> 8), byte(lba), blocks, 0}
}

func cdbModeSense6(page, sub, pc byte, dbd bool, alloc byte) []byte {
	c := []byte{opModeSense6, 0, pc<<6 | page, sub, alloc, 0}
	if dbd {
		c[1] = modeDBD
	}
	return c
}

func cdbModeSelect6(n byte) []byte { return []byte{opModeSelect6, modeSelPF, 0, 0, n, 0} }

func cdbPRIn(sa byte, alloc uint16) []byte {
	c := make([]byte, 10)
	c[0], c[1] = opPersistentReserveIn, sa
	binary.BigEndian.PutUint16(c[7:], alloc)
	return c
}

func cdbPROut(sa, typ byte, plen uint32) []byte {
	c := make([]byte, 10)
	c[0], c[1], c[2] = opPersistentReserveOut, sa, typ
	binary.BigEndian.PutUint32(c[5:], plen)
	return c
}

func prParams(key, saKey uint64, flags byte) []byte {
	p := make([]byte, prOutBasicLen)
	binary.BigEndian.PutUint64(p[0:], key)
	binary.BigEndian.PutUint64(p[8:], saKey)
	p[20] = flags
	return p
}

func fill(n int, v byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = v
	}
	return b
}
