# The Madrid topology (docs/kme.md): hospital A — ring node 1 — ring node 2 — hospital B,
# and a second path hospital A — ring node 3 — hospital B; one network namespace per node, a
# veth "fiber section" between neighbours, a KME in every node, one QKD link per section,
# keys relayed end to end over the path the KMEs compute from their link state (the ring
# while it has key and no alarm, else the second path), and a qshield daemon at each
# hospital taking its session keys from its KME. Sourced after sites.sh.
#
# Link sources (MADRID_SOURCE): "random" (a CSPRNG, NOT QKD; fast, for most tests) or
# "cvqkd" (the simulated CV-QKD device pair per section: Alice in the leader KME, Bob and
# the fiber in the follower, the pulses on TCP port 8444 between the nodes; hospital B
# follows two links, the second on 8445). Section lengths are assumptions (the
# deployment's are not public): 4, 7 and 5 km on the ring, 9 and 8 km on the second path,
# whose links keep smaller pools (MADRID_BACKUP_POOL_MAX_BITS), so routes prefer the ring.
#
# Underlay: the ring's sections 198.18.1.0/24, 198.18.2.0/24, 198.18.3.0/24 (the ring nodes
# route between them: the tunnel's path); the second path's 198.18.5.0/24 (hospital A -
# ring-3) and 198.18.6.0/24 (ring-3 - hospital B), used by the KMEs on them. Overlay:
# 198.19.0.1 (A) and 198.19.0.2 (B). Eve, when switched on, has her own node hanging off
# the leader of the link she attacks: 198.18.4.0/24 off ring-1 (ring-1 -> ring-2), or
# 198.18.7.0/24 off ring-3 (ring-3 -> hospital B).
#
# MADRID_RELAY: the hospitals' [[remote_sae]] relay lines: "" (one path) or
# 'relay = "multipath"' (each key in two XOR shares, one over each path).

MADRID_NODES=(ha r1 r2 r3 hb)
declare -A MADRID_NAME=([ha]=hospital-a [r1]=ring-1 [r2]=ring-2 [r3]=ring-3 [hb]=hospital-b)
declare -A MADRID_KME_ADDR=([ha]=198.18.1.1 [r1]=198.18.1.2 [r2]=198.18.2.2 [r3]=198.18.5.2 [hb]=198.18.3.2)
# Each link, by "LEADER FOLLOWER": the leader's and the follower's address on its section.
declare -A MADRID_LINK_ADDRS=([ha r1]="198.18.1.1 198.18.1.2" [r1 r2]="198.18.2.1 198.18.2.2"
    [r2 hb]="198.18.3.1 198.18.3.2" [ha r3]="198.18.5.1 198.18.5.2" [r3 hb]="198.18.6.1 198.18.6.2")
MADRID_LINKS=("ha r1" "r1 r2" "r2 hb" "ha r3" "r3 hb")
# The neighbour whose certificate reads a node's status.
declare -A MADRID_ASKER=([ha]=r1 [r1]=ha [r2]=r1 [r3]=ha [hb]=r2)
KME_PORT=8443
MADRID_LINK_RATE=${MADRID_LINK_RATE:-262144}      # bits/s per link (random source, not QKD)
MADRID_SOURCE=${MADRID_SOURCE:-random}            # random | cvqkd
declare -A MADRID_SECTION_KM=([ha r1]=4 [r1 r2]=7 [r2 hb]=5 [ha r3]=9 [r3 hb]=8)
declare -A MADRID_QUANTUM_PORT=([ha r1]=8444 [r1 r2]=8444 [r2 hb]=8444 [ha r3]=8444 [r3 hb]=8445)
# [link.cvqkd] settings besides the distance (TOML lines). The default is the demo's: blocks
# of 2^21 pulses at 1 MBd, V_A chosen automatically. Tests pass shorter, faster blocks.
MADRID_CVQKD=${MADRID_CVQKD:-'block_size = 2097152
symbol_rate_hz = 1e6'}
MADRID_POOL_MAX_BITS=${MADRID_POOL_MAX_BITS:-16777216}
MADRID_BACKUP_POOL_MAX_BITS=${MADRID_BACKUP_POOL_MAX_BITS:-$((MADRID_POOL_MAX_BITS / 4))}
MADRID_RELAY=${MADRID_RELAY:-}
# The hospitals' [[sae_pair]] limits (TOML lines): what one SAE certificate may draw.
MADRID_PAIR_LIMITS=${MADRID_PAIR_LIMITS:-'rate = "10/s"
volume = "10Mbit/h"'}
CVQKD_PORT=8444
EVE_PORT=8454

madrid_ns() { echo "qs-${TAG}-$1"; }

# Namespaces, the three sections, addresses and routes.
madrid_make_network() {
    local n
    for n in "${MADRID_NODES[@]}"; do
        ip netns add "$(madrid_ns "$n")"
        EXTRA_NAMESPACES+=("$(madrid_ns "$n")")
        ip -n "$(madrid_ns "$n")" link set lo up
    done
    local link
    for link in "${MADRID_LINKS[@]}"; do
        # shellcheck disable=SC2086
        madrid_section $link ${MADRID_LINK_ADDRS[$link]}
    done
    ip -n "$(madrid_ns ha)" route add default via 198.18.1.2
    ip -n "$(madrid_ns hb)" route add default via 198.18.3.1
    ip -n "$(madrid_ns r1)" route add 198.18.3.0/24 via 198.18.2.2
    ip -n "$(madrid_ns r2)" route add 198.18.1.0/24 via 198.18.2.1
    for n in r1 r2 r3; do ip netns exec "$(madrid_ns "$n")" sysctl -qw net.ipv4.ip_forward=1; done
}

# madrid_section LEFT RIGHT LEFT_ADDR RIGHT_ADDR: one fiber section.
madrid_section() {
    local l=$1 r=$2
    ip link add "to-$r" netns "$(madrid_ns "$l")" type veth peer name "to-$l" netns "$(madrid_ns "$r")"
    ip -n "$(madrid_ns "$l")" addr add "$3/24" dev "to-$r"
    ip -n "$(madrid_ns "$r")" addr add "$4/24" dev "to-$l"
    ip -n "$(madrid_ns "$l")" link set "to-$r" up
    ip -n "$(madrid_ns "$r")" link set "to-$l" up
}

# CA and certificates: every KME (with the addresses it is reached at) and both SAEs.
madrid_pki() {
    "$QSHIELD" pki init --out "$WORK/pki" --ca madrid-demo-ca \
        --kme kme-hospital-a=198.18.1.1,198.18.5.1 kme-ring-1=198.18.1.2,198.18.2.1 \
              kme-ring-2=198.18.2.2,198.18.3.1 kme-ring-3=198.18.5.2,198.18.6.1 \
              kme-hospital-b=198.18.3.2,198.18.6.2 \
        --sae sae-hospital-a sae-hospital-b >/dev/null
}

# madrid_link NODE "LEADER FOLLOWER": NODE's [[link]] block of that link.
madrid_link() {
    local n=$1 link=$2 peer role addr pool
    # shellcheck disable=SC2086
    set -- $link ${MADRID_LINK_ADDRS[$link]}
    if [[ $n == "$1" ]]; then peer=$2 role=leader addr=$4; else peer=$1 role=follower addr=$3; fi
    pool=$MADRID_POOL_MAX_BITS
    [[ $link == *r3* ]] && pool=$MADRID_BACKUP_POOL_MAX_BITS
    printf '\n[[link]]\npeer = "kme-%s"\nurl = "https://%s:%s"\nrole = "%s"\nsource = "%s"\npool_max_bits = %s\n' \
        "${MADRID_NAME[$peer]}" "$addr" "$KME_PORT" "$role" "$MADRID_SOURCE" "$pool"
    if [[ $MADRID_SOURCE == cvqkd ]]; then
        printf '[link.cvqkd]\ndistance_km = %s\nquantum_port = %s\n%s\n' \
            "${MADRID_SECTION_KM[$link]}" "${MADRID_QUANTUM_PORT[$link]}" "$MADRID_CVQKD"
    else
        printf 'rate_bits_per_second = %s\n' "$MADRID_LINK_RATE"
    fi
}

# madrid_remote SAE_NODE [RELAY]: one [[remote_sae]] block: the SAE's KME (routes are
# computed) and RELAY lines.
madrid_remote() {
    printf '\n[[remote_sae]]\nid = "sae-%s"\nkme = "kme-%s"\n%s\n' "${MADRID_NAME[$1]}" "${MADRID_NAME[$1]}" "${2:-}"
}

# madrid_pair [LIMITS]: the [[sae_pair]] of the two hospitals (either way), with LIMITS lines.
madrid_pair() {
    printf '\n[[sae_pair]]\nmaster = "sae-hospital-a"\nslave = "sae-hospital-b"\nboth_ways = true\n%s\n' "${1:-}"
}

# madrid_kme_config NODE: the KME config of one node.
madrid_kme_config() {
    local n=$1 id="kme-${MADRID_NAME[$1]}"
    {
        printf '[kme]\nid = "%s"\nlisten = "0.0.0.0:%s"\ndata_dir = "%s"\n' "$id" "$KME_PORT" "$WORK/kme-$n"
        printf 'ca_file = "%s"\ncert_file = "%s"\nkey_file = "%s"\n' "$WORK/pki/ca.pem" "$WORK/pki/$id.pem" "$WORK/pki/$id.key"
        # MADRID_KME_EXTRA_<node>: more [kme] lines for that node (metrics_listen, say)
        local extra_var="MADRID_KME_EXTRA_$n"
        [[ -z ${!extra_var:-} ]] || printf '%s\n' "${!extra_var}"
        case $n in
            ha) printf '\n[[sae]]\nid = "sae-hospital-a"\n'
                madrid_remote hb "$MADRID_RELAY"
                madrid_pair "$MADRID_PAIR_LIMITS" ;;
            hb) printf '\n[[sae]]\nid = "sae-hospital-b"\n'
                madrid_remote ha "$MADRID_RELAY"
                madrid_pair "$MADRID_PAIR_LIMITS" ;;
            *) madrid_remote ha; madrid_remote hb; madrid_pair ;;
        esac
        local link
        for link in "${MADRID_LINKS[@]}"; do
            if [[ " $link " == *" $n "* ]]; then madrid_link "$n" "$link"; fi
        done
    } >"$WORK/kme-$n.toml"
}

# madrid_start_kme NODE: runs the node's KME in its namespace; waits until it listens.
madrid_start_kme() {
    local n=$1 ns; ns=$(madrid_ns "$1")
    ip netns exec "$ns" "$QSHIELD" kme --config "$WORK/kme-$n.toml" >>"$WORK/kme-$n.log" 2>&1 &
    PIDS+=($!)
    eval "KME_PID_$n=$!"
    local deadline=$((SECONDS + 15))
    until ip netns exec "$ns" ss -Hltn "sport = :$KME_PORT" | grep -q .; do
        kill -0 "$!" 2>/dev/null || { cat "$WORK/kme-$n.log" >&2; fail "KME $n exited at start"; }
        (( SECONDS < deadline )) || { cat "$WORK/kme-$n.log" >&2; fail "KME $n did not listen"; }
        sleep 0.1
    done
}

# madrid_stop_kme NODE: SIGTERM the node's KME (by PID) and wait for it.
madrid_stop_kme() {
    local pid_var="KME_PID_$1"
    local pid=${!pid_var}
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    forget_pid "$pid" 2>/dev/null || true
}

# madrid_daemon_config SIDE POLICY ROTATION: the hospital daemon's config (a = hospital A);
# its peer's endpoint is the other hospital's address unless MADRID_PEER_ENDPOINT_A (in a's
# config) or MADRID_PEER_ENDPOINT_B (in b's) says otherwise.
madrid_daemon_config() {
    local side=$1 policy=$2 rotation=${3:-}
    local n peer node peer_node
    if [[ $side == a ]]; then n=1 peer=b node=ha peer_node=hb; else n=2 peer=a node=hb peer_node=ha; fi
    local sae="sae-${MADRID_NAME[$node]}"
    # MADRID_PEER_ENDPOINT_A/_B: where this side reaches the other (an impairment relay, say)
    local override_var=MADRID_PEER_ENDPOINT_${side^^}
    local endpoint=${!override_var:-${MADRID_KME_ADDR[$peer_node]}:51820}
    # MADRID_INTERFACE_EXTRA_A/_B: more [interface] lines for that side (metrics_listen, say)
    local extra_var=MADRID_INTERFACE_EXTRA_${side^^}
    local extra_interface=${!extra_var:-}
    cat >"$WORK/$side.toml" <<CFG
[interface]
name = "qs$side"
address = ["198.19.0.$n/24"]
identity_dir = "$WORK/$side"
control_socket = "$WORK/$side.sock"
${extra_interface}

[rotation]
$rotation

[qkd]
policy = "$policy"
kme_url = "https://${MADRID_KME_ADDR[$node]}:$KME_PORT"
sae_id = "$sae"
peer_sae_id = "sae-${MADRID_NAME[$peer_node]}"
ca_file = "$WORK/pki/ca.pem"
cert_file = "$WORK/pki/$sae.pem"
key_file = "$WORK/pki/$sae.key"

[[peer]]
name = "${MADRID_NAME[$peer_node]}"
endpoint = "$endpoint"
public_key_file = "$WORK/$peer/public.key"
allowed_ips = ["198.19.0.$((3 - n))/32"]
CFG
}

# The whole topology up: network, PKI, four KMEs, both hospital daemons (POLICY, ROTATION).
madrid_up() {
    madrid_make_network
    madrid_up_daemons "$@"
}

# Everything but the network (for a scenario that adds to the network first): PKI, four
# KMEs, both hospital daemons (POLICY, ROTATION).
madrid_up_daemons() {
    local policy=${1:-require} rotation=${2:-}
    madrid_pki
    local n
    # Followers first, so each leader's first pulses find the quantum port open.
    for n in hb r2 r3 r1 ha; do madrid_kme_config "$n"; madrid_start_kme "$n"; done
    [[ $MADRID_SOURCE == cvqkd ]] && madrid_wait_links 240
    keygen a
    keygen b
    madrid_daemon_config a "$policy" "$rotation"
    madrid_daemon_config b "$policy" "$rotation"
    NS_A=$(madrid_ns ha) NS_B=$(madrid_ns hb)
    start_daemon a
    start_daemon b
}

# madrid_agreed_key_id TRIES PAUSE: reads both hospitals' current QKD key_ID until they
# agree, at most TRIES times PAUSE seconds apart (a read can straddle a rotation: A reads
# key n, B already n+1). Sets AGREED_KEY_ID (empty if they never agreed) and KEY_ID_A,
# KEY_ID_B (the last reads); returns 1 if they never agreed.
madrid_agreed_key_id() {
    AGREED_KEY_ID=""
    for _ in $(seq "$1"); do
        KEY_ID_A=$(peer_field a "p['current_key']['qkd_key_id']")
        KEY_ID_B=$(peer_field b "p['current_key']['qkd_key_id']")
        [[ $KEY_ID_A =~ ^[0-9a-f-]{36}$ && $KEY_ID_A == "$KEY_ID_B" ]] && { AGREED_KEY_ID=$KEY_ID_A; return 0; }
        sleep "$2"
    done
    return 1
}

# madrid_pools: one line per link with the pad bits each end holds, read from every KME's
# GET /kme/v1/status over mutual TLS (asked with a neighbour KME's certificate).
madrid_pools() {
    local n asker
    for n in "${MADRID_NODES[@]}"; do
        asker=${MADRID_ASKER[$n]}
        ip netns exec "$(madrid_ns "$n")" python3 - "${MADRID_KME_ADDR[$n]}" "$KME_PORT" "$WORK/pki" \
            "kme-${MADRID_NAME[$asker]}" <<'PY' || true
import http.client, json, ssl, sys
addr, port, pki, asker = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(cafile=f"{pki}/ca.pem")
ctx.load_cert_chain(f"{pki}/{asker}.pem", f"{pki}/{asker}.key")
c = http.client.HTTPSConnection(addr, port, context=ctx, timeout=3)
c.request("GET", "/kme/v1/status")
d = json.loads(c.getresponse().read())
for l in d["links"]:
    if l["role"] == "leader":
        print(f"    link {d['kme_id']} -> {l['peer']}: pool {l['send_pool_bits']:>9} bits one way, "
              f"{l['receive_pool_bits']:>9} the other; spent {l['consumed_bits']} bits, "
              f"{l['relays_sent'] + l['relays_received']} relays; source: {l['source']}")
PY
    done
}

# madrid_status NODE: the node's KME status document (JSON), asked over mutual TLS with a
# neighbour KME's certificate.
madrid_status() {
    local n=$1 asker=${MADRID_ASKER[$1]}
    ip netns exec "$(madrid_ns "$n")" python3 - "${MADRID_KME_ADDR[$n]}" "$KME_PORT" "$WORK/pki" \
        "kme-${MADRID_NAME[$asker]}" <<'PY'
import http.client, ssl, sys
addr, port, pki, asker = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(cafile=f"{pki}/ca.pem")
ctx.load_cert_chain(f"{pki}/{asker}.pem", f"{pki}/{asker}.key")
c = http.client.HTTPSConnection(addr, port, context=ctx, timeout=3)
c.request("GET", "/kme/v1/status")
print(c.getresponse().read().decode())
PY
}

# madrid_link_field NODE PEER_NODE PYTHON_EXPR: a field of one link in the node's status
# (over `l`, the link object; `c` is its cvqkd figures or {}).
madrid_link_field() {
    madrid_status "$1" | python3 -c "
import json, sys
d = json.load(sys.stdin)
l = next(l for l in d['links'] if l['peer'] == 'kme-${MADRID_NAME[$2]}')
c = l.get('cvqkd') or {}
print($3)"
}

# madrid_wait_links SECONDS: waits until every CV-QKD link has stored key at both ends.
madrid_wait_links() {
    local deadline=$((SECONDS + $1)) pair
    for pair in "${MADRID_LINKS[@]}"; do
        set -- $pair
        until [[ $(madrid_link_field "$1" "$2" "c.get('key_bits', 0) > 0" 2>/dev/null) == True &&
                 $(madrid_link_field "$2" "$1" "c.get('key_bits', 0) > 0" 2>/dev/null) == True ]]; do
            (( SECONDS < deadline )) || { tail -5 "$WORK"/kme-*.log >&2; fail "CV-QKD link $1-$2 stored no key in time"; }
            sleep 0.5
        done
    done
}

# madrid_cvqkd_table: one line per CV-QKD link (leader's side): estimates, β, FER, rate, alarm.
madrid_cvqkd_table() {
    local pair
    for pair in "${MADRID_LINKS[@]}"; do
        set -- $pair
        madrid_link_field "$1" "$2" "'    %-22s %2d km  T^ %s  xi^ %s SNU  SNR %s  beta %s  FER %s  blocks %d (%d aborted)  key %d bits, %.0f bit/s%s' % (
            '${MADRID_NAME[$1]} -> ${MADRID_NAME[$2]}', c['distance_km'],
            *('%.4f' % c[k] if c.get(k) is not None else '-' for k in ('transmittance_estimate', 'excess_noise_estimate_snu')),
            *('%.3f' % c[k] if c.get(k) is not None else '-' for k in ('snr', 'beta', 'fer')),
            c['blocks'], c['blocks_aborted'], c['key_bits'], c['secret_key_rate_bits_per_second'],
            ('  ALARM: ' + c['alarm']) if c.get('alarm') else '')"
    done
}

# Eve's node for each link she can attack ("LEADER FOLLOWER"): her namespace suffix and
# /24 (hanging off the leader).
declare -A MADRID_EVE_NS=([r1 r2]=eve [r3 hb]=eve2)
declare -A MADRID_EVE_NET=([r1 r2]=198.18.4 [r3 hb]=198.18.7)

# madrid_eve_on ATTACK [LINK]: Eve splices into the fiber of LINK ("r1 r2", the ring fiber
# ring-1 -> ring-2, by default; or "r3 hb"). She gets her own node off the link's leader;
# nftables there sends the link's pulses (new connections to the follower's quantum port)
# to her, and she passes them on, attacked, through the leader (source-NATed to the
# leader's address on that fiber, as light on the same fiber).
madrid_eve_on() {
    local attack=$1 link=${2:-r1 r2}
    local l f l_addr f_addr ns net port var
    # shellcheck disable=SC2086
    read -r l f <<<"$link"
    read -r l_addr f_addr <<<"${MADRID_LINK_ADDRS[$link]}"
    ns="qs-${TAG}-${MADRID_EVE_NS[$link]}" net=${MADRID_EVE_NET[$link]}
    port=${MADRID_QUANTUM_PORT[$link]}
    if ! ip netns list | grep -qw "$ns"; then
        ip netns add "$ns"
        EXTRA_NAMESPACES+=("$ns")
        ip -n "$ns" link set lo up
        ip link add to-eve netns "$(madrid_ns "$l")" type veth peer name "to-$l" netns "$ns"
        ip -n "$(madrid_ns "$l")" addr add "$net.1/24" dev to-eve
        ip -n "$ns" addr add "$net.2/24" dev "to-$l"
        ip -n "$(madrid_ns "$l")" link set to-eve up
        ip -n "$ns" link set "to-$l" up
        ip -n "$ns" route add default via "$net.1"
        ip -n "$(madrid_ns "$f")" route add "$net.0/24" via "$l_addr"
    fi
    ip netns exec "$ns" "$QSHIELD" qkd eve --listen "$net.2:$EVE_PORT" \
        --forward "$f_addr:$port" --attack "$attack" >>"$WORK/${MADRID_EVE_NS[$link]}.log" 2>&1 &
    var="EVE_PID_$l$f"
    printf -v "$var" '%s' "$!"
    PIDS+=("$!")
    local deadline=$((SECONDS + 10))
    until ip netns exec "$ns" ss -Hltn "sport = :$EVE_PORT" | grep -q .; do
        (( SECONDS < deadline )) || { cat "$WORK/${MADRID_EVE_NS[$link]}.log" >&2; fail "Eve did not listen"; }
        sleep 0.1
    done
    # Spliced in-line, Eve sends on the leader's fiber: the follower's quantum port accepts
    # pulses only from its leader's address, so her forwarded pulses leave with that address.
    ip netns exec "$(madrid_ns "$l")" nft -f - <<NFT
table ip eve {
    chain out {
        type nat hook output priority -100;
        ip daddr $f_addr tcp dport $port dnat to $net.2:$EVE_PORT
    }
    chain post {
        type nat hook postrouting priority 100;
        ip saddr $net.2 ip daddr $f_addr tcp dport $port snat to $l_addr
    }
}
NFT
}

# madrid_eve_off [LINK]: the splice removed (new connections go straight to the follower)
# and that Eve stopped.
madrid_eve_off() {
    local link=${1:-r1 r2} l f var
    read -r l f <<<"$link"
    ip netns exec "$(madrid_ns "$l")" nft delete table ip eve 2>/dev/null || true
    var="EVE_PID_$l$f"
    kill -TERM "${!var}" 2>/dev/null || true
    forget_pid "${!var}" 2>/dev/null || true
}

# madrid_last_path: the path of the last relay either hospital's KME began (whichever
# hospital's daemon initiated the rotation is the master), written from hospital-a to
# hospital-b: KME names without "kme-", joined by " > "; the paths of a key sent in shares
# joined by " | ".
madrid_last_path() {
    { madrid_status ha; echo; madrid_status hb; } | python3 -c "
import json, sys
relays = []
for doc in sys.stdin.read().split('\n{'):
    doc = doc if doc.startswith('{') else '{' + doc
    d = json.loads(doc)
    relays += [r for r in d['routing']['relays'] if r['path'][0] == d['kme_id']]
if not relays:
    print('none'); sys.exit()
last = max(relays, key=lambda r: r['at_unix_ms'])
paths = [r['path'] for r in relays if last['key_ids'][0] in r['key_ids']]
def shown(p):
    p = p if p[0] == 'kme-hospital-a' else p[::-1]
    return ' > '.join(k.removeprefix('kme-') for k in p)
print(' | '.join(sorted(shown(p) for p in paths)))"
}

# madrid_shares_seen: for the last key relayed in shares, what each KME saw of it: "share i
# of n" per relay it took part in (a ring node sees one share; the hospitals see all).
madrid_shares_seen() {
    local n last=""
    for n in ha hb; do
        last+=$(madrid_status "$n" | python3 -c "
import json, sys
d = json.load(sys.stdin)
mine = [r for r in d['routing']['relays'] if r['path'][0] == d['kme_id'] and r.get('share')]
print('%d %s' % (mine[-1]['at_unix_ms'], mine[-1]['key_ids'][0]) if mine else '')")$'\n'
    done
    last=$(sort -n <<<"$last" | tail -1 | cut -d' ' -f2)
    [[ -n $last ]] || { echo "    no key relayed in shares yet"; return; }
    echo "    key $last:"
    for n in "${MADRID_NODES[@]}"; do
        madrid_status "$n" | python3 -c "
import json, sys
d = json.load(sys.stdin)
seen = [r for r in d['routing']['relays'] if '$last' in r['key_ids']]
what = ', '.join('share %d of %d over %s' % (r['share']['index'] + 1, r['share']['count'],
                 ' > '.join(k.removeprefix('kme-') for k in r['path'])) for r in seen)
print('      %-16s %s' % (d['kme_id'].removeprefix('kme-'), what or 'nothing'))"
    done
}

# madrid_first_session_over PATH EPOCH: seconds from EPOCH to the first session hospital-a
# established on a QKD key relayed over PATH (as madrid_last_path writes it), if any.
madrid_first_session_over() {
    { madrid_status ha; echo; madrid_status hb; } | python3 -c "
import datetime, json, re, sys
want, since, log = sys.argv[1], float(sys.argv[2]), sys.argv[3]
ids = set()
for doc in sys.stdin.read().split('\n{'):
    d = json.loads(doc if doc.startswith('{') else '{' + doc)
    for r in d['routing']['relays']:
        p = r['path'] if r['path'][0] == 'kme-hospital-a' else r['path'][::-1]
        if ' > '.join(k.removeprefix('kme-') for k in p) == want:
            ids.update(r['key_ids'])
key = None
for line in open(log):
    m = re.search(r'QKD key delivered .*key_id=([0-9a-f-]+)', line)
    if m:
        key = m.group(1)
        continue
    if 'session established' in line and key in ids:
        t = datetime.datetime.fromisoformat(line.split()[0].replace('Z', '+00:00')).timestamp()
        if t >= since:
            print('%.1f' % (t - since))
            break
" "$1" "$2" "$WORK/a.log"
}

# madrid_log_time FILE PATTERN: the Unix time of the first line of FILE matching PATTERN.
madrid_log_time() {
    python3 -c "
import datetime, sys
for line in open(sys.argv[1]):
    if sys.argv[2] in line:
        print(datetime.datetime.fromisoformat(line.split()[0].replace('Z', '+00:00')).timestamp()); break
" "$1" "$2"
}
