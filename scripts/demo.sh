#!/usr/bin/env bash
# scripts/demo.sh - the qshield demo: two hospital sites in network namespaces joined by a
# veth "fiber", a qshield daemon at each site with real TUN devices, a tunnel with short key
# budgets so rotations are visible, iperf3 through the tunnel, then everything torn down.
#
# Prints the handshake, the throughput, and every key rotation seen (epoch, age, bytes).
# Installs its apt packages if missing (iperf3, iproute2, iputils-ping, nftables, python3).
# Environment: DURATION [10] seconds of iperf3; REKEY_BYTES ["256MiB"]; REKEY_SECONDS ["5s"];
#              CIPHER ["aes-256-gcm"]. Run as root: sudo scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
say() { printf '\033[1m[demo]\033[0m %s\n' "$*"; }
[[ $(id -u) -eq 0 ]] || { echo "demo: run as root (network namespaces, TUN devices)" >&2; exit 1; }

need=()
for pair in iperf3:iperf3 ip:iproute2 ping:iputils-ping nft:nftables python3:python3; do
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
source "$ROOT/scripts/lib/sites.sh"
NS_A=hospital-a NS_B=hospital-b

say "two sites: $NS_A (underlay 198.18.0.1, overlay 198.19.0.1) <-> $NS_B (198.18.0.2, 198.19.0.2)"
make_namespaces
keygen a
keygen b
say "identities: X25519 + ML-KEM-768 (public key of site A: $(cut -c1-32 "$WORK/a/public.key")…)"
rotation="rekey_after_bytes = \"${REKEY_BYTES:-256MiB}\"
rekey_after_seconds = \"${REKEY_SECONDS:-5s}\""
write_config a b "$rotation"
write_config b a "$rotation"
start_daemon a
start_daemon b
t0=$(date +%s.%N)
wait_ping a 198.19.0.2 15 || { show_logs; echo "demo: tunnel did not come up" >&2; exit 1; }
say "tunnel up in $(python3 -c "print(f'{$(date +%s.%N)-$t0:.2f}')") s; ping through it:"
ip netns exec "$NS_A" ping -c 3 -i 0.2 198.19.0.2 | sed 's/^/    /'

say "iperf3 TCP for ${DURATION} s through the tunnel (keys rotate every ${REKEY_SECONDS:-5s} or ${REKEY_BYTES:-256MiB})"
iperf_server
ip netns exec "$NS_A" iperf3 -c 198.19.0.2 -t "$DURATION" -J >"$WORK/iperf.json"
python3 - "$WORK/iperf.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))["end"]
print("    throughput: %.2f Gbit/s received, %d TCP retransmits" % (d["sum_received"]["bits_per_second"] / 1e9, d["sum_sent"].get("retransmits", 0)))
PY

say "rotations seen (from site A's log):"
grep -E "session established" "$WORK/a.log" | python3 -c '
import re, sys
for line in sys.stdin:
    m = re.search(r"epoch=(\d+).*role=(\w+)", line)
    ts = line.split()[0]
    if m: print(f"    {ts}  epoch {m.group(1):>3}  ({m.group(2)})")
'
say "status of site A:"
"$QSHIELD" status --socket "$WORK/a.sock" | sed 's/^/    /'
say "tearing down (daemons stopped with SIGTERM, TUNs and namespaces removed)"
