#!/usr/bin/env bash
# Zn lookups per second through the crate's Zn client (`mbms-lab bench zn`: one connection,
# requests pipelined) against Debian's freeDiameterd running our BSF extension tools/bsf-zn,
# on loopback. The script builds the extension, writes SUBSCRIBERS subscribers (and the same
# B-TIDs as the bench's --btid-file), a self-signed certificate, the acl_wl whitelist and the
# daemon configuration under target/zn-vs-freediameterd/, starts freeDiameterd, runs the bench
# once per IN_FLIGHT value, and stops the daemon.
#
#   benches/zn-vs-freediameterd.sh        # RUNS=5 REQUESTS=100000 IN_FLIGHT="64 256 1024"
#   MBMS_BIN=path/to/mbms-lab RUNS=7 benches/zn-vs-freediameterd.sh
#
# Needs freediameterd, freediameter-extensions, libfreediameter-dev, libgnutls28-dev, gcc,
# make, openssl (see tools/bsf-zn/README.md). The bench prints its markdown tables on standard
# output; the daemon's log is in the output directory.
set -euo pipefail

RUNS=${RUNS:-5}
REQUESTS=${REQUESTS:-100000}
IN_FLIGHT=${IN_FLIGHT:-"64 256 1024"}
SUBSCRIBERS=${SUBSCRIBERS:-10000}
PORT=${PORT:-23868}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
OUT=$ROOT/target/zn-vs-freediameterd
rm -rf "$OUT"
mkdir -p "$OUT"
log() { echo "$@" >&2; }

BIN=${MBMS_BIN:-}
if [[ -z $BIN ]]; then
    log "building mbms-lab (release)"
    cargo build --release -q -p mbms-lab
    BIN=$ROOT/target/release/mbms-lab
fi

log "building tools/bsf-zn"
make -s -C tools/bsf-zn O="$OUT"

IDENTITY=bsf.bench.test
REALM=bench.test
openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=$IDENTITY" \
    -keyout "$OUT/bsf.key.pem" -out "$OUT/bsf.cert.pem" 2>/dev/null
echo "ALLOW_IPSEC *.naf.bench.test" >"$OUT/acl_wl.conf"
# subscriber i: B-TID bench<i>@bsf.bench.test, Ks and RAND from i (lab values, not secrets)
awk -v n="$SUBSCRIBERS" 'BEGIN {
    for (i = 1; i <= n; i++)
        printf "bench%d@%s bench%d@ims.bench.test %064x %032x\n", i, "bsf.bench.test", i, i, i
}' >"$OUT/subscribers.conf"
cut -d' ' -f1 "$OUT/subscribers.conf" >"$OUT/btids.txt"
cat >"$OUT/freeDiameter-bsf.conf" <<EOF
Identity = "$IDENTITY";
Realm = "$REALM";
Port = $PORT;
SecPort = 0;
No_SCTP;
No_IPv6;
TLS_Cred = "$OUT/bsf.cert.pem", "$OUT/bsf.key.pem";
TLS_CA = "$OUT/bsf.cert.pem";
LoadExtension = "/usr/lib/freeDiameter/acl_wl.fdx" : "$OUT/acl_wl.conf";
LoadExtension = "$OUT/bsf_zn.fdx" : "$OUT/subscribers.conf";
EOF

freeDiameterd -c "$OUT/freeDiameter-bsf.conf" >"$OUT/freeDiameterd.log" 2>&1 &
FD=$!
trap 'kill $FD 2>/dev/null; wait $FD 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    grep -q "daemon initialized" "$OUT/freeDiameterd.log" && break
    kill -0 $FD 2>/dev/null || { cat "$OUT/freeDiameterd.log" >&2; exit 1; }
    sleep 0.1
done
grep -q "daemon initialized" "$OUT/freeDiameterd.log" || { log "freeDiameterd did not start"; exit 1; }
log "freeDiameterd $(freeDiameterd --version 2>&1 | head -n1 | tr -d '\n') on 127.0.0.1:$PORT, $SUBSCRIBERS subscribers"

for k in $IN_FLIGHT; do
    log "bench zn --in-flight $k"
    "$BIN" bench zn --peer "127.0.0.1:$PORT" --origin-host bmsc.naf.bench.test \
        --origin-realm naf.bench.test --realm "$REALM" \
        --btid-file "$OUT/btids.txt" --requests "$REQUESTS" --in-flight "$k" --runs "$RUNS"
done
