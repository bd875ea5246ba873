#!/usr/bin/env bash
# scripts/test.sh - run every qshield test: unit, property, core simulation, config,
# crypto vectors, and the namespace tests with real TUN devices, UDP and iperf3.
# Installs the apt packages the tests need if they are missing. Run as root (the namespace
# tests create network namespaces and TUN devices; without root they fail and say why).
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[test %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

need=()
for pair in iperf3:iperf3 ip:iproute2 ping:iputils-ping nft:nftables python3:python3 pgrep:procps ss:iproute2; do
    command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
done
# Build dependencies of the independent ETSI 014 client used by the KME interop test.
for pkg in pkg-config libssl-dev libsodium-dev; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if ((${#need[@]})); then
    [[ $(id -u) -eq 0 ]] || { log "missing ${need[*]}; run as root to install them"; exit 1; }
    log "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
log "cargo test (unit, property, simulation, vectors and namespace suites)"
out=$(mktemp /tmp/qshield-test.XXXXXX)
trap 'rm -f "$out"' EXIT
set +e
cargo test --no-fail-fast "$@" 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}
set -e
# One closing line over every test binary (cargo prints one "test result" line each).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$out"
exit "$rc"
