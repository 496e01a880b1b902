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

func notFound(format string, a ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, a...), ErrNotFound)
}

func exists(format string, a ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, a...), ErrAlreadyExists)
}

func precondition(format string, a ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, a...), ErrFailedPrecondition)
}

func limit(format string, a ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, a...), ErrLimit)
}
