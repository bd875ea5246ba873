#!/usr/bin/env bash
# ChaCha20-Poly1305: both sites on chacha20-poly1305 carry ping and a short iperf3 run, and
# status names the cipher. Then a cipher mismatch (a on aes-256-gcm, b on chacha): no
# tunnel, and each side's log names the cipher the other offered.
source "$(dirname "$0")/lib.sh"
require_root
make_namespaces
keygen a
keygen b
CIPHER=chacha20-poly1305 write_config a b
CIPHER=chacha20-poly1305 write_config b a
start_daemon a
start_daemon b
tunnel_ok
cipher=$(peer_field a "p['cipher']")
[[ $cipher == chacha20-poly1305 ]] || fail "status cipher is $cipher"
iperf_run 198.19.0.2 3 || { show_logs; fail "iperf3 over chacha20-poly1305 failed"; }
log "chacha20-poly1305: ping ok, iperf3 TCP 3 s $(iperf_gbps) Gbit/s, status cipher $cipher"
stop_daemon a
stop_daemon b
rm -f "$WORK/a.log" "$WORK/b.log"
CIPHER=aes-256-gcm write_config a b
CIPHER=chacha20-poly1305 write_config b a
start_daemon a
start_daemon b
if wait_ping a 198.19.0.2 6; then show_logs; fail "ping went through with a cipher mismatch"; fi
phrase_b="peer offers cipher aes-256-gcm, this site is configured for chacha20-poly1305"
phrase_a="peer offers cipher chacha20-poly1305, this site is configured for aes-256-gcm"
log_has b "$phrase_b" || { show_logs; fail "b's log does not say '$phrase_b'"; }
log_has a "$phrase_a" || { show_logs; fail "a's log does not say '$phrase_a'"; }
[[ $(peer_field a "p['handshakes']") -eq 0 ]] || fail "a completed a handshake despite the mismatch"
log "mismatch: no tunnel for 6 s; b logs '$phrase_b'; a logs '$phrase_a'"
log "PASS"
