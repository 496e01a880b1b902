package conformance

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"

	initiator "github.com/vbs-storage/vbs/initiator/iscsi"
)

// TestGoInitiator drives the real binary with the project's own initiator
// library: mutual CHAP, digests, R2T-only writes, concurrent I/O,
// discovery and logout.
func TestGoInitiator(t *testing.T) {
	bin := buildVBS(t)
	rt := startTarget(t, bin, "--lun", "mem:64MiB", "--lun", "mem:8MiB",
		"--chap", "hostuser:hostsecret1234", "--mutual-chap", "tgtuser:targetsecret987")
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	base := initiator.Config{
		Addr:          rt.addr,
		InitiatorName: "iqn.2026-11.test:go-initiator",
		TargetName:    targetIQN,
		CHAP:          &initiator.Credentials{User: "hostuser", Secret: "hostsecret1234"},
		MutualCHAP:    &initiator.Credentials{User: "tgtuser", Secret: "targetsecret987"},
	}

	// Discovery sessions need no CHAP (vbs target sets no DiscoveryAuth).
	disc := base
	disc.CHAP, disc.MutualCHAP = nil, nil
	found, err := initiator.Discover(ctx, disc)
	if err != nil {
		t.Fatalf("discover: %v", err)
	}
	if len(found) != 1 || found[0].Name != targetIQN {
		t.Fatalf("discovered %+v", found)
	}

	variants := []struct {
		name string
		cfg  func(initiator.Config) initiator.Config
	}{
		{"defaults", func(c initiator.Config) initiator.Config { return c }},
		{"digests", func(c initiator.Config) initiator.Config { c.HeaderDigest, c.DataDigest = true, true; return c }},
		{"r2t only", func(c initiator.Config) initiator.Config {
			c.DisableImmediateData = true
			c.MaxBurstLength = 16 << 10
			c.MaxRecvDataSegmentLength = 4096
			return c
		}},
	}
	for i, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			s, err := initiator.Dial(ctx, v.cfg(base))
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer s.Close()
			_ = s.TestUnitReady(ctx, 0) // the new nexus's unit attention
			luns, err := s.ReportLUNs(ctx)
			if err != nil || len(luns) != 2 {
				t.Fatalf("REPORT LUNS = %v, %v", luns, err)
			}
			const blockSize = 512
			var wg sync.WaitGroup
			errs := make(chan error, 8)
			for w := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					data := bytes.Repeat([]byte{byte(i*16 + w + 1)}, 256<<10)
					lba := uint64(w) * uint64(len(data)/blockSize)
					if err := s.Write16(ctx, 0, lba, blockSize, data, false); err != nil {
						errs <- fmt.Errorf("write %d: %w", w, err)
						return
					}
					got := make([]byte, len(data))
					if err := s.Read16(ctx, 0, lba, blockSize, got); err != nil {
						errs <- fmt.Errorf("read %d: %w", w, err)
						return
					}
					if !bytes.Equal(got, data) {
						errs <- fmt.Errorf("worker %d read back different data", w)
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if err := s.SynchronizeCache(ctx, 0); err != nil {
				t.Errorf("SYNCHRONIZE CACHE: %v", err)
			}
			if err := s.Logout(ctx); err != nil {
				t.Errorf("logout: %v", err)
			}
		})
	}

	// A wrong target secret fails mutual authentication on our side.
	bad := base
	bad.MutualCHAP = &initiator.Credentials{User: "tgtuser", Secret: "notthesecret0"}
	if s, err := initiator.Dial(ctx, bad); err == nil {
		s.Close()
		t.Fatal("login with a wrong mutual secret succeeded")
	}
	rt.stop(t)
}
