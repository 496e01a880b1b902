#!/usr/bin/env bash
# run-libiscsi.sh runs libiscsi's iscsi-test-cu (the whole suite, with
# destructive tests and two paths for the multipath tests) against
# `vbs target` serving one thin in-memory LUN on a free loopback port.
#
# It fails unless the summary reports 0 failed tests and the target shuts
# down cleanly on SIGTERM. Environment:
#   VBS            the vbs binary (default: bin/vbs, built when missing or stale)
#   LUN_SPEC       the LUN spec (default mem:128MiB)
#   CU_ARGS        extra iscsi-test-cu arguments (e.g. "-t iSCSI")
#   KEEP_LOGS=1    keep the work directory with the target and test logs
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
vbs=${VBS:-$root/bin/vbs}
lun_spec=${LUN_SPEC:-mem:128MiB}
iqn=iqn.2026-11.io.vbs:conformance
initiator=iqn.2026-11.test:cu

command -v iscsi-test-cu >/dev/null || {
	echo "run-libiscsi: iscsi-test-cu not found (Debian package libiscsi-bin)" >&2
	exit 1
}
if [[ -z ${VBS:-} ]]; then
	if [[ ! -x $vbs ]] || [[ -n $(find "$root" -name '*.go' -newer "$vbs" -print -quit) ]]; then
		echo "run-libiscsi: building $vbs"
		(cd "$root" && go build -o "$vbs" ./cmd/vbs)
	fi
fi

work=$(mktemp -d)
pid=
cleanup() {
	if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid" 2>/dev/null || true
	fi
	if [[ ${KEEP_LOGS:-} == 1 ]]; then
		echo "run-libiscsi: logs kept in $work"
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT

# A free port: bind port 0 and read back what the kernel chose.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

"$vbs" target --listen "127.0.0.1:$port" --iqn "$iqn" --lun "$lun_spec" >"$work/target.log" 2>&1 &
pid=$!

# Wait (with a deadline) until the portal accepts connections.
deadline=$((SECONDS + 20))
until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
	if ! kill -0 "$pid" 2>/dev/null; then
		echo "run-libiscsi: vbs target exited early:" >&2
		cat "$work/target.log" >&2
		exit 1
	fi
	if ((SECONDS > deadline)); then
		echo "run-libiscsi: vbs target did not listen on port $port" >&2
		exit 1
	fi
	sleep 0.1
done

url="iscsi://127.0.0.1:$port/$iqn/0"
echo "run-libiscsi: iscsi-test-cu --dataloss -i $initiator ${CU_ARGS:-} $url $url"
set +e
# shellcheck disable=SC2086
iscsi-test-cu --dataloss -i "$initiator" ${CU_ARGS:-} "$url" "$url" >"$work/cu.log" 2>&1
cu_status=$?
set -e

kill -TERM "$pid"
target_status=0
wait "$pid" || target_status=$?
pid=

summary=$(grep -E '^ +tests +[0-9]' "$work/cu.log" || true)
if [[ -z $summary ]]; then
	echo "run-libiscsi: no summary from iscsi-test-cu (exit $cu_status):" >&2
	tail -50 "$work/cu.log" >&2
	exit 1
fi
read -r _ total ran passed failed inactive <<<"$summary"
skipped=$(grep -c '\[SKIPPED\]' "$work/cu.log" || true)
echo "run-libiscsi: tests total=$total ran=$ran passed=$passed failed=$failed inactive=$inactive skipped-messages=$skipped"

status=0
if [[ $failed != 0 ]]; then
	echo "run-libiscsi: FAILED tests:" >&2
	# CUnit prints "Suite: S", then "  Test: T ..." and, possibly after
	# the test's own messages, a line starting with FAILED.
	awk '/^Suite: /{suite=$2} /^  Test: /{test=$2; if ($0 ~ /\.\.\.FAILED/) print "  " suite "." test}
		/^FAILED/{print "  " suite "." test}' "$work/cu.log" | sort -u >&2
	status=1
fi
if [[ $target_status != 0 ]]; then
	echo "run-libiscsi: vbs target did not shut down cleanly (exit $target_status):" >&2
	tail -20 "$work/target.log" >&2
	status=1
fi
if grep -q 'panic' "$work/target.log"; then
	echo "run-libiscsi: vbs target logged a panic" >&2
	status=1
fi
if ((status == 0)); then
	echo "run-libiscsi: PASS"
fi
exit $status
