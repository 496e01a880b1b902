package fiojson

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The samples in testdata are real fio 3.33 output (libiscsi engine against
// tgt, written by bench/build/fio), including the "note:" line fio prints
// before the JSON. The tests check Parse against an independent decode of
// the same bytes into generic maps, so they hold for any real sample.

func TestParseSamples(t *testing.T) {
	files, err := filepath.Glob("testdata/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no samples in testdata: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			out, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := Parse(out)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			want := genericDecode(t, out)
			if rep.Version != want["fio version"] {
				t.Errorf("Version = %q, want %q", rep.Version, want["fio version"])
			}
			if got, w := rep.Time.UnixMilli(), int64(want["timestamp_ms"].(float64)); got != w {
				t.Errorf("Time = %d ms, want %d", got, w)
			}
			jobs := want["jobs"].([]any)
			if len(rep.Jobs) != len(jobs) {
				t.Fatalf("got %d jobs, want %d", len(rep.Jobs), len(jobs))
			}
			for i, gj := range jobs {
				m := gj.(map[string]any)
				j := rep.Jobs[i]
				if j.Name != m["jobname"] || j.Error != int(m["error"].(float64)) {
					t.Errorf("job %d = %q error %d, want %q error %v", i, j.Name, j.Error, m["jobname"], m["error"])
				}
				checkDir(t, "read", j.Read, m["read"].(map[string]any))
				checkDir(t, "write", j.Write, m["write"].(map[string]any))
				sync := m["sync"].(map[string]any)
				if j.Sync.Count != int64(sync["total_ios"].(float64)) {
					t.Errorf("sync count = %d, want %v", j.Sync.Count, sync["total_ios"])
				}
				checkLat(t, "sync", j.Sync.Lat, sync["lat_ns"].(map[string]any))
			}
		})
	}
}

func genericDecode(t *testing.T, out []byte) map[string]any {
	t.Helper()
	start := 0
	if !bytes.HasPrefix(out, []byte("{")) {
		i := bytes.Index(out, []byte("\n{"))
		if i < 0 {
			t.Fatal("sample has no JSON object on its own line")
		}
		start = i + 1
	}
	var m map[string]any
	if err := json.Unmarshal(out[start:], &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func checkDir(t *testing.T, name string, got Stats, m map[string]any) {
	t.Helper()
	if got.IOPS != m["iops"].(float64) || got.BandwidthBytes != m["bw_bytes"].(float64) {
		t.Errorf("%s: IOPS %v bw %v, want %v %v", name, got.IOPS, got.BandwidthBytes, m["iops"], m["bw_bytes"])
	}
	if got.IOs != int64(m["total_ios"].(float64)) || got.Bytes != int64(m["io_bytes"].(float64)) {
		t.Errorf("%s: IOs %d bytes %d, want %v %v", name, got.IOs, got.Bytes, m["total_ios"], m["io_bytes"])
	}
	if w := time.Duration(m["runtime"].(float64)) * time.Millisecond; got.Runtime != w {
		t.Errorf("%s: runtime %v, want %v", name, got.Runtime, w)
	}
	checkLat(t, name+" clat", got.CLat, m["clat_ns"].(map[string]any))
}

func checkLat(t *testing.T, name string, got Latency, m map[string]any) {
	t.Helper()
	if got.N != int64(m["N"].(float64)) {
		t.Errorf("%s: N = %d, want %v", name, got.N, m["N"])
	}
	pct, _ := m["percentile"].(map[string]any)
	for key, want := range map[string]time.Duration{"50.000000": got.P50, "99.000000": got.P99} {
		v, ok := pct[key]
		switch {
		case !ok && want != 0:
			t.Errorf("%s: p%s = %v, but the sample has no such percentile", name, key, want)
		case ok && time.Duration(v.(float64)) != want:
			t.Errorf("%s: p%s = %v, want %v", name, key, want, time.Duration(v.(float64)))
		}
	}
	if got.N > 0 && (got.P50 <= 0 || got.P99 < got.P50 || got.Max < got.P99/2) {
		t.Errorf("%s: implausible distribution %+v", name, got)
	}
}

func TestPrimary(t *testing.T) {
	tests := []struct {
		file string
		want Direction
	}{
		{"testdata/tgt-randread-4k-qd32.json", DirRead},
		{"testdata/tgt-randwrite-4k-qd1-fsync8.json", DirWrite},
		{"testdata/tgt-seqwrite-128k-qd16.json", DirWrite},
	}
	for _, tt := range tests {
		out, err := os.ReadFile(tt.file)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := Parse(out)
		if err != nil {
			t.Fatal(err)
		}
		dir, s := rep.Jobs[0].Primary()
		if dir != tt.want || s.IOs == 0 {
			t.Errorf("%s: Primary = %s with %d IOs, want %s with some", tt.file, dir, s.IOs, tt.want)
		}
	}
}

func TestParseFsyncSampleHasSyncs(t *testing.T) {
	out, err := os.ReadFile("testdata/tgt-randwrite-4k-qd1-fsync8.json")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	j := rep.Jobs[0]
	// fsync=8: one flush per 8 writes, give or take the ramp boundary.
	if lo, hi := j.Write.IOs/8-2, j.Write.IOs/8+2; j.Sync.Count < lo || j.Sync.Count > hi {
		t.Errorf("syncs = %d for %d writes, want about %d", j.Sync.Count, j.Write.IOs, j.Write.IOs/8)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"empty", "", ErrNoReport},
		{"only notes", "note: something\nfio: engine libiscsi not loadable\n", ErrNoReport},
		{"no jobs", `{"fio version": "fio-3.33", "jobs": []}`, ErrNoJobs},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Parse([]byte(tt.in)); !errors.Is(err, tt.want) {
				t.Errorf("Parse = %v, want %v", err, tt.want)
			}
		})
	}
	for _, in := range []string{
		"{\"jobs\": [",
		`{"jobs": [{"jobname": "x", "read": {"clat_ns": {"percentile": {"fifty": 3}}}}]}`,
		`{"jobs": [{"jobname": "x", "read": {"iops": "many"}}]}`,
	} {
		if _, err := Parse([]byte(in)); err == nil || errors.Is(err, ErrNoReport) || errors.Is(err, ErrNoJobs) {
			t.Errorf("Parse(%q) = %v, want a decode error", in, err)
		}
	}
}

func TestParseIgnoresTrailingOutput(t *testing.T) {
	in := "note: a\n  {\"fio version\": \"v\", \"jobs\": [{\"jobname\": \"j\", \"read\": {\"iops\": 7}}]}\nfio: trailing words\n"
	rep, err := Parse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Jobs[0].Name != "j" || rep.Jobs[0].Read.IOPS != 7 {
		t.Errorf("got %+v", rep.Jobs[0])
	}
}

// FuzzParse checks that no input makes Parse panic and that whatever it
// accepts has at least one job.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.json")
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"jobs":[{"read":{"clat_ns":{"percentile":{"50.0":1e30}}}}]}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		rep, err := Parse(in)
		if err == nil && len(rep.Jobs) == 0 {
			t.Fatal("Parse accepted a report without jobs")
		}
	})
}
