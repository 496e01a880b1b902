package report

import (
	"bytes"
	"encoding/json"
	"flag"
	"math"
	"os"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

func sample(job, target, lun string, run int, iops float64, p50, p99 time.Duration) Sample {
	return Sample{Job: job, Target: target, LUN: lun, Run: run, Direction: "read",
		IOPS: iops, BandwidthBytes: iops * 4096, P50: p50, P99: p99}
}

const us = time.Microsecond

func withSyncs(s Sample, n int64, p99 time.Duration) Sample {
	s.Direction, s.Syncs, s.SyncP99 = "write", n, p99
	return s
}

func TestSummarizeMedianAndOrder(t *testing.T) {
	samples := []Sample{
		sample("b", TargetVBS, LUNNull, 1, 300, 30*us, 90*us),
		sample("b", TargetTGT, LUNNull, 1, 100, 10*us, 50*us),
		sample("a", TargetVBS, LUNFile, 1, 50, 5*us, 9*us),
		sample("a", TargetVBS, LUNFile, 2, 70, 7*us, 7*us),
		sample("a", TargetVBS, LUNFile, 3, 60, 6*us, 8*us),
		sample("a", TargetTGT, LUNNull, 1, 10, 1*us, 2*us),
		sample("a", TargetTGT, LUNNull, 2, 20, 2*us, 4*us),
	}
	rows := Summarize(samples, []string{"b", "a"}, []string{LUNNull, LUNFile})
	want := []Row{
		{Job: "b", Target: TargetTGT, LUN: LUNNull, Runs: 1, IOPS: 100, BandwidthBytes: 100 * 4096, P50: 10 * us, P99: 50 * us},
		{Job: "b", Target: TargetVBS, LUN: LUNNull, Runs: 1, IOPS: 300, BandwidthBytes: 300 * 4096, P50: 30 * us, P99: 90 * us},
		// Even count: mean of the middle two.
		{Job: "a", Target: TargetTGT, LUN: LUNNull, Runs: 2, IOPS: 15, BandwidthBytes: 15 * 4096, P50: 1500 * time.Nanosecond, P99: 3 * us},
		// Odd count: each metric's own median (60, 6, 8), not one run's.
		{Job: "a", Target: TargetVBS, LUN: LUNFile, Runs: 3, IOPS: 60, BandwidthBytes: 60 * 4096, P50: 6 * us, P99: 8 * us},
	}
	if len(rows) != len(want) {
		t.Fatalf("got %d rows, want %d: %+v", len(rows), len(want), rows)
	}
	for i := range want {
		if rows[i] != want[i] {
			t.Errorf("row %d = %+v, want %+v", i, rows[i], want[i])
		}
	}
}

func TestRatios(t *testing.T) {
	rows := []Row{
		{Job: "j", Target: TargetTGT, LUN: LUNNull, IOPS: 100, P50: 10 * us, P99: 40 * us},
		{Job: "j", Target: TargetVBS, LUN: LUNNull, IOPS: 150, P50: 5 * us, P99: 60 * us},
		{Job: "j", Target: TargetTGT, LUN: LUNFile, IOPS: 80, P50: 20 * us, P99: 0},
		{Job: "j", Target: TargetVBS, LUN: LUNFile, IOPS: 40, P50: 40 * us, P99: 90 * us},
		{Job: "j", Target: TargetVBS, LUN: LUNStore, IOPS: 20, P50: 80 * us, P99: 100 * us},
		// No tgt partner: no ratio.
		{Job: "k", Target: TargetVBS, LUN: LUNNull, IOPS: 1, P50: us, P99: us},
	}
	got := Ratios(rows)
	want := []Ratio{
		{Job: "j", LUN: LUNNull, BaseLUN: LUNNull, IOPS: 1.5, P50: 0.5, P99: 1.5},
		// A zero on the tgt side gives 0 ("n/a"), never Inf.
		{Job: "j", LUN: LUNFile, BaseLUN: LUNFile, IOPS: 0.5, P50: 2, P99: 0},
		// store is compared with tgt's file LUN.
		{Job: "j", LUN: LUNStore, BaseLUN: LUNFile, IOPS: 0.25, P50: 4, P99: 0},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d ratios, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Job != w.Job || g.LUN != w.LUN || g.BaseLUN != w.BaseLUN ||
			!near(g.IOPS, w.IOPS) || !near(g.P50, w.P50) || !near(g.P99, w.P99) {
			t.Errorf("ratio %d = %+v, want %+v", i, g, w)
		}
	}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func goldenReport() Report {
	meta := Meta{
		Name: "golden", Date: time.Date(2026, 11, 21, 23, 45, 0, 0, time.UTC),
		Host: "box", CPU: "Test CPU", CPUs: 2, Kernel: "6.1.0", FIO: "fio-3.33",
		Command: "vbs-bench --repeat 2", Runtime: "10s", Ramp: "2s", SizeBytes: 1 << 30, Repeat: 2,
		Notes: []string{"A note."},
	}
	samples := []Sample{
		sample("randread-4k-qd1", TargetTGT, LUNNull, 1, 20000, 45*us, 90*us),
		sample("randread-4k-qd1", TargetVBS, LUNNull, 1, 30000, 30*us, 70*us),
		sample("randread-4k-qd1", TargetTGT, LUNNull, 2, 22000, 43*us, 80*us),
		sample("randread-4k-qd1", TargetVBS, LUNNull, 2, 28000, 32*us, 75*us),
		sample("randread-4k-qd1", TargetTGT, LUNFile, 1, 10000, 90*us, 200*us),
		sample("randread-4k-qd1", TargetVBS, LUNStore, 1, 12500, 80*us, 150*us),
		withSyncs(sample("randwrite-4k-qd1-fsync8", TargetTGT, LUNFile, 1, 3000, 60*us, 2000*us), 3750, 8000*us),
		withSyncs(sample("randwrite-4k-qd1-fsync8", TargetVBS, LUNStore, 1, 9000, 40*us, 120*us), 11250, 110*us),
	}
	return New(meta, samples, []string{"randread-4k-qd1", "randwrite-4k-qd1-fsync8"}, []string{LUNNull, LUNFile, LUNStore})
}

func TestMarkdownGolden(t *testing.T) {
	var b bytes.Buffer
	if err := goldenReport().WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	const golden = "testdata/report.golden.md"
	if *update {
		if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if !bytes.Equal(b.Bytes(), want) {
		t.Errorf("markdown differs from %s (run with -update if intended):\n%s", golden, b.String())
	}
}

func TestJSONRoundTrip(t *testing.T) {
	rep := goldenReport()
	data, err := rep.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Samples) != len(rep.Samples) || len(back.Rows) != len(rep.Rows) || len(back.Ratios) != len(rep.Ratios) {
		t.Fatalf("round trip lost entries: %+v", back)
	}
	for i := range rep.Rows {
		if back.Rows[i] != rep.Rows[i] {
			t.Errorf("row %d = %+v, want %+v", i, back.Rows[i], rep.Rows[i])
		}
	}
	if !back.Meta.Date.Equal(rep.Meta.Date) || back.Meta.SizeBytes != rep.Meta.SizeBytes {
		t.Errorf("meta = %+v, want %+v", back.Meta, rep.Meta)
	}
}
