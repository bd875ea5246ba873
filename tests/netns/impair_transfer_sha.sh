#!/usr/bin/env bash
# A 1 GiB transfer over one TCP connection through the tunnel while qshield-impair loses
# 0.5 % of the datagrams each way, holds 1 % back behind the next 3 and sends 1 % twice:
# the SHA-256 of what arrives equals that of what was sent.
source "$(dirname "$0")/lib.sh"
require_root
MIB=${MIB:-1024}
bring_up_relayed "" --loss 0.5% --reorder 1%,3 --duplicate 1%
tunnel_ok 30
transfer_sha "$MIB" 198.19.0.2
sleep 1.2   # the relay's stats file is rewritten every second
log "$(relay_summary)"
[[ $(relay_field "all(d['a_to_b'][k] > 0 for k in ('dropped_random', 'reordered', 'duplicated'))") == True ]] \
    || fail "the relay did not lose, reorder and duplicate: the transfer was not impaired"
bad_tag=$(peer_field b "p['drops']['bad_tag']")
[[ $bad_tag -eq 0 ]] || fail "$bad_tag packets failed authentication"
log "PASS: $MIB MiB intact through the impaired path at $TRANSFER_GBPS Gbit/s"
