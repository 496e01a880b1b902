package device

import (
	"errors"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want uint64
	}{
		{"0", 0},
		{"512", 512},
		{"512B", 512},
		{"512b", 512},
		{"4K", 4 << 10},
		{"4k", 4 << 10},
		{"4KiB", 4 << 10},
		{"4KB", 4000},
		{"512MiB", 512 << 20},
		{"512M", 512 << 20},
		{"512MB", 512e6},
		{"10GiB", 10 << 30},
		{"10gib", 10 << 30},
		{"10G", 10 << 30},
		{"10GB", 10e9},
		{"1T", 1 << 40},
		{"1TiB", 1 << 40},
		{"1TB", 1e12},
		{"2P", 2 << 50},
		{"2PB", 2e15},
		{"1.5GiB", 3 << 29},
		{"0.5K", 512},
		{"1.25MB", 1250000},
		{"10 GiB", 10 << 30},
		{" 10GiB ", 10 << 30},
		{"007M", 7 << 20},
		{"15.99999999999999PB", 15999999999999990},
		{"18446744073709551615", 1<<64 - 1},
		{"18446.744073709551615PB", 1<<64 - 1},
	}
	for _, tc := range tests {
		got, err := ParseSize(tc.in)
		if err != nil {
			t.Errorf("ParseSize(%q): %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("ParseSize(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestParseSizeErrors(t *testing.T) {
	tests := []struct {
		in, msg string
	}{
		{"", `bad size "": no number`},
		{"G", `bad size "G": no number`},
		{"-1", `bad size "-1": no number`},
		{"12x", `bad size "12x": unknown unit "x" (want B, K, M, G, T, P, KiB..PiB or KB..PB)`},
		{"1EiB", `bad size "1EiB": unknown unit "EiB"`},
		{"1  G", `bad size "1  G": unknown unit "  G"`},
		{"1e9", `bad size "1e9": unknown unit "e9"`},
		{"1.", `bad size "1.": malformed number "1."`},
		{".5G", `bad size ".5G": malformed number ".5"`},
		{"1.2.3G", `bad size "1.2.3G": malformed number "1.2.3"`},
		{"0.3K", `bad size "0.3K": fraction ".3" of k is not a whole number of bytes`},
		{"1.5", `bad size "1.5": fraction ".5" of a byte is not a whole number of bytes`},
		{"18446744073709551616", `bad size "18446744073709551616": number "18446744073709551616" out of range`},
		{"16384P", `bad size "16384P": too large`},
		{"1.1234567890123456P", `fraction "1234567890123456" has more than 15 digits`},
		{"18446.744073709551616PB", `too large`},
	}
	for _, tc := range tests {
		_, err := ParseSize(tc.in)
		if err == nil {
			t.Errorf("ParseSize(%q): no error, want %q", tc.in, tc.msg)
			continue
		}
		if !errors.Is(err, ErrBadSize) {
			t.Errorf("ParseSize(%q): %v does not wrap ErrBadSize", tc.in, err)
		}
		if !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("ParseSize(%q) error %q, want it to contain %q", tc.in, err, tc.msg)
		}
	}
}

func TestFormatSize(t *testing.T) {
	tests := []struct {
		in   uint64
		want string
	}{
		{0, "0B"},
		{1, "1B"},
		{512, "512B"},
		{1000, "1KB"},
		{1023, "1023B"},
		{1024, "1KiB"},
		{1536, "1536B"},
		{3 << 19, "1.5MiB"},
		{4 << 10, "4KiB"},
		{1000000, "1MB"},
		{1024000, "1024KB"},
		{1e12, "1TB"},
		{1000001, "1000001B"},
		{512 << 20, "512MiB"},
		{3 << 29, "1.5GiB"},
		{10 << 30, "10GiB"},
		{(10 << 30) + 512, "10737418752B"},
		{1 << 40, "1TiB"},
		{1e12, "1TB"},
		{2 << 50, "2PiB"},
		{1<<64 - 1, "18446744073709551615B"},
		{1 << 63, "8192PiB"},
		{(1 << 30) + (1 << 30 / 4), "1.25GiB"},
	}
	for _, tc := range tests {
		if got := FormatSize(tc.in); got != tc.want {
			t.Errorf("FormatSize(%d) = %q, want %q", tc.in, got, tc.want)
		}
		if back, err := ParseSize(FormatSize(tc.in)); err != nil || back != tc.in {
			t.Errorf("ParseSize(FormatSize(%d)) = %d, %v", tc.in, back, err)
		}
	}
}

// FuzzParseSize checks that ParseSize never panics, that what it accepts
// formats and parses back to the same value, and that FormatSize always
// round-trips.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"0", "512", "4KiB", "1.5GiB", "10GB", "1T", "12x", "1.", "16384P", " 1 G"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			if !errors.Is(err, ErrBadSize) {
				t.Fatalf("ParseSize(%q): %v does not wrap ErrBadSize", s, err)
			}
			return
		}
		out := FormatSize(n)
		back, err := ParseSize(out)
		if err != nil || back != n {
			t.Fatalf("ParseSize(%q) = %d; FormatSize = %q; parsed back %d, %v", s, n, out, back, err)
		}
	})
}
