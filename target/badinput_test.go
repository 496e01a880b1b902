package target

import (
	"bytes"
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/vbs-storage/vbs/target/iscsi"
	"github.com/vbs-storage/vbs/target/scsi"
)

// withKey returns keys with key set to value.
func withKey(keys []iscsi.KV, key, value string) []iscsi.KV {
	out := append([]iscsi.KV(nil), keys...)
	for i := range out {
		if out[i].Key == key {
			out[i].Value = value
			return out
		}
	}
	return append(out, iscsi.KV{Key: key, Value: value})
}

// loginDigests logs in with header and data digests on.
func loginDigests(t *testing.T, addr string) *initiator {
	in := dial(t, addr)
	keys := withKey(withKey(loginKeys(testInitiator), "HeaderDigest", "CRC32C"), "DataDigest", "CRC32C")
	if c, d := in.login(keys); c != 0 {
		t.Fatalf("login: 0x%02x%02x", c, d)
	}
	lim := iscsi.Limits{MaxRecvDataSegmentLength: 262144, HeaderDigest: true, DataDigest: true}
	in.rd.Limits, in.wr.Limits = lim, lim
	in.clearUA()
	return in
}

// rawBytes encodes p with the initiator's digests.
func (in *initiator) rawBytes(p *iscsi.PDU) []byte {
	var buf bytes.Buffer
	w := iscsi.NewWriter(&buf, in.wr.Limits)
	if err := w.Write(p); err != nil {
		in.t.Fatal(err)
	}
	return buf.Bytes()
}

func TestBadInput(t *testing.T) {
	tur := []byte{opTestUnitReady, 0, 0, 0, 0, 0}
	tests := []struct {
		name string
		// digests logs in with header and data digests.
		digests bool
		// send writes the bad input.
		send func(in *initiator)
		// reject is the Reject reason expected (the session survives);
		// 0 means the connection must be dropped.
		reject byte
	}{
		{"unknown opcode", false, func(in *initiator) {
			p := &iscsi.PDU{}
			p.SetOpcode(iscsi.Opcode(0x1a), true)
			p.SetFlags(iscsi.FlagFinal)
			in.send(p)
		}, rejectCommandNotSupported},
		{"SNACK at ERL 0", false, func(in *initiator) {
			p := &iscsi.PDU{}
			p.SetOpcode(iscsi.OpSNACKReq, false)
			p.SetFlags(iscsi.FlagFinal)
			in.send(p)
		}, rejectCommandNotSupported},
		{"reserved ITT on a command", false, func(in *initiator) {
			p := in.command(tur, 0, 0, nil)
			p.SetITT(iscsi.ReservedITT)
			in.send(p)
		}, rejectInvalidPDUField},
		{"bad AHS", false, func(in *initiator) {
			p := in.command(tur, 0, 0, nil)
			p.AHS = []byte{0, 200, ahsTypeExtCDB, 0}
			in.send(p)
		}, rejectInvalidPDUField},
		{"malformed text", false, func(in *initiator) {
			p := &iscsi.PDU{}
			p.SetOpcode(iscsi.OpTextReq, true)
			p.SetFlags(iscsi.FlagFinal)
			p.SetITT(9)
			p.SetTTT(iscsi.ReservedITT)
			p.SetCmdSN(in.cmdSN)
			p.Data = []byte("no equals sign\x00")
			in.send(p)
		}, rejectInvalidPDUField},
		{"data digest", true, func(in *initiator) {
			b := in.rawBytes(in.command(rw10(opWrite10, 0, 1), iscsi.FlagWrite, testBlockSize, make([]byte, testBlockSize)))
			b[len(b)-1] ^= 0xff
			in.nc.Write(b)
		}, rejectDataDigest},
		{"header digest", true, func(in *initiator) {
			b := in.rawBytes(in.command(tur, 0, 0, nil))
			b[iscsi.BHSLen] ^= 0xff
			in.nc.Write(b)
		}, 0},
		{"data segment beyond MaxRecvDataSegmentLength", false, func(in *initiator) {
			p := in.command(rw10(opWrite10, 0, 2048), iscsi.FlagWrite, 1<<20, make([]byte, 1<<20))
			in.nc.Write(in.rawBytes(p)[:iscsi.BHSLen])
		}, 0},
		{"login request in full feature phase", false, func(in *initiator) {
			p := &iscsi.PDU{}
			p.SetOpcode(iscsi.OpLoginReq, true)
			in.send(p)
		}, 0},
		{"data-out beyond the expected length", false, func(in *initiator) {
			cmd := in.command(rw10(opWrite10, 0, 1), iscsi.FlagWrite, testBlockSize, nil)
			in.send(cmd)
			d := &iscsi.PDU{}
			d.SetOpcode(iscsi.OpSCSIDataOut, false)
			d.SetFlags(iscsi.FlagFinal)
			d.SetITT(cmd.ITT())
			d.SetTTT(iscsi.ReservedITT)
			d.SetBufferOffset(testBlockSize)
			d.Data = make([]byte, testBlockSize)
			in.send(d)
		}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, Options{}, nil)
			// A bystander session that must not notice anything.
			by := dial(t, ts.addr)
			by.isid = 0x80_0000_0099
			by.mustLogin(loginKeys(testInitiator))

			var in *initiator
			if tt.digests {
				in = loginDigests(t, ts.addr)
			} else {
				in = dial(t, ts.addr)
				in.mustLogin(loginKeys(testInitiator))
			}
			tt.send(in)
			if tt.reject == 0 {
				in.expectClosed()
			} else {
				p := in.recv()
				if p.Opcode() != iscsi.OpReject || p.Byte2() != tt.reject {
					t.Fatalf("got %v reason 0x%02x; want Reject 0x%02x", p.Opcode(), p.Byte2(), tt.reject)
				}
				if len(p.Data) != iscsi.BHSLen {
					t.Fatalf("Reject carries %d bytes; want the rejected header", len(p.Data))
				}
				// The session still works.
				in.send(in.command(tur, 0, 0, nil))
				if r := in.recv(); r.Opcode() != iscsi.OpSCSIResponse || r.Byte3() != byte(scsi.StatusGood) {
					t.Fatalf("after the Reject: %v status 0x%02x", r.Opcode(), r.Byte3())
				}
			}
			data := pattern(testBlockSize, 4)
			by.writeImmediate(1, data)
			if got, _ := by.readBlocks(1, 1); !bytes.Equal(got, data) {
				t.Fatal("bystander session read wrong data")
			}
		})
	}
}

// TestCommandBeforeLogin: anything but a Login Request first fails the
// login (0x020b) and closes the connection.
func TestCommandBeforeLogin(t *testing.T) {
	ts := startServer(t, Options{}, nil)
	in := dial(t, ts.addr)
	in.send(in.command([]byte{opTestUnitReady, 0, 0, 0, 0, 0}, 0, 0, nil))
	p := in.recv()
	if p.Opcode() != iscsi.OpLoginResp || p.BHS[offLoginStatusClass] != iscsi.StatusInitiatorError ||
		p.BHS[offLoginStatusDetail] != iscsi.DetailInvalidDuringLogin {
		t.Fatalf("got %v status 0x%02x%02x; want Login Response 0x020b", p.Opcode(), p.BHS[offLoginStatusClass], p.BHS[offLoginStatusDetail])
	}
	in.expectClosed()
}

// TestConnectionLimits: connections beyond MaxConnections are closed at
// once, and a login that stalls is cut off by LoginTimeout.
func TestConnectionLimits(t *testing.T) {
	ts := startServer(t, Options{MaxConnections: 2, LoginTimeout: 200 * time.Millisecond}, nil)
	a := dial(t, ts.addr)
	a.mustLogin(loginKeys(testInitiator))
	b := dial(t, ts.addr) // never logs in
	waitFor(t, "two connections", func() bool {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		return len(ts.conns) == 2
	})
	c := dial(t, ts.addr)
	c.expectClosed()
	b.expectClosed() // login timeout
	// a was not disturbed, and the freed slot takes a new connection.
	a.writeImmediate(0, make([]byte, testBlockSize))
	waitFor(t, "the timed-out connection to go", func() bool {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		return len(ts.conns) == 1
	})
	d := dial(t, ts.addr)
	d.isid++
	d.mustLogin(loginKeys(testInitiator))
}

// TestOversizedWrite: a write announcing more data than the command buffer
// bound is executed without data (the SCSI layer refuses it) and its
// unsolicited data is ignored; the session continues.
func TestOversizedWrite(t *testing.T) {
	ts := startServer(t, Options{MaxCommandBuffer: 64 << 10}, nil)
	in := dial(t, ts.addr)
	in.mustLogin(loginKeys(testInitiator))
	const n = 128 << 10
	cmd := in.command(rw10(opWrite10, 0, n/testBlockSize), iscsi.FlagWrite, n, make([]byte, 8192))
	in.send(cmd)
	d := &iscsi.PDU{}
	d.SetOpcode(iscsi.OpSCSIDataOut, false)
	d.SetITT(cmd.ITT())
	d.SetTTT(iscsi.ReservedITT)
	d.SetBufferOffset(8192)
	d.Data = make([]byte, 8192)
	in.send(d)
	p := in.recv()
	if p.Opcode() != iscsi.OpSCSIResponse || p.Byte3() != byte(scsi.StatusCheckCondition) || p.ITT() != cmd.ITT() {
		t.Fatalf("got %v status 0x%02x; want CHECK CONDITION", p.Opcode(), p.Byte3())
	}
	in.writeImmediate(0, make([]byte, testBlockSize))
}

// TestDuplicateITT: a second command reusing the tag of one in progress is
// rejected.
func TestDuplicateITT(t *testing.T) {
	ts := startServer(t, Options{}, nil)
	in := dial(t, ts.addr)
	in.mustLogin(withKey(loginKeys(testInitiator), "InitialR2T", "Yes"))
	w := in.command(rw10(opWrite10, 0, 1), iscsi.FlagWrite, testBlockSize, nil)
	in.send(w)
	if r := in.recv(); r.Opcode() != iscsi.OpR2T {
		t.Fatalf("got %v", r.Opcode())
	}
	dup := in.command([]byte{opTestUnitReady, 0, 0, 0, 0, 0}, 0, 0, nil)
	dup.SetITT(w.ITT())
	in.send(dup)
	if r := in.recv(); r.Opcode() != iscsi.OpReject || r.Byte2() != rejectTaskInProgress {
		t.Fatalf("got %v reason %d; want Reject (task in progress)", r.Opcode(), r.Byte2())
	}
}

// TestGarbage: random bytes instead of a login end the connection without
// disturbing the server.
func TestGarbage(t *testing.T) {
	ts := startServer(t, Options{}, nil)
	nc, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	junk := make([]byte, 4096)
	for i := range junk {
		junk[i] = byte(i*131 + 7)
	}
	binary.BigEndian.PutUint32(junk[4:], 0x00ffffff) // huge data segment
	nc.Write(junk)
	_ = nc.SetReadDeadline(time.Now().Add(ioTimeout))
	buf := make([]byte, 1024)
	for {
		if _, err := nc.Read(buf); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("connection not closed")
			}
			break
		}
	}
	in := dial(t, ts.addr)
	in.mustLogin(loginKeys(testInitiator))
}

// TestConnectionBufferBudget: writes beyond the connection's data-out
// budget get TASK SET FULL until earlier ones finish.
func TestConnectionBufferBudget(t *testing.T) {
	ts := startServer(t, Options{MaxConnectionBuffer: 64 << 10}, nil)
	in := dial(t, ts.addr)
	in.mustLogin(withKey(withKey(loginKeys(testInitiator), "InitialR2T", "Yes"), "ImmediateData", "No"))
	// Two 32 KiB writes waiting for data fill the budget.
	for i := range 2 {
		in.send(in.command(rw10(opWrite10, uint32(i*64), 64), iscsi.FlagWrite, 32<<10, nil))
		if r := in.recv(); r.Opcode() != iscsi.OpR2T {
			t.Fatalf("got %v; want R2T", r.Opcode())
		}
	}
	third := in.command(rw10(opWrite10, 200, 1), iscsi.FlagWrite, testBlockSize, nil)
	in.send(third)
	r := in.recv()
	if r.Opcode() != iscsi.OpSCSIResponse || r.ITT() != third.ITT() || r.Byte3() != byte(scsi.StatusTaskSetFull) {
		t.Fatalf("got %v itt %x status 0x%02x; want TASK SET FULL", r.Opcode(), r.ITT(), r.Byte3())
	}
}
