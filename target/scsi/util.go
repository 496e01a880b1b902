package scsi

import "encoding/binary"

func be16(b []byte) uint16 { return binary.BigEndian.Uint16(b) }
func be24(b []byte) uint32 { return uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2]) }
func be32(b []byte) uint32 { return binary.BigEndian.Uint32(b) }
func be64(b []byte) uint64 { return binary.BigEndian.Uint64(b) }

func putUint16(b []byte, v uint16) { binary.BigEndian.PutUint16(b, v) }
func putUint32(b []byte, v uint32) { binary.BigEndian.PutUint32(b, v) }
func putUint64(b []byte, v uint64) { binary.BigEndian.PutUint64(b, v) }

// padCopy copies s into dst and fills the rest with spaces (SPC ASCII
// fields are left-aligned and space padded).
func padCopy(dst []byte, s string) {
	n := copy(dst, s)
	for i := n; i < len(dst); i++ {
		dst[i] = ' '
	}
}
