#!/usr/bin/env bash
# make systemd-check: the unit started by a real, booted systemd (Debian bookworm, systemd 252), installed
# exactly as systemd/README.md says, and checked from the host.
#   1. a Debian bookworm root file system made with debootstrap, cached outside the clone
#      ($SYSTEMD_CHECK_CACHE, default /var/cache/reputation/systemd-check), copied afresh for every run;
#   2. a git clone of the working tree (HEAD plus uncommitted and untracked, not ignored, files);
#   3. boots it with `systemd-nspawn -b` on the host's network, runs the install block of systemd/README.md
#      inside (through nsenter), with WORKERS=2 and a free port in the settings file;
#   4. from the host (deploy/systemd_probe.py): /readyz, 401 without the token, classify with it, /metrics
#      across both workers, `systemctl reload` with no failed request, median latency;
#      then systemd/README.md's feedback drop-in: 404 before, 204 after, the file kept across a restart;
#   5. the unit: no restart, a journal with no kill and no traceback, the XNNPACK line for every worker;
#      `systemd-analyze security` exposure, and which sandbox features this kernel and container enforce;
#   6. last, the served bundle's model file changed in place and a reload: the service stops in one line,
#      each restart refuses it in one line, and serves again once the file is put back.
# Needs root; anywhere else it skips, saying why. Installs systemd-container and debootstrap with apt-get if
# they are missing. Each step prints its duration.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SUITE=${SYSTEMD_CHECK_SUITE:-bookworm}
MIRROR=$(sh "$ROOT/deploy/debian-mirror.sh" 2>/dev/null || true)  # this machine's apt source, or $DEBIAN_MIRROR
CACHE=${SYSTEMD_CHECK_CACHE:-/var/cache/reputation/systemd-check}
WORKERS=${SYSTEMD_CHECK_WORKERS:-2}
LATENCY_LIMIT_MS=${SYSTEMD_CHECK_LATENCY_MS:-10}
EXPOSURE_MAX=${SYSTEMD_CHECK_EXPOSURE_MAX:-1.0}
# In the root file system: systemd to boot, and what systemd/README.md's apt-get line installs, so that a
# warm run installs no Debian package (that line then finds them all present).
PACKAGES=systemd,systemd-sysv,dbus,python3-venv,make,git,ca-certificates
NAME=reputation-check
STARTED=$SECONDS
CHECK=systemd-check
# shellcheck source=deploy/steps.sh
. "$ROOT/deploy/steps.sh"
NSPAWN_PID=
RUN=
OVERLAY=
CGROUPS=()


if [ "$(id -u)" != 0 ]; then
    say "skipped: needs root (debootstrap, systemd-nspawn, nsenter); CI runs it as root"
    exit 0
fi
if [ "$(uname -s)" != Linux ]; then
    say "skipped: needs Linux (systemd-nspawn)"
    exit 0
fi

cleanup() {
    local rc=$?
    set +e
    STEP_START=$SECONDS
    if [ -n "$NSPAWN_PID" ] && kill -0 "$NSPAWN_PID" 2>/dev/null; then
        # SIGTERM to systemd-nspawn: the container's systemd shuts down cleanly.
        kill -TERM "$NSPAWN_PID"
        for _ in $(seq 60); do kill -0 "$NSPAWN_PID" 2>/dev/null || break; sleep 0.5; done
        kill -0 "$NSPAWN_PID" 2>/dev/null && { say "container did not stop in 30 s: killed"; kill -KILL "$NSPAWN_PID"; }
        wait "$NSPAWN_PID" 2>/dev/null
    fi
    [ -n "$OVERLAY" ] && { umount "$OVERLAY" 2>/dev/null || umount -l "$OVERLAY"; }
    for cg in "${CGROUPS[@]}"; do
        [ -d "$cg" ] && find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null
    done
    if [ -n "$RUN" ] && [ -d "$RUN" ]; then
        keep_logs "$rc"
        say "container stopped and its files removed in $((SECONDS - STEP_START)) s"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

install_missing systemd-nspawn:systemd-container debootstrap:debootstrap nsenter:util-linux git:git python3:python3
step "host: $(systemd-nspawn --version | head -1), $(uname -r), cgroup $(stat -fc %T /sys/fs/cgroup)"

# 1. The cached root file system: one per suite, architecture and package list.
ARCH=$(dpkg --print-architecture 2>/dev/null || echo amd64)
KEY=$(printf '%s %s %s' "$SUITE" "$ARCH" "$PACKAGES" | sha256sum | cut -c1-12)
ROOTFS=$CACHE/rootfs-$SUITE-$ARCH-$KEY
mkdir -p "$CACHE" "$CACHE/pip-cache"
root_file_system "$ROOTFS" "$CACHE/debootstrap-$SUITE-$ARCH.log" --variant=minbase --include="$PACKAGES" "$SUITE"
# A fresh copy for this run: an overlay (the cached tree stays untouched, nothing to copy), else cp.
RUN=$(mktemp -d "$CACHE/run.XXXXXX")
mkdir -p "$RUN/root" "$RUN/upper" "$RUN/work"
if mount -t overlay overlay -o "lowerdir=$ROOTFS,upperdir=$RUN/upper,workdir=$RUN/work" "$RUN/root" 2>/dev/null; then
    OVERLAY=$RUN/root
    step "fresh root file system: an overlay on the cached one at $RUN/root"
else
    cp -a "$ROOTFS/." "$RUN/root"
    step "fresh root file system: a copy of the cached one in $RUN/root"
fi

# 2. The working tree as a commit (HEAD itself when nothing differs), in a bare repository to clone from; the
# objects it takes are written in this run's folder, not in the checkout's repository.
git init -q --bare "$RUN/source.git"
export GIT_INDEX_FILE=$RUN/index GIT_AUTHOR_NAME=systemd-check GIT_AUTHOR_EMAIL=systemd-check@localhost \
    GIT_COMMITTER_NAME=systemd-check GIT_COMMITTER_EMAIL=systemd-check@localhost \
    GIT_ALTERNATE_OBJECT_DIRECTORIES=$(cd "$ROOT" && cd "$(git rev-parse --git-path objects)" && pwd) \
    GIT_OBJECT_DIRECTORY=$RUN/objects
mkdir -p "$RUN/objects"
git -C "$ROOT" read-tree HEAD
git -C "$ROOT" add -A
TREE=$(git -C "$ROOT" write-tree)
unset GIT_INDEX_FILE
if [ "$TREE" = "$(git -C "$ROOT" rev-parse 'HEAD^{tree}')" ]; then
    COMMIT=$(git -C "$ROOT" rev-parse HEAD)
    WHAT="HEAD $(git -C "$ROOT" rev-parse --short HEAD)"
else
    COMMIT=$(git -C "$ROOT" commit-tree "$TREE" -p HEAD -m "systemd-check: working tree")
    WHAT="HEAD $(git -C "$ROOT" rev-parse --short HEAD) with the working tree's changes (tree ${TREE:0:12})"
fi
git -C "$ROOT" push -q "$RUN/source.git" "$COMMIT:refs/heads/main"
unset GIT_OBJECT_DIRECTORY GIT_ALTERNATE_OBJECT_DIRECTORIES
git --git-dir="$RUN/source.git" symbolic-ref HEAD refs/heads/main
step "source: $WHAT"

# 3. Boot. The container shares the host's network (the service's port is the host's), binds the source
# read-only and a pip cache; the host's CA bundle replaces the container's for networks whose TLS goes
# through an inspecting proxy. On a host without systemd (this build machine, CI) nspawn keeps the cgroup it
# is started in: a fresh one, removed afterwards; the container gets the unified (v2) hierarchy, as Raspberry
# Pi OS and Ubuntu have.
PORT=$(free_port)
NSPAWN=(systemd-nspawn -b -D "$RUN/root" -M "$NAME" --register=no --console=passive
        --bind-ro="$RUN/source.git:/srv/reputation.git" --bind="$CACHE/pip-cache:/root/.cache/pip")
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    NSPAWN+=(--bind-ro=/etc/ssl/certs/ca-certificates.crt)
fi
if [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]; then
    : # nspawn asks the host's systemd for a scope of its own
else
    NSPAWN+=(--keep-unit)
    if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then
        CGROUPS+=("/sys/fs/cgroup/$NAME-$$")
    else  # hybrid or legacy: the unified hierarchy and systemd's named one
        for hierarchy in /sys/fs/cgroup/unified /sys/fs/cgroup/systemd; do
            [ -e "$hierarchy/cgroup.procs" ] && CGROUPS+=("$hierarchy/$NAME-$$")
        done
    fi
fi
(
    for cg in "${CGROUPS[@]}"; do mkdir -p "$cg" && echo "$BASHPID" > "$cg/cgroup.procs"; done
    exec env SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 "${NSPAWN[@]}"
) > "$RUN/nspawn.log" 2>&1 &
NSPAWN_PID=$!
# The container's init: the child of systemd-nspawn in another PID namespace (the first child is not it).
INIT_PID=
for _ in $(seq 100); do
    for child in $(pgrep -P "$NSPAWN_PID" || true); do
        ns=$(readlink "/proc/$child/ns/pid" 2>/dev/null || true)
        if [ -n "$ns" ] && [ "$ns" != "$(readlink /proc/self/ns/pid)" ]; then
            INIT_PID=$child
        fi
    done
    [ -n "$INIT_PID" ] && break
    kill -0 "$NSPAWN_PID" 2>/dev/null || { cat "$RUN/nspawn.log"; die "systemd-nspawn exited"; }
    sleep 0.1
done
[ -n "$INIT_PID" ] || die "no container init process after 10 s"
# Commands inside: all of the container's namespaces but the network (it has the host's), a clean environment.
cat > "$RUN/inside" <<EOF
#!/bin/sh
exec nsenter -t $INIT_PID -m -u -i -p -- /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    LANG=C.UTF-8 SYSTEMD_PAGER= SYSTEMD_COLORS=0 SYSTEMD_LESS= "\$@"
EOF
chmod 0755 "$RUN/inside"
inside() { "$RUN/inside" "$@"; }
# Until its manager answers, then until booted. Early attempts find no manager: nothing printed before
# /run/systemd/private exists, and "offline" before /run/systemd/system does (systemctl's sd_booted() check).
# At most 5 minutes in all.
state=
boot_deadline=$((SECONDS + 300))
while [ "$SECONDS" -lt "$boot_deadline" ]; do
    state=$(timeout $((boot_deadline - SECONDS + 1)) "$RUN/inside" systemctl is-system-running --wait 2>>"$RUN/boot-wait.log" || true)
    [ -n "$state" ] && [ "$state" != offline ] && break
    kill -0 "$NSPAWN_PID" 2>/dev/null || break
    sleep 0.5
done
case $state in
    running | degraded) ;;
    *) cat "$RUN/nspawn.log"; die "the container's systemd did not come up (state: ${state:-none})" ;;
esac
step "booted: $(inside systemctl --version | head -1), system $state$(
    [ "$state" = degraded ] && echo ", failed units: $(inside systemctl --failed --plain --no-legend | awk '{print $1}' | tr '\n' ' ')")"

# 4. Install exactly as systemd/README.md says: its first sh block, run as root (sudo dropped), cloning the
# working tree, with the settings the edit comment asks for written right after the settings file is
# installed. Its last line (curl /readyz) is the probe's first check, from the host.
awk '/^```sh$/ {on = 1; next} on && /^```$/ {exit} on {print}' "$ROOT/systemd/README.md" > "$RUN/readme-install.txt"
grep -q 'systemctl enable --now reputation' "$RUN/readme-install.txt" || die "no install block in systemd/README.md"
{
    echo 'set -eux'
    while IFS= read -r line; do
        case $line in curl\ *) continue ;; esac
        line=${line//<this repository>//srv/reputation.git}
        line=${line//sudo /}
        printf '%s\n' "$line"
        case $line in
            *reputation.env.example*)
                printf 'printf "WORKERS=%s\\nPORT=%s\\n" >> /etc/reputation/reputation.env\n' "$WORKERS" "$PORT" ;;
        esac
    done < "$RUN/readme-install.txt"
} > "$RUN/root/root/install.sh"
INSTALL_ENV=()
for v in http_proxy https_proxy HTTP_PROXY HTTPS_PROXY no_proxy NO_PROXY PIP_INDEX_URL PIP_DEFAULT_TIMEOUT; do
    [ -n "${!v:-}" ] && INSTALL_ENV+=("$v=${!v}")
done
inside env "${INSTALL_ENV[@]}" DEBIAN_FRONTEND=noninteractive sh /root/install.sh > "$RUN/install.log" 2>&1 \
    || { sed 's/^/  | /' "$RUN/install.log" | tail -40; die "the README's install block failed"; }
grep -E '^\+ ' "$RUN/install.log" | sed 's/^/  | /'
step "installed as systemd/README.md says (log: install.log); settings WORKERS=$WORKERS PORT=$PORT"

# 5. From the host; last, systemd/README.md's block that switches corrections on (its sh block with the
# feedback drop-in, sudo dropped), run inside by the probe.
awk '/^```sh$/ {on = 1; block = ""; next} on && /^```$/ {on = 0; if (block ~ /feedback.conf/) {printf "%s", block; exit}}
     on {block = block $0 "\n"}' "$ROOT/systemd/README.md" | sed 's/sudo //g' > "$RUN/root/root/feedback.sh"
grep -q 'StateDirectory=' "$RUN/root/root/feedback.sh" || die "no feedback drop-in block in systemd/README.md"
probe_rc=0
"${EDGE_PYTHON:-$ROOT/.venv-edge/bin/python}" "$ROOT/deploy/systemd_probe.py" --url "http://127.0.0.1:$PORT" --workers "$WORKERS" \
    --token-file "$RUN/root/etc/reputation/auth_token" --inside "$RUN/inside" \
    --latency-limit-ms "$LATENCY_LIMIT_MS" --feedback-script /root/feedback.sh || probe_rc=$?
STEP_START=$SECONDS

# 6. The unit and its journal.
failures=()
inside journalctl -b -u reputation --no-pager > "$RUN/journal.txt"
inside journalctl -b --no-pager > "$RUN/journal-boot.txt"
eval "$(inside systemctl show reputation -p NRestarts -p ActiveState -p Result -p MainPID | sed 's/^\([A-Za-z]*\)=\(.*\)$/unit_\1="\2"/')"
xnnpack=$(grep -c 'Created TensorFlow Lite XNNPACK delegate for CPU' "$RUN/journal.txt" || true)
bad=$(grep -E 'Traceback|code=killed|status=31/SYS|Error in cpuinfo|Main process exited|Start request repeated|Failed with result|Reload failed|\[CRITICAL\]|WORKER TIMEOUT' "$RUN/journal.txt" || true)
say "unit: $unit_ActiveState, result $unit_Result, $unit_NRestarts restarts; journal: $(wc -l < "$RUN/journal.txt") lines, XNNPACK delegate created $xnnpack times"
[ "$unit_ActiveState" = active ] && [ "$unit_Result" = success ] || failures+=("unit $unit_ActiveState/$unit_Result")
[ "$unit_NRestarts" = 0 ] || failures+=("$unit_NRestarts restarts")
[ -z "$bad" ] || { printf '%s\n' "$bad" | head -20 | sed 's/^/  | /'; failures+=("the journal has kills, tracebacks or failures"); }
# One delegate per worker at start and again per worker after the reload.
[ "$xnnpack" -ge $((2 * WORKERS)) ] || failures+=("XNNPACK delegate created $xnnpack times, expected at least $((2 * WORKERS))")
step "journal checked (journal.txt)"

inside systemd-analyze security reputation.service --no-pager > "$RUN/security.txt" 2>&1 || true
exposure=$(sed -n 's/.*Overall exposure level for reputation.service: \([0-9.]*\).*/\1/p' "$RUN/security.txt")
grep '^✗' "$RUN/security.txt" | sed 's/  \+/  /g; s/^/  | /'
awk -v e="${exposure:-99}" -v m="$EXPOSURE_MAX" 'BEGIN {exit !(e <= m)}' \
    || failures+=("exposure ${exposure:-unknown} above $EXPOSURE_MAX")
step "systemd-analyze security under the running systemd: exposure ${exposure:-unknown} (at most $EXPOSURE_MAX)"

# Which of the unit's resource and network limits this kernel and container enforce (they depend on the
# host, not on the unit: systemd/README.md says how to check them on a device).
cg=/sys/fs/cgroup/system.slice/reputation.service
memory=$(inside cat "$cg/memory.max" 2>/dev/null || echo "not enforced (no memory controller in this cgroup tree)")
tasks=$(inside cat "$cg/pids.max" 2>/dev/null || echo "not enforced (no pids controller in this cgroup tree)")
if inside systemd-run --quiet --wait --pipe -p IPAddressDeny=any -p DynamicUser=yes python3 -c \
    "import socket; socket.create_connection(('127.0.0.1', $PORT), timeout=3)" >/dev/null 2>&1; then
    firewall="not enforced (a unit with IPAddressDeny=any reached the service)"
else
    firewall="enforced (a unit with IPAddressDeny=any could not connect)"
fi
say "here: MemoryMax -> memory.max $memory; TasksMax -> pids.max $tasks; IPAddressDeny/Allow $firewall"
grep -h 'does not support BPF/cgroup firewalling' "$RUN/journal-boot.txt" | sed 's/^/  | /' || true
step "sandbox features measured"

# 7. Last, what systemd/README.md warns against: a served bundle's file changed in place, then a reload. The
# service stops saying why in one line, Restart=on-failure restarts it and each start refuses the bundle in
# one line; with the file put back, the next restart serves again.
in_place_rc=0
"${EDGE_PYTHON:-$ROOT/.venv-edge/bin/python}" "$ROOT/deploy/systemd_probe.py" --url "http://127.0.0.1:$PORT" \
    --token-file "$RUN/root/etc/reputation/auth_token" --inside "$RUN/inside" \
    --in-place /opt/reputation/bundles/default/model.tflite || in_place_rc=$?
inside journalctl -b -u reputation --no-pager > "$RUN/journal-in-place.txt"
[ "$in_place_rc" = 0 ] || failures+=("a bundle changed in place (above; journal-in-place.txt)")
STEP_START=$SECONDS

[ "$probe_rc" = 0 ] || failures+=("the HTTP checks (above)")
if [ ${#failures[@]} -gt 0 ]; then
    for f in "${failures[@]}"; do say "FAILED $f"; done
    exit 1
fi
say "all passed in $((SECONDS - STARTED)) s"
