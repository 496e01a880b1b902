package iscsi

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	wire "github.com/vbs-storage/vbs/target/iscsi"
)

// Async Message events (RFC 7143 section 11.9.1).
const (
	offAsyncEvent         = 36
	asyncSCSIEvent        = 0
	asyncLogoutRequest    = 1
	asyncDropConnection   = 2
	asyncDropAllConns     = 3
	asyncRenegotiate      = 4
	asyncVendor           = 255
	logoutReasonClose     = 0x00 // close the session
	logoutResponseSuccess = 0x00
	scsiResponseCompleted = 0x00 // SCSI Response "command completed at target"
	taskAttrSimple        = 0x01 // SCSI Command ATTR field: Simple
	firstITT              = 1
)

// errLoggedOut and errClosed are the causes wrapped in ErrSessionClosed.
var (
	errLoggedOut = errors.New("logged out")
	errClosed    = errors.New("closed by the initiator")
)

// Session is one iSCSI session over one TCP connection in full feature
// phase. Its methods are safe for concurrent use.
type Session struct {
	params Params
	log    *slog.Logger
	conn   io.Closer

	// wmu serializes writing and CmdSN assignment, so that commands
	// reach the target in CmdSN order.
	wmu sync.Mutex
	w   *wire.Writer
	out wire.PDU // scratch PDU, guarded by wmu

	mu        sync.Mutex
	cmdSN     uint32
	expCmdSN  uint32
	maxCmdSN  uint32
	expStatSN uint32
	nextITT   uint32
	tasks     map[uint32]*task
	free      []*task
	// window is closed (and cleared) when the command window moves or
	// the session fails; nil when nobody waits.
	window    chan struct{}
	err       error // non-nil once the session is failed or closed
	loggedOut bool

	r         *wire.Reader
	in        wire.PDU // the reader goroutine's PDU
	stats     sessionStats
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// Dial connects to cfg.Addr, logs in to cfg.TargetName and returns a
// session in full feature phase. Login failures are *LoginError, redirects
// *RedirectError, CHAP problems ErrAuth.
func Dial(ctx context.Context, cfg Config) (*Session, error) {
	c, err := cfg.withDefaults(true)
	if err != nil {
		return nil, err
	}
	return dial(ctx, &c, false)
}

func dial(ctx context.Context, cfg *Config, discovery bool) (*Session, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.LoginTimeout)
		defer cancel()
	}
	conn, err := cfg.Dialer.DialContext(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("iscsi: dial %s: %w", cfg.Addr, err)
	}
	// A deadline in the past is how a blocked read or write is
	// interrupted when ctx ends (by deadline or cancel) during login.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	m := newLoginMachine(cfg, discovery, rand.Reader)
	err = runLogin(conn, m)
	if !stop() || err != nil && ctx.Err() != nil {
		// ctx ended during login: the connection's deadline is (or is
		// about to be) in the past, so the session is unusable anyway.
		if err == nil {
			err = ctx.Err()
		} else {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("iscsi: login to %s at %s: %w", cfg.TargetName, cfg.Addr, err)
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("iscsi: clear deadline: %w", err)
	}
	s := newSession(conn, conn, m.params(), cfg.Logger)
	s.cmdSN, s.expCmdSN, s.maxCmdSN, s.expStatSN = loginCmdSN, m.expCmdSN, m.maxCmdSN, m.expStatSN
	s.start()
	cfg.Logger.Debug("iscsi session up", "target", cfg.TargetName, "addr", cfg.Addr, "tsih", s.params.TSIH)
	return s, nil
}

// newSession builds a session over rw without starting its reader.
func newSession(rw io.ReadWriter, closer io.Closer, p Params, log *slog.Logger) *Session {
	return &Session{
		params:  p,
		log:     log,
		conn:    closer,
		w:       wire.NewWriter(rw, wire.Limits{HeaderDigest: p.HeaderDigest, DataDigest: p.DataDigest}),
		r:       wire.NewReader(rw, wire.Limits{MaxRecvDataSegmentLength: p.MaxRecvDataSegmentLength, HeaderDigest: p.HeaderDigest, DataDigest: p.DataDigest}),
		tasks:   make(map[uint32]*task),
		nextITT: firstITT,
	}
}

// start runs the reader goroutine; Close stops it and waits.
func (s *Session) start() {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.readLoop()
	}()
}

// Stats are counters of protocol events, for monitoring and tests.
type Stats struct {
	// TargetPings counts NOP-Ins the target sent that we answered.
	TargetPings uint64
	// R2Ts counts R2Ts received.
	R2Ts uint64
	// AsyncMessages counts Async Messages received.
	AsyncMessages uint64
	// Rejects counts Reject PDUs received.
	Rejects uint64
}

type sessionStats struct {
	targetPings, r2ts, asyncMessages, rejects atomic.Uint64
}

// Stats returns a snapshot of the session's counters.
func (s *Session) Stats() Stats {
	return Stats{
		TargetPings:   s.stats.targetPings.Load(),
		R2Ts:          s.stats.r2ts.Load(),
		AsyncMessages: s.stats.asyncMessages.Load(),
		Rejects:       s.stats.rejects.Load(),
	}
}

// Params returns the negotiated session parameters.
func (s *Session) Params() Params { return s.params }

// Err returns why the session failed, or nil while it is usable.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Close drops the connection without logging out, fails every task in
// flight with ErrSessionClosed and waits for the reader goroutine.
func (s *Session) Close() error {
	s.closeOnce.Do(func() { s.fail(errClosed) })
	s.wg.Wait()
	return nil
}

// fail marks the session failed with cause, fails every task and closes
// the connection. Only the first cause is kept.
func (s *Session) fail(cause error) {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return
	}
	if s.loggedOut && !errors.Is(cause, errClosed) {
		cause = errLoggedOut
	}
	s.err = fmt.Errorf("%w: %w", ErrSessionClosed, cause)
	for itt, t := range s.tasks {
		delete(s.tasks, itt)
		t.registered = false
		s.finish(t, s.err)
	}
	if s.window != nil {
		close(s.window)
		s.window = nil
	}
	s.mu.Unlock()
	if !errors.Is(cause, errClosed) && !errors.Is(cause, errLoggedOut) {
		s.log.Warn("iscsi session failed", "err", cause)
	}
	_ = s.conn.Close()
}

// finish completes t with err; s.mu is held and t is already out of the
// task map.
func (s *Session) finish(t *task, err error) {
	t.mu.Lock()
	abandoned := t.finishLocked(err)
	t.mu.Unlock()
	if abandoned {
		s.putLocked(t)
	}
}

// getTask returns a clean task from the free list.
func (s *Session) getTask(kind taskKind) *task {
	s.mu.Lock()
	var t *task
	if n := len(s.free); n > 0 {
		t = s.free[n-1]
		s.free = s.free[:n-1]
	}
	s.mu.Unlock()
	if t == nil {
		t = newTask()
	}
	t.kind = kind
	return t
}

// putTask recycles a completed task.
func (s *Session) putTask(t *task) {
	s.mu.Lock()
	s.putLocked(t)
	s.mu.Unlock()
}

// maxFreeTasks bounds the free list.
const maxFreeTasks = 1024

func (s *Session) putLocked(t *task) {
	t.reset()
	if len(s.free) < maxFreeTasks {
		s.free = append(s.free, t)
	}
}

// serialLE reports a <= b in 32-bit serial number arithmetic (RFC 1982).
func serialLE(a, b uint32) bool { return int32(a-b) <= 0 }

// serialLT reports a < b in serial number arithmetic.
func serialLT(a, b uint32) bool { return int32(a-b) < 0 }

// submit assigns t its tag and CmdSN, waiting while the command window is
// closed (non-immediate tasks only), and writes its PDUs. An error means
// t was not registered (or the session failed, which completes t).
func (s *Session) submit(ctx context.Context, t *task) error {
	for {
		s.wmu.Lock()
		s.mu.Lock()
		if s.err != nil {
			err := s.err
			s.mu.Unlock()
			s.wmu.Unlock()
			return err
		}
		if t.immediate || serialLE(s.cmdSN, s.maxCmdSN) {
			if !t.registered {
				t.itt = s.allocITTLocked()
				s.tasks[t.itt] = t
				t.registered = true
			}
			t.cmdSN = s.cmdSN
			if !t.immediate {
				s.cmdSN++
			}
			expStatSN := s.expStatSN
			s.mu.Unlock()
			err := s.writeTaskLocked(t, expStatSN)
			s.wmu.Unlock()
			if err != nil {
				s.fail(err)
				return s.Err()
			}
			return nil
		}
		if s.window == nil {
			s.window = make(chan struct{})
		}
		ch := s.window
		s.mu.Unlock()
		s.wmu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// allocITTLocked returns a free Initiator Task Tag; s.mu is held.
func (s *Session) allocITTLocked() uint32 {
	for {
		itt := s.nextITT
		s.nextITT++
		if itt == wire.ReservedITT || itt == loginITT {
			continue
		}
		if _, busy := s.tasks[itt]; !busy {
			return itt
		}
	}
}

// writeTaskLocked writes the request PDUs of t; s.wmu is held.
func (s *Session) writeTaskLocked(t *task, expStatSN uint32) error {
	p := &s.out
	p.Reset()
	p.SetITT(t.itt)
	p.SetCmdSN(t.cmdSN)
	p.SetExpStatSN(expStatSN)
	switch t.kind {
	case taskSCSI:
		return s.writeCommandLocked(t, expStatSN)
	case taskTMF:
		p.SetOpcode(wire.OpTaskMgmtReq, true)
		p.SetFlags(wire.FlagFinal | byte(t.tmfFunc))
		p.SetLUN(wire.EncodeLUN(t.lun))
		p.SetField32(offRefTaskTag, t.refTag)
		p.SetField32(offRefCmdSN, t.refCmdSN)
	case taskNOP:
		p.SetOpcode(wire.OpNOPOut, true)
		p.SetFlags(wire.FlagFinal)
		p.SetTTT(wire.ReservedITT)
	case taskText:
		p.SetOpcode(wire.OpTextReq, false)
		p.SetFlags(wire.FlagFinal)
		p.SetTTT(t.textTTT)
		p.Data = t.textReq
	case taskLogout:
		p.SetOpcode(wire.OpLogoutReq, true)
		p.SetFlags(wire.FlagFinal | t.logoutWhy)
	}
	err := s.w.Write(p)
	p.Data = nil
	return err
}

// Field offsets of request PDUs not named by the codec.
const (
	offRefTaskTag = 20 // Task Management Request: Referenced Task Tag
	offRefCmdSN   = 32 // Task Management Request: RefCmdSN
)

// writeCommandLocked writes a SCSI Command with its immediate data and
// any unsolicited Data-Out PDUs in one gathered write; s.wmu is held.
func (s *Session) writeCommandLocked(t *task, expStatSN uint32) error {
	p := &s.out
	pr := &s.params
	n := uint32(len(t.dataOut))
	var imm, unsolicited uint32
	if n > 0 {
		if !pr.InitialR2T {
			unsolicited = min(n, pr.FirstBurstLength)
		}
		if pr.ImmediateData {
			imm = min(n, pr.FirstBurstLength, pr.MaxXmitDataSegmentLength)
			unsolicited = max(unsolicited, imm)
		}
	}
	flags := byte(taskAttrSimple)
	if unsolicited == imm {
		flags |= wire.FlagFinal
	}
	if n > 0 {
		flags |= wire.FlagWrite
		p.SetExpectedDataTransferLength(n)
	} else if len(t.dataIn) > 0 {
		flags |= wire.FlagRead
		p.SetExpectedDataTransferLength(uint32(len(t.dataIn)))
	}
	p.SetOpcode(wire.OpSCSICommand, false)
	p.SetFlags(flags)
	p.SetLUN(wire.EncodeLUN(t.lun))
	copy(p.CDB(), t.cdb[:])
	p.Data = t.dataOut[:imm]
	if err := s.w.Queue(p); err != nil {
		return err
	}
	if unsolicited > imm {
		if err := s.queueDataOutLocked(t, wire.ReservedITT, imm, unsolicited-imm, expStatSN); err != nil {
			return err
		}
	}
	p.Data = nil
	return s.w.Flush()
}

// queueDataOutLocked queues the Data-Out PDUs of one output sequence
// [off, off+length) of t's data, each at most MaxXmitDataSegmentLength;
// s.wmu is held.
func (s *Session) queueDataOutLocked(t *task, ttt, off, length, expStatSN uint32) error {
	p := &s.out
	seg := s.params.MaxXmitDataSegmentLength
	end := off + length
	for sn := uint32(0); off < end; sn++ {
		n := min(seg, end-off)
		p.Reset()
		p.SetOpcode(wire.OpSCSIDataOut, false)
		if off+n == end {
			p.SetFlags(wire.FlagFinal)
		}
		p.SetLUN(wire.EncodeLUN(t.lun))
		p.SetITT(t.itt)
		p.SetTTT(ttt)
		p.SetExpStatSN(expStatSN)
		p.SetDataSN(sn)
		p.SetBufferOffset(off)
		p.Data = t.dataOut[off : off+n]
		if err := s.w.Queue(p); err != nil {
			p.Data = nil
			return err
		}
		off += n
	}
	p.Data = nil
	return nil
}

// sendR2TData answers one R2T of t.
func (s *Session) sendR2TData(t *task, r r2t) error {
	s.wmu.Lock()
	s.mu.Lock()
	err, expStatSN := s.err, s.expStatSN
	s.mu.Unlock()
	if err == nil {
		err = s.queueDataOutLocked(t, r.ttt, r.offset, r.length, expStatSN)
		if err == nil {
			err = s.w.Flush()
		}
	}
	s.wmu.Unlock()
	if err != nil {
		s.fail(err)
	}
	return err
}

// readLoop is the reader goroutine: it decodes target PDUs until the
// connection fails.
func (s *Session) readLoop() {
	for {
		if err := s.r.Read(&s.in); err != nil {
			if errors.Is(err, wire.ErrDataDigest) {
				err = fmt.Errorf("%v: %w", s.in.Opcode(), err)
			}
			s.fail(err)
			return
		}
		if err := s.handle(&s.in); err != nil {
			s.fail(err)
			return
		}
	}
}
