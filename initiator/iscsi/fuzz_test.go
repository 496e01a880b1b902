package iscsi

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	wire "github.com/vbs-storage/vbs/target/iscsi"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite testdata/fuzz/FuzzSessionHandle from fuzzSeeds")

// Tags of the tasks fuzzSession starts, in order.
const (
	fuzzITTRead  = firstITT
	fuzzITTWrite = firstITT + 1
	fuzzITTNOP   = firstITT + 2
	fuzzITTTMF   = firstITT + 3
	fuzzITTText  = firstITT + 4
	fuzzReadLen  = 4096
	fuzzWriteLen = 8192
)

// encode renders PDUs as a target would send them.
func encode(pdus ...*wire.PDU) []byte {
	var b bytes.Buffer
	w := wire.NewWriter(&b, wire.Limits{})
	for _, p := range pdus {
		if err := w.Write(p); err != nil {
			panic(err)
		}
	}
	return b.Bytes()
}

// fuzzSeeds are well-formed target PDU streams for the tasks fuzzSession
// starts: the fuzzer mutates them into malformed ones.
func fuzzSeeds() [][]byte {
	readDone := dataIn(fuzzITTRead, 1, 2048, bytes.Repeat([]byte{2}, 2048), wire.FlagFinal|wire.FlagStatus)
	r2t := targetPDU(wire.OpR2T, fuzzITTWrite, wire.FlagFinal)
	r2t.SetTTT(7)
	r2t.SetResidualCount(fuzzWriteLen)
	resp := targetPDU(wire.OpSCSIResponse, fuzzITTWrite, wire.FlagFinal)
	sense := targetPDU(wire.OpSCSIResponse, fuzzITTRead, wire.FlagFinal|wire.FlagUnderflow)
	sense.SetByte3(byte(StatusCheckCondition))
	sense.SetResidualCount(fuzzReadLen)
	sense.Data = []byte{0, 18, 0x70, 0, 5, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x24, 0, 0, 0, 0, 0}
	ping := targetPDU(wire.OpNOPIn, wire.ReservedITT, wire.FlagFinal)
	ping.SetTTT(0x55)
	pong := targetPDU(wire.OpNOPIn, fuzzITTNOP, wire.FlagFinal)
	tmf := targetPDU(wire.OpTaskMgmtResp, fuzzITTTMF, wire.FlagFinal)
	text := targetPDU(wire.OpTextResp, fuzzITTText, wire.FlagContinue)
	text.SetTTT(3)
	text.Data = []byte("TargetName=iqn.x\x00")
	textEnd := targetPDU(wire.OpTextResp, fuzzITTText, wire.FlagFinal)
	textEnd.Data = []byte("TargetAddress=1.2.3.4:3260,1\x00")
	async := targetPDU(wire.OpAsyncMsg, wire.ReservedITT, wire.FlagFinal)
	async.BHS[offAsyncEvent] = asyncLogoutRequest
	reject := targetPDU(wire.OpReject, wire.ReservedITT, wire.FlagFinal)
	reject.SetByte2(RejectProtocolError)
	var rejected wire.BHS
	rejected.SetOpcode(wire.OpSCSICommand, false)
	rejected.SetITT(fuzzITTWrite)
	reject.Data = rejected[:]
	return [][]byte{
		encode(dataIn(fuzzITTRead, 0, 0, bytes.Repeat([]byte{1}, 2048), 0), readDone),
		encode(r2t, resp),
		encode(sense),
		encode(ping, pong, tmf),
		encode(text, textEnd),
		encode(async),
		encode(reject),
	}
}

// fuzzSession returns a session with one task of each kind in flight.
func fuzzSession(t testing.TB) (*Session, []Command, *wireLog) {
	w := &wireLog{wrote: make(chan struct{}, 1)}
	s := newSession(w, w, unitParams(), discardLogger())
	s.cmdSN, s.expCmdSN, s.maxCmdSN, s.expStatSN = 10, 10, 41, 5
	ctx := context.Background()
	rd, err := s.Start(ctx, 1, []byte{opRead16}, nil, make([]byte, fuzzReadLen))
	if err != nil {
		t.Fatal(err)
	}
	wr, err := s.Start(ctx, 1, []byte{opWrite16}, make([]byte, fuzzWriteLen), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []taskKind{taskNOP, taskTMF, taskText} {
		x := s.getTask(k)
		x.immediate = k != taskText
		x.tmfFunc = TMFAbortTaskSet
		x.lun = 1
		if err := s.submit(ctx, x); err != nil {
			t.Fatal(err)
		}
	}
	if rd.Tag() != fuzzITTRead || wr.Tag() != fuzzITTWrite {
		t.Fatalf("tags %d %d", rd.Tag(), wr.Tag())
	}
	return s, []Command{rd, wr}, w
}

// FuzzSessionHandle feeds arbitrary bytes as target PDUs to a session
// with tasks in flight. Whatever the target sends, the session must not
// panic, must not report more data than the buffer holds, and every
// command must end.
func FuzzSessionHandle(f *testing.F) {
	for _, seed := range fuzzSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		s, cmds, _ := fuzzSession(t)
		r := wire.NewReader(bytes.NewReader(in), wire.Limits{MaxRecvDataSegmentLength: s.params.MaxRecvDataSegmentLength})
		var p wire.PDU
		for {
			if err := r.Read(&p); err != nil {
				s.fail(err)
				break
			}
			if err := s.handle(&p); err != nil {
				if !errors.Is(err, ErrProtocol) {
					t.Fatalf("handle error %v is not ErrProtocol", err)
				}
				s.fail(err)
				break
			}
		}
		ctx := context.Background()
		for i, c := range cmds {
			resp, _ := c.Wait(ctx)
			limit := fuzzReadLen
			if i == 1 {
				limit = 0
			}
			if resp.DataIn > limit {
				t.Fatalf("command %d reports %d bytes read into a %d-byte buffer", i, resp.DataIn, limit)
			}
			if len(resp.Sense) > maxSenseLength {
				t.Fatalf("sense of %d bytes", len(resp.Sense))
			}
		}
	})
}

// TestFuzzSeedCorpus keeps the committed seed corpus equal to fuzzSeeds
// (go test -run TestFuzzSeedCorpus -update-seeds rewrites it).
func TestFuzzSeedCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzSessionHandle")
	for i, seed := range fuzzSeeds() {
		path := filepath.Join(dir, "seed-"+strconv.Itoa(i))
		want := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", seed)
		if *updateSeeds {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run with -update-seeds)", err)
		}
		if string(got) != want {
			t.Errorf("%s is stale (run with -update-seeds)", path)
		}
	}
}

// TestFuzzSeedsComplete runs each seed as a well-behaved target and checks
// the tasks end the way the seed says, so the seeds stay meaningful.
func TestFuzzSeedsComplete(t *testing.T) {
	seeds := fuzzSeeds()
	s, cmds, _ := fuzzSession(t)
	r := wire.NewReader(bytes.NewReader(bytes.Join(seeds[:3], nil)), wire.Limits{MaxRecvDataSegmentLength: 65536})
	var p wire.PDU
	for {
		err := r.Read(&p)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := s.handle(&p); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	rd, err := cmds[0].Wait(ctx)
	if err != nil || rd.DataIn != fuzzReadLen || rd.Status != StatusGood {
		t.Fatalf("read %+v %v", rd, err)
	}
	if wr, err := cmds[1].Wait(ctx); err != nil || wr.Status != StatusGood {
		t.Fatalf("write %+v %v", wr, err)
	}
	s.Close()
}
