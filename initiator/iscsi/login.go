package iscsi

import (
	"bytes"
	"fmt"
	"io"
	"strconv"

	wire "github.com/vbs-storage/vbs/target/iscsi"
)

// Login PDU fields not covered by the BHS accessors (RFC 7143 sections
// 11.12 and 11.13).
const (
	offStatusClass  = 36
	offStatusDetail = 37
	loginVersion    = 0x00 // VersionMax / VersionMin / VersionActive
	loginITT        = 0    // the single task tag of a login exchange
	loginCmdSN      = 1    // first CmdSN of a session (any value works)
	// maxLoginSteps bounds the number of request/response rounds, so a
	// target cannot keep us in login forever.
	maxLoginSteps = 32
)

// loginStep is where the security stage stands.
type loginStep uint8

const (
	stepStart     loginStep = iota // send names and AuthMethod
	stepChapA                      // AuthMethod=CHAP agreed: send CHAP_A
	stepChapReply                  // challenge received: send CHAP_N/CHAP_R
	stepSecDone                    // waiting for the transit to operational
	stepOpOffer                    // operational stage: send offers
	stepOpMore                     // operational stage: answer the target
	stepDone
)

// loginMachine is the pure initiator side of the login phase: it builds
// each Login Request and consumes each Login Response. It does no I/O;
// rand supplies CHAP challenges and identifiers.
type loginMachine struct {
	cfg       *Config
	discovery bool
	rand      io.Reader
	neg       *negotiator

	step      loginStep
	stage     wire.Stage
	rounds    int
	reply     []wire.KV // keys to send in the next request
	accum     []byte    // text of a response split with the C bit
	continued bool      // the last response had C set: send an empty request

	expStatSN  uint32
	statSNSeen bool
	expCmdSN   uint32
	maxCmdSN   uint32
	tsih       uint16

	// CHAP state.
	chapID        byte
	chapChallenge []byte
	ourResponse   []byte
	mutualID      byte
	mutualChal    []byte
}

func newLoginMachine(cfg *Config, discovery bool, rnd io.Reader) *loginMachine {
	return &loginMachine{cfg: cfg, discovery: discovery, rand: rnd, neg: newNegotiator(cfg, discovery)}
}

// request fills p with the next Login Request.
func (m *loginMachine) request(p *wire.PDU) error {
	p.Reset()
	var kvs []wire.KV
	transit, nsg := false, wire.Stage(0)
	switch {
	case m.continued:
		// Ask for the rest of a split response: no keys, no transit.
		transit = false
	case m.step == stepStart:
		kvs = append(kvs, wire.KV{Key: keyInitiatorName, Value: m.cfg.InitiatorName})
		if m.cfg.InitiatorAlias != "" {
			kvs = append(kvs, wire.KV{Key: keyInitiatorAlias, Value: m.cfg.InitiatorAlias})
		}
		if m.discovery {
			kvs = append(kvs, wire.KV{Key: keySessionType, Value: valueDiscovery})
		} else {
			kvs = append(kvs, wire.KV{Key: keySessionType, Value: valueNormal},
				wire.KV{Key: keyTargetName, Value: m.cfg.TargetName})
		}
		if m.cfg.CHAP != nil {
			kvs = append(kvs, wire.KV{Key: keyAuthMethod, Value: valueCHAP})
		} else {
			kvs = append(kvs, wire.KV{Key: keyAuthMethod, Value: valueNone})
			transit, nsg = true, wire.StageOperational
		}
	case m.step == stepChapA:
		kvs = append(kvs, wire.KV{Key: keyChapA, Value: strconv.Itoa(wire.ChapAlgorithmMD5)})
	case m.step == stepChapReply:
		sum := wire.ChapResponse(m.chapID, []byte(m.cfg.CHAP.Secret), m.chapChallenge)
		m.ourResponse = append(m.ourResponse[:0], sum[:]...)
		kvs = append(kvs, wire.KV{Key: keyChapN, Value: m.cfg.CHAP.User},
			wire.KV{Key: keyChapR, Value: wire.EncodeHex(sum[:])})
		if m.cfg.MutualCHAP != nil {
			if err := m.newMutualChallenge(); err != nil {
				return err
			}
			kvs = append(kvs, wire.KV{Key: keyChapI, Value: strconv.Itoa(int(m.mutualID))},
				wire.KV{Key: keyChapC, Value: wire.EncodeHex(m.mutualChal)})
		}
		transit, nsg = true, wire.StageOperational
	case m.step == stepSecDone:
		transit, nsg = true, wire.StageOperational
	case m.step == stepOpOffer:
		kvs = append(kvs, m.neg.offers()...)
		transit, nsg = true, wire.StageFullFeature
	case m.step == stepOpMore:
		kvs = append(kvs, m.reply...)
		transit, nsg = true, wire.StageFullFeature
	default:
		return fmt.Errorf("login: no request to send in step %d", m.step)
	}
	m.reply = m.reply[:0]
	p.SetOpcode(wire.OpLoginReq, true)
	p.SetLoginStages(transit, false, m.stage, nsg)
	p.SetByte2(loginVersion)
	p.SetByte3(loginVersion)
	p.SetISID(m.cfg.ISID)
	p.SetTSIH(0)
	p.SetITT(loginITT)
	p.SetCID(0)
	p.SetCmdSN(loginCmdSN)
	p.SetExpStatSN(m.expStatSN)
	p.Data = wire.EncodeText(kvs)
	return nil
}

// newMutualChallenge picks our challenge for the target; it never equals
// the challenge the target sent us, so a target cannot reflect it.
func (m *loginMachine) newMutualChallenge() error {
	var idb [1]byte
	if _, err := io.ReadFull(m.rand, idb[:]); err != nil {
		return fmt.Errorf("login: chap identifier: %w", err)
	}
	m.mutualID = idb[0]
	m.mutualChal = make([]byte, wire.ChapChallengeLength)
	for {
		if _, err := io.ReadFull(m.rand, m.mutualChal); err != nil {
			return fmt.Errorf("login: chap challenge: %w", err)
		}
		if !bytes.Equal(m.mutualChal, m.chapChallenge) {
			return nil
		}
	}
}

// response consumes one Login Response. done is true once the session is
// in full feature phase.
func (m *loginMachine) response(p *wire.PDU) (done bool, err error) {
	m.rounds++
	if m.rounds > maxLoginSteps {
		return false, fmt.Errorf("%w: login did not finish in %d rounds", ErrProtocol, maxLoginSteps)
	}
	if p.Opcode() != wire.OpLoginResp {
		return false, fmt.Errorf("%w: %v during login", ErrProtocol, p.Opcode())
	}
	if p.ITT() != loginITT {
		return false, fmt.Errorf("%w: login response for task 0x%x", ErrProtocol, p.ITT())
	}
	m.statSNSeen = true
	m.expStatSN = p.StatSN() + 1
	m.expCmdSN, m.maxCmdSN = p.ExpCmdSN(), p.MaxCmdSN()
	class, detail := p.BHS[offStatusClass], p.BHS[offStatusDetail]
	if class != LoginClassSuccess {
		if class == LoginClassRedirection {
			kvs, _ := wire.ParseText(p.Data)
			re := &RedirectError{Detail: detail, Permanent: detail == LoginDetailMovedPermanently}
			for _, kv := range kvs {
				if kv.Key == keyTargetAddress {
					re.Addr = kv.Value
				}
			}
			return false, re
		}
		return false, &LoginError{Class: class, Detail: detail}
	}
	if p.Byte3() != loginVersion {
		return false, fmt.Errorf("%w: login version 0x%02x", ErrProtocol, p.Byte3())
	}
	if len(m.accum)+len(p.Data) > wire.MaxTextDataLength {
		return false, fmt.Errorf("%w: login text longer than %d", ErrProtocol, wire.MaxTextDataLength)
	}
	m.accum = append(m.accum, p.Data...)
	if p.Continue() {
		if p.Transit() {
			return false, fmt.Errorf("%w: login response with both C and T", ErrProtocol)
		}
		m.continued = true
		return false, nil
	}
	m.continued = false
	kvs, err := wire.ParseText(m.accum)
	m.accum = m.accum[:0]
	if err != nil {
		return false, fmt.Errorf("%w: login response: %v", ErrProtocol, err)
	}
	if p.CSG() != m.stage {
		return false, fmt.Errorf("%w: login response in stage %d, we are in %d", ErrProtocol, p.CSG(), m.stage)
	}
	if m.stage == wire.StageSecurity {
		if err := m.security(kvs); err != nil {
			return false, err
		}
	} else {
		reply, err := m.neg.apply(kvs)
		if err != nil {
			return false, err
		}
		m.reply = append(m.reply, reply...)
		m.step = stepOpMore
	}
	if !p.Transit() {
		return false, nil
	}
	switch p.NSG() {
	case wire.StageOperational:
		if m.stage != wire.StageSecurity || m.step != stepSecDone {
			return false, fmt.Errorf("%w: target moved to the operational stage early", ErrProtocol)
		}
		m.stage, m.step = wire.StageOperational, stepOpOffer
		return false, nil
	case wire.StageFullFeature:
		if m.stage == wire.StageSecurity && m.step != stepSecDone {
			return false, fmt.Errorf("%w: target skipped authentication", ErrProtocol)
		}
		if m.stage == wire.StageSecurity {
			// Straight from security to full feature: nothing was
			// negotiated, RFC defaults apply.
			m.neg.offers()
		}
		m.tsih = p.TSIH()
		if m.tsih == 0 {
			return false, fmt.Errorf("%w: target gave TSIH 0", ErrProtocol)
		}
		m.step = stepDone
		return true, nil
	}
	return false, fmt.Errorf("%w: login response with next stage %d", ErrProtocol, p.NSG())
}

// security handles the keys of a security stage response.
func (m *loginMachine) security(kvs []wire.KV) error {
	get := func(k string) (string, bool) {
		for _, kv := range kvs {
			if kv.Key == k {
				return kv.Value, true
			}
		}
		return "", false
	}
	// Declarations may come in any stage; keep them.
	for _, kv := range kvs {
		if kv.Key == keyTargetPortalGroupTag || kv.Key == keyTargetAlias {
			if _, err := m.neg.apply([]wire.KV{kv}); err != nil {
				return err
			}
		}
	}
	switch m.step {
	case stepStart:
		am, ok := get(keyAuthMethod)
		want := valueNone
		if m.cfg.CHAP != nil {
			want = valueCHAP
		}
		if ok && am != want || !ok && want == valueCHAP {
			return fmt.Errorf("%w: offered AuthMethod=%s, target answered %q", ErrAuth, want, am)
		}
		if want == valueCHAP {
			m.step = stepChapA
		} else {
			m.step = stepSecDone
		}
	case stepChapA:
		a, _ := get(keyChapA)
		if a != strconv.Itoa(wire.ChapAlgorithmMD5) {
			return fmt.Errorf("%w: target chose CHAP_A=%q, we offered %d", ErrAuth, a, wire.ChapAlgorithmMD5)
		}
		id, _ := get(keyChapI)
		n, err := strconv.ParseUint(id, 10, 8)
		if err != nil {
			return fmt.Errorf("%w: bad CHAP_I %q", ErrAuth, id)
		}
		c, _ := get(keyChapC)
		chal, err := wire.DecodeBinary(c)
		if err != nil || len(chal) < wire.ChapMinChallenge || len(chal) > wire.ChapMaxChallenge {
			return fmt.Errorf("%w: bad CHAP_C", ErrAuth)
		}
		m.chapID, m.chapChallenge = byte(n), chal
		m.step = stepChapReply
	case stepChapReply:
		if m.cfg.MutualCHAP != nil {
			if err := m.verifyTarget(get); err != nil {
				return err
			}
		}
		m.step = stepSecDone
	case stepSecDone:
	}
	return nil
}

// verifyTarget checks the target's answer to our mutual CHAP challenge.
func (m *loginMachine) verifyTarget(get func(string) (string, bool)) error {
	name, okN := get(keyChapN)
	r, okR := get(keyChapR)
	if !okN || !okR {
		return fmt.Errorf("%w: target did not answer our CHAP challenge", ErrAuth)
	}
	if u := m.cfg.MutualCHAP.User; u != "" && name != u {
		return fmt.Errorf("%w: target CHAP name %q, want %q", ErrAuth, name, u)
	}
	resp, err := wire.DecodeBinary(r)
	if err != nil {
		return fmt.Errorf("%w: bad target CHAP_R", ErrAuth)
	}
	if bytes.Equal(resp, m.ourResponse) {
		return fmt.Errorf("%w: target reflected our CHAP response", ErrAuth)
	}
	if !wire.ChapVerify(m.mutualID, []byte(m.cfg.MutualCHAP.Secret), m.mutualChal, resp) {
		return fmt.Errorf("%w: target CHAP response does not match", ErrAuth)
	}
	return nil
}

// params returns the negotiated parameters after login.
func (m *loginMachine) params() Params {
	p := m.neg.finish()
	p.ISID = m.cfg.ISID
	p.TSIH = m.tsih
	return p
}

// runLogin drives m over rw until full feature phase or an error.
func runLogin(rw io.ReadWriter, m *loginMachine) error {
	lim := wire.Limits{MaxRecvDataSegmentLength: max(m.cfg.MaxRecvDataSegmentLength, defaultMaxRecvDSL)}
	r := wire.NewReader(rw, lim)
	w := wire.NewWriter(rw, wire.Limits{})
	var req, resp wire.PDU
	for {
		if err := m.request(&req); err != nil {
			return err
		}
		if err := w.Write(&req); err != nil {
			return fmt.Errorf("login: send: %w", err)
		}
		if err := r.Read(&resp); err != nil {
			return fmt.Errorf("login: receive: %w", err)
		}
		done, err := m.response(&resp)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
	}
}

// splitTargetAddress splits "host:port,tpgt" into "host:port" and the tag.
func splitTargetAddress(a string) (hostPort string, tpgt int) {
	tpgt = -1
	if i := bytes.LastIndexByte([]byte(a), ','); i >= 0 {
		if n, err := strconv.Atoi(a[i+1:]); err == nil {
			tpgt = n
		}
		a = a[:i]
	}
	return a, tpgt
}
