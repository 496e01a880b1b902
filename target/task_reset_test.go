package target

import "testing"

// TestTaskResetClearsR2TSlots is the regression test for a crash: a write
// aborted with R2Ts outstanding went back to the pool with active slots,
// and the next write on the recycled task found no free slot and indexed
// the slot table with -1.
func TestTaskResetClearsR2TSlots(t *testing.T) {
	tk := new(task)
	tk.r2ts = make([]r2tSlot, 4)
	for i := range tk.r2ts {
		tk.r2ts[i] = r2tSlot{ttt: uint32(i + 1), active: true}
	}
	tk.r2ts = tk.r2ts[:2] // a shorter view must not hide active slots
	tk.outstanding = 4
	tk.reset(nil)
	if tk.outstanding != 0 || len(tk.r2ts) != 0 {
		t.Fatalf("after reset: outstanding %d, %d slots in view", tk.outstanding, len(tk.r2ts))
	}
	for i, s := range tk.r2ts[:cap(tk.r2ts)] {
		if s.active {
			t.Fatalf("slot %d still active after reset", i)
		}
	}
}
