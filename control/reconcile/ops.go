package reconcile

import (
	"context"
	"errors"

	"github.com/vbs-storage/vbs/control/catalog"
	"github.com/vbs-storage/vbs/control/node"
)

// progressStep is the smallest progress change (in percent) worth a
// catalog update.
const progressStep = 5

// reconcileOps starts pending operations, restarts running ones this
// leader does not own (after a failover or restart; every operation is
// idempotent), and cancels those whose cancel was requested.
func (r *Reconciler) reconcileOps(ctx context.Context, v view, vols map[string]catalog.Volume) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, o := range v.ops {
		cancel, running := r.ops[o.ID]
		if o.State.Final() {
			continue
		}
		if running {
			if o.CancelRequested {
				cancel()
			}
			continue
		}
		d, err := r.driverFor(vols[o.Volume].Node, v.nodes)
		if err != nil {
			r.log.Warn("operation waits for its node", "op", o.ID, "err", err)
			continue
		}
		r.launch(ctx, d, o, o.CancelRequested)
	}
}

// launch runs one operation in a goroutine the Reconciler owns. Called
// with r.mu held.
func (r *Reconciler) launch(ctx context.Context, d node.Driver, o catalog.Operation, cancelled bool) {
	octx, cancel := context.WithCancel(ctx)
	if cancelled {
		cancel()
	}
	r.ops[o.ID] = cancel
	r.opsWG.Add(1)
	go func() {
		defer r.opsWG.Done()
		defer cancel()
		r.runOp(octx, ctx, d, o)
		r.mu.Lock()
		delete(r.ops, o.ID)
		r.mu.Unlock()
		r.Kick()
	}()
}

// runOp carries out one operation and records its outcome. octx is the
// operation's own context (cancelled on request); ctx outlives it so the
// outcome can still be recorded.
func (r *Reconciler) runOp(octx, ctx context.Context, d node.Driver, o catalog.Operation) {
	update := func(state catalog.OpState, progress uint32, msg string) {
		_, err := r.cfg.Catalog.Apply(ctx, catalog.UpdateOperation{ID: o.ID, State: state, Progress: progress, Message: msg, Time: r.cfg.Now()})
		if err != nil {
			r.log.Warn("operation update failed", "op", o.ID, "err", err)
		}
	}
	if octx.Err() != nil {
		update(catalog.OpCancelled, o.Progress, "cancelled")
		return
	}
	if o.State == catalog.OpPending {
		update(catalog.OpRunning, 0, "started")
	}
	var err error
	switch o.Kind {
	case catalog.OpResize:
		err = d.ResizeVolume(octx, o.Volume, o.SizeBytes)
	case catalog.OpRevert:
		err = d.RevertVolume(octx, node.SnapshotRef{Volume: o.Volume, Snapshot: o.Snapshot})
	case catalog.OpFlatten:
		var last uint32
		err = d.FlattenVolume(octx, o.Volume, func(done, total uint64) {
			if total == 0 {
				return
			}
			// Record progress in steps, not per chunk: each is a log entry.
			pct := uint32(done * 100 / total)
			if pct >= 100 || pct < last+progressStep {
				return
			}
			last = pct
			update(catalog.OpRunning, pct, "copying shared blocks")
		})
	default:
		err = errors.New("operation kind not supported by this server")
	}
	switch {
	case err == nil:
		update(catalog.OpSucceeded, 100, "done")
	case octx.Err() != nil && ctx.Err() == nil:
		update(catalog.OpCancelled, o.Progress, "cancelled: "+err.Error())
	case ctx.Err() != nil:
		// Shutting down: leave it running; the next leader restarts it.
	default:
		update(catalog.OpFailed, o.Progress, err.Error())
	}
}
