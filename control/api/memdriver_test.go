package api

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/vbs-storage/vbs/control/node"
)

// memDriver is an in-memory node.Driver for tests of the loop. It keeps
// what a node would hold (volumes, snapshots, exports) and can be told to
// fail, so tests check what the loop asked for and how it handles errors.
type memDriver struct {
	mu        sync.Mutex
	volumes   map[string]node.VolumeSpec
	snapshots map[node.SnapshotRef]uint64
	exports   map[[2]string]node.ExportSpec
	reverted  []node.SnapshotRef
	fail      map[string]error // method name -> error
	block     chan struct{}    // when set, ResizeVolume waits on it or ctx
}

func newMemDriver() *memDriver {
	return &memDriver{
		volumes:   map[string]node.VolumeSpec{},
		snapshots: map[node.SnapshotRef]uint64{},
		exports:   map[[2]string]node.ExportSpec{},
		fail:      map[string]error{},
	}
}

func (d *memDriver) setFail(method string, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err == nil {
		delete(d.fail, method)
	} else {
		d.fail[method] = err
	}
}

func (d *memDriver) EnsureVolume(_ context.Context, spec node.VolumeSpec) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.fail["EnsureVolume"]; err != nil {
		return err
	}
	if spec.Source != nil {
		if _, ok := d.snapshots[*spec.Source]; !ok {
			return fmt.Errorf("source %v: %w", *spec.Source, node.ErrNotFound)
		}
	}
	if cur, ok := d.volumes[spec.Name]; ok && cur.SizeBytes >= spec.SizeBytes {
		return nil
	}
	d.volumes[spec.Name] = spec
	return nil
}

func (d *memDriver) DeleteVolume(_ context.Context, name string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.volumes, name)
	for ref := range d.snapshots {
		if ref.Volume == name {
			delete(d.snapshots, ref)
		}
	}
	return nil
}

func (d *memDriver) ResizeVolume(ctx context.Context, name string, size uint64) error {
	d.mu.Lock()
	block := d.block
	d.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	v, ok := d.volumes[name]
	if !ok {
		return node.ErrNotFound
	}
	if size > v.SizeBytes {
		v.SizeBytes = size
		d.volumes[name] = v
	}
	return nil
}

func (d *memDriver) CreateSnapshot(_ context.Context, ref node.SnapshotRef) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	v, ok := d.volumes[ref.Volume]
	if !ok {
		return node.ErrNotFound
	}
	d.snapshots[ref] = v.SizeBytes
	return nil
}

func (d *memDriver) DeleteSnapshot(_ context.Context, ref node.SnapshotRef) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.snapshots, ref)
	return nil
}

func (d *memDriver) RevertVolume(_ context.Context, ref node.SnapshotRef) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.snapshots[ref]; !ok {
		return node.ErrNotFound
	}
	for k := range d.exports {
		if k[0] == ref.Volume {
			return node.ErrBusy
		}
	}
	d.reverted = append(d.reverted, ref)
	return nil
}

func (d *memDriver) FlattenVolume(ctx context.Context, name string, progress func(done, total uint64)) error {
	for i := uint64(1); i <= 4; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		progress(i, 4)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	v, ok := d.volumes[name]
	if !ok {
		return node.ErrNotFound
	}
	v.Source = nil
	d.volumes[name] = v
	return nil
}

func (d *memDriver) Export(_ context.Context, spec node.ExportSpec) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.fail["Export"]; err != nil {
		return err
	}
	if _, ok := d.volumes[spec.Volume]; !ok {
		return node.ErrNotFound
	}
	d.exports[[2]string{spec.Volume, spec.InitiatorIQN}] = spec
	return nil
}

func (d *memDriver) Unexport(_ context.Context, volume, initiator string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.exports, [2]string{volume, initiator})
	return nil
}

func (d *memDriver) Exports(context.Context) ([]node.ExportSpec, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]node.ExportSpec, 0, len(d.exports))
	for _, e := range d.exports {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Volume+out[i].InitiatorIQN < out[j].Volume+out[j].InitiatorIQN })
	return out, nil
}

func (d *memDriver) Stats(context.Context) (node.Stats, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := node.Stats{CapacityBytes: 1 << 40}
	for _, v := range d.volumes {
		st.UsedBytes += v.SizeBytes
		st.Volumes = append(st.Volumes, node.VolumeStats{Name: v.Name, SizeBytes: v.SizeBytes})
	}
	return st, nil
}
