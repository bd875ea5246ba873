//! Shared by the KME tests: a PKI in a tempdir, KME configs, in-process KMEs on
//! 127.0.0.1, and SAE clients presenting their certificates.
#![allow(dead_code)]

use qshield::kme::{self, KmeHandle};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// A CA with certificates for KMEs (reachable at 127.0.0.1) and SAEs, in a tempdir.
pub struct Pki {
    pub dir: tempfile::TempDir,
}

impl Pki {
    pub fn new(ca: &str, kmes: &[&str], saes: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let plan = qshield::pki::PkiPlan {
            out: dir.path().to_path_buf(),
            ca: ca.into(),
            kmes: kmes
                .iter()
                .map(|k| format!("{k}=127.0.0.1,localhost").parse().unwrap())
                .collect(),
            saes: saes.iter().map(|s| s.parse().unwrap()).collect(),
        };
        qshield::pki::init(&plan).unwrap();
        Self { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// An HTTPS client presenting `name`'s certificate (or none), trusting this CA.
    pub fn client(&self, name: Option<&str>) -> reqwest::Client {
        let ca =
            reqwest::Certificate::from_pem(&std::fs::read(self.path("ca.pem")).unwrap()).unwrap();
        let mut b = reqwest::Client::builder()
            .tls_backend_rustls()
            .tls_certs_only([ca])
            .timeout(std::time::Duration::from_secs(20));
        if let Some(name) = name {
            b = b.identity(self.identity(name));
        }
        b.build().unwrap()
    }

    pub fn identity(&self, name: &str) -> reqwest::Identity {
        let mut pem = std::fs::read(self.path(&format!("{name}.pem"))).unwrap();
        pem.extend(std::fs::read(self.path(&format!("{name}.key"))).unwrap());
        reqwest::Identity::from_pem(&pem).unwrap()
    }
}

/// One link in a KME config.
pub struct Link<'a> {
    pub peer: &'a str,
    pub port: u16,
    pub leader: bool,
    pub rate: u64,
    pub pool_max: u64,
}

/// A KME to configure: `id` on `port` with local `saes`, remote SAEs (id, route) and links.
pub struct Spec<'a> {
    pub id: &'a str,
    pub port: u16,
    pub extra_kme: &'a str,
    pub saes: &'a [&'a str],
    pub remote: &'a [(&'a str, &'a [&'a str])],
    pub links: &'a [Link<'a>],
}

/// The TOML of a KME, with one `[[sae_pair]]` (both ways) for every two SAEs it knows.
pub fn config_text(pki: &Pki, data: &Path, spec: &Spec<'_>) -> String {
    let mut known: Vec<&str> = spec.saes.to_vec();
    known.extend(spec.remote.iter().map(|(s, _)| *s));
    let mut t = config_text_bare(pki, data, spec);
    for (i, m) in known.iter().enumerate() {
        for s in &known[i + 1..] {
            t += &pair_text(m, s, true, "");
        }
    }
    t
}

/// One `[[sae_pair]]` table; `extra` holds more of its fields (`rate = "2/s"`).
pub fn pair_text(master: &str, slave: &str, both_ways: bool, extra: &str) -> String {
    format!(
        "[[sae_pair]]\nmaster = \"{master}\"\nslave = \"{slave}\"\nboth_ways = {both_ways}\n{extra}\n"
    )
}

/// The TOML of a KME without any `[[sae_pair]]` (append them).
pub fn config_text_bare(pki: &Pki, data: &Path, spec: &Spec<'_>) -> String {
    let Spec {
        id,
        port,
        extra_kme,
        saes,
        remote,
        links,
    } = *spec;
    let p = |f: &str| pki.path(f).display().to_string();
    let mut t = format!(
        "[kme]\nid = \"{id}\"\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\nca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\nstatus_log_seconds = 0\n{extra_kme}\n",
        data.display(),
        p("ca.pem"),
        p(&format!("{id}.pem")),
        p(&format!("{id}.key")),
    );
    for s in saes {
        t += &format!("[[sae]]\nid = \"{s}\"\n");
    }
    for (s, route) in remote.iter() {
        let r: Vec<String> = route.iter().map(|h| format!("\"{h}\"")).collect();
        t += &format!("[[remote_sae]]\nid = \"{s}\"\nroute = [{}]\n", r.join(", "));
    }
    for l in links {
        let role = if l.leader { "leader" } else { "follower" };
        t += &format!(
            "[[link]]\npeer = \"{}\"\nurl = \"https://127.0.0.1:{}\"\nrole = \"{role}\"\nsource = \"random\"\nrate_bits_per_second = {}\npool_max_bits = {}\n",
            l.peer, l.port, l.rate, l.pool_max
        );
    }
    t
}

/// A temporary directory only its owner may access: the KME refuses a `data_dir` that group
/// or others may enter, and `tempfile::tempdir()` follows the umask (0755 under 022).
pub fn private_tempdir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    tempfile::Builder::new()
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir()
        .unwrap()
}

/// `qshield kme --config CONFIG` as a child process (the real binary, so a test can kill -9
/// it), its log appended to `log`.
pub fn spawn_kme(config: &Path, log: &Path) -> std::process::Child {
    let err = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    std::process::Command::new(env!("CARGO_BIN_EXE_qshield"))
        .args(["kme", "--config"])
        .arg(config)
        .stdout(std::process::Stdio::null())
        .stderr(err)
        .spawn()
        .unwrap()
}

/// Waits (up to 20 s) until the KME at `base` answers sae-0's status request for sae-1.
pub async fn wait_ready(pki: &Pki, base: &str) {
    let c = pki.client(Some("sae-0"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while c.get(format!("{base}/sae-1/status")).send().await.is_err() {
        assert!(std::time::Instant::now() < deadline, "KME did not come up");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A TCP connection to `to` from `from` (an address of the loopback net, any port).
pub async fn connect_from(from: std::net::IpAddr, to: SocketAddr) -> tokio::net::TcpStream {
    let s = tokio::net::TcpSocket::new_v4().unwrap();
    s.bind(SocketAddr::new(from, 0)).unwrap();
    s.connect(to).await.unwrap()
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts a KME in-process from config text.
pub async fn start(text: &str, dir: &Path) -> KmeHandle {
    let path = dir.join("kme.toml");
    std::fs::write(&path, text).unwrap();
    let cfg = kme::config::load(&path).unwrap();
    kme::start(cfg).await.unwrap()
}

pub fn base(addr: SocketAddr) -> String {
    format!("https://127.0.0.1:{}/api/v1/keys", addr.port())
}

/// A raw TLS connector presenting `name`'s certificate and trusting this PKI's CA (for
/// tests that drive a connection byte by byte).
pub fn tls_connector(pki: &Pki, name: &str) -> tokio_rustls::TlsConnector {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(pki.path("ca.pem")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let certs: Vec<_> = CertificateDer::pem_file_iter(pki.path(&format!("{name}.pem")))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(pki.path(&format!("{name}.key"))).unwrap();
    let cfg = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .unwrap();
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg))
}

/// Waits until the peer closes `stream` (EOF or an error), up to `within`; the time it
/// took, or `None` if it was still open.
pub async fn closed_within<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
    within: std::time::Duration,
) -> Option<std::time::Duration> {
    use tokio::io::AsyncReadExt;
    let t0 = std::time::Instant::now();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(t0.elapsed()),
            Ok(Ok(_)) => continue,
        }
    }
}
