package target

import (
	"log/slog"
	"time"
)

// Defaults for Options, filled in by withDefaults (the only place defaults
// live).
const (
	DefaultListenAddr         = "127.0.0.1:3260"
	DefaultPortalGroupTag     = 1
	DefaultNopInterval        = 30 * time.Second
	DefaultNopTimeout         = 30 * time.Second
	DefaultLoginTimeout       = 15 * time.Second
	DefaultMaxSessions        = 1024
	DefaultMaxConnections     = 1024
	DefaultMaxLogins          = 64
	DefaultQueueDepth         = 128
	DefaultMaxRecvDataSegment = 256 << 10
	DefaultMaxBurstLength     = 1 << 20
	DefaultFirstBurstLength   = 256 << 10
	DefaultMaxOutstandingR2T  = 8
	// DefaultMaxCommandBuffer bounds the data-out buffer of one command.
	// Commands announcing more are handed to the SCSI layer without data
	// (which rejects them as too long) instead of sizing a buffer from an
	// initiator's number.
	DefaultMaxCommandBuffer = 16 << 20
	// DefaultMaxConnectionBuffer bounds the data-out buffers of all the
	// write commands of one connection; a write beyond it gets TASK SET
	// FULL, so a queue full of huge writes cannot exhaust memory.
	DefaultMaxConnectionBuffer = 256 << 20
)

// Options configures a Server. Zero fields take the defaults above.
type Options struct {
	// ListenAddr is the address ListenAndServe binds.
	ListenAddr string
	// PortalGroupTag is the target portal group tag of every portal.
	PortalGroupTag uint16
	// NopInterval is how long a connection may stay silent before the
	// target pings it with a NOP-In; NopTimeout how long the initiator has
	// to answer before the connection is dropped. A negative NopInterval
	// disables pings.
	NopInterval time.Duration
	NopTimeout  time.Duration
	// LoginTimeout bounds the whole login phase of a connection.
	LoginTimeout time.Duration
	// MaxSessions bounds the sessions of the whole server.
	MaxSessions int
	// MaxConnections bounds the open connections (logged in or not);
	// MaxLogins the connections still in the login phase. Connections
	// beyond either are closed at once.
	MaxConnections int
	MaxLogins      int
	// QueueDepth is the CmdSN window of a session (MaxCmdSN-ExpCmdSN+1).
	QueueDepth uint32
	// Offers made at login (see target/iscsi.LoginConfig).
	MaxRecvDataSegmentLength uint32
	MaxBurstLength           uint32
	FirstBurstLength         uint32
	MaxOutstandingR2T        uint32
	// MaxCommandBuffer bounds the data-out buffer of one command;
	// MaxConnectionBuffer those of all commands of one connection.
	MaxCommandBuffer    uint32
	MaxConnectionBuffer uint32
	// Logger receives connection and session events (slog.Default if nil).
	Logger *slog.Logger
	// Clock drives NOP-In pings and their timeouts (the system clock if
	// nil).
	Clock Clock
}

func (o Options) withDefaults() Options {
	if o.ListenAddr == "" {
		o.ListenAddr = DefaultListenAddr
	}
	if o.PortalGroupTag == 0 {
		o.PortalGroupTag = DefaultPortalGroupTag
	}
	if o.NopInterval == 0 {
		o.NopInterval = DefaultNopInterval
	}
	if o.NopTimeout <= 0 {
		o.NopTimeout = DefaultNopTimeout
	}
	if o.LoginTimeout <= 0 {
		o.LoginTimeout = DefaultLoginTimeout
	}
	if o.MaxSessions <= 0 {
		o.MaxSessions = DefaultMaxSessions
	}
	if o.MaxConnections <= 0 {
		o.MaxConnections = DefaultMaxConnections
	}
	if o.MaxLogins <= 0 {
		o.MaxLogins = DefaultMaxLogins
	}
	if o.QueueDepth == 0 {
		o.QueueDepth = DefaultQueueDepth
	}
	if o.MaxRecvDataSegmentLength == 0 {
		o.MaxRecvDataSegmentLength = DefaultMaxRecvDataSegment
	}
	if o.MaxBurstLength == 0 {
		o.MaxBurstLength = DefaultMaxBurstLength
	}
	if o.FirstBurstLength == 0 {
		o.FirstBurstLength = DefaultFirstBurstLength
	}
	if o.MaxOutstandingR2T == 0 {
		o.MaxOutstandingR2T = DefaultMaxOutstandingR2T
	}
	if o.MaxCommandBuffer == 0 {
		o.MaxCommandBuffer = DefaultMaxCommandBuffer
	}
	if o.MaxConnectionBuffer == 0 {
		o.MaxConnectionBuffer = DefaultMaxConnectionBuffer
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Clock == nil {
		o.Clock = SystemClock{}
	}
	return o
}

// Clock is the time source of NOP-In pings. Tests drive a fake one.
type Clock interface {
	Now() time.Time
	// NewTicker returns a channel that receives the time every d and a
	// function that stops it.
	NewTicker(d time.Duration) (<-chan time.Time, func())
}

// SystemClock is the Clock of the operating system.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// NewTicker wraps time.NewTicker.
func (SystemClock) NewTicker(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTicker(d)
	return t.C, t.Stop
}
