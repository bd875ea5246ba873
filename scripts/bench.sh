#!/usr/bin/env bash
# scripts/bench.sh - qshield against plain veth and boringtun, side by side in one run.
#
# Runs ../shared/bench/peer-bench.sh (override with PEER_BENCH=path) with the contenders
# "veth boringtun project", ROUNDS interleaved rounds (default 3), single-stream iperf3 TCP
# (MODES=fwd by default; add rev/udp with MODES="fwd rev udp"). Prints the harness's table
# and, as its last line, the median qshield/boringtun throughput ratio.
#
# Installs what it needs if missing: iperf3, iproute2, wireguard-tools (apt, without
# recommends), boringtun-cli (cargo install). Builds qshield in release mode.
# Environment: ROUNDS [3] RUNS [1] DURATION [10] MODES [fwd] PARALLEL [1]
#              BENCH_CIPHER [aes-256-gcm] BENCH_ROTATION [unset: defaults] e.g. 'rekey_after_seconds = "1s"'
# Root is required (namespaces, TUN). Usage: sudo scripts/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
[[ $(id -u) -eq 0 ]] || { log "must run as root (namespaces, TUN)"; exit 1; }

PEER_BENCH=${PEER_BENCH:-$ROOT/../shared/bench/peer-bench.sh}
[[ -f $PEER_BENCH ]] || { log "peer-bench.sh not found at $PEER_BENCH (set PEER_BENCH=path)"; exit 1; }

need_apt=()
for pair in iperf3:iperf3 ip:iproute2 wg:wireguard-tools ping:iputils-ping python3:python3 pgrep:procps; do
    command -v "${pair%%:*}" >/dev/null || need_apt+=("${pair#*:}")
done
if ((${#need_apt[@]})); then
    log "installing ${need_apt[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
BORINGTUN=${BORINGTUN:-$(command -v boringtun-cli || echo "$HOME/.cargo/bin/boringtun-cli")}
if [[ ! -x $BORINGTUN ]]; then
    log "installing boringtun-cli from crates.io (a few minutes)"
    cargo install boringtun-cli --locked --quiet
fi
log "building qshield (release)"
cargo build --release --quiet
QSHIELD=$ROOT/target/release/qshield

KEYS=$(mktemp -d /tmp/qshield-bench-keys.XXXXXX)
OUT_DIR=${OUT_DIR:-$(mktemp -d /tmp/qshield-bench.XXXXXX)}
trap 'rm -rf "$KEYS"' EXIT
"$QSHIELD" keygen --out-dir "$KEYS/a" >/dev/null
"$QSHIELD" keygen --out-dir "$KEYS/b" >/dev/null

export QSHIELD BORINGTUN OUT_DIR BENCH_KEYS=$KEYS
export BENCH_CIPHER=${BENCH_CIPHER:-aes-256-gcm} BENCH_ROTATION=${BENCH_ROTATION:-}
export CONTENDERS=${CONTENDERS:-"veth boringtun project"} RATIO_TO=${RATIO_TO:-"veth boringtun"}
export ROUNDS=${ROUNDS:-3} RUNS=${RUNS:-1} DURATION=${DURATION:-10} MODES=${MODES:-fwd} PARALLEL=${PARALLEL:-1}
export PROJECT_MTU=${PROJECT_MTU:-1420}
export PROJECT_UP_A="exec bash $ROOT/scripts/bench-side.sh" PROJECT_UP_B="exec bash $ROOT/scripts/bench-side.sh"
bash "$PEER_BENCH"

python3 - "$OUT_DIR/results.tsv" <<'PY'
import csv, statistics, sys
rows = [r for r in csv.DictReader(open(sys.argv[1]), delimiter="\t") if r["mode"] == "fwd" and r["mbps"] != "fail"]
med = lambda c: statistics.median([float(r["mbps"]) for r in rows if r["contender"] == c] or [float("nan")])
q, b, v = med("project"), med("boringtun"), med("veth")
print("qshield/veth throughput ratio: %.3f" % (q / v))
print("qshield/boringtun throughput ratio: %.2f" % (q / b))
PY
