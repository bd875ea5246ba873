//! `identity_files`: the loaders of key and certificate files, from bytes written to files
//! (mode 0600) in a scratch directory: a site identity (`config::identity_files::
//! read_identity`, `read_public`, `read_public_file`: `x25519.key`, `mlkem768.key`,
//! `public.key`) and a KME's PEM files (`kme::tls::read_certs`, `common_name`, and
//! `server_config`, which reads the PEM private key and hands both to rustls).
//!
//! Checks: a loaded identity's public half matches a `public.key` that loads; a public
//! identity re-encodes to itself; every refusal names the file it refused.
//!
//! Input: a datagram list (`qshield_fuzz::frames`) of up to five files, in the order
//! `x25519.key`, `mlkem768.key`, `public.key`, `cert.pem`, `key.pem`; a file not given
//! does not exist. Seeds: the fixture identities and a certificate and key from
//! `qshield pki init` (`examples/gen_seeds.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use qshield::config::identity_files::{self, MLKEM768_KEY_FILE, PUBLIC_KEY_FILE, X25519_KEY_FILE};
use qshield::crypto::PublicIdentity;
use qshield::kme::tls;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

static DIR: LazyLock<tempfile::TempDir> =
    LazyLock::new(|| tempfile::tempdir().expect("a scratch directory"));

const FILES: [&str; 5] = [
    X25519_KEY_FILE,
    MLKEM768_KEY_FILE,
    PUBLIC_KEY_FILE,
    "cert.pem",
    "key.pem",
];

fn write(path: &Path, bytes: Option<&[u8]>) {
    let _ = std::fs::remove_file(path);
    if let Some(bytes) = bytes {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .expect("a scratch file");
        f.write_all(bytes).expect("scratch write");
    }
}

fn names_a_file(message: &str, dir: &Path) {
    assert!(
        message.contains(&dir.display().to_string()),
        "a refusal that names no file: {message}"
    );
}

fuzz_target!(|data: &[u8]| {
    let dir = DIR.path();
    let parts = qshield_fuzz::frames::split(data);
    let path = |name: &str| -> PathBuf { dir.join(name) };
    for (i, name) in FILES.iter().enumerate() {
        write(&path(name), parts.get(i).copied());
    }

    let public_file = identity_files::read_public_file(&path(PUBLIC_KEY_FILE));
    match &public_file {
        Ok(p) => assert_eq!(&PublicIdentity::from_base64(&p.to_base64()).unwrap(), p),
        Err(e) => names_a_file(&e.to_string(), dir),
    }
    match identity_files::read_identity(dir) {
        Ok(id) => {
            if let Ok(p) = &public_file {
                assert_eq!(
                    &id.public(),
                    p,
                    "read_identity accepted a mismatched public.key"
                );
            }
            let public = identity_files::read_public(dir).expect("the same files load again");
            assert_eq!(public, id.public());
        }
        Err(e) => names_a_file(&e.to_string(), dir),
    }

    let (cert, key) = (path("cert.pem"), path("key.pem"));
    match tls::read_certs(&cert) {
        Ok(certs) => {
            assert!(!certs.is_empty());
            let id = tls::common_name(&certs[0]).unwrap_or_default();
            if let Err(e) = tls::server_config(&id, &cert, &cert, &key) {
                assert!(!e.to_string().is_empty());
            }
        }
        Err(e) => names_a_file(&e.to_string(), dir),
    }
});
