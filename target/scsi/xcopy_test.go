package scsi

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// xcopyParams builds an EXTENDED COPY parameter list with one E4h target
// descriptor per NAA and the given block-to-block segments.
func xcopyParams(listID byte, naas [][]byte, segs []copySegment) []byte {
	p := make([]byte, xcopyHeaderLen)
	p[0] = listID
	for _, naa := range naas {
		d := make([]byte, xcopyTgtDescLen)
		d[0] = xcopyTgtIdent
		d[4] = codeSetBinary
		d[5] = desigNAA
		d[7] = byte(len(naa))
		copy(d[8:], naa)
		d[30] = 0x02 // block size 512
		p = append(p, d...)
	}
	binary.BigEndian.PutUint16(p[2:], uint16(len(naas)*xcopyTgtDescLen))
	for _, s := range segs {
		d := make([]byte, xcopySegB2BLen)
		d[0] = xcopySegBlkToBlk
		binary.BigEndian.PutUint16(d[2:], xcopySegB2BAddLen)
		binary.BigEndian.PutUint16(d[4:], uint16(s.src))
		binary.BigEndian.PutUint16(d[6:], uint16(s.dst))
		binary.BigEndian.PutUint16(d[10:], uint16(s.blocks))
		binary.BigEndian.PutUint64(d[12:], s.srcLBA)
		binary.BigEndian.PutUint64(d[20:], s.dstLBA)
		p = append(p, d...)
	}
	binary.BigEndian.PutUint32(p[8:], uint32(len(segs)*xcopySegB2BLen))
	return p
}

func cdbXCopy(n int) []byte {
	c := make([]byte, 16)
	c[0] = opExtendedCopy
	binary.BigEndian.PutUint32(c[xcopyLenAt:], uint32(n))
	return c
}

func cdbRCR(sa, listID byte) []byte {
	c := make([]byte, 16)
	c[0], c[1], c[rcrListIDAt] = opReceiveCopyResults, sa, listID
	binary.BigEndian.PutUint32(c[rcrAllocAt:], 1024)
	return c
}

func TestExtendedCopy(t *testing.T) {
	for _, copier := range []bool{false, true} {
		h := newHarness(t, nil, LUOptions{WriteCache: true})
		var dst Device = newMemDev(512, 256)
		if copier {
			dst = newThinDev(512, 256)
		}
		if err := h.tgt.AddLU(1, dst, LUOptions{WriteCache: true}); err != nil {
			t.Fatal(err)
		}
		h.run(cdbTUR(), nil) // REPORTED LUNS DATA HAS CHANGED
		src := h.tgt.lu(0)
		dl := h.tgt.lu(1)
		data := fill(8*512, 0x42)
		expectGood(t, h.run(cdbRW10(opWrite10, 16, 8, 0), data))
		p := xcopyParams(7, [][]byte{src.naa[:], dl.naa[:]}, []copySegment{{src: 0, dst: 1, blocks: 8, srcLBA: 16, dstLBA: 100}})
		expectGood(t, h.run(cdbXCopy(len(p)), p))
		r := h.runAs(h.n, 1, cdbRW10(opRead10, 100, 8, 0), nil)
		if r.Status == StatusCheckCondition {
			r = h.runAs(h.n, 1, cdbRW10(opRead10, 100, 8, 0), nil) // power-on UA of LU 1
		}
		expectGood(t, r)
		if !bytes.Equal(r.DataIn, data) {
			t.Fatalf("copier=%v: copied data differs", copier)
		}
		st := h.run(cdbRCR(saCopyStatus, 7), nil)
		expectGood(t, st)
		if st.DataIn[4] != copyStatusGood || be16(st.DataIn[5:]) != 1 || be32(st.DataIn[8:]) != 8*512 {
			t.Fatalf("copy status %x", st.DataIn)
		}
	}
}

func TestExtendedCopyErrors(t *testing.T) {
	h := newHarness(t, nil, LUOptions{WriteCache: true})
	naa := h.tgt.lu(0).naa[:]
	seg := []copySegment{{blocks: 8, srcLBA: 0, dstLBA: 64}}
	good := xcopyParams(1, [][]byte{naa}, seg)

	expectGood(t, h.run(cdbXCopy(0), nil))
	expectSense(t, h.run(cdbXCopy(xcopyHeaderLen+xcopyTgtDescLen-1), good[:xcopyHeaderLen+xcopyTgtDescLen-1]), SenseIllegalRequest, ASCParameterListLengthError)
	expectSense(t, h.run(cdbXCopy(len(good)-1), good[:len(good)-1]), SenseIllegalRequest, ASCParameterListLengthError)

	unknown := xcopyParams(1, [][]byte{{0x60, 1, 2, 3, 4, 5, 6, 7}}, seg)
	expectSense(t, h.run(cdbXCopy(len(unknown)), unknown), senseCopyAborted, ASCCopyTargetNotReachable)

	badIndex := xcopyParams(1, [][]byte{naa}, []copySegment{{dst: 1, blocks: 1}})
	expectSense(t, h.run(cdbXCopy(len(badIndex)), badIndex), senseCopyAborted, ASCCopyTargetNotReachable)

	beyond := xcopyParams(1, [][]byte{naa}, []copySegment{{blocks: 8, dstLBA: 4095}})
	r := h.run(cdbXCopy(len(beyond)), beyond)
	if s, _ := ParseSense(r.Sense); r.Status != StatusCheckCondition || s.Key != senseCopyAborted {
		t.Fatalf("beyond end: %#x %+v", r.Status, s)
	}

	many := make([][]byte, xcopyMaxTargets+1)
	for i := range many {
		many[i] = naa
	}
	tooMany := xcopyParams(1, many, seg)
	expectSense(t, h.run(cdbXCopy(len(tooMany)), tooMany), SenseIllegalRequest, ASCTooManyTargetDescriptors)

	segs := make([]copySegment, xcopyMaxSegments+1)
	tooManySegs := xcopyParams(1, [][]byte{naa}, segs)
	expectSense(t, h.run(cdbXCopy(len(tooManySegs)), tooManySegs), SenseIllegalRequest, ASCTooManySegmentDescriptors)

	badType := bytes.Clone(good)
	badType[xcopyHeaderLen] = 0xE0
	expectSense(t, h.run(cdbXCopy(len(badType)), badType), SenseIllegalRequest, ASCUnsupportedTargetDescriptor)
	badSeg := bytes.Clone(good)
	badSeg[xcopyHeaderLen+xcopyTgtDescLen] = 0x03
	expectSense(t, h.run(cdbXCopy(len(badSeg)), badSeg), SenseIllegalRequest, ASCUnsupportedSegmentDescriptor)

	nul := bytes.Clone(good)
	nul[xcopyHeaderLen+1] |= xcopyNUL
	expectSense(t, h.run(cdbXCopy(len(nul)), nul), senseCopyAborted, ASCCopyTargetNotReachable)

	luid := bytes.Clone(good)
	luid[xcopyHeaderLen+1] = 3 << 6 // reserved LU ID TYPE: ignored
	expectGood(t, h.run(cdbXCopy(len(luid)), luid))

	op := h.run(cdbRCR(saOperatingParams, 0), nil)
	expectGood(t, op)
	if be16(op.DataIn[8:]) != xcopyMaxTargets || be16(op.DataIn[10:]) != xcopyMaxSegments || int(be32(op.DataIn)) != len(op.DataIn)-4 {
		t.Fatalf("operating parameters %x", op.DataIn)
	}
	expectSense(t, h.run(cdbRCR(saCopyStatus, 99), nil), SenseIllegalRequest, ASCInvalidFieldInCDB)
}

// TestExtendedCopyOverlapping copies a range onto an overlapping range
// further up the same LU, in more than one chunk, through the read/write
// fallback: the result must be what memmove gives.
func TestExtendedCopyOverlapping(t *testing.T) {
	dev := newMemDev(512, 64)
	tgt := NewTarget(TargetOptions{Name: testIQN, MaxTransferBytes: 4 * 512})
	if err := tgt.AddLU(0, dev, LUOptions{WriteCache: true}); err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, tgt: tgt, dev: dev, n: testNexus(0)}
	h.login(h.n)
	data := make([]byte, 10*512)
	for i := range data {
		data[i] = byte(i / 512)
	}
	expectGood(t, h.run(cdbRW10(opWrite10, 0, 4, 0), data[:4*512]))
	expectGood(t, h.run(cdbRW10(opWrite10, 4, 4, 0), data[4*512:8*512]))
	expectGood(t, h.run(cdbRW10(opWrite10, 8, 2, 0), data[8*512:]))
	naa := tgt.lu(0).naa[:]
	p := xcopyParams(1, [][]byte{naa}, []copySegment{{blocks: 10, srcLBA: 0, dstLBA: 3}})
	expectGood(t, h.run(cdbXCopy(len(p)), p))
	if got := dev.contents(3, 10); !bytes.Equal(got, data) {
		t.Fatal("overlapping copy corrupted the data")
	}
}
