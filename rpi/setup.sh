#!/usr/bin/env bash
# rpi/setup.sh: turns Raspberry Pi OS (bookworm) into a tapflow probe on a switch mirror
# port. Run it as root on the Pi, next to the tapflow-probe .deb for the Pi's
# architecture (arm64 or armhf, from `make deb CROSS=...`), or from a tapflow source
# tree (it then builds the package with `make deb`):
#   sudo ./setup.sh [--iface eth0] [--profile auto|zero2w|pi4] [--mem-mb N] [--root DIR]
#                   COLLECTOR[:PORT]
# COLLECTOR is the address of the NetFlow collector (port 9995 if not given; IPv6 as
# [2001:db8::10]:9995). Each step is done only if it is not done already, so running it
# again changes nothing (or only what you changed on the command line):
#   1. installs tapflow-probe with apt-get (its dependencies come from the Pi's archive);
#   2. makes IFACE a mirror port: NetworkManager, dhcpcd and systemd-networkd are told to
#      leave it alone, and tapflow-mirror@IFACE.service brings it up at every boot:
#      promiscuous, no ARP, no IP address, GRO/LRO/GSO/TSO off so sizes are true;
#   3. writes /etc/tapflow/tapflow-probe.conf from the profile for the Pi's memory
#      (under 1 GB: zero2w, else pi4: tapflow-probe-zero2w.conf, tapflow-probe-pi4.conf
#      next to it or in the package's examples), IFACE and COLLECTOR;
#   4. enables tapflow-mirror@IFACE and tapflow-probe, and (re)starts them.
# --root DIR works on the system image at DIR instead of this machine (a mounted SD
# card's root, or a test's chroot): apt-get runs chrooted into DIR, units are enabled with
# systemctl --root, and no live interface or service is touched. --mem-mb or --profile
# is then required (this machine's memory says nothing about the Pi's).
# Exit status: 0 done, 1 failed, 2 usage.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
prog=setup.sh

usage() {
	sed -n '2,/^# Exit status/p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}
die() { echo "$prog: $*" >&2; exit 1; }
say() { echo "$prog: $*"; }

ROOT=/ iface=eth0 profile=auto mem_mb="" collector=""
while [ $# -gt 0 ]; do
	case $1 in
	--iface) iface=${2:-}; shift 2 ;;
	--profile) profile=${2:-}; shift 2 ;;
	--mem-mb) mem_mb=${2:-}; shift 2 ;;
	--root) ROOT=${2:-}; shift 2 ;;
	-h | --help) usage ;;
	-*) echo "$prog: unknown option $1" >&2; usage ;;
	*) [ -z "$collector" ] || usage; collector=$1; shift ;;
	esac
done
[ -n "$collector" ] || usage
[ "$(id -u)" = 0 ] || die "run it as root (sudo)"
[[ $iface =~ ^[A-Za-z0-9_.:-]{1,15}$ ]] || die "bad interface name '$iface'"
case $collector in
\[*\]:[0-9]*) ;;
\[*\]) collector="$collector:9995" ;;
*:*:*) collector="[$collector]:9995" ;;
*:[0-9]*) ;;
*) collector="$collector:9995" ;;
esac
[[ $collector =~ ^[][A-Za-z0-9_.:-]+:[0-9]{1,5}$ ]] || die "bad collector address '$collector'"
ROOT=$(cd "$ROOT" 2>/dev/null && pwd) || die "no directory $ROOT"
R=${ROOT%/} # prefix for paths: "" on the live system

in_root() { if [ -z "$R" ]; then "$@"; else chroot "$ROOT" "$@"; fi; }
# write_if_changed FILE: stdin to FILE unless FILE holds exactly that; says which.
write_if_changed() {
	local f=$1 tmp
	tmp=$(mktemp)
	cat >"$tmp"
	if [ -f "$f" ] && cmp -s "$tmp" "$f"; then
		rm -f "$tmp"
		return 1
	fi
	mkdir -p "$(dirname "$f")"
	chmod 644 "$tmp"
	mv "$tmp" "$f"
	return 0
}

# ---- 1. the package ----
arch=$(in_root dpkg --print-architecture) || die "no dpkg in $ROOT"
deb=$(ls "$here"/tapflow-probe_*_"$arch".deb "$here"/../build-deb/tapflow-probe_*_"$arch".deb 2>/dev/null |
	sort -V | tail -n 1 || true)
if [ -z "$deb" ] && [ -f "$here/../Makefile" ] && [ -z "$R" ]; then
	say "no tapflow-probe_*_$arch.deb next to $prog: building one (make deb)"
	bash "$here/../deploy/deps.sh" --build
	make -C "$here/.." --no-print-directory deb >/dev/null
	deb=$(ls "$here"/../build-deb/tapflow-probe_*_"$arch".deb | sort -V | tail -n 1)
fi
[ -n "$deb" ] || die "no tapflow-probe_*_$arch.deb next to $prog (make deb CROSS=... builds it)"
want=$(dpkg-deb -f "$deb" Version)
have=$(in_root dpkg-query -W -f '${db:Status-Status} ${Version}' tapflow-probe 2>/dev/null || true)
if [ "$have" = "installed $want" ]; then
	say "tapflow-probe $want: already installed"
else
	mkdir -p "$R/var/cache/tapflow"
	cp "$deb" "$R/var/cache/tapflow/"
	pkg=/var/cache/tapflow/$(basename "$deb")
	export DEBIAN_FRONTEND=noninteractive
	# Keep a config this script wrote over the package's example (--force-confold).
	apt_install() {
		in_root apt-get install -y -q -o Dpkg::Options::=--force-confold "$pkg" >"$R/var/cache/tapflow/apt.log" 2>&1
	}
	if ! apt_install; then
		in_root apt-get update -q >/dev/null 2>&1 || true
		apt_install || { cat "$R/var/cache/tapflow/apt.log" >&2; die "apt-get install $pkg failed"; }
	fi
	say "tapflow-probe $want: installed"
fi

# ---- 2. the mirror port ----
changed=""
if [ -d "$R/etc/NetworkManager" ]; then
	f=$R/etc/NetworkManager/conf.d/90-tapflow-mirror.conf
	# NetworkManager keeps the last unmanaged-devices it reads: one file lists them all.
	list=$(sed -n 's/^unmanaged-devices=//p' "$f" 2>/dev/null | tr ';' '\n' | grep -v "^interface-name:$iface\$" | grep . || true)
	list=$(printf '%s\n' $list "interface-name:$iface" | paste -sd';')
	printf '# Written by tapflow rpi/setup.sh: mirror ports are not for NetworkManager.\n[keyfile]\nunmanaged-devices=%s\n' \
		"$list" | write_if_changed "$f" && changed="$changed NetworkManager"
fi
if [ -f "$R/etc/dhcpcd.conf" ] && ! grep -qx "denyinterfaces $iface" "$R/etc/dhcpcd.conf"; then
	printf '\n# tapflow mirror port: no DHCP, no address.\ndenyinterfaces %s\n' "$iface" >>"$R/etc/dhcpcd.conf"
	changed="$changed dhcpcd"
fi
printf '# Written by tapflow rpi/setup.sh: %s is a mirror port (tapflow-mirror@%s.service).\n[Match]\nName=%s\n\n[Link]\nUnmanaged=yes\n' \
	"$iface" "$iface" "$iface" | write_if_changed "$R/etc/systemd/network/10-tapflow-mirror-$iface.network" &&
	changed="$changed systemd-networkd"
for f in "$R/etc/network/interfaces" "$R"/etc/network/interfaces.d/*; do
	[ -f "$f" ] && grep -Eq "^[[:space:]]*(auto|allow-hotplug|iface)[[:space:]]+$iface([[:space:]]|\$)" "$f" &&
		echo "$prog: warning: ${f#"$R"} configures $iface (ifupdown): remove it there" >&2
done
if [ -n "$changed" ]; then
	say "$iface: mirror port (set up for:$changed)"
else
	say "$iface: mirror port (already set up)"
fi

# ---- 3. the configuration ----
if [ "$profile" = auto ]; then
	if [ -z "$mem_mb" ]; then
		[ -z "$R" ] || die "--root needs --mem-mb N or --profile zero2w|pi4"
		mem_mb=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
	fi
	[[ $mem_mb =~ ^[0-9]+$ ]] || die "bad --mem-mb '$mem_mb'"
	# A 512 MB Pi reports some 430-470 MB (the GPU takes its share), a 1 GB one 900+.
	if [ "$mem_mb" -lt 800 ]; then profile=zero2w; else profile=pi4; fi
fi
case $profile in
zero2w | pi4) ;;
*) die "--profile is auto, zero2w or pi4, not '$profile'" ;;
esac
src=$here/tapflow-probe-$profile.conf
[ -f "$src" ] || src=$R/usr/share/doc/tapflow-probe/examples/tapflow-probe-$profile.conf
[ -f "$src" ] || die "no profile tapflow-probe-$profile.conf next to $prog or in the package"
conf=$R/etc/tapflow/tapflow-probe.conf
stamp="# Written by tapflow rpi/setup.sh (profile $profile${mem_mb:+, $mem_mb MB}); running it again rewrites it."
if [ -f "$conf" ] && ! head -n 1 "$conf" | grep -q '^# Written by tapflow rpi/setup.sh' && [ ! -e "$conf.orig" ]; then
	cp -p "$conf" "$conf.orig"
fi
if { echo "$stamp"
	sed -e "s|^interface = .*|interface = [\"$iface\"];|" \
		-e "s|^collector = .*|collector = [\"$collector\"];|" "$src"; } | write_if_changed "$conf"; then
	conf_changed=1
	say "${conf#"$R"}: written (profile $profile, $iface -> $collector)"
else
	conf_changed=0
	say "${conf#"$R"}: unchanged (profile $profile, $iface -> $collector)"
fi
# The probe loads it as the service will (unknown or bad settings are errors).
mkdir -p "$R/var/cache/tapflow"
if in_root /usr/sbin/tapflow-probe -c /etc/tapflow/tapflow-probe.conf --version >/dev/null 2>"$R/var/cache/tapflow/check.log"; then
	:
elif [ -z "$R" ] || in_root /usr/sbin/tapflow-probe --version >/dev/null 2>&1; then
	cat "$R/var/cache/tapflow/check.log" >&2
	die "tapflow-probe rejects ${conf#"$R"}"
else
	echo "$prog: warning: cannot run the $arch probe here: ${conf#"$R"} not checked" >&2
fi

# ---- 4. the services ----
units=("tapflow-mirror@$iface.service" tapflow-probe.service)
if [ -n "$R" ]; then
	for u in "${units[@]}"; do
		[ "$(systemctl --root="$ROOT" is-enabled "$u" 2>/dev/null)" = enabled ] ||
			systemctl --root="$ROOT" enable "$u" >/dev/null 2>&1 || die "cannot enable $u in $ROOT"
	done
	say "enabled ${units[*]} in $ROOT (they start when it boots)"
else
	systemctl daemon-reload
	systemctl enable --quiet "${units[@]}"
	# NetworkManager lets go of the interface now, not only after a restart.
	if command -v nmcli >/dev/null && nmcli -t -f RUNNING general >/dev/null 2>&1; then
		nmcli device set "$iface" managed no >/dev/null 2>&1 || true
	fi
	systemctl restart "tapflow-mirror@$iface.service"
	if [ $conf_changed = 1 ] || ! systemctl is-active --quiet tapflow-probe.service; then
		systemctl restart tapflow-probe.service
	fi
	# Type=exec: started means running; a bad interface ends it within a moment.
	for _ in 1 2 3 4; do
		sleep 0.5
		systemctl is-active --quiet tapflow-probe.service ||
			die "tapflow-probe did not stay up: journalctl -u tapflow-probe"
	done
	say "running: ${units[*]}; check with: journalctl -u tapflow-probe"
fi
