package domain

import (
	"encoding/base64"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
)

// Size units; sizes are binary (KiB = 1024), and the decimal-looking
// suffixes K, M, G, T are accepted as the same binary units, like
// qemu-img does.
const (
	KiB = 1 << 10
	MiB = 1 << 20
	GiB = 1 << 30
	TiB = 1 << 40
	PiB = 1 << 50
)

// ParseSize parses "4096", "512M", "10GiB", "1.5T" into bytes.
func ParseSize(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, fmt.Errorf("size %q: empty", s)
	}
	i := len(t)
	for i > 0 && (t[i-1] < '0' || t[i-1] > '9') && t[i-1] != '.' {
		i--
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	mult := uint64(1)
	switch strings.TrimSuffix(strings.TrimSuffix(unit, "b"), "i") {
	case "":
		if unit != "" && unit != "b" {
			return 0, fmt.Errorf("size %q: unknown unit %q (use K, M, G, T, P)", s, unit)
		}
	case "k":
		mult = KiB
	case "m":
		mult = MiB
	case "g":
		mult = GiB
	case "t":
		mult = TiB
	case "p":
		mult = PiB
	default:
		return 0, fmt.Errorf("size %q: unknown unit %q (use K, M, G, T, P)", s, unit)
	}
	if n, err := strconv.ParseUint(num, 10, 64); err == nil {
		hi, lo := bits.Mul64(n, mult)
		if hi != 0 {
			return 0, fmt.Errorf("size %q: too large", s)
		}
		return lo, nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 || math.IsNaN(f) {
		return 0, fmt.Errorf("size %q: not a number", s)
	}
	v := f * float64(mult)
	if v >= math.MaxUint64 {
		return 0, fmt.Errorf("size %q: too large", s)
	}
	return uint64(v), nil
}

// FormatSize writes bytes in the largest binary unit that keeps one
// significant decimal: "10 GiB", "1.5 TiB", "512 B".
func FormatSize(n uint64) string {
	units := []struct {
		size uint64
		name string
	}{{PiB, "PiB"}, {TiB, "TiB"}, {GiB, "GiB"}, {MiB, "MiB"}, {KiB, "KiB"}}
	for _, u := range units {
		if n >= u.size {
			v := float64(n) / float64(u.size)
			if n%u.size == 0 {
				return strconv.FormatUint(n/u.size, 10) + " " + u.name
			}
			return strconv.FormatFloat(v, 'f', 1, 64) + " " + u.name
		}
	}
	return strconv.FormatUint(n, 10) + " B"
}

// EncodePageToken makes an opaque token that resumes a listing after key.
func EncodePageToken(key string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(key))
}

// DecodePageToken reverses EncodePageToken.
func DecodePageToken(field, tok string) (string, error) {
	if tok == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(b) > 2*MaxIQNLen {
		return "", fieldErr(field, "is not a token from a previous response")
	}
	return string(b), nil
}

// TargetIQN is the target name under which a volume is exported.
func TargetIQN(base, volume string) string { return base + ":" + volume }

// ISCSIURL is the iscsi:// URL QEMU and libiscsi accept.
func ISCSIURL(portal, targetIQN string, lun uint32) string {
	return "iscsi://" + portal + "/" + targetIQN + "/" + strconv.FormatUint(uint64(lun), 10)
}
