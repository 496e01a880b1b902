package iscsi

import (
	"errors"
	"fmt"
)

// Sentinel errors callers tell apart with errors.Is.
var (
	// ErrSessionClosed means the session was closed, logged out or lost
	// its connection; the wrapped error says which.
	ErrSessionClosed = errors.New("iscsi: session closed")
	// ErrProtocol means the target broke RFC 7143; the session is failed.
	ErrProtocol = errors.New("iscsi: target protocol violation")
	// ErrTaskAborted means a task management function ended the task.
	ErrTaskAborted = errors.New("iscsi: task aborted")
	// ErrAuth means the target failed our authentication of it (mutual
	// CHAP) or asked for authentication we cannot do.
	ErrAuth = errors.New("iscsi: target authentication failed")
	// ErrNegotiation means the target answered a login key with a value
	// the rules of RFC 7143 section 6 do not allow.
	ErrNegotiation = errors.New("iscsi: bad negotiation answer")
)

// Login status classes (RFC 7143 section 11.13.5).
const (
	LoginClassSuccess           = 0x00
	LoginClassRedirection       = 0x01
	LoginClassInitiatorErr      = 0x02
	LoginClassTargetErr         = 0x03
	LoginDetailAuthFailure      = 0x01
	LoginDetailForbidden        = 0x02
	LoginDetailNotFound         = 0x03
	LoginDetailMovedTemporarily = 0x01 // with class Redirection: temporarily
	LoginDetailMovedPermanently = 0x02 // with class Redirection: permanently
)

// LoginError is a login the target refused: Class and Detail are the
// status class and detail of the final Login Response.
type LoginError struct {
	Class, Detail byte
}

func (e *LoginError) Error() string {
	return fmt.Sprintf("iscsi: login failed: status class 0x%02x detail 0x%02x (%s)", e.Class, e.Detail, e.describe())
}

func (e *LoginError) describe() string {
	switch {
	case e.Class == LoginClassInitiatorErr && e.Detail == LoginDetailAuthFailure:
		return "authentication failure"
	case e.Class == LoginClassInitiatorErr && e.Detail == LoginDetailForbidden:
		return "authorization failure"
	case e.Class == LoginClassInitiatorErr && e.Detail == LoginDetailNotFound:
		return "target not found"
	case e.Class == LoginClassInitiatorErr:
		return "initiator error"
	case e.Class == LoginClassTargetErr:
		return "target error"
	}
	return "unknown"
}

// AuthFailure reports whether the target refused our credentials.
func (e *LoginError) AuthFailure() bool {
	return e.Class == LoginClassInitiatorErr && e.Detail == LoginDetailAuthFailure
}

// RedirectError is a login the target redirected (status class 1): the
// caller should log in at Addr instead.
type RedirectError struct {
	// Addr is the TargetAddress the target returned ("host:port[,tpgt]"
	// as sent; see Host for the dialable part).
	Addr string
	// Permanent is true for "target moved permanently".
	Permanent bool
	Detail    byte
}

func (e *RedirectError) Error() string {
	kind := "temporarily"
	if e.Permanent {
		kind = "permanently"
	}
	return fmt.Sprintf("iscsi: target moved %s to %s", kind, e.Addr)
}

// Host returns the dialable host:port of the redirect, dropping the
// portal group tag.
func (e *RedirectError) Host() string {
	host, _ := splitTargetAddress(e.Addr)
	return host
}

// RejectError is a Reject PDU the target sent for one of our PDUs.
type RejectError struct {
	Reason byte
}

// Reject reasons (RFC 7143 section 11.17.1).
const (
	RejectDataDigest        = 0x02
	RejectSNACK             = 0x03
	RejectProtocolError     = 0x04
	RejectNotSupported      = 0x05
	RejectImmediateCmd      = 0x06
	RejectTaskInProgress    = 0x07
	RejectInvalidDataAck    = 0x08
	RejectInvalidPDUField   = 0x09
	RejectOutOfResources    = 0x0a
	RejectWaitingForLogout  = 0x0c
	rejectHeaderMinDataSize = 48 // the rejected BHS travels in the data segment
)

func (e *RejectError) Error() string {
	return fmt.Sprintf("iscsi: target rejected the PDU: reason 0x%02x", e.Reason)
}

// SenseError is a command that ended in CHECK CONDITION with sense data.
type SenseError struct {
	Key  SenseKey
	ASC  uint8
	ASCQ uint8
	// Sense is a copy of the raw sense data.
	Sense []byte
}

func (e *SenseError) Error() string {
	return fmt.Sprintf("scsi: check condition: sense key 0x%x (%s) asc/ascq 0x%02x/0x%02x", uint8(e.Key), e.Key, e.ASC, e.ASCQ)
}

// StatusError is a command that ended with a status other than GOOD and
// without usable sense data.
type StatusError struct {
	Status Status
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("scsi: status 0x%02x (%s)", uint8(e.Status), e.Status)
}

// TargetFailureError is a SCSI Response whose iSCSI response code was not
// "command completed at target".
type TargetFailureError struct {
	Response byte
}

func (e *TargetFailureError) Error() string {
	return fmt.Sprintf("iscsi: command failed at target: response 0x%02x", e.Response)
}
