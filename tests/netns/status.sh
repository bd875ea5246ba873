#!/usr/bin/env bash
# `qshield status`: text and --json show, per peer, the endpoint, last handshake, key
# epoch and age, bytes and packets under the current key, budget left (bytes, seconds),
# rotations, drops by reason and cipher. With rekey_after_seconds = "3s" and pings for
# ~5 s the key rotates by time, and the numbers move the right way.
source "$(dirname "$0")/lib.sh"
require_root
bring_up 'rekey_after_seconds = "3s"
rekey_after_bytes = "64MiB"'
tunnel_ok
ip netns exec "$NS_A" ping -c 25 -i 0.2 -s 1000 -q 198.19.0.2 >/dev/null || fail "pings lost"
"$QSHIELD" status --socket "$WORK/a.sock" >"$WORK/status.txt" || fail "qshield status failed"
status_json a >"$WORK/status.json" || fail "qshield status --json failed"
cat "$WORK/status.txt" >&2
for want in "interface: qsa" "peer: site-b" "endpoint: 198.18.0.2:51820" "last handshake: " "s ago" \
    "rotations: " "cipher: aes-256-gcm" "current key: epoch " ", age " "under this key: " \
    "packets sent" "budget left: rekey in " "hard limit in " "drops: bad_tag " "key_expired " "no_session " \
    "drops (interface): " "malformed " "health: OK: session " "keys from X25519 + ML-KEM-768"; do
    grep -qF -- "$want" "$WORK/status.txt" || fail "text status lacks '$want'"
done
python3 - "$WORK/status.json" <<'PY' || fail "JSON status check failed"
import json, sys
d = json.load(open(sys.argv[1]))
def need(obj, keys, where):
    missing = [k for k in keys if k not in obj]
    assert not missing, f"{where} lacks {missing}: {sorted(obj)}"
need(d, ["interface", "listen", "mtu", "public_key", "pid", "uptime_seconds", "io", "drops", "peers"], "status")
need(d["drops"], ["malformed", "unknown_index", "stale_reply", "bad_mac1", "rate_limited", "handshake_rejected", "no_route"], "drops")
p = d["peers"][0]
need(p, ["name", "endpoint", "last_handshake_seconds_ago", "cipher", "current_key", "rotations", "handshakes",
         "handshake_in_progress", "total_bytes_sent", "total_bytes_received", "drops"], "peer")
need(p["drops"], ["bad_tag", "replay", "key_expired", "disallowed_source", "no_session"], "peer drops")
k = p["current_key"]
need(k, ["epoch", "role", "age_seconds", "bytes_sent", "bytes_received", "packets_sent", "packets_received",
         "rekey_in_bytes", "rekey_in_seconds", "reject_in_bytes", "reject_in_seconds", "packets_left", "sources"], "key")
assert p["endpoint"] == "198.18.0.2:51820", p["endpoint"]
assert p["cipher"] == "aes-256-gcm", p["cipher"]
assert p["rotations"] >= 1, f"no rotation by time in ~5 s of 3 s keys: {p['rotations']}"
assert k["epoch"] >= 2, k["epoch"]
assert 0 <= k["age_seconds"] < 4.6, k["age_seconds"]
assert 0 <= p["last_handshake_seconds_ago"] <= k["age_seconds"] + 0.1, (p["last_handshake_seconds_ago"], k["age_seconds"])
assert 0 <= k["rekey_in_seconds"] <= 3.0 and k["reject_in_seconds"] <= 4.5, (k["rekey_in_seconds"], k["reject_in_seconds"])
assert k["rekey_in_bytes"] == 64 * 2**20 - k["bytes_sent"], (k["rekey_in_bytes"], k["bytes_sent"])
# default hard budget: soft x 5/4 (80 MiB), but at least soft + 64 MiB (DEFAULT_REJECT_MIN_MARGIN_BYTES)
assert k["reject_in_bytes"] == 128 * 2**20 - k["bytes_sent"], k["reject_in_bytes"]
assert p["total_bytes_sent"] >= 25 * 1000 and p["total_bytes_sent"] >= k["bytes_sent"], p["total_bytes_sent"]
assert "x25519" in k["sources"] and "ml-kem-768" in k["sources"], k["sources"]
assert all(v == 0 for v in p["drops"].values()), p["drops"]
print(f"epoch {k['epoch']} ({k['role']}), age {k['age_seconds']:.1f} s, {p['rotations']} rotations, "
      f"{k['bytes_sent']} B / {k['packets_sent']} packets under this key, rekey in {k['rekey_in_bytes']} B "
      f"or {k['rekey_in_seconds']:.1f} s, {p['total_bytes_sent']} B sent in all", file=sys.stderr)
PY
log "text and JSON status carry every field; numbers consistent"
log "PASS"
