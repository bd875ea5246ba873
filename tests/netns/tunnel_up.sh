#!/usr/bin/env bash
# Tunnel up between two namespaces: ping both ways over IPv4 and IPv6 inside the tunnel,
# then a 5-second iperf3 TCP run; status shows a session and no drops at either end: no peer
# drop at all, and no interface drop but no_route (the kernel's own IPv6 multicast, e.g.
# router solicitations from the new TUN, has no peer to go to).
source "$(dirname "$0")/lib.sh"
require_root
bring_up
wait_ping a 198.19.0.2 15 || { show_logs; fail "no ping a->b over the tunnel"; }
wait_ping b 198.19.0.1 5 || { show_logs; fail "no ping b->a over the tunnel"; }
wait_ping a fd00:5159::2 5 || { show_logs; fail "no IPv6 ping a->b over the tunnel"; }
wait_ping b fd00:5159::1 5 || { show_logs; fail "no IPv6 ping b->a over the tunnel"; }
log "ping both ways over IPv4 and IPv6: ok"
iperf_server
ip netns exec "$NS_A" iperf3 -c 198.19.0.2 -t 5 -J >"$WORK/iperf.json" || { show_logs; fail "iperf3 failed"; }
gbps=$(python3 -c "import json; d=json.load(open('$WORK/iperf.json')); print(round(d['end']['sum_received']['bits_per_second']/1e9,3))")
log "iperf3 TCP 5 s: $gbps Gbit/s"
epoch=$(status_field a "d['peers'][0]['current_key']['epoch']")
[[ $epoch -ge 1 ]] || fail "status shows no current key"
for side in a b; do
    peer_drops=$(peer_field "$side" "p['drops']")
    iface_drops=$(status_field "$side" "d['drops']")
    log "$side: peer drops $peer_drops, interface drops $iface_drops"
    [[ $(peer_field "$side" "sum(p['drops'].values())") -eq 0 ]] || fail "$side dropped packets of its peer: $peer_drops"
    # Both daemons start within milliseconds and both initiate: the initiation that loses
    # the simultaneous start may still be answered, and that one answer is a stale reply.
    # Anything else, or more than that one, is a drop this clean network must not cause.
    [[ $(status_field "$side" "sum(v for k, v in d['drops'].items() if k not in ('no_route', 'stale_reply'))") -eq 0 &&
       $(status_field "$side" "d['drops']['stale_reply']") -le 1 ]] \
        || fail "$side dropped datagrams at the interface: $iface_drops"
done
"$QSHIELD" status --socket "$WORK/a.sock" >&2
log "PASS"
