// Package local is the real node.Driver: it drives this process's block
// store and iSCSI portal. Each volume with at least one grant is served as
// its own target (BaseIQN:VOLUME) with the volume as LUN 0, and only the
// granted initiators may log in; a volume without grants is not served at
// all. It owns the blockstore.Store and the target.Server it is given for
// its whole life and closes both.
package local

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"sync"

	"github.com/vbs-storage/vbs/blockstore"
	"github.com/vbs-storage/vbs/control/node"
	"github.com/vbs-storage/vbs/internal/storedev"
	"github.com/vbs-storage/vbs/target"
	"github.com/vbs-storage/vbs/target/iscsi"
	"github.com/vbs-storage/vbs/target/scsi"
)

// exportLUN is the LUN of the volume inside its target.
const exportLUN = 0

// served is a volume the portal currently exports.
type served struct {
	dev       meteredDevice
	targetIQN string
	access    map[string]*node.CHAP // initiator -> credentials (nil: none)
}

// Node is a node.Driver over a local block store and iSCSI portal.
type Node struct {
	store *blockstore.Store
	tgt   *target.Server

	mu     sync.Mutex
	served map[string]*served // by volume name
	meters map[string]*meter  // by volume name, from first export to delete
}

var _ node.Driver = (*Node)(nil)

// New drives store and tgt; the Node owns both from now on.
func New(store *blockstore.Store, tgt *target.Server) *Node {
	return &Node{store: store, tgt: tgt, served: map[string]*served{}, meters: map[string]*meter{}}
}

// Serve runs the iSCSI portal on ln until ctx ends or Close.
func (n *Node) Serve(ctx context.Context, ln net.Listener) error {
	err := n.tgt.Serve(ctx, ln)
	if errors.Is(err, target.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops the portal (sessions end after their commands complete),
// closes every volume handle and then the store.
func (n *Node) Close() error {
	terr := n.tgt.Close()
	n.mu.Lock()
	var errs []error
	if terr != nil {
		errs = append(errs, fmt.Errorf("close portal: %w", terr))
	}
	for name, s := range n.served {
		if err := s.dev.Flush(context.Background()); err != nil {
			errs = append(errs, fmt.Errorf("flush volume %s: %w", name, err))
		}
		if err := s.dev.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close volume %s: %w", name, err))
		}
	}
	n.served = map[string]*served{}
	n.mu.Unlock()
	if err := n.store.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close block store: %w", err))
	}
	return errors.Join(errs...)
}

// translate maps blockstore errors to the node package's sentinels.
func translate(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, blockstore.ErrVolumeNotFound), errors.Is(err, blockstore.ErrSnapshotNotFound):
		return fmt.Errorf("%w: %w", node.ErrNotFound, err)
	case errors.Is(err, blockstore.ErrNoSpace), errors.Is(err, blockstore.ErrOvercommit):
		return fmt.Errorf("%w: %w", node.ErrNoSpace, err)
	case errors.Is(err, blockstore.ErrVolumeBusy), errors.Is(err, blockstore.ErrSnapshotBusy):
		return fmt.Errorf("%w: %w", node.ErrBusy, err)
	}
	return err
}

// EnsureVolume implements node.Driver. A clone is made from its source
// snapshot (sharing its data) and then grown if the spec is larger.
func (n *Node) EnsureVolume(ctx context.Context, spec node.VolumeSpec) error {
	info, err := n.store.StatVolume(spec.Name)
	switch {
	case errors.Is(err, blockstore.ErrVolumeNotFound) && spec.Source != nil:
		info, err = n.store.CreateClone(ctx, spec.Source.Volume, spec.Source.Snapshot, spec.Name)
		if err != nil {
			return translate(err)
		}
	case errors.Is(err, blockstore.ErrVolumeNotFound):
		_, err = n.store.CreateVolume(ctx, spec.Name, blockstore.VolumeOptions{SizeBytes: spec.SizeBytes, BlockSize: spec.BlockSize})
		return translate(err)
	case err != nil:
		return translate(err)
	}
	if info.BlockSize != spec.BlockSize {
		return fmt.Errorf("volume %s has %d-byte blocks on the node, the catalog says %d", spec.Name, info.BlockSize, spec.BlockSize)
	}
	if info.Blocks*uint64(info.BlockSize) < spec.SizeBytes {
		return translate(n.store.ResizeVolume(ctx, spec.Name, spec.SizeBytes))
	}
	return nil
}

// DeleteVolume implements node.Driver: it stops serving the volume, drops
// its sessions and deletes its data.
func (n *Node) DeleteVolume(ctx context.Context, name string) error {
	n.mu.Lock()
	if s, ok := n.served[name]; ok {
		if err := n.unserveLocked(name, s); err != nil {
			n.mu.Unlock()
			return err
		}
	}
	delete(n.meters, name)
	n.mu.Unlock()
	err := n.store.DeleteVolume(ctx, name)
	if errors.Is(err, blockstore.ErrVolumeNotFound) {
		return nil
	}
	return translate(err)
}

// ResizeVolume implements node.Driver. The SCSI layer sees Blocks() grow
// and raises CAPACITY DATA HAS CHANGED on the next command.
func (n *Node) ResizeVolume(ctx context.Context, name string, size uint64) error {
	info, err := n.store.StatVolume(name)
	if err != nil {
		return translate(err)
	}
	if info.Blocks*uint64(info.BlockSize) >= size {
		return nil
	}
	return translate(n.store.ResizeVolume(ctx, name, size))
}

// CreateSnapshot implements node.Driver.
func (n *Node) CreateSnapshot(ctx context.Context, ref node.SnapshotRef) error {
	_, err := n.store.CreateSnapshot(ctx, ref.Volume, ref.Snapshot)
	if errors.Is(err, blockstore.ErrSnapshotExists) {
		return nil
	}
	return translate(err)
}

// DeleteSnapshot implements node.Driver.
func (n *Node) DeleteSnapshot(ctx context.Context, ref node.SnapshotRef) error {
	err := n.store.DeleteSnapshot(ctx, ref.Volume, ref.Snapshot)
	if errors.Is(err, blockstore.ErrSnapshotNotFound) || errors.Is(err, blockstore.ErrVolumeNotFound) {
		return nil
	}
	return translate(err)
}

// RevertVolume implements node.Driver. The volume must not be served.
func (n *Node) RevertVolume(ctx context.Context, ref node.SnapshotRef) error {
	n.mu.Lock()
	_, served := n.served[ref.Volume]
	n.mu.Unlock()
	if served {
		return fmt.Errorf("revert %s: exported: %w", ref.Volume, node.ErrBusy)
	}
	return translate(n.store.RevertVolume(ctx, ref.Volume, ref.Snapshot))
}

// FlattenVolume implements node.Driver.
func (n *Node) FlattenVolume(ctx context.Context, name string, progress func(done, total uint64)) error {
	return translate(n.store.FlattenVolume(ctx, name, progress))
}

func creds(c *node.CHAP) *iscsi.Credentials {
	if c == nil {
		return nil
	}
	return &iscsi.Credentials{User: c.User, Secret: c.Secret}
}

func accessList(access map[string]*node.CHAP) []target.AccessEntry {
	out := make([]target.AccessEntry, 0, len(access))
	for ini, c := range access {
		out = append(out, target.AccessEntry{Initiator: ini, CHAP: creds(c)})
	}
	slices.SortFunc(out, func(a, b target.AccessEntry) int {
		if a.Initiator < b.Initiator {
			return -1
		}
		if a.Initiator > b.Initiator {
			return 1
		}
		return 0
	})
	return out
}

// Export implements node.Driver. The first grant of a volume opens it and
// adds its target; later ones replace the target's access list, which
// the portal enforces at once.
func (n *Node) Export(_ context.Context, spec node.ExportSpec) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	s, ok := n.served[spec.Volume]
	if ok && s.targetIQN != spec.TargetIQN {
		if err := n.unserveLocked(spec.Volume, s); err != nil {
			return err
		}
		ok = false
	}
	if !ok {
		h, err := n.store.OpenVolume(spec.Volume)
		if err != nil {
			return translate(err)
		}
		m, ok := n.meters[spec.Volume]
		if !ok {
			m = newMeter()
			n.meters[spec.Volume] = m
		}
		dev := meteredDevice{Volume: storedev.New(h), m: m}
		access := map[string]*node.CHAP{spec.InitiatorIQN: spec.CHAP}
		err = n.tgt.AddTarget(target.TargetConfig{
			IQN:    spec.TargetIQN,
			Alias:  spec.Volume,
			LUNs:   map[uint64]scsi.Device{exportLUN: dev},
			Access: accessList(access),
		})
		if err != nil {
			_ = dev.Close()
			return fmt.Errorf("export %s as %s: %w", spec.Volume, spec.TargetIQN, err)
		}
		n.served[spec.Volume] = &served{dev: dev, targetIQN: spec.TargetIQN, access: access}
		return nil
	}
	s.access[spec.InitiatorIQN] = spec.CHAP
	if err := n.tgt.SetAccess(s.targetIQN, accessList(s.access)); err != nil {
		return fmt.Errorf("export %s to %s: %w", spec.Volume, spec.InitiatorIQN, err)
	}
	return nil
}

// Unexport implements node.Driver. Removing the last grant removes the
// target; either way the initiator's sessions are dropped at once.
func (n *Node) Unexport(_ context.Context, volume, initiator string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	s, ok := n.served[volume]
	if !ok {
		return nil
	}
	if _, ok := s.access[initiator]; !ok {
		return nil
	}
	delete(s.access, initiator)
	if len(s.access) == 0 {
		return n.unserveLocked(volume, s)
	}
	if err := n.tgt.SetAccess(s.targetIQN, accessList(s.access)); err != nil {
		return fmt.Errorf("unexport %s from %s: %w", volume, initiator, err)
	}
	return nil
}

// unserveLocked removes a volume's target and closes its handle.
func (n *Node) unserveLocked(volume string, s *served) error {
	if err := n.tgt.RemoveTarget(s.targetIQN); err != nil && !errors.Is(err, target.ErrNoSuchTarget) {
		return fmt.Errorf("stop serving %s: %w", volume, err)
	}
	delete(n.served, volume)
	ferr := s.dev.Flush(context.Background())
	if err := s.dev.Close(); err != nil {
		return fmt.Errorf("close volume %s: %w", volume, err)
	}
	if ferr != nil {
		return fmt.Errorf("flush volume %s: %w", volume, ferr)
	}
	return nil
}

// Exports implements node.Driver.
func (n *Node) Exports(context.Context) ([]node.ExportSpec, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []node.ExportSpec
	for vol, s := range n.served {
		for ini, c := range s.access {
			out = append(out, node.ExportSpec{Volume: vol, TargetIQN: s.targetIQN, InitiatorIQN: ini, CHAP: c})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Volume != out[j].Volume {
			return out[i].Volume < out[j].Volume
		}
		return out[i].InitiatorIQN < out[j].InitiatorIQN
	})
	return out, nil
}

// Stats implements node.Driver.
func (n *Node) Stats(context.Context) (node.Stats, error) {
	st := n.store.Stats()
	out := node.Stats{
		UsedBytes:    uint64(max(st.AllocatedBytes, 0)),
		WrittenBytes: st.BytesWritten, RelocatedBytes: st.GCBytes, SegmentsCleaned: st.GCSegments,
		Corruptions: st.Corruptions,
	}
	if st.CapacityBytes > 0 {
		out.CapacityBytes = uint64(st.CapacityBytes)
	} else {
		out.CapacityBytes = out.UsedBytes + uint64(max(st.FreeBytes, 0))
	}
	vols := n.store.ListVolumes()
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, v := range vols {
		size := v.Blocks * uint64(v.BlockSize)
		if m, ok := n.meters[v.Name]; ok {
			out.Volumes = append(out.Volumes, m.stats(v.Name, size))
		} else {
			out.Volumes = append(out.Volumes, node.VolumeStats{Name: v.Name, SizeBytes: size})
		}
	}
	return out, nil
}
