package target

import (
	"bytes"
	"context"
	"testing"

	"github.com/vbs-storage/vbs/target/device"
	"github.com/vbs-storage/vbs/target/iscsi"
	"github.com/vbs-storage/vbs/target/scsi"
)

// TestInlineBurstOrder sends a burst of writes to a Nonblocking (mem) LUN,
// which the reader runs inline, followed in the same TCP write by a read,
// a NOP-Out and a Logout. Every command's response must come before the
// Logout Response (and, inline, before the NOP-In), with StatSN in order
// and no response lost when the session closes. The same burst on a
// device that runs on workers checks the ordinary path.
func TestInlineBurstOrder(t *testing.T) {
	for _, inline := range []bool{true, false} {
		name := "workers"
		if inline {
			name = "inline"
		}
		t.Run(name, func(t *testing.T) { testBurstOrder(t, inline) })
	}
}

// fastMem is a mem LUN without metadata that keeps saying it is
// Nonblocking (noMetadata alone hides that).
type fastMem struct{ noMetadata }

func (fastMem) Nonblocking() bool { return true }

func testBurstOrder(t *testing.T, inline bool) {
	mem, err := device.NewMem(testBlockSize, testBlocks)
	if err != nil {
		t.Fatal(err)
	}
	var dev scsi.Device = noMetadata{mem}
	if inline {
		dev = fastMem{noMetadata{mem}}
	}
	st := scsi.NewTarget(scsi.TargetOptions{Name: testIQN})
	if err := st.AddLU(0, dev, scsi.LUOptions{WriteCache: true}); err != nil {
		t.Fatal(err)
	}
	if got := st.RunsInline(&scsi.Command{CDB: rw10(opWrite10, 0, 1)}); got != inline {
		t.Fatalf("RunsInline = %v, want %v", got, inline)
	}
	ts := startServer(t, Options{}, &TargetConfig{IQN: testIQN, SCSI: st})
	in := dial(t, ts.addr)
	in.mustLogin(loginKeys(testInitiator))

	const writes = 40 // more than maxBatch responses wait in one burst
	var burst bytes.Buffer
	for i := range writes {
		data := pattern(testBlockSize, byte(i))
		burst.Write(in.rawBytes(in.command(rw10(opWrite10, uint32(i), 1), iscsi.FlagWrite, testBlockSize, data)))
	}
	burst.Write(in.rawBytes(in.command(rw10(opRead10, writes-1, 1), iscsi.FlagRead, testBlockSize, nil)))
	nop := &iscsi.PDU{}
	nop.SetOpcode(iscsi.OpNOPOut, true)
	nop.SetFlags(iscsi.FlagFinal)
	nop.SetITT(0x7000)
	nop.SetTTT(iscsi.ReservedITT)
	nop.SetCmdSN(in.cmdSN)
	burst.Write(in.rawBytes(nop))
	lo := &iscsi.PDU{}
	lo.SetOpcode(iscsi.OpLogoutReq, true)
	lo.SetFlags(iscsi.FlagFinal | logoutCloseSession)
	lo.SetITT(0x7001)
	lo.SetCmdSN(in.cmdSN)
	burst.Write(in.rawBytes(lo))
	if _, err := in.nc.Write(burst.Bytes()); err != nil {
		t.Fatal(err)
	}

	var statSN uint32
	first := true
	responses := 0
	for {
		p := in.recv()
		switch p.Opcode() {
		case iscsi.OpSCSIResponse:
			if p.Byte3() != byte(scsi.StatusGood) {
				t.Fatalf("write ITT %d: status 0x%02x", p.ITT(), p.Byte3())
			}
		case iscsi.OpSCSIDataIn:
			if want := pattern(testBlockSize, writes-1); !bytes.Equal(p.Data, want) {
				t.Fatal("read after the inline writes returned other data")
			}
			if p.Flags()&iscsi.FlagStatus == 0 {
				continue
			}
		case iscsi.OpNOPIn:
			// Commands on workers run concurrently with the ping; inline
			// ones ran before the reader got to it.
			if inline && responses != writes+1 {
				t.Fatalf("NOP-In after %d of %d command responses", responses, writes+1)
			}
		case iscsi.OpLogoutResp:
			if responses != writes+1 {
				t.Fatalf("Logout Response after %d of %d command responses", responses, writes+1)
			}
			in.expectClosed()
			return
		default:
			t.Fatalf("unexpected %v", p.Opcode())
		}
		if !first && p.StatSN() != statSN+1 {
			t.Fatalf("%v StatSN %d after %d", p.Opcode(), p.StatSN(), statSN)
		}
		first = false
		statSN = p.StatSN()
		if p.Opcode() != iscsi.OpNOPIn {
			responses++
		}
	}
}

// gateDevice is a mem device that is not Nonblocking and whose reads wait
// until the gate opens: a stand-in for a disk that is slow to answer.
type gateDevice struct {
	*device.Mem
	entered chan struct{}
	gate    chan struct{}
}

func (g *gateDevice) Nonblocking() bool { return false }

func (g *gateDevice) ReadAt(ctx context.Context, p []byte, lba uint64) error {
	g.entered <- struct{}{}
	<-g.gate
	return g.Mem.ReadAt(ctx, p, lba)
}

// TestBlockingDeviceKeepsReaderFree checks that a device that may block
// runs on a worker: while its read waits, the connection still answers a
// NOP-Out, and the read completes once the device answers.
func TestBlockingDeviceKeepsReaderFree(t *testing.T) {
	mem, err := device.NewMem(testBlockSize, testBlocks)
	if err != nil {
		t.Fatal(err)
	}
	g := &gateDevice{Mem: mem, entered: make(chan struct{}, 1), gate: make(chan struct{})}
	st := scsi.NewTarget(scsi.TargetOptions{Name: testIQN})
	if err := st.AddLU(0, noMetadata{g}, scsi.LUOptions{WriteCache: true}); err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, Options{}, &TargetConfig{IQN: testIQN, SCSI: st})
	in := dial(t, ts.addr)
	in.mustLogin(loginKeys(testInitiator))
	if st.RunsInline(&scsi.Command{LUN: 0, CDB: rw10(opRead10, 0, 1)}) {
		t.Fatal("a device that is not Nonblocking runs inline")
	}

	in.send(in.command(rw10(opRead10, 0, 1), iscsi.FlagRead, testBlockSize, nil))
	<-g.entered
	itt := in.nopPing()
	if p := in.recv(); p.Opcode() != iscsi.OpNOPIn || p.ITT() != itt {
		t.Fatalf("got %v ITT %d while the read blocked, want the NOP-In", p.Opcode(), p.ITT())
	}
	close(g.gate)
	if p := in.recv(); p.Opcode() != iscsi.OpSCSIDataIn || p.Flags()&iscsi.FlagStatus == 0 || p.Byte3() != byte(scsi.StatusGood) {
		t.Fatalf("read: got %v flags 0x%02x status 0x%02x", p.Opcode(), p.Flags(), p.Byte3())
	}
}

// TestRunsInline pins which commands the SCSI layer lets the transport run
// on its receive path.
func TestRunsInline(t *testing.T) {
	mem, err := device.NewMem(testBlockSize, testBlocks)
	if err != nil {
		t.Fatal(err)
	}
	st := scsi.NewTarget(scsi.TargetOptions{Name: testIQN})
	if err := st.AddLU(0, noMetadata{mem}, scsi.LUOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := st.AddLU(1, mem, scsi.LUOptions{}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		lun  uint64
		cdb  []byte
		want bool
	}{
		{"read10 on mem", 1, rw10(opRead10, 0, 1), true},
		{"write10 on mem", 1, rw10(opWrite10, 0, 1), true},
		{"test unit ready", 1, []byte{opTestUnitReady, 0, 0, 0, 0, 0}, false},
		{"read10, device hidden behind a wrapper", 0, rw10(opRead10, 0, 1), false},
		{"no such LUN", 7, rw10(opRead10, 0, 1), false},
		{"empty CDB", 1, nil, false},
	}
	for _, tc := range tests {
		if got := st.RunsInline(&scsi.Command{LUN: tc.lun, CDB: tc.cdb}); got != tc.want {
			t.Errorf("%s: RunsInline = %v, want %v", tc.name, got, tc.want)
		}
	}
}
