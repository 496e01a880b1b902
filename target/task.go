package target

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vbs-storage/vbs/target/iscsi"
	"github.com/vbs-storage/vbs/target/scsi"
)

// CDB and AHS layout (RFC 7143 sections 11.2.1.2 and 11.3.5).
const (
	baseCDBLen       = 16
	maxCDBLen        = 260
	ahsHeaderLen     = 4
	ahsTypeExtCDB    = 1
	senseLengthField = 2
	maxSenseLen      = 252
	// defaultMaxXmit is MaxRecvDataSegmentLength's RFC default.
	defaultMaxXmit = 8192
)

// taskState is where a command is in its life. Transitions happen under
// conn.mu.
type taskState uint8

const (
	// taskHeld: in the CmdSN window behind a gap.
	taskHeld taskState = iota
	// taskWaitingData: delivered, collecting Data-Out (reader-owned).
	taskWaitingData
	// taskQueued: handed to a worker; only the worker touches it now.
	taskQueued
)

// r2tSlot is one outstanding R2T of a task.
type r2tSlot struct {
	ttt    uint32
	off    uint32
	length uint32
	recv   uint32
	dataSN uint32
	active bool
}

// task is one SCSI command from arrival to its last response PDU. Tasks
// are pooled with their buffers, so a steady stream of reads and writes
// allocates nothing. A task is also the context.Context of its execution:
// aborting the task cancels it without allocating a context per command.
type task struct {
	c         *conn
	itt       uint32
	cmdSN     uint32
	immediate bool
	lunField  uint64
	flags     byte
	edtl      uint32
	cdb       [maxCDBLen]byte
	cdbLen    int
	state     taskState
	// tooLarge marks a write announcing more data than MaxCommandBuffer;
	// overBudget one that would take the connection's buffered data-out
	// beyond MaxConnectionBuffer.
	tooLarge   bool
	overBudget bool
	// budget is what this task counts in conn.buffered.
	budget uint32
	// failed marks a command the transport ended without executing it.
	failed  bool
	aborted atomic.Bool
	// abortWG, guarded by conn.mu, is signalled when an aborted queued
	// task has finished.
	abortWG *sync.WaitGroup

	// Data-Out collection (reader-owned while taskWaitingData).
	buf  []byte
	want uint32 // bytes of data-out to collect
	recv uint32
	// Unsolicited data: [0, unsolEnd) at most; unsolPending while the
	// initiator's unsolicited Data-Out sequence (announced by a command
	// without the F bit) has not ended. R2Ts start where it ended.
	unsolEnd     uint32
	unsolNext    uint32
	unsolDataSN  uint32
	unsolPending bool
	nextR2T      uint32
	r2tSN        uint32
	r2ts         []r2tSlot
	outstanding  int

	cmd      scsi.Command
	res      scsi.Result
	hdr      iscsi.PDU
	senseBuf [senseLengthField + maxSenseLen]byte

	ctxMu  sync.Mutex
	doneCh chan struct{}
}

var taskPool = sync.Pool{New: func() any { return new(task) }}

func getTask(c *conn) *task {
	t := taskPool.Get().(*task)
	t.reset(c)
	return t
}

// reset readies a pooled task for a new command on c. A pooled task may
// have been aborted in any state, so every per-command field is cleared.
func (t *task) reset(c *conn) {
	t.c = c
	t.state = taskHeld
	t.tooLarge = false
	t.overBudget = false
	t.budget = 0
	t.failed = false
	t.aborted.Store(false)
	t.abortWG = nil
	t.want, t.recv, t.unsolEnd, t.unsolNext, t.unsolDataSN = 0, 0, 0, 0, 0
	t.nextR2T, t.r2tSN, t.outstanding = 0, 0, 0
	// A task aborted with R2Ts outstanding comes back with active slots;
	// outstanding is reset above, so the slots must be too.
	clear(t.r2ts[:cap(t.r2ts)])
	t.r2ts = t.r2ts[:0]
	t.unsolPending = false
	t.doneCh = nil
	t.res.Reset()
}

func putTask(t *task) {
	if t.budget > 0 {
		t.c.buffered.Add(-int64(t.budget))
		t.budget = 0
	}
	t.c = nil
	t.cmd = scsi.Command{}
	t.hdr.Data = nil
	taskPool.Put(t)
}

// Deadline implements context.Context: commands have none.
func (t *task) Deadline() (time.Time, bool) { return time.Time{}, false }

// Done implements context.Context; the channel is made only when someone
// asks for it.
func (t *task) Done() <-chan struct{} {
	t.ctxMu.Lock()
	defer t.ctxMu.Unlock()
	if t.doneCh == nil {
		t.doneCh = make(chan struct{})
		if t.aborted.Load() {
			close(t.doneCh)
		}
	}
	return t.doneCh
}

// Err implements context.Context.
func (t *task) Err() error {
	if t.aborted.Load() {
		return context.Canceled
	}
	return nil
}

// Value implements context.Context: a task carries no values.
func (t *task) Value(any) any { return nil }

// abort marks t aborted and cancels its execution.
func (t *task) abort() {
	if t.aborted.Swap(true) {
		return
	}
	t.ctxMu.Lock()
	if t.doneCh != nil {
		close(t.doneCh)
	}
	t.ctxMu.Unlock()
}

func (t *task) isWrite() bool { return t.flags&iscsi.FlagWrite != 0 }
func (t *task) isRead() bool  { return t.flags&iscsi.FlagRead != 0 }

// onSCSICommand handles a SCSI Command PDU.
func (c *conn) onSCSICommand(p *iscsi.PDU) error {
	ss := c.sess
	if ss.tgt == nil {
		// Discovery sessions carry no SCSI commands (RFC 7143 section 4.3).
		c.reject(rejectProtocolError, p)
		return nil
	}
	itt := p.ITT()
	if itt == iscsi.ReservedITT {
		c.rejectCommand(rejectInvalidPDUField, p)
		return nil
	}
	c.mu.Lock()
	_, dup := c.tasks[itt]
	n := len(c.tasks)
	c.mu.Unlock()
	if dup {
		c.rejectCommand(rejectTaskInProgress, p)
		return nil
	}
	if p.Immediate() && n >= maxImmediateFactor*int(c.srv.opts.QueueDepth) {
		c.reject(rejectImmediateCommand, p)
		return nil
	}
	t := getTask(c)
	t.itt = itt
	t.cmdSN = p.CmdSN()
	t.immediate = p.Immediate()
	t.lunField = p.LUN()
	t.flags = p.Flags()
	t.edtl = p.ExpectedDataTransferLength()
	t.cdbLen = copy(t.cdb[:], p.CDB())
	if err := t.extendedCDB(p.AHS); err != nil {
		putTask(t)
		c.rejectCommand(rejectInvalidPDUField, p)
		return nil
	}
	t.tooLarge = t.isWrite() && t.edtl > c.srv.opts.MaxCommandBuffer
	if t.isWrite() && !t.tooLarge && c.buffered.Load()+int64(t.edtl) > int64(c.srv.opts.MaxConnectionBuffer) {
		t.overBudget = true
	}
	if t.isWrite() && !t.tooLarge && !t.overBudget {
		t.budget = t.edtl
		c.buffered.Add(int64(t.budget))
		t.want = t.edtl
		if uint32(cap(t.buf)) < t.want {
			t.buf = make([]byte, t.want)
		}
		t.buf = t.buf[:t.want]
		imm := p.Data
		if uint32(len(imm)) > t.want {
			imm = imm[:t.want]
		}
		t.recv = uint32(copy(t.buf, imm))
		t.unsolEnd = t.recv
		// A command without the F bit announces unsolicited Data-Out
		// (InitialR2T=No), up to FirstBurstLength in all.
		if !c.params.InitialR2T && !p.Final() && t.recv < t.want {
			t.unsolEnd = max(t.recv, min(c.params.FirstBurstLength, t.want))
			t.unsolPending = t.unsolEnd > t.recv
		}
		t.unsolNext = t.recv
		t.nextR2T = t.recv
	}

	c.mu.Lock()
	c.tasks[itt] = t
	c.mu.Unlock()
	ss.mu.Lock()
	adm := ss.window.Admit(t.cmdSN, t.immediate, t)
	ss.mu.Unlock()
	switch adm {
	case iscsi.AdmitDrop:
		c.mu.Lock()
		delete(c.tasks, itt)
		c.mu.Unlock()
		putTask(t)
		return nil
	case iscsi.AdmitHeld:
		return nil
	}
	c.deliver(t)
	c.deliverHeld()
	return nil
}

// rejectCommand rejects a SCSI Command PDU. A rejected non-immediate
// command still consumes its CmdSN when it is the next one, so that the
// initiator's numbering and ours stay in step.
func (c *conn) rejectCommand(reason byte, p *iscsi.PDU) {
	c.admitControl(p)
	c.reject(reason, p)
}

// extendedCDB appends the Extended CDB AHS, if any, to t's CDB.
func (t *task) extendedCDB(ahs []byte) error {
	for len(ahs) >= ahsHeaderLen {
		n := int(binary.BigEndian.Uint16(ahs))
		typ := ahs[2]
		total := ahsHeaderLen - 1 + n
		total += (4 - total&3) & 3
		if n == 0 || total > len(ahs) {
			return fmt.Errorf("bad AHS length %d", n)
		}
		if typ == ahsTypeExtCDB {
			ext := ahs[ahsHeaderLen : ahsHeaderLen-1+n]
			if baseCDBLen+len(ext) > maxCDBLen {
				return fmt.Errorf("extended CDB too long")
			}
			t.cdbLen = baseCDBLen + copy(t.cdb[baseCDBLen:], ext)
		}
		ahs = ahs[total:]
	}
	return nil
}

// deliverHeld delivers every held command the window now releases.
func (c *conn) deliverHeld() {
	ss := c.sess
	for {
		ss.mu.Lock()
		t, ok := ss.window.Next()
		ss.mu.Unlock()
		if !ok {
			return
		}
		if t != nil {
			c.deliver(t)
		}
	}
}

// deliver starts a command that is next in CmdSN order: it solicits the
// data it still needs, or queues it for execution.
func (c *conn) deliver(t *task) {
	if t.aborted.Load() {
		c.dropTask(t)
		return
	}
	if t.tooLarge {
		c.failTask(t, "expected data transfer length beyond the command buffer bound",
			scsi.StatusCheckCondition, senseKeyIllegalRequest, ascInvalidFieldInCDB, 0)
		return
	}
	if t.overBudget {
		// SAM's answer to a full task set: the initiator retries later.
		c.failTask(t, "connection data-out buffer budget exhausted", scsi.StatusTaskSetFull, 0, 0, 0)
		return
	}
	if t.recv < t.want {
		c.mu.Lock()
		t.state = taskWaitingData
		c.mu.Unlock()
		if !t.unsolPending {
			c.issueR2Ts(t)
		}
		return
	}
	c.queueExec(t)
}

// dropTask forgets a task that will never run (aborted before execution).
func (c *conn) dropTask(t *task) {
	c.mu.Lock()
	if c.tasks[t.itt] == t {
		delete(c.tasks, t.itt)
	}
	c.mu.Unlock()
	if !t.immediate {
		c.sess.cmdDone()
	}
	putTask(t)
}

// issueR2Ts sends R2Ts for t until MaxOutstandingR2T are outstanding or
// all its data has been asked for.
func (c *conn) issueR2Ts(t *task) {
	maxR2T := int(max(c.params.MaxOutstandingR2T, 1))
	if cap(t.r2ts) < maxR2T {
		t.r2ts = make([]r2tSlot, maxR2T)
	}
	t.r2ts = t.r2ts[:maxR2T]
	burst := max(c.params.MaxBurstLength, 512)
	for t.outstanding < maxR2T && t.nextR2T < t.want {
		slot := -1
		for i := range t.r2ts {
			if !t.r2ts[i].active {
				slot = i
				break
			}
		}
		if slot < 0 {
			// outstanding and the slots disagree: a broken invariant, but
			// one command must not take the target down.
			c.log.Error("iscsi: no free R2T slot", "itt", fmt.Sprintf("0x%08x", t.itt), "outstanding", t.outstanding)
			return
		}
		n := min(burst, t.want-t.nextR2T)
		ttt := c.newTTT()
		t.r2ts[slot] = r2tSlot{ttt: ttt, off: t.nextR2T, length: n, active: true}
		m := newCtl(iscsi.OpR2T, statSNPeek)
		m.pdu.SetLUN(t.lunField)
		m.pdu.SetITT(t.itt)
		m.pdu.SetTTT(ttt)
		m.pdu.SetDataSN(t.r2tSN)
		m.pdu.SetBufferOffset(t.nextR2T)
		m.pdu.SetResidualCount(n)
		t.r2tSN++
		t.nextR2T += n
		t.outstanding++
		c.send(m)
	}
}

// errDataOut is a Data-Out error that ends the connection: data beyond
// the expected length, or for a command that has all its data.
type errDataOut struct {
	itt    uint32
	reason string
}

func (e *errDataOut) Error() string {
	return fmt.Sprintf("data-out for task 0x%08x: %s", e.itt, e.reason)
}

// onDataOut handles a SCSI Data-Out PDU.
func (c *conn) onDataOut(p *iscsi.PDU) error {
	itt := p.ITT()
	c.mu.Lock()
	t := c.tasks[itt]
	var state taskState
	if t != nil {
		state = t.state
	}
	c.mu.Unlock()
	if t == nil || t.want == 0 {
		// Data for a task we dropped (out of window, aborted, too large):
		// nothing to do with it.
		return nil
	}
	if state == taskQueued {
		return &errDataOut{itt, "more data than expected"}
	}
	off, n, dsn := p.BufferOffset(), uint32(len(p.Data)), p.DataSN()
	if uint64(off)+uint64(n) > uint64(t.want) {
		return &errDataOut{itt, fmt.Sprintf("offset %d+%d beyond expected length %d", off, n, t.want)}
	}
	final := p.Final()
	reissue := false
	if ttt := p.TTT(); ttt == iscsi.ReservedITT {
		if !t.unsolPending || off != t.unsolNext || dsn != t.unsolDataSN || off+n > t.unsolEnd {
			return c.failDataOut(t, fmt.Sprintf("unsolicited data at %d (want %d) DataSN %d (want %d)", off, t.unsolNext, dsn, t.unsolDataSN))
		}
		t.unsolNext += n
		t.unsolDataSN++
		if final || t.unsolNext == t.unsolEnd {
			// The unsolicited sequence ended: solicit the rest from here.
			t.unsolPending = false
			t.nextR2T = t.unsolNext
			reissue = true
		}
	} else {
		var r *r2tSlot
		for i := range t.r2ts {
			if t.r2ts[i].active && t.r2ts[i].ttt == ttt {
				r = &t.r2ts[i]
				break
			}
		}
		if r == nil {
			return c.failDataOut(t, fmt.Sprintf("unknown target transfer tag 0x%08x", ttt))
		}
		if off != r.off+r.recv || dsn != r.dataSN || r.recv+n > r.length {
			return c.failDataOut(t, fmt.Sprintf("solicited data at %d (want %d) DataSN %d (want %d)", off, r.off+r.recv, dsn, r.dataSN))
		}
		r.recv += n
		r.dataSN++
		if final && r.recv != r.length {
			return c.failDataOut(t, "solicited burst ended early")
		}
		if r.recv == r.length {
			r.active = false
			t.outstanding--
			reissue = true
		}
	}
	copy(t.buf[off:], p.Data)
	t.recv += n
	if state != taskWaitingData {
		return nil // held: keep collecting until delivered
	}
	if t.recv == t.want {
		c.queueExec(t)
		return nil
	}
	if reissue {
		if t.aborted.Load() {
			c.dropTask(t)
			return nil
		}
		c.issueR2Ts(t)
	}
	return nil
}

// Fixed-format sense data (SPC-4 4.5.3) for the commands the transport
// ends itself: ABORTED COMMAND / DATA PHASE ERROR for a broken Data-Out
// sequence, ILLEGAL REQUEST / INVALID FIELD IN CDB for a transfer beyond
// what the target buffers.
const (
	senseFixedCurrent      = 0x70
	senseFixedLen          = 18
	senseAddlLen           = senseFixedLen - 8
	senseKeyAborted        = byte(scsi.SenseAbortedCommand)
	senseKeyIllegalRequest = byte(scsi.SenseIllegalRequest)
	ascDataPhaseError      = 0x4b
	ascqDataPhaseError     = 0x00
	ascInvalidFieldInCDB   = 0x24
	senseOffKey            = 2
	senseOffAddlLen        = 7
	senseOffASC            = 12
	senseOffASCQ           = 13
)

// failDataOut ends a command whose Data-Out PDUs broke the sequence rules
// (DataSN, buffer offset, burst bounds) with CHECK CONDITION instead of
// executing it. At ERL 0 the target cannot recover within the command
// (RFC 7143 section 7.1.4); ending only the command keeps the session and
// every other command alive. Later Data-Out PDUs for it are ignored.
func (c *conn) failDataOut(t *task, why string) error {
	if t.state == taskHeld {
		// Not delivered yet: only the window may release it, so just
		// make its delivery drop it.
		t.abort()
		return nil
	}
	c.failTask(t, "data-out sequence error: "+why, scsi.StatusCheckCondition, senseKeyAborted, ascDataPhaseError, ascqDataPhaseError)
	return nil
}

// failTask ends a delivered command that will not run with status and,
// for CHECK CONDITION, the given sense.
func (c *conn) failTask(t *task, why string, status scsi.Status, key, asc, ascq byte) {
	c.log.Info("iscsi command failed by the transport", "itt", fmt.Sprintf("0x%08x", t.itt), "why", why)
	c.mu.Lock()
	if c.tasks[t.itt] == t {
		delete(c.tasks, t.itt)
	}
	c.mu.Unlock()
	if !t.immediate {
		c.sess.cmdDone()
	}
	t.cmd = scsi.Command{}
	t.failed = true
	t.res.Reset()
	t.res.Status = status
	if status == scsi.StatusCheckCondition {
		sb := t.res.SenseBuffer()[:senseFixedLen]
		clear(sb)
		sb[0] = senseFixedCurrent
		sb[senseOffKey] = key
		sb[senseOffAddlLen] = senseAddlLen
		sb[senseOffASC] = asc
		sb[senseOffASCQ] = ascq
		t.res.Sense = sb
	}
	c.send(t)
}

// queueExec hands t to a worker.
func (c *conn) queueExec(t *task) {
	if t.aborted.Load() {
		c.dropTask(t)
		return
	}
	ss := c.sess
	var dataOut []byte
	if t.want > 0 {
		dataOut = t.buf[:t.want]
	}
	var expIn uint32
	if t.isRead() {
		expIn = t.edtl
	}
	t.cmd = scsi.Command{
		Nexus:          ss.nexus,
		LUN:            iscsi.DecodeLUN(t.lunField),
		CDB:            t.cdb[:t.cdbLen],
		DataOut:        dataOut,
		ExpectedDataIn: expIn,
		Attribute:      taskAttribute(t.flags & iscsi.AttrMask),
		Tag:            uint64(t.itt),
	}
	c.mu.Lock()
	t.state = taskQueued
	c.mu.Unlock()
	if ss.tgt.scsi.RunsInline(&t.cmd) && !c.isClosing() {
		// A fast device: run it here and answer with the next batch,
		// without waking a worker and the writer for it.
		c.running.Add(1)
		if c.run(t) {
			_ = c.queueInline(t) // a write error closes c; readLoop sees it
		}
		return
	}
	if c.idle.Load() == 0 && c.nworkers < cap(c.work) {
		c.nworkers++
		c.workers.Add(1)
		go c.worker()
	}
	c.running.Add(1)
	if c.isClosing() {
		c.discard(t)
		return
	}
	c.busy.Add(1)
	select {
	case c.work <- t:
	case <-c.closing:
		c.busy.Add(-1)
		c.discard(t)
	}
}

// forget removes a queued task that has finished or will never run from
// the connection's task table and frees its CmdSN slot. It returns the
// WaitGroup of an abort waiting for it, if any.
func (c *conn) forget(t *task) *sync.WaitGroup {
	c.mu.Lock()
	if c.tasks[t.itt] == t {
		delete(c.tasks, t.itt)
	}
	wg := t.abortWG
	c.mu.Unlock()
	if !t.immediate {
		c.sess.cmdDone()
	}
	return wg
}

// discard forgets a queued task that will not run because the connection
// is closing, releasing whoever waits for it.
func (c *conn) discard(t *task) {
	if wg := c.forget(t); wg != nil {
		wg.Done()
	}
	putTask(t)
	c.running.Done()
}

// drainWork discards every task still queued for the workers.
func (c *conn) drainWork() {
	for {
		select {
		case t := <-c.work:
			c.busy.Add(-1)
			c.discard(t)
		default:
			return
		}
	}
}

// iSCSI task attributes (RFC 7143 section 11.3.1.3).
const (
	attrUntagged = 0
	attrSimple   = 1
	attrOrdered  = 2
	attrHead     = 3
	attrACA      = 4
)

func taskAttribute(a byte) scsi.TaskAttribute {
	switch a {
	case attrOrdered:
		return scsi.TaskOrdered
	case attrHead:
		return scsi.TaskHeadOfQueue
	case attrACA:
		return scsi.TaskACA
	}
	return scsi.TaskSimple
}

// worker executes queued commands until the connection closes.
func (c *conn) worker() {
	defer c.workers.Done()
	for {
		c.idle.Add(1)
		select {
		case t := <-c.work:
			c.idle.Add(-1)
			c.execute(t)
		case <-c.closing:
			c.idle.Add(-1)
			c.drainWork()
			return
		}
	}
}

// execute runs t on the SCSI layer and sends its response.
func (c *conn) execute(t *task) {
	ok := c.run(t)
	last := c.busy.Add(-1) == 0
	if !ok {
		return
	}
	if last && len(c.out) == 0 && c.wmu.TryLock() {
		// Nothing else is queued or running on this connection, so there
		// is no batch to wait for: write the response from here instead
		// of waking the writer (the queue-depth-1 case).
		err := t.emit(c)
		if err == nil {
			err = c.wr.Flush()
		}
		c.wmu.Unlock()
		t.release(c)
		if err != nil {
			c.shutdown("write failed: " + err.Error())
		}
		return
	}
	c.send(t)
}

// run runs t on the SCSI layer and reports whether its response is to be
// sent (false: t was aborted and released).
func (c *conn) run(t *task) bool {
	defer c.running.Done()
	ss := c.sess
	t.res.Reset()
	ss.tgt.scsi.Execute(t, &t.cmd, &t.res)
	wg := c.forget(t)
	if t.aborted.Load() {
		// RFC 7143 section 4.2.3.4 (ERL 0): an aborted task gets no
		// response; the TMF response tells the initiator.
		if wg != nil {
			wg.Done()
		}
		putTask(t)
		return false
	}
	return true
}

// emit queues the Data-In and SCSI Response PDUs of a finished command.
// Data-In PDUs reference the result buffer: no copy.
func (t *task) emit(c *conn) error {
	res := &t.res
	data := res.DataIn
	if uint32(len(data)) > t.cmd.ExpectedDataIn {
		data = data[:t.cmd.ExpectedDataIn]
	}
	var resFlags byte
	var residual uint32
	xfer := uint64(max(res.TransferLength(), 0))
	if t.failed {
		xfer = 0 // nothing was transferred
	}
	if xfer > uint64(t.edtl) {
		resFlags, residual = iscsi.FlagOverflow, uint32(min(xfer-uint64(t.edtl), 1<<32-1))
	} else if xfer < uint64(t.edtl) {
		resFlags, residual = iscsi.FlagUnderflow, t.edtl-uint32(xfer)
	}
	collapse := res.Status == scsi.StatusGood && len(data) > 0
	maxXmit := int(c.maxXmit.Load())
	h := &t.hdr
	var dsn uint32
	for off := 0; off < len(data); {
		n := min(len(data)-off, maxXmit)
		last := off+n == len(data)
		h.Reset()
		h.SetOpcode(iscsi.OpSCSIDataIn, false)
		mode := statSNNone
		if last {
			flags := byte(iscsi.FlagFinal)
			if collapse {
				flags |= iscsi.FlagStatus | resFlags
				h.SetByte3(byte(res.Status))
				h.SetResidualCount(residual)
				mode = statSNAdvance
			}
			h.SetFlags(flags)
		}
		h.SetLUN(t.lunField)
		h.SetITT(t.itt)
		h.SetTTT(iscsi.ReservedITT)
		c.stamp(&h.BHS, mode)
		h.SetDataSN(dsn)
		h.SetBufferOffset(uint32(off))
		h.Data = data[off : off+n]
		if err := c.wr.Queue(h); err != nil {
			return err
		}
		dsn++
		off += n
	}
	if collapse {
		return nil
	}
	h.Reset()
	h.SetOpcode(iscsi.OpSCSIResponse, false)
	h.SetFlags(iscsi.FlagFinal | resFlags)
	h.SetByte2(scsiResponseCompleted)
	h.SetByte3(byte(res.Status))
	h.SetITT(t.itt)
	c.stamp(&h.BHS, statSNAdvance)
	if t.isRead() {
		h.SetDataSN(dsn)
	} else {
		h.SetDataSN(t.r2tSN)
	}
	h.SetResidualCount(residual)
	if len(res.Sense) > 0 {
		sl := copy(t.senseBuf[senseLengthField:], res.Sense)
		binary.BigEndian.PutUint16(t.senseBuf[:], uint16(sl))
		h.Data = t.senseBuf[:senseLengthField+sl]
	}
	return c.wr.Queue(h)
}

// scsiResponseCompleted is the SCSI Response "Command Completed at Target"
// code (RFC 7143 section 11.4.3).
const scsiResponseCompleted = 0x00

func (t *task) release(*conn) { putTask(t) }
