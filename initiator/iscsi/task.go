package iscsi

import (
	"encoding/binary"
	"fmt"
	"sync"

	wire "github.com/vbs-storage/vbs/target/iscsi"
)

// taskKind says which PDUs answer a task.
type taskKind uint8

const (
	taskSCSI taskKind = iota
	taskTMF
	taskNOP
	taskText
	taskLogout
)

// maxSenseLength is the largest sense data SPC allows (and we keep).
const maxSenseLength = 252

// senseLengthSize is the SenseLength field in front of sense data in a
// SCSI Response data segment (RFC 7143 section 11.4.7.2).
const senseLengthSize = 2

// r2t is one Ready To Transfer the target sent.
type r2t struct {
	ttt    uint32
	offset uint32
	length uint32
}

// task is one exchange in flight, keyed by its Initiator Task Tag. The
// reader goroutine fills the result fields under mu; the owner (the
// goroutine that submitted it) waits on signal and reads them under mu.
// A task is recycled by its owner after completion, or by the reader if
// the owner abandoned it first.
type task struct {
	kind      taskKind
	itt       uint32
	cmdSN     uint32
	lun       uint64
	immediate bool
	// registered is true while the task is in the session's task map.
	registered bool

	// Request fields (owner-written before submit, read-only after).
	cdb     [16]byte
	dataOut []byte
	// tmf fields.
	tmfFunc   TMFunction
	refTag    uint32
	refCmdSN  uint32
	textReq   []byte
	textTTT   uint32
	logoutWhy byte

	// signal wakes the owner: an R2T arrived or the task completed.
	signal chan struct{}

	mu        sync.Mutex
	abandoned bool
	done      bool
	err       error
	dataIn    []byte
	received  uint32 // bytes of dataIn filled (contiguous with in-order data)
	expDataSN uint32
	nextR2TSN uint32
	r2ts      [maxOutstandingR2TLimit]r2t
	nR2T      int
	status    Status
	response  byte
	flags     byte
	residual  uint32
	sense     [maxSenseLength]byte
	senseLen  int
	// text exchange state.
	text      []byte
	textFinal bool
}

func newTask() *task {
	return &task{signal: make(chan struct{}, 1)}
}

// reset clears t for reuse, keeping its channel and buffers.
func (t *task) reset() {
	select {
	case <-t.signal:
	default:
	}
	sig, text := t.signal, t.text[:0]
	*t = task{signal: sig, text: text}
}

// wake signals the owner without blocking.
func (t *task) wake() {
	select {
	case t.signal <- struct{}{}:
	default:
	}
}

// finishLocked completes t with err (nil for a normal completion).
// t.mu must be held. It reports whether the owner abandoned t, in which
// case the caller recycles it.
func (t *task) finishLocked(err error) (abandoned bool) {
	if t.done {
		return false
	}
	t.done, t.err = true, err
	t.wake()
	return t.abandoned
}

// dataInPDU applies one SCSI Data-In PDU to t. It checks every field the
// target controls against what we asked for; an error is a protocol
// violation. final reports a Data-In carrying status (phase collapse).
func (t *task) dataInPDU(h *wire.BHS, data []byte, inOrder bool) (final bool, err error) {
	if t.kind != taskSCSI {
		return false, fmt.Errorf("%w: Data-In for a non-SCSI task 0x%x", ErrProtocol, t.itt)
	}
	if sn := h.DataSN(); sn != t.expDataSN {
		return false, fmt.Errorf("%w: Data-In DataSN %d, want %d", ErrProtocol, sn, t.expDataSN)
	}
	t.expDataSN++
	off := uint64(h.BufferOffset())
	end := off + uint64(len(data))
	if end > uint64(len(t.dataIn)) {
		return false, fmt.Errorf("%w: Data-In [%d, %d) beyond the %d-byte buffer", ErrProtocol, off, end, len(t.dataIn))
	}
	if inOrder && off != uint64(t.received) {
		return false, fmt.Errorf("%w: Data-In at offset %d, want %d", ErrProtocol, off, t.received)
	}
	flags := h.Flags()
	status := flags&wire.FlagStatus != 0
	if status && flags&wire.FlagFinal == 0 {
		return false, fmt.Errorf("%w: Data-In with S and without F", ErrProtocol)
	}
	if !t.abandoned {
		copy(t.dataIn[off:end], data)
	}
	if uint32(end) > t.received {
		t.received = uint32(end)
	}
	if !status {
		return false, nil
	}
	t.status = Status(h.Byte3())
	t.flags = flags
	t.residual = h.ResidualCount()
	return true, nil
}

// responsePDU applies a SCSI Response to t.
func (t *task) responsePDU(h *wire.BHS, data []byte) error {
	if t.kind != taskSCSI {
		return fmt.Errorf("%w: SCSI Response for a non-SCSI task 0x%x", ErrProtocol, t.itt)
	}
	t.response = h.Byte2()
	t.status = Status(h.Byte3())
	t.flags = h.Flags()
	t.residual = h.ResidualCount()
	t.senseLen = 0
	if len(data) >= senseLengthSize {
		n := int(binary.BigEndian.Uint16(data))
		if n > len(data)-senseLengthSize {
			return fmt.Errorf("%w: SenseLength %d in a %d-byte segment", ErrProtocol, n, len(data))
		}
		t.senseLen = copy(t.sense[:], data[senseLengthSize:senseLengthSize+n])
	}
	return nil
}

// r2tPDU queues an R2T for t after checking it against the negotiated
// limits and the write's length.
func (t *task) r2tPDU(h *wire.BHS, p *Params) error {
	if t.kind != taskSCSI || len(t.dataOut) == 0 {
		return fmt.Errorf("%w: R2T for task 0x%x that has nothing to write", ErrProtocol, t.itt)
	}
	if h.TTT() == wire.ReservedITT {
		return fmt.Errorf("%w: R2T with the reserved transfer tag", ErrProtocol)
	}
	if sn := h.DataSN(); sn != t.nextR2TSN {
		return fmt.Errorf("%w: R2TSN %d, want %d", ErrProtocol, sn, t.nextR2TSN)
	}
	off, n := h.BufferOffset(), h.ResidualCount()
	if n == 0 || n > p.MaxBurstLength || uint64(off)+uint64(n) > uint64(len(t.dataOut)) {
		return fmt.Errorf("%w: R2T for [%d, +%d) of a %d-byte write (MaxBurstLength %d)",
			ErrProtocol, off, n, len(t.dataOut), p.MaxBurstLength)
	}
	if t.nR2T >= int(min(p.MaxOutstandingR2T, maxOutstandingR2TLimit)) {
		return fmt.Errorf("%w: more than %d outstanding R2Ts", ErrProtocol, p.MaxOutstandingR2T)
	}
	t.nextR2TSN++
	t.r2ts[t.nR2T] = r2t{ttt: h.TTT(), offset: off, length: n}
	t.nR2T++
	return nil
}
