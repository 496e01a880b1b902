package domain

import (
	"errors"
	"testing"
)

func TestValidateName(t *testing.T) {
	good := []string{"a", "vol-1", "db0", "a23456789012345678901234567890123456789012345678901234567890123"}
	bad := []string{"", "1abc", "-a", "a-", "Vol", "a_b", "a.b", "a b", "a@b",
		"a234567890123456789012345678901234567890123456789012345678901234"}
	for _, s := range good {
		if err := ValidateName("name", s); err != nil {
			t.Errorf("ValidateName(%q) = %v", s, err)
		}
	}
	for _, s := range bad {
		err := ValidateName("name", s)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != "name" || !errors.Is(err, ErrInvalid) {
			t.Errorf("ValidateName(%q) = %v, want a FieldError on name", s, err)
		}
	}
}

func TestValidateIQN(t *testing.T) {
	good := []string{"iqn.2026-01.com.example:host1", "iqn.1994-05.com.redhat:abc", "iqn.2001-04.com.example",
		"eui.02004567a425678d", "naa.52004567ba64678d", "naa.62004567ba64678d0123456789abcdef"}
	bad := []string{"", "iqn", "iqn.2026-13.com.x", "iqn.26-01.com.x", "iqn.2026-01.", "iqn.2026-01.:x",
		"IQN.2026-01.com.x", "iqn.2026-01.com.x:Host", "eui.123", "naa.xyz", "foo.bar", "iqn.2026-01.com.x:a b"}
	for _, s := range good {
		if err := ValidateIQN("iqn", s); err != nil {
			t.Errorf("ValidateIQN(%q) = %v", s, err)
		}
	}
	for _, s := range bad {
		if err := ValidateIQN("iqn", s); !errors.Is(err, ErrInvalid) {
			t.Errorf("ValidateIQN(%q) = %v, want invalid", s, err)
		}
	}
}

func TestValidateSize(t *testing.T) {
	tests := []struct {
		n  uint64
		ok bool
	}{{0, false}, {4096, false}, {MiB, true}, {MiB + 512, false}, {GiB, true}, {MaxVolumeSize, true}, {MaxVolumeSize + 4096, false}}
	for _, tc := range tests {
		if err := ValidateSize("size_bytes", tc.n); (err == nil) != tc.ok {
			t.Errorf("ValidateSize(%d) = %v", tc.n, err)
		}
	}
}

func TestValidateCHAP(t *testing.T) {
	tests := []struct {
		user, secret, field string
	}{
		{"", "0123456789ab", "chap.user"},
		{"u s", "0123456789ab", "chap.user"},
		{"u", "short", "chap.secret"},
		{"u", "0123456789a b", "chap.secret"},
	}
	for _, tc := range tests {
		var fe *FieldError
		if err := ValidateCHAP("chap", tc.user, tc.secret); !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("ValidateCHAP(%q, %q) = %v, want field %s", tc.user, tc.secret, err, tc.field)
		}
	}
	if err := ValidateCHAP("chap", "user", "0123456789ab"); err != nil {
		t.Error(err)
	}
}

func TestValidateLabels(t *testing.T) {
	if err := ValidateLabels("labels", map[string]string{"app": "db", "team/x": "a b"}); err != nil {
		t.Error(err)
	}
	for _, l := range []map[string]string{{"": "x"}, {"a b": "x"}, {"k": "\x00"}} {
		if err := ValidateLabels("labels", l); !errors.Is(err, ErrInvalid) {
			t.Errorf("ValidateLabels(%q) = %v", l, err)
		}
	}
}

func TestParseFormatSize(t *testing.T) {
	tests := []struct {
		in   string
		want uint64
	}{{"4096", 4096}, {"1K", KiB}, {"1KiB", KiB}, {"512M", 512 * MiB}, {"10G", 10 * GiB}, {"10 GiB", 10 * GiB},
		{"1.5T", 3 * TiB / 2}, {"2t", 2 * TiB}, {"100b", 100}}
	for _, tc := range tests {
		got, err := ParseSize(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, s := range []string{"", "G", "10X", "-1", "99999999999P", "1..2G"} {
		if _, err := ParseSize(s); err == nil {
			t.Errorf("ParseSize(%q) succeeded", s)
		}
	}
	fmts := map[uint64]string{512: "512 B", 10 * GiB: "10 GiB", 3 * TiB / 2: "1.5 TiB", MiB: "1 MiB"}
	for n, want := range fmts {
		if got := FormatSize(n); got != want {
			t.Errorf("FormatSize(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestSnapshotRefAndTokens(t *testing.T) {
	v, s, err := ParseSnapshotRef("src", "vol@snap1")
	if err != nil || v != "vol" || s != "snap1" {
		t.Fatalf("ParseSnapshotRef = %q %q %v", v, s, err)
	}
	for _, bad := range []string{"vol", "@s", "v@", "V@s"} {
		if _, _, err := ParseSnapshotRef("src", bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseSnapshotRef(%q) = %v", bad, err)
		}
	}
	tok := EncodePageToken("vol-9")
	if k, err := DecodePageToken("page_token", tok); err != nil || k != "vol-9" {
		t.Fatalf("token round trip = %q %v", k, err)
	}
	if _, err := DecodePageToken("page_token", "!!"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad token = %v", err)
	}
	if got := ISCSIURL("127.0.0.1:3260", TargetIQN("iqn.2026-01.io.vbs", "v"), 0); got != "iscsi://127.0.0.1:3260/iqn.2026-01.io.vbs:v/0" {
		t.Fatalf("ISCSIURL = %q", got)
	}
}

func TestValidateBlockSize(t *testing.T) {
	for in, want := range map[uint32]uint32{0: 4096, 512: 512, 4096: 4096} {
		if got, err := ValidateBlockSize("block_size", in); err != nil || got != want {
			t.Errorf("ValidateBlockSize(%d) = %d, %v", in, got, err)
		}
	}
	for _, in := range []uint32{1, 1024, 8192} {
		if _, err := ValidateBlockSize("block_size", in); !errors.Is(err, ErrInvalid) {
			t.Errorf("ValidateBlockSize(%d) = %v", in, err)
		}
	}
}
