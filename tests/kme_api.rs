//! ETSI GS QKD 014 conformance of `qshield kme` over real HTTPS with mutual TLS: every
//! method in its GET and POST forms, status fields, every error with the spec's messages,
//! wrong and missing certificates, limits, malformed JSON and URLs, an empty pool.

mod support;

use qshield::qkd::etsi014::{Status, messages};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::kme::*;

/// kme-a with local SAEs sae-a, sae-b, sae-c and remote sae-r behind a link to kme-b (a
/// follower link whose leader never runs: its pool stays empty).
async fn env() -> KmeEnv {
    let pki = Pki::new(
        "test-ca",
        &["kme-a", "kme-b"],
        &["sae-a", "sae-b", "sae-c", "sae-r"],
    );
    let data = private_tempdir();
    let port = free_port();
    let dead = free_port();
    let extra = "max_key_per_request = 16\nmin_key_size = 64\nmax_key_size = 1024\ndefault_key_size = 256\nmax_key_count = 40";
    let link = Link {
        peer: "kme-b",
        port: dead,
        leader: false,
        rate: 0,
        pool_max: 1 << 20,
    };
    let text = config_text(
        &pki,
        &data.path().join("db"),
        &Spec {
            id: "kme-a",
            port,
            extra_kme: extra,
            saes: &["sae-a", "sae-b", "sae-c"],
            remote: &[("sae-r", &["kme-b"])],
            links: &[link],
        },
    );
    KmeEnv::start(pki, data, &text).await
}

#[tokio::test(flavor = "multi_thread")]
async fn status_reports_every_field() {
    let e = env().await;
    let s: Status = e.status("sae-a", "sae-b").await;
    assert_eq!(
        (s.source_KME_ID.as_str(), s.target_KME_ID.as_str()),
        ("kme-a", "kme-a")
    );
    assert_eq!(
        (s.master_SAE_ID.as_str(), s.slave_SAE_ID.as_str()),
        ("sae-a", "sae-b")
    );
    assert_eq!(
        (s.key_size, s.min_key_size, s.max_key_size),
        (256, 64, 1024)
    );
    assert_eq!(
        (s.max_key_per_request, s.max_key_count, s.max_SAE_ID_count),
        (16, 40, 0)
    );
    assert_eq!(s.stored_key_count, 40);
    let raw: Value = e.status("sae-a", "sae-b").await;
    for f in [
        "source_KME_ID",
        "target_KME_ID",
        "master_SAE_ID",
        "slave_SAE_ID",
        "key_size",
        "stored_key_count",
        "max_key_count",
        "max_key_per_request",
        "max_key_size",
        "min_key_size",
        "max_SAE_ID_count",
    ] {
        assert!(raw.get(f).is_some(), "{f} missing");
    }
    let s: Status = e.status("sae-a", "sae-r").await;
    assert_eq!(
        (s.target_KME_ID.as_str(), s.stored_key_count),
        ("kme-b", 0),
        "remote: empty link pool"
    );
    e.kme.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn enc_and_dec_keys_in_every_form() {
    let e = env().await;
    let (a, b) = (e.pki.client(Some("sae-a")), e.pki.client(Some("sae-b")));
    let mut got = Vec::new();
    got.extend(
        keys(
            a.get(format!("{}/sae-b/enc_keys", e.url))
                .send()
                .await
                .unwrap(),
        )
        .await
        .keys,
    );
    assert_eq!(got[0].key.len(), 44, "256-bit default, base64");
    let k = keys(
        a.get(format!("{}/sae-b/enc_keys?number=3&size=1024", e.url))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(k.keys.iter().all(|k| k.key.len() == 172));
    got.extend(k.keys);
    got.extend(
        keys(
            a.post(format!("{}/sae-b/enc_keys", e.url))
                .send()
                .await
                .unwrap(),
        )
        .await
        .keys,
    );
    let body = json!({"number": 2, "size": 64, "additional_slave_SAE_IDs": [], "extension_optional": [{"abc_x": 1}]});
    got.extend(
        keys(
            a.post(format!("{}/sae-b/enc_keys", e.url))
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await
        .keys,
    );
    assert_eq!(got.len(), 7);
    let uuids: std::collections::HashSet<_> = got
        .iter()
        .map(|k| uuid::Uuid::parse_str(&k.key_ID).unwrap())
        .collect();
    assert_eq!(uuids.len(), 7);
    let s: Status = a
        .get(format!("{}/sae-b/status", e.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(s.stored_key_count, 33, "7 keys wait for the slave");
    // GET dec_keys with ?key_ID=, URL names the master.
    let one = keys(
        b.get(format!("{}/sae-a/dec_keys?key_ID={}", e.url, got[0].key_ID))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (&one.keys[0].key_ID, &one.keys[0].key),
        (&got[0].key_ID, &got[0].key)
    );
    // POST dec_keys with the rest.
    let ids: Vec<Value> = got[1..]
        .iter()
        .map(|k| json!({"key_ID": k.key_ID}))
        .collect();
    let rest = keys(
        b.post(format!("{}/sae-a/dec_keys", e.url))
            .json(&json!({"key_IDs": ids}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    // The count first: `zip` alone would pass on fewer keys, or none.
    assert_eq!(rest.keys.len(), got.len() - 1, "every key asked for");
    for (x, y) in rest.keys.iter().zip(&got[1..]) {
        assert_eq!((&x.key_ID, &x.key), (&y.key_ID, &y.key));
    }
    // Delivered once: a second dec_keys finds nothing.
    let again = b
        .get(format!("{}/sae-a/dec_keys?key_ID={}", e.url, got[0].key_ID))
        .send()
        .await
        .unwrap();
    assert_eq!(
        refused(again, StatusCode::BAD_REQUEST).await.message,
        messages::KEYS_NOT_FOUND
    );
    e.kme.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn request_errors_carry_the_spec_messages() {
    let e = env().await;
    let a = e.pki.client(Some("sae-a"));
    let post = |body: Value| {
        a.post(format!("{}/sae-b/enc_keys", e.url))
            .json(&body)
            .send()
    };
    assert_eq!(
        refused(
            post(json!({"size": 100})).await.unwrap(),
            StatusCode::BAD_REQUEST
        )
        .await
        .message,
        messages::SIZE_NOT_MULTIPLE_OF_8
    );
    let r = a
        .get(format!("{}/sae-b/enc_keys?size=12", e.url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        refused(r, StatusCode::BAD_REQUEST).await.message,
        messages::SIZE_NOT_MULTIPLE_OF_8
    );
    let ext = json!({"extension_mandatory": [{"abc_route_type": "direct"}]});
    let err = refused(post(ext).await.unwrap(), StatusCode::BAD_REQUEST).await;
    assert_eq!(err.message, messages::MANDATORY_EXTENSION_UNSUPPORTED);
    assert_eq!(
        err.details.unwrap()[0]["extension_mandatory_unsupported"],
        "abc_route_type is not supported"
    );
    // Sizes and counts at their limits.
    for (body, ok) in [
        (json!({"size": 64}), true),
        (json!({"size": 1024}), true),
        (json!({"size": 56}), false),
        (json!({"size": 1032}), false),
        (json!({"number": 16}), true),
        (json!({"number": 17}), false),
        (json!({"number": 0}), false),
        (json!({"size": 0}), false),
    ] {
        let r = post(body.clone()).await.unwrap();
        assert_eq!(r.status() == StatusCode::OK, ok, "{body}");
        if !ok {
            assert!(!refused(r, StatusCode::BAD_REQUEST).await.message.is_empty());
        }
    }
    let multi = json!({"additional_slave_SAE_IDs": ["sae-c"]});
    let err = refused(post(multi).await.unwrap(), StatusCode::BAD_REQUEST).await;
    assert!(err.message.contains("additional_slave_SAE_IDs"), "{err:?}");
    for bad in [
        "{",
        "[]",
        "{\"number\": \"two\"}",
        "{\"number\": -1}",
        "{\"nubmer\": 2}",
        "null",
    ] {
        let r = a
            .post(format!("{}/sae-b/enc_keys", e.url))
            .body(bad)
            .send()
            .await
            .unwrap();
        assert_eq!(
            refused(r, StatusCode::BAD_REQUEST).await.message,
            "Bad request format",
            "{bad}"
        );
    }
    for q in ["number=x", "number=1&color=red", "size=-8"] {
        let r = a
            .get(format!("{}/sae-b/enc_keys?{q}", e.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{q}");
    }
    e.kme.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dec_keys_errors() {
    let e = env().await;
    let (a, b, c) = (
        e.pki.client(Some("sae-a")),
        e.pki.client(Some("sae-b")),
        e.pki.client(Some("sae-c")),
    );
    let k = keys(
        a.get(format!("{}/sae-b/enc_keys?number=2", e.url))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let id = &k.keys[0].key_ID;
    // Another SAE asking for sae-b's keys: 401, no body; the key stays for sae-b.
    let r = c
        .get(format!("{}/sae-a/dec_keys?key_ID={id}", e.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.bytes().await.unwrap().is_empty());
    // The master itself asking for its slave's copy: 401 too.
    let r = a
        .get(format!("{}/sae-a/dec_keys?key_ID={id}", e.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Unknown key ID, and a known one mixed with an unknown one: 400, nothing delivered.
    let unknown = uuid::Uuid::new_v4().to_string();
    let r = b
        .get(format!("{}/sae-a/dec_keys?key_ID={unknown}", e.url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        refused(r, StatusCode::BAD_REQUEST).await.message,
        messages::KEYS_NOT_FOUND
    );
    let mixed = json!({"key_IDs": [{"key_ID": id}, {"key_ID": unknown}]});
    let r = b
        .post(format!("{}/sae-a/dec_keys", e.url))
        .json(&mixed)
        .send()
        .await
        .unwrap();
    assert_eq!(
        refused(r, StatusCode::BAD_REQUEST).await.message,
        messages::KEYS_NOT_FOUND
    );
    // The wrong master in the URL: not found for that master.
    let r = b
        .get(format!("{}/sae-c/dec_keys?key_ID={id}", e.url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        refused(r, StatusCode::BAD_REQUEST).await.message,
        messages::KEYS_NOT_FOUND
    );
    // Malformed bodies and queries.
    for bad in [
        "{",
        "{\"key_IDs\": 3}",
        "{\"key_IDs\": []}",
        "{\"keyIDs\": []}",
    ] {
        let r = b
            .post(format!("{}/sae-a/dec_keys", e.url))
            .body(bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
    let r = b
        .get(format!("{}/sae-a/dec_keys", e.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "GET without key_ID");
    let too_many: Vec<Value> = (0..17)
        .map(|_| json!({"key_ID": uuid::Uuid::new_v4().to_string()}))
        .collect();
    let r = b
        .post(format!("{}/sae-a/dec_keys", e.url))
        .json(&json!({"key_IDs": too_many}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Still deliverable to the right slave after all that.
    let ok = keys(
        b.get(format!("{}/sae-a/dec_keys?key_ID={id}", e.url))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(ok.keys[0].key, k.keys[0].key);
    e.kme.shutdown().await;
}

/// The hyper error somewhere in `err`'s source chain.
fn hyper_error(err: &reqwest::Error) -> Option<&hyper::Error> {
    let mut source = std::error::Error::source(err);
    while let Some(e) = source {
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            return Some(h);
        }
        source = e.source();
    }
    None
}

/// The TCP connection was made (the KME is up: not a refused or timed-out connect), and
/// the KME closed it without an HTTP answer (its TLS stack refused the certificate).
fn assert_closed_after_handshake(err: &reqwest::Error) {
    assert!(
        !err.is_connect() && !err.is_timeout(),
        "the KME is up: {err:?}"
    );
    // The HTTP exchange on that connection failed; hyper names it "channel closed",
    // "canceled: connection closed" or a broken pipe, as the close races the request.
    assert!(err.is_request() && hyper_error(err).is_some(), "{err:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn callers_are_identified_by_certificate() {
    let e = env().await;
    // A KME's certificate is not an SAE of this KME: 401.
    let kb = e.pki.client(Some("kme-b"));
    let r = kb
        .get(format!("{}/sae-b/enc_keys", e.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Unknown slave: 400 (the request names something this KME cannot serve; the caller is
    // authenticated, so 401 would be wrong); the caller as its own slave: 400.
    let a = e.pki.client(Some("sae-a"));
    for slave in ["sae-zzz", "sae-a"] {
        let r = a
            .get(format!("{}/{slave}/enc_keys", e.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{slave}");
        let r = a
            .get(format!("{}/{slave}/status", e.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{slave}");
    }
    // No client certificate, or one from another CA: no HTTP answer at all.
    let none = e.pki.client(None);
    let err = none
        .get(format!("{}/sae-b/status", e.url))
        .send()
        .await
        .unwrap_err();
    assert_closed_after_handshake(&err);
    let evil = Pki::new("evil-ca", &["kme-x"], &["sae-a"]);
    let ca = reqwest::Certificate::from_pem(&std::fs::read(e.pki.path("ca.pem")).unwrap()).unwrap();
    let forged = reqwest::Client::builder()
        .tls_backend_rustls()
        .tls_certs_only([ca])
        .identity(evil.identity("sae-a"))
        .build()
        .unwrap();
    let err = forged
        .get(format!("{}/sae-b/status", e.url))
        .send()
        .await
        .unwrap_err();
    assert_closed_after_handshake(&err);
    // Plain HTTP: no HTTP answer either.
    let plain = reqwest::Client::new();
    let url = format!(
        "http://127.0.0.1:{}/api/v1/keys/sae-b/status",
        e.kme.local_addr().port()
    );
    let err = plain.get(url).send().await.unwrap_err();
    // The KME answers TLS (an alert), which is no HTTP version: a parse error, not a
    // refused connection.
    assert!(!err.is_connect(), "the KME is up: {err:?}");
    assert!(
        hyper_error(&err).is_some_and(hyper::Error::is_parse),
        "{err:?}"
    );
    e.kme.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_urls_and_methods_are_400() {
    let e = env().await;
    let a = e.pki.client(Some("sae-a"));
    let port = e.kme.local_addr().port();
    for path in [
        "/api/v1/keys/sae-b",
        "/api/v1/keys/sae-b/enc_key",
        "/api/v2/keys/sae-b/status",
        "/",
        "/api/v1/keys//enc_keys",
        "/api/v1/keys/sae-b/status/x",
    ] {
        let r = a
            .get(format!("https://127.0.0.1:{port}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{path}");
    }
    // Wrong methods: 400. Percent-encoded IDs are decoded: sae%2Db is sae-b.
    for (method, path, want) in [
        (Method::PUT, "sae-b/enc_keys", StatusCode::BAD_REQUEST),
        (Method::POST, "sae-b/status", StatusCode::BAD_REQUEST),
        (Method::GET, "sae%2Db/status", StatusCode::OK),
    ] {
        let url = format!("{}/{path}", e.url);
        let r = a.request(method.clone(), url).send().await.unwrap();
        assert_eq!(r.status(), want, "{method} {path}");
    }
    e.kme.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn empty_pools_answer_503() {
    let e = env().await;
    let a = e.pki.client(Some("sae-a"));
    // The link to kme-b never received a key: 503, no key.
    let err = refused(
        a.get(format!("{}/sae-r/enc_keys", e.url))
            .send()
            .await
            .unwrap(),
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    assert_eq!(err.message, "not enough key material");
    // A local pair whose slave never fetches: 40 keys (max_key_count), then 503.
    for _ in 0..5 {
        keys(
            a.post(format!("{}/sae-c/enc_keys", e.url))
                .json(&json!({"number": 8}))
                .send()
                .await
                .unwrap(),
        )
        .await;
    }
    let r = a
        .get(format!("{}/sae-c/enc_keys", e.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let s: Status = a
        .get(format!("{}/sae-c/status", e.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(s.stored_key_count, 0);
    // Status document counts the 503s, for this KME's SAEs.
    let doc: Value = a
        .get(format!(
            "https://127.0.0.1:{}/kme/v1/status",
            e.kme.local_addr().port()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pairs = doc["pairs"].as_array().unwrap();
    let p = pairs.iter().find(|p| p["slave"] == "sae-r").unwrap();
    assert_eq!(p["errors_503"], 1);
    // ... by code and reason: the relay found too little pad on the link
    let short = json!([{"code": 503, "reason": "no_key_material", "count": 1}]);
    assert_eq!(p["refusals"], short, "{doc}");
    assert_eq!(doc["links"][0]["errors_503"], 1);
    assert_eq!(doc["links"][0]["refusals"], short, "{doc}");
    // the local pair whose slave never fetched: the store was full
    let c = pairs.iter().find(|p| p["slave"] == "sae-c").unwrap();
    assert_eq!(
        c["refusals"],
        json!([{"code": 503, "reason": "store_full", "count": 1}]),
        "{doc}"
    );
    assert_eq!(doc["links"][0]["source"], "random (NOT QKD)");
    e.kme.shutdown().await;
}
