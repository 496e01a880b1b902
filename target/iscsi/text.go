package iscsi

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Text key limits (RFC 7143 section 6.1).
const (
	// MaxKeyLength is the longest key name allowed.
	MaxKeyLength = 63
	// MaxTextDataLength bounds a whole text exchange that a peer may send
	// across Continue PDUs before we refuse it; far above any real login.
	MaxTextDataLength = 64 * 1024
)

// KV is one key=value pair of a text or login data segment.
type KV struct {
	Key   string
	Value string
}

// ErrTextFormat means a data segment is not a sequence of key=value pairs
// (RFC 7143 section 6.1); login answers it with an initiator error.
var ErrTextFormat = errors.New("iscsi: malformed text data")

// ParseText splits a text data segment into key=value pairs in order. Each
// pair ends with a NUL; a missing final NUL is tolerated. Empty strings
// between NULs (padding some initiators send) are skipped.
func ParseText(data []byte) ([]KV, error) {
	if len(data) > MaxTextDataLength {
		return nil, fmt.Errorf("%w: %d bytes", ErrTextFormat, len(data))
	}
	var kvs []KV
	for len(data) > 0 {
		end := bytes.IndexByte(data, 0)
		var pair []byte
		if end < 0 {
			pair, data = data, nil
		} else {
			pair, data = data[:end], data[end+1:]
		}
		if len(pair) == 0 {
			continue
		}
		eq := bytes.IndexByte(pair, '=')
		if eq <= 0 {
			return nil, fmt.Errorf("%w: %q has no key=value form", ErrTextFormat, truncate(pair))
		}
		if eq > MaxKeyLength {
			return nil, fmt.Errorf("%w: key %q longer than %d", ErrTextFormat, truncate(pair[:eq]), MaxKeyLength)
		}
		kvs = append(kvs, KV{Key: string(pair[:eq]), Value: string(pair[eq+1:])})
	}
	return kvs, nil
}

func truncate(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

// AppendText appends key=value and a NUL to dst.
func AppendText(dst []byte, key, value string) []byte {
	dst = append(dst, key...)
	dst = append(dst, '=')
	dst = append(dst, value...)
	return append(dst, 0)
}

// EncodeText encodes pairs in order.
func EncodeText(kvs []KV) []byte {
	var b []byte
	for _, kv := range kvs {
		b = AppendText(b, kv.Key, kv.Value)
	}
	return b
}

// Special values of text keys (RFC 7143 section 6.2).
const (
	ValueNotUnderstood = "NotUnderstood"
	ValueIrrelevant    = "Irrelevant"
	ValueReject        = "Reject"
)

// DecodeBinary decodes a binary-value (RFC 7143 section 6.1): 0x/0X hex
// or 0b/0B base64. Hex with an odd number of digits gets a leading zero.
func DecodeBinary(s string) ([]byte, error) {
	if len(s) < 3 || s[0] != '0' {
		return nil, fmt.Errorf("binary value %q: want 0x or 0b prefix", s)
	}
	body := s[2:]
	switch s[1] {
	case 'x', 'X':
		if len(body)%2 == 1 {
			body = "0" + body
		}
		b, err := hex.DecodeString(body)
		if err != nil {
			return nil, fmt.Errorf("binary value: %w", err)
		}
		return b, nil
	case 'b', 'B':
		b, err := base64.StdEncoding.DecodeString(body)
		if err != nil {
			return nil, fmt.Errorf("binary value: %w", err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("binary value %q: want 0x or 0b prefix", s)
}

// EncodeHex encodes b as a 0x-prefixed hex binary-value.
func EncodeHex(b []byte) string {
	return "0x" + hex.EncodeToString(b)
}

// SplitList splits a comma-separated list value.
func SplitList(v string) []string {
	return strings.Split(v, ",")
}
