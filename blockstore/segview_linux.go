//go:build linux

package blockstore

import (
	"fmt"
	"syscall"
)

// mapSegment maps the first n bytes of the file open as fd, read-only and
// shared.
func mapSegment(fd uintptr, n int64) ([]byte, error) {
	if n <= 0 || int64(int(n)) != n {
		return nil, fmt.Errorf("map %d bytes: bad length", n)
	}
	b, err := syscall.Mmap(int(fd), 0, int(n), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map %d bytes: %w", n, err)
	}
	return b, nil
}

func unmapSegment(b []byte) error { return syscall.Munmap(b) }
