package main

import (
	"fmt"
	"strings"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	vbsv1 "github.com/vbs-storage/vbs/proto/gen/vbs/v1"
)

func newExportCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "export", Short: "Grant and revoke hosts' access to volumes"}
	cmd.AddCommand(newExportGrantCmd(), newExportRevokeCmd(), newExportListCmd())
	return cmd
}

func exportHeader() []string { return []string{"VOLUME", "INITIATOR", "CHAP", "URL"} }

func exportRows(es []*vbsv1.Export) [][]string {
	rows := make([][]string, 0, len(es))
	for _, e := range es {
		chap := "-"
		if e.Chap {
			chap = e.ChapUser
		}
		rows = append(rows, []string{e.Volume, e.InitiatorIqn, chap, e.Url})
	}
	return rows
}

func newExportGrantCmd() *cobra.Command {
	var initiator, chap string
	cmd := &cobra.Command{
		Use:   "grant VOLUME --initiator IQN [--chap USER:SECRET]",
		Short: "Let an initiator log in to a volume; prints its iscsi:// URL",
		Args:  args("VOLUME"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if initiator == "" {
				return usageError{fmt.Errorf("--initiator IQN is required")}
			}
			req := &vbsv1.GrantAccessRequest{Volume: a[0], InitiatorIqn: initiator}
			if chap != "" {
				u, s, ok := strings.Cut(chap, ":")
				if !ok || u == "" || s == "" {
					return usageError{fmt.Errorf("--chap: want USER:SECRET")}
				}
				req.Chap = &vbsv1.ChapCredentials{User: u, Secret: s}
			}
			c, err := newCLI(cmd)
			if err != nil {
				return err
			}
			r, err := c.exp.GrantAccess(cmd.Context(), connect.NewRequest(req))
			if err != nil {
				return explain(err)
			}
			if c.output == outputJSON {
				return c.printJSON(r.Msg.Export)
			}
			return c.table(exportHeader(), exportRows([]*vbsv1.Export{r.Msg.Export}))
		},
	}
	cmd.Flags().StringVar(&initiator, "initiator", "", "initiator IQN of the host")
	cmd.Flags().StringVar(&chap, "chap", "", "require CHAP: USER:SECRET (secret 12+ characters)")
	return cmd
}

func newExportRevokeCmd() *cobra.Command {
	var initiator string
	cmd := &cobra.Command{
		Use:   "revoke VOLUME --initiator IQN",
		Short: "Withdraw an initiator's access and drop its sessions",
		Args:  args("VOLUME"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if initiator == "" {
				return usageError{fmt.Errorf("--initiator IQN is required")}
			}
			c, err := newCLI(cmd)
			if err != nil {
				return err
			}
			if _, err := c.exp.RevokeAccess(cmd.Context(), connect.NewRequest(&vbsv1.RevokeAccessRequest{Volume: a[0], InitiatorIqn: initiator})); err != nil {
				return explain(err)
			}
			if c.output == outputJSON {
				_, err = fmt.Fprintln(c.out, "{}")
				return err
			}
			_, err = fmt.Fprintf(c.out, "access to %s revoked for %s\n", a[0], initiator)
			return err
		},
	}
	cmd.Flags().StringVar(&initiator, "initiator", "", "initiator IQN of the host")
	return cmd
}

func newExportListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list [VOLUME]",
		Short: "List grants, of one volume or all",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := newCLI(cmd)
			if err != nil {
				return err
			}
			req := &vbsv1.ListExportsRequest{}
			if len(a) == 1 {
				req.Volume = a[0]
			}
			r, err := c.exp.ListExports(cmd.Context(), connect.NewRequest(req))
			if err != nil {
				return explain(err)
			}
			if c.output == outputJSON {
				return c.printJSON(r.Msg)
			}
			return c.table(exportHeader(), exportRows(r.Msg.Exports))
		},
	}
}
