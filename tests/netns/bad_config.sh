#!/usr/bin/env bash
# Bad configs are refused before anything starts: for a few representative mistakes both
# `qshield check-config` and `qshield up` (in a namespace) exit non-zero with a message
# naming FILE:LINE and the field, and `up` leaves no TUN and no control socket behind.
# `qshield keygen` writes 0600 private files and refuses to overwrite an identity.
source "$(dirname "$0")/lib.sh"
require_root
make_namespaces
keygen a
keygen b
cat >"$WORK/good.toml" <<'CFG'
[interface]
name = "qsa"
address = ["198.19.0.1/24"]
listen_port = 51820
identity_dir = "a"
control_socket = "bad.sock"

[rotation]
rekey_after_bytes = "4MiB"

[[peer]]
name = "site-b"
endpoint = "198.18.0.2:51820"
public_key_file = "b/public.key"
allowed_ips = ["198.19.0.2/32"]
CFG
"$QSHIELD" check-config "$WORK/good.toml" >/dev/null || fail "the base config is refused"
# case: sed expression | expected "LINE:" | expected field
cases=(
    's/listen_port = 51820/listen_port = 70000/|4|interface.listen_port'
    's#"198.19.0.2/32"#"198.19.0.300/32"#|15|peer[0].allowed_ips[0]'
    's/"4MiB"/"1KiB"/|9|rotation.rekey_after_bytes'
    's/listen_port/listen_prot/|4|interface.listen_prot'
    's/^name = "qsa"/name = "qsa"\ncipher = "des"/|3|interface.cipher'
    's#b/public.key#c/public.key#|14|peer[0].public_key_file'
    's/^endpoint = .*/endpoint = "nowhere"/|13|peer[0].endpoint'
    's/^name = "qsa"/name = "this-name-is-too-long"/|2|interface.name'
)
n=0
for case in "${cases[@]}"; do
    field=${case##*|}; rest=${case%|*}; line=${rest##*|}; expr=${rest%|*}
    sed "$expr" "$WORK/good.toml" >"$WORK/bad.toml"
    for cmd in check-config up; do
        rc=0
        if [[ $cmd == up ]]; then
            out=$(timeout 10 ip netns exec "$NS_A" "$QSHIELD" up --config "$WORK/bad.toml" 2>&1) || rc=$?
        else
            out=$("$QSHIELD" check-config "$WORK/bad.toml" 2>&1) || rc=$?
        fi
        [[ $rc -ne 0 && $rc -ne 124 ]] || fail "$cmd accepted or hung on a bad config ($expr): rc $rc, output: $out"
        [[ $out == *"$WORK/bad.toml:$line:"* ]] || fail "$cmd: message does not name bad.toml:$line ($expr): $out"
        [[ $out == *"$field"* ]] || fail "$cmd: message does not name the field $field ($expr): $out"
    done
    if ip -n "$NS_A" link show qsa >/dev/null 2>&1; then fail "qshield up created the TUN despite a bad config ($expr)"; fi
    [[ ! -e $WORK/bad.sock ]] || fail "qshield up created its control socket despite a bad config ($expr)"
    log "refused (check-config and up, exit $rc, no TUN): ${out#qshield: $WORK/}"
    n=$((n + 1))
done
log "$n bad configs refused before anything started"
# keygen: private files 0600, public 0644; refuses to overwrite and changes nothing
for f in x25519.key mlkem768.key public.key; do
    mode=$(stat -c %a "$WORK/a/$f")
    want=$([[ $f == public.key ]] && echo 644 || echo 600)
    [[ $mode == "$want" ]] || fail "keygen wrote $f with mode $mode (want $want)"
done
before=$(cat "$WORK"/a/*.key | sha256sum)
rc=0
out=$("$QSHIELD" keygen --out-dir "$WORK/a" 2>&1) || rc=$?
[[ $rc -ne 0 ]] || fail "keygen overwrote an existing identity"
[[ $(cat "$WORK"/a/*.key | sha256sum) == "$before" ]] || fail "keygen changed the existing identity files"
log "keygen: private files 0600, public.key 0644; a second keygen into the same directory fails (exit $rc): $out"
log "PASS"
