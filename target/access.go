package target

import (
	"errors"
	"fmt"
	"slices"

	"github.com/vbs-storage/vbs/target/iscsi"
	"github.com/vbs-storage/vbs/target/scsi"
)

// Errors of the configuration API.
var (
	// ErrTargetExists is returned by AddTarget for an IQN already served.
	ErrTargetExists = errors.New("target: target already exists")
	// ErrNoSuchTarget is returned for an IQN the server does not serve.
	ErrNoSuchTarget = errors.New("target: no such target")
	// ErrBadConfig is returned for an unusable TargetConfig.
	ErrBadConfig = errors.New("target: bad target config")
	// ErrServerClosed is returned by Serve after Close.
	ErrServerClosed = errors.New("target: server closed")
)

// TargetConfig describes one iSCSI target the server exports.
type TargetConfig struct {
	// IQN is the target name; Alias its optional TargetAlias.
	IQN   string
	Alias string
	// SCSI is the SCSI target behind this iSCSI target. If nil, AddTarget
	// builds one from LUNs (write-back cache on, as VBS defaults to).
	SCSI *scsi.Target
	LUNs map[uint64]scsi.Device
	// CHAP, when set, is what every initiator must present; MutualCHAP
	// what the target presents back. Per-initiator entries override both.
	CHAP       *iscsi.Credentials
	MutualCHAP *iscsi.Credentials
	// Access lists the initiators allowed to see and log in to this target.
	// Empty means every initiator.
	Access []AccessEntry
}

// AccessEntry allows one initiator, optionally with its own CHAP
// credentials.
type AccessEntry struct {
	Initiator  string
	CHAP       *iscsi.Credentials
	MutualCHAP *iscsi.Credentials
}

// exported is one served target. cfg.Access may change (SetAccess); it is
// read under Server.mu.
type exported struct {
	cfg  TargetConfig
	scsi *scsi.Target
}

// authorize applies the access list and credentials of t to an initiator.
// The caller holds Server.mu.
func (t *exported) authorize(initiator string) (chap, mutual *iscsi.Credentials, ok bool) {
	if len(t.cfg.Access) == 0 {
		return t.cfg.CHAP, t.cfg.MutualCHAP, true
	}
	i := slices.IndexFunc(t.cfg.Access, func(e AccessEntry) bool { return e.Initiator == initiator })
	if i < 0 {
		return nil, nil, false
	}
	e := t.cfg.Access[i]
	chap, mutual = t.cfg.CHAP, t.cfg.MutualCHAP
	if e.CHAP != nil {
		chap = e.CHAP
	}
	if e.MutualCHAP != nil {
		mutual = e.MutualCHAP
	}
	return chap, mutual, true
}

func (c TargetConfig) validate() error {
	if c.IQN == "" {
		return fmt.Errorf("%w: empty IQN", ErrBadConfig)
	}
	if c.SCSI == nil && len(c.LUNs) == 0 {
		return fmt.Errorf("%w: target %s has no LUNs", ErrBadConfig, c.IQN)
	}
	if c.MutualCHAP != nil && c.CHAP == nil {
		return fmt.Errorf("%w: target %s: mutual CHAP needs CHAP", ErrBadConfig, c.IQN)
	}
	for _, e := range c.Access {
		if e.Initiator == "" {
			return fmt.Errorf("%w: target %s: access entry without initiator", ErrBadConfig, c.IQN)
		}
	}
	return nil
}
