package scsi

import (
	"bytes"
	"context"
	"encoding/binary"
	"sync"
	"testing"
)

func unmapParams(descs ...[2]uint64) []byte {
	p := make([]byte, unmapHeaderLen+unmapDescLen*len(descs))
	binary.BigEndian.PutUint16(p[0:], uint16(len(p)-2))
	binary.BigEndian.PutUint16(p[2:], uint16(unmapDescLen*len(descs)))
	for i, d := range descs {
		binary.BigEndian.PutUint64(p[unmapHeaderLen+i*unmapDescLen:], d[0])
		binary.BigEndian.PutUint32(p[unmapHeaderLen+i*unmapDescLen+8:], uint32(d[1]))
	}
	return p
}

func cdbUnmap(n int) []byte {
	c := make([]byte, 10)
	c[0] = opUnmap
	binary.BigEndian.PutUint16(c[7:], uint16(n))
	return c
}

func TestUnmapAndLBAStatus(t *testing.T) {
	dev := newThinDev(512, 1024)
	h := newHarness(t, dev, LUOptions{WriteCache: true})
	expectGood(t, h.run(cdbRW10(opWrite10, 0, 16, 0), fill(16*512, 0xAB)))
	p := unmapParams([2]uint64{4, 4}, [2]uint64{10, 2})
	expectGood(t, h.run(cdbUnmap(len(p)), p))
	if !isZero(dev.contents(4, 4)) || !isZero(dev.contents(10, 2)) || isZero(dev.contents(8, 2)) {
		t.Fatal("unmap hit the wrong blocks")
	}
	// GET LBA STATUS sees the holes.
	c := make([]byte, 16)
	c[0], c[1] = opServiceActionIn16, saGetLBAStatus
	binary.BigEndian.PutUint64(c[2:], 0)
	binary.BigEndian.PutUint32(c[10:], 8+16*4)
	r := h.run(c, nil)
	expectGood(t, r)
	want := []struct {
		lba, n uint64
		state  byte
	}{{0, 4, lbasMapped}, {4, 4, lbasDeallocated}, {8, 2, lbasMapped}, {10, 2, lbasDeallocated}}
	if got := int(be32(r.DataIn)); got != 4+16*4 {
		t.Fatalf("parameter data length %d", got)
	}
	for i, w := range want {
		d := r.DataIn[8+16*i:]
		if be64(d) != w.lba || uint64(be32(d[8:])) != w.n || d[12] != w.state {
			t.Fatalf("descriptor %d: %x", i, d[:16])
		}
	}
	// Errors: out of range, too long, short parameter list.
	p = unmapParams([2]uint64{1020, 8})
	expectSense(t, h.run(cdbUnmap(len(p)), p), SenseIllegalRequest, ASCLBAOutOfRange)
	expectSense(t, h.run(cdbUnmap(4), p[:4]), SenseIllegalRequest, ASCParameterListLengthError)
	binary.BigEndian.PutUint64(c[2:], 1024)
	expectSense(t, h.run(c, nil), SenseIllegalRequest, ASCLBAOutOfRange)
	// Zero length is a no-op.
	expectGood(t, h.run(cdbUnmap(0), nil))
}

func TestWriteSame(t *testing.T) {
	for _, thin := range []bool{false, true} {
		var dev Device = newMemDev(512, 1024)
		if thin {
			dev = newThinDev(512, 1024)
		}
		h := newHarness(t, dev, LUOptions{WriteCache: true})
		pattern := fill(512, 0x5A)
		expectGood(t, h.run(cdbRW16(opWriteSame16, 100, 300, 0), pattern))
		got := h.dev.contents(100, 300)
		for i := 0; i < 300; i++ {
			if !bytes.Equal(got[i*512:(i+1)*512], pattern) {
				t.Fatalf("thin=%v block %d not written", thin, 100+i)
			}
		}
		// UNMAP=1 deallocates on a thin LU, whatever the data-out holds;
		// a fully provisioned LU refuses it (LBPWS=0).
		if thin {
			expectGood(t, h.run(cdbRW10(opWriteSame10, 100, 10, wsUnmap), fill(512, 0xFF)))
			if !isZero(h.dev.contents(100, 10)) {
				t.Fatal("write same unmap left data")
			}
		} else {
			expectSense(t, h.run(cdbRW10(opWriteSame10, 100, 10, wsUnmap), make([]byte, 512)), SenseIllegalRequest, ASCInvalidFieldInCDB)
			expectGood(t, h.run(cdbRW10(opWriteSame10, 100, 10, 0), make([]byte, 512)))
		}
		// NDOB (16 only) writes zeros without data-out.
		expectGood(t, h.run(cdbRW16(opWriteSame16, 200, 5, wsNDOB), nil))
		if !isZero(h.dev.contents(200, 5)) {
			t.Fatal("ndob left data")
		}
		expectSense(t, h.run(cdbRW10(opWriteSame10, 0, 1, wsNDOB), pattern), SenseIllegalRequest, ASCInvalidFieldInCDB)
		expectSense(t, h.run(cdbRW10(opWriteSame10, 1020, 10, 0), pattern), SenseIllegalRequest, ASCLBAOutOfRange)
		expectSense(t, h.run(cdbRW10(opWriteSame10, 0, 1, wsAnchor), pattern), SenseIllegalRequest, ASCInvalidFieldInCDB)
		// Zero blocks past the end is out of range before it is WSNZ.
		expectSense(t, h.run(cdbRW10(opWriteSame10, 1025, 0, 0), pattern), SenseIllegalRequest, ASCLBAOutOfRange)
		expectSense(t, h.run(cdbRW16(opWriteSame16, ^uint64(0), 0, 0), pattern), SenseIllegalRequest, ASCLBAOutOfRange)
		expectSense(t, h.run(cdbRW10(opWriteSame10, 0, 0, 0), pattern), SenseIllegalRequest, ASCInvalidFieldInCDB)
	}
}

func cdbCAW(lba uint64, blocks byte) []byte {
	c := make([]byte, 16)
	c[0] = opCompareAndWrite
	binary.BigEndian.PutUint64(c[2:], lba)
	c[cawBlocksAt] = blocks
	return c
}

func TestCompareAndWrite(t *testing.T) {
	for _, thin := range []bool{false, true} {
		var dev Device = newMemDev(512, 64)
		if thin {
			dev = newThinDev(512, 64)
		}
		h := newHarness(t, dev, LUOptions{WriteCache: true})
		old, nw := fill(1024, 1), fill(1024, 2)
		expectGood(t, h.run(cdbRW10(opWrite10, 8, 2, 0), old))
		expectGood(t, h.run(cdbCAW(8, 2), append(append([]byte{}, old...), nw...)))
		if !bytes.Equal(h.dev.contents(8, 2), nw) {
			t.Fatal("compare and write did not write")
		}
		wrong := append([]byte{}, nw...)
		wrong[700] ^= 0xFF
		r := h.run(cdbCAW(8, 2), append(wrong, old...))
		s := expectSense(t, r, SenseMiscompare, ASCMiscompareDuringVerify)
		if !s.InfoValid || s.Info != 700 {
			t.Fatalf("miscompare offset %d valid %v", s.Info, s.InfoValid)
		}
		if !bytes.Equal(h.dev.contents(8, 2), nw) {
			t.Fatal("miscompare wrote")
		}
		expectSense(t, h.run(cdbCAW(63, 2), make([]byte, 2048)), SenseIllegalRequest, ASCLBAOutOfRange)
		expectGood(t, h.run(cdbCAW(0, 0), nil))
	}
}

// TestCompareAndWriteAtomic runs many COMPARE AND WRITE increments of one
// block concurrently with plain writes elsewhere in the range lock's
// reach; every successful CAW must see the value the previous one wrote.
func TestCompareAndWriteAtomic(t *testing.T) {
	h := newHarness(t, nil, LUOptions{WriteCache: true})
	const workers, rounds = 4, 50
	var wg sync.WaitGroup
	var mu sync.Mutex
	success := 0
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < rounds; {
				cur := h.dev.contents(0, 1)
				next := bytes.Clone(cur)
				binary.BigEndian.PutUint64(next, binary.BigEndian.Uint64(cur)+1)
				res := &Result{}
				h.tgt.Execute(context.Background(), &Command{Nexus: h.n, CDB: cdbCAW(0, 1), DataOut: append(cur, next...)}, res)
				switch res.Status {
				case StatusGood:
					mu.Lock()
					success++
					mu.Unlock()
					i++
				case StatusCheckCondition:
					// Lost the race: retry with the fresh value.
				default:
					t.Errorf("status %#x", res.Status)
					return
				}
			}
		}()
	}
	wg.Wait()
	if got := binary.BigEndian.Uint64(h.dev.contents(0, 1)); got != uint64(success) || success != workers*rounds {
		t.Fatalf("counter %d, successes %d", got, success)
	}
}

func TestORWrite(t *testing.T) {
	h := newHarness(t, nil, LUOptions{WriteCache: true})
	expectGood(t, h.run(cdbRW10(opWrite10, 0, 1, 0), fill(512, 0x0F)))
	expectGood(t, h.run(cdbRW16(opORWrite16, 0, 1, 0), fill(512, 0xF0)))
	if !bytes.Equal(h.dev.contents(0, 1), fill(512, 0xFF)) {
		t.Fatal("orwrite")
	}
}

func TestWriteAtomicNeedsAtomicWriter(t *testing.T) {
	c := make([]byte, 16)
	c[0] = opWriteAtomic16
	binary.BigEndian.PutUint16(c[waLengthAt:], 2)
	h := newHarness(t, nil, LUOptions{})
	expectSense(t, h.run(c, make([]byte, 1024)), SenseIllegalRequest, ASCInvalidOpcode)
	h = newHarness(t, newThinDev(512, 128), LUOptions{})
	expectGood(t, h.run(c, fill(1024, 9)))
	binary.BigEndian.PutUint16(c[waLengthAt:], 65)
	expectSense(t, h.run(c, make([]byte, 65*512)), SenseIllegalRequest, ASCInvalidFieldInCDB)
}

func TestVerify(t *testing.T) {
	h := newHarness(t, nil, LUOptions{WriteCache: true})
	data := fill(1024, 0x33)
	expectGood(t, h.run(cdbRW10(opWrite10, 5, 2, 0), data))
	expectGood(t, h.run(cdbRW10(opVerify10, 5, 2, 0), nil))
	expectGood(t, h.run(cdbRW10(opVerify10, 5, 2, bytChkCompare<<bytChkShift), data))
	expectGood(t, h.run(cdbRW16(opVerify16, 5, 2, bytChkOneBlock<<bytChkShift), data[:512]))
	bad := bytes.Clone(data)
	bad[600] = 0
	s := expectSense(t, h.run(cdbRW12(opVerify12, 5, 2, bytChkCompare<<bytChkShift), bad), SenseMiscompare, ASCMiscompareDuringVerify)
	if s.Info != 600 {
		t.Fatalf("verify miscompare at %d", s.Info)
	}
	expectSense(t, h.run(cdbRW10(opVerify10, 5, 2, 2<<bytChkShift), data), SenseIllegalRequest, ASCInvalidFieldInCDB)
	// WRITE AND VERIFY writes and checks.
	expectGood(t, h.run(cdbRW10(opWriteAndVerify10, 20, 2, 0x02), data))
	if !bytes.Equal(h.dev.contents(20, 2), data) {
		t.Fatal("write and verify")
	}
}

func TestWriteProtect(t *testing.T) {
	h := newHarness(t, nil, LUOptions{ReadOnly: true})
	expectSense(t, h.run(cdbRW10(opWrite10, 0, 1, 0), fill(512, 1)), SenseDataProtect, ASCWriteProtected)
	expectGood(t, h.run(cdbRW10(opRead10, 0, 1, 0), nil))
	r := h.run(cdbModeSense6(pageAll, 0, pcCurrent, true, 255), nil)
	expectGood(t, r)
	if r.DataIn[2]&devSpecWP == 0 {
		t.Fatal("WP not reported")
	}
}

func TestSyncCacheAndFUA(t *testing.T) {
	h := newHarness(t, nil, LUOptions{WriteCache: true})
	expectGood(t, h.run(cdbRW10(opWrite10, 0, 1, 0), fill(512, 1)))
	if h.dev.fuaWrites.Load() != 0 {
		t.Fatal("plain write with WCE=1 was FUA")
	}
	expectGood(t, h.run(cdbRW10(opWrite10, 0, 1, rwFUA), fill(512, 1)))
	if h.dev.fuaWrites.Load() != 1 {
		t.Fatal("FUA write not FUA")
	}
	expectGood(t, h.run(cdbRW10(opSyncCache10, 0, 0, 0), nil))
	expectGood(t, h.run(cdbRW16(opSyncCache16, 0, 0, 0), nil))
	if h.dev.flushes.Load() != 2 {
		t.Fatalf("flushes %d", h.dev.flushes.Load())
	}
	expectGood(t, h.run(cdbRW10(opPreFetch10, 0, 8, 0), nil))
	expectSense(t, h.run(cdbRW16(opPreFetch16, 4096, 1, 0), nil), SenseIllegalRequest, ASCLBAOutOfRange)
}
