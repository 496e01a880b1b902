package iscsi

import (
	"errors"
	"strings"
	"testing"
)

func TestNegotiateText(t *testing.T) {
	base := NewParams()
	tests := []struct {
		name    string
		req     []KV
		want    string // answers joined with "|"
		check   func(Params) bool
		wantErr bool
	}{
		{
			name:  "MaxRecvDataSegmentLength redeclared",
			req:   []KV{{KeyMaxRecvDataSegmentLength, "131072"}},
			want:  "",
			check: func(p Params) bool { return p.MaxXmitDataSegmentLength == 131072 },
		},
		{
			name:  "alias changes",
			req:   []KV{{KeyInitiatorAlias, "new-alias"}},
			check: func(p Params) bool { return p.InitiatorAlias == "new-alias" },
		},
		{
			name: "login-only keys rejected",
			req:  []KV{{KeyMaxBurstLength, "65536"}, {KeyHeaderDigest, "CRC32C"}, {KeyInitiatorName, "iqn.x"}, {KeySessionType, "Normal"}},
			want: "MaxBurstLength=Reject|HeaderDigest=Reject|InitiatorName=Reject|SessionType=Reject",
			check: func(p Params) bool {
				return p.MaxBurstLength == base.MaxBurstLength && !p.HeaderDigest
			},
		},
		{
			name: "unknown and extension keys",
			req:  []KV{{"X-com.example.thing", "1"}, {"X#org.example", "2"}, {"Whatever", "3"}},
			want: "X-com.example.thing=NotUnderstood|X#org.example=NotUnderstood|Whatever=NotUnderstood",
		},
		{
			name: "security keys rejected",
			req:  []KV{{KeyAuthMethod, "CHAP"}, {KeyChapA, "5"}},
			want: "AuthMethod=Reject|CHAP_A=Reject",
		},
		{
			name: "SendTargets left to the caller",
			req:  []KV{{KeySendTargets, "All"}},
			want: "",
		},
		{name: "duplicate", req: []KV{{KeyMaxRecvDataSegmentLength, "8192"}, {KeyMaxRecvDataSegmentLength, "8192"}}, wantErr: true},
		{name: "declaration out of range", req: []KV{{KeyMaxRecvDataSegmentLength, "16777216"}}, wantErr: true},
		{name: "malformed declaration", req: []KV{{KeyMaxRecvDataSegmentLength, "+8192"}}, wantErr: true},
		{name: "target-only key", req: []KV{{KeyTargetAddress, "10.0.0.1:3260,1"}}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, p, err := NegotiateText(base, tt.req)
			if tt.wantErr {
				if !errors.Is(err, ErrNegotiation) {
					t.Fatalf("got %v, want ErrNegotiation", err)
				}
				if p != base {
					t.Fatalf("params changed on error: %+v", p)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			kvs, err := ParseText(resp)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, kv := range kvs {
				got = append(got, kv.Key+"="+kv.Value)
			}
			if g := strings.Join(got, "|"); g != tt.want {
				t.Errorf("answers %q, want %q", g, tt.want)
			}
			if tt.check != nil && !tt.check(p) {
				t.Errorf("params wrong: %+v", p)
			}
		})
	}
}

func TestNegotiateTextDiscovery(t *testing.T) {
	p := NewParams()
	p.SessionType = SessionDiscovery
	resp, _, err := NegotiateText(p, []KV{{KeyMaxRecvDataSegmentLength, "65536"}, {"X-foo", "bar"}})
	if err != nil {
		t.Fatal(err)
	}
	if string(resp) != "X-foo=NotUnderstood\x00" {
		t.Fatalf("resp %q", resp)
	}
}

func TestParseNumber(t *testing.T) {
	tests := []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"0", 0, true},
		{"8192", 8192, true},
		{"0x2000", 8192, true},
		{"0X10", 16, true},
		{"", 0, false},
		{"+1", 0, false},
		{"-1", 0, false},
		{"1e3", 0, false},
		{"0x", 0, false},
		{"18446744073709551615", 1<<64 - 1, true},
		{"18446744073709551616", 0, false},
		{"000000000000000000001", 0, false},
	}
	for _, tt := range tests {
		got, ok := parseNumber(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseNumber(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestNewParamsDefaults(t *testing.T) {
	// RFC 7143 section 13 defaults, spelled out independently of the
	// constants the code uses.
	want := Params{
		MaxConnections: 1, InitialR2T: true, ImmediateData: true,
		MaxBurstLength: 262144, FirstBurstLength: 65536,
		DefaultTime2Wait: 2, DefaultTime2Retain: 20, MaxOutstandingR2T: 1,
		DataPDUInOrder: true, DataSequenceInOrder: true,
		MaxRecvDataSegmentLength: 8192, MaxXmitDataSegmentLength: 8192,
	}
	if got := NewParams(); got != want {
		t.Fatalf("NewParams() = %+v\nwant %+v", got, want)
	}
}
