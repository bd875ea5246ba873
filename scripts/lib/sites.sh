# Site helpers shared by the namespace tests (tests/netns/*.sh) and the demo (scripts/demo.sh).
#
# Every scenario builds its own pair of network namespaces joined by a veth pair, runs
# real qshield daemons with real TUN devices in them, and removes everything it made on
# exit (processes by PID, namespaces by name). Addresses: underlay 198.18.0.0/24 and
# fd00:5158::/64, overlay 198.19.0.0/24 and fd00:5159::/64 — only inside these namespaces.

set -euo pipefail

QSHIELD=${QSHIELD_BIN:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/target/debug/qshield}
TAG=${TAG:-t$$}
NS_A=qs-${TAG}-a
NS_B=qs-${TAG}-b
NS_C=qs-${TAG}-c     # only made by make_three_sites
NS_SW=qs-${TAG}-sw   # only made by make_switch (make_three_sites, hub_spokes)
NS_R=qs-${TAG}-r     # only made by make_relay_sites (the impairment relay's namespace)
IMPAIR=${QSHIELD_IMPAIR_BIN:-$(dirname "$QSHIELD")/qshield-impair}
declare -A RELAYED_ENDPOINT=()   # side -> the endpoint its peer names for it (make_relay_sites)
WORK=$(mktemp -d "/tmp/qshield-${TAG}.XXXXXX")
PIDS=()
EXTRA_NAMESPACES=()   # further namespaces a scenario made (removed at exit)

log() { printf '[%s %(%H:%M:%S)T] %s\n' "$(basename "$0" .sh)" -1 "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }

require_root() {
    [[ $(id -u) -eq 0 ]] || fail "needs root (network namespaces, TUN devices): run the tests as root"
    for t in ip ping iperf3 nft python3; do
        command -v "$t" >/dev/null || fail "missing tool '$t' (apt-get install --no-install-recommends iproute2 iputils-ping iperf3 nftables python3)"
    done
    [[ -x $QSHIELD ]] || fail "qshield binary not found at $QSHIELD (cargo build first)"
}

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    local ns
    for ns in "$NS_A" "$NS_B" "${EXTRA_NAMESPACES[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
    if [[ ${KEEP_WORK:-0} == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# Two namespaces, a veth between them, IPv4 and IPv6 underlay addresses.
make_namespaces() {
    ip netns add "$NS_A"
    ip netns add "$NS_B"
    ip link add veth0 netns "$NS_A" type veth peer name veth0 netns "$NS_B"
    ip -n "$NS_A" addr add 198.18.0.1/24 dev veth0
    ip -n "$NS_B" addr add 198.18.0.2/24 dev veth0
    ip -n "$NS_A" addr add fd00:5158::1/64 dev veth0 nodad
    ip -n "$NS_B" addr add fd00:5158::2/64 dev veth0 nodad
    for ns in "$NS_A" "$NS_B"; do
        ip -n "$ns" link set lo up
        ip -n "$ns" link set veth0 up
    done
}

# keygen SIDE -> $WORK/SIDE/{x25519.key,mlkem768.key,public.key}
keygen() { "$QSHIELD" keygen --out-dir "$WORK/$1" >/dev/null; }

# write_config SIDE PEER_SIDE [extra rotation lines] ; env: UNDERLAY_A/B, CIPHER
write_config() {
    local side=$1 peer=$2 rotation=${3:-}
    local n; n=$([[ $side == a ]] && echo 1 || echo 2)
    local pn; pn=$([[ $peer == a ]] && echo 1 || echo 2)
    local endpoint; endpoint=$(endpoint_of "$peer")
    cat >"$WORK/$side.toml" <<CFG
[interface]
name = "qs$side"
address = ["198.19.0.$n/24", "fd00:5159::$n/64"]
listen_port = 51820
listen_address = "${LISTEN_ADDRESS:-0.0.0.0}"
identity_dir = "$WORK/$side"
cipher = "${CIPHER:-aes-256-gcm}"
control_socket = "$WORK/$side.sock"
offload = "${OFFLOAD:-auto}"

[rotation]
$rotation

[[peer]]
name = "site-$peer"
endpoint = "$endpoint"
public_key_file = "$WORK/${PEER_KEY_DIR_OVERRIDE:-$peer}/public.key"
allowed_ips = ["198.19.0.$pn/32", "fd00:5159::$pn/128"]
CFG
}

endpoint_of() {
    local n; n=$([[ $1 == a ]] && echo 1 || echo 2)
    # make_relay_sites sets where each side reaches the other: the relay's address on its side
    if [[ -n ${RELAYED_ENDPOINT[$1]:-} ]]; then echo "${RELAYED_ENDPOINT[$1]}"; return; fi
    if [[ ${UNDERLAY:-4} == 6 ]]; then echo "[fd00:5158::$n]:51820"; else echo "198.18.0.$n:51820"; fi
}

ns_of() {
    case $1 in
    a) echo "$NS_A" ;;
    c) echo "$NS_C" ;; # the third site of make_three_sites
    *) echo "$NS_B" ;;
    esac
}

# start_daemon SIDE : runs `qshield up` in the side's namespace, logs to $WORK/SIDE.log
start_daemon() {
    local side=$1
    ip netns exec "$(ns_of "$side")" "$QSHIELD" up --config "$WORK/$side.toml" --log-level "${LOG_LEVEL:-info}" \
        >>"$WORK/$side.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    eval "PID_$side=$pid"
    # Ready when *this* daemon answers on its socket (a stale socket file may exist).
    for _ in $(seq 100); do
        [[ $(status_field "$side" "d['pid']" 2>/dev/null) == "$pid" ]] && return 0
        kill -0 "$pid" 2>/dev/null || { cat "$WORK/$side.log" >&2; fail "daemon $side exited at start"; }
        sleep 0.1
    done
    cat "$WORK/$side.log" >&2
    fail "daemon $side did not answer on its control socket"
}

# stop_daemon SIDE [SIGNAL] [SECONDS]: signal the side's daemon, wait for it to exit;
# sets STOP_RC (its exit status) and STOP_SECS; fails if it outlives SECONDS (default 3).
stop_daemon() {
    local side=$1 sig=${2:-TERM} secs=${3:-3} pid_var=PID_$1 t0
    local pid=${!pid_var}
    t0=$(date +%s.%N)
    kill "-$sig" "$pid"
    wait_exit "$pid" "$secs" || { show_logs; fail "daemon $side still runs $secs s after SIG$sig"; }
    STOP_SECS=$(python3 -c "import time; print(round(time.time() - $t0, 2))")
    STOP_RC=0
    wait "$pid" || STOP_RC=$?
    forget_pid "$pid"
}

# forget_pid PID: a process that has exited is no longer ours to clean up (its PID may be
# reused by someone else's process).
forget_pid() {
    local keep=() p
    for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

status_json() { "$QSHIELD" status --json --socket "$WORK/$1.sock"; }

# jq-free field access: status_field SIDE PYTHON_EXPR (over `d`, the status document)
status_field() {
    status_json "$1" | python3 -c "import json,sys; d=json.load(sys.stdin); print($2)"
}

# wait_ping SIDE ADDR [SECONDS]: until one ping from SIDE's namespace to ADDR answers
# (a deadline, not a count: an unanswered ping itself waits up to 1 s)
wait_ping() {
    local side=$1 addr=$2 secs=${3:-10}
    local deadline=$(($(date +%s%N) + secs * 1000000000))
    while (($(date +%s%N) < deadline)); do
        ip netns exec "$(ns_of "$side")" ping -c1 -W1 "$addr" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    return 1
}

# Standard two-site tunnel: namespaces, keys, configs (optional rotation lines), daemons.
bring_up() {
    make_namespaces
    keygen a
    keygen b
    write_config a b "${1:-}"
    write_config b a "${1:-}"
    start_daemon a
    start_daemon b
}

iperf_server() {
    ip netns exec "$NS_B" iperf3 -s -1 -B "${1:-198.19.0.2}" >"$WORK/iperf-server.log" 2>&1 &
    PIDS+=($!)
    sleep 0.5
}

# iperf_run ADDR SECONDS [iperf3 args...]: a TCP run from a to b's iperf_server (started
# here), JSON in $WORK/iperf.json; returns iperf3's exit status.
iperf_run() {
    local addr=$1 secs=$2
    shift 2
    iperf_server "$addr"
    ip netns exec "$NS_A" iperf3 -c "$addr" -t "$secs" -J "$@" >"$WORK/iperf.json"
}

# iperf_field PYTHON_EXPR: over `d`, the last iperf_run's JSON document
iperf_field() {
    python3 -c "import json; d=json.load(open('$WORK/iperf.json')); print($1)"
}

# iperf_gbps: received throughput of the last iperf_run, Gbit/s
iperf_gbps() { iperf_field "round(d['end']['sum_received']['bits_per_second']/1e9, 3)"; }

# peer_field SIDE PYTHON_EXPR: over `p`, the side's first (only) peer in its status
peer_field() { status_field "$1" "(lambda p: $2)(d['peers'][0])"; }

# wait_exit PID SECONDS: until PID is gone (0) or the time is up (1)
wait_exit() {
    local pid=$1 secs=$2 i
    for i in $(seq $((secs * 20))); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.05
    done
    return 1
}

# assert_alive SIDE: its daemon process still runs
assert_alive() {
    local pid_var=PID_$1
    kill -0 "${!pid_var}" 2>/dev/null || { show_logs; fail "daemon $1 (pid ${!pid_var}) died"; }
}

# tunnel_ok: ping both ways over IPv4 inside the tunnel (first handshake may take a while)
tunnel_ok() {
    wait_ping a 198.19.0.2 "${1:-15}" || { show_logs; fail "no ping a->b over the tunnel"; }
    wait_ping b 198.19.0.1 5 || { show_logs; fail "no ping b->a over the tunnel"; }
}

# log_has SIDE PHRASE: the side's daemon log contains PHRASE (fixed string)
log_has() { grep -qF -- "$2" "$WORK/$1.log"; }

show_logs() {
    for s in a b c; do
        if [[ -f $WORK/$s.log ]]; then echo "--- daemon $s log (tail)"; tail -n "${1:-30}" "$WORK/$s.log"; fi
    done >&2
}

# transfer_sha MIB ADDR [PORT]: sends MIB MiB of random bytes from a to ADDR (in b) over one
# TCP connection, hashing at both ends (nothing is written to disk); fails unless the SHA-256
# of what b received equals what a sent. Sets TRANSFER_GBPS.
transfer_sha() {
    local mib=$1 addr=$2 port=${3:-5301}
    ip netns exec "$NS_B" python3 - "$addr" "$port" >"$WORK/recv.sha" 2>"$WORK/recv.err" <<'PY' &
import hashlib, socket, sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1); s.settimeout(30)
c, _ = s.accept(); c.settimeout(60)
h, n, buf = hashlib.sha256(), 0, bytearray(1 << 20)
while True:
    k = c.recv_into(buf)
    if k == 0: break
    h.update(memoryview(buf)[:k]); n += k
print(h.hexdigest(), n)
PY
    local rpid=$!
    PIDS+=("$rpid")
    sleep 0.5
    ip netns exec "$NS_A" python3 - "$addr" "$port" "$mib" >"$WORK/send.sha" <<'PY' || { show_logs; cat "$WORK/recv.err" >&2; fail "sender failed"; }
import hashlib, os, socket, sys, time
addr, port, mib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.create_connection((addr, port), timeout=30)
h, t0 = hashlib.sha256(), time.time()
for _ in range(mib):
    chunk = os.urandom(1 << 20)
    h.update(chunk); s.sendall(chunk)
s.shutdown(socket.SHUT_WR)
s.recv(1)
print(h.hexdigest(), mib << 20, round(mib * 8 * 1.048576 / 1000 / (time.time() - t0), 3))
PY
    wait "$rpid" || { cat "$WORK/recv.err" >&2; fail "receiver failed"; }
    forget_pid "$rpid"
    read -r sent_sha sent_n TRANSFER_GBPS <"$WORK/send.sha"
    read -r recv_sha recv_n <"$WORK/recv.sha"
    [[ $sent_sha == "$recv_sha" && $sent_n == "$recv_n" ]] \
        || fail "transfer of $mib MiB to $addr: sent $sent_n bytes sha256 $sent_sha, received $recv_n bytes sha256 $recv_sha"
    log "$mib MiB to $addr: sha256 matches at both ends ($TRANSFER_GBPS Gbit/s)"
}

# ---------------------------------------------------------------- three sites
# Sites a, b and c, each in its own namespace (NS_A, NS_B, NS_C) with a veth0 plugged into
# one bridge in a fourth namespace, NS_SW: site n (a 1, b 2, c 3) has underlay address
# 198.18.0.n and overlay address 198.19.0.n, and each site's daemon has the other two as
# peers. The two-site helpers (start_daemon, stop_daemon, status_field, wait_ping, ...)
# take `c` as a side too.

# site_number SIDE: a 1, b 2, c 3
site_number() {
    case $1 in
    a) echo 1 ;;
    b) echo 2 ;;
    c) echo 3 ;;
    *) fail "no site '$1'" ;;
    esac
}

make_three_sites() {
    local s ns
    EXTRA_NAMESPACES+=("$NS_C")
    for ns in "$NS_A" "$NS_B" "$NS_C"; do
        ip netns add "$ns"
        ip -n "$ns" link set lo up
    done
    make_switch
    for s in a b c; do switch_port "$s" "198.18.0.$(site_number "$s")"; done
}

# make_switch: the namespace NS_SW with a bridge br0 (removed at exit), for switch_port.
make_switch() {
    EXTRA_NAMESPACES+=("$NS_SW")
    ip netns add "$NS_SW"
    ip -n "$NS_SW" link set lo up
    ip -n "$NS_SW" link add br0 type bridge
    ip -n "$NS_SW" link set br0 up
}

# switch_port SIDE ADDR: a veth0 in SIDE's namespace (ns_of) with ADDR/24, its peer sw-SIDE
# a port of NS_SW's bridge.
switch_port() {
    local ns; ns=$(ns_of "$1")
    ip link add veth0 netns "$ns" type veth peer name "sw-$1" netns "$NS_SW"
    ip -n "$NS_SW" link set "sw-$1" master br0
    ip -n "$NS_SW" link set "sw-$1" up
    ip -n "$ns" addr add "$2/24" dev veth0
    ip -n "$ns" link set veth0 up
}

# write_config_sites SIDE PEER_SIDE... [extra rotation lines in $ROTATION]: one [[peer]]
# per PEER_SIDE, named site-PEER, at 198.18.0.n:51820, allowed 198.19.0.n/32.
write_config_sites() {
    local side=$1 peer pn n
    shift
    n=$(site_number "$side")
    cat >"$WORK/$side.toml" <<CFG
[interface]
name = "qs$side"
address = ["198.19.0.$n/24"]
listen_port = 51820
identity_dir = "$WORK/$side"
cipher = "${CIPHER:-aes-256-gcm}"
control_socket = "$WORK/$side.sock"

[rotation]
${ROTATION:-}
CFG
    for peer in "$@"; do
        pn=$(site_number "$peer")
        cat >>"$WORK/$side.toml" <<CFG

[[peer]]
name = "site-$peer"
endpoint = "198.18.0.$pn:51820"
public_key_file = "$WORK/$peer/public.key"
allowed_ips = ["198.19.0.$pn/32"]
CFG
    done
}

# Three sites, each with the other two as peers, all daemons up.
bring_up_three_sites() {
    make_three_sites
    keygen a
    keygen b
    keygen c
    write_config_sites a b c
    write_config_sites b a c
    write_config_sites c a b
    start_daemon a
    start_daemon b
    start_daemon c
}

# peer_named SIDE PEER_NAME PYTHON_EXPR: over `p`, the side's peer of that name
peer_named() {
    status_field "$1" "(lambda p: $3)(next(q for q in d['peers'] if q['name'] == '$2'))"
}

# ---------------------------------------------------------------- through the impairment relay
# Sites a and b with a relay namespace NS_R between them, no route across: a's veth0
# 198.18.1.1/24 faces R's to-a 198.18.1.2, b's veth0 198.18.2.2/24 faces R's to-b
# 198.18.2.1. R does not forward IP; the daemons reach each other only through
# qshield-impair (start_relay), which listens on 198.18.1.2:51820 for a and on
# 198.18.2.1:51820 for b. Each daemon names the relay's address on its side as its
# peer's endpoint (write_config reads RELAYED_ENDPOINT).
RELAY_A_LISTEN=198.18.1.2:51820
RELAY_B_LISTEN=198.18.2.1:51820

make_relay_sites() {
    local ns
    EXTRA_NAMESPACES+=("$NS_R")
    for ns in "$NS_A" "$NS_B" "$NS_R"; do
        ip netns add "$ns"
        ip -n "$ns" link set lo up
    done
    ip link add veth0 netns "$NS_A" type veth peer name to-a netns "$NS_R"
    ip link add veth0 netns "$NS_B" type veth peer name to-b netns "$NS_R"
    ip -n "$NS_A" addr add 198.18.1.1/24 dev veth0
    ip -n "$NS_R" addr add 198.18.1.2/24 dev to-a
    ip -n "$NS_R" addr add 198.18.2.1/24 dev to-b
    ip -n "$NS_B" addr add 198.18.2.2/24 dev veth0
    ip -n "$NS_A" link set veth0 up
    ip -n "$NS_B" link set veth0 up
    ip -n "$NS_R" link set to-a up
    ip -n "$NS_R" link set to-b up
    ip netns exec "$NS_R" sysctl -qw net.ipv4.ip_forward=0
    RELAYED_ENDPOINT=([a]=$RELAY_B_LISTEN [b]=$RELAY_A_LISTEN)
}

# start_relay [qshield-impair flags...]: runs the relay in NS_R between the two sites
# (override RELAY_NS, RELAY_A_LISTEN, RELAY_B_LISTEN, RELAY_A_PEER, RELAY_B_PEER for other
# topologies); its counters land in $WORK/relay.json every second, its log in
# $WORK/relay.log. Waits until both sockets are bound.
start_relay() {
    [[ -x $IMPAIR ]] || fail "qshield-impair not found at $IMPAIR (cargo build first)"
    local ns=${RELAY_NS:-$NS_R}
    rm -f "$WORK/relay.json"
    ip netns exec "$ns" "$IMPAIR" --a-listen "$RELAY_A_LISTEN" --b-listen "$RELAY_B_LISTEN" \
        --a-peer "${RELAY_A_PEER:-198.18.1.1:51820}" --b-peer "${RELAY_B_PEER:-198.18.2.2:51820}" \
        --seed "${RELAY_SEED:-1}" --stats "$WORK/relay.json" "$@" >>"$WORK/relay.log" 2>&1 &
    RELAY_PID=$!
    PIDS+=("$RELAY_PID")
    for _ in $(seq 50); do
        [[ $(ip netns exec "$ns" ss -Hlun "( sport = :${RELAY_A_LISTEN##*:} or sport = :${RELAY_B_LISTEN##*:} )" | wc -l) -ge 2 ]] && return 0
        kill -0 "$RELAY_PID" 2>/dev/null || { cat "$WORK/relay.log" >&2; fail "qshield-impair exited at start"; }
        sleep 0.1
    done
    cat "$WORK/relay.log" >&2
    fail "qshield-impair did not bind its sockets"
}

# stop_relay: SIGTERM the relay; it writes its final counters to $WORK/relay.json.
stop_relay() {
    kill -TERM "$RELAY_PID"
    wait_exit "$RELAY_PID" 5 || fail "qshield-impair still runs 5 s after SIGTERM"
    wait "$RELAY_PID" || { cat "$WORK/relay.log" >&2; fail "qshield-impair failed"; }
    forget_pid "$RELAY_PID"
}

# relay_field PYTHON_EXPR: over `d`, the relay's last stats document ($WORK/relay.json;
# d['a_to_b'] and d['b_to_a'] hold each direction's counters)
relay_field() {
    python3 -c "import json; d=json.load(open('$WORK/relay.json')); print($1)"
}

# relay_summary: one line per direction with everything the relay did
relay_summary() {
    relay_field "'\n'.join('relay %s: %s' % (k, ', '.join('%s %d' % kv for kv in d[k].items())) for k in ('a_to_b', 'b_to_a'))"
}

# bring_up_relayed ROTATION [qshield-impair flags...]: the two-site tunnel through the relay:
# namespaces, keys, configs (with the ROTATION lines), the relay with those flags, daemons.
bring_up_relayed() {
    local rotation=$1
    shift
    make_relay_sites
    keygen a
    keygen b
    write_config a b "$rotation"
    write_config b a "$rotation"
    start_relay "$@"
    start_daemon b
    start_daemon a
}
