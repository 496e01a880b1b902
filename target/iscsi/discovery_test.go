package iscsi

import (
	"slices"
	"testing"
)

func TestSendTargets(t *testing.T) {
	only := func(names ...string) func(string) (*Credentials, *Credentials, bool) {
		return func(i string) (*Credentials, *Credentials, bool) {
			return &Credentials{User: "u", Secret: "s"}, nil, slices.Contains(names, i)
		}
	}
	targets := []TargetInfo{
		{Name: "iqn.2026-01.io.vbs:a", PortalGroupTag: 1},
		{Name: "iqn.2026-01.io.vbs:b", PortalGroupTag: 1, Authorize: only("iqn.host2")},
		{Name: "iqn.2026-01.io.vbs:c", PortalGroupTag: 2, Authorize: only("iqn.host1", "iqn.host2")},
		{Name: "iqn.2026-01.io.vbs:d", PortalGroupTag: 1, Redirect: "10.0.0.9:3260,1", Authorize: only("iqn.host1")},
	}
	portals := []Portal{
		{Addr: "10.0.0.1:3260", PortalGroupTag: 1},
		{Addr: "[fd00::1]:3260", PortalGroupTag: 1},
		{Addr: "10.0.0.2:3260", PortalGroupTag: 2},
	}
	tests := []struct {
		value, initiator string
		want             string
	}{
		{"All", "iqn.host1",
			"TargetName=iqn.2026-01.io.vbs:a\x00TargetAddress=10.0.0.1:3260,1\x00TargetAddress=[fd00::1]:3260,1\x00" +
				"TargetName=iqn.2026-01.io.vbs:c\x00TargetAddress=10.0.0.2:3260,2\x00" +
				"TargetName=iqn.2026-01.io.vbs:d\x00TargetAddress=10.0.0.9:3260,1\x00"},
		{"All", "iqn.host2",
			"TargetName=iqn.2026-01.io.vbs:a\x00TargetAddress=10.0.0.1:3260,1\x00TargetAddress=[fd00::1]:3260,1\x00" +
				"TargetName=iqn.2026-01.io.vbs:b\x00TargetAddress=10.0.0.1:3260,1\x00TargetAddress=[fd00::1]:3260,1\x00" +
				"TargetName=iqn.2026-01.io.vbs:c\x00TargetAddress=10.0.0.2:3260,2\x00"},
		{"All", "iqn.stranger",
			"TargetName=iqn.2026-01.io.vbs:a\x00TargetAddress=10.0.0.1:3260,1\x00TargetAddress=[fd00::1]:3260,1\x00"},
		{"iqn.2026-01.io.vbs:c", "iqn.host1", "TargetName=iqn.2026-01.io.vbs:c\x00TargetAddress=10.0.0.2:3260,2\x00"},
		{"iqn.2026-01.io.vbs:b", "iqn.host1", ""},
		{"iqn.2026-01.io.vbs:nosuch", "iqn.host1", ""},
		{"", "iqn.host1", ""},
	}
	for _, tt := range tests {
		if got := string(SendTargets(tt.value, tt.initiator, targets, portals)); got != tt.want {
			t.Errorf("SendTargets(%q, %q) = %q\nwant %q", tt.value, tt.initiator, got, tt.want)
		}
	}
}
