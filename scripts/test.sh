#!/usr/bin/env bash
# scripts/test.sh - run every qshield test: unit, property, core simulation, config,
# crypto vectors, and the namespace tests with real TUN devices, UDP and iperf3.
# Installs what the tests need first (scripts/install-deps.sh). Run as root (the namespace
# tests create network namespaces and TUN devices; without root they fail and say why).
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[test %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

# With no arguments the run ends with the fuzz smoke, which needs nightly and cargo-fuzz.
if (($# == 0)); then bash scripts/install-deps.sh --fuzz; else bash scripts/install-deps.sh; fi
log "cargo test (unit, property, simulation, vectors and namespace suites)"
out=$(mktemp /tmp/qshield-test.XXXXXX)
trap 'rm -f "$out"' EXIT
set +e
cargo test --no-fail-fast "$@" 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}
bench_rc=0
fuzz_rc=0
FUZZ_SMOKE_SECONDS=${FUZZ_SMOKE_SECONDS:-10}
if (($# == 0)); then
    # Every benchmark once, in criterion's test mode, so the assertions inside benches/ run
    # (clippy only compiles them). Each "Success" line is one benchmark that ran and passed.
    log "benchmarks once each in test mode (their assertions; no timing)"
    cargo test --bench '*' 2>&1 | tee -a "$out"
    bench_rc=${PIPESTATUS[0]}
    # Every fuzz target built and run briefly from its seeds (docs/testing.md, "Fuzzing"):
    # a crash, timeout or OOM fails the run like a failing test.
    log "fuzz smoke: every target for $FUZZ_SMOKE_SECONDS s (scripts/fuzz.sh)"
    bash scripts/fuzz.sh "$FUZZ_SMOKE_SECONDS" --sanitizer none 2>&1 | tee -a "$out"
    fuzz_rc=${PIPESTATUS[0]}
fi
set -e
# One closing line over every test binary (cargo prints one "test result" line each) and
# every benchmark run in test mode (a failing bench binary counts as one failure).
# The fuzz smoke counts as one test.
awk -v bench_rc="$bench_rc" -v fuzz_rc="$fuzz_rc" -v fuzzed="$(($# == 0))" '
     /^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     /^Success$/ { p += 1 }
     END { if (bench_rc != 0) f += 1; if (fuzzed) { if (fuzz_rc != 0) f += 1; else p += 1 }
           printf "tests: %d passed, %d failed\n", p, f }' "$out"
((rc == 0 && bench_rc == 0 && fuzz_rc == 0))
