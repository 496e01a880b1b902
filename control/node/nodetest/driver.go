// Package nodetest provides an in-memory node.Driver for the control
// plane's tests, the way net/http/httptest serves HTTP tests. It keeps
// what a node would hold and can be told to fail; production code never
// uses it.
package nodetest

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/vbs-storage/vbs/control/node"
)

// Driver is an in-memory node.Driver. It keeps what a node would hold
// (volumes, snapshots, exports) and can be told to fail, so tests check
// what the control plane asked for and how it handles errors. Tests read
// and change its fields under Mu.
type Driver struct {
	Mu        sync.Mutex
	Volumes   map[string]node.VolumeSpec
	Snapshots map[node.SnapshotRef]uint64
	Exported  map[[2]string]node.ExportSpec
	Reverted  []node.SnapshotRef
	Fail      map[string]error // method name -> error
	Block     chan struct{}    // when set, ResizeVolume waits on it or ctx
}

// NewDriver returns an empty Driver.
func NewDriver() *Driver {
	return &Driver{
		Volumes:   map[string]node.VolumeSpec{},
		Snapshots: map[node.SnapshotRef]uint64{},
		Exported:  map[[2]string]node.ExportSpec{},
		Fail:      map[string]error{},
	}
}

// SetFail makes method fail with err (nil clears it).
func (d *Driver) SetFail(method string, err error) {
	d.Mu.Lock()
	defer d.Mu.Unlock()
	if err == nil {
		delete(d.Fail, method)
	} else {
		d.Fail[method] = err
	}
}

func (d *Driver) EnsureVolume(_ context.Context, spec node.VolumeSpec) error {
	d.Mu.Lock()
	defer d.Mu.Unlock()
	if err := d.Fail["EnsureVolume"]; err != nil {
		return err
	}
	if spec.Source != nil {
		if _, ok := d.Snapshots[*spec.Source]; !ok {
			return fmt.Errorf("source %v: %w", *spec.Source, node.ErrNotFound)
		}
	}
	if cur, ok := d.Volumes[spec.Name]; ok && cur.SizeBytes >= spec.SizeBytes {
		return nil
	}
	d.Volumes[spec.Name] = spec
	return nil
}

func (d *Driver) DeleteVolume(_ context.Context, name string) error {
	d.Mu.Lock()
	defer d.Mu.Unlock()
	delete(d.Volumes, name)
	for ref := range d.Snapshots {
		if ref.Volume == name {
			delete(d.Snapshots, ref)
		}
	}
	return nil
}

func (d *Driver) ResizeVolume(ctx context.Context, name string, size uint64) error {
	d.Mu.Lock()
	block := d.Block
	d.Mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	d.Mu.Lock()
	defer d.Mu.Unlock()
	v, ok := d.Volumes[name]
	if !ok {
		return node.ErrNotFound
	}
	if size > v.SizeBytes {
		v.SizeBytes = size
		d.Volumes[name] = v
	}
	return nil
}

func (d *Driver) CreateSnapshot(_ context.Context, ref node.SnapshotRef) error {
	d.Mu.Lock()
	defer d.Mu.Unlock()
	v, ok := d.Volumes[ref.Volume]
	if !ok {
		return node.ErrNotFound
	}
	d.Snapshots[ref] = v.SizeBytes
	return nil
}

func (d *Driver) DeleteSnapshot(_ context.Context, ref node.SnapshotRef) error {
	d.Mu.Lock()
	defer d.Mu.Unlock()
	delete(d.Snapshots, ref)
	return nil
}

func (d *Driver) RevertVolume(_ context.Context, ref node.SnapshotRef) error {
	d.Mu.Lock()
	defer d.Mu.Unlock()
	if _, ok := d.Snapshots[ref]; !ok {
		return node.ErrNotFound
	}
	for k := range d.Exported {
		if k[0] == ref.Volume {
			return node.ErrBusy
		}
	}
	d.Reverted = append(d.Reverted, ref)
	return nil
}

func (d *Driver) FlattenVolume(ctx context.Context, name string, progress func(done, total uint64)) error {
	for i := uint64(1); i <= 4; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		progress(i, 4)
	}
	d.Mu.Lock()
	defer d.Mu.Unlock()
	v, ok := d.Volumes[name]
	if !ok {
		return node.ErrNotFound
	}
	v.Source = nil
	d.Volumes[name] = v
	return nil
}

func (d *Driver) Export(_ context.Context, spec node.ExportSpec) error {
	d.Mu.Lock()
	defer d.Mu.Unlock()
	if err := d.Fail["Export"]; err != nil {
		return err
	}
	if _, ok := d.Volumes[spec.Volume]; !ok {
		return node.ErrNotFound
	}
	d.Exported[[2]string{spec.Volume, spec.InitiatorIQN}] = spec
	return nil
}

func (d *Driver) Unexport(_ context.Context, volume, initiator string) error {
	d.Mu.Lock()
	defer d.Mu.Unlock()
	delete(d.Exported, [2]string{volume, initiator})
	return nil
}

func (d *Driver) Exports(context.Context) ([]node.ExportSpec, error) {
	d.Mu.Lock()
	defer d.Mu.Unlock()
	out := make([]node.ExportSpec, 0, len(d.Exported))
	for _, e := range d.Exported {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Volume+out[i].InitiatorIQN < out[j].Volume+out[j].InitiatorIQN })
	return out, nil
}

func (d *Driver) Stats(context.Context) (node.Stats, error) {
	d.Mu.Lock()
	defer d.Mu.Unlock()
	st := node.Stats{CapacityBytes: 1 << 40}
	for _, v := range d.Volumes {
		st.UsedBytes += v.SizeBytes
		st.Volumes = append(st.Volumes, node.VolumeStats{Name: v.Name, SizeBytes: v.SizeBytes})
	}
	return st, nil
}
