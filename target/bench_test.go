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
// that the benchmark measures the target and not the kernel. The LUN runs
// its commands on workers.
//
// With inline set the LUN is Nonblocking, so the reader runs commands
// itself; that needs a buffered connection (net.Pipe would deadlock the
// one-goroutine client against the reader's writes), so it uses loopback
// TCP.
func benchSession(b *testing.B, inline bool) *initiator {
	b.Helper()
	dev, err := device.NewMem(testBlockSize, testBlocks)
	if err != nil {
		b.Fatal(err)
	}
	s := NewServer(Options{NopInterval: -1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	st := scsi.NewTarget(scsi.TargetOptions{Name: testIQN})
	var lu scsi.Device = noMetadata{dev}
	if inline {
		lu = fastMem{noMetadata{dev}}
	}
	if err := st.AddLU(0, lu, scsi.LUOptions{WriteCache: true}); err != nil {
		b.Fatal(err)
	}
	if err := s.AddTarget(TargetConfig{IQN: testIQN, SCSI: st}); err != nil {
		b.Fatal(err)
	}
	client, server := net.Pipe()
	if inline {
		client, server = tcpPair(b)
	}
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

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(b *testing.B) (client, server net.Conn) {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	server, ok := <-accepted
	if !ok {
		b.Fatal("accept failed")
	}
	return client, server
}

// BenchmarkRead4K: 4 KiB READ(10)s at queue depth 16; allocs/op must be 0.
func BenchmarkRead4K(b *testing.B) { benchRead4K(b, false) }

// BenchmarkRead4KInline is BenchmarkRead4K on a Nonblocking LUN over
// loopback TCP: the reader runs the commands; allocs/op must be 0.
func BenchmarkRead4KInline(b *testing.B) { benchRead4K(b, true) }

// BenchmarkWrite4K: 4 KiB WRITE(10)s with immediate data at queue depth
// 16; allocs/op must be 0.
func BenchmarkWrite4K(b *testing.B) { benchWrite4K(b, false) }

// BenchmarkWrite4KInline is BenchmarkWrite4K on a Nonblocking LUN over
// loopback TCP; allocs/op must be 0.
func BenchmarkWrite4KInline(b *testing.B) { benchWrite4K(b, true) }

func benchRead4K(b *testing.B, inline bool) {
	in := benchSession(b, inline)
	cmds := make([]*iscsi.PDU, benchQueueDepth)
	for i := range cmds {
		cmds[i] = in.command(rw10(opRead10, uint32(i*8), 8), iscsi.FlagRead, 4096, nil)
	}
	runBench(b, in, cmds)
}

func benchWrite4K(b *testing.B, inline bool) {
	in := benchSession(b, inline)
	cmds := make([]*iscsi.PDU, benchQueueDepth)
	for i := range cmds {
		cmds[i] = in.command(rw10(opWrite10, uint32(i*8), 8), iscsi.FlagWrite, 4096, pattern(4096, byte(i)))
	}
	runBench(b, in, cmds)
}
