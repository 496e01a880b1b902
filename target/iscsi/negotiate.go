package iscsi

import (
	"errors"
	"fmt"
)

// SessionType is the type of session a login creates (RFC 7143 section
// 13.21).
type SessionType uint8

// Session types.
const (
	SessionNormal SessionType = iota
	SessionDiscovery
)

func (s SessionType) String() string {
	switch s {
	case SessionNormal:
		return ValueNormal
	case SessionDiscovery:
		return ValueDiscovery
	}
	return fmt.Sprintf("SessionType(%d)", uint8(s))
}

// Params are the negotiated operational parameters (RFC 7143 section 13)
// plus the login identity. NewParams returns the RFC defaults.
type Params struct {
	SessionType                   SessionType
	InitiatorName, InitiatorAlias string
	TargetName                    string
	ISID                          uint64
	TSIH                          uint16
	CID                           uint16
	HeaderDigest, DataDigest      bool
	MaxConnections                uint32
	InitialR2T, ImmediateData     bool
	MaxBurstLength                uint32
	FirstBurstLength              uint32
	DefaultTime2Wait              uint32
	DefaultTime2Retain            uint32
	MaxOutstandingR2T             uint32
	DataPDUInOrder                bool
	DataSequenceInOrder           bool
	ErrorRecoveryLevel            uint32
	// MaxRecvDataSegmentLength is the largest data segment the TARGET
	// accepts (what it declared; 8192 if it declared nothing);
	// MaxXmitDataSegmentLength the largest the INITIATOR accepts (what it
	// declared, 8192 if it declared nothing). Data-In PDUs must not exceed
	// MaxXmitDataSegmentLength.
	MaxRecvDataSegmentLength uint32
	MaxXmitDataSegmentLength uint32

	// ExpCmdSN is the CmdSN the Login Requests carried: the CmdSN the
	// initiator's first non-immediate command in full feature phase will
	// carry (RFC 7143 section 11.12.7).
	ExpCmdSN uint32
	// StatSN is the StatSN of the first response after login: one more
	// than the final Login Response's (RFC 7143 section 11.13.4).
	StatSN uint32
}

// NewParams returns the RFC 7143 defaults of every key.
func NewParams() Params {
	return Params{
		SessionType:              SessionNormal,
		MaxConnections:           defaultMaxConnections,
		InitialR2T:               defaultInitialR2T,
		ImmediateData:            defaultImmediateData,
		MaxBurstLength:           defaultMaxBurstLength,
		FirstBurstLength:         defaultFirstBurstLength,
		DefaultTime2Wait:         defaultTime2Wait,
		DefaultTime2Retain:       defaultTime2Retain,
		MaxOutstandingR2T:        defaultMaxOutstandingR2T,
		DataPDUInOrder:           defaultDataPDUInOrder,
		DataSequenceInOrder:      defaultDataSequenceInOrder,
		ErrorRecoveryLevel:       defaultErrorRecoveryLevel,
		MaxRecvDataSegmentLength: defaultDataSegmentLength,
		MaxXmitDataSegmentLength: defaultDataSegmentLength,
	}
}

// ErrNegotiation means a Text Request in full feature phase broke the
// negotiation rules (a key sent twice, a malformed declaration, a key only
// targets send). The caller answers it with a Reject PDU (reason protocol
// error) per RFC 7143 section 6.
var ErrNegotiation = errors.New("iscsi: text negotiation protocol error")

// Name limits (RFC 7143 sections 4.2.7.1 and 13.6).
const (
	maxNameLength  = 223
	maxAliasLength = 255
	// maxLoginKeys bounds the distinct keys one login may carry, so that
	// a hostile initiator cannot grow the login's memory: the standard
	// keys are about forty.
	maxLoginKeys = 1024
)

// targetLimits are the target's own values for the negotiated keys.
type targetLimits struct {
	maxRecvDataSegmentLength uint32
	maxBurstLength           uint32
	firstBurstLength         uint32
	maxOutstandingR2T        uint32
	maxConnections           uint32
}

// negPhase is where a negotiation happens.
type negPhase uint8

const (
	phaseSecurity negPhase = iota
	phaseOperational
	phaseFFP
)

// negotiation answers the non-security keys of one request. It updates p
// in place and collects the answers in order.
type negotiation struct {
	p       *Params
	lim     targetLimits
	phase   negPhase
	leading bool
	// identified is set once the first request fixed the login identity:
	// InitiatorName, TargetName and SessionType may then only be repeated
	// unchanged.
	identified bool
	// seen holds every key received so far in this login (or this Text
	// Request); values are kept only for the identity keys that may be
	// redeclared.
	seen map[string]string
	// offered holds keys the target proposed and awaits answers for.
	offered map[string]string
	answers []KV
	// firstBurstBefore is FirstBurstLength before this request changed it,
	// restored when the answer turns out Irrelevant.
	firstBurstBefore uint32
}

func (n *negotiation) answer(key, value string) {
	n.answers = append(n.answers, KV{Key: key, Value: value})
}

// isRedeclarable reports whether key may be repeated with the same value.
// RFC 7143 section 6.2 forbids any repetition, but libiscsi repeats the
// login identity in the first operational request after CHAP; repeating
// an identical declaration changes nothing, so it is tolerated.
func isRedeclarable(key string) bool {
	switch key {
	case KeyInitiatorName, KeyInitiatorAlias, KeyTargetName, KeySessionType:
		return true
	}
	return false
}

// note records key as received. It reports false (and no error) for an
// identical redeclaration that must be ignored.
func (n *negotiation) note(kv KV) (bool, error) {
	if prev, dup := n.seen[kv.Key]; dup {
		if isRedeclarable(kv.Key) && prev == kv.Value {
			return false, nil
		}
		return false, initiatorErr("key %s sent twice", kv.Key)
	}
	if len(n.seen) >= maxLoginKeys {
		return false, initiatorErr("more than %d keys", maxLoginKeys)
	}
	v := ""
	if isRedeclarable(kv.Key) {
		v = kv.Value
	}
	n.seen[kv.Key] = v
	return true, nil
}

// key negotiates one key=value pair. Errors are *LoginError.
func (n *negotiation) key(kv KV) error {
	fresh, err := n.note(kv)
	if err != nil || !fresh {
		return err
	}
	if want, ok := n.offered[kv.Key]; ok {
		delete(n.offered, kv.Key)
		return n.offerAnswer(kv, want)
	}
	def, known := lookupKey(kv.Key)
	if !known {
		// Unknown keys, and every X- and X# extension key, are not
		// understood (RFC 7143 section 6.2).
		n.answer(kv.Key, ValueNotUnderstood)
		return nil
	}
	if def.use&useTargetOnly != 0 {
		return initiatorErr("key %s is sent by targets only", kv.Key)
	}
	switch n.phase {
	case phaseSecurity:
		if def.use&useAnyStage == 0 {
			return initiatorErr("operational key %s in the security stage", kv.Key)
		}
	case phaseOperational:
		if def.use&useLogin == 0 {
			n.answer(kv.Key, ValueReject)
			return nil
		}
	case phaseFFP:
		if def.use&useFFP == 0 {
			n.answer(kv.Key, ValueReject)
			return nil
		}
	}
	if isSpecialValue(kv.Value) {
		// An answer to an offer the target never made: nothing to do.
		return nil
	}
	if def.kind != kindDeclarative && def.kind != kindSendTargets {
		if def.use&useIrrelevantDiscovery != 0 && n.p.SessionType == SessionDiscovery {
			n.answer(kv.Key, ValueIrrelevant)
			return nil
		}
		if def.use&useLeadingOnly != 0 && !n.leading {
			n.answer(kv.Key, ValueIrrelevant)
			return nil
		}
	}
	switch def.kind {
	case kindDeclarative:
		return n.declare(kv, def)
	case kindList:
		return n.list(kv)
	case kindMin, kindMax:
		n.numeric(kv, def)
	case kindAnd, kindOr:
		n.boolean(kv)
	case kindObsoleteMarker:
		// RFC 7143 section 13.26: markers are obsolete; "No" is an
		// allowed answer and the one RFC 3720 initiators expect.
		n.answer(kv.Key, ValueNo)
	case kindObsoleteMarkInt:
		// RFC 7143 section 13.26: the intervals MUST be answered Reject.
		n.answer(kv.Key, ValueReject)
	case kindSendTargets:
		// Answered by the caller with SendTargets.
	}
	return nil
}

func (n *negotiation) declare(kv KV, def keyDef) error {
	switch kv.Key {
	case KeyInitiatorName, KeyTargetName, KeySessionType:
		// A session type left to its default may be spelled out later.
		if n.identified && !(kv.Key == KeySessionType && kv.Value == n.p.SessionType.String()) {
			return initiatorErr("%s first sent after the first login request", kv.Key)
		}
	}
	switch kv.Key {
	case KeyInitiatorName:
		if kv.Value == "" || len(kv.Value) > maxNameLength {
			return initiatorErr("bad InitiatorName of %d bytes", len(kv.Value))
		}
		n.p.InitiatorName = kv.Value
	case KeyTargetName:
		if kv.Value == "" || len(kv.Value) > maxNameLength {
			return initiatorErr("bad TargetName of %d bytes", len(kv.Value))
		}
		n.p.TargetName = kv.Value
	case KeyInitiatorAlias:
		if len(kv.Value) > maxAliasLength {
			return initiatorErr("InitiatorAlias of %d bytes", len(kv.Value))
		}
		n.p.InitiatorAlias = kv.Value
	case KeySessionType:
		switch kv.Value {
		case ValueNormal:
			n.p.SessionType = SessionNormal
		case ValueDiscovery:
			n.p.SessionType = SessionDiscovery
		default:
			return loginErr(StatusInitiatorError, DetailSessionTypeNotSupported, "SessionType %.32q", kv.Value)
		}
	case KeyMaxRecvDataSegmentLength:
		v, ok := parseNumber(kv.Value)
		if !ok || v < def.min || v > def.max {
			return initiatorErr("MaxRecvDataSegmentLength %.32q outside %d..%d", kv.Value, def.min, def.max)
		}
		n.p.MaxXmitDataSegmentLength = uint32(v)
	}
	return nil
}

func (n *negotiation) list(kv KV) error {
	var supported func(string) bool
	switch kv.Key {
	case KeyHeaderDigest, KeyDataDigest:
		supported = func(v string) bool { return v == ValueCRC32C || v == ValueNone }
	case KeyTaskReporting:
		supported = func(v string) bool { return v == ValueRFC3720 }
	}
	v, ok := firstSupported(kv.Value, supported)
	if !ok {
		n.answer(kv.Key, ValueReject)
		return nil
	}
	switch kv.Key {
	case KeyHeaderDigest:
		n.p.HeaderDigest = v == ValueCRC32C
	case KeyDataDigest:
		n.p.DataDigest = v == ValueCRC32C
	}
	n.answer(kv.Key, v)
	return nil
}

// numeric answers a Min or Max key: the result of the function over the
// offer and the target's value, or Reject for a malformed or out-of-range
// offer (the key then keeps its current value).
func (n *negotiation) numeric(kv KV, def keyDef) {
	v, ok := parseNumber(kv.Value)
	if !ok || v < def.min || v > def.max {
		n.answer(kv.Key, ValueReject)
		return
	}
	var ours uint64
	var dst *uint32
	switch kv.Key {
	case KeyMaxConnections:
		ours, dst = uint64(n.lim.maxConnections), &n.p.MaxConnections
	case KeyMaxBurstLength:
		ours, dst = uint64(n.lim.maxBurstLength), &n.p.MaxBurstLength
	case KeyFirstBurstLength:
		ours, dst = uint64(n.lim.firstBurstLength), &n.p.FirstBurstLength
	case KeyDefaultTime2Wait:
		ours, dst = defaultTime2Wait, &n.p.DefaultTime2Wait
	case KeyDefaultTime2Retain:
		ours, dst = defaultTime2Retain, &n.p.DefaultTime2Retain
	case KeyMaxOutstandingR2T:
		ours, dst = uint64(n.lim.maxOutstandingR2T), &n.p.MaxOutstandingR2T
	case KeyErrorRecoveryLevel:
		ours, dst = supportedErrorRecoveryLevel, &n.p.ErrorRecoveryLevel
	case KeyProtocolLevel:
		ours = supportedProtocolLevel
	}
	r := min(v, ours)
	if def.kind == kindMax {
		r = max(v, ours)
	}
	if kv.Key == KeyFirstBurstLength {
		n.firstBurstBefore = n.p.FirstBurstLength
	}
	if dst != nil {
		*dst = uint32(r)
	}
	n.answer(kv.Key, formatNumber(r))
}

// boolean answers an And or Or key.
func (n *negotiation) boolean(kv KV) {
	v, ok := parseBool(kv.Value)
	if !ok {
		n.answer(kv.Key, ValueReject)
		return
	}
	var r bool
	switch kv.Key {
	case KeyInitialR2T:
		// Or with No: VBS accepts unsolicited data when the initiator
		// does.
		r = v
		n.p.InitialR2T = r
	case KeyImmediateData:
		// And with Yes.
		r = v
		n.p.ImmediateData = r
	case KeyDataPDUInOrder:
		// Or with Yes: VBS wants Data-Out PDUs in order.
		r = true
		n.p.DataPDUInOrder = r
	case KeyDataSequenceInOrder:
		r = true
		n.p.DataSequenceInOrder = r
	case KeyRDMAExtensions:
		// And with No: no iSER.
		r = false
	}
	n.answer(kv.Key, formatBool(r))
}

// offerAnswer takes the initiator's answer to a value the target offered
// (only Min keys are offered). Reject (or Irrelevant, NotUnderstood) keeps
// the current value.
func (n *negotiation) offerAnswer(kv KV, offered string) error {
	if isSpecialValue(kv.Value) {
		return nil
	}
	v, ok := parseNumber(kv.Value)
	want, _ := parseNumber(offered)
	if !ok || v < minDataSegment || v > want {
		return initiatorErr("answer %s=%.32q to offer %s", kv.Key, kv.Value, offered)
	}
	switch kv.Key {
	case KeyMaxBurstLength:
		n.p.MaxBurstLength = uint32(v)
	case KeyFirstBurstLength:
		n.p.FirstBurstLength = uint32(v)
	}
	return nil
}

// finish applies the rules that tie keys together once a whole request
// has been read.
func (n *negotiation) finish() {
	// FirstBurstLength is Irrelevant when neither immediate nor
	// unsolicited data may be sent, and never exceeds MaxBurstLength
	// (RFC 7143 section 13.14).
	for i := range n.answers {
		if n.answers[i].Key != KeyFirstBurstLength || isSpecialValue(n.answers[i].Value) {
			continue
		}
		if n.p.InitialR2T && !n.p.ImmediateData {
			n.answers[i].Value = ValueIrrelevant
			n.p.FirstBurstLength = n.firstBurstBefore
			continue
		}
		if n.p.FirstBurstLength > n.p.MaxBurstLength {
			n.p.FirstBurstLength = n.p.MaxBurstLength
			n.answers[i].Value = formatNumber(uint64(n.p.FirstBurstLength))
		}
	}
	if n.p.FirstBurstLength > n.p.MaxBurstLength {
		n.p.FirstBurstLength = n.p.MaxBurstLength
	}
}

// offers adds the target's own proposals for keys the initiator left at
// RFC defaults the target cannot honour. It reports whether it offered
// anything; the login then may not leave the operational stage until
// the initiator answers.
func (n *negotiation) offers() bool {
	if n.p.SessionType != SessionNormal || !n.leading {
		return false
	}
	offered := false
	offer := func(key string, ours uint32, current *uint32) {
		if _, seen := n.seen[key]; seen || *current <= ours {
			return
		}
		v := formatNumber(uint64(ours))
		n.offered[key] = v
		n.answer(key, v)
		offered = true
	}
	offer(KeyMaxBurstLength, n.lim.maxBurstLength, &n.p.MaxBurstLength)
	if !n.p.InitialR2T || n.p.ImmediateData {
		// Otherwise FirstBurstLength is Irrelevant (RFC 7143 section 13.14).
		offer(KeyFirstBurstLength, min(n.lim.firstBurstLength, n.lim.maxBurstLength), &n.p.FirstBurstLength)
	}
	return offered
}

// NegotiateText negotiates the keys of a Text Request in full feature
// phase of a session with parameters p. Keys that may change there
// (MaxRecvDataSegmentLength, InitiatorAlias) update the returned params;
// login-only keys are answered Reject, unknown and X- keys NotUnderstood,
// keys irrelevant to the session Irrelevant. SendTargets is not answered:
// the caller answers it with SendTargets. err wraps ErrNegotiation when
// the request breaks the rules; p is then returned unchanged.
func NegotiateText(p Params, req []KV) (resp []byte, updated Params, err error) {
	q := p
	n := negotiation{
		p:       &q,
		phase:   phaseFFP,
		leading: true,
		seen:    make(map[string]string, len(req)),
	}
	for _, kv := range req {
		if isSecurityKey(kv.Key) {
			n.answer(kv.Key, ValueReject)
			continue
		}
		if err := n.key(kv); err != nil {
			var le *LoginError
			if errors.As(err, &le) {
				return nil, p, fmt.Errorf("%w: %s", ErrNegotiation, le.Reason)
			}
			return nil, p, fmt.Errorf("%w: %v", ErrNegotiation, err)
		}
	}
	return EncodeText(n.answers), q, nil
}
