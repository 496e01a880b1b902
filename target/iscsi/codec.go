package iscsi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
)

// castagnoli is the CRC32C table used for header and data digests. It is
// built once and never written after.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// DigestSize is the length of a CRC32C digest on the wire.
const DigestSize = 4

// MaxAHSLength is the largest AHS a BHS can announce (255 words).
const MaxAHSLength = 255 * 4

// MaxDataSegmentLength is the largest MaxRecvDataSegmentLength RFC 7143
// allows (2^24-1).
const MaxDataSegmentLength = 1<<24 - 1

// CRC32C returns the iSCSI CRC32C of b.
func CRC32C(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// crcUpdate continues a CRC32C over b.
func crcUpdate(crc uint32, b []byte) uint32 { return crc32.Update(crc, castagnoli, b) }

// Errors a Reader returns. Callers tell them apart with errors.Is to pick
// the RFC 7143 answer (Reject or dropping the connection).
var (
	// ErrHeaderDigest means the header digest did not match. The header
	// cannot be trusted, so the connection must be dropped (section 7.8).
	ErrHeaderDigest = errors.New("iscsi: header digest mismatch")
	// ErrDataDigest means the data digest did not match; the header is
	// sound and the PDU is answered with a Reject (reason 0x02).
	ErrDataDigest = errors.New("iscsi: data digest mismatch")
	// ErrDataTooLong means a data segment exceeds what was negotiated.
	ErrDataTooLong = errors.New("iscsi: data segment longer than negotiated")
)

// Limits bound what a Reader accepts and whether it checks digests.
type Limits struct {
	// MaxRecvDataSegmentLength is the largest data segment accepted. Zero
	// means the RFC's login default of 8192.
	MaxRecvDataSegmentLength uint32
	HeaderDigest             bool
	DataDigest               bool
}

func (l Limits) maxData() uint32 {
	if l.MaxRecvDataSegmentLength == 0 {
		return 8192
	}
	return l.MaxRecvDataSegmentLength
}

// Reader decodes PDUs from a byte stream. It owns the buffers it hands out
// in PDU.AHS and PDU.Data: they are valid until the next Read into the same
// PDU. A Reader is not safe for concurrent use.
type Reader struct {
	r      io.Reader
	Limits Limits
	// scratch holds digests and padding.
	scratch [8]byte
}

// NewReader returns a Reader on r with the given limits.
func NewReader(r io.Reader, lim Limits) *Reader {
	return &Reader{r: r, Limits: lim}
}

// Read decodes the next PDU into p, reusing p's buffers. On ErrDataDigest
// and ErrDataTooLong the header in p is valid (so the caller can Reject
// it) and the stream is positioned after the PDU; ErrDataTooLong leaves the
// stream unusable unless the caller drops the connection. Any other error
// means the stream is unusable.
func (rd *Reader) Read(p *PDU) error {
	if _, err := io.ReadFull(rd.r, p.BHS[:]); err != nil {
		return err
	}
	ahsLen := p.TotalAHSLength()
	if cap(p.AHS) < ahsLen {
		p.AHS = make([]byte, ahsLen) // bounded: at most MaxAHSLength
	}
	p.AHS = p.AHS[:ahsLen]
	if ahsLen > 0 {
		if _, err := io.ReadFull(rd.r, p.AHS); err != nil {
			return fmt.Errorf("read ahs: %w", err)
		}
	}
	if rd.Limits.HeaderDigest {
		if _, err := io.ReadFull(rd.r, rd.scratch[:DigestSize]); err != nil {
			return fmt.Errorf("read header digest: %w", err)
		}
		want := crcUpdate(CRC32C(p.BHS[:]), p.AHS)
		if binary.LittleEndian.Uint32(rd.scratch[:]) != want {
			return ErrHeaderDigest
		}
	}
	n := p.DataSegmentLength()
	if n > rd.Limits.maxData() {
		p.Data = p.Data[:0]
		return fmt.Errorf("%w: %d > %d", ErrDataTooLong, n, rd.Limits.maxData())
	}
	padded := int(n) + pad4(int(n))
	if cap(p.Data) < padded {
		p.Data = make([]byte, padded)
	}
	buf := p.Data[:padded]
	if padded > 0 {
		if _, err := io.ReadFull(rd.r, buf); err != nil {
			return fmt.Errorf("read data segment: %w", err)
		}
	}
	p.Data = buf[:n]
	if rd.Limits.DataDigest && n > 0 {
		if _, err := io.ReadFull(rd.r, rd.scratch[:DigestSize]); err != nil {
			return fmt.Errorf("read data digest: %w", err)
		}
		if binary.LittleEndian.Uint32(rd.scratch[:]) != CRC32C(buf) {
			return ErrDataDigest
		}
	}
	return nil
}

// Writer encodes PDUs onto a stream with one writev per PDU (or per batch,
// see Queue and Flush). It is not safe for concurrent use.
type Writer struct {
	w      io.Writer
	Limits Limits
	// bufs is the gather list of the pending batch; hdrs backs the header
	// and trailer slices so that encoding allocates nothing.
	bufs   net.Buffers
	batch  net.Buffers // what WriteTo consumes
	spare  net.Buffers // batch's backing array, kept across flushes
	hdrs   []byte
	queued int
}

// NewWriter returns a Writer on w. Only the digest flags of lim are used.
func NewWriter(w io.Writer, lim Limits) *Writer {
	return &Writer{w: w, Limits: lim}
}

// maxTrailer is the room one PDU needs in hdrs: BHS, AHS, header digest,
// data padding and data digest.
const maxTrailer = BHSLen + MaxAHSLength + DigestSize + 3 + DigestSize

// Queue adds p to the pending batch without writing. p.Data is referenced,
// not copied: it must stay unchanged until Flush returns.
func (wr *Writer) Queue(p *PDU) error {
	if len(p.AHS)%4 != 0 || len(p.AHS) > MaxAHSLength {
		return fmt.Errorf("encode %v: bad ahs length %d", p.Opcode(), len(p.AHS))
	}
	if len(p.Data) > MaxDataSegmentLength {
		return fmt.Errorf("encode %v: data segment %d too long", p.Opcode(), len(p.Data))
	}
	p.BHS[4] = byte(len(p.AHS) / 4)
	p.SetDataSegmentLength(uint32(len(p.Data)))
	if cap(wr.hdrs)-len(wr.hdrs) < maxTrailer {
		// Buffers already queued point into the old array; start a new
		// one and let the old one live until the batch is written.
		wr.hdrs = make([]byte, 0, max(4*maxTrailer, 2*cap(wr.hdrs)))
	}
	start := len(wr.hdrs)
	wr.hdrs = append(wr.hdrs, p.BHS[:]...)
	wr.hdrs = append(wr.hdrs, p.AHS...)
	if wr.Limits.HeaderDigest {
		crc := crcUpdate(CRC32C(p.BHS[:]), p.AHS)
		wr.hdrs = binary.LittleEndian.AppendUint32(wr.hdrs, crc)
	}
	wr.bufs = append(wr.bufs, wr.hdrs[start:len(wr.hdrs):len(wr.hdrs)])
	if n := len(p.Data); n > 0 {
		wr.bufs = append(wr.bufs, p.Data)
		tstart := len(wr.hdrs)
		pad := pad4(n)
		var zeros [3]byte
		wr.hdrs = append(wr.hdrs, zeros[:pad]...)
		if wr.Limits.DataDigest {
			crc := crcUpdate(CRC32C(p.Data), wr.hdrs[tstart:tstart+pad])
			wr.hdrs = binary.LittleEndian.AppendUint32(wr.hdrs, crc)
		}
		if len(wr.hdrs) > tstart {
			wr.bufs = append(wr.bufs, wr.hdrs[tstart:len(wr.hdrs):len(wr.hdrs)])
		}
	}
	wr.queued++
	return nil
}

// Queued returns how many PDUs wait for Flush.
func (wr *Writer) Queued() int { return wr.queued }

// Flush writes every queued PDU with one gathered write.
func (wr *Writer) Flush() error {
	if wr.queued == 0 {
		return nil
	}
	// WriteTo consumes (and nils) the slice it is called on; give it a
	// copy whose backing array we keep in spare.
	wr.batch = append(wr.spare[:0], wr.bufs...)
	wr.spare = wr.batch[:0]
	_, err := wr.batch.WriteTo(wr.w)
	clear(wr.bufs)
	wr.bufs = wr.bufs[:0]
	wr.hdrs = wr.hdrs[:0]
	wr.queued = 0
	if err != nil {
		return fmt.Errorf("write pdus: %w", err)
	}
	return nil
}

// Write queues p and flushes.
func (wr *Writer) Write(p *PDU) error {
	if err := wr.Queue(p); err != nil {
		return err
	}
	return wr.Flush()
}
