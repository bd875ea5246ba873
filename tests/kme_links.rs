//! Link pools under one-way and unequal demand: two in-process KMEs on 127.0.0.1 over
//! mutual TLS, kme-a (leader, sae-a) ══ kme-b (follower, sae-b), a `random` source (NOT
//! QKD) feeding a small pool. A tunnel's demand is one-way (its initiator is the master and
//! calls `enc_keys`), so each direction of the link must be refilled by its own need: the
//! direction nobody uses must not stop generation for the one in use.

mod support;

use qshield::kme::KmeHandle;
use reqwest::StatusCode;
use std::collections::HashSet;
use std::time::{Duration, Instant};
use support::kme::*;

/// The link's pool: 16 384 bits (8 192 per direction).
const POOL_MAX_BITS: u64 = 16_384;
/// Bits of every key asked for.
const KEY_BITS: u64 = 256;
/// Keys per `enc_keys` request (2 048 bits, a quarter of one direction's share).
const KEYS_PER_REQUEST: u64 = 8;
/// How long a direction may go without a single delivered request before the test fails:
/// far longer than a refill takes at the link's rate.
const STALL_LIMIT: Duration = Duration::from_secs(15);

async fn pair() -> LinkedPair {
    let pki = Pki::new("links-ca", &["kme-a", "kme-b"], &["sae-a", "sae-b"]);
    LinkedPair::start_random(pki, POOL_MAX_BITS, "").await
}

/// One way of the pair: master SAE at one KME, slave SAE at the other.
struct Way<'a> {
    master: (&'a KmeHandle, &'a str),
    slave: (&'a KmeHandle, &'a str),
}

/// What one way delivered.
#[derive(Debug, Default)]
struct Delivered {
    keys: u64,
    refused_503: u64,
}

/// Asks for `keys` keys on `way`, `KEYS_PER_REQUEST` at a time; a 503 (pool empty) is
/// retried until the pool refills. Every key the master got must reach the slave,
/// identical, under a new ID. Fails when no request succeeds for `STALL_LIMIT`.
async fn demand(p: &LinkedPair, way: Way<'_>, keys: u64, seen: &mut HashSet<String>) -> Delivered {
    let master = p.pki.client(Some(way.master.1));
    let slave = p.pki.client(Some(way.slave.1));
    let enc_url = format!(
        "{}/{}/enc_keys",
        base(way.master.0.local_addr()),
        way.slave.1
    );
    let dec_url = format!(
        "{}/{}/dec_keys",
        base(way.slave.0.local_addr()),
        way.master.1
    );
    let mut out = Delivered::default();
    let mut progress = Instant::now();
    while out.keys < keys {
        let r = post_enc_keys(&master, &enc_url, KEYS_PER_REQUEST, KEY_BITS).await;
        if r.status() == StatusCode::SERVICE_UNAVAILABLE {
            out.refused_503 += 1;
            assert!(
                progress.elapsed() < STALL_LIMIT,
                "{} -> {}: no key for {STALL_LIMIT:?} after {} keys ({} answers 503); \
                 status of the master's KME: {:?}",
                way.master.1,
                way.slave.1,
                out.keys,
                out.refused_503,
                way.master.0.status().await.links
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let sent = support::kme::keys(r).await;
        let got = dec_all(&slave, &dec_url, &sent).await;
        assert_eq!(got, sent, "the slave gets the master's keys");
        for k in &got.keys {
            assert!(seen.insert(k.key_ID.clone()), "key {} twice", k.key_ID);
        }
        out.keys += got.keys.len() as u64;
        progress = Instant::now();
    }
    out
}

/// Keys of `KEY_BITS` that make `times` × the pool's size.
fn keys_for(times: u64) -> u64 {
    times * POOL_MAX_BITS / KEY_BITS
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_way_demand_of_twenty_pools_is_served_in_full() {
    let p = pair().await;
    let mut seen = HashSet::new();
    let way = Way {
        master: (&p.a, "sae-a"),
        slave: (&p.b, "sae-b"),
    };
    let want = keys_for(20);
    let got = demand(&p, way, want, &mut seen).await;
    assert_eq!(got.keys, want, "{got:?}");
    // The unused direction holds no more than its share of the pool.
    let st = p.a.status().await;
    assert!(
        st.links[0].receive_pool_bits <= POOL_MAX_BITS / 2,
        "{:?}",
        st.links[0]
    );
    p.a.shutdown().await;
    p.b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn both_ways_at_unequal_rates_are_served_in_full() {
    let p = pair().await;
    let (mut seen_ab, mut seen_ba) = (HashSet::new(), HashSet::new());
    let ab = Way {
        master: (&p.a, "sae-a"),
        slave: (&p.b, "sae-b"),
    };
    let ba = Way {
        master: (&p.b, "sae-b"),
        slave: (&p.a, "sae-a"),
    };
    // The follower's way asks for a quarter of what the leader's way asks.
    let (want_ab, want_ba) = (keys_for(12), keys_for(3));
    let (got_ab, got_ba) = tokio::join!(
        demand(&p, ab, want_ab, &mut seen_ab),
        demand(&p, ba, want_ba, &mut seen_ba)
    );
    assert_eq!((got_ab.keys, got_ba.keys), (want_ab, want_ba));
    assert!(seen_ab.is_disjoint(&seen_ba));
    p.a.shutdown().await;
    p.b.shutdown().await;
}
