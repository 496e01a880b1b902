package iscsi

import (
	"testing"
)

// endpoint is one target a test logs in to.
type endpoint struct {
	addr string
	iqn  string
}

// targetEnv describes a running target implementation the integration
// tests run against: tgtd, or VBS's own `vbs target`.
type targetEnv struct {
	name string
	// discovery is where SendTargets is asked; discoverable lists the
	// targets it must report.
	discovery    string
	discoverable []endpoint
	open         endpoint // no authentication; fileLUN and nullLUN
	chap         endpoint // one-way CHAP (chapUser / chapSecret); fileLUN
	mutual       endpoint // mutual CHAP (mutualUser / targetUser); fileLUN
	digest       endpoint // accepts CRC32C digests; fileLUN
	fileLUN      uint64
	nullLUN      uint64
	luns         []uint64 // what REPORT LUNS returns on open
	fileBlocks   uint64   // capacity of open's fileLUN in 512-byte blocks
}

func (e *targetEnv) config(ep endpoint) Config {
	return Config{Addr: ep.addr, InitiatorName: iqnInitiator, TargetName: ep.iqn}
}

// eachTarget runs fn as a subtest against every target implementation.
func eachTarget(t *testing.T, fn func(t *testing.T, e *targetEnv)) {
	t.Helper()
	envs := []func(testing.TB) *targetEnv{tgtdEnv, vbsEnv}
	for _, mk := range envs {
		e := mk(t)
		t.Run(e.name, func(t *testing.T) {
			leakCheck(t)
			fn(t, e)
		})
	}
}

// tgtdEnv returns the tgtd fixture as a targetEnv.
func tgtdEnv(t testing.TB) *targetEnv {
	f := needTgtd(t)
	a := f.addr()
	return &targetEnv{
		name:         "tgtd",
		discovery:    a,
		discoverable: []endpoint{{a, iqnOpen}, {a, iqnChap}, {a, iqnMutual}},
		open:         endpoint{a, iqnOpen},
		chap:         endpoint{a, iqnChap},
		mutual:       endpoint{a, iqnMutual},
		digest:       endpoint{a, iqnDigest},
		fileLUN:      lunFile,
		nullLUN:      lunNull,
		luns:         []uint64{0, lunFile, lunNull},
		fileBlocks:   fileLUNSize / blockSize,
	}
}
