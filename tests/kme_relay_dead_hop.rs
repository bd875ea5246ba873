//! A relay through a dead middle KME: kme-a ══ kme-m ══ kme-b, SAE sae-a at kme-a and
//! sae-b at kme-b, kme-m the real binary in a child process (the others in-process; both
//! lead their link to kme-m). Relays run from sae-a to sae-b while kme-m is killed with
//! SIGKILL (twice, each time with relays in flight) and restarted on its data directory.
//!
//! - The master's answer is 200 with its keys or a 503 naming the unreachable hop, never
//!   a partial key set.
//! - Pad accounting on both sides of the dead node: the directions no relay uses agree
//!   exactly at both ends; on the used ones the receiving end holds exactly the pad that
//!   was spent by a sender whose relay died before the receiver spent its copy (stranded,
//!   never reused). Every failed relay's pad is accounted for exactly once: stranded at
//!   kme-m, stranded at kme-b, or spent on a key kme-b stored whose answer was lost (it
//!   stays pending at kme-b: the master never learnt its ID).
//! - Exactly-once after kme-m returns: every key the master received reaches the slave,
//!   once, identical; a second fetch of any key ID is refused.

mod support;

use qshield::qkd::etsi014::{KeyContainer, messages};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::kme::*;

const NAMES: [&str; 3] = ["kme-a", "kme-m", "kme-b"];
const POOL_MAX_BITS: u64 = 400_000;
const RATE_BITS_PER_SECOND: u64 = 4_000_000;
const KEY_BITS: u64 = 256;
/// Relays that must succeed between (re)starts of kme-m before it is killed again.
const RELAYS_PER_EPOCH: usize = 30;
const MASTERS: usize = 4;

#[derive(Default)]
struct Counts {
    in_flight: AtomicUsize,
    ok: AtomicUsize,
    /// 503s naming kme-m (each spent KEY_BITS of kme-a's pad towards kme-m).
    failed: AtomicUsize,
}

/// The status document of the KME on `port`, fetched with `as_kme`'s certificate (a link
/// peer of it).
async fn status_doc(pki: &Pki, as_kme: &str, port: u16) -> Result<Value, reqwest::Error> {
    pki.client(Some(as_kme))
        .get(format!("https://127.0.0.1:{port}/kme/v1/status"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await
}

async fn wait_up(pki: &Pki, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while status_doc(pki, "kme-a", port).await.is_err() {
        assert!(Instant::now() < deadline, "kme-m did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// (send, receive) pool bits of `kme`'s link to `peer`.
fn link_levels(doc: &Value, peer: &str) -> (u64, u64) {
    let l = doc["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["peer"] == peer)
        .unwrap();
    (
        l["send_pool_bits"].as_u64().unwrap(),
        l["receive_pool_bits"].as_u64().unwrap(),
    )
}

/// Relays one key from sae-a to sae-b: its (ID, key) on 200; None on a 503 naming kme-m.
async fn relay(c: &reqwest::Client, url: &str, counts: &Counts) -> Option<(String, String)> {
    counts.in_flight.fetch_add(1, Ordering::SeqCst);
    let r = c
        .post(url)
        .json(&json!({"number": 1, "size": KEY_BITS}))
        .send()
        .await
        .expect("kme-a answers");
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    counts.in_flight.fetch_sub(1, Ordering::SeqCst);
    if status == StatusCode::OK {
        let keys: KeyContainer = serde_json::from_value(body).unwrap();
        assert_eq!(keys.keys.len(), 1, "all the keys asked for or none");
        counts.ok.fetch_add(1, Ordering::SeqCst);
        let k = &keys.keys[0];
        return Some((k.key_ID.clone(), k.key.clone()));
    }
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.get("keys").is_none(), "no key in a refusal: {body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("kme-m"),
        "the 503 names the dead hop: {body}"
    );
    counts.failed.fetch_add(1, Ordering::SeqCst);
    None
}

async fn wait_for_relays(counts: &Counts, n: usize) {
    let target = counts.ok.load(Ordering::SeqCst) + n;
    let deadline = Instant::now() + Duration::from_secs(30);
    while counts.ok.load(Ordering::SeqCst) < target {
        assert!(Instant::now() < deadline, "relays did not resume");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_the_middle_kme_during_relays() {
    let pki = Arc::new(Pki::new("dead-hop-ca", &NAMES, &["sae-a", "sae-b"]));
    let ports: Vec<u16> = NAMES.iter().map(|_| free_port()).collect();
    let link = |i: usize, leader: bool| Link {
        peer: NAMES[i],
        port: ports[i],
        leader,
        rate: RATE_BITS_PER_SECOND,
        pool_max: POOL_MAX_BITS,
    };
    let dirs: Vec<tempfile::TempDir> = NAMES.iter().map(|_| tempfile::tempdir().unwrap()).collect();
    let text = |i: usize, links: &[Link<'_>], saes: &[&str], remote: &[(&str, &[&str])]| {
        let spec = Spec {
            id: NAMES[i],
            port: ports[i],
            extra_kme: "",
            saes,
            remote,
            links,
        };
        config_text(&pki, &dirs[i].path().join("db"), &spec)
    };
    let a_text = text(
        0,
        &[link(1, true)],
        &["sae-a"],
        &[("sae-b", &["kme-m", "kme-b"])],
    );
    let m_text = text(
        1,
        &[link(0, false), link(2, false)],
        &[],
        &[("sae-a", &["kme-a"]), ("sae-b", &["kme-b"])],
    );
    let b_text = text(
        2,
        &[link(1, true)],
        &["sae-b"],
        &[("sae-a", &["kme-m", "kme-a"])],
    );
    let m_config = dirs[1].path().join("kme.toml");
    std::fs::write(&m_config, m_text).unwrap();
    let m_log = dirs[1].path().join("kme.log");
    let mut m = spawn_kme(&m_config, &m_log);
    wait_up(&pki, ports[1]).await;
    let a = start(&a_text, dirs[0].path()).await;
    let b = start(&b_text, dirs[2].path()).await;

    // Both hops' pools hold pad before the relays start (a short pool is another 503).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let to_m = link_levels(&status_doc(&pki, "kme-m", ports[0]).await.unwrap(), "kme-m").0;
        let to_b = link_levels(&status_doc(&pki, "kme-a", ports[1]).await.unwrap(), "kme-b").0;
        if to_m >= POOL_MAX_BITS / 4 && to_b >= POOL_MAX_BITS / 4 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "pools never filled: {to_m} {to_b}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let counts = Arc::new(Counts::default());
    let master_got: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let enc_url = format!("{}/sae-b/enc_keys", base(a.local_addr()));
    let tasks: Vec<_> = (0..MASTERS)
        .map(|_| {
            let (c, url) = (pki.client(Some("sae-a")), enc_url.clone());
            let (counts, got, stop) = (counts.clone(), master_got.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    match relay(&c, &url, &counts).await {
                        Some((id, key)) => {
                            assert!(got.lock().unwrap().insert(id, key).is_none(), "ID twice");
                        }
                        // Retry pace while kme-m is down (not a wait for an event).
                        None => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
            })
        })
        .collect();

    let mut in_flight_at_kills = Vec::new();
    for _ in 0..2 {
        wait_for_relays(&counts, RELAYS_PER_EPOCH).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let n = counts.in_flight.load(Ordering::SeqCst);
            if n > 0 {
                m.kill().unwrap(); // SIGKILL, to this PID only
                m.wait().unwrap();
                in_flight_at_kills.push(n);
                break;
            }
            assert!(Instant::now() < deadline, "never a relay in flight");
            tokio::task::yield_now().await;
        }
        // While kme-m is down, relays fail (polled, not slept on).
        let failed = counts.failed.load(Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(30);
        while counts.failed.load(Ordering::SeqCst) == failed {
            assert!(Instant::now() < deadline, "no relay failed with kme-m dead");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        m = spawn_kme(&m_config, &m_log);
        wait_up(&pki, ports[1]).await;
    }
    wait_for_relays(&counts, RELAYS_PER_EPOCH).await;
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    assert!(in_flight_at_kills.iter().all(|&n| n > 0));

    // Exactly once: every key the master got reaches the slave once, identical; a second
    // fetch is refused.
    let slave = pki.client(Some("sae-b"));
    let dec_url = format!("{}/sae-a/dec_keys", base(b.local_addr()));
    let master_got = master_got.lock().unwrap().clone();
    for (id, key) in &master_got {
        let r = slave
            .get(format!("{dec_url}?key_ID={id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "key {id} reaches the slave");
        let k: KeyContainer = r.json().await.unwrap();
        assert_eq!(k.keys.len(), 1);
        assert_eq!((&k.keys[0].key_ID, &k.keys[0].key), (id, key), "identical");
        let again = slave
            .get(format!("{dec_url}?key_ID={id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            again.status(),
            StatusCode::BAD_REQUEST,
            "served twice: {id}"
        );
        let e: qshield::qkd::etsi014::ErrorBody = again.json().await.unwrap();
        assert_eq!(e.message, messages::KEYS_NOT_FOUND);
    }

    // Pad accounting, once the links are quiet (levels unchanged over 300 ms).
    let deadline = Instant::now() + Duration::from_secs(30);
    let (da, dm, db) = loop {
        let read = || async {
            (
                status_doc(&pki, "kme-m", ports[0]).await.unwrap(),
                status_doc(&pki, "kme-a", ports[1]).await.unwrap(),
                status_doc(&pki, "kme-m", ports[2]).await.unwrap(),
            )
        };
        let levels = |d: &(Value, Value, Value)| {
            (
                link_levels(&d.0, "kme-m"),
                link_levels(&d.1, "kme-a"),
                link_levels(&d.1, "kme-b"),
                link_levels(&d.2, "kme-m"),
            )
        };
        let first = read().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let second = read().await;
        if levels(&first) == levels(&second) {
            break second;
        }
        assert!(Instant::now() < deadline, "links never quiet");
    };
    let (a_m, m_a, m_b, b_m) = (
        link_levels(&da, "kme-m"),
        link_levels(&dm, "kme-a"),
        link_levels(&dm, "kme-b"),
        link_levels(&db, "kme-m"),
    );
    // Unused directions (kme-m → kme-a, kme-m → kme-b): both ends agree.
    assert_eq!(a_m.1, m_a.0, "kme-m → kme-a: {a_m:?} {m_a:?}");
    assert_eq!(b_m.0, m_b.1, "kme-b → kme-m: {b_m:?} {m_b:?}");
    // Used directions: the receiver never holds less than the sender (a pad spent twice
    // would show as less), the difference is stranded pad.
    let stranded_at_m = m_a
        .1
        .checked_sub(a_m.0)
        .expect("kme-a → kme-m: receiver below sender");
    let stranded_at_b = b_m
        .1
        .checked_sub(m_b.0)
        .expect("kme-m → kme-b: receiver below sender");
    // Keys kme-b stored for the slave whose answer never reached the master: still
    // pending once the slave fetched every key the master got (read from kme-b's store,
    // as its counters may miss a hop whose caller died mid-request).
    m.kill().unwrap();
    m.wait().unwrap();
    a.shutdown().await;
    b.shutdown().await;
    let orphans = qshield::kme::store::Store::open(&dirs[2].path().join("db"))
        .unwrap()
        .pending_count("sae-a", "sae-b")
        .unwrap();
    let failed = counts.failed.load(Ordering::SeqCst) as u64;
    println!(
        "{} relays ok, {failed} failed; in flight at the kills {in_flight_at_kills:?}; \
         stranded bits at kme-m {stranded_at_m}, at kme-b {stranded_at_b}; {orphans} keys \
         stored at kme-b whose answer was lost",
        master_got.len()
    );
    assert_eq!(
        stranded_at_m + stranded_at_b + orphans * KEY_BITS,
        failed * KEY_BITS,
        "every failed relay's pad accounted for once"
    );
}
