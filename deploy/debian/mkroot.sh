#!/usr/bin/env bash
# mkroot.sh: a clean Debian bookworm root to install packages into, for the deploy tests.
#   deploy/debian/mkroot.sh DIR
# debootstrap --variant=minbase bookworm, plus systemd (so that enabling a unit shows,
# and systemctl --root works on it), iproute2 and ethtool (as on Raspberry Pi OS), from
# the mirror in this machine's apt sources. The first call packs the result into
# build-deb/root-bookworm.tar (and its .debs into build-deb/debootstrap-cache); later
# calls unpack that, so each test still gets a pristine root of its own in seconds.
# DIR must not exist. Exit 0, or 1 with debootstrap's log tail.
set -eu
TOP=$(cd "$(dirname "$0")/../.." && pwd)
dir=$1
[ ! -e "$dir" ] || { echo "mkroot.sh: $dir exists" >&2; exit 1; }
cache=$TOP/build-deb
tar=$cache/root-bookworm.tar
mkdir -p "$cache/debootstrap-cache"
if [ ! -f "$tar" ]; then
	mirror=$(sed -n 's|^URIs: *\(http[^ ]*/debian\)/* *$|\1|p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1)
	[ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $2 ~ /\/debian\/?$/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
	tmp=$(mktemp -d "$cache/.root.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	if ! debootstrap --variant=minbase --include=systemd,iproute2,ethtool \
		--cache-dir="$cache/debootstrap-cache" bookworm "$tmp/root" \
		"${mirror:-http://deb.debian.org/debian}" >"$tmp/log" 2>&1; then
		tail -n 20 "$tmp/log" >&2
		echo "mkroot.sh: debootstrap failed (it needs the Debian mirror)" >&2
		exit 1
	fi
	rm -rf "$tmp/root/var/cache/apt/archives/"*.deb
	tar -C "$tmp/root" -cf "$tar.tmp" .
	mv "$tar.tmp" "$tar"
fi
mkdir -p "$dir"
tar -C "$dir" -xf "$tar"
cp /etc/resolv.conf "$dir/etc/resolv.conf"
