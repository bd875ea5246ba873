//! Shared by the KME tests: a PKI in a tempdir, KME configs, in-process KMEs on
//! 127.0.0.1 (one, or a network of them), SAE clients presenting their certificates, and
//! the ETSI 014 requests and answer checks the tests make again and again.
#![allow(dead_code)]

use qshield::kme::{self, KmeHandle};
use qshield::qkd::etsi014::{ErrorBody, KeyContainer};
use reqwest::StatusCode;
use std::collections::HashMap;
use std::fmt::Debug;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

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

/// A link to KME `names[i]` on `ports[i]`: a random source at 4 Mbit/s, a pool of
/// `pool_max` bits.
pub fn link_to<'a>(
    names: &[&'a str],
    ports: &[u16],
    i: usize,
    leader: bool,
    pool_max: u64,
) -> Link<'a> {
    Link {
        peer: names[i],
        port: ports[i],
        leader,
        rate: 4_000_000,
        pool_max,
    }
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

impl<'a> Spec<'a> {
    /// KME `id` on `port` serving only its local `saes`: no remote SAEs, no links.
    pub fn local(id: &'a str, port: u16, saes: &'a [&'a str]) -> Self {
        Self {
            id,
            port,
            extra_kme: "",
            saes,
            remote: &[],
            links: &[],
        }
    }
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
    let mut t = kme_table(pki, data, id, port) + extra_kme + "\n";
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

/// The `[kme]` table of KME `id` on `port` with its store in `data` (status log off); append
/// more of its fields, then the other tables.
pub fn kme_table(pki: &Pki, data: &Path, id: &str, port: u16) -> String {
    let p = |f: &str| pki.path(f).display().to_string();
    format!(
        "[kme]\nid = \"{id}\"\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\nca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\nstatus_log_seconds = 0\n",
        data.display(),
        p("ca.pem"),
        p(&format!("{id}.pem")),
        p(&format!("{id}.key")),
    )
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
pub fn spawn_kme(config: &Path, log: &Path) -> KmeProcess {
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
        .map(KmeProcess)
        .unwrap()
}

/// A KME child process (the real binary), killed with SIGKILL by its PID and reaped when
/// dropped: a test that fails half-way leaves no KME running (one did, after a failed
/// kill -9 cycle). Derefs to the [`std::process::Child`]; killing one already reaped sends
/// nothing (std refuses to signal a PID it has waited for).
pub struct KmeProcess(std::process::Child);

impl std::ops::Deref for KmeProcess {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for KmeProcess {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for KmeProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
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

/// A free port on 127.0.0.1 for both TCP and UDP (bound, then released), chosen at random
/// below the kernel's ephemeral range. A port the kernel picks for `bind(0)` comes from that
/// range, where any test running in parallel may be handed it for an outgoing connection
/// before the KME under test binds it ("Address already in use", seen in
/// `kme_quantum_port`); below the range only another explicit bind can take it. A port is
/// handed out once per test process (cargo runs test binaries one at a time).
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    const LOW: u16 = 10_000;
    for attempt in 0u64.. {
        let port = if ephemeral_low > LOW + 1000 && attempt < 1000 {
            // RandomState is seeded at random per process and per call
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(attempt);
            LOW + (h.finish() % u64::from(ephemeral_low - LOW)) as u16
        } else {
            0
        };
        let Ok(tcp) = std::net::TcpListener::bind(("127.0.0.1", port)) else {
            continue;
        };
        let port = tcp.local_addr().unwrap().port();
        if !handed_out.contains(&port) && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            handed_out.push(port);
            return port;
        }
    }
    unreachable!("the loop returns a port")
}

/// Writes config `text` to `dir/kme.toml` and loads it.
pub fn load_config(text: &str, dir: &Path) -> kme::config::KmeConfig {
    let path = dir.join("kme.toml");
    std::fs::write(&path, text).unwrap();
    kme::config::load(&path).unwrap()
}

/// Starts a KME in-process from config text.
pub async fn start(text: &str, dir: &Path) -> KmeHandle {
    kme::start(load_config(text, dir)).await.unwrap()
}

/// Starts KME `spec` ([`config_text`]) in-process, its store in `dir/db`.
pub async fn start_spec(pki: &Pki, dir: &Path, spec: &Spec<'_>) -> KmeHandle {
    start(&config_text(pki, &dir.join("db"), spec), dir).await
}

/// Writes the config of KME `spec` ([`config_text`]) to `dir/kme.toml`, its store in
/// `dir/db`; the file's path (for a KME run as a process).
pub fn write_config(pki: &Pki, dir: &Path, spec: &Spec<'_>) -> PathBuf {
    let path = dir.join("kme.toml");
    std::fs::write(&path, config_text(pki, &dir.join("db"), spec)).unwrap();
    path
}

/// Starts a KME in-process from config text, listening on 127.0.0.1:`port` (bound here).
pub async fn start_on(text: &str, dir: &Path, port: u16) -> KmeHandle {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    kme::start_on(load_config(text, dir), listener)
        .await
        .unwrap()
}

/// The ETSI 014 key API's base URL of the KME at `addr`, `https://127.0.0.1:PORT/api/v1/keys`.
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

/// One in-process KME, the PKI its callers' certificates come from, and its data directory.
pub struct KmeEnv {
    pub pki: Pki,
    pub data: tempfile::TempDir,
    pub kme: KmeHandle,
    /// The ETSI 014 key API's base URL, `https://127.0.0.1:PORT/api/v1/keys`.
    pub url: String,
}

impl KmeEnv {
    /// Starts a KME in-process from config `text` (its file written into `data`).
    pub async fn start(pki: Pki, data: tempfile::TempDir, text: &str) -> Self {
        let kme = start(text, data.path()).await;
        let url = base(kme.local_addr());
        Self {
            pki,
            data,
            kme,
            url,
        }
    }

    /// `https://127.0.0.1:PORT`, the root of every route (KME-to-KME ones too).
    pub fn root(&self) -> String {
        format!("https://127.0.0.1:{}", self.kme.local_addr().port())
    }

    /// `master` POSTs enc_keys for `slave`: `number` keys of `size` bits.
    pub async fn enc(
        &self,
        master: &str,
        slave: &str,
        number: u32,
        size: u32,
    ) -> reqwest::Response {
        let url = format!("{}/{slave}/enc_keys", self.url);
        let client = self.pki.client(Some(master));
        post_enc_keys(&client, &url, number.into(), size.into()).await
    }

    /// `slave` GETs dec_keys for key `id` of `master`.
    pub async fn dec(&self, slave: &str, master: &str, id: &str) -> reqwest::Response {
        self.pki
            .client(Some(slave))
            .get(format!("{}/{master}/dec_keys?key_ID={id}", self.url))
            .send()
            .await
            .unwrap()
    }

    /// `caller` GETs the status of its pair with `slave` (as [`Status`] or as JSON).
    ///
    /// [`Status`]: qshield::qkd::etsi014::Status
    pub async fn status<T: serde::de::DeserializeOwned>(&self, caller: &str, slave: &str) -> T {
        self.pki
            .client(Some(caller))
            .get(format!("{}/{slave}/status", self.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

/// `client` POSTs enc_keys to `url` (`…/keys/{slave}/enc_keys`): `number` keys of `size`
/// bits.
pub async fn post_enc_keys(
    client: &reqwest::Client,
    url: &str,
    number: u64,
    size: u64,
) -> reqwest::Response {
    client
        .post(url)
        .json(&serde_json::json!({"number": number, "size": size}))
        .send()
        .await
        .unwrap()
}

/// `client` POSTs dec_keys to `url` (`…/keys/{master}/dec_keys`) for every key of `sent`;
/// the keys of the answer (asserting it is 200).
pub async fn dec_all(client: &reqwest::Client, url: &str, sent: &KeyContainer) -> KeyContainer {
    let body = key_ids_body(sent.keys.iter().map(|k| &k.key_ID));
    keys(client.post(url).json(&body).send().await.unwrap()).await
}

/// The body of a dec_keys POST for `ids`: `{"key_IDs": [{"key_ID": ID}, …]}`.
pub fn key_ids_body<'a>(ids: impl IntoIterator<Item = &'a String>) -> serde_json::Value {
    let ids: Vec<_> = ids
        .into_iter()
        .map(|id| serde_json::json!({"key_ID": id}))
        .collect();
    serde_json::json!({"key_IDs": ids})
}

/// The name of numbered SAE `i`, `sae-{i}`.
pub fn sae_name(i: usize) -> String {
    format!("sae-{i}")
}

/// Records every key of `k` in `log` (key ID → key), asserting with `what` that no key ID
/// was recorded before.
pub fn record_once(log: &mut HashMap<String, String>, k: &KeyContainer, what: &str) {
    for key in &k.keys {
        let old = log.insert(key.key_ID.clone(), key.key.clone());
        assert!(old.is_none(), "{what}: {}", key.key_ID);
    }
}

/// The keys of a 200 answer (asserting it is 200).
pub async fn keys(resp: reqwest::Response) -> KeyContainer {
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

/// The error body of an answer that must have status `code`.
pub async fn refused(resp: reqwest::Response, code: StatusCode) -> ErrorBody {
    assert_eq!(resp.status(), code);
    resp.json().await.unwrap()
}

/// Two KMEs joined by one link: kme-a with SAE sae-a and kme-b with SAE sae-b, each with
/// the other's SAE as a remote one behind the link.
pub struct LinkedPair {
    pub pki: Pki,
    pub dirs: Vec<tempfile::TempDir>,
    pub a: KmeHandle,
    pub b: KmeHandle,
}

impl LinkedPair {
    /// Starts kme-b (the follower, `extra_b` in its `[kme]` table), then kme-a leading a
    /// random link of 4 Mbit/s and pools of `pool_max` bits. `pki` certifies kme-a, kme-b,
    /// sae-a and sae-b.
    pub async fn start_random(pki: Pki, pool_max: u64, extra_b: &str) -> Self {
        let (pa, pb) = (free_port(), free_port());
        let (da, db) = (private_tempdir(), private_tempdir());
        let link = |peer, port, leader| Link {
            peer,
            port,
            leader,
            rate: 4_000_000,
            pool_max,
        };
        let spec_a = Spec {
            id: "kme-a",
            port: pa,
            extra_kme: "",
            saes: &["sae-a"],
            remote: &[("sae-b", &["kme-b"])],
            links: &[link("kme-b", pb, true)],
        };
        let spec_b = Spec {
            id: "kme-b",
            port: pb,
            extra_kme: extra_b,
            saes: &["sae-b"],
            remote: &[("sae-a", &["kme-a"])],
            links: &[link("kme-a", pa, false)],
        };
        let b = start_spec(&pki, db.path(), &spec_b).await;
        let a = start_spec(&pki, da.path(), &spec_a).await;
        Self {
            pki,
            dirs: vec![da, db],
            a,
            b,
        }
    }
}

/// KMEs running in-process, one data directory each, and the PKI they share.
pub struct KmeNet {
    pub pki: Pki,
    pub dirs: Vec<tempfile::TempDir>,
    pub kmes: Vec<KmeHandle>,
}

/// A KME's links, local SAEs and remote SAEs with their routes.
pub type KmeSpec<'a> = (Vec<Link<'a>>, &'a [&'a str], Vec<(&'a str, &'a [&'a str])>);

impl KmeNet {
    /// Starts KME `names[i]` on `ports[i]` with `specs[i]`, in order; `text` makes each
    /// one's config from the PKI, its store path and its [`Spec`].
    pub async fn start(
        pki: Pki,
        names: &[&str],
        ports: &[u16],
        specs: &[KmeSpec<'_>],
        text: impl Fn(&Pki, &Path, &Spec<'_>) -> String,
    ) -> Self {
        let mut dirs = Vec::new();
        let mut kmes = Vec::new();
        for (i, (links, saes, remote)) in specs.iter().enumerate() {
            let dir = private_tempdir();
            let spec = Spec {
                id: names[i],
                port: ports[i],
                extra_kme: "",
                saes,
                remote,
                links,
            };
            let text = text(&pki, &dir.path().join("db"), &spec);
            kmes.push(start(&text, dir.path()).await);
            dirs.push(dir);
        }
        Self { pki, dirs, kmes }
    }
}

/// Waits (up to 20 s) until the link pool `levels` are `filled` and stay the same for
/// 300 ms; those levels.
pub async fn settled_levels<L: PartialEq + Debug>(
    levels: impl AsyncFn() -> L,
    filled: impl Fn(&L) -> bool,
) -> L {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let l = levels().await;
        if filled(&l) {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if levels().await == l {
                return l;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "links never filled: {l:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One link of a [`Mesh`]: KMEs `leader` and `follower` (indices), a random source at
/// `rate` bits/s, pools of `pool_max` bits.
#[derive(Clone, Copy, Debug)]
pub struct MeshLink {
    pub leader: usize,
    pub follower: usize,
    pub rate: u64,
    pub pool_max: u64,
}

/// KMEs `kme-0`, `kme-1`, … running in-process on the links given, routes computed: KME
/// `i` hosts the SAEs `saes[i]`; every KME knows every SAE (`[[remote_sae]] kme = …`) and
/// relays every pair of them, both ways. `relay` gives the `[[remote_sae]]` relay lines of
/// some SAEs (by SAE ID); the others are relayed over one path.
pub struct Mesh {
    pub pki: Pki,
    pub dirs: Vec<tempfile::TempDir>,
    kmes: Vec<Option<KmeHandle>>,
    pub names: Vec<String>,
    /// The config file of each KME (written for every KME).
    pub configs: Vec<PathBuf>,
    /// KMEs stopped with [`Mesh::stop`].
    stopped: Vec<usize>,
    /// The API port of each KME.
    pub ports: Vec<u16>,
}

impl Mesh {
    pub async fn start(
        n: usize,
        links: &[MeshLink],
        saes: &[&[&str]],
        relay: &[(&str, &str)],
    ) -> Self {
        Self::start_but(n, links, saes, relay, &[]).await
    }

    /// As [`Mesh::start`], but the KMEs `elsewhere` are not started in this process (their
    /// configs are written; run them with [`spawn_kme`]).
    pub async fn start_but(
        n: usize,
        links: &[MeshLink],
        saes: &[&[&str]],
        relay: &[(&str, &str)],
        elsewhere: &[usize],
    ) -> Self {
        let names: Vec<String> = (0..n).map(|i| format!("kme-{i}")).collect();
        let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let all_saes: Vec<&str> = saes.iter().flat_map(|s| s.iter().copied()).collect();
        let pki = Pki::new("mesh-ca", &name_refs, &all_saes);
        let ports: Vec<u16> = names.iter().map(|_| free_port()).collect();
        let mut dirs = Vec::new();
        let mut kmes = Vec::new();
        let mut configs = Vec::new();
        for i in 0..n {
            let own: Vec<Link<'_>> = links
                .iter()
                .filter(|l| l.leader == i || l.follower == i)
                .map(|l| {
                    let (other, leader) = if l.leader == i {
                        (l.follower, true)
                    } else {
                        (l.leader, false)
                    };
                    Link {
                        peer: name_refs[other],
                        port: ports[other],
                        leader,
                        rate: l.rate,
                        pool_max: l.pool_max,
                    }
                })
                .collect();
            let dir = private_tempdir();
            let spec = Spec {
                id: name_refs[i],
                port: ports[i],
                extra_kme: "",
                saes: saes[i],
                remote: &[],
                links: &own,
            };
            let mut text = config_text_bare(&pki, &dir.path().join("db"), &spec);
            for (j, hosted) in saes.iter().enumerate() {
                if j == i {
                    continue;
                }
                for s in hosted.iter() {
                    let lines = relay.iter().find(|(id, _)| id == s).map_or("", |r| r.1);
                    text += &format!(
                        "[[remote_sae]]\nid = \"{s}\"\nkme = \"{}\"\n{lines}\n",
                        name_refs[j]
                    );
                }
            }
            for (a, m) in all_saes.iter().enumerate() {
                for s in &all_saes[a + 1..] {
                    text += &pair_text(m, s, true, "");
                }
            }
            let config = dir.path().join("kme.toml");
            std::fs::write(&config, &text).unwrap();
            configs.push(config);
            if elsewhere.contains(&i) {
                kmes.push(None);
            } else {
                kmes.push(Some(start(&text, dir.path()).await));
            }
            dirs.push(dir);
        }
        Self {
            pki,
            dirs,
            kmes,
            names,
            configs,
            stopped: Vec::new(),
            ports,
        }
    }

    /// KME `i` (panics if it was stopped).
    pub fn kme(&self, i: usize) -> &KmeHandle {
        self.kmes[i].as_ref().expect("a running KME")
    }

    /// Stops KME `i` (its index stays taken).
    pub async fn stop(&mut self, i: usize) {
        if let Some(k) = self.kmes[i].take() {
            k.shutdown().await;
        }
        self.stopped.push(i);
    }

    /// The ETSI 014 base URL of KME `i` (in this process or not).
    pub fn base(&self, i: usize) -> String {
        base(SocketAddr::from(([127, 0, 0, 1], self.ports[i])))
    }

    /// Waits (up to `within`) until every KME of this process holds the adverts of all the
    /// KMEs not stopped, each link in them with pad both ways; the time it took.
    pub async fn converged(&self, within: Duration) -> Duration {
        let t0 = std::time::Instant::now();
        let running = self.names.len() - self.stopped.len();
        loop {
            let mut all = true;
            for k in self.kmes.iter().flatten() {
                let st = k.status().await;
                let filled = st.routing.adverts.iter().all(|a| {
                    a.links
                        .iter()
                        .all(|l| l.send_bits > 0 && l.receive_bits > 0)
                });
                if st.routing.adverts.len() != running || !filled {
                    all = false;
                    break;
                }
            }
            if all {
                return t0.elapsed();
            }
            assert!(
                t0.elapsed() < within,
                "adverts did not spread within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `enc_keys` at KME `at` by `master` for `slave`: `number` keys of 256 bits.
    pub async fn enc(
        &self,
        at: usize,
        master: &str,
        slave: &str,
        number: u64,
    ) -> reqwest::Response {
        let url = format!("{}/{slave}/enc_keys", self.base(at));
        post_enc_keys(&self.pki.client(Some(master)), &url, number, 256).await
    }

    /// `dec_keys` at KME `at` by `slave` for the keys of `sent` from `master`.
    pub async fn dec(
        &self,
        at: usize,
        slave: &str,
        master: &str,
        sent: &KeyContainer,
    ) -> KeyContainer {
        let url = format!("{}/{master}/dec_keys", self.base(at));
        dec_all(&self.pki.client(Some(slave)), &url, sent).await
    }

    /// The paths of the relays KME `at` began for keys `ids` (that it still remembers).
    pub async fn paths_of(&self, at: usize, ids: &[String]) -> Vec<Vec<String>> {
        let st = self.kme(at).status().await;
        st.routing
            .relays
            .iter()
            .filter(|r| r.path[0] == self.names[at] && r.key_ids.iter().any(|k| ids.contains(k)))
            .map(|r| r.path.clone())
            .collect()
    }

    pub async fn shutdown(self) {
        for k in self.kmes.into_iter().flatten() {
            k.shutdown().await;
        }
    }
}
