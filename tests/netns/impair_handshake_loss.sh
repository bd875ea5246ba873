#!/usr/bin/env bash
# The first handshake under 30 % loss each way (through qshield-impair): TRIES times, both
# daemons start fresh (b, then a) and the time is taken from a's start until a ping a->b
# has an answer AND both ends report a current key. A try that has not made it after
# TRY_LIMIT_SECS counts as TRY_LIMIT_SECS. Prints the median, p90 and max; p90 must be at
# most P90_LIMIT_SECS. Pings go out every 0.1 s (one echo through 30 % loss each way
# succeeds about half the time, so waiting a whole second per lost echo would measure the
# ping, not the handshake).
#
# The verdict is certain once more than TRIES/10 tries took longer than the limit; the
# scenario then stops early (CI budget) unless FULL=1, which runs every try.
source "$(dirname "$0")/lib.sh"
require_root
TRIES=${TRIES:-30}
TRY_LIMIT_SECS=${TRY_LIMIT_SECS:-40}
P90_LIMIT_SECS=${P90_LIMIT_SECS:-5}
LOSS=${LOSS:-30%}

make_relay_sites
keygen a
keygen b
write_config a b
write_config b a
start_relay --loss "$LOSS"

now() { date +%s.%N; }
# both_keyed: both ends report a current key
both_keyed() {
    [[ $(peer_field a "p['current_key'] is not None") == True && $(peer_field b "p['current_key'] is not None") == True ]]
}

times=()
slow=0
allowed_slow=$((TRIES / 10))
for try in $(seq "$TRIES"); do
    start_daemon b
    t0=$(now)
    start_daemon a
    deadline=$(python3 -c "print($t0 + $TRY_LIMIT_SECS)")
    left=$(python3 -c "import math; print(max(1, math.ceil($deadline - $(now))))")
    took=$TRY_LIMIT_SECS
    if ip netns exec "$NS_A" ping -c 1 -i 0.1 -W 1 -w "$left" 198.19.0.2 >/dev/null 2>&1; then
        until both_keyed; do
            [[ $(python3 -c "print($(now) >= $deadline)") == False ]] || break
            sleep 0.05
        done
        both_keyed && took=$(python3 -c "print(round(min($TRY_LIMIT_SECS, $(now) - $t0), 2))")
    fi
    times+=("$took")
    log "try $try: $took s (a: $(peer_field a "p['handshakes']") handshakes, b: $(peer_field b "p['handshakes']"))"
    stop_daemon a TERM 5
    stop_daemon b TERM 5
    if [[ $(python3 -c "print($took > $P90_LIMIT_SECS)") == True ]]; then slow=$((slow + 1)); fi
    if ((slow > allowed_slow)) && [[ ${FULL:-0} != 1 ]]; then
        log "$slow of $try tries over $P90_LIMIT_SECS s: p90 over $TRIES tries cannot be met (FULL=1 runs them all)"
        break
    fi
done
log "$(relay_summary)"
read -r median p90 max n <<<"$(python3 - "${times[@]}" <<'PY'
import math, statistics, sys
t = sorted(float(x) for x in sys.argv[1:])
p90 = t[max(0, math.ceil(0.9 * len(t)) - 1)]
print(round(statistics.median(t), 2), round(p90, 2), round(t[-1], 2), len(t))
PY
)"
log "first handshake under $LOSS loss each way, $n tries: median $median s, p90 $p90 s, max $max s (times: ${times[*]})"
((slow <= allowed_slow)) || fail "$slow of $n tries took longer than $P90_LIMIT_SECS s: p90 over $TRIES tries is above $P90_LIMIT_SECS s (median $median s, p90 of these $p90 s, max $max s)"
[[ $(python3 -c "print($p90 <= $P90_LIMIT_SECS)") == True ]] || fail "p90 $p90 s > $P90_LIMIT_SECS s"
log "PASS"
