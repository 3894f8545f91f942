# Sourced by the deploy checks: each step printed with its duration, under the check's name ($CHECK), and the
# pieces they share.
STEP_START=$SECONDS
step() { echo "$CHECK: [$((SECONDS - STEP_START)) s] $1"; STEP_START=$SECONDS; }
say() { echo "$CHECK: $*"; }
die() { echo "$CHECK: FAILED $*"; exit 1; }

# install_missing COMMAND:PACKAGE ...: Debian's packages for the commands this machine lacks, with apt-get.
install_missing() {
    local tool missing=()
    for tool in "$@"; do
        command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
    done
    [ ${#missing[@]} -gt 0 ] || return 0
    command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them"
    say "installing ${missing[*]} with apt-get"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

# root_file_system DEST LOG DEBOOTSTRAP_ARGUMENTS... SUITE: a Debian root file system made once in DEST, from
# $MIRROR (DEST/.complete marks a finished one: a run cut off starts over), debootstrap's output in LOG.
root_file_system() {
    local dest=$1 log=$2
    shift 2
    if [ -f "$dest/.complete" ]; then
        step "root file system: cached $dest"
        return 0
    fi
    [ -n "$MIRROR" ] || die "no Debian mirror in /etc/apt: set DEBIAN_MIRROR"
    rm -rf "$dest.partial"
    mkdir -p "$(dirname "$dest")"
    debootstrap "$@" "$dest.partial" "$MIRROR" > "$log" 2>&1 || { tail -20 "$log"; die "debootstrap (log: $log)"; }
    touch "$dest.partial/.complete"
    mv "$dest.partial" "$dest"
    step "root file system: debootstrap $* into $dest"
}

# keep_logs STATUS: the run's logs (RUN/*.log, *.txt) kept in CACHE/last-run, the run's folder removed.
keep_logs() {
    [ -n "$RUN" ] && [ -d "$RUN" ] || return 0
    mkdir -p "$CACHE/last-run"
    cp "$RUN"/*.log "$RUN"/*.txt "$CACHE/last-run/" 2>/dev/null
    rm -rf "$RUN"
    [ "$1" = 0 ] || say "logs of this run: $CACHE/last-run/"
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
new_token() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
