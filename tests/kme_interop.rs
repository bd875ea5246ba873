//! Interop: qshield's KME against an independent ETSI GS QKD 014 client, the
//! `etsi014-client` crate (crates.io, TU Eindhoven QTS; OpenSSL via native-tls, keys in
//! libsodium memory), installed from the registry as a dev-dependency. It checks status,
//! "Get key" (its POST form, with its `additional_target_sae_ids: []` field) and "Get key
//! with key IDs", and that the slave's keys equal the master's.

mod support;

use etsi014_client::ETSI014Client;
use qshield::qkd::etsi014::messages;
use support::kme::*;

/// `result` is the client's "unsuccessful HTTP code" error for a 400 whose body names
/// `message` (its error kind is not nameable outside the crate: matched by its `Debug`).
#[track_caller]
fn refused<T>(result: Result<T, etsi014_client::Error>, message: &str) {
    let Err(err) = result else {
        panic!("{message}: the KME answered 200")
    };
    assert_eq!(format!("{:?}", err.kind), "InvalidResponse", "{err}");
    assert!(err.msg.contains("HTTP Code: 400 Bad Request"), "{err}");
    assert!(err.msg.contains(message), "{message}: {err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn etsi014_client_crate_gets_identical_keys() {
    let pki = Pki::new("interop-ca", &["kme-a"], &["sae-a", "sae-b"]);
    let data = private_tempdir();
    let spec = Spec::local("kme-a", free_port(), &["sae-a", "sae-b"]);
    let kme = start_spec(&pki, data.path(), &spec).await;
    let port = kme.local_addr().port();
    let client = |sae: &str| {
        let (cert, key) = (
            pki.path(&format!("{sae}.pem")),
            pki.path(&format!("{sae}.key")),
        );
        ETSI014Client::new("127.0.0.1", port, &cert, &key, &pki.path("ca.pem")).unwrap()
    };
    let (master, slave) = (client("sae-a"), client("sae-b"));
    let status = master.get_status("sae-b").await.unwrap();
    assert_eq!(
        (status.key_size, status.max_key_size, status.min_key_size),
        (256, 1024, 64)
    );
    assert_eq!(status.max_key_count, status.stored_key_count);
    let sent = master.get_keys(512, "sae-b", &[], 3).await.unwrap();
    assert_eq!(sent.len(), 3);
    let ids: Vec<&str> = sent.iter().map(|(id, _)| id.as_str()).collect();
    let got = slave.get_keys_by_ids("sae-a", &ids).await.unwrap();
    assert_eq!(got.len(), 3);
    for ((id_m, k_m), (id_s, k_s)) in sent.iter().zip(&got) {
        assert_eq!(id_m, id_s);
        assert_eq!(k_m.borrow().len(), 64);
        assert_eq!(&*k_m.borrow(), &*k_s.borrow(), "identical keys");
    }
    // The independent client sees our refusals as errors too: each an HTTP 400 with the
    // spec's message, not a failure to reach the KME.
    refused(
        slave.get_keys_by_ids("sae-a", &ids).await,
        messages::KEYS_NOT_FOUND,
    );
    refused(
        master.get_keys(100, "sae-b", &[], 1).await,
        messages::SIZE_NOT_MULTIPLE_OF_8,
    );
    refused(
        master.get_keys(256, "sae-b", &["sae-c"], 1).await,
        // Its non-empty `additional_target_sae_ids` (its name for multicast) is refused.
        "additional_target_sae_ids",
    );
    kme.shutdown().await;
}
