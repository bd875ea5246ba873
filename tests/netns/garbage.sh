#!/usr/bin/env bash
# Garbage at the listen port: from a's namespace, python3 fires 6000 datagrams at b's
# UDP port: random bytes of random length 0..1500, each message type 1..4 followed by
# random bytes, and truncated copies of well-formed-looking fragment, cookie and data
# headers. b stays up, counts the drops, and the tunnel still works afterwards.
# Then forged data: a genuine data datagram of a's is captured on a's veth (AF_PACKET), and
# 400 copies with a fresh counter and a flipped ciphertext byte are sent to b: each must be
# counted as bad_tag (authenticated decryption failed), none delivered, none counted as
# anything else, and the tunnel must still work.
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
# Forged data under a's live session index.
FORGED=400
bad_tag0=$(peer_field b "p['drops']['bad_tag']")
replay0=$(peer_field b "p['drops']['replay']")
ip netns exec "$NS_A" python3 - "$FORGED" >"$WORK/forged.txt" <<'PY' &
import socket, struct, sys, time
count = int(sys.argv[1])
ETH_P_ALL = 0x0003          # outgoing frames reach ETH_P_ALL taps only
cap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
cap.bind(("veth0", 0))
cap.settimeout(15)
deadline = time.time() + 15
sample = None
while time.time() < deadline and sample is None:
    frame = cap.recv(65535)
    if frame[12:14] != b"\x08\x00":
        continue
    ip = frame[14:]
    # a's own datagrams to b only (b's replies to a use port 51820 too)
    if len(ip) < 28 or ip[9] != 17 or ip[16:20] != bytes([198, 18, 0, 2]):
        continue
    ihl = (ip[0] & 0x0F) * 4
    dport = struct.unpack("!H", ip[ihl + 2: ihl + 4])[0]
    payload = ip[ihl + 8:]
    if dport == 51820 and len(payload) > 32 and payload[0] == 4:
        sample = bytearray(payload)
if sample is None:
    print("none")
    sys.exit(1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(count):
    forged = bytearray(sample)
    forged[8:16] = struct.pack("<Q", (1 << 40) + i)   # a counter ahead of the window
    forged[20] ^= 0x01                               # one ciphertext bit flipped
    s.sendto(bytes(forged), ("198.18.0.2", 51820))
    if i % 50 == 49:
        time.sleep(0.01)
print("sent", count, "index", struct.unpack("<I", bytes(sample[4:8]))[0])
PY
sniffer=$!
for _ in $(seq 30); do
    kill -0 "$sniffer" 2>/dev/null || break
    ip netns exec "$NS_A" ping -c 1 -W 1 198.19.0.2 >/dev/null 2>&1 || true
    sleep 0.2
done
wait "$sniffer" || fail "could not capture a data datagram of a's to forge from: $(cat "$WORK/forged.txt")"
log "forged data: $(cat "$WORK/forged.txt")"
# b counts them as they arrive: poll until all are counted, with a deadline.
for _ in $(seq 50); do
    bad_tag=$(( $(peer_field b "p['drops']['bad_tag']") - bad_tag0 ))
    ((bad_tag >= FORGED)) && break
    sleep 0.1
done
replay=$(( $(peer_field b "p['drops']['replay']") - replay0 ))
log "peer a at b: $bad_tag of $FORGED forged data datagrams counted as bad_tag, $replay as replay"
[[ $bad_tag -eq $FORGED ]] || fail "$bad_tag of $FORGED forged data datagrams counted as bad_tag"
[[ $replay -eq 0 ]] || fail "forged datagrams counted as replays ($replay): the window moved before authentication"
wait_ping a 198.19.0.2 5 || { show_logs; fail "tunnel broken after the garbage"; }
wait_ping b 198.19.0.1 5 || { show_logs; fail "tunnel b->a broken after the garbage"; }
assert_alive a
assert_alive b
log "tunnel still works after the garbage: ok"
log "PASS"
