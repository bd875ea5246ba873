#!/usr/bin/env bash
# IPv6 underlay: the peers' endpoints are [fd00:5158::1]:51820 and [fd00:5158::2]:51820,
# the daemons listen on "::". Ping IPv4 and IPv6 through the tunnel, a short iperf3 run,
# and status shows the IPv6 endpoint.
source "$(dirname "$0")/lib.sh"
require_root
export UNDERLAY=6 LISTEN_ADDRESS="::"
bring_up
tunnel_ok
wait_ping a fd00:5159::2 5 || { show_logs; fail "no IPv6 ping a->b over the tunnel"; }
wait_ping b fd00:5159::1 5 || { show_logs; fail "no IPv6 ping b->a over the tunnel"; }
endpoint=$(peer_field a "p['endpoint']")
[[ $endpoint == "[fd00:5158::2]:51820" ]] || fail "a's peer endpoint is $endpoint (want [fd00:5158::2]:51820)"
listen=$(status_field b "d['listen']")
log "ping v4 and v6 through the tunnel over an IPv6 underlay: ok (a's peer endpoint $endpoint, b listens on $listen)"
iperf_run fd00:5159::2 3 || { show_logs; fail "iperf3 over the IPv6 underlay failed"; }
log "iperf3 TCP 3 s over IPv6 inner and underlay: $(iperf_gbps) Gbit/s"
log "PASS"
