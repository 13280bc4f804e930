#!/usr/bin/env bash
# image.sh PACKAGE...: print the cache directory of a Debian bookworm guest image that holds
# PACKAGE... (besides the base below), building it first when no cached one matches.
#
# The image is keyed by a hash of the package list and of this script and the guest files
# beside it (guest/), so a change to either builds a new one; older ones are removed.
# Made with debootstrap from the host's Debian mirror (the one its apt uses), with Debian's
# stock kernel (linux-image-amd64, 6.1) booted directly by qemu (-kernel/-initrd), so no
# boot loader. The directory holds:
#   rootfs.raw   ext4 without a partition table (root=/dev/vda); guests boot copy-on-write
#                overlays of it, never it
#   vmlinuz initrd.img   the image's kernel and initramfs
#   id_ed25519   the key root logs in with over ssh (only on the guest's host-only network)
# Env: MLINK_VM_CACHE (default /var/cache/mlink-vm), MLINK_VM_MIRROR (default: apt's).
set -euo pipefail
VM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${MLINK_VM_CACHE:-/var/cache/mlink-vm}
SUITE=bookworm
# What every guest needs besides the package under test and its Depends.
BASE_PKGS=(linux-image-amd64 initramfs-tools systemd-sysv udev kmod openssh-server
  iproute2 iputils-ping iperf3 nftables python3 procps bpftool man-db)

die() { echo "image.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot)"

mirror() {
  [ -z "${MLINK_VM_MIRROR:-}" ] || { echo "$MLINK_VM_MIRROR"; return; }
  # The first URI of a main Debian suite the host's apt uses (deb822 or one-line form).
  local m
  m=$(grep -hs -E '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list \
    /etc/apt/sources.list.d/*.list | grep -v -e security -e nodesource -e google |
    sed -E 's/^URIs: *//; s/^deb (\[[^]]*\] )?//; s/ .*//' | grep -m1 '/debian/\?$' || true)
  echo "${m:-http://deb.debian.org/debian}"
}

pkgs=("${BASE_PKGS[@]}" "$@")
mapfile -t pkgs < <(printf '%s\n' "${pkgs[@]}" | sort -u)
key=$({ printf '%s\n' "$SUITE" "${pkgs[@]}"
  cd "$VM_DIR" && find image.sh guest -type f -print0 | sort -z | xargs -0 sha256sum; } |
  sha256sum | cut -c1-16)
out=$CACHE/bookworm-$key
if [ -f "$out/ready" ]; then echo "$out"; exit 0; fi

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock -w 900 9 || die "another build holds $CACHE/.lock"
if [ -f "$out/ready" ]; then echo "$out"; exit 0; fi   # built while we waited
# Images of other keys are stale (this script or the list changed): reclaim the space.
find "$CACHE" -mindepth 1 -maxdepth 1 -type d -name 'bookworm-*' ! -name "bookworm-$key" \
  -exec rm -rf {} +
work=$(mktemp -d "$CACHE/build.XXXXXX")
root=$work/root
cleanup() {
  local m
  for m in proc sys dev/pts dev; do mountpoint -q "$root/$m" 2>/dev/null && umount -l "$root/$m"; done
  rm -rf "$work"
}
trap cleanup EXIT

t0=$(date +%s)
echo "image.sh: debootstrap $SUITE with ${pkgs[*]} from $(mirror) (log: $work/debootstrap.log)" >&2
include=$(IFS=,; echo "${pkgs[*]}")
timeout 900 debootstrap --variant=minbase --include="$include" "$SUITE" "$root" "$(mirror)" \
  >"$work/debootstrap.log" 2>&1 || { tail -n 30 "$work/debootstrap.log" >&2; die "debootstrap failed"; }

# ---- the guest's configuration ---------------------------------------------------------
echo mlink-vm >"$root/etc/hostname"
echo "/dev/vda / ext4 rw,noatime 0 1" >"$root/etc/fstab"
cp -r "$VM_DIR/guest/." "$root/"
ssh-keygen -q -t ed25519 -N '' -C mlink-vm -f "$work/id_ed25519"
install -d -m 700 "$root/root/.ssh"
install -m 600 "$work/id_ed25519.pub" "$root/root/.ssh/authorized_keys"
# The package is installed offline: no apt lists, nothing to fetch.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb
chroot "$root" systemctl enable systemd-networkd ssh >/dev/null 2>&1
# Nothing that waits at boot for a network the guests do not have.
chroot "$root" systemctl mask systemd-networkd-wait-online apt-daily.timer \
  apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer >/dev/null 2>&1
chroot "$root" systemctl set-default multi-user.target >/dev/null 2>&1
chroot "$root" passwd -d root >/dev/null
cp "$root"/boot/vmlinuz-* "$work/vmlinuz"
cp "$root"/boot/initrd.img-* "$work/initrd.img"
ls "$root"/lib/modules >"$work/kernel-version"

# ---- the disk: ext4 made from the tree, no loop device or mount ---------------------------
rm -rf "${root:?}"/boot/*
truncate -s 3G "$work/rootfs.raw"
mkfs.ext4 -q -L root -d "$root" "$work/rootfs.raw"
rm -rf "$root"
echo "image.sh: built in $(($(date +%s) - t0)) s: $(cat "$work/kernel-version")" >&2
touch "$work/ready"
mv "$work" "$out"
echo "$out"
