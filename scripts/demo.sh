#!/usr/bin/env bash
# scripts/demo.sh - the qshield demo.
#
# Default: the Madrid topology. Four nodes in network namespaces (hospital-a, ring-1, ring-2,
# hospital-b) joined by three "fiber sections"; a KME at every node, a QKD link per section
# (fed by a CSPRNG labelled NOT QKD until the CV-QKD simulator plugs in), keys relayed end
# to end through the ring nodes; a qshield daemon at each hospital with QKD policy "require"
# and short key budgets. iperf3 runs through the tunnel while the demo prints, as they
# happen, the rotations with their QKD key_IDs, then the link pools and the throughput.
# Everything is torn down at the end.
#
#   sudo scripts/demo.sh               the Madrid topology
#   sudo scripts/demo.sh --two-site    two sites, no KME (the plain hybrid tunnel)
#
# Installs its apt packages if missing (iperf3, iproute2, iputils-ping, nftables, python3).
# Environment: DURATION [10] seconds of iperf3; REKEY_SECONDS ["3s"]; REKEY_BYTES ["4GiB"].
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
MODE=madrid
case "${1:-}" in
    "") ;;
    --two-site) MODE=two-site ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo: unknown argument '$1' (see --help)" >&2; exit 2 ;;
esac
say() { printf '\033[1m[demo]\033[0m %s\n' "$*"; }
[[ $(id -u) -eq 0 ]] || { echo "demo: run as root (network namespaces, TUN devices)" >&2; exit 1; }

need=()
for pair in iperf3:iperf3 ip:iproute2 ping:iputils-ping nft:nftables python3:python3 ss:iproute2; do
    command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
done
if ((${#need[@]})); then
    say "installing ${need[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
say "building qshield (release)"
cargo build --release --quiet
export QSHIELD_BIN=$ROOT/target/release/qshield TAG=demo
DURATION=${DURATION:-10}
ROTATION="rekey_after_seconds = \"${REKEY_SECONDS:-3s}\"
rekey_after_bytes = \"${REKEY_BYTES:-4GiB}\""
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
    say "a KME at every node; a QKD link per section (source: CSPRNG, NOT QKD); relay through the ring nodes"
    madrid_up require "$ROTATION"
    say "site daemons at both hospitals: QKD policy \"require\"; keys rotate every ${REKEY_SECONDS:-3s}"
}

# Prints each new session (epoch, role, QKD key_ID) from a daemon's log as it appears.
follow_rotations() {
    tail -n +1 -F "$WORK/a.log" 2>/dev/null | python3 -u -c '
import re, sys
key = None
for line in sys.stdin:
    m = re.search(r"QKD key delivered .*key_id=([0-9a-f-]+).*call=\"?(\w+)", line)
    if m:
        key = (m.group(1), m.group(2))
        continue
    m = re.search(r"session established .*epoch=(\d+) role=(\w+) qkd=(\w+)", line)
    if m:
        ts = line.split()[0][11:23]
        k = f"QKD key_ID {key[0]} ({key[1]})" if key and m.group(3) == "true" else "no QKD key"
        print(f"    {ts}  hospital-a: session {m.group(1):>3} as {m.group(2).lower():<9} {k}", flush=True)
'
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
python3 - "$WORK/iperf.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))["end"]
print("\033[1m[demo]\033[0m throughput: %.2f Gbit/s received, %d TCP retransmits"
      % (d["sum_received"]["bits_per_second"] / 1e9, d["sum_sent"].get("retransmits", 0)))
PY
if [[ $MODE == madrid ]]; then
    say "QKD link pools (every relayed key bit spends one pad bit on every section):"
    madrid_pools
fi
say "status of hospital-a:"
"$QSHIELD" status --socket "$WORK/a.sock" | sed 's/^/    /'
say "tearing down (daemons and KMEs stopped, TUNs and namespaces removed)"
