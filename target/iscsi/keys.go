package iscsi

import (
	"strconv"
	"strings"
)

// Text key names (RFC 7143 sections 12 and 13; RFC 7144 section 13 for
// TaskReporting and iSCSIProtocolLevel; RFC 7145 for RDMAExtensions).
const (
	KeyHeaderDigest             = "HeaderDigest"
	KeyDataDigest               = "DataDigest"
	KeyMaxConnections           = "MaxConnections"
	KeySendTargets              = "SendTargets"
	KeyTargetName               = "TargetName"
	KeyInitiatorName            = "InitiatorName"
	KeyTargetAlias              = "TargetAlias"
	KeyInitiatorAlias           = "InitiatorAlias"
	KeyTargetAddress            = "TargetAddress"
	KeyTargetPortalGroupTag     = "TargetPortalGroupTag"
	KeyInitialR2T               = "InitialR2T"
	KeyImmediateData            = "ImmediateData"
	KeyMaxRecvDataSegmentLength = "MaxRecvDataSegmentLength"
	KeyMaxBurstLength           = "MaxBurstLength"
	KeyFirstBurstLength         = "FirstBurstLength"
	KeyDefaultTime2Wait         = "DefaultTime2Wait"
	KeyDefaultTime2Retain       = "DefaultTime2Retain"
	KeyMaxOutstandingR2T        = "MaxOutstandingR2T"
	KeyDataPDUInOrder           = "DataPDUInOrder"
	KeyDataSequenceInOrder      = "DataSequenceInOrder"
	KeyErrorRecoveryLevel       = "ErrorRecoveryLevel"
	KeySessionType              = "SessionType"
	KeyTaskReporting            = "TaskReporting"
	KeyProtocolLevel            = "iSCSIProtocolLevel"
	KeyRDMAExtensions           = "RDMAExtensions"
	// Obsolete marker keys (RFC 7143 section 13.26).
	KeyIFMarker  = "IFMarker"
	KeyOFMarker  = "OFMarker"
	KeyIFMarkInt = "IFMarkInt"
	KeyOFMarkInt = "OFMarkInt"
	// Security keys (RFC 7143 section 12).
	KeyAuthMethod = "AuthMethod"
	KeyChapA      = "CHAP_A"
	KeyChapI      = "CHAP_I"
	KeyChapC      = "CHAP_C"
	KeyChapN      = "CHAP_N"
	KeyChapR      = "CHAP_R"
)

// Key values with protocol meaning.
const (
	ValueYes       = "Yes"
	ValueNo        = "No"
	ValueNone      = "None"
	ValueCRC32C    = "CRC32C"
	ValueCHAP      = "CHAP"
	ValueNormal    = "Normal"
	ValueDiscovery = "Discovery"
	ValueAll       = "All"
	// ValueRFC3720 is the only TaskReporting mode VBS offers: no
	// ResponseFence, no FastAbort (RFC 7144 section 13.1).
	ValueRFC3720 = "RFC3720"
)

// Numeric ranges of the negotiated keys (RFC 7143 section 13).
const (
	minDataSegment        = 512
	maxDataSegment        = MaxDataSegmentLength
	maxConnectionsLimit   = 65535
	maxTime2WaitOrRetain  = 3600
	maxOutstandingR2TLim  = 65535
	maxErrorRecoveryLevel = 2
	// supportedErrorRecoveryLevel is what VBS implements.
	supportedErrorRecoveryLevel = 0
	maxProtocolLevel            = 31
	// supportedProtocolLevel: 1 claims RFC 7143; VBS lacks the RFC 7144
	// features that level 2 implies.
	supportedProtocolLevel = 1
)

// RFC defaults of the operational keys (RFC 7143 section 13).
const (
	defaultMaxConnections      = 1
	defaultMaxBurstLength      = 262144
	defaultFirstBurstLength    = 65536
	defaultTime2Wait           = 2
	defaultTime2Retain         = 20
	defaultMaxOutstandingR2T   = 1
	defaultDataSegmentLength   = 8192
	defaultErrorRecoveryLevel  = 0
	defaultInitialR2T          = true
	defaultImmediateData       = true
	defaultDataPDUInOrder      = true
	defaultDataSequenceInOrder = true
)

// keyKind is how a key's value is combined (RFC 7143 section 6.2).
type keyKind uint8

const (
	kindDeclarative     keyKind = iota // no answer expected
	kindList                           // responder picks the first it supports
	kindMin                            // numeric, result = min
	kindMax                            // numeric, result = max
	kindAnd                            // boolean, result = and
	kindOr                             // boolean, result = or
	kindObsoleteMarker                 // IFMarker/OFMarker: answer No
	kindObsoleteMarkInt                // IFMarkInt/OFMarkInt: answer Reject
	kindSendTargets                    // full feature phase only, answered by SendTargets
)

// keyUse is where and by whom a key may be sent (RFC 7143 section 13,
// "Use" lines).
type keyUse uint8

const (
	// useAnyStage keys may also appear in the security stage; all others
	// except the security keys are operational keys.
	useAnyStage keyUse = 1 << iota
	// useLogin keys may be sent during login (IO, LO, ALL).
	useLogin
	// useFFP keys may be sent in full feature phase (ALL, FFPO).
	useFFP
	// useLeadingOnly keys are negotiated on the leading connection only.
	useLeadingOnly
	// useIrrelevantDiscovery keys are Irrelevant in discovery sessions.
	useIrrelevantDiscovery
	// useTargetOnly keys are sent by targets only.
	useTargetOnly
)

// keyDef describes one known key.
type keyDef struct {
	kind     keyKind
	use      keyUse
	min, max uint64 // range of numeric keys
}

// lookupKey returns the definition of a known non-security key.
func lookupKey(name string) (keyDef, bool) {
	const (
		lo   = useLogin | useLeadingOnly
		loIr = lo | useIrrelevantDiscovery
	)
	switch name {
	case KeyHeaderDigest, KeyDataDigest:
		return keyDef{kind: kindList, use: useLogin}, true
	case KeyMaxConnections:
		return keyDef{kind: kindMin, use: loIr, min: 1, max: maxConnectionsLimit}, true
	case KeySendTargets:
		return keyDef{kind: kindSendTargets, use: useFFP}, true
	case KeyTargetName, KeyInitiatorName:
		return keyDef{kind: kindDeclarative, use: useAnyStage | useLogin}, true
	case KeyTargetAlias:
		return keyDef{kind: kindDeclarative, use: useAnyStage | useLogin | useFFP | useTargetOnly}, true
	case KeyInitiatorAlias:
		return keyDef{kind: kindDeclarative, use: useAnyStage | useLogin | useFFP}, true
	case KeyTargetAddress:
		return keyDef{kind: kindDeclarative, use: useAnyStage | useLogin | useFFP | useTargetOnly}, true
	case KeyTargetPortalGroupTag:
		return keyDef{kind: kindDeclarative, use: useAnyStage | useLogin | useTargetOnly}, true
	case KeySessionType:
		return keyDef{kind: kindDeclarative, use: useAnyStage | lo}, true
	case KeyInitialR2T, KeyDataPDUInOrder, KeyDataSequenceInOrder:
		return keyDef{kind: kindOr, use: loIr}, true
	case KeyImmediateData:
		return keyDef{kind: kindAnd, use: loIr}, true
	case KeyRDMAExtensions:
		return keyDef{kind: kindAnd, use: lo}, true
	case KeyMaxRecvDataSegmentLength:
		return keyDef{kind: kindDeclarative, use: useLogin | useFFP, min: minDataSegment, max: maxDataSegment}, true
	case KeyMaxBurstLength, KeyFirstBurstLength:
		return keyDef{kind: kindMin, use: loIr, min: minDataSegment, max: maxDataSegment}, true
	case KeyDefaultTime2Wait:
		return keyDef{kind: kindMax, use: lo, max: maxTime2WaitOrRetain}, true
	case KeyDefaultTime2Retain:
		return keyDef{kind: kindMin, use: lo, max: maxTime2WaitOrRetain}, true
	case KeyMaxOutstandingR2T:
		return keyDef{kind: kindMin, use: loIr, min: 1, max: maxOutstandingR2TLim}, true
	case KeyErrorRecoveryLevel:
		return keyDef{kind: kindMin, use: lo, max: maxErrorRecoveryLevel}, true
	case KeyTaskReporting:
		return keyDef{kind: kindList, use: loIr}, true
	case KeyProtocolLevel:
		return keyDef{kind: kindMin, use: lo, max: maxProtocolLevel}, true
	case KeyIFMarker, KeyOFMarker:
		return keyDef{kind: kindObsoleteMarker, use: useLogin}, true
	case KeyIFMarkInt, KeyOFMarkInt:
		return keyDef{kind: kindObsoleteMarkInt, use: useLogin}, true
	}
	return keyDef{}, false
}

// isSecurityKey reports whether name is negotiated by the security stage
// (AuthMethod and the CHAP keys).
func isSecurityKey(name string) bool {
	switch name {
	case KeyAuthMethod, KeyChapA, KeyChapI, KeyChapC, KeyChapN, KeyChapR:
		return true
	}
	return false
}

// isSpecialValue reports whether v is one of the reserved answers that
// can never be a proposal.
func isSpecialValue(v string) bool {
	return v == ValueReject || v == ValueIrrelevant || v == ValueNotUnderstood
}

// parseNumber parses a numerical-value (RFC 7143 section 6.1): decimal or
// 0x-prefixed hex, at most 64 bits. Base64 numbers are not accepted: no
// initiator sends them and they would only widen the attack surface.
func parseNumber(s string) (uint64, bool) {
	if len(s) == 0 || len(s) > 20 {
		return 0, false
	}
	if len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		v, err := strconv.ParseUint(s[2:], 16, 64)
		if err != nil {
			return 0, false
		}
		return v, true
	}
	for i := 0; i < len(s); i++ { // ParseUint accepts "+"; the RFC does not
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, false
	}
	return v, true
}

// parseBool parses Yes/No.
func parseBool(s string) (v, ok bool) {
	switch s {
	case ValueYes:
		return true, true
	case ValueNo:
		return false, true
	}
	return false, false
}

func formatBool(b bool) string {
	if b {
		return ValueYes
	}
	return ValueNo
}

func formatNumber(v uint64) string { return strconv.FormatUint(v, 10) }

// firstSupported returns the first value of a comma list that supported
// accepts (RFC 7143 section 6.2.1: the responder picks in the proposer's
// order of preference).
func firstSupported(list string, supported func(string) bool) (string, bool) {
	for v := range strings.SplitSeq(list, ",") {
		if supported(v) {
			return v, true
		}
	}
	return "", false
}
