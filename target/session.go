package target

import (
	"fmt"
	"sync"
	"time"

	"github.com/vbs-storage/vbs/target/iscsi"
	"github.com/vbs-storage/vbs/target/scsi"
)

// session is one iSCSI session: the negotiated parameters, the CmdSN
// window and its single connection (ERL 0, no MC/S).
type session struct {
	srv    *Server
	tsih   uint16
	params iscsi.Params
	tgt    *exported // nil for a discovery session
	nexus  scsi.Nexus
	conn   *conn

	mu     sync.Mutex // guards window
	window *iscsi.CmdWindow[*task]

	nexusClosed sync.Once
}

// closeNexus tells the SCSI layer the I_T nexus is gone (releasing what it
// holds, such as a RESERVE), once. A logout calls it before the Logout
// Response goes out, so that the initiator, once answered, never races the
// release from another session; teardown calls it for every other ending.
func (ss *session) closeNexus() {
	if ss.tgt == nil {
		return
	}
	ss.nexusClosed.Do(func() { ss.tgt.scsi.NexusClosed(ss.nexus) })
}

// nexusFor returns the I_T nexus of a session (RFC 7143 section 4.4 port
// names).
func nexusFor(p *iscsi.Params, tpgt uint16) scsi.Nexus {
	return scsi.Nexus{
		InitiatorPort: fmt.Sprintf("%s,i,0x%012x", p.InitiatorName, p.ISID),
		TargetPort:    fmt.Sprintf("%s,t,0x%04x", p.TargetName, tpgt),
		RelativePort:  tpgt,
	}
}

// createSession is LoginConfig.Complete: it creates the session the login
// of c asked for, after closing the session it reinstates (same initiator,
// ISID and target with TSIH 0). It returns the new TSIH or a
// *iscsi.LoginError.
func (s *Server) createSession(c *conn, p *iscsi.Params) (uint16, error) {
	ss := &session{srv: s, params: *p, conn: c}
	s.mu.Lock()
	if p.SessionType == iscsi.SessionNormal {
		t, ok := s.targets[p.TargetName]
		if !ok {
			s.mu.Unlock()
			return 0, &iscsi.LoginError{Class: iscsi.StatusInitiatorError, Detail: iscsi.DetailTargetNotFound, Reason: "target removed"}
		}
		ss.tgt = t
		ss.nexus = nexusFor(p, s.opts.PortalGroupTag)
	}
	if p.TSIH != 0 {
		old, ok := s.sessions[p.TSIH]
		s.mu.Unlock()
		if ok && old.params.ISID == p.ISID && old.params.InitiatorName == p.InitiatorName {
			return 0, &iscsi.LoginError{Class: iscsi.StatusInitiatorError, Detail: iscsi.DetailTooManyConnections, Reason: "MC/S not offered"}
		}
		return 0, &iscsi.LoginError{Class: iscsi.StatusInitiatorError, Detail: iscsi.DetailSessionDoesNotExist, Reason: "unknown TSIH"}
	}
	var old *session
	for _, o := range s.sessions {
		if o.params.SessionType == p.SessionType && o.params.ISID == p.ISID &&
			o.params.InitiatorName == p.InitiatorName && o.params.TargetName == p.TargetName {
			old = o
			break
		}
	}
	n := len(s.sessions)
	if old != nil {
		n--
	}
	if n >= s.opts.MaxSessions {
		s.mu.Unlock()
		return 0, &iscsi.LoginError{Class: iscsi.StatusTargetError, Detail: iscsi.DetailOutOfResources, Reason: "too many sessions"}
	}
	for {
		s.nextTSIH++
		if _, used := s.sessions[s.nextTSIH]; s.nextTSIH != 0 && !used {
			break
		}
	}
	ss.tsih = s.nextTSIH
	ss.params.TSIH = ss.tsih
	if old != nil {
		delete(s.sessions, old.tsih)
	}
	s.sessions[ss.tsih] = ss
	s.mu.Unlock()
	if old != nil {
		s.log.Info("iscsi session reinstated", "initiator", p.InitiatorName, "isid", fmt.Sprintf("%012x", p.ISID), "old_tsih", old.tsih, "tsih", ss.tsih)
		old.close("session reinstated")
		// The old nexus must be gone before the new one opens. Its
		// commands in flight finish first; do not wait forever on them.
		timer := time.NewTimer(s.opts.LoginTimeout)
		defer timer.Stop()
		select {
		case <-old.conn.done:
		case <-timer.C:
			s.removeSession(ss)
			return 0, &iscsi.LoginError{Class: iscsi.StatusTargetError, Detail: iscsi.DetailServiceUnavailable, Reason: "old session still closing"}
		}
	}
	return ss.tsih, nil
}

// removeSession forgets ss if it is still registered.
func (s *Server) removeSession(ss *session) {
	s.mu.Lock()
	if s.sessions[ss.tsih] == ss {
		delete(s.sessions, ss.tsih)
	}
	s.mu.Unlock()
}

// close drops the session's connection.
func (ss *session) close(reason string) {
	ss.conn.shutdown(reason)
}

func (ss *session) info() SessionInfo {
	ss.mu.Lock()
	out := 0
	if ss.window != nil {
		out = int(ss.window.Running()) + ss.window.Held()
	}
	ss.mu.Unlock()
	info := SessionInfo{
		TSIH:        ss.tsih,
		ISID:        ss.params.ISID,
		Initiator:   ss.params.InitiatorName,
		Discovery:   ss.params.SessionType == iscsi.SessionDiscovery,
		RemoteAddr:  ss.conn.nc.RemoteAddr().String(),
		Outstanding: out,
	}
	if ss.tgt != nil {
		info.Target = ss.tgt.cfg.IQN
	}
	return info
}

// windowState returns ExpCmdSN and MaxCmdSN for an outgoing PDU.
func (ss *session) windowState() (exp, maxSN uint32) {
	ss.mu.Lock()
	exp, maxSN = ss.window.ExpCmdSN(), ss.window.MaxCmdSN()
	ss.mu.Unlock()
	return exp, maxSN
}

// cmdDone opens a window slot for a completed non-immediate command.
func (ss *session) cmdDone() {
	ss.mu.Lock()
	ss.window.Done()
	ss.mu.Unlock()
}
