package device

import (
	"sync"
)

// stripeCount is how many lock stripes a device has. Regions map to stripes
// modulo stripeCount, so I/O to different regions rarely contends, and a
// request can hold every stripe it covers at once (two-phase locking in
// ascending stripe order, which cannot deadlock).
const stripeCount = 64

// cacheLine pads each stripe so that neighbouring locks do not share a
// cache line between cores.
const cacheLine = 64

// stripe is one lock of a stripedLock. The mem device keeps the chunks of
// the regions that map to a stripe next to its lock.
type stripe struct {
	mu     sync.RWMutex
	chunks map[uint64]*chunk // mem device only; guarded by mu
	_      [cacheLine - 32]byte
}

// stripedLock locks ranges of regions. A region is 1<<shift bytes of the
// device. Locking a range of regions takes every stripe the range touches,
// in ascending order; a range that spans stripeCount regions or more takes
// all of them.
type stripedLock struct {
	shift   uint
	stripes [stripeCount]stripe
}

// stripeSpan returns the stripes regions first..last (inclusive) touch, as
// up to two ascending runs [a0,a1] and [b0,b1] (b0 > b1 means no second
// run).
func stripeSpan(first, last uint64) (a0, a1, b0, b1 int) {
	if last-first+1 >= stripeCount {
		return 0, stripeCount - 1, 1, 0
	}
	s0, s1 := int(first%stripeCount), int(last%stripeCount)
	if s0 <= s1 {
		return s0, s1, 1, 0
	}
	// The range wraps: lower stripes first keeps the global order.
	return 0, s1, s0, stripeCount - 1
}

// regions returns the first and last region of the byte range [off, off+n).
// n must be positive.
func (l *stripedLock) regions(off, n uint64) (first, last uint64) {
	return off >> l.shift, (off + n - 1) >> l.shift
}

// lock takes the stripes of the byte range [off, off+n), exclusively or
// shared.
func (l *stripedLock) lock(off, n uint64, exclusive bool) {
	a0, a1, b0, b1 := stripeSpan(l.regions(off, n))
	for i := a0; i <= a1; i++ {
		l.lockOne(i, exclusive)
	}
	for i := b0; i <= b1; i++ {
		l.lockOne(i, exclusive)
	}
}

// unlock releases what lock(off, n, exclusive) took.
func (l *stripedLock) unlock(off, n uint64, exclusive bool) {
	a0, a1, b0, b1 := stripeSpan(l.regions(off, n))
	for i := a0; i <= a1; i++ {
		l.unlockOne(i, exclusive)
	}
	for i := b0; i <= b1; i++ {
		l.unlockOne(i, exclusive)
	}
}

func (l *stripedLock) lockOne(i int, exclusive bool) {
	if exclusive {
		l.stripes[i].mu.Lock()
	} else {
		l.stripes[i].mu.RLock()
	}
}

func (l *stripedLock) unlockOne(i int, exclusive bool) {
	if exclusive {
		l.stripes[i].mu.Unlock()
	} else {
		l.stripes[i].mu.RUnlock()
	}
}

// stripeOf returns the stripe region r maps to.
func (l *stripedLock) stripeOf(r uint64) *stripe {
	return &l.stripes[r%stripeCount]
}
