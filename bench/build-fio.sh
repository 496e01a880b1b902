#!/bin/sh
# build-fio.sh builds fio with its libiscsi engine from Debian's fio source
# package into bench/build/ (gitignored). It is idempotent: if
# bench/build/fio lists the libiscsi engine and was built by this version of
# the recipe (bench/build/fio.recipe), it does nothing.
#
# One local fix is applied to the engine: fio (3.33 and upstream) sends
# SYNCHRONIZE CACHE(16) with NUMBER OF BLOCKS set to the LUN size in bytes,
# past the end of the LUN. tgt ignores the range; a target that checks it as
# SBC requires (VBS) answers LBA OUT OF RANGE, which fio does not count as a
# job error, so flushes would silently not happen. The fix sends 0 blocks,
# which SBC defines as "from the LBA to the end of the medium".
#
# Needs root for apt-get (it adds a bookworm deb-src entry only when none
# exists, and installs libiscsi-dev, libaio-dev and zlib1g-dev when missing).
#
# Usage: bench/build-fio.sh            (from the repository root or anywhere)
# Result: bench/build/fio
set -eu

here=$(cd "$(dirname "$0")" && pwd)
build="$here/build"
out="$build/fio"
src_list=/etc/apt/sources.list.d/vbs-src.list

stamp="$build/fio.recipe"
# recipe names this version of the build; bump it when the build changes so
# that an older bench/build/fio is rebuilt.
recipe="fio-libiscsi-synccache16-fix-1"

has_libiscsi() {
	[ -x "$1" ] && "$1" --enghelp 2>/dev/null | grep -qx '[[:space:]]*libiscsi'
}

if has_libiscsi "$out" && [ "$(cat "$stamp" 2>/dev/null)" = "$recipe" ]; then
	echo "build-fio: $out already built with libiscsi ($recipe)"
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "build-fio: needs root for apt-get (deb-src entry, build deps)" >&2
	exit 1
fi

# has_debsrc reports whether any configured apt source (one-line .list or
# deb822 .sources) already provides deb-src for bookworm.
has_debsrc() {
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		if grep -Eq '^[[:space:]]*deb-src[[:space:]].*[[:space:]]bookworm([[:space:]]|$)' "$f"; then
			return 0
		fi
	done
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		# A deb822 stanza is a paragraph; look for one with deb-src and bookworm.
		if awk 'BEGIN{RS=""} /Types:[^\n]*deb-src/ && /Suites:[^\n]*bookworm([ \t\n]|$)/ && !/Enabled:[ \t]*no/ {found=1} END{exit !found}' "$f"; then
			return 0
		fi
	done
	return 1
}

# debian_signed_by prints the Signed-By keyring that the existing deb822
# sources use for deb.debian.org/debian, if any. apt refuses two entries for
# the same URI and suite whose Signed-By differ, so ours must match.
debian_signed_by() {
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		awk 'BEGIN{RS=""} /URIs:[^\n]*deb\.debian\.org\/debian([ \t\n\/]|$)/ && /Suites:[^\n]*bookworm/ {
			n = split($0, lines, "\n")
			for (i = 1; i <= n; i++) if (lines[i] ~ /^Signed-By:/) { sub(/^Signed-By:[ \t]*/, "", lines[i]); print lines[i]; exit }
		}' "$f"
	done | head -n 1
}

if ! has_debsrc; then
	echo "build-fio: adding $src_list"
	opts=""
	key=$(debian_signed_by)
	if [ -n "$key" ]; then
		opts="[signed-by=$key] "
	fi
	echo "deb-src ${opts}http://deb.debian.org/debian bookworm main" >"$src_list"
fi

missing=""
for p in libiscsi-dev libaio-dev zlib1g-dev build-essential dpkg-dev; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done

apt-get update -qq
if [ -n "$missing" ]; then
	echo "build-fio: installing$missing"
	# shellcheck disable=SC2086 # word splitting of the package list is wanted
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
fi

mkdir -p "$build"
cd "$build"
srcdir=$(find . -maxdepth 1 -type d -name 'fio-*' | sort | tail -n 1)
if [ -z "$srcdir" ]; then
	# --download-only semantics are not enough: we want the unpacked tree.
	apt-get source -qq fio
	srcdir=$(find . -maxdepth 1 -type d -name 'fio-*' | sort | tail -n 1)
fi
if [ -z "$srcdir" ]; then
	echo "build-fio: apt-get source fio produced no fio-* directory in $build" >&2
	exit 1
fi

cd "$srcdir"
engine=engines/libiscsi.c
buggy='0, iscsi_lun->num_blocks \* iscsi_lun->block_size, 0, 0);'
if grep -q "$buggy" "$engine"; then
	echo "build-fio: patching SYNCHRONIZE CACHE(16) range in $engine"
	sed -i "s/$buggy/0, 0, 0, 0); \/* vbs: 0 blocks = to the end of the LUN *\//" "$engine"
fi
if ! grep -q 'vbs: 0 blocks = to the end of the LUN' "$engine"; then
	echo "build-fio: cannot find the SYNCHRONIZE CACHE(16) call to fix in $srcdir/$engine" >&2
	exit 1
fi
./configure --enable-libiscsi
make -j2
cp fio "$out"

if ! has_libiscsi "$out"; then
	echo "build-fio: built $out but 'fio --enghelp' does not list libiscsi" >&2
	exit 1
fi
echo "$recipe" >"$stamp"
echo "build-fio: built $out with libiscsi ($recipe)"
