# bench/bench.mk: benchmark targets, included by the top Makefile
# (`include bench/bench.mk`). Run from the repository root.
#
#   make bench-fio     build fio with its libiscsi engine into bench/build/fio
#   make bench-snapshots  IOPS of 4k random writes on a `vbs server` volume
#                      while 100 snapshots are taken, against none
#                      (bench/snapshots.sh; SNAPSHOTS, RUNTIME, PAIRS)
#   make bench-target  build bin/vbs and fio, install tgt if missing, then run
#                      every fio job against tgt and the VBS target (null and
#                      file LUNs) and write bench/results/<date>-<name>.{md,json}
#
# Pass harness flags with BENCH_ARGS, e.g.
#   make bench-target BENCH_ARGS='--runtime 30s --repeat 3 --luns null,file,store'
# See docs/benchmarks.md.

GO ?= go
BENCH_FIO ?= bench/build/fio
BENCH_LUNS ?= null,file
BENCH_ARGS ?=

.PHONY: bench-fio bench-target bench-tgt bench-snapshots

bench-fio:
	bench/build-fio.sh

# bench-tgt installs Debian's tgt package (tgtd, tgtadm) when it is missing.
bench-tgt:
	@if command -v tgtd >/dev/null 2>&1 && command -v tgtadm >/dev/null 2>&1; then \
		echo "bench-tgt: tgt is installed"; \
	else \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tgt; \
	fi

bench-target: build bench-fio bench-tgt
	$(GO) run ./bench/cmd/vbs-bench --fio $(BENCH_FIO) --vbs-bin bin/vbs --luns $(BENCH_LUNS) $(BENCH_ARGS)

bench-snapshots: build bench-fio
	bench/snapshots.sh
