#!/usr/bin/env bash
# The Madrid topology fed by the simulated CV-QKD device pairs (source = "cvqkd"), then an
# eavesdropper on the ring fiber: Eve (intercept-resend) is spliced into ring-1 -> ring-2.
# That link's parameter estimation aborts and both its KMEs raise the alarm; their link
# state says so, hospital-a's KME routes keys over the second path (ring-3), and the tunnel
# (policy "require") keeps rotating with QKD keys. A second Eve on the second path
# (ring-3 -> hospital-b): no path is left and the tunnel fails closed at its hard limit.
# Both leave: the next clean blocks clear the alarms and the tunnel recovers by itself, its
# keys back on the ring. Links without Eve never alarm. Short 1 km sections with small
# blocks keep it quick; the physics is the same.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/../../scripts/lib/madrid.sh"
require_root
MADRID_SOURCE=cvqkd
MADRID_SECTION_KM=([ha r1]=1 [r1 r2]=1 [r2 hb]=1 [ha r3]=1 [r3 hb]=1)
MADRID_POOL_MAX_BITS=262144
# The second path's pools hold 64 keys of 256 bits: plenty for rotations every 2 s, and full
# within seconds, so the ring (filling towards larger pools) is soon the wider path.
MADRID_BACKUP_POOL_MAX_BITS=16384
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
for pair in "${MADRID_LINKS[@]}"; do
    set -- $pair
    ok=$(madrid_link_field "$1" "$2" "c['key_bits'] > 0 and c['alarm'] is None and abs(c['transmittance_estimate'] - $T_TRUE) < 0.02")
    [[ $ok == True ]] || fail "link $1-$2: no key, an alarm, or T^ far from $T_TRUE"
done
[[ $(madrid_link_field r1 r2 "l['source']") == "cvqkd simulator (NOT QKD-secured)" ]] || fail "the source is not labelled NOT QKD-secured"
grep -q 'key_id=' "$WORK/a.log" || fail "no session took a QKD key"

deadline=$((SECONDS + 30))
until [[ $(madrid_last_path) == "hospital-a > ring-1 > ring-2 > hospital-b" ]]; do
    (( SECONDS < deadline )) || fail "keys should take the ring once its pools are the larger, took $(madrid_last_path)"
    sleep 0.5
done
log "keys take the ring: $(madrid_last_path)"
qkd_ids() { (grep -ho 'key_id=[0-9a-f-]*' "$WORK/a.log" "$WORK/b.log" || true) | sort -u | wc -l; }
# The alarms of LINK's both ends are (not) raised: madrid_alarm "r1 r2" "is not None".
madrid_alarm() {
    local l f
    read -r l f <<<"$1"
    [[ $(madrid_link_field "$l" "$f" "c['alarm'] $2") == True && $(madrid_link_field "$f" "$l" "c['alarm'] $2") == True ]]
}

log "Eve splices into the ring fiber (intercept-resend)"
madrid_eve_on intercept-resend "r1 r2"
deadline=$((SECONDS + 40))
until madrid_alarm "r1 r2" "is not None"; do
    (( SECONDS < deadline )) || { tail -20 "$WORK"/kme-r*.log "$WORK/eve.log" >&2; fail "no alarm on the ring link with Eve on it"; }
    sleep 0.3
done
t_alarm=$SECONDS
ids_at_alarm=$(qkd_ids)
madrid_cvqkd_table
xi=$(madrid_link_field r1 r2 "c['excess_noise_estimate_snu']")
python3 -c "import sys; sys.exit(0 if $xi > 1.0 else 1)" || fail "estimated xi $xi: intercept-resend adds 2 SNU"
grep -q "eve: attacked a block" "$WORK/eve.log" || fail "Eve's log shows no attacked block"
grep -q "cvqkd link ALARM" "$WORK/kme-r1.log" || fail "ring-1's KME log does not name the alarm"
for pair in "ha r1" "r2 hb" "ha r3" "r3 hb"; do
    set -- $pair
    [[ $(madrid_link_field "$1" "$2" "c['alarm'] is None") == True ]] || fail "link $1-$2 alarmed without Eve"
done

# Rerouted: keys go over ring-3 and the tunnel keeps rotating with QKD keys (rotations every
# 2 s, hard limit 4 s: traffic never stops).
t_reroute="" t_rotation=""
while :; do
    [[ -z $t_reroute && $(madrid_last_path) == "hospital-a > ring-3 > hospital-b" ]] && t_reroute=$((SECONDS - t_alarm))
    [[ -n $t_reroute && -z $t_rotation ]] && (( $(qkd_ids) > ids_at_alarm )) && t_rotation=$((SECONDS - t_alarm))
    (( $(qkd_ids) >= ids_at_alarm + 3 )) && [[ -n $t_reroute ]] && break
    (( SECONDS - t_alarm <= 30 )) || { show_logs 40; tail -20 "$WORK"/kme-ha.log >&2; fail "no QKD rotations over ring-3 within 30 s of the alarm (last path $(madrid_last_path))"; }
    ip netns exec "$NS_A" ping -c 1 -W 1 198.19.0.2 >/dev/null 2>&1 || { show_logs 40; fail "traffic stopped with the second path free"; }
    sleep 0.3
done
[[ $(status_field a "d['peers'][0]['qkd']['fallbacks']") == 0 ]] || fail "a fallback under require"
log "alarm -> keys over ring-3 within ${t_reroute} s -> first QKD rotation with them within ${t_rotation} s; $(( $(qkd_ids) - ids_at_alarm )) QKD keys since the alarm"

log "a second Eve on the second path (ring-3 -> hospital-b)"
madrid_eve_on intercept-resend "r3 hb"
deadline=$((SECONDS + 40))
until madrid_alarm "r3 hb" "is not None"; do
    (( SECONDS < deadline )) || { tail -20 "$WORK"/kme-r3.log "$WORK/eve2.log" >&2; fail "no alarm on the second path with Eve on it"; }
    sleep 0.3
done
t_alarm=$SECONDS

# No path is left, so no new key. The last key relayed before the alarm may still complete
# a handshake (its dec_keys needs no relay) and then lives 4 s (the hard limit): traffic
# must stop within 14 s of the alarm. Poll until a ping fails, then check it stays shut.
stopped=""
while :; do
    ip netns exec "$NS_A" ping -c 1 -W 1 198.19.0.2 >/dev/null 2>&1 || { stopped=$((SECONDS - t_alarm)); break; }
    ((SECONDS - t_alarm <= 14)) || break
    sleep 0.3
done
[[ -n $stopped ]] || { show_logs 40; fail "traffic still flows 14 s after both paths' alarms (hard limit 4 s): not fail-closed"; }
if ip netns exec "$NS_A" ping -c 3 -i 0.3 -W 1 198.19.0.2 >/dev/null 2>&1; then
    show_logs 40; fail "traffic flowed again with Eve on both paths: not fail-closed"
fi
grep -q "no route from 'kme-hospital-a' to 'kme-hospital-b'" "$WORK/a.log" "$WORK/b.log" "$WORK"/kme-*.log || fail "nobody says no path is left"
log "fail closed ${stopped} s after the second alarm (first failed ping); no path for keys"

madrid_eve_off "r1 r2"
madrid_eve_off "r3 hb"
deadline=$((SECONDS + 40))
until madrid_alarm "r1 r2" "is None" && madrid_alarm "r3 hb" "is None"; do
    (( SECONDS < deadline )) || { tail -20 "$WORK"/kme-r*.log >&2; fail "the alarms never cleared after Eve left"; }
    sleep 0.3
done
t0=$SECONDS
wait_ping a 198.19.0.2 30 || { show_logs 60; fail "did not recover after Eve left"; }
log "alarms cleared; tunnel back $((SECONDS - t0)) s later"
deadline=$((SECONDS + 20))
until [[ $(madrid_last_path) == "hospital-a > ring-1 > ring-2 > hospital-b" ]]; do
    (( SECONDS < deadline )) || fail "keys never went back to the ring (last path $(madrid_last_path))"
    sleep 0.5
done
log "keys back on the ring"
madrid_cvqkd_table
log "PASS"
