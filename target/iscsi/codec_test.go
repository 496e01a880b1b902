package iscsi

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func samplePDU(data []byte) *PDU {
	p := &PDU{}
	p.SetOpcode(OpSCSICommand, true)
	p.SetFlags(FlagFinal | FlagWrite | 1)
	p.SetLUN(EncodeLUN(3))
	p.SetITT(0x11223344)
	p.SetExpectedDataTransferLength(4096)
	p.SetCmdSN(7)
	p.SetExpStatSN(9)
	copy(p.CDB(), []byte{0x2a, 0, 0, 0, 0, 1, 0, 0, 8, 0})
	p.Data = data
	return p
}

func TestRoundTrip(t *testing.T) {
	for _, lim := range []Limits{
		{},
		{HeaderDigest: true},
		{DataDigest: true},
		{HeaderDigest: true, DataDigest: true, MaxRecvDataSegmentLength: 262144},
	} {
		for _, n := range []int{0, 1, 3, 4, 5, 4096} {
			var buf bytes.Buffer
			wr := NewWriter(&buf, lim)
			in := samplePDU(bytes.Repeat([]byte{0xa5}, n))
			in.AHS = []byte{0, 4, 1, 0, 1, 2, 3, 4}
			if err := wr.Write(in); err != nil {
				t.Fatal(err)
			}
			want := BHSLen + len(in.AHS) + n + pad4(n)
			if lim.HeaderDigest {
				want += DigestSize
			}
			if lim.DataDigest && n > 0 {
				want += DigestSize
			}
			if buf.Len() != want {
				t.Fatalf("lim %+v n %d: encoded %d bytes, want %d", lim, n, buf.Len(), want)
			}
			var out PDU
			if err := NewReader(&buf, lim).Read(&out); err != nil {
				t.Fatalf("lim %+v n %d: %v", lim, n, err)
			}
			if out.BHS != in.BHS || !bytes.Equal(out.Data, in.Data) || !bytes.Equal(out.AHS, in.AHS) {
				t.Fatalf("lim %+v n %d: round trip differs", lim, n)
			}
			if out.Opcode() != OpSCSICommand || !out.Immediate() || out.ITT() != 0x11223344 ||
				DecodeLUN(out.LUN()) != 3 || out.CmdSN() != 7 || out.ExpectedDataTransferLength() != 4096 {
				t.Fatalf("fields wrong: %v", out.BHS)
			}
		}
	}
}

func TestDigestErrors(t *testing.T) {
	lim := Limits{HeaderDigest: true, DataDigest: true}
	encode := func() []byte {
		var buf bytes.Buffer
		if err := NewWriter(&buf, lim).Write(samplePDU([]byte("hello"))); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	b := encode()
	b[20] ^= 1 // header byte
	if err := NewReader(bytes.NewReader(b), lim).Read(&PDU{}); !errors.Is(err, ErrHeaderDigest) {
		t.Fatalf("corrupt header: got %v", err)
	}
	b = encode()
	b[BHSLen+DigestSize] ^= 1 // first data byte
	var p PDU
	if err := NewReader(bytes.NewReader(b), lim).Read(&p); !errors.Is(err, ErrDataDigest) {
		t.Fatalf("corrupt data: got %v", err)
	}
	if p.ITT() != 0x11223344 {
		t.Fatalf("header must stay usable after a data digest error")
	}
}

func TestDataTooLong(t *testing.T) {
	var buf bytes.Buffer
	if err := NewWriter(&buf, Limits{}).Write(samplePDU(make([]byte, 9000))); err != nil {
		t.Fatal(err)
	}
	var p PDU
	err := NewReader(&buf, Limits{MaxRecvDataSegmentLength: 8192}).Read(&p)
	if !errors.Is(err, ErrDataTooLong) {
		t.Fatalf("got %v, want ErrDataTooLong", err)
	}
	if cap(p.Data) > 8192 {
		t.Fatalf("reader sized a buffer from an unchecked length: cap %d", cap(p.Data))
	}
}

func TestTruncatedStream(t *testing.T) {
	var buf bytes.Buffer
	if err := NewWriter(&buf, Limits{}).Write(samplePDU(make([]byte, 100))); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	for _, n := range []int{0, 10, BHSLen, BHSLen + 50} {
		err := NewReader(bytes.NewReader(b[:n]), Limits{}).Read(&PDU{})
		if err == nil || (!errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF)) {
			t.Fatalf("truncated at %d: got %v", n, err)
		}
	}
}

func TestBatchWrite(t *testing.T) {
	var buf bytes.Buffer
	wr := NewWriter(&buf, Limits{DataDigest: true})
	for i := range 100 {
		p := samplePDU(bytes.Repeat([]byte{byte(i)}, i))
		p.SetITT(uint32(i))
		if err := wr.Queue(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := wr.Flush(); err != nil {
		t.Fatal(err)
	}
	rd := NewReader(&buf, Limits{DataDigest: true})
	for i := range 100 {
		var p PDU
		if err := rd.Read(&p); err != nil {
			t.Fatalf("pdu %d: %v", i, err)
		}
		if p.ITT() != uint32(i) || !bytes.Equal(p.Data, bytes.Repeat([]byte{byte(i)}, i)) {
			t.Fatalf("pdu %d differs", i)
		}
	}
}

func TestLUNEncoding(t *testing.T) {
	for _, n := range []uint64{0, 1, 255, 256, 1000, 16383} {
		if got := DecodeLUN(EncodeLUN(n)); got != n {
			t.Fatalf("lun %d round trips to %d", n, got)
		}
	}
	// A second level makes the LUN unaddressable here.
	if got := DecodeLUN(0x0001_0002_0000_0000); got == 1 {
		t.Fatalf("multi-level LUN decoded as 1")
	}
}

func TestLoginStages(t *testing.T) {
	var h BHS
	h.SetOpcode(OpLoginReq, true)
	h.SetLoginStages(true, false, StageSecurity, StageOperational)
	if !h.Transit() || h.Continue() || h.CSG() != StageSecurity || h.NSG() != StageOperational {
		t.Fatalf("stages: %08b", h[1])
	}
	h.SetISID(0x0023_4567_89ab)
	h.SetTSIH(0x1234)
	if h.ISID() != 0x0023_4567_89ab || h.TSIH() != 0x1234 {
		t.Fatalf("isid/tsih: %x %x", h.ISID(), h.TSIH())
	}
}

func FuzzReader(f *testing.F) {
	var buf bytes.Buffer
	_ = NewWriter(&buf, Limits{HeaderDigest: true, DataDigest: true}).Write(samplePDU([]byte("abc")))
	f.Add(buf.Bytes(), true, true)
	buf.Reset()
	_ = NewWriter(&buf, Limits{}).Write(samplePDU(nil))
	f.Add(buf.Bytes(), false, false)
	f.Fuzz(func(t *testing.T, b []byte, hd, dd bool) {
		lim := Limits{HeaderDigest: hd, DataDigest: dd, MaxRecvDataSegmentLength: 65536}
		rd := NewReader(bytes.NewReader(b), lim)
		var p PDU
		for range 4 {
			if err := rd.Read(&p); err != nil {
				return
			}
			if uint32(len(p.Data)) != p.DataSegmentLength() || len(p.Data) > 65536 {
				t.Fatalf("data length %d vs header %d", len(p.Data), p.DataSegmentLength())
			}
		}
	})
}

func FuzzParseText(f *testing.F) {
	f.Add([]byte("InitiatorName=iqn.2024-01.org.example:host\x00SessionType=Normal\x00"))
	f.Add([]byte("CHAP_C=0xdeadbeef\x00\x00"))
	f.Add([]byte("=bad\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		kvs, err := ParseText(b)
		if err != nil {
			return
		}
		again, err := ParseText(EncodeText(kvs))
		if err != nil || len(again) != len(kvs) {
			t.Fatalf("re-encoding %q: %v, %d pairs vs %d", b, err, len(again), len(kvs))
		}
	})
}

func BenchmarkWriteDataIn4K(b *testing.B) {
	wr := NewWriter(io.Discard, Limits{})
	p := samplePDU(make([]byte, 4096))
	b.ReportAllocs()
	b.SetBytes(4096)
	for b.Loop() {
		if err := wr.Write(p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRead4K(b *testing.B) {
	var buf bytes.Buffer
	_ = NewWriter(&buf, Limits{}).Write(samplePDU(make([]byte, 4096)))
	raw := buf.Bytes()
	r := bytes.NewReader(raw)
	rd := NewReader(r, Limits{MaxRecvDataSegmentLength: 262144})
	var p PDU
	b.ReportAllocs()
	b.SetBytes(4096)
	for b.Loop() {
		r.Reset(raw)
		if err := rd.Read(&p); err != nil {
			b.Fatal(err)
		}
	}
}
