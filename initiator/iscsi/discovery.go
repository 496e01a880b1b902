package iscsi

import (
	"context"
	"fmt"

	wire "github.com/vbs-storage/vbs/target/iscsi"
)

// DiscoveredTarget is one target a SendTargets answer names.
type DiscoveredTarget struct {
	Name string
	// Addresses are the portals as sent: "host:port,tpgt".
	Addresses []string
}

// Discover opens a discovery session to cfg.Addr, asks SendTargets=All
// and logs out. cfg.TargetName is ignored.
func Discover(ctx context.Context, cfg Config) ([]DiscoveredTarget, error) {
	c, err := cfg.withDefaults(false)
	if err != nil {
		return nil, err
	}
	c.TargetName = ""
	s, err := dial(ctx, &c, true)
	if err != nil {
		return nil, err
	}
	kvs, err := s.text(ctx, wire.AppendText(nil, keySendTargets, valueAll))
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("iscsi: discovery at %s: %w", c.Addr, err)
	}
	if err := s.Logout(ctx); err != nil {
		c.Logger.Debug("iscsi: discovery logout", "err", err)
	}
	return parseSendTargets(kvs)
}

// parseSendTargets groups TargetAddress keys under the TargetName before
// them (RFC 7143 appendix C).
func parseSendTargets(kvs []wire.KV) ([]DiscoveredTarget, error) {
	var out []DiscoveredTarget
	for _, kv := range kvs {
		switch kv.Key {
		case keyTargetName:
			out = append(out, DiscoveredTarget{Name: kv.Value})
		case keyTargetAddress:
			if len(out) == 0 {
				return nil, fmt.Errorf("%w: TargetAddress before any TargetName", ErrProtocol)
			}
			last := &out[len(out)-1]
			last.Addresses = append(last.Addresses, kv.Value)
		}
	}
	return out, nil
}
