package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Timing of process supervision.
const (
	pollInterval = 50 * time.Millisecond
	readyTimeout = 15 * time.Second
	stopGrace    = 10 * time.Second
	logTailBytes = 2048
)

// ErrMissing marks a tool the harness needs and cannot find; the message
// says which make target provides it.
var ErrMissing = errors.New("missing prerequisite")

// ErrPortBusy marks a listen address that something else already holds.
var ErrPortBusy = errors.New("port busy")

// child is a long-running process the harness started (tgtd, vbs target).
// Its waiter goroutine is the only caller of cmd.Wait; stop waits for it.
type child struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	waitErr error // set before done is closed
}

// startChild starts argv with stdout and stderr going to logPath. The child
// gets its own process group, so a Ctrl-C on the terminal reaches only the
// harness, which then stops its children in order; if the harness dies, the
// kernel kills the child (Pdeathsig).
func startChild(name, logPath string, argv []string) (*child, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create %s log: %w", name, err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("start %s (%s): %w", name, strings.Join(argv, " "), err)
	}
	c := &child{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		c.waitErr = cmd.Wait()
		_ = logf.Close()
		close(c.done)
	}()
	return c, nil
}

// exited reports whether the child has ended.
func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// waitExit waits up to d for the child to end.
func (c *child) waitExit(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.done:
		return true
	case <-t.C:
		return false
	}
}

// signal sends sig to the child's process group.
func (c *child) signal(sig syscall.Signal) {
	if c.cmd.Process != nil {
		_ = syscall.Kill(-c.cmd.Process.Pid, sig)
	}
}

// terminate asks the child to stop with SIGTERM, kills it after grace, and
// always returns with the child reaped.
func (c *child) terminate(grace time.Duration) error {
	if c.exited() {
		return nil
	}
	c.signal(syscall.SIGTERM)
	if c.waitExit(grace) {
		return nil
	}
	c.signal(syscall.SIGKILL)
	<-c.done
	return fmt.Errorf("stop %s: did not exit within %s of SIGTERM, killed", c.name, grace)
}

// kill ends the child at once and reaps it.
func (c *child) kill() {
	if !c.exited() {
		c.signal(syscall.SIGKILL)
	}
	<-c.done
}

// logTail returns the end of the child's log, for error messages.
func (c *child) logTail() string {
	b, err := os.ReadFile(c.logPath)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", c.logPath, err)
	}
	if len(b) > logTailBytes {
		b = b[len(b)-logTailBytes:]
	}
	return strings.TrimSpace(string(b))
}

// exitError describes how the child ended, with its log.
func (c *child) exitError() error {
	return fmt.Errorf("%s exited early (%v); log %s:\n%s", c.name, c.waitErr, c.logPath, c.logTail())
}

// waitReady polls check until it succeeds, the child exits, ctx ends or
// timeout passes.
func waitReady(ctx context.Context, c *child, timeout time.Duration, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	var last error
	for {
		if last = check(ctx); last == nil {
			return nil
		}
		select {
		case <-c.done:
			return c.exitError()
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s: %w (last check: %v); log %s:\n%s",
				c.name, timeout, ctx.Err(), last, c.logPath, c.logTail())
		case <-tick.C:
		}
	}
}

// dialCheck returns a readiness check that succeeds once addr accepts TCP.
func dialCheck(addr string) func(context.Context) error {
	return func(ctx context.Context) error {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return fmt.Errorf("dial %s: %w", addr, err)
		}
		return conn.Close()
	}
}

// checkPortFree fails with ErrPortBusy when addr cannot be listened on, so
// the harness never benchmarks some other process that holds the port.
func checkPortFree(addr, flagName string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%w: cannot listen on %s (%v); choose another port with %s", ErrPortBusy, addr, err, flagName)
	}
	if err := l.Close(); err != nil {
		return fmt.Errorf("release probe listener on %s: %w", addr, err)
	}
	return nil
}

// runTool runs a short command and returns its combined output, failing
// with that output in the error.
func runTool(ctx context.Context, argv ...string) ([]byte, error) {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(out.String()))
	}
	return out.Bytes(), nil
}

// lookTool resolves a binary by name or path, with a hint for when it is
// missing.
func lookTool(name, hint string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%w: %s not found (%v); %s", ErrMissing, name, err, hint)
	}
	return p, nil
}
