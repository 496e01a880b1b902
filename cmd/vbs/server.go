package main

import (
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vbs-storage/vbs/control/domain"
	"github.com/vbs-storage/vbs/control/server"
)

// Flags of `vbs server`.
const (
	flagServerDataDir     = "data-dir"
	flagServerNodeName    = "node-name"
	flagServerAPIListen   = "api-listen"
	flagServerISCSIListen = "iscsi-listen"
	flagServerISCSIAdv    = "iscsi-advertise"
	flagServerRaftListen  = "raft-listen"
	flagServerSerfListen  = "serf-listen"
	flagServerJoin        = "join"
	flagServerTLSCert     = "tls-cert"
	flagServerTLSKey      = "tls-key"
	flagServerBaseIQN     = "base-iqn"
	flagServerPool        = "pool-capacity"
	flagServerGCInterval  = "gc-interval"
	flagServerLogFormat   = "log-format"
	flagServerLogLevel    = "log-level"
)

func newServerCmd() *cobra.Command {
	var (
		cfg       server.Config
		pool      string
		logFormat string
		logLevel  string
	)
	cmd := &cobra.Command{
		Use:   "server [--data-dir DIR] [--api-listen ADDR] [--iscsi-listen ADDR] [--join ADDR ...]",
		Short: "Run a storage node: block store, iSCSI portal and control plane",
		Long: `Run a VBS storage node: the block store, the iSCSI portal, the Raft
catalog, Serf membership and the Connect API, in one process.

With no --join it bootstraps a one-node cluster. Every listener defaults to
loopback; pass --api-listen 0.0.0.0:7480 and --iscsi-listen 0.0.0.0:3260
(and --raft-listen/--serf-listen for more nodes) to open them up.

On first start it writes an API token to DATA_DIR/api-token (mode 0600);
the CLI reads it from there by default.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.GCInterval == 0 {
				cfg.GCInterval = -1 // the flag's 0 means off; the config's means default
			}
			if pool != "" {
				n, err := domain.ParseSize(pool)
				if err != nil {
					return usageError{err}
				}
				cfg.PoolCapacity = int64(n)
			}
			log, err := newLogger(logFormat, logLevel)
			if err != nil {
				return usageError{err}
			}
			return server.Run(cmd.Context(), cfg, log)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, flagServerDataDir, server.DefaultDataDir(), "directory for the block store, the catalog and the API token")
	f.StringVar(&cfg.NodeName, flagServerNodeName, "", "node name (default: the host name, remembered in DATA_DIR)")
	f.StringVar(&cfg.APIListen, flagServerAPIListen, server.DefaultAPIListen, "Connect/gRPC/HTTP API listen address")
	f.StringVar(&cfg.ISCSIListen, flagServerISCSIListen, server.DefaultISCSIListen, "iSCSI portal listen address")
	f.StringVar(&cfg.ISCSIAdvertise, flagServerISCSIAdv, "", "portal address put in iscsi:// URLs (default: the listen address)")
	f.StringVar(&cfg.RaftListen, flagServerRaftListen, server.DefaultRaftListen, "Raft listen address")
	f.StringVar(&cfg.SerfListen, flagServerSerfListen, server.DefaultSerfListen, "Serf gossip listen address")
	f.StringArrayVar(&cfg.Join, flagServerJoin, nil, "Serf address of an existing member to join (repeatable)")
	f.StringVar(&cfg.TLSCert, flagServerTLSCert, "", "TLS certificate for the API (PEM)")
	f.StringVar(&cfg.TLSKey, flagServerTLSKey, "", "TLS private key for the API (PEM)")
	f.StringVar(&cfg.BaseIQN, flagServerBaseIQN, server.DefaultBaseIQN, "prefix of target names (BASE:VOLUME)")
	f.StringVar(&pool, flagServerPool, "", "most space the block store may use, e.g. 100G (default: the disk)")
	f.DurationVar(&cfg.GCInterval, flagServerGCInterval, server.DefaultGCInterval, "how often the segment cleaner looks for space to reclaim (0: never)")
	f.StringVar(&logFormat, flagServerLogFormat, "text", "log format: text or json")
	f.StringVar(&logLevel, flagServerLogLevel, "info", "log level: debug, info, warn, error")
	return cmd
}

func newLogger(format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, errUnknownLogFormat(format)
}

type errUnknownLogFormat string

func (e errUnknownLogFormat) Error() string {
	return "--" + flagServerLogFormat + " " + string(e) + ": want text or json"
}
