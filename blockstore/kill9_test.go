package blockstore

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/vfs"
)

const kill9Env = "VBS_KILL9_CHILD_DIR"

// TestKill9 runs a writer in a child process on the real filesystem, kills
// it with SIGKILL while it writes, and checks that every write the child
// saw complete reads back: a completed write has been handed to the OS.
func TestKill9(t *testing.T) {
	if dir := os.Getenv(kill9Env); dir != "" {
		kill9Child(dir)
		return
	}
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKill9$", "-test.v=false")
	cmd.Env = append(os.Environ(), kill9Env+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	last := -1
	for sc.Scan() {
		line := sc.Text()
		if n, ok := strings.CutPrefix(line, "done "); ok {
			if last, err = strconv.Atoi(n); err != nil {
				t.Fatalf("child said %q", line)
			}
			if last >= 3000 {
				break
			}
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if last < 0 {
		t.Fatal("the child completed no write")
	}
	s, err := Open(dir, Options{FS: vfs.Default})
	if err != nil {
		t.Fatalf("reopen after kill -9: %v", err)
	}
	defer s.Close()
	v, err := s.OpenVolume("vol")
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	got := make([]byte, 4096)
	// Each block holds the newest completed write to it (or a newer one
	// that completed after the last report).
	for lba := 0; lba < kill9Blocks && lba <= last; lba++ {
		newest := lba + (last-lba)/kill9Blocks*kill9Blocks
		if err := v.ReadAt(context.Background(), got, uint64(lba)); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, kill9Block(newest)) && !bytes.Equal(got, kill9Block(newest+kill9Blocks)) {
			t.Fatalf("lba %d lost write %d (child completed %d writes)", lba, newest, last+1)
		}
	}
}

const kill9Blocks = 256

func kill9Block(i int) []byte {
	return bytes.Repeat([]byte(fmt.Sprintf("write %08d ", i)), 4096/15+1)[:4096]
}

// kill9Child writes forever, reporting each completed write on stdout.
func kill9Child(dir string) {
	ctx := context.Background()
	s, err := Open(dir, Options{FS: vfs.Default, SegmentSize: 1 << 20})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if _, err := s.CreateVolume(ctx, "vol", VolumeOptions{SizeBytes: kill9Blocks * 4096, BlockSize: 4096}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	v, err := s.OpenVolume("vol")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	w := bufio.NewWriter(os.Stdout)
	for i := 0; ; i++ {
		if err := v.WriteAt(ctx, kill9Block(i), uint64(i%kill9Blocks), false); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Fprintf(w, "done %d\n", i)
		w.Flush()
	}
}
