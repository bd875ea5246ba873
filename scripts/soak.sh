#!/usr/bin/env bash
# scripts/soak.sh DURATION - the Madrid topology under steady load for DURATION (e.g. 3600,
# 90s, 60m, 1h): five KMEs relaying QKD keys, both hospital daemons under policy "require"
# rotating their key every second, and iperf3 running across the tunnel the whole time (at
# SOAK_IPERF_RATE, default 200M, so the machine keeps room for the rotations).
#
# Every SOAK_SAMPLE seconds (default 60) it records, for each process (the two daemons and
# the five KMEs), its resident memory and open file descriptors, and the pool levels of the
# three links, the QKD keys the daemons consumed, their drops and fallbacks. At the end it
# prints the table and checks that nothing grew: each process's RSS at the end is within
# SOAK_RSS_GROWTH_MAX_KB (default 16384) of its RSS at the first sample after the warm-up
# minute, its descriptors within 4, the pools still hold key, keys kept being consumed in
# every interval, and no fallback happened. Exit 0 when all hold.
#
# Needs root (namespaces, TUN devices). Installs what it needs (scripts/install-deps.sh),
# builds the release binary, and removes everything it made on exit. Not part of the test
# suite (it runs for as long as you ask); docs/testing.md has a one-hour table.
set -euo pipefail
cd "$(dirname "$0")/.."
usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; }
[[ ${1:-} == -h || ${1:-} == --help ]] && { usage; exit 0; }
[[ $# -eq 1 ]] || { usage >&2; exit 2; }
case $1 in
    *h) DURATION=$(( ${1%h} * 3600 )) ;;
    *m) DURATION=$(( ${1%m} * 60 )) ;;
    *s) DURATION=${1%s} ;;
    *) DURATION=$1 ;;
esac
[[ $DURATION =~ ^[0-9]+$ && $DURATION -ge 120 ]] || { echo "soak: DURATION must be at least 120 s (got '$1')" >&2; exit 2; }
SAMPLE=${SOAK_SAMPLE:-60}
RSS_GROWTH_MAX_KB=${SOAK_RSS_GROWTH_MAX_KB:-16384}
IPERF_RATE=${SOAK_IPERF_RATE:-200M}
bash scripts/install-deps.sh
echo "[soak] building the release binary" >&2
cargo build --release --quiet --bin qshield
export QSHIELD_BIN=$PWD/target/release/qshield
TAG=soak$$
source scripts/lib/sites.sh
source scripts/lib/madrid.sh
require_root
madrid_up require 'rekey_after_seconds = "1s"
reject_after_seconds = "3s"'
wait_ping a 198.19.0.2 30 || { show_logs 40; fail "no tunnel across the Madrid topology"; }
log "tunnel up; iperf3 at $IPERF_RATE for $DURATION s, rotation every second, a sample every $SAMPLE s"
ip netns exec "$NS_B" iperf3 -s -B 198.19.0.2 >"$WORK/iperf-server.log" 2>&1 &
PIDS+=($!)
sleep 0.5
ip netns exec "$NS_A" iperf3 -c 198.19.0.2 -t "$DURATION" -b "$IPERF_RATE" -i 60 \
    --connect-timeout 5000 >"$WORK/iperf.log" 2>&1 &
IPERF_PID=$!
PIDS+=("$IPERF_PID")

# one JSON line per sample: processes, pools, daemon counters
sample() {
    local t=$1 n pid pools="{}"
    local procs="{\"a\": $PID_a, \"b\": $PID_b"
    for n in "${MADRID_NODES[@]}"; do
        pid="KME_PID_$n"
        procs+=", \"kme-$n\": ${!pid}"
    done
    procs+="}"
    for n in ha r1 r2 r3; do
        pools=$(madrid_status "$n" 2>/dev/null | python3 -c "
import json, sys
p = json.loads(sys.argv[1]); d = json.load(sys.stdin)
for l in d['links']:
    if l['role'] == 'leader':
        p[d['kme_id'] + '>' + l['peer']] = [l['send_pool_bits'], l['receive_pool_bits']]
print(json.dumps(p))" "$pools" 2>/dev/null || echo "$pools")
    done
    python3 - "$t" "$procs" "$pools" "$(status_json a)" "$(status_json b)" <<'PY'
import json, os, sys
t, procs, pools, a, b = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3]), json.loads(sys.argv[4]), json.loads(sys.argv[5])
out = {"t": int(t), "rss_kb": {}, "fds": {}, "pools": pools}
for name, pid in procs.items():
    try:
        rss = next(int(l.split()[1]) for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS:"))
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        rss, fds = -1, -1
    out["rss_kb"][name], out["fds"][name] = rss, fds
for side, d in (("a", a), ("b", b)):
    p = d["peers"][0]
    out[side] = {"keys": p["qkd"]["keys_consumed"], "fallbacks": p["qkd"]["fallbacks"],
                 "rotations": p["rotations"], "drops": sum(p["drops"].values()) + sum(d["drops"].values())}
print(json.dumps(out))
PY
}

start=$SECONDS
next=$SAMPLE
: >"$WORK/samples.jsonl"
while (( SECONDS - start < DURATION )); do
    sleep 1
    if (( SECONDS - start >= next )); then
        kill -0 "$PID_a" && kill -0 "$PID_b" || { show_logs 40; fail "a daemon died"; }
        sample $((SECONDS - start)) >>"$WORK/samples.jsonl" || log "sample failed at $((SECONDS - start)) s"
        log "sample at $((SECONDS - start)) s: $(tail -1 "$WORK/samples.jsonl" | cut -c1-160)"
        next=$((next + SAMPLE))
    fi
done
wait "$IPERF_PID" || { tail -20 "$WORK/iperf.log" >&2; fail "iperf3 failed"; }
forget_pid "$IPERF_PID"
tail -4 "$WORK/iperf.log" >&2
python3 - "$WORK/samples.jsonl" "$RSS_GROWTH_MAX_KB" "$SAMPLE" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
limit, sample = int(sys.argv[2]), int(sys.argv[3])
if len(rows) < 3:
    sys.exit(f"soak: only {len(rows)} samples; run longer")
procs = list(rows[0]["rss_kb"])
links = sorted(rows[0]["pools"])
head = ["s"] + [f"{p} RSS kB/fds" for p in procs] + [f"{l} pool bits" for l in links] + ["keys a+b", "rotations a", "drops a+b", "fallbacks"]
print("| " + " | ".join(head) + " |")
print("|" + "---|" * len(head))
for r in rows:
    cells = [str(r["t"])] + [f"{r['rss_kb'][p]}/{r['fds'][p]}" for p in procs]
    cells += ["/".join(str(x) for x in r["pools"].get(l, ["?", "?"])) for l in links]
    cells += [str(r["a"]["keys"] + r["b"]["keys"]), str(r["a"]["rotations"]), str(r["a"]["drops"] + r["b"]["drops"]),
              str(r["a"]["fallbacks"] + r["b"]["fallbacks"])]
    print("| " + " | ".join(cells) + " |")
base, last = rows[1], rows[-1]   # the first sample after the warm-up minute, and the last
problems = []
for p in procs:
    grew = last["rss_kb"][p] - base["rss_kb"][p]
    if last["rss_kb"][p] < 0 or grew > limit:
        problems.append(f"{p}: RSS {base['rss_kb'][p]} -> {last['rss_kb'][p]} kB")
    if abs(last["fds"][p] - base["fds"][p]) > 4:
        problems.append(f"{p}: descriptors {base['fds'][p]} -> {last['fds'][p]}")
for l in links:
    if l in last["pools"] and min(last["pools"][l]) <= 0:
        problems.append(f"link {l}: a pool is empty at the end {last['pools'][l]}")
for prev, r in zip(rows, rows[1:]):
    if r["a"]["keys"] + r["b"]["keys"] <= prev["a"]["keys"] + prev["b"]["keys"]:
        problems.append(f"no QKD key consumed between {prev['t']} s and {r['t']} s")
if last["a"]["fallbacks"] + last["b"]["fallbacks"]:
    problems.append("fallbacks under require")
if problems:
    print("soak: FAIL\n  " + "\n  ".join(problems))
    sys.exit(1)
print(f"soak: PASS: {len(rows)} samples over {rows[-1]['t']} s; no process grew beyond {limit} kB or 4 descriptors, pools held, keys flowed every interval, no fallback")
PY
