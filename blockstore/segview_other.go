//go:build !linux

package blockstore

import "errors"

func mapSegment(uintptr, int64) ([]byte, error) {
	return nil, errors.New("segment views are only built for Linux")
}

func unmapSegment([]byte) error { return nil }
