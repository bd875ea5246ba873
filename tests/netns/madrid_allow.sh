#!/usr/bin/env bash
# The Madrid topology with policy "allow" and the ring-2 and ring-3 KMEs down from the
# start (both paths cut): no QKD key can be relayed, so the hospitals fall back to the hybrid X25519 + ML-KEM-768 handshake,
# loudly (log line, status counter), and the tunnel carries traffic.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/../../scripts/lib/madrid.sh"
require_root
madrid_make_network
madrid_pki
for n in "${MADRID_NODES[@]}"; do madrid_kme_config "$n"; done
for n in ha r1 hb; do madrid_start_kme "$n"; done
keygen a
keygen b
madrid_daemon_config a allow
madrid_daemon_config b allow
NS_A=$(madrid_ns ha) NS_B=$(madrid_ns hb)
start_daemon a
start_daemon b
wait_ping a 198.19.0.2 25 || { show_logs 60; fail "no fallback tunnel"; }
grep -q "QKD FALLBACK" "$WORK/a.log" "$WORK/b.log" || { show_logs 40; fail "no loud fallback in the log"; }
fallbacks=$(( $(status_field a "d['peers'][0]['qkd']['fallbacks']") + $(status_field b "d['peers'][0]['qkd']['fallbacks']") ))
(( fallbacks >= 1 )) || fail "status counts no fallback"
sources=$(status_field a "' + '.join(d['peers'][0]['current_key']['sources'])")
[[ $sources == "x25519 + ml-kem-768" ]] || fail "key sources should be the hybrid only, got $sources"
log "fell back loudly ($fallbacks fallbacks), tunnel up on $sources"
log "PASS"
