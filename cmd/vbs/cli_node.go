package main

import (
	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	"github.com/vbs-storage/vbs/control/domain"
	vbsv1 "github.com/vbs-storage/vbs/proto/gen/vbs/v1"
)

func newNodeCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "node", Short: "Show storage nodes"}
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List nodes with their state, capacity and addresses",
		Args:  args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newCLI(cmd)
			if err != nil {
				return err
			}
			r, err := c.node.ListNodes(cmd.Context(), connect.NewRequest(&vbsv1.ListNodesRequest{}))
			if err != nil {
				return explain(err)
			}
			if c.output == outputJSON {
				return c.printJSON(r.Msg)
			}
			rows := make([][]string, 0, len(r.Msg.Nodes))
			for _, n := range r.Msg.Nodes {
				role := "follower"
				if n.Leader {
					role = "leader"
				}
				rows = append(rows, []string{n.Name, stateName(n.State, "NODE_STATE_"), role,
					domain.FormatSize(n.UsedBytes) + " / " + domain.FormatSize(n.CapacityBytes),
					orDash(n.ApiAddress), orDash(n.IscsiAddress)})
			}
			return c.table([]string{"NAME", "STATE", "ROLE", "USED / CAPACITY", "API", "ISCSI"}, rows)
		},
	})
	return cmd
}
