// Package fiojson decodes the report that fio writes with
// --output-format=json into the few numbers the benchmark harness compares:
// IOPS, bandwidth and completion-latency percentiles per direction.
//
// It is pure: it takes bytes and returns values. It never runs fio.
package fiojson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Sentinel errors that callers may tell apart.
var (
	// ErrNoReport means the input holds no JSON object at all (fio failed
	// before it wrote its report, or was not asked for JSON).
	ErrNoReport = errors.New("no fio JSON report in output")
	// ErrNoJobs means the report decoded but lists no job.
	ErrNoJobs = errors.New("fio report lists no jobs")
)

// Percentiles that the harness reports, as fio names them in clat_ns.
const (
	percentileMedian = 50.0
	percentileTail   = 99.0
)

// Report is one fio run.
type Report struct {
	// Version is fio's own version string, e.g. "fio-3.33".
	Version string
	// Time is when fio wrote the report.
	Time time.Time
	// Jobs holds one entry per job, or one per group with group_reporting.
	Jobs []Job
}

// Job is the result of one fio job (or group).
type Job struct {
	Name string
	// Error is fio's errno for the job; 0 when the job ran cleanly.
	Error int
	Read  Stats
	Write Stats
	// Sync counts the flushes (fsync=N; SYNCHRONIZE CACHE over iSCSI).
	Sync SyncStats
}

// Direction names one side of a job's I/O.
type Direction string

// The directions a job reports.
const (
	DirRead  Direction = "read"
	DirWrite Direction = "write"
)

// Stats is one direction of one job.
type Stats struct {
	// IOs is the number of completed I/Os measured (after ramp_time).
	IOs int64
	// Bytes is the data moved while measuring.
	Bytes int64
	// IOPS is I/Os per second over the measured runtime.
	IOPS float64
	// BandwidthBytes is bytes per second over the measured runtime.
	BandwidthBytes float64
	// Runtime is how long fio measured this direction.
	Runtime time.Duration
	// CLat is the completion latency: submit to completion, the number that
	// includes the target's work.
	CLat Latency
}

// SyncStats describes the flushes a job issued.
type SyncStats struct {
	Count int64
	Lat   Latency
}

// Latency summarises a latency distribution.
type Latency struct {
	N    int64
	Mean time.Duration
	Max  time.Duration
	// P50 and P99 are zero when fio recorded no percentiles (N == 0).
	P50 time.Duration
	P99 time.Duration
}

// Primary returns the direction that carried the job's data: the one with
// more bytes, reads on a tie. A pure read or write job reports its only
// direction.
func (j Job) Primary() (Direction, Stats) {
	if j.Write.Bytes > j.Read.Bytes {
		return DirWrite, j.Write
	}
	return DirRead, j.Read
}

// Parse decodes fio's JSON output. fio may print notes on stdout before the
// JSON ("note: both iodepth >= 1 and synchronous I/O engine ..."); Parse
// skips everything before the first line that opens a JSON object and
// ignores anything after the object ends.
func Parse(out []byte) (Report, error) {
	start := jsonStart(out)
	if start < 0 {
		return Report{}, ErrNoReport
	}
	var raw rawReport
	dec := json.NewDecoder(bytes.NewReader(out[start:]))
	if err := dec.Decode(&raw); err != nil {
		return Report{}, fmt.Errorf("decode fio JSON: %w", err)
	}
	if len(raw.Jobs) == 0 {
		return Report{}, ErrNoJobs
	}
	rep := Report{
		Version: raw.Version,
		Time:    time.UnixMilli(raw.TimestampMS).UTC(),
		Jobs:    make([]Job, 0, len(raw.Jobs)),
	}
	for i, rj := range raw.Jobs {
		j, err := rj.job()
		if err != nil {
			return Report{}, fmt.Errorf("job %d (%q): %w", i, rj.Name, err)
		}
		rep.Jobs = append(rep.Jobs, j)
	}
	return rep, nil
}

// jsonStart returns the offset of the first '{' that starts a line, or -1.
func jsonStart(out []byte) int {
	for off := 0; off < len(out); {
		line := out[off:]
		if i := bytes.IndexByte(line, '\n'); i >= 0 {
			line = line[:i]
		}
		if t := bytes.TrimLeft(line, " \t\r"); len(t) > 0 && t[0] == '{' {
			return off + len(line) - len(t)
		}
		off += len(line) + 1
	}
	return -1
}

// rawReport mirrors the part of fio's JSON schema that we read.
type rawReport struct {
	Version     string   `json:"fio version"`
	TimestampMS int64    `json:"timestamp_ms"`
	Jobs        []rawJob `json:"jobs"`
}

type rawJob struct {
	Name  string  `json:"jobname"`
	Error int     `json:"error"`
	Read  rawDir  `json:"read"`
	Write rawDir  `json:"write"`
	Sync  rawSync `json:"sync"`
}

type rawDir struct {
	IOBytes   int64   `json:"io_bytes"`
	BWBytes   float64 `json:"bw_bytes"`
	IOPS      float64 `json:"iops"`
	RuntimeMS int64   `json:"runtime"`
	TotalIOs  int64   `json:"total_ios"`
	CLat      rawLat  `json:"clat_ns"`
}

type rawSync struct {
	TotalIOs int64  `json:"total_ios"`
	Lat      rawLat `json:"lat_ns"`
}

type rawLat struct {
	N    int64   `json:"N"`
	Mean float64 `json:"mean"`
	Max  float64 `json:"max"`
	// Percentile maps fio's "99.000000"-style keys to nanoseconds.
	Percentile map[string]float64 `json:"percentile"`
}

func (rj rawJob) job() (Job, error) {
	read, err := rj.Read.stats()
	if err != nil {
		return Job{}, fmt.Errorf("read: %w", err)
	}
	write, err := rj.Write.stats()
	if err != nil {
		return Job{}, fmt.Errorf("write: %w", err)
	}
	sync, err := rj.Sync.Lat.latency()
	if err != nil {
		return Job{}, fmt.Errorf("sync: %w", err)
	}
	return Job{
		Name:  rj.Name,
		Error: rj.Error,
		Read:  read,
		Write: write,
		Sync:  SyncStats{Count: rj.Sync.TotalIOs, Lat: sync},
	}, nil
}

func (rd rawDir) stats() (Stats, error) {
	lat, err := rd.CLat.latency()
	if err != nil {
		return Stats{}, fmt.Errorf("clat: %w", err)
	}
	return Stats{
		IOs:            rd.TotalIOs,
		Bytes:          rd.IOBytes,
		IOPS:           rd.IOPS,
		BandwidthBytes: rd.BWBytes,
		Runtime:        time.Duration(rd.RuntimeMS) * time.Millisecond,
		CLat:           lat,
	}, nil
}

func (rl rawLat) latency() (Latency, error) {
	l := Latency{N: rl.N, Mean: nanos(rl.Mean), Max: nanos(rl.Max)}
	for key, v := range rl.Percentile {
		p, err := strconv.ParseFloat(key, 64)
		if err != nil {
			return Latency{}, fmt.Errorf("percentile key %q: %w", key, err)
		}
		switch p {
		case percentileMedian:
			l.P50 = nanos(v)
		case percentileTail:
			l.P99 = nanos(v)
		}
	}
	return l, nil
}

func nanos(v float64) time.Duration { return time.Duration(v) }
