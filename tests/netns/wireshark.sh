#!/usr/bin/env bash
# The Wireshark dissector (contrib/wireshark/qshield.lua) on real traffic: two sites in
# namespaces, tshark capturing site A's underlay from before the first handshake, a ping
# and a short iperf3 run through the tunnel, then garbage datagrams at site B's port. tshark
# dissects the capture with the plugin:
# - the initiation is 3 fragments of a 2385-byte message, the response 2 of a 2252-byte one;
# - each session a daemon logged ("session established ... local_index remote_index") is on
#   the wire: its initiation under the initiator's index, its response under the
#   responder's, and data to a side carries that side's index;
# - data counters only go up per receiver index and direction;
# - every garbage datagram is marked malformed, and the plugin raises no Lua error.
source "$(dirname "$0")/lib.sh"
require_root
command -v tshark >/dev/null || fail "tshark (Debian package tshark) is missing: run scripts/install-deps.sh"
PLUGIN=$(cd "$(dirname "$0")/../.." && pwd)/contrib/wireshark/qshield.lua
make_namespaces
ip netns exec "$NS_A" tshark -q -i veth0 -f "udp port 51820" -w "$WORK/capture.pcapng" 2>"$WORK/tshark.log" &
TSHARK_PID=$!
PIDS+=("$TSHARK_PID")
deadline=$((SECONDS + 15))
until grep -q "Capturing on" "$WORK/tshark.log" 2>/dev/null; do
    (( SECONDS < deadline )) || { cat "$WORK/tshark.log" >&2; fail "tshark did not start capturing"; }
    sleep 0.1
done
keygen a
keygen b
write_config a b
write_config b a
start_daemon a
start_daemon b
wait_ping a 198.19.0.2 15 || { show_logs 20; fail "no tunnel"; }
ip netns exec "$NS_A" ping -c 3 -i 0.2 198.19.0.2 >/dev/null || fail "ping"
iperf_run 198.19.0.2 2 >/dev/null || fail "iperf3"
# Garbage at B's port: an unknown type, a short fragment, a fragment with the wrong payload
# length, a short cookie reply, a data packet not a multiple of 16.
ip netns exec "$NS_A" python3 - <<'PY'
import os, socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
junk = [bytes([9]) + os.urandom(40), bytes([1, 0, 3, 0]) + os.urandom(10),
        bytes([1, 0, 3, 0]) + struct.pack('<IH', 1, 2385) + b'\0\0' + os.urandom(82),
        bytes([3, 0, 0, 0]) + os.urandom(30), bytes([4, 0, 0, 0]) + os.urandom(12 + 24 + 16)]
for j in junk:
    s.sendto(j, ('198.18.0.2', 51820))
PY
sleep 1
kill -INT "$TSHARK_PID"
wait "$TSHARK_PID" 2>/dev/null || true
forget_pid "$TSHARK_PID"
tshark -X "lua_script:$PLUGIN" -r "$WORK/capture.pcapng" -Y qshield -T fields -E separator='|' \
    -e ip.src -e qshield.type -e qshield.fragment.index -e qshield.fragment.count \
    -e qshield.sender_index -e qshield.message_len -e qshield.receiver_index -e qshield.counter \
    -e _ws.expert.message >"$WORK/fields.txt" 2>"$WORK/dissect.log" || { cat "$WORK/dissect.log" >&2; fail "tshark could not read the capture"; }
if grep -qi "lua" "$WORK/dissect.log"; then cat "$WORK/dissect.log" >&2; fail "the plugin raised a Lua error"; fi
log "dissected $(wc -l <"$WORK/fields.txt") qshield datagrams"
python3 - "$WORK/fields.txt" "$WORK/a.log" "$WORK/b.log" <<'PY' || fail "the dissected fields do not match the daemons"
import re, sys
rows = [l.rstrip('\n').split('|') for l in open(sys.argv[1])]
addr = {'198.18.0.1': 'a', '198.18.0.2': 'b'}
def logged(path):
    out = []
    for line in open(path):
        m = re.search(r'session established .*role=(\w+).*local_index=(0x[0-9a-f]+) remote_index=(0x[0-9a-f]+)', line)
        if m:
            out.append((m.group(1), m.group(2), m.group(3)))
    return out
sessions = {'a': logged(sys.argv[2]), 'b': logged(sys.argv[3])}
assert sessions['a'] and sessions['b'], f"no session logged with its indices: {sessions}"
local = {s: {l for _, l, _ in sessions[s]} for s in 'ab'}
remote = {s: {r for _, _, r in sessions[s]} for s in 'ab'}
problems = []
frags = {}
counters = {}
malformed = 0
for src, typ, idx, count, sender, mlen, receiver, counter, expert in rows:
    side = addr.get(src)
    if expert.startswith('Malformed'):
        malformed += 1
        continue
    if side is None:
        problems.append(f'a datagram from {src}'); continue
    if typ in ('1', '2'):
        frags.setdefault((side, typ, sender), set()).add((int(idx), int(count), int(mlen)))
    elif typ == '4':
        other = 'b' if side == 'a' else 'a'
        if receiver not in local[other] or receiver not in remote[side]:
            problems.append(f'data {side}->{other} to index {receiver}: {other} logged {local[other]}, {side} logged {remote[side]}')
        key = (side, receiver)
        c = int(counter)
        if key in counters and c <= counters[key]:
            problems.append(f'counter {c} after {counters[key]} ({side} to {receiver})')
        counters[key] = c
for (side, typ, sender), got in frags.items():
    want = {(i, 3, 2385) for i in range(3)} if typ == '1' else {(i, 2, 2252) for i in range(2)}
    if got != want:
        problems.append(f'{side} type {typ} sender {sender}: fragments {sorted(got)}, want {sorted(want)}')
# Every session a daemon logged is on the wire: its initiation from the initiator under the
# initiator's index, its response from the responder under the responder's. (An initiation
# that lost a simultaneous start is on the wire too, but never became a session.)
for side in 'ab':
    other = 'b' if side == 'a' else 'a'
    for role, mine, theirs in sessions[side]:
        own, peer = ('1', '2') if role == 'Initiator' else ('2', '1')
        if (side, own, mine) not in frags:
            problems.append(f'{side} logged {role} session {mine}, but sent no type {own} message under it')
        if (other, peer, theirs) not in frags:
            problems.append(f'{side} logged peer index {theirs}, but {other} sent no type {peer} message under it')
if not counters:
    problems.append('no data packet in the capture')
if malformed != 5:
    problems.append(f'{malformed} datagrams marked malformed, 5 garbage ones were sent')
print(f'{len(frags)} handshake messages, {len(counters)} data flows, {malformed} malformed', file=sys.stderr)
if problems:
    print('\n'.join(problems), file=sys.stderr)
    sys.exit(1)
PY
log "PASS"
