package iscsi

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	wire "github.com/vbs-storage/vbs/target/iscsi"
)

// Defaults filled in by Config.withDefaults.
const (
	// DefaultMaxRecvDataSegmentLength is the data segment length we offer
	// to receive.
	DefaultMaxRecvDataSegmentLength = 262144
	// DefaultMaxBurstLength is the largest solicited burst we offer.
	DefaultMaxBurstLength = 1 << 20
	// DefaultFirstBurstLength is the largest unsolicited burst we offer.
	DefaultFirstBurstLength = 262144
	// DefaultMaxOutstandingR2T is how many R2Ts per task we accept at once.
	DefaultMaxOutstandingR2T = 4
	// DefaultLoginTimeout bounds the whole login exchange when the
	// caller's context has no earlier deadline.
	DefaultLoginTimeout = 15 * time.Second
	// DefaultPort is the IANA iSCSI port, added to addresses without one.
	DefaultPort = "3260"
	// minDataSegmentLength is the smallest MaxRecvDataSegmentLength RFC
	// 7143 allows (section 13.12).
	minDataSegmentLength = 512
	// maxOutstandingR2TLimit caps what we offer: it sizes a per-task array.
	maxOutstandingR2TLimit = 16
)

// ISID qualifier types (RFC 7143 section 11.12.5): the top two bits of the
// six-byte ISID.
const (
	isidTypeRandom = 0x2
	isidTypeShift  = 46
	isidMask       = 1<<48 - 1
)

// Credentials are a CHAP user name and secret.
type Credentials struct {
	User   string
	Secret string
}

// Dialer opens the TCP connection of a session; *net.Dialer satisfies it.
type Dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// Config describes one session to open. The zero value of every optional
// field means its default.
type Config struct {
	// Addr is the target portal, "host:port" (port defaults to 3260).
	Addr string
	// InitiatorName is our iSCSI name (IQN). Required.
	InitiatorName string
	// InitiatorAlias is sent as InitiatorAlias when not empty.
	InitiatorAlias string
	// TargetName is the target's iSCSI name; Dial requires it, Discover
	// ignores it.
	TargetName string
	// CHAP authenticates us to the target; MutualCHAP, which needs CHAP,
	// authenticates the target to us. Their secrets must differ
	// (RFC 7143 section 12.1.3).
	CHAP, MutualCHAP *Credentials
	// HeaderDigest and DataDigest ask for CRC32C digests; the target
	// may refuse them, see Params.
	HeaderDigest, DataDigest bool
	// MaxRecvDataSegmentLength is the largest data segment we accept
	// (512 to 2^24-1; default 262144).
	MaxRecvDataSegmentLength uint32
	// MaxBurstLength, FirstBurstLength and MaxOutstandingR2T are our
	// offers; the target may lower them.
	MaxBurstLength    uint32
	FirstBurstLength  uint32
	MaxOutstandingR2T uint16
	// DisableImmediateData offers ImmediateData=No and InitialR2T=Yes, so
	// that every write waits for R2Ts (useful to exercise that path).
	DisableImmediateData bool
	// ISID is the initiator part of the session ID (low 48 bits). Zero
	// means a random ISID of the "random" qualifier type.
	ISID uint64
	// Dialer opens the connection (default: a *net.Dialer).
	Dialer Dialer
	// LoginTimeout bounds login when ctx has no earlier deadline.
	LoginTimeout time.Duration
	// Logger receives session events (default: discard).
	Logger *slog.Logger
}

// ErrConfig wraps every configuration mistake.
var ErrConfig = errors.New("iscsi: invalid config")

// withDefaults returns a copy of c with defaults filled in, or an error
// wrapping ErrConfig.
func (c Config) withDefaults(needTarget bool) (Config, error) {
	if c.Addr == "" {
		return c, fmt.Errorf("%w: no target address", ErrConfig)
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		c.Addr = net.JoinHostPort(c.Addr, DefaultPort)
	}
	if c.InitiatorName == "" {
		return c, fmt.Errorf("%w: no initiator name", ErrConfig)
	}
	if needTarget && c.TargetName == "" {
		return c, fmt.Errorf("%w: no target name", ErrConfig)
	}
	if c.MutualCHAP != nil && c.CHAP == nil {
		return c, fmt.Errorf("%w: mutual CHAP needs CHAP", ErrConfig)
	}
	if c.CHAP != nil && (c.CHAP.User == "" || c.CHAP.Secret == "") {
		return c, fmt.Errorf("%w: CHAP needs a user and a secret", ErrConfig)
	}
	if c.MutualCHAP != nil {
		if c.MutualCHAP.Secret == "" {
			return c, fmt.Errorf("%w: mutual CHAP needs a secret", ErrConfig)
		}
		if c.MutualCHAP.Secret == c.CHAP.Secret {
			return c, fmt.Errorf("%w: mutual CHAP secret equals the initiator secret", ErrConfig)
		}
	}
	if c.MaxRecvDataSegmentLength == 0 {
		c.MaxRecvDataSegmentLength = DefaultMaxRecvDataSegmentLength
	}
	if c.MaxRecvDataSegmentLength < minDataSegmentLength || c.MaxRecvDataSegmentLength > wire.MaxDataSegmentLength {
		return c, fmt.Errorf("%w: MaxRecvDataSegmentLength %d outside [%d, %d]", ErrConfig,
			c.MaxRecvDataSegmentLength, minDataSegmentLength, wire.MaxDataSegmentLength)
	}
	if c.MaxBurstLength == 0 {
		c.MaxBurstLength = DefaultMaxBurstLength
	}
	if c.FirstBurstLength == 0 {
		c.FirstBurstLength = min(DefaultFirstBurstLength, c.MaxBurstLength)
	}
	if c.MaxBurstLength < minDataSegmentLength || c.MaxBurstLength > wire.MaxDataSegmentLength ||
		c.FirstBurstLength < minDataSegmentLength || c.FirstBurstLength > c.MaxBurstLength {
		return c, fmt.Errorf("%w: burst lengths %d/%d out of range", ErrConfig, c.FirstBurstLength, c.MaxBurstLength)
	}
	if c.MaxOutstandingR2T == 0 {
		c.MaxOutstandingR2T = DefaultMaxOutstandingR2T
	}
	if c.MaxOutstandingR2T > maxOutstandingR2TLimit {
		return c, fmt.Errorf("%w: MaxOutstandingR2T %d > %d", ErrConfig, c.MaxOutstandingR2T, maxOutstandingR2TLimit)
	}
	if c.ISID == 0 {
		isid, err := randomISID()
		if err != nil {
			return c, err
		}
		c.ISID = isid
	}
	c.ISID &= isidMask
	if c.Dialer == nil {
		c.Dialer = &net.Dialer{}
	}
	if c.LoginTimeout == 0 {
		c.LoginTimeout = DefaultLoginTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// randomISID returns an ISID of the random qualifier type: T=10b, A=0,
// B, C and D random.
func randomISID() (uint64, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return 0, fmt.Errorf("random isid: %w", err)
	}
	v := binary.BigEndian.Uint64(b[:]) & (1<<40 - 1) // B(16) C(8) D(16)
	return uint64(isidTypeRandom)<<isidTypeShift | v, nil
}
