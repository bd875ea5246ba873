//! A full handshake including both KME calls over mutual TLS on loopback: the initiator's
//! `enc_keys`, its initiation, the responder's `dec_keys`, the response, and its processing
//! (the work of both sites for one QKD-keyed rotation). Clients reuse their TLS connections,
//! as the daemon's QKD worker does.

#[path = "../tests/support/kme.rs"]
mod kme_support;

use criterion::{Criterion, criterion_group, criterion_main};
use kme_support::{Pki, Spec, config_text, free_port, private_tempdir, start};
use qshield::config::KmeClientConfig;
use qshield::crypto::{CipherSuite, PublicIdentity, StaticIdentity};
use qshield::proto::handshake::{
    FreshEphemerals, InitiationParams, QkdKey, consume_initiation, consume_response,
    create_initiation, create_response,
};
use qshield::qkd::KeySource;
use qshield::qkd::client::Etsi014Client;
use std::time::Duration;

fn client(pki: &Pki, port: u16, sae: &str) -> Etsi014Client {
    let cfg = KmeClientConfig {
        url: format!("https://127.0.0.1:{port}"),
        sae_id: sae.into(),
        peer_sae_id: None,
        ca_file: pki.path("ca.pem"),
        cert_file: pki.path(&format!("{sae}.pem")),
        key_file: pki.path(&format!("{sae}.key")),
        key_size_bits: 256,
    };
    Etsi014Client::new(&cfg).unwrap()
}

struct Site {
    id: StaticIdentity,
    public: PublicIdentity,
    kme: Etsi014Client,
}

fn qkd_handshake(a: &Site, b: &Site) {
    let k = a.kme.new_key("sae-b", 256).unwrap();
    let qkd = QkdKey {
        key_id: k.key_id.into_bytes(),
        material: k.key,
    };
    let params = InitiationParams {
        suite: CipherSuite::Aes256Gcm,
        sender_index: 1,
        timestamp_unix_ns: 1,
        qkd: Some(qkd),
        local_public: &a.public,
    };
    let (init, state) = create_initiation(&a.id, &b.public, params, &mut FreshEphemerals).unwrap();
    let rx = consume_initiation(&b.id, &b.public, CipherSuite::Aes256Gcm, &init, |_| {
        Some(((), a.public.clone()))
    })
    .unwrap();
    let id = String::from_utf8(rx.payload.qkd_key_id.clone()).unwrap();
    let kb = b.kme.key_by_id("sae-a", &id, 256).unwrap();
    let qkd_b = QkdKey {
        key_id: kb.key_id.into_bytes(),
        material: kb.key,
    };
    let (resp, _) = create_response(rx, &a.public, 2, Some(&qkd_b), &mut FreshEphemerals).unwrap();
    let keys = consume_response(&a.id, &state, &resp).unwrap();
    assert!(keys.qkd_mixed());
}

fn bench(c: &mut Criterion) {
    let pki = Pki::new("bench-ca", &["kme-a"], &["sae-a", "sae-b"]);
    let data = private_tempdir();
    let port = free_port();
    let spec = Spec {
        id: "kme-a",
        port,
        extra_kme: "max_key_count = 1000000",
        saes: &["sae-a", "sae-b"],
        remote: &[],
        links: &[],
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let handle = rt.block_on(start(&config_text(&pki, data.path(), &spec), data.path()));
    let site = |sae: &str| {
        let id = StaticIdentity::generate().unwrap();
        Site {
            public: id.public(),
            id,
            kme: client(&pki, port, sae),
        }
    };
    let (a, b) = (site("sae-a"), site("sae-b"));
    c.bench_function(
        "handshake/full with both KME calls over mTLS (loopback)",
        |bench| bench.iter(|| qkd_handshake(&a, &b)),
    );
    rt.block_on(handle.shutdown());
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1)).sample_size(30);
    targets = bench
}
criterion_main!(benches);
