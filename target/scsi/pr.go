package scsi

import (
	"errors"
	"fmt"
	"strings"
)

// PERSISTENT RESERVE IN/OUT fields (SPC-4 6.15, 6.16).
const (
	prInReadKeys       = 0x00
	prInReadResv       = 0x01
	prInReportCaps     = 0x02
	prInReadFullStatus = 0x03

	prOutRegister       = 0x00
	prOutReserve        = 0x01
	prOutRelease        = 0x02
	prOutClear          = 0x03
	prOutPreempt        = 0x04
	prOutPreemptAbort   = 0x05
	prOutRegisterIgnore = 0x06
	prOutRegisterMove   = 0x07

	prTypeWE   = 0x1
	prTypeEA   = 0x3
	prTypeWERO = 0x5
	prTypeEARO = 0x6
	prTypeWEAR = 0x7
	prTypeEAAR = 0x8

	prScopeLU      = 0x0
	prTypeMask     = 0x0F
	prScopeShift   = 4
	prAllocAt      = 7
	prOutLenAt     = 5
	prOutBasicLen  = 24
	prOutSpecIPT   = 0x08 // byte 20
	prOutAllTgPt   = 0x04
	prOutAPTPL     = 0x01
	prMoveUnreg    = 0x02 // REGISTER AND MOVE byte 17
	prMoveAPTPL    = 0x01
	prMoveRelPort  = 18
	prMoveTIDLenAt = 20
	prMoveTIDAt    = 24

	prCapsLen   = 8
	prCapsCRH   = 0x10 // byte 2
	prCapsATPC  = 0x04
	prCapsPTPLC = 0x01
	prCapsTMV   = 0x80 // byte 3
	prCapsPTPLA = 0x01
	// Type mask bits (bytes 4-5).
	prMaskWEAR = 0x80
	prMaskEARO = 0x40
	prMaskWERO = 0x20
	prMaskEA   = 0x08
	prMaskWE   = 0x02
	prMaskEAAR = 0x01

	prResvDescLen    = 16
	prFullHolder     = 0x01 // byte 12
	prFullAllTgPt    = 0x02
	prFullDescHdrLen = 24

	// iSCSI TransportID (SPC-4 7.6.4.6).
	tidFormatISID = 0x40
	tidProtoISCSI = 0x05
	tidFormatMask = 0xC0
	tidProtoMask  = 0x0F
	tidHeaderLen  = 4

	prMetaKey     = "scsi/persistent-reservations"
	prMetaVersion = 1
)

// ErrCorruptPR reports saved persistent reservations that cannot be read.
var ErrCorruptPR = errors.New("scsi: corrupt saved persistent reservations")

// prReg is one registration: an I_T nexus (or, with ALL_TG_PT, an
// initiator port on every target port) and its key.
type prReg struct {
	key        uint64
	initiator  string
	targetPort string
	relPort    uint16
	allTgPt    bool
}

func (r *prReg) matches(n Nexus) bool {
	return r.initiator == n.InitiatorPort && (r.allTgPt || r.targetPort == n.TargetPort)
}

// prState is the persistent reservation state of one LU.
type prState struct {
	generation uint32
	regs       []prReg
	reserved   bool
	resType    uint8
	holder     int // index into regs; meaningless for all-registrants types
	aptpl      bool
}

func allRegistrants(t uint8) bool { return t == prTypeWEAR || t == prTypeEAAR }

func validPRType(t uint8) bool {
	switch t {
	case prTypeWE, prTypeEA, prTypeWERO, prTypeEARO, prTypeWEAR, prTypeEAAR:
		return true
	}
	return false
}

// find returns the index of n's registration, or -1.
func (p *prState) find(n Nexus) int {
	for i := range p.regs {
		if p.regs[i].matches(n) {
			return i
		}
	}
	return -1
}

// isHolder reports whether n holds the reservation.
func (p *prState) isHolder(n Nexus) bool {
	if !p.reserved {
		return false
	}
	i := p.find(n)
	if i < 0 {
		return false
	}
	return allRegistrants(p.resType) || i == p.holder
}

// remove drops registration i, keeping holder pointing at the same entry
// (or -1 when it was i).
func (p *prState) remove(i int) {
	p.regs = append(p.regs[:i], p.regs[i+1:]...)
	switch {
	case p.holder == i:
		p.holder = -1
	case p.holder > i:
		p.holder--
	}
}

// conflictLocked decides whether a command of class c from n conflicts with
// the reservations of l (SPC-4 5.12.1 and table 63 onwards). l.mu held.
func (l *logicalUnit) conflictLocked(n Nexus, op byte, c accessClass) bool {
	if l.spc2Held && l.spc2Holder != n && !spc2Exempt(op) {
		return true
	}
	if c == accFree {
		return false
	}
	p := &l.pr
	if c == accPR || !p.reserved || p.isHolder(n) {
		return false
	}
	registered := p.find(n) >= 0
	switch p.resType {
	case prTypeWE:
		return c == accWrite
	case prTypeEA:
		return true
	case prTypeWERO, prTypeWEAR:
		return c == accWrite && !registered
	case prTypeEARO, prTypeEAAR:
		return !registered
	}
	return false
}

// spc2Exempt lists the commands a RESERVE(6/10) reservation held by
// another nexus does not block (SPC-2 5.5.1).
func spc2Exempt(op byte) bool {
	switch op {
	case opInquiry, opReportLUNs, opRequestSense, opRelease6, opRelease10, opMaintenanceIn:
		return true
	}
	return false
}

// prIn serves PERSISTENT RESERVE IN.
func (l *logicalUnit) prIn(x *execCtx) checkCondition {
	sa := x.cdb[1] & saMaskServiceAction5
	alloc := int(be16(x.cdb[prAllocAt:]))
	l.mu.Lock()
	defer l.mu.Unlock()
	p := &l.pr
	var b []byte
	switch sa {
	case prInReadKeys:
		b = make([]byte, 8, 8+8*len(p.regs))
		putUint32(b[0:], p.generation)
		for _, r := range p.regs {
			b = putUint64Append(b, r.key)
		}
		putUint32(b[4:], uint32(len(b)-8))
	case prInReadResv:
		b = make([]byte, 8)
		putUint32(b[0:], p.generation)
		if p.reserved {
			var d [prResvDescLen]byte
			if !allRegistrants(p.resType) && p.holder >= 0 {
				putUint64(d[0:], p.regs[p.holder].key)
			}
			d[13] = prScopeLU<<prScopeShift | p.resType
			b = append(b, d[:]...)
			putUint32(b[4:], prResvDescLen)
		}
	case prInReportCaps:
		b = make([]byte, prCapsLen)
		putUint16(b[0:], prCapsLen)
		b[2] = prCapsCRH | prCapsATPC
		if l.meta != nil {
			b[2] |= prCapsPTPLC
		}
		b[3] = prCapsTMV
		if p.aptpl {
			b[3] |= prCapsPTPLA
		}
		b[4] = prMaskWEAR | prMaskEARO | prMaskWERO | prMaskEA | prMaskWE
		b[5] = prMaskEAAR
	case prInReadFullStatus:
		b = make([]byte, 8)
		putUint32(b[0:], p.generation)
		for i, r := range p.regs {
			tid := transportID(r.initiator)
			d := make([]byte, prFullDescHdrLen, prFullDescHdrLen+len(tid))
			putUint64(d[0:], r.key)
			if r.allTgPt {
				d[12] |= prFullAllTgPt
			}
			if p.reserved && (allRegistrants(p.resType) || i == p.holder) {
				d[12] |= prFullHolder
				d[13] = prScopeLU<<prScopeShift | p.resType
			}
			putUint16(d[18:], r.relPort)
			putUint32(d[20:], uint32(len(tid)))
			b = append(b, append(d, tid...)...)
		}
		putUint32(b[4:], uint32(len(b)-8))
	default:
		return invalidCDB(1, 4)
	}
	out := x.buffer(len(b))
	copy(out, b)
	return x.reply(out, alloc)
}

func putUint64Append(b []byte, v uint64) []byte {
	var t [8]byte
	putUint64(t[:], v)
	return append(b, t[:]...)
}

// transportID encodes an iSCSI initiator port name ("iqn,i,0xISID") as a
// TransportID in the initiator-port format.
func transportID(initiatorPort string) []byte {
	n := (len(initiatorPort) + 1 + 3) &^ 3
	if n < 20-tidHeaderLen {
		n = 20 - tidHeaderLen
	}
	b := make([]byte, tidHeaderLen+n)
	b[0] = tidFormatISID | tidProtoISCSI
	putUint16(b[2:], uint16(n))
	copy(b[tidHeaderLen:], initiatorPort)
	return b
}

// parseTransportID returns the initiator port name in an iSCSI
// TransportID, or ok=false.
func parseTransportID(b []byte) (string, bool) {
	if len(b) < tidHeaderLen || b[0]&tidProtoMask != tidProtoISCSI {
		return "", false
	}
	n := int(be16(b[2:]))
	if tidHeaderLen+n > len(b) {
		return "", false
	}
	name := b[tidHeaderLen : tidHeaderLen+n]
	if i := strings.IndexByte(string(name), 0); i >= 0 {
		name = name[:i]
	}
	s := string(name)
	if b[0]&tidFormatMask == tidFormatISID {
		// "iqn,i,0x<isid>" is already the port name we use.
		return s, s != ""
	}
	return "", false
}

// prOut serves PERSISTENT RESERVE OUT.
func (l *logicalUnit) prOut(x *execCtx) checkCondition {
	cdb := x.cdb
	sa := cdb[1] & saMaskServiceAction5
	scope := cdb[2] >> prScopeShift
	typ := cdb[2] & prTypeMask
	plen := int(be32(cdb[prOutLenAt:]))
	x.res.xferLen = plen
	if sa > prOutRegisterMove {
		return invalidCDB(1, 4)
	}
	switch sa {
	case prOutReserve, prOutRelease, prOutPreempt, prOutPreemptAbort, prOutRegisterMove:
		if scope != prScopeLU {
			return invalidCDB(2, 7)
		}
		if !validPRType(typ) && !(sa == prOutRegisterMove && typ == 0) {
			return invalidCDB(2, 3)
		}
	}
	if sa == prOutRegisterMove {
		if plen < prMoveTIDAt {
			return errParamListLength
		}
	} else if plen != prOutBasicLen {
		return errParamListLength
	}
	d, c := x.paramData(plen)
	if !c.ok() {
		return c
	}
	resKey := be64(d[0:])
	saKey := be64(d[8:])
	n := x.cmd.Nexus
	others := l.t.nexusSnapshot()

	l.mu.Lock()
	defer l.mu.Unlock()
	if l.spc2Held && l.spc2Holder != n {
		return errConflict
	}
	if sa == prOutRegisterMove {
		return l.registerAndMove(d, resKey, saKey, n, others)
	}
	flags := d[20]
	if flags&prOutSpecIPT != 0 {
		return invalidParam(20, 3)
	}
	aptpl := flags&prOutAPTPL != 0
	if aptpl && l.meta == nil {
		return invalidParam(20, 0)
	}
	p := &l.pr
	me := p.find(n)
	switch sa {
	case prOutRegister, prOutRegisterIgnore:
		if me < 0 {
			if sa == prOutRegister && resKey != 0 {
				return errConflict
			}
			if saKey == 0 {
				return good
			}
			p.regs = append(p.regs, prReg{key: saKey, initiator: n.InitiatorPort, targetPort: n.TargetPort,
				relPort: n.RelativePort, allTgPt: flags&prOutAllTgPt != 0})
		} else {
			if sa == prOutRegister && resKey != p.regs[me].key {
				return errConflict
			}
			if saKey == 0 {
				l.unregisterLocked(me, others)
			} else {
				p.regs[me].key = saKey
			}
		}
		p.generation++
		p.aptpl = aptpl
		return l.savePRLocked()
	}
	// Every other service action needs a registration with a matching key.
	if me < 0 || resKey != p.regs[me].key {
		return errConflict
	}
	switch sa {
	case prOutReserve:
		if p.reserved {
			if p.isHolder(n) && p.resType == typ {
				return good
			}
			return errConflict
		}
		p.reserved, p.resType, p.holder = true, typ, me
		return l.savePRLocked()
	case prOutRelease:
		if !p.reserved || !p.isHolder(n) {
			return good
		}
		if p.resType != typ {
			return illegal(ASCInvalidReleaseOfPR)
		}
		l.releaseLocked(n, others)
		return l.savePRLocked()
	case prOutClear:
		for i := range p.regs {
			if i != me {
				l.raiseRegLocked(&p.regs[i], uaReservationsPreempted, others)
			}
		}
		p.regs = p.regs[:0]
		p.reserved = false
		p.holder = -1
		p.generation++
		return l.savePRLocked()
	case prOutPreempt, prOutPreemptAbort:
		return l.preemptLocked(n, me, saKey, typ, others)
	}
	return invalidCDB(1, 4)
}

// unregisterLocked removes registration i and what goes with it: the
// reservation when its holder leaves (SPC-4 5.12.11.2.3).
func (l *logicalUnit) unregisterLocked(i int, others []Nexus) {
	p := &l.pr
	wasHolder := p.reserved && (allRegistrants(p.resType) || p.holder == i)
	reg := p.regs[i]
	p.remove(i)
	if !wasHolder {
		return
	}
	if allRegistrants(p.resType) {
		if len(p.regs) == 0 {
			p.reserved = false
		}
		return
	}
	p.reserved = false
	if p.resType == prTypeWERO || p.resType == prTypeEARO {
		for j := range p.regs {
			if p.regs[j].initiator != reg.initiator || p.regs[j].targetPort != reg.targetPort {
				l.raiseRegLocked(&p.regs[j], uaReservationsReleased, others)
			}
		}
	}
}

// releaseLocked releases the reservation held by n.
func (l *logicalUnit) releaseLocked(n Nexus, others []Nexus) {
	p := &l.pr
	typ := p.resType
	p.reserved = false
	p.holder = -1
	if typ == prTypeWE || typ == prTypeEA {
		return
	}
	for j := range p.regs {
		if !p.regs[j].matches(n) {
			l.raiseRegLocked(&p.regs[j], uaReservationsReleased, others)
		}
	}
}

// preemptLocked serves PREEMPT and PREEMPT AND ABORT (SPC-4 5.12.11.4).
// Aborting the preempted nexuses' tasks is the transport's job.
func (l *logicalUnit) preemptLocked(n Nexus, me int, saKey uint64, typ uint8, others []Nexus) checkCondition {
	p := &l.pr
	removeKey := func(key uint64, all bool) int {
		removed := 0
		for i := len(p.regs) - 1; i >= 0; i-- {
			if i == me {
				continue
			}
			if all || p.regs[i].key == key {
				l.raiseRegLocked(&p.regs[i], uaRegistrationsPreempted, others)
				p.remove(i)
				if i < me {
					me--
				}
				removed++
			}
		}
		return removed
	}
	switch {
	case p.reserved && allRegistrants(p.resType):
		if saKey == 0 {
			removeKey(0, true)
			p.resType, p.holder = typ, me
		} else {
			removeKey(saKey, false)
		}
	case p.reserved && p.holder >= 0 && p.regs[p.holder].key == saKey:
		oldType := p.resType
		removeKey(saKey, false)
		p.resType, p.holder = typ, me
		if oldType != typ {
			for j := range p.regs {
				if j != me {
					l.raiseRegLocked(&p.regs[j], uaReservationsReleased, others)
				}
			}
		}
	default:
		if saKey == 0 {
			return invalidParam(8, -1)
		}
		if removeKey(saKey, false) == 0 {
			return errConflict
		}
	}
	p.generation++
	return l.savePRLocked()
}

// registerAndMove serves REGISTER AND MOVE.
func (l *logicalUnit) registerAndMove(d []byte, resKey, saKey uint64, n Nexus, others []Nexus) checkCondition {
	p := &l.pr
	me := p.find(n)
	if me < 0 || resKey != p.regs[me].key {
		return errConflict
	}
	if !p.reserved || allRegistrants(p.resType) || p.holder != me {
		return errConflict
	}
	if saKey == 0 {
		return invalidParam(8, -1)
	}
	if d[17]&prMoveAPTPL != 0 && l.meta == nil {
		return invalidParam(17, 0)
	}
	tidLen := int(be32(d[prMoveTIDLenAt:]))
	if prMoveTIDAt+tidLen > len(d) {
		return errParamListLength
	}
	ini, ok := parseTransportID(d[prMoveTIDAt : prMoveTIDAt+tidLen])
	if !ok {
		return invalidParam(prMoveTIDAt, -1)
	}
	rel := be16(d[prMoveRelPort:])
	dest := Nexus{InitiatorPort: ini, RelativePort: rel}
	switch {
	case rel == n.RelativePort:
		dest.TargetPort = n.TargetPort
	default:
		for _, o := range others {
			if o.RelativePort == rel {
				dest.TargetPort = o.TargetPort
				break
			}
		}
		if dest.TargetPort == "" {
			return invalidParam(prMoveRelPort, -1)
		}
	}
	if dest.InitiatorPort == n.InitiatorPort && dest.TargetPort == n.TargetPort {
		return invalidParam(prMoveTIDAt, -1)
	}
	di := p.find(dest)
	if di < 0 {
		p.regs = append(p.regs, prReg{key: saKey, initiator: dest.InitiatorPort, targetPort: dest.TargetPort, relPort: rel})
		di = len(p.regs) - 1
	} else {
		p.regs[di].key = saKey
	}
	p.holder = di
	if d[17]&prMoveUnreg != 0 {
		p.remove(me)
	}
	p.generation++
	p.aptpl = d[17]&prMoveAPTPL != 0
	return l.savePRLocked()
}

// raiseRegLocked establishes ua on every nexus that registration r covers.
func (l *logicalUnit) raiseRegLocked(r *prReg, ua uaBit, nexuses []Nexus) {
	for _, o := range nexuses {
		if r.matches(o) {
			l.itLocked(o).raise(ua)
		}
	}
	for o, st := range l.its {
		if r.matches(o) {
			st.raise(ua)
		}
	}
}

// nexusSnapshot returns the known nexuses.
func (t *Target) nexusSnapshot() []Nexus {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]Nexus, 0, len(t.nexuses))
	for n := range t.nexuses {
		out = append(out, n)
	}
	return out
}

// savePRLocked persists the PR state when APTPL is active (and clears the
// saved copy when it is not). A failure to persist is a HARDWARE ERROR:
// the initiator asked for persistence we could not give.
func (l *logicalUnit) savePRLocked() checkCondition {
	if l.meta == nil || (!l.pr.aptpl && !l.prSaved) {
		// Nothing saved and nothing to save: no durable write.
		return good
	}
	var blob []byte
	if l.pr.aptpl {
		blob = encodePR(&l.pr)
	}
	if err := l.meta.SetMetadata(prMetaKey, blob); err != nil {
		return newCheck(SenseHardwareError, ASCInternalTargetFailure)
	}
	l.prSaved = blob != nil
	return good
}

// loadPR reloads persistent reservations saved with APTPL.
func (l *logicalUnit) loadPR() error {
	l.pr.holder = -1
	if l.meta == nil {
		return nil
	}
	blob, err := l.meta.GetMetadata(prMetaKey)
	if err != nil {
		return fmt.Errorf("load persistent reservations: %w", err)
	}
	if len(blob) == 0 {
		return nil
	}
	p, err := decodePR(blob)
	if err != nil {
		return fmt.Errorf("load persistent reservations: %w", err)
	}
	l.pr = p
	l.prSaved = true
	return nil
}

// encodePR serialises p: version, generation, flags, type, holder, then
// each registration. Format documented here because it is small and owned
// by this package: all integers big endian, strings length-prefixed (u16).
func encodePR(p *prState) []byte {
	b := []byte{prMetaVersion}
	b = appendU32(b, p.generation)
	var flags byte
	if p.reserved {
		flags |= 1
	}
	if p.aptpl {
		flags |= 2
	}
	b = append(b, flags, p.resType)
	b = appendU32(b, uint32(int32(p.holder)))
	b = appendU32(b, uint32(len(p.regs)))
	for _, r := range p.regs {
		b = putUint64Append(b, r.key)
		at := byte(0)
		if r.allTgPt {
			at = 1
		}
		b = append(b, at)
		b = append(b, byte(r.relPort>>8), byte(r.relPort))
		b = appendStr(b, r.initiator)
		b = appendStr(b, r.targetPort)
	}
	return b
}

func appendU32(b []byte, v uint32) []byte {
	return append(b, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

func appendStr(b []byte, s string) []byte {
	b = append(b, byte(len(s)>>8), byte(len(s)))
	return append(b, s...)
}

// decodePR is the inverse of encodePR; it rejects anything malformed.
func decodePR(b []byte) (prState, error) {
	var p prState
	r := prReader{b: b}
	if v := r.u8(); v != prMetaVersion {
		return p, fmt.Errorf("version %d: %w", v, ErrCorruptPR)
	}
	p.generation = r.u32()
	flags := r.u8()
	if flags&^3 != 0 {
		return p, fmt.Errorf("flags %#x: %w", flags, ErrCorruptPR)
	}
	p.reserved = flags&1 != 0
	p.aptpl = flags&2 != 0
	p.resType = r.u8()
	p.holder = int(int32(r.u32()))
	count := r.u32()
	if r.err || count > uint32(len(b)) {
		return p, ErrCorruptPR
	}
	for i := uint32(0); i < count; i++ {
		var g prReg
		g.key = r.u64()
		switch r.u8() {
		case 0:
		case 1:
			g.allTgPt = true
		default:
			return p, ErrCorruptPR
		}
		g.relPort = uint16(r.u8())<<8 | uint16(r.u8())
		g.initiator = r.str()
		g.targetPort = r.str()
		p.regs = append(p.regs, g)
	}
	if r.err || len(r.b) != 0 {
		return p, ErrCorruptPR
	}
	if p.holder < -1 || p.holder >= len(p.regs) || (p.reserved && !validPRType(p.resType)) {
		return p, ErrCorruptPR
	}
	return p, nil
}

type prReader struct {
	b   []byte
	err bool
}

func (r *prReader) take(n int) []byte {
	if r.err || len(r.b) < n {
		r.err = true
		return make([]byte, n)
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *prReader) u8() byte    { return r.take(1)[0] }
func (r *prReader) u32() uint32 { return be32(r.take(4)) }
func (r *prReader) u64() uint64 { return be64(r.take(8)) }
func (r *prReader) str() string {
	n := int(be16(r.take(2)))
	return string(r.take(n))
}
