package target

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vbs-storage/vbs/target/iscsi"
	"github.com/vbs-storage/vbs/target/scsi"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// readBlocks reads blocks at lba and returns the data and the PDUs seen.
func (in *initiator) readBlocks(lba uint32, blocks uint16) ([]byte, []*iscsi.PDU) {
	in.t.Helper()
	n := uint32(blocks) * testBlockSize
	in.send(in.command(rw10(opRead10, lba, blocks), iscsi.FlagRead, n, nil))
	got := make([]byte, n)
	var pdus []*iscsi.PDU
	for {
		p := in.recv()
		pdus = append(pdus, p)
		switch p.Opcode() {
		case iscsi.OpSCSIDataIn:
			copy(got[p.BufferOffset():], p.Data)
			if p.Flags()&iscsi.FlagStatus != 0 {
				if p.Byte3() != byte(scsi.StatusGood) {
					in.t.Fatalf("read status 0x%02x", p.Byte3())
				}
				return got, pdus
			}
		case iscsi.OpSCSIResponse:
			in.t.Fatalf("read ended with SCSI Response status 0x%02x sense % x", p.Byte3(), p.Data)
		default:
			in.t.Fatalf("unexpected %v during read", p.Opcode())
		}
	}
}

// writeImmediate writes data at lba as immediate data (one PDU).
func (in *initiator) writeImmediate(lba uint32, data []byte) *iscsi.PDU {
	in.t.Helper()
	in.send(in.command(rw10(opWrite10, lba, uint16(len(data)/testBlockSize)), iscsi.FlagWrite, uint32(len(data)), data))
	p := in.recv()
	if p.Opcode() != iscsi.OpSCSIResponse {
		in.t.Fatalf("write answered with %v", p.Opcode())
	}
	return p
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

func TestReadWriteImmediate(t *testing.T) {
	ts := startServer(t, Options{}, nil)
	in := dial(t, ts.addr)
	in.mustLogin(loginKeys(testInitiator))
	data := pattern(4096, 3)
	resp := in.writeImmediate(10, data)
	if resp.Byte3() != byte(scsi.StatusGood) || resp.Flags()&(iscsi.FlagOverflow|iscsi.FlagUnderflow) != 0 {
		t.Fatalf("write: status 0x%02x flags 0x%02x", resp.Byte3(), resp.Flags())
	}
	got, pdus := in.readBlocks(10, 8)
	if !bytes.Equal(got, data) {
		t.Fatal("read back different data")
	}
	// Phase collapse: one Data-In carrying status, no SCSI Response.
	if len(pdus) != 1 || pdus[0].Flags()&iscsi.FlagFinal == 0 {
		t.Fatalf("read took %d PDUs; want 1 Data-In with F and S", len(pdus))
	}
}

// TestWriteSolicited forces R2Ts (no immediate data, InitialR2T=Yes, a
// small MaxBurstLength) and reads back with Data-In split by the
// initiator's MaxRecvDataSegmentLength.
func TestWriteSolicited(t *testing.T) {
	ts := startServer(t, Options{MaxBurstLength: 8192}, nil)
	in := dial(t, ts.addr)
	keys := loginKeys(testInitiator)
	for i := range keys {
		switch keys[i].Key {
		case "ImmediateData":
			keys[i].Value = "No"
		case "InitialR2T":
			keys[i].Value = "Yes"
		case "MaxRecvDataSegmentLength":
			keys[i].Value = "4096"
		case "MaxBurstLength":
			keys[i].Value = "8192"
		case "FirstBurstLength":
			keys[i].Value = "4096"
		}
	}
	in.mustLogin(keys)
	in.rd.Limits.MaxRecvDataSegmentLength = 4096
	const n = 64 << 10
	data := pattern(n, 9)
	cmd := in.command(rw10(opWrite10, 100, n/testBlockSize), iscsi.FlagWrite, n, nil)
	itt := cmd.ITT()
	in.send(cmd)
	r2ts := 0
	for done := false; !done; {
		p := in.recv()
		switch p.Opcode() {
		case iscsi.OpR2T:
			if p.ITT() != itt || p.DataSN() != uint32(r2ts) {
				t.Fatalf("R2T itt %x R2TSN %d; want %x %d", p.ITT(), p.DataSN(), itt, r2ts)
			}
			r2ts++
			off, want := p.BufferOffset(), p.ResidualCount()
			if want > 8192 {
				t.Fatalf("R2T asks %d bytes, beyond MaxBurstLength", want)
			}
			for sent, dsn := uint32(0), uint32(0); sent < want; dsn++ {
				chunk := min(want-sent, 4096)
				d := &iscsi.PDU{}
				d.SetOpcode(iscsi.OpSCSIDataOut, false)
				if sent+chunk == want {
					d.SetFlags(iscsi.FlagFinal)
				}
				d.SetITT(itt)
				d.SetTTT(p.TTT())
				d.SetExpStatSN(in.expStatSN)
				d.SetDataSN(dsn)
				d.SetBufferOffset(off + sent)
				d.Data = data[off+sent : off+sent+chunk]
				in.send(d)
				sent += chunk
			}
		case iscsi.OpSCSIResponse:
			if p.Byte3() != byte(scsi.StatusGood) {
				t.Fatalf("write status 0x%02x", p.Byte3())
			}
			done = true
		default:
			t.Fatalf("unexpected %v", p.Opcode())
		}
	}
	if r2ts != n/8192 {
		t.Fatalf("%d R2Ts; want %d", r2ts, n/8192)
	}
	got, pdus := in.readBlocks(100, n/testBlockSize)
	if !bytes.Equal(got, data) {
		t.Fatal("read back different data")
	}
	if len(pdus) != n/4096 {
		t.Fatalf("read took %d Data-In PDUs; want %d", len(pdus), n/4096)
	}
	for i, p := range pdus {
		if len(p.Data) > 4096 || p.DataSN() != uint32(i) {
			t.Fatalf("Data-In %d: %d bytes DataSN %d", i, len(p.Data), p.DataSN())
		}
	}
}

// TestDataSNError: a Data-Out with a wrong DataSN fails that command with
// CHECK CONDITION, and the session keeps working.
func TestDataSNError(t *testing.T) {
	ts := startServer(t, Options{}, nil)
	in := dial(t, ts.addr)
	in.mustLogin(loginKeys(testInitiator))
	cmd := in.command(rw10(opWrite10, 0, 1), iscsi.FlagWrite, testBlockSize, nil)
	cmd.SetFlags(cmd.Flags() &^ iscsi.FlagFinal) // unsolicited Data-Out follows
	in.send(cmd)
	d := &iscsi.PDU{}
	d.SetOpcode(iscsi.OpSCSIDataOut, false)
	d.SetFlags(iscsi.FlagFinal)
	d.SetITT(cmd.ITT())
	d.SetTTT(iscsi.ReservedITT)
	d.SetDataSN(27)
	d.Data = make([]byte, testBlockSize)
	in.send(d)
	p := in.recv()
	if p.Opcode() != iscsi.OpSCSIResponse || p.Byte3() != byte(scsi.StatusCheckCondition) {
		t.Fatalf("got %v status 0x%02x; want CHECK CONDITION", p.Opcode(), p.Byte3())
	}
	if len(p.Data) < senseLengthField+senseOffASC+1 || p.Data[senseLengthField+senseOffASC] != ascDataPhaseError {
		t.Fatalf("sense % x; want DATA PHASE ERROR", p.Data)
	}
	in.writeImmediate(0, make([]byte, testBlockSize))
}

// TestUnsolicitedThenSolicited: a command without the F bit is followed
// by unsolicited Data-Out that may end before FirstBurstLength; the target
// then solicits the rest from where it ended.
func TestUnsolicitedThenSolicited(t *testing.T) {
	ts := startServer(t, Options{}, nil)
	in := dial(t, ts.addr)
	in.mustLogin(loginKeys(testInitiator))
	const n = 16 << 10
	data := pattern(n, 5)
	cmd := in.command(rw10(opWrite10, 300, n/testBlockSize), iscsi.FlagWrite, n, data[:1024])
	cmd.SetFlags(cmd.Flags() &^ iscsi.FlagFinal)
	in.send(cmd)
	d := &iscsi.PDU{}
	d.SetOpcode(iscsi.OpSCSIDataOut, false)
	d.SetFlags(iscsi.FlagFinal) // ends the unsolicited sequence early
	d.SetITT(cmd.ITT())
	d.SetTTT(iscsi.ReservedITT)
	d.SetBufferOffset(1024)
	d.Data = data[1024:4096]
	in.send(d)
	r := in.recv()
	if r.Opcode() != iscsi.OpR2T || r.BufferOffset() != 4096 || r.ResidualCount() != n-4096 {
		t.Fatalf("got %v offset %d length %d; want R2T for [4096, %d)", r.Opcode(), r.BufferOffset(), r.ResidualCount(), n)
	}
	s := &iscsi.PDU{}
	s.SetOpcode(iscsi.OpSCSIDataOut, false)
	s.SetFlags(iscsi.FlagFinal)
	s.SetITT(cmd.ITT())
	s.SetTTT(r.TTT())
	s.SetBufferOffset(4096)
	s.Data = data[4096:]
	in.send(s)
	if r := in.recv(); r.Opcode() != iscsi.OpSCSIResponse || r.Byte3() != byte(scsi.StatusGood) {
		t.Fatalf("got %v status 0x%02x", r.Opcode(), r.Byte3())
	}
	if got, _ := in.readBlocks(300, n/testBlockSize); !bytes.Equal(got, data) {
		t.Fatal("read back different data")
	}
}

// TestResiduals: the residual follows the CDB length against the
// expected data transfer length.
func TestResiduals(t *testing.T) {
	ts := startServer(t, Options{}, nil)
	in := dial(t, ts.addr)
	in.mustLogin(loginKeys(testInitiator))
	tests := []struct {
		name     string
		blocks   uint16
		edtl     uint32
		flag     byte
		residual uint32
	}{
		{"read overflow", 2, testBlockSize, iscsi.FlagOverflow, testBlockSize},
		{"read underflow", 1, 3 * testBlockSize, iscsi.FlagUnderflow, 2 * testBlockSize},
		{"read exact", 1, testBlockSize, 0, 0},
	}
	for _, tt := range tests {
		in.send(in.command(rw10(opRead10, 0, tt.blocks), iscsi.FlagRead, tt.edtl, nil))
		var last *iscsi.PDU
		total := 0
		for last == nil {
			p := in.recv()
			total += len(p.Data)
			if p.Opcode() == iscsi.OpSCSIResponse || p.Flags()&iscsi.FlagStatus != 0 {
				last = p
			}
		}
		if got := last.Flags() & (iscsi.FlagOverflow | iscsi.FlagUnderflow); got != tt.flag || last.ResidualCount() != tt.residual {
			t.Errorf("%s: flags 0x%02x residual %d; want 0x%02x %d", tt.name, got, last.ResidualCount(), tt.flag, tt.residual)
		}
		if want := int(min(uint32(tt.blocks)*testBlockSize, tt.edtl)); total != want {
			t.Errorf("%s: %d bytes of data; want %d", tt.name, total, want)
		}
	}
}

// TestCmdSNWindow: a command beyond MaxCmdSN is ignored silently; one
// within the window but ahead of a gap waits for the gap.
func TestCmdSNWindow(t *testing.T) {
	ts := startServer(t, Options{QueueDepth: 4}, nil)
	in := dial(t, ts.addr)
	in.mustLogin(loginKeys(testInitiator))
	if in.maxCmdSN != in.cmdSN+3 {
		t.Fatalf("MaxCmdSN %d with CmdSN %d; want a window of 4", in.maxCmdSN, in.cmdSN)
	}
	tur := []byte{opTestUnitReady, 0, 0, 0, 0, 0}
	// Beyond the window: ignored.
	p := in.command(tur, 0, 0, nil)
	p.SetCmdSN(in.maxCmdSN + 1)
	in.cmdSN--
	in.send(p)
	// Ahead of a gap: held until the gap is filled.
	ahead := in.command(tur, 0, 0, nil)
	ahead.SetCmdSN(in.cmdSN)
	in.cmdSN--
	first := in.command(tur, 0, 0, nil) // takes the gap's CmdSN
	ahead.SetCmdSN(first.CmdSN() + 1)
	in.cmdSN += 2
	in.send(ahead)
	ping := in.nopPing()
	if r := in.recv(); r.Opcode() != iscsi.OpNOPIn || r.ITT() != ping {
		t.Fatalf("got %v itt %x before the ping answer; the out-of-window or held command ran", r.Opcode(), r.ITT())
	}
	in.send(first)
	got := map[uint32]bool{}
	for range 2 {
		r := in.recv()
		if r.Opcode() != iscsi.OpSCSIResponse {
			t.Fatalf("got %v", r.Opcode())
		}
		got[r.ITT()] = true
	}
	if !got[first.ITT()] || !got[ahead.ITT()] || got[p.ITT()] {
		t.Fatalf("answered %v; want %x and %x only", got, first.ITT(), ahead.ITT())
	}
}

// TestStatSNSequence: every response advances StatSN by one.
func TestStatSNSequence(t *testing.T) {
	ts := startServer(t, Options{}, nil)
	in := dial(t, ts.addr)
	in.mustLogin(loginKeys(testInitiator))
	want := in.expStatSN
	for i := range 5 {
		in.send(in.command([]byte{opTestUnitReady, 0, 0, 0, 0, 0}, 0, 0, nil))
		p := in.recv()
		if p.StatSN() != want {
			t.Fatalf("response %d: StatSN %d; want %d", i, p.StatSN(), want)
		}
		want++
	}
}

func TestNOPOutEcho(t *testing.T) {
	ts := startServer(t, Options{}, nil)
	in := dial(t, ts.addr)
	in.mustLogin(loginKeys(testInitiator))
	p := &iscsi.PDU{}
	p.SetOpcode(iscsi.OpNOPOut, true)
	p.SetFlags(iscsi.FlagFinal)
	p.SetITT(77)
	p.SetTTT(iscsi.ReservedITT)
	p.SetCmdSN(in.cmdSN)
	p.Data = []byte("ping data")
	in.send(p)
	r := in.recv()
	if r.Opcode() != iscsi.OpNOPIn || r.ITT() != 77 || r.TTT() != iscsi.ReservedITT || string(r.Data) != "ping data" {
		t.Fatalf("got %v itt %d ttt %x data %q", r.Opcode(), r.ITT(), r.TTT(), r.Data)
	}
}

// TestIdlePing: a silent initiator gets a NOP-In with a TTT; answering
// keeps the connection, silence past the timeout drops it.
func TestIdlePing(t *testing.T) {
	clk := newFakeClock()
	ts := startServer(t, Options{NopInterval: 10 * time.Second, NopTimeout: 10 * time.Second, Clock: clk}, nil)
	in := dial(t, ts.addr)
	in.mustLogin(loginKeys(testInitiator))
	waitFor(t, "the writer's ticker", func() bool { return clk.liveTickers() == 1 })
	clk.Advance(10 * time.Second)
	p := in.recv()
	if p.Opcode() != iscsi.OpNOPIn || p.TTT() == iscsi.ReservedITT || p.ITT() != iscsi.ReservedITT {
		t.Fatalf("got %v itt %x ttt %x; want a NOP-In ping", p.Opcode(), p.ITT(), p.TTT())
	}
	ans := &iscsi.PDU{}
	ans.SetOpcode(iscsi.OpNOPOut, true)
	ans.SetFlags(iscsi.FlagFinal)
	ans.SetITT(iscsi.ReservedITT)
	ans.SetTTT(p.TTT())
	ans.SetCmdSN(in.cmdSN)
	in.send(ans)
	// The answer reached the target once a later ping round trip is done.
	ping := in.nopPing()
	if r := in.recv(); r.ITT() != ping {
		t.Fatalf("got %v", r.Opcode())
	}
	clk.Advance(10 * time.Second) // idle again: a second ping
	if p := in.recv(); p.Opcode() != iscsi.OpNOPIn || p.TTT() == iscsi.ReservedITT {
		t.Fatalf("got %v; want a second ping", p.Opcode())
	}
	clk.Advance(10 * time.Second) // unanswered: dropped
	in.expectClosed()
}

// TestLogout closes the session after the response.
func TestLogout(t *testing.T) {
	ts := startServer(t, Options{}, nil)
	in := dial(t, ts.addr)
	in.mustLogin(loginKeys(testInitiator))
	p := &iscsi.PDU{}
	p.SetOpcode(iscsi.OpLogoutReq, true)
	p.SetFlags(iscsi.FlagFinal | logoutCloseSession)
	p.SetITT(5)
	p.SetCmdSN(in.cmdSN)
	in.send(p)
	r := in.recv()
	if r.Opcode() != iscsi.OpLogoutResp || r.Byte2() != logoutRespSuccess {
		t.Fatalf("got %v response %d", r.Opcode(), r.Byte2())
	}
	in.expectClosed()
	waitFor(t, "session removal", func() bool { return len(ts.Sessions()) == 0 })
}

// TestLogoutForRecovery: ERL 0 cannot remove a connection for recovery.
func TestLogoutForRecovery(t *testing.T) {
	ts := startServer(t, Options{}, nil)
	in := dial(t, ts.addr)
	in.mustLogin(loginKeys(testInitiator))
	p := &iscsi.PDU{}
	p.SetOpcode(iscsi.OpLogoutReq, true)
	p.SetFlags(iscsi.FlagFinal | logoutRemoveForRecov)
	p.SetITT(5)
	p.SetCmdSN(in.cmdSN)
	in.send(p)
	if r := in.recv(); r.Opcode() != iscsi.OpLogoutResp || r.Byte2() != logoutRespNoRecovery {
		t.Fatalf("got %v response %d", r.Opcode(), r.Byte2())
	}
}

// TestReinstatement: a second login with the same initiator name and ISID
// (TSIH 0) replaces the first session.
func TestReinstatement(t *testing.T) {
	ts := startServer(t, Options{}, nil)
	a := dial(t, ts.addr)
	a.mustLogin(loginKeys(testInitiator))
	b := dial(t, ts.addr)
	b.mustLogin(loginKeys(testInitiator))
	a.expectClosed()
	s := ts.Sessions()
	if len(s) != 1 || s[0].TSIH != b.tsih {
		t.Fatalf("sessions %+v; want only TSIH %d", s, b.tsih)
	}
	b.writeImmediate(0, make([]byte, testBlockSize))
	// Another ISID is another session.
	c := dial(t, ts.addr)
	c.isid++
	c.mustLogin(loginKeys(testInitiator))
	if n := len(ts.Sessions()); n != 2 {
		t.Fatalf("%d sessions; want 2", n)
	}
}

// TestAccess: an initiator outside the access list cannot log in, and
// SetAccess drops sessions it no longer allows.
func TestAccess(t *testing.T) {
	cfg := &TargetConfig{IQN: testIQN, Access: []AccessEntry{{Initiator: testInitiator}}}
	ts := startServer(t, Options{}, cfg)
	other := dial(t, ts.addr)
	if c, d := other.login(loginKeys("iqn.2026-11.io.vbs.test:stranger")); c != iscsi.StatusInitiatorError || d != iscsi.DetailAuthorizationFailure {
		t.Fatalf("stranger login: 0x%02x%02x; want 0x0202", c, d)
	}
	in := dial(t, ts.addr)
	in.mustLogin(loginKeys(testInitiator))
	if err := ts.SetAccess(testIQN, []AccessEntry{{Initiator: "iqn.2026-11.io.vbs.test:else"}}); err != nil {
		t.Fatal(err)
	}
	for {
		p := &iscsi.PDU{}
		if err := in.rd.Read(p); err != nil {
			break
		}
		if p.Opcode() != iscsi.OpAsyncMsg {
			t.Fatalf("got %v; want an Async Message", p.Opcode())
		}
	}
	waitFor(t, "session drop", func() bool { return len(ts.Sessions()) == 0 })
}

// TestTargetRemoved: RemoveTarget drops its sessions and new logins get
// "target not found".
func TestTargetRemoved(t *testing.T) {
	ts := startServer(t, Options{}, nil)
	in := dial(t, ts.addr)
	in.mustLogin(loginKeys(testInitiator))
	if err := ts.RemoveTarget(testIQN); err != nil {
		t.Fatal(err)
	}
	in.expectClosed()
	again := dial(t, ts.addr)
	if c, d := again.login(loginKeys(testInitiator)); c != iscsi.StatusInitiatorError || d != iscsi.DetailTargetNotFound {
		t.Fatalf("login: 0x%02x%02x; want 0x0203", c, d)
	}
}

// TestLUNReset answers Function complete; unknown LUNs get "LUN does not
// exist".
func TestTaskManagement(t *testing.T) {
	ts := startServer(t, Options{}, nil)
	in := dial(t, ts.addr)
	in.mustLogin(loginKeys(testInitiator))
	tmf := func(fn byte, lun uint64, rtt uint32) byte {
		p := &iscsi.PDU{}
		p.SetOpcode(iscsi.OpTaskMgmtReq, true)
		p.SetFlags(iscsi.FlagFinal | fn)
		p.SetLUN(iscsi.EncodeLUN(lun))
		in.itt++
		p.SetITT(in.itt)
		binary.BigEndian.PutUint32(p.BHS[20:], rtt)
		p.SetCmdSN(in.cmdSN)
		binary.BigEndian.PutUint32(p.BHS[32:], in.cmdSN-1)
		in.send(p)
		r := in.recv()
		if r.Opcode() != iscsi.OpTaskMgmtResp || r.ITT() != in.itt {
			t.Fatalf("got %v itt %x", r.Opcode(), r.ITT())
		}
		return r.Byte2()
	}
	if r := tmf(tmfLUReset, 0, iscsi.ReservedITT); r != tmfRespComplete {
		t.Errorf("LU reset: %d", r)
	}
	if r := tmf(tmfLUReset, 9, iscsi.ReservedITT); r != tmfRespNoLUN {
		t.Errorf("LU reset of LUN 9: %d; want %d", r, tmfRespNoLUN)
	}
	if r := tmf(tmfAbortTask, 0, 0x1234); r != tmfRespNoTask {
		t.Errorf("abort of unknown task: %d; want %d", r, tmfRespNoTask)
	}
	if r := tmf(tmfTaskReassign, 0, 0x1234); r != tmfRespReassignNotSupport {
		t.Errorf("task reassign: %d", r)
	}
	if r := tmf(tmfTargetWarmReset, 0, iscsi.ReservedITT); r != tmfRespComplete {
		t.Errorf("warm reset: %d", r)
	}
	if r := tmf(tmfTargetColdReset, 0, iscsi.ReservedITT); r != tmfRespComplete {
		t.Errorf("cold reset: %d", r)
	}
	in.expectClosed()
}

// TestAbortWaitingWrite aborts a write still waiting for its data: the
// TMF succeeds and the write never answers.
func TestAbortWaitingWrite(t *testing.T) {
	ts := startServer(t, Options{}, nil)
	in := dial(t, ts.addr)
	keys := loginKeys(testInitiator)
	keys[6].Value = "Yes" // InitialR2T
	in.mustLogin(keys)
	w := in.command(rw10(opWrite10, 0, 1), iscsi.FlagWrite, testBlockSize, nil)
	in.send(w)
	if r := in.recv(); r.Opcode() != iscsi.OpR2T {
		t.Fatalf("got %v; want R2T", r.Opcode())
	}
	p := &iscsi.PDU{}
	p.SetOpcode(iscsi.OpTaskMgmtReq, true)
	p.SetFlags(iscsi.FlagFinal | tmfAbortTask)
	p.SetITT(999)
	binary.BigEndian.PutUint32(p.BHS[20:], w.ITT())
	p.SetCmdSN(in.cmdSN)
	binary.BigEndian.PutUint32(p.BHS[32:], w.CmdSN())
	in.send(p)
	if r := in.recv(); r.Opcode() != iscsi.OpTaskMgmtResp || r.Byte2() != tmfRespComplete {
		t.Fatalf("got %v response %d", r.Opcode(), r.Byte2())
	}
	ping := in.nopPing()
	if r := in.recv(); r.Opcode() != iscsi.OpNOPIn || r.ITT() != ping {
		t.Fatalf("got %v itt %x; the aborted write answered", r.Opcode(), r.ITT())
	}
}

// TestSendTargets: discovery lists the target with this portal.
func TestSendTargets(t *testing.T) {
	ts := startServer(t, Options{}, nil)
	in := dial(t, ts.addr)
	in.mustLogin([]iscsi.KV{{Key: "InitiatorName", Value: testInitiator}, {Key: "SessionType", Value: "Discovery"}})
	p := &iscsi.PDU{}
	p.SetOpcode(iscsi.OpTextReq, true)
	p.SetFlags(iscsi.FlagFinal)
	p.SetITT(3)
	p.SetTTT(iscsi.ReservedITT)
	p.SetCmdSN(in.cmdSN)
	p.Data = iscsi.EncodeText([]iscsi.KV{{Key: "SendTargets", Value: "All"}})
	in.send(p)
	r := in.recv()
	kvs, err := iscsi.ParseText(r.Data)
	if err != nil || r.Opcode() != iscsi.OpTextResp {
		t.Fatalf("got %v %q: %v", r.Opcode(), r.Data, err)
	}
	want := []iscsi.KV{{Key: "TargetName", Value: testIQN}, {Key: "TargetAddress", Value: ts.addr + ",1"}}
	if len(kvs) != 2 || kvs[0] != want[0] || kvs[1] != want[1] {
		t.Fatalf("SendTargets = %v; want %v", kvs, want)
	}
	// SCSI commands have no place in a discovery session.
	in.send(in.command([]byte{opTestUnitReady, 0, 0, 0, 0, 0}, 0, 0, nil))
	if r := in.recv(); r.Opcode() != iscsi.OpReject || r.Byte2() != rejectProtocolError {
		t.Fatalf("got %v reason %d; want Reject (protocol error)", r.Opcode(), r.Byte2())
	}
}

// TestSessionsSurviveOthersDying: a connection dropped mid-command does
// not disturb another session.
func TestSessionsIsolated(t *testing.T) {
	ts := startServer(t, Options{}, nil)
	a := dial(t, ts.addr)
	a.mustLogin(loginKeys(testInitiator))
	b := dial(t, ts.addr)
	b.isid++
	b.mustLogin(loginKeys(testInitiator))
	// a sends half a PDU and vanishes.
	half := a.command(rw10(opWrite10, 0, 8), iscsi.FlagWrite, 4096, make([]byte, 4096))
	var buf bytes.Buffer
	w := iscsi.NewWriter(&buf, iscsi.Limits{})
	if err := w.Write(half); err != nil {
		t.Fatal(err)
	}
	a.nc.Write(buf.Bytes()[:100])
	a.nc.Close()
	data := pattern(4096, 1)
	b.writeImmediate(0, data)
	got, _ := b.readBlocks(0, 8)
	if !bytes.Equal(got, data) {
		t.Fatal("session b read wrong data")
	}
	waitFor(t, "session a to end", func() bool { return len(ts.Sessions()) == 1 })
}

// TestSendTargetsContinued: an answer longer than the initiator's
// MaxRecvDataSegmentLength arrives in pieces with the C bit.
func TestSendTargetsContinued(t *testing.T) {
	ts := startServer(t, Options{}, nil)
	for i := range 200 {
		st := scsi.NewTarget(scsi.TargetOptions{})
		iqn := fmt.Sprintf("iqn.2026-11.io.vbs.test:volume-with-a-long-name-%04d", i)
		if err := ts.AddTarget(TargetConfig{IQN: iqn, SCSI: st}); err != nil {
			t.Fatal(err)
		}
	}
	in := dial(t, ts.addr)
	in.mustLogin([]iscsi.KV{{Key: "InitiatorName", Value: testInitiator}, {Key: "SessionType", Value: "Discovery"},
		{Key: "MaxRecvDataSegmentLength", Value: "4096"}})
	req := &iscsi.PDU{}
	req.SetOpcode(iscsi.OpTextReq, true)
	req.SetFlags(iscsi.FlagFinal)
	req.SetITT(3)
	req.SetTTT(iscsi.ReservedITT)
	req.Data = iscsi.EncodeText([]iscsi.KV{{Key: "SendTargets", Value: "All"}})
	var all []byte
	pieces := 0
	for {
		req.SetCmdSN(in.cmdSN)
		in.send(req)
		r := in.recv()
		if r.Opcode() != iscsi.OpTextResp || r.ITT() != 3 || len(r.Data) > 4096 {
			t.Fatalf("got %v itt %d with %d bytes", r.Opcode(), r.ITT(), len(r.Data))
		}
		all = append(all, r.Data...)
		pieces++
		if !r.Continue() {
			if r.TTT() != iscsi.ReservedITT || !r.Final() {
				t.Fatalf("last piece: TTT %x flags %x", r.TTT(), r.Flags())
			}
			break
		}
		req.SetTTT(r.TTT())
		req.Data = nil
	}
	kvs, err := iscsi.ParseText(all)
	if err != nil {
		t.Fatal(err)
	}
	names := 0
	for _, kv := range kvs {
		if kv.Key == "TargetName" {
			names++
		}
	}
	if names != 201 || pieces < 2 {
		t.Fatalf("%d targets in %d pieces; want 201 in several", names, pieces)
	}
}
