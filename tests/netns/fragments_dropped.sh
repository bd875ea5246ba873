#!/usr/bin/env bash
# A network that drops IP fragments: in both namespaces nftables drops every IPv4 fragment
# (offset != 0 or MF set) and every IPv6 fragment, before reassembly (prerouting at -500)
# and on output. The handshake still completes, because every handshake datagram is at
# most 1200 bytes, and data fits the underlay MTU: the drop counters stay at 0 through the
# handshake, pings and a short iperf3. A 3000-byte ping over the underlay proves the rules
# really drop fragments (it fails and the counters move).
source "$(dirname "$0")/lib.sh"
require_root
make_namespaces
for ns in "$NS_A" "$NS_B"; do
    ip netns exec "$ns" nft -f - <<'NFT'
table inet qsfrag {
    chain pre {
        type filter hook prerouting priority -500; policy accept;
        ip frag-off & 0x3fff != 0 counter drop
        exthdr frag exists counter drop
    }
    chain out {
        type filter hook output priority -500; policy accept;
        ip frag-off & 0x3fff != 0 counter drop
        exthdr frag exists counter drop
    }
}
NFT
done
# sum of the packet counters of the drop rules, both namespaces
frag_drops() {
    local ns total=0 n
    for ns in "$NS_A" "$NS_B"; do
        n=$(ip netns exec "$ns" nft list table inet qsfrag | awk '/counter packets/ { for (i = 1; i <= NF; i++) if ($i == "packets") s += $(i + 1) } END { print s + 0 }')
        total=$((total + n))
    done
    echo "$total"
}
keygen a
keygen b
write_config a b
write_config b a
start_daemon a
start_daemon b
tunnel_ok
wait_ping a fd00:5159::2 5 || { show_logs; fail "no IPv6 ping over the tunnel"; }
hs=$(peer_field a "p['handshakes']")
iperf_run 198.19.0.2 3 || { show_logs; fail "iperf3 failed with fragments dropped"; }
gbps=$(iperf_gbps)
drops=$(frag_drops)
log "handshake done ($hs handshake(s)), ping v4/v6 and iperf3 3 s ($gbps Gbit/s) through the tunnel; fragments dropped so far: $drops"
[[ $drops -eq 0 ]] || fail "$drops fragments were dropped: something in the handshake or data path fragments"
# the rules work: a big ping over the underlay fragments and is dropped
if ip netns exec "$NS_A" ping -c2 -W1 -i0.2 -s 3000 198.18.0.2 >/dev/null 2>&1; then
    fail "a 3000-byte ping over the underlay went through: the fragment rules do not drop"
fi
v4=$(frag_drops)
if ip netns exec "$NS_A" ping -6 -c2 -W1 -i0.2 -s 3000 fd00:5158::2 >/dev/null 2>&1; then
    fail "a 3000-byte IPv6 ping over the underlay went through: the fragment rules do not drop"
fi
v6=$(frag_drops)
[[ $v4 -gt 0 && $v6 -gt $v4 ]] || fail "fragment counters did not move for big pings (v4 $v4, v4+v6 $v6)"
log "3000-byte underlay pings fail: $v4 IPv4 and $((v6 - v4)) IPv6 fragments dropped"
wait_ping a 198.19.0.2 2 || fail "tunnel broken after the fragment check"
log "PASS"
