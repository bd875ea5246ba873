#!/usr/bin/env bash
# Clean shutdown: SIGTERM to a, SIGINT to b. Each daemon exits 0 within 3 s, its TUN is
# gone from its namespace and its control socket file is removed.
source "$(dirname "$0")/lib.sh"
require_root
bring_up
tunnel_ok
for pair in a:TERM b:INT; do
    side=${pair%%:*} sig=${pair#*:}
    ns=$(ns_of "$side")
    ip -n "$ns" link show "qs$side" >/dev/null || fail "TUN qs$side missing before shutdown"
    stop_daemon "$side" "$sig" 3
    [[ $STOP_RC -eq 0 ]] || { show_logs; fail "daemon $side exited $STOP_RC after SIG$sig (want 0)"; }
    if ip -n "$ns" link show "qs$side" >/dev/null 2>&1; then fail "TUN qs$side still exists after SIG$sig"; fi
    [[ ! -e $WORK/$side.sock ]] || fail "control socket $WORK/$side.sock left behind after SIG$sig"
    log_has "$side" "shutting down" || fail "daemon $side did not log its shutdown"
    log "SIG$sig to $side: exit status 0 after $STOP_SECS s; TUN qs$side gone; control socket removed"
done
log "PASS"
