#!/usr/bin/env python3
# scripts/rtt-hops.py DURATION IFACE... - run inside a network namespace: prints one line per
# packet seen on the interfaces (kernel receive/transmit timestamp in ns, interface, packet
# type 4 = outgoing, length), from AF_PACKET sockets with SO_TIMESTAMPNS. Two of these, one
# per namespace over the TUN and the veth, give the per-hop latency of a ping through the
# tunnel (docs/performance.md). Needs root.
import socket, struct, sys, time, select
dur = float(sys.argv[1]); socks = {}
for ifc in sys.argv[2:]:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    s.bind((ifc, 0)); s.setsockopt(socket.SOL_SOCKET, 35, 1)  # SO_TIMESTAMPNS
    socks[s] = ifc
end = time.time() + dur; out = []
while time.time() < end:
    r, _, _ = select.select(list(socks), [], [], 0.1)
    for s in r:
        data, anc, flags, addr = s.recvmsg(65536, 64)
        ts = next((struct.unpack("qq", d[:16]) for (l, t, d) in anc if t == 35), (0, 0))
        out.append((ts[0] * 10**9 + ts[1], socks[s], addr[2], len(data)))
for o in out: print(*o)
