package target

import (
	"encoding/binary"
	"errors"

	"github.com/vbs-storage/vbs/target/iscsi"
)

// Logout reason and response codes (RFC 7143 sections 11.14.1, 11.15.1).
const (
	logoutCloseSession    = 0
	logoutCloseConnection = 1
	logoutRemoveForRecov  = 2
	logoutReasonMask      = 0x7f

	logoutRespSuccess        = 0
	logoutRespCIDNotFound    = 1
	logoutRespNoRecovery     = 2
	logoutRespCleanupFailed  = 3
	offLogoutTime2Wait       = 40
	offLogoutTime2Retain     = 42
	offAsyncEvent            = 36
	offAsyncParameter1       = 38
	offAsyncParameter2       = 40
	offAsyncParameter3       = 42
	asyncEventDropSession    = 3
	asyncDropTime2WaitSecond = 2
)

// errLoggedOut ends the read loop after a Logout Response.
var errLoggedOut = errors.New("logged out")

// admitControl runs a non-SCSI command that carries a CmdSN (NOP-Out,
// TMF, Text, Logout) through the CmdSN window. Immediate ones always
// pass. A non-immediate one passes only when it is exactly the next
// CmdSN: it completes at once, so it takes no queue slot. Others are
// ignored, as RFC 7143 section 4.2.2.1 asks for commands outside the
// window (holding control PDUs behind a gap is not supported).
func (c *conn) admitControl(p *iscsi.PDU) bool {
	if p.Immediate() {
		return true
	}
	ss := c.sess
	ss.mu.Lock()
	if p.CmdSN() != ss.window.ExpCmdSN() || ss.window.Admit(p.CmdSN(), false, nil) != iscsi.AdmitDeliver {
		ss.mu.Unlock()
		return false
	}
	ss.window.Done()
	ss.mu.Unlock()
	c.deliverHeld()
	return true
}

// onNOPOut answers pings and records answers to ours.
func (c *conn) onNOPOut(p *iscsi.PDU) error {
	if ttt := p.TTT(); ttt != iscsi.ReservedITT {
		// The answer to our NOP-In.
		c.pingTTT.CompareAndSwap(ttt, iscsi.ReservedITT)
		return nil
	}
	itt := p.ITT()
	if itt == iscsi.ReservedITT {
		// A ping that wants no answer (it must be immediate).
		return nil
	}
	if !c.admitControl(p) {
		return nil
	}
	m := newCtl(iscsi.OpNOPIn, statSNAdvance)
	m.pdu.SetLUN(p.LUN())
	m.pdu.SetITT(itt)
	m.pdu.SetTTT(iscsi.ReservedITT)
	m.buf = append(m.buf, p.Data...) // bounded by MaxRecvDataSegmentLength
	c.send(m)
	return nil
}

// onText answers a Text Request: SendTargets in discovery sessions, key
// renegotiation in normal ones. An answer longer than the initiator's
// MaxRecvDataSegmentLength goes out in pieces (RFC 7143 section 11.11):
// each but the last has C=1 and a target transfer tag, and the initiator
// asks for the next with an empty Text Request echoing that tag. Requests
// split with the C bit are not needed by any key we accept and are
// refused.
func (c *conn) onText(p *iscsi.PDU) error {
	if !c.admitControl(p) {
		return nil
	}
	if ttt := p.TTT(); ttt != iscsi.ReservedITT {
		if ttt != c.textTTT || p.ITT() != c.textITT || len(p.Data) != 0 {
			c.textPending = c.textPending[:0]
			c.reject(rejectInvalidPDUField, p)
			return nil
		}
		c.sendText(p)
		return nil
	}
	c.textPending = c.textPending[:0]
	if p.Continue() {
		c.reject(rejectInvalidPDUField, p)
		return nil
	}
	kvs, err := iscsi.ParseText(p.Data)
	if err != nil {
		c.reject(rejectInvalidPDUField, p)
		return nil
	}
	var out []byte
	if c.sess.params.SessionType == iscsi.SessionDiscovery {
		portals := []iscsi.Portal{{Addr: c.nc.LocalAddr().String(), PortalGroupTag: c.srv.opts.PortalGroupTag}}
		for _, kv := range kvs {
			if kv.Key == "SendTargets" {
				out = append(out, iscsi.SendTargets(kv.Value, c.params.InitiatorName, c.srv.targetInfos(), portals)...)
			} else {
				out = iscsi.AppendText(out, kv.Key, iscsi.ValueNotUnderstood)
			}
		}
	} else {
		resp, updated, err := iscsi.NegotiateText(c.params, kvs)
		if err != nil {
			c.reject(rejectInvalidPDUField, p)
			return nil
		}
		c.params = updated
		c.rd.Limits.MaxRecvDataSegmentLength = updated.MaxRecvDataSegmentLength
		c.setMaxXmit(updated.MaxXmitDataSegmentLength)
		out = resp
	}
	if len(out) > maxTextResponse {
		c.reject(rejectLongOperation, p)
		return nil
	}
	c.textPending = append(c.textPending, out...)
	c.textITT = p.ITT()
	c.sendText(p)
	return nil
}

// maxTextResponse bounds one text answer across all its pieces.
const maxTextResponse = 1 << 20

// sendText sends the next piece of the pending text answer to p.
func (c *conn) sendText(p *iscsi.PDU) {
	n := min(len(c.textPending), int(c.maxXmit.Load()))
	m := newCtl(iscsi.OpTextResp, statSNAdvance)
	m.pdu.SetITT(p.ITT())
	m.pdu.SetLUN(p.LUN())
	m.buf = append(m.buf, c.textPending[:n]...)
	rest := copy(c.textPending, c.textPending[n:])
	c.textPending = c.textPending[:rest]
	if rest > 0 {
		c.textTTT = c.newTTT()
		m.pdu.SetFlags(iscsi.FlagContinue)
		m.pdu.SetTTT(c.textTTT)
	} else {
		c.textTTT = iscsi.ReservedITT
		m.pdu.SetTTT(iscsi.ReservedITT)
	}
	c.send(m)
}

// onLogout closes the session or connection after the commands in flight
// finish. ERL 0 cannot remove a connection for recovery.
func (c *conn) onLogout(p *iscsi.PDU) error {
	if !c.admitControl(p) {
		return nil
	}
	reason := p.Flags() & logoutReasonMask
	resp := byte(logoutRespSuccess)
	switch reason {
	case logoutCloseSession:
	case logoutCloseConnection:
		if p.CID() != c.params.CID {
			resp = logoutRespCIDNotFound
		}
	case logoutRemoveForRecov:
		resp = logoutRespNoRecovery
	default:
		c.reject(rejectInvalidPDUField, p)
		return nil
	}
	m := newCtl(iscsi.OpLogoutResp, statSNAdvance)
	m.pdu.SetByte2(resp)
	m.pdu.SetITT(p.ITT())
	if resp != logoutRespSuccess {
		c.send(m)
		return nil
	}
	// Commands in flight finish first. Wait on a helper so that a
	// connection closing meanwhile does not leave the reader stuck.
	idle := make(chan struct{})
	c.helpers.Add(1)
	go func() {
		defer c.helpers.Done()
		c.running.Wait()
		close(idle)
	}()
	select {
	case <-idle:
	case <-c.closing:
		m.release(c)
		return errConnClosed
	}
	// One connection per session: either reason ends the I_T nexus.
	c.sess.closeNexus()
	binary.BigEndian.PutUint16(m.pdu.BHS[offLogoutTime2Wait:], 0)
	binary.BigEndian.PutUint16(m.pdu.BHS[offLogoutTime2Retain:], 0)
	m.closeAfter = true
	m.sent = make(chan struct{})
	c.send(m)
	c.waitSent(m)
	return errLoggedOut
}

// requestDrop tells the initiator, with an Async Message, that the target
// drops the session, then drops it. A connection not yet in full feature
// phase is just closed.
func (c *conn) requestDrop(reason string) {
	if !c.ffp.Load() {
		c.shutdown(reason)
		return
	}
	c.reason.CompareAndSwap(nil, &reason)
	m := newCtl(iscsi.OpAsyncMsg, statSNAdvance)
	m.pdu.SetITT(iscsi.ReservedITT)
	m.pdu.SetByte2(0)
	m.pdu.BHS[offAsyncEvent] = asyncEventDropSession
	binary.BigEndian.PutUint16(m.pdu.BHS[offAsyncParameter2:], asyncDropTime2WaitSecond)
	m.closeAfter = true
	c.send(m)
}
