package target

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/vbs-storage/vbs/target/device"
	"github.com/vbs-storage/vbs/target/iscsi"
	"github.com/vbs-storage/vbs/target/scsi"
)

const (
	testIQN       = "iqn.2026-11.io.vbs.test:disk"
	testInitiator = "iqn.2026-11.io.vbs.test:host"
	testBlockSize = 512
	testBlocks    = 8192
	// ioTimeout bounds every wait of a test for the target.
	ioTimeout = 10 * time.Second
)

// SCSI opcodes the tests send.
const (
	opTestUnitReady = 0x00
	opRead10        = 0x28
	opWrite10       = 0x2a
)

// fakeClock is a Clock whose tickers fire only when the test advances it.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	tickers []*fakeTicker
}

type fakeTicker struct {
	c       chan time.Time
	period  time.Duration
	next    time.Time
	stopped bool
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_800_000_000, 0)} }

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) NewTicker(d time.Duration) (<-chan time.Time, func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &fakeTicker{c: make(chan time.Time, 1), period: d, next: f.now.Add(d)}
	f.tickers = append(f.tickers, t)
	return t.c, func() {
		f.mu.Lock()
		t.stopped = true
		f.mu.Unlock()
	}
}

// Advance moves time forward and fires every ticker that came due (at
// most one pending tick each, like time.Ticker).
func (f *fakeClock) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
	for _, t := range f.tickers {
		if t.stopped {
			continue
		}
		due := false
		for !t.next.After(f.now) {
			t.next = t.next.Add(t.period)
			due = true
		}
		if due {
			// Replace a pending tick, so the reader always sees one
			// carrying the latest time.
			select {
			case <-t.c:
			default:
			}
			t.c <- f.now
		}
	}
}

// tickers returns how many live tickers exist (one per connection in full
// feature phase).
func (f *fakeClock) liveTickers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, t := range f.tickers {
		if !t.stopped {
			n++
		}
	}
	return n
}

// testServer is a Server on a loopback listener with one mem LUN.
type testServer struct {
	*Server
	addr string
	dev  *device.Mem
	done chan error
}

func startServer(t testing.TB, opts Options, cfg *TargetConfig) *testServer {
	t.Helper()
	dev, err := device.NewMem(testBlockSize, testBlocks)
	if err != nil {
		t.Fatal(err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.NopInterval == 0 {
		opts.NopInterval = -1
	}
	s := NewServer(opts)
	c := TargetConfig{IQN: testIQN}
	if cfg != nil {
		c = *cfg
	}
	if c.SCSI == nil && c.LUNs == nil {
		st := scsi.NewTarget(scsi.TargetOptions{Name: c.IQN})
		if err := st.AddLU(0, noMetadata{dev}, scsi.LUOptions{WriteCache: true}); err != nil {
			t.Fatal(err)
		}
		c.SCSI = st
	}
	if err := s.AddTarget(c); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{Server: s, addr: ln.Addr().String(), dev: dev, done: make(chan error, 1)}
	go func() { ts.done <- s.Serve(context.Background(), ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-ts.done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ts
}

// noMetadata hides a device's MetadataStore so that the SCSI layer keeps
// persistent reservations in memory (the tests do not exercise APTPL).
type noMetadata struct{ scsi.Device }

// initiator is a raw iSCSI initiator for tests: it builds PDUs itself so
// that tests can send anything, valid or not.
type initiator struct {
	t         testing.TB
	nc        net.Conn
	rd        *iscsi.Reader
	wr        *iscsi.Writer
	isid      uint64
	cmdSN     uint32
	expStatSN uint32
	itt       uint32
	maxCmdSN  uint32
	tsih      uint16
}

// loginKeys are the operational keys a test initiator proposes by default.
func loginKeys(name string) []iscsi.KV {
	return []iscsi.KV{
		{Key: "InitiatorName", Value: name},
		{Key: "SessionType", Value: "Normal"},
		{Key: "TargetName", Value: testIQN},
		{Key: "HeaderDigest", Value: "None"},
		{Key: "DataDigest", Value: "None"},
		{Key: "ImmediateData", Value: "Yes"},
		{Key: "InitialR2T", Value: "No"},
		{Key: "MaxRecvDataSegmentLength", Value: "262144"},
		{Key: "MaxBurstLength", Value: "1048576"},
		{Key: "FirstBurstLength", Value: "262144"},
		{Key: "MaxOutstandingR2T", Value: "1"},
		{Key: "ErrorRecoveryLevel", Value: "0"},
	}
}

func dial(t testing.TB, addr string) *initiator {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(ioTimeout))
	return &initiator{
		t:    t,
		nc:   nc,
		rd:   iscsi.NewReader(nc, iscsi.Limits{MaxRecvDataSegmentLength: 1 << 20}),
		wr:   iscsi.NewWriter(nc, iscsi.Limits{}),
		isid: 0x80_0000_0001,
		itt:  1,
	}
}

// login logs in with keys, going straight from the operational stage to
// full feature phase. It returns the Status-Class and Status-Detail of the
// last response.
func (in *initiator) login(keys []iscsi.KV) (class, detail uint8) {
	in.t.Helper()
	data := iscsi.EncodeText(keys)
	for range 8 {
		var req iscsi.PDU
		req.SetOpcode(iscsi.OpLoginReq, true)
		req.SetLoginStages(true, false, iscsi.StageOperational, iscsi.StageFullFeature)
		req.SetISID(in.isid)
		req.SetTSIH(in.tsih)
		req.SetITT(in.itt)
		req.SetCmdSN(in.cmdSN)
		req.SetExpStatSN(in.expStatSN)
		req.Data = data
		if err := in.wr.Write(&req); err != nil {
			in.t.Fatalf("login write: %v", err)
		}
		var resp iscsi.PDU
		if err := in.rd.Read(&resp); err != nil {
			in.t.Fatalf("login read: %v", err)
		}
		in.expStatSN = resp.StatSN() + 1
		in.maxCmdSN = resp.MaxCmdSN()
		class, detail = resp.BHS[36], resp.BHS[37]
		if class != 0 {
			return class, detail
		}
		if resp.Transit() && resp.NSG() == iscsi.StageFullFeature {
			in.tsih = resp.TSIH()
			in.rd.Limits.MaxRecvDataSegmentLength = 262144
			return 0, 0
		}
		data = nil
	}
	in.t.Fatal("login did not reach full feature phase")
	return 0, 0
}

// mustLogin logs in and, for a normal session, consumes the unit
// attention a new I_T nexus starts with.
func (in *initiator) mustLogin(keys []iscsi.KV) {
	in.t.Helper()
	if c, d := in.login(keys); c != 0 {
		in.t.Fatalf("login failed: status 0x%02x%02x", c, d)
	}
	for _, kv := range keys {
		if kv.Key == "SessionType" && kv.Value != "Normal" {
			return
		}
	}
	in.clearUA()
}

// clearUA sends TEST UNIT READY until it succeeds.
func (in *initiator) clearUA() {
	in.t.Helper()
	for range 4 {
		in.send(in.command([]byte{opTestUnitReady, 0, 0, 0, 0, 0}, 0, 0, nil))
		if p := in.recv(); p.Opcode() == iscsi.OpSCSIResponse && p.Byte3() == byte(scsi.StatusGood) {
			return
		}
	}
	in.t.Fatal("TEST UNIT READY never succeeded")
}

// command builds a SCSI Command PDU for cdb and consumes a CmdSN.
func (in *initiator) command(cdb []byte, flags byte, edtl uint32, imm []byte) *iscsi.PDU {
	p := &iscsi.PDU{}
	p.SetOpcode(iscsi.OpSCSICommand, false)
	p.SetFlags(iscsi.FlagFinal | flags | 1) // simple task attribute
	p.SetLUN(iscsi.EncodeLUN(0))
	in.itt++
	p.SetITT(in.itt)
	p.SetExpectedDataTransferLength(edtl)
	p.SetCmdSN(in.cmdSN)
	in.cmdSN++
	p.SetExpStatSN(in.expStatSN)
	copy(p.CDB(), cdb)
	p.Data = imm
	return p
}

func (in *initiator) send(p *iscsi.PDU) {
	in.t.Helper()
	if err := in.wr.Write(p); err != nil {
		in.t.Fatalf("write %v: %v", p.Opcode(), err)
	}
}

// recv reads the next PDU, answering target NOP-In pings never.
func (in *initiator) recv() *iscsi.PDU {
	in.t.Helper()
	p := &iscsi.PDU{}
	if err := in.rd.Read(p); err != nil {
		in.t.Fatalf("read: %v", err)
	}
	if p.Opcode() == iscsi.OpSCSIResponse || (p.Opcode() == iscsi.OpSCSIDataIn && p.Flags()&iscsi.FlagStatus != 0) ||
		p.Opcode() == iscsi.OpNOPIn && p.ITT() != iscsi.ReservedITT || p.Opcode() == iscsi.OpTaskMgmtResp ||
		p.Opcode() == iscsi.OpLogoutResp || p.Opcode() == iscsi.OpTextResp || p.Opcode() == iscsi.OpReject {
		in.expStatSN = p.StatSN() + 1
	}
	in.maxCmdSN = p.MaxCmdSN()
	return p
}

// expectClosed waits for the target to close the connection.
func (in *initiator) expectClosed() {
	in.t.Helper()
	var p iscsi.PDU
	for {
		err := in.rd.Read(&p)
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			in.t.Fatal("target did not close the connection")
		}
		return
	}
}

func rw10(op byte, lba uint32, blocks uint16) []byte {
	cdb := make([]byte, 10)
	cdb[0] = op
	binary.BigEndian.PutUint32(cdb[2:], lba)
	binary.BigEndian.PutUint16(cdb[7:], blocks)
	return cdb
}

// nopPing sends an immediate NOP-Out that asks for an answer and returns
// its ITT.
func (in *initiator) nopPing() uint32 {
	in.t.Helper()
	p := &iscsi.PDU{}
	p.SetOpcode(iscsi.OpNOPOut, true)
	p.SetFlags(iscsi.FlagFinal)
	in.itt++
	p.SetITT(in.itt)
	p.SetTTT(iscsi.ReservedITT)
	p.SetCmdSN(in.cmdSN)
	p.SetExpStatSN(in.expStatSN)
	in.send(p)
	return in.itt
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(ioTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
