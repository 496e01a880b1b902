package scsi

import (
	"encoding/binary"
	"fmt"
)

// SenseKey is the sense key of a CHECK CONDITION (SPC-4 table 48).
type SenseKey uint8

// Sense keys.
const (
	SenseNoSense        SenseKey = 0x00
	SenseRecoveredError SenseKey = 0x01
	SenseNotReady       SenseKey = 0x02
	SenseMediumError    SenseKey = 0x03
	SenseHardwareError  SenseKey = 0x04
	SenseIllegalRequest SenseKey = 0x05
	SenseUnitAttention  SenseKey = 0x06
	SenseDataProtect    SenseKey = 0x07
	SenseBlankCheck     SenseKey = 0x08
	SenseAbortedCommand SenseKey = 0x0B
	SenseMiscompare     SenseKey = 0x0E
)

// String returns the sense key's SPC name.
func (k SenseKey) String() string {
	switch k {
	case SenseNoSense:
		return "NO SENSE"
	case SenseRecoveredError:
		return "RECOVERED ERROR"
	case SenseNotReady:
		return "NOT READY"
	case SenseMediumError:
		return "MEDIUM ERROR"
	case SenseHardwareError:
		return "HARDWARE ERROR"
	case SenseIllegalRequest:
		return "ILLEGAL REQUEST"
	case SenseUnitAttention:
		return "UNIT ATTENTION"
	case SenseDataProtect:
		return "DATA PROTECT"
	case SenseBlankCheck:
		return "BLANK CHECK"
	case SenseAbortedCommand:
		return "ABORTED COMMAND"
	case SenseMiscompare:
		return "MISCOMPARE"
	}
	return fmt.Sprintf("sense key 0x%x", uint8(k))
}

// ASC is an additional sense code and qualifier packed as ASC<<8 | ASCQ.
type ASC uint16

// Additional sense codes (SPC-4 table 49) this layer reports.
const (
	ASCNoAdditionalSense            ASC = 0x0000
	ASCWriteError                   ASC = 0x0C00
	ASCCopyTargetNotReachable       ASC = 0x0D02
	ASCInvalidFieldInIU             ASC = 0x0E03
	ASCUnrecoveredReadError         ASC = 0x1100
	ASCParameterListLengthError     ASC = 0x1A00
	ASCMiscompareDuringVerify       ASC = 0x1D00
	ASCInvalidOpcode                ASC = 0x2000
	ASCLBAOutOfRange                ASC = 0x2100
	ASCInvalidFieldInCDB            ASC = 0x2400
	ASCLUNotSupported               ASC = 0x2500
	ASCInvalidFieldInParameterList  ASC = 0x2600
	ASCParameterValueInvalid        ASC = 0x2602
	ASCInvalidReleaseOfPR           ASC = 0x2604
	ASCTooManyTargetDescriptors     ASC = 0x2606
	ASCUnsupportedTargetDescriptor  ASC = 0x2607
	ASCTooManySegmentDescriptors    ASC = 0x2608
	ASCUnsupportedSegmentDescriptor ASC = 0x2609
	ASCInlineDataLengthExceeded     ASC = 0x260B
	ASCWriteProtected               ASC = 0x2700
	ASCSpaceAllocationFailedWP      ASC = 0x2707
	ASCPowerOnResetOccurred         ASC = 0x2900
	ASCBusDeviceResetOccurred       ASC = 0x2903
	ASCITNexusLossOccurred          ASC = 0x2907
	ASCModeParametersChanged        ASC = 0x2A01
	ASCReservationsPreempted        ASC = 0x2A03
	ASCReservationsReleased         ASC = 0x2A04
	ASCRegistrationsPreempted       ASC = 0x2A05
	ASCCapacityDataChanged          ASC = 0x2A09
	ASCCommandsCleared              ASC = 0x2F00
	ASCSavingParametersNotSupported ASC = 0x3900
	ASCReportedLUNsDataChanged      ASC = 0x3F0E
	ASCInternalTargetFailure        ASC = 0x4400
	ASCInsufficientRegistrationRes  ASC = 0x5504
	ASCMediumRemovalPreventedBySelf ASC = 0x5302
)

// Sense data layout constants (SPC-4 4.5).
const (
	senseFixedCurrent      = 0x70
	senseDescriptorCurrent = 0x72
	senseFixedLen          = 18
	senseFixedAddLen       = senseFixedLen - 8
	senseValidBit          = 0x80

	senseDescInformation = 0x00
	senseDescSKS         = 0x02
	senseDescInfoLen     = 0x0A
	senseDescSKSLen      = 0x06

	sksValid        = 0x80
	sksCommandData  = 0x40 // C/D: the field is in the CDB
	sksBitPtrValid  = 0x08
	sksBitPtrMask   = 0x07
	sksFieldPointer = 1 // offset of the field pointer within the SKS bytes
)

// checkCondition describes the outcome of one command before it is encoded.
// Its zero value means GOOD. It is a value type so that returning one never
// allocates.
type checkCondition struct {
	status    Status
	key       SenseKey
	asc       ASC
	info      uint64
	infoValid bool
	sks       [3]byte
	sksValid  bool
}

// ok reports whether c is GOOD.
func (c checkCondition) ok() bool { return c.status == StatusGood }

var good = checkCondition{}

// newCheck returns a CHECK CONDITION with key and asc.
func newCheck(key SenseKey, asc ASC) checkCondition {
	return checkCondition{status: StatusCheckCondition, key: key, asc: asc}
}

// statusOnly returns a non-GOOD status without sense data.
func statusOnly(s Status) checkCondition { return checkCondition{status: s} }

// invalidCDB returns ILLEGAL REQUEST / INVALID FIELD IN CDB pointing at byte
// off of the CDB, bit bit (bit < 0: no bit pointer).
func invalidCDB(off int, bit int) checkCondition {
	c := newCheck(SenseIllegalRequest, ASCInvalidFieldInCDB)
	c.sksValid = true
	c.sks[0] = sksValid | sksCommandData
	if bit >= 0 {
		c.sks[0] |= sksBitPtrValid | byte(bit)&sksBitPtrMask
	}
	binary.BigEndian.PutUint16(c.sks[sksFieldPointer:], uint16(off))
	return c
}

// invalidParam returns ILLEGAL REQUEST / INVALID FIELD IN PARAMETER LIST
// pointing at byte off of the parameter data.
func invalidParam(off int, bit int) checkCondition {
	c := newCheck(SenseIllegalRequest, ASCInvalidFieldInParameterList)
	c.sksValid = true
	c.sks[0] = sksValid
	if bit >= 0 {
		c.sks[0] |= sksBitPtrValid | byte(bit)&sksBitPtrMask
	}
	binary.BigEndian.PutUint16(c.sks[sksFieldPointer:], uint16(off))
	return c
}

func illegal(asc ASC) checkCondition { return newCheck(SenseIllegalRequest, asc) }

var (
	errInvalidOpcode   = illegal(ASCInvalidOpcode)
	errLBAOutOfRange   = illegal(ASCLBAOutOfRange)
	errParamListLength = illegal(ASCParameterListLengthError)
	errLUNotSupported  = illegal(ASCLUNotSupported)
	errInvalidIU       = illegal(ASCInvalidFieldInIU)
	errWriteProtected  = newCheck(SenseDataProtect, ASCWriteProtected)
	errConflict        = statusOnly(StatusReservationConflict)
	errAborted         = statusOnly(StatusTaskAborted)
)

// withInfo returns c with the INFORMATION field set.
func (c checkCondition) withInfo(v uint64) checkCondition {
	c.info = v
	c.infoValid = true
	return c
}

// encodeSense writes c as sense data into buf (at least 252 bytes) in
// descriptor format when desc is set, fixed format otherwise, and returns
// the used part.
func encodeSense(buf []byte, c checkCondition, desc bool) []byte {
	if desc {
		n := 8
		clear(buf[:8])
		buf[0] = senseDescriptorCurrent
		buf[1] = byte(c.key)
		buf[2] = byte(c.asc >> 8)
		buf[3] = byte(c.asc)
		if c.infoValid {
			d := buf[n : n+2+senseDescInfoLen]
			clear(d)
			d[0] = senseDescInformation
			d[1] = senseDescInfoLen
			d[2] = senseValidBit
			binary.BigEndian.PutUint64(d[4:], c.info)
			n += len(d)
		}
		if c.sksValid {
			d := buf[n : n+2+senseDescSKSLen]
			clear(d)
			d[0] = senseDescSKS
			d[1] = senseDescSKSLen
			copy(d[4:7], c.sks[:])
			n += len(d)
		}
		buf[7] = byte(n - 8)
		return buf[:n]
	}
	b := buf[:senseFixedLen]
	clear(b)
	b[0] = senseFixedCurrent
	b[2] = byte(c.key)
	if c.infoValid {
		b[0] |= senseValidBit
		// Fixed format only has room for 32 bits of INFORMATION.
		binary.BigEndian.PutUint32(b[3:7], uint32(c.info))
	}
	b[7] = senseFixedAddLen
	b[12] = byte(c.asc >> 8)
	b[13] = byte(c.asc)
	if c.sksValid {
		copy(b[15:18], c.sks[:])
	}
	return b
}

// SenseInfo is decoded sense data, for transports and tests.
type SenseInfo struct {
	Key        SenseKey
	ASC        ASC
	Info       uint64
	InfoValid  bool
	SKS        [3]byte
	SKSValid   bool
	Descriptor bool
}

// ParseSense decodes fixed or descriptor format sense data. ok is false
// when b is not sense data this package understands.
func ParseSense(b []byte) (s SenseInfo, ok bool) {
	if len(b) < 8 {
		return s, false
	}
	switch b[0] &^ senseValidBit {
	case senseFixedCurrent, senseFixedCurrent + 1:
		if len(b) < 14 {
			return s, false
		}
		s.Key = SenseKey(b[2] & 0x0F)
		s.ASC = ASC(binary.BigEndian.Uint16(b[12:14]))
		if b[0]&senseValidBit != 0 {
			s.InfoValid = true
			s.Info = uint64(binary.BigEndian.Uint32(b[3:7]))
		}
		if len(b) >= 18 && b[15]&sksValid != 0 {
			s.SKSValid = true
			copy(s.SKS[:], b[15:18])
		}
		return s, true
	case senseDescriptorCurrent, senseDescriptorCurrent + 1:
		s.Descriptor = true
		s.Key = SenseKey(b[1] & 0x0F)
		s.ASC = ASC(binary.BigEndian.Uint16(b[2:4]))
		end := 8 + int(b[7])
		if end > len(b) {
			end = len(b)
		}
		for i := 8; i+2 <= end; {
			typ, l := b[i], int(b[i+1])
			if i+2+l > end {
				break
			}
			d := b[i+2 : i+2+l]
			switch {
			case typ == senseDescInformation && l >= senseDescInfoLen:
				s.InfoValid = d[0]&senseValidBit != 0
				s.Info = binary.BigEndian.Uint64(d[2:10])
			case typ == senseDescSKS && l >= senseDescSKSLen:
				s.SKSValid = d[2]&sksValid != 0
				copy(s.SKS[:], d[2:5])
			}
			i += 2 + l
		}
		return s, true
	}
	return s, false
}
