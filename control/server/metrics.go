package server

import (
	"context"
	"errors"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vbs-storage/vbs/control/catalog"
	"github.com/vbs-storage/vbs/control/membership"
	"github.com/vbs-storage/vbs/control/node"
)

// metricsNamespace prefixes every VBS metric.
const metricsNamespace = "vbs"

// statsTimeout bounds the node stats read during a scrape.
const statsTimeout = 5 * time.Second

// collector reports catalog, membership and pool state at scrape time.
type collector struct {
	store  *catalog.Store
	member *membership.Membership
	driver node.Driver

	raftLeader, raftTerm, raftApplied, raftLast, raftVoters, raftIsLeader *prometheus.Desc
	serfMembers                                                           *prometheus.Desc
	poolCapacity, poolUsed                                                *prometheus.Desc
	poolWritten, poolRelocated, poolCleaned, poolWA, poolCorruptions      *prometheus.Desc
	volSize                                                               *prometheus.Desc
	volReadOps, volWriteOps, volReadBytes, volWriteBytes, volQueueDepth   *prometheus.Desc
	volLatency                                                            *prometheus.Desc
	catVolumes                                                            *prometheus.Desc
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(metricsNamespace+"_"+name, help, labels, nil)
}

func newCollector(st *catalog.Store, m *membership.Membership, d node.Driver) *collector {
	return &collector{
		store: st, member: m, driver: d,
		raftLeader:      desc("raft_has_leader", "1 when this node knows a raft leader."),
		raftIsLeader:    desc("raft_is_leader", "1 when this node is the raft leader."),
		raftTerm:        desc("raft_term", "Current raft term."),
		raftApplied:     desc("raft_applied_index", "Last raft index applied to the catalog."),
		raftLast:        desc("raft_last_index", "Last raft index in the log."),
		raftVoters:      desc("raft_voters", "Voters in the raft configuration."),
		serfMembers:     desc("serf_members", "Serf members by status.", "status"),
		poolCapacity:    desc("pool_capacity_bytes", "Capacity of the node's block store pool."),
		poolUsed:        desc("pool_used_bytes", "Space the node's block store uses."),
		poolWritten:     desc("pool_written_bytes_total", "Bytes volumes wrote into the block store."),
		poolRelocated:   desc("pool_gc_relocated_bytes_total", "Bytes segment cleaning rewrote to give space back."),
		poolCleaned:     desc("pool_gc_segments_total", "Segments segment cleaning gave back."),
		poolWA:          desc("pool_write_amplification", "(written + relocated) / written since the node started; 1 before any write."),
		poolCorruptions: desc("pool_corruptions_total", "Checksum mismatches found by reads and scrubs."),
		volSize:         desc("volume_size_bytes", "Size of each volume on this node.", "volume"),
		volReadOps:      desc("volume_read_ops_total", "Read commands served per volume.", "volume"),
		volWriteOps:     desc("volume_write_ops_total", "Write commands served per volume.", "volume"),
		volReadBytes:    desc("volume_read_bytes_total", "Bytes read per volume.", "volume"),
		volWriteBytes:   desc("volume_written_bytes_total", "Bytes written per volume.", "volume"),
		volQueueDepth:   desc("volume_queue_depth", "Commands in flight per volume.", "volume"),
		volLatency:      desc("volume_io_latency_seconds", "Latency of data commands per volume.", "volume"),
		catVolumes:      desc("catalog_volumes", "Volumes in the catalog by state.", "state"),
	}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.raftLeader, c.raftIsLeader, c.raftTerm, c.raftApplied, c.raftLast,
		c.raftVoters, c.serfMembers, c.poolCapacity, c.poolUsed, c.poolWritten, c.poolRelocated, c.poolCleaned,
		c.poolWA, c.poolCorruptions, c.volSize, c.volReadOps, c.volWriteOps,
		c.volReadBytes, c.volWriteBytes, c.volQueueDepth, c.volLatency, c.catVolumes} {
		ch <- d
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	g := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	ctr := func(d *prometheus.Desc, v uint64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l...)
	}
	h := c.store.Health()
	g(c.raftLeader, b2f(h.HasLeader))
	g(c.raftIsLeader, b2f(c.store.IsLeader()))
	g(c.raftTerm, float64(h.Term))
	g(c.raftApplied, float64(h.AppliedIndex))
	g(c.raftLast, float64(h.LastIndex))
	g(c.raftVoters, float64(h.Voters))
	byStatus := map[membership.Status]int{}
	for _, m := range c.member.Members() {
		byStatus[m.Status]++
	}
	for _, s := range []membership.Status{membership.StatusAlive, membership.StatusLeaving, membership.StatusLeft, membership.StatusFailed} {
		g(c.serfMembers, float64(byStatus[s]), string(s))
	}
	byState := map[catalog.VolumeState]int{}
	c.store.View(func(s *catalog.State) {
		for _, v := range s.Volumes {
			byState[v.State]++
		}
	})
	for _, s := range []catalog.VolumeState{catalog.VolumeCreating, catalog.VolumeAvailable, catalog.VolumeInUse, catalog.VolumeDeleting, catalog.VolumeError} {
		g(c.catVolumes, float64(byState[s]), string(s))
	}
	ctx, cancel := context.WithTimeout(context.Background(), statsTimeout)
	defer cancel()
	st, err := c.driver.Stats(ctx)
	if err != nil {
		return
	}
	g(c.poolCapacity, float64(st.CapacityBytes))
	g(c.poolUsed, float64(st.UsedBytes))
	ctr(c.poolWritten, st.WrittenBytes)
	ctr(c.poolRelocated, st.RelocatedBytes)
	ctr(c.poolCleaned, st.SegmentsCleaned)
	ctr(c.poolCorruptions, st.Corruptions)
	wa := 1.0
	if st.WrittenBytes > 0 {
		wa = float64(st.WrittenBytes+st.RelocatedBytes) / float64(st.WrittenBytes)
	}
	g(c.poolWA, wa)
	bounds := node.LatencyBounds()
	for _, v := range st.Volumes {
		g(c.volSize, float64(v.SizeBytes), v.Name)
		ctr(c.volReadOps, v.ReadOps, v.Name)
		ctr(c.volWriteOps, v.WriteOps, v.Name)
		ctr(c.volReadBytes, v.ReadBytes, v.Name)
		ctr(c.volWriteBytes, v.WrittenBytes, v.Name)
		g(c.volQueueDepth, float64(v.QueueDepth), v.Name)
		buckets := make(map[float64]uint64, node.LatencyBuckets)
		var cum uint64
		for i, le := range bounds {
			cum += v.Latency[i]
			buckets[le] = cum
		}
		count := cum + v.Latency[node.LatencyBuckets]
		ch <- prometheus.MustNewConstHistogram(c.volLatency, count, v.LatencySum, buckets, v.Name)
	}
}

// apiMetrics counts API calls and their latency by procedure and code.
type apiMetrics struct {
	calls   *prometheus.CounterVec
	latency *prometheus.HistogramVec
}

func newAPIMetrics(reg prometheus.Registerer) *apiMetrics {
	m := &apiMetrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "api_requests_total", Help: "API calls by procedure and result code.",
		}, []string{"procedure", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: metricsNamespace, Name: "api_request_duration_seconds", Help: "API call latency.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}, []string{"procedure"}),
	}
	reg.MustRegister(m.calls, m.latency)
	return m
}

func (m *apiMetrics) observe(procedure string, start time.Time, err error) {
	code := "ok"
	if err != nil {
		var ce *connect.Error
		if errors.As(err, &ce) {
			code = ce.Code().String()
		} else {
			code = connect.CodeUnknown.String()
		}
	}
	m.calls.WithLabelValues(procedure, code).Inc()
	m.latency.WithLabelValues(procedure).Observe(time.Since(start).Seconds())
}

// WrapUnary implements connect.Interceptor.
func (m *apiMetrics) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		start := time.Now()
		resp, err := next(ctx, req)
		m.observe(req.Spec().Procedure, start, err)
		return resp, err
	}
}

// WrapStreamingClient implements connect.Interceptor.
func (m *apiMetrics) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

// WrapStreamingHandler implements connect.Interceptor.
func (m *apiMetrics) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		start := time.Now()
		err := next(ctx, conn)
		m.observe(conn.Spec().Procedure, start, err)
		return err
	}
}

// reconcileMetrics counts reconcile passes and failed ones.
type reconcileMetrics struct {
	passes, failed prometheus.Counter
}

func newReconcileMetrics(reg prometheus.Registerer) *reconcileMetrics {
	m := &reconcileMetrics{
		passes: prometheus.NewCounter(prometheus.CounterOpts{Namespace: metricsNamespace, Name: "reconcile_passes_total", Help: "Reconcile passes run."}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{Namespace: metricsNamespace, Name: "reconcile_pass_errors_total", Help: "Reconcile passes that met an error."}),
	}
	reg.MustRegister(m.passes, m.failed)
	return m
}

func (m *reconcileMetrics) onPass(err error) {
	m.passes.Inc()
	if err != nil {
		m.failed.Inc()
	}
}
