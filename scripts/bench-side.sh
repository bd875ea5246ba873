#!/usr/bin/env bash
# One side of the qshield contender for peer-bench.sh: writes a config from the BENCH_*
# variables the harness exports and runs the daemon in the foreground (the harness kills
# it by PID). Needs QSHIELD (binary) and BENCH_KEYS (dir with a/ and b/ identities).
set -euo pipefail
cfg=$BENCH_OUT_DIR/qshield-$BENCH_SIDE.toml
cat >"$cfg" <<CFG
[interface]
name = "$BENCH_IFACE"
address = ["$BENCH_LOCAL_OVERLAY/$BENCH_OVERLAY_PREFIX"]
mtu = $BENCH_MTU
listen_port = $BENCH_PORT
identity_dir = "$BENCH_KEYS/$BENCH_SIDE"
cipher = "${BENCH_CIPHER:-aes-256-gcm}"
control_socket = "$BENCH_OUT_DIR/qshield-$BENCH_SIDE.sock"
offload = "${BENCH_OFFLOAD:-auto}"

[rotation]
${BENCH_ROTATION:-}

[[peer]]
name = "site-$BENCH_PEER_SIDE"
endpoint = "${BENCH_PEER_ENDPOINT:-$BENCH_PEER_UNDERLAY:$BENCH_PEER_PORT}"
public_key_file = "$BENCH_KEYS/$BENCH_PEER_SIDE/public.key"
allowed_ips = ["$BENCH_PEER_OVERLAY/32"]
CFG
exec "$QSHIELD" up --config "$cfg" --log-level "${BENCH_LOG_LEVEL:-warn}"
