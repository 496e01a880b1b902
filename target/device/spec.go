package device

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/vbs-storage/vbs/target/scsi"
)

// Kind names a LUN backend in a spec.
type Kind string

// The LUN kinds a spec may name.
const (
	KindNull  Kind = "null"
	KindMem   Kind = "mem"
	KindFile  Kind = "file"
	KindStore Kind = "store"
)

// Logical block sizes a LUN may have.
const (
	BlockSize512  uint32 = 512
	BlockSize4096 uint32 = 4096
	// DefaultBlockSize is used when a spec has no bs= option.
	DefaultBlockSize = BlockSize512
)

// Spec option keys.
const (
	optSize      = "size"
	optBlockSize = "bs"
)

var (
	// ErrBadSpec matches (errors.Is) every error ParseSpec returns.
	ErrBadSpec = errors.New("bad lun spec")
	// ErrStoreSpec is returned by Open for a "store:" spec: the blockstore
	// lives outside the target, and the caller (cmd/vbs) must open it.
	ErrStoreSpec = errors.New("store specs are opened by the caller, not by package device")
)

// Spec is a parsed LUN spec:
//
//	null:SIZE[,bs=N]
//	mem:SIZE[,bs=N]
//	file:PATH[,size=SIZE][,bs=N]
//	store:DIR[,size=SIZE][,bs=N]
//
// Size is in bytes, a positive multiple of BlockSize; it is 0 for a file or
// store spec without size= (use the existing image's size). BlockSize is 512
// or 4096. Path is empty for null and mem. Options are comma-separated, so a
// PATH cannot contain a comma.
type Spec struct {
	Kind      Kind
	Path      string
	Size      uint64
	BlockSize uint32
}

// Blocks returns Size in logical blocks.
func (s Spec) Blocks() uint64 {
	return s.Size / uint64(s.BlockSize)
}

// String renders s in the form ParseSpec accepts, omitting defaults, so that
// ParseSpec(s.String()) returns s for every spec ParseSpec produced.
func (s Spec) String() string {
	var b strings.Builder
	b.WriteString(string(s.Kind))
	b.WriteByte(':')
	switch s.Kind {
	case KindNull, KindMem:
		b.WriteString(FormatSize(s.Size))
	default:
		b.WriteString(s.Path)
		if s.Size != 0 {
			b.WriteString("," + optSize + "=" + FormatSize(s.Size))
		}
	}
	if s.BlockSize != DefaultBlockSize {
		b.WriteString("," + optBlockSize + "=" + strconv.FormatUint(uint64(s.BlockSize), 10))
	}
	return b.String()
}

// SpecError is the error ParseSpec returns. It matches ErrBadSpec with
// errors.Is, and unwraps to its cause (which wraps ErrBadSize when the size
// was at fault).
type SpecError struct {
	Spec string // the spec as given
	Err  error  // what is wrong with it
}

func (e *SpecError) Error() string {
	return fmt.Sprintf("lun spec %q: %v", e.Spec, e.Err)
}

// Unwrap returns the cause.
func (e *SpecError) Unwrap() error { return e.Err }

// Is reports whether target is ErrBadSpec.
func (e *SpecError) Is(target error) bool { return target == ErrBadSpec }

// ParseSpec parses a LUN spec (see Spec). Every error is a *SpecError that
// quotes the whole spec, e.g.
//
//	lun spec "mem:12x": bad size "12x": unknown unit "x" (...)
func ParseSpec(s string) (Spec, error) {
	spec, err := parseSpec(s)
	if err != nil {
		return Spec{}, &SpecError{Spec: s, Err: err}
	}
	return spec, nil
}

func parseSpec(s string) (Spec, error) {
	kind, rest, ok := strings.Cut(s, ":")
	if !ok {
		return Spec{}, fmt.Errorf("want KIND:ARG with KIND one of null, mem, file, store")
	}
	spec := Spec{Kind: Kind(kind), BlockSize: DefaultBlockSize}
	switch spec.Kind {
	case KindNull, KindMem, KindFile, KindStore:
	default:
		return Spec{}, fmt.Errorf("unknown kind %q (want null, mem, file or store)", kind)
	}
	arg, opts, _ := strings.Cut(rest, ",")
	if arg == "" {
		if spec.Kind == KindNull || spec.Kind == KindMem {
			return Spec{}, fmt.Errorf("%s needs a size, e.g. %s:1GiB", kind, kind)
		}
		return Spec{}, fmt.Errorf("%s needs a path", kind)
	}
	var sizeSet, bsSet bool
	if spec.Kind == KindNull || spec.Kind == KindMem {
		n, err := ParseSize(arg)
		if err != nil {
			return Spec{}, err
		}
		spec.Size, sizeSet = n, true
	} else {
		spec.Path = arg
	}
	if rest != arg {
		for opt := range strings.SplitSeq(opts, ",") {
			key, val, ok := strings.Cut(opt, "=")
			if !ok || val == "" {
				return Spec{}, fmt.Errorf("option %q: want KEY=VALUE", opt)
			}
			switch {
			case key == optSize && (spec.Kind == KindFile || spec.Kind == KindStore):
				if sizeSet {
					return Spec{}, fmt.Errorf("option %q given twice", key)
				}
				n, err := ParseSize(val)
				if err != nil {
					return Spec{}, err
				}
				spec.Size, sizeSet = n, true
			case key == optBlockSize:
				if bsSet {
					return Spec{}, fmt.Errorf("option %q given twice", key)
				}
				bs, err := strconv.ParseUint(val, 10, 32)
				if err != nil || !validBlockSize(uint32(bs)) {
					return Spec{}, fmt.Errorf("bs=%s: want %d or %d", val, BlockSize512, BlockSize4096)
				}
				spec.BlockSize, bsSet = uint32(bs), true
			default:
				return Spec{}, fmt.Errorf("unknown option %q for %s (want %s)", key, kind, optionsFor(spec.Kind))
			}
		}
	}
	if sizeSet {
		if spec.Size == 0 {
			return Spec{}, errors.New("size must be positive")
		}
		if spec.Size%uint64(spec.BlockSize) != 0 {
			return Spec{}, fmt.Errorf("size %d is not a multiple of the block size %d", spec.Size, spec.BlockSize)
		}
	}
	return spec, nil
}

func optionsFor(k Kind) string {
	if k == KindNull || k == KindMem {
		return optBlockSize + "="
	}
	return optSize + "= or " + optBlockSize + "="
}

func validBlockSize(bs uint32) bool {
	return bs == BlockSize512 || bs == BlockSize4096
}

// Open opens the device a null, mem or file spec names. A file spec with a
// size creates the image or extends it; without one the image must exist.
// For a store spec it returns ErrStoreSpec: the caller opens those. A
// device that holds resources implements io.Closer, and the caller must
// close it.
func Open(spec Spec) (scsi.Device, error) {
	bs := spec.BlockSize
	if bs == 0 {
		bs = DefaultBlockSize
	}
	// Each case returns through a typed nil check: a nil *Mem in a
	// scsi.Device would not compare equal to nil.
	switch spec.Kind {
	case KindNull:
		d, err := NewNull(bs, spec.Size/uint64(bs))
		if err != nil {
			return nil, err
		}
		return d, nil
	case KindMem:
		d, err := NewMem(bs, spec.Size/uint64(bs))
		if err != nil {
			return nil, err
		}
		return d, nil
	case KindFile:
		return openFileDevice(spec.Path, FileOptions{BlockSize: bs, Size: spec.Size})
	case KindStore:
		return nil, fmt.Errorf("open %s: %w", spec, ErrStoreSpec)
	default:
		return nil, fmt.Errorf("open lun spec with kind %q: %w", spec.Kind, ErrBadSpec)
	}
}
