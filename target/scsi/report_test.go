package scsi

import (
	"encoding/binary"
	"testing"
)

func cdbRSOC(opts, op byte, sa uint16, rctd bool) []byte {
	c := make([]byte, 12)
	c[0], c[1], c[2], c[3] = opMaintenanceIn, saReportSupportedOpcodes, opts, op
	if rctd {
		c[2] |= rsocRCTD
	}
	binary.BigEndian.PutUint16(c[4:], sa)
	binary.BigEndian.PutUint32(c[6:], 65535)
	return c
}

// TestReportSupportedOpcodes walks the all-commands list and checks every
// entry the way libiscsi's one-command test does, and that every listed
// command is really dispatched (not INVALID OPERATION CODE).
func TestReportSupportedOpcodes(t *testing.T) {
	for _, rctd := range []bool{false, true} {
		h := newHarness(t, newThinDev(512, 1024), LUOptions{})
		r := h.run(cdbRSOC(rsocAll, 0, 0, rctd), nil)
		expectGood(t, r)
		step := rsocDescLen
		if rctd {
			step += rsocTimeoutLen
		}
		list := r.DataIn[4:]
		if int(be32(r.DataIn)) != len(list) || len(list)%step != 0 || len(list) == 0 {
			t.Fatalf("list length %d", be32(r.DataIn))
		}
		for off := 0; off < len(list); off += step {
			d := list[off:]
			op, sa, servactv := d[0], be16(d[2:]), d[5]&rsocServActV != 0
			if rctd && (d[5]&rsocCTDP == 0 || be16(d[8:]) != rsocTimeoutAddLen) {
				t.Fatalf("op %#x: no timeouts descriptor", op)
			}
			one := h.run(cdbRSOC(rsocOpcode, op, sa, rctd), nil)
			two := h.run(cdbRSOC(rsocOpcodeSA, op, sa, rctd), nil)
			withSA, without := two, one
			if !servactv {
				withSA, without = one, two
			}
			expectGood(t, withSA)
			expectSense(t, without, SenseIllegalRequest, ASCInvalidFieldInCDB)
			if withSA.DataIn[1]&0x07 != rsocSupported {
				t.Fatalf("op %#x sa %#x: support %#x", op, sa, withSA.DataIn[1])
			}
			n := int(be16(withSA.DataIn[2:]))
			usage := withSA.DataIn[4 : 4+n]
			if n != int(be16(d[6:])) || usage[0] != op || n != cdbLengthOf(op) {
				t.Fatalf("op %#x: cdb length %d usage %x", op, n, usage)
			}
			// The command is dispatched: its own usage bits as a CDB never
			// yield INVALID OPERATION CODE.
			cdb := make([]byte, n)
			cdb[0] = op
			if servactv {
				cdb[1] = byte(sa)
			}
			res := h.run(cdb, make([]byte, 64))
			if s, _ := ParseSense(res.Sense); res.Status == StatusCheckCondition && s.ASC == ASCInvalidOpcode {
				t.Fatalf("op %#x sa %#x listed but not dispatched", op, sa)
			}
		}
		// An unsupported command is reported as such.
		r = h.run(cdbRSOC(rsocOpcode, 0xC5, 0, false), nil)
		expectGood(t, r)
		if r.DataIn[1]&0x07 != rsocNotSupported {
			t.Fatalf("unsupported opcode support %#x", r.DataIn[1])
		}
	}
}

func cdbLengthOf(op byte) int {
	switch op {
	case opMaintenanceIn:
		return 12
	case opExtendedCopy, opReceiveCopyResults:
		return 16
	}
	return cdbLength(op)
}

func TestReportSupportedTMFs(t *testing.T) {
	h := newHarness(t, nil, LUOptions{})
	c := []byte{opMaintenanceIn, saReportSupportedTMFs, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0}
	r := h.run(c, nil)
	expectGood(t, r)
	if len(r.DataIn) != rstmfLen || r.DataIn[0]&tmfLURS == 0 || r.DataIn[0]&tmfATS == 0 {
		t.Fatalf("rstmf %x", r.DataIn)
	}
	c[2] = rstmfREPD
	r = h.run(c, nil)
	expectGood(t, r)
	if len(r.DataIn) != rstmfExtLen || r.DataIn[3] != rstmfExtAddLen {
		t.Fatalf("rstmf repd %x", r.DataIn)
	}
}

func TestReportTargetPortGroups(t *testing.T) {
	h := newHarness(t, nil, LUOptions{})
	n2 := testNexus(1)
	n2.RelativePort = 2
	n2.TargetPort = testIQN + ",t,0x2"
	h.login(n2)
	c := []byte{opMaintenanceIn, saReportTargetPortGroups, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0}
	r := h.run(c, nil)
	expectGood(t, r)
	d := r.DataIn[rtpgHeaderLen:]
	if int(be32(r.DataIn)) != len(r.DataIn)-4 || d[0]&0x0F != aluaActiveOpt || be16(d[2:]) != DefaultTargetPortGroup || d[7] != 2 {
		t.Fatalf("rtpg %x", r.DataIn)
	}
	if be16(d[rtpgDescLen+2:]) != 1 || be16(d[rtpgDescLen+rtpgPortLen+2:]) != 2 {
		t.Fatalf("ports %x", d[rtpgDescLen:])
	}
	c[1] |= rtpgExtended
	r = h.run(c, nil)
	expectGood(t, r)
	if r.DataIn[4] != rtpgExtFormatType {
		t.Fatalf("extended header %x", r.DataIn[:8])
	}
}

func TestReportLUNs(t *testing.T) {
	h := newHarness(t, nil, LUOptions{})
	if err := h.tgt.AddLU(300, newMemDev(512, 8), LUOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		sel  byte
		want [][8]byte
	}{
		{reportLUNsAll, [][8]byte{EncodeLUN(0), EncodeLUN(300)}},
		{reportLUNsWellKnown, [][8]byte{EncodeLUN(WellKnownLUNReportLUNs)}},
		{reportLUNsAllAndWell, [][8]byte{EncodeLUN(0), EncodeLUN(300), EncodeLUN(WellKnownLUNReportLUNs)}},
	} {
		r := h.run([]byte{opReportLUNs, 0, c.sel, 0, 0, 0, 0, 0, 4, 0, 0, 0}, nil)
		expectGood(t, r)
		if int(be32(r.DataIn)) != 8*len(c.want) {
			t.Fatalf("select %d: length %d", c.sel, be32(r.DataIn))
		}
		for i, w := range c.want {
			if [8]byte(r.DataIn[8+8*i:]) != w {
				t.Fatalf("select %d entry %d: %x", c.sel, i, r.DataIn[8+8*i:16+8*i])
			}
			if DecodeLUN(w) != DecodeLUN([8]byte(r.DataIn[8+8*i:])) {
				t.Fatal("decode")
			}
		}
	}
	if got := EncodeLUN(300); got[0] != lunAddrFlat|1 || got[1] != 44 {
		t.Fatalf("flat encoding %x", got)
	}
	// A transport that passes the raw W-LUN field reaches it too.
	r := h.runAs(h.n, 0xC101000000000000, cdbInquiry(false, 0, 96), nil)
	expectGood(t, r)
	if r.DataIn[0] != pdtWellKnown {
		t.Fatalf("W-LUN inquiry byte 0 %#x", r.DataIn[0])
	}
	if DecodeLUN(EncodeLUN(300)) != 300 || DecodeLUN(EncodeLUN(5)) != 5 {
		t.Fatal("lun round trip")
	}
}
