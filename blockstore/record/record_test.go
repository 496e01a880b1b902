package record

import (
	"bytes"
	"errors"
	"testing"
)

func TestRecordRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		h    Header
		data []byte
	}{
		{"write one block", Header{Type: TypeWrite, Volume: 7, LBA: 42, Blocks: 1, Seq: 9}, bytes.Repeat([]byte{0xab}, 512)},
		{"write atomic", Header{Type: TypeWrite, Flags: FlagAtomic, Volume: 1, LBA: 1 << 40, Blocks: 2, Seq: 1 << 50}, bytes.Repeat([]byte{1, 2}, 4096)},
		{"trim", Header{Type: TypeTrim, Volume: 3, LBA: 100, Blocks: 1 << 20, Seq: 2}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc := AppendRecord([]byte("prefix"), &tt.h, tt.data)[len("prefix"):]
			if len(enc) != HeaderSize+len(tt.data) {
				t.Fatalf("encoded %d bytes, want %d", len(enc), HeaderSize+len(tt.data))
			}
			h, data, n, err := Decode(enc)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if n != len(enc) || !bytes.Equal(data, tt.data) {
				t.Fatalf("Decode returned n=%d data=%d bytes", n, len(data))
			}
			want := tt.h
			want.DataLen = uint32(len(tt.data))
			want.CRC = h.CRC
			want.Version = RecordVersion
			if h != want {
				t.Fatalf("header = %+v, want %+v", h, want)
			}
			// Any single flipped bit must be detected.
			for i := 0; i < len(enc); i += 1 + len(enc)/97 {
				bad := bytes.Clone(enc)
				bad[i] ^= 0x10
				if _, _, _, err := Decode(bad); err == nil {
					t.Fatalf("flip at byte %d not detected", i)
				}
			}
			if _, _, _, err := Decode(enc[:len(enc)-1]); len(tt.data) > 0 && !errors.Is(err, ErrTruncated) {
				t.Fatalf("short record: err = %v, want ErrTruncated", err)
			}
		})
	}
}

func TestDecodeHeaderRejects(t *testing.T) {
	good := AppendRecord(nil, &Header{Type: TypeWrite, Volume: 1, LBA: 0, Blocks: 1, Seq: 1}, make([]byte, 512))
	tests := []struct {
		name string
		mut  func(b []byte)
		want error
	}{
		{"magic", func(b []byte) { b[offMagic] = 0 }, ErrBadMagic},
		{"version", func(b []byte) { b[offVersion] = 99 }, ErrVersion},
		{"type", func(b []byte) { b[offType] = 77 }, ErrMalformed},
		{"reserved", func(b []byte) { b[offReserved] = 1 }, ErrMalformed},
		{"zero blocks", func(b []byte) { b[offBlocks] = 0 }, ErrMalformed},
		{"huge length", func(b []byte) { b[offDataLen+3] = 0x7f }, ErrMalformed},
		{"all zero", func(b []byte) { clear(b) }, ErrBadMagic},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := bytes.Clone(good)
			tt.mut(b)
			if _, err := DecodeHeader(b); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestSegmentHeader(t *testing.T) {
	b := AppendSegmentHeader(nil, SegmentHeader{ID: 0x1234})
	if len(b) != SegmentHeaderSize {
		t.Fatalf("size %d", len(b))
	}
	h, err := DecodeSegmentHeader(b)
	if err != nil || h.ID != 0x1234 {
		t.Fatalf("got %+v, %v", h, err)
	}
	for i := range b {
		bad := bytes.Clone(b)
		bad[i] ^= 1
		if _, err := DecodeSegmentHeader(bad); !errors.Is(err, ErrBadSegment) {
			t.Fatalf("flip at %d: err = %v", i, err)
		}
	}
}

func TestAppendRecordNoAlloc(t *testing.T) {
	buf := make([]byte, 0, 1<<16)
	data := make([]byte, 4096)
	h := Header{Type: TypeWrite, Volume: 1, Blocks: 1, Seq: 1}
	allocs := testing.AllocsPerRun(100, func() { buf = AppendRecord(buf[:0], &h, data) })
	if allocs != 0 {
		t.Fatalf("AppendRecord allocates %.1f times", allocs)
	}
}

// FuzzDecode feeds arbitrary bytes (as read from an untrusted or damaged
// disk) to the decoders: they must never panic, and whatever they accept
// must re-encode to the same bytes.
func FuzzDecode(f *testing.F) {
	f.Add(AppendRecord(nil, &Header{Type: TypeWrite, Volume: 1, LBA: 5, Blocks: 1, Seq: 3}, make([]byte, 512)))
	f.Add(AppendRecord(nil, &Header{Type: TypeTrim, Volume: 2, LBA: 9, Blocks: 8, Seq: 4}, nil))
	f.Add(AppendSegmentHeader(nil, SegmentHeader{ID: 3}))
	f.Add(AppendPad(nil, MinPad))
	f.Add(AppendPad(nil, 4096+17))
	f.Add(appendRecord(nil, &Header{Type: TypeWrite, Volume: 1, LBA: 5, Blocks: 1, Seq: 3}, make([]byte, 512), 1))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if h, data, n, err := Decode(b); err == nil {
			re := appendRecord(nil, &h, data, h.Version)
			if !bytes.Equal(re, b[:n]) {
				t.Fatalf("re-encoding differs")
			}
		}
		if h, err := DecodeSegmentHeader(b); err == nil {
			if !bytes.Equal(AppendSegmentHeader(nil, h), b[:SegmentHeaderSize]) {
				t.Fatalf("segment header re-encoding differs")
			}
		}
	})
}
