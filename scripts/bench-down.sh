#!/usr/bin/env bash
# PROJECT_DOWN hook for peer-bench.sh (runs in the side's namespace after the iperf3 runs,
# before the daemons are killed): records the daemon's peak RSS (VmHWM) and, on side a,
# the idle RTT of 50 pings through the tunnel and over the plain veth, into
# $BENCH_OUT_DIR/extra.tsv (label from BENCH_LABEL).
set -uo pipefail
sock=$BENCH_OUT_DIR/qshield-$BENCH_SIDE.sock
pid=$("$QSHIELD" status --json --socket "$sock" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
printf '%s\trss_kib_%s\t%s\n' "${BENCH_LABEL:-main}" "$BENCH_SIDE" "$hwm" >>"$BENCH_OUT_DIR/extra.tsv"
if [[ $BENCH_SIDE == a ]]; then
    rtt() { ping -q -c 50 -i 0.02 "$1" | awk -F/ '/^rtt/ {print $5 * 1000}'; }
    printf '%s\trtt_us_tunnel\t%s\n' "${BENCH_LABEL:-main}" "$(rtt "$BENCH_PEER_OVERLAY")" >>"$BENCH_OUT_DIR/extra.tsv"
    printf '%s\trtt_us_veth\t%s\n' "${BENCH_LABEL:-main}" "$(rtt "$BENCH_PEER_UNDERLAY")" >>"$BENCH_OUT_DIR/extra.tsv"
fi
