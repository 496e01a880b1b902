package catalog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// Defaults for Config fields left zero.
const (
	DefaultElectionTimeout = time.Second
	DefaultApplyTimeout    = 10 * time.Second
	raftDirName            = "raft"
	raftDBName             = "raft.db"
	snapshotsRetained      = 2
	transportPoolSize      = 3
	transportTimeout       = 10 * time.Second
)

// Config configures a catalog Store.
type Config struct {
	// NodeName is this server's raft id and Serf name.
	NodeName string
	// DataDir holds raft/raft.db (log and stable store) and raft/snapshots.
	DataDir string
	// BindAddr is the raft TCP listen address; Advertise (optional) is
	// the address peers dial.
	BindAddr  string
	Advertise string
	// Bootstrap makes a node with no raft state start a one-voter
	// cluster of itself. Nodes that will join an existing cluster leave
	// it false.
	Bootstrap bool
	// ElectionTimeout (and heartbeat timeout) for raft.
	ElectionTimeout time.Duration
	Limits          Limits
	Logger          *slog.Logger

	// transport replaces the TCP transport in tests (raft.InmemTransport).
	transport raft.Transport
}

// Store is the replicated catalog: a raft node whose FSM holds the State.
// Writes go through Apply on the leader; reads (View) are served from the
// local FSM and may lag the leader by a few commands on a follower.
type Store struct {
	cfg   Config
	fsm   *FSM
	raft  *raft.Raft
	trans raft.Transport
	db    *raftboltdb.BoltStore
}

// Open starts the raft node. The log and stable store are a bbolt file
// (raft-boltdb): see docs/operations.md for why not pebble.
func Open(cfg Config) (*Store, error) {
	if cfg.NodeName == "" {
		return nil, fmt.Errorf("open catalog: empty node name: %w", ErrInvalid)
	}
	if cfg.ElectionTimeout == 0 {
		cfg.ElectionTimeout = DefaultElectionTimeout
	}
	if cfg.Limits == (Limits{}) {
		cfg.Limits = DefaultLimits()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	dir := filepath.Join(cfg.DataDir, raftDirName)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open catalog: %w", err)
	}
	hlog := hclog.New(&hclog.LoggerOptions{
		Name:   "raft",
		Level:  hclog.Warn,
		Output: slogWriter{cfg.Logger.With("component", "raft")},
	})
	s := &Store{cfg: cfg, fsm: NewFSM(cfg.Limits, cfg.Logger)}
	db, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, raftDBName)})
	if err != nil {
		return nil, fmt.Errorf("open raft log %s: %w", dir, err)
	}
	s.db = db
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, snapshotsRetained, hlog)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open raft snapshots %s: %w", dir, err)
	}
	s.trans = cfg.transport
	if s.trans == nil {
		var adv net.Addr
		if cfg.Advertise != "" {
			if adv, err = net.ResolveTCPAddr("tcp", cfg.Advertise); err != nil {
				_ = db.Close()
				return nil, fmt.Errorf("raft advertise address %q: %w", cfg.Advertise, err)
			}
		}
		t, err := raft.NewTCPTransportWithLogger(cfg.BindAddr, adv, transportPoolSize, transportTimeout, hlog)
		if err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("raft listen %s: %w", cfg.BindAddr, err)
		}
		s.trans = t
	}
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeName)
	rc.Logger = hlog
	rc.HeartbeatTimeout = cfg.ElectionTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.ElectionTimeout / 2
	if cfg.Bootstrap {
		has, err := raft.HasExistingState(db, db, snaps)
		if err != nil {
			s.closeTransport()
			_ = db.Close()
			return nil, fmt.Errorf("check raft state: %w", err)
		}
		if !has {
			conf := raft.Configuration{Servers: []raft.Server{{
				Suffrage: raft.Voter, ID: rc.LocalID, Address: s.trans.LocalAddr(),
			}}}
			if err := raft.BootstrapCluster(rc, db, db, snaps, s.trans, conf); err != nil {
				s.closeTransport()
				_ = db.Close()
				return nil, fmt.Errorf("bootstrap raft: %w", err)
			}
		}
	}
	r, err := raft.NewRaft(rc, s.fsm, db, db, snaps, s.trans)
	if err != nil {
		s.closeTransport()
		_ = db.Close()
		return nil, fmt.Errorf("start raft: %w", err)
	}
	s.raft = r
	return s, nil
}

func (s *Store) closeTransport() {
	if c, ok := s.trans.(raft.WithClose); ok {
		_ = c.Close()
	}
}

// Close stops raft and closes the log store. It does not leave the
// cluster: a restarted node resumes as the same member.
func (s *Store) Close() error {
	err := s.raft.Shutdown().Error()
	s.closeTransport()
	if cerr := s.db.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close raft log: %w", cerr)
	}
	return err
}

// Apply proposes a command and waits until it is committed and applied.
// It returns the FSM's result, or ErrNotLeader on a follower.
func (s *Store) Apply(ctx context.Context, c Command) (any, error) {
	b, err := Encode(c)
	if err != nil {
		return nil, err
	}
	timeout := DefaultApplyTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
		if timeout <= 0 {
			return nil, ctx.Err()
		}
	}
	f := s.raft.Apply(b, timeout)
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return nil, fmt.Errorf("apply command %d: %w", c.Type(), ErrNotLeader)
		}
		return nil, fmt.Errorf("apply command %d: %w", c.Type(), err)
	}
	res, _ := f.Response().(ApplyResult)
	return res.Value, res.Err
}

// Barrier waits until every command committed before the call is applied
// to the local FSM. A new leader calls it before acting on the catalog:
// after a restart raft replays the log tail only once the leader has
// committed an entry of its own term, so without it the FSM may be stale.
func (s *Store) Barrier(ctx context.Context) error {
	timeout := DefaultApplyTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	if err := s.raft.Barrier(timeout).Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return fmt.Errorf("raft barrier: %w", ErrNotLeader)
		}
		return fmt.Errorf("raft barrier: %w", err)
	}
	return nil
}

// View calls fn with the local state under a read lock.
func (s *Store) View(fn func(*State)) { s.fsm.View(fn) }

// Changed returns a channel closed at the next catalog change.
func (s *Store) Changed() <-chan struct{} { return s.fsm.Changed() }

// IsLeader reports whether this node is the raft leader.
func (s *Store) IsLeader() bool { return s.raft.State() == raft.Leader }

// LeaderCh delivers true when this node gains leadership and false when
// it loses it. raft drops values when nobody reads, so readers should also
// poll IsLeader.
func (s *Store) LeaderCh() <-chan bool { return s.raft.LeaderCh() }

// WaitLeader blocks until some node is leader (this one or another).
func (s *Store) WaitLeader(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if addr, _ := s.raft.LeaderWithID(); addr != "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for raft leader: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// Leader returns the leader's raft address and id ("" when unknown).
func (s *Store) Leader() (addr, id string) {
	a, i := s.raft.LeaderWithID()
	return string(a), string(i)
}

// Health summarizes raft for metrics and /readyz.
type Health struct {
	State        string
	Term         uint64
	LastIndex    uint64
	AppliedIndex uint64
	Voters       int
	HasLeader    bool
}

// Health reports raft's current state.
func (s *Store) Health() Health {
	h := Health{
		State:        s.raft.State().String(),
		LastIndex:    s.raft.LastIndex(),
		AppliedIndex: s.raft.AppliedIndex(),
	}
	if a, _ := s.raft.LeaderWithID(); a != "" {
		h.HasLeader = true
	}
	stats := s.raft.Stats()
	_, _ = fmt.Sscan(stats["term"], &h.Term)
	if f := s.raft.GetConfiguration(); f.Error() == nil {
		for _, srv := range f.Configuration().Servers {
			if srv.Suffrage == raft.Voter {
				h.Voters++
			}
		}
	}
	return h
}

// AddVoter adds a server to the raft configuration (leader only). It is
// how a node that joined through Serf becomes a catalog replica.
func (s *Store) AddVoter(ctx context.Context, id, addr string) error {
	if err := s.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, DefaultApplyTimeout).Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) {
			return fmt.Errorf("add voter %s: %w", id, ErrNotLeader)
		}
		return fmt.Errorf("add voter %s at %s: %w", id, addr, err)
	}
	return nil
}

// RemoveServer removes a server from the raft configuration (leader
// only), so that a node that left on purpose no longer counts toward
// quorum.
func (s *Store) RemoveServer(ctx context.Context, id string) error {
	if err := s.raft.RemoveServer(raft.ServerID(id), 0, DefaultApplyTimeout).Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) {
			return fmt.Errorf("remove server %s: %w", id, ErrNotLeader)
		}
		return fmt.Errorf("remove server %s: %w", id, err)
	}
	return nil
}

// Voters lists the ids of the voters in the latest raft configuration.
func (s *Store) Voters() ([]string, error) {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("raft configuration: %w", err)
	}
	var ids []string
	for _, srv := range f.Configuration().Servers {
		if srv.Suffrage == raft.Voter {
			ids = append(ids, string(srv.ID))
		}
	}
	return ids, nil
}

// Snapshot forces a raft snapshot (log compaction); for tests and tools.
func (s *Store) Snapshot() error {
	if err := s.raft.Snapshot().Error(); err != nil {
		return fmt.Errorf("raft snapshot: %w", err)
	}
	return nil
}

// slogWriter turns hclog's line output into slog records.
type slogWriter struct{ log *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.log.Warn(string(bytes.TrimSpace(p)))
	return len(p), nil
}
