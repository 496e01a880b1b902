package index

import (
	"testing"
	"time"
)

// quiesce waits (polling, with a deadline) until pebble runs no flush or
// compaction, so that a simulated crash does not catch one half done.
func quiesce(t *testing.T, x *Index) {
	t.Helper()
	x.WaitForFlush()
	deadline := time.Now().Add(10 * time.Second)
	for {
		m := x.db.Metrics()
		if m.Compact.NumInProgress == 0 && m.Flush.NumInProgress == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("pebble did not settle")
		}
		time.Sleep(time.Millisecond)
	}
}
