# VBS build, test, lint and benchmark entry points. `make test` is what CI runs.
GO        ?= go
BIN       := bin
VBS       := $(BIN)/vbs
STATICCHECK_VERSION := v0.8.2
GOTESTFLAGS ?= -count=1 -timeout 15m

.PHONY: all build test unit conformance conformance-store lint fmt vet staticcheck deps bench bench-go fuzz stress soak clean

all: build

build:
	$(GO) build -o $(VBS) ./cmd/vbs

deps:
	./scripts/deps.sh

# test: everything CI checks, from a fresh clone: Debian packages, unit and
# integration tests (which start the real binary), and the libiscsi
# conformance suite on a mem LUN and on a block-store LUN.
test: deps build vet unit conformance conformance-store

unit:
	$(GO) test $(GOTESTFLAGS) ./...

# conformance runs libiscsi's whole suite against a thin mem LUN.
conformance: deps build
	./test/conformance/run-libiscsi.sh

# conformance-store runs the same suite against a block-store LUN (about a
# minute; see docs/conformance.md).
conformance-store: deps build
	d=$$(mktemp -d) && LUN_SPEC=store:$$d/store,size=128MiB ./test/conformance/run-libiscsi.sh; rc=$$?; rm -rf "$$d"; exit $$rc

fmt:
	gofmt -w $$(git ls-files '*.go')

vet:
	$(GO) vet ./...

lint: vet staticcheck buf-lint generate-check
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

staticcheck:
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

# bench runs every benchmark: Go micro-benchmarks (allocs/op) and the fio
# comparison against tgt. Opt-in: it takes several minutes.
bench: bench-go bench-target

bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# stress runs the blockstore's crash, error-injection and metamorphic tests
# with many more seeds than make test (STRESS_SEEDS of them).
STRESS_SEEDS ?= 2000
stress:
	VBS_STRESS_SEEDS=$(STRESS_SEEDS) $(GO) test -count=1 -timeout 120m -run 'Crash|Metamorphic|ErrorInj' ./blockstore/

# soak overwrites a volume at 80% of its pool for SOAK_TIME and reports
# write amplification and latency against the empty store.
SOAK_TIME ?= 10m
soak:
	VBS_SUSTAINED=$(SOAK_TIME) $(GO) test -count=1 -timeout 0 -run Sustained -v ./blockstore/

# fuzz runs each fuzz target for a short while (FUZZTIME each).
FUZZTIME ?= 20s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

clean:
	rm -rf $(BIN)

-include bench/bench.mk
-include proto/proto.mk
