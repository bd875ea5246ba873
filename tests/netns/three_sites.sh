#!/usr/bin/env bash
# Three sites a, b, c (underlay 198.18.0.1-3 on one bridge, overlay 198.19.0.1-3), each
# daemon with the other two as peers, routed by allowed_ips (198.19.0.n/32 each).
# 1. Ping over the tunnel a<->b.
# 2. Routing among several peers: 20 pings of 1000 bytes a->c (the first traffic a routes to
#    c) all arrive at c as site-a's (c's site-a inner bytes grow by 20 x 1028, its site-b's
#    do not); a sends none of it to b (a's site-b bytes sent and b's site-a bytes received do
#    not move). Then pings c->a, b<->c; no peer drops at any site.
# 3. kill -9 of c's daemon while a pings c and b: every a->b ping is answered, and within a
#    deadline a's status shows site-c failing (a handshake in progress, nothing received)
#    while site-b stays healthy (no handshake in progress, same epoch and handshake count as
#    before the kill, no drops).
# 4. c restarted: pings c<->a and c<->b work again, a's site-c has a new session and no
#    handshake in progress, and a's session with b is still the one it had before the kill.
source "$(dirname "$0")/lib.sh"
require_root
PINGS=20
PING_BYTES=1000
INNER_BYTES=$((PING_BYTES + 8 + 20)) # ICMP and IPv4 headers
bring_up_three_sites
wait_ping a 198.19.0.2 15 || { show_logs; fail "no ping a->b over the tunnel"; }
wait_ping b 198.19.0.1 5 || { show_logs; fail "no ping b->a over the tunnel"; }
log "ping a<->b: ok"

# 2. a->c goes to c, and only to c
sent_ab() { peer_named a site-b "p['total_bytes_sent']"; }
sent_ac() { peer_named a site-c "p['total_bytes_sent']"; }
recv_ba() { peer_named b site-a "p['total_bytes_received']"; }
recv_ca() { peer_named c site-a "p['total_bytes_received']"; }
recv_cb() { peer_named c site-b "p['total_bytes_received']"; }
ab0=$(sent_ab) ac0=$(sent_ac) ba0=$(recv_ba) ca0=$(recv_ca) cb0=$(recv_cb)
replies=$(ip netns exec "$NS_A" ping -c "$PINGS" -i 0.05 -W 2 -s "$PING_BYTES" -q 198.19.0.3 |
    sed -n 's/.* \([0-9]*\) received.*/\1/p' || true)
ab=$(($(sent_ab) - ab0)) ac=$(($(sent_ac) - ac0)) ba=$(($(recv_ba) - ba0))
cb=$(($(recv_cb) - cb0))
# c counts as it receives: poll for the last of them, with a deadline
deadline=$(($(date +%s%N) + 3 * 1000000000))
while (($(recv_ca) - ca0 < PINGS * INNER_BYTES && $(date +%s%N) < deadline)); do sleep 0.1; done
ca=$(($(recv_ca) - ca0))
log "$PINGS pings a->c ($INNER_BYTES B each), ${replies:-0} answered: a sent $ac B to site-c and $ab B to site-b; c received $ca B from site-a and $cb B from site-b; b received $ba B from site-a"
((ab == 0 && ba == 0)) || { show_logs; fail "traffic for c went to b: a sent $ab B to site-b, b received $ba B from site-a"; }
((ca == PINGS * INNER_BYTES && ac == PINGS * INNER_BYTES)) \
    || fail "a sent $ac B to site-c, c received $ca B as site-a's (want $((PINGS * INNER_BYTES)) each)"
((cb == 0)) || fail "c counted $cb B of a's pings as site-b's"
[[ ${replies:-0} -eq $PINGS ]] || fail "${replies:-0} of $PINGS pings a->c answered"
wait_ping c 198.19.0.1 5 || { show_logs; fail "no ping c->a over the tunnel"; }
wait_ping b 198.19.0.3 5 || { show_logs; fail "no ping b->c over the tunnel"; }
wait_ping c 198.19.0.2 5 || { show_logs; fail "no ping c->b over the tunnel"; }
for side in a b c; do
    [[ $(status_field "$side" "sum(sum(p['drops'].values()) for p in d['peers'])") -eq 0 ]] \
        || fail "$side dropped packets of its peers: $(status_field "$side" "[(p['name'], p['drops']) for p in d['peers']]")"
done
log "routing by allowed_ips among two peers: ok"

# 3. c dies; a's session with b does not notice
epoch_ab=$(peer_named a site-b "p['current_key']['epoch']")
hs_ab=$(peer_named a site-b "p['handshakes']")
epoch_ac=$(peer_named a site-c "p['current_key']['epoch']")
recv_ac0=$(peer_named a site-c "p['total_bytes_received']")
old_c=$PID_c
kill -KILL "$old_c"
wait_exit "$old_c" 3 || fail "daemon c survived kill -9"
wait "$old_c" 2>/dev/null || true
forget_pid "$old_c"
t0=$(date +%s.%N)
deadline=$(($(date +%s%N) + 30 * 1000000000))
rounds=0
failing=False
while (($(date +%s%N) < deadline)); do
    ip netns exec "$NS_A" ping -c 1 -W 1 198.19.0.3 >/dev/null 2>&1 && fail "a ping a->c was answered with c's daemon dead"
    ip netns exec "$NS_A" ping -c 1 -W 2 198.19.0.2 >/dev/null 2>&1 || { show_logs; fail "a ping a->b went unanswered while c was down (round $rounds)"; }
    rounds=$((rounds + 1))
    failing=$(peer_named a site-c "p['handshake_in_progress']")
    [[ $failing == True ]] && break
done
secs=$(python3 -c "import time; print(round(time.time() - $t0, 1))")
status_json a >"$WORK/a-down.json"
"$QSHIELD" status --socket "$WORK/a.sock" >&2
[[ $failing == True ]] || { show_logs; fail "a's status shows no handshake in progress for site-c $secs s after c died"; }
python3 - "$WORK/a-down.json" "$epoch_ab" "$hs_ab" "$recv_ac0" <<'PY' || { show_logs; fail "a's status with c down"; }
import json, sys
d = json.load(open(sys.argv[1]))
epoch_ab, hs_ab, recv_ac0 = map(int, sys.argv[2:5])
p = {q["name"]: q for q in d["peers"]}
b, c = p["site-b"], p["site-c"]
assert c["handshake_in_progress"] and c["total_bytes_received"] == recv_ac0, c
assert not b["handshake_in_progress"], f"site-b: handshake in progress {b}"
assert (b["current_key"]["epoch"], b["handshakes"]) == (epoch_ab, hs_ab), \
    f"site-b's session changed: epoch {epoch_ab} -> {b['current_key']['epoch']}, handshakes {hs_ab} -> {b['handshakes']}"
assert sum(b["drops"].values()) == 0, b["drops"]
PY
log_has a 'peer="site-c" reason=DeadPeer' || fail "a did not log a dead-peer handshake for site-c"
wait_ping b 198.19.0.1 2 || { show_logs; fail "no ping b->a with c down"; }
log "c killed (pid $old_c): after $secs s ($rounds rounds of pings a->c, a->b) a's site-c is failing (handshake in progress, nothing received), site-b healthy (epoch $epoch_ab, every a->b ping answered)"

# 4. c comes back
t0=$(date +%s.%N)
start_daemon c
wait_ping c 198.19.0.1 10 || { show_logs; fail "no ping c->a after c restarted"; }
wait_ping a 198.19.0.3 5 || { show_logs; fail "no ping a->c after c restarted"; }
wait_ping c 198.19.0.2 5 || { show_logs; fail "no ping c->b after c restarted"; }
wait_ping b 198.19.0.3 5 || { show_logs; fail "no ping b->c after c restarted"; }
secs=$(python3 -c "import time; print(round(time.time() - $t0, 1))")
deadline=$(($(date +%s%N) + 10 * 1000000000))
while [[ $(peer_named a site-c "p['handshake_in_progress']") == True ]] && (($(date +%s%N) < deadline)); do sleep 0.2; done
[[ $(peer_named a site-c "p['handshake_in_progress']") == False ]] || fail "a still runs a handshake with site-c after c came back"
new_epoch_ac=$(peer_named a site-c "p['current_key']['epoch']")
((new_epoch_ac > epoch_ac)) || fail "a's session with c is still epoch $new_epoch_ac after c restarted"
[[ $(peer_named a site-b "p['current_key']['epoch']") == "$epoch_ab" ]] \
    || fail "a's session with b changed while c restarted (epoch $epoch_ab -> $(peer_named a site-b "p['current_key']['epoch']"))"
log "c restarted as pid $PID_c: pings c<->a, c<->b after $secs s; a's site-c at epoch $new_epoch_ac (was $epoch_ac), site-b still epoch $epoch_ab"
log "PASS"
