#!/usr/bin/env bash
# The Madrid topology fed by the simulated CV-QKD device pairs (source = "cvqkd"), then an
# eavesdropper on the ring fiber: Eve (intercept-resend) is spliced into ring-1 -> ring-2.
# That link's parameter estimation aborts, both its KMEs raise the alarm and refuse to
# relay, and the tunnel (policy "require") fails closed at its hard limit. Eve leaves: the
# next clean block clears the alarm and the tunnel recovers by itself. The other two links
# never alarm. Short 1 km sections with small blocks keep it quick; the physics is the same.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/../../scripts/lib/madrid.sh"
require_root
MADRID_SOURCE=cvqkd
MADRID_SECTION_KM=([ha]=1 [r1]=1 [r2]=1)
MADRID_POOL_MAX_BITS=262144
MADRID_CVQKD='block_size = 262144
pe_samples = 131072
epsilon = 1e-6
frame_bits = 4096
va = "auto"
symbol_rate_hz = 1e6'
T_TRUE=0.955   # 1 km at 0.2 dB/km

madrid_up require 'rekey_after_seconds = "2s"
reject_after_seconds = "4s"'
wait_ping a 198.19.0.2 30 || { show_logs 60; tail -20 "$WORK"/kme-*.log >&2; fail "no tunnel over the CV-QKD links"; }
log "tunnel up; CV-QKD links (leader's side):"
madrid_cvqkd_table
for pair in "ha r1" "r1 r2" "r2 hb"; do
    set -- $pair
    ok=$(madrid_link_field "$1" "$2" "c['key_bits'] > 0 and c['alarm'] is None and abs(c['transmittance_estimate'] - $T_TRUE) < 0.02")
    [[ $ok == True ]] || fail "link $1-$2: no key, an alarm, or T^ far from $T_TRUE"
done
[[ $(madrid_link_field r1 r2 "l['source']") == "cvqkd simulator (NOT QKD-secured)" ]] || fail "the source is not labelled NOT QKD-secured"
grep -q 'key_id=' "$WORK/a.log" || fail "no session took a QKD key"

log "Eve splices into the ring fiber (intercept-resend)"
madrid_eve_on intercept-resend
deadline=$((SECONDS + 40))
until [[ $(madrid_link_field r1 r2 "c['alarm'] is not None") == True && $(madrid_link_field r2 r1 "c['alarm'] is not None") == True ]]; do
    (( SECONDS < deadline )) || { tail -20 "$WORK"/kme-r*.log "$WORK/eve.log" >&2; fail "no alarm on the ring link with Eve on it"; }
    sleep 0.3
done
t_alarm=$SECONDS
madrid_cvqkd_table
xi=$(madrid_link_field r1 r2 "c['excess_noise_estimate_snu']")
python3 -c "import sys; sys.exit(0 if $xi > 1.0 else 1)" || fail "estimated xi $xi: intercept-resend adds 2 SNU"
grep -q "eve: attacked a block" "$WORK/eve.log" || fail "Eve's log shows no attacked block"
grep -q "cvqkd link ALARM" "$WORK/kme-r1.log" || fail "ring-1's KME log does not name the alarm"
for pair in "ha r1" "r2 hb"; do
    set -- $pair
    [[ $(madrid_link_field "$1" "$2" "c['alarm'] is None") == True ]] || fail "link $1-$2 alarmed without Eve"
done

# No relay crosses the alarmed link, so no new key. The last key relayed before the alarm
# may still complete a handshake (its dec_keys needs no relay) and then lives 4 s (the hard
# limit): traffic must stop within 14 s of the alarm. Poll until a ping fails, then check
# the tunnel stays shut.
stopped=""
while :; do
    ip netns exec "$NS_A" ping -c 1 -W 1 198.19.0.2 >/dev/null 2>&1 || { stopped=$((SECONDS - t_alarm)); break; }
    ((SECONDS - t_alarm <= 14)) || break
    sleep 0.3
done
[[ -n $stopped ]] || { show_logs 40; fail "traffic still flows 14 s after the alarm (hard limit 4 s): not fail-closed"; }
if ip netns exec "$NS_A" ping -c 3 -i 0.3 -W 1 198.19.0.2 >/dev/null 2>&1; then
    show_logs 40; fail "traffic flowed again with Eve still on the fiber: not fail-closed"
fi
grep -q "under alarm" "$WORK/a.log" "$WORK/b.log" "$WORK"/kme-*.log || fail "nobody says the relay was refused under alarm"
log "fail closed ${stopped} s after the alarm (first failed ping); relay refused"

madrid_eve_off
deadline=$((SECONDS + 40))
until [[ $(madrid_link_field r1 r2 "c['alarm'] is None") == True && $(madrid_link_field r2 r1 "c['alarm'] is None") == True ]]; do
    (( SECONDS < deadline )) || { tail -20 "$WORK"/kme-r*.log >&2; fail "the alarm never cleared after Eve left"; }
    sleep 0.3
done
t0=$SECONDS
wait_ping a 198.19.0.2 30 || { show_logs 60; fail "did not recover after Eve left"; }
log "alarm cleared; tunnel back $((SECONDS - t0)) s later"
madrid_cvqkd_table
log "PASS"
