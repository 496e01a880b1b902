// Package membership owns cluster membership and failure detection with
// Serf gossip. It is the only package that imports serf. It reports who
// is in the cluster and signals changes as hints; it never decides
// anything: the leader's reconcile loop treats a hint as "look again
// soon", and its periodic full pass is the truth.
package membership

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"sync"

	"github.com/hashicorp/serf/serf"
)

// Tag keys a node gossips about itself.
const (
	TagAPI   = "api"
	TagISCSI = "iscsi"
	TagRaft  = "raft"
)

// eventBuffer is how many Serf events may queue before Serf blocks.
const eventBuffer = 64

// Status is what gossip says about a member.
type Status string

// Member statuses.
const (
	StatusAlive   Status = "alive"
	StatusLeaving Status = "leaving"
	StatusLeft    Status = "left"
	StatusFailed  Status = "failed"
	StatusUnknown Status = "unknown"
)

// Member is one node as gossip sees it.
type Member struct {
	Name   string
	Addr   string
	Status Status
	Tags   map[string]string
}

// Config configures the local Serf member.
type Config struct {
	NodeName string
	// BindAddr is host:port for gossip (UDP and TCP).
	BindAddr string
	// AdvertiseAddr is host:port peers use; empty means BindAddr.
	AdvertiseAddr string
	Tags          map[string]string
	Logger        *slog.Logger
}

// Membership is a running Serf member. Close stops it.
type Membership struct {
	serf   *serf.Serf
	events chan serf.Event
	hints  chan struct{}
	log    *slog.Logger
	wg     sync.WaitGroup
	done   chan struct{}

	closeOnce sync.Once
	closeErr  error
}

// Start creates the local member: a lone one-node cluster until Join.
func Start(cfg Config) (*Membership, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	host, port, err := splitHostPort(cfg.BindAddr)
	if err != nil {
		return nil, fmt.Errorf("serf bind address: %w", err)
	}
	sc := serf.DefaultConfig()
	sc.NodeName = cfg.NodeName
	sc.Tags = cfg.Tags
	mc := sc.MemberlistConfig
	mc.BindAddr, mc.BindPort = host, port
	if cfg.AdvertiseAddr != "" {
		if mc.AdvertiseAddr, mc.AdvertisePort, err = splitHostPort(cfg.AdvertiseAddr); err != nil {
			return nil, fmt.Errorf("serf advertise address: %w", err)
		}
	} else {
		mc.AdvertiseAddr, mc.AdvertisePort = host, port
	}
	lw := slogWriter{cfg.Logger.With("component", "serf")}
	sc.Logger = log.New(lw, "", 0)
	mc.Logger = sc.Logger
	m := &Membership{
		events: make(chan serf.Event, eventBuffer),
		hints:  make(chan struct{}, 1),
		log:    cfg.Logger,
		done:   make(chan struct{}),
	}
	sc.EventCh = m.events
	s, err := serf.Create(sc)
	if err != nil {
		return nil, fmt.Errorf("start serf on %s: %w", cfg.BindAddr, err)
	}
	m.serf = s
	m.wg.Add(1)
	go m.pump()
	return m, nil
}

func splitHostPort(addr string) (string, int, error) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: %w", p, err)
	}
	return h, port, nil
}

// pump turns member events into coalesced hints.
func (m *Membership) pump() {
	defer m.wg.Done()
	for {
		select {
		case <-m.done:
			return
		case e := <-m.events:
			if me, ok := e.(serf.MemberEvent); ok {
				for _, mem := range me.Members {
					m.log.Info("membership event", "event", me.EventType().String(), "member", mem.Name)
				}
				select {
				case m.hints <- struct{}{}:
				default:
				}
			}
		}
	}
}

// Hints delivers a value (coalesced) after membership changes.
func (m *Membership) Hints() <-chan struct{} { return m.hints }

// Join contacts existing members; it returns how many it reached.
func (m *Membership) Join(addrs []string) (int, error) {
	n, err := m.serf.Join(addrs, true)
	if err != nil {
		return n, fmt.Errorf("serf join %v: %w", addrs, err)
	}
	return n, nil
}

// Members lists every known member in name order.
func (m *Membership) Members() []Member {
	ms := m.serf.Members()
	out := make([]Member, 0, len(ms))
	for _, x := range ms {
		out = append(out, Member{
			Name:   x.Name,
			Addr:   net.JoinHostPort(x.Addr.String(), strconv.Itoa(int(x.Port))),
			Status: status(x.Status),
			Tags:   x.Tags,
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func status(s serf.MemberStatus) Status {
	switch s {
	case serf.StatusAlive:
		return StatusAlive
	case serf.StatusLeaving:
		return StatusLeaving
	case serf.StatusLeft:
		return StatusLeft
	case serf.StatusFailed:
		return StatusFailed
	}
	return StatusUnknown
}

// Close leaves the cluster gracefully, shuts Serf down and waits for the
// event goroutine. Later calls return the first call's result.
func (m *Membership) Close() error {
	m.closeOnce.Do(func() {
		lerr := m.serf.Leave()
		err := m.serf.Shutdown()
		close(m.done)
		m.wg.Wait()
		switch {
		case err != nil:
			m.closeErr = fmt.Errorf("serf shutdown: %w", err)
		case lerr != nil:
			m.closeErr = fmt.Errorf("serf leave: %w", lerr)
		}
	})
	return m.closeErr
}

type slogWriter struct{ log *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	p = bytes.TrimSpace(p)
	switch {
	case bytes.Contains(p, []byte("[ERR]")):
		w.log.Error(string(p))
	case bytes.Contains(p, []byte("[WARN]")):
		w.log.Warn(string(p))
	default:
		w.log.Debug(string(p))
	}
	return len(p), nil
}

var _ io.Writer = slogWriter{}
