package iscsi

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// The `vbs target` fixture: the binary is built once per test binary from
// ./cmd/vbs and runs one process per target; TestMain stops them.
const (
	vbsReadyTimeout = 30 * time.Second
	vbsStopTimeout  = 10 * time.Second
	vbsBuildTimeout = 10 * time.Minute
)

type vbsProc struct {
	ep      endpoint
	cmd     *exec.Cmd
	out     *bytes.Buffer
	exited  chan struct{}
	waitErr error
}

type vbsFixture struct {
	dir   string
	bin   string
	procs []*vbsProc
	env   targetEnv
	err   error
}

// moduleRoot finds the directory holding go.mod above the test's
// working directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the test directory")
		}
		dir = parent
	}
}

func (f *vbsFixture) start() error {
	dir, err := os.MkdirTemp("", "vbs-initiator-vbs-")
	if err != nil {
		return err
	}
	f.dir = dir
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	f.bin = filepath.Join(dir, "vbs")
	ctx, cancel := context.WithTimeout(context.Background(), vbsBuildTimeout)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", f.bin, "./cmd/vbs")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/vbs: %v\n%s", err, out)
	}
	chapFlag := chapUser + ":" + chapSecret
	targets := []struct {
		iqn  string
		args []string
	}{
		{iqnOpen, []string{"--lun", "file:" + filepath.Join(dir, "open.img") + ",size=" + strconv.Itoa(fileLUNSize), "--lun", "null:1GiB"}},
		{iqnChap, []string{"--lun", "mem:16MiB", "--chap", chapFlag}},
		{iqnMutual, []string{"--lun", "null:1GiB", "--chap", mutualUser + ":" + mutualSecret,
			"--mutual-chap", targetUser + ":" + targetSecret}},
	}
	for _, tg := range targets {
		port, err := freePort()
		if err != nil {
			return err
		}
		p := &vbsProc{ep: endpoint{net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), tg.iqn}, out: &bytes.Buffer{}}
		args := append([]string{"target", "--listen", p.ep.addr, "--iqn", tg.iqn}, tg.args...)
		p.cmd = exec.Command(f.bin, args...)
		p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
		p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := p.cmd.Start(); err != nil {
			return fmt.Errorf("start vbs target: %w", err)
		}
		p.exited = make(chan struct{})
		go func() {
			p.waitErr = p.cmd.Wait()
			close(p.exited)
		}()
		f.procs = append(f.procs, p)
	}
	for _, p := range f.procs {
		if err := p.waitReady(); err != nil {
			return err
		}
	}
	open, chap, mutual := f.procs[0].ep, f.procs[1].ep, f.procs[2].ep
	f.env = targetEnv{
		name:         "vbs",
		discovery:    open.addr,
		discoverable: []endpoint{open},
		open:         open,
		chap:         chap,
		mutual:       mutual,
		digest:       open,
		fileLUN:      0,
		nullLUN:      1,
		luns:         []uint64{0, 1},
		fileBlocks:   fileLUNSize / blockSize,
	}
	return nil
}

// waitReady polls the portal until it accepts connections.
func (p *vbsProc) waitReady() error {
	deadline := time.Now().Add(vbsReadyTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		c, err := net.DialTimeout("tcp", p.ep.addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("vbs target %s not ready after %v: %v; output:\n%s", p.ep.iqn, vbsReadyTimeout, err, p.out)
		}
		select {
		case <-tick.C:
		case <-p.exited:
			return fmt.Errorf("vbs target %s exited: %v; output:\n%s", p.ep.iqn, p.waitErr, p.out)
		}
	}
}

// stop asks every process to shut down (SIGTERM), kills laggards, and
// removes the fixture's files.
func (f *vbsFixture) stop() {
	for _, p := range f.procs {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range f.procs {
		select {
		case <-p.exited:
		case <-time.After(vbsStopTimeout):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	}
	if f.dir != "" {
		_ = os.RemoveAll(f.dir)
	}
}

// vbsEnv returns the `vbs target` fixture, building and starting it on
// first use.
func vbsEnv(t testing.TB) *targetEnv {
	t.Helper()
	vbs.once.Do(func() { vbs.f.err = vbs.f.start() })
	if vbs.f.err != nil {
		t.Fatalf("vbs target fixture: %v", vbs.f.err)
	}
	for _, p := range vbs.f.procs {
		select {
		case <-p.exited:
			// Report once, then keep failing without the output.
			out := p.out.String()
			p.out.Reset()
			t.Fatalf("vbs target %s exited: %v; output:\n%s", p.ep.iqn, p.waitErr, out)
		default:
		}
	}
	return &vbs.f.env
}
