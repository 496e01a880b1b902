package target

import (
	"io"
	"log/slog"
	"net"
	"testing"

	"github.com/vbs-storage/vbs/target/device"
	"github.com/vbs-storage/vbs/target/iscsi"
	"github.com/vbs-storage/vbs/target/scsi"
)

// benchQueueDepth is how many commands the benchmark keeps in flight.
const benchQueueDepth = 16

// benchSession logs in over an in-memory connection pair (net.Pipe), so
// that the benchmark measures the target and not the kernel.
func benchSession(b *testing.B) *initiator {
	b.Helper()
	dev, err := device.NewMem(testBlockSize, testBlocks)
	if err != nil {
		b.Fatal(err)
	}
	s := NewServer(Options{NopInterval: -1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	st := scsi.NewTarget(scsi.TargetOptions{Name: testIQN})
	if err := st.AddLU(0, noMetadata{dev}, scsi.LUOptions{WriteCache: true}); err != nil {
		b.Fatal(err)
	}
	if err := s.AddTarget(TargetConfig{IQN: testIQN, SCSI: st}); err != nil {
		b.Fatal(err)
	}
	client, server := net.Pipe()
	s.accept(server)
	b.Cleanup(func() {
		client.Close()
		s.Close()
	})
	in := &initiator{
		t:    b,
		nc:   client,
		rd:   iscsi.NewReader(client, iscsi.Limits{MaxRecvDataSegmentLength: 1 << 20}),
		wr:   iscsi.NewWriter(client, iscsi.Limits{}),
		isid: 0x80_0000_0001,
		itt:  1,
	}
	in.mustLogin(loginKeys(testInitiator))
	return in
}

// runBench keeps benchQueueDepth commands in flight: it sends one, and
// for every response that completes a command sends the next. cmds are
// prebuilt PDUs (one per slot) whose CmdSN and ITT are renumbered in
// place, so the initiator side allocates nothing either.
func runBench(b *testing.B, in *initiator, cmds []*iscsi.PDU) {
	b.Helper()
	in.cmdSN -= uint32(len(cmds)) // building cmds numbered them; renumber
	var resp iscsi.PDU
	send := func(slot int) {
		p := cmds[slot]
		p.SetCmdSN(in.cmdSN)
		in.cmdSN++
		p.SetExpStatSN(in.expStatSN)
		p.SetITT(uint32(slot))
		if err := in.wr.Write(p); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(4096)
	b.ReportAllocs()
	b.ResetTimer()
	sent, done := 0, 0
	for ; sent < min(benchQueueDepth, b.N); sent++ {
		send(sent % benchQueueDepth)
	}
	for done < b.N {
		if err := in.rd.Read(&resp); err != nil {
			b.Fatal(err)
		}
		switch {
		case resp.Opcode() == iscsi.OpSCSIResponse,
			resp.Opcode() == iscsi.OpSCSIDataIn && resp.Flags()&iscsi.FlagStatus != 0:
			if resp.Byte3() != byte(scsi.StatusGood) {
				b.Fatalf("status 0x%02x", resp.Byte3())
			}
			in.expStatSN = resp.StatSN() + 1
			done++
			if sent < b.N {
				send(int(resp.ITT()))
				sent++
			}
		}
	}
}

// BenchmarkRead4K: 4 KiB READ(10)s at queue depth 16; allocs/op must be 0.
func BenchmarkRead4K(b *testing.B) {
	in := benchSession(b)
	cmds := make([]*iscsi.PDU, benchQueueDepth)
	for i := range cmds {
		cmds[i] = in.command(rw10(opRead10, uint32(i*8), 8), iscsi.FlagRead, 4096, nil)
	}
	runBench(b, in, cmds)
}

// BenchmarkWrite4K: 4 KiB WRITE(10)s with immediate data at queue depth
// 16; allocs/op must be 0.
func BenchmarkWrite4K(b *testing.B) {
	in := benchSession(b)
	cmds := make([]*iscsi.PDU, benchQueueDepth)
	for i := range cmds {
		cmds[i] = in.command(rw10(opWrite10, uint32(i*8), 8), iscsi.FlagWrite, 4096, pattern(4096, byte(i)))
	}
	runBench(b, in, cmds)
}
