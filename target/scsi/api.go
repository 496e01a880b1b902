package scsi

import "fmt"

// This file fixes the contract between the SCSI layer and a transport (the
// iSCSI session code in package target). The implementation lives in the
// other files of this package.

// Status is a SCSI status byte (SAM-5).
type Status uint8

// SCSI status values.
const (
	StatusGood                Status = 0x00
	StatusCheckCondition      Status = 0x02
	StatusConditionMet        Status = 0x04
	StatusBusy                Status = 0x08
	StatusReservationConflict Status = 0x18
	StatusTaskSetFull         Status = 0x28
	StatusACAActive           Status = 0x30
	StatusTaskAborted         Status = 0x40
)

// String returns the status's SAM name.
func (s Status) String() string {
	switch s {
	case StatusGood:
		return "GOOD"
	case StatusCheckCondition:
		return "CHECK CONDITION"
	case StatusConditionMet:
		return "CONDITION MET"
	case StatusBusy:
		return "BUSY"
	case StatusReservationConflict:
		return "RESERVATION CONFLICT"
	case StatusTaskSetFull:
		return "TASK SET FULL"
	case StatusACAActive:
		return "ACA ACTIVE"
	case StatusTaskAborted:
		return "TASK ABORTED"
	}
	return fmt.Sprintf("status 0x%02x", uint8(s))
}

// Nexus identifies an I_T nexus: one initiator port talking to one target
// port. For iSCSI the initiator port name is "<initiator iqn>,i,0x<isid>"
// and the target port name "<target iqn>,t,0x<tpgt>" (RFC 7143 section 4.4).
// A Nexus value is comparable and used as a map key.
type Nexus struct {
	InitiatorPort string
	TargetPort    string
	// RelativePort is the relative target port identifier reported in VPD
	// page 83h and REPORT TARGET PORT GROUPS (1-based).
	RelativePort uint16
}

// TaskAttribute is the SAM task attribute of a command.
type TaskAttribute uint8

// Task attributes.
const (
	TaskSimple TaskAttribute = iota
	TaskOrdered
	TaskHeadOfQueue
	TaskACA
)

// Command is one SCSI command as a transport delivers it. The transport
// collects all Data-Out before it calls Execute.
type Command struct {
	Nexus Nexus
	LUN   uint64
	CDB   []byte
	// DataOut holds the whole data-out buffer (nil for commands without
	// one). Its length is what the initiator sent, which may differ from
	// what the CDB asks for; the SCSI layer checks.
	DataOut []byte
	// ExpectedDataIn is the initiator's expected data-in transfer length;
	// the layer never returns more, and the transport reports the residual.
	ExpectedDataIn uint32
	Attribute      TaskAttribute
	Tag            uint64
}

// Result is what Execute returns. A transport keeps Results in a pool and
// reuses them: Reset clears one and keeps its buffers, so a steady stream
// of reads and writes allocates nothing.
type Result struct {
	Status Status
	// Sense is the sense data when Status is CHECK CONDITION, nil otherwise.
	Sense []byte
	// DataIn is the data-in buffer to send to the initiator.
	DataIn []byte

	senseBuf [252]byte
	dataBuf  []byte
	// xferLen is the CDB's transfer length in bytes (see TransferLength);
	// Execute sets it on every call.
	xferLen int
}

// Reset clears r for reuse and keeps its buffers.
func (r *Result) Reset() {
	r.Status = StatusGood
	r.Sense = nil
	r.DataIn = nil
}

// DataBuffer returns a buffer of n bytes for data-in, reusing r's storage
// when it is large enough. Its contents are unspecified.
func (r *Result) DataBuffer(n int) []byte {
	if cap(r.dataBuf) < n {
		r.dataBuf = make([]byte, n)
	}
	return r.dataBuf[:n]
}

// SenseBuffer returns r's fixed sense buffer (252 bytes, the SPC maximum).
func (r *Result) SenseBuffer() []byte {
	return r.senseBuf[:]
}

// TMF is a task management function (SAM-5 section 7).
type TMF uint8

// Task management functions.
const (
	TMFAbortTask TMF = iota + 1
	TMFAbortTaskSet
	TMFClearACA
	TMFClearTaskSet
	TMFLogicalUnitReset
	TMFTargetWarmReset
	TMFTargetColdReset
	TMFQueryTask
	TMFQueryTaskSet
	TMFQueryAsyncEvent
)

// TMFResponse is the service response of a task management function.
type TMFResponse uint8

// Task management service responses.
const (
	TMFComplete TMFResponse = iota
	TMFSucceeded
	TMFRejected
	TMFIncorrectLUN
	TMFNotSupported
)
