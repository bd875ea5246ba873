#!/usr/bin/env bash
# Garbage at the listen port: from a's namespace, python3 fires 6000 datagrams at b's
# UDP port: random bytes of random length 0..1500, each message type 1..4 followed by
# random bytes, and truncated copies of well-formed-looking fragment, cookie and data
# headers. b stays up, counts the drops, and the tunnel still works afterwards.
source "$(dirname "$0")/lib.sh"
require_root
COUNT=6000
bring_up
tunnel_ok
before=$(status_field b "sum(d['drops'].values())")
sent=$(ip netns exec "$NS_A" python3 - "$COUNT" <<'PY'
import os, random, socket, struct, sys, time
count = int(sys.argv[1])
rng = random.Random(5158)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
to = ("198.18.0.2", 51820)
def fragment_header(t):
    # type, index, count, reserved, sender index, message length, reserved
    n = rng.randint(1, 4)
    return struct.pack("<BBBBIHH", t, rng.randrange(n), n, 0, rng.getrandbits(32), rng.randint(0, 5000), 0)
def datagram(i):
    kind = i % 4
    if kind == 0:                                  # random bytes, random length
        return os.urandom(rng.randint(0, 1500))
    if kind == 1:                                  # a message type then random bytes
        return bytes([rng.randint(1, 4)]) + os.urandom(rng.randint(0, 1499))
    if kind == 2:                                  # handshake fragment header + junk, truncated
        full = fragment_header(rng.choice((1, 2))) + os.urandom(rng.randint(0, 1188))
        return full[: rng.randint(0, len(full))]
    t = rng.choice((3, 4))                         # cookie reply / data header, truncated
    full = struct.pack("<BBBBI", t, 0, 0, 0, rng.getrandbits(32)) + os.urandom(rng.choice((8, 40, 60, 1400)))
    return full[: rng.randint(0, len(full))]
sent = 0
for i in range(count):
    try:
        s.sendto(datagram(i), to)
        sent += 1
    except OSError:
        pass
    if i % 200 == 199:
        time.sleep(0.01)                           # do not just overflow the socket buffer
print(sent)
PY
)
assert_alive b
sleep 0.5
drops=$(status_field b "d['drops']")
after=$(status_field b "sum(d['drops'].values())")
malformed=$(status_field b "d['drops']['malformed']")
received=$(status_field b "d['io']['udp']['received']")
log "sent $sent garbage datagrams to b; b still runs (pid $PID_b); b received $received datagrams in all; interface drops now: $drops"
[[ $malformed -gt 0 ]] || fail "no malformed drops counted"
[[ $((after - before)) -ge $((COUNT / 2)) ]] || fail "only $((after - before)) of $COUNT garbage datagrams counted as drops"
bad_tag=$(peer_field b "p['drops']['bad_tag']")
log "peer a at b: bad_tag drops $bad_tag"
wait_ping a 198.19.0.2 5 || { show_logs; fail "tunnel broken after the garbage"; }
wait_ping b 198.19.0.1 5 || { show_logs; fail "tunnel b->a broken after the garbage"; }
assert_alive a
assert_alive b
log "tunnel still works after the garbage: ok"
log "PASS"
