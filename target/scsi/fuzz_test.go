package scsi

import (
	"context"
	"testing"
)

// FuzzExecute feeds arbitrary CDBs and data-out buffers to a target with a
// thin LU (every optional capability) and a plain one. Nothing may panic,
// and every answer must be well-formed: sense data only with CHECK
// CONDITION, parseable, and never more data-in than was expected.
func FuzzExecute(f *testing.F) {
	seeds := [][]byte{
		cdbTUR(), cdbInquiry(true, vpdDeviceID, 255), cdbRW10(opRead10, 0, 1, 0),
		cdbRW16(opWrite16, 0, 1, rwFUA), cdbRW10(opWriteSame10, 0, 4, wsUnmap), cdbUnmap(24),
		cdbCAW(0, 1), cdbXCopy(76), cdbRCR(saOperatingParams, 0), cdbPROut(prOutRegister, 0, 24),
		cdbPRIn(prInReadFullStatus, 512), cdbModeSelect6(24), cdbModeSense6(pageAll, subpageAll, 0, false, 255),
		cdbRSOC(rsocAll, 0, 0, true), []byte{opServiceActionIn16, saGetLBAStatus, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 64, 0, 0},
	}
	for i, s := range seeds {
		f.Add(s, fill(1024, byte(i)), uint8(i%3), uint16(512))
	}
	f.Fuzz(func(t *testing.T, cdb, out []byte, lun uint8, expected uint16) {
		tgt := NewTarget(TargetOptions{Name: testIQN})
		if err := tgt.AddLU(0, newThinDev(512, 64), LUOptions{WriteCache: true}); err != nil {
			t.Fatal(err)
		}
		if err := tgt.AddLU(1, newMemDev(4096, 16), LUOptions{}); err != nil {
			t.Fatal(err)
		}
		n := testNexus(0)
		tgt.NexusOpened(n)
		for round := 0; round < 3; round++ { // the first rounds may report unit attentions
			res := &Result{}
			cmd := &Command{Nexus: n, LUN: uint64(lun % 3), CDB: cdb, DataOut: out, ExpectedDataIn: uint32(expected)}
			tgt.execute(context.Background(), cmd, res)
			if len(res.DataIn) > int(expected) {
				t.Fatalf("%d bytes of data-in, expected at most %d", len(res.DataIn), expected)
			}
			switch res.Status {
			case StatusCheckCondition:
				if _, ok := ParseSense(res.Sense); !ok {
					t.Fatalf("unparseable sense %x", res.Sense)
				}
				if res.DataIn != nil {
					t.Fatal("data-in with CHECK CONDITION")
				}
			default:
				if res.Sense != nil {
					t.Fatalf("sense with status %#x", res.Status)
				}
			}
		}
	})
}

// FuzzDecodePR feeds arbitrary bytes to the decoder of saved persistent
// reservations (they come back from a device's metadata store).
func FuzzDecodePR(f *testing.F) {
	p := prState{generation: 1, regs: []prReg{{key: 7, initiator: "iqn.x,i,0x1", targetPort: "iqn.t,t,0x1", relPort: 1}}, reserved: true, resType: prTypeWE, aptpl: true}
	f.Add(encodePR(&p))
	f.Add([]byte{prMetaVersion})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodePR(b)
		if err != nil {
			return
		}
		// Whatever decodes must re-encode to the same bytes.
		if again := encodePR(&got); string(again) != string(b) {
			t.Fatalf("re-encode differs:\n%x\n%x", again, b)
		}
	})
}

// FuzzParseSense checks the sense decoder on arbitrary bytes and that it
// inverts encodeSense.
func FuzzParseSense(f *testing.F) {
	var buf [252]byte
	f.Add(encodeSense(buf[:], invalidCDB(2, 5).withInfo(9), false))
	f.Add(encodeSense(buf[:], invalidCDB(2, 5).withInfo(9), true))
	f.Fuzz(func(t *testing.T, b []byte) {
		ParseSense(b)
	})
}
