#!/usr/bin/env bash
# scripts/fuzz.sh - run qshield's fuzz targets (fuzz/, cargo-fuzz + libFuzzer), one after
# the other, each from its seed corpus, and print a table of what each run did.
#
#   scripts/fuzz.sh [SECONDS] [--jobs N] [--sanitizer address|none] [TARGET...]
#
#   SECONDS      per target (default 60)
#   --jobs N     libFuzzer fork mode with N worker processes per target (default 1: no fork)
#   --sanitizer  address (ASan, the default for runs you investigate) or none (faster to
#                build and run; the CI smoke uses it). Both keep debug assertions and
#                overflow checks on.
#   TARGET...    only these (default: every target `cargo fuzz list` names)
#
# Each target runs from fuzz/corpus/<target>/ (scratch, gitignored), which first gets a copy
# of fuzz/seeds/<target>/; a dictionary fuzz/dict/<target>.dict is used when there is one.
# Logs go to fuzz/corpus/logs/<target>.log, crash/timeout/OOM inputs to
# fuzz/artifacts/<target>/. Columns: executions and exec/s over the run; cov and ft are
# libFuzzer's last coverage and feature counts; corpus is the files in the corpus after the
# run. Exits 1 if any target found a crash, a timeout or an OOM, naming the artifact file;
# 2 if nightly or cargo-fuzz is missing (it installs nothing: scripts/install-deps.sh does).
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[fuzz %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

SECONDS_PER_TARGET=60
JOBS=1
SANITIZER=address
TARGETS=()
while (($#)); do
    case "$1" in
        --jobs) JOBS=${2:?--jobs needs a number}; shift 2 ;;
        --sanitizer) SANITIZER=${2:?--sanitizer needs address or none}; shift 2 ;;
        -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        [0-9]*) SECONDS_PER_TARGET=$1; shift ;;
        -*) log "unknown option '$1' (see --help)"; exit 2 ;;
        *) TARGETS+=("$1"); shift ;;
    esac
done
[[ $SANITIZER == address || $SANITIZER == none ]] || { log "--sanitizer must be address or none"; exit 2; }
[[ $JOBS =~ ^[1-9][0-9]*$ ]] || { log "--jobs must be a positive number"; exit 2; }

if ! cargo +nightly --version >/dev/null 2>&1; then
    log "no nightly toolchain: run 'rustup toolchain install nightly --profile minimal' (or scripts/install-deps.sh --fuzz)"
    exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    log "cargo-fuzz is missing: run 'cargo install cargo-fuzz --locked' (or scripts/install-deps.sh --fuzz)"
    exit 2
fi

BUILD_FLAGS=(--sanitizer "$SANITIZER")
if ((${#TARGETS[@]} == 0)); then
    mapfile -t TARGETS < <(cd fuzz && cargo +nightly fuzz list)
fi
log "building ${#TARGETS[@]} fuzz targets (sanitizer $SANITIZER)"
build_start=$(date +%s)
(cd fuzz && cargo +nightly fuzz build "${BUILD_FLAGS[@]}")
log "built in $(($(date +%s) - build_start)) s"

mkdir -p fuzz/corpus/logs
rows=()
failed=()
i=0
for target in "${TARGETS[@]}"; do
    i=$((i + 1))
    corpus=fuzz/corpus/$target
    artifacts=fuzz/artifacts/$target
    logfile=fuzz/corpus/logs/$target.log
    mkdir -p "$corpus" "$artifacts"
    if [[ -d fuzz/seeds/$target ]]; then
        cp -n fuzz/seeds/"$target"/* "$corpus"/ 2>/dev/null || true
    fi
    args=(-max_total_time="$SECONDS_PER_TARGET" -timeout=10 -print_final_stats=1
          -artifact_prefix="$PWD/$artifacts/")
    [[ -f fuzz/dict/$target.dict ]] && args+=(-dict="$PWD/fuzz/dict/$target.dict")
    ((JOBS > 1)) && args+=(-fork="$JOBS" -ignore_crashes=0)
    log "target $i/${#TARGETS[@]}: $target for $SECONDS_PER_TARGET s ($(ls "$corpus" | wc -l) corpus files)"
    start=$(date +%s.%N)
    set +e
    (cd fuzz && cargo +nightly fuzz run "${BUILD_FLAGS[@]}" "$target" "$PWD/../$corpus" -- "${args[@]}") \
        >"$logfile" 2>&1
    rc=$?
    set -e
    elapsed=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    # (grep finds nothing in a log cut short: `|| true` keeps set -e from ending the run)
    last() { grep -oE "$1" "$logfile" | tail -1 || true; }
    execs=$(last 'number_of_executed_units: [0-9]+' | awk '{print $2}')
    [[ -n $execs ]] || execs=$(last '^#[0-9]+' | tr -d '#')
    cov=$(last 'cov: [0-9]+' | awk '{print $2}')
    ft=$(last 'ft: [0-9]+' | awk '{print $2}')
    size=$(find "$corpus" -maxdepth 1 -type f | wc -l)
    artifact=$(last 'Test unit written to [^ ]+' | awk '{print $5}')
    crashes=0 timeouts=0 ooms=0
    case "$(basename "${artifact:-none}")" in
        crash-*|leak-*) crashes=1 ;;
        timeout-*|slow-unit-*) timeouts=1 ;;
        oom-*) ooms=1 ;;
    esac
    if ((rc != 0)) && [[ -z $artifact ]]; then
        crashes=1
        artifact="(none written; see $logfile)"
    fi
    rate=$(awk -v n="${execs:-0}" -v t="$elapsed" 'BEGIN { printf "%d", (t > 0 ? n / t : 0) }')
    rows+=("$(printf '| %-18s | %7.0f | %11s | %7s | %6s | %7s | %6s | %7s | %8s | %4s |' \
        "$target" "$elapsed" "${execs:-0}" "$rate" "${cov:--}" "${ft:--}" "$size" \
        "$crashes" "$timeouts" "$ooms")")
    if ((crashes + timeouts + ooms)); then
        failed+=("$target: $artifact")
        log "$target FAILED: $artifact (log $logfile)"
    else
        log "$target: ${execs:-0} executions, cov ${cov:--}, ft ${ft:--}"
    fi
done

printf '\n| %-18s | %7s | %11s | %7s | %6s | %7s | %6s | %7s | %8s | %4s |\n' \
    target seconds executions exec/s cov ft corpus crashes timeouts ooms
printf '|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|\n' \
    "$(printf -- '-%.0s' {1..20})" "$(printf -- '-%.0s' {1..9})" "$(printf -- '-%.0s' {1..13})" \
    "$(printf -- '-%.0s' {1..9})" "$(printf -- '-%.0s' {1..8})" "$(printf -- '-%.0s' {1..9})" \
    "$(printf -- '-%.0s' {1..8})" "$(printf -- '-%.0s' {1..9})" "$(printf -- '-%.0s' {1..10})" \
    "$(printf -- '-%.0s' {1..6})"
printf '%s\n' "${rows[@]}"
if ((${#failed[@]})); then
    printf '\nfindings (minimize with: cd fuzz && cargo +nightly fuzz tmin TARGET ARTIFACT):\n'
    printf '  %s\n' "${failed[@]}"
    exit 1
fi
