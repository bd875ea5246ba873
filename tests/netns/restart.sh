#!/usr/bin/env bash
# Crash and restart: `kill -9` one daemon (its TUN goes with it; its control socket file is
# left behind, stale), restart it with the same config: the stale socket must not block
# it, and ping through the tunnel works again within 10 s. Both sides in turn.
source "$(dirname "$0")/lib.sh"
require_root
MAX_SECS=10
bring_up
tunnel_ok
for side in b a; do
    other=$([[ $side == a ]] && echo b || echo a)
    pid_var=PID_$side
    old_pid=${!pid_var}
    kill -KILL "$old_pid"
    wait_exit "$old_pid" 3 || fail "daemon $side survived kill -9"
    wait "$old_pid" 2>/dev/null || true
    forget_pid "$old_pid"
    [[ -S $WORK/$side.sock ]] || fail "expected a stale control socket after kill -9 of $side"
    t0=$(date +%s.%N)
    start_daemon "$side"
    up_secs=$(python3 -c "import time; print(round(time.time() - $t0, 2))")
    peer_ip=198.19.0.$([[ $other == a ]] && echo 1 || echo 2)
    wait_ping "$side" "$peer_ip" "$MAX_SECS" || { show_logs 40; fail "no ping from restarted $side within $MAX_SECS s"; }
    secs=$(python3 -c "import time; print(round(time.time() - $t0, 2))")
    own_ip=198.19.0.$([[ $side == a ]] && echo 1 || echo 2)
    wait_ping "$other" "$own_ip" 5 || { show_logs 40; fail "no ping $other -> restarted $side"; }
    [[ $(python3 -c "print($secs <= $MAX_SECS)") == True ]] || fail "tunnel back after $secs s (want <= $MAX_SECS)"
    log "kill -9 $side (pid $old_pid), restarted as pid ${!pid_var} over its stale socket in $up_secs s; ping through the tunnel again after $secs s"
done
log "PASS"
