package iscsi

import (
	"encoding/binary"
	"fmt"

	wire "github.com/vbs-storage/vbs/target/iscsi"
)

// handle processes one PDU from the target. It runs on the reader
// goroutine (or a fuzz test); an error fails the session.
func (s *Session) handle(p *wire.PDU) error {
	op := p.Opcode()
	switch op {
	case wire.OpSCSIDataIn, wire.OpSCSIResponse, wire.OpR2T, wire.OpNOPIn, wire.OpTaskMgmtResp,
		wire.OpTextResp, wire.OpLogoutResp, wire.OpAsyncMsg, wire.OpReject:
	default:
		return fmt.Errorf("%w: unexpected %v in full feature phase", ErrProtocol, op)
	}
	s.updateSN(p, op)
	switch op {
	case wire.OpSCSIDataIn:
		return s.onDataIn(p)
	case wire.OpSCSIResponse:
		return s.onResponse(p)
	case wire.OpR2T:
		return s.onR2T(p)
	case wire.OpNOPIn:
		return s.onNOPIn(p)
	case wire.OpTaskMgmtResp:
		return s.onTMFResponse(p)
	case wire.OpTextResp:
		return s.onText(p)
	case wire.OpLogoutResp:
		return s.onLogout(p)
	case wire.OpAsyncMsg:
		return s.onAsync(p)
	default: // wire.OpReject
		return s.onReject(p)
	}
}

// updateSN applies the StatSN, ExpCmdSN and MaxCmdSN of a target PDU
// (RFC 7143 sections 4.2.2.1 and 4.2.2.2).
func (s *Session) updateSN(p *wire.PDU, op wire.Opcode) {
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, maxSN := p.ExpCmdSN(), p.MaxCmdSN()
	if !serialLT(maxSN, exp-1) {
		moved := false
		if serialLT(s.expCmdSN, exp) {
			s.expCmdSN = exp
		}
		if serialLT(s.maxCmdSN, maxSN) {
			s.maxCmdSN, moved = maxSN, true
		}
		if moved && s.window != nil {
			close(s.window)
			s.window = nil
		}
	}
	carriesStatus := true
	switch op {
	case wire.OpSCSIDataIn:
		carriesStatus = p.Flags()&wire.FlagStatus != 0
	case wire.OpR2T:
		carriesStatus = false
	case wire.OpNOPIn:
		carriesStatus = p.ITT() != wire.ReservedITT
	}
	if carriesStatus {
		if next := p.StatSN() + 1; serialLT(s.expStatSN, next) {
			s.expStatSN = next
		}
	}
}

// lookup returns the registered task with tag itt of kind, or nil.
func (s *Session) lookup(itt uint32) *task {
	s.mu.Lock()
	t := s.tasks[itt]
	s.mu.Unlock()
	return t
}

// complete removes t from the task map and completes it with err.
func (s *Session) complete(t *task, err error) {
	s.mu.Lock()
	if t.registered {
		delete(s.tasks, t.itt)
		t.registered = false
		s.finish(t, err)
	}
	s.mu.Unlock()
}

func (s *Session) onDataIn(p *wire.PDU) error {
	t := s.lookup(p.ITT())
	if t == nil {
		s.log.Debug("iscsi: Data-In for an unknown task", "itt", p.ITT())
		return nil
	}
	t.mu.Lock()
	final, err := t.dataInPDU(&p.BHS, p.Data, s.params.DataPDUInOrder)
	t.mu.Unlock()
	if err != nil {
		return err
	}
	if final {
		s.complete(t, nil)
	}
	return nil
}

func (s *Session) onResponse(p *wire.PDU) error {
	t := s.lookup(p.ITT())
	if t == nil {
		s.log.Debug("iscsi: SCSI Response for an unknown task", "itt", p.ITT())
		return nil
	}
	t.mu.Lock()
	err := t.responsePDU(&p.BHS, p.Data)
	t.mu.Unlock()
	if err != nil {
		return err
	}
	var terr error
	if t.response != scsiResponseCompleted {
		terr = &TargetFailureError{Response: t.response}
	}
	s.complete(t, terr)
	return nil
}

func (s *Session) onR2T(p *wire.PDU) error {
	t := s.lookup(p.ITT())
	if t == nil {
		return fmt.Errorf("%w: R2T for unknown task 0x%x", ErrProtocol, p.ITT())
	}
	s.stats.r2ts.Add(1)
	t.mu.Lock()
	err := t.r2tPDU(&p.BHS, &s.params)
	if err == nil {
		t.wake()
	}
	t.mu.Unlock()
	return err
}

func (s *Session) onNOPIn(p *wire.PDU) error {
	if itt := p.ITT(); itt != wire.ReservedITT {
		t := s.lookup(itt)
		if t == nil || t.kind != taskNOP {
			return fmt.Errorf("%w: NOP-In for task 0x%x that is no ping", ErrProtocol, itt)
		}
		s.complete(t, nil)
		return nil
	}
	if p.TTT() == wire.ReservedITT {
		return nil // unsolicited, no answer wanted
	}
	// The target pings us: answer with a NOP-Out that echoes its TTT and
	// LUN, as an immediate command.
	s.stats.targetPings.Add(1)
	return s.writeNOPReply(p.TTT(), p.LUN())
}

func (s *Session) writeNOPReply(ttt uint32, lun uint64) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	cmdSN, expStatSN, err := s.cmdSN, s.expStatSN, s.err
	s.mu.Unlock()
	if err != nil {
		return nil
	}
	o := &s.out
	o.Reset()
	o.SetOpcode(wire.OpNOPOut, true)
	o.SetFlags(wire.FlagFinal)
	o.SetLUN(lun)
	o.SetITT(wire.ReservedITT)
	o.SetTTT(ttt)
	o.SetCmdSN(cmdSN)
	o.SetExpStatSN(expStatSN)
	return s.w.Write(o)
}

func (s *Session) onTMFResponse(p *wire.PDU) error {
	t := s.lookup(p.ITT())
	if t == nil || t.kind != taskTMF {
		return fmt.Errorf("%w: task management response for task 0x%x", ErrProtocol, p.ITT())
	}
	resp := TMFResponse(p.Byte2())
	t.mu.Lock()
	t.response = byte(resp)
	t.mu.Unlock()
	if resp == TMFFunctionComplete {
		s.abortAffected(t)
	}
	s.complete(t, nil)
	return nil
}

// abortAffected fails the tasks a completed task management function
// ended: the target sends no response for them (RFC 7143 section 4.2.3.4
// with TaskReporting=RFC3720).
func (s *Session) abortAffected(tmf *task) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for itt, t := range s.tasks {
		if t.kind != taskSCSI {
			continue
		}
		hit := false
		switch tmf.tmfFunc {
		case TMFAbortTask:
			hit = itt == tmf.refTag
		case TMFAbortTaskSet, TMFClearTaskSet, TMFLogicalUnitReset:
			hit = t.lun == tmf.lun && serialLT(t.cmdSN, tmf.cmdSN)
		case TMFTargetWarmReset, TMFTargetColdReset:
			hit = serialLT(t.cmdSN, tmf.cmdSN)
		}
		if hit {
			delete(s.tasks, itt)
			t.registered = false
			s.finish(t, ErrTaskAborted)
		}
	}
}

func (s *Session) onText(p *wire.PDU) error {
	t := s.lookup(p.ITT())
	if t == nil || t.kind != taskText {
		return fmt.Errorf("%w: Text Response for task 0x%x", ErrProtocol, p.ITT())
	}
	final := p.Final()
	if final && p.Continue() {
		return fmt.Errorf("%w: Text Response with both F and C", ErrProtocol)
	}
	t.mu.Lock()
	if len(t.text)+len(p.Data) > wire.MaxTextDataLength {
		t.mu.Unlock()
		return fmt.Errorf("%w: text response longer than %d", ErrProtocol, wire.MaxTextDataLength)
	}
	t.text = append(t.text, p.Data...)
	t.textTTT = p.TTT()
	t.textFinal = final
	if !final {
		t.wake()
	}
	t.mu.Unlock()
	if final {
		s.complete(t, nil)
	}
	return nil
}

func (s *Session) onLogout(p *wire.PDU) error {
	t := s.lookup(p.ITT())
	if t == nil || t.kind != taskLogout {
		return fmt.Errorf("%w: Logout Response for task 0x%x", ErrProtocol, p.ITT())
	}
	t.mu.Lock()
	t.response = p.Byte2()
	t.mu.Unlock()
	if t.response == logoutResponseSuccess {
		s.mu.Lock()
		s.loggedOut = true
		s.mu.Unlock()
	}
	s.complete(t, nil)
	return nil
}

func (s *Session) onAsync(p *wire.PDU) error {
	s.stats.asyncMessages.Add(1)
	switch ev := p.BHS[offAsyncEvent]; ev {
	case asyncLogoutRequest:
		s.log.Info("iscsi: target requests logout")
		return s.startLogout()
	case asyncDropConnection, asyncDropAllConns:
		s.log.Info("iscsi: target will drop the connection", "event", ev)
	case asyncSCSIEvent, asyncRenegotiate, asyncVendor:
		s.log.Debug("iscsi: async message ignored", "event", ev)
	default:
		s.log.Debug("iscsi: unknown async event", "event", ev)
	}
	return nil
}

// startLogout sends a Logout Request from the reader goroutine without
// waiting for the answer; onLogout and fail finish the session.
func (s *Session) startLogout() error {
	t := s.getTask(taskLogout)
	t.immediate = true
	t.logoutWhy = logoutReasonClose
	t.abandoned = true // nobody waits: recycled on completion
	s.wmu.Lock()
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		s.wmu.Unlock()
		s.putTask(t)
		return nil
	}
	t.itt = s.allocITTLocked()
	t.cmdSN = s.cmdSN
	s.tasks[t.itt] = t
	t.registered = true
	expStatSN := s.expStatSN
	s.mu.Unlock()
	err := s.writeTaskLocked(t, expStatSN)
	s.wmu.Unlock()
	return err
}

func (s *Session) onReject(p *wire.PDU) error {
	s.stats.rejects.Add(1)
	reason := p.Byte2()
	if len(p.Data) < rejectHeaderMinDataSize {
		return fmt.Errorf("%w: Reject (reason 0x%02x) without the rejected header", ErrProtocol, reason)
	}
	itt := binary.BigEndian.Uint32(p.Data[offRejectedITT:])
	if itt == wire.ReservedITT {
		s.log.Debug("iscsi: target rejected an untagged PDU", "reason", reason)
		return nil
	}
	t := s.lookup(itt)
	if t == nil {
		s.log.Debug("iscsi: reject for an unknown task", "itt", itt, "reason", reason)
		return nil
	}
	s.complete(t, &RejectError{Reason: reason})
	return nil
}

// offRejectedITT is where the ITT sits in the rejected header a Reject
// carries in its data segment.
const offRejectedITT = 16
