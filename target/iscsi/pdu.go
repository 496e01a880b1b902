// Package iscsi holds the pure protocol logic of iSCSI (RFC 7143): the PDU
// codec with its digests, text key encoding and negotiation, the login
// state machine with CHAP, and discovery answers.
//
// It owns no sockets, goroutines or clocks: callers read and write bytes and
// feed this package values. It must never size a buffer from a length it
// has not checked against a negotiated or protocol limit.
package iscsi

import (
	"encoding/binary"
	"fmt"
)

// BHSLen is the length of the Basic Header Segment.
const BHSLen = 48

// Opcode is an iSCSI PDU opcode (the low six bits of byte 0).
type Opcode uint8

// Initiator opcodes (RFC 7143 section 11.1.1).
const (
	OpNOPOut       Opcode = 0x00
	OpSCSICommand  Opcode = 0x01
	OpTaskMgmtReq  Opcode = 0x02
	OpLoginReq     Opcode = 0x03
	OpTextReq      Opcode = 0x04
	OpSCSIDataOut  Opcode = 0x05
	OpLogoutReq    Opcode = 0x06
	OpSNACKReq     Opcode = 0x10
	OpVendorInit1  Opcode = 0x1c
	OpVendorInitLs Opcode = 0x1e
)

// Target opcodes (RFC 7143 section 11.1.1).
const (
	OpNOPIn        Opcode = 0x20
	OpSCSIResponse Opcode = 0x21
	OpTaskMgmtResp Opcode = 0x22
	OpLoginResp    Opcode = 0x23
	OpTextResp     Opcode = 0x24
	OpSCSIDataIn   Opcode = 0x25
	OpLogoutResp   Opcode = 0x26
	OpR2T          Opcode = 0x31
	OpAsyncMsg     Opcode = 0x32
	OpReject       Opcode = 0x3f
)

func (o Opcode) String() string {
	switch o {
	case OpNOPOut:
		return "NOP-Out"
	case OpSCSICommand:
		return "SCSI Command"
	case OpTaskMgmtReq:
		return "Task Management Request"
	case OpLoginReq:
		return "Login Request"
	case OpTextReq:
		return "Text Request"
	case OpSCSIDataOut:
		return "SCSI Data-Out"
	case OpLogoutReq:
		return "Logout Request"
	case OpSNACKReq:
		return "SNACK Request"
	case OpNOPIn:
		return "NOP-In"
	case OpSCSIResponse:
		return "SCSI Response"
	case OpTaskMgmtResp:
		return "Task Management Response"
	case OpLoginResp:
		return "Login Response"
	case OpTextResp:
		return "Text Response"
	case OpSCSIDataIn:
		return "SCSI Data-In"
	case OpLogoutResp:
		return "Logout Response"
	case OpR2T:
		return "R2T"
	case OpAsyncMsg:
		return "Async Message"
	case OpReject:
		return "Reject"
	}
	return fmt.Sprintf("opcode 0x%02x", uint8(o))
}

// Byte 0 and byte 1 flag bits.
const (
	flagImmediate = 0x40 // byte 0: I bit
	opcodeMask    = 0x3f

	FlagFinal    = 0x80 // byte 1: F bit (most PDUs), T (Transit) on login
	FlagContinue = 0x40 // byte 1: C bit on login and text PDUs

	// SCSI Command, byte 1.
	FlagRead      = 0x40
	FlagWrite     = 0x20
	AttrMask      = 0x07
	FlagAck       = 0x40 // Data-In A bit
	FlagStatus    = 0x01 // Data-In S bit
	FlagOverflow  = 0x04 // Data-In / SCSI Response O bit
	FlagUnderflow = 0x02 // Data-In / SCSI Response U bit
	// SCSI Response bidirectional residual flags.
	FlagBidiOverflow  = 0x10
	FlagBidiUnderflow = 0x08
)

// ReservedITT is the Initiator Task Tag value 0xffffffff, reserved for
// PDUs that answer no task (unsolicited NOP-In, Async Message, Reject).
const ReservedITT = 0xffffffff

// Offsets of BHS fields shared by many PDUs (RFC 7143 section 11).
const (
	offDataSegLen = 5
	offLUN        = 8
	offITT        = 16
	offTTT        = 20 // also EDTL, RTT, CID, SNACK Tag by opcode
	offCmdSN      = 24 // StatSN in target PDUs
	offExpStatSN  = 28 // ExpCmdSN in target PDUs
	offMaxCmdSN   = 32
	offDataSN     = 36 // also R2TSN, ExpDataSN, RefCmdSN+4, Status-Class
	offBufOffset  = 40
	offResidual   = 44 // also Desired Data Transfer Length
	offCDB        = 32
)

// BHS is a Basic Header Segment. Accessors read and write fields in place
// so that a PDU costs no allocation to decode or build.
type BHS [BHSLen]byte

// Opcode returns the PDU opcode.
func (h *BHS) Opcode() Opcode { return Opcode(h[0] & opcodeMask) }

// SetOpcode sets the opcode and the immediate bit.
func (h *BHS) SetOpcode(op Opcode, immediate bool) {
	h[0] = byte(op) & opcodeMask
	if immediate {
		h[0] |= flagImmediate
	}
}

// Immediate reports the I bit.
func (h *BHS) Immediate() bool { return h[0]&flagImmediate != 0 }

// Flags returns byte 1 (the F bit and opcode-specific flags).
func (h *BHS) Flags() byte { return h[1] }

// SetFlags sets byte 1.
func (h *BHS) SetFlags(f byte) { h[1] = f }

// Final reports the F bit.
func (h *BHS) Final() bool { return h[1]&FlagFinal != 0 }

// Byte2 and Byte3 are opcode-specific bytes (e.g. response and status).
func (h *BHS) Byte2() byte { return h[2] }

// Byte3 is an opcode-specific byte (e.g. the SCSI status).
func (h *BHS) Byte3() byte { return h[3] }

// SetByte2 sets byte 2.
func (h *BHS) SetByte2(b byte) { h[2] = b }

// SetByte3 sets byte 3.
func (h *BHS) SetByte3(b byte) { h[3] = b }

// TotalAHSLength returns the AHS length in bytes (the field counts words).
func (h *BHS) TotalAHSLength() int { return int(h[4]) * 4 }

// DataSegmentLength returns the data segment length in bytes, without
// padding.
func (h *BHS) DataSegmentLength() uint32 {
	return uint32(h[5])<<16 | uint32(h[6])<<8 | uint32(h[7])
}

// SetDataSegmentLength sets the 24-bit data segment length.
func (h *BHS) SetDataSegmentLength(n uint32) {
	h[5], h[6], h[7] = byte(n>>16), byte(n>>8), byte(n)
}

// LUN returns bytes 8..15 as a big-endian integer (the SAM LUN structure;
// see DecodeLUN).
func (h *BHS) LUN() uint64 { return binary.BigEndian.Uint64(h[offLUN:]) }

// SetLUN sets bytes 8..15.
func (h *BHS) SetLUN(l uint64) { binary.BigEndian.PutUint64(h[offLUN:], l) }

// ITT returns the Initiator Task Tag.
func (h *BHS) ITT() uint32 { return h.u32(offITT) }

// SetITT sets the Initiator Task Tag.
func (h *BHS) SetITT(v uint32) { h.put32(offITT, v) }

// Field32 returns the big-endian 32-bit field at byte offset off.
func (h *BHS) Field32(off int) uint32 { return h.u32(off) }

// SetField32 sets the big-endian 32-bit field at byte offset off.
func (h *BHS) SetField32(off int, v uint32) { h.put32(off, v) }

func (h *BHS) u32(off int) uint32 { return binary.BigEndian.Uint32(h[off:]) }

func (h *BHS) put32(off int, v uint32) { binary.BigEndian.PutUint32(h[off:], v) }

// Named 32-bit fields. The same offset has different names in different
// PDUs; each accessor names the PDUs it applies to.

// TTT is the Target Transfer Tag (NOP, Data, R2T, Text, SNACK).
func (h *BHS) TTT() uint32 { return h.u32(offTTT) }

// SetTTT sets the Target Transfer Tag.
func (h *BHS) SetTTT(v uint32) { h.put32(offTTT, v) }

// ExpectedDataTransferLength is bytes 20..23 of a SCSI Command.
func (h *BHS) ExpectedDataTransferLength() uint32 { return h.u32(offTTT) }

// SetExpectedDataTransferLength sets bytes 20..23 of a SCSI Command.
func (h *BHS) SetExpectedDataTransferLength(v uint32) { h.put32(offTTT, v) }

// ReferencedTaskTag is bytes 20..23 of a Task Management Request.
func (h *BHS) ReferencedTaskTag() uint32 { return h.u32(offTTT) }

// CID returns the connection ID at bytes 20..21 (Login and Logout
// Requests).
func (h *BHS) CID() uint16 { return binary.BigEndian.Uint16(h[20:]) }

// SetCID sets bytes 20..21.
func (h *BHS) SetCID(v uint16) { binary.BigEndian.PutUint16(h[20:], v) }

// CmdSN is bytes 24..27 of an initiator PDU.
func (h *BHS) CmdSN() uint32 { return h.u32(offCmdSN) }

// SetCmdSN sets bytes 24..27.
func (h *BHS) SetCmdSN(v uint32) { h.put32(offCmdSN, v) }

// StatSN is bytes 24..27 of a target PDU.
func (h *BHS) StatSN() uint32 { return h.u32(offCmdSN) }

// SetStatSN sets bytes 24..27.
func (h *BHS) SetStatSN(v uint32) { h.put32(offCmdSN, v) }

// ExpStatSN is bytes 28..31 of an initiator PDU.
func (h *BHS) ExpStatSN() uint32 { return h.u32(offExpStatSN) }

// SetExpStatSN sets bytes 28..31.
func (h *BHS) SetExpStatSN(v uint32) { h.put32(offExpStatSN, v) }

// ExpCmdSN is bytes 28..31 of a target PDU.
func (h *BHS) ExpCmdSN() uint32 { return h.u32(offExpStatSN) }

// SetExpCmdSN sets bytes 28..31.
func (h *BHS) SetExpCmdSN(v uint32) { h.put32(offExpStatSN, v) }

// MaxCmdSN is bytes 32..35 of a target PDU.
func (h *BHS) MaxCmdSN() uint32 { return h.u32(offMaxCmdSN) }

// SetMaxCmdSN sets bytes 32..35.
func (h *BHS) SetMaxCmdSN(v uint32) { h.put32(offMaxCmdSN, v) }

// RefCmdSN is bytes 32..35 of a Task Management Request.
func (h *BHS) RefCmdSN() uint32 { return h.u32(offMaxCmdSN) }

// DataSN is bytes 36..39 of Data-In/Data-Out (R2TSN in an R2T, ExpDataSN
// in a SCSI Response or Task Management Request).
func (h *BHS) DataSN() uint32 { return h.u32(offDataSN) }

// SetDataSN sets bytes 36..39.
func (h *BHS) SetDataSN(v uint32) { h.put32(offDataSN, v) }

// BufferOffset is bytes 40..43 of Data-In, Data-Out and R2T.
func (h *BHS) BufferOffset() uint32 { return h.u32(offBufOffset) }

// SetBufferOffset sets bytes 40..43.
func (h *BHS) SetBufferOffset(v uint32) { h.put32(offBufOffset, v) }

// ResidualCount is bytes 44..47 of Data-In and SCSI Response (Desired Data
// Transfer Length in an R2T).
func (h *BHS) ResidualCount() uint32 { return h.u32(offResidual) }

// SetResidualCount sets bytes 44..47.
func (h *BHS) SetResidualCount(v uint32) { h.put32(offResidual, v) }

// CDB returns the 16-byte CDB field of a SCSI Command (bytes 32..47).
func (h *BHS) CDB() []byte { return h[offCDB : offCDB+16] }

// ISID returns the 6-byte initiator session ID of a login PDU as an
// integer.
func (h *BHS) ISID() uint64 {
	var b [8]byte
	copy(b[2:], h[8:14])
	return binary.BigEndian.Uint64(b[:])
}

// SetISID sets bytes 8..13 from the low 48 bits of v.
func (h *BHS) SetISID(v uint64) {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	copy(h[8:14], b[2:])
}

// TSIH returns bytes 14..15 of a login PDU.
func (h *BHS) TSIH() uint16 { return binary.BigEndian.Uint16(h[14:]) }

// SetTSIH sets bytes 14..15.
func (h *BHS) SetTSIH(v uint16) { binary.BigEndian.PutUint16(h[14:], v) }

// Login stage fields (byte 1 of login request/response).
const (
	loginCSGShift = 2
	loginStageMsk = 0x3
)

// Login stages (RFC 7143 section 11.12.3).
type Stage uint8

// Login stages.
const (
	StageSecurity    Stage = 0
	StageOperational Stage = 1
	StageFullFeature Stage = 3
)

// CSG returns the current stage of a login PDU.
func (h *BHS) CSG() Stage { return Stage(h[1] >> loginCSGShift & loginStageMsk) }

// NSG returns the next stage of a login PDU.
func (h *BHS) NSG() Stage { return Stage(h[1] & loginStageMsk) }

// Transit reports the T bit of a login PDU.
func (h *BHS) Transit() bool { return h[1]&FlagFinal != 0 }

// Continue reports the C bit of a login or text PDU.
func (h *BHS) Continue() bool { return h[1]&FlagContinue != 0 }

// SetLoginStages sets byte 1 of a login PDU.
func (h *BHS) SetLoginStages(transit, cont bool, csg, nsg Stage) {
	var b byte
	if transit {
		b |= FlagFinal
	}
	if cont {
		b |= FlagContinue
	}
	b |= byte(csg&loginStageMsk) << loginCSGShift
	if transit {
		b |= byte(nsg & loginStageMsk)
	}
	h[1] = b
}

// PDU is one iSCSI PDU. AHS and Data alias buffers owned by whoever filled
// the PDU (the Reader reuses them on the next read).
type PDU struct {
	BHS
	// AHS holds the additional header segments, without the header digest.
	AHS []byte
	// Data is the data segment without padding.
	Data []byte
}

// Reset clears the header and drops AHS and Data, keeping capacity.
func (p *PDU) Reset() {
	p.BHS = BHS{}
	p.AHS = p.AHS[:0]
	p.Data = p.Data[:0]
}

// pad4 returns how many bytes pad n up to a multiple of four.
func pad4(n int) int { return (4 - n&3) & 3 }

// LUN addressing (SAM-5 section 4.7). The transport sees an 8-byte LUN
// field; the SCSI layer sees a LUN number.

// EncodeLUN returns the 8-byte LUN field for LUN number n, using peripheral
// device addressing below 256 and flat space addressing up to 16383.
func EncodeLUN(n uint64) uint64 {
	if n < 256 {
		return n << 48
	}
	return (0x4000 | n&0x3fff) << 48
}

// DecodeLUN returns the LUN number of an 8-byte LUN field. It understands
// peripheral device and flat space addressing of a single level; anything
// else is returned as an impossible LUN number (the field itself) so that
// the SCSI layer answers LOGICAL UNIT NOT SUPPORTED.
func DecodeLUN(field uint64) uint64 {
	if field&0x0000ffffffffffff != 0 {
		return field
	}
	first := field >> 48
	switch first >> 14 {
	case 0: // peripheral device addressing; bus identifier must be 0
		if first&0x3f00 != 0 {
			return field
		}
		return first & 0xff
	case 1: // flat space addressing
		return first & 0x3fff
	}
	return field
}
