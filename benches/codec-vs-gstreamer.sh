#!/usr/bin/env bash
# MIKEY codec against a peer: parse and parse+encode throughput of mbms-keys
# (`mbms-lab bench codec`, the lab's codec bench) versus GStreamer's gstmikey
# (`gst_mikey_message_new_from_data` / `gst_mikey_message_to_bytes`, through the
# small C harness `benches/gst_mikey_harness.c`), on messages GStreamer can
# handle (HDR, T, RAND, SP, KEMAC; GStreamer hangs on EXT (21) and ID (6)).
#
#   benches/codec-vs-gstreamer.sh            # RUNS=5 ITERATIONS=200000 by default
#   RUNS=7 ITERATIONS=500000 benches/codec-vs-gstreamer.sh
#   MBMS_BIN=path/to/mbms-lab benches/codec-vs-gstreamer.sh   # another build of the bench
#
# Both sides run one after the other in every run (same machine, same load);
# the table gives medians over the runs, and each ratio is the median of the
# per-run ratios GStreamer ns/op / mbms-keys ns/op (> 1: mbms-keys is faster).
# mbms-keys parses twice: the owned decode (`Message::decode`, a copy of every
# field) and the borrowed one (`MessageView::decode`, no allocation); the
# parse+encode figure is the owned decode's.
# Prints one markdown table on standard output; progress goes to standard error.
set -euo pipefail

RUNS=${RUNS:-5}
ITERATIONS=${ITERATIONS:-200000}
TARGET=3

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
OUT=$ROOT/target/codec-vs-gstreamer
mkdir -p "$OUT"

log() { echo "$@" >&2; }

# --- GStreamer development files, pkg-config, gcc --------------------------
need=()
for p in libgstreamer-plugins-base1.0-dev pkg-config gcc; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        need+=("$p")
    fi
done
if ((${#need[@]})); then
    log "installing ${need[*]} with apt"
    sudo_cmd=()
    if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
    "${sudo_cmd[@]}" apt-get update >&2
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y "${need[@]}" >&2
fi

# --- Build both sides --------------------------------------------------------
HARNESS=$OUT/gst_mikey_harness
log "building $HARNESS"
# shellcheck disable=SC2046 # pkg-config output is a word list
gcc -O2 -o "$HARNESS" benches/gst_mikey_harness.c \
    $(pkg-config --cflags --libs gstreamer-sdp-1.0 gstreamer-1.0)
if [[ -n ${MBMS_BIN:-} ]]; then
    MBMS=$(realpath "$MBMS_BIN")
    log "mbms-keys: $MBMS (MBMS_BIN)"
else
    log "building mbms-lab (release)"
    cargo build --release --quiet -p mbms-lab --bin mbms-lab
    MBMS=${CARGO_TARGET_DIR:-$ROOT/target}/release/mbms-lab
fi
GST_VERSION=$(pkg-config --modversion gstreamer-sdp-1.0)

# --- Messages ----------------------------------------------------------------
vector_hex() { # NAME: the hex of that message in proto-vectors/mikey-extra-messages.json
    grep -A3 "\"name\": \"$1\"" proto-vectors/mikey-extra-messages.json |
        sed -n 's/.*"hex": "\([0-9a-fA-F]*\)".*/\1/p' | head -n1
}

# An MBMS streaming MTK message (TS 33.246) minus the EXT payload, in the form
# GStreamer can round-trip: the output of
#   mbms-keys mikey build-mtk --msk 000102030405060708090a0b0c0d0e0f --key-domain 00f110 \
#     --msk-id 00010002 --mtk-id 7 --mtk 101112131415161718191a1b1c1d1e1f \
#     --salt 202122232425262728292a2b2c2d --counter 5 --srtp-ssrc 3735928559 --srtp-roc 0
# with the EXT (Key ID) payload removed, a RAND payload added after T, and the
# KEMAC in clear (encryption NULL, MAC NULL) holding its TEK+SALT Key data
# sub-payload: gstmikey does no crypto, and on the AES-CM/HMAC-SHA-1 KEMAC it
# reads the ciphertext as sub-payloads and re-encodes a different message.
#   HDR  01 00 05 00 00010002 01 00 | SRTP-ID map: policy 0, SSRC deadbeef, ROC 0
#   T    0b 02 00000005                     (COUNTER 5)
#   RAND 0a 10 303132...3f                  (16 octets)
#   SP   01 00 00 001e ...                  (SRTP policy of build-mtk, 10 parameters)
#   KEMAC 00 00 0024 [00 30 0010 TEK 000e SALT] 00
MTK_LIKE=0100050000010002010000deadbeef00000000\
0b0200000005\
0a10303132333435363738393a3b3c3d3e3f\
010000001e00010101011002010103011404010e0501000701010801010a01010b010a\
0000002400300010101112131415161718191a1b1c1d1e1f000e202122232425262728292a2b2c2d00

names=(onvif-mikey-null gstreamer-psk-init "MTK-like (HDR, T, RAND, SP, KEMAC NULL; no EXT)")
hexes=("$(vector_hex onvif-mikey-null)" "$(vector_hex gstreamer-psk-init)" "$MTK_LIKE")

for i in "${!hexes[@]}"; do
    if [[ -z ${hexes[$i]} ]]; then
        log "error: no hex for ${names[$i]}"
        exit 1
    fi
    # GStreamer hangs on payloads it does not know: check it parses and
    # round-trips the message before timing it.
    rc=0
    timeout 5 "$HARNESS" "${hexes[$i]}" 1 >/dev/null || rc=$?
    if ((rc != 0)); then
        log "error: GStreamer does not handle ${names[$i]} (harness rc $rc; 124 = hang)"
        exit 1
    fi
done

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
field() { # KEY < harness output
    awk -v k="$1" '$1 == k { print $2 }'
}
trim() { tr -d ' '; }

# --- Runs --------------------------------------------------------------------
echo "| MIKEY message | octets | GStreamer parse ns/op | mbms-keys owned parse ns/op | ratio | mbms-keys view parse ns/op | ratio | GStreamer parse+encode ns/op | mbms-keys parse+encode ns/op | ratio | target ≥ ${TARGET}× GStreamer parse rate (owned / view) |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
n_met=0
for i in "${!hexes[@]}"; do
    hex=${hexes[$i]}
    gp=() gpe=() op=() ope=() ov=() rp=() rpe=() rv=()
    for ((r = 1; r <= RUNS; r++)); do
        log "${names[$i]}: run $r/$RUNS"
        g=$(timeout 600 "$HARNESS" "$hex" "$ITERATIONS")
        o=$("$MBMS" bench codec --hex "$hex" --iterations "$ITERATIONS" --runs 1)
        g_p=$(field parse_ns_per_op <<<"$g")
        g_pe=$(field parse_encode_ns_per_op <<<"$g")
        read -r o_p o_pe < <(awk -F'|' '/`Message::decode`/ { print $5, $6 }' <<<"$o")
        o_v=$(awk -F'|' '/`MessageView::decode`/ { print $5 }' <<<"$o" | trim)
        gp+=("$g_p") gpe+=("$g_pe") op+=("$o_p") ope+=("$o_pe") ov+=("$o_v")
        rp+=("$(awk -v a="$g_p" -v b="$o_p" 'BEGIN { printf "%.3f", a / b }')")
        rpe+=("$(awk -v a="$g_pe" -v b="$o_pe" 'BEGIN { printf "%.3f", a / b }')")
        rv+=("$(awk -v a="$g_p" -v b="$o_v" 'BEGIN { printf "%.3f", a / b }')")
        log "  GStreamer $g_p / $g_pe ns, mbms-keys $o_p / $o_pe ns, view $o_v ns"
    done
    m_gp=$(printf '%s\n' "${gp[@]}" | median)
    m_gpe=$(printf '%s\n' "${gpe[@]}" | median)
    m_op=$(printf '%s\n' "${op[@]}" | median)
    m_ope=$(printf '%s\n' "${ope[@]}" | median)
    m_rp=$(printf '%s\n' "${rp[@]}" | median)
    m_rpe=$(printf '%s\n' "${rpe[@]}" | median)
    m_ov=$(printf '%s\n' "${ov[@]}" | median)
    m_rv=$(printf '%s\n' "${rv[@]}" | median)
    octets=$((${#hex} / 2))
    verdicts=()
    for r in "$m_rp" "$m_rv"; do
        if awk -v r="$r" -v t="$TARGET" 'BEGIN { exit !(r >= t) }'; then
            verdicts+=("met")
        else
            verdicts+=("**not met**")
        fi
    done
    if [[ ${verdicts[1]} == met ]]; then
        n_met=$((n_met + 1))
    fi
    printf '| %s | %d | %.1f | %.1f | %.2f× | %.1f | %.2f× | %.1f | %.1f | %.2f× | %s / %s |\n' \
        "${names[$i]}" "$octets" "$m_gp" "$m_op" "$m_rp" "$m_ov" "$m_rv" "$m_gpe" "$m_ope" "$m_rpe" \
        "${verdicts[0]}" "${verdicts[1]}"
done
echo
echo "($RUNS runs × $ITERATIONS iterations per side and message, both sides in every run; medians;"
echo "ratio = median of per-run GStreamer ns/op ÷ mbms-keys ns/op; gstmikey $GST_VERSION, gcc -O2;"
echo "parse includes freeing the parsed message on both sides; all round trips byte-identical)"
if ((n_met == ${#hexes[@]})); then
    echo "Target ≥ ${TARGET}× GStreamer's parse rate with the borrowed parse: **met** on all ${#hexes[@]} messages."
else
    echo "Target ≥ ${TARGET}× GStreamer's parse rate with the borrowed parse: **not met** (met on $n_met of ${#hexes[@]} messages)."
fi
