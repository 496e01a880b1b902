// Package domain holds the control plane's pure rules: what a valid name,
// size, IQN, label or CHAP secret is, how sizes and snapshot references
// are written, and how page tokens and iSCSI URLs are formed. It does no
// I/O and keeps no state, so the API handlers, the CLI and the tests share
// one definition of "valid".
package domain

import (
	"errors"
	"fmt"
	"strings"
)

// Bounds on user input.
const (
	MaxNameLen       = 63
	BlockSize        = 4096 // volume sizes are multiples of this
	BlockSize512     = 512  // the other logical block size a volume may have
	MinVolumeSize    = 1 << 20
	MaxVolumeSize    = 64 << 40
	MaxIQNLen        = 223 // RFC 7143 section 4.2.7.1
	MaxLabels        = 32
	MaxLabelKeyLen   = 63
	MaxLabelValueLen = 255
	MaxRequestIDLen  = 128
	MinCHAPSecretLen = 12 // RFC 7143 section 12.1.3 recommends >= 96 bits
	MaxCHAPSecretLen = 255
	MaxCHAPUserLen   = 255
	DefaultPageSize  = 100
	MaxPageSize      = 1000
)

// ErrInvalid is wrapped by every FieldError.
var ErrInvalid = errors.New("invalid argument")

// FieldError says which request field is wrong and why.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *FieldError) Unwrap() error { return ErrInvalid }

func fieldErr(field, format string, a ...any) error {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, a...)}
}

// ValidateName checks a volume or snapshot name: 1-63 characters of
// lowercase letters, digits and '-', starting with a letter and not
// ending with '-'. Names appear in target IQNs, so they stay within what
// RFC 3722 allows without escaping.
func ValidateName(field, s string) error {
	if s == "" {
		return fieldErr(field, "is required")
	}
	if len(s) > MaxNameLen {
		return fieldErr(field, "is %d characters; the limit is %d", len(s), MaxNameLen)
	}
	if s[0] < 'a' || s[0] > 'z' {
		return fieldErr(field, "must start with a lowercase letter")
	}
	if s[len(s)-1] == '-' {
		return fieldErr(field, "must not end with '-'")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return fieldErr(field, "has %q; use lowercase letters, digits and '-'", c)
		}
	}
	return nil
}

// ValidateSize checks a volume size in bytes.
func ValidateSize(field string, n uint64) error {
	switch {
	case n == 0:
		return fieldErr(field, "is required")
	case n < MinVolumeSize:
		return fieldErr(field, "is %d bytes; the minimum is %s", n, FormatSize(MinVolumeSize))
	case n > MaxVolumeSize:
		return fieldErr(field, "is %s; the maximum is %s", FormatSize(n), FormatSize(MaxVolumeSize))
	case n%BlockSize != 0:
		return fieldErr(field, "is %d bytes, not a multiple of %d", n, BlockSize)
	}
	return nil
}

// ValidateBlockSize returns the logical block size to use: 512 or 4096,
// with 0 meaning 4096.
func ValidateBlockSize(field string, n uint32) (uint32, error) {
	switch n {
	case 0:
		return BlockSize, nil
	case BlockSize512, BlockSize:
		return n, nil
	}
	return 0, fieldErr(field, "is %d; use 512 or 4096", n)
}

// ValidateIQN checks an iSCSI name (RFC 7143 section 4.2.7): the iqn.,
// eui. or naa. formats, lowercase, at most 223 bytes.
func ValidateIQN(field, s string) error {
	if s == "" {
		return fieldErr(field, "is required")
	}
	if len(s) > MaxIQNLen {
		return fieldErr(field, "is %d bytes; the limit is %d", len(s), MaxIQNLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == ':') {
			return fieldErr(field, "has %q; iSCSI names are lowercase letters, digits, '-', '.' and ':'", c)
		}
	}
	switch {
	case strings.HasPrefix(s, "iqn."):
		// iqn.YYYY-MM.reversed.domain[:unique]
		rest := s[len("iqn."):]
		if len(rest) < len("yyyy-mm.x") || rest[4] != '-' || rest[7] != '.' ||
			!allDigits(rest[:4]) || !allDigits(rest[5:7]) || rest[5:7] < "01" || rest[5:7] > "12" {
			return fieldErr(field, "must look like iqn.YYYY-MM.reversed.domain[:name]")
		}
		domain := rest[8:]
		if i := strings.IndexByte(domain, ':'); i >= 0 {
			domain = domain[:i]
		}
		if domain == "" {
			return fieldErr(field, "has no naming authority after the date")
		}
	case strings.HasPrefix(s, "eui."):
		if h := s[len("eui."):]; len(h) != 16 || !allHex(h) {
			return fieldErr(field, "eui. names have 16 hex digits")
		}
	case strings.HasPrefix(s, "naa."):
		if h := s[len("naa."):]; (len(h) != 16 && len(h) != 32) || !allHex(h) {
			return fieldErr(field, "naa. names have 16 or 32 hex digits")
		}
	default:
		return fieldErr(field, "must start with iqn., eui. or naa.")
	}
	return nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func allHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// ValidateCHAP checks CHAP credentials; field is the message field's name.
func ValidateCHAP(field, user, secret string) error {
	switch {
	case user == "":
		return fieldErr(field+".user", "is required with CHAP")
	case len(user) > MaxCHAPUserLen || !printable(user):
		return fieldErr(field+".user", "must be 1-%d printable ASCII characters without spaces", MaxCHAPUserLen)
	case len(secret) < MinCHAPSecretLen || len(secret) > MaxCHAPSecretLen:
		return fieldErr(field+".secret", "must be %d-%d characters", MinCHAPSecretLen, MaxCHAPSecretLen)
	case !printable(secret):
		return fieldErr(field+".secret", "must be printable ASCII without spaces")
	}
	return nil
}

// ValidateLabels checks label keys and values.
func ValidateLabels(field string, labels map[string]string) error {
	if len(labels) > MaxLabels {
		return fieldErr(field, "has %d labels; the limit is %d", len(labels), MaxLabels)
	}
	for k, v := range labels {
		if k == "" || len(k) > MaxLabelKeyLen {
			return fieldErr(field, "key %q must be 1-%d characters", k, MaxLabelKeyLen)
		}
		for i := 0; i < len(k); i++ {
			c := k[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_./", c) >= 0) {
				return fieldErr(field, "key %q has %q; use letters, digits, '-', '_', '.', '/'", k, c)
			}
		}
		if len(v) > MaxLabelValueLen || (v != "" && !printableSpace(v)) {
			return fieldErr(field, "value of %q must be at most %d printable characters", k, MaxLabelValueLen)
		}
	}
	return nil
}

func printableSpace(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// ValidateRequestID checks an idempotency key (empty is allowed).
func ValidateRequestID(field, s string) error {
	if len(s) > MaxRequestIDLen || (s != "" && !printable(s)) {
		return fieldErr(field, "must be at most %d printable characters", MaxRequestIDLen)
	}
	return nil
}

// ParseSnapshotRef splits VOLUME@SNAPSHOT and validates both names.
func ParseSnapshotRef(field, s string) (volume, snapshot string, err error) {
	v, sn, ok := strings.Cut(s, "@")
	if !ok {
		return "", "", fieldErr(field, "must be VOLUME@SNAPSHOT")
	}
	if err := ValidateName(field, v); err != nil {
		return "", "", err
	}
	if err := ValidateName(field, sn); err != nil {
		return "", "", err
	}
	return v, sn, nil
}

// ValidatePageSize returns the page size to use.
func ValidatePageSize(field string, n int32) (int, error) {
	switch {
	case n < 0:
		return 0, fieldErr(field, "must not be negative")
	case n == 0:
		return DefaultPageSize, nil
	case n > MaxPageSize:
		return 0, fieldErr(field, "is %d; the limit is %d", n, MaxPageSize)
	}
	return int(n), nil
}
