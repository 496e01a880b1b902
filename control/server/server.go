package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vbs-storage/vbs/blockstore"
	"github.com/vbs-storage/vbs/control/api"
	"github.com/vbs-storage/vbs/control/catalog"
	"github.com/vbs-storage/vbs/control/membership"
	"github.com/vbs-storage/vbs/control/node"
	"github.com/vbs-storage/vbs/control/node/agent"
	"github.com/vbs-storage/vbs/control/node/local"
	"github.com/vbs-storage/vbs/control/reconcile"
	"github.com/vbs-storage/vbs/target"
)

// HTTP paths besides the Connect services.
const (
	PathMetrics = "/metrics"
	PathHealthz = "/healthz"
	PathReadyz  = "/readyz"
)

// readHeaderTimeout bounds how long a client may take to send headers.
const readHeaderTimeout = 10 * time.Second

// Run starts a node and serves until ctx ends, then stops everything in
// reverse order and waits for it. The iSCSI portal starts first and stops
// last, so the data path keeps serving while the control plane is down or
// has no quorum.
func Run(ctx context.Context, cfg Config, log *slog.Logger) (err error) {
	cfg = cfg.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	if err := os.MkdirAll(cfg.DataDir, dirMode); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	_, statErr := os.Stat(filepath.Join(cfg.DataDir, TokenFile))
	token, err := loadOrCreate(cfg.DataDir, TokenFile, newToken)
	if err != nil {
		return err
	}
	if statErr != nil && len(cfg.Join) > 0 {
		log.Warn("joining a cluster with a new API token: copy the cluster's api-token into the data dir, " +
			"or the leader cannot drive this node and clients need a second token")
	}
	if cfg.NodeName == "" {
		if cfg.NodeName, err = loadOrCreate(cfg.DataDir, nodeNameFile, defaultNodeName); err != nil {
			return err
		}
	}
	log = log.With("node", cfg.NodeName)

	// Teardown, whatever failed: stop goroutines, then membership, the
	// catalog, and last the node, so the portal outlives the control plane.
	var (
		wg  sync.WaitGroup
		nd  *local.Node
		st  *catalog.Store
		mem *membership.Membership
	)
	runCtx, stop := context.WithCancel(ctx)
	defer func() {
		stop()
		wg.Wait()
		var errs []error
		if mem != nil && st != nil {
			leaveRaft(st, mem, cfg.NodeName, log)
		}
		if mem != nil {
			errs = append(errs, mem.Close())
		}
		if st != nil {
			errs = append(errs, st.Close())
		}
		if nd != nil {
			errs = append(errs, nd.Close())
		}
		if cerr := errors.Join(errs...); cerr != nil {
			log.Error("shutdown", "err", cerr)
			if err == nil {
				err = cerr
			}
		}
	}()

	// 1. Data path: block store and iSCSI portal.
	gcInterval := cfg.GCInterval
	switch {
	case gcInterval == 0:
		gcInterval = DefaultGCInterval
	case gcInterval < 0:
		gcInterval = 0
	}
	capacity := cfg.PoolCapacity
	if capacity == 0 {
		// The pool is the disk: the cleaner then reclaims space only as
		// the disk runs out of it.
		if capacity, err = blockstore.DiskPoolBytes(filepath.Join(cfg.DataDir, storeDir)); err != nil {
			return fmt.Errorf("size the block store's pool: %w", err)
		}
	}
	// Whatever else fills the disk, the index keeps room to write.
	diskReserve, err := blockstore.DiskReserveBytes(filepath.Join(cfg.DataDir, storeDir))
	if err != nil {
		return fmt.Errorf("size the block store's disk reserve: %w", err)
	}
	store, err := blockstore.Open(filepath.Join(cfg.DataDir, storeDir), blockstore.Options{
		Logger: log.With("component", "blockstore"), CapacityBytes: capacity, DiskReserveBytes: diskReserve,
		GCInterval: gcInterval, GCRateBytes: blockstore.DefaultGCRateBytes,
	})
	if err != nil {
		return fmt.Errorf("open block store: %w", err)
	}
	nd = local.New(store, target.NewServer(target.Options{Logger: log.With("component", "target")}))
	iscsiLn, err := net.Listen("tcp", cfg.ISCSIListen)
	if err != nil {
		return fmt.Errorf("iSCSI listen: %w", err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := nd.Serve(runCtx, iscsiLn); err != nil {
			log.Error("iSCSI portal stopped", "err", err)
		}
	}()
	portal := cfg.ISCSIAdvertise
	if portal == "" {
		portal = iscsiLn.Addr().String()
	}

	// 2. Catalog.
	raftLn, err := reserve(cfg.RaftListen)
	if err != nil {
		return fmt.Errorf("raft listen: %w", err)
	}
	st, err = catalog.Open(catalog.Config{
		NodeName: cfg.NodeName, DataDir: cfg.DataDir, BindAddr: raftLn, Bootstrap: len(cfg.Join) == 0,
		ElectionTimeout: cfg.ElectionTimeout, Logger: log,
	})
	if err != nil {
		return err
	}

	// 3. Membership.
	serfAddr, err := reserve(cfg.SerfListen)
	if err != nil {
		return fmt.Errorf("serf listen: %w", err)
	}
	apiLn, err := net.Listen("tcp", cfg.APIListen)
	if err != nil {
		return fmt.Errorf("API listen: %w", err)
	}
	defer apiLn.Close()
	mem, err = membership.Start(membership.Config{
		NodeName: cfg.NodeName, BindAddr: serfAddr, Logger: log,
		Tags: map[string]string{membership.TagAPI: apiLn.Addr().String(), membership.TagISCSI: portal, membership.TagRaft: raftLn},
	})
	if err != nil {
		return err
	}
	if len(cfg.Join) > 0 {
		if _, err := mem.Join(cfg.Join); err != nil {
			return err
		}
	}

	// 4. Reconcile loop (acts only while leader).
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(newCollector(st, mem, nd))
	rm := newReconcileMetrics(reg)
	// Remote nodes are driven through their node agent, with this node's
	// token: a cluster shares one token (see docs/operations.md).
	scheme := "http://"
	if cfg.TLSCert != "" {
		scheme = "https://"
	}
	agentHTTP := &http.Client{}
	defer agentHTTP.CloseIdleConnections()
	auth := api.NewAuth(token, "")
	remote := func(n catalog.Node) node.Driver {
		return agent.NewClient(agentHTTP, scheme+n.APIAddress, connect.WithInterceptors(api.Bearer(token)))
	}
	rec := reconcile.New(reconcile.Config{
		Remote:   remote,
		NodeName: cfg.NodeName, Driver: nd, Catalog: st, Hints: mem.Hints(), LeaderCh: st.LeaderCh(),
		Interval: cfg.ReconcileInterval, Logger: log, OnPass: rm.onPass,
		Self:    reconcile.NodeInfo{Name: cfg.NodeName, State: catalog.NodeAlive, APIAddress: apiLn.Addr().String(), ISCSIAddress: portal, RaftAddress: raftLn},
		Members: func() []reconcile.NodeInfo { return nodeInfos(mem.Members()) },
	})
	wg.Add(2)
	go func() { defer wg.Done(); rec.Run(runCtx) }()
	go func() { defer wg.Done(); manageVoters(runCtx, st, mem, cfg.NodeName, log) }()

	// 5. API.
	a := api.New(api.Config{
		Catalog: st, Syncer: rec, NodeName: cfg.NodeName, Portal: portal, BaseIQN: cfg.BaseIQN,
		Auth: auth,
	})
	mux := http.NewServeMux()
	am := newAPIMetrics(reg)
	a.Register(mux, connect.WithInterceptors(am),
		connect.WithRecover(func(_ context.Context, spec connect.Spec, _ http.Header, p any) error {
			// A handler bug must not take the node (and its data path) down.
			log.Error("API handler panicked", "procedure", spec.Procedure, "panic", p)
			return connect.NewError(connect.CodeInternal, fmt.Errorf("internal error in %s", spec.Procedure))
		}))
	mux.Handle(agent.Handler(nd, connect.WithInterceptors(auth, am)))
	mux.Handle(PathMetrics, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc(PathHealthz, func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc(PathReadyz, func(w http.ResponseWriter, _ *http.Request) {
		if h := st.Health(); !h.HasLeader {
			http.Error(w, "catalog has no raft leader", http.StatusServiceUnavailable)
			return
		}
		if st.IsLeader() && !rec.CaughtUp() {
			http.Error(w, "leader has not reconciled the node yet", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: readHeaderTimeout, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	hs.Protocols = new(http.Protocols)
	hs.Protocols.SetHTTP1(true)
	hs.Protocols.SetHTTP2(true)
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return fmt.Errorf("load TLS key pair: %w", err)
		}
		hs.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	} else {
		hs.Protocols.SetUnencryptedHTTP2(true) // h2c: gRPC without TLS
	}
	useTLS := hs.TLSConfig != nil // the server owns TLSConfig once serving
	serveErr := make(chan error, 1)
	go func() {
		if useTLS {
			serveErr <- hs.ServeTLS(apiLn, "", "")
		} else {
			serveErr <- hs.Serve(apiLn)
		}
	}()
	log.Info("vbs server started", "data_dir", cfg.DataDir, "api", apiLn.Addr().String(), "iscsi", portal,
		"raft", raftLn, "serf", serfAddr, "tls", useTLS)
	if cfg.Ready != nil {
		cfg.Ready(Addrs{API: apiLn.Addr().String(), ISCSI: iscsiLn.Addr().String(), Raft: raftLn, Serf: serfAddr})
	}
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		return fmt.Errorf("API server: %w", err)
	}
	log.Info("vbs server stopping")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("stop API server: %w", err)
	}
	<-serveErr
	return nil
}

// reserve resolves a listen address with port 0 to a concrete free port,
// for libraries (raft, serf) that need to know their port up front.
func reserve(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	if port != "0" {
		return addr, nil
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func nodeInfos(ms []membership.Member) []reconcile.NodeInfo {
	out := make([]reconcile.NodeInfo, 0, len(ms))
	for _, m := range ms {
		st := catalog.NodeAlive
		switch m.Status {
		case membership.StatusFailed:
			st = catalog.NodeFailed
		case membership.StatusLeft, membership.StatusLeaving:
			st = catalog.NodeLeft
		case membership.StatusUnknown:
			st = catalog.NodeSuspect
		}
		out = append(out, reconcile.NodeInfo{Name: m.Name, State: st, APIAddress: m.Tags[membership.TagAPI],
			ISCSIAddress: m.Tags[membership.TagISCSI], RaftAddress: m.Tags[membership.TagRaft]})
	}
	return out
}

// voterCheckInterval is how often the leader compares Serf members with
// raft voters; a leaving node waits up to leaveTimeout for the leader to
// remove it.
const (
	voterCheckInterval = time.Second
	leaveTimeout       = 10 * time.Second
)

// manageVoters, while leader, makes every alive Serf member a raft voter
// and removes voters that left on purpose, so that a graceful leave never
// costs the cluster its quorum. Membership says who is there; raft
// decides who votes. Failed (not left) members stay voters: they may
// come back.
func manageVoters(ctx context.Context, st *catalog.Store, mem *membership.Membership, self string, log *slog.Logger) {
	t := time.NewTicker(voterCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !st.IsLeader() {
			continue
		}
		voters, err := st.Voters()
		if err != nil {
			continue
		}
		isVoter := map[string]bool{}
		for _, v := range voters {
			isVoter[v] = true
		}
		for _, m := range mem.Members() {
			raftAddr := m.Tags[membership.TagRaft]
			switch {
			case m.Name == self || raftAddr == "":
			case m.Status == membership.StatusAlive && !isVoter[m.Name]:
				if err := st.AddVoter(ctx, m.Name, raftAddr); err != nil {
					log.Warn("add raft voter", "member", m.Name, "err", err)
				}
			case (m.Status == membership.StatusLeft || m.Status == membership.StatusLeaving) && isVoter[m.Name]:
				if err := st.RemoveServer(ctx, m.Name); err != nil {
					log.Warn("remove raft voter", "member", m.Name, "err", err)
				}
			}
		}
	}
}

// leaveRaft is called on shutdown before the catalog closes, in a cluster
// of several voters: a leader removes itself from the voters; a follower
// announces its leave through Serf and waits (bounded) until the leader
// has removed it.
func leaveRaft(st *catalog.Store, mem *membership.Membership, self string, log *slog.Logger) {
	voters, err := st.Voters()
	if err != nil || len(voters) < 2 {
		return
	}
	if st.IsLeader() {
		// A leader removes itself: the change commits with the old quorum,
		// then it steps down and the others elect a leader among themselves.
		if err := st.RemoveServer(context.Background(), self); err != nil {
			log.Warn("leaving as leader", "err", err)
		}
		return
	}
	if err := mem.Close(); err != nil {
		log.Warn("serf leave", "err", err)
	}
	deadline := time.Now().Add(leaveTimeout)
	for time.Now().Before(deadline) {
		voters, err := st.Voters()
		if err != nil {
			return
		}
		still := false
		for _, v := range voters {
			still = still || v == self
		}
		if !still {
			return
		}
		time.Sleep(100 * time.Millisecond) // waiting on another node, bounded
	}
	log.Warn("left the cluster without being removed from the raft voters", "timeout", leaveTimeout)
}
