#!/bin/sh
# Prints the Debian archive this machine's apt uses (its first non-security source), or $DEBIAN_MIRROR if
# set: the mirror that debootstrap and the QEMU download use in deploy/*-check.sh.
if [ -n "${DEBIAN_MIRROR:-}" ]; then
    echo "$DEBIAN_MIRROR"
    exit 0
fi
for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    sed -n -e 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' \
        -e 's/^deb[[:space:]]\{1,\}\(\[[^]]*\][[:space:]]\{1,\}\)\{0,1\}\([^[:space:]]*\).*/\2/p' "$f"
done | grep -v -e security -e '^$' | head -1 | grep . || { echo "no Debian mirror in /etc/apt: set DEBIAN_MIRROR" >&2; exit 1; }
