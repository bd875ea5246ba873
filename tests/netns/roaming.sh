#!/usr/bin/env bash
# Roaming through the real daemons, and a replay from a new address that must not roam.
# 1. Site a is re-addressed: 198.18.0.11 is added to its veth and 198.18.0.1 removed (the
#    new address promoted, so a's kernel now sends from .11 and nothing answers at .1). a's
#    next authenticated datagram moves b's endpoint for a to 198.18.0.11:51820 (b's status),
#    and traffic flows both ways again (ping, then an 8 MiB TCP transfer checked by SHA-256).
# 2. A genuine data datagram of a's is captured on a's veth (AF_PACKET) and sent to b again,
#    5 times, from another address and port in a's namespace (198.18.0.12:40000): b counts
#    5 replay drops and its endpoint for a stays 198.18.0.11:51820; the tunnel still works.
source "$(dirname "$0")/lib.sh"
require_root
REPLAYS=5
bring_up
tunnel_ok
endpoint_at_b() { peer_field b "p['endpoint']"; }
[[ $(endpoint_at_b) == 198.18.0.1:51820 ]] || fail "b's endpoint for a before roaming: $(endpoint_at_b)"

# 1. roaming
ip netns exec "$NS_A" sysctl -qw net.ipv4.conf.veth0.promote_secondaries=1
ip -n "$NS_A" addr add 198.18.0.11/24 dev veth0
ip -n "$NS_A" addr del 198.18.0.1/24 dev veth0
src=$(ip -n "$NS_A" -o route get 198.18.0.2 | sed -n 's/.* src \([0-9.]*\).*/\1/p')
[[ $src == 198.18.0.11 ]] || fail "a's kernel would send to b from '$src', not 198.18.0.11"
! ip -n "$NS_A" -o addr show dev veth0 | grep -qF 198.18.0.1/ || fail "198.18.0.1 is still on a's veth"
log "a re-addressed: 198.18.0.1 gone, sends from $src"
wait_ping a 198.19.0.2 10 || { show_logs; fail "no ping a->b after a moved to 198.18.0.11"; }
[[ $(endpoint_at_b) == 198.18.0.11:51820 ]] || { show_logs; fail "b's endpoint for a after roaming: $(endpoint_at_b) (want 198.18.0.11:51820)"; }
log_has b "endpoint=198.18.0.11:51820" || { show_logs; fail "b did not log the endpoint change"; }
wait_ping b 198.19.0.1 5 || { show_logs; fail "no ping b->a after a roamed"; }
transfer_sha 8 198.19.0.2
log "b's endpoint for a is now $(endpoint_at_b); ping both ways and TCP work"

# 2. an authentic datagram replayed from another address. Capture first (pinging a->b until
# a data datagram of a's is seen), then replay with the tunnel quiet, so that no genuine
# datagram of a's can follow the replays and move the endpoint back before b's status is read.
ip -n "$NS_A" addr add 198.18.0.12/24 dev veth0
replay0=$(peer_field b "p['drops']['replay']")
ip netns exec "$NS_A" python3 - "$WORK/sample.bin" >"$WORK/captured.txt" <<'PY' &
import socket, struct, sys, time
ETH_P_ALL = 0x0003          # outgoing frames reach ETH_P_ALL taps only
cap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
cap.bind(("veth0", 0))
cap.settimeout(15)
deadline = time.time() + 15
while time.time() < deadline:
    frame, info = cap.recvfrom(65535)
    if info[2] != socket.PACKET_OUTGOING or frame[12:14] != b"\x08\x00":
        continue
    ip = frame[14:]
    # a's own datagrams to b, from a's current address
    if len(ip) < 28 or ip[9] != 17 or ip[12:16] != bytes([198, 18, 0, 11]) or ip[16:20] != bytes([198, 18, 0, 2]):
        continue
    ihl = (ip[0] & 0x0F) * 4
    dport = struct.unpack("!H", ip[ihl + 2: ihl + 4])[0]
    payload = ip[ihl + 8:]
    if dport == 51820 and len(payload) > 32 and payload[0] == 4:
        open(sys.argv[1], "wb").write(payload)
        print(len(payload), "byte data datagram, index", struct.unpack("<I", payload[4:8])[0],
              "counter", struct.unpack("<Q", payload[8:16])[0])
        sys.exit(0)
print("none")
sys.exit(1)
PY
sniffer=$!
for _ in $(seq 30); do
    kill -0 "$sniffer" 2>/dev/null || break
    ip netns exec "$NS_A" ping -c 1 -W 1 198.19.0.2 >/dev/null 2>&1 || true
    sleep 0.2
done
wait "$sniffer" || fail "could not capture a data datagram of a's to replay: $(cat "$WORK/captured.txt")"
log "captured a's $(cat "$WORK/captured.txt")"
ip netns exec "$NS_A" python3 - "$WORK/sample.bin" "$REPLAYS" <<'PY' || fail "could not send the replays"
import socket, sys
sample, count = open(sys.argv[1], "rb").read(), int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("198.18.0.12", 40000))
for _ in range(count):
    s.sendto(sample, ("198.18.0.2", 51820))
PY
deadline=$(($(date +%s%N) + 5 * 1000000000))
while (($(date +%s%N) < deadline)); do
    (($(peer_field b "p['drops']['replay']") - replay0 >= REPLAYS)) && break
    sleep 0.1
done
replay=$(($(peer_field b "p['drops']['replay']") - replay0))
endpoint=$(endpoint_at_b)
log "replayed it $REPLAYS times from 198.18.0.12:40000; b: $replay replay drops for a, endpoint for a $endpoint"
[[ $endpoint == 198.18.0.11:51820 ]] || { show_logs; fail "a replayed datagram from 198.18.0.12:40000 moved b's endpoint for a to $endpoint"; }
! log_has b "endpoint=198.18.0.12" || { show_logs; fail "b moved its endpoint for a to 198.18.0.12 (its log says so), if only for a while"; }
[[ $replay -eq $REPLAYS ]] || fail "b counted $replay of $REPLAYS replayed datagrams as replays"
wait_ping a 198.19.0.2 5 || { show_logs; fail "no ping a->b after the replays"; }
wait_ping b 198.19.0.1 5 || { show_logs; fail "no ping b->a after the replays"; }
[[ $(endpoint_at_b) == 198.18.0.11:51820 ]] || fail "b's endpoint for a moved to $(endpoint_at_b) after the replays"
assert_alive a
assert_alive b
log "PASS"
