package blockstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cockroachdb/pebble/vfs"
)

// diskPoolShare is the share of a filesystem's free space DiskPoolBytes
// gives the store; the rest stays for the index, the catalog and whatever
// else shares the disk.
const diskPoolShare = 0.9

// DiskPoolBytes returns a pool capacity (Options.CapacityBytes) for a
// store in dir whose pool is the filesystem it lives on: the segment files
// it already has plus 90% of the space still free there. With a capacity
// the background cleaner reclaims space only as the pool runs out of it,
// so it adds no write amplification while the disk has room; without one
// it would clean every segment under GCMaxUtilization as soon as it could.
// dir need not exist yet (its nearest existing ancestor is measured).
func DiskPoolBytes(dir string) (int64, error) {
	var used int64
	segs, err := os.ReadDir(filepath.Join(dir, segDirName))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("disk pool: %w", err)
	}
	for _, e := range segs { // segments, and a prepared one
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() {
			used += fi.Size()
		}
	}
	du, err := diskUsage(dir)
	if err != nil {
		return 0, fmt.Errorf("disk pool: %w", err)
	}
	return used + int64(float64(du.AvailBytes)*diskPoolShare), nil
}

// Bounds of DiskReserveBytes: 5% of the filesystem, at most 1 GiB, and at
// least 144 MiB: what the index needs to go on writing (pebble
// preallocates 110% of its 32 MiB memtable for each WAL, and a flush
// writes up to a memtable's worth of table), plus what the log may grow
// between two measurements.
const (
	diskReserveShare = 0.05
	minDiskReserve   = 128<<20 + diskCheckBytes
	maxDiskReserve   = 1 << 30
)

// DiskReserveBytes returns a disk reserve (Options.DiskReserveBytes) for a
// store in dir: 5% of the size of the filesystem it lives on, at least
// 144 MiB and at most 1 GiB. dir need not exist yet.
func DiskReserveBytes(dir string) (int64, error) {
	du, err := diskUsage(dir)
	if err != nil {
		return 0, fmt.Errorf("disk reserve: %w", err)
	}
	r := int64(float64(du.TotalBytes) * diskReserveShare)
	return min(max(r, minDiskReserve), maxDiskReserve), nil
}

// diskUsage measures the filesystem of dir, or of its nearest existing
// ancestor.
func diskUsage(dir string) (vfs.DiskUsage, error) {
	at := dir
	for {
		if _, err := os.Stat(at); err == nil {
			break
		}
		parent := filepath.Dir(at)
		if parent == at {
			break
		}
		at = parent
	}
	return vfs.Default.GetDiskUsage(at)
}
