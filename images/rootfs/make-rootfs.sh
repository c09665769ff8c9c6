#!/usr/bin/env bash
# Builds a Debian root filesystem tarball to use as a spec's base.rootfs,
# offline from Docker Hub: debootstrap from the machine's Debian mirror,
# then a deterministic tar (sorted, mtime 0, uid/gid 0).
#
#   make-rootfs.sh OUT.tar [PACKAGE,...]
set -euo pipefail
out=$1
include=${2:-python3}
suite=${SUITE:-bookworm}
mirror=${MIRROR:-$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}
mirror=${mirror:-http://deb.debian.org/debian}
if ! command -v debootstrap >/dev/null; then
  SUDO=$( [ "$(id -u)" = 0 ] || echo sudo )
  $SUDO apt-get install -y -qq debootstrap >/dev/null
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
debootstrap --variant=minbase --include="$include" "$suite" "$tmp/root" "$mirror" >"$tmp/log" 2>&1 || { tail -20 "$tmp/log"; exit 1; }
rm -rf "$tmp/root/var/cache/apt/"* "$tmp/root/var/lib/apt/lists/"* "$tmp/root/var/log/"* "$tmp/root/tmp/"* "$tmp/root/proc/"* "$tmp/root/sys/"* "$tmp/root/dev/"*
mkdir -p "$(dirname "$out")"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    -C "$tmp/root" -cf "$out.tmp" .
mv "$out.tmp" "$out"
echo "$out: $(du -h "$out" | cut -f1)"
