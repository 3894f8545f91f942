#!/bin/sh
# Install the edge side into PREFIX on Debian / Raspberry Pi OS bookworm (or any Debian-like system with
# Python >= 3.10): system Python, a virtual environment, the edge requirements from binary wheels only.
# Dockerfile.arm64 and deploy/arm64-check.sh both run this script, so the check proves what the image does.
#   sh deploy/install-edge.sh /opt/reputation    (PREFIX must hold requirements-edge.txt and deploy/constraints-edge.txt)
set -eu
PREFIX=${1:-/opt/reputation}
PACKAGES="python3 python3-venv ca-certificates"

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    # shellcheck disable=SC2086
    if ! dpkg-query -W $PACKAGES >/dev/null 2>&1; then
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $PACKAGES
        rm -rf /var/lib/apt/lists/*
    fi
fi
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    echo "install-edge.sh: the edge side needs Python 3.10 or newer; python3 on PATH is" \
        "$(command -v python3 || echo missing) ($(python3 -V 2>&1 || true))" >&2
    exit 1
fi
python3 -m venv "$PREFIX/.venv-edge"
"$PREFIX/.venv-edge/bin/pip" install --disable-pip-version-check --no-input --only-binary=:all: \
    -r "$PREFIX/requirements-edge.txt" -c "$PREFIX/deploy/constraints-edge.txt"
echo "installed for $("$PREFIX/.venv-edge/bin/python" -c 'import platform; print(platform.machine(), "Python", platform.python_version())'):" \
    "$("$PREFIX/.venv-edge/bin/pip" freeze --disable-pip-version-check | tr '\n' ' ')"
