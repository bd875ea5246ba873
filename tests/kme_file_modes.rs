//! Secrets on disk are the owner's alone (issue 9 item 1): the KME's store directory is
//! created 0700 and `kme.redb` 0600 whatever the umask, an existing store that group or
//! others may access (or that another user owns) is refused, naming the path, and so is a
//! TLS private key of the KME or of the SAE client (`qkd::client`) that is not 0600.

mod support;

use qshield::config::KmeClientConfig;
use qshield::qkd::client::Etsi014Client;
use std::fs;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::kme::{Pki, Spec, config_text, free_port, load_config};

/// A user ID that owns nothing here (`nobody`).
const OTHER_UID: u32 = 65534;

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// The TOML of KME `kme-a` serving `sae-a`, `sae-b`, its store in `data`.
fn kme_text(pki: &Pki, data: &Path, port: u16) -> String {
    config_text(pki, data, &Spec::local("kme-a", port, &["sae-a", "sae-b"]))
}

/// Starts KME `kme-a` in-process with its store in `data`; the error text if it refuses.
fn start_error(pki: &Pki, data: &Path) -> Option<String> {
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg = load_config(&kme_text(pki, data, 0), cfg_dir.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        match qshield::kme::start(cfg).await {
            Ok(handle) => {
                handle.shutdown().await;
                None
            }
            Err(e) => Some(e.to_string()),
        }
    })
}

/// `qshield kme` run under `umask`, with its store in a directory it creates: 0700 and 0600.
#[test]
fn the_store_is_created_private_whatever_the_umask() {
    for umask in ["022", "000"] {
        let pki = Pki::new("test-ca", &["kme-a"], &["sae-a", "sae-b"]);
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("var").join("kme");
        let port = free_port();
        let cfg = tmp.path().join("kme.toml");
        fs::write(&cfg, kme_text(&pki, &data, port)).unwrap();
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("umask {umask}; exec \"$0\" kme --config \"$1\""))
            .arg(env!("CARGO_BIN_EXE_qshield"))
            .arg(&cfg)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        // The port is bound before the store is opened: wait for both.
        let store = data.join("kme.redb");
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() || !store.exists() {
            assert!(
                child.try_wait().unwrap().is_none(),
                "umask {umask}: KME exited"
            );
            if Instant::now() > deadline {
                child.kill().unwrap();
                panic!("umask {umask}: KME did not listen");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let modes = (mode(&data), mode(&store));
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(modes, (0o700, 0o600), "umask {umask}: (dir, kme.redb)");
    }
}

#[test]
fn a_store_others_may_read_is_refused_naming_it() {
    let pki = Pki::new("test-ca", &["kme-a"], &["sae-a", "sae-b"]);
    // A directory group or others may enter.
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("kme");
    fs::create_dir(&data).unwrap();
    chmod(&data, 0o755);
    let e = start_error(&pki, &data).expect("a 0755 store directory is refused");
    assert!(
        e.contains(&data.display().to_string()) && e.contains("group or others"),
        "{e}"
    );
    assert!(!data.join("kme.redb").exists(), "nothing created in it");
    // A store file group or others may read.
    chmod(&data, 0o700);
    assert_eq!(start_error(&pki, &data), None, "a private store opens");
    let file: PathBuf = data.join("kme.redb");
    chmod(&file, 0o644);
    let e = start_error(&pki, file.parent().unwrap()).expect("a 0644 kme.redb is refused");
    assert!(
        e.contains(&file.display().to_string()) && e.contains("group or others"),
        "{e}"
    );
    // Owned by another user (mode 0600 / 0700 alike).
    chmod(&file, 0o600);
    chown(&file, Some(OTHER_UID), None).unwrap();
    let e = start_error(&pki, &data).expect("a kme.redb of another user is refused");
    assert!(
        e.contains(&file.display().to_string()) && e.contains("owned by"),
        "{e}"
    );
    chown(&file, Some(0), None).unwrap();
    chown(&data, Some(OTHER_UID), None).unwrap();
    let e = start_error(&pki, &data).expect("a store directory of another user is refused");
    assert!(
        e.contains(&data.display().to_string()) && e.contains("owned by"),
        "{e}"
    );
}

#[test]
fn the_kme_refuses_a_tls_key_others_may_read() {
    let pki = Pki::new("test-ca", &["kme-a"], &["sae-a", "sae-b"]);
    let key = pki.path("kme-a.key");
    assert_eq!(mode(&key), 0o600, "pki init writes keys 0600");
    for bad in [0o644, 0o640, 0o604] {
        chmod(&key, bad);
        let data = tempfile::tempdir().unwrap();
        let e = start_error(&pki, data.path()).expect("a readable TLS key is refused");
        assert!(
            e.contains(&key.display().to_string()) && e.contains("group or others"),
            "{bad:o}: {e}"
        );
    }
    chmod(&key, 0o600);
    chown(&key, Some(OTHER_UID), None).unwrap();
    let data = tempfile::tempdir().unwrap();
    let e = start_error(&pki, data.path()).expect("a TLS key of another user is refused");
    assert!(
        e.contains(&key.display().to_string()) && e.contains("owned by"),
        "{e}"
    );
}

#[test]
fn the_sae_client_refuses_a_tls_key_others_may_read() {
    let pki = Pki::new("test-ca", &["kme-a"], &["sae-a"]);
    let key = pki.path("sae-a.key");
    let cfg = KmeClientConfig {
        url: "https://127.0.0.1:1".into(),
        sae_id: "sae-a".into(),
        peer_sae_id: None,
        ca_file: pki.path("ca.pem"),
        cert_file: pki.path("sae-a.pem"),
        key_file: key.clone(),
        key_size_bits: 256,
    };
    Etsi014Client::new(&cfg).expect("a 0600 key is accepted");
    chmod(&key, 0o644);
    let e = Etsi014Client::new(&cfg).expect_err("a 0644 key is refused");
    let e = e.to_string();
    assert!(
        e.contains(&key.display().to_string()) && e.contains("group or others"),
        "{e}"
    );
    chmod(&key, 0o600);
    chown(&key, Some(OTHER_UID), None).unwrap();
    let e = Etsi014Client::new(&cfg).expect_err("a key of another user is refused");
    let e = e.to_string();
    assert!(
        e.contains(&key.display().to_string()) && e.contains("owned by"),
        "{e}"
    );
}
