package target

import (
	"testing"

	"github.com/vbs-storage/vbs/target/iscsi"
	"github.com/vbs-storage/vbs/target/scsi"
)

// opReserve6 is RESERVE(6) (SPC-2).
const opReserve6 = 0x16

// TestLogoutReleasesNexusBeforeResponse checks that a session's RESERVE is
// released before its Logout Response goes out: an initiator that logs out
// one session and reserves from its other session at once, as libiscsi's
// Reserve6.Logout test does, must never see a RESERVATION CONFLICT.
func TestLogoutReleasesNexusBeforeResponse(t *testing.T) {
	ts := startServer(t, Options{}, nil)
	const name = "iqn.2026-11.io.vbs.test:two-paths"
	b := dial(t, ts.addr)
	b.isid = 0x80_0000_0002
	b.mustLogin(loginKeys(name))
	for round := range 20 {
		a := dial(t, ts.addr)
		a.mustLogin(loginKeys(name))
		a.send(a.command([]byte{opReserve6, 0, 0, 0, 0, 0}, 0, 0, nil))
		if p := a.recv(); p.Byte3() != byte(scsi.StatusGood) {
			t.Fatalf("round %d: RESERVE(6) on the first session: status 0x%02x", round, p.Byte3())
		}
		lo := &iscsi.PDU{}
		lo.SetOpcode(iscsi.OpLogoutReq, true)
		lo.SetFlags(iscsi.FlagFinal) // reason 0: close the session
		a.itt++
		lo.SetITT(a.itt)
		lo.SetCmdSN(a.cmdSN)
		lo.SetExpStatSN(a.expStatSN)
		a.send(lo)
		if p := a.recv(); p.Opcode() != iscsi.OpLogoutResp || p.Byte2() != 0 {
			t.Fatalf("round %d: logout answered %v response %d", round, p.Opcode(), p.Byte2())
		}
		b.send(b.command([]byte{opReserve6, 0, 0, 0, 0, 0}, 0, 0, nil))
		if p := b.recv(); p.Byte3() != byte(scsi.StatusGood) {
			t.Fatalf("round %d: RESERVE(6) right after the other session's logout: status 0x%02x", round, p.Byte3())
		}
		// RELEASE(6) so the next round's first session can reserve.
		b.send(b.command([]byte{0x17, 0, 0, 0, 0, 0}, 0, 0, nil))
		if p := b.recv(); p.Byte3() != byte(scsi.StatusGood) {
			t.Fatalf("round %d: RELEASE(6): status 0x%02x", round, p.Byte3())
		}
		a.expectClosed()
	}
}
