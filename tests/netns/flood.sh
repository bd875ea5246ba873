#!/usr/bin/env bash
# A handshake flood against a site whose key rotates every second. A third namespace,
# attached to b by its own veth, owns 198.18.4.0/24 as local addresses (AnyIP) and runs
# qshield-flood at b's UDP port: whole initiations, response fragments (all with a valid
# mac1 made from b's public key), cookie replies and garbage, from 255 source addresses, as
# fast as one core sends. Meanwhile a pings b through the tunnel every 0.1 s.
# Asserts: b stays up and the flood does not reach the tunnel: a's datagrams arrive on a
# socket of their own (connected to a's endpoint), which the kernel fills apart from the
# flood's full queue, so b keeps rotating (at least 7 rotations in 10 s of 1 s rekeys; the
# first under load waits for a cookie) and answers at least PING_OK_MIN_PERCENT of the
# pings. Also: it sends few cookie replies to spoofed sources, and its memory stays bounded
# (RSS growth under RSS_GROWTH_MAX_KB). Reports the cost of one flood datagram in b (µs of
# CPU per datagram its socket delivered) and how the load split between the checks.
source "$(dirname "$0")/lib.sh"
require_root
SECS=${SECS:-10}
RSS_GROWTH_MAX_KB=${RSS_GROWTH_MAX_KB:-32768}
PING_OK_MIN_PERCENT=${PING_OK_MIN_PERCENT:-90}
FLOOD=${QSHIELD_FLOOD_BIN:-$(dirname "$QSHIELD")/qshield-flood}
[[ -x $FLOOD ]] || fail "qshield-flood not found at $FLOOD (cargo build first)"
NS_X=qs-${TAG}-x
bring_up 'rekey_after_seconds = "1s"
reject_after_seconds = "3s"'
tunnel_ok
ip netns add "$NS_X"
EXTRA_NAMESPACES+=("$NS_X")
ip link add vflood netns "$NS_X" type veth peer name vflood netns "$NS_B"
ip -n "$NS_B" addr add 198.18.3.1/24 dev vflood
ip -n "$NS_X" addr add 198.18.3.2/24 dev vflood
ip -n "$NS_X" link set lo up
ip -n "$NS_X" link set vflood up
ip -n "$NS_B" link set vflood up
ip -n "$NS_X" route add local 198.18.4.0/24 dev lo
ip -n "$NS_B" route add 198.18.4.0/24 via 198.18.3.2

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
field() { status_field b "$1"; }

sleep 2 # a couple of rotations before
rot0=$(peer_field b "p['rotations']")
queues=$(field "d['io']['udp']['peer_queues']")
((queues == 1)) || fail "b has $queues peer queues, not 1 (a's endpoint)"
rx0=$(field "d['io']['udp']['received']")
cpu0=$(cpu_ticks "$PID_b")
rss0=$(rss_kb "$PID_b")
drops0=$(field "json.dumps(d['drops'])")
ip netns exec "$NS_A" ping -i 0.1 -w "$SECS" -W 1 198.19.0.2 >"$WORK/ping.log" 2>&1 &
ping_pid=$!
PIDS+=("$ping_pid")
ip netns exec "$NS_X" "$FLOOD" --target 198.18.3.1:51820 --public-key "$WORK/b/public.key" \
    --sources 198.18.4.0/24 --seconds "$SECS" >"$WORK/flood.json" || fail "qshield-flood failed: $(cat "$WORK/flood.json")"
wait "$ping_pid" || true
forget_pid "$ping_pid"
assert_alive b
cpu1=$(cpu_ticks "$PID_b")
rss1=$(rss_kb "$PID_b")
rx1=$(field "d['io']['udp']['received']")
rot1=$(peer_field b "p['rotations']")
drops1=$(field "json.dumps(d['drops'])")
hz=$(getconf CLK_TCK)
python3 - "$WORK/flood.json" "$drops0" "$drops1" "$cpu0" "$cpu1" "$hz" "$rx0" "$rx1" "$rss0" "$rss1" "$rot0" "$rot1" "$WORK/ping.log" "$SECS" >"$WORK/report.txt" <<'PY'
import json, re, sys
(flood, d0, d1, cpu0, cpu1, hz, rx0, rx1, rss0, rss1, rot0, rot1, ping, secs) = sys.argv[1:]
f = json.load(open(flood))
d0, d1 = json.loads(d0), json.loads(d1)
delta = {k: d1[k] - d0.get(k, 0) for k in d1 if d1[k] != d0.get(k, 0)}
cpu_s = (int(cpu1) - int(cpu0)) / int(hz)
rx = int(rx1) - int(rx0)
text = open(ping).read()
m = re.search(r"(\d+) packets transmitted, (\d+) received", text)
tx, ok = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
print(f"flood: {f['sent']} datagrams sent in {secs} s ({f['per_second']}/s) from {f['sources']} sources")
print(f"b's socket delivered {rx} datagrams ({rx / float(secs):.0f}/s); b used {cpu_s:.2f} s of CPU: {1e6 * cpu_s / max(rx, 1):.2f} us per datagram")
print(f"b's drops during the flood: {json.dumps(delta, sort_keys=True)}")
print(f"b: {int(rot1) - int(rot0)} rotations; RSS {rss0} -> {rss1} kB; pings a->b: {ok}/{tx} answered")
replies = delta.get('cookie_required', 0) - delta.get('cookie_reply_limited', 0)
print(f"cookie replies sent: {replies} of {delta.get('cookie_required', 0)} fragments without mac2")
print(f"RESULT rotations={int(rot1) - int(rot0)} rss_growth_kb={int(rss1) - int(rss0)} ping_ok={ok} ping_tx={tx} cookie_required={delta.get('cookie_required', 0)} cookie_replies={replies} rx={rx}")
PY
cat "$WORK/report.txt" >&2
eval "$(sed -n 's/^RESULT //p' "$WORK/report.txt")"
((rotations * 10 >= SECS * 7)) || { show_logs; fail "only $rotations rotations during the $SECS s flood"; }
((rss_growth_kb < RSS_GROWTH_MAX_KB)) || fail "b's RSS grew by $rss_growth_kb kB during the flood"
((cookie_required > 0)) || fail "the flood never put b under load (no cookie_required drop)"
((rx > 10000)) || fail "only $rx flood datagrams reached b: the flood did not happen"
((ping_tx > 0 && ping_ok * 100 >= ping_tx * PING_OK_MIN_PERCENT)) || fail "only $ping_ok of $ping_tx pings answered during the flood"
((cookie_replies * 10 < cookie_required)) || fail "$cookie_replies cookie replies to $cookie_required spoofed fragments: the reply limits did not hold"
tunnel_ok
log "PASS"
