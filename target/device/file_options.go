package device

// FileOptions configures OpenFile. The zero value opens an existing image
// with 512-byte blocks.
type FileOptions struct {
	// BlockSize is the logical block size, 512 or 4096 (0 means
	// DefaultBlockSize).
	BlockSize uint32
	// Size, when non-zero, is the device size in bytes: the image is
	// created, or extended sparsely, to that size (never shrunk). When
	// zero the image must exist and its size is used.
	Size uint64
}

// withDefaults fills in the defaults in one place.
func (o FileOptions) withDefaults() FileOptions {
	if o.BlockSize == 0 {
		o.BlockSize = DefaultBlockSize
	}
	return o
}

// fileRegionShift is the lock-stripe granularity of a File device (1 MiB):
// writes to different regions never contend, and COMPARE AND WRITE locks
// only the stripes of its range.
const fileRegionShift = 20
