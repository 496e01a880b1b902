package blockstore

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/vbs-storage/vbs/blockstore/index"
)

// Taking a snapshot without stopping the writer.
//
// A snapshot is a cut in the sequence numbers: it sees every write with a
// sequence number at or below its own. The writer makes the cut at once
// (CreateSnapshot's request assigns the number, and every later write
// preserves the versions the cut sees), but the snapshot only becomes
// real, in the index and in the volume's list, once the log is durable up
// to the cut. That sync is what a snapshot costs (all the log written
// since the last one), so it runs on its own goroutine, the log syncer,
// while the writer goes on appending.
//
// Until then the versions later writes preserve for the cut may name log
// bytes that are not durable yet, and the pebble index never does
// (invariant 1 of the package doc). So preserved versions are held in
// memory (Store.held, a heldSet), where reads of older snapshots, clone
// trims and the segment cleaner see them. A crash before the snapshot's
// record is committed loses the snapshot, which had not been reported
// taken, and nothing else.
//
// A version a write preserves stays held, pending cut or not, until the
// overlay entry that supersedes it moves into the index (commitOverlay):
// it goes in with it, sorted with the others, which pebble inserts faster
// than a few versions per group commit (about 10% faster writes while
// snapshots are taken, in BenchmarkWrite4KSnapshotting). Until then the
// index still has the old mapping as live, and replay preserves the
// version again from the log. A trim takes live mappings out of the index
// at once, so the versions it preserves, and the held ones of the blocks
// it trims (settleHeld), go in with it when their data is durable
// (w.synced), and otherwise with their snapshot's record (heldTrims).

// pendingSnap is a snapshot cut the log has not been synced past yet.
type pendingSnap struct {
	vol  *volState
	meta snapshotMeta
	done chan error // buffered; receives the outcome once
}

// cutSnapshot makes the cut for a snapshot of v named name and asks the
// syncer to make it durable; done receives the outcome. It runs on the
// writer, after everything queued before it was appended.
func (w *writer) cutSnapshot(v *volState, name string, done chan error) (snapshotMeta, error) {
	if _, ok := findSnap(v, name); ok {
		return snapshotMeta{}, ErrSnapshotExists
	}
	for _, p := range w.pendSnaps {
		if p.vol == v && p.meta.Name == name {
			return snapshotMeta{}, ErrSnapshotExists
		}
	}
	if w.failed != nil {
		return snapshotMeta{}, fmt.Errorf("blockstore: store failed, reopen needed: %w", w.failed)
	}
	w.seq++
	m := snapshotMeta{Seq: w.seq, Created: w.s.opts.Clock.Now().UnixNano(), Name: name}
	w.pendSnaps = append(w.pendSnaps, pendingSnap{vol: v, meta: m, done: done})
	// From here on writes preserve what the cut sees.
	v.lastSnap.Store(m.Seq)
	v.fresh, v.freshFor = nil, m.Seq
	w.askSync()
	return m, nil
}

// askSync asks the log syncer to make everything appended so far durable
// (up to w.seq: the caller has no records buffered).
func (w *writer) askSync() {
	w.askedOff = w.activeOff
	w.s.syncSeq.Store(w.seq)
	select {
	case w.s.syncKick <- struct{}{}:
	default: // a sync is already asked for; it reads the newest seq
	}
}

// preserve keeps ver (a version of a block of vol that a snapshot sees,
// superseded by a trim when trim is set, else by a write): in the index
// batch, or held in memory (see above). It reports whether it used the
// batch.
func (w *writer) preserve(vol uint64, ver index.Version, trim bool) (toIndex bool) {
	if trim && ver.Loc.Seq <= w.synced {
		w.ib.PutVersion(vol, ver)
		return true
	}
	w.heldNew = append(w.heldNew, heldVersion{vol: vol, ver: ver})
	if trim {
		w.heldTrims = append(w.heldTrims, heldVersion{vol: vol, ver: ver})
	}
	return false
}

// heldVersion is a preserved version waiting for its snapshot's sync.
type heldVersion struct {
	vol uint64
	ver index.Version
}

// settleHeld readies the held versions of blocks [lba, lba+n) of vol for
// a trim that takes those blocks' live mappings out of the index now: a
// held version was safe only because the index still had the mapping it
// supersedes as live (replay would preserve it again). Durable ones go
// into the batch with the trim; the others, which only pending cuts see,
// go in with their snapshot (heldTrims).
func (w *writer) settleHeld(vol, lba, n uint64) {
	h := &w.s.held
	if h.len() == 0 {
		return
	}
	settleOne := func(vol uint64, ver index.Version) {
		if ver.Loc.Seq <= w.synced {
			w.ib.PutVersion(vol, ver)
		} else {
			w.heldTrims = append(w.heldTrims, heldVersion{vol: vol, ver: ver})
		}
	}
	settle := func(k blockKey) {
		ver, ok := h.one[k]
		if !ok {
			return
		}
		settleOne(k.vol, ver)
		for _, ver := range h.more[k] {
			settleOne(k.vol, ver)
		}
	}
	if n <= uint64(h.len()) {
		for i := uint64(0); i < n; i++ {
			settle(blockKey{vol, lba + i})
		}
		return
	}
	for k := range h.one {
		if k.vol == vol && k.lba >= lba && k.lba-lba < n {
			settle(k)
		}
	}
}

// publishHeld makes the versions preserve held visible to readers. It runs
// before the index commit that may take a trimmed block's live mapping
// away, so a snapshot read never finds neither.
func (w *writer) publishHeld() {
	if len(w.heldNew) == 0 {
		return
	}
	s := w.s
	s.mu.Lock()
	for _, h := range w.heldNew {
		s.held.add(blockKey{h.vol, h.ver.LBA}, h.ver)
	}
	s.mu.Unlock()
	w.heldNew = w.heldNew[:0]
}

// stageSnapshots adds to the writer's index batch every pending snapshot
// whose cut is at or below durable (the log is synced at least that far),
// and the held versions that must be in the index with them: those
// superseded by trims whose data is durable (log bytes are appended in
// seq order, and relocated ones are synced before the index learns of
// them, so Loc.Seq <= durable means on disk). A trim took the live
// mapping out of the index already; a write's new mapping only goes in
// with the overlay (all, below), and until then replay preserves its
// version again from the log. With all set (the overlay moves now) it
// stages every held version whose data is durable. It returns how many
// snapshots it staged; the caller commits the batch (synced if any) and
// then calls finishSnapshots.
func (w *writer) stageSnapshots(durable uint64, all bool) int {
	n := 0
	for _, p := range w.pendSnaps {
		if p.meta.Seq <= durable && !p.vol.deleted.Load() {
			w.ib.SetMeta(snapKey(p.vol.id, p.meta.Seq), encodeSnapshotMeta(p.meta))
			n++
		}
	}
	if all {
		w.heldOut = w.s.held.appendUpTo(w.heldOut[:0], durable)
		for _, h := range w.heldOut {
			w.ib.PutVersion(h.vol, h.ver)
		}
		clear(w.heldOut)
	}
	for _, h := range w.heldTrims {
		if h.ver.Loc.Seq <= durable {
			w.ib.PutVersion(h.vol, h.ver) // again with all: the same record
		}
	}
	return n
}

// finishSnapshots completes what stageSnapshots staged once the batch is
// committed (err == nil), or fails the staged snapshots with err.
func (w *writer) finishSnapshots(durable uint64, all bool, err error) {
	s := w.s
	keep := w.pendSnaps[:0]
	var done []pendingSnap
	for _, p := range w.pendSnaps {
		if p.meta.Seq <= durable {
			done = append(done, p)
		} else {
			keep = append(keep, p)
		}
	}
	clear(w.pendSnaps[len(keep):])
	w.pendSnaps = keep
	if err == nil {
		w.synced = max(w.synced, durable)
		w.heldTrims = slices.DeleteFunc(w.heldTrims, func(h heldVersion) bool { return h.ver.Loc.Seq <= durable })
		if all && s.held.len() > 0 {
			// durable is w.seq: every held version is in the index now.
			s.mu.Lock()
			s.held.clear()
			s.mu.Unlock()
		}
	}
	for _, p := range done {
		switch {
		case err != nil:
			p.done <- err
		case p.vol.deleted.Load():
			p.done <- ErrVolumeNotFound
		default:
			w.publishSnapshot(p.vol, p.meta)
			p.done <- nil
		}
	}
}

// publishSnapshot adds m to v's list of snapshots, keeping lastSnap at the
// newest cut (a later one may still be pending).
func (w *writer) publishSnapshot(v *volState, m snapshotMeta) {
	snaps := append(slices.Clone(v.snapshots()), m)
	slices.SortFunc(snaps, func(a, b snapshotMeta) int { return cmp.Compare(a.Seq, b.Seq) })
	last := v.lastSnap.Load()
	v.setSnapshots(snaps)
	if last > v.lastSnap.Load() {
		v.lastSnap.Store(last)
	}
}

// completeSnapshots commits, synced, every pending snapshot and held
// version the log is durable for (up to durable) and reports the
// snapshots taken. A failed commit fails the store and those snapshots.
func (w *writer) completeSnapshots(durable uint64) error {
	if len(w.pendSnaps) == 0 {
		return nil
	}
	w.stageSnapshots(durable, false)
	err := w.ib.Commit(true)
	if err != nil {
		w.fail(err)
	}
	w.finishSnapshots(durable, false, err)
	return err
}

// settleSnapshots syncs the log and completes every pending snapshot, for
// requests that must see all snapshots in the index (deleting a snapshot
// or a volume).
func (w *writer) settleSnapshots() error {
	if len(w.pendSnaps) == 0 {
		return nil
	}
	if err := w.syncData(); err != nil {
		return err
	}
	return w.completeSnapshots(w.seq)
}

// failSnapshots fails every pending snapshot (the store failed or closed).
// Held versions stay readable: reads of older snapshots still need them.
func (w *writer) failSnapshots(err error) {
	for _, p := range w.pendSnaps {
		p.done <- err
	}
	clear(w.pendSnaps)
	w.pendSnaps = w.pendSnaps[:0]
}

// logSynced is the syncer's report, on the writer: the log was synced
// (err == nil) up to seq at least.
func (w *writer) logSynced(seq uint64, err error) {
	if err != nil {
		w.fail(err)
		return
	}
	if w.failed != nil {
		return
	}
	w.synced = max(w.synced, seq)
	_ = w.completeSnapshots(seq) // a failure fails the store (w.fail)
}

// runLogSyncer syncs the active segment off the writer whenever the
// writer asks (askSync): for a snapshot cut, or when writebackBytes were
// appended since the last sync, so that the sync that seals a segment
// (which the writer waits for) finds little left to write. It reports to
// the writer. Open starts it; Close stops it after the writer (whose
// shutdown completes what is pending).
func (s *Store) runLogSyncer() {
	defer close(s.syncDone)
	for {
		select {
		case <-s.syncKick:
		case <-s.syncQuit:
			return
		}
		// The seq is read before the segment: everything up to it was
		// appended before the sync starts, to this segment or to an older
		// one, which the writer synced when it rolled (and completed the
		// snapshots then).
		seq := s.syncSeq.Load()
		id := s.activeSeg.Load()
		var err error
		s.syncMu.Lock() // the cleaner cannot close the file meanwhile
		if f := s.segFile(id); f != nil {
			if err = f.SyncData(); err != nil {
				err = fmt.Errorf("sync segment %d: %w", id, err)
			} else {
				s.stats.syncs.Add(1)
			}
		}
		s.syncMu.Unlock()
		_ = s.run(nil, func(w *writer) error {
			w.logSynced(seq, err)
			return nil
		}) // ErrClosed: Close completes what is pending
	}
}
