// Package layering enforces the import rules of ../shared/design.md: the
// dependency direction between the top-level folders, and which single
// package may import each of the heavy cluster libraries.
package layering

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/vbs-storage/vbs"

type pkg struct {
	ImportPath string
	Imports    []string
}

// forbidden maps a folder of the module to the folders of the module it
// must never import (directly).
var forbidden = map[string][]string{
	"target":      {"blockstore", "replication", "control", "initiator", "bench", "cmd", "internal/storedev"},
	"blockstore":  {"target", "replication", "control", "initiator", "bench", "cmd", "internal/storedev"},
	"replication": {"control", "initiator", "bench", "cmd"},
	"control":     {"cmd", "bench"},
	"initiator":   {"control", "blockstore", "replication", "bench", "cmd"},
	"bench":       {"cmd", "control", "blockstore", "replication", "target"},
	"internal":    {"cmd", "control"},
}

// exclusive maps an external import-path prefix to the only folders of the
// module allowed to import it (non-test code).
var exclusive = []struct {
	prefix  string
	except  []string // sub-prefixes of prefix that are open to others
	allowed []string
}{
	{"github.com/cockroachdb/pebble", []string{"github.com/cockroachdb/pebble/vfs"}, []string{"blockstore/index"}},
	{"github.com/cockroachdb/pebble/vfs", nil, []string{"blockstore"}},
	{"github.com/hashicorp/serf", nil, []string{"control/membership"}},
	{"github.com/hashicorp/raft", nil, []string{"control/catalog"}},
	{"github.com/klauspost/reedsolomon", nil, []string{"replication/erasure", "blockstore/erasure"}},
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	out, err := exec.Command("go", "list", "-json", module+"/...").Output()
	if err != nil {
		if ee, ok := errors.AsType[*exec.ExitError](err); ok {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// rel returns the module-relative folder of an import path, or "" when it
// is outside the module.
func rel(path string) string {
	if path == module {
		return "."
	}
	if r, ok := strings.CutPrefix(path, module+"/"); ok {
		return r
	}
	return ""
}

// under reports whether folder is dir or inside it.
func under(folder, dir string) bool {
	return folder == dir || strings.HasPrefix(folder, dir+"/")
}

func TestLayering(t *testing.T) {
	for _, p := range listPackages(t) {
		from := rel(p.ImportPath)
		if from == "" || strings.HasPrefix(from, "proto/") {
			continue
		}
		for _, imp := range p.Imports {
			if to := rel(imp); to != "" {
				for dir, bad := range forbidden {
					if !under(from, dir) {
						continue
					}
					for _, b := range bad {
						if under(to, b) {
							t.Errorf("%s imports %s: %s must not depend on %s", from, to, dir, b)
						}
					}
				}
				continue
			}
			for _, ex := range exclusive {
				if imp != ex.prefix && !strings.HasPrefix(imp, ex.prefix+"/") {
					continue
				}
				open := false
				for _, e := range ex.except {
					if imp == e || strings.HasPrefix(imp, e+"/") {
						open = true
					}
				}
				if open {
					continue
				}
				ok := false
				for _, a := range ex.allowed {
					if under(from, a) {
						ok = true
					}
				}
				if !ok {
					t.Errorf("%s imports %s: only %v may", from, imp, ex.allowed)
				}
			}
		}
	}
}

// TestRulesCatchViolations checks the checker on a synthetic violation, so
// that a broken matcher cannot pass silently.
func TestRulesCatchViolations(t *testing.T) {
	if !under("target/scsi", "target") || under("targetx", "target") {
		t.Fatal("under() is wrong")
	}
	if rel(module+"/blockstore/index") != "blockstore/index" || rel("github.com/other/x") != "" {
		t.Fatal("rel() is wrong")
	}
	found := false
	for _, b := range forbidden["target"] {
		if under("blockstore", b) {
			found = true
		}
	}
	if !found {
		t.Fatal("target -> blockstore is not forbidden")
	}
}
