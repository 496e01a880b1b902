package membership

import (
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestLoneMemberThenJoin starts a lone member, then a second one that
// joins it, and checks both see each other alive with their tags.
func TestLoneMemberThenJoin(t *testing.T) {
	a, err := Start(Config{NodeName: "a", BindAddr: freeAddr(t), Tags: map[string]string{TagAPI: "127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := a.Close(); err != nil {
			t.Error(err)
		}
		if err := a.Close(); err != nil { // idempotent
			t.Error(err)
		}
	}()
	if ms := a.Members(); len(ms) != 1 || ms[0].Name != "a" || ms[0].Status != StatusAlive || ms[0].Tags[TagAPI] != "127.0.0.1:1" {
		t.Fatalf("lone member = %+v", ms)
	}
	b, err := Start(Config{NodeName: "b", BindAddr: freeAddr(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if n, err := b.Join([]string{a.Members()[0].Addr}); err != nil || n != 1 {
		t.Fatalf("join = %d, %v", n, err)
	}
	deadline := time.After(10 * time.Second)
	for len(a.Members()) != 2 {
		select {
		case <-a.Hints():
		case <-deadline:
			t.Fatalf("a sees %+v", a.Members())
		}
	}
}
