package main

import "github.com/spf13/cobra"

// subcommands lists the top-level verbs. Each lives in its own file.
func subcommands() []*cobra.Command {
	return []*cobra.Command{
		newServerCmd(),
		newTargetCmd(),
		newVolumeCmd(),
		newSnapshotCmd(),
		newExportCmd(),
		newNodeCmd(),
		newOpCmd(),
		newVersionCmd(),
	}
}
