package blockstore

import (
	"encoding/binary"
	"fmt"
)

// Metadata records kept in the index's meta key space. Each value starts
// with a version byte; decoders refuse versions they do not know.
const (
	metaVersion byte = 1

	metaStore   = "store"  // storeMeta
	metaMarker  = "marker" // marker
	metaVolPfx  = "vol/"   // + id(8, BE) -> volumeMeta
	metaSealPfx = "seal/"  // + segment(8, BE) -> sealed length
	metaUserPfx = "user/"  // + id(8, BE) + key -> caller's blob (MetadataStore)
	metaSnapPfx = "snap/"  // + volume id(8, BE) + seq(8, BE) -> snapshotMeta
	metaGC      = "gc"     // the last segment cleaned (written to sync the index)
)

// Volume flag bits in volumeMeta.flags.
const (
	volFlagWriteThrough uint32 = 1 << 0
)

// marker is the log position up to which the index is complete.
type marker struct {
	Seg uint64
	Off uint64
	Seq uint64
}

func encodeMarker(m marker) []byte {
	b := make([]byte, 25)
	b[0] = metaVersion
	binary.LittleEndian.PutUint64(b[1:], m.Seg)
	binary.LittleEndian.PutUint64(b[9:], m.Off)
	binary.LittleEndian.PutUint64(b[17:], m.Seq)
	return b
}

func decodeMarker(b []byte) (marker, error) {
	if len(b) != 25 || b[0] != metaVersion {
		return marker{}, fmt.Errorf("%w: marker record", ErrCorrupt)
	}
	return marker{
		Seg: binary.LittleEndian.Uint64(b[1:]),
		Off: binary.LittleEndian.Uint64(b[9:]),
		Seq: binary.LittleEndian.Uint64(b[17:]),
	}, nil
}

// storeMeta holds store-wide counters.
type storeMeta struct {
	NextVolume uint64
}

func encodeStoreMeta(m storeMeta) []byte {
	b := make([]byte, 9)
	b[0] = metaVersion
	binary.LittleEndian.PutUint64(b[1:], m.NextVolume)
	return b
}

func decodeStoreMeta(b []byte) (storeMeta, error) {
	if len(b) != 9 || b[0] != metaVersion {
		return storeMeta{}, fmt.Errorf("%w: store record", ErrCorrupt)
	}
	return storeMeta{NextVolume: binary.LittleEndian.Uint64(b[1:])}, nil
}

// volumeMeta is the catalog record of one volume.
type volumeMeta struct {
	ID        uint64
	Name      string
	BlockSize uint32
	Blocks    uint64
	Flags     uint32
	Seq       uint64 // sequence number of the newest write (as of the marker)
	Created   int64  // unix nanoseconds
	// ParentID and ParentSeq name the snapshot a linked clone reads through
	// to (ParentID 0: not a clone).
	ParentID  uint64
	ParentSeq uint64
}

const volumeMetaFixed = 1 + 8 + 4 + 8 + 4 + 8 + 8 + 8 + 8 + 2

func encodeVolumeMeta(v volumeMeta) []byte {
	b := make([]byte, volumeMetaFixed+len(v.Name))
	b[0] = metaVersion
	binary.LittleEndian.PutUint64(b[1:], v.ID)
	binary.LittleEndian.PutUint32(b[9:], v.BlockSize)
	binary.LittleEndian.PutUint64(b[13:], v.Blocks)
	binary.LittleEndian.PutUint32(b[21:], v.Flags)
	binary.LittleEndian.PutUint64(b[25:], v.Seq)
	binary.LittleEndian.PutUint64(b[33:], uint64(v.Created))
	binary.LittleEndian.PutUint64(b[41:], v.ParentID)
	binary.LittleEndian.PutUint64(b[49:], v.ParentSeq)
	binary.LittleEndian.PutUint16(b[57:], uint16(len(v.Name)))
	copy(b[volumeMetaFixed:], v.Name)
	return b
}

func decodeVolumeMeta(b []byte) (volumeMeta, error) {
	if len(b) < volumeMetaFixed || b[0] != metaVersion {
		return volumeMeta{}, fmt.Errorf("%w: volume record", ErrCorrupt)
	}
	n := int(binary.LittleEndian.Uint16(b[57:]))
	if len(b) != volumeMetaFixed+n {
		return volumeMeta{}, fmt.Errorf("%w: volume record name length", ErrCorrupt)
	}
	return volumeMeta{
		ID:        binary.LittleEndian.Uint64(b[1:]),
		BlockSize: binary.LittleEndian.Uint32(b[9:]),
		Blocks:    binary.LittleEndian.Uint64(b[13:]),
		Flags:     binary.LittleEndian.Uint32(b[21:]),
		Seq:       binary.LittleEndian.Uint64(b[25:]),
		Created:   int64(binary.LittleEndian.Uint64(b[33:])),
		ParentID:  binary.LittleEndian.Uint64(b[41:]),
		ParentSeq: binary.LittleEndian.Uint64(b[49:]),
		Name:      string(b[volumeMetaFixed:]),
	}, nil
}

func volKey(id uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(metaVolPfx), id)
}

func sealKey(seg uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(metaSealPfx), seg)
}

func userKey(id uint64, key string) []byte {
	return append(binary.BigEndian.AppendUint64([]byte(metaUserPfx), id), key...)
}

func encodeSeal(length uint64) []byte {
	b := make([]byte, 9)
	b[0] = metaVersion
	binary.LittleEndian.PutUint64(b[1:], length)
	return b
}

func decodeSeal(b []byte) (uint64, error) {
	if len(b) != 9 || b[0] != metaVersion {
		return 0, fmt.Errorf("%w: seal record", ErrCorrupt)
	}
	return binary.LittleEndian.Uint64(b[1:]), nil
}

// snapshotMeta is the catalog record of one snapshot: the volume's state as
// of store sequence number Seq.
type snapshotMeta struct {
	Seq     uint64
	Created int64
	Name    string
}

func snapKey(vol, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64([]byte(metaSnapPfx), vol), seq)
}

func encodeSnapshotMeta(m snapshotMeta) []byte {
	b := make([]byte, 1+8+8+2+len(m.Name))
	b[0] = metaVersion
	binary.LittleEndian.PutUint64(b[1:], m.Seq)
	binary.LittleEndian.PutUint64(b[9:], uint64(m.Created))
	binary.LittleEndian.PutUint16(b[17:], uint16(len(m.Name)))
	copy(b[19:], m.Name)
	return b
}

func decodeSnapshotMeta(b []byte) (snapshotMeta, error) {
	if len(b) < 19 || b[0] != metaVersion || len(b) != 19+int(binary.LittleEndian.Uint16(b[17:])) {
		return snapshotMeta{}, fmt.Errorf("%w: snapshot record", ErrCorrupt)
	}
	return snapshotMeta{
		Seq:     binary.LittleEndian.Uint64(b[1:]),
		Created: int64(binary.LittleEndian.Uint64(b[9:])),
		Name:    string(b[19:]),
	}, nil
}
