package scsi

// Mode page codes and layouts (SPC-4 7.5, SBC-4 6.5).
const (
	pageRWErrorRecovery   = 0x01
	pageCaching           = 0x08
	pageControl           = 0x0A
	pageInfoExceptions    = 0x1C
	pageAll               = 0x3F
	subpageAll            = 0xFF
	pageCodeMask          = 0x3F
	pageSPF               = 0x40
	pagePS                = 0x80
	pageLenRWErrRecovery  = 0x0A
	pageLenCaching        = 0x12
	pageLenControl        = 0x0A
	pageLenInfoExceptions = 0x0A

	cachingWCE = 0x04 // byte 2

	rwerrAWRE = 0x80 // byte 2

	controlDSense = 0x04 // byte 2
	controlGLTSD  = 0x02
	controlSWP    = 0x08 // byte 4
	controlTAS    = 0x40 // byte 5

	pcCurrent    = 0
	pcChangeable = 1
	pcDefault    = 2
	pcSaved      = 3

	modeDBD    = 0x08 // cdb byte 1
	modeLLBAA  = 0x10 // MODE SENSE(10) cdb byte 1
	modeSelPF  = 0x10
	modeSelSP  = 0x01
	devSpecWP  = 0x80
	devSpecDPO = 0x10 // DPOFUA
	longLBA    = 0x01

	blockDescShortLen = 8
	blockDescLongLen  = 16
	modeHdr6Len       = 4
	modeHdr10Len      = 8
)

// modeState is the current value of every changeable mode parameter of
// one LU (shared by all nexuses: we keep no per-I_T mode pages).
type modeState struct {
	wce    bool
	dsense bool
	swp    bool
	tas    bool
}

// modeSnapshot is the part of modeState a command needs, copied at
// admission so that handlers run without the LU lock.
type modeSnapshot struct {
	wce    bool
	dsense bool
	swp    bool
}

func defaultMode(o LUOptions) modeState {
	return modeState{wce: o.WriteCache}
}

func (m modeState) snapshot() modeSnapshot {
	return modeSnapshot{wce: m.wce, dsense: m.dsense, swp: m.swp}
}

// modePage appends page code with the values for pc.
func (l *logicalUnit) modePage(b []byte, code byte, pc byte, cur modeState) []byte {
	def := defaultMode(l.opts)
	pick := func(cur, def, changeable bool) bool {
		switch pc {
		case pcChangeable:
			return changeable
		case pcDefault:
			return def
		}
		return cur
	}
	switch code {
	case pageRWErrorRecovery:
		p := make([]byte, 2+pageLenRWErrRecovery)
		p[0], p[1] = pageRWErrorRecovery, pageLenRWErrRecovery
		if pc != pcChangeable {
			p[2] = rwerrAWRE
		}
		return append(b, p...)
	case pageCaching:
		p := make([]byte, 2+pageLenCaching)
		p[0], p[1] = pageCaching, pageLenCaching
		if pick(cur.wce, def.wce, true) {
			p[2] |= cachingWCE
		}
		return append(b, p...)
	case pageControl:
		p := make([]byte, 2+pageLenControl)
		p[0], p[1] = pageControl, pageLenControl
		if pick(cur.dsense, def.dsense, true) {
			p[2] |= controlDSense
		}
		if pick(cur.swp, def.swp, true) {
			p[4] |= controlSWP
		}
		if pick(cur.tas, def.tas, true) {
			p[5] |= controlTAS
		}
		// Every other field stays zero (restricted reordering, no busy
		// timeout): an initiator that rebuilds the page from parsed fields
		// then always sends the non-changeable bits back unchanged.
		return append(b, p...)
	case pageInfoExceptions:
		p := make([]byte, 2+pageLenInfoExceptions)
		p[0], p[1] = pageInfoExceptions, pageLenInfoExceptions
		return append(b, p...)
	}
	return b
}

// modePages lists the pages we have, in page code order.
var modePageCodes = [...]byte{pageRWErrorRecovery, pageCaching, pageControl, pageInfoExceptions}

func hasModePage(code byte) bool {
	for _, c := range modePageCodes {
		if c == code {
			return true
		}
	}
	return false
}

// modeSense serves MODE SENSE(6) and (10).
func (l *logicalUnit) modeSense(x *execCtx) checkCondition {
	cdb := x.cdb
	ten := cdb[0] == opModeSense10
	dbd := cdb[1]&modeDBD != 0
	llbaa := ten && cdb[1]&modeLLBAA != 0
	pc := cdb[2] >> 6
	page := cdb[2] & pageCodeMask
	sub := cdb[3]
	alloc := int(cdb[4])
	if ten {
		alloc = int(be16(cdb[7:]))
	}
	if pc == pcSaved {
		return illegal(ASCSavingParametersNotSupported)
	}
	if page != pageAll && !hasModePage(page) {
		return invalidCDB(2, 5)
	}
	if sub != 0 && !(page == pageAll && sub == subpageAll) {
		return invalidCDB(3, 7)
	}
	l.mu.Lock()
	cur := l.mode
	l.mu.Unlock()

	hdr := modeHdr6Len
	if ten {
		hdr = modeHdr10Len
	}
	b := make([]byte, hdr, 256)
	devSpec := byte(devSpecDPO)
	if l.opts.ReadOnly || cur.swp {
		devSpec |= devSpecWP
	}
	if !dbd {
		if llbaa {
			d := make([]byte, blockDescLongLen)
			putUint64(d[0:], x.blocks)
			putUint32(d[12:], l.blockSize)
			b = append(b, d...)
		} else {
			d := make([]byte, blockDescShortLen)
			n := x.blocks
			if n > 0xFFFFFFFF {
				n = 0xFFFFFFFF
			}
			putUint32(d[0:], uint32(n))
			putUint32(d[4:], l.blockSize) // byte 4 is reserved, 5..7 length
			d[4] = 0
			b = append(b, d...)
		}
	}
	if page == pageAll {
		for _, c := range modePageCodes {
			b = l.modePage(b, c, pc, cur)
		}
	} else {
		b = l.modePage(b, page, pc, cur)
	}
	if ten {
		putUint16(b[0:], uint16(len(b)-2))
		b[3] = devSpec
		if llbaa && !dbd {
			b[4] = longLBA
		}
		putUint16(b[6:], uint16(len(b)-hdr-pagesLen(b[hdr:], dbd, llbaa)))
	} else {
		b[0] = byte(len(b) - 1)
		b[2] = devSpec
		if !dbd {
			b[3] = blockDescShortLen
		}
	}
	out := x.buffer(len(b))
	copy(out, b)
	return x.reply(out, alloc)
}

// pagesLen returns how many bytes of rest are mode pages (rest minus the
// block descriptor).
func pagesLen(rest []byte, dbd, llbaa bool) int {
	switch {
	case dbd:
		return len(rest)
	case llbaa:
		return len(rest) - blockDescLongLen
	}
	return len(rest) - blockDescShortLen
}

// modeSelect serves MODE SELECT(6) and (10).
func (l *logicalUnit) modeSelect(x *execCtx) checkCondition {
	cdb := x.cdb
	ten := cdb[0] == opModeSelect10
	if cdb[1]&modeSelSP != 0 {
		return invalidCDB(1, 0)
	}
	n := int(cdb[4])
	if ten {
		n = int(be16(cdb[7:]))
	}
	x.res.xferLen = n
	if n == 0 {
		return good
	}
	p, c := x.paramData(n)
	if !c.ok() {
		return c
	}
	hdr := modeHdr6Len
	if ten {
		hdr = modeHdr10Len
	}
	if len(p) < hdr {
		return errParamListLength
	}
	var bdl int
	if ten {
		bdl = int(be16(p[6:]))
	} else {
		bdl = int(p[3])
	}
	off := hdr
	if off+bdl > len(p) {
		return errParamListLength
	}
	if bdl != 0 {
		long := ten && p[4]&longLBA != 0
		dl := blockDescShortLen
		if long {
			dl = blockDescLongLen
		}
		if bdl%dl != 0 {
			return invalidParam(hdr-1, -1)
		}
		for d := off; d < off+bdl; d += dl {
			var bl uint32
			if long {
				bl = be32(p[d+12:])
			} else {
				bl = be24(p[d+5:])
			}
			if bl != l.blockSize && bl != 0 {
				return invalidParam(d+dl-1, -1)
			}
		}
		off += bdl
	}
	l.mu.Lock()
	next := l.mode
	l.mu.Unlock()
	for off < len(p) {
		if off+2 > len(p) {
			return errParamListLength
		}
		if p[off]&pagePS != 0 {
			return invalidParam(off, 7)
		}
		if p[off]&pageSPF != 0 {
			return invalidParam(off, 6)
		}
		code := p[off] & pageCodeMask
		if !hasModePage(code) {
			return invalidParam(off, 5)
		}
		want := l.modePage(nil, code, pcCurrent, next)
		if int(p[off+1]) != len(want)-2 {
			return invalidParam(off+1, -1)
		}
		if off+len(want) > len(p) {
			return errParamListLength
		}
		got := p[off : off+len(want)]
		mask := l.modePage(nil, code, pcChangeable, next)
		for i := 2; i < len(want); i++ {
			if (got[i]^want[i])&^mask[i] != 0 {
				return invalidParam(off+i, -1)
			}
		}
		switch code {
		case pageCaching:
			next.wce = got[2]&cachingWCE != 0
		case pageControl:
			next.dsense = got[2]&controlDSense != 0
			next.swp = got[4]&controlSWP != 0
			next.tas = got[5]&controlTAS != 0
		}
		off += len(want)
	}
	l.mu.Lock()
	changed := l.mode != next
	l.mode = next
	x.mode = next.snapshot()
	l.mu.Unlock()
	if changed {
		n := x.cmd.Nexus
		l.raiseAll(uaModeParametersChanged, &n)
	}
	return good
}

// paramData returns the data-out buffer, which must be exactly the n
// bytes the CDB asks for. Any other length (the initiator's expected data
// transfer length disagreed with the CDB) ends the command with ILLEGAL
// REQUEST / INVALID FIELD IN INFORMATION UNIT before anything is written:
// FCP-4 9.4.2 option (b), which libiscsi's invalid-data-out-size tests
// require for WRITE SAME and COMPARE AND WRITE. Plain writes are lenient
// instead (writeData).
func (x *execCtx) paramData(n int) ([]byte, checkCondition) {
	if len(x.cmd.DataOut) != n {
		return nil, errInvalidIU
	}
	return x.cmd.DataOut, good
}
