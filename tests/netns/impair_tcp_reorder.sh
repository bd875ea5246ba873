#!/usr/bin/env bash
# One TCP stream (iperf3, SECS seconds) through the tunnel while qshield-impair loses 1 %
# of the datagrams each way and holds 2 % back behind the next 3 (reordering), with 1 ms
# of delay. The stream never stalls: every one-second interval carries data. Prints the
# goodput and what the relay did.
source "$(dirname "$0")/lib.sh"
require_root
SECS=${SECS:-10}
bring_up_relayed "" --loss 1% --reorder 2%,3 --delay 1
tunnel_ok 30
iperf_run 198.19.0.2 "$SECS" -i 1 || { show_logs; fail "iperf3 failed: the stream broke"; }
empty=$(iperf_field "sum(1 for i in d['intervals'] if i['sum']['bytes'] == 0)")
slowest=$(iperf_field "round(min(i['sum']['bits_per_second'] for i in d['intervals'])/1e6, 1)")
retrans=$(iperf_field "d['end']['sum_sent'].get('retransmits', 0)")
sleep 1.2   # the relay's stats file is rewritten every second
log "iperf3 one stream $SECS s under 1 % loss + 2 % reordering (depth 3): goodput $(iperf_gbps) Gbit/s, slowest second $slowest Mbit/s, $retrans TCP retransmits"
log "$(relay_summary)"
[[ $(relay_field "d['a_to_b']['dropped_random'] > 0 and d['a_to_b']['reordered'] > 0") == True ]] \
    || fail "the relay neither lost nor reordered anything: the stream was not impaired"
[[ $empty -eq 0 ]] || { show_logs; fail "$empty one-second intervals carried no data: the stream stalled"; }
bad_tag=$(peer_field b "p['drops']['bad_tag']")
[[ $bad_tag -eq 0 ]] || fail "$bad_tag packets failed authentication"
log "PASS"
