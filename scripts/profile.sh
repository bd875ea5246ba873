#!/usr/bin/env bash
# scripts/profile.sh - where the tunnel's CPU time goes: two release daemons in namespaces
# (tests/netns/lib.sh), single-stream iperf3 TCP through the tunnel for SECS seconds, and
# `perf record -g` of both daemons (by PID) in the middle of it. Prints the top symbols
# per thread. Env: SECS [10], MODE [fwd|rev], OFFLOAD [auto|off], QSHIELD_OFFLOAD_DISABLE.
# Root is required. Usage: sudo scripts/profile.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"
export QSHIELD_BIN=$ROOT/target/release/qshield TAG=${TAG:-prof$$} LOG_LEVEL=${LOG_LEVEL:-warn}
source "$ROOT/tests/netns/lib.sh"
require_root
command -v perf >/dev/null || fail "perf not installed"
SECS=${SECS:-10}
bring_up
tunnel_ok
rev=(); [[ ${MODE:-fwd} == rev ]] && rev=(-R)
iperf_server 198.19.0.2
ip netns exec "$NS_A" iperf3 -c 198.19.0.2 -t "$SECS" -J "${rev[@]}" >"$WORK/iperf.json" &
ipid=$!
PIDS+=("$ipid")
sleep 2
perf record -q -g -o "$WORK/perf.data" -p "$PID_a,$PID_b" -- sleep $((SECS - 4)) 2>/dev/null
wait "$ipid" || true
log "iperf3: $(iperf_gbps) Gbit/s"
perf report -i "$WORK/perf.data" --no-children --sort comm,sym --percent-limit ${PCT:-1.5} --stdio 2>/dev/null \
    | grep -v '^$' | grep -E '^ +[0-9]' | head -40
