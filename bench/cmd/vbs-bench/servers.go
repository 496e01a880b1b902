package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/vbs-storage/vbs/bench/report"
)

// IQNs of the two targets under test.
const (
	tgtIQN = "iqn.2026-11.io.vbs:bench-tgt"
	vbsIQN = "iqn.2026-11.io.vbs:bench-vbs"
)

// tgt specifics.
const (
	// tgtTID is the target id the harness creates in its own tgtd.
	tgtTID = "1"
	// tgtFirstLUN: tgt reserves LUN 0 for its controller device.
	tgtFirstLUN = 1
	// tgtNullBackingStore is a placeholder name; tgt's null backing store
	// ignores it and always reports 1 TiB, so fio's size= bounds the I/O.
	tgtNullBackingStore = "nullb"
	tgtBSTypeNull       = "null"
	tgtHint             = "install tgt with 'make bench-target' or 'apt-get install -y tgt'"
	// tgtIPCDir holds tgtd's management socket and its lock file, named
	// after the -C port; tgtd leaves both behind when it exits.
	tgtIPCDir = "/var/run/tgtd"
)

// server is a running iSCSI target under test.
type server interface {
	// url is fio's filename for the LUN kind; ok is false if not served.
	url(lun string) (u string, ok bool)
	// stop shuts the target down and reaps it.
	stop() error
}

// tgtServer is a tgtd the harness started in the foreground with its own
// management port, so it never touches a system tgtd.
type tgtServer struct {
	o      options
	tgtadm string
	child  *child
	lunNum map[string]int
}

// startTGT starts tgtd and creates the target with one LUN per LUN kind
// that tgt serves, backing files in workDir.
func startTGT(ctx context.Context, o options, workDir string) (*tgtServer, error) {
	tgtd, err := lookTool(o.tgtd, tgtHint)
	if err != nil {
		return nil, err
	}
	tgtadm, err := lookTool(o.tgtadm, tgtHint)
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort(o.host, strconv.Itoa(o.tgtPort))
	if err := checkPortFree(addr, "--tgt-port"); err != nil {
		return nil, err
	}
	c, err := startChild("tgtd", filepath.Join(workDir, "tgtd.log"), []string{
		tgtd, "-f", "-C", strconv.Itoa(o.tgtControlPort), "--iscsi", "portal=" + addr,
	})
	if err != nil {
		return nil, err
	}
	t := &tgtServer{o: o, tgtadm: tgtadm, child: c, lunNum: map[string]int{}}
	if err := t.setup(ctx, addr, workDir); err != nil {
		return nil, errors.Join(err, t.stop())
	}
	return t, nil
}

func (t *tgtServer) setup(ctx context.Context, addr, workDir string) error {
	err := waitReady(ctx, t.child, readyTimeout, func(ctx context.Context) error {
		_, err := t.adm(ctx, "--mode", "sys", "--op", "show")
		return err
	})
	if err != nil {
		return fmt.Errorf("tgtd management socket: %w", err)
	}
	if _, err := t.adm(ctx, "--lld", "iscsi", "--mode", "target", "--op", "new",
		"--tid", tgtTID, "--targetname", tgtIQN); err != nil {
		return fmt.Errorf("create tgt target: %w", err)
	}
	n := tgtFirstLUN
	for _, lun := range t.o.luns {
		if !serves(report.TargetTGT, lun) {
			continue
		}
		args := []string{"--lld", "iscsi", "--mode", "logicalunit", "--op", "new",
			"--tid", tgtTID, "--lun", strconv.Itoa(n)}
		switch lun {
		case report.LUNNull:
			args = append(args, "--bstype", tgtBSTypeNull, "--backing-store", tgtNullBackingStore)
		case report.LUNFile:
			path := filepath.Join(workDir, "tgt-file.img")
			if err := sparseFile(path, t.o.size); err != nil {
				return err
			}
			args = append(args, "--backing-store", path)
		default:
			return fmt.Errorf("tgt cannot serve a %s LUN", lun)
		}
		if _, err := t.adm(ctx, args...); err != nil {
			return fmt.Errorf("create tgt %s LUN %d: %w", lun, n, err)
		}
		t.lunNum[lun] = n
		n++
	}
	if _, err := t.adm(ctx, "--lld", "iscsi", "--mode", "target", "--op", "bind",
		"--tid", tgtTID, "--initiator-address", "ALL"); err != nil {
		return fmt.Errorf("open tgt target to all initiators: %w", err)
	}
	if err := waitReady(ctx, t.child, readyTimeout, dialCheck(addr)); err != nil {
		return fmt.Errorf("tgt portal: %w", err)
	}
	return nil
}

func (t *tgtServer) adm(ctx context.Context, args ...string) ([]byte, error) {
	argv := append([]string{t.tgtadm, "-C", strconv.Itoa(t.o.tgtControlPort)}, args...)
	return runTool(ctx, argv...)
}

func (t *tgtServer) url(lun string) (string, bool) {
	n, ok := t.lunNum[lun]
	if !ok {
		return "", false
	}
	return fioISCSIURL(t.o.host, t.o.tgtPort, tgtIQN, n), true
}

// stop shuts tgtd down the way tgt documents (tgtd ignores SIGTERM):
// delete the target, then the system; it kills tgtd if that fails.
func (t *tgtServer) stop() error {
	if t.child.exited() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), stopGrace)
	defer cancel()
	_, errTarget := t.adm(ctx, "--lld", "iscsi", "--mode", "target", "--op", "delete", "--force", "--tid", tgtTID)
	_, errSys := t.adm(ctx, "--mode", "system", "--op", "delete")
	if errSys == nil && t.child.waitExit(stopGrace) {
		return t.removeSocket()
	}
	t.child.kill()
	return errors.Join(
		fmt.Errorf("stop tgtd: killed after a failed shutdown: %w", errors.Join(errTarget, errSys)),
		t.removeSocket())
}

// removeSocket deletes the management socket files our tgtd left behind.
// Only called once our tgtd, which held their lock, has exited.
func (t *tgtServer) removeSocket() error {
	base := filepath.Join(tgtIPCDir, "socket."+strconv.Itoa(t.o.tgtControlPort))
	var errs []error
	for _, p := range []string{base, base + ".lock"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove tgtd socket file: %w", err))
		}
	}
	return errors.Join(errs...)
}

// vbsServer is `vbs target` started by the harness.
type vbsServer struct {
	o      options
	child  *child
	lunNum map[string]int
}

// startVBS starts `vbs target` with one LUN per LUN kind, numbered from 0 in
// order, backing files in workDir.
func startVBS(ctx context.Context, o options, workDir string) (*vbsServer, error) {
	if _, err := os.Stat(o.vbsBin); err != nil {
		return nil, fmt.Errorf("%w: VBS binary %s: %v; build it with 'make build'", ErrMissing, o.vbsBin, err)
	}
	addr := net.JoinHostPort(o.host, strconv.Itoa(o.vbsPort))
	if err := checkPortFree(addr, "--vbs-port"); err != nil {
		return nil, err
	}
	argv := []string{o.vbsBin, "target", "--listen", addr, "--iqn", vbsIQN}
	lunNum := map[string]int{}
	size := strconv.FormatInt(o.size, 10)
	for i, lun := range o.luns {
		var spec string
		switch lun {
		case report.LUNNull:
			spec = "null:" + size
		case report.LUNFile:
			path := filepath.Join(workDir, "vbs-file.img")
			if err := sparseFile(path, o.size); err != nil {
				return nil, err
			}
			spec = "file:" + path + ",size=" + size
		case report.LUNStore:
			dir := filepath.Join(workDir, "vbs-store")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, fmt.Errorf("create store directory: %w", err)
			}
			spec = fmt.Sprintf("store:%s,size=%s,bs=%d", dir, size, o.storeBlockSize)
		default:
			return nil, fmt.Errorf("vbs: unknown LUN kind %q", lun)
		}
		argv = append(argv, "--lun", spec)
		lunNum[lun] = i
	}
	c, err := startChild("vbs target", filepath.Join(workDir, "vbs.log"), argv)
	if err != nil {
		return nil, err
	}
	v := &vbsServer{o: o, child: c, lunNum: lunNum}
	if err := waitReady(ctx, c, readyTimeout, dialCheck(addr)); err != nil {
		return nil, errors.Join(fmt.Errorf("vbs portal: %w", err), v.stop())
	}
	return v, nil
}

func (v *vbsServer) url(lun string) (string, bool) {
	n, ok := v.lunNum[lun]
	if !ok {
		return "", false
	}
	return fioISCSIURL(v.o.host, v.o.vbsPort, vbsIQN, n), true
}

// stop sends SIGTERM (the target's documented way to stop) and kills it
// after a grace period.
func (v *vbsServer) stop() error { return v.child.terminate(stopGrace) }

// sparseFile creates path as a sparse file of size bytes.
func sparseFile(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create backing file: %w", err)
	}
	if err := f.Truncate(size); err != nil {
		_ = f.Close()
		return fmt.Errorf("size backing file %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close backing file %s: %w", path, err)
	}
	return nil
}

// Compile-time checks that both targets satisfy server.
var (
	_ server = (*tgtServer)(nil)
	_ server = (*vbsServer)(nil)
)
