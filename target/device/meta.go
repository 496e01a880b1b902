package device

import (
	"fmt"
	"strings"
	"sync"
)

// maxMetadataKey bounds a metadata key (it is a file name for file devices).
const maxMetadataKey = 128

// checkMetadataKey enforces the key grammar of scsi.MetadataStore:
// segments of [A-Za-z0-9._-] separated by single slashes, no segment
// empty or starting with a dot. metaFileName turns such a key into a
// plain, visible file name.
func checkMetadataKey(key string) error {
	if key == "" || len(key) > maxMetadataKey {
		return fmt.Errorf("metadata key %q: %w", key, ErrBadMetadataKey)
	}
	for seg := range strings.SplitSeq(key, "/") {
		if seg == "" || seg[0] == '.' {
			return fmt.Errorf("metadata key %q: %w", key, ErrBadMetadataKey)
		}
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			switch {
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
			default:
				return fmt.Errorf("metadata key %q: %w", key, ErrBadMetadataKey)
			}
		}
	}
	return nil
}

// metaFileName maps a valid key to a file name. '%' is not a key
// character, so the escape cannot collide with another key.
func metaFileName(key string) string { return strings.ReplaceAll(key, "/", "%2F") }

// memMetadata is an in-memory scsi.MetadataStore. Values are copied in and
// out, so callers may reuse their buffers.
type memMetadata struct {
	mu sync.Mutex
	m  map[string][]byte // guarded by mu
}

func (s *memMetadata) get(key string) ([]byte, error) {
	if err := checkMetadataKey(key); err != nil {
		return nil, fmt.Errorf("get metadata: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[key]
	if !ok {
		return nil, nil
	}
	return append([]byte{}, v...), nil
}

func (s *memMetadata) set(key string, value []byte) error {
	if err := checkMetadataKey(key); err != nil {
		return fmt.Errorf("set metadata: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[string][]byte)
	}
	s.m[key] = append([]byte{}, value...)
	return nil
}
