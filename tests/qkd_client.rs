//! The daemon's ETSI GS QKD 014 client (`qkd::client::Etsi014Client`, the one `qshield up`
//! uses) against qshield's KME over real HTTPS with mutual TLS.

mod support;

use qshield::config::KmeClientConfig;
use qshield::qkd::client::Etsi014Client;
use qshield::qkd::{KeySource, QkdError};
use support::kme::{Pki, Spec, config_text, free_port, private_tempdir, start};

fn client(pki: &Pki, port: u16, sae: &str, ca: &str) -> Etsi014Client {
    let cfg = KmeClientConfig {
        url: format!("https://127.0.0.1:{port}"),
        sae_id: sae.into(),
        peer_sae_id: None,
        ca_file: pki.path(ca),
        cert_file: pki.path(&format!("{sae}.pem")),
        key_file: pki.path(&format!("{sae}.key")),
        key_size_bits: 256,
    };
    Etsi014Client::new(&cfg).expect("client from PEM files")
}

/// Runs `f` against a KME serving sae-a, sae-b and sae-c on a free port.
fn with_kme(f: impl FnOnce(&Pki, u16)) {
    let pki = Pki::new("test-ca", &["kme-a"], &["sae-a", "sae-b", "sae-c"]);
    let data = private_tempdir();
    let port = free_port();
    let spec = Spec {
        id: "kme-a",
        port,
        extra_kme: "",
        saes: &["sae-a", "sae-b", "sae-c"],
        remote: &[],
        links: &[],
    };
    let text = config_text(&pki, data.path(), &spec);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let handle = rt.block_on(start(&text, data.path()));
    f(&pki, port);
    rt.block_on(handle.shutdown());
}

#[test]
fn master_and_slave_get_the_same_key_once() {
    with_kme(|pki, port| {
        let (a, b, c) = (
            client(pki, port, "sae-a", "ca.pem"),
            client(pki, port, "sae-b", "ca.pem"),
            client(pki, port, "sae-c", "ca.pem"),
        );
        let status = a.status("sae-b").unwrap();
        assert_eq!(
            (status.master_SAE_ID.as_str(), status.slave_SAE_ID.as_str()),
            ("sae-a", "sae-b")
        );
        let key = a.new_key("sae-b", 256).unwrap();
        assert_eq!(key.key.len(), 32);
        let refused = c.key_by_id("sae-a", &key.key_id, 256).unwrap_err();
        assert!(
            matches!(refused, QkdError::Refused { status: 401, .. }),
            "another SAE: {refused:?}"
        );
        let same = b.key_by_id("sae-a", &key.key_id, 256).unwrap();
        assert_eq!(
            (same.key_id.as_str(), &same.key[..]),
            (key.key_id.as_str(), &key.key[..])
        );
        let again = b.key_by_id("sae-a", &key.key_id, 256).unwrap_err();
        assert!(
            matches!(again, QkdError::Refused { status: 400, .. }),
            "only once: {again:?}"
        );
    });
}

#[test]
fn failures_are_named() {
    with_kme(|pki, port| {
        let nobody = free_port();
        let down = client(pki, nobody, "sae-a", "ca.pem")
            .new_key("sae-b", 256)
            .unwrap_err();
        assert!(matches!(down, QkdError::Unreachable(_)), "{down:?}");
        let other = Pki::new("other-ca", &["kme-x"], &[]);
        std::fs::copy(other.path("ca.pem"), pki.path("other-ca.pem")).unwrap();
        let untrusted = client(pki, port, "sae-a", "other-ca.pem")
            .new_key("sae-b", 256)
            .unwrap_err();
        assert!(
            matches!(untrusted, QkdError::Unreachable(_)),
            "a KME from another CA is refused: {untrusted:?}"
        );
        let odd = client(pki, port, "sae-a", "ca.pem")
            .new_key("sae-b", 100)
            .unwrap_err();
        assert!(
            matches!(odd, QkdError::Refused { status: 400, .. }),
            "{odd:?}"
        );
    });
}

#[test]
fn a_kme_that_never_answers_times_out_within_the_bound() {
    let pki = Pki::new("test-ca", &["kme-a"], &["sae-a"]);
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let hold = std::thread::spawn(move || {
        let conn = silent.accept().map(|(s, _)| s);
        std::thread::sleep(qshield::constants::KME_CALL_TIMEOUT * 2);
        drop(conn);
    });
    let started = std::time::Instant::now();
    let err = client(&pki, port, "sae-a", "ca.pem")
        .new_key("sae-b", 256)
        .unwrap_err();
    let waited = started.elapsed();
    // The timeout itself, after at least the timeout: an immediate connection failure
    // (`Unreachable`) is another case, named in `failures_are_named`.
    assert!(matches!(err, QkdError::Timeout), "{err:?}");
    assert!(
        waited >= qshield::constants::KME_CALL_TIMEOUT,
        "waited the timeout: {waited:?}"
    );
    assert!(
        waited < qshield::constants::KME_CALL_TIMEOUT + std::time::Duration::from_secs(2),
        "bounded: {waited:?}"
    );
    hold.join().unwrap();
}
