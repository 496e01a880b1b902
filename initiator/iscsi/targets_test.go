package iscsi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"
)

// maxUnitAttentions bounds how many UNIT ATTENTION conditions a fresh
// nexus reports before commands run normally.
const maxUnitAttentions = 8

// clearUA consumes the unit attentions a new I_T nexus gets.
func clearUA(ctx context.Context, t testing.TB, s *Session, lun uint64) {
	t.Helper()
	for range maxUnitAttentions {
		err := s.TestUnitReady(ctx, lun)
		var se *SenseError
		if errors.As(err, &se) && se.Key == SenseUnitAttention {
			continue
		}
		if err != nil {
			t.Fatalf("test unit ready: %v", err)
		}
		return
	}
	t.Fatalf("lun %d still reports unit attention", lun)
}

func dialT(t testing.TB, cfg Config) *Session {
	t.Helper()
	s, err := Dial(testCtx(t), cfg)
	if err != nil {
		t.Fatalf("dial %s: %v", cfg.TargetName, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestDiscovery(t *testing.T) {
	eachTarget(t, func(t *testing.T, e *targetEnv) {
		got, err := Discover(testCtx(t), Config{Addr: e.discovery, InitiatorName: iqnInitiator})
		if err != nil {
			t.Fatal(err)
		}
		names := map[string][]string{}
		for _, d := range got {
			names[d.Name] = d.Addresses
		}
		for _, want := range e.discoverable {
			addrs, ok := names[want.iqn]
			if !ok {
				t.Errorf("discovery lacks %s: %+v", want.iqn, got)
				continue
			}
			if len(addrs) == 0 || !strings.HasPrefix(addrs[0], want.addr) {
				t.Errorf("%s addresses %v, want %s,<tpgt>", want.iqn, addrs, want.addr)
				continue
			}
			if host := (&RedirectError{Addr: addrs[0]}).Host(); host != want.addr {
				t.Errorf("portal host %q, want %q", host, want.addr)
			}
		}
	})
}

func TestBasicCommands(t *testing.T) {
	eachTarget(t, testBasicCommands)
}

func testBasicCommands(t *testing.T, e *targetEnv) {
	lunFile := e.fileLUN
	ctx := testCtx(t)
	s := dialT(t, e.config(e.open))
	p := s.Params()
	if p.TSIH == 0 || p.MaxXmitDataSegmentLength < minDataSegmentLength || p.ErrorRecoveryLevel != 0 {
		t.Errorf("implausible params %+v", p)
	}
	clearUA(ctx, t, s, lunFile)
	inq, err := s.Inquiry(ctx, lunFile)
	if err != nil {
		t.Fatal(err)
	}
	if inq.PeripheralType != 0 || inq.Vendor == "" || inq.Product == "" {
		t.Errorf("inquiry %+v", inq)
	}
	luns, err := s.ReportLUNs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(luns) != fmt.Sprint(e.luns) {
		t.Errorf("REPORT LUNS = %v, want %v", luns, e.luns)
	}
	c, err := s.ReadCapacity16(ctx, lunFile)
	if err != nil {
		t.Fatal(err)
	}
	if c.BlockSize != blockSize || c.Blocks != e.fileBlocks {
		t.Errorf("capacity %+v, want %d blocks of %d", c, e.fileBlocks, blockSize)
	}
	if err := s.NOP(ctx); err != nil {
		t.Fatalf("nop: %v", err)
	}
	if err := s.SynchronizeCache(ctx, lunFile); err != nil {
		t.Fatal(err)
	}
	// A read past the end is CHECK CONDITION, ILLEGAL REQUEST, LBA OUT
	// OF RANGE, delivered as a typed error.
	err = s.Read16(ctx, lunFile, c.Blocks, blockSize, make([]byte, blockSize))
	var se *SenseError
	if !errors.As(err, &se) || se.Key != SenseIllegalRequest || se.ASC != 0x21 {
		t.Errorf("read past the end: %v, want ILLEGAL REQUEST 0x21", err)
	}
	if err := s.Logout(ctx); err != nil {
		t.Fatalf("logout: %v", err)
	}
	if err := s.TestUnitReady(ctx, lunFile); !errors.Is(err, ErrSessionClosed) {
		t.Errorf("command after logout: %v, want ErrSessionClosed", err)
	}
}

func TestUnmap(t *testing.T) {
	eachTarget(t, testUnmap)
}

func testUnmap(t *testing.T, e *targetEnv) {
	lunFile := e.fileLUN
	ctx := testCtx(t)
	s := dialT(t, e.config(e.open))
	clearUA(ctx, t, s, lunFile)
	c, err := s.ReadCapacity16(ctx, lunFile)
	if err != nil {
		t.Fatal(err)
	}
	if !c.ThinProvisioned {
		t.Fatalf("thin provisioning not reported: %+v", c)
	}
	const lba, n = 4096, 16
	data := bytes.Repeat([]byte{0xa5}, n*blockSize)
	if err := s.Write16(ctx, lunFile, lba, blockSize, data, true); err != nil {
		t.Fatal(err)
	}
	if err := s.Unmap(ctx, lunFile, []Extent{{LBA: lba, Blocks: n}}); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(data))
	if err := s.Read16(ctx, lunFile, lba, blockSize, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, make([]byte, len(got))) {
		t.Errorf("unmapped blocks do not read as zeros")
	}
}

func TestCHAP(t *testing.T) {
	eachTarget(t, testCHAP)
}

func testCHAP(t *testing.T, e *targetEnv) {
	lunFile := e.fileLUN
	ctx := testCtx(t)
	base := e.config(e.chap)

	good := base
	good.CHAP = &Credentials{User: chapUser, Secret: chapSecret}
	s := dialT(t, good)
	clearUA(ctx, t, s, lunFile)
	if err := s.Logout(ctx); err != nil {
		t.Fatal(err)
	}

	for name, cfg := range map[string]Config{
		"wrong secret": func() Config {
			c := base
			c.CHAP = &Credentials{User: chapUser, Secret: "not-the-secret"}
			return c
		}(),
		"unknown user": func() Config {
			c := base
			c.CHAP = &Credentials{User: "mallory", Secret: chapSecret}
			return c
		}(),
		"no credentials": base,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Dial(ctx, cfg)
			var le *LoginError
			if !errors.As(err, &le) || le.Class != LoginClassInitiatorErr || le.Detail != LoginDetailAuthFailure || !le.AuthFailure() {
				t.Fatalf("got %v, want login error class 2 detail 1", err)
			}
		})
	}
}

func TestMutualCHAP(t *testing.T) {
	eachTarget(t, testMutualCHAP)
}

func testMutualCHAP(t *testing.T, e *targetEnv) {
	lunFile := e.fileLUN
	ctx := testCtx(t)
	cfg := e.config(e.mutual)
	cfg.CHAP = &Credentials{User: mutualUser, Secret: mutualSecret}
	cfg.MutualCHAP = &Credentials{User: targetUser, Secret: targetSecret}
	s := dialT(t, cfg)
	clearUA(ctx, t, s, lunFile)
	if err := s.Logout(ctx); err != nil {
		t.Fatal(err)
	}

	bad := cfg
	bad.MutualCHAP = &Credentials{User: targetUser, Secret: "wrong-target-secret"}
	if _, err := Dial(ctx, bad); !errors.Is(err, ErrAuth) {
		t.Fatalf("target with a wrong secret: %v, want ErrAuth", err)
	}
	badName := cfg
	badName.MutualCHAP = &Credentials{User: "someone-else", Secret: targetSecret}
	if _, err := Dial(ctx, badName); !errors.Is(err, ErrAuth) {
		t.Fatalf("target with a wrong name: %v, want ErrAuth", err)
	}
}

func TestTargetNotFound(t *testing.T) {
	eachTarget(t, func(t *testing.T, e *targetEnv) {
		cfg := e.config(e.open)
		cfg.TargetName = "iqn.2026-11.io.vbs.test:nope"
		_, err := Dial(testCtx(t), cfg)
		var le *LoginError
		if !errors.As(err, &le) || le.Class != LoginClassInitiatorErr || le.Detail != LoginDetailNotFound {
			t.Fatalf("got %v, want class 2 detail 3", err)
		}
	})
}

// ioConfigs are the session shapes the I/O tests run with: they select
// immediate data, unsolicited Data-Out, R2T-only writes and digests.
func ioConfigs(e *targetEnv) map[string]Config {
	base := e.config(e.open)
	noImm := base
	noImm.DisableImmediateData = true
	digests := e.config(e.digest)
	digests.HeaderDigest, digests.DataDigest = true, true
	smallBurst := base
	smallBurst.MaxBurstLength, smallBurst.FirstBurstLength = 16384, 8192
	smallBurst.MaxRecvDataSegmentLength = 4096
	return map[string]Config{"default": base, "r2t-only": noImm, "digests": digests, "small-bursts": smallBurst}
}

// TestTgtdConcurrentIO writes and reads back many regions at once, with
// writes longer than FirstBurstLength and MaxBurstLength, so that the
// immediate, unsolicited and R2T paths and Data-In reassembly all run
// with many commands in flight.
func TestConcurrentIO(t *testing.T) {
	eachTarget(t, testConcurrentIO)
}

func testConcurrentIO(t *testing.T, e *targetEnv) {
	lunFile := e.fileLUN
	for name, cfg := range ioConfigs(e) {
		t.Run(name, func(t *testing.T) {
			ctx := testCtx(t)
			s := dialT(t, cfg)
			clearUA(ctx, t, s, lunFile)
			p := s.Params()
			if p.HeaderDigest != cfg.HeaderDigest || p.DataDigest != cfg.DataDigest {
				t.Fatalf("digests negotiated %v/%v, want %v/%v", p.HeaderDigest, p.DataDigest, cfg.HeaderDigest, cfg.DataDigest)
			}
			if cfg.DisableImmediateData && (p.ImmediateData || !p.InitialR2T) {
				t.Fatalf("ImmediateData=%v InitialR2T=%v, want No/Yes", p.ImmediateData, p.InitialR2T)
			}
			const workers, rounds = 16, 4
			sizes := []int{blockSize, 8 << 10, 64 << 10, 300 << 10, 1 << 20}
			region := uint64(2<<20) / blockSize // blocks per worker
			var wg sync.WaitGroup
			errs := make(chan error, workers)
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(uint64(w), 7))
					buf := make([]byte, 1<<20)
					got := make([]byte, 1<<20)
					for r := range rounds {
						n := sizes[(w+r)%len(sizes)]
						lba := uint64(w)*region + uint64(rng.IntN(int(region-uint64(n/blockSize))+1))
						for i := range buf[:n] {
							buf[i] = byte(rng.Uint32())
						}
						if err := s.Write16(ctx, lunFile, lba, blockSize, buf[:n], false); err != nil {
							errs <- fmt.Errorf("worker %d write %d bytes: %w", w, n, err)
							return
						}
						clear(got[:n])
						if err := s.Read16(ctx, lunFile, lba, blockSize, got[:n]); err != nil {
							errs <- fmt.Errorf("worker %d read %d bytes: %w", w, n, err)
							return
						}
						if !bytes.Equal(got[:n], buf[:n]) {
							errs <- fmt.Errorf("worker %d: %d bytes at lba %d read back differently", w, n, lba)
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if err := s.Logout(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestTgtdAbortTask leaves a write waiting for its R2T data, aborts it
// with ABORT TASK and checks the command ends with ErrTaskAborted while
// the session stays usable.
func TestAbortTask(t *testing.T) {
	eachTarget(t, testAbortTask)
}

func testAbortTask(t *testing.T, e *targetEnv) {
	lunFile := e.fileLUN
	ctx := testCtx(t)
	cfg := e.config(e.open)
	cfg.DisableImmediateData = true
	s := dialT(t, cfg)
	clearUA(ctx, t, s, lunFile)

	var cdb [cdb16Len]byte
	rwCDB16(&cdb, opWrite16, 0, 8, false)
	data := make([]byte, 8*blockSize)
	cmd, err := s.Start(ctx, lunFile, cdb[:], data, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The target now waits for Data-Out that only Wait would send.
	// tgtd answers "task does not exist" for a task that has not reached
	// its SCSI layer yet; a target that aborts it says "function
	// complete". Either way the command must end consistently.
	resp, err := s.TaskManagement(ctx, TMFAbortTask, lunFile, cmd.Tag())
	if err != nil {
		t.Fatal(err)
	}
	r, err := cmd.Wait(ctx)
	t.Logf("ABORT TASK of a write waiting for data: %v", resp)
	switch resp {
	case TMFFunctionComplete:
		if !errors.Is(err, ErrTaskAborted) {
			t.Fatalf("aborted command: %v, want ErrTaskAborted", err)
		}
	case TMFTaskDoesNotExist:
		if err != nil || r.Status != StatusGood {
			t.Fatalf("command the target did not abort: %+v %v", r, err)
		}
	default:
		t.Fatalf("abort task: %v", resp)
	}
	// Aborting a tag that does not exist is answered, not fatal.
	resp, err = s.TaskManagement(ctx, TMFAbortTask, lunFile, 0x7777)
	if err != nil {
		t.Fatal(err)
	}
	if resp != TMFTaskDoesNotExist && resp != TMFFunctionComplete {
		t.Errorf("abort of an unknown task: %v", resp)
	}
	resp, err = s.TaskManagement(ctx, TMFLogicalUnitReset, lunFile, 0)
	if err != nil || resp != TMFFunctionComplete {
		t.Fatalf("lun reset: %v %v", resp, err)
	}
	clearUA(ctx, t, s, lunFile)
	if err := s.NOP(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Read16(ctx, lunFile, 0, blockSize, make([]byte, blockSize)); err != nil {
		t.Fatalf("read after abort: %v", err)
	}
}

// TestTgtdCancel cancels a command's context while the target waits for
// its data: Execute returns at once and the session stays usable.
func TestCancel(t *testing.T) {
	eachTarget(t, testCancel)
}

func testCancel(t *testing.T, e *targetEnv) {
	lunFile := e.fileLUN
	ctx := testCtx(t)
	cfg := e.config(e.open)
	cfg.DisableImmediateData = true
	s := dialT(t, cfg)
	clearUA(ctx, t, s, lunFile)
	var cdb [cdb16Len]byte
	rwCDB16(&cdb, opWrite16, 0, 8, false)
	cmd, err := s.Start(ctx, lunFile, cdb[:], make([]byte, 8*blockSize), nil)
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := cmd.Wait(cctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled wait: %v", err)
	}
	if err := s.NOP(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Read16(ctx, lunFile, 0, blockSize, make([]byte, blockSize)); err != nil {
		t.Fatalf("read after cancel: %v", err)
	}
}

// TestTgtdAnswersTargetPings idles on a target that pings every second
// and drops sessions that miss pingCount answers; the session must answer
// and stay up.
func TestTgtdAnswersTargetPings(t *testing.T) {
	f := needTgtd(t)
	leakCheck(t)
	ctx := testCtx(t)
	cfg := openConfig(f)
	cfg.TargetName = iqnPing
	s := dialT(t, cfg)
	const want = 3 // more than pingCount: unanswered pings would drop us
	deadline := time.Now().Add(15 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for s.Stats().TargetPings < want {
		if err := s.Err(); err != nil {
			t.Fatalf("session failed while idle: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d target pings in 15s", s.Stats().TargetPings)
		}
		<-tick.C
	}
	clearUA(ctx, t, s, lunFile)
	if err := s.NOP(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Logout(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestCloseWithCommandsInFlight closes a session under load: every
// command ends (completed or ErrSessionClosed) and nothing leaks.
func TestCloseWithCommandsInFlight(t *testing.T) {
	eachTarget(t, func(t *testing.T, e *targetEnv) {
		ctx := testCtx(t)
		s, err := Dial(ctx, e.config(e.open))
		if err != nil {
			t.Fatal(err)
		}
		clearUA(ctx, t, s, e.nullLUN)
		const n = 64
		cmds := make([]Command, 0, n)
		for i := range n {
			var cdb [cdb16Len]byte
			rwCDB16(&cdb, opRead16, uint64(i)*128, 128, false)
			c, err := s.Start(ctx, e.nullLUN, cdb[:], nil, make([]byte, 128*blockSize))
			if err != nil {
				t.Fatal(err)
			}
			cmds = append(cmds, c)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		for _, c := range cmds {
			resp, err := c.Wait(ctx)
			if err != nil && !errors.Is(err, ErrSessionClosed) {
				t.Errorf("command after close: %v", err)
			}
			if err == nil && resp.Status != StatusGood {
				t.Errorf("status %v", resp.Status)
			}
		}
		if _, err := s.Start(ctx, e.nullLUN, []byte{opTestUnitReady, 0, 0, 0, 0, 0}, nil, nil); !errors.Is(err, ErrSessionClosed) {
			t.Errorf("start after close: %v", err)
		}
	})
}
