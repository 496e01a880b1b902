package scsi

import (
	"encoding/hex"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// checkGolden compares got with testdata/golden/name.hex (a hex dump).
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name+".hex")
	dump := hex.Dump(got)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(dump), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	if string(want) != dump {
		t.Fatalf("%s differs from golden file\n got:\n%s\nwant:\n%s", name, dump, want)
	}
}

// TestGoldenPages pins the bytes of INQUIRY, every VPD page and the mode
// pages for a thin LU and a plain one.
func TestGoldenPages(t *testing.T) {
	for _, kind := range []string{"thin", "plain"} {
		var dev Device = newMemDev(512, 1<<14)
		if kind == "thin" {
			dev = newThinDev(4096, 1<<11)
		}
		h := newHarness(t, dev, LUOptions{WriteCache: true, Serial: "VBS0000000000001", NAA: 0x6001405a1b2c3d4e})
		cases := []struct {
			name string
			cdb  []byte
		}{
			{"inquiry", cdbInquiry(false, 0, 255)},
			{"vpd00", cdbInquiry(true, vpdSupported, 255)},
			{"vpd80", cdbInquiry(true, vpdSerial, 255)},
			{"vpd83", cdbInquiry(true, vpdDeviceID, 255)},
			{"vpd86", cdbInquiry(true, vpdExtended, 255)},
			{"vpd8f", cdbInquiry(true, vpdThirdPartyCpy, 255)},
			{"vpdb0", cdbInquiry(true, vpdBlockLimits, 255)},
			{"vpdb1", cdbInquiry(true, vpdCharacteristc, 255)},
			{"vpdb2", cdbInquiry(true, vpdLBP, 255)},
			{"modesense6_all", cdbModeSense6(pageAll, 0, pcCurrent, false, 255)},
			{"modesense6_changeable", cdbModeSense6(pageAll, 0, pcChangeable, true, 255)},
			{"modesense10_llbaa_caching", []byte{opModeSense10, modeLLBAA, pageCaching, 0, 0, 0, 0, 1, 0, 0}},
			{"readcapacity16", []byte{opServiceActionIn16, saReadCapacity16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0}},
		}
		for _, c := range cases {
			t.Run(kind+"_"+c.name, func(t *testing.T) {
				r := h.run(c.cdb, nil)
				expectGood(t, r)
				checkGolden(t, kind+"_"+c.name, r.DataIn)
			})
		}
	}
}

// TestInquiryAllocationLength checks that every allocation length returns
// exactly that prefix (libiscsi's alloc-length test).
func TestInquiryAllocationLength(t *testing.T) {
	h := newHarness(t, nil, LUOptions{})
	full := h.run(cdbInquiry(false, 0, 255), nil)
	expectGood(t, full)
	if int(full.DataIn[4]) != len(full.DataIn)-5 {
		t.Fatalf("additional length %d for %d bytes", full.DataIn[4], len(full.DataIn))
	}
	for n := 0; n <= 255; n++ {
		r := h.run(cdbInquiry(false, 0, uint16(n)), nil)
		expectGood(t, r)
		if len(r.DataIn) != min(n, len(full.DataIn)) || string(r.DataIn) != string(full.DataIn[:len(r.DataIn)]) {
			t.Fatalf("alloc %d: got %d bytes", n, len(r.DataIn))
		}
	}
	// Block limits page length and content the way libiscsi reads it.
	bl := h.run(cdbInquiry(true, vpdBlockLimits, 64), nil)
	expectGood(t, bl)
	if len(bl.DataIn) != int(bl.DataIn[3])+4 || bl.DataIn[3] != vpdBlockLimitLen {
		t.Fatalf("block limits length %d", bl.DataIn[3])
	}
}

func TestModeSelectRejects(t *testing.T) {
	h := newHarness(t, nil, LUOptions{})
	r := h.run(cdbModeSense6(pageControl, 0, pcCurrent, true, 255), nil)
	expectGood(t, r)
	base := append([]byte(nil), r.DataIn...)
	base[0] = 0
	cases := []struct {
		name string
		mut  func(p []byte) []byte
		asc  ASC
	}{
		{"unchangeable bit", func(p []byte) []byte { p[modeHdr6Len+2] |= controlGLTSD; return p }, ASCInvalidFieldInParameterList},
		{"PS set", func(p []byte) []byte { p[modeHdr6Len] |= pagePS; return p }, ASCInvalidFieldInParameterList},
		{"bad page length", func(p []byte) []byte { p[modeHdr6Len+1]++; return p }, ASCInvalidFieldInParameterList},
		{"unknown page", func(p []byte) []byte { p[modeHdr6Len] = 0x19; return p }, ASCInvalidFieldInParameterList},
		{"truncated page", func(p []byte) []byte { return p[:len(p)-3] }, ASCParameterListLengthError},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := c.mut(append([]byte(nil), base...))
			expectSense(t, h.run(cdbModeSelect6(byte(len(p))), p), SenseIllegalRequest, c.asc)
		})
	}
	// SWP through MODE SELECT write-protects the LU.
	p := append([]byte(nil), base...)
	p[modeHdr6Len+4] |= controlSWP
	expectGood(t, h.run(cdbModeSelect6(byte(len(p))), p))
	expectSense(t, h.run(cdbRW10(opWrite10, 0, 1, 0), fill(512, 1)), SenseDataProtect, ASCWriteProtected)
	// MODE SELECT(10) turns it off again.
	p10 := make([]byte, modeHdr10Len, modeHdr10Len+len(p)-modeHdr6Len)
	p10 = append(p10, p[modeHdr6Len:]...)
	p10[modeHdr10Len+4] &^= controlSWP
	c := []byte{opModeSelect10, modeSelPF, 0, 0, 0, 0, 0, 0, byte(len(p10)), 0}
	expectGood(t, h.run(c, p10))
	expectGood(t, h.run(cdbRW10(opWrite10, 0, 1, 0), fill(512, 1)))
}
