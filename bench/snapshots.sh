#!/usr/bin/env bash
# bench/snapshots.sh: what snapshots cost a running workload.
#
# Starts a one-node `vbs server` in a temporary directory, creates a 1 GiB
# volume, grants it to fio's initiator name and fills it. Then it runs fio's
# 4 KiB random write job at QD32 (bench/fio/randwrite-4k-qd32.fio) several
# times, alternating runs with no snapshots and runs during which SNAPSHOTS
# snapshots are requested through the JSON API (evenly spread over the run), and prints
# the IOPS of each run and the ratio of the means. Snapshots from earlier runs
# stay, so later runs write to a volume with more and more snapshots.
#
# Needs bin/vbs (make build) and bench/build/fio (make bench-fio). Opt-in:
# `make bench-snapshots`. Writes bench/results/<date>-snapshots.md unless
# NO_WRITE=1.
#
# Environment: SNAPSHOTS (default 100), RUNTIME seconds per run (default 20),
# PAIRS of runs (default 2), VBS, FIO, JOB (default randwrite-4k-qd32).
# A volume holds at most 256 snapshots (the catalog's limit), so
# SNAPSHOTS x PAIRS must stay within it.
set -euo pipefail

cd "$(dirname "$0")/.."
VBS=${VBS:-bin/vbs}
FIO=${FIO:-bench/build/fio}
JOB=${JOB:-randwrite-4k-qd32}
SNAPSHOTS=${SNAPSHOTS:-100}
RUNTIME=${RUNTIME:-20}
PAIRS=${PAIRS:-2}
INITIATOR=iqn.2026-11.io.vbs:bench-fio
API_PORT=17480 ISCSI_PORT=13260 RAFT_PORT=17481 SERF_PORT=17482

for f in "$VBS" "$FIO"; do
	[ -x "$f" ] || { echo "snapshots.sh: $f missing (make build bench-fio)" >&2; exit 2; }
done

work=$(mktemp -d /var/tmp/vbs-snapbench.XXXXXX)
server_pid=
cleanup() {
	if [ -n "$server_pid" ]; then
		kill -TERM "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

"$VBS" server --data-dir "$work/node" --api-listen 127.0.0.1:$API_PORT \
	--iscsi-listen 127.0.0.1:$ISCSI_PORT --raft-listen 127.0.0.1:$RAFT_PORT \
	--serf-listen 127.0.0.1:$SERF_PORT >"$work/server.log" 2>&1 &
server_pid=$!
export VBS_API=http://127.0.0.1:$API_PORT
for _ in $(seq 1 200); do
	# /readyz answers 200 once the node leads its catalog and serves.
	if [ -s "$work/node/api-token" ] && curl -fs "http://127.0.0.1:$API_PORT/readyz" >/dev/null 2>&1; then
		break
	fi
	kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
	sleep 0.1
done
vbs() { "$VBS" --token-file "$work/node/api-token" "$@"; }
# snap NAME asks for a snapshot through the JSON API (curl is lighter on a
# 2-core box than starting the CLI a hundred times); it is READY once the
# node has taken it, which the report checks after each run.
snap() {
	curl -fsS -X POST "$VBS_API/vbs.v1.SnapshotService/CreateSnapshot" \
		-H "Authorization: Bearer $(cat "$work/node/api-token")" -H 'Content-Type: application/json' \
		-d "{\"volume\":\"bench\",\"name\":\"$1\"}" >/dev/null
}
# ready counts the volume's snapshots in state READY.
ready() { vbs snapshot list bench -o json | grep -c 'SNAPSHOT_STATE_READY' || true; }

vbs volume create bench --size 1GiB >/dev/null
url=$(vbs export grant bench --initiator "$INITIATOR" -o json | sed -n 's/.*"url": *"\([^"]*\)".*/\1/p')
[ -n "$url" ] || { echo "snapshots.sh: no URL from export grant" >&2; exit 1; }
# fio's filename syntax needs the colons escaped.
target=${url//:/\\:}

# The job files take the target from the environment; the initiator name
# goes in a generated copy.
jobfile="$work/$JOB.fio"
sed "s/^\[global\]$/[global]\ninitiator=$INITIATOR/" "bench/fio/$JOB.fio" >"$jobfile"
sed "s/^\[global\]$/[global]\ninitiator=$INITIATOR/" bench/fio/fill.fio >"$work/fill.fio"

export VBS_FIO_TARGET=$target VBS_FIO_ENGINE=libiscsi VBS_FIO_SIZE=1g
export VBS_FIO_RUNTIME=${RUNTIME}s VBS_FIO_RAMP=2s
"$FIO" --output-format=terse "$work/fill.fio" >/dev/null

# iops FILE prints the write IOPS of a fio JSON result.
iops() {
	python3 -c 'import json,sys; s=open(sys.argv[1]).read(); j=json.loads(s[s.index("{"):]); print(round(sum(x["write"]["iops"] for x in j["jobs"])))' "$1"
}

run() { # run NAME SNAPS: prints the run's write IOPS (called in a subshell)
	local out="$work/$1.json"
	"$FIO" --output-format=json --output="$out" "$jobfile" >/dev/null 2>&1 &
	local fio_pid=$!
	if [ "$2" -gt 0 ]; then
		# Spread the snapshots over the measured part of the run.
		sleep 2
		local gap
		gap=$(python3 -c "print(max(($RUNTIME - 1) / $2, 0.01))")
		for i in $(seq 1 "$2"); do
			snap "$1-s$i"
			sleep "$gap"
		done
	fi
	wait "$fio_pid"
	iops "$out"
}

rows=()
sum0=0 sum1=0
for p in $(seq 1 "$PAIRS"); do
	# Alternate the order so drift on the machine hits both sides alike.
	if [ $((p % 2)) -eq 1 ]; then order="0 1"; else order="1 0"; fi
	for side in $order; do
		if [ "$side" -eq 0 ]; then
			v=$(run "none-$p" 0)
			sum0=$((sum0 + v))
			rows+=("| $p | none | $(ready) | $v |")
		else
			before=$(ready)
			v=$(run "snaps-$p" "$SNAPSHOTS")
			sum1=$((sum1 + v))
			after=$(ready)
			for _ in $(seq 1 300); do # the last ones may still be CREATING
				[ "$after" -ge $((before + SNAPSHOTS)) ] && break
				sleep 0.1
				after=$(ready)
			done
			if [ "$after" -ne $((before + SNAPSHOTS)) ]; then
				echo "snapshots.sh: $((after - before)) of $SNAPSHOTS snapshots became READY during run $p" >&2
				exit 1
			fi
			rows+=("| $p | $SNAPSHOTS during the run | $after | $v |")
		fi
		echo "${rows[-1]}"
	done
done
ratio=$(python3 -c "print(f'{$sum1 / $sum0:.3f}')")
total=$(ready)

stamp=$(date -u +%Y-%m-%dT%H%MZ)
report="# Snapshots during a run: $stamp

- Command: \`bench/snapshots.sh\` (SNAPSHOTS=$SNAPSHOTS RUNTIME=${RUNTIME}s PAIRS=$PAIRS JOB=$JOB)
- One \`vbs server\` node, 1 GiB volume filled first, fio $JOB via libiscsi over loopback.
- Snapshots are requested through the JSON API (CreateSnapshot) while fio runs; they are kept, so the
  volume has $total snapshots at the end.
- Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)

| pair | snapshots | READY snapshots on the volume after the run | write IOPS |
|---:|---|---:|---:|
$(printf '%s\n' "${rows[@]}")

Mean IOPS with snapshots / without: **$ratio**
"
echo
echo "$report"
if [ "${NO_WRITE:-0}" != 1 ]; then
	mkdir -p bench/results
	echo "$report" >"bench/results/$stamp-snapshots.md"
	echo "wrote bench/results/$stamp-snapshots.md"
fi
