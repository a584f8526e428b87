#!/usr/bin/env bash
# Installs what tapflow needs to build and test, from Debian's archive.
# Idempotent and quiet when everything is already there.
#   deploy/deps.sh            build + test dependencies (what `make check` needs)
#   deploy/deps.sh --build    build dependencies only
#   deploy/deps.sh --cross    cross toolchains and qemu-user as well
set -eu

build_pkgs="make gcc clang llvm pkg-config libpcap-dev libconfig-dev liblz4-dev libzstd-dev
libmicrohttpd-dev libbpf-dev libelf-dev zlib1g-dev libcmocka-dev python3 iproute2"
test_pkgs="libclang-rt-14-dev valgrind nfdump softflowd fprobe pmacct tshark tcpreplay hping3
iperf3 bpftool iproute2 ethtool python3 procps bc"
cross_pkgs="crossbuild-essential-arm64 crossbuild-essential-armhf qemu-user-static"

want="$build_pkgs"
case "${1:-}" in
  --build) ;;
  --cross) want="$build_pkgs $test_pkgs $cross_pkgs" ;;
  *) want="$build_pkgs $test_pkgs" ;;
esac

missing=""
for p in $want; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

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
  printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod 755 "$policy"; own_policy=1
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
exit 0
