package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vbs-storage/vbs/bench/report"
)

// defaultJobs lists the job files the harness knows, in the order it runs
// and reports them. Each is bench/fio/<name>.fio.
func defaultJobs() []string {
	return []string{
		"randread-4k-qd1",
		"randread-4k-qd32",
		"randwrite-4k-qd1",
		"randwrite-4k-qd32",
		"seqread-128k-qd16",
		"seqwrite-128k-qd16",
		"randwrite-4k-qd1-fsync8",
	}
}

// fillJob is the job file that writes a whole LUN once before measuring.
const fillJob = "fill"

// allLUNs lists the LUN kinds in the order the harness creates them. Every
// target serves them in this order (a target skips what it cannot serve).
func allLUNs() []string { return []string{report.LUNNull, report.LUNFile, report.LUNStore} }

// allTargets lists the targets in the order the harness runs them.
func allTargets() []string { return []string{report.TargetTGT, report.TargetVBS} }

// Defaults.
const (
	defaultSize     = 1 << 30
	defaultRuntime  = 10 * time.Second
	defaultRamp     = 2 * time.Second
	defaultTGTPort  = 14260
	defaultVBSPort  = 14262
	defaultFIO      = "bench/build/fio"
	defaultFIODir   = "bench/fio"
	defaultVBSBin   = "bin/vbs"
	defaultOutDir   = "bench/results"
	defaultName     = "tgt-vs-vbs"
	defaultListenIP = "127.0.0.1"
)

// maxTGTControlPort is the largest value tgtd accepts for -C.
const maxTGTControlPort = 32767

// ErrUsage marks a bad command line (exit status 2).
var ErrUsage = errors.New("usage")

// options is the harness configuration, defaults filled in by parseOptions.
type options struct {
	vbsBin  string
	fio     string
	fioDir  string
	tgtd    string
	tgtadm  string
	runtime time.Duration
	ramp    time.Duration
	jobs    []string
	luns    []string
	targets []string
	size    int64
	repeat  int
	outDir  string
	name    string
	workDir string
	keep    bool
	host    string
	tgtPort int
	// tgtControlPort is tgtd's -C: the management socket
	// /var/run/tgtd/socket.N, separate from any system tgtd's.
	tgtControlPort int
	vbsPort        int
	noWrite        bool
	// storeBlockSize is the logical block size of the VBS store LUN.
	storeBlockSize int
}

// parseOptions parses the command line. It does no I/O beyond writing usage
// to errOut.
func parseOptions(args []string, errOut io.Writer) (options, error) {
	fs := flag.NewFlagSet("vbs-bench", flag.ContinueOnError)
	fs.SetOutput(errOut)
	var o options
	var jobs, luns, targets, size string
	fs.StringVar(&o.vbsBin, "vbs-bin", defaultVBSBin, "the vbs binary (make build)")
	fs.StringVar(&o.fio, "fio", defaultFIO, "fio built with the libiscsi engine (make bench-fio)")
	fs.StringVar(&o.fioDir, "fio-dir", defaultFIODir, "directory of the .fio job files")
	fs.StringVar(&o.tgtd, "tgtd", "tgtd", "tgtd binary (Debian package tgt)")
	fs.StringVar(&o.tgtadm, "tgtadm", "tgtadm", "tgtadm binary (Debian package tgt)")
	fs.DurationVar(&o.runtime, "runtime", defaultRuntime, "measured time per job")
	fs.DurationVar(&o.ramp, "ramp", defaultRamp, "warm-up before measuring, per job")
	fs.StringVar(&jobs, "jobs", strings.Join(defaultJobs(), ","), "comma-separated subset of jobs")
	fs.StringVar(&luns, "luns", "null,file", "comma-separated LUN kinds: null, file, store (store: VBS only, compared with tgt's file LUN)")
	fs.StringVar(&targets, "targets", "tgt,vbs", "comma-separated targets: tgt, vbs")
	fs.StringVar(&size, "size", "1g", "LUN size (bytes, or with k/m/g/t suffix, powers of 1024)")
	fs.IntVar(&o.repeat, "repeat", 1, "runs of every job per target; rows show the median")
	fs.StringVar(&o.outDir, "out", defaultOutDir, "directory for <date>-<name>.md and .json")
	fs.StringVar(&o.name, "name", defaultName, "name of this run in the result file names")
	fs.BoolVar(&o.noWrite, "no-write", false, "print the table but write no result files")
	fs.StringVar(&o.workDir, "workdir", "", "where LUN backing files go (default: a new temporary directory, removed at exit)")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary work directory")
	fs.StringVar(&o.host, "host", defaultListenIP, "address both targets listen on")
	fs.IntVar(&o.tgtPort, "tgt-port", defaultTGTPort, "tgt's iSCSI port")
	fs.IntVar(&o.tgtControlPort, "tgt-control-port", 0, "tgtd -C management port (default: the same number as --tgt-port)")
	fs.IntVar(&o.vbsPort, "vbs-port", defaultVBSPort, "the VBS target's iSCSI port")
	fs.IntVar(&o.storeBlockSize, "store-block-size", 4096, "block size of the store LUN: 4096 (the API's default for volumes) or 512")
	if err := fs.Parse(args); err != nil {
		return options{}, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("%w: unexpected arguments %q", ErrUsage, fs.Args())
	}
	if o.storeBlockSize != 512 && o.storeBlockSize != 4096 {
		return options{}, fmt.Errorf("%w: --store-block-size %d: want 512 or 4096", ErrUsage, o.storeBlockSize)
	}
	var err error
	if o.jobs, err = parseList("jobs", jobs, defaultJobs()); err != nil {
		return options{}, err
	}
	if o.luns, err = parseList("luns", luns, allLUNs()); err != nil {
		return options{}, err
	}
	if o.targets, err = parseList("targets", targets, allTargets()); err != nil {
		return options{}, err
	}
	if o.size, err = parseSize(size); err != nil {
		return options{}, fmt.Errorf("%w: --size: %w", ErrUsage, err)
	}
	if o.size%blockSize != 0 {
		return options{}, fmt.Errorf("%w: --size %d is not a multiple of %d", ErrUsage, o.size, blockSize)
	}
	if o.repeat < 1 {
		return options{}, fmt.Errorf("%w: --repeat must be at least 1", ErrUsage)
	}
	if o.runtime <= 0 || o.ramp < 0 {
		return options{}, fmt.Errorf("%w: --runtime must be positive and --ramp not negative", ErrUsage)
	}
	if o.tgtControlPort == 0 {
		o.tgtControlPort = o.tgtPort
	}
	if o.tgtControlPort < 1 || o.tgtControlPort > maxTGTControlPort {
		return options{}, fmt.Errorf("%w: tgtd's management port must be 1..%d, got %d (set --tgt-control-port)",
			ErrUsage, maxTGTControlPort, o.tgtControlPort)
	}
	if o.name == "" || strings.ContainsAny(o.name, "/ ") {
		return options{}, fmt.Errorf("%w: --name %q must be non-empty without '/' or spaces", ErrUsage, o.name)
	}
	return o, nil
}

// blockSize is the unit every LUN size must be a multiple of (both targets
// use 512-byte logical blocks; fio's largest block here is 128 KiB, and the
// fill job writes 1 MiB blocks, so sizes should be MiB multiples).
const blockSize = 1 << 20

// parseList splits a comma-separated list and checks every item is in valid.
// It keeps the order of valid, not the order given, and drops duplicates.
func parseList(what, s string, valid []string) ([]string, error) {
	var got []string
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if !slices.Contains(valid, item) {
			return nil, fmt.Errorf("%w: --%s: unknown %q (choose from %s)", ErrUsage, what, item, strings.Join(valid, ", "))
		}
		got = append(got, item)
	}
	if len(got) == 0 {
		return nil, fmt.Errorf("%w: --%s is empty", ErrUsage, what)
	}
	var out []string
	for _, v := range valid {
		if slices.Contains(got, v) {
			out = append(out, v)
		}
	}
	return out, nil
}

// parseSize parses "1073741824", "1g", "1G", "1GiB", "512m", "512MiB".
// Suffixes are powers of 1024.
func parseSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "ib"), "b")
	shift := 0
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'k':
			shift = 10
		case 'm':
			shift = 20
		case 'g':
			shift = 30
		case 't':
			shift = 40
		}
		if shift > 0 {
			t = t[:n-1]
		}
	}
	v, err := strconv.ParseInt(t, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: %w", s, err)
	}
	if v <= 0 || v > (1<<62)>>shift {
		return 0, fmt.Errorf("size %q out of range", s)
	}
	return v << shift, nil
}
