//! The daemon's metrics in the Prometheus text format, served on the opt-in
//! `[interface] metrics_listen` address at `GET /metrics` (plain HTTP, one request per
//! connection; loopback unless `metrics_public = true`). Each scrape is built from the
//! status document (what `qshield status --json` prints): per interface its I/O and drops by
//! reason; per peer its bytes each way, handshakes and rotations, drops by reason, the
//! current key's age and remaining budgets, QKD keys consumed, fallbacks and KME failures.
//! Labels carry the interface and peer names only, never a key or a key ID.

use crate::prometheus_text::{CONTENT_TYPE, Exposition, HistogramSeries, Sample};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// Most bytes of a request head read.
const REQUEST_HEAD_MAX_BYTES: usize = 8192;
/// How long a client has to send its request head.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// Serves `GET /metrics` on `listener` until `shutdown` is set; `status` builds the status
/// document.
pub fn serve(listener: TcpListener, shutdown: &Arc<AtomicBool>, status: impl Fn() -> Value) {
    if listener.set_nonblocking(true).is_err() {
        tracing::warn!("metrics listener: cannot poll it; metrics are off");
        return;
    }
    super::accept_loop::serve_until(
        "metrics listener",
        shutdown,
        || listener.accept().map(|(stream, _)| stream),
        |stream| answer(stream, &status),
    );
}

fn answer(mut stream: TcpStream, status: &impl Fn() -> Value) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < REQUEST_HEAD_MAX_BYTES {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let (method, path) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let (code, kind, body) = match (method, path) {
        (b"GET", b"/metrics") => ("200 OK", CONTENT_TYPE, render(&status())),
        (b"GET", _) => (
            "404 Not Found",
            "text/plain",
            "only /metrics is served\n".into(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "GET /metrics\n".into(),
        ),
    };
    write!(
        stream,
        "HTTP/1.1 {code}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn num(v: &Value) -> Option<f64> {
    v.as_f64()
}

/// The scrape of status document `doc`.
pub fn render(doc: &Value) -> String {
    let mut e = Exposition::default();
    let iface = doc["interface"].as_str().unwrap_or_default().to_string();
    let if_label = || vec![("interface", iface.clone())];
    e.family(
        "qshield_uptime_seconds",
        "gauge",
        "Seconds since the daemon started.",
        num(&doc["uptime_seconds"])
            .map(|v| vec![(if_label(), v)])
            .unwrap_or_default(),
    );
    let mut io: Vec<Sample> = Vec::new();
    for device in ["tun", "udp"] {
        for direction in ["received", "sent"] {
            if let Some(v) = num(&doc["io"][device][direction]) {
                let mut l = if_label();
                l.push(("device", device.into()));
                l.push(("direction", direction.into()));
                io.push((l, v));
            }
        }
    }
    e.family(
        "qshield_io_packets_total",
        "counter",
        "Packets read from and written to the TUN device and the UDP socket.",
        io,
    );
    e.family(
        "qshield_udp_peer_queues",
        "gauge",
        "Peer endpoints with a UDP receive socket of their own on the listen port.",
        num(&doc["io"]["udp"]["peer_queues"])
            .map(|v| vec![(if_label(), v)])
            .unwrap_or_default(),
    );
    let by_reason = |obj: &Value, base: Vec<(&'static str, String)>| -> Vec<Sample> {
        obj.as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(reason, v)| {
                        let mut l = base.clone();
                        l.push(("reason", reason.clone()));
                        Some((l, num(v)?))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    e.family(
        "qshield_interface_drops_total",
        "counter",
        "Datagrams the interface dropped before any peer, by reason.",
        by_reason(&doc["drops"], if_label()),
    );
    let peers = doc["peers"].as_array().cloned().unwrap_or_default();
    let peer_label = |p: &Value| {
        let mut l = if_label();
        l.push(("peer", p["name"].as_str().unwrap_or_default().to_string()));
        l
    };
    let per_peer = |f: &dyn Fn(&Value) -> Option<f64>| -> Vec<Sample> {
        peers
            .iter()
            .filter_map(|p| Some((peer_label(p), f(p)?)))
            .collect()
    };
    let each_way = |field: &'static str| -> Vec<Sample> {
        peers
            .iter()
            .flat_map(|p| {
                ["sent", "received"].into_iter().filter_map(move |d| {
                    let mut l = peer_label(p);
                    l.push(("direction", d.into()));
                    Some((l, num(&p[format!("{field}_{d}")])?))
                })
            })
            .collect()
    };
    e.family(
        "qshield_peer_bytes_total",
        "counter",
        "Plaintext bytes carried for a peer, each way.",
        each_way("total_bytes"),
    );
    e.family(
        "qshield_peer_packets_total",
        "counter",
        "Data packets carried for a peer, each way (keepalives included).",
        each_way("total_packets"),
    );
    e.family(
        "qshield_peer_handshakes_total",
        "counter",
        "Handshakes completed with a peer.",
        per_peer(&|p| num(&p["handshakes"])),
    );
    e.family(
        "qshield_peer_rotations_total",
        "counter",
        "Key rotations with a peer.",
        per_peer(&|p| num(&p["rotations"])),
    );
    e.family(
        "qshield_peer_last_handshake_age_seconds",
        "gauge",
        "Seconds since the last handshake with a peer completed.",
        per_peer(&|p| num(&p["last_handshake_seconds_ago"])),
    );
    e.family(
        "qshield_peer_drops_total",
        "counter",
        "Datagrams of a peer dropped, by reason.",
        peers
            .iter()
            .flat_map(|p| by_reason(&p["drops"], peer_label(p)))
            .collect(),
    );
    let key = |f: &'static str| move |p: &Value| num(&p["current_key"][f]);
    e.family(
        "qshield_peer_key_age_seconds",
        "gauge",
        "Age of the current session key.",
        per_peer(&key("age_seconds")),
    );
    e.family(
        "qshield_peer_key_rekey_in_seconds",
        "gauge",
        "Seconds until the current key's soft time budget starts a rotation.",
        per_peer(&key("rekey_in_seconds")),
    );
    e.family(
        "qshield_peer_key_rekey_in_bytes",
        "gauge",
        "Bytes until the current key's soft byte budget starts a rotation.",
        per_peer(&key("rekey_in_bytes")),
    );
    e.family(
        "qshield_peer_key_reject_in_seconds",
        "gauge",
        "Seconds until the current key's hard time limit refuses it.",
        per_peer(&key("reject_in_seconds")),
    );
    e.family(
        "qshield_peer_key_reject_in_bytes",
        "gauge",
        "Bytes until the current key's hard byte limit refuses it.",
        per_peer(&key("reject_in_bytes")),
    );
    e.family(
        "qshield_peer_key_packets_left",
        "gauge",
        "Packets the current key may still seal under the cipher's limit.",
        per_peer(&key("packets_left")),
    );
    e.family(
        "qshield_peer_key_has_qkd",
        "gauge",
        "1 when the current key mixes a QKD key.",
        per_peer(&|p| {
            let sources = p["current_key"]["sources"].as_array()?;
            Some(f64::from(u8::from(sources.iter().any(|s| s == "qkd"))))
        }),
    );
    e.family(
        "qshield_peer_qkd_keys_consumed_total",
        "counter",
        "QKD keys taken from the KME for sessions with a peer.",
        per_peer(&|p| num(&p["qkd"]["keys_consumed"])),
    );
    e.family(
        "qshield_peer_qkd_fallbacks_total",
        "counter",
        "Sessions with a peer made without a QKD key (policy allow).",
        per_peer(&|p| num(&p["qkd"]["fallbacks"])),
    );
    e.family(
        "qshield_peer_qkd_kme_failures_total",
        "counter",
        "Failed calls to the KME for a peer's QKD keys.",
        per_peer(&|p| num(&p["qkd"]["failures"])),
    );
    let mut calls: Vec<HistogramSeries> = Vec::new();
    for p in &peers {
        let Some(by_call) = p["kme_calls"].as_object() else {
            continue;
        };
        for (call, h) in by_call {
            let buckets = h["buckets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|b| {
                    let le = match &b[0] {
                        Value::String(s) => s.clone(),
                        v => format!("{}", v.as_f64()?),
                    };
                    Some((le, b[1].as_u64()?))
                })
                .collect();
            let mut l = peer_label(p);
            l.push(("call", call.clone()));
            calls.push((
                l,
                buckets,
                h["sum_seconds"].as_f64().unwrap_or(0.0),
                h["count"].as_u64().unwrap_or(0),
            ));
        }
    }
    e.histogram(
        "qshield_peer_kme_call_duration_seconds",
        "Time the daemon's calls to its KME took for a peer's QKD keys (answered or failed).",
        calls,
    );
    e.out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_document_becomes_metrics_without_key_ids() {
        let doc = serde_json::json!({
            "interface": "qsa", "uptime_seconds": 12.5,
            "io": {"tun": {"received": 5, "sent": 6}, "udp": {"received": 7, "sent": 8}},
            "drops": {"malformed": 2, "no_route": 0},
            "peers": [{
                "name": "site-b", "handshakes": 3, "rotations": 2,
                "last_handshake_seconds_ago": 1.5,
                "total_bytes_sent": 1000, "total_bytes_received": 2000,
                "total_packets_sent": 10, "total_packets_received": 20,
                "drops": {"bad_tag": 1},
                "current_key": {"age_seconds": 1.5, "rekey_in_seconds": 118.5,
                    "rekey_in_bytes": 10, "reject_in_seconds": 178.5, "reject_in_bytes": 20,
                    "packets_left": 30, "sources": ["x25519", "ml-kem-768", "qkd"],
                    "qkd_key_id": "5bd3c1f0-0000-4000-8000-000000000001"},
                "qkd": {"keys_consumed": 4, "fallbacks": 0, "failures": 1},
                "kme_calls": {"enc_keys": {"buckets": [[0.005, 1], [0.01, 3], ["+Inf", 4]],
                    "sum_seconds": 0.5, "count": 4}}
            }]
        });
        let text = render(&doc);
        for line in [
            "qshield_io_packets_total{interface=\"qsa\",device=\"udp\",direction=\"sent\"} 8",
            "qshield_interface_drops_total{interface=\"qsa\",reason=\"malformed\"} 2",
            "qshield_peer_bytes_total{interface=\"qsa\",peer=\"site-b\",direction=\"received\"} 2000",
            "qshield_peer_drops_total{interface=\"qsa\",peer=\"site-b\",reason=\"bad_tag\"} 1",
            "qshield_peer_packets_total{interface=\"qsa\",peer=\"site-b\",direction=\"received\"} 20",
            "qshield_peer_key_rekey_in_seconds{interface=\"qsa\",peer=\"site-b\"} 118.5",
            "qshield_peer_key_has_qkd{interface=\"qsa\",peer=\"site-b\"} 1",
            "qshield_peer_qkd_kme_failures_total{interface=\"qsa\",peer=\"site-b\"} 1",
            "qshield_peer_kme_call_duration_seconds_bucket{interface=\"qsa\",peer=\"site-b\",call=\"enc_keys\",le=\"0.01\"} 3",
            "qshield_peer_kme_call_duration_seconds_bucket{interface=\"qsa\",peer=\"site-b\",call=\"enc_keys\",le=\"+Inf\"} 4",
            "qshield_peer_kme_call_duration_seconds_count{interface=\"qsa\",peer=\"site-b\",call=\"enc_keys\"} 4",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
        assert!(!text.contains("5bd3c1f0"), "no key ID in the metrics");
    }
}
