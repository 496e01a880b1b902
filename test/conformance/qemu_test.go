// Package conformance runs external initiators (QEMU's iSCSI block driver,
// libiscsi's tools) against the real `vbs target` binary. The libiscsi
// suite itself runs from run-libiscsi.sh.
package conformance

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

const (
	targetIQN = "iqn.2026-11.io.vbs:qemu"
	// startTimeout bounds how long the target may take to listen.
	startTimeout = 20 * time.Second
	// toolTimeout bounds one external tool run.
	toolTimeout = 60 * time.Second
)

// vbsPath is the binary under test: $VBS, or cmd/vbs built once by
// TestMain.
var vbsPath string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	vbsPath = os.Getenv("VBS")
	if vbsPath == "" {
		dir, err := os.MkdirTemp("", "vbs-conformance")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		_, file, _, _ := runtime.Caller(0)
		vbsPath = filepath.Join(dir, "vbs")
		cmd := exec.Command("go", "build", "-o", vbsPath, "./cmd/vbs")
		cmd.Dir = filepath.Join(filepath.Dir(file), "..", "..")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "go build ./cmd/vbs: %v\n%s", err, out)
			return 1
		}
	}
	return m.Run()
}

// buildVBS returns the binary under test.
func buildVBS(t *testing.T) string {
	t.Helper()
	return vbsPath
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// runningTarget is a `vbs target` process.
type runningTarget struct {
	cmd  *exec.Cmd
	addr string
	log  *strings.Builder
	done chan error
}

// startTarget runs `vbs target` with args and waits until it listens.
func startTarget(t *testing.T, bin string, args ...string) *runningTarget {
	t.Helper()
	addr := freePort(t)
	all := append([]string{"target", "--listen", addr, "--iqn", targetIQN}, args...)
	cmd := exec.Command(bin, all...)
	var log strings.Builder
	cmd.Stdout = &log
	cmd.Stderr = &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	rt := &runningTarget{cmd: cmd, addr: addr, log: &log, done: make(chan error, 1)}
	go func() { rt.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-rt.done
	})
	deadline := time.Now().Add(startTimeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return rt
		}
		select {
		case err := <-rt.done:
			t.Fatalf("vbs target exited: %v\n%s", err, log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("vbs target did not listen on %s", addr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stop sends SIGTERM and requires a clean exit.
func (rt *runningTarget) stop(t *testing.T) {
	t.Helper()
	if err := rt.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-rt.done:
		rt.done <- err // for Cleanup
		if err != nil {
			t.Fatalf("vbs target exit: %v\n%s", err, rt.log.String())
		}
	case <-time.After(toolTimeout):
		t.Fatal("vbs target did not stop on SIGINT")
	}
}

func need(t *testing.T, tool string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		t.Skipf("%s not installed", tool)
	}
}

func run(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}

// TestQEMU writes and reads back 1 MiB through QEMU's iSCSI driver, with
// and without CHAP, and checks a wrong secret is refused.
func TestQEMU(t *testing.T) {
	need(t, "qemu-io")
	bin := buildVBS(t)

	t.Run("plain", func(t *testing.T) {
		rt := startTarget(t, bin, "--lun", "mem:64MiB")
		url := fmt.Sprintf("iscsi://%s/%s/0", rt.addr, targetIQN)
		out, err := run(t, "qemu-io", "-f", "raw", "-c", "write -P 0xab 0 1M", "-c", "read -P 0xab 0 1M", url)
		if err != nil || strings.Contains(out, "Pattern verification failed") {
			t.Fatalf("qemu-io: %v\n%s", err, out)
		}
		rt.stop(t)
	})

	t.Run("chap", func(t *testing.T) {
		rt := startTarget(t, bin, "--lun", "mem:64MiB", "--chap", "qemuuser:qemusecret12",
			"--allow-initiator", "iqn.2026-11.test:qemu")
		opts := func(pass string) string {
			return fmt.Sprintf("driver=iscsi,transport=tcp,portal=%s,target=%s,lun=0,user=qemuuser,password=%s,initiator-name=iqn.2026-11.test:qemu",
				rt.addr, targetIQN, pass)
		}
		out, err := run(t, "qemu-io", "--image-opts", "-c", "write -P 0x5a 4096 1M", "-c", "read -P 0x5a 4096 1M", opts("qemusecret12"))
		if err != nil || strings.Contains(out, "Pattern verification failed") {
			t.Fatalf("qemu-io with CHAP: %v\n%s", err, out)
		}
		out, err = run(t, "qemu-io", "--image-opts", "-c", "read 0 4k", opts("wrongsecret1"))
		if err == nil || !strings.Contains(out, "Authentication failure") {
			t.Fatalf("qemu-io with a wrong secret: %v\n%s", err, out)
		}
		// An initiator not on the access list is refused even with the
		// right secret (the URL form uses QEMU's default initiator name).
		url := fmt.Sprintf("iscsi://qemuuser%%qemusecret12@%s/%s/0", rt.addr, targetIQN)
		out, err = run(t, "qemu-io", "-f", "raw", "-c", "read 0 4k", url)
		if err == nil {
			t.Fatalf("qemu-io from a stranger succeeded:\n%s", out)
		}
		rt.stop(t)
	})
}

// TestDiscovery lists the target with libiscsi's iscsi-ls.
func TestDiscovery(t *testing.T) {
	need(t, "iscsi-ls")
	bin := buildVBS(t)
	rt := startTarget(t, bin, "--lun", "mem:16MiB", "--lun", "null:1GiB")
	out, err := run(t, "iscsi-ls", "-s", "iscsi://"+rt.addr)
	if err != nil {
		t.Fatalf("iscsi-ls: %v\n%s", err, out)
	}
	for _, want := range []string{"Target:" + targetIQN + " Portal:" + rt.addr + ",1", "Lun:0", "Lun:1"} {
		if !strings.Contains(out, want) {
			t.Errorf("iscsi-ls output lacks %q:\n%s", want, out)
		}
	}
	rt.stop(t)
}

// TestCommandErrors: bad flags and a busy port fail with one clear line
// and exit status 1.
func TestCommandErrors(t *testing.T) {
	bin := buildVBS(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no iqn", []string{"--lun", "mem:1MiB"}, "--iqn is required"},
		{"no lun", []string{"--iqn", targetIQN}, "--lun is required"},
		{"bad size", []string{"--iqn", targetIQN, "--lun", "mem:12x"}, "bad size"},
		{"bad chap", []string{"--iqn", targetIQN, "--lun", "mem:1MiB", "--chap", "nocolon"}, "USER:SECRET"},
		{"mutual without chap", []string{"--iqn", targetIQN, "--lun", "mem:1MiB", "--mutual-chap", "a:b"}, "needs --chap"},
		{"busy port", []string{"--iqn", targetIQN, "--lun", "mem:1MiB", "--listen", busy.Addr().String()}, "address already in use"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(bin, append([]string{"target"}, tt.args...)...)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("exit: %v; want status 1\n%s", err, out)
			}
			lines := nonEmptyLines(string(out))
			if len(lines) != 1 || !strings.Contains(lines[0], tt.want) {
				t.Fatalf("output %q; want one line mentioning %q", out, tt.want)
			}
		})
	}
}

func nonEmptyLines(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) != "" {
			out = append(out, sc.Text())
		}
	}
	return out
}
