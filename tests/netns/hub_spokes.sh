#!/usr/bin/env bash
# A hub and 20 spokes, each in its own namespace, their veth0s on one bridge (a switch
# namespace): underlay hub 198.18.0.1, spoke i 198.18.0.(10+i); overlay 198.19.0.0/16, the
# hub at 198.19.0.1, spoke i's network 198.19.i.0/24 (its TUN at 198.19.i.1). The hub has
# the 20 spokes as peers (no endpoints: it learns them from their handshakes), each spoke the
# hub (allowed 198.19.0.0/16, so spoke-to-spoke traffic goes through the hub). One KME in the
# hub's namespace hosts every SAE (sae-hub, sae-spoke-i; keys for a pair on one KME come from
# fresh randomness, no link: NOT QKD-secured) and every daemon runs qkd.policy = "require",
# rekeying every 5 s.
# 1. Every spoke pings the hub; every session is up with a QKD key_ID the hub's side agrees on.
# 2. No cross-talk: 20 pings of 1000 bytes hub -> spoke 7 arrive at spoke 7 alone (the hub
#    sends nothing to spoke 8, spoke 8 receives nothing); then spoke 7 -> spoke 8 through the
#    hub, which re-encrypts (the hub counts the bytes in from spoke-7 and out to spoke-8).
# 3. iperf3 from 4 spokes at once to the hub for 5 s: every stream moves data; the hub's CPU
#    per GB is reported.
# 4. Every session rotated at least twice with QKD keys, and no peer dropped a packet.
source "$(dirname "$0")/lib.sh"
require_root
SPOKES=20
KME_PORT=8443
IPERF_SPOKES=(3 9 14 20)
IPERF_SECONDS=5

ns_of() {
    case $1 in
    hub) echo "$NS_A" ;;
    s[0-9]*) echo "qs-${TAG}-$1" ;;
    *) fail "no side '$1'" ;;
    esac
}

show_logs() {
    local s
    for s in hub s7 s8; do
        [[ -f $WORK/$s.log ]] && { echo "--- daemon $s log (tail)"; tail -n "${1:-30}" "$WORK/$s.log"; }
    done >&2
    [[ -f $WORK/kme.log ]] && { echo "--- kme log (tail)"; tail -n 20 "$WORK/kme.log"; } >&2
    return 0
}

# --- the network
add_namespace() { # add_namespace SIDE
    ip netns add "$(ns_of "$1")"
    ip -n "$(ns_of "$1")" link set lo up
}
add_namespace hub
make_switch
switch_port hub 198.18.0.1
for i in $(seq "$SPOKES"); do
    EXTRA_NAMESPACES+=("$(ns_of "s$i")")
    add_namespace "s$i"
    switch_port "s$i" "198.18.0.$((10 + i))"
done
# the hub routes between spokes: what it opens for another spoke goes back into its TUN
ip netns exec "$NS_A" sysctl -qw net.ipv4.ip_forward=1
ip netns exec "$NS_A" sysctl -qw net.ipv4.conf.all.send_redirects=0

# --- PKI and the KME
saes=(sae-hub)
for i in $(seq "$SPOKES"); do saes+=("sae-spoke-$i"); done
"$QSHIELD" pki init --out "$WORK/pki" --ca hub-test-ca --kme kme-hub=198.18.0.1 --sae "${saes[@]}" >/dev/null
{
    printf '[kme]\nid = "kme-hub"\nlisten = "198.18.0.1:%s"\ndata_dir = "%s"\n' "$KME_PORT" "$WORK/kme"
    printf 'ca_file = "%s"\ncert_file = "%s"\nkey_file = "%s"\n' "$WORK/pki/ca.pem" "$WORK/pki/kme-hub.pem" "$WORK/pki/kme-hub.key"
    for sae in "${saes[@]}"; do printf '\n[[sae]]\nid = "%s"\n' "$sae"; done
    for i in $(seq "$SPOKES"); do
        printf '\n[[sae_pair]]\nmaster = "sae-spoke-%s"\nslave = "sae-hub"\nboth_ways = true\n' "$i"
    done
} >"$WORK/kme.toml"
ip netns exec "$NS_A" "$QSHIELD" kme --config "$WORK/kme.toml" >>"$WORK/kme.log" 2>&1 &
KME_PID=$!
PIDS+=("$KME_PID")
deadline=$((SECONDS + 15))
until ip netns exec "$NS_A" ss -Hltn "sport = :$KME_PORT" | grep -q .; do
    kill -0 "$KME_PID" 2>/dev/null || { cat "$WORK/kme.log" >&2; fail "the KME exited at start"; }
    ((SECONDS < deadline)) || { cat "$WORK/kme.log" >&2; fail "the KME did not listen"; }
    sleep 0.1
done

# --- the daemons
qkd_section() { # qkd_section SAE [PEER_SAE]
    printf '[qkd]\npolicy = "require"\nkme_url = "https://198.18.0.1:%s"\nsae_id = "%s"\n' "$KME_PORT" "$1"
    [[ -z ${2:-} ]] || printf 'peer_sae_id = "%s"\n' "$2"
    printf 'ca_file = "%s"\ncert_file = "%s"\nkey_file = "%s"\n' "$WORK/pki/ca.pem" "$WORK/pki/$1.pem" "$WORK/pki/$1.key"
}
interface_section() { # interface_section SIDE ADDRESS
    printf '[interface]\nname = "qs%s"\naddress = ["%s"]\nlisten_port = 51820\nidentity_dir = "%s"\ncontrol_socket = "%s"\n\n[rotation]\nrekey_after_seconds = "5s"\n\n' \
        "$1" "$2" "$WORK/$1" "$WORK/$1.sock"
}
keygen hub
for i in $(seq "$SPOKES"); do keygen "s$i"; done
{
    interface_section hub 198.19.0.1/16
    qkd_section sae-hub
    for i in $(seq "$SPOKES"); do
        printf '\n[[peer]]\nname = "spoke-%s"\npublic_key_file = "%s"\nallowed_ips = ["198.19.%s.0/24"]\nqkd_sae_id = "sae-spoke-%s"\n' \
            "$i" "$WORK/s$i/public.key" "$i" "$i"
    done
} >"$WORK/hub.toml"
for i in $(seq "$SPOKES"); do
    {
        interface_section "s$i" "198.19.$i.1/16"
        qkd_section "sae-spoke-$i" sae-hub
        printf '\n[[peer]]\nname = "hub"\nendpoint = "198.18.0.1:51820"\npublic_key_file = "%s"\nallowed_ips = ["198.19.0.0/16"]\n' \
            "$WORK/hub/public.key"
    } >"$WORK/s$i.toml"
done
start_daemon hub
t0=$(date +%s.%N)
for i in $(seq "$SPOKES"); do start_daemon "s$i"; done

# 1. every spoke reaches the hub
for i in $(seq "$SPOKES"); do
    wait_ping "s$i" 198.19.0.1 30 || { show_logs; fail "no ping spoke $i -> hub over the tunnel"; }
done
secs=$(python3 -c "import time; print(round(time.time() - $t0, 1))")
hub_peer() { peer_named hub "spoke-$1" "$2"; }
for i in $(seq "$SPOKES"); do
    hub_key=$(hub_peer "$i" "(p['current_key'] or {}).get('qkd_key_id')")
    spoke_key=$(peer_field "s$i" "(p['current_key'] or {}).get('qkd_key_id')")
    [[ $hub_key =~ ^[0-9a-f-]{36}$ ]] || { show_logs; fail "the hub's session with spoke $i has no QKD key_ID ($hub_key)"; }
    # a read may straddle a rotation: agree within one retry
    if [[ $hub_key != "$spoke_key" ]]; then
        sleep 0.5
        hub_key=$(hub_peer "$i" "p['current_key']['qkd_key_id']")
        spoke_key=$(peer_field "s$i" "p['current_key']['qkd_key_id']")
        [[ $hub_key == "$spoke_key" ]] || fail "spoke $i and the hub disagree on the QKD key_ID: $spoke_key vs $hub_key"
    fi
done
log "all $SPOKES spokes ping the hub ${secs} s after they started, every session with a QKD key_ID both ends agree on"

# 2. no cross-talk, and spoke to spoke through the hub
PINGS=20
PING_BYTES=1000
INNER_BYTES=$((PING_BYTES + 8 + 20))
hub_sent_7() { hub_peer 7 "p['total_bytes_sent']"; }
hub_sent_8() { hub_peer 8 "p['total_bytes_sent']"; }
hub_recv_7() { hub_peer 7 "p['total_bytes_received']"; }
s7_recv() { peer_field s7 "p['total_bytes_received']"; }
s8_recv() { peer_field s8 "p['total_bytes_received']"; }
h7=$(hub_sent_7) h8=$(hub_sent_8) r7=$(s7_recv) r8=$(s8_recv)
replies=$(ip netns exec "$NS_A" ping -c "$PINGS" -i 0.05 -W 2 -s "$PING_BYTES" -q 198.19.7.1 |
    sed -n 's/.* \([0-9]*\) received.*/\1/p' || true)
deadline=$(($(date +%s%N) + 3 * 1000000000))
while (($(s7_recv) - r7 < PINGS * INNER_BYTES && $(date +%s%N) < deadline)); do sleep 0.1; done
d_h7=$(($(hub_sent_7) - h7)) d_h8=$(($(hub_sent_8) - h8)) d_r7=$(($(s7_recv) - r7)) d_r8=$(($(s8_recv) - r8))
log "$PINGS pings hub -> spoke 7 ($INNER_BYTES B each), ${replies:-0} answered: the hub sent $d_h7 B to spoke-7 and $d_h8 B to spoke-8; spoke 7 received $d_r7 B, spoke 8 $d_r8 B"
[[ ${replies:-0} -eq $PINGS ]] || { show_logs; fail "${replies:-0} of $PINGS pings hub -> spoke 7 answered"; }
((d_h8 == 0 && d_r8 == 0)) || fail "traffic for spoke 7 went towards spoke 8: the hub sent $d_h8 B to spoke-8, spoke 8 received $d_r8 B"
((d_h7 == PINGS * INNER_BYTES && d_r7 == PINGS * INNER_BYTES)) ||
    fail "the hub sent $d_h7 B to spoke-7, spoke 7 received $d_r7 B (want $((PINGS * INNER_BYTES)) each)"
h7in=$(hub_recv_7) h8=$(hub_sent_8) r8=$(s8_recv)
replies=$(ip netns exec "$(ns_of s7)" ping -c "$PINGS" -i 0.05 -W 2 -s "$PING_BYTES" -q 198.19.8.1 |
    sed -n 's/.* \([0-9]*\) received.*/\1/p' || true)
deadline=$(($(date +%s%N) + 3 * 1000000000))
while (($(s8_recv) - r8 < PINGS * INNER_BYTES && $(date +%s%N) < deadline)); do sleep 0.1; done
d_in7=$(($(hub_recv_7) - h7in)) d_h8=$(($(hub_sent_8) - h8)) d_r8=$(($(s8_recv) - r8))
log "$PINGS pings spoke 7 -> spoke 8 through the hub, ${replies:-0} answered: the hub received $d_in7 B from spoke-7 and sent $d_h8 B to spoke-8 (re-encrypted); spoke 8 received $d_r8 B"
[[ ${replies:-0} -eq $PINGS ]] || { show_logs; fail "${replies:-0} of $PINGS pings spoke 7 -> spoke 8 answered"; }
((d_in7 >= PINGS * INNER_BYTES && d_h8 >= PINGS * INNER_BYTES && d_r8 >= PINGS * INNER_BYTES)) ||
    fail "spoke 7 -> spoke 8 did not pass through the hub: in from spoke-7 $d_in7 B, out to spoke-8 $d_h8 B, spoke 8 received $d_r8 B"

# 3. several spokes at once; the hub's CPU per GB
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hub_rx() { status_field hub "sum(p['total_bytes_received'] for p in d['peers'])"; }
port=5201
server_pids=()
for i in "${IPERF_SPOKES[@]}"; do
    ip netns exec "$NS_A" iperf3 -s -1 -B 198.19.0.1 -p "$port" >"$WORK/iperf-s$i-server.log" 2>&1 &
    PIDS+=($!)
    server_pids+=($!)
    port=$((port + 1))
done
sleep 0.5
rx0=$(hub_rx) ticks0=$(cpu_ticks "$PID_hub")
port=5201
client_pids=()
for i in "${IPERF_SPOKES[@]}"; do
    ip netns exec "$(ns_of "s$i")" iperf3 -c 198.19.0.1 -p "$port" -t "$IPERF_SECONDS" -J >"$WORK/iperf-s$i.json" 2>&1 &
    PIDS+=($!)
    client_pids+=($!)
    port=$((port + 1))
done
for pid in "${client_pids[@]}"; do
    wait "$pid" || { show_logs; fail "an iperf3 client failed: $(cat "$WORK"/iperf-s*.json | tail -5)"; }
    forget_pid "$pid"
done
rx=$(($(hub_rx) - rx0)) ticks=$(($(cpu_ticks "$PID_hub") - ticks0))
for pid in "${server_pids[@]}"; do wait "$pid" 2>/dev/null || true; forget_pid "$pid"; done
total=0
for i in "${IPERF_SPOKES[@]}"; do
    mbps=$(python3 -c "import json; d=json.load(open('$WORK/iperf-s$i.json')); print(round(d['end']['sum_received']['bits_per_second']/1e6))")
    ((mbps > 0)) || fail "iperf3 from spoke $i moved nothing"
    total=$((total + mbps))
done
cpu_per_gb=$(python3 -c "print(round($ticks / $(getconf CLK_TCK) / ($rx / 1e9), 2))")
log "iperf3 from ${#IPERF_SPOKES[@]} spokes at once for $IPERF_SECONDS s: $total Mbit/s in all; the hub received $((rx / 1000000)) MB and spent $cpu_per_gb CPU-s per GB"

# 4. rotations with QKD keys, no drops
sleep 6
for i in $(seq "$SPOKES"); do
    rot=$(hub_peer "$i" "p['rotations']")
    consumed=$(hub_peer "$i" "p['qkd']['keys_consumed']")
    ((rot >= 2)) || { show_logs; fail "the hub's session with spoke $i rotated $rot times (want at least 2 in $SECONDS s at 5 s)"; }
    ((consumed >= rot)) || fail "spoke-$i: $rot rotations but $consumed QKD keys consumed at the hub"
done
for side in hub $(seq -f 's%g' "$SPOKES"); do
    drops=$(status_field "$side" "sum(sum(p['drops'].values()) for p in d['peers'])")
    [[ $drops -eq 0 ]] || fail "$side dropped packets of its peers: $(status_field "$side" "[(p['name'], p['drops']) for p in d['peers'] if sum(p['drops'].values())]")"
done
log "every one of the $SPOKES sessions rotated at least twice with QKD keys; no peer dropped a packet"
log "PASS"
