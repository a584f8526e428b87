#!/usr/bin/env bash
# Installs what tapflow needs to build and test, from Debian's archive.
# Idempotent and quiet when everything is already there.
#   deploy/deps.sh                 build + test dependencies (what `make check` needs)
#   deploy/deps.sh --build         build dependencies only
#   deploy/deps.sh --cross [ARCH]  build dependencies, cross toolchains, qemu-user-static,
#                                  and a sysroot per ARCH (arm64, armhf; default both) in
#                                  build-ARCH/sysroot
# The sysroot holds the target's -dev packages and their runtime libraries, fetched with
# `apt-get download` through a private apt state (build-ARCH/apt) and unpacked with
# `dpkg -x`: no `dpkg --add-architecture` (breaks apt-get update on this archive for armhf)
# and no multiarch -dev packages (they upgrade host packages). The compiler uses it as
# --sysroot, qemu-user as -L, the packaging script reads its shlibs for Depends.
set -eu
TOP=$(cd "$(dirname "$0")/.." && pwd)

build_pkgs="make gcc clang llvm pkg-config libpcap-dev libconfig-dev liblz4-dev libzstd-dev libxxhash-dev
libmicrohttpd-dev libbpf-dev libelf-dev zlib1g-dev libcmocka-dev python3 iproute2"
test_pkgs="libclang-rt-14-dev valgrind nfdump softflowd fprobe pmacct tshark tcpreplay hping3
iperf3 bpftool iproute2 ethtool python3 procps bc lintian debootstrap man-db systemd"
cross_pkgs="crossbuild-essential-arm64 crossbuild-essential-armhf qemu-user-static"
# What a cross build links against (apt adds their dependencies).
sysroot_pkgs="libc6-dev libpcap-dev libconfig-dev liblz4-dev libzstd-dev libxxhash-dev libcmocka-dev
libbpf-dev libelf-dev zlib1g-dev libmicrohttpd-dev"

want="$build_pkgs"
arches=""
case "${1:-}" in
--build) ;;
--cross)
	want="$build_pkgs $cross_pkgs"
	shift
	arches=${*:-arm64 armhf}
	for a in $arches; do
		case $a in
		arm64 | armhf) ;;
		*) echo "deps.sh: --cross takes arm64 and/or armhf, not '$a'" >&2; exit 2 ;;
		esac
	done ;;
*) want="$build_pkgs $test_pkgs" ;;
esac

# make_sysroot ARCH: build-ARCH/sysroot, unless its stamp says it holds sysroot_pkgs already.
make_sysroot() {
	local arch=$1
	local dir=$TOP/build-$arch/sysroot apt=$TOP/build-$arch/apt
	local stamp=$dir/.tapflow-sysroot
	local sig
	sig=$(echo "$sysroot_pkgs" | tr -s ' \n' ' ')
	[ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sig" ] && return 0
	echo "deps.sh: unpacking the $arch sysroot into $dir" >&2
	rm -rf "$dir" "$apt"
	mkdir -p "$dir" "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/sources" "$apt/debs"
	: >"$apt/status"
	# The host's Debian sources, the same suites for the target architecture.
	local f n=0
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] && grep -qs '/debian' "$f" || continue
		cp "$f" "$apt/sources/"
		n=$((n + 1))
	done
	[ $n -gt 0 ] || { echo "deps.sh: no Debian apt sources found in /etc/apt" >&2; return 1; }
	cat >"$apt/apt.conf" <<EOF
APT::Architecture "$arch";
APT::Architectures { "$arch"; };
Dir::State "$apt";
Dir::State::Lists "$apt/lists";
Dir::State::status "$apt/status";
Dir::Cache "$apt/cache";
Dir::Etc::SourceList "/dev/null";
Dir::Etc::SourceParts "$apt/sources";
Acquire::Languages "none";
EOF
	[ "$(id -u)" = 0 ] && echo 'APT::Sandbox::User "root";' >>"$apt/apt.conf"
	export APT_CONFIG=$apt/apt.conf
	# One index may fail (armhf bookworm-security has a bad size on this archive): the
	# main suite is enough for -dev packages; without it there is nothing to do.
	apt-get update -qq >"$apt/update.log" 2>&1 || true
	ls "$apt/lists/"*"_main_binary-${arch}_Packages"* >/dev/null 2>&1 || {
		cat "$apt/update.log" >&2
		echo "deps.sh: no $arch package index" >&2
		return 1
	}
	# Everything they need at run time too (qemu runs the binaries against it). Of two
	# alternatives apt-cache lists both: libelogind0 stands in for libsystemd0.
	local pkgs
	# shellcheck disable=SC2086
	pkgs=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
		--no-breaks --no-replaces --no-enhances $sysroot_pkgs |
		grep -E '^[a-z0-9]' | sort -u | grep -vx 'libelogind0')
	# shellcheck disable=SC2086
	(cd "$apt/debs" && apt-get download -qq $pkgs >"$apt/download.log" 2>&1) || {
		cat "$apt/download.log" >&2
		return 1
	}
	local d
	: >"$dir.shlibs.tmp"
	for d in "$apt/debs/"*.deb; do
		dpkg-deb -x "$d" "$dir"
		{ dpkg-deb -I "$d" shlibs 2>/dev/null && echo; } >>"$dir.shlibs.tmp" || true
	done
	mv "$dir.shlibs.tmp" "$dir/.shlibs"
	# Absolute symlinks (libfoo.so -> /lib/...) would point into the host: keep them inside.
	local l t
	while IFS= read -r l; do
		t=$(readlink "$l")
		ln -sfn "$(realpath -m --relative-to="$(dirname "$l")" "$dir$t")" "$l"
	done < <(find "$dir" -type l -lname '/*')
	unset APT_CONFIG
	echo "$sig" >"$stamp"
}

missing=""
for p in $want; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done

if [ -n "$missing" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "deps.sh: missing packages:$missing; run as root (or install them) and retry" >&2
		exit 1
	fi
	echo "deps.sh: installing$missing" >&2
	export DEBIAN_FRONTEND=noninteractive
	# Peer daemons (fprobe, softflowd, nfdump, pmacct) must not start on install: tests start
	# their own instances on test ports and interfaces.
	policy=/usr/sbin/policy-rc.d
	own_policy=0
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod 755 "$policy"; own_policy=1
	fi
	trap '[ $own_policy = 1 ] && rm -f "$policy"' EXIT
	echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
	echo "fprobe fprobe/interface string lo" | debconf-set-selections 2>/dev/null || true
	apt-get update -qq >/dev/null
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
	# A package's own unit may still be enabled; tests never want the packaged daemons running.
	for svc in nfdump fprobe softflowd pmacctd nfacctd; do
		systemctl disable --now "$svc" >/dev/null 2>&1 || true
	done
fi

for a in $arches; do
	make_sysroot "$a"
done
exit 0
