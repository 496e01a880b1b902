package agent

import (
	"context"
	"time"

	"connectrpc.com/connect"

	"github.com/vbs-storage/vbs/control/node"
	nodev1 "github.com/vbs-storage/vbs/proto/gen/vbs/node/v1"
	"github.com/vbs-storage/vbs/proto/gen/vbs/node/v1/nodev1connect"
)

// Client is a node.Driver for a remote node's agent.
type Client struct {
	c       nodev1connect.NodeAgentServiceClient
	timeout time.Duration
}

// DefaultCallTimeout bounds each call but FlattenVolume and RevertVolume
// (operations, cancelled through their context), so that a node
// that stopped answering (a partition drops packets, it does not refuse
// connections) cannot stall the leader's reconcile pass.
const DefaultCallTimeout = 10 * time.Second

var _ node.Driver = (*Client)(nil)

// NewClient returns a driver for the agent at baseURL (http://HOST:PORT
// of the node's API). opts should carry the cluster's bearer token. Calls
// other than FlattenVolume and RevertVolume time out after
// DefaultCallTimeout.
func NewClient(hc connect.HTTPClient, baseURL string, opts ...connect.ClientOption) *Client {
	return &Client{c: nodev1connect.NewNodeAgentServiceClient(hc, baseURL, opts...), timeout: DefaultCallTimeout}
}

func (c *Client) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.timeout)
}

// EnsureVolume implements node.Driver.
func (c *Client) EnsureVolume(ctx context.Context, spec node.VolumeSpec) error {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	req := &nodev1.EnsureVolumeRequest{Name: spec.Name, SizeBytes: spec.SizeBytes, BlockSize: spec.BlockSize}
	if spec.Source != nil {
		req.SourceVolume, req.SourceSnapshot = spec.Source.Volume, spec.Source.Snapshot
	}
	_, err := c.c.EnsureVolume(ctx, connect.NewRequest(req))
	return fromConnect("ensure volume", err)
}

// DeleteVolume implements node.Driver.
func (c *Client) DeleteVolume(ctx context.Context, name string) error {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	_, err := c.c.DeleteVolume(ctx, connect.NewRequest(&nodev1.DeleteVolumeRequest{Name: name}))
	return fromConnect("delete volume", err)
}

// ResizeVolume implements node.Driver.
func (c *Client) ResizeVolume(ctx context.Context, name string, size uint64) error {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	_, err := c.c.ResizeVolume(ctx, connect.NewRequest(&nodev1.ResizeVolumeRequest{Name: name, SizeBytes: size}))
	return fromConnect("resize volume", err)
}

// CreateSnapshot implements node.Driver.
func (c *Client) CreateSnapshot(ctx context.Context, ref node.SnapshotRef) error {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	_, err := c.c.CreateSnapshot(ctx, connect.NewRequest(&nodev1.CreateSnapshotRequest{Volume: ref.Volume, Snapshot: ref.Snapshot}))
	return fromConnect("create snapshot", err)
}

// DeleteSnapshot implements node.Driver.
func (c *Client) DeleteSnapshot(ctx context.Context, ref node.SnapshotRef) error {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	_, err := c.c.DeleteSnapshot(ctx, connect.NewRequest(&nodev1.DeleteSnapshotRequest{Volume: ref.Volume, Snapshot: ref.Snapshot}))
	return fromConnect("delete snapshot", err)
}

// RevertVolume implements node.Driver. Like FlattenVolume it runs as an
// operation (cancelled through ctx), so it has no call timeout: its cost
// follows the blocks that changed.
func (c *Client) RevertVolume(ctx context.Context, ref node.SnapshotRef) error {
	_, err := c.c.RevertVolume(ctx, connect.NewRequest(&nodev1.RevertVolumeRequest{Volume: ref.Volume, Snapshot: ref.Snapshot}))
	return fromConnect("revert volume", err)
}

// FlattenVolume implements node.Driver, relaying the remote progress.
func (c *Client) FlattenVolume(ctx context.Context, name string, progress func(done, total uint64)) error {
	st, err := c.c.FlattenVolume(ctx, connect.NewRequest(&nodev1.FlattenVolumeRequest{Name: name}))
	if err != nil {
		return fromConnect("flatten volume", err)
	}
	defer st.Close()
	for st.Receive() {
		if progress != nil {
			progress(st.Msg().DoneBlocks, st.Msg().TotalBlocks)
		}
	}
	return fromConnect("flatten volume", st.Err())
}

// Export implements node.Driver.
func (c *Client) Export(ctx context.Context, spec node.ExportSpec) error {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	_, err := c.c.Export(ctx, connect.NewRequest(&nodev1.ExportRequest{Grant: toGrant(spec)}))
	return fromConnect("export", err)
}

// Unexport implements node.Driver.
func (c *Client) Unexport(ctx context.Context, volume, initiator string) error {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	_, err := c.c.Unexport(ctx, connect.NewRequest(&nodev1.UnexportRequest{Volume: volume, InitiatorIqn: initiator}))
	return fromConnect("unexport", err)
}

// Exports implements node.Driver.
func (c *Client) Exports(ctx context.Context) ([]node.ExportSpec, error) {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	r, err := c.c.ListExports(ctx, connect.NewRequest(&nodev1.ListExportsRequest{}))
	if err != nil {
		return nil, fromConnect("list exports", err)
	}
	out := make([]node.ExportSpec, 0, len(r.Msg.Grants))
	for _, g := range r.Msg.Grants {
		out = append(out, fromGrant(g))
	}
	return out, nil
}

// Stats implements node.Driver.
func (c *Client) Stats(ctx context.Context) (node.Stats, error) {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	r, err := c.c.GetStats(ctx, connect.NewRequest(&nodev1.GetStatsRequest{}))
	if err != nil {
		return node.Stats{}, fromConnect("stats", err)
	}
	st := node.Stats{CapacityBytes: r.Msg.CapacityBytes, UsedBytes: r.Msg.UsedBytes}
	for _, v := range r.Msg.Volumes {
		vs := node.VolumeStats{Name: v.Name, SizeBytes: v.SizeBytes, ReadOps: v.ReadOps, WriteOps: v.WriteOps,
			ReadBytes: v.ReadBytes, WrittenBytes: v.WrittenBytes, QueueDepth: v.QueueDepth, LatencySum: v.LatencySumSeconds}
		copy(vs.Latency[:], v.Latency)
		st.Volumes = append(st.Volumes, vs)
	}
	return st, nil
}
