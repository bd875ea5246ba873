//! Trusted-node relay across four in-process KMEs on 127.0.0.1, as in Madrid:
//! kme-a ══ kme-r1 ══ kme-r2 ══ kme-b, SAE sae-a at kme-a and sae-b at kme-b. The links'
//! sources are the CSPRNG (NOT QKD). Keys relayed either way arrive identical; each link's
//! pool drops by exactly the key bits on both ends; a link that cannot cover the request
//! gives 503 and no key; the counters say so.

mod support;

use qshield::qkd::etsi014::KeyContainer;
use reqwest::StatusCode;
use support::kme::*;

const NAMES: [&str; 4] = ["kme-a", "kme-r1", "kme-r2", "kme-b"];
/// Links A1 and 2B: large pools. Link 12: 20 000 bits (10 000 per direction).
const BIG: u64 = 200_000;
const SMALL: u64 = 20_000;

async fn net() -> KmeNet {
    let pki = Pki::new("relay-ca", &NAMES, &["sae-a", "sae-b"]);
    let ports: Vec<u16> = NAMES.iter().map(|_| free_port()).collect();
    let link = |i: usize, leader: bool, pool_max: u64| Link {
        peer: NAMES[i],
        port: ports[i],
        leader,
        rate: 4_000_000,
        pool_max,
    };
    let specs = [
        (
            vec![link(1, true, BIG)],
            &["sae-a"][..],
            vec![("sae-b", &["kme-r1", "kme-r2", "kme-b"][..])],
        ),
        (
            vec![link(0, false, BIG), link(2, true, SMALL)],
            &[][..],
            vec![
                ("sae-a", &["kme-a"][..]),
                ("sae-b", &["kme-r2", "kme-b"][..]),
            ],
        ),
        (
            vec![link(1, false, SMALL), link(3, false, BIG)],
            &[][..],
            vec![
                ("sae-a", &["kme-r1", "kme-a"][..]),
                ("sae-b", &["kme-b"][..]),
            ],
        ),
        (
            vec![link(2, true, BIG)],
            &["sae-b"][..],
            vec![("sae-a", &["kme-r2", "kme-r1", "kme-a"][..])],
        ),
    ];
    KmeNet::start(pki, &NAMES, &ports, &specs, config_text).await
}

/// (send, receive) pool bits of every link end: [a→r1, r1→a, r1→r2, r2→r1, r2→b, b→r2].
async fn levels(n: &KmeNet) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for (k, peer) in [
        (0, "kme-r1"),
        (1, "kme-a"),
        (1, "kme-r2"),
        (2, "kme-r1"),
        (2, "kme-b"),
        (3, "kme-r2"),
    ] {
        let st = n.kmes[k].status().await;
        let l = st.links.iter().find(|l| l.peer == peer).unwrap();
        out.push((l.send_pool_bits, l.receive_pool_bits));
    }
    out
}

/// Waits until every link is filled to its high-water mark and both ends agree.
async fn settled(n: &KmeNet) -> Vec<(u64, u64)> {
    let filled = |l: &Vec<(u64, u64)>| {
        let agree = (0..3).all(|i| l[2 * i] == (l[2 * i + 1].1, l[2 * i + 1].0));
        let full = [BIG, SMALL, BIG]
            .iter()
            .enumerate()
            .all(|(i, max)| 8 * (l[2 * i].0 + l[2 * i].1) / 8 >= max - max / 8);
        agree && full
    };
    settled_levels(async || levels(n).await, filled).await
}

fn url(n: &KmeNet, kme: usize, rest: &str) -> String {
    format!("{}/{rest}", base(n.kmes[kme].local_addr()))
}

async fn relay_once(
    n: &KmeNet,
    from: (usize, &str),
    to: (usize, &str),
    number: u32,
    size: u32,
) -> KeyContainer {
    let (m, s) = (n.pki.client(Some(from.1)), n.pki.client(Some(to.1)));
    let enc_url = url(n, from.0, &format!("{}/enc_keys", to.1));
    let sent = keys(post_enc_keys(&m, &enc_url, number.into(), size.into()).await).await;
    let got = dec_all(&s, &url(n, to.0, &format!("{}/dec_keys", from.1)), &sent).await;
    assert_eq!(got, sent, "the slave gets the master's keys");
    got
}

#[tokio::test(flavor = "multi_thread")]
async fn relays_end_to_end_and_spends_exactly_the_key_bits() {
    let n = net().await;
    let before = settled(&n).await;
    relay_once(&n, (0, "sae-a"), (3, "sae-b"), 2, 256).await;
    let after = levels(&n).await;
    // a→b spends 512 bits of each link in the a→b direction, at both ends; nothing else.
    for i in 0..3 {
        assert_eq!(after[2 * i].0, before[2 * i].0 - 512, "link {i} sender");
        assert_eq!(
            after[2 * i + 1].1,
            before[2 * i + 1].1 - 512,
            "link {i} receiver"
        );
        assert_eq!(after[2 * i].1, before[2 * i].1, "link {i} other direction");
    }
    relay_once(&n, (3, "sae-b"), (0, "sae-a"), 1, 1024).await;
    let back = levels(&n).await;
    for i in 0..3 {
        assert_eq!(back[2 * i].1, after[2 * i].1 - 1024, "link {i} b→a");
    }
    let st = n.kmes[1].status().await;
    let l12 = st.links.iter().find(|l| l.peer == "kme-r2").unwrap();
    assert_eq!((l12.relays_received, l12.relays_sent), (1, 1));
    assert_eq!(l12.consumed_bits, 512 + 1024);
    assert_eq!(l12.source, "random (NOT QKD)");
    let a = n.kmes[0].status().await;
    let p = a.pairs.iter().find(|p| p.slave == "sae-b").unwrap();
    assert_eq!((p.keys_to_master, p.keys_relayed), (2, 2));
    for k in n.kmes {
        k.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_short_link_gives_503_and_no_key() {
    let n = net().await;
    let before = settled(&n).await;
    let a = n.pki.client(Some("sae-a"));
    // 16 × 1024 bits: link 12 holds at most 10 000 bits per direction.
    let r = post_enc_keys(&a, &url(&n, 0, "sae-b/enc_keys"), 16, 1024).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("not enough key material"),
        "{body}"
    );
    assert!(body.get("keys").is_none());
    let after = levels(&n).await;
    assert_eq!(after[2..], before[2..], "links 12 and 2B untouched");
    let a_st = n.kmes[0].status().await;
    assert_eq!(
        a_st.links[0].consumed_bits,
        16 * 1024,
        "the first hop's pad stays spent"
    );
    assert_eq!(
        a_st.pairs
            .iter()
            .find(|p| p.slave == "sae-b")
            .unwrap()
            .errors_503,
        1
    );
    let r1 = n.kmes[1].status().await;
    assert_eq!(
        r1.links
            .iter()
            .find(|l| l.peer == "kme-r2")
            .unwrap()
            .errors_503,
        1
    );
    let b = n.kmes[3].status().await;
    assert!(
        b.pairs.iter().all(|p| p.keys_relayed == 0),
        "nothing reached kme-b"
    );
    // A request that fits still goes through.
    relay_once(&n, (0, "sae-a"), (3, "sae-b"), 1, 256).await;
    for k in n.kmes {
        k.shutdown().await;
    }
}
