#!/usr/bin/env bash
# Rotation every second under full load, offloads on: rekey_after_seconds = "1s" while
# iperf3 TCP runs SECS seconds. The stream never stalls (every one-second interval carries
# data), the key rotates at least SECS-3 times, nothing fails authentication, and no packet
# is lost to a rotation (make-before-break): no no_session, key_expired or unknown_index drop.
source "$(dirname "$0")/lib.sh"
require_root
SECS=${SECS:-8}
bring_up 'rekey_after_seconds = "1s"
reject_after_seconds = "3s"'
tunnel_ok
rot0=$(peer_field a "p['rotations']")
iperf_run 198.19.0.2 "$SECS" || { show_logs; fail "iperf3 failed: the stream broke"; }
empty=$(iperf_field "sum(1 for i in d['intervals'] if i['sum']['bytes'] == 0)")
retrans=$(iperf_field "d['end']['sum_sent'].get('retransmits', 0)")
rotations=$(( $(peer_field a "p['rotations']") - rot0 ))
no_session=$(peer_field a "p['drops']['no_session']")
bad_tag=$(peer_field b "p['drops']['bad_tag']")
expired=$(peer_field b "p['drops']['key_expired']")
log "iperf3 $SECS s: $(iperf_gbps) Gbit/s, $retrans retransmits, $rotations rotations, no_session $no_session, key_expired $expired, bad_tag $bad_tag"
[[ $empty -eq 0 ]] || fail "$empty one-second intervals carried no data"
[[ $rotations -ge $((SECS - 3)) ]] || { show_logs; fail "only $rotations rotations in $SECS s"; }
[[ $bad_tag -eq 0 ]] || fail "$bad_tag packets failed authentication"
[[ $no_session -eq 0 ]] || fail "$no_session packets dropped for want of a session (a rotation lost them)"
[[ $expired -eq 0 ]] || fail "$expired packets refused under an expired key (the rekey missed the hard limit)"
unknown=$(( $(status_field a "d['drops']['unknown_index']") + $(status_field b "d['drops']['unknown_index']") ))
# (a late copy of a response, after a retransmission crossed it, is a stale_reply: no data)
stale=$(( $(status_field a "d['drops']['stale_reply']") + $(status_field b "d['drops']['stale_reply']") ))
log "unknown_index $unknown, stale_reply $stale"
[[ $unknown -eq 0 ]] || fail "$unknown data packets arrived under a session already dropped (unknown_index)"
log "PASS"
