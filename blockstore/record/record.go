// Package record owns the on-disk encoding of the blockstore's segment log:
// the segment file header and the records appended after it. It is pure: it
// encodes into and decodes from byte slices and never touches a file.
//
// A segment file is a SegmentHeader followed by records. A record is a
// fixed-size Header followed by DataLen bytes of block data. Header.CRC is a
// CRC-32C (Castagnoli) over the encoded header, with the CRC field itself
// zeroed, followed by the data. A decoder treats any record that does not
// verify as the end of the valid log (a torn tail) or as corruption,
// depending on where it lies; this package only reports which check failed.
//
// Every format carries a version. Readers refuse versions they do not know.
//
// Record version 2 adds padding (FlagPad): a record that carries no volume
// data and only moves the next record to a later offset, so the writer can
// start every append after an fdatasync on a fresh page of the file. Readers
// accept versions 1 and 2; writers write version 2.
package record

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Format constants. Changing any of them changes the on-disk format and
// requires a new version.
const (
	// SegmentMagic opens every segment file.
	SegmentMagic = "VBSSEG\x00\x01"
	// SegmentVersion is the version of the segment header layout.
	SegmentVersion uint32 = 1
	// SegmentHeaderSize is the encoded size of a SegmentHeader.
	SegmentHeaderSize = 32

	// RecordMagic opens every record header ("VBSR" little-endian).
	RecordMagic uint32 = 0x52534256
	// RecordVersion is the version of the record header layout that
	// AppendRecord writes. Version 2 is version 1 plus padding records
	// (FlagPad); decoders accept both.
	RecordVersion uint8 = 2
	// MinRecordVersion is the oldest record version decoders accept.
	MinRecordVersion uint8 = 1
	// HeaderSize is the encoded size of a record Header.
	HeaderSize = 48
	// MaxDataLen bounds the data carried by one record, so a corrupt length
	// can never make a reader allocate or read without limit.
	MaxDataLen = 4 << 20
)

// Type says what a record does to the volume it names.
type Type uint8

// Record types.
const (
	// TypeWrite carries Blocks blocks of data for LBA..LBA+Blocks-1.
	TypeWrite Type = 1
	// TypeTrim deallocates LBA..LBA+Blocks-1 (unmap or write zeroes); it
	// carries no data, except a padding trim (FlagPad), which deallocates
	// nothing.
	TypeTrim Type = 2
	// TypeRelocate carries one block that segment cleaning moved. Replay
	// skips it: the cleaner commits the new location to the index itself,
	// durably, before it deletes the old copy.
	TypeRelocate Type = 3
)

// Flag bits of Header.Flags.
const (
	// FlagAtomic marks a write that was submitted as one atomic unit.
	FlagAtomic uint16 = 1 << 0
	// FlagPad marks a padding record (version 2 and later): TypeTrim,
	// volume 0, LBA 0, no blocks, and DataLen bytes of zeros that carry
	// nothing. It only moves the next record to a later offset. It is typed
	// as a trim so that a log reader that skips trims without reading their
	// data (the segment cleaner) skips padding too; replay must skip it
	// before treating it as a trim (Header.IsPad).
	FlagPad uint16 = 1 << 1
)

// MinPad is the smallest padding record: a header and no data.
const MinPad = HeaderSize

// Header field offsets inside an encoded record header.
const (
	offMagic   = 0
	offVersion = 4
	offType    = 5
	offFlags   = 6
	offVolume  = 8
	offLBA     = 16
	offBlocks  = 24
	offDataLen = 28
	offSeq     = 32
	offCRC     = 40
	// bytes 44..47 are reserved and must be zero.
	offReserved = 44
)

// Segment header field offsets.
const (
	segOffMagic    = 0
	segOffVersion  = 8
	segOffFlags    = 12
	segOffID       = 16
	segOffReserved = 24
	segOffCRC      = 28
)

// Errors the decoders return. Callers tell a torn or foreign tail
// (ErrBadMagic, ErrTruncated) from damage inside a record (ErrChecksum).
var (
	ErrBadMagic   = errors.New("record: bad magic")
	ErrVersion    = errors.New("record: unknown version")
	ErrTruncated  = errors.New("record: truncated")
	ErrChecksum   = errors.New("record: checksum mismatch")
	ErrMalformed  = errors.New("record: malformed header")
	ErrBadSegment = errors.New("record: bad segment header")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Checksum returns the CRC-32C of p. Block checksums in the index use it.
func Checksum(p []byte) uint32 { return crc32.Checksum(p, castagnoli) }

// Header describes one record.
type Header struct {
	// Version is the record version the header was decoded from;
	// AppendRecord ignores it and writes RecordVersion.
	Version uint8
	Type    Type
	Flags   uint16
	Volume  uint64
	LBA     uint64
	Blocks  uint32
	DataLen uint32
	Seq     uint64
	CRC     uint32
}

// IsPad reports whether h is a padding record, which a reader skips.
func (h *Header) IsPad() bool { return h.Type == TypeTrim && h.Flags&FlagPad != 0 }

// AppendRecord appends the encoding of h followed by data to dst and
// returns the extended slice. It sets the version, DataLen and CRC itself;
// h.Version, h.CRC and h.DataLen are ignored. It does not allocate when dst
// has room.
func AppendRecord(dst []byte, h *Header, data []byte) []byte {
	return appendRecord(dst, h, data, RecordVersion)
}

// PadLen returns the size of the padding record that moves a record
// starting at off to the next multiple of align (a power of two, larger than
// MinPad): 0 when off is aligned already, else the gap, or the gap plus
// align when the gap cannot hold a record header.
func PadLen(off, align uint64) uint64 {
	gap := (align - off%align) % align
	if gap != 0 && gap < MinPad {
		gap += align
	}
	return gap
}

// AppendPad appends a padding record of n bytes in all (MinPad <= n <=
// MinPad+MaxDataLen) to dst and returns the extended slice. It does not
// allocate when dst has room.
func AppendPad(dst []byte, n int) []byte {
	if n < MinPad || n > MinPad+MaxDataLen {
		panic(fmt.Sprintf("record: pad of %d bytes", n))
	}
	start := len(dst)
	dst = append(dst, make([]byte, n)...) // zeroed, and no allocation when dst has room
	h := Header{Type: TypeTrim, Flags: FlagPad}
	encodeHeader(dst[start:start+HeaderSize], &h, uint32(n-HeaderSize), RecordVersion)
	b := dst[start:]
	crc := crc32.Update(0, castagnoli, b)
	binary.LittleEndian.PutUint32(b[offCRC:], crc)
	return dst
}

func appendRecord(dst []byte, h *Header, data []byte, version uint8) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, HeaderSize)...)
	b := dst[start : start+HeaderSize]
	encodeHeader(b, h, uint32(len(data)), version)
	crc := crc32.Update(0, castagnoli, b)
	crc = crc32.Update(crc, castagnoli, data)
	binary.LittleEndian.PutUint32(b[offCRC:], crc)
	return append(dst, data...)
}

// encodeHeader encodes h into b (HeaderSize bytes) with a zero CRC field.
func encodeHeader(b []byte, h *Header, dataLen uint32, version uint8) {
	binary.LittleEndian.PutUint32(b[offMagic:], RecordMagic)
	b[offVersion] = version
	b[offType] = byte(h.Type)
	binary.LittleEndian.PutUint16(b[offFlags:], h.Flags)
	binary.LittleEndian.PutUint64(b[offVolume:], h.Volume)
	binary.LittleEndian.PutUint64(b[offLBA:], h.LBA)
	binary.LittleEndian.PutUint32(b[offBlocks:], h.Blocks)
	binary.LittleEndian.PutUint32(b[offDataLen:], dataLen)
	binary.LittleEndian.PutUint64(b[offSeq:], h.Seq)
	binary.LittleEndian.PutUint32(b[offCRC:], 0)
	binary.LittleEndian.PutUint32(b[offReserved:], 0)
}

// DecodeHeader decodes the record header at the start of b without checking
// the CRC (the data is needed for that: see Verify). It checks the magic,
// version, type and that DataLen is within bounds. A padding record
// (FlagPad, version 2 and later) decodes as TypeTrim with IsPad true.
func DecodeHeader(b []byte) (Header, error) {
	var h Header
	if len(b) < HeaderSize {
		return h, ErrTruncated
	}
	if binary.LittleEndian.Uint32(b[offMagic:]) != RecordMagic {
		return h, ErrBadMagic
	}
	h.Version = b[offVersion]
	if h.Version < MinRecordVersion || h.Version > RecordVersion {
		return h, fmt.Errorf("%w: %d", ErrVersion, h.Version)
	}
	h.Type = Type(b[offType])
	h.Flags = binary.LittleEndian.Uint16(b[offFlags:])
	h.Volume = binary.LittleEndian.Uint64(b[offVolume:])
	h.LBA = binary.LittleEndian.Uint64(b[offLBA:])
	h.Blocks = binary.LittleEndian.Uint32(b[offBlocks:])
	h.DataLen = binary.LittleEndian.Uint32(b[offDataLen:])
	h.Seq = binary.LittleEndian.Uint64(b[offSeq:])
	h.CRC = binary.LittleEndian.Uint32(b[offCRC:])
	if binary.LittleEndian.Uint32(b[offReserved:]) != 0 {
		return h, fmt.Errorf("%w: reserved bytes set", ErrMalformed)
	}
	switch h.Type {
	case TypeWrite, TypeRelocate:
		if h.Blocks == 0 || h.DataLen == 0 || h.DataLen > MaxDataLen || h.DataLen%h.Blocks != 0 {
			return h, fmt.Errorf("%w: write of %d blocks with %d bytes", ErrMalformed, h.Blocks, h.DataLen)
		}
	case TypeTrim:
		if h.Flags&FlagPad != 0 {
			if h.Version < 2 || h.Volume != 0 || h.LBA != 0 || h.Blocks != 0 || h.DataLen > MaxDataLen {
				return h, fmt.Errorf("%w: pad (version %d) of volume %d, %d blocks, %d bytes", ErrMalformed, h.Version, h.Volume, h.Blocks, h.DataLen)
			}
			break
		}
		if h.Blocks == 0 || h.DataLen != 0 {
			return h, fmt.Errorf("%w: trim of %d blocks with %d bytes", ErrMalformed, h.Blocks, h.DataLen)
		}
	default:
		return h, fmt.Errorf("%w: type %d", ErrMalformed, h.Type)
	}
	return h, nil
}

// Verify checks the CRC of the encoded header hdr (HeaderSize bytes, as
// read from disk) followed by data against the CRC stored in hdr.
func Verify(hdr, data []byte) error {
	if len(hdr) < HeaderSize {
		return ErrTruncated
	}
	want := binary.LittleEndian.Uint32(hdr[offCRC:])
	var zero [4]byte
	crc := crc32.Update(0, castagnoli, hdr[:offCRC])
	crc = crc32.Update(crc, castagnoli, zero[:])
	crc = crc32.Update(crc, castagnoli, hdr[offCRC+4:HeaderSize])
	crc = crc32.Update(crc, castagnoli, data)
	if crc != want {
		return ErrChecksum
	}
	return nil
}

// Decode decodes and verifies the complete record at the start of b and
// returns its header, its data (aliasing b) and its total encoded size.
func Decode(b []byte) (Header, []byte, int, error) {
	h, err := DecodeHeader(b)
	if err != nil {
		return h, nil, 0, err
	}
	end := HeaderSize + int(h.DataLen)
	if len(b) < end {
		return h, nil, 0, ErrTruncated
	}
	data := b[HeaderSize:end]
	if err := Verify(b[:HeaderSize], data); err != nil {
		return h, nil, 0, err
	}
	return h, data, end, nil
}

// SegmentHeader opens every segment file.
type SegmentHeader struct {
	ID uint64
}

// AppendSegmentHeader appends the encoding of h to dst.
func AppendSegmentHeader(dst []byte, h SegmentHeader) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, SegmentHeaderSize)...)
	b := dst[start:]
	copy(b[segOffMagic:], SegmentMagic)
	binary.LittleEndian.PutUint32(b[segOffVersion:], SegmentVersion)
	binary.LittleEndian.PutUint32(b[segOffFlags:], 0)
	binary.LittleEndian.PutUint64(b[segOffID:], h.ID)
	binary.LittleEndian.PutUint32(b[segOffReserved:], 0)
	binary.LittleEndian.PutUint32(b[segOffCRC:], crc32.Checksum(b[:segOffCRC], castagnoli))
	return dst
}

// DecodeSegmentHeader decodes and verifies a segment header.
func DecodeSegmentHeader(b []byte) (SegmentHeader, error) {
	var h SegmentHeader
	if len(b) < SegmentHeaderSize {
		return h, fmt.Errorf("%w: %w", ErrBadSegment, ErrTruncated)
	}
	if string(b[segOffMagic:segOffMagic+len(SegmentMagic)]) != SegmentMagic {
		return h, fmt.Errorf("%w: %w", ErrBadSegment, ErrBadMagic)
	}
	if crc32.Checksum(b[:segOffCRC], castagnoli) != binary.LittleEndian.Uint32(b[segOffCRC:]) {
		return h, fmt.Errorf("%w: %w", ErrBadSegment, ErrChecksum)
	}
	if v := binary.LittleEndian.Uint32(b[segOffVersion:]); v != SegmentVersion {
		return h, fmt.Errorf("%w: %w: %d", ErrBadSegment, ErrVersion, v)
	}
	h.ID = binary.LittleEndian.Uint64(b[segOffID:])
	return h, nil
}
