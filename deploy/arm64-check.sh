#!/usr/bin/env bash
# make arm64-check: prove that the edge side installs and serves on 64-bit Arm (Raspberry Pi OS bookworm-like).
# Builds (once, cached in .arm64/) an arm64 Debian root file system with debootstrap and QEMU user-mode
# emulation, installs the edge side there with deploy/install-edge.sh (as Dockerfile.arm64 does), starts gunicorn
# on the default bundle with the systemd unit's settings, and smoke-tests it from the host over loopback.
# Needs root (chroot, mounts, binfmt_misc) and debootstrap; fetches a static QEMU 10 from bookworm-backports. Emulated timings say nothing about a device.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SUITE=${ARM64_SUITE:-bookworm}
MIRROR=$(sh "$ROOT/deploy/debian-mirror.sh" 2>/dev/null || true)  # this machine's apt source, or $DEBIAN_MIRROR
PORT=${ARM64_PORT:-18080}
CACHE=$ROOT/.arm64
ROOTFS=$CACHE/$SUITE-rootfs
UNIT=$ROOT/systemd/reputation.service
HOST_PYTHON=${EDGE_PYTHON:-$ROOT/.venv-edge/bin/python}
STARTED=$SECONDS
CHECK=arm64-check
# shellcheck source=deploy/steps.sh
. "$ROOT/deploy/steps.sh"
SERVICE_PID=
MOUNTS=()


cleanup() {
    if [ -n "$SERVICE_PID" ] && kill -0 "$SERVICE_PID" 2>/dev/null; then
        kill -TERM "$SERVICE_PID"; wait "$SERVICE_PID" 2>/dev/null || true
    fi
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount -l "${MOUNTS[i]}" 2>/dev/null || true; done
}
trap cleanup EXIT

[ "$(id -u)" = 0 ] || { say "needs root (debootstrap, chroot, mounts)"; exit 2; }
[ -x "$HOST_PYTHON" ] || { say "no host edge Python at $HOST_PYTHON (run make test once, or set EDGE_PYTHON)"; exit 2; }
install_missing debootstrap:debootstrap curl:curl xz:xz-utils dpkg-deb:dpkg
# A static QEMU 10 in .arm64/qemu/ and the binfmt handler for aarch64 (deploy/qemu-binfmt.sh says why).
# shellcheck source=deploy/qemu-binfmt.sh
. "$ROOT/deploy/qemu-binfmt.sh" "$CACHE/qemu"
step "host ready: $("$QEMU" --version | head -1), binfmt qemu-aarch64 $(head -1 /proc/sys/fs/binfmt_misc/qemu-aarch64)"

root_file_system "$ROOTFS" "$CACHE/debootstrap-$SUITE.log" --arch=arm64 --variant=minbase "$SUITE"
say "emulated machine: $(chroot "$ROOTFS" uname -m), $(chroot "$ROOTFS" sh -c '. /etc/os-release; echo "$PRETTY_NAME"')"

# /sys and /dev bound recursively, as slaves: unmounting the copies must not unmount the host's own (its mounts
# are shared under systemd).
for m in proc sys dev; do
    mkdir -p "$ROOTFS/$m"
    case $m in proc) mount -t proc proc "$ROOTFS/proc" ;; *) mount --rbind "/$m" "$ROOTFS/$m" ;; esac
    MOUNTS+=("$ROOTFS/$m")
    [ "$m" = proc ] || mount --make-rslave "$ROOTFS/$m"
done
mkdir -p "$CACHE/pip-cache-$SUITE" "$ROOTFS/root/.cache/pip"
mount --bind "$CACHE/pip-cache-$SUITE" "$ROOTFS/root/.cache/pip"
MOUNTS+=("$ROOTFS/root/.cache/pip")
cp -L /etc/resolv.conf "$ROOTFS/etc/resolv.conf"

APP=$ROOTFS/opt/reputation
rm -rf "$APP"
mkdir -p "$APP/bundles" "$APP/deploy"
cp -a "$ROOT/app" "$ROOT/requirements-edge.txt" "$APP/"
cp -a "$ROOT/bundles/default" "$APP/bundles/"
cp -a "$ROOT/deploy/install-edge.sh" "$ROOT/deploy/constraints-edge.txt" "$APP/deploy/"
find "$APP" -name __pycache__ -prune -exec rm -rf {} +
step "project copied into /opt/reputation"

# A clean environment for the install; the host's CA bundle for pip (PIP_CERT) travels along, for networks
# that reach the package index through a TLS-inspecting proxy.
INSTALL_ENV=(PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root)
for v in http_proxy https_proxy HTTP_PROXY HTTPS_PROXY no_proxy PIP_INDEX_URL; do
    [ -n "${!v:-}" ] && INSTALL_ENV+=("$v=${!v}")
done
if [ -n "${PIP_CERT:-}" ] && [ -f "$PIP_CERT" ]; then
    mkdir -p "$ROOTFS/etc/ssl"  # absent in a minimal root until ca-certificates is installed
    cp "$PIP_CERT" "$ROOTFS/etc/ssl/host-ca-bundle.pem"
    INSTALL_ENV+=(PIP_CERT=/etc/ssl/host-ca-bundle.pem)
fi
chroot "$ROOTFS" /usr/bin/env -i "${INSTALL_ENV[@]}" /bin/sh /opt/reputation/deploy/install-edge.sh /opt/reputation 2>&1 \
    | sed 's/^/  | /'
step "edge side installed with deploy/install-edge.sh (aarch64 wheels)"

# The unit's settings: its Environment= lines, WorkingDirectory=, ExecStart=, the runtime directory and the
# credential; the example settings file's values for a 4-core Pi; an unprivileged user as DynamicUser= gives.
mapfile -t UNIT_ENV < <(sed -n 's/^Environment=//p' "$UNIT")
WORKDIR=$(sed -n 's/^WorkingDirectory=//p' "$UNIT")
EXEC=$(sed -n 's/^ExecStart=//p' "$UNIT")
RUNTIME_DIR=/run/$(sed -n 's/^RuntimeDirectory=//p' "$UNIT")
CREDENTIALS=/run/credentials/reputation.service
TOKEN=$(new_token)
rm -rf "$ROOTFS$RUNTIME_DIR" "$ROOTFS$CREDENTIALS"
install -d -m 0700 -o 65534 -g 65534 "$ROOTFS$RUNTIME_DIR"
install -d -m 0500 -o 65534 -g 65534 "$ROOTFS$CREDENTIALS"
printf '%s' "$TOKEN" > "$ROOTFS$CREDENTIALS/auth_token"
chown 65534:65534 "$ROOTFS$CREDENTIALS/auth_token"; chmod 0400 "$ROOTFS$CREDENTIALS/auth_token"
SETTINGS=(HOST=127.0.0.1 "PORT=$PORT" WORKERS=2 THREADS=4 TFLITE_THREADS=2 "CREDENTIALS_DIRECTORY=$CREDENTIALS")
say "starting: $EXEC with ${UNIT_ENV[*]} ${SETTINGS[*]/CREDENTIALS_DIRECTORY=*/CREDENTIALS_DIRECTORY=(token)} as uid 65534 in $WORKDIR"
chroot --userspec=65534:65534 "$ROOTFS" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/nonexistent "${UNIT_ENV[@]}" \
    "${SETTINGS[@]}" /bin/sh -c "cd $WORKDIR && exec $EXEC" > "$CACHE/service-$SUITE.log" 2>&1 &
SERVICE_PID=$!

cd "$ROOT"
"$HOST_PYTHON" deploy/arm64_smoke.py --url "http://127.0.0.1:$PORT" --token "$TOKEN" --bundle bundles/default --workers 2
HUNG=$(grep -c "WORKER TIMEOUT" "$CACHE/service-$SUITE.log" || true)
step "smoke test passed over loopback, both workers classifying ($HUNG stuck after fork and replaced first; service log: $CACHE/service-$SUITE.log)"
say "workers: $(chroot "$ROOTFS" /opt/reputation/.venv-edge/bin/python -c 'import platform; print(platform.machine(), platform.python_version())') under QEMU; all passed in $((SECONDS - STARTED)) s"
