package main

import (
	"context"
	"fmt"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	"github.com/vbs-storage/vbs/control/domain"
	vbsv1 "github.com/vbs-storage/vbs/proto/gen/vbs/v1"
)

func newSnapshotCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "snapshot", Short: "Take, list, delete and revert to snapshots"}
	cmd.AddCommand(newSnapshotCreateCmd(), newSnapshotListCmd(), newSnapshotDeleteCmd(), newSnapshotRevertCmd())
	return cmd
}

func snapshotHeader() []string { return []string{"VOLUME", "NAME", "SIZE", "STATE", "AGE"} }

func snapshotRows(ss []*vbsv1.Snapshot) [][]string {
	rows := make([][]string, 0, len(ss))
	for _, s := range ss {
		state := stateName(s.State, "SNAPSHOT_STATE_")
		if s.StateReason != "" {
			state += " (" + s.StateReason + ")"
		}
		rows = append(rows, []string{s.Volume, s.Name, domain.FormatSize(s.SizeBytes), state, age(s.CreateTime)})
	}
	return rows
}

func (c *cli) waitSnapshot(ctx context.Context, vol, name string) (*vbsv1.Snapshot, error) {
	t := time.NewTicker(cliPollInterval)
	defer t.Stop()
	for {
		r, err := c.snap.GetSnapshot(ctx, connect.NewRequest(&vbsv1.GetSnapshotRequest{Volume: vol, Name: name}))
		if err != nil {
			return nil, explain(err)
		}
		s := r.Msg.Snapshot
		switch s.State {
		case vbsv1.SnapshotState_SNAPSHOT_STATE_READY:
			return s, nil
		case vbsv1.SnapshotState_SNAPSHOT_STATE_ERROR:
			return s, fmt.Errorf("snapshot %s@%s failed: %s", vol, name, s.StateReason)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

func newSnapshotCreateCmd() *cobra.Command {
	var wait bool
	cmd := &cobra.Command{
		Use:   "create VOLUME NAME",
		Short: "Take a snapshot of a volume",
		Args:  args("VOLUME", "NAME"),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := newCLI(cmd)
			if err != nil {
				return err
			}
			r, err := c.snap.CreateSnapshot(cmd.Context(), connect.NewRequest(&vbsv1.CreateSnapshotRequest{Volume: a[0], Name: a[1]}))
			if err != nil {
				return explain(err)
			}
			s := r.Msg.Snapshot
			if wait {
				if s, err = c.waitSnapshot(cmd.Context(), a[0], a[1]); err != nil {
					return err
				}
			}
			if c.output == outputJSON {
				return c.printJSON(s)
			}
			return c.table(snapshotHeader(), snapshotRows([]*vbsv1.Snapshot{s}))
		},
	}
	cmd.Flags().BoolVar(&wait, "wait", true, "wait until the snapshot is ready")
	return cmd
}

func newSnapshotListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list VOLUME",
		Short: "List a volume's snapshots",
		Args:  args("VOLUME"),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := newCLI(cmd)
			if err != nil {
				return err
			}
			all := &vbsv1.ListSnapshotsResponse{}
			req := &vbsv1.ListSnapshotsRequest{Volume: a[0]}
			for {
				r, err := c.snap.ListSnapshots(cmd.Context(), connect.NewRequest(req))
				if err != nil {
					return explain(err)
				}
				all.Snapshots = append(all.Snapshots, r.Msg.Snapshots...)
				if r.Msg.NextPageToken == "" {
					break
				}
				req.PageToken = r.Msg.NextPageToken
			}
			if c.output == outputJSON {
				return c.printJSON(all)
			}
			return c.table(snapshotHeader(), snapshotRows(all.Snapshots))
		},
	}
}

func newSnapshotDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete VOLUME@NAME",
		Short: "Delete a snapshot (refused while linked clones use it)",
		Args:  args("VOLUME@NAME"),
		RunE: func(cmd *cobra.Command, a []string) error {
			vol, name, err := parseRef(a[0])
			if err != nil {
				return err
			}
			c, err := newCLI(cmd)
			if err != nil {
				return err
			}
			r, err := c.snap.DeleteSnapshot(cmd.Context(), connect.NewRequest(&vbsv1.DeleteSnapshotRequest{Volume: vol, Name: name}))
			if err != nil {
				return explain(err)
			}
			if c.output == outputJSON {
				return c.printJSON(r.Msg.Snapshot)
			}
			_, err = fmt.Fprintf(c.out, "snapshot %s deleting\n", a[0])
			return err
		},
	}
}

func newSnapshotRevertCmd() *cobra.Command {
	var wait bool
	cmd := &cobra.Command{
		Use:   "revert VOLUME@NAME",
		Short: "Roll a volume back to a snapshot (refused while the volume is exported)",
		Args:  args("VOLUME@NAME"),
		RunE: func(cmd *cobra.Command, a []string) error {
			vol, name, err := parseRef(a[0])
			if err != nil {
				return err
			}
			c, err := newCLI(cmd)
			if err != nil {
				return err
			}
			r, err := c.snap.RevertVolume(cmd.Context(), connect.NewRequest(&vbsv1.RevertVolumeRequest{Volume: vol, Snapshot: name}))
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
	cmd.Flags().BoolVar(&wait, "wait", true, "wait for the revert to finish, showing progress")
	return cmd
}
