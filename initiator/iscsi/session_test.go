package iscsi

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	wire "github.com/vbs-storage/vbs/target/iscsi"
	"go.uber.org/goleak"
)

// wireLog records what a session writes; the reader half is never used
// because tests feed target PDUs to Session.handle directly.
type wireLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
	// wrote is signalled (without blocking) after every write.
	wrote chan struct{}
}

func (w *wireLog) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	select {
	case w.wrote <- struct{}{}:
	default:
	}
	return w.buf.Write(b)
}

func (w *wireLog) Read([]byte) (int, error) { return 0, io.EOF }

func (w *wireLog) Close() error { return nil }

// pdus decodes the complete PDUs written so far and forgets them; a PDU
// still being written (a gathered write lands buffer by buffer here)
// stays for the next call.
func (w *wireLog) pdus(t *testing.T, p *Params) []wire.PDU {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	data := bytes.Clone(w.buf.Bytes())
	br := bytes.NewReader(data)
	r := wire.NewReader(br, wire.Limits{MaxRecvDataSegmentLength: wire.MaxDataSegmentLength,
		HeaderDigest: p.HeaderDigest, DataDigest: p.DataDigest})
	var out []wire.PDU
	for {
		pos := len(data) - br.Len()
		var pdu wire.PDU
		err := r.Read(&pdu)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("decode what the session wrote: %v", err)
			}
			w.buf.Reset()
			w.buf.Write(data[pos:])
			return out
		}
		pdu.Data = bytes.Clone(pdu.Data)
		out = append(out, pdu)
	}
}

func unitParams() Params {
	p := defaultParams()
	p.MaxRecvDataSegmentLength = 65536
	p.MaxXmitDataSegmentLength = 4096
	p.MaxBurstLength = 16384
	p.FirstBurstLength = 8192
	p.MaxOutstandingR2T = 2
	p.TSIH = 1
	return p
}

// unitSession returns a session with a command window of 32 and no
// reader goroutine.
func unitSession(t *testing.T, p Params) (*Session, *wireLog) {
	t.Helper()
	w := &wireLog{wrote: make(chan struct{}, 1)}
	s := newSession(w, w, p, slog.New(slog.DiscardHandler))
	s.cmdSN, s.expCmdSN, s.maxCmdSN, s.expStatSN = 10, 10, 41, 5
	return s, w
}

// targetPDU builds a target PDU with sane sequence numbers.
func targetPDU(op wire.Opcode, itt uint32, flags byte) *wire.PDU {
	p := &wire.PDU{}
	p.SetOpcode(op, false)
	p.SetFlags(flags)
	p.SetITT(itt)
	p.SetTTT(wire.ReservedITT)
	p.SetStatSN(5)
	p.SetExpCmdSN(10)
	p.SetMaxCmdSN(41)
	return p
}

func dataIn(itt, sn, off uint32, data []byte, flags byte) *wire.PDU {
	p := targetPDU(wire.OpSCSIDataIn, itt, flags)
	p.SetDataSN(sn)
	p.SetBufferOffset(off)
	p.Data = data
	return p
}

func TestDataInReassembly(t *testing.T) {
	s, _ := unitSession(t, unitParams())
	ctx := context.Background()
	buf := make([]byte, 12)
	cmd, err := s.Start(ctx, 1, []byte{opRead16}, nil, buf)
	if err != nil {
		t.Fatal(err)
	}
	itt := cmd.Tag()
	for _, p := range []*wire.PDU{
		dataIn(itt, 0, 0, []byte("abcd"), 0),
		dataIn(itt, 1, 4, []byte("efgh"), 0),
		dataIn(itt, 2, 8, []byte("ij"), wire.FlagFinal|wire.FlagStatus|wire.FlagUnderflow),
	} {
		p.SetResidualCount(2)
		if err := s.handle(p); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := cmd.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(buf[:10]) != "abcdefghij" || resp.DataIn != 10 || !resp.Underflow || resp.Residual != 2 || resp.Status != StatusGood {
		t.Fatalf("buf %q resp %+v", buf, resp)
	}
	if s.expStatSN != 6 {
		t.Errorf("ExpStatSN %d after status in Data-In, want 6", s.expStatSN)
	}
}

// TestDataInViolations checks that a target cannot write outside the
// buffer or out of sequence: each case fails the session and the task.
func TestDataInViolations(t *testing.T) {
	tests := map[string]func(itt uint32) *wire.PDU{
		"beyond buffer":    func(itt uint32) *wire.PDU { return dataIn(itt, 0, 6, []byte("abcd"), 0) },
		"offset wraps":     func(itt uint32) *wire.PDU { return dataIn(itt, 0, 0xfffffffe, []byte("abcd"), 0) },
		"DataSN gap":       func(itt uint32) *wire.PDU { return dataIn(itt, 1, 0, []byte("ab"), 0) },
		"out of order":     func(itt uint32) *wire.PDU { return dataIn(itt, 0, 2, []byte("ab"), 0) },
		"status without F": func(itt uint32) *wire.PDU { return dataIn(itt, 0, 0, []byte("ab"), wire.FlagStatus) },
		"R2T for a read": func(itt uint32) *wire.PDU {
			p := targetPDU(wire.OpR2T, itt, wire.FlagFinal)
			p.SetTTT(1)
			p.SetResidualCount(4)
			return p
		},
		"login in FFP":       func(itt uint32) *wire.PDU { return targetPDU(wire.OpLoginResp, itt, 0) },
		"NOP-In for a read":  func(itt uint32) *wire.PDU { return targetPDU(wire.OpNOPIn, itt, wire.FlagFinal) },
		"TMF resp for read":  func(itt uint32) *wire.PDU { return targetPDU(wire.OpTaskMgmtResp, itt, wire.FlagFinal) },
		"reject without hdr": func(itt uint32) *wire.PDU { return targetPDU(wire.OpReject, wire.ReservedITT, wire.FlagFinal) },
		"sense too long": func(itt uint32) *wire.PDU {
			p := targetPDU(wire.OpSCSIResponse, itt, wire.FlagFinal)
			p.SetByte3(byte(StatusCheckCondition))
			p.Data = []byte{0, 40, 0x70, 0, 5}
			return p
		},
	}
	for name, mk := range tests {
		t.Run(name, func(t *testing.T) {
			s, _ := unitSession(t, unitParams())
			ctx := context.Background()
			buf := make([]byte, 8)
			cmd, err := s.Start(ctx, 1, []byte{opRead16}, nil, buf)
			if err != nil {
				t.Fatal(err)
			}
			err = s.handle(mk(cmd.Tag()))
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("handle: %v, want ErrProtocol", err)
			}
			s.fail(err)
			if _, err := cmd.Wait(ctx); !errors.Is(err, ErrSessionClosed) || !errors.Is(err, ErrProtocol) {
				t.Fatalf("wait: %v", err)
			}
			if !bytes.Equal(buf, make([]byte, 8)) {
				t.Errorf("buffer written: %q", buf)
			}
		})
	}
}

func TestResponseSense(t *testing.T) {
	s, _ := unitSession(t, unitParams())
	ctx := context.Background()
	cmd, err := s.Start(ctx, 0, []byte{opTestUnitReady, 0, 0, 0, 0, 0}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	sense := make([]byte, 18)
	sense[0], sense[2], sense[7], sense[12], sense[13] = 0x70, byte(SenseNotReady), 10, 0x04, 0x01
	p := targetPDU(wire.OpSCSIResponse, cmd.Tag(), wire.FlagFinal)
	p.SetByte3(byte(StatusCheckCondition))
	p.Data = append([]byte{0, byte(len(sense))}, sense...)
	if err := s.handle(p); err != nil {
		t.Fatal(err)
	}
	resp, err := cmd.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var se *SenseError
	if err := resp.Err(); !errors.As(err, &se) || se.Key != SenseNotReady || se.ASC != 4 || se.ASCQ != 1 {
		t.Fatalf("sense error %v", err)
	}
	// Descriptor format, and statuses without sense.
	cmd, _ = s.Start(ctx, 0, []byte{opTestUnitReady, 0, 0, 0, 0, 0}, nil, nil)
	p = targetPDU(wire.OpSCSIResponse, cmd.Tag(), wire.FlagFinal)
	p.SetByte3(byte(StatusCheckCondition))
	p.Data = []byte{0, 8, 0x72, 0x05, 0x24, 0x00, 0, 0, 0, 0}
	_ = s.handle(p)
	if resp, err := cmd.Wait(ctx); err != nil {
		t.Fatal(err)
	} else if err := resp.Err(); !errors.As(err, &se) || se.Key != SenseIllegalRequest || se.ASC != 0x24 || se.ASCQ != 0 {
		t.Errorf("descriptor sense: %v", err)
	}
	var st *StatusError
	if err := (&Response{Status: StatusBusy}).Err(); !errors.As(err, &st) || st.Status != StatusBusy {
		t.Errorf("busy: %v", err)
	}
	// A response code other than "completed" is a target failure.
	cmd, _ = s.Start(ctx, 0, []byte{opTestUnitReady}, nil, nil)
	p = targetPDU(wire.OpSCSIResponse, cmd.Tag(), wire.FlagFinal)
	p.SetByte2(1)
	_ = s.handle(p)
	var tf *TargetFailureError
	if _, err := cmd.Wait(ctx); !errors.As(err, &tf) {
		t.Fatalf("target failure: %v", err)
	}
}

// TestWriteDataLayout checks immediate data, unsolicited Data-Out and
// R2T-solicited Data-Out against the negotiated lengths.
func TestWriteDataLayout(t *testing.T) {
	defer goleak.VerifyNone(t)
	p := unitParams()
	p.InitialR2T = false // unsolicited Data-Out up to FirstBurstLength
	s, w := unitSession(t, p)
	ctx := context.Background()
	data := make([]byte, 40000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	cmd, err := s.Start(ctx, 3, []byte{opWrite16}, data, nil)
	if err != nil {
		t.Fatal(err)
	}
	sent := w.pdus(t, &p)
	// Command + 4096 immediate, then Data-Out [4096, 8192) in one PDU.
	if len(sent) != 2 {
		t.Fatalf("%d PDUs sent, want 2", len(sent))
	}
	c := sent[0]
	if c.Opcode() != wire.OpSCSICommand || c.Final() || c.Flags()&wire.FlagWrite == 0 || c.ExpectedDataTransferLength() != 40000 ||
		c.CmdSN() != 10 || c.ExpStatSN() != 5 || c.LUN() != wire.EncodeLUN(3) || len(c.Data) != 4096 {
		t.Fatalf("command % x data %d", c.BHS[:], len(c.Data))
	}
	d := sent[1]
	if d.Opcode() != wire.OpSCSIDataOut || !d.Final() || d.TTT() != wire.ReservedITT || d.BufferOffset() != 4096 ||
		len(d.Data) != 4096 || d.DataSN() != 0 || !bytes.Equal(d.Data, data[4096:8192]) {
		t.Fatalf("unsolicited Data-Out % x", d.BHS[:])
	}
	// Two R2Ts (MaxOutstandingR2T 2) for the rest, each at most
	// MaxBurstLength.
	waitDone := make(chan error, 1)
	go func() {
		_, err := cmd.Wait(ctx)
		waitDone <- err
	}()
	for i, r := range []struct{ off, n uint32 }{{8192, 16384}, {24576, 15424}} {
		p := targetPDU(wire.OpR2T, cmd.Tag(), wire.FlagFinal)
		p.SetTTT(0x100 + uint32(i))
		p.SetDataSN(uint32(i))
		p.SetBufferOffset(r.off)
		p.SetResidualCount(r.n)
		if err := s.handle(p); err != nil {
			t.Fatal(err)
		}
	}
	// Collect the Data-Out the Wait goroutine sends.
	var outs []wire.PDU
	timeout := time.After(10 * time.Second)
	got := 0
	for got < 40000-8192 {
		for _, o := range w.pdus(t, &p) {
			outs = append(outs, o)
			got += len(o.Data)
		}
		if got >= 40000-8192 {
			break
		}
		select {
		case <-w.wrote:
		case <-timeout:
			t.Fatalf("only %d solicited bytes sent", got)
		}
	}
	seq := map[uint32]uint32{}
	for _, o := range outs {
		if o.Opcode() != wire.OpSCSIDataOut || len(o.Data) > 4096 {
			t.Fatalf("bad solicited PDU % x", o.BHS[:])
		}
		if o.DataSN() != seq[o.TTT()] {
			t.Errorf("TTT %#x DataSN %d, want %d", o.TTT(), o.DataSN(), seq[o.TTT()])
		}
		seq[o.TTT()]++
		off := o.BufferOffset()
		if !bytes.Equal(o.Data, data[off:off+uint32(len(o.Data))]) {
			t.Errorf("Data-Out at %d carries the wrong bytes", off)
		}
		end := off + uint32(len(o.Data))
		if last := end == 24576 || end == 40000; last != o.Final() {
			t.Errorf("Data-Out ending at %d has F=%v", end, o.Final())
		}
	}
	if seq[0x100] != 4 || seq[0x101] != 4 {
		t.Errorf("Data-Out per R2T %v, want 4 and 4", seq)
	}
	resp := targetPDU(wire.OpSCSIResponse, cmd.Tag(), wire.FlagFinal)
	if err := s.handle(resp); err != nil {
		t.Fatal(err)
	}
	if err := <-waitDone; err != nil {
		t.Fatal(err)
	}
}

func TestR2TViolations(t *testing.T) {
	tests := map[string]func(p *wire.PDU){
		"beyond buffer":    func(p *wire.PDU) { p.SetBufferOffset(30) },
		"above MaxBurst":   func(p *wire.PDU) { p.SetResidualCount(16385) },
		"zero length":      func(p *wire.PDU) { p.SetResidualCount(0) },
		"reserved TTT":     func(p *wire.PDU) { p.SetTTT(wire.ReservedITT) },
		"R2TSN gap":        func(p *wire.PDU) { p.SetDataSN(1) },
		"offset overflows": func(p *wire.PDU) { p.SetBufferOffset(0xffffffff) },
	}
	for name, mod := range tests {
		t.Run(name, func(t *testing.T) {
			p := unitParams()
			p.ImmediateData = false
			s, _ := unitSession(t, p)
			cmd, err := s.Start(context.Background(), 0, []byte{opWrite16}, make([]byte, 32), nil)
			if err != nil {
				t.Fatal(err)
			}
			r := targetPDU(wire.OpR2T, cmd.Tag(), wire.FlagFinal)
			r.SetTTT(9)
			r.SetResidualCount(32)
			mod(r)
			if err := s.handle(r); !errors.Is(err, ErrProtocol) {
				t.Fatalf("got %v, want ErrProtocol", err)
			}
		})
	}
	// More R2Ts than MaxOutstandingR2T.
	p := unitParams()
	p.ImmediateData = false
	s, _ := unitSession(t, p)
	cmd, _ := s.Start(context.Background(), 0, []byte{opWrite16}, make([]byte, 32), nil)
	var err error
	for i := uint32(0); i < 3 && err == nil; i++ {
		r := targetPDU(wire.OpR2T, cmd.Tag(), wire.FlagFinal)
		r.SetTTT(9)
		r.SetDataSN(i)
		r.SetBufferOffset(i * 8)
		r.SetResidualCount(8)
		err = s.handle(r)
	}
	if !errors.Is(err, ErrProtocol) {
		t.Fatalf("third outstanding R2T: %v", err)
	}
}

// TestCommandWindow checks that a closed window blocks new commands
// until the target opens it, while immediate PDUs still go out.
func TestCommandWindow(t *testing.T) {
	defer goleak.VerifyNone(t)
	s, w := unitSession(t, unitParams())
	s.maxCmdSN = s.cmdSN - 1 // closed
	ctx := context.Background()
	started := make(chan error, 1)
	go func() {
		_, err := s.Start(ctx, 0, []byte{opTestUnitReady}, nil, nil)
		started <- err
	}()
	// An immediate NOP is not held back by the window.
	nop := s.getTask(taskNOP)
	nop.immediate = true
	if err := s.submit(ctx, nop); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-started:
		t.Fatalf("command sent through a closed window: %v", err)
	default:
	}
	// A PDU with MaxCmdSN < ExpCmdSN-1 must be ignored.
	bogus := targetPDU(wire.OpNOPIn, wire.ReservedITT, wire.FlagFinal)
	bogus.SetExpCmdSN(100)
	bogus.SetMaxCmdSN(50)
	if err := s.handle(bogus); err != nil {
		t.Fatal(err)
	}
	if s.maxCmdSN != 9 {
		t.Fatalf("window moved by a bogus PDU: MaxCmdSN %d", s.maxCmdSN)
	}
	open := targetPDU(wire.OpNOPIn, nop.itt, wire.FlagFinal)
	open.SetMaxCmdSN(10)
	if err := s.handle(open); err != nil {
		t.Fatal(err)
	}
	if err := <-started; err != nil {
		t.Fatal(err)
	}
	var cmds int
	for _, p := range w.pdus(t, &s.params) {
		if p.Opcode() == wire.OpSCSICommand {
			cmds++
			if p.CmdSN() != 10 {
				t.Errorf("CmdSN %d, want 10", p.CmdSN())
			}
		}
	}
	if cmds != 1 {
		t.Fatalf("%d commands sent", cmds)
	}
	// A waiter gives up with its context.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Start(cctx, 0, []byte{opTestUnitReady}, nil, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("start in a closed window with a dead context: %v", err)
	}
}

// TestTaskManagementEffects checks which tasks a completed TMF ends.
func TestTaskManagementEffects(t *testing.T) {
	s, _ := unitSession(t, unitParams())
	ctx := context.Background()
	start := func(lun uint64) Command {
		c, err := s.Start(ctx, lun, []byte{opTestUnitReady}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a, b, other := start(1), start(1), start(2)
	tmf := s.getTask(taskTMF)
	tmf.immediate, tmf.tmfFunc, tmf.lun = true, TMFLogicalUnitReset, 1
	if err := s.submit(ctx, tmf); err != nil {
		t.Fatal(err)
	}
	later := start(1) // issued after the reset: not affected
	p := targetPDU(wire.OpTaskMgmtResp, tmf.itt, wire.FlagFinal)
	p.SetByte2(byte(TMFFunctionComplete))
	if err := s.handle(p); err != nil {
		t.Fatal(err)
	}
	for _, c := range []Command{a, b} {
		if _, err := c.Wait(ctx); !errors.Is(err, ErrTaskAborted) {
			t.Errorf("task on the reset LUN: %v", err)
		}
	}
	for _, c := range []Command{other, later} {
		r := targetPDU(wire.OpSCSIResponse, c.Tag(), wire.FlagFinal)
		if err := s.handle(r); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Wait(ctx); err != nil {
			t.Errorf("unaffected task: %v", err)
		}
	}
}

func TestRejectAsyncAndPings(t *testing.T) {
	s, w := unitSession(t, unitParams())
	ctx := context.Background()
	cmd, err := s.Start(ctx, 0, []byte{opTestUnitReady}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	sent := w.pdus(t, &s.params)
	rej := targetPDU(wire.OpReject, wire.ReservedITT, wire.FlagFinal)
	rej.SetByte2(RejectInvalidPDUField)
	rej.Data = sent[0].BHS[:]
	if err := s.handle(rej); err != nil {
		t.Fatal(err)
	}
	var re *RejectError
	if _, err := cmd.Wait(ctx); !errors.As(err, &re) || re.Reason != RejectInvalidPDUField {
		t.Fatalf("rejected command: %v", err)
	}

	ping := targetPDU(wire.OpNOPIn, wire.ReservedITT, wire.FlagFinal)
	ping.SetTTT(0xabc)
	ping.SetLUN(wire.EncodeLUN(4))
	if err := s.handle(ping); err != nil {
		t.Fatal(err)
	}
	out := w.pdus(t, &s.params)
	if len(out) != 1 || out[0].Opcode() != wire.OpNOPOut || out[0].TTT() != 0xabc || out[0].ITT() != wire.ReservedITT ||
		out[0].LUN() != wire.EncodeLUN(4) || !out[0].Immediate() {
		t.Fatalf("ping answer %+v", out)
	}

	async := targetPDU(wire.OpAsyncMsg, wire.ReservedITT, wire.FlagFinal)
	async.BHS[offAsyncEvent] = asyncLogoutRequest
	if err := s.handle(async); err != nil {
		t.Fatal(err)
	}
	out = w.pdus(t, &s.params)
	if len(out) != 1 || out[0].Opcode() != wire.OpLogoutReq || out[0].Flags()&0x7f != logoutReasonClose {
		t.Fatalf("logout request %+v", out)
	}
	lr := targetPDU(wire.OpLogoutResp, out[0].ITT(), wire.FlagFinal)
	if err := s.handle(lr); err != nil {
		t.Fatal(err)
	}
	if !s.loggedOut {
		t.Fatal("session not marked logged out")
	}
	s.fail(io.EOF)
	if err := s.Err(); !errors.Is(err, ErrSessionClosed) || !errors.Is(err, errLoggedOut) {
		t.Fatalf("after target-requested logout: %v", err)
	}
	st := s.Stats()
	if st.TargetPings != 1 || st.AsyncMessages != 1 || st.Rejects != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestParseSendTargets(t *testing.T) {
	kvs, err := wire.ParseText([]byte("TargetName=iqn.a\x00TargetAddress=10.0.0.1:3260,1\x00TargetAddress=[fe80::1]:3260,1\x00TargetName=iqn.b\x00"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseSendTargets(kvs)
	if err != nil || len(got) != 2 || got[0].Name != "iqn.a" || len(got[0].Addresses) != 2 || len(got[1].Addresses) != 0 {
		t.Fatalf("%+v %v", got, err)
	}
	if h := (&RedirectError{Addr: got[0].Addresses[1]}).Host(); h != "[fe80::1]:3260" {
		t.Errorf("host %q", h)
	}
	if _, err := parseSendTargets([]wire.KV{kv(keyTargetAddress, "x")}); !errors.Is(err, ErrProtocol) {
		t.Errorf("address without a name: %v", err)
	}
}

func TestCDBBuilders(t *testing.T) {
	var cdb [cdb16Len]byte
	rwCDB16(&cdb, opWrite16, 0x0102030405060708, 0x0a0b0c0d, true)
	want := []byte{opWrite16, cdbFUA, 1, 2, 3, 4, 5, 6, 7, 8, 0x0a, 0x0b, 0x0c, 0x0d, 0, 0}
	if !bytes.Equal(cdb[:], want) {
		t.Errorf("WRITE(16) % x, want % x", cdb, want)
	}
	if _, err := blocksOf(1000, 512); !errors.Is(err, ErrCDB) {
		t.Errorf("partial block: %v", err)
	}
	if n, err := blocksOf(4096, 512); n != 8 || err != nil {
		t.Errorf("blocksOf(4096) = %d %v", n, err)
	}
	if binary.BigEndian.Uint64(cdb[2:]) != 0x0102030405060708 {
		t.Error("lba")
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestAbandonedRead checks that once a waiter gives up, the target can no
// longer write into its buffer, and that an ABORT TASK is sent for it.
func TestAbandonedRead(t *testing.T) {
	s, w := unitSession(t, unitParams())
	buf := make([]byte, 8)
	cmd, err := s.Start(context.Background(), 2, []byte{opRead16}, nil, buf)
	if err != nil {
		t.Fatal(err)
	}
	w.pdus(t, &s.params)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := cmd.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("wait: %v", err)
	}
	sent := w.pdus(t, &s.params)
	if len(sent) != 1 || sent[0].Opcode() != wire.OpTaskMgmtReq || TMFunction(sent[0].Flags()&0x7f) != TMFAbortTask ||
		sent[0].ReferencedTaskTag() != cmd.Tag() || sent[0].Field32(offRefCmdSN) != 10 || !sent[0].Immediate() {
		t.Fatalf("abort request %+v", sent)
	}
	itt := cmd.Tag()
	if err := s.handle(dataIn(itt, 0, 0, []byte("late data"[:8]), wire.FlagFinal|wire.FlagStatus)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf, make([]byte, 8)) {
		t.Fatalf("abandoned buffer written: %q", buf)
	}
	s.mu.Lock()
	n := len(s.tasks)
	s.mu.Unlock()
	if n != 1 { // only the fire-and-forget ABORT TASK is left
		t.Fatalf("%d tasks registered", n)
	}
}

// TestDialSilentTarget checks that login gives up with the context when
// the target accepts the connection and never answers.
func TestDialSilentTarget(t *testing.T) {
	defer goleak.VerifyNone(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err = Dial(ctx, Config{Addr: ln.Addr().String(), InitiatorName: "iqn.i", TargetName: "iqn.t"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("dial a silent target: %v", err)
	}
	if c := <-accepted; c != nil {
		c.Close()
	}
	// Cancellation without a deadline interrupts the login as well.
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln2.Close()
	held := make(chan net.Conn, 1)
	go func() {
		c, err := ln2.Accept()
		if err == nil {
			held <- c
		}
		close(held)
	}()
	cctx, ccancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := Dial(cctx, Config{Addr: ln2.Addr().String(), InitiatorName: "iqn.i", TargetName: "iqn.t", LoginTimeout: time.Hour})
		errc <- err
	}()
	c := <-held
	ccancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled dial: %v", err)
	}
	if c != nil {
		c.Close()
	}
}

// TestTextContinuation checks a text exchange the target splits across
// responses: the continuation request carries the same ITT and the
// target's TTT, and the keys are joined.
func TestTextContinuation(t *testing.T) {
	defer goleak.VerifyNone(t)
	s, w := unitSession(t, unitParams())
	type result struct {
		kvs []wire.KV
		err error
	}
	res := make(chan result, 1)
	go func() {
		kvs, err := s.text(context.Background(), wire.AppendText(nil, keySendTargets, valueAll))
		res <- result{kvs, err}
	}()
	next := func() wire.PDU {
		timeout := time.After(10 * time.Second)
		for {
			if out := w.pdus(t, &s.params); len(out) > 0 {
				if len(out) != 1 {
					t.Fatalf("%d PDUs sent, want 1", len(out))
				}
				return out[0]
			}
			select {
			case <-w.wrote:
			case <-timeout:
				t.Fatal("no text request sent")
			}
		}
	}
	first := next()
	if first.Opcode() != wire.OpTextReq || !first.Final() || first.TTT() != wire.ReservedITT || string(first.Data) != "SendTargets=All\x00" {
		t.Fatalf("first request % x %q", first.BHS[:], first.Data)
	}
	part := targetPDU(wire.OpTextResp, first.ITT(), wire.FlagContinue)
	part.SetTTT(0x33)
	part.Data = []byte("TargetName=iqn.a\x00TargetAdd")
	if err := s.handle(part); err != nil {
		t.Fatal(err)
	}
	cont := next()
	if cont.ITT() != first.ITT() || cont.TTT() != 0x33 || len(cont.Data) != 0 || cont.CmdSN() != first.CmdSN()+1 {
		t.Fatalf("continuation % x", cont.BHS[:])
	}
	last := targetPDU(wire.OpTextResp, first.ITT(), wire.FlagFinal)
	last.Data = []byte("ress=10.0.0.1:3260,1\x00")
	if err := s.handle(last); err != nil {
		t.Fatal(err)
	}
	r := <-res
	if r.err != nil || len(r.kvs) != 2 || r.kvs[1] != kv(keyTargetAddress, "10.0.0.1:3260,1") {
		t.Fatalf("text result %v %v", r.kvs, r.err)
	}
}
