#!/usr/bin/env bash
# An interface MTU raised above the tunnel's (interface.mtu 1420, `ip link set mtu 1500` by
# hand afterwards): a packet larger than the tunnel MTU read from the TUN is dropped, counted
# (io.tun.dropped_too_big) and answered with ICMP "fragmentation needed" / "packet too big"
# carrying the tunnel MTU, as a kernel tunnel would, so the sender's path-MTU discovery
# adapts: ping with DF set learns mtu 1420 over IPv4 and IPv6, and TCP then flows at full
# size. The daemon logs it once. Both TUN read paths: with virtio-net offload and without.
source "$(dirname "$0")/lib.sh"
require_root
make_namespaces
keygen a
keygen b

check_path() {
    local offload=$1
    OFFLOAD=$offload write_config a b
    OFFLOAD=$offload write_config b a
    : >"$WORK/a.log"
    start_daemon a
    start_daemon b
    wait_ping a 198.19.0.2 15 || { show_logs; fail "[$offload] no ping over the tunnel"; }
    ip -n "$NS_A" link set qsa mtu 1500
    local out
    out=$(ip netns exec "$NS_A" ping -c 3 -i 0.3 -W 1 -M do -s 1472 198.19.0.2 2>&1 || true)
    log "[$offload] IPv4 ping -M do -s 1472: $(tr '\n' ' ' <<<"$out" | cut -c1-300)"
    grep -qE 'mtu ?[=:] ?1420' <<<"$out" || { show_logs; fail "[$offload] no ICMP fragmentation needed with mtu 1420: $out"; }
    out=$(ip netns exec "$NS_A" ping -6 -c 3 -i 0.3 -W 1 -M do -s 1452 fd00:5159::2 2>&1 || true)
    log "[$offload] IPv6 ping -M do -s 1452: $(tr '\n' ' ' <<<"$out" | cut -c1-300)"
    grep -qE 'mtu ?[=:] ?1420' <<<"$out" || { show_logs; fail "[$offload] no ICMPv6 packet too big with mtu 1420: $out"; }
    local too_big answered
    too_big=$(status_field a "d['io']['tun']['dropped_too_big']")
    answered=$(status_field a "d['io']['tun']['too_big_answered']")
    log "[$offload] io.tun: dropped_too_big $too_big, too_big_answered $answered"
    ((too_big >= 2 && answered >= 2)) || fail "[$offload] counters: dropped_too_big $too_big, too_big_answered $answered"
    # TCP adapts to the learned path MTU and moves data (a fresh route cache would send 1500)
    iperf_server
    ip netns exec "$NS_A" iperf3 -c 198.19.0.2 -t 2 -J >"$WORK/iperf.json" || { show_logs; fail "[$offload] iperf3 failed"; }
    local mbps
    mbps=$(python3 -c "import json; d=json.load(open('$WORK/iperf.json')); print(round(d['end']['sum_received']['bits_per_second']/1e6))")
    log "[$offload] iperf3 TCP 2 s with the interface MTU at 1500: $mbps Mbit/s"
    ((mbps > 10)) || fail "[$offload] TCP did not adapt: $mbps Mbit/s"
    local logged
    logged=$(grep -c 'inner packet larger than the tunnel MTU' "$WORK/a.log" || true)
    ((logged == 1)) || { show_logs; fail "[$offload] logged $logged times, want once"; }
    stop_daemon a
    stop_daemon b
}

check_path auto
check_path off
log "PASS"
