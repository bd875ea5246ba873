//! Relay routes from a neighbour are checked before any pad is spent (issue 9 item 8):
//! kme-a ══ kme-r ══ kme-b, sae-a at kme-a, sae-b and sae-c at kme-b, only the pair
//! sae-a ⇄ sae-b configured. A neighbour (kme-a's or kme-b's real certificate over mutual
//! TLS) calls kme-r's `POST /kme/v1/relay` with a looping route, a route for a pair not
//! configured, and routes whose ends are not the pair's KMEs: each is refused with an error
//! naming the problem, and no link pool of kme-r or kme-b moves.

mod support;

use base64::Engine;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::Path;
use support::kme::*;

const NAMES: [&str; 3] = ["kme-a", "kme-r", "kme-b"];

async fn net() -> KmeNet {
    let pki = Pki::new("routes-ca", &NAMES, &["sae-a", "sae-b", "sae-c"]);
    let ports: Vec<u16> = NAMES.iter().map(|_| free_port()).collect();
    let link = |i: usize, leader: bool| Link {
        peer: NAMES[i],
        port: ports[i],
        leader,
        rate: 4_000_000,
        pool_max: 100_000,
    };
    let to_b = ["kme-r", "kme-b"];
    let to_a = ["kme-r", "kme-a"];
    let specs: [KmeSpec; 3] = [
        (
            vec![link(1, true)],
            &["sae-a"],
            vec![("sae-b", &to_b[..]), ("sae-c", &to_b[..])],
        ),
        (
            vec![link(0, false), link(2, true)],
            &[],
            vec![
                ("sae-a", &["kme-a"][..]),
                ("sae-b", &["kme-b"][..]),
                ("sae-c", &["kme-b"][..]),
            ],
        ),
        (
            vec![link(1, false)],
            &["sae-b", "sae-c"],
            vec![("sae-a", &to_a[..])],
        ),
    ];
    let text = |pki: &Pki, data: &Path, spec: &Spec<'_>| {
        config_text_bare(pki, data, spec) + &pair_text("sae-a", "sae-b", true, "")
    };
    KmeNet::start(pki, &NAMES, &ports, &specs, text).await
}

/// (peer, send, receive) pool bits of every link end at kme-r and kme-b.
async fn levels(n: &KmeNet) -> Vec<(String, u64, u64)> {
    let mut out = Vec::new();
    for k in &n.kmes[1..] {
        for l in k.status().await.links {
            out.push((l.peer, l.send_pool_bits, l.receive_pool_bits));
        }
    }
    out
}

/// Waits until the links are filled and no level moves.
async fn settled(n: &KmeNet) -> Vec<(String, u64, u64)> {
    let filled = |l: &Vec<(String, u64, u64)>| l.iter().all(|(_, s, r)| s + r >= 80_000);
    settled_levels(async || levels(n).await, filled).await
}

/// A relay to kme-r from `from` (a neighbour's certificate) naming 32 bytes of pad that
/// the sender's direction of the link really holds (kme-a leads its link: even block 0;
/// kme-b follows kme-r: odd block 1).
async fn relay(
    n: &KmeNet,
    from: &str,
    master: &str,
    slave: &str,
    route: &[&str],
) -> (StatusCode, Value) {
    relay_with(n, from, master, slave, route, json!([from]), Value::Null).await
}

/// [`relay`] naming the KMEs `passed` and a `share` tag (`null`: none).
async fn relay_with(
    n: &KmeNet,
    from: &str,
    master: &str,
    slave: &str,
    route: &[&str],
    passed: Value,
    share: Value,
) -> (StatusCode, Value) {
    let seq = if from == "kme-a" { 0 } else { 1 };
    let body = json!({
        "master": master,
        "slave": slave,
        "passed": passed,
        "route": route,
        "share": share,
        "pads": [{"seq": seq, "offset": 0, "len": 32}],
        "keys": [{
            "key_ID": uuid::Uuid::new_v4().to_string(),
            "masked": base64::engine::general_purpose::STANDARD.encode([0u8; 32]),
        }],
    });
    let url = format!(
        "https://127.0.0.1:{}/kme/v1/relay",
        n.kmes[1].local_addr().port()
    );
    let r = n
        .pki
        .client(Some(from))
        .post(url)
        .json(&body)
        .send()
        .await
        .unwrap();
    let code = r.status();
    (code, r.json().await.unwrap_or_default())
}

async fn refused(
    n: &KmeNet,
    from: &str,
    master: &str,
    slave: &str,
    route: &[&str],
    code: StatusCode,
    says: &str,
) {
    let before = settled(n).await;
    let (got, body) = relay(n, from, master, slave, route).await;
    assert_eq!(got, code, "{route:?}: {body}");
    let msg = body["message"].as_str().unwrap_or_default();
    assert!(msg.contains(says), "{route:?}: {body}");
    assert_eq!(levels(n).await, before, "{route:?}: no pad spent");
}

#[tokio::test(flavor = "multi_thread")]
async fn looping_routes_are_refused_before_any_pad_is_spent() {
    let n = net().await;
    let looping = ["kme-r", "kme-b", "kme-r", "kme-b"];
    refused(
        &n,
        "kme-a",
        "sae-a",
        "sae-b",
        &looping,
        StatusCode::BAD_REQUEST,
        "'kme-r' twice",
    )
    .await;
    // Back to the sender is a loop too.
    let back = ["kme-r", "kme-a"];
    refused(
        &n,
        "kme-a",
        "sae-b",
        "sae-a",
        &back,
        StatusCode::BAD_REQUEST,
        "'kme-a' twice",
    )
    .await;
    for k in n.kmes {
        k.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_relay_for_a_pair_not_configured_is_refused() {
    let n = net().await;
    let route = ["kme-r", "kme-b"];
    refused(
        &n,
        "kme-a",
        "sae-a",
        "sae-c",
        &route,
        StatusCode::UNAUTHORIZED,
        "SAE pair not authorized",
    )
    .await;
    // Nothing waits for sae-c at kme-b.
    let st = n.kmes[2].status().await;
    assert!(
        st.pairs.iter().all(|p| p.keys_relayed == 0),
        "{:?}",
        st.pairs
    );
    for k in n.kmes {
        k.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_relay_whose_ends_are_not_the_pairs_kmes_is_refused() {
    let n = net().await;
    // From sae-a's side towards kme-b, but for slave sae-a: kme-b does not host it.
    let route = ["kme-r", "kme-b"];
    refused(
        &n,
        "kme-a",
        "sae-b",
        "sae-a",
        &route,
        StatusCode::BAD_REQUEST,
        "come from 'kme-a'",
    )
    .await;
    // From the right side but ending here, short of sae-b's KME.
    refused(
        &n,
        "kme-a",
        "sae-a",
        "sae-b",
        &route[..1],
        StatusCode::BAD_REQUEST,
        "the route ends at 'kme-r', but slave 'sae-b' is at 'kme-b'",
    )
    .await;
    // Keys "from sae-a" entering from kme-b's side: kme-a hosts sae-a, not kme-b.
    refused(
        &n,
        "kme-b",
        "sae-a",
        "sae-b",
        &route[..1],
        StatusCode::BAD_REQUEST,
        "come from 'kme-b'",
    )
    .await;
    // The honest relay still goes through.
    let (code, body) = relay(&n, "kme-a", "sae-a", "sae-b", &route).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    for k in n.kmes {
        k.shutdown().await;
    }
}

/// The KMEs a relay claims to have passed must end at its sender and start at the master's
/// KME, and a share tag must name one of 2 to 4 shares: else refused, no pad spent.
#[tokio::test(flavor = "multi_thread")]
async fn a_relay_must_name_the_kmes_it_passed_and_a_sane_share() {
    let n = net().await;
    let route = ["kme-r", "kme-b"];
    let cases = [
        (
            json!(["kme-b"]),
            Value::Null,
            "do not end at its sender 'kme-a'",
        ),
        (json!([]), Value::Null, "do not end at its sender 'kme-a'"),
        (json!(["kme-b", "kme-a"]), Value::Null, "'kme-b' twice"),
        (json!(["kme-x", "kme-a"]), Value::Null, "come from 'kme-x'"),
        (
            json!(["kme-a"]),
            json!({"index": 2, "count": 2}),
            "share 2 of 2",
        ),
        (
            json!(["kme-a"]),
            json!({"index": 0, "count": 9}),
            "share 0 of 9",
        ),
    ];
    for (passed, share, says) in cases {
        let before = settled(&n).await;
        let (code, body) =
            relay_with(&n, "kme-a", "sae-a", "sae-b", &route, passed.clone(), share).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{passed}: {body}");
        let msg = body["message"].as_str().unwrap_or_default();
        assert!(msg.contains(says), "{passed}: {body}");
        assert_eq!(levels(&n).await, before, "{passed}: no pad spent");
    }
    for k in n.kmes {
        k.shutdown().await;
    }
}

/// Found by fuzzing (kme_relay, this stop): a relay whose next hop is not a link of the
/// receiver passed the route check and failed in the hop, so the receiver discarded the pad
/// it named; a forged relay could make a KME drop pad. Now it is refused by the route
/// check, and no pad moves.
#[tokio::test(flavor = "multi_thread")]
async fn a_next_hop_that_is_no_link_is_refused_before_any_pad_is_spent() {
    let n = net().await;
    refused(
        &n,
        "kme-a",
        "sae-a",
        "sae-b",
        &["kme-r", "kme-x", "kme-b"],
        StatusCode::BAD_REQUEST,
        "the next hop 'kme-x' is not a link of 'kme-r'",
    )
    .await;
    for k in n.kmes {
        k.shutdown().await;
    }
}
