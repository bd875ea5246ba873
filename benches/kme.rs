//! KME throughput and latency: enc_keys + dec_keys round trips (one 256-bit key each) over
//! mutual TLS on 127.0.0.1 against an in-process KME with its durable store, sequential
//! and with 8 concurrent SAE pairs' clients.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use qshield::qkd::etsi014::KeyContainer;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Setup {
    _dir: tempfile::TempDir,
    base: String,
    clients: Vec<(reqwest::Client, reqwest::Client)>,
    kme: Option<qshield::kme::KmeHandle>,
}

fn client(dir: &Path, name: &str) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(dir.join("ca.pem")).unwrap()).unwrap();
    let mut pem = std::fs::read(dir.join(format!("{name}.pem"))).unwrap();
    pem.extend(std::fs::read(dir.join(format!("{name}.key"))).unwrap());
    let id = reqwest::Identity::from_pem(&pem).unwrap();
    reqwest::Client::builder()
        .tls_backend_rustls()
        .tls_certs_only([ca])
        .identity(id)
        .build()
        .unwrap()
}

async fn setup(pairs: usize) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let saes: Vec<String> = (0..2 * pairs).map(|i| format!("sae-{i}")).collect();
    let plan = qshield::pki::PkiPlan {
        out: dir.path().join("pki"),
        ca: "bench-ca".into(),
        kmes: vec!["kme-a=127.0.0.1".parse().unwrap()],
        saes: saes.iter().map(|s| s.parse().unwrap()).collect(),
    };
    qshield::pki::init(&plan).unwrap();
    let mut text = "[kme]\nid = \"kme-a\"\nlisten = \"127.0.0.1:0\"\ndata_dir = \"db\"\nca_file = \"pki/ca.pem\"\ncert_file = \"pki/kme-a.pem\"\nkey_file = \"pki/kme-a.key\"\nstatus_log_seconds = 0\n".to_string();
    for s in &saes {
        text += &format!("[[sae]]\nid = \"{s}\"\n");
    }
    for p in 0..pairs {
        let (m, s) = (&saes[2 * p], &saes[2 * p + 1]);
        text += &format!("[[sae_pair]]\nmaster = \"{m}\"\nslave = \"{s}\"\n");
    }
    let cfg = qshield::kme::config::parse(&text, &dir.path().join("kme.toml")).unwrap();
    let kme = qshield::kme::start(cfg).await.unwrap();
    let base = format!("https://127.0.0.1:{}/api/v1/keys", kme.local_addr().port());
    let pki = dir.path().join("pki");
    let clients = (0..pairs)
        .map(|p| (client(&pki, &saes[2 * p]), client(&pki, &saes[2 * p + 1])))
        .collect();
    Setup {
        _dir: dir,
        base,
        clients,
        kme: Some(kme),
    }
}

/// One enc_keys by the master of pair `p` and the matching dec_keys by its slave.
async fn round_trip(base: &str, p: usize, m: &reqwest::Client, s: &reqwest::Client) {
    let (master, slave) = (format!("sae-{}", 2 * p), format!("sae-{}", 2 * p + 1));
    let k: KeyContainer = m
        .get(format!("{base}/{slave}/enc_keys"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = &k.keys[0].key_ID;
    let r = s
        .get(format!("{base}/{master}/dec_keys?key_ID={id}"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut s = rt.block_on(setup(8));
    let mut g = c.benchmark_group("kme");
    g.measurement_time(Duration::from_secs(8)).sample_size(20);
    g.throughput(Throughput::Elements(1));
    g.bench_function("enc+dec round trip, sequential", |b| {
        let (m, sl) = &s.clients[0];
        b.to_async(&rt).iter(|| round_trip(&s.base, 0, m, sl));
    });
    g.throughput(Throughput::Elements(8));
    let shared = Arc::new((s.base.clone(), s.clients.clone()));
    g.bench_function("enc+dec round trips, 8 concurrent pairs", |b| {
        b.to_async(&rt).iter(|| {
            let shared = shared.clone();
            async move {
                let tasks: Vec<_> = (0..8)
                    .map(|p| {
                        let shared = shared.clone();
                        tokio::spawn(async move {
                            let (m, sl) = &shared.1[p];
                            round_trip(&shared.0, p, m, sl).await;
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await.unwrap();
                }
            }
        });
    });
    g.finish();
    latency_under_load(&rt, &s);
    rt.block_on(s.kme.take().unwrap().shutdown());
}

/// 8 pairs in closed loops for 5 s: round trips per second and latency percentiles.
fn latency_under_load(rt: &tokio::runtime::Runtime, s: &Setup) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let lat = rt.block_on(async {
        let tasks: Vec<_> = (0..8)
            .map(|p| {
                let (base, (m, sl)) = (s.base.clone(), s.clients[p].clone());
                tokio::spawn(async move {
                    let mut v = Vec::new();
                    while Instant::now() < deadline {
                        let t = Instant::now();
                        round_trip(&base, p, &m, &sl).await;
                        v.push(t.elapsed());
                    }
                    v
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all
    });
    let mut lat = lat;
    lat.sort();
    let pct = |q: f64| lat[((lat.len() - 1) as f64 * q) as usize];
    println!(
        "kme/8 pairs closed loop 5 s: {:.0} round trips/s, latency p50 {:?} p90 {:?} p99 {:?} max {:?}",
        lat.len() as f64 / 5.0,
        pct(0.5),
        pct(0.9),
        pct(0.99),
        lat[lat.len() - 1]
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
