package scsi

import (
	"encoding/hex"
	"strings"
)

// REPORT SUPPORTED OPERATION CODES fields (SPC-4 6.35).
const (
	rsocRCTD           = 0x80 // cdb byte 2
	rsocOptionsMask    = 0x07
	rsocAll            = 0x00
	rsocOpcode         = 0x01
	rsocOpcodeSA       = 0x02
	rsocOpcodeMaybeSA  = 0x03
	rsocDescLen        = 8
	rsocTimeoutLen     = 12
	rsocTimeoutAddLen  = 0x0A
	rsocCTDP           = 0x02 // all-commands descriptor byte 5
	rsocServActV       = 0x01
	rsocOneCTDP        = 0x80 // one-command byte 1
	rsocSupported      = 0x03
	rsocNotSupported   = 0x01
	rsocOneHeaderLen   = 4
	nominalTimeoutSecs = 1
	recommendedTimeout = 30
)

// opInfo describes one supported command for REPORT SUPPORTED OPERATION
// CODES: its CDB usage data (SPC-4 table 386) says which bits we look at.
type opInfo struct {
	op    byte
	sa    uint16
	hasSA bool
	usage []byte
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic("scsi: bad usage table entry " + s) // a broken constant table is a programming error
	}
	return b
}

// supportedOps lists the commands this LU accepts, in opcode order.
func (l *logicalUnit) supportedOps() []opInfo {
	plain := func(u string) opInfo {
		b := mustHex(u)
		return opInfo{op: b[0], usage: b}
	}
	withSA := func(u string) opInfo {
		b := mustHex(u)
		return opInfo{op: b[0], sa: uint16(b[1] & saMaskServiceAction5), hasSA: true, usage: b}
	}
	ops := []opInfo{
		plain("000000000000"),
		plain("030100 00ff00"),
		plain("081fffffff00"),
		plain("0a1fffffff00"),
		plain("1201ffffff00"),
		plain("151100 00ff00"),
		plain("160000000000"),
		plain("170000000000"),
		plain("1a08ffffff00"),
		plain("1b0100 0ff700"),
		plain("1e0000000300"),
		plain("2500ffffffff00000100"),
		plain("2818ffffffff1fffff00"),
		plain("2a18ffffffff1fffff00"),
		plain("2e12ffffffff1fffff00"),
		plain("2f16ffffffff1fffff00"),
		plain("3402ffffffff1fffff00"),
		plain("3502ffffffff1fffff00"),
		plain("4108ffffffff1fffff00"),
	}
	if l.unmapper != nil {
		ops = append(ops, plain("420000000000 1fffff00"))
	}
	ops = append(ops,
		plain("551000000000 00ffff00"),
		plain("56000000000000000000"),
		plain("57000000000000000000"),
		plain("5a18ffff000000ffff00"),
		withSA("5e0000000000 00ffff00"),
		withSA("5e0100000000 00ffff00"),
		withSA("5e0200000000 00ffff00"),
		withSA("5e0300000000 00ffff00"),
	)
	for sa := byte(0); sa <= 7; sa++ {
		ops = append(ops, withSA(hex.EncodeToString([]byte{opPersistentReserveOut, sa})+"ff0000ffffffff00"))
	}
	ops = append(ops,
		withSA("8300 0000000000000000ffffffff0000"),
		withSA("8400ff00000000000000ffffffff0000"),
		withSA("8403ff00000000000000ffffffff0000"),
		plain("8818ffffffffffffffffffffffff1f00"),
		plain("8918ffffffffffffffff000000ff1f00"),
		plain("8a18ffffffffffffffffffffffff1f00"),
		plain("8b18ffffffffffffffffffffffff1f00"),
		plain("8e12ffffffffffffffffffffffff1f00"),
		plain("8f16ffffffffffffffffffffffff1f00"),
		plain("9002ffffffffffffffffffffffff1f00"),
		plain("9102ffffffffffffffffffffffff1f00"),
		plain("9309ffffffffffffffffffffffff1f00"),
	)
	if l.atomicW != nil {
		ops = append(ops, plain("9c18ffffffffffffffffffffffff1f00"))
	}
	ops = append(ops,
		withSA("9e10ffffffffffffffffffffffff0000"),
		withSA("9e12ffffffffffffffffffffffff0000"),
		plain("a000ff000000ffffffff0000"),
		withSA("a3ea00000000ffffffff0000"),
		withSA("a30c87ffffffffffffff0000"),
		withSA("a30d80000000ffffffff0000"),
		plain("a818ffffffffffffffff1f00"),
		plain("aa18ffffffffffffffff1f00"),
		plain("ae12ffffffffffffffff1f00"),
		plain("af16ffffffffffffffff1f00"),
	)
	return ops
}

// timeoutsDescriptor appends the command timeouts descriptor.
func timeoutsDescriptor(b []byte) []byte {
	var d [rsocTimeoutLen]byte
	putUint16(d[0:], rsocTimeoutAddLen)
	putUint32(d[4:], nominalTimeoutSecs)
	putUint32(d[8:], recommendedTimeout)
	return append(b, d[:]...)
}

// reportSupportedOpcodes serves REPORT SUPPORTED OPERATION CODES.
func (l *logicalUnit) reportSupportedOpcodes(x *execCtx) checkCondition {
	cdb := x.cdb
	rctd := cdb[2]&rsocRCTD != 0
	opt := cdb[2] & rsocOptionsMask
	reqOp := cdb[3]
	reqSA := be16(cdb[4:])
	alloc := int(be32(cdb[maintAllocAt:]))
	ops := l.supportedOps()
	var b []byte
	switch opt {
	case rsocAll:
		b = make([]byte, 4)
		for _, o := range ops {
			var d [rsocDescLen]byte
			d[0] = o.op
			putUint16(d[2:], o.sa)
			if o.hasSA {
				d[5] |= rsocServActV
			}
			if rctd {
				d[5] |= rsocCTDP
			}
			putUint16(d[6:], uint16(len(o.usage)))
			b = append(b, d[:]...)
			if rctd {
				b = timeoutsDescriptor(b)
			}
		}
		putUint32(b[0:], uint32(len(b)-4))
	case rsocOpcode, rsocOpcodeSA, rsocOpcodeMaybeSA:
		var found *opInfo
		opHasSA := false
		for i := range ops {
			if ops[i].op != reqOp {
				continue
			}
			opHasSA = ops[i].hasSA
			if !ops[i].hasSA || ops[i].sa == reqSA {
				found = &ops[i]
			}
		}
		switch {
		case opt == rsocOpcode && opHasSA:
			return invalidCDB(2, 2)
		case opt == rsocOpcodeSA && !opHasSA && found != nil:
			return invalidCDB(2, 2)
		}
		b = make([]byte, rsocOneHeaderLen)
		if found == nil {
			b[1] = rsocNotSupported
			break
		}
		b[1] = rsocSupported
		if rctd {
			b[1] |= rsocOneCTDP
		}
		putUint16(b[2:], uint16(len(found.usage)))
		b = append(b, found.usage...)
		if rctd {
			b = timeoutsDescriptor(b)
		}
	default:
		return invalidCDB(2, 2)
	}
	out := x.buffer(len(b))
	copy(out, b)
	return x.reply(out, alloc)
}
