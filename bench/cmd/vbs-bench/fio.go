package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vbs-storage/vbs/bench/fiojson"
)

// Environment variables the job files in bench/fio read.
const (
	envTarget  = "VBS_FIO_TARGET"
	envEngine  = "VBS_FIO_ENGINE"
	envSize    = "VBS_FIO_SIZE"
	envRuntime = "VBS_FIO_RUNTIME"
	envRamp    = "VBS_FIO_RAMP"

	engineLibiscsi = "libiscsi"
	fioHint        = "build it with 'make bench-fio' (bench/build-fio.sh)"
	// fioSlack is how much longer than runtime+ramp a fio run may take
	// (login, setup, teardown) before the harness gives up on it.
	fioSlack = 2 * time.Minute
	// fillTimeout bounds the fill job: 1 GiB at 10 MiB/s is under 2 minutes.
	fillTimeout = 30 * time.Minute
)

// fioRunner runs job files from dir with bin against iSCSI URLs.
type fioRunner struct {
	bin     string
	dir     string
	size    int64
	runtime time.Duration
	ramp    time.Duration
}

// checkFIO verifies that bin exists and has the libiscsi engine, and returns
// its version.
func checkFIO(ctx context.Context, bin string) (string, error) {
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("%w: fio %s: %v; %s", ErrMissing, bin, err, fioHint)
	}
	out, err := runTool(ctx, bin, "--enghelp")
	if err != nil {
		return "", fmt.Errorf("%w: %v; %s", ErrMissing, err, fioHint)
	}
	if !hasEngine(out, engineLibiscsi) {
		return "", fmt.Errorf("%w: %s has no %s engine; %s", ErrMissing, bin, engineLibiscsi, fioHint)
	}
	v, err := runTool(ctx, bin, "--version")
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(v)), nil
}

// hasEngine reports whether `fio --enghelp` output lists engine.
func hasEngine(enghelp []byte, engine string) bool {
	for _, line := range strings.Split(string(enghelp), "\n") {
		if strings.TrimSpace(line) == engine {
			return true
		}
	}
	return false
}

// jobPath returns the job file for name.
func (f fioRunner) jobPath(name string) string { return filepath.Join(f.dir, name+".fio") }

// checkJobs verifies every job file exists before anything starts.
func (f fioRunner) checkJobs(names []string) error {
	for _, n := range names {
		if _, err := os.Stat(f.jobPath(n)); err != nil {
			return fmt.Errorf("job file for %q: %w (run from the repository root or set --fio-dir)", n, err)
		}
	}
	return nil
}

// env returns the environment for one run of a job file.
func (f fioRunner) env(url string) []string {
	return append(os.Environ(),
		envTarget+"="+url,
		envEngine+"="+engineLibiscsi,
		envSize+"="+strconv.FormatInt(f.size, 10),
		envRuntime+"="+durationArg(f.runtime),
		envRamp+"="+durationArg(f.ramp),
	)
}

// run runs one job file against url and returns fio's parsed report. It
// fails if fio fails or if any job reports an error.
func (f fioRunner) run(ctx context.Context, job, url string, timeout time.Duration) (fiojson.Report, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, f.bin, "--output-format=json", f.jobPath(job))
	cmd.Env = f.env(url)
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	// The job files set thread=1: fio would otherwise fork each job into
	// its own session, out of reach of cancellation. With threads, killing
	// this one process (on a timeout or SIGINT) ends every iSCSI session
	// it opened; Pdeathsig does the same if the harness itself dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = fmt.Errorf("%w (%w)", err, ctxErr)
		}
		return fiojson.Report{}, fmt.Errorf("fio %s on %s: %w: %s", job, url, err, tail(stderr.String()))
	}
	rep, err := fiojson.Parse(stdout.Bytes())
	if err != nil {
		return fiojson.Report{}, fmt.Errorf("fio %s on %s: %w: %s", job, url, err, tail(stderr.String()))
	}
	if err := commandFailures(stderr.String()); err != nil {
		return fiojson.Report{}, fmt.Errorf("fio %s on %s: %w", job, url, err)
	}
	for _, j := range rep.Jobs {
		if j.Error != 0 {
			return fiojson.Report{}, fmt.Errorf("fio %s on %s: job %s failed with error %d: %s",
				job, url, j.Name, j.Error, tail(stderr.String()))
		}
	}
	return rep, nil
}

// durationArg formats d the way fio's time options accept (whole ms).
func durationArg(d time.Duration) string {
	return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
}

// libiscsiFailure starts the line fio's libiscsi engine logs for every
// command that ends with a status other than GOOD.
const libiscsiFailure = "iscsi: request failed"

// ErrCommandFailed marks a run in which the target failed SCSI commands.
// fio does not count a failed flush as a job error, so the harness reads
// the engine's log instead: a benchmark of failing commands is no benchmark.
var ErrCommandFailed = errors.New("target failed SCSI commands")

// commandFailures returns ErrCommandFailed, with the first failure and a
// count, if fio's stderr reports failed commands.
func commandFailures(stderr string) error {
	n := 0
	first := ""
	for _, line := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), libiscsiFailure) {
			if n == 0 {
				first = strings.TrimSpace(line)
			}
			n++
		}
	}
	if n == 0 {
		return nil
	}
	return fmt.Errorf("%w: %d times, first: %s", ErrCommandFailed, n, first)
}

// jobTimeout is how long a measured job may take in all.
func (f fioRunner) jobTimeout() time.Duration { return f.runtime + f.ramp + fioSlack }

// tail trims s to its last lines for error messages.
func tail(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > logTailBytes {
		s = "..." + s[len(s)-logTailBytes:]
	}
	if s == "" {
		return "(no stderr)"
	}
	return s
}

// errNoData marks a run in which fio moved no data.
var errNoData = errors.New("fio moved no data")
