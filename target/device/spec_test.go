package device

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseSpec(t *testing.T) {
	tests := []struct {
		in   string
		want Spec
	}{
		{"null:1GiB", Spec{Kind: KindNull, Size: 1 << 30, BlockSize: 512}},
		{"mem:512MiB", Spec{Kind: KindMem, Size: 512 << 20, BlockSize: 512}},
		{"mem:64M,bs=4096", Spec{Kind: KindMem, Size: 64 << 20, BlockSize: 4096}},
		{"mem:4096,bs=512", Spec{Kind: KindMem, Size: 4096, BlockSize: 512}},
		{"file:/var/lib/vbs/a.img", Spec{Kind: KindFile, Path: "/var/lib/vbs/a.img", BlockSize: 512}},
		{"file:a.img,size=10GiB", Spec{Kind: KindFile, Path: "a.img", Size: 10 << 30, BlockSize: 512}},
		{"file:a.img,bs=4096,size=1T", Spec{Kind: KindFile, Path: "a.img", Size: 1 << 40, BlockSize: 4096}},
		{"file:/x:y", Spec{Kind: KindFile, Path: "/x:y", BlockSize: 512}},
		{"store:/data/vol1", Spec{Kind: KindStore, Path: "/data/vol1", BlockSize: 512}},
		{"store:/data/vol1,size=100GB", Spec{Kind: KindStore, Path: "/data/vol1", Size: 100e9, BlockSize: 512}},
	}
	for _, tc := range tests {
		got, err := ParseSpec(tc.in)
		if err != nil {
			t.Errorf("ParseSpec(%q): %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("ParseSpec(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
		if back, err := ParseSpec(got.String()); err != nil || back != got {
			t.Errorf("ParseSpec(%q) (String of %q) = %+v, %v", got.String(), tc.in, back, err)
		}
	}
}

func TestParseSpecErrors(t *testing.T) {
	tests := []struct {
		in, msg   string
		isBadSize bool
	}{
		{"mem:12x", `lun spec "mem:12x": bad size "12x": unknown unit "x" (want B, K, M, G, T, P, KiB..PiB or KB..PB)`, true},
		{"mem", `lun spec "mem": want KIND:ARG with KIND one of null, mem, file, store`, false},
		{"disk:1G", `lun spec "disk:1G": unknown kind "disk" (want null, mem, file or store)`, false},
		{"MEM:1G", `unknown kind "MEM"`, false},
		{"mem:", `lun spec "mem:": mem needs a size, e.g. mem:1GiB`, false},
		{"null:", `null needs a size`, false},
		{"file:", `lun spec "file:": file needs a path`, false},
		{"file:,size=1G", `file needs a path`, false},
		{"store:", `store needs a path`, false},
		{"mem:0", `lun spec "mem:0": size must be positive`, false},
		{"mem:1000", `lun spec "mem:1000": size 1000 is not a multiple of the block size 512`, false},
		{"mem:1KiB,bs=4096", `size 1024 is not a multiple of the block size 4096`, false},
		{"file:a,size=100", `size 100 is not a multiple of the block size 512`, false},
		{"file:a,size=0", `size must be positive`, false},
		{"file:a,size=1Q", `lun spec "file:a,size=1Q": bad size "1Q": unknown unit "Q"`, true},
		{"mem:1G,bs=1024", `lun spec "mem:1G,bs=1024": bs=1024: want 512 or 4096`, false},
		{"mem:1G,bs=x", `bs=x: want 512 or 4096`, false},
		{"mem:1G,bs=99999999999", `bs=99999999999: want 512 or 4096`, false},
		{"mem:1G,size=2G", `unknown option "size" for mem (want bs=)`, false},
		{"file:a,sise=2G", `unknown option "sise" for file (want size= or bs=)`, false},
		{"file:a,size=1G,size=2G", `option "size" given twice`, false},
		{"file:a,bs=512,bs=512", `option "bs" given twice`, false},
		{"file:a,", `option "": want KEY=VALUE`, false},
		{"file:a,b", `option "b": want KEY=VALUE`, false},
		{"file:a,size=", `option "size=": want KEY=VALUE`, false},
	}
	for _, tc := range tests {
		_, err := ParseSpec(tc.in)
		if err == nil {
			t.Errorf("ParseSpec(%q): no error, want %q", tc.in, tc.msg)
			continue
		}
		if !errors.Is(err, ErrBadSpec) {
			t.Errorf("ParseSpec(%q): %v does not match ErrBadSpec", tc.in, err)
		}
		if got := errors.Is(err, ErrBadSize); got != tc.isBadSize {
			t.Errorf("ParseSpec(%q): errors.Is(ErrBadSize) = %v, want %v", tc.in, got, tc.isBadSize)
		}
		var se *SpecError
		if !errors.As(err, &se) || se.Spec != tc.in {
			t.Errorf("ParseSpec(%q): %v is not a *SpecError quoting the spec", tc.in, err)
		}
		if !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("ParseSpec(%q) error\n  %s\nwant it to contain\n  %s", tc.in, err, tc.msg)
		}
	}
}

func TestOpen(t *testing.T) {
	img := filepath.Join(t.TempDir(), "lun.img")
	tests := []struct {
		spec       string
		blockSize  uint32
		blocks     uint64
		wantCloser bool
	}{
		{"null:1GiB", 512, 2 << 20, false},
		{"mem:1MiB,bs=4096", 4096, 256, false},
		{"file:" + img + ",size=1MiB", 512, 2048, true},
		{"file:" + img, 512, 2048, true}, // reopen: the size comes from the image
	}
	for _, tc := range tests {
		spec, err := ParseSpec(tc.spec)
		if err != nil {
			t.Fatal(err)
		}
		dev, err := Open(spec)
		if err != nil {
			t.Fatalf("Open(%q): %v", tc.spec, err)
		}
		if dev.BlockSize() != tc.blockSize || dev.Blocks() != tc.blocks {
			t.Errorf("Open(%q): %d blocks of %d, want %d of %d", tc.spec, dev.Blocks(), dev.BlockSize(), tc.blocks, tc.blockSize)
		}
		c, ok := dev.(interface{ Close() error })
		if ok != tc.wantCloser {
			t.Errorf("Open(%q): io.Closer = %v, want %v", tc.spec, ok, tc.wantCloser)
		}
		if ok {
			if err := c.Close(); err != nil {
				t.Errorf("Close %q: %v", tc.spec, err)
			}
		}
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	spec, err := ParseSpec("store:" + dir + ",size=1G")
	if err != nil {
		t.Fatal(err)
	}
	dev, err := Open(spec)
	if !errors.Is(err, ErrStoreSpec) || dev != nil {
		t.Errorf("Open(store spec) = %v, %v; want nil, ErrStoreSpec", dev, err)
	}
	spec, err = ParseSpec("file:" + filepath.Join(dir, "missing.img"))
	if err != nil {
		t.Fatal(err)
	}
	dev, err = Open(spec)
	if err == nil || dev != nil {
		t.Errorf("Open(missing file without size) = %v, %v; want an error and a nil device", dev, err)
	}
	if _, err := Open(Spec{Kind: KindMem, Size: 0, BlockSize: 512}); err == nil {
		t.Error("Open(mem of 0 bytes): no error")
	}
	if _, err := Open(Spec{Kind: "tape", Size: 512, BlockSize: 512}); !errors.Is(err, ErrBadSpec) {
		t.Errorf("Open(unknown kind) = %v, want ErrBadSpec", err)
	}
}

// FuzzParseSpec checks that ParseSpec never panics, that every error is a
// *SpecError, and that every accepted spec is valid and survives a
// String/ParseSpec round trip.
func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{
		"null:1GiB", "mem:512MiB,bs=4096", "file:/a/b.img,size=10GiB", "file:x", "store:/d,size=1T,bs=512",
		"mem:12x", "file:a,,", "file:a,size=1G,size=1G", "mem:1.5K", ":", "file:a,bs=4096,size=4K",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		spec, err := ParseSpec(s)
		if err != nil {
			var se *SpecError
			if !errors.As(err, &se) || !errors.Is(err, ErrBadSpec) {
				t.Fatalf("ParseSpec(%q): %v is not a *SpecError", s, err)
			}
			return
		}
		if !validBlockSize(spec.BlockSize) || spec.Size%uint64(spec.BlockSize) != 0 {
			t.Fatalf("ParseSpec(%q) = %+v: bad geometry", s, spec)
		}
		switch spec.Kind {
		case KindNull, KindMem:
			if spec.Size == 0 || spec.Path != "" {
				t.Fatalf("ParseSpec(%q) = %+v", s, spec)
			}
		case KindFile, KindStore:
			if spec.Path == "" || strings.Contains(spec.Path, ",") {
				t.Fatalf("ParseSpec(%q) = %+v", s, spec)
			}
		default:
			t.Fatalf("ParseSpec(%q): kind %q", s, spec.Kind)
		}
		back, err := ParseSpec(spec.String())
		if err != nil || back != spec {
			t.Fatalf("ParseSpec(%q) = %+v; String %q parses to %+v, %v", s, spec, spec.String(), back, err)
		}
	})
}
