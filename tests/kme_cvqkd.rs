//! A `source = "cvqkd"` link between two in-process KMEs on 127.0.0.1: Alice in kme-a,
//! Bob and the fiber in kme-b, the pulses on a real TCP quantum channel, the GG02 messages
//! over the KMEs' mutual TLS. Keys distilled at both ends are identical (an SAE at each end
//! gets the same key through ETSI 014); the status shows the estimates near the true
//! channel; Eve spliced into the fiber (a real `qshield qkd eve` task) makes estimation
//! abort, raises the alarm at both ends, stores no key and stops relaying (503); a follower
//! stopped and restarted mid-run rejoins with both ends' pools still equal; one-way demand
//! of 20 pools through a small pool is served in full (each direction refilled by its own
//! need, both ends sharing every block's key alike).
//!
//! Small blocks (a 1 km link, 2^18 pulses, ε = 1e-6, frames of 4096 bits) keep it fast in
//! a debug build; the physics is the same as at metro scale.

mod support;

use qshield::cvqkd::sim::Attack;
use qshield::kme::KmeHandle;
use qshield::kme::link::cvqkd::board::CvqkdFigures;
use qshield::kme::link::cvqkd::eve::{self, EveConfig, EveCounters};
use reqwest::StatusCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use support::kme::*;

const BLOCK: u64 = 1 << 18;
/// True transmittance of 1 km at 0.2 dB/km.
const T_TRUE: f64 = 0.954_992_586;

fn cvqkd_table(quantum_port: u16, quantum_url: Option<u16>) -> String {
    let mut t = format!(
        "[link.cvqkd]\ndistance_km = 1.0\nva = \"auto\"\nblock_size = {BLOCK}\npe_samples = {}\nepsilon = 1e-6\nframe_bits = 4096\nsymbol_rate_hz = 1e8\nquantum_port = {quantum_port}\n",
        BLOCK / 2
    );
    if let Some(p) = quantum_url {
        t += &format!("quantum_url = \"127.0.0.1:{p}\"\n");
    }
    t
}

/// The TOML of KME `id` on `port`, its store in `dir/db`, `rest` after its `[kme]` table.
fn kme_text(pki: &Pki, dir: &std::path::Path, id: &str, port: u16, rest: &str) -> String {
    kme_table(pki, &dir.join("db"), id, port) + rest
}

/// kme-a (leader, sae-a) ══ kme-b (follower, sae-b); the leader's pulses go to
/// `quantum_url` when given (Eve), else to kme-b's quantum port.
async fn pair(quantum_port: u16, quantum_url: Option<u16>) -> LinkedPair {
    pair_with_pool(quantum_port, quantum_url, 4_000_000).await
}

/// [`pair`] with a link pool of `pool_max_bits`.
async fn pair_with_pool(
    quantum_port: u16,
    quantum_url: Option<u16>,
    pool_max_bits: u64,
) -> LinkedPair {
    let pki = Pki::new("cvqkd-ca", &["kme-a", "kme-b"], &["sae-a", "sae-b"]);
    let (pa, pb) = (free_port(), free_port());
    let (da, db) = (private_tempdir(), private_tempdir());
    let link = |peer: &str, port: u16, role: &str, url: Option<u16>| {
        format!(
            "[[link]]\npeer = \"{peer}\"\nurl = \"https://127.0.0.1:{port}\"\nrole = \"{role}\"\nsource = \"cvqkd\"\npool_max_bits = {pool_max_bits}\n{}",
            cvqkd_table(quantum_port, url)
        )
    };
    let a_rest = format!(
        "[[sae]]\nid = \"sae-a\"\n[[remote_sae]]\nid = \"sae-b\"\nroute = [\"kme-b\"]\n[[sae_pair]]\nmaster = \"sae-a\"\nslave = \"sae-b\"\nboth_ways = true\n{}",
        link("kme-b", pb, "leader", quantum_url)
    );
    let b_rest = format!(
        "[[sae]]\nid = \"sae-b\"\n[[remote_sae]]\nid = \"sae-a\"\nroute = [\"kme-a\"]\n[[sae_pair]]\nmaster = \"sae-a\"\nslave = \"sae-b\"\nboth_ways = true\n{}",
        link("kme-a", pa, "follower", None)
    );
    // The follower first: its quantum port must listen before the leader's first block.
    let b = start_on(
        &kme_text(&pki, db.path(), "kme-b", pb, &b_rest),
        db.path(),
        pb,
    )
    .await;
    let a = start_on(
        &kme_text(&pki, da.path(), "kme-a", pa, &a_rest),
        da.path(),
        pa,
    )
    .await;
    LinkedPair {
        pki,
        dirs: vec![da, db],
        a,
        b,
    }
}

async fn figures(k: &KmeHandle) -> (CvqkdFigures, u64, u64) {
    let st = k.status().await;
    let l = &st.links[0];
    assert_eq!(l.source, "cvqkd simulator (NOT QKD-secured)");
    (
        l.cvqkd.clone().unwrap(),
        l.send_pool_bits,
        l.receive_pool_bits,
    )
}

/// Waits until `done` holds for both ends' figures (bounded).
async fn wait_for(p: &LinkedPair, what: &str, done: impl Fn(&CvqkdFigures, &CvqkdFigures) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let (fa, fb) = (figures(&p.a).await.0, figures(&p.b).await.0);
        if done(&fa, &fb) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: never reached\n{fa:?}\n{fb:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn enc_keys(p: &LinkedPair) -> reqwest::Response {
    let url = format!("{}/sae-b/enc_keys", base(p.a.local_addr()));
    post_enc_keys(&p.pki.client(Some("sae-a")), &url, 1, 256).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn both_ends_distill_the_same_keys_and_report_the_channel() {
    let p = pair(free_port(), None).await;
    wait_for(&p, "a stored key at both ends", |a, b| {
        a.key_bits > 0 && b.key_bits > 0
    })
    .await;
    let ((fa, sa, ra), (fb, sb, rb)) = (figures(&p.a).await, figures(&p.b).await);
    assert_eq!((sa, ra), (rb, sb), "both ends hold the same pools");
    for f in [&fa, &fb] {
        let t = f.transmittance_estimate.unwrap();
        assert!((t - T_TRUE).abs() < 0.02, "T̂ {t} vs {T_TRUE}");
        let xi = f.excess_noise_estimate_snu.unwrap();
        assert!(xi.abs() < 0.05, "ξ̂ {xi}");
        assert!(f.snr.unwrap() > 1.0, "{f:?}");
        let beta = f.beta.unwrap();
        assert!((0.5..1.0).contains(&beta), "β {beta}");
        assert!(f.alarm.is_none(), "{f:?}");
        assert!(f.secret_key_rate_bits_per_second > 0.0);
    }
    // The key reaches sae-b through the link's pad: identical at both SAEs.
    let enc = keys(enc_keys(&p).await).await;
    let dec_url = format!("{}/sae-a/dec_keys", base(p.b.local_addr()));
    let dec = dec_all(&p.pki.client(Some("sae-b")), &dec_url, &enc).await;
    assert_eq!(enc.keys[0].key, dec.keys[0].key, "same key at both SAEs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_eavesdropper_aborts_estimation_raises_the_alarm_and_stops_relay() {
    let (eve_port, bob_port) = (free_port(), free_port());
    let counters = Arc::new(EveCounters::default());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", eve_port))
        .await
        .unwrap();
    let cfg = EveConfig {
        forward: format!("127.0.0.1:{bob_port}").parse().unwrap(),
        attack: Attack::InterceptResend { fraction: 1.0 },
        max_block_pulses: BLOCK,
        seed: 11,
    };
    let eve = tokio::spawn(eve::run(listener, cfg, counters.clone()));
    let p = pair(bob_port, Some(eve_port)).await;
    wait_for(&p, "the alarm at both ends", |a, b| {
        a.alarm.is_some() && b.alarm.is_some()
    })
    .await;
    assert!(counters.blocks.load(Ordering::Relaxed) >= 1);
    let ((fa, sa, ra), (fb, _, _)) = (figures(&p.a).await, figures(&p.b).await);
    for f in [&fa, &fb] {
        assert_eq!(f.key_bits, 0, "no key while Eve is on the fiber: {f:?}");
        assert!(f.blocks_aborted >= 1, "{f:?}");
        assert!(
            f.excess_noise_estimate_snu.unwrap() > 1.0,
            "intercept-resend adds 2 SNU: {f:?}"
        );
    }
    assert_eq!((sa, ra), (0, 0), "nothing entered the pools");
    let r = enc_keys(&p).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = r.json().await.unwrap();
    let msg = body["message"].as_str().unwrap();
    assert!(msg.contains("under alarm"), "{msg}");
    eve.abort();
}

/// Both ends' pool levels, read until they agree (blocks keep landing between the reads).
async fn agreed_pools(a: &KmeHandle, b: &KmeHandle) -> (u64, u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ((_, sa, ra), (_, sb, rb)) = (figures(a).await, figures(b).await);
        if (sa, ra) == (rb, sb) {
            return (sa, ra);
        }
        assert!(
            Instant::now() < deadline,
            "pools never agree: {sa}/{ra} vs {rb}/{sb}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_follower_rejoins_and_both_ends_keep_the_same_keys() {
    let LinkedPair {
        pki,
        dirs: _dirs,
        a,
        b,
    } = pair(free_port(), None).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while figures(&b).await.0.key_bits == 0 {
        assert!(Instant::now() < deadline, "no key before the restart");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let port = b.local_addr().port();
    b.shutdown().await;
    // The leader's blocks fail while the follower is away (one may be cut mid-flight).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let dir = _dirs[1].path();
    let text = std::fs::read_to_string(dir.join("kme.toml")).unwrap();
    let b = start_on(&text, dir, port).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while figures(&b).await.0.key_bits == 0 {
        assert!(
            Instant::now() < deadline,
            "the restarted follower stored no new key"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (send, recv) = agreed_pools(&a, &b).await;
    assert!(send > 0 && recv > 0);
    let pair = LinkedPair {
        pki,
        dirs: _dirs,
        a,
        b,
    };
    let enc = keys(enc_keys(&pair).await).await;
    let dec_url = format!("{}/sae-a/dec_keys", base(pair.b.local_addr()));
    let dec = dec_all(&pair.pki.client(Some("sae-b")), &dec_url, &enc).await;
    assert_eq!(
        enc.keys[0].key, dec.keys[0].key,
        "same key after the restart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_way_demand_of_twenty_pools_is_served_in_full() {
    // A pool far smaller than one block's key: 8 192 bits, 4 096 per direction.
    const POOL_MAX_BITS: u64 = 8192;
    let p = pair_with_pool(free_port(), None, POOL_MAX_BITS).await;
    let (a, b) = (p.pki.client(Some("sae-a")), p.pki.client(Some("sae-b")));
    let want = 20 * POOL_MAX_BITS / 256;
    let enc_url = format!("{}/sae-b/enc_keys", base(p.a.local_addr()));
    let dec_url = format!("{}/sae-a/dec_keys", base(p.b.local_addr()));
    let (mut got, mut refused) = (0, 0);
    let mut progress = Instant::now();
    while got < want {
        let r = post_enc_keys(&a, &enc_url, 4, 256).await;
        if r.status() == StatusCode::SERVICE_UNAVAILABLE {
            refused += 1;
            assert!(
                progress.elapsed() < Duration::from_secs(120),
                "sae-a -> sae-b: no key for 120 s after {got} keys ({refused} answers 503)\n{:?}",
                p.a.status().await.links
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let enc = keys(r).await;
        let dec = dec_all(&b, &dec_url, &enc).await;
        assert_eq!(enc, dec, "same keys at both SAEs");
        got += dec.keys.len() as u64;
        progress = Instant::now();
    }
    // Both ends shared every block's key alike between the two directions.
    agreed_pools(&p.a, &p.b).await;
}
