//! The KME's metrics in the Prometheus text format (version 0.0.4), served on the opt-in
//! `metrics_listen` address at `GET /metrics` (plain HTTP; loopback unless
//! `metrics_public = true`). Built from the status document ([`super::status`]) at each
//! scrape: per link its pools, key bits generated and spent, relays, refusals, alarm and, on
//! CV-QKD links, the device pair's estimates; per SAE pair its keys and refusals; the link
//! state held. Names follow Prometheus' conventions (`_total` counters, base units in the name: key
//! and pad amounts in bytes, bits / 8);
//! labels carry KME and SAE IDs only, never a key or a key ID.

use super::metrics::PairCounter;
use super::state::Shared;
use super::status::{KmeStatus, PairStatus, RefusalCount};
use crate::prometheus_text::{Exposition, Sample};

pub use crate::prometheus_text::CONTENT_TYPE;

fn peer(p: &str) -> Vec<(&'static str, String)> {
    vec![("peer", p.to_string())]
}

fn pair(master: &str, slave: &str) -> Vec<(&'static str, String)> {
    vec![("master", master.to_string()), ("slave", slave.to_string())]
}

/// One sample per code and reason counted, labelled `base` plus `code` and `reason`.
fn refusal_samples(base: Vec<(&'static str, String)>, refusals: &[RefusalCount]) -> Vec<Sample> {
    refusals
        .iter()
        .map(|r| {
            let mut l = base.clone();
            l.push(("code", r.code.to_string()));
            l.push(("reason", r.reason.to_string()));
            (l, r.count as f64)
        })
        .collect()
}

/// The scrape of this KME now.
pub async fn render(shared: &Shared) -> String {
    let doc = super::status::document(shared).await;
    render_document(&doc, |m, s| {
        shared.metrics.pair_value(m, s, PairCounter::BitsDelivered)
    })
}

/// The scrape of status document `doc`; `bits_delivered` gives a pair's key bits delivered.
pub fn render_document(doc: &KmeStatus, bits_delivered: impl Fn(&str, &str) -> u64) -> String {
    let mut e = Exposition::default();
    let links = &doc.links;
    let out_of_service = &doc.routing.out_of_service;
    e.family(
        "qshield_kme_link_pool_bytes",
        "gauge",
        "Unspent pad of a QKD link, in bytes: send, what this KME may spend towards the peer; receive, what the peer may spend towards it.",
        links
            .iter()
            .flat_map(|l| {
                [
                    (
                        vec![("peer", l.peer.clone()), ("direction", "send".into())],
                        l.send_pool_bits as f64 / 8.0,
                    ),
                    (
                        vec![("peer", l.peer.clone()), ("direction", "receive".into())],
                        l.receive_pool_bits as f64 / 8.0,
                    ),
                ]
            })
            .collect(),
    );
    e.family(
        "qshield_kme_link_generated_bytes_total",
        "counter",
        "Key the link's source generated (leader) or delivered to this end (follower), in bytes.",
        links
            .iter()
            .map(|l| (peer(&l.peer), l.generated_bits as f64 / 8.0))
            .collect(),
    );
    e.family(
        "qshield_kme_link_consumed_bytes_total",
        "counter",
        "Pad of the link spent by relays, both directions, in bytes.",
        links
            .iter()
            .map(|l| (peer(&l.peer), l.consumed_bits as f64 / 8.0))
            .collect(),
    );
    e.family(
        "qshield_kme_link_relays_total",
        "counter",
        "Relay hops over the link, sent and received.",
        links
            .iter()
            .flat_map(|l| {
                [
                    (
                        vec![("peer", l.peer.clone()), ("direction", "sent".into())],
                        l.relays_sent as f64,
                    ),
                    (
                        vec![("peer", l.peer.clone()), ("direction", "received".into())],
                        l.relays_received as f64,
                    ),
                ]
            })
            .collect(),
    );
    e.family(
        "qshield_kme_link_refusals_total",
        "counter",
        "Relays over the link refused, by code (503) and reason: no_key_material (not enough pad) or link_alarm (under alarm or out of service).",
        links
            .iter()
            .flat_map(|l| refusal_samples(peer(&l.peer), &l.refusals))
            .collect(),
    );
    e.family(
        "qshield_kme_link_alarm",
        "gauge",
        "1 while the link is under alarm (a CV-QKD alarm, or taken out of service): nothing is relayed over it.",
        links
            .iter()
            .map(|l| {
                let alarm = l.cvqkd.as_ref().is_some_and(|c| c.alarm.is_some())
                    || out_of_service.contains(&l.peer);
                (peer(&l.peer), f64::from(u8::from(alarm)))
            })
            .collect(),
    );
    let cvqkd: Vec<_> = links
        .iter()
        .filter_map(|l| l.cvqkd.as_ref().map(|c| (l.peer.as_str(), c)))
        .collect();
    let estimate = |f: &dyn Fn(&crate::kme::link::cvqkd::board::CvqkdFigures) -> Option<f64>| {
        cvqkd
            .iter()
            .filter_map(|(p, c)| f(c).map(|v| (peer(p), v)))
            .collect::<Vec<_>>()
    };
    e.family(
        "qshield_kme_cvqkd_transmittance",
        "gauge",
        "Estimated channel transmittance T of the last CV-QKD block (ratio).",
        estimate(&|c| c.transmittance_estimate),
    );
    e.family(
        "qshield_kme_cvqkd_excess_noise_snu",
        "gauge",
        "Estimated excess noise xi of the last CV-QKD block, in shot-noise units.",
        estimate(&|c| c.excess_noise_estimate_snu),
    );
    e.family(
        "qshield_kme_cvqkd_snr",
        "gauge",
        "Estimated signal-to-noise ratio of the last CV-QKD block (ratio).",
        estimate(&|c| c.snr),
    );
    e.family(
        "qshield_kme_cvqkd_reconciliation_efficiency",
        "gauge",
        "Reconciliation efficiency beta of the code of the last reconciled block (ratio).",
        estimate(&|c| c.beta),
    );
    e.family(
        "qshield_kme_cvqkd_frame_error_ratio",
        "gauge",
        "Frame error rate over every reconciled LDPC frame (ratio).",
        estimate(&|c| c.fer),
    );
    e.family(
        "qshield_kme_cvqkd_secret_key_rate_bytes_per_second",
        "gauge",
        "Secret key stored per second since start, in bytes (bits / 8).",
        estimate(&|c| Some(c.secret_key_rate_bits_per_second / 8.0)),
    );
    e.family(
        "qshield_kme_cvqkd_key_bytes_total",
        "counter",
        "Secret key the CV-QKD link stored since start, in bytes (bits / 8).",
        estimate(&|c| Some(c.key_bits as f64 / 8.0)),
    );
    e.family(
        "qshield_kme_cvqkd_blocks_total",
        "counter",
        "CV-QKD blocks run by this end.",
        estimate(&|c| Some(c.blocks as f64)),
    );
    e.family(
        "qshield_kme_cvqkd_blocks_aborted_total",
        "counter",
        "CV-QKD blocks that gave no key, for any reason.",
        estimate(&|c| Some(c.blocks_aborted as f64)),
    );
    let pairs = &doc.pairs;
    let per_pair = |value: &dyn Fn(&PairStatus) -> f64| -> Vec<Sample> {
        pairs
            .iter()
            .map(|p| (pair(&p.master, &p.slave), value(p)))
            .collect()
    };
    e.family(
        "qshield_kme_pair_keys_total",
        "counter",
        "Keys delivered to an SAE pair's master (enc_keys) and slave (dec_keys).",
        pairs
            .iter()
            .flat_map(|p| {
                let to = |who: &str| {
                    let mut l = pair(&p.master, &p.slave);
                    l.push(("to", who.to_string()));
                    l
                };
                [
                    (to("master"), p.keys_to_master as f64),
                    (to("slave"), p.keys_to_slave as f64),
                ]
            })
            .collect(),
    );
    e.family(
        "qshield_kme_pair_key_bytes_total",
        "counter",
        "Key delivered to an SAE pair (master and slave), in bytes.",
        per_pair(&|p| bits_delivered(&p.master, &p.slave) as f64 / 8.0),
    );
    e.family(
        "qshield_kme_pair_keys_relayed_total",
        "counter",
        "Keys of an SAE pair relayed to or stored from another KME.",
        per_pair(&|p| p.keys_relayed as f64),
    );
    e.family(
        "qshield_kme_pair_refusals_total",
        "counter",
        "Key requests of an SAE pair refused, by code and reason: 400 bad_request; 503 quota, no_key_material, store_full, no_path, link_alarm, relay_failed or internal.",
        pairs
            .iter()
            .flat_map(|p| refusal_samples(pair(&p.master, &p.slave), &p.refusals))
            .collect(),
    );
    e.family(
        "qshield_kme_pair_keys_expired_total",
        "counter",
        "Keys the slave never fetched, erased after pending_key_expiry.",
        per_pair(&|p| p.keys_expired as f64),
    );
    e.family(
        "qshield_kme_link_state_origins",
        "gauge",
        "KMEs whose link-state adverts this KME holds (itself included).",
        vec![(vec![], doc.routing.adverts.len() as f64)],
    );
    e.family(
        "qshield_kme_neighbours_unreachable",
        "gauge",
        "Link neighbours that did not take this KME's last adverts.",
        vec![(vec![], doc.routing.unreachable.len() as f64)],
    );
    e.family(
        "qshield_kme_keys_waiting_for_shares",
        "gauge",
        "Keys relayed in shares waiting here for the rest of their shares.",
        vec![(vec![], doc.keys_waiting_for_shares as f64)],
    );
    e.out
}
