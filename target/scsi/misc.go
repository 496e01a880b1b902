package scsi

import "context"

// Fields of the small SPC/SBC commands served here.
const (
	reqSenseDesc = 0x01 // REQUEST SENSE cdb byte 1

	reportLUNsAll        = 0x00
	reportLUNsWellKnown  = 0x01
	reportLUNsAllAndWell = 0x02
	reportLUNsHeaderLen  = 8
	lunEntryLen          = 8

	ssuLOEJ    = 0x02 // START STOP UNIT cdb byte 4
	ssuStart   = 0x01
	ssuNoFlush = 0x04
	ssuLOEJBit = 1

	reserve3rdParty6  = 0x10 // RESERVE(6) / RESERVE(10) byte 1 (obsolete 3rdPty)
	reserveLongID     = 0x02
	reserve3rdPtyBit  = 4
	reserveLongIDBit  = 1
	rtpgExtended      = 0x20 // PARAMETER DATA FORMAT 001b, cdb byte 1 bits 7..5
	rtpgFormatMask    = 0xE0
	rtpgHeaderLen     = 4
	rtpgExtHeaderLen  = 8
	rtpgExtFormatType = 0x10
	rtpgDescLen       = 8
	rtpgPortLen       = 4
	aluaActiveOpt     = 0x00
	aluaPref          = 0x80
	aluaAOSup         = 0x01

	rstmfREPD       = 0x80 // cdb byte 2
	rstmfLen        = 4
	rstmfExtLen     = 16
	rstmfExtAddLen  = 0x0C
	tmfATS          = 0x80 // byte 0: ABORT TASK
	tmfATSS         = 0x40 // ABORT TASK SET
	tmfCTSS         = 0x10 // CLEAR TASK SET
	tmfLURS         = 0x08 // LOGICAL UNIT RESET
	tmfQTS          = 0x04 // QUERY TASK
	tmfTRS          = 0x02 // TARGET RESET
	tmfQAES         = 0x04 // byte 1: QUERY ASYNCHRONOUS EVENT
	tmfQTSS         = 0x02 // QUERY TASK SET
	maintAllocAt    = 6
	reportLUNsAlcAt = 6
)

// requestSense answers REQUEST SENSE with the sense data of c (GOOD c: NO
// SENSE). The command itself completes with GOOD.
func requestSense(x *execCtx, c checkCondition) checkCondition {
	desc := x.cdb[1]&reqSenseDesc != 0
	alloc := int(x.cdb[4])
	if c.ok() {
		c = newCheck(SenseNoSense, ASCNoAdditionalSense)
	}
	var tmp [252]byte
	s := encodeSense(tmp[:], c, desc)
	b := x.buffer(len(s))
	copy(b, s)
	return x.reply(b, alloc)
}

// requestSense on a logical unit reports (and clears) the highest
// priority pending unit attention of the nexus.
func (l *logicalUnit) requestSense(x *execCtx) checkCondition {
	l.mu.Lock()
	st := l.itLocked(x.cmd.Nexus)
	u, ok := st.pop()
	l.mu.Unlock()
	c := good
	if ok {
		c = newCheck(SenseUnitAttention, u.asc())
	}
	return requestSense(x, c)
}

// reportLUNs serves REPORT LUNS for any LUN.
func (t *Target) reportLUNs(x *execCtx) checkCondition {
	cdb := x.cdb
	sel := cdb[2]
	alloc := int(be32(cdb[reportLUNsAlcAt:]))
	var luns []uint64
	switch sel {
	case reportLUNsAll:
		luns = t.LUNs()
	case reportLUNsWellKnown:
		luns = []uint64{WellKnownLUNReportLUNs}
	case reportLUNsAllAndWell:
		luns = append(t.LUNs(), WellKnownLUNReportLUNs)
	default:
		return invalidCDB(2, -1)
	}
	b := x.buffer(reportLUNsHeaderLen + lunEntryLen*len(luns))
	putUint32(b[0:], uint32(lunEntryLen*len(luns)))
	for i, lun := range luns {
		e := EncodeLUN(lun)
		copy(b[reportLUNsHeaderLen+i*lunEntryLen:], e[:])
	}
	return x.reply(b, alloc)
}

// startStopUnit serves START STOP UNIT for a fixed, non-removable disk:
// there is no medium to load or eject; stopping flushes the cache unless
// NO_FLUSH is set.
func (l *logicalUnit) startStopUnit(ctx context.Context, x *execCtx) checkCondition {
	b4 := x.cdb[4]
	if b4&ssuLOEJ != 0 {
		return invalidCDB(4, ssuLOEJBit)
	}
	if b4&ssuStart == 0 && b4&ssuNoFlush == 0 {
		if err := l.dev.Flush(ctx); err != nil {
			return deviceError(ctx, err, true)
		}
	}
	return good
}

// preventAllow serves PREVENT ALLOW MEDIUM REMOVAL: a fixed disk has no
// medium to lock, so every value is accepted.
func (l *logicalUnit) preventAllow(x *execCtx) checkCondition {
	return good
}

// reportTargetPortGroups serves REPORT TARGET PORT GROUPS: one group, in
// the active/optimized state, holding every port we have seen.
func (l *logicalUnit) reportTargetPortGroups(x *execCtx) checkCondition {
	cdb := x.cdb
	alloc := int(be32(cdb[maintAllocAt:]))
	ext := cdb[1]&rtpgFormatMask == rtpgExtended
	ports := l.t.relativePorts(x.cmd.Nexus.RelativePort)
	hdr := rtpgHeaderLen
	if ext {
		hdr = rtpgExtHeaderLen
	}
	b := x.buffer(hdr + rtpgDescLen + rtpgPortLen*len(ports))
	putUint32(b[0:], uint32(len(b)-4))
	if ext {
		b[4] = rtpgExtFormatType
	}
	d := b[hdr:]
	d[0] = aluaPref | aluaActiveOpt
	d[1] = aluaAOSup
	putUint16(d[2:], l.t.opts.TargetPortGroup)
	d[7] = byte(len(ports))
	for i, p := range ports {
		putUint16(d[rtpgDescLen+i*rtpgPortLen+2:], p)
	}
	return x.reply(b, alloc)
}

// relativePorts returns the sorted distinct relative port identifiers of
// the known nexuses plus cur.
func (t *Target) relativePorts(cur uint16) []uint16 {
	seen := map[uint16]bool{}
	if cur != 0 {
		seen[cur] = true
	}
	t.mu.RLock()
	for n := range t.nexuses {
		if n.RelativePort != 0 {
			seen[n.RelativePort] = true
		}
	}
	t.mu.RUnlock()
	out := make([]uint16, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// reportSupportedTMFs serves REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS.
func (l *logicalUnit) reportSupportedTMFs(x *execCtx) checkCondition {
	alloc := int(be32(x.cdb[maintAllocAt:]))
	n := rstmfLen
	if x.cdb[2]&rstmfREPD != 0 {
		n = rstmfExtLen
	}
	b := x.buffer(n)
	b[0] = tmfATS | tmfATSS | tmfCTSS | tmfLURS | tmfQTS | tmfTRS
	b[1] = tmfQAES | tmfQTSS
	if n == rstmfExtLen {
		b[3] = rstmfExtAddLen
	}
	return x.reply(b, alloc)
}

// reserve serves RESERVE(6) and RESERVE(10) (SPC-2 reservations).
func (l *logicalUnit) reserve(x *execCtx) checkCondition {
	if x.cdb[0] == opReserve10 {
		if x.cdb[1]&reserve3rdParty6 != 0 {
			return invalidCDB(1, reserve3rdPtyBit)
		}
		if x.cdb[1]&reserveLongID != 0 {
			return invalidCDB(1, reserveLongIDBit)
		}
	}
	n := x.cmd.Nexus
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.pr.regs) > 0 || (l.spc2Held && l.spc2Holder != n) {
		return errConflict
	}
	l.spc2Held, l.spc2Holder = true, n
	return good
}

// release serves RELEASE(6) and RELEASE(10).
func (l *logicalUnit) release(x *execCtx) checkCondition {
	n := x.cmd.Nexus
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.pr.regs) > 0 {
		return errConflict
	}
	if l.spc2Held && l.spc2Holder == n {
		l.spc2Held = false
	}
	return good
}
