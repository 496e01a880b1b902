package index

import (
	"encoding/hex"
	"testing"

	"github.com/cockroachdb/pebble/vfs"
)

func openTest(t *testing.T) *Index {
	t.Helper()
	x, err := Open(vfs.NewMem(), "/idx", Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	return x
}

// TestEncodingGolden pins the on-disk key and value layouts documented in
// docs/blockstore.md.
func TestEncodingGolden(t *testing.T) {
	var k [mappingKeySize]byte
	var v [LocationSize]byte
	var pk [preservedKeySize]byte
	tests := []struct {
		name, got, want string
	}{
		{"mapping key", hex.EncodeToString(mappingKey(&k, 0x0102, 0x0a0b)), "6d00000000000001020000000000000a0b"},
		{"preserved key", hex.EncodeToString(preservedKey(&pk, 1, 2, 3)), "70000000000000000100000000000000020000000000000003"},
		{"location", hex.EncodeToString(encodeLocation(&v, Location{Seg: 1, Off: 0x30, CRC: 0xdeadbeef, Seq: 7})), "0101000000000000003000000000000000efbeadde0700000000000000"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %s, want %s", tt.name, tt.got, tt.want)
		}
	}
	if _, err := decodeLocation([]byte{2, 0}); err == nil {
		t.Error("decodeLocation accepted a short, unknown-version value")
	}
}

func TestMappingsAndVersions(t *testing.T) {
	x := openTest(t)
	b := x.NewBatch()
	defer b.Close()
	for lba := uint64(0); lba < 10; lba++ {
		b.Put(1, lba, Location{Seg: 1, Off: lba * 512, CRC: uint32(lba), Seq: 5})
	}
	b.Put(2, 3, Location{Seg: 9, Seq: 6})
	b.DeleteRange(1, 4, 3)
	b.PutVersion(1, Version{LBA: 2, Loc: Location{Seg: 1, Seq: 2}, Superseded: 5})
	b.PutVersion(1, Version{LBA: 2, Loc: Location{Seg: 1, Seq: 4}, Superseded: 5})
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		vol, lba uint64
		ok       bool
	}{{1, 0, true}, {1, 3, true}, {1, 4, false}, {1, 6, false}, {1, 7, true}, {2, 3, true}, {2, 4, false}} {
		if _, ok, err := x.Get(tt.vol, tt.lba); err != nil || ok != tt.ok {
			t.Errorf("Get(%d, %d) ok=%v err=%v, want ok=%v", tt.vol, tt.lba, ok, err, tt.ok)
		}
	}
	var lbas []uint64
	if err := x.Scan(1, 2, 9, func(m Mapping) bool { lbas = append(lbas, m.LBA); return true }); err != nil {
		t.Fatal(err)
	}
	if len(lbas) != 4 || lbas[0] != 2 || lbas[1] != 3 || lbas[2] != 7 || lbas[3] != 8 {
		t.Fatalf("Scan = %v", lbas)
	}
	for _, tt := range []struct {
		max     uint64
		ok      bool
		wantSeq uint64
	}{{1, false, 0}, {2, true, 2}, {3, true, 2}, {4, true, 4}, {^uint64(0), true, 4}} {
		v, ok, err := x.FindVersion(1, 2, tt.max)
		if err != nil || ok != tt.ok || (ok && v.Loc.Seq != tt.wantSeq) {
			t.Errorf("FindVersion(max %d) = %+v, %v, %v", tt.max, v, ok, err)
		}
	}
	b.DeleteVolume(1)
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	n := 0
	_ = x.ScanVersions(1, func(Version) bool { n++; return true })
	_ = x.Scan(1, 0, ^uint64(0), func(Mapping) bool { n++; return true })
	if n != 0 {
		t.Fatalf("%d entries left after DeleteVolume", n)
	}
	if _, ok, _ := x.Get(2, 3); !ok {
		t.Fatal("DeleteVolume(1) removed volume 2's mapping")
	}
}

func TestGetDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items")
	}
	x := openTest(t)
	b := x.NewBatch()
	b.Put(1, 1, Location{Seg: 1})
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if _, _, err := x.Get(1, 1); err != nil {
		t.Fatal(err)
	}
	if a := testing.AllocsPerRun(200, func() { _, _, _ = x.Get(1, 1) }); a != 0 {
		t.Fatalf("Get allocates %.1f times per call", a)
	}
}
