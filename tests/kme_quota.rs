//! Who may get keys for whom, and how many (issue 9 item 5), over real HTTPS with mutual
//! TLS: SAE pairs (`[[sae_pair]]`; none configured refuses everything), per-SAE and per-pair
//! rate and volume limits (503 naming the limit), expiry of keys the slave never fetched,
//! and relayed keys counted against the slave KME's `max_key_count`.

mod support;

use qshield::qkd::etsi014::messages;
use reqwest::StatusCode;
use std::time::{Duration, Instant};
use support::kme::*;

/// kme-a with local SAEs sae-a, sae-b, sae-c; `extra_kme` goes into `[kme]`, `tail` (SAE
/// pairs) at the end; `edit` rewrites the text before it is loaded.
async fn env(extra_kme: &str, tail: &str, edit: impl Fn(String) -> String) -> KmeEnv {
    let pki = Pki::new("quota-ca", &["kme-a"], &["sae-a", "sae-b", "sae-c"]);
    let data = private_tempdir();
    let spec = Spec {
        extra_kme,
        ..Spec::local("kme-a", free_port(), &["sae-a", "sae-b", "sae-c"])
    };
    let text = edit(config_text_bare(&pki, &data.path().join("db"), &spec) + tail);
    KmeEnv::start(pki, data, &text).await
}

#[tokio::test(flavor = "multi_thread")]
async fn no_sae_pair_configured_refuses_every_key_request() {
    let e = env("", "", |t| t).await;
    let body = refused(
        e.enc("sae-a", "sae-b", 1, 256).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert!(body.message.contains("SAE pair not authorized"), "{body:?}");
    let r = e
        .pki
        .client(Some("sae-a"))
        .get(format!("{}/sae-b/status", e.url))
        .send()
        .await
        .unwrap();
    refused(r, StatusCode::UNAUTHORIZED).await;
    let id = uuid::Uuid::new_v4().to_string();
    refused(e.dec("sae-b", "sae-a", &id).await, StatusCode::UNAUTHORIZED).await;
    e.kme.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn only_configured_pairs_get_keys_in_the_configured_direction() {
    let e = env("", &pair_text("sae-a", "sae-b", false, ""), |t| t).await;
    let k = keys(e.enc("sae-a", "sae-b", 1, 256).await).await;
    keys(e.dec("sae-b", "sae-a", &k.keys[0].key_ID).await).await;
    // The reverse direction is not configured (no both_ways), nor is sae-a with sae-c.
    for (m, s) in [("sae-b", "sae-a"), ("sae-a", "sae-c"), ("sae-c", "sae-a")] {
        let body = refused(e.enc(m, s, 1, 256).await, StatusCode::UNAUTHORIZED).await;
        assert!(
            body.message.contains(&format!("'{m}' get keys for '{s}'")),
            "{m}>{s}: {body:?}"
        );
    }
    // sae-c holding a key ID of the pair cannot even ask for it.
    let k = keys(e.enc("sae-a", "sae-b", 1, 256).await).await;
    let body = refused(
        e.dec("sae-c", "sae-a", &k.keys[0].key_ID).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert!(body.message.contains("not authorized"), "{body:?}");
    keys(e.dec("sae-b", "sae-a", &k.keys[0].key_ID).await).await;
    e.kme.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pair_over_its_rate_gets_503_naming_the_limit() {
    let tail = pair_text("sae-a", "sae-b", true, "rate = \"3/min\"")
        + &pair_text("sae-a", "sae-c", true, "");
    let e = env("", &tail, |t| t).await;
    keys(e.enc("sae-a", "sae-b", 2, 256).await).await;
    // 3 keys per minute: 1 left (and 1/20 s refilled), 2 asked for.
    let body = refused(
        e.enc("sae-b", "sae-a", 2, 256).await,
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    assert!(
        body.message.contains("sae_pair[0].rate") && body.message.contains("3/min"),
        "{body:?}"
    );
    keys(e.enc("sae-a", "sae-b", 1, 256).await).await;
    // Other pairs keep their own budget.
    keys(e.enc("sae-a", "sae-c", 8, 256).await).await;
    e.kme.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_sae_over_its_volume_gets_503_for_every_slave() {
    let tail = pair_text("sae-a", "sae-b", true, "") + &pair_text("sae-a", "sae-c", true, "");
    let e = env("", &tail, |t| {
        t.replace(
            "[[sae]]\nid = \"sae-a\"\n",
            "[[sae]]\nid = \"sae-a\"\nvolume = \"1kbit/h\"\nrate = \"100/s\"\n",
        )
    })
    .await;
    keys(e.enc("sae-a", "sae-b", 2, 256).await).await;
    keys(e.enc("sae-a", "sae-c", 1, 256).await).await;
    // 768 of 1000 bits spent: one more 256-bit key does not fit, for any slave.
    for slave in ["sae-b", "sae-c"] {
        let body = refused(
            e.enc("sae-a", slave, 1, 256).await,
            StatusCode::SERVICE_UNAVAILABLE,
        )
        .await;
        assert!(
            body.message.contains("sae[0].volume") && body.message.contains("1kbit/h"),
            "{body:?}"
        );
    }
    keys(e.enc("sae-a", "sae-b", 1, 128).await).await;
    // sae-b as master has no limit of its own.
    keys(e.enc("sae-b", "sae-a", 16, 1024).await).await;
    let st = e.kme.status().await;
    let p = st.pairs.iter().find(|p| p.slave == "sae-c").unwrap();
    assert_eq!((p.master.as_str(), p.errors_503), ("sae-a", 1));
    let reasons: Vec<_> = p
        .refusals
        .iter()
        .map(|r| (r.code, r.reason, r.count))
        .collect();
    assert_eq!(reasons, [(503, "quota", 1)], "counted by code and reason");
    e.kme.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn undelivered_keys_expire_and_are_never_served() {
    let tail = pair_text("sae-a", "sae-b", true, "");
    let e = env(
        "pending_key_expiry = \"1s\"\nmax_key_count = 10",
        &tail,
        |t| t,
    )
    .await;
    let late = keys(e.enc("sae-a", "sae-b", 3, 256).await).await;
    let fresh = keys(e.enc("sae-a", "sae-b", 1, 256).await).await;
    keys(e.dec("sae-b", "sae-a", &fresh.keys[0].key_ID).await).await;
    // Wait for the sweep: the three keys leave the pair's count.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let st: serde_json::Value = e.status("sae-a", "sae-b").await;
        if st["stored_key_count"] == 10 {
            break;
        }
        assert!(Instant::now() < deadline, "never expired: {st}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let unknown = refused(
        e.dec("sae-b", "sae-a", &uuid::Uuid::new_v4().to_string())
            .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(unknown.message, messages::KEYS_NOT_FOUND);
    for k in &late.keys {
        let body = refused(
            e.dec("sae-b", "sae-a", &k.key_ID).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert_eq!(body, unknown, "an expired key fails like an unknown one");
    }
    let st = e.kme.status().await;
    let p = st.pairs.iter().find(|p| p.slave == "sae-b").unwrap();
    assert_eq!((p.keys_expired, p.keys_to_slave), (3, 1));
    e.kme.shutdown().await;
}

/// kme-a ══ kme-b, sae-a at A and sae-b at B; kme-b holds at most `max` waiting keys.
#[tokio::test(flavor = "multi_thread")]
async fn relayed_keys_count_against_max_key_count() {
    let pki = Pki::new("quota-ca", &["kme-a", "kme-b"], &["sae-a", "sae-b"]);
    let p = LinkedPair::start_random(pki, 200_000, "max_key_count = 2").await;
    let a = p.pki.client(Some("sae-a"));
    let url = format!("{}/sae-b/enc_keys", base(p.a.local_addr()));
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut delivered = 0;
    while delivered < 2 {
        let r = a.get(&url).send().await.unwrap();
        if r.status() == StatusCode::OK {
            delivered += 1;
        } else {
            assert!(
                Instant::now() < deadline,
                "link never filled: {}",
                r.status()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Two keys wait for sae-b at kme-b: a third is refused, not stored beyond the limit.
    let body = refused(
        a.get(&url).send().await.unwrap(),
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    assert!(body.message.contains("max_key_count"), "{body:?}");
    for k in [p.a, p.b] {
        k.shutdown().await;
    }
}
