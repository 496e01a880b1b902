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
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// The tgtd fixture: one tgtd child process per test binary, started on
// first use and killed by TestMain.
const (
	iqnInitiator = "iqn.2026-11.io.vbs:initiator-test"
	iqnOpen      = "iqn.2026-11.io.vbs.test:open"
	iqnChap      = "iqn.2026-11.io.vbs.test:chap"
	iqnMutual    = "iqn.2026-11.io.vbs.test:mutual"
	iqnDigest    = "iqn.2026-11.io.vbs.test:digest"
	iqnPing      = "iqn.2026-11.io.vbs.test:ping"
	tidOpen      = 1
	tidChap      = 2
	tidMutual    = 3
	tidDigest    = 4
	tidPing      = 5
	// pingInterval is how often (seconds) tgtd pings sessions of the
	// ping target; pingCount missed answers make it drop the session.
	pingInterval = "1"
	pingCount    = "2"
	lunFile      = 1
	lunNull      = 2
	fileLUNSize  = 64 << 20
	blockSize    = 512

	chapUser     = "alice"
	chapSecret   = "alice-secret-123"
	mutualUser   = "bob"
	mutualSecret = "bob-secret-4567"
	targetUser   = "vbs-target"
	targetSecret = "target-secret-89"

	tgtdReadyTimeout = 20 * time.Second
	installHint      = "tgtd/tgtadm not found: apt-get install tgt"
)

type tgtdFixture struct {
	port    int
	ctl     int // control port: names tgtd's unix socket, must be < 32768
	exited  chan struct{}
	waitErr error
	dir     string
	cmd     *exec.Cmd
	out     *bytes.Buffer
	err     error
	started bool
}

// fixture is owned by TestMain, which stops it after all tests.
type fixtureHolder struct {
	once sync.Once
	f    tgtdFixture
}

var tgt fixtureHolder

// vbsHolder holds the `vbs target` fixture, also owned by TestMain.
type vbsHolder struct {
	once sync.Once
	f    vbsFixture
}

var vbs vbsHolder

func TestMain(m *testing.M) {
	code := m.Run()
	tgt.f.stop()
	vbs.f.stop()
	os.Exit(code)
}

// needTgtd returns the running tgtd fixture, starting it on first use.
// A missing tgt package fails the test: make test installs it.
func needTgtd(t testing.TB) *tgtdFixture {
	t.Helper()
	tgt.once.Do(func() { tgt.f.err = tgt.f.start() })
	if tgt.f.err != nil {
		t.Fatalf("tgtd fixture: %v", tgt.f.err)
	}
	return &tgt.f
}

func (f *tgtdFixture) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(f.port)) }

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tgtdSocketDir is where tgtd puts its control sockets.
const tgtdSocketDir = "/var/run/tgtd"

// freeControlPort picks a control port below tgtd's limit whose socket
// does not exist yet, derived from the (free) iSCSI port.
func freeControlPort(port int) int {
	const lo, span = 20000, 12000
	for i := 0; i < span; i++ {
		ctl := lo + (port+i)%span
		if _, err := os.Stat(filepath.Join(tgtdSocketDir, "socket."+strconv.Itoa(ctl))); os.IsNotExist(err) {
			return ctl
		}
	}
	return lo + port%span
}

func (f *tgtdFixture) start() error {
	for _, bin := range []string{"tgtd", "tgtadm"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("%s (%v)", installHint, err)
		}
	}
	dir, err := os.MkdirTemp("", "vbs-initiator-tgtd-")
	if err != nil {
		return err
	}
	f.dir = dir
	if f.port, err = freePort(); err != nil {
		return err
	}
	f.ctl = freeControlPort(f.port)
	f.out = &bytes.Buffer{}
	f.cmd = exec.Command("tgtd", "-f", "-C", strconv.Itoa(f.ctl), "--iscsi", "portal="+f.addr())
	f.cmd.Stdout, f.cmd.Stderr = f.out, f.out
	f.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := f.cmd.Start(); err != nil {
		return fmt.Errorf("start tgtd: %w", err)
	}
	f.started = true
	f.exited = make(chan struct{})
	go func() {
		f.waitErr = f.cmd.Wait()
		close(f.exited)
	}()
	if err := f.waitReady(); err != nil {
		return err
	}
	return f.configure()
}

// waitReady polls tgtadm and the portal until both answer.
func (f *tgtdFixture) waitReady() error {
	deadline := time.Now().Add(tgtdReadyTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := exec.Command("tgtadm", "-C", strconv.Itoa(f.ctl), "--lld", "iscsi", "--op", "show", "--mode", "target").Run()
		if err == nil {
			var c net.Conn
			if c, err = net.DialTimeout("tcp", f.addr(), time.Second); err == nil {
				c.Close()
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("tgtd not ready after %v: %v; output:\n%s", tgtdReadyTimeout, err, f.out)
		}
		select {
		case <-tick.C:
		case <-f.exited:
			return fmt.Errorf("tgtd exited: %v; output:\n%s", f.waitErr, f.out)
		}
	}
}

func (f *tgtdFixture) adm(args ...string) error {
	full := append([]string{"-C", strconv.Itoa(f.ctl), "--lld", "iscsi"}, args...)
	out, err := exec.Command("tgtadm", full...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("tgtadm %v: %v: %s", args, err, out)
	}
	return nil
}

func (f *tgtdFixture) configure() error {
	file := func(name string, size int64) (string, error) {
		p := filepath.Join(f.dir, name)
		fh, err := os.Create(p)
		if err != nil {
			return "", err
		}
		defer fh.Close()
		return p, fh.Truncate(size)
	}
	openImg, err := file("open.img", fileLUNSize)
	if err != nil {
		return err
	}
	chapImg, err := file("chap.img", fileLUNSize/4)
	if err != nil {
		return err
	}
	digestImg, err := file("digest.img", fileLUNSize)
	if err != nil {
		return err
	}
	tid := strconv.Itoa
	steps := [][]string{
		{"--op", "new", "--mode", "target", "--tid", tid(tidOpen), "-T", iqnOpen},
		{"--op", "new", "--mode", "logicalunit", "--tid", tid(tidOpen), "--lun", tid(lunFile), "-b", openImg},
		{"--op", "update", "--mode", "logicalunit", "--tid", tid(tidOpen), "--lun", tid(lunFile), "--params", "thin_provisioning=1"},
		{"--op", "new", "--mode", "logicalunit", "--tid", tid(tidOpen), "--lun", tid(lunNull), "-E", "null", "-b", "null0"},
		{"--op", "bind", "--mode", "target", "--tid", tid(tidOpen), "-I", "ALL"},

		{"--op", "new", "--mode", "target", "--tid", tid(tidChap), "-T", iqnChap},
		{"--op", "new", "--mode", "logicalunit", "--tid", tid(tidChap), "--lun", tid(lunFile), "-b", chapImg},
		{"--op", "bind", "--mode", "target", "--tid", tid(tidChap), "-I", "ALL"},
		{"--op", "new", "--mode", "account", "--user", chapUser, "--password", chapSecret},
		{"--op", "bind", "--mode", "account", "--tid", tid(tidChap), "--user", chapUser},

		{"--op", "new", "--mode", "target", "--tid", tid(tidMutual), "-T", iqnMutual},
		{"--op", "new", "--mode", "logicalunit", "--tid", tid(tidMutual), "--lun", tid(lunFile), "-E", "null", "-b", "null1"},
		{"--op", "bind", "--mode", "target", "--tid", tid(tidMutual), "-I", "ALL"},
		{"--op", "new", "--mode", "account", "--user", mutualUser, "--password", mutualSecret},
		{"--op", "new", "--mode", "account", "--user", targetUser, "--password", targetSecret},
		{"--op", "bind", "--mode", "account", "--tid", tid(tidMutual), "--user", mutualUser},
		{"--op", "bind", "--mode", "account", "--tid", tid(tidMutual), "--user", targetUser, "--outgoing"},

		{"--op", "new", "--mode", "target", "--tid", tid(tidDigest), "-T", iqnDigest},
		{"--op", "new", "--mode", "logicalunit", "--tid", tid(tidDigest), "--lun", tid(lunFile), "-b", digestImg},
		{"--op", "update", "--mode", "target", "--tid", tid(tidDigest), "-n", "HeaderDigest", "-v", "CRC32C"},
		{"--op", "update", "--mode", "target", "--tid", tid(tidDigest), "-n", "DataDigest", "-v", "CRC32C"},
		{"--op", "bind", "--mode", "target", "--tid", tid(tidDigest), "-I", "ALL"},

		{"--op", "new", "--mode", "target", "--tid", tid(tidPing), "-T", iqnPing},
		{"--op", "new", "--mode", "logicalunit", "--tid", tid(tidPing), "--lun", tid(lunFile), "-E", "null", "-b", "null2"},
		{"--op", "update", "--mode", "target", "--tid", tid(tidPing), "-n", "nop_interval", "-v", pingInterval},
		{"--op", "update", "--mode", "target", "--tid", tid(tidPing), "-n", "nop_count", "-v", pingCount},
		{"--op", "bind", "--mode", "target", "--tid", tid(tidPing), "-I", "ALL"},
	}
	for _, s := range steps {
		if err := f.adm(s...); err != nil {
			return err
		}
	}
	return nil
}

func (f *tgtdFixture) stop() {
	if f.started {
		_ = f.cmd.Process.Kill()
		<-f.exited
		sock := filepath.Join(tgtdSocketDir, "socket."+strconv.Itoa(f.ctl))
		_ = os.Remove(sock)
		_ = os.Remove(sock + ".lock")
	}
	if f.dir != "" {
		_ = os.RemoveAll(f.dir)
	}
}

// testCtx returns a context bounded well under the test timeout.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func openConfig(f *tgtdFixture) Config {
	return Config{Addr: f.addr(), InitiatorName: iqnInitiator, TargetName: iqnOpen}
}

// leakCheck verifies at cleanup that the test started no goroutine that
// outlives it (the fixture's own goroutines are ignored).
func leakCheck(t *testing.T) {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
}
