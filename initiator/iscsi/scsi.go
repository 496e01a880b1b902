package iscsi

import (
	"context"
	"encoding/binary"
	"fmt"
	"strings"

	wire "github.com/vbs-storage/vbs/target/iscsi"
	"github.com/vbs-storage/vbs/target/scsi"
)

// Status is a SCSI status byte; the values and names are the target's
// (package target/scsi), so both sides of a test speak the same type.
type Status = scsi.Status

// SCSI status values.
const (
	StatusGood                = scsi.StatusGood
	StatusCheckCondition      = scsi.StatusCheckCondition
	StatusConditionMet        = scsi.StatusConditionMet
	StatusBusy                = scsi.StatusBusy
	StatusReservationConflict = scsi.StatusReservationConflict
	StatusTaskSetFull         = scsi.StatusTaskSetFull
	StatusACAActive           = scsi.StatusACAActive
	StatusTaskAborted         = scsi.StatusTaskAborted
)

// SenseKey is the sense key of sense data (scsi.SenseKey).
type SenseKey = scsi.SenseKey

// Sense keys.
const (
	SenseNoSense        = scsi.SenseNoSense
	SenseRecoveredError = scsi.SenseRecoveredError
	SenseNotReady       = scsi.SenseNotReady
	SenseMediumError    = scsi.SenseMediumError
	SenseHardwareError  = scsi.SenseHardwareError
	SenseIllegalRequest = scsi.SenseIllegalRequest
	SenseUnitAttention  = scsi.SenseUnitAttention
	SenseDataProtect    = scsi.SenseDataProtect
	SenseBlankCheck     = scsi.SenseBlankCheck
	SenseAbortedCommand = scsi.SenseAbortedCommand
	SenseMiscompare     = scsi.SenseMiscompare
)

// Operation codes and service actions the convenience methods send
// (SPC-4, SBC-4).
const (
	opTestUnitReady    = 0x00
	opInquiry          = 0x12
	opSyncCache10      = 0x35
	opUnmap            = 0x42
	opRead16           = 0x88
	opWrite16          = 0x8a
	opServiceActionIn  = 0x9e
	opReportLUNs       = 0xa0
	saReadCapacity16   = 0x10
	cdb6Len            = 6
	cdb10Len           = 10
	cdb12Len           = 12
	cdb16Len           = 16
	inquiryEVPD        = 0x01
	inquiryStdLen      = 96
	inquiryVPDMax      = 0xff + 4
	readCap16Len       = 32
	readCap16LBPME     = 0x80 // byte 14: logical block provisioning enabled
	reportLUNsInitLen  = 16 + 8*256
	reportLUNsHdrLen   = 8
	reportLUNsMaxLen   = 1 << 20
	unmapHeaderLen     = 8
	unmapDescLen       = 16
	unmapMaxDescs      = (1<<16 - unmapHeaderLen) / unmapDescLen
	cdbFUA             = 0x08 // READ/WRITE(16) byte 1
	maxTransferBlocks  = 1<<32 - 1
	stdVendorOff       = 8
	stdProductOff      = 16
	stdRevisionOff     = 32
	stdRevisionEnd     = 36
	peripheralTypeMask = 0x1f
)

// InquiryData is the standard INQUIRY data we decode.
type InquiryData struct {
	PeripheralType uint8
	Vendor         string
	Product        string
	Revision       string
	// Raw is the data the target returned.
	Raw []byte
}

// Inquiry sends a standard INQUIRY to lun.
func (s *Session) Inquiry(ctx context.Context, lun uint64) (*InquiryData, error) {
	buf := make([]byte, inquiryStdLen)
	cdb := [cdb6Len]byte{0: opInquiry}
	binary.BigEndian.PutUint16(cdb[3:], inquiryStdLen)
	n, err := s.run(ctx, lun, cdb[:], nil, buf)
	if err != nil {
		return nil, fmt.Errorf("inquiry lun %d: %w", lun, err)
	}
	buf = buf[:n]
	d := &InquiryData{Raw: buf}
	if n > 0 {
		d.PeripheralType = buf[0] & peripheralTypeMask
	}
	if n >= stdRevisionEnd {
		d.Vendor = strings.TrimSpace(string(buf[stdVendorOff:stdProductOff]))
		d.Product = strings.TrimSpace(string(buf[stdProductOff:stdRevisionOff]))
		d.Revision = strings.TrimSpace(string(buf[stdRevisionOff:stdRevisionEnd]))
	}
	return d, nil
}

// InquiryVPD returns VPD page of lun.
func (s *Session) InquiryVPD(ctx context.Context, lun uint64, page uint8) ([]byte, error) {
	buf := make([]byte, inquiryVPDMax)
	cdb := [cdb6Len]byte{0: opInquiry, 1: inquiryEVPD, 2: page}
	binary.BigEndian.PutUint16(cdb[3:], inquiryVPDMax)
	n, err := s.run(ctx, lun, cdb[:], nil, buf)
	if err != nil {
		return nil, fmt.Errorf("inquiry vpd 0x%02x lun %d: %w", page, lun, err)
	}
	return buf[:n], nil
}

// TestUnitReady sends TEST UNIT READY.
func (s *Session) TestUnitReady(ctx context.Context, lun uint64) error {
	cdb := [cdb6Len]byte{0: opTestUnitReady}
	if _, err := s.run(ctx, lun, cdb[:], nil, nil); err != nil {
		return fmt.Errorf("test unit ready lun %d: %w", lun, err)
	}
	return nil
}

// Capacity is what READ CAPACITY(16) reports.
type Capacity struct {
	// Blocks is the number of logical blocks (last LBA + 1).
	Blocks    uint64
	BlockSize uint32
	// ThinProvisioned reports logical block provisioning management
	// (LBPME): the LUN supports UNMAP.
	ThinProvisioned bool
}

// ReadCapacity16 sends READ CAPACITY(16).
func (s *Session) ReadCapacity16(ctx context.Context, lun uint64) (Capacity, error) {
	var buf [readCap16Len]byte
	cdb := [cdb16Len]byte{0: opServiceActionIn, 1: saReadCapacity16}
	binary.BigEndian.PutUint32(cdb[10:], readCap16Len)
	n, err := s.run(ctx, lun, cdb[:], nil, buf[:])
	if err != nil {
		return Capacity{}, fmt.Errorf("read capacity(16) lun %d: %w", lun, err)
	}
	if n < 12 {
		return Capacity{}, fmt.Errorf("read capacity(16) lun %d: %w: %d bytes", lun, ErrProtocol, n)
	}
	return Capacity{
		Blocks:          binary.BigEndian.Uint64(buf[0:]) + 1,
		BlockSize:       binary.BigEndian.Uint32(buf[8:]),
		ThinProvisioned: buf[14]&readCap16LBPME != 0,
	}, nil
}

// rwCDB16 builds a READ(16) or WRITE(16) CDB.
func rwCDB16(cdb *[cdb16Len]byte, op byte, lba uint64, blocks uint32, fua bool) {
	*cdb = [cdb16Len]byte{0: op}
	if fua {
		cdb[1] = cdbFUA
	}
	binary.BigEndian.PutUint64(cdb[2:], lba)
	binary.BigEndian.PutUint32(cdb[10:], blocks)
}

func blocksOf(n int, blockSize uint32) (uint32, error) {
	if blockSize == 0 || n%int(blockSize) != 0 || uint64(n)/uint64(blockSize) > maxTransferBlocks {
		return 0, fmt.Errorf("%w: %d bytes is not a whole number of %d-byte blocks", ErrCDB, n, blockSize)
	}
	return uint32(n / int(blockSize)), nil
}

// Read16 reads len(buf)/blockSize blocks at lba into buf with READ(16).
func (s *Session) Read16(ctx context.Context, lun, lba uint64, blockSize uint32, buf []byte) error {
	blocks, err := blocksOf(len(buf), blockSize)
	if err != nil {
		return err
	}
	var cdb [cdb16Len]byte
	rwCDB16(&cdb, opRead16, lba, blocks, false)
	n, err := s.run(ctx, lun, cdb[:], nil, buf)
	if err != nil {
		return fmt.Errorf("read(16) lun %d lba %d: %w", lun, lba, err)
	}
	if n != len(buf) {
		return fmt.Errorf("read(16) lun %d lba %d: %w: %d of %d bytes", lun, lba, ErrProtocol, n, len(buf))
	}
	return nil
}

// Write16 writes buf at lba with WRITE(16); fua asks for force unit
// access.
func (s *Session) Write16(ctx context.Context, lun, lba uint64, blockSize uint32, buf []byte, fua bool) error {
	blocks, err := blocksOf(len(buf), blockSize)
	if err != nil {
		return err
	}
	var cdb [cdb16Len]byte
	rwCDB16(&cdb, opWrite16, lba, blocks, fua)
	if _, err := s.run(ctx, lun, cdb[:], buf, nil); err != nil {
		return fmt.Errorf("write(16) lun %d lba %d: %w", lun, lba, err)
	}
	return nil
}

// SynchronizeCache flushes the whole LUN with SYNCHRONIZE CACHE(10).
func (s *Session) SynchronizeCache(ctx context.Context, lun uint64) error {
	cdb := [cdb10Len]byte{0: opSyncCache10}
	if _, err := s.run(ctx, lun, cdb[:], nil, nil); err != nil {
		return fmt.Errorf("synchronize cache lun %d: %w", lun, err)
	}
	return nil
}

// ReportLUNs returns the LUN numbers the target reports.
func (s *Session) ReportLUNs(ctx context.Context) ([]uint64, error) {
	size := uint32(reportLUNsInitLen)
	for {
		buf := make([]byte, size)
		cdb := [cdb12Len]byte{0: opReportLUNs}
		binary.BigEndian.PutUint32(cdb[6:], size)
		n, err := s.run(ctx, 0, cdb[:], nil, buf)
		if err != nil {
			return nil, fmt.Errorf("report luns: %w", err)
		}
		if n < reportLUNsHdrLen {
			return nil, fmt.Errorf("report luns: %w: %d bytes", ErrProtocol, n)
		}
		listLen := binary.BigEndian.Uint32(buf)
		need := uint64(listLen) + reportLUNsHdrLen
		if need > uint64(size) && need <= reportLUNsMaxLen {
			size = uint32(need)
			continue
		}
		end := min(uint64(n), need)
		var luns []uint64
		for off := uint64(reportLUNsHdrLen); off+8 <= end; off += 8 {
			luns = append(luns, wire.DecodeLUN(binary.BigEndian.Uint64(buf[off:])))
		}
		return luns, nil
	}
}

// Extent is a run of blocks for Unmap.
type Extent struct {
	LBA    uint64
	Blocks uint32
}

// Unmap deallocates extents with UNMAP.
func (s *Session) Unmap(ctx context.Context, lun uint64, extents []Extent) error {
	if len(extents) == 0 || len(extents) > unmapMaxDescs {
		return fmt.Errorf("%w: unmap with %d extents", ErrCDB, len(extents))
	}
	param := make([]byte, unmapHeaderLen+unmapDescLen*len(extents))
	binary.BigEndian.PutUint16(param[0:], uint16(len(param)-2))
	binary.BigEndian.PutUint16(param[2:], uint16(unmapDescLen*len(extents)))
	for i, e := range extents {
		d := param[unmapHeaderLen+i*unmapDescLen:]
		binary.BigEndian.PutUint64(d, e.LBA)
		binary.BigEndian.PutUint32(d[8:], e.Blocks)
	}
	cdb := [cdb10Len]byte{0: opUnmap}
	binary.BigEndian.PutUint16(cdb[7:], uint16(len(param)))
	if _, err := s.run(ctx, lun, cdb[:], param, nil); err != nil {
		return fmt.Errorf("unmap lun %d: %w", lun, err)
	}
	return nil
}

// run executes a command and turns a non-GOOD status into an error. It
// returns the number of data-in bytes received.
func (s *Session) run(ctx context.Context, lun uint64, cdb, out, in []byte) (int, error) {
	resp, err := s.Execute(ctx, lun, cdb, out, in)
	if err != nil {
		return 0, err
	}
	if err := resp.Err(); err != nil {
		return 0, err
	}
	return resp.DataIn, nil
}
