#!/usr/bin/env bash
# Persistent keepalive through the real daemons: a's peer entry for b has
# persistent_keepalive = "1s", b's for a has none. After one ping each way the tunnel is
# left idle. Status has no keepalive counter and no last-receive time; a keepalive is an
# authenticated data packet with no inner packet, so it shows as packets under the current
# key with no inner bytes: while idle, b's packets received from a grow (at least 4, within
# a deadline of 8 s, well before the 10 s passive keepalive could start) while b's inner
# bytes received from a stay put, and a's packets received from b do not move at all (b
# sends no keepalive of its own). Neither side starts a handshake meanwhile (same epoch),
# and neither spins: each daemon uses under IDLE_CPU_MAX_PERCENT of one CPU while idle.
source "$(dirname "$0")/lib.sh"
require_root
WANT=4
IDLE_CPU_MAX_PERCENT=${IDLE_CPU_MAX_PERCENT:-5}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
make_namespaces
keygen a
keygen b
write_config a b
write_config b a
echo 'persistent_keepalive = "1s"' >>"$WORK/a.toml"
start_daemon a
start_daemon b
tunnel_ok
# snap NAME: both sides' status documents at once (a first), as $WORK/NAME-{a,b}.json
snap() { status_json a >"$WORK/$1-a.json"; status_json b >"$WORK/$1-b.json"; }
# get NAME SIDE PYTHON_EXPR: over `p` (the side's peer) and `d` in snapshot NAME
get() { python3 -c "import json; d=json.load(open('$WORK/$1-$2.json')); p=d['peers'][0]; print($3)"; }
# the tunnel is idle from here: no test traffic until the end
snap before
t0=$(date +%s.%N)
cpu_a0=$(cpu_ticks "$PID_a")
cpu_b0=$(cpu_ticks "$PID_b")
deadline=$(($(date +%s%N) + 8 * 1000000000))
pkts_b0=$(get before b "p['current_key']['packets_received']")
while (($(date +%s%N) < deadline)); do
    (($(peer_field b "p['current_key']['packets_received']") - pkts_b0 >= WANT)) && break
    sleep 0.2
done
snap after
secs=$(python3 -c "import time; print(round(time.time() - $t0, 1))")
hz=$(getconf CLK_TCK)
for side in a b; do
    pid_var=PID_$side start_var=cpu_${side}0
    used=$(($(cpu_ticks "${!pid_var}") - ${!start_var}))
    percent=$(python3 -c "print(round(100 * $used / $hz / $secs, 1))")
    log "$side used $used CPU ticks ($percent % of one CPU) while idle"
    python3 -c "import sys; sys.exit(0 if $percent < $IDLE_CPU_MAX_PERCENT else 1)" \
        || fail "$side used $percent % of a CPU on an idle tunnel (a thread spins?)"
done
# grew SIDE PYTHON_EXPR: the expression's growth from snapshot before to after
grew() { echo $(($(get after "$1" "$2") - $(get before "$1" "$2"))); }
keepalives=$(grew b "p['current_key']['packets_received']")
sent=$(grew a "p['current_key']['packets_sent']")
bytes=$(grew b "p['total_bytes_received']")
kbytes=$(grew b "p['current_key']['bytes_received']")
from_b=$(grew a "p['current_key']['packets_received']")
udp=$(grew b "d['io']['udp']['received']")
log "idle for $secs s: a sent $sent packets under its key, b received $keepalives of them ($udp UDP datagrams) carrying $bytes inner bytes ($kbytes under the key); a received $from_b packets from b"
((keepalives >= WANT)) || { show_logs; fail "b received $keepalives packets from a in $secs s of idle tunnel with a's persistent_keepalive = 1s (want >= $WANT)"; }
((udp >= keepalives)) || fail "b counted $keepalives packets but only $udp UDP datagrams"
((bytes == 0 && kbytes == 0)) || fail "the idle packets carried $bytes inner bytes ($kbytes under the key): not keepalives"
((from_b == 0)) || fail "a received $from_b packets from b, which has no persistent keepalive and nothing to send"
for side in a b; do
    [[ $(get after $side "p['current_key']['epoch']") == $(get before $side "p['current_key']['epoch']") ]] \
        || fail "$side ran a handshake while idle (epoch $(get before $side "p['current_key']['epoch']") -> $(get after $side "p['current_key']['epoch']"))"
done
for side in a b; do
    [[ $(peer_field "$side" "sum(p['drops'].values())") -eq 0 ]] || fail "$side dropped packets of its peer: $(peer_field "$side" "p['drops']")"
done
tunnel_ok 5
log "PASS"
