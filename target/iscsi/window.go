package iscsi

// SerialLess reports whether a precedes b in RFC 1982 serial number
// arithmetic over 32 bits (the arithmetic of CmdSN, StatSN and DataSN,
// RFC 7143 section 4.2.2.1). Values exactly 2^31 apart are undefined by
// RFC 1982; SerialLess reports false for both orders.
func SerialLess(a, b uint32) bool {
	d := int32(a - b)
	return d < 0 && d != -1<<31
}

// SerialLessEq reports a == b or SerialLess(a, b).
func SerialLessEq(a, b uint32) bool { return a == b || SerialLess(a, b) }

// maxWindowDepth bounds the queue depth of a CmdWindow (and so the memory
// it holds).
const maxWindowDepth = 1 << 16

// Admission is what a CmdWindow decided about one command.
type Admission uint8

// Admission values.
const (
	// AdmitDeliver means the command is next in CmdSN order (or
	// immediate): hand it to the SCSI layer now, then drain Next.
	AdmitDeliver Admission = iota
	// AdmitHeld means the command is in the window but ahead of a gap; the
	// window keeps it until the gap is filled and Next returns it.
	AdmitHeld
	// AdmitDrop means the CmdSN is outside [ExpCmdSN, MaxCmdSN] or already
	// held: RFC 7143 section 4.2.2.1 says to ignore the command silently.
	AdmitDrop
)

// CmdWindow is the command numbering of one session (RFC 7143 section
// 4.2.2.1): it accepts non-immediate commands whose CmdSN lies in
// [ExpCmdSN, MaxCmdSN], delivers them in CmdSN order, and bounds how many
// are outstanding (the queue depth).
//
// MaxCmdSN is ExpCmdSN - 1 + depth - running, where running counts
// delivered commands not yet completed with Done. Delivering a command
// raises ExpCmdSN and running together, and completing one lowers running,
// so MaxCmdSN never decreases, as the RFC requires.
//
// A CmdWindow is a pure value holder: no goroutines, no clock, not safe for
// concurrent use (the session guards it).
type CmdWindow[T any] struct {
	exp     uint32
	depth   uint32
	running uint32
	// held and present form a ring indexed by CmdSN modulo its length, a
	// power of two so that the mapping survives CmdSN wrap-around.
	held    []T
	present []bool
	mask    uint32
	nheld   int
}

// NewCmdWindow returns a window whose first expected CmdSN is first (the
// CmdSN of the leading login request) and whose queue depth is depth
// (at least 1).
func NewCmdWindow[T any](first, depth uint32) *CmdWindow[T] {
	depth = min(max(depth, 1), maxWindowDepth)
	size := uint32(1)
	for size < depth {
		size <<= 1
	}
	return &CmdWindow[T]{
		exp:     first,
		depth:   depth,
		held:    make([]T, size),
		present: make([]bool, size),
		mask:    size - 1,
	}
}

// ExpCmdSN returns the next CmdSN the target expects.
func (w *CmdWindow[T]) ExpCmdSN() uint32 { return w.exp }

// MaxCmdSN returns the largest CmdSN the target accepts now.
func (w *CmdWindow[T]) MaxCmdSN() uint32 { return w.exp - 1 + w.depth - w.running }

// Running returns how many delivered non-immediate commands have not
// completed.
func (w *CmdWindow[T]) Running() uint32 { return w.running }

// Held returns how many commands wait behind a gap.
func (w *CmdWindow[T]) Held() int { return w.nheld }

// Admit decides about a command with the given CmdSN. Immediate commands
// are always delivered and take no window slot (RFC 7143 section 3.2.2.1);
// the caller must not call Done for them. For AdmitHeld the window keeps v
// and returns it later from Next.
func (w *CmdWindow[T]) Admit(cmdSN uint32, immediate bool, v T) Admission {
	if immediate {
		return AdmitDeliver
	}
	if SerialLess(cmdSN, w.exp) || SerialLess(w.MaxCmdSN(), cmdSN) {
		return AdmitDrop
	}
	if cmdSN == w.exp {
		w.exp++
		w.running++
		return AdmitDeliver
	}
	slot := cmdSN & w.mask
	if w.present[slot] {
		return AdmitDrop
	}
	w.held[slot] = v
	w.present[slot] = true
	w.nheld++
	return AdmitHeld
}

// Next returns the held command whose CmdSN is now ExpCmdSN, if any, and
// counts it as delivered. Call it until it reports false after every
// AdmitDeliver.
func (w *CmdWindow[T]) Next() (T, bool) {
	var zero T
	slot := w.exp & w.mask
	if w.nheld == 0 || !w.present[slot] {
		return zero, false
	}
	v := w.held[slot]
	w.held[slot] = zero
	w.present[slot] = false
	w.nheld--
	w.exp++
	w.running++
	return v, true
}

// Done records the completion of one delivered non-immediate command,
// which opens one slot at the top of the window.
func (w *CmdWindow[T]) Done() {
	if w.running > 0 {
		w.running--
	}
}

// Drain removes and returns every held command (when the session ends),
// calling f for each.
func (w *CmdWindow[T]) Drain(f func(T)) {
	var zero T
	for i := range w.held {
		if w.present[i] {
			f(w.held[i])
			w.held[i] = zero
			w.present[i] = false
		}
	}
	w.nheld = 0
}
