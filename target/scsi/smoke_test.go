package scsi

import (
	"bytes"
	"testing"
)

func TestReadWriteRoundTrip(t *testing.T) {
	h := newHarness(t, nil, LUOptions{WriteCache: true})
	cases := []struct {
		name  string
		write []byte
		read  []byte
	}{
		{"6", cdbRW6(opWrite6, 7, 2), cdbRW6(opRead6, 7, 2)},
		{"10", cdbRW10(opWrite10, 100, 2, 0), cdbRW10(opRead10, 100, 2, 0)},
		{"12", cdbRW12(opWrite12, 200, 2, 0), cdbRW12(opRead12, 200, 2, 0)},
		{"16", cdbRW16(opWrite16, 4094, 2, 0), cdbRW16(opRead16, 4094, 2, 0)},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data := fill(1024, byte(i+1))
			expectGood(t, h.run(c.write, data))
			r := h.run(c.read, nil)
			expectGood(t, r)
			if !bytes.Equal(r.DataIn, data) {
				t.Fatalf("read back differs")
			}
			if r.TransferLength() != 1024 {
				t.Fatalf("transfer length %d", r.TransferLength())
			}
		})
	}
}
