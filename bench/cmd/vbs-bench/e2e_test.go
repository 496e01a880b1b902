package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vbs-storage/vbs/bench/report"
)

// freePort returns a TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestCheckPortFree(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := checkPortFree(addr, "--x"); !errors.Is(err, ErrPortBusy) || !strings.Contains(err.Error(), "--x") {
		t.Errorf("held port: err = %v, want ErrPortBusy naming --x", err)
	}
	l.Close()
	if err := checkPortFree(addr, "--x"); err != nil {
		t.Errorf("released port: %v", err)
	}
}

func TestPreflightReportsEveryMissingPiece(t *testing.T) {
	o, err := parseOptions([]string{"--tgtd", "/nonexistent/tgtd", "--vbs-bin", "/nonexistent/vbs",
		"--tgt-port", "4000", "--vbs-port", "4000"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = preflight(o)
	if !errors.Is(err, ErrMissing) || !errors.Is(err, ErrUsage) {
		t.Fatalf("err = %v, want ErrMissing and ErrUsage", err)
	}
	for _, hint := range []string{"make bench-target", "make build", "--vbs-port"} {
		if !strings.Contains(err.Error(), hint) {
			t.Errorf("error does not mention %q: %v", hint, err)
		}
	}
}

// TestEndToEndTGT runs the whole harness against a real tgtd with the fio
// that `make bench-fio` builds: start, fill, measure, report, stop. It needs
// root (tgtd's socket lives in /var/run/tgtd), tgt and bench/build/fio.
func TestEndToEndTGT(t *testing.T) {
	if testing.Short() {
		t.Skip("starts tgtd and fio")
	}
	fio, err := filepath.Abs("../../build/fio")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(fio); err != nil {
		t.Skipf("no fio with libiscsi (make bench-fio): %v", err)
	}
	if _, err := exec.LookPath("tgtd"); err != nil {
		t.Skip("no tgtd (make bench-target installs tgt)")
	}
	if os.Geteuid() != 0 {
		t.Skip("tgtd needs root")
	}
	defer goleak.VerifyNone(t)

	port := freePort(t)
	// tgtd's -C takes at most 32767; derive a number unlikely to be in use.
	ctrl := 10000 + port%20000
	out := t.TempDir()
	args := []string{
		"--targets", "tgt", "--fio", fio, "--fio-dir", "../../fio",
		"--jobs", "randread-4k-qd1,randwrite-4k-qd1-fsync8", "--luns", "null,file",
		"--size", "64m", "--runtime", "1s", "--ramp", "0s",
		"--tgt-port", strconv.Itoa(port), "--tgt-control-port", strconv.Itoa(ctrl),
		"--out", out, "--name", "e2e",
		"--workdir", filepath.Join(out, "work"),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	if err := run(ctx, args, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\nstderr:\n%s", err, stderr.String())
	}
	for _, want := range []string{"| randread-4k-qd1 | tgt | null |", "| randwrite-4k-qd1-fsync8 | tgt | file |"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, stdout.String())
		}
	}
	files, err := filepath.Glob(filepath.Join(out, "*-e2e.json"))
	if err != nil || len(files) != 1 {
		t.Fatalf("result files %v, %v", files, err)
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	var rep report.Report
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Samples) != 4 {
		t.Fatalf("got %d samples, want 4", len(rep.Samples))
	}
	for _, s := range rep.Samples {
		if s.Target != report.TargetTGT || s.IOPS <= 0 || s.P50 <= 0 || s.P99 < s.P50 {
			t.Errorf("implausible sample %+v", s)
		}
		if strings.HasSuffix(s.Job, "fsync8") && s.Syncs == 0 {
			t.Errorf("fsync job issued no SYNCHRONIZE CACHE: %+v", s)
		}
	}
	// tgtd is gone: its management socket was removed after it exited, and
	// the portal no longer accepts connections.
	sock := filepath.Join(tgtIPCDir, "socket."+strconv.Itoa(ctrl))
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("tgtd socket %s still there: %v", sock, err)
	}
	if c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port))); err == nil {
		c.Close()
		t.Error("tgt portal still accepts connections after the run")
	}
}
