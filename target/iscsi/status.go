package iscsi

import "fmt"

// Login Status-Class values (RFC 7143 section 11.13.5).
const (
	StatusSuccess        uint8 = 0x00
	StatusRedirect       uint8 = 0x01
	StatusInitiatorError uint8 = 0x02
	StatusTargetError    uint8 = 0x03
)

// Login Status-Detail values. Their meaning depends on the class they are
// sent with; the prefix of each group names it.
const (
	// With StatusRedirect.
	DetailTargetMovedTemporarily uint8 = 0x01
	DetailTargetMovedPermanently uint8 = 0x02

	// With StatusInitiatorError.
	DetailInitiatorError          uint8 = 0x00
	DetailAuthFailure             uint8 = 0x01
	DetailAuthorizationFailure    uint8 = 0x02
	DetailTargetNotFound          uint8 = 0x03
	DetailTargetRemoved           uint8 = 0x04
	DetailUnsupportedVersion      uint8 = 0x05
	DetailTooManyConnections      uint8 = 0x06
	DetailMissingParameter        uint8 = 0x07
	DetailCantIncludeInSession    uint8 = 0x08
	DetailSessionTypeNotSupported uint8 = 0x09
	DetailSessionDoesNotExist     uint8 = 0x0a
	DetailInvalidDuringLogin      uint8 = 0x0b

	// With StatusTargetError.
	DetailTargetError        uint8 = 0x00
	DetailServiceUnavailable uint8 = 0x01
	DetailOutOfResources     uint8 = 0x02
)

// Byte offsets of the login response status fields.
const (
	offLoginStatusClass  = 36
	offLoginStatusDetail = 37
)

// LoginError is a login failure with its Status-Class and Status-Detail
// (RFC 7143 section 11.13.5). Reason is for logs only; it is never sent.
type LoginError struct {
	Class, Detail uint8
	Reason        string
	// TargetAddress is where a redirect (StatusRedirect) sends the
	// initiator, as a TargetAddress value ("10.0.0.2:3260,1"); the failure
	// response carries it (RFC 7143 section 11.13.5).
	TargetAddress string
}

// Error implements error.
func (e *LoginError) Error() string {
	return fmt.Sprintf("iscsi login: status 0x%02x%02x (%s): %s", e.Class, e.Detail, statusName(e.Class, e.Detail), e.Reason)
}

// Status returns the two status bytes as one number (0x0203 for class
// 0x02, detail 0x03), the form logs and RFC tables use.
func (e *LoginError) Status() uint16 { return uint16(e.Class)<<8 | uint16(e.Detail) }

func loginErr(class, detail uint8, format string, args ...any) *LoginError {
	return &LoginError{Class: class, Detail: detail, Reason: fmt.Sprintf(format, args...)}
}

// initiatorErr is the common "initiator error" (0x0200) for protocol
// violations during login.
func initiatorErr(format string, args ...any) *LoginError {
	return loginErr(StatusInitiatorError, DetailInitiatorError, format, args...)
}

func statusName(class, detail uint8) string {
	switch class {
	case StatusSuccess:
		return "success"
	case StatusRedirect:
		switch detail {
		case DetailTargetMovedTemporarily:
			return "target moved temporarily"
		case DetailTargetMovedPermanently:
			return "target moved permanently"
		}
		return "redirect"
	case StatusInitiatorError:
		switch detail {
		case DetailInitiatorError:
			return "initiator error"
		case DetailAuthFailure:
			return "authentication failure"
		case DetailAuthorizationFailure:
			return "authorization failure"
		case DetailTargetNotFound:
			return "target not found"
		case DetailTargetRemoved:
			return "target removed"
		case DetailUnsupportedVersion:
			return "unsupported version"
		case DetailTooManyConnections:
			return "too many connections"
		case DetailMissingParameter:
			return "missing parameter"
		case DetailCantIncludeInSession:
			return "can't include in session"
		case DetailSessionTypeNotSupported:
			return "session type not supported"
		case DetailSessionDoesNotExist:
			return "session does not exist"
		case DetailInvalidDuringLogin:
			return "invalid during login"
		}
		return "initiator error"
	case StatusTargetError:
		switch detail {
		case DetailTargetError:
			return "target error"
		case DetailServiceUnavailable:
			return "service unavailable"
		case DetailOutOfResources:
			return "out of resources"
		}
		return "target error"
	}
	return "unknown status"
}

// StepResult tells the caller of Login.Step what to do with the response.
type StepResult uint8

const (
	// StepContinue: send the response and read the next Login Request.
	StepContinue StepResult = iota
	// StepDone: send the response; the connection is in full feature
	// phase with Login.Params.
	StepDone
	// StepFail: send the response (a failure status) and close the
	// connection.
	StepFail
)

func (r StepResult) String() string {
	switch r {
	case StepContinue:
		return "continue"
	case StepDone:
		return "done"
	case StepFail:
		return "fail"
	}
	return fmt.Sprintf("StepResult(%d)", uint8(r))
}
