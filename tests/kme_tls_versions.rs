//! TLS versions the KME accepts: a hand-built TLS 1.0 or 1.1 ClientHello gets a
//! protocol_version alert or a closed connection, never a ServerHello (the same hello
//! offering TLS 1.2 does get one); a TLS 1.2 client without a client certificate gets no
//! HTTP answer, while the same client with its certificate does.

mod support;

use rustls_pki_types::pem::PemObject;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;
use support::kme::*;

/// TLS record content types and the alert this test expects.
const RECORD_HANDSHAKE: u8 = 22;
const RECORD_ALERT: u8 = 21;
const ALERT_FATAL: u8 = 2;
const ALERT_PROTOCOL_VERSION: u8 = 70;
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A ClientHello record offering `version` (0x0301 TLS 1.0, 0x0302 TLS 1.1, 0x0303
/// TLS 1.2) with ECDHE suites and no `supported_versions` extension (so `version` is the
/// highest it offers).
fn client_hello(version: u16) -> Vec<u8> {
    let ext = |kind: u16, data: &[u8]| {
        let mut e = kind.to_be_bytes().to_vec();
        e.extend((data.len() as u16).to_be_bytes());
        e.extend(data);
        e
    };
    let mut extensions = Vec::new();
    // supported_groups: x25519, secp256r1.
    extensions.extend(ext(0x000a, &[0, 4, 0x00, 0x1d, 0x00, 0x17]));
    // ec_point_formats: uncompressed.
    extensions.extend(ext(0x000b, &[1, 0]));
    // signature_algorithms (ignored below TLS 1.2): ecdsa_secp256r1_sha256,
    // rsa_pss_rsae_sha256, rsa_pkcs1_sha256, ed25519.
    extensions.extend(ext(
        0x000d,
        &[0, 8, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01, 0x08, 0x07],
    ));
    let mut body = version.to_be_bytes().to_vec();
    body.extend([0x5a; 32]); // random
    body.push(0); // no session id
    // ECDHE-ECDSA/RSA with AES-GCM (TLS 1.2) and AES-CBC-SHA (TLS 1.0/1.1).
    let suites: [u16; 6] = [0xc02b, 0xc02f, 0xc02c, 0xc030, 0xc009, 0xc013];
    body.extend(((suites.len() * 2) as u16).to_be_bytes());
    for s in suites {
        body.extend(s.to_be_bytes());
    }
    body.extend([1, 0]); // compression: null
    body.extend((extensions.len() as u16).to_be_bytes());
    body.extend(extensions);
    let mut handshake = vec![1]; // client_hello
    handshake.extend(&(body.len() as u32).to_be_bytes()[1..]);
    handshake.extend(body);
    let mut record = vec![RECORD_HANDSHAKE, 0x03, 0x01];
    record.extend((handshake.len() as u16).to_be_bytes());
    record.extend(handshake);
    record
}

/// What the KME answers to `client_hello(version)`: the bytes until it closes (or until
/// a handshake record shows up).
fn answer_to_hello(port: u16, version: u16) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    s.write_all(&client_hello(version)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend(&buf[..n]),
            // A reset after the alert is a closed connection too.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("no answer and no close from the KME: {e}"),
        }
        if got.len() >= 5 && got[0] == RECORD_HANDSHAKE {
            break; // a ServerHello is on its way: enough to fail on
        }
    }
    got
}

/// A KME serving sae-a and sae-b on a free port.
async fn kme(pki: &Pki, data: &std::path::Path) -> qshield::kme::KmeHandle {
    let spec = Spec::local("kme-a", free_port(), &["sae-a", "sae-b"]);
    start_spec(pki, data, &spec).await
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_1_0_and_1_1_client_hellos_are_refused() {
    let pki = Pki::new("tls-ca", &["kme-a"], &["sae-a", "sae-b"]);
    let data = tempfile::tempdir().unwrap();
    let kme = kme(&pki, data.path()).await;
    let port = kme.local_addr().port();
    // The control: the same hand-built hello offering TLS 1.2 gets a ServerHello, so the
    // refusals below are about the version and not about a malformed hello.
    let tls12 = tokio::task::spawn_blocking(move || answer_to_hello(port, 0x0303))
        .await
        .unwrap();
    assert!(
        tls12.len() >= 6 && tls12[0] == RECORD_HANDSHAKE && tls12[5] == 2,
        "TLS 1.2 hello: a ServerHello, got {tls12:02x?}"
    );
    for (name, version) in [("TLS 1.0", 0x0301u16), ("TLS 1.1", 0x0302)] {
        let got = tokio::task::spawn_blocking(move || answer_to_hello(port, version))
            .await
            .unwrap();
        // Either nothing (closed) or exactly one fatal (2) protocol_version alert record,
        // then the close: never a ServerHello.
        let alert = got.len() == 7
            && got[0] == RECORD_ALERT
            && got[3..] == [0, 2, ALERT_FATAL, ALERT_PROTOCOL_VERSION];
        assert!(
            got.is_empty() || alert,
            "{name}: a protocol_version alert or a close, got {got:02x?}"
        );
    }
    kme.shutdown().await;
}

/// Sends one HTTP/1.1 status request over TLS 1.2 with (or without) `sae-a`'s
/// certificate; the KME's answer, or the TLS error.
fn status_over_tls12(pki: &Pki, port: u16, with_cert: bool) -> Result<String, std::io::Error> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in qshield::kme::tls::read_certs(&pki.path("ca.pem")).unwrap() {
        roots.add(ca).unwrap();
    }
    let b = rustls::ClientConfig::builder_with_protocol_versions(&[&rustls::version::TLS12])
        .with_root_certificates(roots);
    let cfg = if with_cert {
        let certs = qshield::kme::tls::read_certs(&pki.path("sae-a.pem")).unwrap();
        let key = rustls_pki_types::PrivateKeyDer::from_pem_file(pki.path("sae-a.key")).unwrap();
        b.with_client_auth_cert(certs, key).unwrap()
    } else {
        b.with_no_client_auth()
    };
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(cfg), name).unwrap();
    let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let req = format!(
        "GET /api/v1/keys/sae-b/status HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    );
    tls.write_all(req.as_bytes())?;
    let mut answer = Vec::new();
    tls.read_to_end(&mut answer)?;
    assert_eq!(
        tls.conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_1_2_without_a_client_certificate_gets_no_http_answer() {
    let pki = Arc::new(Pki::new("tls-ca", &["kme-a"], &["sae-a", "sae-b"]));
    let data = tempfile::tempdir().unwrap();
    let kme = kme(&pki, data.path()).await;
    let port = kme.local_addr().port();
    let p = pki.clone();
    let with = tokio::task::spawn_blocking(move || status_over_tls12(&p, port, true))
        .await
        .unwrap()
        .expect("TLS 1.2 with a certificate");
    assert!(with.starts_with("HTTP/1.1 200"), "{with}");
    let p = pki.clone();
    let without = tokio::task::spawn_blocking(move || status_over_tls12(&p, port, false))
        .await
        .unwrap();
    let err = without.expect_err("no HTTP answer without a certificate");
    // The KME's fatal certificate_required alert ends the handshake: no HTTP at all.
    let tls_err = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>());
    assert_eq!(
        tls_err,
        Some(&rustls::Error::AlertReceived(
            rustls::AlertDescription::CertificateRequired
        )),
        "{err:?}"
    );
    kme.shutdown().await;
}
