package iscsi

import (
	"bytes"
	"errors"
	"testing"
)

func TestParseText(t *testing.T) {
	tests := []struct {
		in      string
		want    []KV
		wantErr bool
	}{
		{in: "A=1\x00B=\x00", want: []KV{{"A", "1"}, {"B", ""}}},
		{in: "A=1", want: []KV{{"A", "1"}}},
		{in: "A=1\x00\x00\x00", want: []KV{{"A", "1"}}},
		{in: "A=x=y\x00", want: []KV{{"A", "x=y"}}},
		{in: "=1\x00", wantErr: true},
		{in: "novalue\x00", wantErr: true},
		{in: string(bytes.Repeat([]byte("k"), 64)) + "=1\x00", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseText([]byte(tt.in))
		if tt.wantErr {
			if !errors.Is(err, ErrTextFormat) {
				t.Errorf("%q: got %v, want ErrTextFormat", tt.in, err)
			}
			continue
		}
		if err != nil || len(got) != len(tt.want) {
			t.Fatalf("%q: got %v, %v", tt.in, got, err)
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("%q: pair %d = %v, want %v", tt.in, i, got[i], tt.want[i])
			}
		}
	}
}

func TestBinaryValues(t *testing.T) {
	for in, want := range map[string][]byte{
		"0x0102ff": {1, 2, 0xff},
		"0X102":    {1, 2},
		"0bAQL/":   {1, 2, 0xff},
	} {
		got, err := DecodeBinary(in)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: got %x, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "0x", "12", "0xzz", "0b!!"} {
		if _, err := DecodeBinary(bad); err == nil {
			t.Errorf("%q: want error", bad)
		}
	}
	if EncodeHex([]byte{0xab, 1}) != "0xab01" {
		t.Fatal("EncodeHex")
	}
}

func TestChap(t *testing.T) {
	// RFC 1994 response = MD5(id || secret || challenge); check against a
	// value computed independently (printf '\x01secret\x01\x02\x03' | md5sum).
	got := ChapResponse(1, []byte("secret"), []byte{1, 2, 3})
	if EncodeHex(got[:]) != "0x9067fecf94f4c5654f2d992d9b7ce3fd" {
		t.Fatalf("ChapResponse = %x", got)
	}
	if !ChapVerify(1, []byte("secret"), []byte{1, 2, 3}, got[:]) {
		t.Fatal("verify of own response failed")
	}
	if ChapVerify(2, []byte("secret"), []byte{1, 2, 3}, got[:]) {
		t.Fatal("verify with wrong id passed")
	}
}
