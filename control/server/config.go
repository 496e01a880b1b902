// Package server assembles one storage node: the block store and iSCSI
// portal (through control/node/local), the Raft catalog, Serf membership,
// the leader's reconcile loop and the Connect API with /metrics, /healthz
// and /readyz, all in one process. It owns the lifetime of every piece:
// Run starts them in dependency order and stops them in reverse.
package server

import (
	"os"
	"path/filepath"
	"time"

	"github.com/vbs-storage/vbs/blockstore"
)

// Default listen addresses: all on loopback, so that a fresh node exposes
// nothing to the network until the operator says so.
const (
	DefaultAPIListen   = "127.0.0.1:7480"
	DefaultISCSIListen = "127.0.0.1:3260"
	DefaultRaftListen  = "127.0.0.1:7481"
	DefaultSerfListen  = "127.0.0.1:7482"
	DefaultBaseIQN     = "iqn.2026-01.io.vbs"
	DefaultAPIURL      = "http://" + DefaultAPIListen
)

// Files and folders inside the data dir.
const (
	TokenFile    = "api-token"
	nodeNameFile = "node-name"
	storeDir     = "store"
	tokenBytes   = 32
	dirMode      = 0o700
	secretMode   = 0o600
)

// Config configures a node. Zero fields take the defaults above.
type Config struct {
	DataDir  string
	NodeName string
	// Listen addresses. Port 0 picks a free port (tests); Ready reports
	// the addresses actually bound.
	APIListen   string
	ISCSIListen string
	RaftListen  string
	SerfListen  string
	// ISCSIAdvertise is the portal written into iscsi:// URLs (default:
	// the bound iSCSI address).
	ISCSIAdvertise string
	// Join lists Serf addresses of existing members. Without it the node
	// bootstraps a one-node cluster.
	Join []string
	// TLSCert and TLSKey turn on TLS for the API.
	TLSCert, TLSKey string
	BaseIQN         string
	// PoolCapacity bounds the block store's log space (0: the disk).
	PoolCapacity int64
	// GCInterval is how often the block store's background segment
	// cleaner looks for space to reclaim (0: DefaultGCInterval; negative:
	// never, and space taken by overwrites and deletes stays taken).
	GCInterval        time.Duration
	ReconcileInterval time.Duration
	ElectionTimeout   time.Duration
	ShutdownTimeout   time.Duration
	// Ready, when set, is called once every listener is bound.
	Ready func(Addrs)
}

// Addrs are the addresses a running node bound.
type Addrs struct {
	API, ISCSI, Raft, Serf string
}

// DefaultGCInterval is how often a node's segment cleaner looks for space
// to reclaim.
const DefaultGCInterval = blockstore.DefaultGCInterval

// DefaultShutdownTimeout bounds a graceful stop of the API server.
const DefaultShutdownTimeout = 10 * time.Second

func (c Config) withDefaults() Config {
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir()
	}
	if c.APIListen == "" {
		c.APIListen = DefaultAPIListen
	}
	if c.ISCSIListen == "" {
		c.ISCSIListen = DefaultISCSIListen
	}
	if c.RaftListen == "" {
		c.RaftListen = DefaultRaftListen
	}
	if c.SerfListen == "" {
		c.SerfListen = DefaultSerfListen
	}
	if c.BaseIQN == "" {
		c.BaseIQN = DefaultBaseIQN
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	return c
}

// DefaultDataDir is where `vbs server` keeps its state when --data-dir is
// not given, and where the CLI looks for the token: /var/lib/vbs for
// root, $XDG_DATA_HOME/vbs (or ~/.local/share/vbs) for other users.
func DefaultDataDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/vbs"
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "vbs")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "share", "vbs")
	}
	return "vbs-data"
}
