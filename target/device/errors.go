package device

import "errors"

var (
	// ErrShrink is returned by Resize when asked to make a device smaller:
	// devices here only grow online.
	ErrShrink = errors.New("device cannot shrink")
	// ErrBadMetadataKey is returned for a metadata key that is empty, too
	// long, or not made of [A-Za-z0-9._-] (file devices use keys as file
	// names).
	ErrBadMetadataKey = errors.New("bad metadata key")
	// ErrClosed is returned by a device's methods after Close.
	ErrClosed = errors.New("device closed")
)
