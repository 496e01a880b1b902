package iscsi

import (
	"context"
	"errors"
	"fmt"

	wire "github.com/vbs-storage/vbs/target/iscsi"
	"github.com/vbs-storage/vbs/target/scsi"
)

// ErrCDB means a CDB this initiator cannot send.
var ErrCDB = errors.New("iscsi: bad CDB")

// maxCDBLength is the CDB room in a SCSI Command BHS; longer CDBs need an
// extended CDB AHS, which this initiator does not send.
const maxCDBLength = 16

// Response is the outcome of a SCSI command that reached its end at the
// target (whatever its status).
type Response struct {
	Status Status
	// Sense is the sense data of a CHECK CONDITION (nil otherwise).
	Sense []byte
	// Residual is the residual count; Overflow and Underflow say which.
	Residual  uint32
	Overflow  bool
	Underflow bool
	// DataIn is how many bytes of the data-in buffer the target filled.
	DataIn int
}

// Err returns nil for GOOD (and CONDITION MET), *SenseError for CHECK
// CONDITION with sense data, and *StatusError otherwise.
func (r *Response) Err() error {
	switch r.Status {
	case StatusGood, StatusConditionMet:
		return nil
	case StatusCheckCondition:
		if info, ok := scsi.ParseSense(r.Sense); ok {
			return &SenseError{Key: info.Key, ASC: uint8(info.ASC >> 8), ASCQ: uint8(info.ASC), Sense: r.Sense}
		}
	}
	return &StatusError{Status: r.Status}
}

// Command is a SCSI command in flight, returned by Start. Its owner must
// call Wait exactly once; Wait also sends the data the target solicits
// with R2Ts. After Wait returns the Command must not be used.
type Command struct {
	s *Session
	t *task
}

// Tag returns the Initiator Task Tag (for TaskManagement).
func (c *Command) Tag() uint32 { return c.t.itt }

// Execute runs one SCSI command on lun and waits for it. dataOut is the
// data to write (nil for none); dataIn receives data (nil for none); a
// command cannot have both. Neither buffer may be touched until Execute
// returns. A non-nil error means the command's outcome is unknown
// (session failure, ctx end, reject, task aborted); otherwise the SCSI
// status is in the Response.
//
// If ctx ends first, Execute asks the target to abort the task and
// returns at once; the target can no longer write into dataIn.
func (s *Session) Execute(ctx context.Context, lun uint64, cdb, dataOut, dataIn []byte) (Response, error) {
	c, err := s.Start(ctx, lun, cdb, dataOut, dataIn)
	if err != nil {
		return Response{}, err
	}
	return c.Wait(ctx)
}

// Start submits a SCSI command and returns without waiting for it. The
// buffers belong to the command until Wait returns.
func (s *Session) Start(ctx context.Context, lun uint64, cdb, dataOut, dataIn []byte) (Command, error) {
	if len(cdb) == 0 || len(cdb) > maxCDBLength {
		return Command{}, fmt.Errorf("%w: length %d", ErrCDB, len(cdb))
	}
	if len(dataOut) > 0 && len(dataIn) > 0 {
		return Command{}, fmt.Errorf("%w: bidirectional commands are not supported", ErrCDB)
	}
	if uint64(len(dataOut)) > uint64(^uint32(0)) || uint64(len(dataIn)) > uint64(^uint32(0)) {
		return Command{}, fmt.Errorf("%w: transfer longer than 4 GiB", ErrCDB)
	}
	t := s.getTask(taskSCSI)
	t.lun = lun
	copy(t.cdb[:], cdb)
	t.dataOut = dataOut
	t.dataIn = dataIn
	if err := s.submit(ctx, t); err != nil {
		s.release(t)
		return Command{}, err
	}
	return Command{s: s, t: t}, nil
}

// release recycles a task its owner is done with. A task still in the
// map (registered) is abandoned instead, for the reader to recycle.
func (s *Session) release(t *task) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.registered {
		t.mu.Lock()
		t.abandoned = true
		t.mu.Unlock()
		return
	}
	s.putLocked(t)
}

// Wait waits for the command, answering the target's R2Ts, and returns
// its outcome (see Execute).
func (c Command) Wait(ctx context.Context) (Response, error) {
	s, t := c.s, c.t
	if t == nil {
		return Response{}, fmt.Errorf("%w: zero Command", ErrCDB)
	}
	var pending [maxOutstandingR2TLimit]r2t
	for {
		// An ended ctx wins over pending R2Ts: no more data is sent.
		if ctx.Err() != nil && s.abandon(t) {
			return Response{}, ctx.Err()
		}
		select {
		case <-t.signal:
		case <-ctx.Done():
			if s.abandon(t) {
				return Response{}, ctx.Err()
			}
		}
		t.mu.Lock()
		done := t.done
		n := copy(pending[:], t.r2ts[:t.nR2T])
		t.nR2T = 0
		t.mu.Unlock()
		if done {
			break
		}
		for _, r := range pending[:n] {
			if err := s.sendR2TData(t, r); err != nil {
				break // the session failed; t completes with the error
			}
		}
	}
	t.mu.Lock()
	resp := Response{
		Status:    t.status,
		Residual:  t.residual,
		Overflow:  t.flags&wire.FlagOverflow != 0,
		Underflow: t.flags&wire.FlagUnderflow != 0,
		DataIn:    int(t.received),
	}
	if t.senseLen > 0 {
		resp.Sense = append([]byte(nil), t.sense[:t.senseLen]...)
	}
	err := t.err
	t.mu.Unlock()
	s.putTask(t)
	return resp, err
}

// abandon gives up on t after its owner's context ended. It returns false
// if t completed meanwhile (the owner then reads the result as usual).
// Otherwise the target is asked to abort t; the reader recycles t.
func (s *Session) abandon(t *task) bool {
	t.mu.Lock()
	if t.done {
		t.mu.Unlock()
		return false
	}
	t.abandoned = true
	itt, cmdSN, lun, kind := t.itt, t.cmdSN, t.lun, t.kind
	t.mu.Unlock()
	if kind == taskSCSI {
		a := s.getTask(taskTMF)
		a.immediate = true
		a.tmfFunc = TMFAbortTask
		a.lun = lun
		a.refTag = itt
		a.refCmdSN = cmdSN
		a.abandoned = true
		if err := s.submit(context.Background(), a); err != nil {
			s.release(a)
		}
	}
	return true
}

// TMFunction is a task management function (RFC 7143 section 11.5.1).
type TMFunction uint8

// Task management functions.
const (
	TMFAbortTask        TMFunction = 1
	TMFAbortTaskSet     TMFunction = 2
	TMFClearACA         TMFunction = 3
	TMFClearTaskSet     TMFunction = 4
	TMFLogicalUnitReset TMFunction = 5
	TMFTargetWarmReset  TMFunction = 6
	TMFTargetColdReset  TMFunction = 7
)

// TMFResponse is the response of a task management function (RFC 7143
// section 11.6.1).
type TMFResponse uint8

// Task management responses.
const (
	TMFFunctionComplete     TMFResponse = 0
	TMFTaskDoesNotExist     TMFResponse = 1
	TMFLUNDoesNotExist      TMFResponse = 2
	TMFTaskStillAllegiant   TMFResponse = 3
	TMFReassignNotSupported TMFResponse = 4
	TMFNotSupported         TMFResponse = 5
	TMFAuthorizationFailed  TMFResponse = 6
	TMFRejected             TMFResponse = 255
)

func (r TMFResponse) String() string {
	switch r {
	case TMFFunctionComplete:
		return "function complete"
	case TMFTaskDoesNotExist:
		return "task does not exist"
	case TMFLUNDoesNotExist:
		return "LUN does not exist"
	case TMFTaskStillAllegiant:
		return "task still allegiant"
	case TMFReassignNotSupported:
		return "task reassignment not supported"
	case TMFNotSupported:
		return "function not supported"
	case TMFAuthorizationFailed:
		return "function authorization failed"
	case TMFRejected:
		return "function rejected"
	}
	return fmt.Sprintf("TMF response %d", uint8(r))
}

// TaskManagement runs a task management function on lun. refTag is the
// tag of the task to abort (TMFAbortTask only; see Command.Tag). When the
// function completes, the affected commands end with ErrTaskAborted.
func (s *Session) TaskManagement(ctx context.Context, fn TMFunction, lun uint64, refTag uint32) (TMFResponse, error) {
	t := s.getTask(taskTMF)
	t.immediate = true
	t.tmfFunc = fn
	t.lun = lun
	t.refTag = wire.ReservedITT
	if fn == TMFAbortTask {
		t.refTag = refTag
		s.mu.Lock()
		if ref := s.tasks[refTag]; ref != nil {
			t.refCmdSN = ref.cmdSN
		} else {
			t.refCmdSN = s.cmdSN
		}
		s.mu.Unlock()
	}
	if err := s.submit(ctx, t); err != nil {
		s.release(t)
		return 0, fmt.Errorf("iscsi: task management %d: %w", fn, err)
	}
	if err := s.await(ctx, t); err != nil {
		return 0, fmt.Errorf("iscsi: task management %d: %w", fn, err)
	}
	resp := TMFResponse(t.response)
	s.putTask(t)
	return resp, nil
}

// await waits for a task that needs no Data-Out. On a nil error the
// caller reads the result and recycles t; otherwise t is released.
func (s *Session) await(ctx context.Context, t *task) error {
	for {
		select {
		case <-t.signal:
		case <-ctx.Done():
			if s.abandon(t) {
				return ctx.Err()
			}
		}
		t.mu.Lock()
		done, err := t.done, t.err
		t.mu.Unlock()
		if done {
			if err != nil {
				s.putTask(t)
			}
			return err
		}
		if t.kind == taskText {
			return nil // one step of a text exchange
		}
	}
}

// NOP pings the target with a NOP-Out and waits for its NOP-In.
func (s *Session) NOP(ctx context.Context) error {
	t := s.getTask(taskNOP)
	t.immediate = true
	if err := s.submit(ctx, t); err != nil {
		s.release(t)
		return fmt.Errorf("iscsi: nop: %w", err)
	}
	if err := s.await(ctx, t); err != nil {
		return fmt.Errorf("iscsi: nop: %w", err)
	}
	s.putTask(t)
	return nil
}

// LogoutError is a Logout Response other than success.
type LogoutError struct{ Response byte }

func (e *LogoutError) Error() string {
	return fmt.Sprintf("iscsi: logout refused: response %d", e.Response)
}

// Logout closes the session with a Logout Request, waits for the answer
// and closes the connection. Commands still in flight fail with
// ErrSessionClosed.
func (s *Session) Logout(ctx context.Context) error {
	t := s.getTask(taskLogout)
	t.immediate = true
	t.logoutWhy = logoutReasonClose
	if err := s.submit(ctx, t); err != nil {
		s.release(t)
		s.Close()
		return fmt.Errorf("iscsi: logout: %w", err)
	}
	if err := s.await(ctx, t); err != nil {
		s.Close()
		return fmt.Errorf("iscsi: logout: %w", err)
	}
	resp := t.response
	s.putTask(t)
	s.Close()
	if resp != logoutResponseSuccess {
		return &LogoutError{Response: resp}
	}
	return nil
}

// text runs one text exchange (following continuations) and returns the
// target's keys.
func (s *Session) text(ctx context.Context, req []byte) ([]wire.KV, error) {
	t := s.getTask(taskText)
	t.textReq = req
	t.textTTT = wire.ReservedITT
	for {
		if err := s.submit(ctx, t); err != nil {
			s.release(t)
			return nil, fmt.Errorf("iscsi: text request: %w", err)
		}
		if err := s.await(ctx, t); err != nil {
			return nil, fmt.Errorf("iscsi: text request: %w", err)
		}
		t.mu.Lock()
		final := t.textFinal
		t.mu.Unlock()
		if final {
			break
		}
		t.textReq = nil // continuation: empty request with the target's TTT
	}
	kvs, err := wire.ParseText(t.text)
	s.putTask(t)
	if err != nil {
		return nil, fmt.Errorf("%w: text response: %v", ErrProtocol, err)
	}
	return kvs, nil
}
