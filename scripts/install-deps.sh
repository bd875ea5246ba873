#!/usr/bin/env bash
# scripts/install-deps.sh - the one install step of this project. Every script that builds or
# runs qshield (.ci/run, scripts/test.sh, scripts/demo.sh, scripts/bench.sh) calls it first, so
# a fresh machine gets everything before anything is compiled.
#
#   scripts/install-deps.sh            build + test + demo packages (Debian's apt)
#   scripts/install-deps.sh --bench    ... and the benchmark peers (wireguard-tools, boringtun-cli)
#   scripts/install-deps.sh --fuzz     ... and cargo-fuzz for the fuzz targets (fuzz/, scripts/fuzz.sh);
#                                      needs a nightly toolchain, which it cannot install: it
#                                      fails saying so when there is none
#
# What it installs and why:
#   pkg-config libssl-dev libsodium-dev  build dependencies of the dev-dependency etsi014-client
#                                        (the independent ETSI 014 client of tests/kme_interop.rs);
#                                        `cargo clippy --all-targets` builds it too
#   iperf3 iproute2 iputils-ping nftables python3 procps
#                                        the namespace tests and the demo
#   man-db                               renders the manual pages `qshield man` writes
#                                        (tests/cli_docs.rs)
#   prometheus                           the Prometheus server and promtool, scraping the
#                                        metrics (tests/kme_metrics.rs, tests/netns/metrics.sh)
#   systemd                              systemd-analyze, verifying and rating the units in
#                                        deploy/ (tests/deploy.rs)
#   tshark                               dissects captured tunnel traffic with the plugin
#                                        contrib/wireshark/qshield.lua (tests/netns/wireshark.sh)
#   chromium                             renders the demo's HTML report headless
#                                        (tests/demo_report.rs)
# Installing needs root; without root it lists what is missing and exits 1. Quiet when
# everything is present.
set -euo pipefail
log() { printf '[install %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
BENCH=0
FUZZ=0
for arg in "$@"; do
    case "$arg" in
        --bench) BENCH=1 ;;
        --fuzz) FUZZ=1 ;;
        -h|--help) sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) log "unknown argument '$arg' (see --help)"; exit 2 ;;
    esac
done

packages=(pkg-config libssl-dev libsodium-dev iperf3 iproute2 iputils-ping nftables python3 procps man-db prometheus systemd tshark chromium)
((BENCH)) && packages+=(wireguard-tools)
need=()
for pkg in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need+=("$pkg")
done
if ((${#need[@]})); then
    [[ $(id -u) -eq 0 ]] || { log "missing packages: ${need[*]}; run as root to install them (apt-get install ${need[*]})"; exit 1; }
    log "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if ((BENCH)); then
    BORINGTUN=${BORINGTUN:-$(command -v boringtun-cli || echo "$HOME/.cargo/bin/boringtun-cli")}
    if [[ ! -x $BORINGTUN ]]; then
        log "installing boringtun-cli from crates.io (a few minutes)"
        cargo install boringtun-cli --locked --quiet
    fi
fi
if ((FUZZ)); then
    if ! cargo +nightly --version >/dev/null 2>&1; then
        log "the fuzz targets need a nightly toolchain and there is none: run 'rustup toolchain install nightly --profile minimal'"
        exit 1
    fi
    if ! cargo fuzz --version >/dev/null 2>&1; then
        log "installing cargo-fuzz from crates.io (a few minutes)"
        cargo install cargo-fuzz --locked --quiet
    fi
fi
