#!/usr/bin/env bash
# scripts/demo.sh - the qshield demo.
#
# Default: the Madrid topology. Four nodes in network namespaces (hospital-a, ring-1, ring-2,
# hospital-b) joined by three "fiber sections" (4, 7 and 5 km); a KME at every node and a
# simulated CV-QKD device pair per section (Alice in one KME, Bob and the fiber in the next,
# the pulses and the GG02 messages as real traffic between the nodes; simulated physics, so
# NOT QKD-secured), keys relayed end to end through the ring nodes; a qshield daemon at each
# hospital with QKD policy "require" and short key budgets. The demo waits for the links'
# first keys, then runs iperf3 through the tunnel and prints, as they happen, the rotations
# with their QKD key_IDs, then each link's estimates (T, excess noise, SNR, beta, FER, key
# rate), the pools and the throughput. Everything is torn down at the end.
#
#   sudo scripts/demo.sh                      the Madrid topology
#   sudo scripts/demo.sh --attack ring-link   ... then Eve on the ring fiber: the link's
#                                             estimation aborts, relay stops, the tunnel
#                                             fails closed; Eve leaves and it recovers
#   sudo scripts/demo.sh --two-site           two sites, no KME (the plain hybrid tunnel)
#
# Installs what it needs first (scripts/install-deps.sh: iperf3, iproute2, nftables, ...).
# Environment: DURATION [10] seconds of iperf3; REKEY_SECONDS ["3s"]; REKEY_BYTES ["4GiB"];
# REJECT_SECONDS ["8s"] the hard limit; MADRID_SOURCE [cvqkd] or random (a CSPRNG).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
MODE=madrid
ATTACK=""
while (($#)); do
    case "$1" in
        --two-site) MODE=two-site ;;
        --attack)
            [[ ${2:-} == ring-link ]] || { echo "demo: --attack takes ring-link (Eve on the ring fiber)" >&2; exit 2; }
            ATTACK=ring-link; shift ;;
        -h|--help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "demo: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
[[ $MODE == madrid || -z $ATTACK ]] || { echo "demo: --attack needs the Madrid topology (not --two-site)" >&2; exit 2; }
say() { printf '\033[1m[demo]\033[0m %s\n' "$*"; }
[[ $(id -u) -eq 0 ]] || { echo "demo: run as root (network namespaces, TUN devices)" >&2; exit 1; }

bash scripts/install-deps.sh
say "building qshield (release)"
cargo build --release --quiet
export QSHIELD_BIN=$ROOT/target/release/qshield TAG=demo
DURATION=${DURATION:-10}
ROTATION="rekey_after_seconds = \"${REKEY_SECONDS:-3s}\"
rekey_after_bytes = \"${REKEY_BYTES:-4GiB}\"
reject_after_seconds = \"${REJECT_SECONDS:-8s}\""
export MADRID_SOURCE=${MADRID_SOURCE:-cvqkd}
source "$ROOT/scripts/lib/sites.sh"
source "$ROOT/scripts/lib/madrid.sh"

up_two_site() {
    say "two sites: $NS_A (underlay 198.18.0.1, overlay 198.19.0.1) <-> $NS_B (198.18.0.2, 198.19.0.2)"
    make_namespaces
    keygen a
    keygen b
    write_config a b "$ROTATION"
    write_config b a "$ROTATION"
    start_daemon a
    start_daemon b
}

up_madrid() {
    say "Madrid topology: hospital-a ── ring-1 ── ring-2 ── hospital-b (three fiber sections, 198.18.{1,2,3}.0/24)"
    if [[ $MADRID_SOURCE == cvqkd ]]; then
        say "a KME at every node; a simulated CV-QKD device pair per section (${MADRID_SECTION_KM[ha]}, ${MADRID_SECTION_KM[r1]}, ${MADRID_SECTION_KM[r2]} km; GG02, homodyne,"
        say "blocks of 2^21 pulses at 1 MBd, V_A chosen automatically; simulated: NOT QKD-secured); relay through the ring nodes"
        say "waiting for every link's first distilled keys (parameter estimation, LDPC reconciliation, privacy amplification)..."
    else
        say "a KME at every node; a QKD link per section (source: CSPRNG, NOT QKD); relay through the ring nodes"
    fi
    local t0=$SECONDS
    madrid_up require "$ROTATION"
    if [[ $MADRID_SOURCE == cvqkd ]]; then
        say "first keys on every link after $((SECONDS - t0)) s; the links (leader's side):"
        madrid_cvqkd_table
    fi
    say "site daemons at both hospitals: QKD policy \"require\"; keys rotate every ${REKEY_SECONDS:-3s}, hard limit ${REJECT_SECONDS:-8s}"
}

# Eve on the ring fiber: alarm, relay refused, fail closed; then she leaves and it recovers.
attack_ring_link() {
    say "Eve splices into the ring fiber (ring-1 -> ring-2) and intercept-resends every pulse"
    madrid_eve_on intercept-resend
    local t0=$SECONDS deadline=$((SECONDS + 60))
    until [[ $(madrid_link_field r1 r2 "c['alarm'] is not None" 2>/dev/null) == True ]]; do
        (( SECONDS < deadline )) || { tail -5 "$WORK/kme-r1.log" >&2; echo "demo: no alarm with Eve on the fiber" >&2; exit 1; }
        sleep 0.3
    done
    say "ALARM after $((SECONDS - t0)) s: the ring link's parameter estimation finds no key; ring-1 and ring-2 stop relaying:"
    madrid_cvqkd_table
    grep -h "cvqkd link ALARM" "$WORK/kme-r1.log" | tail -1 | sed 's/^/    ring-1 KME: /' | cut -c1-220
    say "the tunnel (QKD policy \"require\") keeps its current key until the hard limit, then fails closed:"
    local t1=$SECONDS
    deadline=$((SECONDS + 60))
    while ip netns exec "$NS_A" ping -c 1 -W 1 198.19.0.2 >/dev/null 2>&1; do
        printf '    %3d s after the alarm: traffic flows (current session)\n' $((SECONDS - t1))
        (( SECONDS < deadline )) || { echo "demo: traffic never stopped" >&2; exit 1; }
        sleep 1
    done
    say "traffic blocked $((SECONDS - t1)) s after the alarm; hospital-a's daemon says:"
    grep -h "no QKD key and the QKD policy is\|under alarm" "$WORK/a.log" | tail -2 | sed 's/^/    /' | cut -c1-220
    say "Eve leaves the fiber"
    madrid_eve_off
    t0=$SECONDS
    deadline=$((SECONDS + 60))
    until [[ $(madrid_link_field r1 r2 "c['alarm'] is None" 2>/dev/null) == True ]]; do
        (( SECONDS < deadline )) || { echo "demo: the alarm never cleared" >&2; exit 1; }
        sleep 0.3
    done
    say "alarm cleared $((SECONDS - t0)) s later (a clean block); waiting for the tunnel..."
    wait_ping a 198.19.0.2 60 || { show_logs 20; echo "demo: the tunnel did not recover" >&2; exit 1; }
    say "tunnel back $((SECONDS - t0)) s after Eve left:"
    ip netns exec "$NS_A" ping -c 3 -i 0.2 198.19.0.2 | sed 's/^/    /'
    madrid_cvqkd_table
}

# Prints each new session (epoch, role, QKD key_ID) from a daemon's log as it appears. One
# process (it follows the file itself), so stopping it by its PID leaves nothing behind.
follow_rotations() {
    exec python3 -u -c '
import re, sys, time
key = None
with open(sys.argv[1]) as log:
    while True:
        line = log.readline()
        if not line:
            time.sleep(0.1)
            continue
        m = re.search(r"QKD key delivered .*key_id=([0-9a-f-]+).*call=\"?(\w+)", line)
        if m:
            key = (m.group(1), m.group(2))
            continue
        m = re.search(r"session established .*epoch=(\d+) role=(\w+) qkd=(\w+)", line)
        if m:
            ts = line.split()[0][11:23]
            k = f"QKD key_ID {key[0]} ({key[1]})" if key and m.group(3) == "true" else "no QKD key"
            print(f"    {ts}  hospital-a: session {m.group(1):>3} as {m.group(2).lower():<9} {k}", flush=True)
' "$WORK/a.log"
}

if [[ $MODE == madrid ]]; then up_madrid; else up_two_site; fi
t0=$(date +%s.%N)
wait_ping a 198.19.0.2 20 || { show_logs 40; echo "demo: the tunnel did not come up" >&2; exit 1; }
say "tunnel up in $(python3 -c "print(f'{$(date +%s.%N)-$t0:.2f}')") s; ping through it:"
ip netns exec "$NS_A" ping -c 3 -i 0.2 198.19.0.2 | sed 's/^/    /'

say "iperf3 TCP for ${DURATION} s through the tunnel; rotations as they happen:"
follow_rotations &
FOLLOW_PID=$!
PIDS+=("$FOLLOW_PID")
iperf_server
ip netns exec "$NS_A" iperf3 -c 198.19.0.2 -t "$DURATION" -J >"$WORK/iperf.json"
sleep 0.5
kill "$FOLLOW_PID" 2>/dev/null || true
forget_pid "$FOLLOW_PID" 2>/dev/null || true
python3 - "$WORK/iperf.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))["end"]
print("\033[1m[demo]\033[0m throughput: %.2f Gbit/s received, %d TCP retransmits"
      % (d["sum_received"]["bits_per_second"] / 1e9, d["sum_sent"].get("retransmits", 0)))
PY
if [[ $MODE == madrid ]]; then
    if [[ $MADRID_SOURCE == cvqkd ]]; then
        say "CV-QKD links (estimates from each block's disclosed samples; leader's side):"
        madrid_cvqkd_table
    fi
    say "QKD link pools (every relayed key bit spends one pad bit on every section):"
    madrid_pools
fi
[[ -n $ATTACK ]] && attack_ring_link
say "status of hospital-a:"
"$QSHIELD" status --socket "$WORK/a.sock" | sed 's/^/    /'
say "tearing down (daemons and KMEs stopped, TUNs and namespaces removed)"
