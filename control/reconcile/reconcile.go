// Package reconcile owns the leader's control loop: it drives the local
// node's blockstore and target (through node.Driver) toward what the
// catalog says, runs long operations, and records node health in the
// catalog. Membership events and API calls are hints that start a pass
// early; the periodic full pass is the truth. It never changes the catalog
// except through catalog commands, and does nothing unless this node is
// the raft leader.
package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vbs-storage/vbs/control/catalog"
	"github.com/vbs-storage/vbs/control/node"
)

// DefaultInterval is the period of the full reconcile pass.
const DefaultInterval = 15 * time.Second

// Catalog is what the loop needs from the catalog; *catalog.Store has it.
type Catalog interface {
	Apply(ctx context.Context, c catalog.Command) (any, error)
	View(fn func(*catalog.State))
	IsLeader() bool
	// Barrier waits until the local FSM has applied everything committed.
	Barrier(ctx context.Context) error
}

// NodeInfo is what the loop records about a node besides its stats.
type NodeInfo struct {
	Name         string
	State        catalog.NodeState
	APIAddress   string
	ISCSIAddress string
	RaftAddress  string
}

// Config configures a Reconciler.
type Config struct {
	// NodeName is the local node; volumes placed on it are driven through
	// Driver.
	NodeName string
	Driver   node.Driver
	Catalog  Catalog
	// Remote returns the driver of another node (its node agent); nil
	// means this server drives only its own node.
	Remote func(n catalog.Node) node.Driver
	// Members lists the nodes membership knows (may be nil: only the
	// local node is recorded, from Self).
	Members func() []NodeInfo
	Self    NodeInfo
	// Hints wakes the loop early (membership events); may be nil.
	Hints <-chan struct{}
	// LeaderCh wakes the loop when leadership changes, so that a new
	// leader reconciles at once instead of at the next tick; may be nil.
	LeaderCh <-chan bool
	Interval time.Duration
	Now      func() time.Time
	Logger   *slog.Logger
	// OnPass, when set, is called after every pass with its error.
	OnPass func(err error)
}

// Key names the item a Sync caller waits for.
type Key string

// VolumeKey, SnapshotKey and ExportKey name items for Sync.
func VolumeKey(v string) Key            { return Key("volume/" + v) }
func SnapshotKey(v, s string) Key       { return Key("snapshot/" + v + "@" + s) }
func ExportKey(v, initiator string) Key { return Key("export/" + v + "/" + initiator) }

// Reconciler is the leader control loop. Run it in one goroutine.
type Reconciler struct {
	cfg  Config
	log  *slog.Logger
	kick chan struct{}

	mu       sync.Mutex
	started  uint64
	finished uint64
	passDone chan struct{} // closed when a pass finishes
	errs     map[Key]error // from the last finished pass

	ops   map[string]context.CancelFunc // running operations, by id
	opsWG sync.WaitGroup

	// caughtUp is true while this node is leader and has finished a pass
	// after a raft barrier since it became leader.
	caughtUp atomic.Bool
}

// CaughtUp reports whether this node, as leader, has completed a full
// pass since it became leader (false on followers).
func (r *Reconciler) CaughtUp() bool { return r.caughtUp.Load() }

// New returns a Reconciler; nothing runs until Run.
func New(cfg Config) *Reconciler {
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Reconciler{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "reconcile"),
		kick:     make(chan struct{}, 1),
		passDone: make(chan struct{}),
		errs:     map[Key]error{},
		ops:      map[string]context.CancelFunc{},
	}
}

// Kick asks for a pass soon.
func (r *Reconciler) Kick() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Sync starts a pass and waits until a pass that began after the call has
// finished, then returns the error that pass met on key (nil if none).
// API handlers use it so that a grant or revoke is enforced by the target
// before the call returns.
func (r *Reconciler) Sync(ctx context.Context, key Key) error {
	r.mu.Lock()
	want := r.started + 1
	r.mu.Unlock()
	r.Kick()
	for {
		r.mu.Lock()
		if r.finished >= want {
			err := r.errs[key]
			r.mu.Unlock()
			return err
		}
		done := r.passDone
		r.mu.Unlock()
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for reconcile: %w", ctx.Err())
		case <-done:
		}
	}
}

// Run loops until ctx is cancelled, then cancels running operations and
// waits for them.
func (r *Reconciler) Run(ctx context.Context) {
	defer func() {
		r.mu.Lock()
		for _, cancel := range r.ops {
			cancel()
		}
		r.mu.Unlock()
		r.opsWG.Wait()
	}()
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	for {
		r.pass(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.kick:
		case <-r.cfg.Hints:
		case <-r.cfg.LeaderCh:
		}
	}
}

func (r *Reconciler) pass(ctx context.Context) {
	r.mu.Lock()
	r.started++
	r.mu.Unlock()
	errs := map[Key]error{}
	switch {
	case !r.cfg.Catalog.IsLeader():
		r.caughtUp.Store(false)
	case !r.caughtUp.Load():
		if err := r.cfg.Catalog.Barrier(ctx); err != nil {
			errs[Key("barrier")] = err
			break
		}
		r.reconcile(ctx, errs)
		r.caughtUp.Store(true)
	default:
		r.reconcile(ctx, errs)
	}
	var all []error
	for k, e := range errs {
		all = append(all, fmt.Errorf("%s: %w", k, e))
	}
	err := errors.Join(all...)
	if err != nil {
		r.log.Warn("reconcile pass had errors", "err", err)
	}
	if r.cfg.OnPass != nil {
		r.cfg.OnPass(err)
	}
	r.mu.Lock()
	r.finished = r.started
	r.errs = errs
	close(r.passDone)
	r.passDone = make(chan struct{})
	r.mu.Unlock()
}

// snapshotOf copies the parts of the catalog a pass needs.
type view struct {
	volumes   []catalog.Volume
	snapshots []catalog.Snapshot
	exports   []catalog.Export
	ops       []catalog.Operation
	nodes     map[string]catalog.Node
	clones    map[string]int // volume -> clones not yet removed
}

func (r *Reconciler) view() view {
	var v view
	r.cfg.Catalog.View(func(s *catalog.State) {
		v.clones = map[string]int{}
		for _, x := range s.SortedVolumes() {
			v.volumes = append(v.volumes, *x)
			if x.Source != nil {
				v.clones[x.Source.Volume]++
			}
		}
		for _, x := range s.SortedSnapshots() {
			v.snapshots = append(v.snapshots, *x)
		}
		for _, x := range s.VolumeExports("") {
			v.exports = append(v.exports, *x)
		}
		for _, x := range s.SortedOperations() {
			v.ops = append(v.ops, *x)
		}
		v.nodes = map[string]catalog.Node{}
		for _, n := range s.SortedNodes() {
			v.nodes[n.Name] = *n
		}
	})
	return v
}

// errNoDriver explains why a node cannot be driven right now.
type errNoDriver struct{ node, why string }

func (e *errNoDriver) Error() string { return "node " + e.node + ": " + e.why }

// driverFor returns the driver of a node: the local one for this node,
// the Remote one (the node agent) for the others.
func (r *Reconciler) driverFor(name string, nodes map[string]catalog.Node) (node.Driver, error) {
	if name == r.cfg.NodeName {
		return r.cfg.Driver, nil
	}
	n, ok := nodes[name]
	switch {
	case r.cfg.Remote == nil:
		return nil, &errNoDriver{name, "this server drives only its own node"}
	case !ok || n.APIAddress == "":
		return nil, &errNoDriver{name, "no address known"}
	case n.State != catalog.NodeAlive:
		return nil, &errNoDriver{name, "node is " + string(n.State)}
	}
	return r.cfg.Remote(n), nil
}

func (r *Reconciler) reconcile(ctx context.Context, errs map[Key]error) {
	v := r.view()
	vols := map[string]catalog.Volume{}
	for _, vol := range v.volumes {
		vols[vol.Name] = vol
	}
	// 1. Volumes that should exist. Sources before clones: a clone's
	// source snapshot was ready when the clone was recorded.
	for _, vol := range v.volumes {
		if vol.State == catalog.VolumeDeleting {
			continue
		}
		d, err := r.driverFor(vol.Node, v.nodes)
		if err == nil {
			spec := node.VolumeSpec{Name: vol.Name, SizeBytes: vol.SizeBytes, BlockSize: vol.BlockSize}
			if vol.Source != nil {
				spec.Source = &node.SnapshotRef{Volume: vol.Source.Volume, Snapshot: vol.Source.Snapshot}
			}
			err = d.EnsureVolume(ctx, spec)
		}
		r.settleVolume(ctx, vol, v.exports, err, errs)
	}
	// 2. Snapshots.
	for _, sn := range v.snapshots {
		vol, ok := vols[sn.Volume]
		if !ok || vol.State == catalog.VolumeDeleting {
			continue
		}
		key := SnapshotKey(sn.Volume, sn.Name)
		d, err := r.driverFor(vol.Node, v.nodes)
		if err != nil {
			errs[key] = err
			continue
		}
		ref := node.SnapshotRef{Volume: sn.Volume, Snapshot: sn.Name}
		switch sn.State {
		case catalog.SnapshotCreating, catalog.SnapshotError:
			if vol.State == catalog.VolumeCreating {
				continue
			}
			if err := d.CreateSnapshot(ctx, ref); err != nil {
				errs[key] = err
				if sn.State != catalog.SnapshotError || sn.Reason != err.Error() {
					r.apply(ctx, errs, key, catalog.SetSnapshotState{Volume: sn.Volume, Name: sn.Name, State: catalog.SnapshotError, Reason: err.Error()})
				}
				continue
			}
			r.apply(ctx, errs, key, catalog.SetSnapshotState{Volume: sn.Volume, Name: sn.Name, State: catalog.SnapshotReady})
		case catalog.SnapshotDeleting:
			if err := d.DeleteSnapshot(ctx, ref); err != nil {
				errs[key] = err
				continue
			}
			r.apply(ctx, errs, key, catalog.RemoveSnapshot{Volume: sn.Volume, Name: sn.Name})
		}
	}
	// 3. Exports: make each node's target hold exactly the catalog's
	// grants for the volumes on that node.
	for _, name := range r.nodesToDrive(v) {
		d, err := r.driverFor(name, v.nodes)
		if err != nil {
			for _, e := range v.exports {
				if vols[e.Volume].Node == name {
					errs[ExportKey(e.Volume, e.InitiatorIQN)] = err
				}
			}
			continue
		}
		r.reconcileExports(ctx, d, name, vols, v.exports, errs)
	}
	// 4. Deleted volumes, clones before their sources. Removing a clone
	// unblocks its source, so a pass that removed something asks for
	// another one.
	removed := false
	defer func() {
		if removed {
			r.Kick()
		}
	}()
	for _, vol := range v.volumes {
		if vol.State != catalog.VolumeDeleting || v.clones[vol.Name] > 0 {
			continue
		}
		key := VolumeKey(vol.Name)
		d, err := r.driverFor(vol.Node, v.nodes)
		if err == nil {
			err = d.DeleteVolume(ctx, vol.Name)
		}
		if err != nil {
			errs[key] = err
			continue
		}
		r.apply(ctx, errs, key, catalog.RemoveVolume{Name: vol.Name})
		removed = true
	}
	// 5. Operations.
	r.reconcileOps(ctx, v, vols)
	// 6. Nodes.
	r.reconcileNodes(ctx, v.nodes, errs)
}

// nodesToDrive lists this node and every node that holds a volume, in
// name order.
func (r *Reconciler) nodesToDrive(v view) []string {
	seen := map[string]bool{r.cfg.NodeName: true}
	out := []string{r.cfg.NodeName}
	for _, vol := range v.volumes {
		if !seen[vol.Node] {
			seen[vol.Node] = true
			out = append(out, vol.Node)
		}
	}
	sort.Strings(out)
	return out
}

func (r *Reconciler) settleVolume(ctx context.Context, vol catalog.Volume, exports []catalog.Export, err error, errs map[Key]error) {
	key := VolumeKey(vol.Name)
	now := r.cfg.Now()
	if err != nil {
		errs[key] = err
		if vol.State != catalog.VolumeError || vol.Reason != err.Error() {
			r.apply(ctx, errs, key, catalog.SetVolumeState{Name: vol.Name, State: catalog.VolumeError, Reason: err.Error(), Time: now})
		}
		return
	}
	want := catalog.VolumeAvailable
	for _, e := range exports {
		if e.Volume == vol.Name {
			want = catalog.VolumeInUse
			break
		}
	}
	if vol.State == catalog.VolumeCreating || vol.State == catalog.VolumeError {
		r.apply(ctx, errs, key, catalog.SetVolumeState{Name: vol.Name, State: want, Time: now})
	}
}

func sameCHAP(a, b *node.CHAP) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func (r *Reconciler) reconcileExports(ctx context.Context, d node.Driver, nodeName string, vols map[string]catalog.Volume, exports []catalog.Export, errs map[Key]error) {
	have, err := d.Exports(ctx)
	if err != nil {
		for _, e := range exports {
			if vols[e.Volume].Node == nodeName {
				errs[ExportKey(e.Volume, e.InitiatorIQN)] = err
			}
		}
		return
	}
	type id struct{ vol, ini string }
	actual := map[id]node.ExportSpec{}
	for _, e := range have {
		actual[id{e.Volume, e.InitiatorIQN}] = e
	}
	desired := map[id]bool{}
	for _, e := range exports {
		vol, ok := vols[e.Volume]
		if ok && vol.Node != nodeName {
			continue
		}
		// A volume in ERROR keeps its grants: a failed control-plane
		// step (a resize that found the pool full) must not cut off the
		// hosts using it. Only creating and deleting volumes are not served.
		if !ok || vol.State == catalog.VolumeCreating || vol.State == catalog.VolumeDeleting {
			continue
		}
		k := id{e.Volume, e.InitiatorIQN}
		desired[k] = true
		spec := node.ExportSpec{Volume: e.Volume, TargetIQN: e.TargetIQN, InitiatorIQN: e.InitiatorIQN}
		if e.CHAP != nil {
			spec.CHAP = &node.CHAP{User: e.CHAP.User, Secret: e.CHAP.Secret}
		}
		if cur, ok := actual[k]; ok && cur.TargetIQN == spec.TargetIQN && sameCHAP(cur.CHAP, spec.CHAP) {
			continue
		}
		if err := d.Export(ctx, spec); err != nil {
			errs[ExportKey(e.Volume, e.InitiatorIQN)] = err
		}
	}
	// Withdraw what the catalog no longer holds, in a stable order.
	var stale []id
	for k := range actual {
		if !desired[k] {
			stale = append(stale, k)
		}
	}
	sort.Slice(stale, func(i, j int) bool {
		return stale[i].vol+"/"+stale[i].ini < stale[j].vol+"/"+stale[j].ini
	})
	for _, k := range stale {
		if err := d.Unexport(ctx, k.vol, k.ini); err != nil {
			errs[ExportKey(k.vol, k.ini)] = err
		}
	}
}

func (r *Reconciler) apply(ctx context.Context, errs map[Key]error, key Key, c catalog.Command) {
	if _, err := r.cfg.Catalog.Apply(ctx, c); err != nil {
		r.log.Warn("reconcile: catalog update failed", "key", key, "err", err)
		if errs[key] == nil {
			errs[key] = err
		}
	}
}

func (r *Reconciler) reconcileNodes(ctx context.Context, known map[string]catalog.Node, errs map[Key]error) {
	infos := []NodeInfo{r.cfg.Self}
	if r.cfg.Members != nil {
		infos = r.cfg.Members()
	}
	for _, in := range infos {
		n := catalog.Node{
			Name: in.Name, State: in.State, APIAddress: in.APIAddress,
			ISCSIAddress: in.ISCSIAddress, RaftAddress: in.RaftAddress,
		}
		old, ok := known[in.Name]
		if ok {
			n.CapacityBytes, n.UsedBytes = old.CapacityBytes, old.UsedBytes
		}
		stat := map[string]catalog.Node{in.Name: n}
		if d, err := r.driverFor(in.Name, stat); err == nil {
			if st, err := d.Stats(ctx); err == nil {
				n.CapacityBytes, n.UsedBytes = st.CapacityBytes, st.UsedBytes
			} else {
				errs[Key("node/"+in.Name)] = err
			}
		}
		if ok {
			cmp := old
			cmp.UpdateTime = time.Time{}
			if cmp == n {
				continue
			}
		}
		n.UpdateTime = r.cfg.Now()
		r.apply(ctx, errs, Key("node/"+in.Name), catalog.UpsertNode{Node: n})
	}
}
