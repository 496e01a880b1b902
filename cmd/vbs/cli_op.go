package main

import (
	"strconv"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	vbsv1 "github.com/vbs-storage/vbs/proto/gen/vbs/v1"
)

func newOpCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "op", Short: "Follow and cancel long-running operations"}
	cmd.AddCommand(newOpListCmd(), newOpGetCmd(), newOpWaitCmd(), newOpCancelCmd())
	return cmd
}

func opHeader() []string {
	return []string{"ID", "KIND", "VOLUME", "STATE", "PROGRESS", "MESSAGE", "AGE"}
}

func opRows(ops []*vbsv1.Operation) [][]string {
	rows := make([][]string, 0, len(ops))
	for _, o := range ops {
		state := stateName(o.State, "OPERATION_STATE_")
		if o.CancelRequested && o.State == vbsv1.OperationState_OPERATION_STATE_RUNNING {
			state += " (cancelling)"
		}
		rows = append(rows, []string{o.Id, stateName(o.Kind, "OPERATION_KIND_"), o.Volume, state,
			strconv.Itoa(int(o.ProgressPercent)) + "%", orDash(o.Message), age(o.CreateTime)})
	}
	return rows
}

func (c *cli) printOperation(o *vbsv1.Operation) error {
	if c.output == outputJSON {
		return c.printJSON(o)
	}
	return c.table(opHeader(), opRows([]*vbsv1.Operation{o}))
}

func newOpListCmd() *cobra.Command {
	var volume string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List operations, newest first",
		Args:  args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newCLI(cmd)
			if err != nil {
				return err
			}
			all := &vbsv1.ListOperationsResponse{}
			req := &vbsv1.ListOperationsRequest{Volume: volume}
			for {
				r, err := c.op.ListOperations(cmd.Context(), connect.NewRequest(req))
				if err != nil {
					return explain(err)
				}
				all.Operations = append(all.Operations, r.Msg.Operations...)
				if r.Msg.NextPageToken == "" {
					break
				}
				req.PageToken = r.Msg.NextPageToken
			}
			if c.output == outputJSON {
				return c.printJSON(all)
			}
			return c.table(opHeader(), opRows(all.Operations))
		},
	}
	cmd.Flags().StringVar(&volume, "volume", "", "only operations on this volume")
	return cmd
}

func newOpGetCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "get ID",
		Short: "Describe an operation",
		Args:  args("ID"),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := newCLI(cmd)
			if err != nil {
				return err
			}
			r, err := c.op.GetOperation(cmd.Context(), connect.NewRequest(&vbsv1.GetOperationRequest{Id: a[0]}))
			if err != nil {
				return explain(err)
			}
			return c.printOperation(r.Msg.Operation)
		},
	}
}

func newOpWaitCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "wait ID",
		Short: "Follow an operation until it ends; fails unless it succeeds",
		Args:  args("ID"),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := newCLI(cmd)
			if err != nil {
				return err
			}
			op, err := c.waitOperation(cmd.Context(), a[0])
			if op != nil {
				if perr := c.printOperation(op); err == nil {
					err = perr
				}
			}
			return err
		},
	}
}

func newOpCancelCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "cancel ID",
		Short: "Ask an operation to stop",
		Args:  args("ID"),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := newCLI(cmd)
			if err != nil {
				return err
			}
			r, err := c.op.CancelOperation(cmd.Context(), connect.NewRequest(&vbsv1.CancelOperationRequest{Id: a[0]}))
			if err != nil {
				return explain(err)
			}
			return c.printOperation(r.Msg.Operation)
		},
	}
}
