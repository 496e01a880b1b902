package catalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

func equalJSON(t *testing.T, a, b any) bool {
	t.Helper()
	ja, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(ja, jb)
}

func TestEncodeFraming(t *testing.T) {
	b, err := Encode(RemoveVolume{Name: "v"})
	if err != nil {
		t.Fatal(err)
	}
	want := append([]byte{byte(CmdRemoveVolume), commandVersion1}, `{"name":"v"}`...)
	if !bytes.Equal(b, want) {
		t.Fatalf("Encode = %q, want %q", b, want)
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrInvalid},
		{"short", []byte{1}, ErrInvalid},
		{"unknown type", []byte{200, commandVersion1, '{', '}'}, ErrUnknownCommand},
		{"unknown version", []byte{byte(CmdRemoveVolume), 9, '{', '}'}, ErrUnknownCommand},
		{"bad body", []byte{byte(CmdRemoveVolume), commandVersion1, '{'}, ErrInvalid},
	}
	for _, tc := range tests {
		if _, err := Decode(tc.in); !errors.Is(err, tc.want) {
			t.Errorf("%s: Decode = %v, want %v", tc.name, err, tc.want)
		}
	}
}

// FuzzDecode feeds arbitrary log entries through Decode and Apply: neither
// may panic, and a refused command must leave the state unchanged.
func FuzzDecode(f *testing.F) {
	for _, c := range []Command{
		CreateVolume{Name: "v", SizeBytes: 4096, BlockSize: 4096},
		GrantAccess{Volume: "v", InitiatorIQN: "iqn.x"},
		CreateOperation{ID: "o", Kind: OpResize, Volume: "v", SizeBytes: 8192},
	} {
		b, err := Encode(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Decode(b)
		if err != nil {
			return
		}
		s := NewState(DefaultLimits())
		if _, err := s.Apply(&CreateVolume{Name: "v", SizeBytes: 4096, BlockSize: 4096}); err != nil {
			t.Fatal(err)
		}
		before := s.Clone()
		if _, err := s.Apply(c); err != nil && !equalJSON(t, before, s) {
			t.Fatalf("refused %T changed the state", c)
		}
	})
}
