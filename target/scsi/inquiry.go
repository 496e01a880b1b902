package scsi

// INQUIRY layout (SPC-4 6.6) and VPD page codes (SPC-4 7.8, SBC-4 6.6).
const (
	inqEVPD  = 0x01 // cdb byte 1
	inqCmdDt = 0x02

	pdtDirectAccess  = 0x00
	pdtWellKnown     = 0x1E
	pqNotConnectable = 0x03 << 5
	pdtUnknown       = 0x1F

	inqVersionSPC4    = 0x06
	inqHiSup          = 0x10
	inqRespFormat     = 0x02
	inqTPGSImplicit   = 0x10 // byte 5, TPGS=01b
	inq3PC            = 0x08
	inqCmdQue         = 0x02 // byte 7
	inqStdLen         = 96
	inqVendorOff      = 8
	inqProductOff     = 16
	inqRevisionOff    = 32
	inqVersionDescOff = 58

	versionSAM5  = 0x00A0
	versionISCSI = 0x0960
	versionSPC4  = 0x0460
	versionSBC3  = 0x04C0

	vpdSupported     = 0x00
	vpdSerial        = 0x80
	vpdDeviceID      = 0x83
	vpdExtended      = 0x86
	vpdThirdPartyCpy = 0x8F
	vpdBlockLimits   = 0xB0
	vpdCharacteristc = 0xB1
	vpdLBP           = 0xB2

	// Designation descriptor fields (SPC-4 7.8.6).
	protoISCSI       = 0x05
	codeSetBinary    = 0x01
	codeSetASCII     = 0x02
	codeSetUTF8      = 0x03
	desigPIV         = 0x80
	assocLU          = 0x00
	assocTargetPort  = 0x10
	assocTargetDev   = 0x20
	desigT10Vendor   = 0x01
	desigNAA         = 0x03
	desigRelPort     = 0x04
	desigTPG         = 0x05
	desigSCSIName    = 0x08
	t10VendorIDLen   = 8
	extInqSimpSup    = 0x01 // byte 5
	extInqVSup       = 0x01 // byte 6
	extInqLUICLR     = 0x01 // byte 7
	vpdExtendedLen   = 0x3C
	vpdBlockLimitLen = 0x3C
	vpdCharLen       = 0x3C
	vpdLBPLen        = 0x04
	blWSNZ           = 0x01
	mediumRotationNR = 0x0001 // non-rotating medium
	lbpLBPU          = 0x80
	lbpLBPWS         = 0x40
	lbpLBPWS10       = 0x20
	lbpLBPRZ         = 0x04 // LBPRZ field = 001b
	lbpProvThin      = 0x02
)

// vpdPages lists the VPD pages we serve, in ascending order.
var vpdPages = [...]byte{vpdSupported, vpdSerial, vpdDeviceID, vpdExtended, vpdThirdPartyCpy, vpdBlockLimits, vpdCharacteristc, vpdLBP}

// standardInquiry fills the standard INQUIRY data with byte 0 = pqpdt.
func (t *Target) standardInquiry(b []byte, pqpdt byte) {
	b[0] = pqpdt
	b[2] = inqVersionSPC4
	b[3] = inqHiSup | inqRespFormat
	b[4] = byte(len(b) - 5)
	b[5] = inqTPGSImplicit | inq3PC
	b[7] = inqCmdQue
	padCopy(b[inqVendorOff:inqProductOff], t.opts.VendorID)
	padCopy(b[inqProductOff:inqRevisionOff], t.opts.ProductID)
	padCopy(b[inqRevisionOff:inqRevisionOff+4], t.opts.Revision)
	for i, v := range [...]uint16{versionSAM5, versionISCSI, versionSPC4, versionSBC3} {
		putUint16(b[inqVersionDescOff+2*i:], v)
	}
}

// inquiryNoLU answers INQUIRY for a LUN without a logical unit: peripheral
// qualifier 011b (not connectable) for unknown LUNs, device type 1Eh for
// the REPORT LUNS well-known LU.
func (t *Target) inquiryNoLU(x *execCtx, wlun bool) checkCondition {
	cdb := x.cdb
	if c := checkInquiryCDB(cdb); !c.ok() {
		return c
	}
	alloc := int(be16(cdb[3:]))
	b := x.buffer(inqStdLen)
	pqpdt := byte(pqNotConnectable | pdtUnknown)
	if wlun {
		pqpdt = pdtWellKnown
	}
	if cdb[1]&inqEVPD != 0 {
		if !wlun || (cdb[2] != vpdSupported) {
			if !wlun {
				b = b[:4]
				b[0] = pqpdt
				b[1] = cdb[2]
				return x.reply(b, alloc)
			}
			return invalidCDB(2, -1)
		}
		b = b[:5]
		b[0], b[1], b[3], b[4] = pqpdt, vpdSupported, 1, vpdSupported
		return x.reply(b, alloc)
	}
	t.standardInquiry(b, pqpdt)
	return x.reply(b, alloc)
}

func checkInquiryCDB(cdb []byte) checkCondition {
	if cdb[1]&inqCmdDt != 0 {
		return invalidCDB(1, 1)
	}
	if cdb[1]&inqEVPD == 0 && cdb[2] != 0 {
		return invalidCDB(2, -1)
	}
	return good
}

// inquiry serves INQUIRY for a logical unit.
func (l *logicalUnit) inquiry(x *execCtx) checkCondition {
	cdb := x.cdb
	if c := checkInquiryCDB(cdb); !c.ok() {
		return c
	}
	alloc := int(be16(cdb[3:]))
	if cdb[1]&inqEVPD == 0 {
		b := x.buffer(inqStdLen)
		l.t.standardInquiry(b, pdtDirectAccess)
		return x.reply(b, alloc)
	}
	var b []byte
	switch cdb[2] {
	case vpdSupported:
		b = make([]byte, 4, 4+len(vpdPages))
		b = append(b, vpdPages[:]...)
	case vpdSerial:
		b = make([]byte, 4, 4+len(l.serial))
		b = append(b, l.serial...)
	case vpdDeviceID:
		b = l.deviceIDPage(x.cmd.Nexus)
	case vpdExtended:
		b = make([]byte, 4+vpdExtendedLen)
		b[5] = extInqSimpSup
		b[6] = extInqVSup
		b[7] = extInqLUICLR
	case vpdThirdPartyCpy:
		b = thirdPartyCopyPage()
	case vpdBlockLimits:
		b = l.blockLimitsPage()
	case vpdCharacteristc:
		b = make([]byte, 4+vpdCharLen)
		putUint16(b[4:], mediumRotationNR)
	case vpdLBP:
		b = make([]byte, 4+vpdLBPLen)
		if l.unmapper != nil {
			b[5] = lbpLBPU | lbpLBPWS | lbpLBPWS10
			b[6] = lbpProvThin
		}
		b[5] |= lbpLBPRZ
	default:
		return invalidCDB(2, -1)
	}
	b[0] = pdtDirectAccess
	b[1] = cdb[2]
	putUint16(b[2:], uint16(len(b)-4))
	out := x.res.DataBuffer(len(b))
	copy(out, b)
	return x.reply(out, alloc)
}

// designator appends one designation descriptor.
func designator(b []byte, proto, codeSet, assocType byte, id []byte) []byte {
	hdr := [4]byte{proto<<4 | codeSet, assocType, 0, byte(len(id))}
	if proto != 0 {
		hdr[1] |= desigPIV
	}
	b = append(b, hdr[:]...)
	return append(b, id...)
}

// scsiNameString returns s NUL terminated and padded to a multiple of 4
// (SPC-4 7.8.6.11).
func scsiNameString(s string) []byte {
	n := (len(s) + 1 + 3) &^ 3
	b := make([]byte, n)
	copy(b, s)
	return b
}

// deviceIDPage builds VPD 83h: everything an initiator needs to build a
// multipath identity (NAA, T10 vendor ID) and to tell our ports apart.
func (l *logicalUnit) deviceIDPage(n Nexus) []byte {
	b := make([]byte, 4, 256)
	b = designator(b, 0, codeSetBinary, assocLU|desigNAA, l.naa[:])
	t10 := make([]byte, t10VendorIDLen, t10VendorIDLen+len(l.serial))
	padCopy(t10, l.t.opts.VendorID)
	t10 = append(t10, l.serial...)
	b = designator(b, 0, codeSetASCII, assocLU|desigT10Vendor, t10)
	if n.TargetPort != "" {
		b = designator(b, protoISCSI, codeSetUTF8, assocTargetPort|desigSCSIName, scsiNameString(n.TargetPort))
	}
	if n.RelativePort != 0 {
		var id [4]byte
		putUint16(id[2:], n.RelativePort)
		b = designator(b, protoISCSI, codeSetBinary, assocTargetPort|desigRelPort, id[:])
	}
	var tpg [4]byte
	putUint16(tpg[2:], l.t.opts.TargetPortGroup)
	b = designator(b, 0, codeSetBinary, assocTargetPort|desigTPG, tpg[:])
	if l.t.opts.Name != "" {
		b = designator(b, protoISCSI, codeSetUTF8, assocTargetDev|desigSCSIName, scsiNameString(l.t.opts.Name))
	}
	return b
}

// maxTransferBlocks is the MAXIMUM TRANSFER LENGTH in blocks.
func (l *logicalUnit) maxTransferBlocks() uint32 {
	return l.t.opts.MaxTransferBytes >> l.blockShift
}

// optimalUnmapGranularity is the OPTIMAL UNMAP GRANULARITY of VPD B0h, in
// blocks: one physical block on 512-byte LUNs, and 0 ("not reported") on
// larger blocks. QEMU's iSCSI driver (7.2 at least) turns a reported
// granularity of 4 KiB or more, with LBPRZ, into an allocation map whose
// block-status queries are not aligned to 4 KiB blocks, and aborts on its
// own alignment assertion when a guest reads 32 KiB of unwritten space.
// Nothing is lost by not reporting: every block unmaps on its own.
func (l *logicalUnit) optimalUnmapGranularity() uint32 {
	if l.blockShift > 9 {
		return 0
	}
	return uint32(1) << l.opts.PhysicalBlockExponent
}

// blockLimitsPage builds VPD B0h.
func (l *logicalUnit) blockLimitsPage() []byte {
	o := &l.t.opts
	b := make([]byte, 4+vpdBlockLimitLen)
	b[4] = blWSNZ
	b[5] = o.MaxCompareAndWriteBlocks
	putUint16(b[6:], uint16(1)<<l.opts.PhysicalBlockExponent)
	putUint32(b[8:], l.maxTransferBlocks())
	putUint32(b[12:], o.OptimalTransferBytes>>l.blockShift)
	putUint32(b[16:], l.maxTransferBlocks())
	if l.unmapper != nil {
		putUint32(b[20:], o.MaxUnmapBlocks)
		putUint32(b[24:], o.MaxUnmapDescriptors)
		putUint32(b[28:], l.optimalUnmapGranularity())
	}
	putUint64(b[36:], o.MaxWriteSameBlocks)
	if l.atomicW != nil {
		m := min(l.atomicW.MaxAtomicBlocks(), l.maxTransferBlocks())
		putUint32(b[44:], m)
		putUint32(b[48:], 1)
		putUint32(b[52:], 1)
	}
	return b
}
