//go:build conformance

package scsi_test

// The acceptance test of this package: libiscsi's iscsi-test-cu against
// the real iSCSI session code serving in-memory LUs. It needs the
// iscsi-test-cu binary (Debian: libiscsi-bin) and a free loopback port:
//
//	go test -tags conformance -run Conformance -v ./target/scsi/
//
// Each configuration must report zero failed tests.

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/vbs-storage/vbs/target"
	"github.com/vbs-storage/vbs/target/scsi"
)

// ramDisk is a thin in-memory Device with the optional capabilities the
// SCSI layer uses (unmap, LBA status, metadata, atomic writes).
type ramDisk struct {
	mu     sync.RWMutex
	bs     uint32
	data   []byte
	mapped []bool
	meta   map[string][]byte
}

func (d *ramDisk) BlockSize() uint32 { return d.bs }
func (d *ramDisk) Blocks() uint64    { return uint64(len(d.mapped)) }

func (d *ramDisk) ReadAt(_ context.Context, p []byte, lba uint64) error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	copy(p, d.data[lba*uint64(d.bs):])
	return nil
}

func (d *ramDisk) WriteAt(_ context.Context, p []byte, lba uint64, _ bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	copy(d.data[lba*uint64(d.bs):], p)
	for i := uint64(0); i < uint64(len(p))/uint64(d.bs); i++ {
		d.mapped[lba+i] = true
	}
	return nil
}

func (d *ramDisk) Flush(context.Context) error { return nil }

// thinDisk adds thin provisioning and the other optional interfaces.
type thinDisk struct{ *ramDisk }

func (d thinDisk) Unmap(_ context.Context, lba, n uint64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	clear(d.data[lba*uint64(d.bs) : (lba+n)*uint64(d.bs)])
	for i := lba; i < lba+n; i++ {
		d.mapped[i] = false
	}
	return nil
}

func (d thinDisk) LBAStatus(_ context.Context, lba, max uint64) (bool, uint64, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	s, n := d.mapped[lba], uint64(1)
	for n < max && lba+n < uint64(len(d.mapped)) && d.mapped[lba+n] == s {
		n++
	}
	return s, n, nil
}

func (d thinDisk) GetMetadata(k string) ([]byte, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.meta[k], nil
}

func (d thinDisk) SetMetadata(k string, v []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.meta[k] = append([]byte(nil), v...)
	return nil
}

func (d thinDisk) WriteAtomic(ctx context.Context, p []byte, lba uint64, fua bool) error {
	return d.WriteAt(ctx, p, lba, fua)
}

func (d thinDisk) MaxAtomicBlocks() uint32 { return 1024 }

var summaryTests = regexp.MustCompile(`tests\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)`)

func TestConformanceLibiscsi(t *testing.T) {
	bin, err := exec.LookPath("iscsi-test-cu")
	if err != nil {
		t.Skip("iscsi-test-cu not installed (libiscsi-bin)")
	}
	configs := []struct {
		name   string
		bs     uint32
		blocks uint64
		thin   bool
	}{
		{"thin-512", 512, 1 << 17, true},
		{"thin-4096", 4096, 1 << 15, true},
		{"plain-512", 512, 1 << 17, false},
	}
	for _, c := range configs {
		t.Run(c.name, func(t *testing.T) {
			disk := &ramDisk{bs: c.bs, data: make([]byte, uint64(c.bs)*c.blocks), mapped: make([]bool, c.blocks), meta: map[string][]byte{}}
			var dev scsi.Device = disk
			if c.thin {
				dev = thinDisk{disk}
			}
			const iqn = "iqn.2026-11.io.vbs:conformance"
			srv := target.NewServer(target.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err := srv.AddTarget(target.TargetConfig{IQN: iqn, LUNs: map[uint64]scsi.Device{0: dev}}); err != nil {
				t.Fatal(err)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			served := make(chan error, 1)
			go func() { served <- srv.Serve(ctx, ln) }()
			defer func() {
				cancel()
				srv.Close()
				<-served
			}()
			url := "iscsi://" + ln.Addr().String() + "/" + iqn + "/0"
			runCtx, stop := context.WithTimeout(context.Background(), 5*time.Minute)
			defer stop()
			out, err := exec.CommandContext(runCtx, bin, "--dataloss", "-n", url).CombinedOutput()
			var exitErr *exec.ExitError
			if err != nil && !errors.As(err, &exitErr) {
				t.Fatalf("run %s: %v", bin, err)
			}
			m := summaryTests.FindSubmatch(out)
			if m == nil {
				t.Fatalf("no run summary in output:\n%s", out)
			}
			total, _ := strconv.Atoi(string(m[1]))
			failed, _ := strconv.Atoi(string(m[4]))
			t.Logf("%s: %d tests, %d failed", c.name, total, failed)
			if failed != 0 || total == 0 {
				t.Fatalf("iscsi-test-cu reported %d failed of %d:\n%s", failed, total, out)
			}
		})
	}
}
