package target

import (
	"runtime"
	"sync"
	"time"

	"github.com/vbs-storage/vbs/target/iscsi"
)

// Reject reasons (RFC 7143 section 11.17.1).
const (
	rejectDataDigest          = 0x02
	rejectSNACK               = 0x03
	rejectProtocolError       = 0x04
	rejectCommandNotSupported = 0x05
	rejectImmediateCommand    = 0x06
	rejectTaskInProgress      = 0x07
	rejectInvalidDataAck      = 0x08
	rejectInvalidPDUField     = 0x09
	rejectLongOperation       = 0x0a
	rejectWaitingForLogout    = 0x0c
)

// statSNMode says what an outgoing PDU does with StatSN.
type statSNMode uint8

const (
	// statSNNone leaves the field as built (Data-In without status).
	statSNNone statSNMode = iota
	// statSNPeek carries the next StatSN without advancing it (R2T,
	// unsolicited NOP-In).
	statSNPeek
	// statSNAdvance carries the next StatSN and advances it (responses).
	statSNAdvance
)

// outgoing is something the writer sends. emit queues its PDUs on the
// writer (in the writer goroutine); release runs after the batch holding
// them was written (or dropped), and must not touch the wire.
type outgoing interface {
	emit(c *conn) error
	release(c *conn)
}

// ctlPDU is one non-data PDU (R2T, NOP-In, TMF, logout, text, reject,
// async) with its own data buffer. ctlPDUs are pooled.
type ctlPDU struct {
	pdu iscsi.PDU
	buf []byte
	sn  statSNMode
	// closeAfter drops the connection once the PDU is on the wire.
	closeAfter bool
	// sent, if set, is closed after the PDU was written or dropped.
	sent chan struct{}
}

var ctlPool = sync.Pool{New: func() any { return new(ctlPDU) }}

// newCtl returns a cleared ctlPDU with opcode op.
func newCtl(op iscsi.Opcode, sn statSNMode) *ctlPDU {
	m := ctlPool.Get().(*ctlPDU)
	m.pdu.Reset()
	m.buf = m.buf[:0]
	m.pdu.SetOpcode(op, false)
	m.pdu.SetFlags(iscsi.FlagFinal)
	m.sn = sn
	m.closeAfter = false
	m.sent = nil
	return m
}

func (m *ctlPDU) emit(c *conn) error {
	m.pdu.Data = m.buf
	c.stamp(&m.pdu.BHS, m.sn)
	return c.wr.Queue(&m.pdu)
}

func (m *ctlPDU) release(c *conn) {
	if m.closeAfter {
		c.shutdown("closed after response")
	}
	if m.sent != nil {
		close(m.sent)
	}
	m.pdu.Data = nil
	ctlPool.Put(m)
}

// stamp fills StatSN, ExpCmdSN and MaxCmdSN of an outgoing header. Callers
// hold wmu, so stamps follow wire order.
func (c *conn) stamp(h *iscsi.BHS, mode statSNMode) {
	switch mode {
	case statSNPeek:
		h.SetStatSN(c.statSN)
	case statSNAdvance:
		h.SetStatSN(c.statSN)
		c.statSN++
	}
	exp, maxSN := c.sess.windowState()
	h.SetExpCmdSN(exp)
	h.SetMaxCmdSN(maxSN)
}

// writeLoop is the writer goroutine: it gathers whatever messages are
// ready into one writev, and pings an idle initiator.
func (c *conn) writeLoop() {
	defer c.helpers.Done()
	var tick <-chan time.Time
	if c.srv.opts.NopInterval > 0 {
		var stop func()
		tick, stop = c.srv.opts.Clock.NewTicker(c.tickPeriod())
		defer stop()
	}
	batch := make([]outgoing, 0, maxBatch)
	for {
		select {
		case m := <-c.out:
			batch = append(batch, m)
		case <-tick:
			// A tick may be stale; judge idleness by the clock itself.
			m := c.idleCheck(c.srv.opts.Clock.Now())
			if m == nil {
				continue
			}
			batch = append(batch, m)
		case <-c.closing:
			c.drainOut()
			return
		}
		if len(c.out) == 0 {
			// Workers finishing other commands are about to queue their
			// responses: let them run once, so that one writev carries
			// them all. Without this the writer wakes per response and
			// spends most of the target's CPU in writev calls.
			runtime.Gosched()
		}
	more:
		for len(batch) < maxBatch {
			select {
			case m := <-c.out:
				batch = append(batch, m)
			default:
				break more
			}
		}
		err := c.writeBatch(batch)
		for i, m := range batch {
			m.release(c)
			batch[i] = nil
		}
		batch = batch[:0]
		if err != nil {
			c.shutdown("write failed: " + err.Error())
			c.drainOut()
			return
		}
	}
}

// writeBatch stamps and writes batch with one writev, under wmu.
func (c *conn) writeBatch(batch []outgoing) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	for _, m := range batch {
		if err := m.emit(c); err != nil {
			return err
		}
	}
	return c.wr.Flush()
}

// queueInline keeps the response of a command the reader ran inline; it
// goes out with the next flushInline (at the latest when the read buffer
// runs empty, or when a batch is full).
func (c *conn) queueInline(m outgoing) error {
	c.inl = append(c.inl, m)
	if len(c.inl) >= maxBatch {
		return c.flushInline()
	}
	return nil
}

// flushInline writes the responses queued by queueInline. A write error
// closes the connection and is returned.
func (c *conn) flushInline() error {
	err := c.writeBatch(c.inl)
	c.releaseInline()
	if err != nil {
		c.shutdown("write failed: " + err.Error())
		return err
	}
	return nil
}

// releaseInline releases the responses queued by queueInline (after they
// were written, or unsent when the connection ends).
func (c *conn) releaseInline() {
	for i, m := range c.inl {
		m.release(c)
		c.inl[i] = nil
	}
	c.inl = c.inl[:0]
}

// waitSent waits until m (sent with a sent channel) is on the wire or
// dropped. A message queued just as the writer stopped is dropped by
// teardown, so closing also ends the wait.
func (c *conn) waitSent(m *ctlPDU) {
	select {
	case <-m.sent:
	case <-c.closing:
	}
}

// drainOut releases every queued message after the writer stopped.
func (c *conn) drainOut() {
	for {
		select {
		case m := <-c.out:
			m.release(c)
		default:
			return
		}
	}
}

// tickPeriod is how often the writer checks liveness: often enough to
// notice both the idle interval and the ping timeout.
func (c *conn) tickPeriod() time.Duration {
	return max(min(c.srv.opts.NopInterval, c.srv.opts.NopTimeout)/2, time.Millisecond)
}

// idleCheck runs on every tick. It drops a connection whose ping went
// unanswered for NopTimeout, and pings one silent for NopInterval.
func (c *conn) idleCheck(now time.Time) outgoing {
	nowNS := now.UnixNano()
	if c.pingTTT.Load() != iscsi.ReservedITT {
		if time.Duration(nowNS-c.pingSent) >= c.srv.opts.NopTimeout {
			c.log.Warn("iscsi initiator did not answer NOP-In; dropping connection")
			c.shutdown("nop-in timeout")
		}
		return nil
	}
	if time.Duration(nowNS-c.lastRecv.Load()) < c.srv.opts.NopInterval {
		return nil
	}
	ttt := c.newTTT()
	c.pingTTT.Store(ttt)
	c.pingSent = nowNS
	m := newCtl(iscsi.OpNOPIn, statSNPeek)
	m.pdu.SetITT(iscsi.ReservedITT)
	m.pdu.SetTTT(ttt)
	return m
}

// reject sends a Reject for the PDU whose header is h.
func (c *conn) reject(reason byte, p *iscsi.PDU) {
	m := newCtl(iscsi.OpReject, statSNAdvance)
	m.pdu.SetByte2(reason)
	m.pdu.SetITT(iscsi.ReservedITT)
	m.buf = append(m.buf, p.BHS[:]...)
	c.send(m)
}
