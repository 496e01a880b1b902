package scsi

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// TestCDBChecks is the table of CDB -> (status, sense) for bad requests.
func TestCDBChecks(t *testing.T) {
	h := newHarness(t, nil, LUOptions{WriteCache: true})
	blocks := uint64(4096)
	big := fill(512, 1)
	cases := []struct {
		name string
		cdb  []byte
		out  []byte
		key  SenseKey
		asc  ASC
		sks  []byte // expected sense-key-specific bytes, nil: not checked
	}{
		{"unknown opcode", []byte{0xC0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, nil, SenseIllegalRequest, ASCInvalidOpcode, nil},
		{"short cdb", []byte{opRead10, 0, 0}, nil, SenseIllegalRequest, ASCInvalidOpcode, nil},
		{"read10 at end", cdbRW10(opRead10, uint32(blocks), 1, 0), nil, SenseIllegalRequest, ASCLBAOutOfRange, nil},
		{"read10 straddles end", cdbRW10(opRead10, uint32(blocks-1), 2, 0), nil, SenseIllegalRequest, ASCLBAOutOfRange, nil},
		{"read16 lba -1", cdbRW16(opRead16, ^uint64(0), 1, 0), nil, SenseIllegalRequest, ASCLBAOutOfRange, nil},
		{"read16 huge length", cdbRW16(opRead16, 0, 0xFFFFFFFF, 0), nil, SenseIllegalRequest, ASCLBAOutOfRange, nil},
		{"write10 0 blocks past end", cdbRW10(opWrite10, uint32(blocks+1), 0, 0), nil, SenseIllegalRequest, ASCLBAOutOfRange, nil},
		{"read10 rdprotect", cdbRW10(opRead10, 0, 1, 0x20), nil, SenseIllegalRequest, ASCInvalidFieldInCDB, []byte{0xCF, 0, 1}},
		{"read beyond max transfer", cdbRW16(opRead16, 0, DefaultMaxTransferBytes/512+1, 0), nil, SenseIllegalRequest, ASCLBAOutOfRange, nil},
		{"inquiry page without evpd", cdbInquiry(false, 0x80, 255), nil, SenseIllegalRequest, ASCInvalidFieldInCDB, []byte{0xC0, 0, 2}},
		{"inquiry unknown vpd", cdbInquiry(true, 0x99, 255), nil, SenseIllegalRequest, ASCInvalidFieldInCDB, nil},
		{"naca", []byte{0, 0, 0, 0, 0, controlNACA}, nil, SenseIllegalRequest, ASCInvalidFieldInCDB, []byte{0xCA, 0, 5}},
		{"write same two-block data-out", cdbRW10(opWriteSame10, 0, 1, 0), fill(1024, 1), SenseIllegalRequest, ASCInvalidFieldInIU, nil},
		{"compare and write short data-out", cdbCAW(0, 1), fill(512, 1), SenseIllegalRequest, ASCInvalidFieldInIU, nil},
		{"mode sense saved", cdbModeSense6(pageCaching, 0, pcSaved, false, 255), nil, SenseIllegalRequest, ASCSavingParametersNotSupported, nil},
		{"mode sense bad page", cdbModeSense6(0x05, 0, 0, false, 255), nil, SenseIllegalRequest, ASCInvalidFieldInCDB, nil},
		{"report luns bad select", []byte{opReportLUNs, 0, 0x77, 0, 0, 0, 0, 0, 1, 0, 0, 0}, nil, SenseIllegalRequest, ASCInvalidFieldInCDB, nil},
		{"read capacity10 lba without pmi", []byte{opReadCapacity10, 0, 0, 0, 0, 1, 0, 0, 0, 0}, nil, SenseIllegalRequest, ASCInvalidFieldInCDB, nil},
		{"write same 0 blocks (WSNZ)", cdbRW10(opWriteSame10, 0, 0, 0), big, SenseIllegalRequest, ASCInvalidFieldInCDB, nil},
		{"pr in bad sa", cdbPRIn(9, 100), nil, SenseIllegalRequest, ASCInvalidFieldInCDB, nil},
		{"pr out wrong length", cdbPROut(prOutRegister, 0, 20), make([]byte, 20), SenseIllegalRequest, ASCParameterListLengthError, nil},
		{"start stop eject", []byte{opStartStopUnit, 0, 0, 0, ssuLOEJ, 0}, nil, SenseIllegalRequest, ASCInvalidFieldInCDB, nil},
		{"unmap without thin device", []byte{opUnmap, 0, 0, 0, 0, 0, 0, 0, 24, 0}, make([]byte, 24), SenseIllegalRequest, ASCInvalidOpcode, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := h.run(c.cdb, c.out)
			s := expectSense(t, r, c.key, c.asc)
			if c.sks != nil {
				if !s.SKSValid || s.SKS != [3]byte(c.sks) {
					t.Fatalf("sks %x valid=%v, want %x", s.SKS, s.SKSValid, c.sks)
				}
			}
			if r.DataIn != nil {
				t.Fatalf("data-in on CHECK CONDITION")
			}
		})
	}
}

func TestMaxTransferLength(t *testing.T) {
	dev := newMemDev(512, 1<<15)
	h := newHarness(t, dev, LUOptions{})
	max := uint32(DefaultMaxTransferBytes / 512)
	expectGood(t, h.run(cdbRW16(opRead16, 0, max, 0), nil))
	expectSense(t, h.run(cdbRW16(opRead16, 0, max+1, 0), nil), SenseIllegalRequest, ASCInvalidFieldInCDB)
}

func TestUnknownLUN(t *testing.T) {
	h := newHarness(t, nil, LUOptions{})
	r := h.runAs(h.n, 9, cdbTUR(), nil)
	expectSense(t, r, SenseIllegalRequest, ASCLUNotSupported)

	r = h.runAs(h.n, 9, cdbInquiry(false, 0, 96), nil)
	expectGood(t, r)
	if r.DataIn[0] != pqNotConnectable|pdtUnknown {
		t.Fatalf("inquiry byte 0 = %#x", r.DataIn[0])
	}
	r = h.runAs(h.n, 9, []byte{opRequestSense, 0, 0, 0, 252, 0}, nil)
	expectGood(t, r)
	if s, _ := ParseSense(r.DataIn); s.ASC != ASCLUNotSupported {
		t.Fatalf("request sense asc %#x", s.ASC)
	}
	// The REPORT LUNS well-known LU answers REPORT LUNS.
	r = h.runAs(h.n, WellKnownLUNReportLUNs, []byte{opReportLUNs, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0}, nil)
	expectGood(t, r)
}

func TestDeviceErrors(t *testing.T) {
	cases := []struct {
		err   error
		write bool
		key   SenseKey
		asc   ASC
	}{
		{fmt.Errorf("checksum: %w", ErrMedium), false, SenseMediumError, ASCUnrecoveredReadError},
		{fmt.Errorf("checksum: %w", ErrMedium), true, SenseMediumError, ASCWriteError},
		{fmt.Errorf("pool: %w", ErrNoSpace), true, SenseDataProtect, ASCSpaceAllocationFailedWP},
		{ErrWriteProtected, true, SenseDataProtect, ASCWriteProtected},
		{ErrOutOfRange, false, SenseIllegalRequest, ASCLBAOutOfRange},
		{errors.New("disk on fire"), false, SenseHardwareError, ASCInternalTargetFailure},
	}
	for _, c := range cases {
		t.Run(c.err.Error(), func(t *testing.T) {
			h := newHarness(t, nil, LUOptions{WriteCache: true})
			e := c.err
			h.dev.failNext.Store(&e)
			var r *Result
			if c.write {
				r = h.run(cdbRW10(opWrite10, 0, 1, 0), fill(512, 1))
			} else {
				r = h.run(cdbRW10(opRead10, 0, 1, 0), nil)
			}
			expectSense(t, r, c.key, c.asc)
		})
	}
}

func TestCanceledContextAborts(t *testing.T) {
	h := newHarness(t, nil, LUOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := &Result{}
	h.tgt.Execute(ctx, &Command{Nexus: h.n, CDB: cdbRW10(opRead10, 0, 1, 0), ExpectedDataIn: 512}, res)
	if res.Status != StatusTaskAborted {
		t.Fatalf("status %#x, want TASK ABORTED", res.Status)
	}
	// A device that notices the cancellation mid-I/O also ends aborted.
	e := error(context.Canceled)
	h.dev.failNext.Store(&e)
	res.Reset()
	h.tgt.Execute(context.Background(), &Command{Nexus: h.n, CDB: cdbRW10(opRead10, 0, 1, 0), ExpectedDataIn: 512}, res)
	if res.Status != StatusTaskAborted {
		t.Fatalf("status %#x, want TASK ABORTED", res.Status)
	}
}

func TestDescriptorSense(t *testing.T) {
	h := newHarness(t, nil, LUOptions{})
	// Turn on D_SENSE through MODE SELECT.
	page := h.run(cdbModeSense6(pageControl, 0, pcCurrent, true, 255), nil)
	expectGood(t, page)
	p := append([]byte(nil), page.DataIn...)
	p[0] = 0 // mode data length is reserved in MODE SELECT
	p[modeHdr6Len+2] |= controlDSense
	expectGood(t, h.run(cdbModeSelect6(byte(len(p))), p))
	r := h.run(cdbRW10(opRead10, 0, 1, 0x20), nil)
	s := expectSense(t, r, SenseIllegalRequest, ASCInvalidFieldInCDB)
	if !s.Descriptor || r.Sense[0] != senseDescriptorCurrent {
		t.Fatalf("want descriptor format, got %x", r.Sense)
	}
	if !s.SKSValid || s.SKS != [3]byte{0xCF, 0, 1} {
		t.Fatalf("sks %x", s.SKS)
	}
}

func TestExpectedDataInTruncates(t *testing.T) {
	h := newHarness(t, nil, LUOptions{})
	res := &Result{}
	h.tgt.Execute(context.Background(), &Command{Nexus: h.n, CDB: cdbRW10(opRead10, 0, 2, 0), ExpectedDataIn: 512}, res)
	expectGood(t, res)
	if len(res.DataIn) != 512 || res.TransferLength() != 1024 {
		t.Fatalf("data-in %d transfer length %d", len(res.DataIn), res.TransferLength())
	}
}

// TestReadIgnoresDataOut: a READ that the initiator flagged as a write
// (and so carries data-out) still succeeds, as libiscsi's Read10Invalid
// expects.
func TestReadIgnoresDataOut(t *testing.T) {
	h := newHarness(t, nil, LUOptions{})
	expectGood(t, h.run(cdbRW10(opRead10, 0, 1, 0), fill(512, 1)))
}

// TestWriteDataOutMismatch: a WRITE whose data-out is longer than the CDB
// asks for writes only the CDB's blocks; a shorter one writes the whole
// blocks it carries (libiscsi 1.19 Write10Residuals).
func TestWriteDataOutMismatch(t *testing.T) {
	h := newHarness(t, nil, LUOptions{WriteCache: true})
	expectGood(t, h.run(cdbRW10(opWrite10, 0, 2, 0), fill(1024, 'a')))
	expectGood(t, h.run(cdbRW10(opWrite10, 0, 1, 0), fill(1024, 'b')))
	if got := h.dev.contents(0, 2); string(got) != string(fill(512, 'b'))+string(fill(512, 'a')) {
		t.Fatal("underflow: wrote more than the CDB asked for")
	}
	expectGood(t, h.run(cdbRW10(opWrite10, 0, 2, 0), fill(1024, 'a')))
	r := h.run(cdbRW10(opWrite10, 0, 2, 0), fill(512, 'c'))
	expectGood(t, r)
	if r.TransferLength() != 1024 {
		t.Fatalf("transfer length %d", r.TransferLength())
	}
	if got := h.dev.contents(0, 2); string(got) != string(fill(512, 'c'))+string(fill(512, 'a')) {
		t.Fatal("overflow: did not write exactly the data-out blocks")
	}
	expectGood(t, h.run(cdbRW10(opWrite10, 0, 1, 0), nil)) // EDTL 0: nothing to write
	if got := h.dev.contents(0, 1); string(got) != string(fill(512, 'c')) {
		t.Fatal("empty data-out changed the medium")
	}
	// A partial last block keeps the bytes that never arrived.
	expectGood(t, h.run(cdbRW10(opWrite10, 0, 2, 0), fill(700, 'd')))
	want := string(fill(700, 'd')) + string(fill(324, 'a'))
	if got := h.dev.contents(0, 2); string(got) != want {
		t.Fatal("partial block was not merged")
	}
	expectGood(t, h.run(cdbRW10(opWriteAndVerify10, 0, 2, 0x02), fill(600, 'e')))
}
