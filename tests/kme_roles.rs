//! KME and SAE roles over real mutual TLS (issue 9 item 12): a certificate is used only in
//! the role its ID has in this KME's config. An SAE certificate calling the KME-to-KME
//! endpoints, and a KME certificate calling the ETSI GS QKD 014 API, get 401 with a message
//! naming the role; a KME that is not a link neighbour gets 401 on the KME-to-KME endpoints,
//! and a neighbour gets 401 calling for a link that is not its own. A config whose SAE ID is
//! a KME ID is refused at load, naming FILE:LINE and the field.

mod support;

use qshield::kme::config::parse;
use reqwest::StatusCode;
use std::path::Path;
use support::kme::*;

/// kme-a with local SAEs sae-a, sae-b; remote sae-r at kme-c behind kme-b; links: follower
/// of kme-b (random, its leader never runs) and leader of kme-d (whose follower never
/// runs). kme-e is certified by the same CA but unknown to kme-a.
async fn env() -> KmeEnv {
    let pki = Pki::new(
        "test-ca",
        &["kme-a", "kme-b", "kme-c", "kme-d", "kme-e"],
        &["sae-a", "sae-b", "sae-r", "sae-x"],
    );
    let data = private_tempdir();
    let port = free_port();
    let links = [
        Link {
            peer: "kme-b",
            port: free_port(),
            leader: false,
            rate: 0,
            pool_max: 1 << 20,
        },
        Link {
            peer: "kme-d",
            port: free_port(),
            leader: true,
            rate: 1000,
            pool_max: 1 << 20,
        },
    ];
    let text = config_text(
        &pki,
        &data.path().join("db"),
        &Spec {
            id: "kme-a",
            port,
            extra_kme: "",
            saes: &["sae-a", "sae-b"],
            remote: &[("sae-r", &["kme-b", "kme-c"])],
            links: &links,
        },
    );
    KmeEnv::start(pki, data, &text).await
}

/// POSTs `{}` to `path` with `who`'s certificate; the status and the body.
async fn post(e: &KmeEnv, who: &str, path: &str) -> (StatusCode, String) {
    let resp = e
        .pki
        .client(Some(who))
        .post(format!("{}{path}", e.root()))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    (resp.status(), resp.text().await.unwrap())
}

/// The `message` of an ETSI 014 error body (empty if the body is not one).
fn message(body: &str) -> String {
    serde_json::from_str::<qshield::qkd::etsi014::ErrorBody>(body)
        .map(|b| b.message)
        .unwrap_or_default()
}

const KME_PATHS: [&str; 3] = [
    "/kme/v1/relay",
    "/kme/v1/link/keys",
    qshield::kme::link::cvqkd::wire::PATH,
];

#[tokio::test(flavor = "multi_thread")]
async fn an_sae_certificate_is_refused_on_kme_to_kme_endpoints() {
    let e = env().await;
    for who in ["sae-a", "sae-r"] {
        for path in KME_PATHS {
            let (status, body) = post(&e, who, path).await;
            let m = message(&body);
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{who} {path}: {body}");
            assert!(
                m.contains(&format!("'{who}' is an SAE")) && m.contains("KME-to-KME"),
                "{who} {path}: body {body:?}"
            );
        }
    }
    e.kme.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kme_certificate_is_refused_on_the_etsi_api() {
    let e = env().await;
    // The neighbour, a KME further on a route, and this KME's own certificate.
    for who in ["kme-b", "kme-c", "kme-a"] {
        for path in ["/api/v1/keys/sae-b/enc_keys", "/api/v1/keys/sae-a/dec_keys"] {
            let (status, body) = post(&e, who, path).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{who} {path}: {body}");
            let m = message(&body);
            assert!(
                m.contains(&format!("'{who}' is a KME")) && m.contains("SAE"),
                "{who} {path}: body {body:?}"
            );
        }
        let resp = e
            .pki
            .client(Some(who))
            .get(format!("{}/api/v1/keys/sae-b/status", e.root()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{who} status");
        let m = message(&resp.text().await.unwrap());
        assert!(
            m.contains(&format!("'{who}' is a KME")),
            "{who} status: {m:?}"
        );
    }
    // An SAE this KME does not know keeps the plain 401 of ETSI 014.
    let (status, body) = post(&e, "sae-x", "/api/v1/keys/sae-b/enc_keys").await;
    assert_eq!((status, body.as_str()), (StatusCode::UNAUTHORIZED, ""));
    // The roles still work for their own endpoints.
    let (status, body) = post(&e, "sae-a", "/api/v1/keys/sae-b/enc_keys").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    e.kme.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn only_a_neighbour_may_call_and_only_for_its_own_link() {
    let e = env().await;
    // KMEs that are not link neighbours: one on a route, one unknown.
    for who in ["kme-c", "kme-e"] {
        for path in KME_PATHS {
            let (status, body) = post(&e, who, path).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{who} {path}: {body}");
            assert!(
                message(&body).contains("not a link neighbour"),
                "{who} {path}: body {body:?}"
            );
        }
    }
    // kme-d is a neighbour, but kme-a leads that link: kme-d may not push keys into it.
    let (status, body) = post(&e, "kme-d", "/kme/v1/link/keys").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "kme-d push: {body}");
    // kme-b leads a random link: it has no CV-QKD link to speak for.
    let (status, body) = post(&e, "kme-b", qshield::kme::link::cvqkd::wire::PATH).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "kme-b cvqkd: {body}");
    // A relay from kme-b naming a route that does not start here is refused.
    let relay = serde_json::json!({
        "master": "sae-r", "slave": "sae-a", "route": ["kme-d"], "pads": [], "keys": []
    });
    let resp = e
        .pki
        .client(Some("kme-b"))
        .post(format!("{}/kme/v1/relay", e.root()))
        .json(&relay)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::BAD_REQUEST,
        "relay over another route"
    );
    // The neighbour's own push is accepted.
    let push = serde_json::json!({ "blocks": [] });
    let resp = e
        .pki
        .client(Some("kme-b"))
        .post(format!("{}/kme/v1/link/keys", e.root()))
        .json(&push)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "kme-b's own push");
    e.kme.shutdown().await;
}

const CONFIG: &str = r#"[kme]
id = "kme-a"
listen = "127.0.0.1:8443"
data_dir = "data"
ca_file = "ca.pem"
cert_file = "kme-a.pem"
key_file = "kme-a.key"

[[sae]]
id = "sae-a"

[[remote_sae]]
id = "sae-b"
route = ["kme-b", "kme-c"]

[[link]]
peer = "kme-b"
url = "https://127.0.0.1:8444"
role = "leader"

[[sae_pair]]
master = "sae-a"
slave = "sae-b"
"#;

#[test]
fn an_sae_id_equal_to_a_kme_id_is_refused_at_load() {
    parse(CONFIG, Path::new("k.toml")).unwrap();
    let cases = [
        (
            r#"id = "sae-a""#,
            r#"id = "kme-a""#,
            "k.toml:10:6: sae[0].id",
        ),
        (
            r#"id = "sae-a""#,
            r#"id = "kme-b""#,
            "k.toml:10:6: sae[0].id",
        ),
        (
            r#"id = "sae-b""#,
            r#"id = "kme-c""#,
            "k.toml:13:6: remote_sae[0].id",
        ),
    ];
    for (from, to, want) in cases {
        let text = CONFIG.replacen(from, to, 1);
        let text = text.replace(
            &format!("master = {}", &from[5..]),
            &format!("master = {}", &to[5..]),
        );
        let text = text.replace(
            &format!("slave = {}", &from[5..]),
            &format!("slave = {}", &to[5..]),
        );
        let e = parse(&text, Path::new("k.toml")).unwrap_err().to_string();
        assert!(
            e.starts_with(want) && e.contains("is a KME ID"),
            "{to}: {e}"
        );
    }
    // A pair naming a KME is refused as such, naming the pair's field.
    let text = CONFIG.replace(r#"slave = "sae-b""#, r#"slave = "kme-b""#);
    let e = parse(&text, Path::new("k.toml")).unwrap_err().to_string();
    assert!(
        e.starts_with("k.toml:23:9: sae_pair[0].slave") && e.contains("is a KME ID"),
        "{e}"
    );
}
