#!/usr/bin/env bash
# Rotation every second with QKD keys under "require" through an impaired path: the Madrid
# topology (four KMEs, keys relayed end to end), with the two hospital daemons reaching
# each other only through qshield-impair in ring-1, which loses 5 % of the datagrams each
# way and holds 2 % back behind the next 3. iperf3 runs SECS seconds. The stream never
# stalls (every one-second interval carries data), no key mismatch (no packet fails
# authentication, no handshake fails, both ends name the same QKD key_ID), "require"
# never falls back, and the key rotates at least every 2 s on average (13 to 18 times in
# 20 s were seen). Hard limit 5 s.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/../../scripts/lib/madrid.sh"
require_root
SECS=${SECS:-20}
# The relay sits in ring-1: hospital-a reaches it on section 1, hospital-b (routed through
# ring-2) on section 2.
RELAY_NS=$(madrid_ns r1)
RELAY_A_LISTEN=198.18.1.2:51821
RELAY_B_LISTEN=198.18.2.1:51821
RELAY_A_PEER=198.18.1.1:51820
RELAY_B_PEER=198.18.3.2:51820
MADRID_PEER_ENDPOINT_A=$RELAY_A_LISTEN   # what hospital-a names as hospital-b's endpoint
MADRID_PEER_ENDPOINT_B=$RELAY_B_LISTEN
madrid_make_network
start_relay --loss 5% --reorder 2%,3
# Hard limit 5 s (as in madrid.sh): 4 s for a rotation to finish through the loss. With
# 3 s (rotation_1s.sh's) the stream stalled in 3 of 10 runs on a machine loaded to 5 times
# its cores: the KME's answers took up to 2 s, a lost rotation handshake waits a 1 s
# retransmission, and the lower-keyed site ignores its peer's initiation while its own is
# in flight (see tests/core_lossy_start.rs).
madrid_up_daemons require 'rekey_after_seconds = "1s"
reject_after_seconds = "5s"'
wait_ping a 198.19.0.2 30 || { show_logs 60; tail -20 "$WORK"/kme-*.log >&2; fail "no tunnel through the relay"; }
rot0=$(peer_field a "p['rotations']")
iperf_run 198.19.0.2 "$SECS" -i 1 || { show_logs 60; fail "iperf3 failed: the stream broke"; }
empty=$(iperf_field "sum(1 for i in d['intervals'] if i['sum']['bytes'] == 0)")
rotations=$(( $(peer_field a "p['rotations']") - rot0 ))
sleep 1.2   # the relay's stats file is rewritten every second
log "iperf3 $SECS s: $(iperf_gbps) Gbit/s, $empty empty seconds, $rotations rotations"
log "$(relay_summary)"
for side in a b; do
    log "$side: handshakes $(peer_field "$side" "p['handshakes']"), drops $(peer_field "$side" "p['drops']"), qkd $(peer_field "$side" "{k: p['qkd'][k] for k in ('keys_consumed', 'failures', 'fallbacks')}")"
done
[[ $empty -eq 0 ]] || { show_logs 40; fail "$empty one-second intervals carried no data: the stream stalled"; }
for side in a b; do
    [[ $(peer_field "$side" "p['drops']['bad_tag']") == 0 ]] || fail "$side: packets failed authentication (key mismatch)"
    [[ $(peer_field "$side" "p['qkd']['fallbacks']") == 0 ]] || fail "$side: fell back without QKD under require"
    ! log_has "$side" "handshake failed" || { show_logs 40; fail "$side: a handshake failed"; }
done
# rotations are 1 s apart: read within 1 s
madrid_agreed_key_id 20 0.05 || fail "the two ends never named the same QKD key_ID (a $KEY_ID_A, b $KEY_ID_B)"
# A rotation's handshake is 5 datagrams: at 5 % loss it gets through at the first attempt
# 77 % of the time, and a retry waits a 1 s timeout; 13 to 18 rotations in 20 s were seen.
# At least one every 2 s on average.
((rotations >= SECS / 2)) || { show_logs 40; fail "only $rotations rotations in $SECS s (rekey every 1 s)"; }
[[ $(relay_field "d['a_to_b']['dropped_random'] > 0 and d['b_to_a']['reordered'] > 0") == True ]] \
    || fail "the relay did not impair the path"
log "PASS"
