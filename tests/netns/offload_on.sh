#!/usr/bin/env bash
# Offloads on (`offload = "auto"`, the default): status and the log show TUN TSO/GRO and
# UDP GSO/GRO active; iperf3 TCP both ways over IPv4 and one way over IPv6 passes; 1 GiB of
# random bytes (MIB to change) crosses the tunnel with matching SHA-256 at both ends, and
# 256 MiB over IPv6 (TCPv6 segmentation and coalescing).
source "$(dirname "$0")/lib.sh"
require_root
MIB=${MIB:-1024}
OFFLOAD=auto bring_up
tunnel_ok
for side in a b; do
    got=$(status_field "$side" "d['offload']['tun']['tso'] and d['offload']['tun']['gro'] and d['offload']['udp']['gso'] and d['offload']['udp']['gro']")
    [[ $got == True ]] || { status_json "$side" >&2; fail "offloads not all active on $side"; }
    log_has "$side" "tun_tso" || fail "the log of $side does not show the offloads"
done
log "status: $(status_field a "d['offload']")"
iperf_run 198.19.0.2 3 || { show_logs; fail "iperf3 failed"; }
log "iperf3 TCP a->b: $(iperf_gbps) Gbit/s"
iperf_run 198.19.0.2 3 -R || { show_logs; fail "iperf3 -R failed"; }
log "iperf3 TCP b->a: $(iperf_gbps) Gbit/s"
iperf_run fd00:5159::2 3 || { show_logs; fail "iperf3 over IPv6 failed"; }
log "iperf3 TCP a->b over IPv6: $(iperf_gbps) Gbit/s"
transfer_sha "$MIB" 198.19.0.2
transfer_sha $((MIB / 4)) fd00:5159::2 5302
[[ $(status_field b "d['peers'][0]['drops']['bad_tag']") -eq 0 ]] || fail "bad tags on b"
log "PASS"
