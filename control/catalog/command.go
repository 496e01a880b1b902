package catalog

import (
	"encoding/json"
	"fmt"
	"time"
)

// CommandType identifies a catalog command in the Raft log. Values are
// part of the log format: never reuse or renumber one.
type CommandType uint8

// Command types.
const (
	CmdCreateVolume     CommandType = 1
	CmdSetVolumeState   CommandType = 2
	CmdDeleteVolume     CommandType = 3
	CmdRemoveVolume     CommandType = 4
	CmdCreateSnapshot   CommandType = 5
	CmdSetSnapshotState CommandType = 6
	CmdDeleteSnapshot   CommandType = 7
	CmdRemoveSnapshot   CommandType = 8
	CmdGrantAccess      CommandType = 9
	CmdRevokeAccess     CommandType = 10
	CmdCreateOperation  CommandType = 11
	CmdUpdateOperation  CommandType = 12
	CmdCancelOperation  CommandType = 13
	CmdUpsertNode       CommandType = 14
	CmdSetVolumeSize    CommandType = 15
)

// Command framing: a type byte, a version byte, then the body.
const (
	commandVersion1       uint8 = 1
	currentCommandVersion       = commandVersion1
	commandHeaderLen            = 2
)

// Command is one catalog change. Encode frames it as
// [type byte][version byte][JSON body]; the version lets a body's format
// change, and an unknown type is skipped by Apply rather than failing.
type Command interface {
	Type() CommandType
}

// CreateVolume records a new volume in state creating.
type CreateVolume struct {
	Name      string            `json:"name"`
	SizeBytes uint64            `json:"size_bytes"`
	BlockSize uint32            `json:"block_size"`
	Labels    map[string]string `json:"labels,omitempty"`
	Source    *SnapshotRef      `json:"source,omitempty"`
	RequestID string            `json:"request_id,omitempty"`
	Node      string            `json:"node"`
	Time      time.Time         `json:"time"`
}

// SetVolumeState moves a volume to another state (validated).
type SetVolumeState struct {
	Name   string      `json:"name"`
	State  VolumeState `json:"state"`
	Reason string      `json:"reason,omitempty"`
	Time   time.Time   `json:"time"`
}

// DeleteVolume marks a volume deleting. Without Cascade it is refused
// while the volume has exports, snapshots or clones.
type DeleteVolume struct {
	Name    string    `json:"name"`
	Cascade bool      `json:"cascade"`
	Time    time.Time `json:"time"`
}

// RemoveVolume drops a deleting volume from the catalog once the node
// has deleted it.
type RemoveVolume struct {
	Name string `json:"name"`
}

// CreateSnapshot records a snapshot in state creating.
type CreateSnapshot struct {
	Volume string    `json:"volume"`
	Name   string    `json:"name"`
	Time   time.Time `json:"time"`
}

// SetSnapshotState moves a snapshot to another state.
type SetSnapshotState struct {
	Volume string        `json:"volume"`
	Name   string        `json:"name"`
	State  SnapshotState `json:"state"`
	Reason string        `json:"reason,omitempty"`
}

// DeleteSnapshot marks a snapshot deleting; refused while clones use it.
type DeleteSnapshot struct {
	Volume string `json:"volume"`
	Name   string `json:"name"`
}

// RemoveSnapshot drops a deleting snapshot from the catalog.
type RemoveSnapshot struct {
	Volume string `json:"volume"`
	Name   string `json:"name"`
}

// GrantAccess records an export and marks the volume in use.
type GrantAccess struct {
	Volume       string    `json:"volume"`
	InitiatorIQN string    `json:"initiator_iqn"`
	TargetIQN    string    `json:"target_iqn"`
	Portal       string    `json:"portal"`
	CHAP         *CHAP     `json:"chap,omitempty"`
	Time         time.Time `json:"time"`
}

// RevokeAccess removes an export; the last one makes the volume available.
type RevokeAccess struct {
	Volume       string    `json:"volume"`
	InitiatorIQN string    `json:"initiator_iqn"`
	Time         time.Time `json:"time"`
}

// CreateOperation records a pending operation after checking it may run.
type CreateOperation struct {
	ID        string    `json:"id"`
	Kind      OpKind    `json:"kind"`
	Volume    string    `json:"volume"`
	SizeBytes uint64    `json:"size_bytes,omitempty"`
	Snapshot  string    `json:"snapshot,omitempty"`
	Time      time.Time `json:"time"`
}

// UpdateOperation records an operation's progress or outcome.
type UpdateOperation struct {
	ID       string    `json:"id"`
	State    OpState   `json:"state"`
	Progress uint32    `json:"progress"`
	Message  string    `json:"message,omitempty"`
	Time     time.Time `json:"time"`
}

// CancelOperation asks an operation to stop.
type CancelOperation struct {
	ID   string    `json:"id"`
	Time time.Time `json:"time"`
}

// UpsertNode records what is known about a node.
type UpsertNode struct {
	Node Node `json:"node"`
}

// SetVolumeSize records a volume's new size once the node has grown it.
type SetVolumeSize struct {
	Name      string    `json:"name"`
	SizeBytes uint64    `json:"size_bytes"`
	Time      time.Time `json:"time"`
}

// Type implements Command.
func (CreateVolume) Type() CommandType { return CmdCreateVolume }

// Type implements Command.
func (SetVolumeState) Type() CommandType { return CmdSetVolumeState }

// Type implements Command.
func (DeleteVolume) Type() CommandType { return CmdDeleteVolume }

// Type implements Command.
func (RemoveVolume) Type() CommandType { return CmdRemoveVolume }

// Type implements Command.
func (CreateSnapshot) Type() CommandType { return CmdCreateSnapshot }

// Type implements Command.
func (SetSnapshotState) Type() CommandType { return CmdSetSnapshotState }

// Type implements Command.
func (DeleteSnapshot) Type() CommandType { return CmdDeleteSnapshot }

// Type implements Command.
func (RemoveSnapshot) Type() CommandType { return CmdRemoveSnapshot }

// Type implements Command.
func (GrantAccess) Type() CommandType { return CmdGrantAccess }

// Type implements Command.
func (RevokeAccess) Type() CommandType { return CmdRevokeAccess }

// Type implements Command.
func (CreateOperation) Type() CommandType { return CmdCreateOperation }

// Type implements Command.
func (UpdateOperation) Type() CommandType { return CmdUpdateOperation }

// Type implements Command.
func (CancelOperation) Type() CommandType { return CmdCancelOperation }

// Type implements Command.
func (UpsertNode) Type() CommandType { return CmdUpsertNode }

// Type implements Command.
func (SetVolumeSize) Type() CommandType { return CmdSetVolumeSize }

// Encode frames a command for the Raft log.
func Encode(c Command) ([]byte, error) {
	body, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode command %d: %w", c.Type(), err)
	}
	out := make([]byte, 0, commandHeaderLen+len(body))
	out = append(out, byte(c.Type()), currentCommandVersion)
	return append(out, body...), nil
}

// Decode parses a framed command. It returns ErrUnknownCommand (wrapped)
// for a type or version this binary does not know, and ErrInvalid for
// bytes that are not a command.
func Decode(b []byte) (Command, error) {
	if len(b) < commandHeaderLen {
		return nil, fmt.Errorf("decode command: %d bytes: %w", len(b), ErrInvalid)
	}
	t, ver, body := CommandType(b[0]), b[1], b[commandHeaderLen:]
	if ver != commandVersion1 {
		return nil, fmt.Errorf("decode command %d version %d: %w", t, ver, ErrUnknownCommand)
	}
	var c Command
	switch t {
	case CmdCreateVolume:
		c = &CreateVolume{}
	case CmdSetVolumeState:
		c = &SetVolumeState{}
	case CmdDeleteVolume:
		c = &DeleteVolume{}
	case CmdRemoveVolume:
		c = &RemoveVolume{}
	case CmdCreateSnapshot:
		c = &CreateSnapshot{}
	case CmdSetSnapshotState:
		c = &SetSnapshotState{}
	case CmdDeleteSnapshot:
		c = &DeleteSnapshot{}
	case CmdRemoveSnapshot:
		c = &RemoveSnapshot{}
	case CmdGrantAccess:
		c = &GrantAccess{}
	case CmdRevokeAccess:
		c = &RevokeAccess{}
	case CmdCreateOperation:
		c = &CreateOperation{}
	case CmdUpdateOperation:
		c = &UpdateOperation{}
	case CmdCancelOperation:
		c = &CancelOperation{}
	case CmdUpsertNode:
		c = &UpsertNode{}
	case CmdSetVolumeSize:
		c = &SetVolumeSize{}
	default:
		return nil, fmt.Errorf("decode command %d: %w", t, ErrUnknownCommand)
	}
	if err := json.Unmarshal(body, c); err != nil {
		return nil, fmt.Errorf("decode command %d: %v: %w", t, err, ErrInvalid)
	}
	return c, nil
}
