package scsi

// Operation codes (SPC-4 / SBC-4).
const (
	opTestUnitReady        = 0x00
	opRequestSense         = 0x03
	opRead6                = 0x08
	opWrite6               = 0x0A
	opInquiry              = 0x12
	opModeSelect6          = 0x15
	opReserve6             = 0x16
	opRelease6             = 0x17
	opModeSense6           = 0x1A
	opStartStopUnit        = 0x1B
	opPreventAllow         = 0x1E
	opReadCapacity10       = 0x25
	opRead10               = 0x28
	opWrite10              = 0x2A
	opWriteAndVerify10     = 0x2E
	opVerify10             = 0x2F
	opPreFetch10           = 0x34
	opSyncCache10          = 0x35
	opWriteSame10          = 0x41
	opUnmap                = 0x42
	opModeSelect10         = 0x55
	opReserve10            = 0x56
	opRelease10            = 0x57
	opModeSense10          = 0x5A
	opPersistentReserveIn  = 0x5E
	opPersistentReserveOut = 0x5F
	opExtendedCopy         = 0x83
	opReceiveCopyResults   = 0x84
	opRead16               = 0x88
	opCompareAndWrite      = 0x89
	opWrite16              = 0x8A
	opORWrite16            = 0x8B
	opWriteAndVerify16     = 0x8E
	opVerify16             = 0x8F
	opPreFetch16           = 0x90
	opSyncCache16          = 0x91
	opWriteSame16          = 0x93
	opWriteAtomic16        = 0x9C
	opServiceActionIn16    = 0x9E
	opReportLUNs           = 0xA0
	opMaintenanceIn        = 0xA3
	opRead12               = 0xA8
	opWrite12              = 0xAA
	opWriteAndVerify12     = 0xAE
	opVerify12             = 0xAF
)

// Service actions.
const (
	saReadCapacity16 = 0x10
	saGetLBAStatus   = 0x12

	saReportTargetPortGroups = 0x0A
	saReportSupportedOpcodes = 0x0C
	saReportSupportedTMFs    = 0x0D

	saXCopyLID1 = 0x00 // EXTENDED COPY (LID1) has no service action field in use

	saCopyStatus         = 0x00
	saOperatingParams    = 0x03
	saMaskServiceAction5 = 0x1F
)

// cdbLength returns the CDB length implied by the group code of op
// (SPC-4 4.2.5.1), 0 for vendor-specific or reserved groups.
func cdbLength(op byte) int {
	switch op >> 5 {
	case 0:
		return 6
	case 1, 2:
		return 10
	case 4:
		return 16
	case 5:
		return 12
	}
	return 0
}
