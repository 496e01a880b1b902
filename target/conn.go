package target

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vbs-storage/vbs/target/iscsi"
)

// Sizes of per-connection queues.
const (
	// readBufferSize is the socket read buffer; large enough for a 4 KiB
	// write PDU and its header in one read.
	readBufferSize = 64 << 10
	// maxBatch bounds how many outgoing messages one writev gathers.
	maxBatch = 64
	// maxImmediateFactor bounds the commands an initiator may have in
	// flight outside the CmdSN window (immediate commands), as a multiple
	// of the queue depth.
	maxImmediateFactor = 2
)

// errConnClosed ends a read loop that shutdown interrupted.
var errConnClosed = errors.New("connection closed")

// conn is one TCP connection: login, then full feature phase. The reader
// goroutine (serve) owns every field not marked otherwise.
type conn struct {
	srv *Server
	nc  net.Conn
	log *slog.Logger
	br  *bufio.Reader // under rd: tells whether the next PDU is buffered
	rd  *iscsi.Reader
	// wmu guards the wire after login: wr, statSN and the order in which
	// PDUs are stamped. The writer goroutine and the reader's inline
	// flushes take it.
	wmu sync.Mutex
	wr  *iscsi.Writer

	in     iscsi.PDU // the PDU being handled (reader-owned buffers)
	sess   *session
	params iscsi.Params
	// firstCmdSN is the CmdSN of the leading login request.
	firstCmdSN uint32

	closing   chan struct{} // closed by shutdown
	closeOnce sync.Once
	reason    atomic.Pointer[string]
	done      chan struct{} // closed when every goroutine of c ended

	out chan outgoing // to the writer
	// statSN is the next StatSN; guarded by wmu after login.
	statSN uint32
	// inl holds responses of commands the reader ran inline, written in
	// one batch when the reader would otherwise block (reader-owned).
	inl []outgoing

	work     chan *task
	busy     atomic.Int32 // commands queued for or running on workers
	nworkers int          // reader-owned
	idle     atomic.Int32 // workers waiting for work
	workers  sync.WaitGroup
	helpers  sync.WaitGroup // the writer and the logout waiter
	// running counts queued and executing commands (Add by the reader
	// only, so Logout can wait for it).
	running sync.WaitGroup
	// buffered is the data-out buffer held by this connection's write
	// commands, bounded by Options.MaxConnectionBuffer.
	buffered atomic.Int64
	// maxXmit is the largest data segment the initiator accepts.
	maxXmit atomic.Uint32
	// A text answer still to send in pieces (reader-owned), the ITT it
	// answers and the TTT the initiator must echo to get the next piece.
	textPending []byte
	textITT     uint32
	textTTT     uint32

	// ffp is set once the writer runs (full feature phase).
	ffp atomic.Bool

	mu      sync.Mutex // guards tasks and nextTTT
	tasks   map[uint32]*task
	nextTTT uint32

	// Liveness: the reader stamps lastRecv; the writer pings.
	lastRecv atomic.Int64
	pingTTT  atomic.Uint32 // TTT of the outstanding NOP-In ping, or reserved
	pingSent int64         // writer-owned
}

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{
		srv:     s,
		nc:      nc,
		log:     s.log.With("remote", nc.RemoteAddr().String()),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
		tasks:   make(map[uint32]*task),
	}
	c.br = bufio.NewReaderSize(nc, readBufferSize)
	c.rd = iscsi.NewReader(c.br, iscsi.Limits{})
	c.wr = iscsi.NewWriter(nc, iscsi.Limits{})
	c.pingTTT.Store(iscsi.ReservedITT)
	return c
}

// shutdown starts closing c: the socket closes, the reader stops, and
// serve tears down once commands in flight have finished. Safe to call
// many times from any goroutine.
func (c *conn) shutdown(reason string) {
	c.closeOnce.Do(func() {
		c.reason.Store(&reason)
		close(c.closing)
		c.nc.Close()
	})
}

func (c *conn) isClosing() bool {
	select {
	case <-c.closing:
		return true
	default:
		return false
	}
}

// serve runs the connection to its end.
func (c *conn) serve() {
	defer close(c.done)
	defer c.srv.connGone(c)
	defer c.nc.Close()
	ok := c.login()
	c.srv.loginDone()
	if !ok {
		if c.sess != nil {
			c.srv.removeSession(c.sess)
		}
		return
	}
	c.fullFeature()
}

// login runs the login phase; it reports whether the connection reached
// full feature phase.
func (c *conn) login() bool {
	_ = c.nc.SetDeadline(time.Now().Add(c.srv.opts.LoginTimeout))
	var lg *iscsi.Login
	var resp iscsi.PDU
	for {
		if err := c.rd.Read(&c.in); err != nil {
			if !errors.Is(err, io.EOF) && !c.isClosing() {
				c.log.Info("iscsi login read failed", "err", err)
			}
			return false
		}
		if lg == nil {
			// The first response's StatSN is ours to choose; continue
			// from what the initiator expects.
			cfg := c.srv.loginConfig(c)
			cfg.InitialStatSN = c.in.ExpStatSN()
			lg = iscsi.NewLogin(cfg)
		}
		res := lg.Step(&c.in, &resp)
		if err := c.wr.Write(&resp); err != nil {
			c.log.Info("iscsi login write failed", "err", err)
			return false
		}
		switch res {
		case iscsi.StepDone:
			_ = c.nc.SetDeadline(time.Time{})
			c.params = lg.Params()
			c.statSN = c.params.StatSN
			c.firstCmdSN = c.params.ExpCmdSN
			return c.sess != nil
		case iscsi.StepFail:
			c.log.Info("iscsi login failed", "initiator", lg.Params().InitiatorName, "status", fmt.Sprintf("0x%02x%02x", resp.BHS[offLoginStatusClass], resp.BHS[offLoginStatusDetail]))
			return false
		}
	}
}

// completeLogin is LoginConfig.Complete for c.
func (c *conn) completeLogin(p *iscsi.Params) (uint16, error) {
	tsih, err := c.srv.createSession(c, p)
	if err != nil {
		return 0, err
	}
	c.srv.mu.Lock()
	c.sess = c.srv.sessions[tsih]
	c.srv.mu.Unlock()
	return tsih, nil
}

// fullFeature runs the full feature phase until the connection ends.
func (c *conn) fullFeature() {
	ss := c.sess
	p := c.params
	depth := c.srv.opts.QueueDepth
	ss.mu.Lock()
	ss.window = iscsi.NewCmdWindow[*task](c.firstCmdSN, depth)
	ss.mu.Unlock()
	c.rd.Limits = iscsi.Limits{
		MaxRecvDataSegmentLength: p.MaxRecvDataSegmentLength,
		HeaderDigest:             p.HeaderDigest,
		DataDigest:               p.DataDigest,
	}
	c.wr.Limits = iscsi.Limits{HeaderDigest: p.HeaderDigest, DataDigest: p.DataDigest}
	c.setMaxXmit(p.MaxXmitDataSegmentLength)
	c.out = make(chan outgoing, 4*int(depth)+16)
	c.work = make(chan *task, maxImmediateFactor*int(depth)+1)
	if ss.tgt != nil {
		ss.tgt.scsi.NexusOpened(ss.nexus)
	}
	c.log.Info("iscsi session logged in", "initiator", p.InitiatorName, "target", p.TargetName, "tsih", ss.tsih,
		"discovery", p.SessionType == iscsi.SessionDiscovery, "immediate_data", p.ImmediateData, "initial_r2t", p.InitialR2T,
		"first_burst", p.FirstBurstLength, "max_burst", p.MaxBurstLength, "max_xmit", p.MaxXmitDataSegmentLength,
		"header_digest", p.HeaderDigest, "data_digest", p.DataDigest)
	c.lastRecv.Store(c.srv.opts.Clock.Now().UnixNano())
	c.helpers.Add(1)
	go c.writeLoop()
	c.ffp.Store(true)

	err := c.readLoop()
	if err != nil && !c.isClosing() {
		c.log.Info("iscsi connection dropped", "err", err)
	}
	c.shutdown("connection ended")
	c.releaseInline()
	c.teardown()
}

// readLoop reads and dispatches PDUs until an error ends the connection.
func (c *conn) readLoop() error {
	for {
		if len(c.inl) > 0 && c.br.Buffered() == 0 {
			// The next read may wait for the initiator: answer what ran
			// inline first, in one write. A partly buffered PDU does not
			// count: its rest is already on its way (a PDU is sent whole),
			// and flushing at every read-buffer boundary cost a writev per
			// few commands.
			if err := c.flushInline(); err != nil {
				return err
			}
		}
		err := c.rd.Read(&c.in)
		if c.isClosing() {
			return errConnClosed
		}
		switch {
		case err == nil:
		case errors.Is(err, iscsi.ErrDataDigest):
			// The header is sound: reject the PDU and carry on
			// (RFC 7143 section 7.8).
			c.dataDigestError(&c.in)
			continue
		case errors.Is(err, iscsi.ErrDataTooLong):
			c.reject(rejectProtocolError, &c.in)
			return err
		default:
			return err
		}
		c.lastRecv.Store(c.srv.opts.Clock.Now().UnixNano())
		if err := c.dispatch(&c.in); err != nil {
			return err
		}
	}
}

// dispatch handles one PDU. A returned error drops the connection. A
// panic (a bug in this package) drops only this connection, with the
// stack in the log, instead of every session of the process.
func (c *conn) dispatch(p *iscsi.PDU) (err error) {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("iscsi: panic handling a PDU; dropping the connection", "opcode", p.Opcode().String(),
				"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			err = fmt.Errorf("internal error handling %v", p.Opcode())
		}
	}()
	return c.dispatchPDU(p)
}

func (c *conn) dispatchPDU(p *iscsi.PDU) error {
	op := p.Opcode()
	if len(c.inl) > 0 && op != iscsi.OpSCSICommand && op != iscsi.OpSCSIDataOut {
		// Responses to what ran inline go out before any answer to a
		// task management, logout or other control request.
		if err := c.flushInline(); err != nil {
			return err
		}
	}
	switch op {
	case iscsi.OpSCSICommand:
		return c.onSCSICommand(p)
	case iscsi.OpSCSIDataOut:
		return c.onDataOut(p)
	case iscsi.OpNOPOut:
		return c.onNOPOut(p)
	case iscsi.OpTaskMgmtReq:
		return c.onTaskMgmt(p)
	case iscsi.OpTextReq:
		return c.onText(p)
	case iscsi.OpLogoutReq:
		return c.onLogout(p)
	case iscsi.OpLoginReq:
		// A login request in full feature phase is a protocol error.
		c.reject(rejectProtocolError, p)
		return fmt.Errorf("login request in full feature phase")
	case iscsi.OpSNACKReq:
		// ERL 0 has no SNACK support.
		c.reject(rejectCommandNotSupported, p)
		return nil
	}
	c.reject(rejectCommandNotSupported, p)
	return nil
}

// dataDigestError answers a PDU whose data digest was wrong with a Reject.
// A command still consumes its CmdSN; a Data-Out's command can no longer
// get all its data (ERL 0 has no recovery), so it fails.
func (c *conn) dataDigestError(p *iscsi.PDU) {
	switch p.Opcode() {
	case iscsi.OpSCSIDataOut:
		c.reject(rejectDataDigest, p)
		c.mu.Lock()
		t := c.tasks[p.ITT()]
		waiting := t != nil && t.state == taskWaitingData
		c.mu.Unlock()
		if waiting {
			_ = c.failDataOut(t, "data digest error")
		}
	case iscsi.OpSCSICommand, iscsi.OpTaskMgmtReq, iscsi.OpTextReq, iscsi.OpLogoutReq, iscsi.OpNOPOut:
		c.admitControl(p)
		c.reject(rejectDataDigest, p)
	default:
		c.reject(rejectDataDigest, p)
	}
}

// teardown waits for the goroutines of c and releases its session.
func (c *conn) teardown() {
	ss := c.sess
	// Tasks waiting for data never run; drop them.
	c.mu.Lock()
	for itt, t := range c.tasks {
		if t.state == taskWaitingData || t.state == taskHeld {
			delete(c.tasks, itt)
		}
	}
	c.mu.Unlock()
	c.workers.Wait()
	c.drainWork() // anything queued after the workers left
	c.helpers.Wait()
	c.drainOut() // anything queued after the writer left
	c.srv.removeSession(ss)
	ss.closeNexus()
	reason := "closed"
	if r := c.reason.Load(); r != nil {
		reason = *r
	}
	c.log.Info("iscsi session ended", "initiator", ss.params.InitiatorName, "tsih", ss.tsih, "reason", reason)
}

// send hands m to the writer, or releases it when the connection is
// closing.
func (c *conn) send(m outgoing) {
	select {
	case c.out <- m:
	case <-c.closing:
		m.release(c)
	}
}

// newTTT returns a fresh target transfer tag (never the reserved value).
func (c *conn) newTTT() uint32 {
	c.mu.Lock()
	c.nextTTT++
	if c.nextTTT == iscsi.ReservedITT {
		c.nextTTT = 1
	}
	v := c.nextTTT
	c.mu.Unlock()
	return v
}

func (c *conn) setMaxXmit(n uint32) {
	if n == 0 {
		n = defaultMaxXmit
	}
	c.maxXmit.Store(n)
}

// A task is the context of its own execution.
var _ context.Context = (*task)(nil)

// Offsets of Status-Class and Status-Detail in a Login Response (RFC 7143
// section 11.13).
const (
	offLoginStatusClass  = 36
	offLoginStatusDetail = 37
)
