package target

import (
	"sync"

	"github.com/vbs-storage/vbs/target/iscsi"
	"github.com/vbs-storage/vbs/target/scsi"
)

// Task management function codes (RFC 7143 section 11.5.1).
const (
	tmfAbortTask       = 1
	tmfAbortTaskSet    = 2
	tmfClearACA        = 3
	tmfClearTaskSet    = 4
	tmfLUReset         = 5
	tmfTargetWarmReset = 6
	tmfTargetColdReset = 7
	tmfTaskReassign    = 8
	tmfQueryTask       = 9
	tmfQueryTaskSet    = 10
	tmfITNexusReset    = 11
	tmfQueryAsyncEvent = 12

	tmfFunctionMask = 0x7f
)

// Task management responses (RFC 7143 section 11.6.1).
const (
	tmfRespComplete           = 0
	tmfRespNoTask             = 1
	tmfRespNoLUN              = 2
	tmfRespStillAllegiant     = 3
	tmfRespReassignNotSupport = 4
	tmfRespNotSupported       = 5
	tmfRespAuthFailed         = 6
	tmfRespRejected           = 255
)

// tmfResponse maps a SCSI-layer answer to the iSCSI response code.
func tmfResponse(r scsi.TMFResponse) byte {
	switch r {
	case scsi.TMFComplete, scsi.TMFSucceeded:
		return tmfRespComplete
	case scsi.TMFIncorrectLUN:
		return tmfRespNoLUN
	case scsi.TMFNotSupported:
		return tmfRespNotSupported
	}
	return tmfRespRejected
}

// onTaskMgmt handles a Task Management Function Request. The reader
// waits for the aborted tasks to finish before it answers, so that no
// response for an aborted task follows the TMF response (RFC 7143 section
// 4.2.3.4), and then goes on reading.
func (c *conn) onTaskMgmt(p *iscsi.PDU) error {
	ss := c.sess
	if ss.tgt == nil {
		c.reject(rejectProtocolError, p)
		return nil
	}
	if !c.admitControl(p) {
		return nil
	}
	fn := p.Flags() & tmfFunctionMask
	lunField := p.LUN()
	lun := iscsi.DecodeLUN(lunField)
	rtt := p.ReferencedTaskTag()
	refCmdSN := p.RefCmdSN()
	st := ss.tgt.scsi
	var wg sync.WaitGroup
	resp := byte(tmfRespComplete)
	closeAll := false
	switch fn {
	case tmfAbortTask:
		if r := st.TaskManagement(ss.nexus, scsi.TMFAbortTask, lun); r == scsi.TMFIncorrectLUN {
			resp = tmfRespNoLUN
			break
		}
		found := c.abortTasks(&wg, true, func(t *task) bool { return t.itt == rtt })
		if found == 0 {
			// A task we never received whose CmdSN is still in the window
			// counts as received and aborted (RFC 7143 section 11.5.1);
			// one that already completed no longer exists.
			resp = tmfRespNoTask
			if exp, _ := ss.windowState(); iscsi.SerialLessEq(exp, refCmdSN) {
				resp = tmfRespComplete
			}
		}
	case tmfAbortTaskSet, tmfClearTaskSet:
		f := scsi.TMFAbortTaskSet
		if fn == tmfClearTaskSet {
			f = scsi.TMFClearTaskSet
		}
		resp = tmfResponse(st.TaskManagement(ss.nexus, f, lun))
		if resp != tmfRespComplete {
			break
		}
		onLUN := func(t *task) bool { return t.lunField == lunField }
		c.abortTasks(&wg, true, onLUN)
		if fn == tmfClearTaskSet {
			c.abortEverywhere(&wg, st, onLUN)
		}
	case tmfLUReset:
		resp = tmfResponse(st.TaskManagement(ss.nexus, scsi.TMFLogicalUnitReset, lun))
		if resp != tmfRespComplete {
			break
		}
		onLUN := func(t *task) bool { return t.lunField == lunField }
		c.abortTasks(&wg, true, onLUN)
		c.abortEverywhere(&wg, st, onLUN)
	case tmfTargetWarmReset, tmfTargetColdReset:
		f := scsi.TMFTargetWarmReset
		if fn == tmfTargetColdReset {
			f = scsi.TMFTargetColdReset
			closeAll = true
		}
		resp = tmfResponse(st.TaskManagement(ss.nexus, f, lun))
		all := func(*task) bool { return true }
		c.abortTasks(&wg, true, all)
		c.abortEverywhere(&wg, st, all)
	case tmfITNexusReset:
		c.abortTasks(&wg, true, func(*task) bool { return true })
	case tmfClearACA:
		resp = tmfResponse(st.TaskManagement(ss.nexus, scsi.TMFClearACA, lun))
	case tmfTaskReassign:
		resp = tmfRespReassignNotSupport
	default:
		resp = tmfRespNotSupported
	}
	wg.Wait()
	m := newCtl(iscsi.OpTaskMgmtResp, statSNAdvance)
	m.pdu.SetByte2(resp)
	m.pdu.SetITT(p.ITT())
	if closeAll {
		// Cold reset: drop every connection of the target, this one after
		// its response is on the wire.
		m.closeAfter = true
		m.sent = make(chan struct{})
		c.send(m)
		c.waitSent(m)
		for _, o := range c.srv.sessionsOfTarget(st) {
			o.close("target cold reset")
		}
		return errConnClosed
	}
	c.send(m)
	return nil
}

// abortTasks aborts the tasks of c that match. Queued tasks are cancelled
// and counted in wg; tasks waiting for data are dropped when local (the
// caller is c's reader) or only marked otherwise. It returns how many
// tasks matched.
func (c *conn) abortTasks(wg *sync.WaitGroup, local bool, match func(*task) bool) int {
	var drop []*task
	found := 0
	c.mu.Lock()
	for itt, t := range c.tasks {
		if !match(t) {
			continue
		}
		found++
		t.abort()
		switch t.state {
		case taskQueued:
			if t.abortWG == nil {
				wg.Add(1)
				t.abortWG = wg
			}
		case taskWaitingData:
			if local {
				delete(c.tasks, itt)
				drop = append(drop, t)
			}
		}
	}
	c.mu.Unlock()
	for _, t := range drop {
		if !t.immediate {
			c.sess.cmdDone()
		}
		putTask(t)
	}
	return found
}

// abortEverywhere aborts matching tasks of the other sessions on st.
func (c *conn) abortEverywhere(wg *sync.WaitGroup, st *scsi.Target, match func(*task) bool) {
	for _, o := range c.srv.sessionsOfTarget(st) {
		if o.conn != c {
			o.conn.abortTasks(wg, false, match)
		}
	}
}
