#!/usr/bin/env bash
# Duplicates and datagrams older than the replay window never reach the TUN twice or late.
# With the tunnel up, qshield-impair is restarted to copy 50 % of the datagrams each way and
# to hold 1 % back behind the next 9000 (deeper than the replay window,
# REPLAY_WINDOW_PACKETS = 8128 in crates/qshield-core/src/constants.rs). Then:
# - ping a->b shows no "DUP!" (neither the echo nor the reply is delivered twice);
# - a stream of COUNT sequence-numbered UDP datagrams a->b inside the tunnel arrives with no
#   number twice; the ones missing are the held-back ones that came too old, and b's
#   daemon counts every copy and every too-old datagram as a replay drop: replay drops at
#   b = copies the relay made a->b + numbers missing (give or take the few keepalives).
source "$(dirname "$0")/lib.sh"
require_root
COUNT=${COUNT:-30000}
RATE=${RATE:-15000}      # datagrams per second
bring_up_relayed ""
tunnel_ok 15
stop_relay
start_relay --duplicate 50% --reorder 1%,9000,3000
replay0=$(peer_field b "p['drops']['replay']")

ip netns exec "$NS_A" ping -c 40 -i 0.02 198.19.0.2 >"$WORK/ping.txt" 2>&1 || { cat "$WORK/ping.txt" >&2; fail "ping through the duplicating relay failed"; }
dups=$(grep -c 'DUP!' "$WORK/ping.txt" || true)
[[ $dups -eq 0 ]] || { cat "$WORK/ping.txt" >&2; fail "ping saw $dups duplicated replies: a copy reached the TUN"; }
log "ping: 40 echoes, no DUP!"

ip netns exec "$NS_B" python3 - 198.19.0.2 5400 >"$WORK/udp-recv.txt" 2>"$WORK/udp-recv.err" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE: no loss in this socket
s.bind((sys.argv[1], int(sys.argv[2])))
s.settimeout(5)  # ends 5 s after the last datagram (held ones leave within 3 s)
seen, twice = set(), 0
try:
    while True:
        n = int.from_bytes(s.recv(2048)[:8], "big")
        if n in seen:
            twice += 1
        seen.add(n)
except socket.timeout:
    pass
print(len(seen), twice)
PY
rpid=$!
PIDS+=("$rpid")
sleep 0.5
ip netns exec "$NS_A" python3 - 198.19.0.2 5400 "$COUNT" "$RATE" <<'PY' || fail "UDP sender failed"
import socket, sys, time
addr, port, count, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
pad = bytes(192)
t0 = time.time()
for n in range(count):
    s.sendto(n.to_bytes(8, "big") + pad, (addr, port))
    if n % 100 == 99:
        ahead = t0 + (n + 1) / rate - time.time()
        if ahead > 0:
            time.sleep(ahead)
PY
wait "$rpid" || { cat "$WORK/udp-recv.err" >&2; fail "UDP receiver failed"; }
forget_pid "$rpid"
read -r unique twice <"$WORK/udp-recv.txt"
stop_relay   # final counters
missing=$((COUNT - unique))
replay=$(( $(peer_field b "p['drops']['replay']") - replay0 ))
copies=$(relay_field "d['a_to_b']['duplicated']")
held=$(relay_field "d['a_to_b']['reordered']")
log "$(relay_summary)"
log "UDP stream: $COUNT sent, $unique distinct received, $twice received twice, $missing missing; b's replay drops $replay (relay copies a->b $copies, held back a->b $held)"
[[ $twice -eq 0 ]] || fail "$twice datagrams reached the receiver twice"
((copies > COUNT / 3)) || fail "the relay made only $copies copies of $COUNT datagrams"
((missing > 0)) || fail "no datagram went missing: none was held beyond the replay window"
((missing <= held)) || fail "$missing datagrams missing but only $held were held back: the tunnel lost some"
slack=10   # keepalives and handshake datagrams among the copies and the held
((replay >= copies + missing - slack && replay <= copies + held + slack)) \
    || fail "replay drops $replay do not account for the copies ($copies) and the too-old datagrams ($missing missing)"
log "PASS"
