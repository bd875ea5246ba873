#!/usr/bin/env bash
# Wrong key: site b is configured with the public key of a third identity c for peer a.
# No tunnel forms (ping fails for 8 s), and the logs say why: b refuses a's initiations as
# coming from an unknown static key, and a drops b's initiations (sealed to c's key) for
# an invalid mac1. The status counters agree.
source "$(dirname "$0")/lib.sh"
require_root
SECS=8
make_namespaces
keygen a
keygen b
keygen c
write_config a b
PEER_KEY_DIR_OVERRIDE=c write_config b a
start_daemon a
start_daemon b
if wait_ping a 198.19.0.2 "$SECS"; then show_logs; fail "ping went through although b has the wrong key for a"; fi
if wait_ping b 198.19.0.1 1; then fail "ping b->a went through although b has the wrong key for a"; fi
log "no ping for $SECS s: ok"
phrase_b="initiation from an unknown static key"
phrase_a="dropped handshake datagrams with an invalid mac1"
log_has b "$phrase_b" || { show_logs; fail "b's log does not say '$phrase_b'"; }
log_has a "$phrase_a" || { show_logs; fail "a's log does not say '$phrase_a'"; }
rejected_b=$(status_field b "d['drops']['handshake_rejected']")
bad_mac1_a=$(status_field a "d['drops']['bad_mac1']")
hs_a=$(peer_field a "p['handshakes']")
hs_b=$(peer_field b "p['handshakes']")
log "b: '$(grep -F "$phrase_b" "$WORK/b.log" | head -1 | sed 's/\x1b\[[0-9;]*m//g' | grep -o "$phrase_b[^(]*")' ($rejected_b handshakes rejected)"
log "a: '$phrase_a' ($bad_mac1_a datagrams with a bad mac1)"
[[ $rejected_b -gt 0 ]] || fail "b counted no rejected handshakes"
[[ $bad_mac1_a -gt 0 ]] || fail "a counted no bad mac1"
[[ $hs_a -eq 0 && $hs_b -eq 0 ]] || fail "handshakes completed with a wrong key (a $hs_a, b $hs_b)"
assert_alive a
assert_alive b
log "PASS"
