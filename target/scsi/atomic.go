package scsi

import "context"

// COMPARE AND WRITE, ORWRITE and WRITE ATOMIC fields (SBC-4 5.3, 5.10, 5.48).
const (
	cawBlocksAt  = 13
	waBoundaryAt = 10
	waLengthAt   = 12
)

// compareAndWrite serves COMPARE AND WRITE: the compare and the write are
// one atomic step against every other write to the range.
func (l *logicalUnit) compareAndWrite(ctx context.Context, x *execCtx) checkCondition {
	cdb := x.cdb
	p := rwParams{lba: be64(cdb[2:]), blocks: uint64(cdb[cawBlocksAt]), flags: cdb[1], lenOff: cawBlocksAt}
	if p.flags&rwProtectMask != 0 {
		return invalidCDB(1, rwProtectBit)
	}
	half := l.bytes(p.blocks)
	x.res.xferLen = 2 * half
	if !inRange(p.lba, p.blocks, x.blocks) {
		return errLBAOutOfRange
	}
	if p.blocks == 0 {
		if len(x.cmd.DataOut) != 0 {
			// The one-byte NUMBER OF LOGICAL BLOCKS wrapped (an initiator
			// asked for 256): the CDB, not the data, is what is wrong.
			return invalidCDB(cawBlocksAt, -1)
		}
		return good
	}
	if p.blocks > uint64(l.t.opts.MaxCompareAndWriteBlocks) {
		return invalidCDB(cawBlocksAt, -1)
	}
	if c := l.writable(x); !c.ok() {
		return c
	}
	data, c := x.paramData(2 * half)
	if !c.ok() {
		return c
	}
	compare, write := data[:half], data[half:]
	fua := p.flags&rwFUA != 0 || !x.mode.wce
	if l.caw != nil {
		// The device is atomic against its own writes; the range lock makes
		// it atomic against ours too (they may not go through its path).
		id, err := l.ranges.lock(ctx, p.lba, p.blocks, true)
		if err != nil {
			return errAborted
		}
		err = l.caw.CompareAndWrite(ctx, p.lba, compare, write, fua)
		l.ranges.unlock(id)
		if err != nil {
			return deviceError(ctx, err, true)
		}
		return good
	}
	id, err := l.ranges.lock(ctx, p.lba, p.blocks, true)
	if err != nil {
		return errAborted
	}
	defer l.ranges.unlock(id)
	cur := make([]byte, half)
	if err := l.dev.ReadAt(ctx, cur, p.lba); err != nil {
		return deviceError(ctx, err, false)
	}
	if d := firstDiff(cur, compare); d >= 0 {
		return newCheck(SenseMiscompare, ASCMiscompareDuringVerify).withInfo(uint64(d))
	}
	if err := l.dev.WriteAt(ctx, write, p.lba, fua); err != nil {
		return deviceError(ctx, err, true)
	}
	return good
}

// orWrite serves ORWRITE(16): each block becomes old OR data, atomically
// against every other write that comes through this target.
func (l *logicalUnit) orWrite(ctx context.Context, x *execCtx) checkCondition {
	p := parseRW(x.cdb)
	if c := l.checkRW(x, p, uint64(l.maxTransferBlocks())); !c.ok() {
		return c
	}
	n := l.bytes(p.blocks)
	x.res.xferLen = n
	if c := l.writable(x); !c.ok() {
		return c
	}
	if n == 0 {
		return good
	}
	data, c := x.paramData(n)
	if !c.ok() {
		return c
	}
	id, err := l.ranges.lock(ctx, p.lba, p.blocks, true)
	if err != nil {
		return errAborted
	}
	defer l.ranges.unlock(id)
	cur := make([]byte, n)
	if err := l.dev.ReadAt(ctx, cur, p.lba); err != nil {
		return deviceError(ctx, err, false)
	}
	for i := range cur {
		cur[i] |= data[i]
	}
	fua := p.flags&rwFUA != 0 || !x.mode.wce
	if l.atomicW != nil && p.blocks <= uint64(l.atomicW.MaxAtomicBlocks()) {
		err = l.atomicW.WriteAtomic(ctx, cur, p.lba, fua)
	} else {
		err = l.dev.WriteAt(ctx, cur, p.lba, fua)
	}
	if err != nil {
		return deviceError(ctx, err, true)
	}
	return good
}

// writeAtomic serves WRITE ATOMIC(16) on devices that are AtomicWriters.
func (l *logicalUnit) writeAtomic(ctx context.Context, x *execCtx) checkCondition {
	if l.atomicW == nil {
		return errInvalidOpcode
	}
	cdb := x.cdb
	p := rwParams{lba: be64(cdb[2:]), blocks: uint64(be16(cdb[waLengthAt:])), flags: cdb[1], lenOff: waLengthAt}
	if p.flags&rwProtectMask != 0 {
		return invalidCDB(1, rwProtectBit)
	}
	if be16(cdb[waBoundaryAt:]) != 0 {
		// MAXIMUM ATOMIC BOUNDARY SIZE is 0: boundaries are not supported.
		return invalidCDB(waBoundaryAt, -1)
	}
	limit := min(uint64(l.atomicW.MaxAtomicBlocks()), uint64(l.maxTransferBlocks()))
	if c := l.checkRW(x, p, limit); !c.ok() {
		return c
	}
	n := l.bytes(p.blocks)
	x.res.xferLen = n
	if c := l.writable(x); !c.ok() {
		return c
	}
	if n == 0 {
		return good
	}
	data, c := x.paramData(n)
	if !c.ok() {
		return c
	}
	id, err := l.ranges.lock(ctx, p.lba, p.blocks, false)
	if err != nil {
		return errAborted
	}
	err = l.atomicW.WriteAtomic(ctx, data, p.lba, p.flags&rwFUA != 0 || !x.mode.wce)
	l.ranges.unlock(id)
	if err != nil {
		return deviceError(ctx, err, true)
	}
	return good
}
