// Package report turns benchmark samples (one per fio run) into the
// comparison the project cares about: per job and LUN kind, what tgt and VBS
// achieved, and the ratio vbs/tgt. It renders Markdown and JSON.
//
// It is pure: values in, values or bytes out. It never runs anything and
// never touches files.
package report

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"
)

// Target names.
const (
	TargetTGT = "tgt"
	TargetVBS = "vbs"
)

// LUN kinds.
const (
	LUNNull  = "null"
	LUNFile  = "file"
	LUNStore = "store"
)

// Sample is the result of one fio run of one job against one LUN.
type Sample struct {
	Job    string `json:"job"`
	Target string `json:"target"`
	LUN    string `json:"lun"`
	// Run counts repeats from 1.
	Run int `json:"run"`
	// Direction is "read" or "write": the side of the job that moved data.
	Direction      string        `json:"direction"`
	IOPS           float64       `json:"iops"`
	BandwidthBytes float64       `json:"bandwidth_bytes_per_sec"`
	P50            time.Duration `json:"clat_p50_ns"`
	P99            time.Duration `json:"clat_p99_ns"`
	// Syncs and SyncP99 describe SYNCHRONIZE CACHE commands (fsync jobs).
	Syncs   int64         `json:"syncs,omitempty"`
	SyncP99 time.Duration `json:"sync_p99_ns,omitempty"`
}

// Row is the summary of every run of one job, target and LUN kind: the
// median of each metric over the runs (each metric on its own).
type Row struct {
	Job            string        `json:"job"`
	Target         string        `json:"target"`
	LUN            string        `json:"lun"`
	Runs           int           `json:"runs"`
	IOPS           float64       `json:"iops"`
	BandwidthBytes float64       `json:"bandwidth_bytes_per_sec"`
	P50            time.Duration `json:"clat_p50_ns"`
	P99            time.Duration `json:"clat_p99_ns"`
	// Syncs and SyncP99 are the medians of the SYNCHRONIZE CACHE count and
	// latency p99; zero for jobs that do not flush.
	Syncs   int64         `json:"syncs,omitempty"`
	SyncP99 time.Duration `json:"sync_p99_ns,omitempty"`
}

// Ratio compares VBS with tgt for one job and VBS LUN kind. Each field is
// vbs divided by tgt; 0 means one side is missing or zero. For IOPS higher
// is better for VBS; for latencies lower is better.
type Ratio struct {
	Job string `json:"job"`
	// LUN is the VBS LUN kind; BaseLUN is the tgt LUN kind it is compared
	// with (a VBS store LUN is compared with tgt's file LUN).
	LUN     string  `json:"lun"`
	BaseLUN string  `json:"base_lun"`
	IOPS    float64 `json:"iops"`
	P50     float64 `json:"clat_p50"`
	P99     float64 `json:"clat_p99"`
}

// Meta says where, when and how a report was measured.
type Meta struct {
	Name      string    `json:"name"`
	Date      time.Time `json:"date"`
	Host      string    `json:"host"`
	CPU       string    `json:"cpu"`
	CPUs      int       `json:"cpus"`
	Kernel    string    `json:"kernel"`
	FIO       string    `json:"fio"`
	Command   string    `json:"command"`
	Runtime   string    `json:"runtime"`
	Ramp      string    `json:"ramp"`
	SizeBytes int64     `json:"size_bytes"`
	Repeat    int       `json:"repeat"`
	Notes     []string  `json:"notes,omitempty"`
}

// Report is a whole benchmark run.
type Report struct {
	Meta    Meta     `json:"meta"`
	Samples []Sample `json:"samples"`
	Rows    []Row    `json:"rows"`
	Ratios  []Ratio  `json:"ratios"`
}

// New summarises samples into rows and ratios. jobOrder and lunOrder give
// the order of rows; jobs or LUN kinds missing from them sort after, by name.
func New(meta Meta, samples []Sample, jobOrder, lunOrder []string) Report {
	rows := Summarize(samples, jobOrder, lunOrder)
	return Report{Meta: meta, Samples: samples, Rows: rows, Ratios: Ratios(rows)}
}

type rowKey struct{ job, target, lun string }

// Summarize groups samples by job, target and LUN kind and takes the median
// of each metric. Rows come in jobOrder, then lunOrder, then tgt before vbs.
func Summarize(samples []Sample, jobOrder, lunOrder []string) []Row {
	groups := map[rowKey][]Sample{}
	var keys []rowKey
	for _, s := range samples {
		k := rowKey{s.Job, s.Target, s.LUN}
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], s)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if c := compareIn(jobOrder, a.job, b.job); c != 0 {
			return c < 0
		}
		if c := compareIn(lunOrder, a.lun, b.lun); c != 0 {
			return c < 0
		}
		return compareIn([]string{TargetTGT, TargetVBS}, a.target, b.target) < 0
	})
	rows := make([]Row, 0, len(keys))
	for _, k := range keys {
		g := groups[k]
		rows = append(rows, Row{
			Job:            k.job,
			Target:         k.target,
			LUN:            k.lun,
			Runs:           len(g),
			IOPS:           median(g, func(s Sample) float64 { return s.IOPS }),
			BandwidthBytes: median(g, func(s Sample) float64 { return s.BandwidthBytes }),
			P50:            time.Duration(median(g, func(s Sample) float64 { return float64(s.P50) })),
			P99:            time.Duration(median(g, func(s Sample) float64 { return float64(s.P99) })),
			Syncs:          int64(median(g, func(s Sample) float64 { return float64(s.Syncs) })),
			SyncP99:        time.Duration(median(g, func(s Sample) float64 { return float64(s.SyncP99) })),
		})
	}
	return rows
}

// BaseLUN returns the tgt LUN kind that a VBS LUN kind is compared with:
// tgt has no store, so a VBS store LUN is compared with tgt's file LUN.
func BaseLUN(vbsLUN string) string {
	if vbsLUN == LUNStore {
		return LUNFile
	}
	return vbsLUN
}

// Ratios pairs every VBS row with the tgt row of the same job and base LUN
// kind, in the order of the VBS rows. VBS rows without a tgt partner get no
// ratio.
func Ratios(rows []Row) []Ratio {
	tgt := map[rowKey]Row{}
	for _, r := range rows {
		if r.Target == TargetTGT {
			tgt[rowKey{r.Job, r.Target, r.LUN}] = r
		}
	}
	var out []Ratio
	for _, r := range rows {
		if r.Target != TargetVBS {
			continue
		}
		base := BaseLUN(r.LUN)
		t, ok := tgt[rowKey{r.Job, TargetTGT, base}]
		if !ok {
			continue
		}
		out = append(out, Ratio{
			Job:     r.Job,
			LUN:     r.LUN,
			BaseLUN: base,
			IOPS:    ratio(r.IOPS, t.IOPS),
			P50:     ratio(float64(r.P50), float64(t.P50)),
			P99:     ratio(float64(r.P99), float64(t.P99)),
		})
	}
	return out
}

// ratio returns a/b, or 0 when either side is missing.
func ratio(a, b float64) float64 {
	if a <= 0 || b <= 0 {
		return 0
	}
	return a / b
}

// median of f over the samples; the mean of the middle two for an even count.
func median(g []Sample, f func(Sample) float64) float64 {
	if len(g) == 0 {
		return 0
	}
	v := make([]float64, len(g))
	for i, s := range g {
		v[i] = f(s)
	}
	slices.Sort(v)
	mid := len(v) / 2
	if len(v)%2 == 1 {
		return v[mid]
	}
	return (v[mid-1] + v[mid]) / 2
}

// compareIn orders a and b by their index in order; names not in order come
// after, alphabetically.
func compareIn(order []string, a, b string) int {
	ia, ib := slices.Index(order, a), slices.Index(order, b)
	switch {
	case ia >= 0 && ib >= 0:
		return ia - ib
	case ia >= 0:
		return -1
	case ib >= 0:
		return 1
	default:
		return strings.Compare(a, b)
	}
}

// JSON returns the report as indented JSON, durations in nanoseconds.
func (r Report) JSON() ([]byte, error) {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode report: %w", err)
	}
	return append(b, '\n'), nil
}

// WriteMarkdown renders the report: a header with the conditions, the
// results table and the ratio table.
func (r Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	m := r.Meta
	fmt.Fprintf(&b, "# Benchmark %s: %s\n\n", m.Name, m.Date.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "- Machine: %s, %d CPUs (%s), kernel %s\n", m.Host, m.CPUs, m.CPU, m.Kernel)
	fmt.Fprintf(&b, "- fio: %s (libiscsi engine), runtime %s per job after %s ramp, LUN size %s, %d run(s) per job\n",
		m.FIO, m.Runtime, m.Ramp, formatBytes(float64(m.SizeBytes)), m.Repeat)
	fmt.Fprintf(&b, "- Command: `%s`\n", m.Command)
	for _, n := range m.Notes {
		fmt.Fprintf(&b, "- %s\n", n)
	}
	b.WriteString("\n## Results (median over runs; latency is fio clat)\n\n")
	b.WriteString(RowsTable(r.Rows, r.Ratios))
	if len(r.Ratios) > 0 {
		b.WriteString("\n## vbs/tgt\n\n")
		b.WriteString("IOPS above 1 and latency below 1 mean VBS does better.\n\n")
		b.WriteString(RatiosTable(r.Ratios))
	}
	if t := SyncTable(r.Rows); t != "" {
		b.WriteString("\n## SYNCHRONIZE CACHE (jobs that flush)\n\n")
		b.WriteString(t)
	}
	_, err := io.WriteString(w, b.String())
	if err != nil {
		return fmt.Errorf("write markdown: %w", err)
	}
	return nil
}

// RowsTable renders rows as a Markdown table; a VBS row carries its IOPS
// ratio to tgt when there is one.
func RowsTable(rows []Row, ratios []Ratio) string {
	iopsRatio := map[[2]string]float64{}
	for _, q := range ratios {
		iopsRatio[[2]string{q.Job, q.LUN}] = q.IOPS
	}
	var b strings.Builder
	b.WriteString("| job | target | LUN | IOPS | MiB/s | p50 µs | p99 µs | IOPS vbs/tgt |\n")
	b.WriteString("|---|---|---|---:|---:|---:|---:|---:|\n")
	for _, r := range rows {
		rs := ""
		if r.Target == TargetVBS {
			if q, ok := iopsRatio[[2]string{r.Job, r.LUN}]; ok {
				rs = formatRatio(q)
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %.0f | %.1f | %s | %s | %s |\n",
			r.Job, r.Target, r.LUN, r.IOPS, r.BandwidthBytes/mib,
			formatMicros(r.P50), formatMicros(r.P99), rs)
	}
	return b.String()
}

// RatiosTable renders ratios as a Markdown table.
func RatiosTable(ratios []Ratio) string {
	var b strings.Builder
	b.WriteString("| job | vbs LUN | tgt LUN | IOPS | p50 latency | p99 latency |\n")
	b.WriteString("|---|---|---|---:|---:|---:|\n")
	for _, q := range ratios {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n",
			q.Job, q.LUN, q.BaseLUN, formatRatio(q.IOPS), formatRatio(q.P50), formatRatio(q.P99))
	}
	return b.String()
}

// SyncTable renders the flush count and p99 flush latency of the rows
// whose jobs flush; it is empty when none does.
func SyncTable(rows []Row) string {
	var b strings.Builder
	for _, r := range rows {
		if r.Syncs == 0 {
			continue
		}
		if b.Len() == 0 {
			b.WriteString("| job | target | LUN | flushes | flush p99 µs |\n")
			b.WriteString("|---|---|---|---:|---:|\n")
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %d | %s |\n", r.Job, r.Target, r.LUN, r.Syncs, formatMicros(r.SyncP99))
	}
	return b.String()
}

const mib = 1 << 20

func formatRatio(q float64) string {
	if q == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", q)
}

func formatMicros(d time.Duration) string {
	return fmt.Sprintf("%.1f", float64(d)/float64(time.Microsecond))
}

func formatBytes(n float64) string {
	const gib = 1 << 30
	if n >= gib {
		return fmt.Sprintf("%.4g GiB", n/gib)
	}
	return fmt.Sprintf("%.4g MiB", n/mib)
}
