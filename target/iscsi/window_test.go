package iscsi

import "testing"

func TestSerialLess(t *testing.T) {
	tests := []struct {
		a, b uint32
		want bool
	}{
		{1, 2, true},
		{2, 1, false},
		{5, 5, false},
		{0xffffffff, 0, true}, // wraps
		{0, 0xffffffff, false},
		{0xfffffff0, 0x10, true},
		{0, 1 << 31, false}, // undefined distance: neither
		{1 << 31, 0, false},
	}
	for _, tt := range tests {
		if got := SerialLess(tt.a, tt.b); got != tt.want {
			t.Errorf("SerialLess(%#x, %#x) = %v; want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

// TestCmdWindow walks a window of depth 4 through in-order delivery, a
// gap, out-of-window commands, immediate commands and completions.
func TestCmdWindow(t *testing.T) {
	type step struct {
		op        string // "admit", "imm", "next", "done"
		cmdSN     uint32
		want      Admission
		wantNext  int // for next: the value, or -1 for none
		exp, maxS uint32
	}
	steps := []step{
		{op: "admit", cmdSN: 10, want: AdmitDeliver, exp: 11, maxS: 13},
		{op: "admit", cmdSN: 10, want: AdmitDrop, exp: 11, maxS: 13},    // duplicate (below ExpCmdSN)
		{op: "admit", cmdSN: 14, want: AdmitDrop, exp: 11, maxS: 13},    // beyond MaxCmdSN
		{op: "admit", cmdSN: 13, want: AdmitHeld, exp: 11, maxS: 13},    // ahead of a gap
		{op: "admit", cmdSN: 13, want: AdmitDrop, exp: 11, maxS: 13},    // already held
		{op: "imm", cmdSN: 11, want: AdmitDeliver, exp: 11, maxS: 13},   // immediate: no slot
		{op: "next", wantNext: -1, exp: 11, maxS: 13},                   // gap still open
		{op: "admit", cmdSN: 11, want: AdmitDeliver, exp: 12, maxS: 13}, // two running now
		{op: "next", wantNext: -1, exp: 12, maxS: 13},                   // 12 still missing
		{op: "admit", cmdSN: 12, want: AdmitDeliver, exp: 13, maxS: 13},
		{op: "next", wantNext: 13, exp: 14, maxS: 13}, // window full: 4 running
		{op: "admit", cmdSN: 14, want: AdmitDrop, exp: 14, maxS: 13},
		{op: "done", exp: 14, maxS: 14},
		{op: "admit", cmdSN: 14, want: AdmitDeliver, exp: 15, maxS: 14},
		{op: "done", exp: 15, maxS: 15},
		{op: "done", exp: 15, maxS: 16},
		{op: "done", exp: 15, maxS: 17},
		{op: "done", exp: 15, maxS: 18},
		{op: "done", exp: 15, maxS: 18}, // nothing running: no change
	}
	w := NewCmdWindow[int](10, 4)
	for i, s := range steps {
		switch s.op {
		case "admit", "imm":
			if got := w.Admit(s.cmdSN, s.op == "imm", int(s.cmdSN)); got != s.want {
				t.Fatalf("step %d: Admit(%d) = %d; want %d", i, s.cmdSN, got, s.want)
			}
		case "next":
			v, ok := w.Next()
			if (s.wantNext < 0) == ok || (ok && v != s.wantNext) {
				t.Fatalf("step %d: Next() = %d, %v; want %d", i, v, ok, s.wantNext)
			}
		case "done":
			w.Done()
		}
		if w.ExpCmdSN() != s.exp || w.MaxCmdSN() != s.maxS {
			t.Fatalf("step %d: ExpCmdSN %d MaxCmdSN %d; want %d %d", i, w.ExpCmdSN(), w.MaxCmdSN(), s.exp, s.maxS)
		}
	}
}

// TestCmdWindowWrap holds and releases commands across the 2^32 wrap with
// a depth that is not a power of two.
func TestCmdWindowWrap(t *testing.T) {
	w := NewCmdWindow[uint32](0xfffffffe, 5)
	order := []uint32{0xffffffff, 1, 0, 2}
	for _, sn := range order {
		if got := w.Admit(sn, false, sn); got != AdmitHeld {
			t.Fatalf("Admit(%#x) = %d; want held", sn, got)
		}
	}
	if w.Held() != 4 {
		t.Fatalf("Held() = %d", w.Held())
	}
	if got := w.Admit(0xfffffffe, false, 0xfffffffe); got != AdmitDeliver {
		t.Fatalf("Admit(first) = %d", got)
	}
	want := []uint32{0xffffffff, 0, 1, 2}
	for _, sn := range want {
		v, ok := w.Next()
		if !ok || v != sn {
			t.Fatalf("Next() = %#x, %v; want %#x", v, ok, sn)
		}
	}
	if _, ok := w.Next(); ok {
		t.Fatal("Next() after the last held command")
	}
	if w.ExpCmdSN() != 3 || w.Running() != 5 {
		t.Fatalf("ExpCmdSN %d running %d", w.ExpCmdSN(), w.Running())
	}
	var drained int
	w.Drain(func(uint32) { drained++ })
	if drained != 0 {
		t.Fatalf("drained %d", drained)
	}
}
