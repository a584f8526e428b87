#!/usr/bin/env bash
# rpi/setup.sh against a root directory, never this machine's network: a clean bookworm
# root (deploy/debian/mkroot.sh) stands in for Raspberry Pi OS, with NetworkManager's
# and dhcpcd's config places as Pi OS has them, and this machine's tapflow-probe .deb
# next to a copy of setup.sh stands in for the arm64 one. setup.sh --root must install
# the package, write /etc/tapflow/tapflow-probe.conf from the profile chosen by memory
# (512 MB: zero2w, 4 GB: pi4) with the given interface and collector (the probe accepts
# it), keep NetworkManager, dhcpcd and systemd-networkd off the mirror port, and enable
# tapflow-mirror@IFACE and tapflow-probe. Run again it changes nothing (idempotent).
# This machine's links and addresses must be the same before and after.
. "$(dirname "$0")/lib.sh"
need_root
command -v debootstrap >/dev/null || skip "debootstrap missing (deploy/deps.sh installs it)"
cd "$TOP"
V=$(cat VERSION)
A=$(dpkg --print-architecture)
host_net() { ip -o link show | sed 's/ qlen [0-9]*//'; ip -o address show; }
host_net >"$T/net.before"

make --no-print-directory deb >"$T/deb.log" 2>&1 || { tail -n 30 "$T/deb.log"; fail "make deb"; }
kit=$T/kit
mkdir -p "$kit"
cp rpi/setup.sh rpi/tapflow-probe-{zero2w,pi4}.conf "build-deb/tapflow-probe_${V}_$A.deb" "$kit/"

t0=$SECONDS
R=$T/root
bash deploy/debian/mkroot.sh "$R" || fail "no clean root (debootstrap)"
note "clean root: $((SECONDS - t0)) s"
# Raspberry Pi OS bookworm runs NetworkManager; older releases dhcpcd.
mkdir -p "$R/etc/NetworkManager/conf.d"
printf 'hostname\nclientid\npersistent\n' >"$R/etc/dhcpcd.conf"

t0=$SECONDS
bash "$kit/setup.sh" --root "$R" --mem-mb 512 --iface eth0 192.0.2.10:2055 >"$T/setup1.log" 2>&1 ||
	{ cat "$T/setup1.log"; fail "setup.sh failed"; }
cat "$T/setup1.log"
note "setup.sh: $((SECONDS - t0)) s"

conf=$R/etc/tapflow/tapflow-probe.conf
[ "$(chroot "$R" dpkg-query -W -f '${db:Status-Status} ${Version}' tapflow-probe)" = "installed $V" ] ||
	fail "tapflow-probe $V not installed"
grep -qx 'interface = \["eth0"\];' "$conf" || fail "interface not set"
grep -qx 'collector = \["192.0.2.10:2055"\];' "$conf" || fail "collector not set"
grep -Eq '^max_flows = 262144;' "$conf" && grep -Eq '^workers = 1;' "$conf" && grep -Eq '^ring_mb = 8;' "$conf" ||
	fail "512 MB did not choose the zero2w profile"
# The probe applies it: the same settings with -r instead of the interface.
sed -e 's/^interface = .*//' "$conf" >"$R/tmp/check.conf"
"$TOOLS/genpcap" -o "$R/tmp/in.pcap" -n 500 -s 3 >/dev/null
port=$(free_udp_port)
chroot "$R" tapflow-probe -c /tmp/check.conf -r /tmp/in.pcap -n "127.0.0.1:$port" 2>"$T/check.log" ||
	{ cat "$T/check.log"; fail "the probe rejects the written config"; }
grep -q "262144 flows per worker" "$T/check.log" || { cat "$T/check.log"; fail "max_flows of the profile not applied"; }

grep -qx 'unmanaged-devices=interface-name:eth0' "$R/etc/NetworkManager/conf.d/90-tapflow-mirror.conf" ||
	fail "NetworkManager still manages eth0"
grep -qx 'denyinterfaces eth0' "$R/etc/dhcpcd.conf" || fail "dhcpcd still configures eth0"
grep -qx 'Unmanaged=yes' "$R/etc/systemd/network/10-tapflow-mirror-eth0.network" || fail "no networkd file"
for u in tapflow-probe.service tapflow-mirror@eth0.service; do
	[ "$(systemctl --root="$R" is-enabled "$u")" = enabled ] || fail "$u not enabled"
done
[ -L "$R/etc/systemd/system/multi-user.target.wants/tapflow-mirror@eth0.service" ] || fail "mirror unit not wanted at boot"
[ -L "$R/etc/systemd/system/sys-subsystem-net-devices-eth0.device.wants/tapflow-mirror@eth0.service" ] ||
	fail "mirror unit not wanted when eth0 appears"
chroot "$R" getent passwd tapflow >/dev/null || fail "no user tapflow"

# Idempotent: a second run with the same arguments changes no file.
snap() { (cd "$R" && find etc var/lib/dpkg usr/sbin -xdev \( -type f -o -type l \) ! -name '*-old' -print0 |
	sort -z | xargs -0 stat -c '%n %s %Y %a %N' ) | grep -v '^var/lib/dpkg/lock'; }
snap >"$T/snap1"
bash "$kit/setup.sh" --root "$R" --mem-mb 512 --iface eth0 192.0.2.10:2055 >"$T/setup2.log" 2>&1 ||
	{ cat "$T/setup2.log"; fail "second setup.sh run failed"; }
cat "$T/setup2.log"
grep -q 'already installed' "$T/setup2.log" && grep -q 'unchanged' "$T/setup2.log" &&
	grep -q 'already set up' "$T/setup2.log" || fail "second run did something"
snap >"$T/snap2"
diff "$T/snap1" "$T/snap2" || fail "second run changed files"

# A 4 GB Pi gets the pi4 profile (from the package's examples when not next to setup.sh);
# dhcpcd's line is not repeated.
rm "$kit/tapflow-probe-pi4.conf"
bash "$kit/setup.sh" --root "$R" --mem-mb 4096 --iface eth0 '[2001:db8::10]' >"$T/setup3.log" 2>&1 ||
	{ cat "$T/setup3.log"; fail "setup.sh --mem-mb 4096 failed"; }
grep -Eq '^workers = 2;' "$conf" && grep -Eq '^ring_mb = 32;' "$conf" || fail "4096 MB did not choose the pi4 profile"
grep -qx 'collector = \["\[2001:db8::10\]:9995"\];' "$conf" || fail "IPv6 collector not written with its default port"
[ "$(grep -c '^denyinterfaces eth0$' "$R/etc/dhcpcd.conf")" = 1 ] || fail "dhcpcd line repeated"
[ -f "$conf.orig" ] || fail "the package's config was not kept as .orig"

# Usage errors, and --root without the Pi's memory.
bash "$kit/setup.sh" --root "$R" 192.0.2.10 >/dev/null 2>&1 && fail "--root without --mem-mb accepted"
bash "$kit/setup.sh" --root "$R" --mem-mb 512 --iface 'eth0;x' 192.0.2.10 >/dev/null 2>&1 &&
	fail "bad interface name accepted"

host_net >"$T/net.after"
diff "$T/net.before" "$T/net.after" || fail "this machine's network changed"
echo "setup.sh: installs, configures by memory, keeps managers off eth0, enables; idempotent"
