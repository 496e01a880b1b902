package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	"github.com/vbs-storage/vbs/control/domain"
	vbsv1 "github.com/vbs-storage/vbs/proto/gen/vbs/v1"
)

func newVolumeCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "volume", Short: "Create, list, describe, resize and delete volumes"}
	cmd.AddCommand(newVolumeCreateCmd(), newVolumeListCmd(), newVolumeGetCmd(), newVolumeDeleteCmd(), newVolumeResizeCmd(), newVolumeFlattenCmd())
	return cmd
}

func volumeRows(vs []*vbsv1.Volume) [][]string {
	rows := make([][]string, 0, len(vs))
	for _, v := range vs {
		state := stateName(v.State, "VOLUME_STATE_")
		if v.StateReason != "" {
			state += " (" + v.StateReason + ")"
		}
		rows = append(rows, []string{v.Name, domain.FormatSize(v.SizeBytes), state, orDash(v.SourceSnapshot), orDash(v.Node), age(v.CreateTime)})
	}
	return rows
}

func volumeHeader() []string { return []string{"NAME", "SIZE", "STATE", "SOURCE", "NODE", "AGE"} }

func (c *cli) printVolume(v *vbsv1.Volume) error {
	if c.output == outputJSON {
		return c.printJSON(v)
	}
	return c.table(volumeHeader(), volumeRows([]*vbsv1.Volume{v}))
}

func parseLabels(in []string) (map[string]string, error) {
	if len(in) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, l := range in {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return nil, usageError{fmt.Errorf("--label %q: want KEY=VALUE", l)}
		}
		out[k] = v
	}
	return out, nil
}

// waitVolume polls until the volume leaves a transitional state.
func (c *cli) waitVolume(ctx context.Context, name string, want vbsv1.VolumeState) (*vbsv1.Volume, error) {
	t := time.NewTicker(cliPollInterval)
	defer t.Stop()
	for {
		r, err := c.vol.GetVolume(ctx, connect.NewRequest(&vbsv1.GetVolumeRequest{Name: name}))
		if err != nil {
			return nil, explain(err)
		}
		v := r.Msg.Volume
		switch v.State {
		case want, vbsv1.VolumeState_VOLUME_STATE_IN_USE:
			return v, nil
		case vbsv1.VolumeState_VOLUME_STATE_ERROR:
			return v, fmt.Errorf("volume %s is in error: %s", name, v.StateReason)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

func newVolumeCreateCmd() *cobra.Command {
	var (
		size, from, requestID string
		nodeName              string
		labels                []string
		wait                  bool
		blockSize             uint32
	)
	cmd := &cobra.Command{
		Use:   "create NAME --size SIZE [--from-snapshot VOLUME@SNAPSHOT]",
		Short: "Create a volume, or a linked clone of a snapshot",
		Args:  args("NAME"),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := newCLI(cmd)
			if err != nil {
				return err
			}
			req := &vbsv1.CreateVolumeRequest{Name: a[0], SourceSnapshot: from, RequestId: requestID, BlockSize: blockSize, Node: nodeName}
			if from == "" || size != "" {
				if req.SizeBytes, err = parseSizeFlag(size); err != nil {
					return err
				}
			}
			if req.Labels, err = parseLabels(labels); err != nil {
				return err
			}
			r, err := c.vol.CreateVolume(cmd.Context(), connect.NewRequest(req))
			if err != nil {
				return explain(err)
			}
			v := r.Msg.Volume
			if wait {
				if v, err = c.waitVolume(cmd.Context(), v.Name, vbsv1.VolumeState_VOLUME_STATE_AVAILABLE); err != nil {
					return err
				}
			}
			return c.printVolume(v)
		},
	}
	f := cmd.Flags()
	f.StringVar(&size, "size", "", "size, e.g. 10G (for a clone: default the snapshot's size)")
	f.StringVar(&from, "from-snapshot", "", "make a linked clone of VOLUME@SNAPSHOT")
	f.StringArrayVar(&labels, "label", nil, "label KEY=VALUE (repeatable)")
	f.StringVar(&requestID, "request-id", "", "idempotency key: retrying with it returns the same volume")
	f.BoolVar(&wait, "wait", true, "wait until the volume is available")
	f.Uint32Var(&blockSize, "block-size", 0, "logical block size, 512 or 4096 (default 4096)")
	f.StringVar(&nodeName, "node", "", "node to place the volume on (default: the node serving the API)")
	return cmd
}

func newVolumeListCmd() *cobra.Command {
	var (
		labels []string
		prefix string
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List volumes",
		Args:  args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newCLI(cmd)
			if err != nil {
				return err
			}
			sel, err := parseLabels(labels)
			if err != nil {
				return err
			}
			all := &vbsv1.ListVolumesResponse{}
			req := &vbsv1.ListVolumesRequest{LabelSelector: sel, NamePrefix: prefix}
			for {
				r, err := c.vol.ListVolumes(cmd.Context(), connect.NewRequest(req))
				if err != nil {
					return explain(err)
				}
				all.Volumes = append(all.Volumes, r.Msg.Volumes...)
				if r.Msg.NextPageToken == "" {
					break
				}
				req.PageToken = r.Msg.NextPageToken
			}
			if c.output == outputJSON {
				return c.printJSON(all)
			}
			return c.table(volumeHeader(), volumeRows(all.Volumes))
		},
	}
	cmd.Flags().StringArrayVar(&labels, "label", nil, "only volumes with label KEY=VALUE (repeatable)")
	cmd.Flags().StringVar(&prefix, "prefix", "", "only volumes whose name starts with this")
	return cmd
}

func newVolumeGetCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "get NAME",
		Short: "Describe a volume",
		Args:  args("NAME"),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := newCLI(cmd)
			if err != nil {
				return err
			}
			r, err := c.vol.GetVolume(cmd.Context(), connect.NewRequest(&vbsv1.GetVolumeRequest{Name: a[0]}))
			if err != nil {
				return explain(err)
			}
			return c.printVolume(r.Msg.Volume)
		},
	}
}

func newVolumeDeleteCmd() *cobra.Command {
	var cascade, wait bool
	cmd := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a volume (refused while exported or with snapshots or clones, unless --cascade)",
		Args:  args("NAME"),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := newCLI(cmd)
			if err != nil {
				return err
			}
			r, err := c.vol.DeleteVolume(cmd.Context(), connect.NewRequest(&vbsv1.DeleteVolumeRequest{Name: a[0], Cascade: cascade}))
			if err != nil {
				return explain(err)
			}
			if wait {
				t := time.NewTicker(cliPollInterval)
				defer t.Stop()
				for {
					_, err := c.vol.GetVolume(cmd.Context(), connect.NewRequest(&vbsv1.GetVolumeRequest{Name: a[0]}))
					if connect.CodeOf(err) == connect.CodeNotFound {
						break
					}
					if err != nil {
						return explain(err)
					}
					select {
					case <-cmd.Context().Done():
						return cmd.Context().Err()
					case <-t.C:
					}
				}
			}
			if c.output == outputJSON {
				return c.printJSON(r.Msg.Volume)
			}
			_, err = fmt.Fprintf(c.out, "volume %s deleted\n", a[0])
			return err
		},
	}
	cmd.Flags().BoolVar(&cascade, "cascade", false, "also revoke its exports and delete its snapshots and linked clones")
	cmd.Flags().BoolVar(&wait, "wait", true, "wait until the node has deleted the data")
	return cmd
}

func newVolumeResizeCmd() *cobra.Command {
	var (
		size string
		wait bool
	)
	cmd := &cobra.Command{
		Use:   "resize NAME --size SIZE",
		Short: "Grow a volume online",
		Args:  args("NAME"),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := newCLI(cmd)
			if err != nil {
				return err
			}
			n, err := parseSizeFlag(size)
			if err != nil {
				return err
			}
			r, err := c.vol.ResizeVolume(cmd.Context(), connect.NewRequest(&vbsv1.ResizeVolumeRequest{Name: a[0], SizeBytes: n}))
			if err != nil {
				return explain(err)
			}
			op := r.Msg.Operation
			if wait {
				if op, err = c.waitOperation(cmd.Context(), op.Id); err != nil {
					return err
				}
			}
			return c.printOperation(op)
		},
	}
	cmd.Flags().StringVar(&size, "size", "", "new size, larger than the current one (e.g. 20G)")
	cmd.Flags().BoolVar(&wait, "wait", true, "wait for the resize to finish, showing progress")
	return cmd
}

func newVolumeFlattenCmd() *cobra.Command {
	var wait bool
	cmd := &cobra.Command{
		Use:   "flatten NAME",
		Short: "Copy a linked clone's shared data so it no longer depends on its snapshot",
		Args:  args("NAME"),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := newCLI(cmd)
			if err != nil {
				return err
			}
			r, err := c.vol.FlattenVolume(cmd.Context(), connect.NewRequest(&vbsv1.FlattenVolumeRequest{Name: a[0]}))
			if err != nil {
				return explain(err)
			}
			op := r.Msg.Operation
			if wait {
				if op, err = c.waitOperation(cmd.Context(), op.Id); err != nil {
					return err
				}
			}
			return c.printOperation(op)
		},
	}
	cmd.Flags().BoolVar(&wait, "wait", true, "wait for the copy to finish, showing progress")
	return cmd
}
