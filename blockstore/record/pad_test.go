package record

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

func TestPadLen(t *testing.T) {
	const align = 4096
	tests := []struct {
		off, want uint64
	}{
		{0, 0},
		{4096, 0},
		{1 << 30, 0},
		{32, 4096 - 32},                        // right after the segment header
		{4096 - MinPad, MinPad},                // the gap holds exactly a header
		{4096 - MinPad + 1, MinPad - 1 + 4096}, // one byte short: skip a page
		{4095, 1 + 4096},
		{4096 + 4144, 4096 - 48},
	}
	for _, tt := range tests {
		got := PadLen(tt.off, align)
		if got != tt.want {
			t.Errorf("PadLen(%d) = %d, want %d", tt.off, got, tt.want)
		}
		if got != 0 && got < MinPad {
			t.Errorf("PadLen(%d) = %d is shorter than a header", tt.off, got)
		}
		if (tt.off+got)%align != 0 {
			t.Errorf("PadLen(%d) = %d leaves %d unaligned", tt.off, got, tt.off+got)
		}
	}
	// Every position in a page.
	for off := uint64(0); off < 2*align; off++ {
		got := PadLen(off, align)
		if (off+got)%align != 0 || (got != 0 && got < MinPad) || got >= align+MinPad {
			t.Fatalf("PadLen(%d) = %d", off, got)
		}
	}
}

func TestPadRoundTrip(t *testing.T) {
	for _, n := range []int{MinPad, MinPad + 1, 4096, 4096 + 47, MinPad + MaxDataLen} {
		enc := AppendPad([]byte("prefix"), n)[len("prefix"):]
		if len(enc) != n {
			t.Fatalf("pad %d: encoded %d bytes", n, len(enc))
		}
		h, data, size, err := Decode(enc)
		if err != nil {
			t.Fatalf("pad %d: Decode: %v", n, err)
		}
		if !h.IsPad() || h.Type != TypeTrim || h.Blocks != 0 || h.Volume != 0 || size != n || h.Version != RecordVersion {
			t.Fatalf("pad %d: decoded %+v size %d", n, h, size)
		}
		if !bytes.Equal(data, make([]byte, n-HeaderSize)) {
			t.Fatalf("pad %d: data is not zeros", n)
		}
		for i := 0; i < len(enc); i += 1 + len(enc)/61 {
			bad := bytes.Clone(enc)
			bad[i] ^= 0x04
			if _, _, _, err := Decode(bad); err == nil {
				t.Fatalf("pad %d: flip at byte %d not detected", n, i)
			}
		}
	}
}

func TestPadRejects(t *testing.T) {
	good := AppendPad(nil, 100)
	tests := []struct {
		name string
		mut  func(b []byte)
	}{
		{"version 1 has no pads", func(b []byte) { b[offVersion] = 1 }},
		{"pad of a volume", func(b []byte) { binary.LittleEndian.PutUint64(b[offVolume:], 1) }},
		{"pad with an lba", func(b []byte) { binary.LittleEndian.PutUint64(b[offLBA:], 1) }},
		{"pad with blocks", func(b []byte) { binary.LittleEndian.PutUint32(b[offBlocks:], 1) }},
		{"pad too long", func(b []byte) { binary.LittleEndian.PutUint32(b[offDataLen:], MaxDataLen+1) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := bytes.Clone(good)
			tt.mut(b)
			if _, err := DecodeHeader(b); !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
		})
	}
}

// TestVersion1StillDecodes: logs written before padding existed stay
// readable.
func TestVersion1StillDecodes(t *testing.T) {
	data := bytes.Repeat([]byte{7}, 4096)
	enc := appendRecord(nil, &Header{Type: TypeWrite, Volume: 2, LBA: 3, Blocks: 1, Seq: 4}, data, 1)
	if enc[offVersion] != 1 {
		t.Fatalf("version byte %d", enc[offVersion])
	}
	h, got, _, err := Decode(enc)
	if err != nil || h.Version != 1 || !bytes.Equal(got, data) || h.IsPad() {
		t.Fatalf("Decode v1: %+v, %v", h, err)
	}
}

func TestAppendPadNoAlloc(t *testing.T) {
	buf := bytes.Repeat([]byte{0xff}, 1<<16)
	allocs := testing.AllocsPerRun(100, func() { buf = AppendPad(buf[:0], 4096+40) })
	if allocs != 0 {
		t.Fatalf("AppendPad allocates %.1f times", allocs)
	}
	// A reused buffer's old bytes never leak into the pad.
	if _, data, _, err := Decode(buf); err != nil || !bytes.Equal(data, make([]byte, 4096+40-HeaderSize)) {
		t.Fatalf("pad in a reused buffer: %v", err)
	}
}
