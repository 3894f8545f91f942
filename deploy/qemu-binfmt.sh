#!/usr/bin/env bash
# Sourced by deploy/arm64-check.sh and deploy/image-check.sh (root): a static qemu-aarch64 from
# bookworm-backports in $1 (fetched once, from this machine's Debian mirror), registered as the
# binfmt_misc handler for aarch64 ELF files.
#   . deploy/qemu-binfmt.sh CACHE_DIR     ->  sets QEMU (the emulator's path) and prints nothing
# QEMU 7.2 (bookworm's qemu-user-static) crashes (SIGSEGV) when ai-edge-litert 2.3.0 creates an interpreter;
# QEMU 10 from bookworm-backports runs it. The handler has the flags OPF: F (the emulator is opened now, so
# it also works inside a chroot or a container, where its path does not exist), P (argv[0] kept) and
# O (the binary passed as a file descriptor). It replaces a host-wide qemu-aarch64 registration until the
# next boot: that is what a cross-build with Docker or podman needs too (README, "Deploying").

qemu_binfmt() {
    local cache=$1 mirror
    local version=${QEMU_VERSION:-10.0.2+ds-2+deb13u1~bpo12+1}
    QEMU=$cache/qemu-aarch64-$version
    if [ ! -x "$QEMU" ]; then
        mkdir -p "$cache"
        mirror=$(sh "$(dirname "${BASH_SOURCE[0]}")/debian-mirror.sh")
        local deb tmp
        deb=$(curl -fsS "$mirror/dists/bookworm-backports/main/binary-$(dpkg --print-architecture)/Packages.xz" | xz -dc \
            | awk -v v="Version: 1:$version" '/^Package: qemu-user$/ {p = 1} p && /^Version:/ {ok = ($0 == v)} p && ok && /^Filename:/ && !f {f = $2} /^$/ {p = 0} END {print f}')
        [ -n "$deb" ] || { echo "qemu-user $version not found in bookworm-backports (set QEMU_VERSION)" >&2; return 2; }
        tmp=$(mktemp -d)
        curl -fsS -o "$tmp/qemu-user.deb" "$mirror/$deb"
        dpkg-deb -x "$tmp/qemu-user.deb" "$tmp/x"
        install -m 0755 "$tmp/x/usr/bin/qemu-aarch64" "$QEMU.tmp" && mv "$QEMU.tmp" "$QEMU"
        rm -rf "$tmp"
    fi
    [ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    if ! grep -qx "interpreter $QEMU" /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null; then
        [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] && echo -1 > /proc/sys/fs/binfmt_misc/qemu-aarch64
        printf ':qemu-aarch64:M::%s:%s:%s:OPF\n' '\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00' \
            '\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff' "$QEMU" > /proc/sys/fs/binfmt_misc/register
    fi
}

qemu_binfmt "$1"
