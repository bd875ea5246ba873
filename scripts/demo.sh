#!/usr/bin/env bash
# scripts/demo.sh - the qshield demo.
#
# Default: the Madrid topology. Five nodes in network namespaces: the ring hospital-a,
# ring-1, ring-2, hospital-b (fiber sections of 4, 7 and 5 km) and a second path hospital-a,
# ring-3, hospital-b (9 and 8 km; an assumption: each hospital dual-homed). A KME at every
# node and a simulated CV-QKD device pair per section (Alice in one KME, Bob and the fiber in
# the next, the pulses and the GG02 messages as real traffic between the nodes; simulated
# physics, so NOT QKD-secured); keys relayed end to end over the path the KMEs compute from
# their link state (the ring while it has key and no alarm); a qshield daemon at each
# hospital with QKD policy "require" and short key budgets. The demo waits for the links'
# first keys, then runs iperf3 through the tunnel and prints, as they happen, the rotations
# with their QKD key_IDs, the path keys take, then each link's estimates (T, excess noise,
# SNR, beta, FER, key rate), the pools and the throughput. Everything is torn down at the end.
#
#   sudo scripts/demo.sh                      the Madrid topology
#   sudo scripts/demo.sh --attack ring-link   ... then Eve on the ring fiber: the link's
#                                             estimation aborts, its alarm goes up, keys are
#                                             rerouted over ring-3 and the tunnel keeps
#                                             rotating with QKD keys; a second Eve on the
#                                             second path: the tunnel fails closed; both
#                                             leave and everything recovers
#   sudo scripts/demo.sh --multipath          every key in two XOR shares, one over each
#                                             path: no ring node sees a key (combines with
#                                             --attack)
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
MULTIPATH=0
while (($#)); do
    case "$1" in
        --two-site) MODE=two-site ;;
        --attack)
            [[ ${2:-} == ring-link ]] || { echo "demo: --attack takes ring-link (Eve on the ring fiber)" >&2; exit 2; }
            ATTACK=ring-link; shift ;;
        --multipath) MULTIPATH=1 ;;
        -h|--help) sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "demo: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
[[ $MODE == madrid || -z $ATTACK ]] || { echo "demo: --attack needs the Madrid topology (not --two-site)" >&2; exit 2; }
[[ $MODE == madrid || $MULTIPATH == 0 ]] || { echo "demo: --multipath needs the Madrid topology (not --two-site)" >&2; exit 2; }
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
((MULTIPATH)) && export MADRID_RELAY='relay = "multipath"'
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
    say "Madrid topology: hospital-a ── ring-1 ── ring-2 ── hospital-b (the ring: 198.18.{1,2,3}.0/24)"
    say "            and: hospital-a ── ring-3 ── hospital-b (the second path: 198.18.{5,6}.0/24)"
    if [[ $MADRID_SOURCE == cvqkd ]]; then
        say "a KME at every node; a simulated CV-QKD device pair per section (ring ${MADRID_SECTION_KM[ha r1]}, ${MADRID_SECTION_KM[r1 r2]}, ${MADRID_SECTION_KM[r2 hb]} km; second path ${MADRID_SECTION_KM[ha r3]}, ${MADRID_SECTION_KM[r3 hb]} km;"
        say "GG02, homodyne, blocks of 2^21 pulses at 1 MBd, V_A chosen automatically; simulated: NOT QKD-secured)"
        say "waiting for every link's first distilled keys (parameter estimation, LDPC reconciliation, privacy amplification)..."
    else
        say "a KME at every node; a QKD link per section (source: CSPRNG, NOT QKD)"
    fi
    if ((MULTIPATH)); then
        say "relay: every key in two XOR shares, one over each path (no ring node sees a key)"
    else
        say "relay: over the path the KMEs compute from their link state (the ring, whose pools are larger, while it has key and no alarm)"
    fi
    local t0=$SECONDS
    madrid_up require "$ROTATION"
    if [[ $MADRID_SOURCE == cvqkd ]]; then
        say "first keys on every link after $((SECONDS - t0)) s; the links (leader's side):"
        madrid_cvqkd_table
    fi
    say "site daemons at both hospitals: QKD policy \"require\"; keys rotate every ${REKEY_SECONDS:-3s}, hard limit ${REJECT_SECONDS:-8s}"
}

# madrid_wait_alarm LINK WHAT: waits (60 s) until both ends of LINK have (not) raised the
# alarm: WHAT is "is not None" or "is None".
madrid_wait_alarm() {
    local l f deadline=$((SECONDS + 60))
    read -r l f <<<"$1"
    until [[ $(madrid_link_field "$l" "$f" "c['alarm'] $2" 2>/dev/null) == True &&
             $(madrid_link_field "$f" "$l" "c['alarm'] $2" 2>/dev/null) == True ]]; do
        (( SECONDS < deadline )) || { tail -5 "$WORK/kme-$l.log" >&2; echo "demo: link $1: alarm never '$2'" >&2; exit 1; }
        sleep 0.3
    done
}

# Eve on the ring fiber: alarm, keys rerouted over ring-3, the tunnel still rotating with QKD
# keys; Eve on the second path too: no path, fail closed; both leave and it recovers.
attack_ring_link() {
    local ring="hospital-a > ring-1 > ring-2 > hospital-b" second="hospital-a > ring-3 > hospital-b"
    ((MULTIPATH)) && { ring="$ring | $second"; }
    say "keys now take: $(madrid_last_path)"
    say "Eve splices into the ring fiber (ring-1 -> ring-2) and intercept-resends every pulse"
    madrid_eve_on intercept-resend "r1 r2"
    event "Eve on ring-1 → ring-2"
    local t0=$SECONDS
    madrid_wait_alarm "r1 r2" "is not None"
    event "alarm ring-1 → ring-2"
    say "ALARM after $((SECONDS - t0)) s: the ring link's parameter estimation finds no key; ring-1 and ring-2 stop relaying over it:"
    madrid_cvqkd_table
    grep -h "cvqkd link ALARM" "$WORK/kme-r1.log" | tail -1 | sed 's/^/    ring-1 KME: /' | cut -c1-220
    local alarm_at
    alarm_at=$(madrid_log_time "$WORK/kme-r1.log" "cvqkd link ALARM")
    if ((MULTIPATH)); then
        say "with shares over both paths and the ring under alarm, no two node-disjoint paths are left: keys are refused,"
        say "and the tunnel (QKD policy \"require\") fails closed at its hard limit rather than send a key whole"
        attack_fail_closed
        madrid_eve_off "r1 r2"
        event "Eve leaves"
    else
        say "the KMEs' link state carries the alarm; hospital-a's and hospital-b's KMEs route keys over ring-3:"
        local deadline=$((SECONDS + 60)) t_session=""
        until [[ $(madrid_last_path) == "$second" ]]; do
            (( SECONDS < deadline )) || { echo "demo: keys were never rerouted" >&2; exit 1; }
            sleep 0.2
        done
        event "keys over ring-3"
        local reroute_at
        reroute_at=$(madrid_log_time_after "$alarm_at" "relayed over kme-hospital-[ab] → kme-ring-3")
        deadline=$((SECONDS + 60))
        until t_session=$(madrid_first_session_over "$second" "$alarm_at") && [[ -n $t_session ]]; do
            (( SECONDS < deadline )) || { echo "demo: no session on a rerouted key" >&2; exit 1; }
            sleep 0.5
        done
        say "    alarm -> first key relayed over ring-3: $(python3 -c "print(f'{$reroute_at - $alarm_at:.1f}')") s; -> first QKD rotation on such a key: $t_session s"
        say "    keys now take: $(madrid_last_path); the tunnel keeps rotating with QKD keys:"
        sleep 6
        grep -h "session established" "$WORK/a.log" | tail -3 | sed 's/^/    /' | cut -c1-160
        ip netns exec "$NS_A" ping -c 3 -i 0.2 198.19.0.2 | tail -2 | sed 's/^/    /'
        say "a second Eve splices into the second path (ring-3 -> hospital-b)"
        madrid_eve_on intercept-resend "r3 hb"
        event "Eve on ring-3 → hospital-b"
        t0=$SECONDS
        madrid_wait_alarm "r3 hb" "is not None"
        event "alarm ring-3 → hospital-b"
        say "ALARM on the second path after $((SECONDS - t0)) s: no path is left for keys"
        attack_fail_closed
        say "both Eves leave the fibers"
        madrid_eve_off "r1 r2"
        madrid_eve_off "r3 hb"
        event "both Eves leave"
        madrid_wait_alarm "r3 hb" "is None"
    fi
    t0=$SECONDS
    madrid_wait_alarm "r1 r2" "is None"
    say "alarms cleared (a clean block on each link); waiting for the tunnel..."
    event "alarms cleared"
    wait_ping a 198.19.0.2 60 || { show_logs 20; echo "demo: the tunnel did not recover" >&2; exit 1; }
    event "tunnel back"
    say "tunnel back $((SECONDS - t0)) s after the alarms cleared:"
    ip netns exec "$NS_A" ping -c 3 -i 0.2 198.19.0.2 | sed 's/^/    /'
    local deadline=$((SECONDS + 60))
    until [[ $(madrid_last_path) == "$ring" ]]; do
        (( SECONDS < deadline )) || { echo "demo: keys never went back to the ring" >&2; exit 1; }
        sleep 0.5
    done
    say "keys take the ring again: $(madrid_last_path)"
    madrid_cvqkd_table
}

# The tunnel (policy "require") keeps its current key until the hard limit, then fails closed.
attack_fail_closed() {
    say "the tunnel (QKD policy \"require\") keeps its current key until the hard limit, then fails closed:"
    local t1=$SECONDS deadline=$((SECONDS + 60))
    while ip netns exec "$NS_A" ping -c 1 -W 1 198.19.0.2 >/dev/null 2>&1; do
        printf '    %3d s after the alarm: traffic flows (current session)\n' $((SECONDS - t1))
        (( SECONDS < deadline )) || { echo "demo: traffic never stopped" >&2; exit 1; }
        sleep 1
    done
    event "traffic blocked (fail closed)"
    say "traffic blocked $((SECONDS - t1)) s after the alarm; hospital-a's daemon says:"
    grep -h "no QKD key and the QKD policy is\|no route from\|node-disjoint" "$WORK/a.log" | tail -2 | sed 's/^/    /' | cut -c1-220
}

# madrid_log_time_after EPOCH PATTERN: the first time (Unix) after EPOCH that a line
# matching the regex PATTERN appears in either hospital's KME log.
madrid_log_time_after() {
    python3 -c "
import datetime, re, sys
since, pat = float(sys.argv[1]), re.compile(sys.argv[2])
best = None
for f in sys.argv[3:]:
    for line in open(f):
        if pat.search(line):
            t = datetime.datetime.fromisoformat(line.split()[0].replace('Z', '+00:00')).timestamp()
            if t >= since and (best is None or t < best):
                best = t
                break
print(best if best is not None else since)
" "$1" "$2" "$WORK/kme-ha.log" "$WORK/kme-hb.log"
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

# event TEXT: a line of the report's event list, at the time it happens.
event() { printf '%s %s\n' "$(date +%s.%N)" "$*" >>"$WORK/events"; }
: >"$WORK/events"

# The report's sampler: hospital-a's status and every KME's, once a second.
start_sampler() {
    local nodes=() n
    if [[ $MODE == madrid ]]; then
        for n in "${MADRID_NODES[@]}"; do
            nodes+=("$n=$(madrid_ns "$n"),${MADRID_KME_ADDR[$n]},kme-${MADRID_NAME[${MADRID_ASKER[$n]}]}")
        done
    fi
    python3 "$ROOT/scripts/lib/demo_sampler.py" "$WORK/samples.jsonl" "$QSHIELD" "$WORK/a.sock" \
        "$WORK/pki" "${KME_PORT:-8443}" "${nodes[@]}" &
    SAMPLER_PID=$!
    PIDS+=("$SAMPLER_PID")
}

if [[ $MODE == madrid ]]; then up_madrid; else up_two_site; fi
start_sampler
t0=$(date +%s.%N)
wait_ping a 198.19.0.2 20 || { show_logs 40; echo "demo: the tunnel did not come up" >&2; exit 1; }
event "tunnel up"
say "tunnel up in $(python3 -c "print(f'{$(date +%s.%N)-$t0:.2f}')") s; ping through it:"
ip netns exec "$NS_A" ping -c 3 -i 0.2 198.19.0.2 | sed 's/^/    /'

say "iperf3 TCP for ${DURATION} s through the tunnel; rotations as they happen:"
follow_rotations &
FOLLOW_PID=$!
PIDS+=("$FOLLOW_PID")
iperf_server
event "iperf3 starts"
ip netns exec "$NS_A" iperf3 -c 198.19.0.2 -t "$DURATION" -J >"$WORK/iperf.json"
event "iperf3 ends"
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
    say "QKD link pools (every relayed key bit spends one pad bit on every section it crosses):"
    madrid_pools
    say "the last key's path: $(madrid_last_path)"
    if ((MULTIPATH)); then
        say "in shares: what each KME saw of the last key (a ring node sees one share, never the key):"
        madrid_shares_seen
    fi
fi
[[ -n $ATTACK ]] && attack_ring_link
say "status of hospital-a:"
"$QSHIELD" status --socket "$WORK/a.sock" | sed 's/^/    /'
kill -TERM "$SAMPLER_PID" 2>/dev/null || true
wait "$SAMPLER_PID" 2>/dev/null || true
forget_pid "$SAMPLER_PID" 2>/dev/null || true
mkdir -p "$ROOT/target"
REPORT=$ROOT/target/demo-report.html
cp "$WORK/samples.jsonl" "$ROOT/target/demo-samples.jsonl"
cp "$WORK/events" "$ROOT/target/demo-events.txt"
cp "$WORK/a.log" "$ROOT/target/demo-a.log"
title="qshield demo: two sites"
[[ $MODE == madrid ]] && title="qshield demo: the Madrid topology"
[[ -n $ATTACK ]] && title+=", Eve on the ring"
((MULTIPATH)) && title+=", keys in shares"
python3 "$ROOT/scripts/lib/report.py" "$WORK/samples.jsonl" "$WORK/events" "$WORK/a.log" "$REPORT" "$title" >/dev/null
say "report (one HTML file, open it in a browser): $REPORT"
say "tearing down (daemons and KMEs stopped, TUNs and namespaces removed)"
