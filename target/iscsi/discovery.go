package iscsi

import "strconv"

// Portal is an address a SendTargets answer lists ("127.0.0.1:3260";
// IPv6 addresses in brackets, "[::1]:3260").
type Portal struct {
	Addr           string
	PortalGroupTag uint16
}

// SendTargets answers a SendTargets value (RFC 7143 section 13.3 and
// appendix C): "All" lists every target this initiator may see, a target
// name lists that target if it may see it, anything else (including the
// empty value, which in a normal session means the session's target: the
// caller passes that target's name instead) lists nothing. Each target is
// a TargetName followed by one TargetAddress per portal of its portal
// group (or its Redirect address), in the order of targets and portals. A
// target is visible when its Authorize is nil or allows initiatorName.
func SendTargets(value, initiatorName string, targets []TargetInfo, portals []Portal) []byte {
	var out []byte
	for i := range targets {
		t := &targets[i]
		if value != ValueAll && value != t.Name {
			continue
		}
		if t.Authorize != nil {
			if _, _, ok := t.Authorize(initiatorName); !ok {
				continue
			}
		}
		out = AppendText(out, KeyTargetName, t.Name)
		if t.Redirect != "" {
			out = AppendText(out, KeyTargetAddress, t.Redirect)
			continue
		}
		for _, p := range portals {
			if p.PortalGroupTag != t.PortalGroupTag {
				continue
			}
			out = AppendText(out, KeyTargetAddress, p.Addr+","+strconv.Itoa(int(p.PortalGroupTag)))
		}
	}
	return out
}
