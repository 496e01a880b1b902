package scsi

import "context"

// READ CAPACITY and GET LBA STATUS layouts (SBC-4 5.16, 5.20, 5.8).
const (
	rc10PMI          = 0x01
	rc10Len          = 8
	rc16Len          = 32
	rc16LBPME        = 0x80 // byte 14
	rc16LBPRZ        = 0x40
	rc16PBEMask      = 0x0F
	lbasHeaderLen    = 8
	lbasDescLen      = 16
	lbasMaxDescs     = 64
	lbasMapped       = 0x00
	lbasDeallocated  = 0x01
	maxLBA32         = 0xFFFFFFFF
	lbasMaxDescBlock = 0xFFFFFFFF
)

// readCapacity10 serves READ CAPACITY(10).
func (l *logicalUnit) readCapacity10(x *execCtx) checkCondition {
	cdb := x.cdb
	if cdb[8]&rc10PMI == 0 && be32(cdb[2:]) != 0 {
		return invalidCDB(2, -1)
	}
	b := x.buffer(rc10Len)
	last := x.blocks - 1
	if x.blocks == 0 {
		last = 0
	}
	if last > maxLBA32 {
		last = maxLBA32
	}
	putUint32(b[0:], uint32(last))
	putUint32(b[4:], l.blockSize)
	return x.reply(b, rc10Len)
}

// readCapacity16 serves READ CAPACITY(16).
func (l *logicalUnit) readCapacity16(x *execCtx) checkCondition {
	alloc := int(be32(x.cdb[10:]))
	b := x.buffer(rc16Len)
	last := x.blocks - 1
	if x.blocks == 0 {
		last = 0
	}
	putUint64(b[0:], last)
	putUint32(b[8:], l.blockSize)
	b[13] = l.opts.PhysicalBlockExponent & rc16PBEMask
	if l.unmapper != nil {
		b[14] |= rc16LBPME
	}
	b[14] |= rc16LBPRZ
	return x.reply(b, alloc)
}

// getLBAStatus serves GET LBA STATUS.
func (l *logicalUnit) getLBAStatus(ctx context.Context, x *execCtx) checkCondition {
	lba := be64(x.cdb[2:])
	alloc := int(be32(x.cdb[10:]))
	if lba >= x.blocks {
		return errLBAOutOfRange
	}
	ndesc := 1
	if alloc > lbasHeaderLen+lbasDescLen {
		ndesc = min((alloc-lbasHeaderLen)/lbasDescLen, lbasMaxDescs)
	}
	b := make([]byte, lbasHeaderLen, lbasHeaderLen+ndesc*lbasDescLen)
	for i := 0; i < ndesc && lba < x.blocks; i++ {
		left := min(x.blocks-lba, lbasMaxDescBlock)
		mapped, n := true, left
		if l.lbaStat != nil {
			var err error
			mapped, n, err = l.lbaStat.LBAStatus(ctx, lba, left)
			if err != nil {
				return deviceError(ctx, err, false)
			}
			if n == 0 || n > left {
				n = left
			}
		}
		var d [lbasDescLen]byte
		putUint64(d[0:], lba)
		putUint32(d[8:], uint32(n))
		if !mapped {
			d[12] = lbasDeallocated
		}
		b = append(b, d[:]...)
		lba += n
	}
	putUint32(b[0:], uint32(len(b)-4))
	out := x.buffer(len(b))
	copy(out, b)
	return x.reply(out, alloc)
}
