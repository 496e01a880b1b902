//go:build !linux

package device

import (
	"errors"
	"fmt"

	"github.com/vbs-storage/vbs/target/scsi"
)

// openFileDevice fails off Linux: the file device relies on fallocate hole
// punching and SEEK_DATA/SEEK_HOLE, and OpenFile exists only on Linux.
func openFileDevice(path string, _ FileOptions) (scsi.Device, error) {
	return nil, fmt.Errorf("open file device %s: %w", path, errors.ErrUnsupported)
}
