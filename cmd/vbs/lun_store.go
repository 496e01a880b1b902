package main

import (
	"context"
	"fmt"

	"github.com/vbs-storage/vbs/internal/storedev"
	"github.com/vbs-storage/vbs/target/device"
	"github.com/vbs-storage/vbs/target/scsi"
)

// storeLUNVolume is the volume a `store:DIR` LUN serves: the store in DIR
// is the LUN's identity, and it holds this one volume for `vbs target`.
const storeLUNVolume = "lun"

// openStoreLUN opens (creating on first use) the block-store volume behind
// a store: LUN spec. The target package cannot import the blockstore, so
// the binary wires the two here.
func openStoreLUN(ctx context.Context, spec device.Spec) (scsi.Device, error) {
	v, err := storedev.Open(ctx, spec.Path, storeLUNVolume, spec.Size, spec.BlockSize)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", spec.Path, err)
	}
	return v, nil
}
