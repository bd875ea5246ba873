//! The KME's Prometheus metrics (issue 13): `metrics_listen` is opt-in and loopback unless
//! `metrics_public = true`; the text a scrape gets agrees with the status document and
//! passes `promtool check metrics`; a real Prometheus server (Debian's `prometheus`,
//! installed by scripts/install-deps.sh) scrapes a KME while keys flow, and its query API
//! answers a gauge, a counter and a rate that agree with the KME's own status.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::kme::*;

/// kme-a ── kme-b, metrics of kme-b on `port`.
async fn pair_with_metrics(port: u16) -> LinkedPair {
    let pki = Pki::new("metrics-ca", &["kme-a", "kme-b"], &["sae-a", "sae-b"]);
    let extra = format!("metrics_listen = \"127.0.0.1:{port}\"\n");
    LinkedPair::start_random(pki, 400_000, &extra).await
}

/// `n` keys from sae-a (at kme-a) for sae-b, fetched by sae-b at kme-b (asking again while
/// the link's pools are still filling, up to 20 s).
async fn keys_through(p: &LinkedPair, n: u64) {
    let url = format!("{}/sae-b/enc_keys", base(p.a.local_addr()));
    let client = p.pki.client(Some("sae-a"));
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut r = post_enc_keys(&client, &url, n, 256).await;
    while r.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        r = post_enc_keys(&client, &url, n, 256).await;
    }
    let sent = keys(r).await;
    let url = format!("{}/sae-a/dec_keys", base(p.b.local_addr()));
    dec_all(&p.pki.client(Some("sae-b")), &url, &sent).await;
}

async fn scrape(port: u16) -> (String, String) {
    let r = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    (ct, r.text().await.unwrap())
}

/// The value of the sample `name{labels}` (labels written as in the text) in a scrape.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn a_metrics_address_other_than_loopback_needs_metrics_public() {
    let dir = private_tempdir();
    let pki = Pki::new("metrics-cfg-ca", &["kme-a"], &[]);
    let base_text = kme_table(&pki, &dir.path().join("db"), "kme-a", free_port());
    let load = |extra: &str| {
        let path = dir.path().join("kme.toml");
        std::fs::write(&path, format!("{base_text}{extra}")).unwrap();
        qshield::kme::config::load(&path).map(|c| c.metrics_listen)
    };
    let e = load("metrics_listen = \"0.0.0.0:9464\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("kme.metrics_listen")
            && e.contains("not a loopback address")
            && e.contains("metrics_public = true"),
        "{e}"
    );
    assert!(e.contains("kme.toml:"), "names the file and line: {e}");
    let public = load("metrics_listen = \"0.0.0.0:9464\"\nmetrics_public = true\n").unwrap();
    assert_eq!(public, Some("0.0.0.0:9464".parse().unwrap()));
    assert_eq!(
        load("metrics_listen = \"[::1]:9464\"\n").unwrap(),
        Some("[::1]:9464".parse().unwrap())
    );
    assert_eq!(load("").unwrap(), None, "off unless configured");
    let e = load("metrics_listen = \"localhost\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("kme.metrics_listen"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scrape_agrees_with_the_status_and_passes_promtool() {
    let port = free_port();
    let p = pair_with_metrics(port).await;
    keys_through(&p, 3).await;
    keys_through(&p, 2).await;
    // Pools settle (the link refills), then a scrape and the status agree.
    let st = settled_levels(
        async || {
            let st = p.b.status().await;
            (st.links[0].send_pool_bits, st.links[0].receive_pool_bits)
        },
        |&(s, r)| s + r > 0,
    )
    .await;
    let (ct, text) = scrape(port).await;
    assert_eq!(ct, qshield::kme::prometheus::CONTENT_TYPE);
    let status = p.b.status().await;
    let pair = status.pairs.iter().find(|q| q.master == "sae-a").unwrap();
    assert_eq!(pair.keys_to_slave, 5);
    for (series, want) in [
        (
            "qshield_kme_pair_keys_total{master=\"sae-a\",slave=\"sae-b\",to=\"slave\"}",
            5.0,
        ),
        (
            "qshield_kme_pair_keys_relayed_total{master=\"sae-a\",slave=\"sae-b\"}",
            5.0,
        ),
        (
            "qshield_kme_pair_key_bytes_total{master=\"sae-a\",slave=\"sae-b\"}",
            5.0 * 32.0,
        ),
        (
            "qshield_kme_link_pool_bytes{peer=\"kme-a\",direction=\"send\"}",
            st.0 as f64 / 8.0,
        ),
        (
            "qshield_kme_link_pool_bytes{peer=\"kme-a\",direction=\"receive\"}",
            st.1 as f64 / 8.0,
        ),
        (
            "qshield_kme_link_relays_total{peer=\"kme-a\",direction=\"received\"}",
            2.0,
        ),
        ("qshield_kme_link_alarm{peer=\"kme-a\"}", 0.0),
        ("qshield_kme_link_state_origins", 2.0),
    ] {
        assert_eq!(sample(&text, series), Some(want), "{series} in\n{text}");
    }
    assert!(
        !text.contains("key_ID") && !text.contains("key_id"),
        "no key IDs in metrics"
    );
    promtool_passes(&text);
    // Only /metrics is served.
    let r = reqwest::get(format!("http://127.0.0.1:{port}/status"))
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    p.a.shutdown().await;
    p.b.shutdown().await;
}

/// promtool, the Prometheus project's own checker (names, types, units, HELP), finds
/// nothing to say about `text`.
fn promtool_passes(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus) is installed by scripts/install-deps.sh");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool: {said}"
    );
}

/// A status document with a CV-QKD link under alarm and an SAE pair.
fn cvqkd_document() -> qshield::kme::status::KmeStatus {
    use qshield::kme::link::cvqkd::board::CvqkdFigures;
    use qshield::kme::routing::RoutingStatus;
    use qshield::kme::status::{KmeStatus, LinkStatus, PairStatus, RefusalCount};
    let mut c = CvqkdFigures::default();
    c.transmittance_estimate = Some(0.83);
    c.excess_noise_estimate_snu = Some(2.01);
    c.snr = Some(1.88);
    c.beta = Some(0.786);
    c.fer = Some(0.005);
    c.key_bits = 2_650_544;
    c.secret_key_rate_bits_per_second = 67_347.0;
    c.blocks = 14;
    c.blocks_aborted = 2;
    c.alarm = Some("2 blocks in a row".into());
    KmeStatus {
        kme_id: "kme-ring-1".into(),
        links: vec![LinkStatus {
            peer: "kme-ring-2".into(),
            role: "leader",
            source: "cvqkd simulator (NOT QKD-secured)",
            send_pool_bits: 800,
            receive_pool_bits: 1600,
            generated_bits: 2_650_544,
            generated_bits_per_second: 0.0,
            consumed_bits: 512,
            consumed_bits_per_second: 0.0,
            relays_sent: 1,
            relays_received: 1,
            errors_503: 3,
            refusals: vec![RefusalCount {
                code: 503,
                reason: "link_alarm",
                count: 3,
            }],
            cvqkd: Some(c),
        }],
        pairs: vec![PairStatus {
            master: "sae-a".into(),
            slave: "sae-b".into(),
            keys_to_master: 4,
            keys_to_slave: 3,
            keys_relayed: 4,
            bits_per_second: 0.0,
            errors_503: 1,
            refusals: vec![
                RefusalCount {
                    code: 400,
                    reason: "bad_request",
                    count: 2,
                },
                RefusalCount {
                    code: 503,
                    reason: "quota",
                    count: 1,
                },
            ],
            keys_expired: 0,
        }],
        routing: RoutingStatus {
            adverts: vec![],
            unreachable: vec![],
            out_of_service: vec![],
            relays: vec![],
        },
        keys_waiting_for_shares: 0,
    }
}

/// A CV-QKD link's estimates (and an alarm) render as promtool wants them too.
#[test]
fn cvqkd_figures_pass_promtool() {
    let doc = cvqkd_document();
    let text = qshield::kme::prometheus::render_document(&doc, |_, _| 0);
    for (series, want) in [
        (
            "qshield_kme_cvqkd_excess_noise_snu{peer=\"kme-ring-2\"}",
            2.01,
        ),
        (
            "qshield_kme_cvqkd_key_bytes_total{peer=\"kme-ring-2\"}",
            331_318.0,
        ),
        ("qshield_kme_link_alarm{peer=\"kme-ring-2\"}", 1.0),
        (
            "qshield_kme_link_refusals_total{peer=\"kme-ring-2\",code=\"503\",reason=\"link_alarm\"}",
            3.0,
        ),
        (
            "qshield_kme_pair_refusals_total{master=\"sae-a\",slave=\"sae-b\",code=\"400\",reason=\"bad_request\"}",
            2.0,
        ),
        (
            "qshield_kme_pair_refusals_total{master=\"sae-a\",slave=\"sae-b\",code=\"503\",reason=\"quota\"}",
            1.0,
        ),
        (
            "qshield_kme_link_pool_bytes{peer=\"kme-ring-2\",direction=\"receive\"}",
            200.0,
        ),
    ] {
        assert_eq!(sample(&text, series), Some(want), "{series} in\n{text}");
    }
    promtool_passes(&text);
}

/// A Prometheus server on loopback, scraping `target` every second; stopped (by PID) when
/// dropped.
struct Prometheus {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: kme\n    static_configs:\n      - targets: ['127.0.0.1:{target}']\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect(
                "prometheus (Debian package prometheus) is installed by scripts/install-deps.sh",
            );
        Self {
            child,
            port,
            _dir: dir,
        }
    }

    /// The value of instant query `q`, if it has exactly one sample.
    async fn query(&self, q: &str) -> Option<f64> {
        let url = reqwest::Url::parse_with_params(
            &format!("http://127.0.0.1:{}/api/v1/query", self.port),
            &[("query", q)],
        )
        .ok()?;
        let r = reqwest::get(url).await.ok()?;
        let v: serde_json::Value = r.json().await.ok()?;
        let result = v["data"]["result"].as_array()?;
        if result.len() != 1 {
            return None;
        }
        result[0]["value"][1].as_str()?.parse().ok()
    }

    /// Waits (up to 30 s) until `q` answers a value that `ok` accepts; that value.
    async fn until(&self, q: &str, ok: impl Fn(f64) -> bool) -> f64 {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(v) = self.query(q).await
                && ok(v)
            {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "Prometheus never answered {q} as expected (last {:?})",
                self.query(q).await
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_prometheus_server_scrapes_the_kme_while_keys_flow() {
    let port = free_port();
    let p = pair_with_metrics(port).await;
    let prom = Prometheus::start(port);
    prom.until("up{job=\"kme\"}", |v| v == 1.0).await;
    // Keys flow for a while: a key every 100 ms.
    let started = Instant::now();
    let mut sent = 0u64;
    while started.elapsed() < Duration::from_secs(6) {
        keys_through(&p, 1).await;
        sent += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A rate: keys per second to the slave, over the flow (1/0.1 s at most).
    let rate = prom
        .until("rate(qshield_kme_pair_keys_total{to=\"slave\"}[5s])", |v| {
            v > 0.0
        })
        .await;
    assert!(rate <= 12.0, "{rate} keys/s: more than were sent");
    // A counter and a gauge, once the flow stopped and the pools settled, agree with the status.
    let slave_keys = prom
        .until("qshield_kme_pair_keys_total{to=\"slave\"}", |v| {
            v == sent as f64
        })
        .await;
    let status = p.b.status().await;
    assert_eq!(status.pairs[0].keys_to_slave as f64, slave_keys);
    let (send, _) = settled_levels(
        async || {
            let st = p.b.status().await;
            (st.links[0].send_pool_bits, st.links[0].receive_pool_bits)
        },
        |&(s, r)| s + r > 0,
    )
    .await;
    prom.until(
        "qshield_kme_link_pool_bytes{peer=\"kme-a\",direction=\"send\"}",
        |v| v == send as f64 / 8.0,
    )
    .await;
    eprintln!("Prometheus: {sent} keys, rate {rate:.2} keys/s, pool {send} bits");
    drop(prom);
    p.a.shutdown().await;
    p.b.shutdown().await;
}

/// Every metric the Grafana dashboard (deploy/grafana/qshield.json) queries is one the KME or
/// the daemon serves.
#[test]
fn the_grafana_dashboard_queries_only_metrics_that_exist() {
    let mut served = std::collections::BTreeSet::new();
    let kme = qshield::kme::prometheus::render_document(&cvqkd_document(), |_, _| 8);
    let daemon = qshield::daemon::prometheus::render(&serde_json::json!({
        "interface": "qsa", "uptime_seconds": 1.0,
        "io": {"tun": {"received": 1, "sent": 1}, "udp": {"received": 1, "sent": 1}},
        "drops": {"malformed": 0},
        "peers": [{"name": "b", "handshakes": 1, "rotations": 1, "last_handshake_seconds_ago": 1.0,
            "total_bytes_sent": 1, "total_bytes_received": 1, "drops": {"bad_tag": 0},
            "current_key": {"age_seconds": 1.0, "rekey_in_seconds": 1.0, "rekey_in_bytes": 1,
                "reject_in_seconds": 1.0, "reject_in_bytes": 1, "packets_left": 1, "sources": ["qkd"]},
            "qkd": {"keys_consumed": 1, "fallbacks": 0, "failures": 0},
            "kme_calls": {"enc_keys": {"buckets": [["+Inf", 1]], "sum_seconds": 0.1, "count": 1}}}]
    }));
    for line in kme.lines().chain(daemon.lines()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split(' ');
            let (name, kind) = (it.next().unwrap(), it.next().unwrap());
            served.insert(name.to_string());
            if kind == "histogram" {
                for suffix in ["_bucket", "_sum", "_count"] {
                    served.insert(format!("{name}{suffix}"));
                }
            }
        }
    }
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/grafana/qshield.json"
    ))
    .unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(t["expr"].as_str().unwrap().to_string());
        }
    }
    assert!(exprs.len() >= 20, "{} queries", exprs.len());
    let mut used = std::collections::BTreeSet::new();
    for e in &exprs {
        let bytes = e.as_bytes();
        let mut i = 0;
        while let Some(at) = e[i..].find("qshield_") {
            let start = i + at;
            let end = start
                + e[start..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(e.len() - start);
            used.insert(e[start..end].to_string());
            i = end.min(bytes.len());
        }
    }
    let unknown: Vec<_> = used.iter().filter(|m| !served.contains(*m)).collect();
    assert!(
        unknown.is_empty(),
        "the dashboard queries metrics nobody serves: {unknown:?}"
    );
    assert!(used.len() >= 20, "{used:?}");
}
