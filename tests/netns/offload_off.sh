#!/usr/bin/env bash
# Offloads off (`offload = "off"`: one system call per packet, the fallback path): status
# shows no offload; iperf3 TCP passes; 1 GiB of random bytes (MIB to change) crosses the
# tunnel with matching SHA-256 at both ends.
source "$(dirname "$0")/lib.sh"
require_root
MIB=${MIB:-1024}
OFFLOAD=off bring_up
tunnel_ok
for side in a b; do
    got=$(status_field "$side" "d['offload']['mode']")
    [[ $got == off ]] || { status_json "$side" >&2; fail "offload mode on $side is '$got', want off"; }
done
iperf_run 198.19.0.2 3 || { show_logs; fail "iperf3 failed"; }
log "iperf3 TCP a->b: $(iperf_gbps) Gbit/s"
transfer_sha "$MIB" 198.19.0.2
log "PASS"
