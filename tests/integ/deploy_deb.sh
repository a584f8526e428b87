#!/usr/bin/env bash
# Debian packages: `make deb` for this machine and, with CROSS, for arm64 and armhf.
# lintian reports no error on any of them. The host's pair installs with apt into a clean
# bookworm root (debootstrap --variant=minbase plus systemd, so that an enable would
# show: deploy/debian/mkroot.sh): the binaries run --version there, the system user
# tapflow exists, nothing is enabled; the packaged probe, collector and query carry a
# pcap's flows end to end inside that root; a reinstall (upgrade path) works; purge
# forgets an enabled unit and leaves the user. The arm packages: their binaries are for
# the target, run -V under qemu, and apt resolves their Depends in the target's archive.
. "$(dirname "$0")/lib.sh"
need_root
for c in lintian debootstrap dpkg-deb; do
	command -v $c >/dev/null || skip "$c missing (deploy/deps.sh installs it)"
done
cd "$TOP"
V=$(cat VERSION)
A=$(dpkg --print-architecture)

t0=$SECONDS
make --no-print-directory deb >"$T/deb.log" 2>&1 || { tail -n 30 "$T/deb.log"; fail "make deb"; }
P=build-deb/tapflow-probe_${V}_$A.deb
C=build-deb/tapflow-collector_${V}_$A.deb
[ -f "$P" ] && [ -f "$C" ] || fail "make deb made no $P / $C"
debs=("$P" "$C")
if bash deploy/deps.sh --cross >"$T/deps.log" 2>&1; then
	for cross in aarch64-linux-gnu- arm-linux-gnueabihf-; do
		make --no-print-directory CROSS=$cross deb >"$T/deb-$cross.log" 2>&1 ||
			{ tail -n 30 "$T/deb-$cross.log"; fail "make deb CROSS=$cross"; }
	done
	debs+=(build-deb/tapflow-{probe,collector}_"${V}"_{arm64,armhf}.deb)
else
	note "no cross toolchain (deploy/deps.sh --cross failed): host packages only"
fi
note "make deb: $((SECONDS - t0)) s, ${#debs[@]} packages"

# lintian: no errors (warnings are listed).
t0=$SECONDS
# its ELF cache files (mldbm-elf-*) go to TMPDIR and stay: into $T, removed with it
TMPDIR="$T" lintian --allow-root "${debs[@]}" >"$T/lintian.txt" 2>&1 || true
sed 's/^/  lintian: /' "$T/lintian.txt"
grep -q '^E: ' "$T/lintian.txt" && fail "lintian reports errors"
note "lintian: $((SECONDS - t0)) s"

# What each package holds and promises.
for d in "${debs[@]}"; do
	dpkg-deb -c "$d" | awk '{print $6}' >"$T/list"
	case $d in
	*probe*) want="./usr/sbin/tapflow-probe ./usr/share/man/man8/tapflow-probe.8.gz
		./lib/systemd/system/tapflow-probe.service ./lib/systemd/system/tapflow-probe@.service
		./lib/systemd/system/tapflow-mirror@.service ./etc/tapflow/tapflow-probe.conf
		./usr/share/doc/tapflow-probe/examples/tapflow-probe-zero2w.conf" ;;
	*) want="./usr/sbin/tapflow-collector ./usr/bin/tapflow-query ./usr/bin/tapflow-nfdump
		./usr/share/man/man8/tapflow-collector.8.gz ./usr/share/man/man1/tapflow-query.1.gz
		./usr/share/man/man1/tapflow-nfdump.1.gz
		./lib/systemd/system/tapflow-collector.service ./etc/tapflow/tapflow-collector.conf
		./usr/lib/sysctl.d/60-tapflow-collector.conf" ;;
	esac
	for f in $want; do grep -qx "$f" "$T/list" || fail "$d lacks $f"; done
	dpkg-deb -f "$d" Depends | grep -q adduser || fail "$d: no Depends on adduser"
	dpkg-deb -I "$d" conffiles | grep -q '^/etc/tapflow/' || fail "$d: config is not a conffile"
	dpkg-deb -e "$d" "$T/ctl"
	# try-restart only restarts what runs already; enable, start, restart are surprises.
	if grep -Ev '^[[:space:]]*#' "$T/ctl/postinst" |
		grep -E '(^|[[:space:]])(enable|reenable|start|restart)([[:space:]]|$)'; then
		fail "$d: postinst enables or starts something"
	fi
	rm -rf "$T/ctl"
done

# The arm packages: target binaries that run under qemu, Depends that the archive has.
for arch in arm64 armhf; do
	[ -f "build-deb/tapflow-probe_${V}_$arch.deb" ] || continue
	case $arch in arm64) q=qemu-aarch64-static m=AArch64 ;; *) q=qemu-arm-static m=ARM ;; esac
	x=$T/x-$arch
	for pkg in probe collector; do
		d=build-deb/tapflow-${pkg}_${V}_$arch.deb
		[ "$(dpkg-deb -f "$d" Architecture)" = "$arch" ] || fail "$d: wrong Architecture"
		dpkg-deb -x "$d" "$x"
	done
	for b in usr/sbin/tapflow-probe usr/sbin/tapflow-collector usr/bin/tapflow-query usr/bin/tapflow-nfdump; do
		readelf -h "$x/$b" | grep -q "Machine: *$m" || fail "$arch package: $b is not an $arch binary"
		"$q" -L "build-$arch/sysroot" "$x/$b" -V | grep -qF " $V" ||
			fail "$arch package: $b -V under qemu"
	done
	APT_CONFIG=$TOP/build-$arch/apt/apt.conf apt-get install -s -q \
		"./build-deb/tapflow-probe_${V}_$arch.deb" "./build-deb/tapflow-collector_${V}_$arch.deb" \
		>"$T/apt-$arch.log" 2>&1 || { tail -n 20 "$T/apt-$arch.log"; fail "$arch: apt cannot resolve the Depends"; }
	note "$arch packages: binaries run under qemu, apt resolves their Depends"
done

# A clean bookworm root (debootstrap; the pristine root is kept as a tarball in build-deb/
# so that the next test does not wait for debootstrap again).
t0=$SECONDS
R=$T/root
bash deploy/debian/mkroot.sh "$R" || fail "no clean root (debootstrap)"
note "clean root: $((SECONDS - t0)) s"
t0=$SECONDS
cp "$P" "$C" "$R/tmp/"
chroot "$R" apt-get update -q >"$T/apt-update.log" 2>&1 || { cat "$T/apt-update.log"; fail "apt-get update in the root"; }
DEBIAN_FRONTEND=noninteractive chroot "$R" apt-get install -y -q "/tmp/${P##*/}" "/tmp/${C##*/}" \
	>"$T/install.log" 2>&1 || { tail -n 30 "$T/install.log"; fail "apt-get install of the packages"; }
note "install: $((SECONDS - t0)) s"
for pkg in tapflow-probe tapflow-collector; do
	[ "$(chroot "$R" dpkg-query -W -f '${db:Status-Status}' $pkg)" = installed ] || fail "$pkg not installed"
done
chroot "$R" tapflow-probe --version | grep -qx "tapflow-probe $V" || fail "probe --version in the root"
chroot "$R" tapflow-collector --version | grep -qx "tapflow-collector $V" || fail "collector --version in the root"
chroot "$R" tapflow-query --version | grep -q "$V" || fail "query --version in the root"
chroot "$R" tapflow-nfdump -V | grep -q "$V" || fail "tapflow-nfdump -V in the root"
IFS=: read -r _ _ uid _ _ home shell <<<"$(chroot "$R" getent passwd tapflow)" || fail "no user tapflow"
[ "$uid" -lt 1000 ] || fail "tapflow is not a system user (uid $uid)"
case $shell in */nologin | */false) ;; *) fail "tapflow has a login shell ($shell)" ;; esac
chroot "$R" getent group tapflow >/dev/null || fail "no group tapflow"
note "user tapflow: uid $uid, home $home, shell $shell"
if find "$R/etc/systemd/system" -name 'tapflow*' | grep .; then fail "something is enabled"; fi
for u in tapflow-probe.service tapflow-collector.service; do
	s=$(systemctl --root="$R" is-enabled $u 2>&1 || true)
	[ "$s" = disabled ] || fail "$u is '$s' after install, not disabled"
done

# The installed programs at work inside the root: pcap -> probe -> collector -> query.
"$TOOLS/genpcap" -o "$R/tmp/in.pcap" -n 5000 -s 9 >"$T/gen.txt"
read -r gen_pk gen_by gen_fl <<<"$(sed -E 's/.*packets=([0-9]+) bytes=([0-9]+) flows=([0-9]+).*/\1 \2 \3/' "$T/gen.txt")"
port=$(free_udp_port)
bg chroot "$R" tapflow-collector -l /tmp/store -p "$port" -b 127.0.0.1 2>"$T/coll.log"
COLL=$BGPID
wait_for "grep -q 'listening on' $T/coll.log" 20 || { cat "$T/coll.log"; fail "packaged collector did not start"; }
chroot "$R" tapflow-probe -r /tmp/in.pcap -n "127.0.0.1:$port" 2>"$T/probe.log" ||
	{ cat "$T/probe.log"; fail "packaged probe failed"; }
wait_for "udp_drained $port" 20 || fail "collector does not drain"
stop_pid "$COLL" TERM || fail "packaged collector exited non-zero"
got=$(chroot "$R" tapflow-query -R /tmp/store -o json |
	python3 -c 'import json,sys; s=json.load(sys.stdin)["summary"]; print(s["flows"], s["packets"], s["bytes"])')
[ "$got" = "$gen_fl $gen_pk $gen_by" ] || fail "packaged query: $got, generator: $gen_fl $gen_pk $gen_by"

# Reinstall (configure with a previous version, as an upgrade), then purge.
chroot "$R" apt-get install -y -q --reinstall "/tmp/${P##*/}" "/tmp/${C##*/}" >"$T/reinstall.log" 2>&1 ||
	{ tail -n 20 "$T/reinstall.log"; fail "reinstall"; }
systemctl --root="$R" enable tapflow-probe.service >/dev/null 2>&1 || fail "cannot enable the unit offline"
[ -L "$R/etc/systemd/system/multi-user.target.wants/tapflow-probe.service" ] || fail "enable made no link"
chroot "$R" apt-get purge -y -q tapflow-probe tapflow-collector >"$T/purge.log" 2>&1 ||
	{ tail -n 20 "$T/purge.log"; fail "purge"; }
if find "$R/etc/systemd/system" -name 'tapflow*' | grep .; then fail "purge left enablement links"; fi
[ ! -e "$R/etc/tapflow/tapflow-probe.conf" ] || fail "purge left the conffile"
[ ! -e "$R/usr/sbin/tapflow-probe" ] || fail "remove left the binary"
chroot "$R" getent passwd tapflow >/dev/null || fail "purge removed the user (it may own data)"
echo "packages: ${#debs[@]} built, lintian clean of errors, install/run/reinstall/purge in a clean root"
