#!/usr/bin/env bash
# Prometheus metrics, scraped by a real Prometheus server (Debian's `prometheus`): the Madrid
# topology with QKD keys, hospital-a's daemon and KME serving metrics on loopback in their
# namespace, hospital-b's daemon on its underlay address (metrics_public = true). Prometheus
# runs in hospital-a's namespace and scrapes all three every second while iperf3 runs
# through the tunnel. Its query API must answer: the three targets up; a rate (bytes per
# second hospital-a sent to hospital-b) that agrees with iperf3's; gauges, counters and the
# KME call-time histogram that agree with `qshield status --json` and the KME's status.
# `promtool check metrics` passes on every endpoint.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/../../scripts/lib/madrid.sh"
require_root
command -v prometheus >/dev/null && command -v promtool >/dev/null ||
    fail "prometheus and promtool (Debian package prometheus) are missing: run scripts/install-deps.sh"
MADRID_INTERFACE_EXTRA_A='metrics_listen = "127.0.0.1:9465"'
MADRID_INTERFACE_EXTRA_B='metrics_listen = "198.18.3.2:9465"
metrics_public = true'
MADRID_KME_EXTRA_ha='metrics_listen = "127.0.0.1:9464"'
madrid_up require 'rekey_after_seconds = "3s"
reject_after_seconds = "6s"'
wait_ping a 198.19.0.2 20 || { show_logs 40; fail "no tunnel"; }
NS_HA=$(madrid_ns ha)

# Each endpoint answers, and promtool finds nothing to say about it.
for target in 127.0.0.1:9465 198.18.3.2:9465 127.0.0.1:9464; do
    ip netns exec "$NS_HA" python3 -c "
import sys, urllib.request
sys.stdout.write(urllib.request.urlopen('http://$target/metrics', timeout=3).read().decode())" >"$WORK/scrape-$target.txt" ||
        fail "no metrics at $target"
    said=$(promtool check metrics <"$WORK/scrape-$target.txt" 2>&1) || fail "promtool check metrics on $target: $said"
    [[ -z $said ]] || fail "promtool check metrics on $target: $said"
done
grep -q '^qshield_peer_bytes_total{interface="qsa",peer="hospital-b",direction="sent"}' "$WORK/scrape-127.0.0.1:9465.txt" ||
    fail "hospital-a's scrape has no bytes sent to hospital-b"
grep -q '^qshield_kme_link_pool_bytes{peer="kme-ring-1",direction="send"}' "$WORK/scrape-127.0.0.1:9464.txt" ||
    fail "the KME's scrape has no pool of its link to ring-1"
if grep -qi 'key_id\|[0-9a-f]\{8\}-[0-9a-f]\{4\}-' "$WORK"/scrape-*.txt; then fail "a key ID in the metrics"; fi

PROM_PORT=9090
cat >"$WORK/prometheus.yml" <<YML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: qshield
    static_configs:
      - targets: ['127.0.0.1:9465', '198.18.3.2:9465']
  - job_name: kme
    static_configs:
      - targets: ['127.0.0.1:9464']
YML
ip netns exec "$NS_HA" prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/prometheus" \
    --web.listen-address="127.0.0.1:$PROM_PORT" >"$WORK/prometheus.log" 2>&1 &
PIDS+=($!)
# query EXPR: the value of an instant query with one sample ("" if none).
query() {
    ip netns exec "$NS_HA" python3 -c "
import json, sys, urllib.parse, urllib.request
u = 'http://127.0.0.1:$PROM_PORT/api/v1/query?' + urllib.parse.urlencode({'query': sys.argv[1]})
try:
    r = json.load(urllib.request.urlopen(u, timeout=3))['data']['result']
except Exception:
    r = []
print(r[0]['value'][1] if len(r) == 1 else '')" "$1"
}
deadline=$((SECONDS + 30))
until [[ $(query 'sum(up)') == 3 ]]; do
    (( SECONDS < deadline )) || { tail -20 "$WORK/prometheus.log" >&2; fail "Prometheus never saw all three targets up (sum(up) = '$(query 'sum(up)')')"; }
    sleep 0.5
done
log "Prometheus scrapes both daemons and the KME"

iperf_server
ip netns exec "$NS_A" iperf3 -c 198.19.0.2 -t 8 -J >"$WORK/iperf.json" || fail "iperf3 failed"
iperf_bps=$(python3 -c "import json; print(json.load(open('$WORK/iperf.json'))['end']['sum_sent']['bits_per_second'])")
# the rate Prometheus computed over the run (its last 5 s), bytes/s -> bits/s
prom_bps=$(query 'max_over_time(rate(qshield_peer_bytes_total{interface="qsa",direction="sent"}[3s])[8s:1s]) * 8')
[[ -n $prom_bps ]] || fail "no rate of bytes sent from Prometheus"
python3 -c "
import sys
p, i = float('$prom_bps'), float('$iperf_bps')
sys.exit(0 if 0.5 * i <= p <= 2.0 * i else 1)" || fail "Prometheus' peak rate $prom_bps bit/s is far from iperf3's $iperf_bps bit/s"
log "rate: Prometheus $(python3 -c "print(round($prom_bps/1e9, 2))") Gbit/s at its peak, iperf3 $(python3 -c "print(round($iperf_bps/1e9, 2))") Gbit/s"

# A counter against the daemon's own status (rotations keep going: allow one in flight).
sleep 2
consumed_prom=$(query 'qshield_peer_qkd_keys_consumed_total{interface="qsa"}')
consumed_status=$(status_field a "d['peers'][0]['qkd']['keys_consumed']")
[[ -n $consumed_prom ]] || fail "no QKD keys consumed in Prometheus"
(( consumed_status - ${consumed_prom%.*} <= 2 && ${consumed_prom%.*} <= consumed_status )) ||
    fail "QKD keys consumed: Prometheus $consumed_prom, status $consumed_status"
(( ${consumed_prom%.*} >= 2 )) || fail "QKD keys consumed: $consumed_prom (rotations every 3 s)"
# Gauges: the link-state origins the KME holds (still), and the pool of its link to
# ring-1 (refilling at 32 KB/s between scrapes a second apart: within 64 KiB).
origins_prom=$(query 'qshield_kme_link_state_origins{job="kme"}')
origins_status=$(madrid_status ha | python3 -c "import json, sys; print(len(json.load(sys.stdin)['routing']['adverts']))")
[[ $origins_prom == "$origins_status" && $origins_status == 5 ]] ||
    fail "link-state origins: Prometheus '$origins_prom', KME status $origins_status (5 KMEs)"
pool_prom=$(query 'qshield_kme_link_pool_bytes{job="kme",peer="kme-ring-1",direction="send"}')
pool_status=$(madrid_link_field ha r1 "l['send_pool_bits'] // 8")
[[ -n $pool_prom ]] || fail "no pool gauge in Prometheus"
python3 -c "
import sys
sys.exit(0 if abs(float('$pool_prom') - $pool_status) <= 65536 else 1)" ||
    fail "pool: Prometheus $pool_prom bytes, KME status $pool_status bytes"
# Packets sent to hospital-b: Prometheus' last scrape, then the status, read after it.
pk_prom=$(query 'qshield_peer_packets_total{interface="qsa",direction="sent"}')
pk_status=$(status_field a "d['peers'][0]['total_packets_sent']")
[[ -n $pk_prom ]] || fail "no packet counter in Prometheus"
python3 -c "
import sys
p, s = float('$pk_prom'), $pk_status
sys.exit(0 if 0.9 * s <= p <= s and p > 1000 else 1)" || fail "packets sent: Prometheus $pk_prom, status $pk_status"
log "packets sent: Prometheus $pk_prom, status $pk_status"
# The KME call-time histogram: as many calls as the status counts (within a rotation).
calls_prom=$(query 'sum(qshield_peer_kme_call_duration_seconds_count{interface="qsa"})')
calls_status=$(status_field a "sum(c['count'] for c in d['peers'][0]['kme_calls'].values())")
[[ -n $calls_prom ]] || fail "no KME call histogram in Prometheus"
(( calls_status - ${calls_prom%.*} <= 2 && ${calls_prom%.*} >= 2 )) ||
    fail "KME calls: Prometheus $calls_prom, status $calls_status"
median=$(query 'histogram_quantile(0.5, sum by (le) (qshield_peer_kme_call_duration_seconds_bucket{interface="qsa"}))')
log "KME calls: $calls_prom timed, median under $median s"
log "QKD keys consumed: Prometheus $consumed_prom, status $consumed_status; origins $origins_prom; pool to ring-1: Prometheus $pool_prom, status $pool_status bytes"
log "PASS"
