package scsi

import "context"

// WRITE SAME and UNMAP fields (SBC-4 5.50, 5.51, 5.30).
const (
	wsAnchor        = 0x10
	wsUnmap         = 0x08
	wsNDOB          = 0x01
	wsAnchorBit     = 4
	wsUnmapBit      = 3
	wsNDOBBit       = 0
	unmapAnchor     = 0x01
	unmapHeaderLen  = 8
	unmapDescLen    = 16
	unmapParamLenAt = 7
)

// isZero reports whether b is all zeros.
func isZero(b []byte) bool {
	for _, v := range b {
		if v != 0 {
			return false
		}
	}
	return true
}

// writeSame serves WRITE SAME(10/16).
func (l *logicalUnit) writeSame(ctx context.Context, x *execCtx) checkCondition {
	cdb := x.cdb
	p := parseRW(cdb)
	if p.flags&rwProtectMask != 0 {
		return invalidCDB(1, rwProtectBit)
	}
	ndob := cdb[0] == opWriteSame16 && p.flags&wsNDOB != 0
	if cdb[0] == opWriteSame10 && p.flags&wsNDOB != 0 {
		return invalidCDB(1, wsNDOBBit)
	}
	if p.flags&wsUnmap != 0 && l.unmapper == nil {
		// LBPWS=0 on a fully provisioned LU: nothing can be unmapped, and
		// an initiator that saw UNMAP=1 succeed would expect LBPME=1.
		return invalidCDB(1, wsUnmapBit)
	}
	if p.flags&wsAnchor != 0 {
		// ANC_SUP=0: we have no anchored state.
		return invalidCDB(1, wsAnchorBit)
	}
	if !ndob {
		x.res.xferLen = int(l.blockSize)
	}
	if !inRange(p.lba, p.blocks, x.blocks) {
		return errLBAOutOfRange
	}
	if p.blocks == 0 {
		// WSNZ=1 in the Block Limits page: zero does not mean "to the end".
		return invalidCDB(p.lenOff, -1)
	}
	if p.blocks > l.t.opts.MaxWriteSameBlocks {
		return invalidCDB(p.lenOff, -1)
	}
	if c := l.writable(x); !c.ok() {
		return c
	}
	var pattern []byte
	if !ndob {
		var c checkCondition
		if pattern, c = x.paramData(int(l.blockSize)); !c.ok() {
			return c
		}
	}
	zero := ndob || isZero(pattern)
	fua := !x.mode.wce
	id, err := l.ranges.lock(ctx, p.lba, p.blocks, false)
	if err != nil {
		return errAborted
	}
	defer l.ranges.unlock(id)
	// With UNMAP=1 on a thin LU the range is deallocated whatever the
	// data-out block holds: LBPRZ=1 says it then reads as zeros (SBC-4
	// 4.7.3.4; libiscsi's unmap-until-end test sends 0xFF and expects
	// zeros back).
	unmap := p.flags&wsUnmap != 0
	switch {
	case unmap && l.zeroer != nil:
		err = l.zeroer.WriteZeroes(ctx, p.lba, p.blocks, true)
	case unmap:
		err = l.unmapper.Unmap(ctx, p.lba, p.blocks)
	case zero && l.zeroer != nil:
		err = l.zeroer.WriteZeroes(ctx, p.lba, p.blocks, false)
	default:
		return l.writeRepeated(ctx, p.lba, p.blocks, pattern, fua)
	}
	if err != nil {
		return deviceError(ctx, err, true)
	}
	if fua {
		if err := l.dev.Flush(ctx); err != nil {
			return deviceError(ctx, err, true)
		}
	}
	return good
}

// writeRepeated writes pattern (one block, nil for zeros) to every block
// of the range, in chunks of at most the maximum transfer length. The
// caller holds the range lock.
func (l *logicalUnit) writeRepeated(ctx context.Context, lba, blocks uint64, pattern []byte, fua bool) checkCondition {
	chunk := min(blocks, uint64(l.maxTransferBlocks()))
	buf := make([]byte, l.bytes(chunk))
	if pattern != nil {
		for i := 0; i < len(buf); i += len(pattern) {
			copy(buf[i:], pattern)
		}
	}
	for done := uint64(0); done < blocks; {
		n := min(chunk, blocks-done)
		if err := l.dev.WriteAt(ctx, buf[:l.bytes(n)], lba+done, fua); err != nil {
			return deviceError(ctx, err, true)
		}
		done += n
	}
	return good
}

// unmapDesc is one UNMAP block descriptor.
type unmapDesc struct{ lba, n uint64 }

// unmap serves UNMAP. Every descriptor is checked before any is applied.
func (l *logicalUnit) unmap(ctx context.Context, x *execCtx) checkCondition {
	if l.unmapper == nil {
		return errInvalidOpcode
	}
	cdb := x.cdb
	if cdb[1]&unmapAnchor != 0 {
		return invalidCDB(1, 0)
	}
	plen := int(be16(cdb[unmapParamLenAt:]))
	x.res.xferLen = plen
	if plen == 0 {
		return good
	}
	if plen < unmapHeaderLen {
		return errParamListLength
	}
	if c := l.writable(x); !c.ok() {
		return c
	}
	p, c := x.paramData(plen)
	if !c.ok() {
		return c
	}
	bdl := int(be16(p[2:]))
	if bdl > plen-unmapHeaderLen {
		bdl = plen - unmapHeaderLen
	}
	count := bdl / unmapDescLen // a truncated last descriptor is ignored
	if uint32(count) > l.t.opts.MaxUnmapDescriptors {
		return invalidParam(2, -1)
	}
	descs := make([]unmapDesc, 0, count)
	for i := 0; i < count; i++ {
		off := unmapHeaderLen + i*unmapDescLen
		d := unmapDesc{lba: be64(p[off:]), n: uint64(be32(p[off+8:]))}
		if !inRange(d.lba, d.n, x.blocks) {
			return errLBAOutOfRange
		}
		if d.n > uint64(l.t.opts.MaxUnmapBlocks) {
			return invalidParam(off+8, -1)
		}
		if d.n > 0 {
			descs = append(descs, d)
		}
	}
	for _, d := range descs {
		id, err := l.ranges.lock(ctx, d.lba, d.n, false)
		if err != nil {
			return errAborted
		}
		err = l.unmapper.Unmap(ctx, d.lba, d.n)
		l.ranges.unlock(id)
		if err != nil {
			return deviceError(ctx, err, true)
		}
	}
	return good
}
