// Package scsi is the SPC-4/SBC-4 logical-unit layer of the VBS iSCSI
// target: it turns CDBs and data-out buffers into calls on a Device and
// answers with status, sense data and data-in.
//
// It owns the per-LU state SCSI defines (unit attentions per I_T nexus,
// mode pages, persistent reservations, EXTENDED COPY results) and nothing
// else. It must never open sockets, speak iSCSI, start goroutines that
// outlive a call, or keep package-level mutable state.
package scsi

import (
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"sync"
	"sync/atomic"
)

// Defaults for TargetOptions and LUOptions, filled in by withDefaults.
const (
	DefaultVendorID            = "VBS"
	DefaultProductID           = "VBS-DISK"
	DefaultRevision            = "0001"
	DefaultMaxTransferBytes    = 8 << 20
	DefaultOptimalTransferByte = 1 << 20
	DefaultMaxUnmapBlocks      = 1 << 20
	DefaultMaxUnmapDescriptors = 256
	// DefaultMaxWriteSameBlocks stays below 65536 so that initiators that
	// probe a 65536-block WRITE SAME with a plain WRITE of the same size
	// (libiscsi) are told the limit first; 0xFFFF is also what WRITE
	// SAME(10) can express.
	DefaultMaxWriteSameBlocks = 0xFFFF
	DefaultMaxCompareAndWrite = 255
	DefaultTargetPortGroup    = 1
	// naaIEEERegisteredExtended is the NAA type nibble of a 16-byte
	// designator; we use NAA 6 with a locally administered OUI-less value.
	naaLocallyAssigned = 0x3
)

// Errors of the management API.
var (
	// ErrLUNExists is returned by AddLU when the LUN is already in use.
	ErrLUNExists = errors.New("scsi: lun already exists")
	// ErrNoSuchLUN is returned by RemoveLU for an unknown LUN.
	ErrNoSuchLUN = errors.New("scsi: no such lun")
	// ErrBadDevice is returned by AddLU for a device the layer cannot serve.
	ErrBadDevice = errors.New("scsi: unsupported device")
)

// TargetOptions configures a Target. Zero fields take the defaults above.
type TargetOptions struct {
	Name      string // the SCSI target name (iSCSI IQN), used in VPD 83h
	VendorID  string // default "VBS" (8 chars, space padded in INQUIRY)
	ProductID string // default "VBS-DISK" (16 chars)
	Revision  string // default "0001"

	// MaxTransferBytes bounds one READ/WRITE (VPD B0h MAXIMUM TRANSFER
	// LENGTH); OptimalTransferBytes is its OPTIMAL TRANSFER LENGTH.
	MaxTransferBytes     uint32
	OptimalTransferBytes uint32
	// MaxUnmapBlocks and MaxUnmapDescriptors bound one UNMAP command.
	MaxUnmapBlocks      uint32
	MaxUnmapDescriptors uint32
	// MaxWriteSameBlocks bounds one WRITE SAME.
	MaxWriteSameBlocks uint64
	// MaxCompareAndWriteBlocks bounds one COMPARE AND WRITE (at most 255).
	MaxCompareAndWriteBlocks uint8
	// TargetPortGroup is the ALUA target port group of every port (one
	// active/optimized group).
	TargetPortGroup uint16
}

func (o TargetOptions) withDefaults() TargetOptions {
	if o.VendorID == "" {
		o.VendorID = DefaultVendorID
	}
	if o.ProductID == "" {
		o.ProductID = DefaultProductID
	}
	if o.Revision == "" {
		o.Revision = DefaultRevision
	}
	if o.MaxTransferBytes == 0 {
		o.MaxTransferBytes = DefaultMaxTransferBytes
	}
	if o.OptimalTransferBytes == 0 {
		o.OptimalTransferBytes = DefaultOptimalTransferByte
	}
	if o.OptimalTransferBytes > o.MaxTransferBytes {
		o.OptimalTransferBytes = o.MaxTransferBytes
	}
	if o.MaxUnmapBlocks == 0 {
		o.MaxUnmapBlocks = DefaultMaxUnmapBlocks
	}
	if o.MaxUnmapDescriptors == 0 {
		o.MaxUnmapDescriptors = DefaultMaxUnmapDescriptors
	}
	if o.MaxWriteSameBlocks == 0 {
		o.MaxWriteSameBlocks = DefaultMaxWriteSameBlocks
	}
	if o.MaxCompareAndWriteBlocks == 0 {
		o.MaxCompareAndWriteBlocks = DefaultMaxCompareAndWrite
	}
	if o.TargetPortGroup == 0 {
		o.TargetPortGroup = DefaultTargetPortGroup
	}
	return o
}

// LUOptions configures one logical unit.
type LUOptions struct {
	// Serial is the unit serial number (VPD 80h); default derived from the
	// target name and LUN.
	Serial string
	// NAA is the NAA identifier (VPD 83h); 0 derives a stable one from the
	// target name and LUN.
	NAA uint64
	// ReadOnly makes every write fail with DATA PROTECT / WRITE PROTECTED
	// and sets WP in the mode parameter header.
	ReadOnly bool
	// WriteCache is the initial WCE bit of the caching mode page. The zero
	// value (false) means write-through: every write is forced FUA. Callers
	// that want the VBS default (write-back) set it to true.
	WriteCache bool
	// PhysicalBlockExponent is log2(physical block / logical block)
	// reported by READ CAPACITY(16).
	PhysicalBlockExponent uint8
}

// Target is a SCSI target device: a set of logical units addressed by LUN,
// and the I_T nexuses that talk to them. All methods are safe for
// concurrent use.
type Target struct {
	opts TargetOptions

	mu      sync.RWMutex
	lus     map[uint64]*logicalUnit
	nexuses map[Nexus]struct{}
}

// NewTarget returns an empty target.
func NewTarget(opts TargetOptions) *Target {
	return &Target{
		opts:    opts.withDefaults(),
		lus:     make(map[uint64]*logicalUnit),
		nexuses: make(map[Nexus]struct{}),
	}
}

// AddLU attaches dev as logical unit lun. It fails if lun is in use, if the
// block size is not a power of two of at least 512, or if persistent
// reservations saved with APTPL cannot be reloaded. Every existing LU gets a
// REPORTED LUNS DATA HAS CHANGED unit attention on every nexus.
func (t *Target) AddLU(lun uint64, dev Device, opts LUOptions) error {
	if lun >= maxFlatLUN {
		return fmt.Errorf("add lu %d: lun beyond flat addressing: %w", lun, ErrBadDevice)
	}
	bs := dev.BlockSize()
	if bs < 512 || bs&(bs-1) != 0 {
		return fmt.Errorf("add lu %d: block size %d: %w", lun, bs, ErrBadDevice)
	}
	l := newLU(t, lun, dev, opts)
	if err := l.loadPR(); err != nil {
		return fmt.Errorf("add lu %d: %w", lun, err)
	}
	t.mu.Lock()
	if _, ok := t.lus[lun]; ok {
		t.mu.Unlock()
		return fmt.Errorf("add lu %d: %w", lun, ErrLUNExists)
	}
	t.lus[lun] = l
	t.mu.Unlock()
	t.lunsChanged(lun)
	return nil
}

// lunsChanged raises REPORTED LUNS DATA HAS CHANGED on every LU but except.
func (t *Target) lunsChanged(except uint64) {
	for _, o := range t.allLUs() {
		if o.lun != except {
			o.raiseAll(uaReportedLUNsChanged, nil)
		}
	}
}

// RemoveLU detaches logical unit lun. Commands already running on it
// finish against its Device; later ones get LOGICAL UNIT NOT SUPPORTED.
func (t *Target) RemoveLU(lun uint64) error {
	t.mu.Lock()
	if _, ok := t.lus[lun]; !ok {
		t.mu.Unlock()
		return fmt.Errorf("remove lu %d: %w", lun, ErrNoSuchLUN)
	}
	delete(t.lus, lun)
	t.mu.Unlock()
	t.lunsChanged(lun)
	return nil
}

// LUNs returns the configured LUNs in ascending order.
func (t *Target) LUNs() []uint64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]uint64, 0, len(t.lus))
	for lun := range t.lus {
		out = append(out, lun)
	}
	slices.Sort(out)
	return out
}

// RunsInline reports whether cmd may run on the caller's receive path: it is
// a READ or WRITE (6, 10, 12 or 16) for a logical unit whose Device is
// Nonblocking. Execute then returns without waiting on anything but the
// range lock that COMPARE AND WRITE and atomic writes hold briefly.
func (t *Target) RunsInline(cmd *Command) bool {
	if len(cmd.CDB) == 0 {
		return false
	}
	switch cmd.CDB[0] {
	case opRead6, opRead10, opRead12, opRead16, opWrite6, opWrite10, opWrite12, opWrite16:
	default:
		return false
	}
	l := t.lu(cmd.LUN)
	return l != nil && l.inline
}

func (t *Target) lu(lun uint64) *logicalUnit {
	t.mu.RLock()
	l := t.lus[lun]
	t.mu.RUnlock()
	return l
}

// allLUs returns a snapshot of the LUs.
func (t *Target) allLUs() []*logicalUnit {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]*logicalUnit, 0, len(t.lus))
	for _, l := range t.lus {
		out = append(out, l)
	}
	return out
}

// NexusOpened records a new I_T nexus: it gets a POWER ON, RESET, OR BUS
// DEVICE RESET OCCURRED unit attention on every LU.
func (t *Target) NexusOpened(n Nexus) {
	t.mu.Lock()
	t.nexuses[n] = struct{}{}
	t.mu.Unlock()
	for _, l := range t.allLUs() {
		l.mu.Lock()
		st := l.itLocked(n)
		st.ua = 0
		st.raise(uaPowerOn)
		l.mu.Unlock()
	}
}

// NexusClosed forgets the per-nexus volatile state of n (pending unit
// attentions, RESERVE(6/10) reservations). Persistent reservation
// registrations survive.
func (t *Target) NexusClosed(n Nexus) {
	t.mu.Lock()
	delete(t.nexuses, n)
	t.mu.Unlock()
	for _, l := range t.allLUs() {
		l.mu.Lock()
		delete(l.its, n)
		if l.spc2Held && l.spc2Holder == n {
			l.spc2Held = false
		}
		l.mu.Unlock()
	}
}

// TaskManagement performs the SCSI-side effects of a task management
// function from n addressed to lun. Cancelling the affected commands is the
// transport's job. For ABORT TASK, ABORT TASK SET, CLEAR TASK SET, QUERY TASK
// and QUERY TASK SET the answer depends on the task set, which only the
// transport knows: this returns TMFComplete and the transport substitutes
// TMFSucceeded where it found a matching task.
func (t *Target) TaskManagement(n Nexus, fn TMF, lun uint64) TMFResponse {
	switch fn {
	case TMFTargetWarmReset, TMFTargetColdReset:
		for _, l := range t.allLUs() {
			l.reset(uaPowerOn)
		}
		return TMFComplete
	case TMFClearACA:
		// NormACA is not supported (standard INQUIRY NORMACA=0).
		return TMFNotSupported
	}
	l := t.lu(lun)
	if l == nil {
		return TMFIncorrectLUN
	}
	switch fn {
	case TMFAbortTask, TMFAbortTaskSet, TMFQueryTask, TMFQueryTaskSet:
		return TMFComplete
	case TMFClearTaskSet:
		l.mu.Lock()
		tas := l.mode.tas
		l.mu.Unlock()
		if !tas {
			// Other nexuses' commands vanish without a status: tell them.
			l.raiseAll(uaCommandsCleared, &n)
		}
		return TMFComplete
	case TMFLogicalUnitReset:
		l.reset(uaLUReset)
		return TMFComplete
	case TMFQueryAsyncEvent:
		l.mu.Lock()
		st := l.its[n]
		pending := st != nil && st.ua != 0
		l.mu.Unlock()
		if pending {
			return TMFSucceeded
		}
		return TMFComplete
	}
	return TMFNotSupported
}

// logicalUnit is one LU: a Device and the SCSI state kept for it.
type logicalUnit struct {
	t    *Target
	lun  uint64
	dev  Device
	opts LUOptions

	blockSize  uint32
	blockShift uint
	naa        [8]byte
	serial     string

	unmapper Unmapper
	zeroer   ZeroWriter
	lbaStat  LBAStatusReporter
	caw      CompareAndWriter
	atomicW  AtomicWriter
	copier   Copier
	meta     MetadataStore
	// inline: the device is Nonblocking (see Target.RunsInline).
	inline bool

	// knownBlocks is the capacity last reported; growth raises CAPACITY
	// DATA HAS CHANGED.
	knownBlocks atomic.Uint64

	ranges rangeLock

	mu         sync.Mutex // guards everything below
	its        map[Nexus]*itState
	mode       modeState
	pr         prState
	prSaved    bool // the metadata store holds a non-empty PR blob
	spc2Held   bool
	spc2Holder Nexus
	xcopy      xcopyState
}

func newLU(t *Target, lun uint64, dev Device, opts LUOptions) *logicalUnit {
	l := &logicalUnit{
		t:         t,
		lun:       lun,
		dev:       dev,
		opts:      opts,
		blockSize: dev.BlockSize(),
		its:       make(map[Nexus]*itState),
	}
	for s := uint(0); 1<<s < l.blockSize; s++ {
		l.blockShift = s + 1
	}
	l.unmapper, _ = dev.(Unmapper)
	l.zeroer, _ = dev.(ZeroWriter)
	l.lbaStat, _ = dev.(LBAStatusReporter)
	l.caw, _ = dev.(CompareAndWriter)
	l.atomicW, _ = dev.(AtomicWriter)
	l.copier, _ = dev.(Copier)
	if nb, ok := dev.(Nonblocking); ok {
		l.inline = nb.Nonblocking()
	}
	l.meta, _ = dev.(MetadataStore)
	naa := opts.NAA
	if naa == 0 {
		naa = deriveNAA(t.opts.Name, lun)
	}
	putUint64(l.naa[:], naa)
	l.serial = opts.Serial
	if l.serial == "" {
		l.serial = fmt.Sprintf("%016x", naa&(1<<60-1))
	}
	l.mode = defaultMode(opts)
	l.knownBlocks.Store(dev.Blocks())
	return l
}

// deriveNAA builds a stable NAA 6 (IEEE registered extended) style
// identifier from the target name and LUN, marked locally assigned by an
// all-zero-but-type layout: NAA nibble 3 (locally assigned) + 60 bits of
// FNV-1a hash.
func deriveNAA(name string, lun uint64) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	var b [8]byte
	putUint64(b[:], lun)
	h.Write(b[:])
	return uint64(naaLocallyAssigned)<<60 | h.Sum64()&(1<<60-1)
}

// blocks returns the device capacity and raises CAPACITY DATA HAS CHANGED
// on every nexus once when it grew since last seen.
func (l *logicalUnit) blocks() uint64 {
	n := l.dev.Blocks()
	if old := l.knownBlocks.Load(); n != old && l.knownBlocks.CompareAndSwap(old, n) {
		l.raiseAll(uaCapacityChanged, nil)
	}
	return n
}

// reset performs a logical unit reset: drops RESERVE(6/10) reservations and
// raises ua on every nexus.
func (l *logicalUnit) reset(ua uaBit) {
	l.mu.Lock()
	l.spc2Held = false
	l.mu.Unlock()
	l.raiseAll(ua, nil)
}

// raiseAll establishes ua for every known nexus on l except skip.
func (l *logicalUnit) raiseAll(ua uaBit, skip *Nexus) {
	l.t.mu.RLock()
	nexuses := make([]Nexus, 0, len(l.t.nexuses))
	for n := range l.t.nexuses {
		nexuses = append(nexuses, n)
	}
	l.t.mu.RUnlock()
	l.mu.Lock()
	for _, n := range nexuses {
		if skip != nil && n == *skip {
			continue
		}
		l.itLocked(n).raise(ua)
	}
	for n, st := range l.its {
		if skip != nil && n == *skip {
			continue
		}
		st.raise(ua)
	}
	l.mu.Unlock()
}

// itLocked returns the state of nexus n, creating it. l.mu must be held.
func (l *logicalUnit) itLocked(n Nexus) *itState {
	st := l.its[n]
	if st == nil {
		st = &itState{}
		l.its[n] = st
	}
	return st
}

// TaskAbortedStatus reports the TAS bit of LU lun's control mode page: when
// true, commands of other nexuses that a task management function aborts
// must end with TASK ABORTED status instead of vanishing silently (SAM-5
// 5.6). The transport, which owns the task set, asks this when it applies
// ABORT TASK SET, CLEAR TASK SET or a reset issued through another nexus.
func (t *Target) TaskAbortedStatus(lun uint64) bool {
	l := t.lu(lun)
	if l == nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mode.tas
}
