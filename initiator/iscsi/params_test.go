package iscsi

import (
	"errors"
	"testing"

	wire "github.com/vbs-storage/vbs/target/iscsi"
)

func testConfig(t *testing.T, mod func(*Config)) Config {
	t.Helper()
	c := Config{Addr: "127.0.0.1:3260", InitiatorName: "iqn.2026-11.io.vbs:test", TargetName: "iqn.2026-11.io.vbs:t", ISID: 0x80_1234_5678}
	if mod != nil {
		mod(&c)
	}
	c, err := c.withDefaults(true)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func kv(k, v string) wire.KV { return wire.KV{Key: k, Value: v} }

func TestNegotiatorAnswers(t *testing.T) {
	tests := []struct {
		name    string
		mod     func(*Config)
		answers []wire.KV
		wantErr error
		reply   []wire.KV
		check   func(t *testing.T, p Params)
	}{
		{
			name: "target lowers numbers and turns features off",
			answers: []wire.KV{kv(keyHeaderDigest, valueNone), kv(keyDataDigest, valueNone), kv(keyInitialR2T, valueYes),
				kv(keyImmediateData, valueNo), kv(keyMaxBurstLength, "65536"), kv(keyFirstBurstLength, "8192"),
				kv(keyMaxOutstandingR2T, "1"), kv(keyMaxRecvDSL, "0x2000"), kv(keyTargetPortalGroupTag, "7"), kv(keyTargetAlias, "disk")},
			check: func(t *testing.T, p Params) {
				if p.ImmediateData || !p.InitialR2T || p.MaxBurstLength != 65536 || p.FirstBurstLength != 8192 ||
					p.MaxOutstandingR2T != 1 || p.MaxXmitDataSegmentLength != 8192 || p.TargetPortalGroupTag != 7 || p.TargetAlias != "disk" {
					t.Errorf("params %+v", p)
				}
			},
		},
		{
			name:    "digests granted",
			mod:     func(c *Config) { c.HeaderDigest, c.DataDigest = true, true },
			answers: []wire.KV{kv(keyHeaderDigest, valueCRC32C), kv(keyDataDigest, valueCRC32C)},
			check: func(t *testing.T, p Params) {
				if !p.HeaderDigest || !p.DataDigest {
					t.Errorf("digests off: %+v", p)
				}
			},
		},
		{name: "digest we did not offer", answers: []wire.KV{kv(keyHeaderDigest, valueCRC32C)}, wantErr: ErrNegotiation},
		{name: "digest value unknown", answers: []wire.KV{kv(keyDataDigest, "MD5")}, wantErr: ErrNegotiation},
		{
			name:    "AND key turned on against our No",
			mod:     func(c *Config) { c.DisableImmediateData = true },
			answers: []wire.KV{kv(keyImmediateData, valueYes)}, wantErr: ErrNegotiation,
		},
		{
			name:    "OR key turned off against our Yes",
			mod:     func(c *Config) { c.DisableImmediateData = true },
			answers: []wire.KV{kv(keyInitialR2T, valueNo)}, wantErr: ErrNegotiation,
		},
		{name: "min key raised", answers: []wire.KV{kv(keyMaxBurstLength, "99999999")}, wantErr: ErrNegotiation},
		{name: "min key above offer", answers: []wire.KV{kv(keyMaxOutstandingR2T, "5")}, wantErr: ErrNegotiation},
		{name: "max key lowered", answers: []wire.KV{kv(keyDefaultTime2Wait, "1")}, wantErr: ErrNegotiation},
		{name: "number garbage", answers: []wire.KV{kv(keyMaxBurstLength, "12abc")}, wantErr: ErrNegotiation},
		{name: "octal-looking is decimal", answers: []wire.KV{kv(keyMaxBurstLength, "010000")},
			check: func(t *testing.T, p Params) {
				if p.MaxBurstLength != 10000 {
					t.Errorf("MaxBurstLength %d", p.MaxBurstLength)
				}
			}},
		{name: "declared segment too small", answers: []wire.KV{kv(keyMaxRecvDSL, "100")}, wantErr: ErrNegotiation},
		{name: "boolean garbage", answers: []wire.KV{kv(keyImmediateData, "Maybe")}, wantErr: ErrNegotiation},
		{
			name:    "NotUnderstood and Reject fall back to defaults",
			answers: []wire.KV{kv(keyImmediateData, wire.ValueNotUnderstood), kv(keyInitialR2T, wire.ValueReject), kv(keyMaxBurstLength, wire.ValueIrrelevant)},
			check: func(t *testing.T, p Params) {
				// ImmediateData default Yes AND our Yes; InitialR2T default
				// Yes OR our No; MaxBurstLength min(default, offer).
				if !p.ImmediateData || !p.InitialR2T || p.MaxBurstLength != defaultMaxBurstLength {
					t.Errorf("params %+v", p)
				}
			},
		},
		{
			name:    "target offers keys",
			answers: []wire.KV{kv("X-vendor.com-Thing", "1"), kv(keyMaxConnections, "8"), kv(keyDataDigest, "CRC32C,None")},
			// MaxConnections was offered by us, so it is an answer (8 > 1 fails).
			wantErr: ErrNegotiation,
		},
		{
			name:    "unknown key is NotUnderstood",
			answers: []wire.KV{kv("X-vendor.com-Thing", "1")},
			reply:   []wire.KV{kv("X-vendor.com-Thing", wire.ValueNotUnderstood)},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, tc.mod)
			n := newNegotiator(&cfg, false)
			n.offers()
			reply, err := n.apply(tc.answers)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(reply) != len(tc.reply) {
				t.Fatalf("reply %v, want %v", reply, tc.reply)
			}
			for i := range reply {
				if reply[i] != tc.reply[i] {
					t.Errorf("reply %v, want %v", reply, tc.reply)
				}
			}
			if tc.check != nil {
				tc.check(t, n.finish())
			}
		})
	}
}

func TestNegotiatorTargetOffers(t *testing.T) {
	cfg := testConfig(t, func(c *Config) { c.DataDigest = true })
	n := newNegotiator(&cfg, false)
	// Without our offers: every key below is the target's offer.
	reply, err := n.apply([]wire.KV{kv(keyDataDigest, "None,CRC32C"), kv(keyMaxBurstLength, "2097152"),
		kv(keyImmediateData, valueYes), kv(keyInitialR2T, valueYes), kv(keyDefaultTime2Wait, "5")})
	if err != nil {
		t.Fatal(err)
	}
	want := []wire.KV{kv(keyDataDigest, valueCRC32C), kv(keyMaxBurstLength, "1048576"),
		kv(keyImmediateData, valueYes), kv(keyInitialR2T, valueYes), kv(keyDefaultTime2Wait, "5")}
	if len(reply) != len(want) {
		t.Fatalf("reply %v, want %v", reply, want)
	}
	for i := range want {
		if reply[i] != want[i] {
			t.Errorf("reply[%d] = %v, want %v", i, reply[i], want[i])
		}
	}
	p := n.finish()
	if !p.DataDigest || p.MaxBurstLength != 1<<20 || p.DefaultTime2Wait != 5 {
		t.Errorf("params %+v", p)
	}

	d := newNegotiator(&cfg, true)
	reply, err = d.apply([]wire.KV{kv(keyMaxBurstLength, "4096")})
	if err != nil || len(reply) != 1 || reply[0].Value != wire.ValueIrrelevant {
		t.Errorf("discovery answer %v %v, want Irrelevant", reply, err)
	}
}

func TestNegotiatorUnansweredAndClamp(t *testing.T) {
	cfg := testConfig(t, func(c *Config) { c.MaxBurstLength, c.FirstBurstLength = 4096, 4096 })
	n := newNegotiator(&cfg, false)
	n.offers()
	if _, err := n.apply([]wire.KV{kv(keyMaxBurstLength, "2048")}); err != nil {
		t.Fatal(err)
	}
	p := n.finish()
	// FirstBurstLength falls back to min(default 65536, offer 4096) and
	// is then clamped to MaxBurstLength.
	if p.MaxBurstLength != 2048 || p.FirstBurstLength != 2048 {
		t.Errorf("bursts %d/%d, want 2048/2048", p.FirstBurstLength, p.MaxBurstLength)
	}
	if p.MaxOutstandingR2T != 1 || p.ErrorRecoveryLevel != 0 {
		t.Errorf("unanswered keys not defaulted: %+v", p)
	}
}

func TestConfigDefaults(t *testing.T) {
	for name, c := range map[string]Config{
		"no address":          {InitiatorName: "iqn.x"},
		"no initiator":        {Addr: "h"},
		"no target":           {Addr: "h", InitiatorName: "iqn.x"},
		"mutual without chap": {Addr: "h", InitiatorName: "iqn.x", TargetName: "t", MutualCHAP: &Credentials{Secret: "s"}},
		"same secrets": {Addr: "h", InitiatorName: "iqn.x", TargetName: "t",
			CHAP: &Credentials{User: "u", Secret: "s"}, MutualCHAP: &Credentials{Secret: "s"}},
		"tiny segment":  {Addr: "h", InitiatorName: "iqn.x", TargetName: "t", MaxRecvDataSegmentLength: 100},
		"first > burst": {Addr: "h", InitiatorName: "iqn.x", TargetName: "t", MaxBurstLength: 4096, FirstBurstLength: 8192},
		"too many r2ts": {Addr: "h", InitiatorName: "iqn.x", TargetName: "t", MaxOutstandingR2T: 100},
	} {
		if _, err := c.withDefaults(true); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v, want ErrConfig", name, err)
		}
	}
	c, err := Config{Addr: "10.0.0.1", InitiatorName: "iqn.x", TargetName: "t"}.withDefaults(true)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "10.0.0.1:3260" {
		t.Errorf("addr %q", c.Addr)
	}
	if c.ISID>>isidTypeShift != isidTypeRandom || c.ISID > isidMask {
		t.Errorf("ISID %#x is not of the random type", c.ISID)
	}
}
