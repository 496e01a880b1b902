// Command vbs-bench runs the fio job files in bench/fio against the VBS
// iSCSI target and against tgt (the userspace C target) in the same run,
// alternating job by job, and reports IOPS, bandwidth, clat p50/p99 and the
// ratio vbs/tgt as Markdown and JSON under bench/results.
//
// It starts and owns every process it needs (tgtd with its own management
// port, `vbs target`, fio) and stops them all on exit and on SIGINT or
// SIGTERM. It imports no VBS package: it drives the binary like a user.
//
// See docs/benchmarks.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vbs-storage/vbs/bench/fiojson"
	"github.com/vbs-storage/vbs/bench/report"
)

// Exit statuses.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil:
		os.Exit(exitOK)
	case errors.Is(err, ErrUsage):
		fmt.Fprintln(os.Stderr, "vbs-bench:", err)
		os.Exit(exitUsage)
	default:
		fmt.Fprintln(os.Stderr, "vbs-bench:", err)
		os.Exit(exitError)
	}
}

// run is the whole harness: check, start targets, fill, measure, report,
// stop. Every process it starts is stopped before it returns.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	o, err := parseOptions(args, stderr)
	if err != nil {
		return err
	}
	f := fioRunner{bin: o.fio, dir: o.fioDir, size: o.size, runtime: o.runtime, ramp: o.ramp}
	fioVersion, err := checkFIO(ctx, o.fio)
	if err != nil {
		return err
	}
	if err := f.checkJobs(append([]string{fillJob}, o.jobs...)); err != nil {
		return err
	}
	if err := preflight(o); err != nil {
		return err
	}

	workDir := o.workDir
	if workDir == "" {
		if workDir, err = os.MkdirTemp("", "vbs-bench-"); err != nil {
			return fmt.Errorf("create work directory: %w", err)
		}
		if !o.keep {
			defer func() { err = errors.Join(err, os.RemoveAll(workDir)) }()
		}
	} else if err := os.MkdirAll(workDir, 0o755); err != nil {
		return fmt.Errorf("create work directory: %w", err)
	}
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, "vbs-bench: "+format+"\n", a...) }
	loadAtStart := loadAverage()
	logf("work directory %s", workDir)

	servers := map[string]server{}
	defer func() {
		// Stop in reverse start order; report every failure.
		for i := len(o.targets) - 1; i >= 0; i-- {
			if s, ok := servers[o.targets[i]]; ok {
				err = errors.Join(err, s.stop())
			}
		}
	}()
	for _, t := range o.targets {
		var s server
		switch t {
		case report.TargetTGT:
			s, err = startTGT(ctx, o, workDir)
		case report.TargetVBS:
			s, err = startVBS(ctx, o, workDir)
		}
		if err != nil {
			return fmt.Errorf("start %s: %w", t, err)
		}
		servers[t] = s
		logf("%s is up", t)
	}

	for _, lun := range o.luns {
		if !needsFill(lun) {
			continue
		}
		for _, t := range o.targets {
			u, ok := servers[t].url(lun)
			if !ok {
				continue
			}
			logf("fill %s %s LUN (%d bytes)", t, lun, o.size)
			if _, err := f.run(ctx, fillJob, u, fillTimeout); err != nil {
				return fmt.Errorf("fill: %w", err)
			}
		}
	}

	steps := plan(o.jobs, o.luns, o.targets, o.repeat)
	samples := make([]report.Sample, 0, len(steps))
	for i, st := range steps {
		u, ok := servers[st.target].url(st.lun)
		if !ok {
			return fmt.Errorf("%s serves no %s LUN", st.target, st.lun)
		}
		logf("[%d/%d] run %d: %s on %s %s", i+1, len(steps), st.run, st.job, st.target, st.lun)
		// Every run starts with nothing dirty in the page cache: otherwise
		// a job that flushes pays for the writeback of whatever the jobs
		// before it left behind, and which target that hits depends on the
		// order of the runs, not on the target.
		syscall.Sync()
		rep, err := f.run(ctx, st.job, u, f.jobTimeout())
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("interrupted after %d of %d runs: %w", i, len(steps), err)
			}
			return err
		}
		s, err := sampleFrom(st, rep)
		if err != nil {
			return err
		}
		logf("    %.0f IOPS, %.1f MiB/s, p50 %s, p99 %s", s.IOPS, s.BandwidthBytes/(1<<20), s.P50, s.P99)
		samples = append(samples, s)
	}

	meta := collectMeta(o, args, fioVersion, loadAtStart)
	rep := report.New(meta, samples, o.jobs, o.luns)
	if err := rep.WriteMarkdown(stdout); err != nil {
		return err
	}
	if o.noWrite {
		return nil
	}
	md, js, err := writeResults(o.outDir, rep)
	if err != nil {
		return err
	}
	logf("wrote %s and %s", md, js)
	return nil
}

// preflight checks, before anything starts, that every tool is there and
// every port is free, so a missing piece fails fast with a clear hint.
func preflight(o options) error {
	var errs []error
	for _, t := range o.targets {
		switch t {
		case report.TargetTGT:
			for _, tool := range []string{o.tgtd, o.tgtadm} {
				if _, err := lookTool(tool, tgtHint); err != nil {
					errs = append(errs, err)
				}
			}
			errs = append(errs, checkPortFree(net.JoinHostPort(o.host, strconv.Itoa(o.tgtPort)), "--tgt-port"))
		case report.TargetVBS:
			if _, err := os.Stat(o.vbsBin); err != nil {
				errs = append(errs, fmt.Errorf("%w: VBS binary %s: %v; build it with 'make build'", ErrMissing, o.vbsBin, err))
			}
			errs = append(errs, checkPortFree(net.JoinHostPort(o.host, strconv.Itoa(o.vbsPort)), "--vbs-port"))
		}
	}
	if slices.Contains(o.targets, report.TargetTGT) && slices.Contains(o.targets, report.TargetVBS) && o.tgtPort == o.vbsPort {
		errs = append(errs, fmt.Errorf("%w: --tgt-port and --vbs-port are both %d", ErrUsage, o.tgtPort))
	}
	return errors.Join(errs...)
}

// sampleFrom turns one fio report into a sample for step st. The job files
// use group_reporting, so the report holds exactly one job.
func sampleFrom(st step, rep fiojson.Report) (report.Sample, error) {
	if len(rep.Jobs) != 1 {
		return report.Sample{}, fmt.Errorf("fio %s: want 1 job in report, got %d", st.job, len(rep.Jobs))
	}
	j := rep.Jobs[0]
	dir, s := j.Primary()
	if s.IOs == 0 {
		return report.Sample{}, fmt.Errorf("fio %s on %s %s: %w", st.job, st.target, st.lun, errNoData)
	}
	return report.Sample{
		Job:            st.job,
		Target:         st.target,
		LUN:            st.lun,
		Run:            st.run,
		Direction:      string(dir),
		IOPS:           s.IOPS,
		BandwidthBytes: s.BandwidthBytes,
		P50:            s.CLat.P50,
		P99:            s.CLat.P99,
		Syncs:          j.Sync.Count,
		SyncP99:        j.Sync.Lat.P99,
	}, nil
}

// resultBase is the file name, without extension, of a report.
func resultBase(m report.Meta) string {
	return m.Date.UTC().Format("2006-01-02T1504Z") + "-" + m.Name
}

// writeResults writes the report as Markdown and JSON into dir.
func writeResults(dir string, rep report.Report) (md, js string, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", fmt.Errorf("create results directory: %w", err)
	}
	base := filepath.Join(dir, resultBase(rep.Meta))
	md, js = base+".md", base+".json"
	var b strings.Builder
	if err := rep.WriteMarkdown(&b); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(md, []byte(b.String()), 0o644); err != nil {
		return "", "", fmt.Errorf("write %s: %w", md, err)
	}
	data, err := rep.JSON()
	if err != nil {
		return "", "", err
	}
	if err := os.WriteFile(js, data, 0o644); err != nil {
		return "", "", fmt.Errorf("write %s: %w", js, err)
	}
	return md, js, nil
}

// collectMeta records the conditions of the run. Machine facts are best
// effort: a missing /proc file leaves a field empty.
func collectMeta(o options, args []string, fioVersion, loadAtStart string) report.Meta {
	host, _ := os.Hostname()
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	cpuinfo, _ := os.ReadFile("/proc/cpuinfo")
	notes := []string{
		"Targets: " + strings.Join(o.targets, ", ") + "; LUN kinds: " + strings.Join(o.luns, ", ") + ".",
		"Both targets and fio share this machine and talk over loopback TCP.",
	}
	notes = append(notes, fmt.Sprintf("Load average (1, 5, 15 min) at start: %s; at end: %s.", loadAtStart, loadAverage()))
	if slices.Contains(o.targets, report.TargetTGT) {
		notes = append(notes, "tgt's null LUN reports 1 TiB; fio's size= limits every job to the LUN size above.")
	}
	return report.Meta{
		Name:      o.name,
		Date:      time.Now().UTC(),
		Host:      host,
		CPU:       cpuModel(string(cpuinfo)),
		CPUs:      runtime.NumCPU(),
		Kernel:    strings.TrimSpace(string(kernel)),
		FIO:       fioVersion,
		Command:   strings.TrimSpace("vbs-bench " + strings.Join(args, " ")),
		Runtime:   o.runtime.String(),
		Ramp:      o.ramp.String(),
		SizeBytes: o.size,
		Repeat:    o.repeat,
		Notes:     notes,
	}
}

// loadAverage returns the first three fields of /proc/loadavg: a busy
// machine makes every number noisier, so reports record it.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// cpuModel returns the first "model name" in /proc/cpuinfo text.
func cpuModel(cpuinfo string) string {
	for _, line := range strings.Split(cpuinfo, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}
