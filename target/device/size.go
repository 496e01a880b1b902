package device

import (
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
)

// ErrBadSize is wrapped by every error ParseSize returns.
var ErrBadSize = errors.New("bad size")

// sizeUnit is one unit suffix ParseSize accepts.
type sizeUnit struct {
	suffix string // lower case
	mult   uint64
}

// Binary and decimal unit multipliers.
const (
	kibi uint64 = 1 << 10
	mebi uint64 = 1 << 20
	gibi uint64 = 1 << 30
	tebi uint64 = 1 << 40
	pebi uint64 = 1 << 50

	kilo uint64 = 1e3
	mega uint64 = 1e6
	giga uint64 = 1e9
	tera uint64 = 1e12
	peta uint64 = 1e15
)

// maxFracDigits bounds the fraction ParseSize accepts ("1.5GiB"); more digits
// than this can never name a whole number of bytes with our units.
const maxFracDigits = 15

// sizeUnits returns the units ParseSize accepts, matched case-insensitively.
// A bare letter (K, M, G, T, P) is binary, like the "KiB" spellings; "KB"
// spellings are decimal. It is a function, not a table variable, so that the
// package has no mutable state.
func sizeUnits() [17]sizeUnit {
	return [17]sizeUnit{
		{"", 1}, {"b", 1},
		{"k", kibi}, {"kib", kibi}, {"kb", kilo},
		{"m", mebi}, {"mib", mebi}, {"mb", mega},
		{"g", gibi}, {"gib", gibi}, {"gb", giga},
		{"t", tebi}, {"tib", tebi}, {"tb", tera},
		{"p", pebi}, {"pib", pebi}, {"pb", peta},
	}
}

// ParseSize parses a byte count with an optional unit: "4096", "512B",
// "64K", "512MiB", "10GiB", "1T", "1.5GiB", "100GB". K, M, G, T and P and
// their KiB..PiB spellings are powers of 1024; KB..PB are powers of 1000.
// Units are case-insensitive and may be separated from the number by one
// space. A fraction is accepted only when it names a whole number of bytes.
// Every error wraps ErrBadSize and quotes the input.
func ParseSize(s string) (uint64, error) {
	n, err := parseSize(s)
	if err != nil {
		return 0, fmt.Errorf("%w %q: %s", ErrBadSize, s, err)
	}
	return n, nil
}

// parseSize does the work of ParseSize; its errors say only what is wrong.
func parseSize(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	end := 0
	for end < len(t) && (t[end] >= '0' && t[end] <= '9' || t[end] == '.') {
		end++
	}
	num, unit := t[:end], strings.ToLower(strings.TrimPrefix(t[end:], " "))
	if num == "" {
		return 0, errors.New("no number")
	}
	mult, ok := unitMultiplier(unit)
	if !ok {
		return 0, fmt.Errorf("unknown unit %q (want B, K, M, G, T, P, KiB..PiB or KB..PB)", t[end:])
	}
	whole, frac, hasDot := strings.Cut(num, ".")
	if whole == "" || hasDot && frac == "" || strings.Contains(frac, ".") {
		return 0, fmt.Errorf("malformed number %q", num)
	}
	w, err := strconv.ParseUint(whole, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("number %q out of range", whole)
	}
	hi, total := bits.Mul64(w, mult)
	if hi != 0 {
		return 0, errors.New("too large")
	}
	if frac == "" {
		return total, nil
	}
	if len(frac) > maxFracDigits {
		return 0, fmt.Errorf("fraction %q has more than %d digits", frac, maxFracDigits)
	}
	f, err := strconv.ParseUint(frac, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("malformed fraction %q", frac)
	}
	den := pow10(len(frac))
	// f*mult/den must be whole: f < 10^15 and mult <= 10^15, so f*mult fits
	// in 128 bits and bits.Div64 cannot overflow (hi < den).
	hi, lo := bits.Mul64(f, mult)
	q, rem := bits.Div64(hi, lo, den)
	if rem != 0 {
		return 0, fmt.Errorf("fraction %q of %s is not a whole number of bytes", "."+frac, unitName(unit))
	}
	sum, carry := bits.Add64(total, q, 0)
	if carry != 0 {
		return 0, errors.New("too large")
	}
	return sum, nil
}

func unitMultiplier(unit string) (uint64, bool) {
	for _, u := range sizeUnits() {
		if u.suffix == unit {
			return u.mult, true
		}
	}
	return 0, false
}

func unitName(unit string) string {
	if unit == "" {
		return "a byte"
	}
	return unit
}

func pow10(n int) uint64 {
	p := uint64(1)
	for range n {
		p *= 10
	}
	return p
}

// formatUnit is one unit FormatSize may print.
type formatUnit struct {
	name string
	mult uint64
}

// formatDecimals is how many fractional digits FormatSize may print.
const formatDecimals = 2

// FormatSize renders n exactly and as briefly as it can: the shortest of
// its spellings with at most two decimals in a binary unit, a decimal unit,
// or plain bytes, preferring binary units on a tie. 1073741824 -> "1GiB",
// 1610612736 -> "1.5GiB", 1000000 -> "1MB", 1000001 -> "1000001B".
// ParseSize(FormatSize(n)) == n for every n.
func FormatSize(n uint64) string {
	units := [10]formatUnit{
		{"PiB", pebi}, {"TiB", tebi}, {"GiB", gibi}, {"MiB", mebi}, {"KiB", kibi},
		{"PB", peta}, {"TB", tera}, {"GB", giga}, {"MB", mega}, {"KB", kilo},
	}
	best := strconv.FormatUint(n, 10) + "B"
	for _, u := range units {
		if s, ok := formatIn(n, u); ok && len(s) < len(best) {
			best = s
		}
	}
	return best
}

// formatIn spells n in unit u with at most formatDecimals decimals, if that
// is exact and n is at least one u.
func formatIn(n uint64, u formatUnit) (string, bool) {
	if n < u.mult {
		return "", false
	}
	scale := pow10(formatDecimals)
	whole, rem := n/u.mult, n%u.mult
	// rem < mult <= 2^50, so rem*scale fits in 64 bits.
	if rem*scale%u.mult != 0 {
		return "", false
	}
	s := strconv.FormatUint(whole, 10)
	if frac := rem * scale / u.mult; frac != 0 {
		digits := fmt.Sprintf("%0*d", formatDecimals, frac)
		s += "." + strings.TrimRight(digits, "0")
	}
	return s + u.name, true
}
