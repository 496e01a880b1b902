#!/usr/bin/env bash
# deps.sh installs the Debian packages the tests need, when they are missing:
# libiscsi's initiator tools and test suite, QEMU's iSCSI driver and tgt (the
# reference target and a second real target for the initiator's tests).
set -euo pipefail

pkgs=(libiscsi-bin qemu-utils qemu-block-extra tgt)
missing=()
for p in "${pkgs[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null; then
		SUDO=sudo
	else
		echo "deps.sh: need root to install: ${missing[*]} (run: apt-get install -y ${missing[*]})" >&2
		exit 1
	fi
fi
echo "deps.sh: installing ${missing[*]}"
${SUDO:-} apt-get update -qq
DEBIAN_FRONTEND=noninteractive ${SUDO:-} apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
