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
    })
}

/// The status document.
pub fn report(shared: &Shared, info: &DaemonInfo) -> Value {
    let (status, public) = {
        let ep = shared.lock();
        (ep.status(shared.clock.now()), ep.public().to_base64())
    };
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
        "peers": status.peers,
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
        "  transfer: {} sent, {} received",
        bytes(&p["total_bytes_sent"]),
        bytes(&p["total_bytes_received"])
    );
    let _ = writeln!(out, "  drops: {}", counters(&p["drops"]));
    render_qkd(out, &p["qkd"]);
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
