#!/usr/bin/env bash
# scripts/test.sh - run every qshield test: unit, property, core simulation, config,
# crypto vectors, and the namespace tests with real TUN devices, UDP and iperf3.
# Installs what the tests need first (scripts/install-deps.sh). Run as root (the namespace
# tests create network namespaces and TUN devices; without root they fail and say why).
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[test %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

bash scripts/install-deps.sh
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
