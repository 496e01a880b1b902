// Command vbs is the single VBS binary: the storage node (`vbs server`),
// the standalone iSCSI target (`vbs target`), the host agent, and the
// operator CLI verbs that talk to the Connect API.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	if err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(os.Stderr, "vbs: %v\nRun 'vbs --help' for usage.\n", err)
			os.Exit(2)
		}
		fmt.Fprintf(os.Stderr, "vbs: %v\n", err)
		os.Exit(1)
	}
}

// usageError marks an error in how the command was called (exit status 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// Names of the persistent flags every CLI verb reads.
const (
	flagAPI       = "api"
	flagTokenFile = "token-file"
	flagOutput    = "output"
)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "vbs",
		Short: "VBS: distributed block storage for virtual machines",
		Long: `VBS serves network disks to virtual machines over iSCSI from a
log-structured block store, with a Connect API for orchestrators and this
CLI for operators.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.String(flagAPI, "", "API URL (env VBS_API; default the local node)")
	pf.String(flagTokenFile, "", "file holding the API bearer token (env VBS_TOKEN holds the token itself)")
	pf.StringP(flagOutput, "o", "table", "output format: table or json")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(subcommands()...)
	return root
}
