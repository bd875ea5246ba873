//! Routes computed from the link state (issue 12): four KMEs in a diamond, sae-a at kme-0
//! and sae-b at kme-3, no route configured anywhere.
//!
//! ```text
//!          kme-1
//!   big  /       \  big
//!  kme-0           kme-3
//! small  \       /  small
//!          kme-2
//! ```
//!
//! The upper path keeps larger pools, so it is preferred while it has key. A link taken out
//! of service (reported under alarm, as a CV-QKD alarm is) is routed around once the adverts
//! say so, and no relay starts towards it, so no pad is spent before it; with both paths cut
//! no key is handed out and no pad moves. In shares (`relay = "multipath"`), each key crosses
//! both paths, each middle KME sees one share, and neither ever stores the key.

mod support;

use qshield::kme::status::KmeStatus;
use reqwest::StatusCode;
use std::time::{Duration, Instant};
use support::kme::*;

const BIG: u64 = 400_000;
const SMALL: u64 = 200_000;

/// kme-0 to kme-3 over kme-1 (the larger pools) and over kme-2, every link at 8 Mbit/s.
fn diamond_links() -> [MeshLink; 4] {
    let link = |leader, follower, pool_max| MeshLink {
        leader,
        follower,
        rate: 8_000_000,
        pool_max,
    };
    [
        link(0, 1, BIG),
        link(1, 3, BIG),
        link(0, 2, SMALL),
        link(2, 3, SMALL),
    ]
}

async fn diamond(relay: &str) -> Mesh {
    let links = diamond_links();
    let saes: [&[&str]; 4] = [&["sae-a"], &[], &[], &["sae-b"]];
    let relay = [("sae-b", relay)];
    let m = Mesh::start(4, &links, &saes, &relay).await;
    m.converged(Duration::from_secs(10)).await;
    m
}

/// Send pool bits of every link end at kme-0, by peer.
async fn levels_at_0(m: &Mesh) -> Vec<(String, u64)> {
    let st = m.kme(0).status().await;
    st.links
        .iter()
        .map(|l| (l.peer.clone(), l.send_pool_bits))
        .collect()
}

/// Waits until kme-0's links are full and still.
async fn settled_at_0(m: &Mesh) -> Vec<(String, u64)> {
    let full = |l: &Vec<(String, u64)>| {
        l.iter()
            .all(|(p, b)| *b >= 2 * if p == "kme-1" { BIG } else { SMALL } / 5)
    };
    settled_levels(async || levels_at_0(m).await, full).await
}

/// Whether kme-0's link state says the link `from` → `to` is under alarm.
fn alarmed(st: &KmeStatus, from: &str, to: &str) -> Option<bool> {
    let a = st.routing.adverts.iter().find(|a| a.origin == from)?;
    Some(a.links.iter().find(|l| l.peer.as_str() == to)?.alarm)
}

/// Waits until kme-0 sees the link `from` → `to` with `alarm`; the time it took.
async fn kme0_sees(m: &Mesh, from: &str, to: &str, alarm: bool) -> Duration {
    let t0 = Instant::now();
    while alarmed(&m.kme(0).status().await, from, to) != Some(alarm) {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "kme-0 never saw {from} -> {to} alarm={alarm}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    t0.elapsed()
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_take_the_widest_path_and_go_around_a_link_under_alarm() {
    let m = diamond("").await;
    let sent = keys(m.enc(0, "sae-a", "sae-b", 2).await).await;
    let ids: Vec<String> = sent.keys.iter().map(|k| k.key_ID.clone()).collect();
    assert_eq!(
        m.paths_of(0, &ids).await,
        [["kme-0", "kme-1", "kme-3"]],
        "the wider path"
    );
    assert_eq!(m.dec(3, "sae-b", "sae-a", &sent).await.keys, sent.keys);

    // The link kme-1 -> kme-3 goes under alarm: once kme-0 knows, keys go the other way and
    // no relay starts towards the alarmed link (kme-0 -> kme-1 spends nothing).
    m.kme(1).set_link_in_service("kme-3", false);
    let took = kme0_sees(&m, "kme-1", "kme-3", true).await;
    eprintln!("kme-0 saw the alarm two hops away after {took:?}");
    let before = settled_at_0(&m).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        let k = keys(m.enc(0, "sae-a", "sae-b", 1).await).await;
        assert_eq!(m.dec(3, "sae-b", "sae-a", &k).await.keys, k.keys);
        ids.push(k.keys[0].key_ID.clone());
    }
    let paths = m.paths_of(0, &ids).await;
    assert_eq!(paths.len(), 5);
    assert!(
        paths.iter().all(|p| p == &["kme-0", "kme-2", "kme-3"]),
        "{paths:?}"
    );
    let after = levels_at_0(&m).await;
    assert_eq!(before[0], after[0], "no pad spent towards the alarmed link");

    // Both paths cut: no key, no pad spent anywhere from kme-0.
    m.kme(2).set_link_in_service("kme-3", false);
    kme0_sees(&m, "kme-2", "kme-3", true).await;
    let before = settled_at_0(&m).await;
    let e = refused(
        m.enc(0, "sae-a", "sae-b", 1).await,
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    assert!(
        e.message.contains("no route from 'kme-0' to 'kme-3'"),
        "{}",
        e.message
    );
    assert_eq!(levels_at_0(&m).await, before, "no pad spent");

    // Back in service: keys flow again, over the wider path.
    m.kme(1).set_link_in_service("kme-3", true);
    m.kme(2).set_link_in_service("kme-3", true);
    kme0_sees(&m, "kme-1", "kme-3", false).await;
    settled_at_0(&m).await;
    let k = keys(m.enc(0, "sae-a", "sae-b", 1).await).await;
    let ids = [k.keys[0].key_ID.clone()];
    assert_eq!(m.paths_of(0, &ids).await, [["kme-0", "kme-1", "kme-3"]]);
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kme_that_stops_is_routed_around() {
    let mut m = diamond("").await;
    let t0 = Instant::now();
    m.stop(1).await;
    // Until its neighbours notice, a relay may still try it (and fail: no key handed out);
    // then every key goes the other way.
    let k = loop {
        let r = m.enc(0, "sae-a", "sae-b", 1).await;
        if r.status() == StatusCode::OK {
            break keys(r).await;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "never rerouted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!("rerouted {:?} after kme-1 stopped", t0.elapsed());
    assert_eq!(m.dec(3, "sae-b", "sae-a", &k).await.keys, k.keys);
    let ids = [k.keys[0].key_ID.clone()];
    assert_eq!(m.paths_of(0, &ids).await, [["kme-0", "kme-2", "kme-3"]]);
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn in_shares_no_middle_kme_ever_holds_a_key() {
    let m = diamond("relay = \"multipath\"\npaths = 2").await;
    let sent = keys(m.enc(0, "sae-a", "sae-b", 4).await).await;
    let got = m.dec(3, "sae-b", "sae-a", &sent).await;
    assert_eq!(got.keys, sent.keys, "the slave gets the keys joined");
    let ids: Vec<String> = sent.keys.iter().map(|k| k.key_ID.clone()).collect();
    let mut paths = m.paths_of(0, &ids).await;
    paths.sort();
    assert_eq!(
        paths,
        [["kme-0", "kme-1", "kme-3"], ["kme-0", "kme-2", "kme-3"]],
        "one share each way"
    );
    // Each middle KME relayed exactly one share of each key, and the two saw different
    // shares.
    let mut seen = Vec::new();
    for i in [1, 2] {
        let st = m.kme(i).status().await;
        for id in &ids {
            let shares: Vec<u8> = st
                .routing
                .relays
                .iter()
                .filter(|r| r.key_ids.contains(id))
                .map(|r| r.share.expect("relayed as a share").index)
                .collect();
            assert_eq!(shares.len(), 1, "kme-{i} relayed {shares:?} of {id}");
            seen.push((id.clone(), shares[0]));
        }
    }
    for id in &ids {
        let idx: Vec<u8> = seen.iter().filter(|(k, _)| k == id).map(|s| s.1).collect();
        assert_eq!(idx.len(), 2);
        assert_ne!(idx[0], idx[1], "{id}: both middle KMEs saw the same share");
    }
    // Nothing of any key is in a middle KME's store: its files hold neither key bytes nor
    // the key IDs (no key was stored there to wait for a slave).
    use base64::Engine;
    for i in [1, 2] {
        let files = walk(m.dirs[i].path());
        assert!(!files.is_empty());
        for k in &sent.keys {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(&k.key)
                .unwrap();
            for (path, data) in &files {
                assert!(
                    !data.windows(bytes.len()).any(|w| w == bytes.as_slice()),
                    "kme-{i} stores key {} in {}",
                    k.key_ID,
                    path.display()
                );
                assert!(
                    !data
                        .windows(k.key_ID.len())
                        .any(|w| w == k.key_ID.as_bytes()),
                    "kme-{i} stores key ID {} in {}",
                    k.key_ID,
                    path.display()
                );
            }
        }
    }
    assert_eq!(m.kme(3).status().await.keys_waiting_for_shares, 0);

    // With the lower path cut there are no two node-disjoint paths: refused, saying so, and
    // no pad spent.
    m.kme(2).set_link_in_service("kme-3", false);
    kme0_sees(&m, "kme-2", "kme-3", true).await;
    let before = settled_at_0(&m).await;
    let e = refused(
        m.enc(0, "sae-a", "sae-b", 1).await,
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    assert!(
        e.message.contains("only 1 node-disjoint paths") && e.message.contains("2 wanted"),
        "{}",
        e.message
    );
    assert_eq!(levels_at_0(&m).await, before, "no pad spent");
    m.shutdown().await;
}

/// Every file under `dir` with its bytes.
fn walk(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push((p.clone(), std::fs::read(&p).unwrap()));
        }
    }
    out
}

/// Exactly once across kill -9 of any KME on a path, for keys rerouted and keys in shares:
/// the victim (the master's KME, the upper path's middle, or the slave's KME) is the real
/// binary in a child process, killed with SIGKILL twice while two masters relay through it
/// (one single-path, one in shares) and restarted on its store. Every key a master got
/// reaches its slave once, with the same bytes; a second fetch is refused; every answer is
/// 200 or 503 (or no answer while the master's KME is down), never a partial key set.
async fn kill_9_cycle(victim: usize) {
    let links = diamond_links();
    let saes: [&[&str]; 4] = [&["sae-a", "sae-c"], &[], &[], &["sae-b", "sae-d"]];
    let relay = [("sae-d", "relay = \"multipath\"")];
    let m = Mesh::start_but(4, &links, &saes, &relay, &[victim]).await;
    let log = m.dirs[victim].path().join("kme.log");
    let mut child = spawn_kme(&m.configs[victim], &log);
    m.converged(Duration::from_secs(20)).await;

    let pairs = [("sae-a", "sae-b"), ("sae-c", "sae-d")];
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // key sets each master got so far: a kill waits until every master got one since the
    // last restart (a fixed pause was too short on a loaded machine: "got no key at all")
    let served: Vec<_> = pairs
        .iter()
        .map(|_| std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0)))
        .collect();
    let mut tasks = Vec::new();
    for ((master, slave), served) in pairs.into_iter().zip(served.iter().cloned()) {
        let (c, url) = (
            m.pki.client(Some(master)),
            format!("{}/{slave}/enc_keys", m.base(0)),
        );
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = std::collections::HashMap::new();
            let mut refused = 0;
            let body = serde_json::json!({"number": 2, "size": 256});
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let Ok(r) = c.post(&url).json(&body).send().await else {
                    // the master's KME is down: no answer at all
                    refused += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                match r.status() {
                    StatusCode::OK => {
                        let Ok(k) = r.json::<qshield::qkd::etsi014::KeyContainer>().await else {
                            // killed while answering: the keys never reached the master
                            refused += 1;
                            continue;
                        };
                        assert_eq!(k.keys.len(), 2, "a partial key set");
                        record_once(&mut got, &k, "an ID twice to the master");
                        served.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    StatusCode::SERVICE_UNAVAILABLE => {
                        refused += 1;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    other => panic!("{other}: {}", r.text().await.unwrap_or_default()),
                }
            }
            (got, refused)
        }));
    }
    let every_master_served_since = |before: Vec<usize>| {
        let served = served.clone();
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            while served
                .iter()
                .zip(&before)
                .any(|(n, b)| n.load(std::sync::atomic::Ordering::SeqCst) <= *b)
            {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "kme-{victim}: a master got no key within 30 s of the KMEs converging"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let snapshot = || -> Vec<usize> {
        served
            .iter()
            .map(|n| n.load(std::sync::atomic::Ordering::SeqCst))
            .collect()
    };
    let mut before = snapshot();
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        every_master_served_since(before).await;
        child.kill().unwrap(); // SIGKILL, to this PID only
        child.wait().unwrap();
        tokio::time::sleep(Duration::from_millis(700)).await;
        child = spawn_kme(&m.configs[victim], &log);
        before = snapshot();
        m.converged(Duration::from_secs(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    every_master_served_since(before).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for (t, (master, slave)) in tasks.into_iter().zip(pairs) {
        let (got, refused) = t.await.unwrap();
        assert!(
            !got.is_empty(),
            "kme-{victim} killed: {master} got no key at all"
        );
        let client = m.pki.client(Some(slave));
        let url = format!("{}/{master}/dec_keys", m.base(3));
        for (id, key) in &got {
            let body = key_ids_body([id]);
            let k = keys(client.post(&url).json(&body).send().await.unwrap()).await;
            assert_eq!(
                &k.keys[0].key, key,
                "{master}: key {id} differs at the slave"
            );
            let again = client.post(&url).json(&body).send().await.unwrap();
            assert_eq!(again.status(), StatusCode::BAD_REQUEST, "{id} served twice");
        }
        eprintln!(
            "kme-{victim} killed twice: {master} -> {slave}: {} keys delivered once, {refused} requests refused",
            got.len()
        );
    }
    child.kill().unwrap();
    child.wait().unwrap();
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_of_the_masters_kme_delivers_every_key_once_or_not_at_all() {
    kill_9_cycle(0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_of_a_middle_kme_delivers_every_key_once_or_not_at_all() {
    kill_9_cycle(1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_of_the_slaves_kme_delivers_every_key_once_or_not_at_all() {
    kill_9_cycle(3).await;
}
