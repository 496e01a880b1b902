package main

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vbs-storage/vbs/bench/fiojson"
	"github.com/vbs-storage/vbs/bench/report"
)

func TestPlanAlternates(t *testing.T) {
	steps := plan([]string{"j1", "j2"}, []string{report.LUNNull, report.LUNStore}, allTargets(), 2)
	var got []string
	for _, s := range steps {
		got = append(got, strings.Join([]string{strconv.Itoa(s.run), s.job, s.lun, s.target}, "/"))
	}
	want := []string{
		"1/j1/null/tgt", "1/j1/null/vbs", "1/j1/store/vbs",
		"1/j2/null/tgt", "1/j2/null/vbs", "1/j2/store/vbs",
		"2/j1/null/tgt", "2/j1/null/vbs", "2/j1/store/vbs",
		"2/j2/null/tgt", "2/j2/null/vbs", "2/j2/store/vbs",
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("plan =\n%v\nwant\n%v", got, want)
	}
}

func TestPlanTGTOnly(t *testing.T) {
	steps := plan([]string{"j"}, allLUNs(), []string{report.TargetTGT}, 1)
	if len(steps) != 2 || steps[0].lun != report.LUNNull || steps[1].lun != report.LUNFile {
		t.Errorf("plan = %+v, want null and file on tgt (tgt has no store)", steps)
	}
}

func TestFioISCSIURL(t *testing.T) {
	got := fioISCSIURL("127.0.0.1", 3260, "iqn.2026-11.io.vbs:bench-tgt", 2)
	want := `iscsi\://127.0.0.1\:3260/iqn.2026-11.io.vbs\:bench-tgt/2`
	if got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestHasEngine(t *testing.T) {
	out := []byte("Available IO engines:\n\tcpuio\n\tlibiscsi\n\tlibaio\n")
	if !hasEngine(out, "libiscsi") || hasEngine(out, "iscsi") || hasEngine(out, "rbd") {
		t.Error("hasEngine misread the engine list")
	}
}

func TestSampleFromRealFioOutput(t *testing.T) {
	tests := []struct {
		file   string
		dir    fiojson.Direction
		syncs  bool
		target string
	}{
		{"../../fiojson/testdata/tgt-randread-4k-qd32.json", fiojson.DirRead, false, report.TargetTGT},
		{"../../fiojson/testdata/tgt-randwrite-4k-qd1-fsync8.json", fiojson.DirWrite, true, report.TargetVBS},
	}
	for _, tt := range tests {
		out, err := os.ReadFile(tt.file)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := fiojson.Parse(out)
		if err != nil {
			t.Fatal(err)
		}
		st := step{run: 3, job: "job", lun: report.LUNFile, target: tt.target}
		s, err := sampleFrom(st, rep)
		if err != nil {
			t.Fatal(err)
		}
		_, stats := rep.Jobs[0].Primary()
		if s.Job != "job" || s.Target != tt.target || s.LUN != report.LUNFile || s.Run != 3 ||
			s.Direction != string(tt.dir) || s.IOPS != stats.IOPS || s.P50 != stats.CLat.P50 || s.P99 != stats.CLat.P99 {
			t.Errorf("%s: sample %+v from %+v", tt.file, s, stats)
		}
		if (s.Syncs > 0) != tt.syncs || (s.SyncP99 > 0) != tt.syncs {
			t.Errorf("%s: syncs %d p99 %v, want syncs=%v", tt.file, s.Syncs, s.SyncP99, tt.syncs)
		}
	}
}

func TestSampleFromRejectsEmptyRuns(t *testing.T) {
	st := step{run: 1, job: "j", lun: report.LUNNull, target: report.TargetTGT}
	if _, err := sampleFrom(st, fiojson.Report{Jobs: []fiojson.Job{{Name: "j"}}}); err == nil {
		t.Error("accepted a run that moved no data")
	}
	if _, err := sampleFrom(st, fiojson.Report{Jobs: make([]fiojson.Job, 2)}); err == nil {
		t.Error("accepted a report with two jobs")
	}
}

func TestResultBaseAndCPUModel(t *testing.T) {
	m := report.Meta{Name: "run", Date: time.Date(2026, 11, 21, 23, 5, 0, 0, time.UTC)}
	if got := resultBase(m); got != "2026-11-21T2305Z-run" {
		t.Errorf("resultBase = %s", got)
	}
	info := "processor\t: 0\nmodel name\t: Example CPU @ 2.0GHz\nflags\t: fpu\n"
	if got := cpuModel(info); got != "Example CPU @ 2.0GHz" {
		t.Errorf("cpuModel = %q", got)
	}
	if got := cpuModel(""); got != "unknown CPU" {
		t.Errorf("cpuModel(empty) = %q", got)
	}
}

func TestDurationArg(t *testing.T) {
	for d, want := range map[time.Duration]string{0: "0ms", 1500 * time.Millisecond: "1500ms", 10 * time.Second: "10000ms"} {
		if got := durationArg(d); got != want {
			t.Errorf("durationArg(%v) = %s, want %s", d, got, want)
		}
	}
}

func TestCommandFailures(t *testing.T) {
	clean := "fio: some warning\n"
	if err := commandFailures(clean); err != nil {
		t.Errorf("clean stderr: %v", err)
	}
	// As fio 3.33 logs a SYNCHRONIZE CACHE(16) that VBS rejected.
	bad := "iscsi: request failed with error SENSE KEY:ILLEGAL_REQUEST(5) ASCQ:LBA_OUT_OF_RANGE(0x2100).\n" +
		"iscsi: request failed with error SENSE KEY:ILLEGAL_REQUEST(5) ASCQ:LBA_OUT_OF_RANGE(0x2100).\n"
	err := commandFailures(bad)
	if !errors.Is(err, ErrCommandFailed) || !strings.Contains(err.Error(), "2 times") || !strings.Contains(err.Error(), "LBA_OUT_OF_RANGE") {
		t.Errorf("failed commands: %v", err)
	}
}
