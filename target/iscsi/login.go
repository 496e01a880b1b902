package iscsi

import (
	"crypto/rand"
	"errors"
	"io"
)

// Credentials are CHAP credentials.
type Credentials struct{ User, Secret string }

// TargetInfo is what login needs to know about one target.
type TargetInfo struct {
	Name           string // IQN
	Alias          string
	PortalGroupTag uint16
	// Authorize decides, for the initiator named in the login, whether it
	// may log in and which CHAP credentials it must present (nil = no CHAP
	// required) and which the target must present for mutual CHAP (nil =
	// no mutual CHAP). ok=false means "not allowed": login fails with
	// status 0x0202 (authorization failure) after the security stage, and
	// discovery hides the target. A nil Authorize allows everyone without
	// CHAP.
	Authorize func(initiatorName string) (chap, mutual *Credentials, ok bool)
	// Redirect, if set, is a TargetAddress value ("10.0.0.2:3260,1"):
	// logins to this target are redirected there with status 0x0101
	// (target moved temporarily) as soon as the target is named, and
	// SendTargets lists that address instead of the local portals.
	Redirect string
}

// ProtocolVersion is the only iSCSI version there is (RFC 7143 section
// 11.12.4): Version-max and Version-active of every Login Response.
const ProtocolVersion = 0x00

// Target defaults used when a LoginConfig field is zero.
const (
	DefaultMaxRecvDataSegmentLength = 262144
	DefaultMaxBurstLength           = 1048576
	DefaultFirstBurstLength         = 262144
	DefaultMaxOutstandingR2T        = 8
	DefaultMaxConnections           = 1
	DefaultCommandWindow            = 32
)

// loginMaxDataSegment is the largest data segment either side may send
// during login: MaxRecvDataSegmentLength declarations take effect in full
// feature phase, so the RFC default applies until then. Longer responses
// are split with the C bit.
const loginMaxDataSegment = defaultDataSegmentLength

// maxLoginPDUs bounds how many Login Requests one login may take.
const maxLoginPDUs = 1024

// LoginConfig configures one connection's login.
type LoginConfig struct {
	// LookupTarget finds the target a normal session names; ok=false (or
	// a nil LookupTarget) fails the login with 0x0203.
	LookupTarget func(name string) (TargetInfo, bool)
	// DiscoveryAuth, if set, authorizes discovery sessions the same way
	// (nil = anyone, no CHAP).
	DiscoveryAuth func(initiatorName string) (chap, mutual *Credentials, ok bool)
	// The target's offers and limits; zero means the Default* constant.
	// Values are clamped to the RFC ranges, and FirstBurstLength to
	// MaxBurstLength. When a limit is below the RFC default and the
	// initiator proposes nothing for it, the target offers its own value
	// before leaving the operational stage.
	MaxRecvDataSegmentLength uint32
	MaxBurstLength           uint32
	FirstBurstLength         uint32
	MaxOutstandingR2T        uint32
	MaxConnections           uint32
	// Complete is called once, when the initiator asks to enter full
	// feature phase and everything else succeeded: the session glue
	// creates, reinstates (same ISID+initiator, TSIH 0) or extends (TSIH
	// != 0) the session and returns the TSIH to put in the final response
	// (never 0), or a *LoginError (e.g. 0x020a session does not exist);
	// any other error fails the login with 0x0300. A nil Complete keeps
	// the request's TSIH, or 1 for a new session.
	Complete func(p *Params) (tsih uint16, err error)
	// Rand is the source of CHAP challenges and identifiers
	// (crypto/rand.Reader if nil).
	Rand io.Reader
	// InitialStatSN is the StatSN of the first Login Response; each later
	// response carries one more (RFC 7143 section 11.13.4), and
	// Params().StatSN is the StatSN for the first response after login.
	// Step sets the StatSN itself: the caller sends resp unchanged.
	InitialStatSN uint32
	// CommandWindow sets MaxCmdSN = ExpCmdSN + CommandWindow - 1 in Login
	// Responses, where ExpCmdSN is the CmdSN of the Login Request. For a
	// connection joining an existing session (TSIH != 0) the glue
	// overwrites ExpCmdSN and MaxCmdSN of the final response with the
	// session's after Step.
	CommandWindow uint32
}

func (c *LoginConfig) fillDefaults() {
	def := func(v *uint32, d, lo, hi uint32) {
		if *v == 0 {
			*v = d
		}
		*v = min(max(*v, lo), hi)
	}
	def(&c.MaxRecvDataSegmentLength, DefaultMaxRecvDataSegmentLength, minDataSegment, maxDataSegment)
	def(&c.MaxBurstLength, DefaultMaxBurstLength, minDataSegment, maxDataSegment)
	def(&c.FirstBurstLength, DefaultFirstBurstLength, minDataSegment, c.MaxBurstLength)
	def(&c.MaxOutstandingR2T, DefaultMaxOutstandingR2T, 1, maxOutstandingR2TLim)
	def(&c.MaxConnections, DefaultMaxConnections, 1, maxConnectionsLimit)
	if c.CommandWindow == 0 {
		c.CommandWindow = DefaultCommandWindow
	}
	if c.Rand == nil {
		c.Rand = rand.Reader
	}
}

type loginState uint8

const (
	loginStart loginState = iota
	loginActive
	loginDone
	loginFailed
)

type authState uint8

const (
	authStart         authState = iota // no AuthMethod chosen yet
	authWaitAlgorithm                  // CHAP chosen, waiting for CHAP_A
	authWaitResponse                   // challenge sent, waiting for CHAP_N/CHAP_R
	authDone                           // authenticated (or None)
)

// Login is the pure state machine of one connection's login phase
// (RFC 7143 sections 6 and 11.12). It does no I/O: the caller reads a
// Login Request, calls Step, and sends the response Step fills in. It is
// not safe for concurrent use.
//
// The first complete request names the initiator, the session type and
// the target; the target is looked up (0x0203), redirected (0x0101) or
// authorized then. The security stage picks AuthMethod None or CHAP (MD5,
// one-way or mutual) and may not be left before authentication completes;
// a target that requires CHAP refuses an initiator that skips it (0x0201),
// and an initiator that may not log in is refused when it leaves the
// security stage (0x0202). The operational stage negotiates the keys of
// RFC 7143 section 13; the target declares its MaxRecvDataSegmentLength
// there and offers its burst limits if they are below the RFC defaults.
// The request that asks for full feature phase runs LoginConfig.Complete.
// Requests split with the C bit are collected (acknowledged with empty
// responses) and responses longer than 8192 bytes are split the same way.
type Login struct {
	cfg   LoginConfig
	state loginState
	stage Stage // the stage requests must name as CSG
	p     Params

	versionMax, versionMin uint8

	seen    map[string]string
	offered map[string]string

	identified    bool
	target        TargetInfo
	chap, mutual  *Credentials
	allowed       bool
	auth          authState
	chapID        byte
	chapChallenge [ChapChallengeLength]byte
	declaredMRDSL bool

	reqBuf []byte // request text collected across C-bit PDUs

	resp     []byte // the whole pending response text
	respSent int    // how much of resp earlier PDUs carried
	more     bool   // resp is split and its rest is pending
	transit  bool   // the pending response's T bit
	nsg      Stage  // the pending response's NSG

	statSN uint32
	nPDUs  int
	err    *LoginError // why the login failed, for logs
}

// NewLogin returns the login state machine for one new connection.
func NewLogin(cfg LoginConfig) *Login {
	cfg.fillDefaults()
	return &Login{
		cfg:     cfg,
		p:       NewParams(),
		seen:    make(map[string]string),
		offered: make(map[string]string),
		statSN:  cfg.InitialStatSN,
	}
}

// Params returns the parameters negotiated so far; after StepDone they
// are the session's and connection's operational parameters.
func (l *Login) Params() Params { return l.p }

// Step consumes one Login Request and fills resp (resp.Data may alias
// Login-owned memory, valid until the next Step). It returns:
//   - StepContinue: send resp and read the next Login Request;
//   - StepDone: send resp; the connection is now in full feature phase
//     with Params();
//   - StepFail: send resp (a failure status) and close the connection.
//
// Step never panics on any input. A non-login PDU during login, or any
// Step after StepDone or StepFail, fails with 0x020b.
func (l *Login) Step(req *PDU, resp *PDU) StepResult {
	resp.Reset()
	resp.SetOpcode(OpLoginResp, false)
	resp.SetISID(req.ISID())
	resp.SetTSIH(req.TSIH())
	resp.SetITT(req.ITT())
	resp.SetByte2(ProtocolVersion)
	resp.SetByte3(ProtocolVersion)
	resp.SetStatSN(l.statSN)
	l.statSN++
	cmdSN := req.CmdSN()
	if l.state != loginStart {
		cmdSN = l.p.ExpCmdSN
	}
	resp.SetExpCmdSN(cmdSN)
	resp.SetMaxCmdSN(cmdSN + l.cfg.CommandWindow - 1)
	res, err := l.step(req, resp)
	if err != nil {
		var le *LoginError
		if !errors.As(err, &le) {
			le = loginErr(StatusTargetError, DetailTargetError, "%v", err)
		}
		return l.fail(resp, le)
	}
	return res
}

// Err returns why the login failed (a *LoginError whose Reason is meant
// for logs, never for the wire), or nil if it has not failed.
func (l *Login) Err() error {
	if l.err == nil {
		return nil
	}
	return l.err
}

func (l *Login) fail(resp *PDU, le *LoginError) StepResult {
	if l.err == nil {
		l.err = le
	}
	l.state = loginFailed
	l.more = false
	resp.Data = resp.Data[:0]
	if le.Class == StatusRedirect && le.TargetAddress != "" {
		l.resp = AppendText(l.resp[:0], KeyTargetAddress, le.TargetAddress)
		resp.Data = l.resp
	}
	resp.SetLoginStages(false, false, l.stage&loginStageMsk, 0)
	resp.BHS[offLoginStatusClass] = le.Class
	resp.BHS[offLoginStatusDetail] = le.Detail
	return StepFail
}

func (l *Login) step(req, resp *PDU) (StepResult, error) {
	switch l.state {
	case loginDone, loginFailed:
		return StepFail, loginErr(StatusInitiatorError, DetailInvalidDuringLogin, "login already ended")
	}
	if op := req.Opcode(); op != OpLoginReq {
		return StepFail, loginErr(StatusInitiatorError, DetailInvalidDuringLogin, "%v during login", op)
	}
	l.nPDUs++
	if l.nPDUs > maxLoginPDUs {
		return StepFail, initiatorErr("more than %d login requests", maxLoginPDUs)
	}
	csg := req.CSG()
	if l.state == loginStart {
		l.versionMax, l.versionMin = req.Byte2(), req.Byte3()
		if l.versionMin > ProtocolVersion || l.versionMax < l.versionMin {
			return StepFail, loginErr(StatusInitiatorError, DetailUnsupportedVersion,
				"versions 0x%02x..0x%02x", l.versionMin, l.versionMax)
		}
		if csg != StageSecurity && csg != StageOperational {
			return StepFail, initiatorErr("first login request in stage %d", csg)
		}
		l.p.ISID, l.p.TSIH, l.p.CID, l.p.ExpCmdSN = req.ISID(), req.TSIH(), req.CID(), req.CmdSN()
		l.stage = csg
		l.state = loginActive
	} else {
		if req.ISID() != l.p.ISID || req.TSIH() != l.p.TSIH || req.CID() != l.p.CID {
			return StepFail, initiatorErr("ISID, TSIH or CID changed during login")
		}
		if req.Byte2() != l.versionMax || req.Byte3() != l.versionMin {
			return StepFail, initiatorErr("versions changed during login")
		}
		if csg != l.stage {
			return StepFail, initiatorErr("request in stage %d, login is in stage %d", csg, l.stage)
		}
	}
	transit, cont := req.Transit(), req.Continue()
	nsg := req.NSG()
	if transit && cont {
		return StepFail, initiatorErr("both T and C bits set")
	}
	if transit && (nsg <= csg || nsg != StageOperational && nsg != StageFullFeature) {
		return StepFail, initiatorErr("transit from stage %d to %d", csg, nsg)
	}
	if l.more {
		// The initiator fetches the rest of a split response with empty
		// requests (the C bit of RFC 7143 section 11.13).
		if len(req.Data) > 0 || cont {
			return StepFail, initiatorErr("request data while the target's response continues")
		}
		return l.sendChunk(resp)
	}
	if cont || len(l.reqBuf) > 0 {
		if len(l.reqBuf)+len(req.Data) > MaxTextDataLength {
			return StepFail, initiatorErr("login text longer than %d bytes", MaxTextDataLength)
		}
		l.reqBuf = append(l.reqBuf, req.Data...)
		if cont {
			// Acknowledge with an empty response and keep collecting.
			resp.SetLoginStages(false, false, l.stage, 0)
			return StepContinue, nil
		}
	}
	text := req.Data
	if len(l.reqBuf) > 0 {
		text = l.reqBuf
	}
	kvs, err := ParseText(text)
	l.reqBuf = l.reqBuf[:0]
	if err != nil {
		return StepFail, initiatorErr("%v", err)
	}
	return l.process(kvs, transit, nsg, resp)
}

// secKeys are the security keys of one request, handled together after
// the other keys because CHAP_N, CHAP_R, CHAP_I and CHAP_C form one step.
type secKeys struct {
	authMethod, chapA, chapN, chapR, chapI, chapC *string
}

func (s *secKeys) set(kv *KV) {
	switch kv.Key {
	case KeyAuthMethod:
		s.authMethod = &kv.Value
	case KeyChapA:
		s.chapA = &kv.Value
	case KeyChapN:
		s.chapN = &kv.Value
	case KeyChapR:
		s.chapR = &kv.Value
	case KeyChapI:
		s.chapI = &kv.Value
	case KeyChapC:
		s.chapC = &kv.Value
	}
}

func (l *Login) process(kvs []KV, transit bool, nsg Stage, resp *PDU) (StepResult, error) {
	phase := phaseOperational
	if l.stage == StageSecurity {
		phase = phaseSecurity
	}
	n := negotiation{
		p:          &l.p,
		lim:        l.limits(),
		phase:      phase,
		leading:    l.p.TSIH == 0,
		seen:       l.seen,
		offered:    l.offered,
		identified: l.identified,
	}
	var sec secKeys
	for i := range kvs {
		kv := &kvs[i]
		if isSecurityKey(kv.Key) {
			if l.stage != StageSecurity {
				return StepFail, initiatorErr("security key %s in the operational stage", kv.Key)
			}
			if _, err := n.note(*kv); err != nil {
				return StepFail, err
			}
			sec.set(kv)
			continue
		}
		if err := n.key(*kv); err != nil {
			return StepFail, err
		}
	}
	if len(n.offered) > 0 {
		return StepFail, initiatorErr("no answer to the target's offer of %d keys", len(n.offered))
	}
	n.finish()
	first := !l.identified
	if first {
		if err := l.identify(); err != nil {
			return StepFail, err
		}
		l.identified = true
		if l.stage == StageOperational {
			// The initiator skipped the security stage.
			if l.chap != nil {
				return StepFail, loginErr(StatusInitiatorError, DetailAuthFailure, "authentication required")
			}
			if !l.allowed {
				return StepFail, loginErr(StatusInitiatorError, DetailAuthorizationFailure, "initiator %q not allowed", l.p.InitiatorName)
			}
			l.auth = authDone
		}
	}
	if l.stage == StageSecurity {
		if err := l.security(&sec, &n); err != nil {
			return StepFail, err
		}
	}
	if first && l.p.SessionType == SessionNormal {
		// RFC 7143 section 13.9: the portal group tag goes in the response
		// to the first request naming the target.
		if l.target.Alias != "" {
			n.answer(KeyTargetAlias, l.target.Alias)
		}
		n.answer(KeyTargetPortalGroupTag, formatNumber(uint64(l.target.PortalGroupTag)))
	}
	if l.stage == StageOperational && !l.declaredMRDSL {
		l.declaredMRDSL = true
		l.p.MaxRecvDataSegmentLength = l.cfg.MaxRecvDataSegmentLength
		n.answer(KeyMaxRecvDataSegmentLength, formatNumber(uint64(l.cfg.MaxRecvDataSegmentLength)))
	}
	canTransit := transit
	if transit {
		switch l.stage {
		case StageSecurity:
			switch l.auth {
			case authStart:
				if l.chap != nil {
					return StepFail, loginErr(StatusInitiatorError, DetailAuthFailure, "initiator left the security stage without authenticating")
				}
				l.auth = authDone
			case authWaitAlgorithm, authWaitResponse:
				canTransit = false
			}
			if canTransit && !l.allowed {
				return StepFail, loginErr(StatusInitiatorError, DetailAuthorizationFailure, "initiator %q not allowed", l.p.InitiatorName)
			}
		case StageOperational:
			if n.offers() {
				canTransit = false
			}
		}
	}
	l.resp = l.resp[:0]
	for _, kv := range n.answers {
		l.resp = AppendText(l.resp, kv.Key, kv.Value)
	}
	l.respSent = 0
	l.transit, l.nsg = canTransit, nsg
	return l.sendChunk(resp)
}

func (l *Login) limits() targetLimits {
	return targetLimits{
		maxRecvDataSegmentLength: l.cfg.MaxRecvDataSegmentLength,
		maxBurstLength:           l.cfg.MaxBurstLength,
		firstBurstLength:         l.cfg.FirstBurstLength,
		maxOutstandingR2T:        l.cfg.MaxOutstandingR2T,
		maxConnections:           l.cfg.MaxConnections,
	}
}

// identify checks the login identity of the first request and finds the
// target and its access rules.
func (l *Login) identify() error {
	if l.p.InitiatorName == "" {
		return loginErr(StatusInitiatorError, DetailMissingParameter, "no InitiatorName")
	}
	var authorize func(string) (*Credentials, *Credentials, bool)
	switch l.p.SessionType {
	case SessionDiscovery:
		// A TargetName in a discovery login means nothing.
		l.p.TargetName = ""
		authorize = l.cfg.DiscoveryAuth
	default:
		if l.p.TargetName == "" {
			return loginErr(StatusInitiatorError, DetailMissingParameter, "normal session without TargetName")
		}
		var ok bool
		if l.cfg.LookupTarget != nil {
			l.target, ok = l.cfg.LookupTarget(l.p.TargetName)
		}
		if !ok {
			return loginErr(StatusInitiatorError, DetailTargetNotFound, "no target %q", l.p.TargetName)
		}
		if l.target.Redirect != "" {
			le := loginErr(StatusRedirect, DetailTargetMovedTemporarily, "target %q served elsewhere", l.p.TargetName)
			le.TargetAddress = l.target.Redirect
			return le
		}
		authorize = l.target.Authorize
	}
	l.allowed = true
	if authorize != nil {
		l.chap, l.mutual, l.allowed = authorize(l.p.InitiatorName)
	}
	return nil
}

// sendChunk puts the next piece of the pending response into resp.
func (l *Login) sendChunk(resp *PDU) (StepResult, error) {
	rest := l.resp[l.respSent:]
	if len(rest) > loginMaxDataSegment {
		resp.Data = rest[:loginMaxDataSegment:loginMaxDataSegment]
		l.respSent += loginMaxDataSegment
		l.more = true
		resp.SetLoginStages(false, true, l.stage, 0)
		return StepContinue, nil
	}
	resp.Data = rest[:len(rest):len(rest)]
	l.respSent = len(l.resp)
	l.more = false
	if !l.transit {
		resp.SetLoginStages(false, false, l.stage, 0)
		return StepContinue, nil
	}
	csg, nsg := l.stage, l.nsg
	if nsg != StageFullFeature {
		resp.SetLoginStages(true, false, csg, nsg)
		l.stage = nsg
		return StepContinue, nil
	}
	tsih, err := l.complete()
	if err != nil {
		return StepFail, err
	}
	l.p.TSIH = tsih
	resp.SetTSIH(tsih)
	resp.SetLoginStages(true, false, csg, nsg)
	l.stage = StageFullFeature
	l.state = loginDone
	l.p.StatSN = l.statSN
	return StepDone, nil
}

func (l *Login) complete() (uint16, error) {
	if l.cfg.Complete == nil {
		if l.p.TSIH != 0 {
			return l.p.TSIH, nil
		}
		return 1, nil
	}
	tsih, err := l.cfg.Complete(&l.p)
	if err != nil {
		return 0, err
	}
	if tsih == 0 {
		return 0, loginErr(StatusTargetError, DetailTargetError, "session glue returned TSIH 0")
	}
	return tsih, nil
}
