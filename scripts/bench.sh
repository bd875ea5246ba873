#!/usr/bin/env bash
# scripts/bench.sh - qshield against plain veth and boringtun, side by side in one run.
#
# Runs scripts/peer-bench.sh (the side-by-side harness; override with PEER_BENCH=path) with the contenders
# "veth boringtun project", ROUNDS interleaved rounds (default 3), single-stream iperf3 TCP
# (MODES=fwd by default; add rev/udp with MODES="fwd rev udp"). Prints the harness's table,
# each daemon's peak RSS and the idle ping RTT through the tunnel next to plain veth
# (scripts/bench-down.sh), and the median qshield/boringtun and qshield/veth ratios. The
# harness's second table is every contender's ping RTT, idle and during the fwd runs
# (median and p99; PING_EVERY, IDLE_PINGS; TCP_RATE=500M for a load every contender carries).
# Extra phases, each a series of project-only harness runs, interleaved round by round:
#   ROTATION_ROUNDS [0]  fwd with rekey_after_seconds = "1s" against the same without
#   ABLATION_ROUNDS [0]  fwd with each offload off in turn (QSHIELD_OFFLOAD_DISABLE), and
#                        with offload = "off"
#
# Installs what it needs first (scripts/install-deps.sh --bench: the test packages,
# wireguard-tools, boringtun-cli from crates.io). Builds qshield in release mode.
# Environment: ROUNDS [3] RUNS [1] DURATION [10] MODES [fwd] PARALLEL [1] (iperf3 -P)
#              BENCH_CIPHER [aes-256-gcm] BENCH_ROTATION [unset: defaults] e.g. 'rekey_after_seconds = "1s"'
# Impairment mode: --impair "RELAY FLAGS" runs qshield-impair (release) in qb for the whole
# run with those flags (e.g. "--loss 1% --reorder 2%,3"; see qshield-impair --help), and
# both tunnels cross it (peer-bench.sh's MIDDLE_UP and PEER_ENDPOINT_A/B). Contenders are
# then "boringtun project" (plain veth does not cross the relay), and the summary is the
# qshield/boringtun single-stream goodput ratio under the same impairment, with the
# relay's counters.
# Root is required (namespaces, TUN). Usage: sudo scripts/bench.sh [--impair "RELAY FLAGS"]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
[[ $(id -u) -eq 0 ]] || { log "must run as root (namespaces, TUN)"; exit 1; }
IMPAIR_FLAGS=""
case "${1:-}" in
    --impair) [[ -n ${2:-} ]] || { log "--impair needs the relay's flags, e.g. --impair \"--loss 1% --reorder 2%,3\""; exit 2; }
              IMPAIR_FLAGS=$2 ;;
    "") ;;
    *) log "unknown argument '$1' (usage: scripts/bench.sh [--impair \"RELAY FLAGS\"])"; exit 2 ;;
esac

PEER_BENCH=${PEER_BENCH:-$ROOT/scripts/peer-bench.sh}
[[ -f $PEER_BENCH ]] || { log "peer-bench.sh not found at $PEER_BENCH (set PEER_BENCH=path)"; exit 1; }

bash scripts/install-deps.sh --bench
BORINGTUN=${BORINGTUN:-$(command -v boringtun-cli || echo "$HOME/.cargo/bin/boringtun-cli")}
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
if [[ -n $IMPAIR_FLAGS ]]; then
    # The relay in qb: qa's tunnel sends to :51830, qb's to :51831, each side's datagrams
    # leave the relay towards the other's tunnel port.
    export MIDDLE_UP="exec $ROOT/target/release/qshield-impair --a-listen 198.18.0.2:51830 --b-listen 198.18.0.2:51831 --a-peer 198.18.0.1:51820 --b-peer 198.18.0.2:51820 --stats $OUT_DIR/relay.json $IMPAIR_FLAGS"
    export PEER_ENDPOINT_A=198.18.0.2:51830 PEER_ENDPOINT_B=198.18.0.2:51831
    export CONTENDERS=${CONTENDERS:-"boringtun project"} RATIO_TO=${RATIO_TO:-"boringtun"}
    log "impairment mode: qshield-impair $IMPAIR_FLAGS between the tunnels"
fi
export CONTENDERS=${CONTENDERS:-"veth boringtun project"} RATIO_TO=${RATIO_TO:-"veth boringtun"}
export ROUNDS=${ROUNDS:-3} RUNS=${RUNS:-1} DURATION=${DURATION:-10} MODES=${MODES:-fwd} PARALLEL=${PARALLEL:-1}
export PROJECT_MTU=${PROJECT_MTU:-1420}
export PROJECT_UP_A="exec bash $ROOT/scripts/bench-side.sh" PROJECT_UP_B="exec bash $ROOT/scripts/bench-side.sh"
export PROJECT_DOWN_A="bash $ROOT/scripts/bench-down.sh" PROJECT_DOWN_B="bash $ROOT/scripts/bench-down.sh"
bash "$PEER_BENCH"
MAIN_OUT=$OUT_DIR
python3 - "$MAIN_OUT/extra.tsv" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
vals = lambda k: [float(v) for (_, key, v) in rows if key == k and v]
for k, unit in [("rss_kib_a", "MiB"), ("rss_kib_b", "MiB")]:
    if vals(k): print("qshield peak RSS side %s: max %.1f MiB over %d runs" % (k[-1], max(vals(k)) / 1024, len(vals(k))))
t, v = vals("rtt_us_tunnel"), vals("rtt_us_veth")
if t and v:
    print("idle ping RTT: tunnel %.0f us, veth %.0f us, difference %.0f us (medians)" % (
        statistics.median(t), statistics.median(v), statistics.median(t) - statistics.median(v)))
PY

# project_only LABEL ENV... : one project-only harness round with extra environment; prints
# the fwd Mbit/s and tunnel CPU s/GB.
project_only() {
    local label=$1; shift
    local out; out=$(mktemp -d "$MAIN_OUT/variant.XXXXXX")   # kept with the main results
    env "$@" BENCH_LABEL="$label" OUT_DIR="$out" CONTENDERS=project RATIO_TO= ROUNDS=1 MODES=fwd UDP_RATE=0 \
        bash "$PEER_BENCH" >"$out/log" 2>&1 || true
    python3 - "$out/results.tsv" "$label" <<'PY'
import csv, sys
rows = [r for r in csv.DictReader(open(sys.argv[1]), delimiter="\t") if r["mode"] == "fwd" and r["mbps"] != "fail"]
for r in rows:
    gb = float(r["bytes"]) / 1e9
    cpu = float(r["tunnel_cpu_s"]) / gb if gb else float("nan")
    print("%s\t%s\t%.2f" % (sys.argv[2], r["mbps"], cpu))
PY
}
summarize() {
    python3 -c '
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
labels = list(dict.fromkeys(r[0] for r in rows))
base = statistics.median(float(r[1]) for r in rows if r[0] == labels[0])
print("%-16s %10s %8s %12s" % ("variant", "fwd Mbit/s", "x_first", "tun CPU s/GB"))
for l in labels:
    m = statistics.median(float(r[1]) for r in rows if r[0] == l)
    c = statistics.median(float(r[2]) for r in rows if r[0] == l)
    print("%-16s %10.0f %8.2f %12.2f" % (l, m, m / base, c))' "$1"
}
if (( ${ROTATION_ROUNDS:-0} > 0 )); then
    log "rotation phase: $ROTATION_ROUNDS interleaved rounds, with and without rekey every second"
    : >"$MAIN_OUT/rotation.txt"
    for _ in $(seq "$ROTATION_ROUNDS"); do
        project_only no-rotation BENCH_ROTATION= >>"$MAIN_OUT/rotation.txt"
        project_only rotation-1s BENCH_ROTATION='rekey_after_seconds = "1s"' >>"$MAIN_OUT/rotation.txt"
    done
    summarize "$MAIN_OUT/rotation.txt"
fi
if (( ${ABLATION_ROUNDS:-0} > 0 )); then
    log "ablation phase: $ABLATION_ROUNDS interleaved rounds"
    : >"$MAIN_OUT/ablation.txt"
    for _ in $(seq "$ABLATION_ROUNDS"); do
        project_only all-on >>"$MAIN_OUT/ablation.txt"
        for lever in tun_tso tun_gro udp_gso udp_gro; do
            project_only "no-$lever" QSHIELD_OFFLOAD_DISABLE=$lever >>"$MAIN_OUT/ablation.txt"
        done
        project_only offload-off BENCH_OFFLOAD=off >>"$MAIN_OUT/ablation.txt"
    done
    summarize "$MAIN_OUT/ablation.txt"
fi
OUT_DIR=$MAIN_OUT

python3 - "$OUT_DIR/results.tsv" "$IMPAIR_FLAGS" <<'PY'
import csv, statistics, sys
rows = [r for r in csv.DictReader(open(sys.argv[1]), delimiter="\t") if r["mode"] == "fwd" and r["mbps"] != "fail"]
med = lambda c: statistics.median([float(r["mbps"]) for r in rows if r["contender"] == c] or [float("nan")])
q, b, v = med("project"), med("boringtun"), med("veth")
cpu = lambda c: statistics.median([float(r["tunnel_cpu_s"]) / (float(r["bytes"]) / 1e9) for r in rows if r["contender"] == c] or [float("nan")])
print("tunnel CPU s/GB: qshield %.2f, boringtun %.2f, ratio %.3f" % (cpu("project"), cpu("boringtun"), cpu("project") / cpu("boringtun")))
if sys.argv[2]:
    print("under impairment (qshield-impair %s): single-stream TCP goodput qshield %.0f Mbit/s, boringtun %.0f Mbit/s, qshield/boringtun ratio %.2f" % (sys.argv[2], q, b, q / b))
else:
    print("qshield/veth throughput ratio: %.3f" % (q / v))
    print("qshield/boringtun throughput ratio: %.2f" % (q / b))
PY
if [[ -n $IMPAIR_FLAGS && -f $OUT_DIR/relay.json ]]; then
    python3 - "$OUT_DIR/relay.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
for k in ("a_to_b", "b_to_a"):
    print("relay %s over the whole run: %s" % (k, ", ".join("%s %d" % kv for kv in d[k].items())))
PY
fi
