package domain

import (
	"errors"
	"testing"
)

// FuzzParseSize feeds arbitrary size strings (from CLI flags) through
// ParseSize: it must not panic, and every size it accepts and that is a
// whole number of KiB formats back to a string that parses to the same
// value.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"4096", "10G", "1.5TiB", "512 M", "", "-1", "99999999999P", "1e3G"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil || n%MiB != 0 {
			return
		}
		back, err := ParseSize(FormatSize(n))
		if err != nil {
			t.Fatalf("FormatSize(%d) = %q does not parse: %v", n, FormatSize(n), err)
		}
		if FormatSize(back) != FormatSize(n) {
			t.Fatalf("%q -> %d -> %q -> %d", s, n, FormatSize(n), back)
		}
	})
}

// FuzzValidate runs the validators of untrusted request fields: none may
// panic, and every refusal is a FieldError naming the field.
func FuzzValidate(f *testing.F) {
	for _, s := range []string{"vol-1", "iqn.2026-01.com.example:h", "eui.02004567a425678d", "naa.x", "a@b", "Z", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		check := func(field string, err error) {
			var fe *FieldError
			if err != nil && (!errors.As(err, &fe) || fe.Field == "" || !errors.Is(err, ErrInvalid)) {
				t.Fatalf("%s: %v is not a FieldError", field, err)
			}
		}
		check("name", ValidateName("name", s))
		check("iqn", ValidateIQN("iqn", s))
		check("chap", ValidateCHAP("chap", s, s))
		check("labels", ValidateLabels("labels", map[string]string{s: s}))
		check("request_id", ValidateRequestID("request_id", s))
		_, _, err := ParseSnapshotRef("source", s)
		check("source", err)
		_, err = DecodePageToken("page_token", s)
		check("page_token", err)
		if ValidateName("name", s) == nil && ValidateIQN("iqn", TargetIQN("iqn.2026-01.io.vbs", s)) != nil {
			t.Fatalf("valid name %q makes an invalid target IQN", s)
		}
	})
}
