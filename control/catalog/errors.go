package catalog

import (
	"errors"
	"fmt"
)

// Sentinel errors a command can fail with. Apply wraps them with what was
// refused; callers tell them apart with errors.Is and map them to API codes.
var (
	ErrNotFound           = errors.New("not found")
	ErrAlreadyExists      = errors.New("already exists")
	ErrFailedPrecondition = errors.New("failed precondition")
	ErrLimit              = errors.New("limit reached")
	ErrInvalid            = errors.New("invalid command")
	// ErrUnknownCommand marks a command type this binary does not know;
	// Apply skips it so that newer leaders can add commands.
	ErrUnknownCommand = errors.New("unknown command type")
	// ErrNotLeader means this node cannot accept writes; retry on the leader.
	ErrNotLeader = errors.New("not the raft leader")
)

// refusal is a refused command: its message says what and why; Unwrap
// gives the sentinel that classifies it.
type refusal struct {
	msg  string
	kind error
}

func (e *refusal) Error() string { return e.msg }
func (e *refusal) Unwrap() error { return e.kind }

func refuse(kind error, format string, a ...any) error {
	return &refusal{msg: fmt.Sprintf(format, a...), kind: kind}
}

func notFound(format string, a ...any) error {
	return refuse(ErrNotFound, format+" not found", a...)
}

func exists(format string, a ...any) error {
	return refuse(ErrAlreadyExists, format+" already exists", a...)
}

func precondition(format string, a ...any) error {
	return refuse(ErrFailedPrecondition, format, a...)
}

func limit(format string, a ...any) error {
	return refuse(ErrLimit, "limit reached: "+format, a...)
}
