package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// End-to-end test of one node: it builds the real vbs binary, starts
// `vbs server`, drives it with the CLI verbs, and writes and reads data
// with a real initiator (qemu-io over libiscsi).

const (
	e2eHost     = "iqn.2026-01.io.vbs.test:host1"
	e2eIntruder = "iqn.2026-01.io.vbs.test:intruder"
	e2eDeadline = 30 * time.Second
)

type e2e struct {
	t       *testing.T
	bin     string
	dir     string
	ports   map[string]string
	srv     *exec.Cmd
	srvLog  *bytes.Buffer
	srvDone chan error
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// goTool finds the go command that runs this test: `go test` puts its
// GOROOT/bin first on PATH.
func goTool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the end-to-end test builds vbs and needs the go command on PATH: %v", err)
	}
	return p
}

func newE2E(t *testing.T) *e2e {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	if _, err := exec.LookPath("qemu-io"); err != nil {
		t.Skip("qemu-io not installed (Debian: qemu-utils and qemu-block-extra; `make deps` installs them)")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "vbs")
	build := exec.Command(goTool(t), "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build vbs: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin, "server", "--help").CombinedOutput(); err != nil {
		t.Fatalf("the vbs binary has no server verb (cmd/vbs/commands.go must list newServerCmd, newVolumeCmd, newSnapshotCmd, newExportCmd, newNodeCmd and newOpCmd): %v\n%s", err, out)
	}
	e := &e2e{t: t, bin: bin, dir: filepath.Join(dir, "data"), ports: map[string]string{
		"api": freePort(t), "iscsi": freePort(t), "raft": freePort(t), "serf": freePort(t),
	}}
	t.Cleanup(e.stop)
	return e
}

// peer returns a second node sharing the binary, with its own data dir
// and ports.
func (e *e2e) peer(name string) *e2e {
	p := &e2e{t: e.t, bin: e.bin, dir: filepath.Join(filepath.Dir(e.dir), name), ports: map[string]string{
		"api": freePort(e.t), "iscsi": freePort(e.t), "raft": freePort(e.t), "serf": freePort(e.t),
	}}
	e.t.Cleanup(p.stop)
	return p
}

// start runs `vbs server` and waits until /readyz answers 200.
func (e *e2e) start(extra ...string) {
	e.t.Helper()
	e.srvLog = &bytes.Buffer{}
	args := append([]string{"server", "--data-dir", e.dir,
		"--api-listen", e.ports["api"], "--iscsi-listen", e.ports["iscsi"],
		"--raft-listen", e.ports["raft"], "--serf-listen", e.ports["serf"]}, extra...)
	e.srv = exec.Command(e.bin, args...)
	e.srv.Stdout, e.srv.Stderr = e.srvLog, e.srvLog
	if err := e.srv.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.srvDone = make(chan error, 1)
	go func(c *exec.Cmd, done chan<- error) { done <- c.Wait() }(e.srv, e.srvDone)
	deadline := time.Now().Add(e2eDeadline)
	for {
		resp, err := http.Get("http://" + e.ports["api"] + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case err := <-e.srvDone:
			e.t.Fatalf("vbs server exited: %v\n%s", err, e.srvLog)
		default:
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("vbs server not ready after %v\n%s", e2eDeadline, e.srvLog)
		}
		time.Sleep(50 * time.Millisecond) // polling a process with a deadline
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (e *e2e) stop() {
	if e.srv == nil {
		return
	}
	_ = e.srv.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-e.srvDone:
		if err != nil {
			e.t.Errorf("vbs server exit: %v\n%s", err, e.srvLog)
		}
	case <-time.After(e2eDeadline):
		_ = e.srv.Process.Kill()
		<-e.srvDone
		e.t.Errorf("vbs server did not stop on SIGTERM\n%s", e.srvLog)
	}
	e.srv = nil
}

// kill ends the server with SIGKILL: no graceful leave.
func (e *e2e) kill() {
	e.t.Helper()
	_ = e.srv.Process.Kill()
	<-e.srvDone
	e.srv = nil
}

// metric returns the value of an unlabelled metric from /metrics.
func (e *e2e) metric(name string) string {
	e.t.Helper()
	resp, err := http.Get("http://" + e.ports["api"] + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			return v
		}
	}
	return ""
}

// waitFor polls cond until it holds or the deadline passes.
func (e *e2e) waitFor(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(e2eDeadline)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s\nserver log:\n%s", what, e.srvLog)
		}
		time.Sleep(50 * time.Millisecond) // polling processes with a deadline
	}
}

// vbs runs a CLI verb against the server and returns stdout, stderr and
// the exit code.
func (e *e2e) vbs(args ...string) (string, string, int) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e2eDeadline)
	defer cancel()
	full := append([]string{"--api", "http://" + e.ports["api"], "--token-file", filepath.Join(e.dir, "api-token")}, args...)
	cmd := exec.CommandContext(ctx, e.bin, full...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("vbs %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

func (e *e2e) mustVBS(args ...string) string {
	e.t.Helper()
	out, errs, code := e.vbs(args...)
	if code != 0 {
		e.t.Fatalf("vbs %v: exit %d\n%s%s\nserver log:\n%s", args, code, out, errs, e.srvLog)
	}
	return out
}

// qemuIO runs qemu-io commands against a volume as an initiator.
func (e *e2e) qemuIO(volume, initiator string, cmds ...string) (string, error) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e2eDeadline)
	defer cancel()
	var args []string
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	args = append(args, "--image-opts", "driver=iscsi,transport=tcp,portal="+e.ports["iscsi"]+
		",target=iqn.2026-01.io.vbs:"+volume+",lun=0,initiator-name="+initiator)
	out, err := exec.CommandContext(ctx, "qemu-io", args...).CombinedOutput()
	if err == nil && strings.Contains(string(out), "qemu-io:") {
		err = errors.New("qemu-io reported an error")
	}
	return string(out), err
}

func (e *e2e) mustQemuIO(volume, initiator string, cmds ...string) string {
	e.t.Helper()
	out, err := e.qemuIO(volume, initiator, cmds...)
	if err != nil {
		e.t.Fatalf("qemu-io %v on %s as %s: %v\n%s\nserver log:\n%s", cmds, volume, initiator, err, out, e.srvLog)
	}
	return out
}

func grepVBS(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, "vbs_volume") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestEndToEndOneNode(t *testing.T) {
	e := newE2E(t)
	e.start()
	if st, err := os.Stat(filepath.Join(e.dir, "api-token")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("api-token: %v, mode %v", err, st.Mode())
	}

	// Create a volume (512-byte blocks: QEMU's iSCSI driver asserts on
	// 4 KiB LUNs that report LBPRZ) and grant it to one host.
	var vol struct{ Name, State string }
	if err := json.Unmarshal([]byte(e.mustVBS("volume", "create", "vol1", "--size", "64M", "--block-size", "512", "-o", "json")), &vol); err != nil {
		t.Fatal(err)
	}
	if vol.Name != "vol1" || vol.State != "VOLUME_STATE_AVAILABLE" {
		t.Fatalf("created %+v", vol)
	}
	var exp struct{ URL string }
	if err := json.Unmarshal([]byte(e.mustVBS("export", "grant", "vol1", "--initiator", e2eHost, "-o", "json")), &exp); err != nil {
		t.Fatal(err)
	}
	if want := "iscsi://" + e.ports["iscsi"] + "/iqn.2026-01.io.vbs:vol1/0"; exp.URL != want {
		t.Fatalf("url = %q, want %q", exp.URL, want)
	}

	// Write patterns through a real initiator and read them back.
	e.mustQemuIO("vol1", e2eHost, "write -P 0x5a 0 1M", "write -P 0x33 4M 64k")
	check := func() {
		t.Helper()
		e.mustQemuIO("vol1", e2eHost, "read -P 0x5a 0 1M", "read -P 0x33 4M 64k", "read -P 0 8M 1M")
	}
	check()
	// The writes show in the per-volume metrics.
	resp, err := http.Get("http://" + e.ports["api"] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`vbs_volume_written_bytes_total{volume="vol1"} 1.11411`, `vbs_volume_io_latency_seconds_count{volume="vol1"}`} {
		if !strings.Contains(string(metrics), want) {
			t.Fatalf("metrics lack %s:\n%s", want, grepVBS(string(metrics)))
		}
	}

	// An initiator without a grant is refused at login.
	if out, err := e.qemuIO("vol1", e2eIntruder, "read 0 4k"); err == nil || !strings.Contains(out, "Authorization failure") {
		t.Fatalf("intruder: %v\n%s", err, out)
	}

	// Grow online while exported; the initiator sees the new size.
	e.mustVBS("volume", "resize", "vol1", "--size", "128M")
	if out := e.mustQemuIO("vol1", e2eHost, "length"); !strings.Contains(out, "128 MiB") {
		t.Fatalf("length after resize: %s", out)
	}

	// Deleting an exported volume is refused with a hint and exit 1.
	if _, errs, code := e.vbs("volume", "delete", "vol1"); code != 1 || !strings.Contains(errs, "revoke access first") {
		t.Fatalf("delete exported volume: exit %d: %s", code, errs)
	}
	// Bad input is refused before anything changes, naming the field.
	if _, errs, code := e.vbs("volume", "create", "Bad_Name", "--size", "1G"); code != 1 || !strings.Contains(errs, "invalid name") {
		t.Fatalf("bad name: exit %d: %s", code, errs)
	}

	// Snapshot, overwrite, clone the snapshot: each volume shows its data.
	e.mustVBS("snapshot", "create", "vol1", "s1")
	e.mustQemuIO("vol1", e2eHost, "write -P 0x77 0 1M")
	e.mustVBS("volume", "create", "clone1", "--from-snapshot", "vol1@s1")
	e.mustVBS("export", "grant", "clone1", "--initiator", e2eHost)
	checkAll := func() {
		t.Helper()
		e.mustQemuIO("vol1", e2eHost, "read -P 0x77 0 1M", "read -P 0x33 4M 64k")
		e.mustQemuIO("clone1", e2eHost, "read -P 0x5a 0 1M", "read -P 0x33 4M 64k", "read -P 0 8M 1M")
	}
	checkAll()
	// Writes to the clone stay in the clone.
	e.mustQemuIO("clone1", e2eHost, "write -P 0x44 2M 64k")
	e.mustQemuIO("vol1", e2eHost, "read -P 0 2M 64k")
	if _, errs, code := e.vbs("snapshot", "delete", "vol1@s1"); code != 1 || !strings.Contains(errs, "clone") {
		t.Fatalf("delete snapshot with a clone: exit %d: %s", code, errs)
	}

	// Revoke: the host can no longer log in; grant again.
	e.mustVBS("export", "revoke", "vol1", "--initiator", e2eHost)
	if out, err := e.qemuIO("vol1", e2eHost, "read 0 4k"); err == nil {
		t.Fatalf("read after revoke succeeded:\n%s", out)
	}
	e.mustVBS("export", "grant", "vol1", "--initiator", e2eHost)

	// Restart: catalog, exports and data survive.
	e.stop()
	e.start()
	out := e.mustVBS("volume", "list")
	if !strings.Contains(out, "vol1") || !strings.Contains(out, "128 MiB") || !strings.Contains(out, "clone1") || !strings.Contains(out, "vol1@s1") {
		t.Fatalf("volume list after restart:\n%s", out)
	}
	if out := e.mustVBS("export", "list"); !strings.Contains(out, e2eHost) {
		t.Fatalf("export list after restart:\n%s", out)
	}
	checkAll()
	e.mustQemuIO("clone1", e2eHost, "read -P 0x44 2M 64k")

	// Flatten the clone: same data, no longer tied to the snapshot.
	e.mustVBS("volume", "flatten", "clone1")
	e.mustQemuIO("clone1", e2eHost, "read -P 0x5a 0 1M", "read -P 0x44 2M 64k")

	// Revert refuses while exported; after a revoke it brings back s1.
	if _, errs, code := e.vbs("snapshot", "revert", "vol1@s1"); code != 1 || !strings.Contains(errs, "revoke access") {
		t.Fatalf("revert exported volume: exit %d: %s", code, errs)
	}
	e.mustVBS("export", "revoke", "vol1", "--initiator", e2eHost)
	e.mustVBS("snapshot", "revert", "vol1@s1")
	e.mustVBS("export", "grant", "vol1", "--initiator", e2eHost)
	check()
	if out, err := e.qemuIO("vol1", e2eIntruder, "read 0 4k"); err == nil {
		t.Fatalf("intruder after restart:\n%s", out)
	}

	// Cascade delete revokes and deletes.
	e.mustVBS("volume", "delete", "vol1", "--cascade")
	if _, errs, code := e.vbs("volume", "get", "vol1"); code != 1 || !strings.Contains(errs, "not found") {
		t.Fatalf("get after delete: exit %d: %s", code, errs)
	}
}

// TestEndToEndDataPathWithoutQuorum grows the cluster to two voters, kills
// the second node so the first loses its Raft quorum, and checks that the
// first node's iSCSI portal keeps serving reads and writes while its API
// refuses changes; when the second node returns, the API works again.
func TestEndToEndDataPathWithoutQuorum(t *testing.T) {
	e := newE2E(t)
	e.start()
	e.mustVBS("volume", "create", "vol1", "--size", "64M", "--block-size", "512")
	e.mustVBS("export", "grant", "vol1", "--initiator", e2eHost)
	e.mustQemuIO("vol1", e2eHost, "write -P 0x21 0 1M")

	n2 := e.peer("node2")
	n2.start("--node-name", "node2", "--join", e.ports["serf"])
	e.waitFor("two raft voters", func() bool { return e.metric("vbs_raft_voters") == "2" })
	n2.kill()
	e.waitFor("the leader to step down", func() bool { return e.metric("vbs_raft_has_leader") == "0" })

	// Control plane down: changes are refused with a clear message...
	if _, errs, code := e.vbs("volume", "create", "vol2", "--size", "64M", "--wait=false"); code != 1 || !strings.Contains(errs, "unavailable") {
		t.Fatalf("create without quorum: exit %d: %s", code, errs)
	}
	// ...but the data path serves.
	e.mustQemuIO("vol1", e2eHost, "read -P 0x21 0 1M", "write -P 0x22 1M 1M", "read -P 0x22 1M 1M")
	if out, err := e.qemuIO("vol1", e2eIntruder, "read 0 4k"); err == nil {
		t.Fatalf("intruder without quorum:\n%s", out)
	}

	n2.start("--node-name", "node2", "--join", e.ports["serf"])
	e.waitFor("a leader again", func() bool { return e.metric("vbs_raft_has_leader") == "1" })
	// Writes go to the leader; a follower names it.
	if _, errs, code := e.vbs("volume", "create", "vol2", "--size", "64M"); code != 0 {
		if !strings.Contains(errs, `the leader is "node2"`) {
			t.Fatalf("create after quorum returned: exit %d: %s", code, errs)
		}
		n2.mustVBS("volume", "create", "vol2", "--size", "64M")
	}
}
