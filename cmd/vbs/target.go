package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vbs-storage/vbs/target"
	"github.com/vbs-storage/vbs/target/device"
	"github.com/vbs-storage/vbs/target/iscsi"
	"github.com/vbs-storage/vbs/target/scsi"
)

// Flags of `vbs target`.
const (
	flagTargetListen     = "listen"
	flagTargetIQN        = "iqn"
	flagTargetLUN        = "lun"
	flagTargetCHAP       = "chap"
	flagTargetMutualCHAP = "mutual-chap"
	flagTargetAllow      = "allow-initiator"
	flagTargetCPUProfile = "cpu-profile"
)

// targetFlags are the parsed flags of `vbs target`.
type targetFlags struct {
	listen     string
	iqn        string
	luns       []string
	chap       string
	mutualCHAP string
	allow      []string
	cpuProfile string
}

func newTargetCmd() *cobra.Command {
	var f targetFlags
	cmd := &cobra.Command{
		Use:   "target --iqn IQN --lun SPEC [--lun SPEC ...]",
		Short: "Serve LUNs over iSCSI without a cluster",
		Long: `Serve one iSCSI target with the given LUNs, numbered from 0 in order.

SPEC is one of:
  null:SIZE                 discards writes, reads zeros
  mem:SIZE                  thin in-memory disk
  file:PATH[,size=SIZE]     image file (created or grown to SIZE)
  store:DIR[,size=SIZE]     VBS block store

SIZE takes units (512, 4k, 10MiB, 1G, ...). With no --allow-initiator and
no --chap every initiator may connect. Serves until SIGINT or SIGTERM, then
lets commands in flight finish, flushes and closes the devices.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runTarget(cmd.Context(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.listen, flagTargetListen, target.DefaultListenAddr, "address to listen on")
	fl.StringVar(&f.iqn, flagTargetIQN, "", "target name (iqn.YYYY-MM.domain:name)")
	fl.StringArrayVar(&f.luns, flagTargetLUN, nil, "LUN spec (repeatable; LUNs numbered from 0)")
	fl.StringVar(&f.chap, flagTargetCHAP, "", "require CHAP from initiators: USER:SECRET")
	fl.StringVar(&f.mutualCHAP, flagTargetMutualCHAP, "", "answer initiators' CHAP challenge (mutual CHAP): USER:SECRET")
	fl.StringArrayVar(&f.allow, flagTargetAllow, nil, "initiator IQN allowed to connect (repeatable; default all)")
	fl.StringVar(&f.cpuProfile, flagTargetCPUProfile, "", "write a pprof CPU profile of the whole run to FILE (for performance work)")
	return cmd
}

// parseCredentials parses USER:SECRET.
func parseCredentials(flag, v string) (*iscsi.Credentials, error) {
	if v == "" {
		return nil, nil
	}
	user, secret, ok := strings.Cut(v, ":")
	if !ok || user == "" || secret == "" {
		return nil, fmt.Errorf("--%s %q: want USER:SECRET", flag, v)
	}
	return &iscsi.Credentials{User: user, Secret: secret}, nil
}

// openLUNs opens every spec in order; on error it closes what it opened.
// store: specs go to the block store (openStoreLUN), the others to package
// device.
func openLUNs(ctx context.Context, specs []string) ([]scsi.Device, error) {
	var devs []scsi.Device
	fail := func(err error) ([]scsi.Device, error) {
		closeDevices(context.Background(), devs, nil)
		return nil, err
	}
	for i, s := range specs {
		spec, err := device.ParseSpec(s)
		if err != nil {
			return fail(fmt.Errorf("--lun %d: %w", i, err))
		}
		var dev scsi.Device
		if spec.Kind == device.KindStore {
			dev, err = openStoreLUN(context.Background(), spec)
		} else {
			dev, err = device.Open(spec)
		}
		if err != nil {
			return fail(fmt.Errorf("--lun %d: %w", i, err))
		}
		devs = append(devs, dev)
	}
	return devs, nil
}

// closeDevices flushes and closes devices, logging failures.
func closeDevices(ctx context.Context, devs []scsi.Device, log *slog.Logger) error {
	var errs []error
	for i, d := range devs {
		if err := d.Flush(ctx); err != nil {
			errs = append(errs, fmt.Errorf("flush lun %d: %w", i, err))
		}
		if c, ok := d.(io.Closer); ok {
			if err := c.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close lun %d: %w", i, err))
			}
		}
	}
	err := errors.Join(errs...)
	if err != nil && log != nil {
		log.Error("closing devices", "err", err)
	}
	return err
}

func runTarget(ctx context.Context, f targetFlags) error {
	if f.iqn == "" {
		return fmt.Errorf("--%s is required", flagTargetIQN)
	}
	if len(f.luns) == 0 {
		return fmt.Errorf("at least one --%s is required", flagTargetLUN)
	}
	chap, err := parseCredentials(flagTargetCHAP, f.chap)
	if err != nil {
		return err
	}
	mutual, err := parseCredentials(flagTargetMutualCHAP, f.mutualCHAP)
	if err != nil {
		return err
	}
	if mutual != nil && chap == nil {
		return fmt.Errorf("--%s needs --%s", flagTargetMutualCHAP, flagTargetCHAP)
	}
	for _, a := range f.allow {
		if a == "" {
			return fmt.Errorf("--%s: empty initiator name", flagTargetAllow)
		}
	}
	devs, err := openLUNs(ctx, f.luns)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		closeDevices(context.Background(), devs, log)
		return fmt.Errorf("listen on %s: %w", f.listen, err)
	}
	srv := target.NewServer(target.Options{ListenAddr: f.listen, Logger: log})
	luns := make(map[uint64]scsi.Device, len(devs))
	for i, d := range devs {
		luns[uint64(i)] = d
	}
	cfg := target.TargetConfig{IQN: f.iqn, LUNs: luns, CHAP: chap, MutualCHAP: mutual}
	for _, a := range f.allow {
		cfg.Access = append(cfg.Access, target.AccessEntry{Initiator: a})
	}
	if err := srv.AddTarget(cfg); err != nil {
		ln.Close()
		closeDevices(context.Background(), devs, log)
		return err
	}
	if f.cpuProfile != "" {
		stop, err := startCPUProfile(f.cpuProfile)
		if err != nil {
			ln.Close()
			closeDevices(context.Background(), devs, log)
			return err
		}
		defer stop()
	}
	log.Info("vbs target serving", "listen", ln.Addr().String(), "iqn", f.iqn, "luns", len(devs))
	serveErr := srv.Serve(ctx, ln)
	srv.Close()
	closeErr := closeDevices(context.Background(), devs, log)
	if serveErr != nil {
		return serveErr
	}
	if closeErr != nil {
		return closeErr
	}
	log.Info("vbs target stopped")
	return nil
}
