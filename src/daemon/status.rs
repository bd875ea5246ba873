//! The status document the control socket serves, and its rendering as text for
//! `qshield status` (the JSON form is the same document, pretty-printed).

use super::runtime::Shared;
use crate::config::Config;
use crate::net::{IoStats, TunIo, UdpIo};
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::sync::Arc;

/// Facts about the running daemon that the core does not hold.
pub struct DaemonInfo {
    interface: String,
    listen: String,
    mtu: u16,
    tun: Arc<dyn TunIo>,
    udp: Arc<dyn UdpIo>,
    started: std::time::Instant,
    offload: Value,
}

impl DaemonInfo {
    /// Info for a daemon started now.
    pub fn new(config: &Config, tun: Arc<dyn TunIo>, udp: Arc<dyn UdpIo>) -> Self {
        Self {
            interface: config.interface.name.clone(),
            listen: config.interface.listen.to_string(),
            mtu: config.interface.mtu,
            tun,
            udp,
            started: std::time::Instant::now(),
            offload: json!({ "mode": "off" }),
        }
    }

    /// Records the offloads the devices got (shown as `offload` in the document).
    pub fn with_offload(
        mut self,
        mode: &str,
        tun: crate::net::TunOffload,
        udp: crate::net::UdpOffload,
    ) -> Self {
        self.offload = json!({ "mode": mode, "tun": tun, "udp": udp });
        self
    }
}

fn io_json(s: IoStats) -> Value {
    json!({
        "received": s.received,
        "sent": s.sent,
        "dropped_truncated": s.dropped_truncated,
        "dropped_too_big": s.dropped_too_big,
        "too_big_answered": s.too_big_answered,
        "send_errors": s.send_errors,
        "peer_queues": s.peer_queues,
    })
}

/// The status document.
pub fn report(shared: &Shared, info: &DaemonInfo) -> Value {
    let (status, public) = {
        let ep = shared.lock();
        (ep.status(shared.clock.now()), ep.public().to_base64())
    };
    let mut peers = serde_json::to_value(&status.peers).unwrap_or_default();
    for (i, p) in peers.as_array_mut().into_iter().flatten().enumerate() {
        p["kme_calls"] = shared.kme_calls.to_json(i);
    }
    json!({
        "interface": info.interface,
        "listen": info.listen,
        "mtu": info.mtu,
        "public_key": public,
        "pid": std::process::id(),
        "uptime_seconds": info.started.elapsed().as_secs_f64(),
        "io": { "tun": io_json(info.tun.stats()), "udp": io_json(info.udp.stats()) },
        "offload": info.offload,
        "drops": status.drops,
        "peers": peers,
    })
}

/// `auto: tun tso uso gro, udp gso gro` (only what is on), or `off`.
fn offload_text(v: &Value) -> String {
    let on = |section: &str, keys: &[&str]| -> String {
        keys.iter()
            .filter(|k| v[section][**k].as_bool() == Some(true))
            .copied()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mode = v["mode"].as_str().unwrap_or("off");
    if mode == "off" {
        return "off".into();
    }
    let tun = on("tun", &["tso", "uso", "gro"]);
    let udp = on("udp", &["gso", "gro"]);
    let none = |s: String| if s.is_empty() { "none".to_string() } else { s };
    format!("{mode}: tun {}, udp {}", none(tun), none(udp))
}

/// Renders a status document as text, `wg show` style.
pub fn render_text(v: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "interface: {}", s(&v["interface"]));
    let _ = writeln!(
        out,
        "  listening on: {}   mtu: {}   pid: {}",
        s(&v["listen"]),
        v["mtu"],
        v["pid"]
    );
    let _ = writeln!(
        out,
        "  public key: {}…",
        s(&v["public_key"]).chars().take(24).collect::<String>()
    );
    let _ = writeln!(out, "  offload: {}", offload_text(&v["offload"]));
    let _ = writeln!(out, "  drops (interface): {}", counters(&v["drops"]));
    for p in v["peers"].as_array().into_iter().flatten() {
        render_peer(&mut out, p);
    }
    out
}

fn render_peer(out: &mut String, p: &Value) {
    let _ = writeln!(out, "\npeer: {}", s(&p["name"]));
    let _ = writeln!(out, "  health: {}", health(p));
    let _ = writeln!(
        out,
        "  endpoint: {}",
        p["endpoint"].as_str().unwrap_or("(unknown)")
    );
    let ago = p["last_handshake_seconds_ago"]
        .as_f64()
        .map_or("never".into(), |a| format!("{a:.1} s ago"));
    let _ = writeln!(
        out,
        "  last handshake: {ago}   handshakes: {}   rotations: {}",
        p["handshakes"], p["rotations"]
    );
    let _ = writeln!(
        out,
        "  cipher: {}   handshake in progress: {}",
        s(&p["cipher"]),
        p["handshake_in_progress"]
    );
    match p["current_key"].as_object() {
        Some(k) => render_key(out, &Value::Object(k.clone())),
        None => {
            let _ = writeln!(out, "  current key: none");
        }
    }
    let _ = writeln!(
        out,
        "  transfer: {} sent ({} packets), {} received ({} packets)",
        bytes(&p["total_bytes_sent"]),
        p["total_packets_sent"],
        bytes(&p["total_bytes_received"]),
        p["total_packets_received"]
    );
    let _ = writeln!(out, "  drops: {}", counters(&p["drops"]));
    render_qkd(out, &p["qkd"]);
}

/// One line: whether the tunnel to peer `p` is healthy, and if not, why and what to check.
pub fn health(p: &Value) -> String {
    let q = &p["qkd"];
    let policy = q["policy"].as_str().unwrap_or("disable");
    let kme_error = q["last_error"].as_str();
    let Some(key) = p["current_key"].as_object() else {
        return match (kme_error, p["handshake_in_progress"].as_bool()) {
            (Some(e), _) if policy != "disable" => format!(
                "DOWN: no session, and no QKD key (policy \"{policy}\"): the KME says {e}"
            ),
            (_, Some(true)) => "DOWN: no session yet; a handshake is under way (no answer yet: check that the peer runs, its endpoint and both public keys)".into(),
            _ => "DOWN: no session (check that the peer runs, its endpoint and both public keys)".into(),
        };
    };
    let age = key
        .get("age_seconds")
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    let reject_in = key
        .get("reject_in_seconds")
        .and_then(Value::as_f64)
        .unwrap_or(f64::MAX);
    let rekey_in = key
        .get("rekey_in_seconds")
        .and_then(Value::as_f64)
        .unwrap_or(f64::MAX);
    let has_qkd = key
        .get("sources")
        .and_then(Value::as_array)
        .is_some_and(|s| s.iter().any(|x| x == "qkd"));
    if rekey_in <= 0.0 {
        let why = kme_error.map_or_else(
            || "the new handshake has not completed".to_string(),
            |e| format!("no QKD key: the KME says {e}"),
        );
        return format!(
            "DEGRADED: the key is past its rotation time and stops in {reject_in:.0} s; {why}"
        );
    }
    if policy != "disable" && !has_qkd {
        let why = kme_error.map_or_else(String::new, |e| format!(": the KME says {e}"));
        return format!(
            "DEGRADED: the current key has no QKD key (policy \"{policy}\" fell back to X25519 + ML-KEM-768){why}"
        );
    }
    let sources = if has_qkd {
        "X25519 + ML-KEM-768 + QKD"
    } else {
        "X25519 + ML-KEM-768"
    };
    format!("OK: session {age:.0} s old, keys from {sources}, next rotation in {rekey_in:.0} s")
}

fn render_qkd(out: &mut String, q: &Value) {
    if q["policy"].as_str() == Some("disable") {
        let _ = writeln!(out, "  qkd: disabled");
        return;
    }
    let _ = writeln!(
        out,
        "  qkd: policy {}, {} keys consumed, {} fallbacks, {} KME failures{}",
        s(&q["policy"]),
        q["keys_consumed"],
        q["fallbacks"],
        q["failures"],
        if q["waiting_for_kme"].as_bool() == Some(true) {
            ", waiting for the KME"
        } else {
            ""
        }
    );
    if let Some(e) = q["last_error"].as_str() {
        let retry = q["retry_in_seconds"]
            .as_f64()
            .map_or(String::new(), |r| format!(" (retry in {r:.1} s)"));
        let _ = writeln!(out, "    last KME error: {e}{retry}");
    }
}

fn render_key(out: &mut String, k: &Value) {
    let sources: Vec<&str> = k["sources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x.as_str())
        .collect();
    let _ = writeln!(
        out,
        "  current key: epoch {} ({}), age {:.1} s, sources {}",
        k["epoch"],
        s(&k["role"]),
        k["age_seconds"].as_f64().unwrap_or(0.0),
        sources.join(" + ")
    );
    if let Some(id) = k["qkd_key_id"].as_str() {
        let _ = writeln!(out, "    QKD key_ID: {id}");
    }
    let _ = writeln!(
        out,
        "    under this key: {} / {} packets sent, {} / {} received",
        bytes(&k["bytes_sent"]),
        k["packets_sent"],
        bytes(&k["bytes_received"]),
        k["packets_received"]
    );
    let _ = writeln!(
        out,
        "    budget left: rekey in {} or {:.0} s; hard limit in {} or {:.0} s; {} packets under the cipher limit",
        bytes(&k["rekey_in_bytes"]),
        k["rekey_in_seconds"].as_f64().unwrap_or(0.0),
        bytes(&k["reject_in_bytes"]),
        k["reject_in_seconds"].as_f64().unwrap_or(0.0),
        k["packets_left"]
    );
}

fn s(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

fn bytes(v: &Value) -> String {
    let b = v.as_u64().unwrap_or(0) as f64;
    match b {
        b if b >= (1u64 << 30) as f64 => format!("{:.2} GiB", b / (1u64 << 30) as f64),
        b if b >= (1u64 << 20) as f64 => format!("{:.2} MiB", b / (1u64 << 20) as f64),
        b if b >= 1024.0 => format!("{:.1} KiB", b / 1024.0),
        b => format!("{b} B"),
    }
}

fn counters(v: &Value) -> String {
    let parts: Vec<String> = v
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_says_ok_or_why_not_in_one_line() {
        let ok = json!({"qkd": {"policy": "require"}, "current_key": {"age_seconds": 12.0,
            "rekey_in_seconds": 108.0, "reject_in_seconds": 168.0,
            "sources": ["x25519", "ml-kem-768", "qkd"]}});
        assert_eq!(
            health(&ok),
            "OK: session 12 s old, keys from X25519 + ML-KEM-768 + QKD, next rotation in 108 s"
        );
        let kme = json!({"qkd": {"policy": "require", "last_error": "KME refused (503): no route"},
            "current_key": null, "handshake_in_progress": false});
        assert!(
            health(&kme).starts_with("DOWN: no session, and no QKD key"),
            "{}",
            health(&kme)
        );
        assert!(health(&kme).contains("no route"));
        let late = json!({"qkd": {"policy": "require", "last_error": "KME unreachable"},
            "current_key": {"age_seconds": 130.0, "rekey_in_seconds": 0.0, "reject_in_seconds": 50.0,
            "sources": ["x25519", "ml-kem-768", "qkd"]}});
        assert!(
            health(&late)
                .starts_with("DEGRADED: the key is past its rotation time and stops in 50 s"),
            "{}",
            health(&late)
        );
        let fallback = json!({"qkd": {"policy": "allow"}, "current_key": {"age_seconds": 1.0,
            "rekey_in_seconds": 100.0, "reject_in_seconds": 160.0, "sources": ["x25519", "ml-kem-768"]}});
        assert!(
            health(&fallback).starts_with("DEGRADED: the current key has no QKD key"),
            "{}",
            health(&fallback)
        );
        let none = json!({"qkd": {"policy": "disable"}, "current_key": null, "handshake_in_progress": true});
        assert!(health(&none).starts_with("DOWN: no session yet; a handshake is under way"));
    }

    #[test]
    fn offload_line_names_what_is_on() {
        let v = json!({
            "mode": "auto",
            "tun": { "vnet_hdr": true, "tso": true, "uso": false, "gro": true },
            "udp": { "gso": false, "gro": true },
        });
        assert_eq!(offload_text(&v), "auto: tun tso gro, udp gro");
        let none = json!({ "mode": "auto", "tun": {}, "udp": {} });
        assert_eq!(offload_text(&none), "auto: tun none, udp none");
        assert_eq!(offload_text(&json!({ "mode": "off" })), "off");
    }
}
