# Shared helpers for the namespace tests. Sourced by each scenario script.
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
WORK=$(mktemp -d "/tmp/qshield-${TAG}.XXXXXX")
PIDS=()

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
    ip netns del "$NS_A" 2>/dev/null || true
    ip netns del "$NS_B" 2>/dev/null || true
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
    if [[ ${UNDERLAY:-4} == 6 ]]; then echo "[fd00:5158::$n]:51820"; else echo "198.18.0.$n:51820"; fi
}

ns_of() { [[ $1 == a ]] && echo "$NS_A" || echo "$NS_B"; }

# start_daemon SIDE : runs `qshield up` in the side's namespace, logs to $WORK/SIDE.log
start_daemon() {
    local side=$1
    ip netns exec "$(ns_of "$side")" "$QSHIELD" up --config "$WORK/$side.toml" --log-level "${LOG_LEVEL:-info}" \
        >>"$WORK/$side.log" 2>&1 &
    PIDS+=($!)
    eval "PID_$side=$!"
    for _ in $(seq 100); do
        [[ -S $WORK/$side.sock ]] && return 0
        kill -0 "$!" 2>/dev/null || { cat "$WORK/$side.log" >&2; fail "daemon $side exited at start"; }
        sleep 0.1
    done
    cat "$WORK/$side.log" >&2
    fail "daemon $side did not open its control socket"
}

status_json() { "$QSHIELD" status --json --socket "$WORK/$1.sock"; }

# jq-free field access: status_field SIDE PYTHON_EXPR (over `d`, the status document)
status_field() {
    status_json "$1" | python3 -c "import json,sys; d=json.load(sys.stdin); print($2)"
}

# wait_ping SIDE ADDR [SECONDS]: until one ping from SIDE's namespace to ADDR answers
wait_ping() {
    local side=$1 addr=$2 secs=${3:-10} i
    for i in $(seq $((secs * 5))); do
        ip netns exec "$(ns_of "$side")" ping -c1 -W1 -i0.2 "$addr" >/dev/null 2>&1 && return 0
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

show_logs() {
    for s in a b; do
        [[ -f $WORK/$s.log ]] && { echo "--- daemon $s log (tail)"; tail -n "${1:-30}" "$WORK/$s.log"; }
    done >&2
}
