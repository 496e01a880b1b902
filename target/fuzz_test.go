package target

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/vbs-storage/vbs/target/device"
	"github.com/vbs-storage/vbs/target/iscsi"
	"github.com/vbs-storage/vbs/target/scsi"
)

// FuzzExtendedCDB feeds arbitrary AHS bytes to the Extended CDB parser:
// it must never panic and never produce a CDB longer than maxCDBLen.
func FuzzExtendedCDB(f *testing.F) {
	f.Add([]byte{0, 17, ahsTypeExtCDB, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 0, 0, 0})
	f.Add([]byte{0, 0, ahsTypeExtCDB, 0})
	f.Add([]byte{0xff, 0xff, 2, 0})
	f.Fuzz(func(t *testing.T, ahs []byte) {
		var tk task
		tk.cdbLen = baseCDBLen
		if err := tk.extendedCDB(ahs); err == nil && (tk.cdbLen < baseCDBLen || tk.cdbLen > maxCDBLen) {
			t.Fatalf("cdb length %d", tk.cdbLen)
		}
	})
}

// fuzzSeedPDUs encodes a few full feature phase PDUs as a fuzz seed.
func fuzzSeedPDUs(pdus ...*iscsi.PDU) []byte {
	var buf bytes.Buffer
	w := iscsi.NewWriter(&buf, iscsi.Limits{})
	for _, p := range pdus {
		if err := w.Write(p); err != nil {
			panic(err)
		}
	}
	return buf.Bytes()
}

// FuzzFullFeature logs in, then sends arbitrary bytes as the rest of the
// stream. Whatever they are, the target must not panic, and the session
// must end once the initiator hangs up (no goroutine stuck on it).
func FuzzFullFeature(f *testing.F) {
	seed := &initiator{itt: 1}
	f.Add(fuzzSeedPDUs(seed.command(rw10(opWrite10, 0, 1), iscsi.FlagWrite, 512, make([]byte, 512)),
		seed.command(rw10(opRead10, 0, 1), iscsi.FlagRead, 512, nil)))
	f.Add(fuzzSeedPDUs(seed.command(rw10(opWrite10, 0, 8), iscsi.FlagWrite, 4096, nil)))
	tmf := &iscsi.PDU{}
	tmf.SetOpcode(iscsi.OpTaskMgmtReq, true)
	tmf.SetFlags(iscsi.FlagFinal | tmfLUReset)
	logout := &iscsi.PDU{}
	logout.SetOpcode(iscsi.OpLogoutReq, true)
	logout.SetFlags(iscsi.FlagFinal)
	f.Add(fuzzSeedPDUs(tmf, logout))
	f.Add([]byte{0x1a, 0x80, 0, 0, 0, 0xff, 0xff, 0xff})

	dev, err := device.NewMem(testBlockSize, 64)
	if err != nil {
		f.Fatal(err)
	}
	s := NewServer(Options{NopInterval: -1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	st := scsi.NewTarget(scsi.TargetOptions{Name: testIQN})
	if err := st.AddLU(0, noMetadata{dev}, scsi.LUOptions{WriteCache: true}); err != nil {
		f.Fatal(err)
	}
	if err := s.AddTarget(TargetConfig{IQN: testIQN, SCSI: st}); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })

	f.Fuzz(func(t *testing.T, stream []byte) {
		client, server := net.Pipe()
		defer client.Close()
		s.accept(server)
		in := &initiator{
			t:    t,
			nc:   client,
			rd:   iscsi.NewReader(client, iscsi.Limits{MaxRecvDataSegmentLength: 1 << 20}),
			wr:   iscsi.NewWriter(client, iscsi.Limits{}),
			isid: 0x80_0000_0001,
			itt:  1,
		}
		_ = client.SetDeadline(time.Now().Add(ioTimeout))
		in.mustLogin(loginKeys(testInitiator))
		drained := make(chan struct{})
		go func() {
			_, _ = io.Copy(io.Discard, client)
			close(drained)
		}()
		_, _ = client.Write(stream)
		client.Close()
		<-drained
		waitFor(t, "the session to end", func() bool { return len(s.Sessions()) == 0 })
	})
}
