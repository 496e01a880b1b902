package target

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"

	"github.com/vbs-storage/vbs/target/iscsi"
	"github.com/vbs-storage/vbs/target/scsi"
)

// Server is an iSCSI portal serving a set of targets. All methods are safe
// for concurrent use. The zero value is not usable; call NewServer.
type Server struct {
	opts Options
	log  *slog.Logger

	mu        sync.Mutex
	targets   map[string]*exported
	sessions  map[uint16]*session
	nextTSIH  uint16
	conns     map[*conn]struct{}
	listeners map[net.Listener]struct{}
	logins    int
	closed    bool

	// wg counts Serve loops and connection goroutines.
	wg sync.WaitGroup
}

// NewServer returns a server with no targets.
func NewServer(opts Options) *Server {
	opts = opts.withDefaults()
	return &Server{
		opts:      opts,
		log:       opts.Logger,
		targets:   make(map[string]*exported),
		sessions:  make(map[uint16]*session),
		conns:     make(map[*conn]struct{}),
		listeners: make(map[net.Listener]struct{}),
	}
}

// AddTarget starts exporting a target. Initiators may discover it and log
// in at once.
func (s *Server) AddTarget(cfg TargetConfig) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	cfg.Access = slices.Clone(cfg.Access)
	st := cfg.SCSI
	if st == nil {
		st = scsi.NewTarget(scsi.TargetOptions{Name: cfg.IQN})
		luns := make([]uint64, 0, len(cfg.LUNs))
		for l := range cfg.LUNs {
			luns = append(luns, l)
		}
		slices.Sort(luns)
		for _, l := range luns {
			if err := st.AddLU(l, cfg.LUNs[l], scsi.LUOptions{WriteCache: true}); err != nil {
				return fmt.Errorf("add target %s: %w", cfg.IQN, err)
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.targets[cfg.IQN]; ok {
		return fmt.Errorf("add target %s: %w", cfg.IQN, ErrTargetExists)
	}
	s.targets[cfg.IQN] = &exported{cfg: cfg, scsi: st}
	return nil
}

// RemoveTarget stops exporting a target and drops its sessions. Commands in
// flight finish before their connections close.
func (s *Server) RemoveTarget(iqn string) error {
	s.mu.Lock()
	t, ok := s.targets[iqn]
	if !ok {
		s.mu.Unlock()
		return fmt.Errorf("remove target %s: %w", iqn, ErrNoSuchTarget)
	}
	delete(s.targets, iqn)
	victims := s.sessionsOfLocked(t, func(*session) bool { return true })
	s.mu.Unlock()
	for _, ss := range victims {
		ss.conn.requestDrop("target removed")
	}
	return nil
}

// SetAccess replaces the access list of a target. It takes effect at once:
// sessions of initiators no longer allowed are dropped.
func (s *Server) SetAccess(iqn string, entries []AccessEntry) error {
	for _, e := range entries {
		if e.Initiator == "" {
			return fmt.Errorf("set access %s: %w: entry without initiator", iqn, ErrBadConfig)
		}
	}
	s.mu.Lock()
	t, ok := s.targets[iqn]
	if !ok {
		s.mu.Unlock()
		return fmt.Errorf("set access %s: %w", iqn, ErrNoSuchTarget)
	}
	t.cfg.Access = slices.Clone(entries)
	victims := s.sessionsOfLocked(t, func(ss *session) bool {
		_, _, ok := t.authorize(ss.params.InitiatorName)
		return !ok
	})
	s.mu.Unlock()
	for _, ss := range victims {
		ss.conn.requestDrop("access revoked")
	}
	return nil
}

func (s *Server) sessionsOfLocked(t *exported, pick func(*session) bool) []*session {
	var out []*session
	for _, ss := range s.sessions {
		if ss.tgt == t && pick(ss) {
			out = append(out, ss)
		}
	}
	return out
}

// SessionInfo describes one logged-in session.
type SessionInfo struct {
	TSIH       uint16
	ISID       uint64
	Initiator  string
	Target     string // empty for discovery sessions
	Discovery  bool
	RemoteAddr string
	// Outstanding is the number of commands received and not completed.
	Outstanding int
}

// Sessions returns the current sessions ordered by TSIH.
func (s *Server) Sessions() []SessionInfo {
	s.mu.Lock()
	list := make([]*session, 0, len(s.sessions))
	for _, ss := range s.sessions {
		list = append(list, ss)
	}
	s.mu.Unlock()
	out := make([]SessionInfo, 0, len(list))
	for _, ss := range list {
		out = append(out, ss.info())
	}
	slices.SortFunc(out, func(a, b SessionInfo) int { return int(a.TSIH) - int(b.TSIH) })
	return out
}

// ListenAndServe listens on Options.ListenAddr and serves until ctx ends or
// Close is called.
func (s *Server) ListenAndServe(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.opts.ListenAddr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", s.opts.ListenAddr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve accepts connections on ln until ctx ends or Close is called, then
// closes ln and returns (nil for a normal stop). Connections it accepted
// keep running until Close.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()

	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		ln.Close()
	}()
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || s.isClosed() || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("accept: %w", err)
		}
		s.accept(nc)
	}
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// accept admits a new connection or closes it at once when the server is
// at its connection or login limit.
func (s *Server) accept(nc net.Conn) {
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	s.mu.Lock()
	if s.closed || len(s.conns) >= s.opts.MaxConnections || s.logins >= s.opts.MaxLogins {
		s.mu.Unlock()
		s.log.Warn("iscsi connection refused: limit reached", "remote", nc.RemoteAddr().String())
		nc.Close()
		return
	}
	c := newConn(s, nc)
	s.conns[c] = struct{}{}
	s.logins++
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		c.serve()
	}()
}

// loginDone records that c left the login phase.
func (s *Server) loginDone() {
	s.mu.Lock()
	s.logins--
	s.mu.Unlock()
}

// connGone forgets c.
func (s *Server) connGone(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// Close stops every Serve loop, drops every connection after its commands
// in flight finish, and waits for all goroutines. It does not close
// Devices: their owner does, after Close returns.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.wg.Wait()
		return nil
	}
	s.closed = true
	for ln := range s.listeners {
		ln.Close()
	}
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.shutdown("server closing")
	}
	s.wg.Wait()
	return nil
}

// loginConfig builds the login configuration of one connection.
func (s *Server) loginConfig(c *conn) iscsi.LoginConfig {
	return iscsi.LoginConfig{
		LookupTarget:             s.lookupTarget,
		MaxRecvDataSegmentLength: s.opts.MaxRecvDataSegmentLength,
		MaxBurstLength:           s.opts.MaxBurstLength,
		FirstBurstLength:         s.opts.FirstBurstLength,
		MaxOutstandingR2T:        s.opts.MaxOutstandingR2T,
		MaxConnections:           1,
		CommandWindow:            s.opts.QueueDepth,
		Complete:                 c.completeLogin,
	}
}

// lookupTarget is LoginConfig.LookupTarget: the target's TargetInfo with
// an Authorize that reads the access list current at the time of the call.
func (s *Server) lookupTarget(name string) (iscsi.TargetInfo, bool) {
	s.mu.Lock()
	t, ok := s.targets[name]
	s.mu.Unlock()
	if !ok {
		return iscsi.TargetInfo{}, false
	}
	return s.targetInfo(t), true
}

func (s *Server) targetInfo(t *exported) iscsi.TargetInfo {
	return iscsi.TargetInfo{
		Name:           t.cfg.IQN,
		Alias:          t.cfg.Alias,
		PortalGroupTag: s.opts.PortalGroupTag,
		Authorize: func(initiator string) (chap, mutual *iscsi.Credentials, ok bool) {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.targets[t.cfg.IQN] != t {
				return nil, nil, false
			}
			return t.authorize(initiator)
		},
	}
}

// targetInfos returns every target in name order, for SendTargets.
func (s *Server) targetInfos() []iscsi.TargetInfo {
	s.mu.Lock()
	list := make([]*exported, 0, len(s.targets))
	for _, t := range s.targets {
		list = append(list, t)
	}
	s.mu.Unlock()
	slices.SortFunc(list, func(a, b *exported) int {
		switch {
		case a.cfg.IQN < b.cfg.IQN:
			return -1
		case a.cfg.IQN > b.cfg.IQN:
			return 1
		}
		return 0
	})
	out := make([]iscsi.TargetInfo, len(list))
	for i, t := range list {
		out[i] = s.targetInfo(t)
	}
	return out
}

// sessionsOfTarget returns the sessions logged in to the SCSI target st.
func (s *Server) sessionsOfTarget(st *scsi.Target) []*session {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*session
	for _, ss := range s.sessions {
		if ss.tgt != nil && ss.tgt.scsi == st {
			out = append(out, ss)
		}
	}
	return out
}
