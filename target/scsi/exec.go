package scsi

import (
	"context"
	"errors"
)

// Control byte bits (SAM-5 5.2).
const controlNACA = 0x04

// accessClass says how a command interacts with reservations.
type accessClass uint8

const (
	// accFree commands never conflict (INQUIRY, REPORT LUNS, ...).
	accFree accessClass = iota
	// accPR commands (PERSISTENT RESERVE IN/OUT) conflict only with a
	// RESERVE(6/10) reservation held by another nexus.
	accPR
	// accRead commands read the medium or its metadata.
	accRead
	// accWrite commands change the medium or LU state.
	accWrite
)

// execCtx is one command in flight: what the handlers read and fill.
type execCtx struct {
	cmd    *Command
	res    *Result
	cdb    []byte
	mode   modeSnapshot
	blocks uint64 // capacity at admission
}

// reply sets the data-in of the command to buf truncated to alloc bytes.
func (x *execCtx) reply(buf []byte, alloc int) checkCondition {
	if alloc < len(buf) {
		buf = buf[:alloc]
	}
	x.res.DataIn = buf
	x.res.xferLen = len(buf)
	return good
}

// buffer returns a zeroed data-in buffer of n bytes.
func (x *execCtx) buffer(n int) []byte {
	b := x.res.DataBuffer(n)
	clear(b)
	return b
}

// TransferLength returns the number of bytes the last executed command
// asked to transfer according to its CDB (data-in for reads, data-out for
// writes), before ExpectedDataIn truncated anything. A transport reports
// the difference to the iSCSI expected data transfer length as the
// residual (overflow when it is larger, underflow when smaller).
func (r *Result) TransferLength() int { return r.xferLen }

// Execute runs one command to completion and fills res (res was Reset by
// the caller). It never panics on any CDB or data, honours ctx
// cancellation (the command ends with TASK ABORTED), and is safe to call
// concurrently from many goroutines.
func (t *Target) Execute(ctx context.Context, cmd *Command, res *Result) {
	defer func() {
		// A panic here is a bug in this package; the initiator gets a
		// HARDWARE ERROR instead of the whole target going down.
		if p := recover(); p != nil {
			t.finish(cmd, res, newCheck(SenseHardwareError, ASCInternalTargetFailure), false)
		}
	}()
	t.execute(ctx, cmd, res)
}

// execute is Execute without the panic guard (the fuzz target uses it so
// that panics are found).
func (t *Target) execute(ctx context.Context, cmd *Command, res *Result) {
	res.xferLen = 0
	if ctx.Err() != nil {
		t.finish(cmd, res, errAborted, false)
		return
	}
	cdb := cmd.CDB
	if len(cdb) == 0 {
		t.finish(cmd, res, errInvalidOpcode, false)
		return
	}
	op := cdb[0]
	want := cdbLength(op)
	if want == 0 || len(cdb) < want {
		t.finish(cmd, res, errInvalidOpcode, false)
		return
	}
	cdb = cdb[:want]
	x := execCtx{cmd: cmd, res: res, cdb: cdb}

	l := t.lu(cmd.LUN)
	if l == nil {
		t.finish(cmd, res, t.noLU(&x), false)
		return
	}
	if cdb[len(cdb)-1]&controlNACA != 0 {
		c := invalidCDB(len(cdb)-1, 2)
		t.finish(cmd, res, c, l.dsense())
		return
	}
	x.blocks = l.blocks()
	c := l.admit(&x)
	if c.ok() {
		c = l.dispatch(ctx, &x)
	}
	if !c.ok() && c.status != StatusTaskAborted && ctx.Err() != nil {
		c = errAborted
	}
	t.finish(cmd, res, c, x.mode.dsense)
}

// finish encodes c into res and applies ExpectedDataIn.
func (t *Target) finish(cmd *Command, res *Result, c checkCondition, dsense bool) {
	res.Status = c.status
	if c.status != StatusGood && c.status != StatusConditionMet {
		res.DataIn = nil
		res.Sense = nil
		if c.status == StatusCheckCondition {
			res.Sense = encodeSense(res.SenseBuffer(), c, dsense)
		}
		return
	}
	res.Sense = nil
	if uint64(len(res.DataIn)) > uint64(cmd.ExpectedDataIn) {
		res.DataIn = res.DataIn[:cmd.ExpectedDataIn]
	}
}

// noLU answers a command addressed to a LUN that has no logical unit (or
// to the REPORT LUNS well-known LU).
func (t *Target) noLU(x *execCtx) checkCondition {
	wlun := isReportLUNsWLUN(x.cmd.LUN)
	switch x.cdb[0] {
	case opInquiry:
		return t.inquiryNoLU(x, wlun)
	case opReportLUNs:
		return t.reportLUNs(x)
	case opRequestSense:
		if wlun {
			return requestSense(x, good)
		}
		return requestSense(x, errLUNotSupported)
	case opTestUnitReady:
		if wlun {
			return good
		}
	}
	if wlun {
		return errInvalidOpcode
	}
	return errLUNotSupported
}

// dsense returns the D_SENSE bit of the control mode page.
func (l *logicalUnit) dsense() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mode.dsense
}

// admit does what every command goes through before its own checks:
// unit attention reporting and reservation conflicts. It fills x.mode.
func (l *logicalUnit) admit(x *execCtx) checkCondition {
	op := x.cdb[0]
	n := x.cmd.Nexus
	l.mu.Lock()
	defer l.mu.Unlock()
	x.mode = l.mode.snapshot()
	st := l.itLocked(n)
	if st.ua != 0 {
		switch op {
		case opInquiry, opRequestSense:
		case opReportLUNs:
			st.clear(uaReportedLUNsChanged)
		default:
			u, _ := st.pop()
			return newCheck(SenseUnitAttention, u.asc())
		}
	}
	if l.conflictLocked(n, op, classOf(x.cdb)) {
		return errConflict
	}
	return good
}

// classOf returns the reservation access class of a CDB (SPC-4 5.9.1.3,
// SBC-4 4.17).
func classOf(cdb []byte) accessClass {
	switch cdb[0] {
	case opInquiry, opReportLUNs, opRequestSense, opMaintenanceIn,
		opReadCapacity10, opTestUnitReady, opReserve6, opReserve10,
		opRelease6, opRelease10:
		return accFree
	case opServiceActionIn16:
		if cdb[1]&saMaskServiceAction5 == saReadCapacity16 {
			return accFree
		}
		return accRead
	case opPersistentReserveIn, opPersistentReserveOut:
		return accPR
	case opRead6, opRead10, opRead12, opRead16, opVerify10, opVerify12,
		opVerify16, opPreFetch10, opPreFetch16, opModeSense6, opModeSense10,
		opReceiveCopyResults, opPreventAllow:
		return accRead
	}
	return accWrite
}

// dispatch runs the command-specific part.
func (l *logicalUnit) dispatch(ctx context.Context, x *execCtx) checkCondition {
	cdb := x.cdb
	switch cdb[0] {
	case opTestUnitReady:
		return good
	case opRequestSense:
		return l.requestSense(x)
	case opInquiry:
		return l.inquiry(x)
	case opReportLUNs:
		return l.t.reportLUNs(x)
	case opRead6, opRead10, opRead12, opRead16:
		return l.read(ctx, x)
	case opWrite6, opWrite10, opWrite12, opWrite16:
		return l.write(ctx, x)
	case opVerify10, opVerify12, opVerify16:
		return l.verify(ctx, x)
	case opWriteAndVerify10, opWriteAndVerify12, opWriteAndVerify16:
		return l.writeAndVerify(ctx, x)
	case opPreFetch10, opPreFetch16:
		return l.preFetch(x)
	case opSyncCache10, opSyncCache16:
		return l.syncCache(ctx, x)
	case opWriteSame10, opWriteSame16:
		return l.writeSame(ctx, x)
	case opUnmap:
		return l.unmap(ctx, x)
	case opReadCapacity10:
		return l.readCapacity10(x)
	case opServiceActionIn16:
		switch cdb[1] & saMaskServiceAction5 {
		case saReadCapacity16:
			return l.readCapacity16(x)
		case saGetLBAStatus:
			return l.getLBAStatus(ctx, x)
		}
		return invalidCDB(1, 4)
	case opModeSense6, opModeSense10:
		return l.modeSense(x)
	case opModeSelect6, opModeSelect10:
		return l.modeSelect(x)
	case opPersistentReserveIn:
		return l.prIn(x)
	case opPersistentReserveOut:
		return l.prOut(x)
	case opReserve6, opReserve10:
		return l.reserve(x)
	case opRelease6, opRelease10:
		return l.release(x)
	case opMaintenanceIn:
		switch cdb[1] & saMaskServiceAction5 {
		case saReportTargetPortGroups:
			return l.reportTargetPortGroups(x)
		case saReportSupportedOpcodes:
			return l.reportSupportedOpcodes(x)
		case saReportSupportedTMFs:
			return l.reportSupportedTMFs(x)
		}
		return invalidCDB(1, 4)
	case opStartStopUnit:
		return l.startStopUnit(ctx, x)
	case opPreventAllow:
		return l.preventAllow(x)
	case opCompareAndWrite:
		return l.compareAndWrite(ctx, x)
	case opORWrite16:
		return l.orWrite(ctx, x)
	case opWriteAtomic16:
		return l.writeAtomic(ctx, x)
	case opExtendedCopy:
		return l.extendedCopy(ctx, x)
	case opReceiveCopyResults:
		return l.receiveCopyResults(x)
	}
	return errInvalidOpcode
}

// deviceError maps a Device error to a CHECK CONDITION (write selects
// WRITE ERROR over UNRECOVERED READ ERROR for medium errors).
func deviceError(ctx context.Context, err error, write bool) checkCondition {
	switch {
	case ctx.Err() != nil || errors.Is(err, context.Canceled):
		return errAborted
	case errors.Is(err, ErrMedium):
		if write {
			return newCheck(SenseMediumError, ASCWriteError)
		}
		return newCheck(SenseMediumError, ASCUnrecoveredReadError)
	case errors.Is(err, ErrNoSpace):
		return newCheck(SenseDataProtect, ASCSpaceAllocationFailedWP)
	case errors.Is(err, ErrWriteProtected):
		return errWriteProtected
	case errors.Is(err, ErrOutOfRange):
		return errLBAOutOfRange
	}
	var mc *MiscompareError
	if errors.As(err, &mc) {
		return newCheck(SenseMiscompare, ASCMiscompareDuringVerify).withInfo(uint64(mc.Offset))
	}
	return newCheck(SenseHardwareError, ASCInternalTargetFailure)
}
