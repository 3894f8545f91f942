#!/usr/bin/env bash
# make image-check: build Dockerfile.arm64 for linux/arm64 and run the image, with Debian's podman (no
# daemon, no registry: the base image is made here).
#   1. a static QEMU 10 registered as the aarch64 binfmt handler (deploy/qemu-binfmt.sh);
#   2. podman with its own configuration and storage under $IMAGE_CHECK_CACHE (default
#      /var/cache/reputation/image-check): vfs storage, runc, cgroupfs, ulimits this sandbox can grant;
#   3. debian:bookworm-slim for arm64 made with `debootstrap --arch=arm64 --variant=minbase bookworm` and
#      imported (once, cached), then `podman build --platform linux/arm64 --format docker` (the OCI format
#      drops HEALTHCHECK) of the working tree, the host's CA bundle mounted for pip;
#   4. runs it as the README says (--read-only --tmpfs /tmp, the token as a mounted file) on a port that is
#      not 8080, and checks: /readyz, 401 without the token, classify with it, uid and gid 10001, a read-only
#      root, the HEALTHCHECK command (podman healthcheck run), and that it refuses to start without a token.
# Needs root (binfmt_misc, podman with vfs). Everything runs under QEMU: the build takes minutes.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${IMAGE_CHECK_CACHE:-/var/cache/reputation/image-check}
MIRROR=$(sh "$ROOT/deploy/debian-mirror.sh" 2>/dev/null || true)  # this machine's apt source, or $DEBIAN_MIRROR
IMAGE=localhost/reputation:arm64
BASE=docker.io/library/debian:bookworm-slim
NAME=reputation-image-check
STARTED=$SECONDS
CHECK=image-check
# shellcheck source=deploy/steps.sh
. "$ROOT/deploy/steps.sh"
RUN=


if [ "$(id -u)" != 0 ]; then
    say "skipped: needs root (binfmt_misc for the arm64 emulator, podman with vfs storage)"
    exit 0
fi

cleanup() {
    local rc=$?
    set +e
    for c in "$NAME" "$NAME-notoken"; do podman rm -f -i -t 5 "$c" >/dev/null 2>&1; done
    keep_logs "$rc"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

install_missing podman:podman runc:runc debootstrap:debootstrap curl:curl xz:xz-utils dpkg-deb:dpkg
mkdir -p "$CACHE"
RUN=$(mktemp -d "$CACHE/run.XXXXXX")

# shellcheck source=deploy/qemu-binfmt.sh
. "$ROOT/deploy/qemu-binfmt.sh" "$CACHE/qemu"
step "host: $(podman --version), $(runc --version | head -1), $("$QEMU" --version | head -1) as the aarch64 binfmt handler"

# Podman's own configuration, not the host's: crun refuses this host's hybrid cgroups, runc works; the
# default ulimits (nofile 1048576) cannot be raised without CAP_SYS_RESOURCE, so ask for the hard limits
# (containers.conf for podman run, --ulimit for podman build, which does not read default_ulimits).
# nproc: at most the hard limit and kernel.pid_max (measured here: 96365 and 32768; runc was refused
# anything above 32768).
NPROC=$(ulimit -Hu); PID_MAX=$(cat /proc/sys/kernel/pid_max)
[ "$NPROC" = unlimited ] || [ "$NPROC" -gt "$PID_MAX" ] && NPROC=$PID_MAX
NOFILE=$(ulimit -Hn); [ "$NOFILE" = unlimited ] && NOFILE=1048576
mkdir -p "$CACHE/storage" /run/reputation-image-check
cat > "$CACHE/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$NOFILE:$NOFILE", "nproc=$NPROC:$NPROC"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
cat > "$CACHE/storage.conf" <<EOF
[storage]
driver = "vfs"
graphroot = "$CACHE/storage"
runroot = "/run/reputation-image-check"
EOF
export CONTAINERS_CONF=$CACHE/containers.conf CONTAINERS_STORAGE_CONF=$CACHE/storage.conf

# The base image, made once: Debian's minimal bookworm for arm64 under the tag the Dockerfile names.
if podman image exists "$BASE" && [ "$(podman image inspect --format '{{.Architecture}}' "$BASE")" = arm64 ]; then
    step "base image: cached $BASE (arm64)"
else
    base=$CACHE/base-bookworm-arm64
    root_file_system "$base" "$RUN/debootstrap.log" --arch=arm64 --variant=minbase bookworm
    tar -C "$base" --numeric-owner --exclude=./.complete --exclude='./var/cache/apt/archives/*.deb' \
        --exclude='./var/lib/apt/lists/*' -cf - . \
        | podman import --arch arm64 --os linux --change 'CMD ["bash"]' - "$BASE" >/dev/null
    step "base image: debootstrap --arch=arm64 --variant=minbase bookworm imported as $BASE"
fi

# The build: the working tree as context (.dockerignore keeps it to what the Dockerfile copies).
BUILD=(podman build --platform linux/arm64 --format docker --network host --pull=never -f Dockerfile.arm64 -t "$IMAGE"
       --ulimit "nofile=$NOFILE:$NOFILE" --ulimit "nproc=$NPROC:$NPROC")
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    BUILD+=(-v /etc/ssl/certs/ca-certificates.crt:/run/host-ca.pem:ro --build-arg PIP_CERT=/run/host-ca.pem)
fi
"${BUILD[@]}" "$ROOT" > "$RUN/build.log" 2>&1 || { tail -30 "$RUN/build.log"; die "podman build (log: build.log)"; }
grep -E '^(STEP|installed for)' "$RUN/build.log" | cut -c1-160 | sed 's/^/  | /'
size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
health=$(podman image inspect --format '{{json .Config.Healthcheck}}' "$IMAGE" 2>/dev/null || echo null)
user=$(podman image inspect --format '{{.Config.User}}' "$IMAGE")
step "built $IMAGE: $((size / 1000000)) MB, user $user, healthcheck $([ "$health" != null ] && echo kept || echo MISSING)"
failures=()
[ "$health" != null ] || failures+=("the image has no HEALTHCHECK")

# Run as the README says, on a port that is not the default, the token as a file readable by gid 10001.
# Podman schedules health checks with systemd timers, which this host lacks: --health-interval=disable,
# and the check runs the HEALTHCHECK command itself (podman healthcheck run). Podman still complains
# that it cannot reach systemd: those lines go to podman.log.
for c in "$NAME" "$NAME-notoken"; do podman rm -f -i "$c" >/dev/null 2>&1; done
PORT=$(free_port)
TOKEN=$(new_token)
printf '%s\n' "$TOKEN" > "$RUN/auth_token"
chgrp 10001 "$RUN/auth_token" && chmod 0440 "$RUN/auth_token"
# The default network (netavark) with a port published on loopback; the host's network where it fails here.
NET=(-p "127.0.0.1:$PORT:$PORT")
if ! podman run --rm --arch arm64 "${NET[@]}" --entrypoint /bin/true "$IMAGE" >/dev/null 2>"$RUN/network.log"; then
    say "the default container network does not work here ($(tail -1 "$RUN/network.log")): using the host's"
    NET=(--network host)
fi
podman run -d --arch arm64 --health-interval=disable --name "$NAME" "${NET[@]}" --read-only --tmpfs /tmp -e PORT="$PORT" \
    -v "$RUN/auth_token:/run/secrets/auth_token:ro" "$IMAGE" >/dev/null 2>>"$RUN/podman.log"
url=http://127.0.0.1:$PORT
waited=0
wait_started=$SECONDS
until curl -fsS -o /dev/null "$url/readyz" 2>/dev/null; do
    [ "$(podman inspect --format '{{.State.Running}}' "$NAME")" = true ] \
        || { podman logs "$NAME" 2>&1 | tail -20; die "the container exited"; }
    waited=$((SECONDS - wait_started))
    [ "$waited" -lt 600 ] || { podman logs "$NAME" 2>&1 | tail -20; die "/readyz not ready in 600 s"; }
    if [ -z "${hang_noted:-}" ] && [ "$waited" -ge 150 ] && ! podman logs "$NAME" 2>&1 | grep -q 'serving bundle'; then
        say "no worker has loaded the bundle after $waited s: the hang after fork under QEMU? (README, \"Deploying\")"
        hang_noted=1
    fi
    sleep 2
done
step "serving: /readyz 200 after $((SECONDS - wait_started)) s under QEMU (PORT=$PORT, ${NET[*]})"

tweet='{"text":"Terrible service at the branch today, waited two hours and nobody helped","entity":"Santander"}'
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' -d "$tweet" "$url/classify")
say "classify without the token -> $code"
[ "$code" = 401 ] || failures+=("without the token: $code, expected 401")
body=$(curl -s -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d "$tweet" "$url/classify")
say "classify with the token -> $body"
case $body in *'"label":"negative"'* | *'"label":"neutral"'* | *'"label":"positive"'*) ;; *) failures+=("classify: $body") ;; esac
ids=$(podman exec "$NAME" id -u):$(podman exec "$NAME" id -g)
say "processes run as uid:gid $ids; arch $(podman exec "$NAME" uname -m)"
[ "$ids" = 10001:10001 ] || failures+=("uid:gid $ids, expected 10001:10001")
if podman exec "$NAME" sh -c 'touch /opt/reputation/x' 2>/dev/null; then failures+=("the root file system is writable"); fi
podman exec "$NAME" sh -c 'touch /tmp/x && rm /tmp/x' || failures+=("/tmp is not writable")
say "read-only root: writes refused outside /tmp, /tmp writable"
if podman healthcheck run "$NAME" > "$RUN/healthcheck.log" 2>&1; then
    say "HEALTHCHECK command: healthy (on PORT=$PORT)"
else
    failures+=("HEALTHCHECK: $(cat "$RUN/healthcheck.log")")
fi
podman logs "$NAME" > "$RUN/service.log" 2>&1
grep -q 'Created TensorFlow Lite XNNPACK delegate' "$RUN/service.log" || failures+=("no XNNPACK line in the service log")
! grep -q Traceback "$RUN/service.log" || failures+=("a traceback in the service log")
step "checked the running image (service.log)"
podman rm -f -t 10 "$NAME" >/dev/null 2>>"$RUN/podman.log"

# Without a token it must not serve: the start fails, naming the missing file.
podman run -d --arch arm64 --health-interval=disable --name "$NAME-notoken" "${NET[@]}" --read-only --tmpfs /tmp -e PORT="$PORT" "$IMAGE" >/dev/null 2>>"$RUN/podman.log"
waited=0
while [ "$(podman inspect --format '{{.State.Running}}' "$NAME-notoken")" = true ] && [ "$waited" -lt 300 ]; do
    if curl -fsS -o /dev/null "$url/readyz" 2>/dev/null; then failures+=("started without a token"); break; fi
    sleep 2; waited=$((waited + 2))
done
podman logs "$NAME-notoken" > "$RUN/notoken.log" 2>&1
grep -q 'AUTH_TOKEN_FILE /run/secrets/auth_token: No such file' "$RUN/notoken.log" || failures+=("no token: $(tail -2 "$RUN/notoken.log")")
step "without a token: $(podman inspect --format 'exit status {{.State.ExitCode}}' "$NAME-notoken"): $(grep -o 'reputation service cannot start.*' "$RUN/notoken.log" | head -1)"

if [ ${#failures[@]} -gt 0 ]; then
    for f in "${failures[@]}"; do say "FAILED $f"; done
    exit 1
fi
say "all passed in $((SECONDS - STARTED)) s"
