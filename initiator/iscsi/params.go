package iscsi

import (
	"fmt"
	"strconv"
	"strings"

	wire "github.com/vbs-storage/vbs/target/iscsi"
)

// Text keys and values this initiator sends or understands (RFC 7143
// sections 12 and 13), named by the codec.
const (
	keyAuthMethod           = wire.KeyAuthMethod
	keyHeaderDigest         = wire.KeyHeaderDigest
	keyDataDigest           = wire.KeyDataDigest
	keyMaxConnections       = wire.KeyMaxConnections
	keySendTargets          = wire.KeySendTargets
	keyTargetName           = wire.KeyTargetName
	keyInitiatorName        = wire.KeyInitiatorName
	keyTargetAlias          = wire.KeyTargetAlias
	keyInitiatorAlias       = wire.KeyInitiatorAlias
	keyTargetAddress        = wire.KeyTargetAddress
	keyTargetPortalGroupTag = wire.KeyTargetPortalGroupTag
	keyInitialR2T           = wire.KeyInitialR2T
	keyImmediateData        = wire.KeyImmediateData
	keyMaxRecvDSL           = wire.KeyMaxRecvDataSegmentLength
	keyMaxBurstLength       = wire.KeyMaxBurstLength
	keyFirstBurstLength     = wire.KeyFirstBurstLength
	keyDefaultTime2Wait     = wire.KeyDefaultTime2Wait
	keyDefaultTime2Retain   = wire.KeyDefaultTime2Retain
	keyMaxOutstandingR2T    = wire.KeyMaxOutstandingR2T
	keyDataPDUInOrder       = wire.KeyDataPDUInOrder
	keyDataSequenceInOrder  = wire.KeyDataSequenceInOrder
	keyErrorRecoveryLevel   = wire.KeyErrorRecoveryLevel
	keySessionType          = wire.KeySessionType

	keyChapA = wire.KeyChapA
	keyChapI = wire.KeyChapI
	keyChapC = wire.KeyChapC
	keyChapN = wire.KeyChapN
	keyChapR = wire.KeyChapR

	valueYes       = wire.ValueYes
	valueNo        = wire.ValueNo
	valueNone      = wire.ValueNone
	valueCRC32C    = wire.ValueCRC32C
	valueCHAP      = wire.ValueCHAP
	valueAll       = wire.ValueAll
	valueNormal    = wire.ValueNormal
	valueDiscovery = wire.ValueDiscovery
)

// RFC 7143 defaults (section 13) used when a key is not negotiated.
const (
	defaultMaxRecvDSL         = 8192
	defaultMaxBurstLength     = 262144
	defaultFirstBurstLength   = 65536
	defaultMaxOutstandingR2T  = 1
	defaultDefaultTime2Wait   = 2
	defaultDefaultTime2Retain = 20
	maxTime2                  = 3600
	maxErrorRecoveryLevel     = 2
	maxOutstandingR2TRFC      = 65535
	maxConnectionsRFC         = 65535
)

// Params are the operational parameters of a session after login.
type Params struct {
	// ISID and TSIH identify the session.
	ISID uint64
	TSIH uint16
	// TargetPortalGroupTag and TargetAlias are what the target declared.
	TargetPortalGroupTag uint16
	TargetAlias          string

	HeaderDigest bool
	DataDigest   bool
	// MaxRecvDataSegmentLength is what we declared we accept;
	// MaxXmitDataSegmentLength is what the target declared it accepts
	// (the largest data segment we send).
	MaxRecvDataSegmentLength uint32
	MaxXmitDataSegmentLength uint32
	MaxBurstLength           uint32
	FirstBurstLength         uint32
	MaxOutstandingR2T        uint32
	MaxConnections           uint32
	DefaultTime2Wait         uint32
	DefaultTime2Retain       uint32
	ErrorRecoveryLevel       uint32
	InitialR2T               bool
	ImmediateData            bool
	DataPDUInOrder           bool
	DataSequenceInOrder      bool
}

// defaultParams returns the RFC 7143 defaults.
func defaultParams() Params {
	return Params{
		MaxXmitDataSegmentLength: defaultMaxRecvDSL,
		MaxRecvDataSegmentLength: defaultMaxRecvDSL,
		MaxBurstLength:           defaultMaxBurstLength,
		FirstBurstLength:         defaultFirstBurstLength,
		MaxOutstandingR2T:        defaultMaxOutstandingR2T,
		MaxConnections:           1,
		DefaultTime2Wait:         defaultDefaultTime2Wait,
		DefaultTime2Retain:       defaultDefaultTime2Retain,
		InitialR2T:               true,
		ImmediateData:            true,
		DataPDUInOrder:           true,
		DataSequenceInOrder:      true,
	}
}

// keyKind is how a key's result is computed (RFC 7143 section 6.2).
type keyKind uint8

const (
	kindDigest keyKind = iota // list of None / CRC32C
	kindAnd                   // boolean, result is AND
	kindOr                    // boolean, result is OR
	kindMin                   // numeric, result is the minimum
	kindMax                   // numeric, result is the maximum
)

// keySpec describes one negotiable key: how results combine and its range.
type keySpec struct {
	kind     keyKind
	lo, hi   uint32
	leadOnly bool // not negotiated in discovery sessions
}

// specOf returns how key is negotiated; ok is false for keys that are
// not negotiable operational keys.
func specOf(key string) (spec keySpec, ok bool) {
	switch key {
	case keyHeaderDigest, keyDataDigest:
		return keySpec{kind: kindDigest}, true
	case keyInitialR2T:
		return keySpec{kind: kindOr, leadOnly: true}, true
	case keyImmediateData, keyDataPDUInOrder, keyDataSequenceInOrder:
		return keySpec{kind: kindAnd, leadOnly: true}, true
	case keyMaxBurstLength, keyFirstBurstLength:
		return keySpec{kind: kindMin, lo: minDataSegmentLength, hi: wire.MaxDataSegmentLength, leadOnly: true}, true
	case keyMaxOutstandingR2T:
		return keySpec{kind: kindMin, lo: 1, hi: maxOutstandingR2TRFC, leadOnly: true}, true
	case keyMaxConnections:
		return keySpec{kind: kindMin, lo: 1, hi: maxConnectionsRFC, leadOnly: true}, true
	case keyDefaultTime2Wait:
		return keySpec{kind: kindMax, hi: maxTime2}, true
	case keyDefaultTime2Retain:
		return keySpec{kind: kindMin, hi: maxTime2}, true
	case keyErrorRecoveryLevel:
		return keySpec{kind: kindMin, hi: maxErrorRecoveryLevel}, true
	}
	return keySpec{}, false
}

// negotiator is the pure initiator side of operational parameter
// negotiation: it makes our offers, checks the target's answers against
// the combination rules, and answers keys the target offers.
type negotiator struct {
	discovery bool
	// want maps each key to the value we would pick (our offer).
	want map[string]string
	// order lists the keys we offer, in order.
	order []string
	// pending holds keys offered and not yet answered.
	pending map[string]bool
	params  Params
}

// newNegotiator returns a negotiator for cfg (already defaulted).
func newNegotiator(cfg *Config, discovery bool) *negotiator {
	n := &negotiator{discovery: discovery, want: map[string]string{}, pending: map[string]bool{}, params: defaultParams()}
	n.params.MaxRecvDataSegmentLength = cfg.MaxRecvDataSegmentLength
	digest := func(on bool) string {
		if on {
			return valueCRC32C + "," + valueNone
		}
		return valueNone
	}
	yesNo := func(b bool) string {
		if b {
			return valueYes
		}
		return valueNo
	}
	add := func(k, v string) {
		n.want[k] = v
		n.order = append(n.order, k)
	}
	add(keyHeaderDigest, digest(cfg.HeaderDigest))
	add(keyDataDigest, digest(cfg.DataDigest))
	if !discovery {
		add(keyInitialR2T, yesNo(cfg.DisableImmediateData))
		add(keyImmediateData, yesNo(!cfg.DisableImmediateData))
		add(keyMaxBurstLength, strconv.FormatUint(uint64(cfg.MaxBurstLength), 10))
		add(keyFirstBurstLength, strconv.FormatUint(uint64(cfg.FirstBurstLength), 10))
		add(keyMaxOutstandingR2T, strconv.FormatUint(uint64(cfg.MaxOutstandingR2T), 10))
		add(keyMaxConnections, "1")
		add(keyDataPDUInOrder, valueYes)
		add(keyDataSequenceInOrder, valueYes)
	}
	add(keyDefaultTime2Wait, "2")
	add(keyDefaultTime2Retain, "0")
	add(keyErrorRecoveryLevel, "0")
	return n
}

// offers returns our operational offers, plus the declarative
// MaxRecvDataSegmentLength, and marks the negotiable ones pending.
func (n *negotiator) offers() []wire.KV {
	kvs := make([]wire.KV, 0, len(n.order)+1)
	for _, k := range n.order {
		kvs = append(kvs, wire.KV{Key: k, Value: n.want[k]})
		n.pending[k] = true
	}
	kvs = append(kvs, wire.KV{Key: keyMaxRecvDSL, Value: strconv.FormatUint(uint64(n.params.MaxRecvDataSegmentLength), 10)})
	return kvs
}

// apply processes the target's keys of one login or text response and
// returns the answers we owe for keys the target offered.
func (n *negotiator) apply(kvs []wire.KV) ([]wire.KV, error) {
	var reply []wire.KV
	for _, kv := range kvs {
		switch kv.Key {
		case keyMaxRecvDSL:
			v, err := parseNumber(kv.Value, minDataSegmentLength, wire.MaxDataSegmentLength)
			if err != nil {
				return nil, fmt.Errorf("%w: %s=%q: %v", ErrNegotiation, kv.Key, kv.Value, err)
			}
			n.params.MaxXmitDataSegmentLength = v
			continue
		case keyTargetAlias:
			n.params.TargetAlias = kv.Value
			continue
		case keyTargetPortalGroupTag:
			v, err := parseNumber(kv.Value, 0, 65535)
			if err != nil {
				return nil, fmt.Errorf("%w: %s=%q: %v", ErrNegotiation, kv.Key, kv.Value, err)
			}
			n.params.TargetPortalGroupTag = uint16(v)
			continue
		case keyTargetAddress:
			continue // only meaningful in redirects, handled by login
		}
		spec, known := specOf(kv.Key)
		if !known {
			if !isSpecialValue(kv.Value) {
				reply = append(reply, wire.KV{Key: kv.Key, Value: wire.ValueNotUnderstood})
			}
			continue
		}
		if n.pending[kv.Key] {
			delete(n.pending, kv.Key)
			if err := n.answer(kv.Key, spec, kv.Value); err != nil {
				return nil, err
			}
			continue
		}
		// The target offers a key we did not: answer with the result.
		if isSpecialValue(kv.Value) {
			continue
		}
		if n.discovery && spec.leadOnly {
			reply = append(reply, wire.KV{Key: kv.Key, Value: wire.ValueIrrelevant})
			continue
		}
		res, err := n.respond(kv.Key, spec, kv.Value)
		if err != nil {
			return nil, err
		}
		reply = append(reply, wire.KV{Key: kv.Key, Value: res})
	}
	return reply, nil
}

func isSpecialValue(v string) bool {
	return v == wire.ValueNotUnderstood || v == wire.ValueIrrelevant || v == wire.ValueReject
}

// answer checks the target's answer to our offer of key and records the
// result. Reject, Irrelevant and NotUnderstood leave the RFC default
// (combined with our offer where that is stricter).
func (n *negotiator) answer(key string, spec keySpec, v string) error {
	offer := n.want[key]
	if isSpecialValue(v) {
		return n.fallback(key, spec)
	}
	bad := func(why string) error {
		return fmt.Errorf("%w: offered %s=%s, target answered %q: %s", ErrNegotiation, key, offer, v, why)
	}
	switch spec.kind {
	case kindDigest:
		if v != valueNone && v != valueCRC32C || !strings.Contains(offer, v) {
			return bad("not one of our values")
		}
		n.setDigest(key, v == valueCRC32C)
	case kindAnd, kindOr:
		b, ok := parseBool(v)
		if !ok {
			return bad("not Yes or No")
		}
		ours := offer == valueYes
		if spec.kind == kindAnd && b && !ours || spec.kind == kindOr && !b && ours {
			return bad("violates the boolean result function")
		}
		n.setBool(key, b)
	case kindMin, kindMax:
		x, err := parseNumber(v, spec.lo, spec.hi)
		if err != nil {
			return bad(err.Error())
		}
		ours, _ := parseNumber(offer, spec.lo, spec.hi)
		if spec.kind == kindMin && x > ours || spec.kind == kindMax && x < ours {
			return bad("violates the numeric result function")
		}
		n.setNumber(key, x)
	}
	return nil
}

// fallback records the value a key takes when the target did not
// negotiate it: the RFC default combined with our offer.
func (n *negotiator) fallback(key string, spec keySpec) error {
	offer := n.want[key]
	switch spec.kind {
	case kindDigest:
		n.setDigest(key, false)
	case kindAnd:
		def := n.getBool(key, defaultParams())
		n.setBool(key, def && offer == valueYes)
	case kindOr:
		def := n.getBool(key, defaultParams())
		n.setBool(key, def || offer == valueYes)
	case kindMin, kindMax:
		def := n.getNumber(key, defaultParams())
		ours, _ := parseNumber(offer, spec.lo, spec.hi)
		if spec.kind == kindMin {
			n.setNumber(key, min(def, ours))
		} else {
			n.setNumber(key, max(def, ours))
		}
	}
	return nil
}

// respond computes our answer to a key the target offered.
func (n *negotiator) respond(key string, spec keySpec, v string) (string, error) {
	switch spec.kind {
	case kindDigest:
		wantCRC := strings.HasPrefix(n.wantValue(key, valueNone), valueCRC32C)
		pick := ""
		for _, item := range wire.SplitList(v) {
			if item == valueCRC32C && wantCRC || item == valueNone && pick == "" {
				pick = item
				if item == valueCRC32C {
					break
				}
			}
		}
		if pick == "" {
			return wire.ValueReject, nil
		}
		n.setDigest(key, pick == valueCRC32C)
		return pick, nil
	case kindAnd, kindOr:
		b, ok := parseBool(v)
		if !ok {
			return wire.ValueReject, nil
		}
		ours := n.wantValue(key, "") == valueYes
		if _, offered := n.want[key]; !offered {
			ours = n.getBool(key, defaultParams())
		}
		res := b && ours
		if spec.kind == kindOr {
			res = b || ours
		}
		n.setBool(key, res)
		if res {
			return valueYes, nil
		}
		return valueNo, nil
	default:
		x, err := parseNumber(v, spec.lo, spec.hi)
		if err != nil {
			return wire.ValueReject, nil
		}
		ours := n.getNumber(key, defaultParams())
		if s, offered := n.want[key]; offered {
			ours, _ = parseNumber(s, spec.lo, spec.hi)
		}
		res := min(x, ours)
		if spec.kind == kindMax {
			res = max(x, ours)
		}
		n.setNumber(key, res)
		return strconv.FormatUint(uint64(res), 10), nil
	}
}

func (n *negotiator) wantValue(key, def string) string {
	if v, ok := n.want[key]; ok {
		return v
	}
	return def
}

// finish settles keys the target never answered and checks the
// cross-key rules. It returns the final parameters.
func (n *negotiator) finish() Params {
	for k := range n.pending {
		spec, _ := specOf(k)
		_ = n.fallback(k, spec)
		delete(n.pending, k)
	}
	p := n.params
	if p.FirstBurstLength > p.MaxBurstLength {
		p.FirstBurstLength = p.MaxBurstLength
	}
	return p
}

func (n *negotiator) setDigest(key string, on bool) {
	if key == keyHeaderDigest {
		n.params.HeaderDigest = on
	} else {
		n.params.DataDigest = on
	}
}

func (n *negotiator) setBool(key string, b bool) {
	switch key {
	case keyInitialR2T:
		n.params.InitialR2T = b
	case keyImmediateData:
		n.params.ImmediateData = b
	case keyDataPDUInOrder:
		n.params.DataPDUInOrder = b
	case keyDataSequenceInOrder:
		n.params.DataSequenceInOrder = b
	}
}

func (n *negotiator) getBool(key string, p Params) bool {
	switch key {
	case keyInitialR2T:
		return p.InitialR2T
	case keyImmediateData:
		return p.ImmediateData
	case keyDataPDUInOrder:
		return p.DataPDUInOrder
	case keyDataSequenceInOrder:
		return p.DataSequenceInOrder
	}
	return false
}

func (n *negotiator) setNumber(key string, v uint32) {
	switch key {
	case keyMaxBurstLength:
		n.params.MaxBurstLength = v
	case keyFirstBurstLength:
		n.params.FirstBurstLength = v
	case keyMaxOutstandingR2T:
		n.params.MaxOutstandingR2T = v
	case keyMaxConnections:
		n.params.MaxConnections = v
	case keyDefaultTime2Wait:
		n.params.DefaultTime2Wait = v
	case keyDefaultTime2Retain:
		n.params.DefaultTime2Retain = v
	case keyErrorRecoveryLevel:
		n.params.ErrorRecoveryLevel = v
	}
}

func (n *negotiator) getNumber(key string, p Params) uint32 {
	switch key {
	case keyMaxBurstLength:
		return p.MaxBurstLength
	case keyFirstBurstLength:
		return p.FirstBurstLength
	case keyMaxOutstandingR2T:
		return p.MaxOutstandingR2T
	case keyMaxConnections:
		return p.MaxConnections
	case keyDefaultTime2Wait:
		return p.DefaultTime2Wait
	case keyDefaultTime2Retain:
		return p.DefaultTime2Retain
	case keyErrorRecoveryLevel:
		return p.ErrorRecoveryLevel
	}
	return 0
}

func parseBool(v string) (bool, bool) {
	switch v {
	case valueYes:
		return true, true
	case valueNo:
		return false, true
	}
	return false, false
}

// parseNumber parses a decimal or 0x-hex numerical value in [lo, hi].
func parseNumber(v string, lo, hi uint32) (uint32, error) {
	var x uint64
	var err error
	if len(v) > 2 && v[0] == '0' && (v[1] == 'x' || v[1] == 'X') {
		x, err = strconv.ParseUint(v[2:], 16, 32)
	} else {
		x, err = strconv.ParseUint(v, 10, 32)
	}
	if err != nil {
		return 0, fmt.Errorf("bad number %q", v)
	}
	if uint32(x) < lo || uint32(x) > hi {
		return 0, fmt.Errorf("%d outside [%d, %d]", x, lo, hi)
	}
	return uint32(x), nil
}
