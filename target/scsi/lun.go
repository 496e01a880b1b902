package scsi

import "encoding/binary"

// LUN addressing (SAM-5 4.7). The LUNs this package takes and reports are
// plain numbers: 0..16383 for logical units, and WellKnownLUNReportLUNs for
// the REPORT LUNS well-known logical unit. A transport turns the 8-byte
// LUN field of its PDUs into such a number with DecodeLUN.
const (
	// WellKnownLUNReportLUNs is the REPORT LUNS well-known logical unit
	// (W-LUN C101h) as DecodeLUN returns it.
	WellKnownLUNReportLUNs uint64 = 0xC101

	maxPeripheralLUN = 256
	maxFlatLUN       = 1 << 14

	lunAddrPeripheral = 0x00
	lunAddrFlat       = 0x40
	lunAddrWellKnown  = 0xC1
	lunAddrMethodMask = 0xC0

	wellKnownReportLUNs = 0x01
)

// EncodeLUN returns the 8-byte SAM LUN structure for lun: peripheral device
// addressing below 256, flat space addressing below 16384, and the well
// known REPORT LUNS LU for WellKnownLUNReportLUNs.
func EncodeLUN(lun uint64) [8]byte {
	var b [8]byte
	switch {
	case lun == WellKnownLUNReportLUNs:
		b[0], b[1] = lunAddrWellKnown, wellKnownReportLUNs
	case lun < maxPeripheralLUN:
		b[1] = byte(lun)
	default:
		binary.BigEndian.PutUint16(b[:], uint16(lun&(maxFlatLUN-1))|lunAddrFlat<<8)
	}
	return b
}

// DecodeLUN is the inverse of EncodeLUN for the first level of a LUN
// structure. Any other addressing is returned as the raw 64-bit value, which
// no logical unit uses (commands to it get LOGICAL UNIT NOT SUPPORTED).
func DecodeLUN(b [8]byte) uint64 {
	raw := binary.BigEndian.Uint64(b[:])
	if binary.BigEndian.Uint64(b[:])&0x0000FFFFFFFFFFFF != 0 {
		return raw | 1<<63
	}
	switch b[0] & lunAddrMethodMask {
	case lunAddrPeripheral:
		if b[0] == 0 {
			return uint64(b[1])
		}
	case lunAddrFlat:
		return uint64(binary.BigEndian.Uint16(b[:]) & (maxFlatLUN - 1))
	}
	if b[0] == lunAddrWellKnown && b[1] == wellKnownReportLUNs {
		return WellKnownLUNReportLUNs
	}
	return raw | 1<<63
}

// wellKnownReportLUNsRaw is the W-LUN as a raw 8-byte LUN field, for
// transports that pass undecoded fields through.
const wellKnownReportLUNsRaw uint64 = lunAddrWellKnown<<56 | wellKnownReportLUNs<<48

// isReportLUNsWLUN reports whether lun names the REPORT LUNS well-known
// LU, decoded or raw.
func isReportLUNsWLUN(lun uint64) bool {
	return lun == WellKnownLUNReportLUNs || lun == wellKnownReportLUNsRaw
}
