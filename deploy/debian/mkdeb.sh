#!/usr/bin/env bash
# mkdeb.sh: the Debian packages tapflow-probe and tapflow-collector (with tapflow-query),
# built with dpkg-deb from a `make install` staging root (PREFIX=/usr, SYSCONFDIR=/etc,
# UNITDIR=/lib/systemd/system). `make deb` runs it.
#   deploy/debian/mkdeb.sh STAGE ARCH VERSION OUTDIR [SYSROOT]
# Writes OUTDIR/tapflow-{probe,collector}_VERSION_ARCH.deb. Depends come from the
# binaries' DT_NEEDED entries looked up in shlibs files: the host's dpkg database, or for
# a cross build SYSROOT/.shlibs (written by deploy/deps.sh --cross). STRIP names the
# strip program for ARCH. DEB_MAINTAINER overrides the Maintainer field.
set -eu
[ $# -ge 4 ] || { echo "usage: mkdeb.sh STAGE ARCH VERSION OUTDIR [SYSROOT]" >&2; exit 2; }
stage=$(cd "$1" && pwd)
arch=$2 version=$3 out=$4 sysroot=${5:-}
here=$(cd "$(dirname "$0")" && pwd)
STRIP=${STRIP:-strip}
maint=${DEB_MAINTAINER:-tapflow developers <tapflow@lists.tapflow.org>}
epoch=${SOURCE_DATE_EPOCH:-$(git -C "$here" log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH=$epoch
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d "$out/.mkdeb.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Where sonames are looked up: lines as "libpcap 0.8 libpcap0.8 (>= 1.10.3)". A cross
# build has the target's in SYSROOT/.shlibs; natively the shlibs file of the package
# that owns each library the binary loads (the host's dpkg database also holds the
# cross toolchains' libc6:arm64 and the like, which must not match).
if [ -n "$sysroot" ]; then
	shlibs=$(cd "$sysroot" && pwd)/.shlibs
	[ -s "$shlibs" ] || { echo "mkdeb.sh: no $shlibs (deploy/deps.sh --cross writes it)" >&2; exit 1; }
fi

# shlibs_of BINARY SONAME: the shlibs lines of the host package owning SONAME's library.
shlibs_of() {
	local path owner
	path=$(ldd "$1" | awk -v so="$2" '$1 == so {print $3}')
	[ -n "$path" ] || return 0
	# Merged /usr: dpkg may know the file under /lib or /usr/lib.
	owner=$(dpkg-query -S "$path" 2>/dev/null || dpkg-query -S "${path#/usr}" 2>/dev/null ||
		dpkg-query -S "/usr$path" 2>/dev/null || true)
	owner=${owner%%: *}
	owner=${owner%%, *}
	[ -n "$owner" ] || return 0
	cat "/var/lib/dpkg/info/$owner.shlibs" "/var/lib/dpkg/info/${owner%%:*}.shlibs" 2>/dev/null || true
}

# depends BINARY...: "pkg (>= v), ..." for the libraries the binaries need.
depends() {
	local b so name ver dep deps=()
	for b in "$@"; do
		for so in $(readelf -d "$b" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
			# libfoo.so.1.2 -> "libfoo" "1.2"
			name=${so%%.so*}
			ver=${so#*.so.}
			if [ -n "$sysroot" ]; then
				dep=$(awk -v n="$name" -v v="$ver" '$1 == n && $2 == v {
					$1 = ""; $2 = ""; sub(/^ +/, ""); print; exit }' "$shlibs")
			else
				dep=$(shlibs_of "$b" "$so" | awk -v n="$name" -v v="$ver" '$1 == n && $2 == v {
					$1 = ""; $2 = ""; sub(/^ +/, ""); print; exit }')
			fi
			[ -n "$dep" ] || { echo "mkdeb.sh: no package provides $so for $arch" >&2; return 1; }
			deps+=("$dep")
		done
	done
	printf '%s\n' "${deps[@]}" | sort -u | paste -sd, | sed 's/,/, /g'
}

# put PKG SRC DEST MODE: copies a file from the staging root into the package tree.
put() {
	local pkg=$1 src=$2 dst=$3 mode=$4
	install -D -m "$mode" "$stage/$src" "$work/$pkg/$dst"
}

# script PKG NAME UNITS...: a maintainer script from deploy/debian/NAME.
script() {
	local pkg=$1 name=$2
	shift 2
	local units="$*" main=${1%.service} apply=":"
	[ "$pkg" = tapflow-collector ] && apply='if [ "$(cat /proc/sys/net/core/rmem_max)" -lt 67108864 ]; then echo 67108864 >/proc/sys/net/core/rmem_max || true; fi'
	local globs=""
	for u in "$@"; do
		case $u in *@.service) globs="$globs ${u%@.service}@*.service" ;; *) globs="$globs $u" ;; esac
	done
	local d=$'\001'
	sed -e "s${d}@PACKAGE@${d}$pkg${d}g" -e "s${d}@MAIN_UNIT@${d}$main${d}g" \
		-e "s${d}@UNITS@${d}${globs# }${d}g" -e "s${d}@UNIT_FILES@${d}$units${d}g" \
		-e "s${d}@SYSCTL_APPLY@${d}$apply${d}" "$here/$name" >"$work/$pkg/DEBIAN/$name"
	chmod 755 "$work/$pkg/DEBIAN/$name"
}

build() { # PKG SUMMARY DESCRIPTION RECOMMENDS BINARIES...
	local pkg=$1 summary=$2 desc=$3 recommends=$4
	shift 4
	local p=$work/$pkg b
	for b in "$@"; do
		"$STRIP" --strip-unneeded --remove-section=.comment --remove-section=.note "$p/$b"
	done
	install -d -m 755 "$p/usr/share/doc/$pkg"
	sed "s/@YEAR@/$(date -u -d "@$epoch" +%Y)/" "$here/copyright" >"$p/usr/share/doc/$pkg/copyright"
	chmod 644 "$p/usr/share/doc/$pkg/copyright"
	{
		printf 'tapflow (%s) unstable; urgency=medium\n\n' "$version"
		printf '  * Built from the tapflow source tree; its git history has the changes.\n\n'
		printf ' -- %s  %s\n' "$maint" "$(date -u -R -d "@$epoch")"
	} | gzip -9n >"$p/usr/share/doc/$pkg/changelog.gz"
	find "$p" -path "$p/DEBIAN" -prune -o -name '*.[18]' -type f -exec gzip -9n {} +
	find "$p" -type d -exec chmod 755 {} +
	find "$p" -exec touch -h -d "@$epoch" {} +
	(cd "$p" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z |
		xargs -0 md5sum >DEBIAN/md5sums)
	local deps size
	deps=$(cd "$p" && depends "$@")
	size=$(du -sk --exclude=DEBIAN "$p" | cut -f1)
	(cd "$p" && find etc -type f -printf '/%p\n' 2>/dev/null | sort) >"$p/DEBIAN/conffiles"
	[ -s "$p/DEBIAN/conffiles" ] || rm -f "$p/DEBIAN/conffiles"
	cat >"$p/DEBIAN/control" <<EOF
Package: $pkg
Source: tapflow
Version: $version
Architecture: $arch
Maintainer: $maint
Installed-Size: $size
Depends: adduser, $deps
${recommends:+Recommends: $recommends
}Section: net
Priority: optional
Description: $summary
$desc
EOF
	dpkg-deb --root-owner-group -Zxz --build "$p" "$out/${pkg}_${version}_${arch}.deb" >/dev/null
	echo "$out/${pkg}_${version}_${arch}.deb"
}

# tapflow-probe
pr=tapflow-probe
install -d "$work/$pr/DEBIAN"
put $pr usr/sbin/tapflow-probe usr/sbin/tapflow-probe 755
put $pr usr/share/man/man8/tapflow-probe.8 usr/share/man/man8/tapflow-probe.8 644
put $pr etc/tapflow/tapflow-probe.conf etc/tapflow/tapflow-probe.conf 644
for u in tapflow-probe.service tapflow-probe@.service tapflow-mirror@.service; do
	put $pr "lib/systemd/system/$u" "lib/systemd/system/$u" 644
done
for f in tapflow-probe.conf tapflow-probe-zero2w.conf tapflow-probe-pi4.conf tapflow-probe-ebpf.conf; do
	put $pr "usr/share/doc/tapflow/examples/$f" "usr/share/doc/$pr/examples/$f" 644
done
script $pr postinst tapflow-probe.service tapflow-probe@.service tapflow-mirror@.service
script $pr prerm tapflow-probe.service tapflow-probe@.service tapflow-mirror@.service
script $pr postrm tapflow-probe.service tapflow-probe@.service tapflow-mirror@.service
build $pr "NetFlow v9 probe for mirror ports, Raspberry Pi and Linux routers" \
" tapflow-probe turns packets into flows and exports them as NetFlow v9 to one
 or more collectors. It captures live from an AF_PACKET ring (several
 interfaces, several worker threads) or reads pcap/pcapng files, within a fixed
 memory budget.
 .
 The tapflow-probe service runs as the unprivileged user tapflow with
 CAP_NET_RAW only. It is installed disabled: configure
 /etc/tapflow/tapflow-probe.conf, then run systemctl enable --now tapflow-probe." \
	"ethtool, iproute2" usr/sbin/tapflow-probe

# tapflow-collector, with tapflow-query
co=tapflow-collector
install -d "$work/$co/DEBIAN"
put $co usr/sbin/tapflow-collector usr/sbin/tapflow-collector 755
put $co usr/bin/tapflow-query usr/bin/tapflow-query 755
put $co usr/bin/tapflow-nfdump usr/bin/tapflow-nfdump 755
put $co usr/share/man/man1/tapflow-nfdump.1 usr/share/man/man1/tapflow-nfdump.1 644
put $co usr/share/man/man8/tapflow-collector.8 usr/share/man/man8/tapflow-collector.8 644
put $co usr/share/man/man1/tapflow-query.1 usr/share/man/man1/tapflow-query.1 644
put $co etc/tapflow/tapflow-collector.conf etc/tapflow/tapflow-collector.conf 644
put $co lib/systemd/system/tapflow-collector.service lib/systemd/system/tapflow-collector.service 644
put $co usr/lib/sysctl.d/60-tapflow-collector.conf usr/lib/sysctl.d/60-tapflow-collector.conf 644
put $co usr/share/doc/tapflow/examples/tapflow-collector.conf usr/share/doc/$co/examples/tapflow-collector.conf 644
script $co postinst tapflow-collector.service
script $co prerm tapflow-collector.service
script $co postrm tapflow-collector.service
build $co "NetFlow v5/v9 and IPFIX collector with a compressed flow store" \
" tapflow-collector receives NetFlow v5, v9 and IPFIX over UDP from
 tapflow-probe and from routers, switches and firewalls, and stores the flows
 in compressed, checksummed column blocks on local disk, with retention by age
 and size. tapflow-query answers from that store, tapflow-nfdump with nfdump's
 command line and output.
 .
 The tapflow-collector service runs as the unprivileged user tapflow with no
 capabilities; the store in /var/lib/tapflow is its only writable path. It is
 installed disabled: systemctl enable --now tapflow-collector." \
	"" usr/sbin/tapflow-collector usr/bin/tapflow-query usr/bin/tapflow-nfdump
