//! The KME's accept loop under connections that never authenticate: idle TCP connections
//! under a file-descriptor limit cost no CPU and lock no SAE out, a TLS handshake that
//! never completes and an authenticated connection left idle are closed after their
//! timeouts, and connections over the caps (per source address, in total) are closed at
//! once, before TLS.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::kme::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The descriptor limit the KME runs under.
const NOFILE_LIMIT: u32 = 256;
/// Idle TCP connections held open by the test: more than the KME has descriptors.
const IDLE_CONNECTIONS: usize = 300;
/// How long the KME's CPU use is measured.
const CPU_WINDOW: Duration = Duration::from_secs(3);
/// Most CPU the KME may use meanwhile, in percent of one core.
const CPU_LIMIT_PERCENT: f64 = 20.0;
/// How long an SAE request may take meanwhile.
const SAE_DEADLINE: Duration = Duration::from_secs(5);

/// The KME binary under a descriptor limit of [`NOFILE_LIMIT`], started with `inherited`
/// descriptors already open (taken by something else than the KME's connections).
fn spawn_limited(config: &Path, log: &Path, inherited: u32) -> Child {
    let err = std::fs::File::create(log).unwrap();
    let last = 9 + inherited;
    Command::new("bash")
        .arg("-c")
        .arg(format!(
            "ulimit -n {NOFILE_LIMIT} && for fd in $(seq 10 {last}); do eval \"exec $fd</dev/null\"; done && exec \"$0\" kme --config \"$1\""
        ))
        .arg(env!("CARGO_BIN_EXE_qshield"))
        .arg(config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .unwrap()
}

/// utime + stime of process `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = stat.rsplit_once(')').unwrap().1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of proc(5); field 3 (the state) is the first after the name.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn clock_ticks_per_second() -> f64 {
    let out = Command::new("getconf").arg("CLK_TCK").output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// enc_keys for sae-0 → sae-1, then dec_keys for sae-1: the same key.
async fn sae_gets_a_key(pki: &Pki, base: &str) {
    let (master, slave) = (pki.client(Some("sae-0")), pki.client(Some("sae-1")));
    let enc = async {
        let r = master.get(format!("{base}/sae-1/enc_keys")).send().await;
        keys(r.unwrap()).await
    };
    let got = tokio::time::timeout(SAE_DEADLINE, enc)
        .await
        .expect("enc_keys answered in time");
    let id = &got.keys[0].key_ID;
    let dec = async {
        let r = slave
            .get(format!("{base}/sae-0/dec_keys?key_ID={id}"))
            .send()
            .await;
        keys(r.unwrap()).await
    };
    let fetched = tokio::time::timeout(SAE_DEADLINE, dec)
        .await
        .expect("dec_keys answered in time");
    assert_eq!(fetched.keys[0].key, got.keys[0].key);
}

fn spec(port: u16, extra_kme: &str) -> Spec<'_> {
    Spec {
        extra_kme,
        ..Spec::local("kme-a", port, &["sae-0", "sae-1"])
    }
}

/// kme-a serving sae-0 and sae-1 in-process, `extra_kme` in its `[kme]` table; its PKI and
/// directory come along.
async fn accept_kme(extra_kme: &str) -> (Pki, tempfile::TempDir, qshield::kme::KmeHandle) {
    let pki = Pki::new("accept-ca", &["kme-a"], &["sae-0", "sae-1"]);
    let dir = tempfile::tempdir().unwrap();
    let kme = start_spec(&pki, dir.path(), &spec(free_port(), extra_kme)).await;
    (pki, dir, kme)
}

/// Asserts that the KME closes `stream` within `within`, and not before `at_least`.
async fn assert_closed_between<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
    at_least: Duration,
    within: Duration,
) {
    let took = closed_within(stream, within)
        .await
        .expect("closed by the KME");
    assert!(took >= at_least, "closed after {took:?}");
}

/// A TLS connector presenting sae-0's certificate, and the KME's server name.
fn sae_0_tls(
    pki: &Pki,
) -> (
    tokio_rustls::TlsConnector,
    rustls_pki_types::ServerName<'static>,
) {
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    (tls_connector(pki, "sae-0"), name)
}

/// Holds [`IDLE_CONNECTIONS`] idle TCP connections to a KME under [`NOFILE_LIMIT`] that
/// starts with `inherited` descriptors taken; checks its CPU use and that an SAE still
/// gets a key. Returns the KME's log.
async fn idle_connections_under_a_descriptor_limit(inherited: u32) -> String {
    let pki = Pki::new("accept-ca", &["kme-a"], &["sae-0", "sae-1"]);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(&pki, dir.path(), &spec(port, ""));
    let log = dir.path().join("kme.log");
    let mut child = spawn_limited(&config, &log, inherited);
    let pid = child.id();
    let base = format!("https://127.0.0.1:{port}/api/v1/keys");
    wait_ready(&pki, &base).await;
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let nofile = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    assert!(
        nofile.split_whitespace().nth(3) == Some(&NOFILE_LIMIT.to_string()),
        "{nofile}"
    );

    let to: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut held = Vec::new();
    for _ in 0..IDLE_CONNECTIONS {
        held.push(connect_from([127, 0, 0, 1].into(), to).await);
    }
    let (t0, ticks0) = (Instant::now(), cpu_ticks(pid));
    tokio::time::sleep(CPU_WINDOW).await;
    let (elapsed, ticks) = (t0.elapsed(), cpu_ticks(pid) - ticks0);
    let percent = 100.0 * ticks as f64 / clock_ticks_per_second() / elapsed.as_secs_f64();
    println!("KME CPU with {IDLE_CONNECTIONS} idle connections: {percent:.1} % of a core");
    assert!(percent < CPU_LIMIT_PERCENT, "KME CPU {percent:.1} %");
    sae_gets_a_key(&pki, &base).await;
    child.kill().unwrap(); // this PID only
    child.wait().unwrap();
    drop(held);
    std::fs::read_to_string(&log).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_beyond_the_descriptor_limit_cost_no_cpu_and_lock_out_no_sae() {
    idle_connections_under_a_descriptor_limit(0).await;
}

/// The connection cap fits the descriptor limit, but here descriptors run out below it
/// (150 are taken before the KME starts): `accept` fails, and the loop backs off instead
/// of spinning, reports it once, and makes room by closing unauthenticated connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_failing_for_lack_of_descriptors_backs_off() {
    let log = idle_connections_under_a_descriptor_limit(150).await;
    let reports = log.lines().filter(|l| l.contains("accept failed")).count();
    assert!(
        log.contains("Too many open files") && reports == 1,
        "{reports} reports in:\n{log}"
    );
}

#[tokio::test]
async fn a_connection_that_never_completes_tls_is_closed_after_the_handshake_timeout() {
    let (_pki, _dir, kme) = accept_kme("").await;
    let mut tcp = connect_from([127, 0, 0, 1].into(), kme.local_addr()).await;
    // The default handshake timeout is 5 s.
    assert_closed_between(&mut tcp, Duration::from_secs(4), Duration::from_secs(8)).await;
    kme.shutdown().await;
}

#[tokio::test]
async fn an_authenticated_connection_left_idle_is_closed_after_the_idle_timeout() {
    let (pki, _dir, kme) = accept_kme("idle_timeout = \"1s\"").await;
    let (connector, name) = sae_0_tls(&pki);

    // After a request and its answer (HTTP/1.1 keep-alive).
    let tcp = TcpStream::connect(kme.local_addr()).await.unwrap();
    let mut tls = connector.connect(name.clone(), tcp).await.unwrap();
    let req = "GET /api/v1/keys/sae-1/status HTTP/1.1\r\nhost: kme-a\r\n\r\n";
    tls.write_all(req.as_bytes()).await.unwrap();
    let mut head = [0u8; 12];
    tls.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    assert_closed_between(&mut tls, Duration::from_millis(500), Duration::from_secs(5)).await;

    // Authenticated, but no request ever sent.
    let tcp = TcpStream::connect(kme.local_addr()).await.unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    assert_closed_between(&mut tls, Duration::from_millis(500), Duration::from_secs(5)).await;
    kme.shutdown().await;
}

#[tokio::test]
async fn headers_that_never_finish_are_cut_off_after_the_header_read_timeout() {
    // The idle timeout (60 s by default) is not what closes it.
    let (pki, _dir, kme) = accept_kme("header_read_timeout = \"1s\"").await;
    let (connector, name) = sae_0_tls(&pki);
    let tcp = TcpStream::connect(kme.local_addr()).await.unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    let partial = "GET /api/v1/keys/sae-1/status HTTP/1.1\r\nhost: kme-a\r\n";
    tls.write_all(partial.as_bytes()).await.unwrap();
    assert_closed_between(&mut tls, Duration::from_millis(500), Duration::from_secs(5)).await;
    kme.shutdown().await;
}

#[tokio::test]
async fn connections_over_the_caps_are_closed_at_once_or_displace_a_handshake() {
    let (pki, _dir, kme) = accept_kme("max_connections = 8\nmax_connections_per_source = 4").await;
    let to = kme.local_addr();
    let prompt = Duration::from_secs(2); // far below the 5 s handshake timeout
    let still_open = Duration::from_millis(200);

    // Per source, all authenticated: the 5th connection is closed at once, before TLS.
    let (connector, name) = sae_0_tls(&pki);
    let mut authenticated = Vec::new();
    for _ in 0..4 {
        let tcp = connect_from([127, 0, 0, 5].into(), to).await;
        authenticated.push(connector.connect(name.clone(), tcp).await.unwrap());
    }
    let mut over = connect_from([127, 0, 0, 5].into(), to).await;
    assert!(
        closed_within(&mut over, prompt).await.is_some(),
        "over the cap"
    );
    for kept in &mut authenticated {
        assert!(
            closed_within(kept, still_open).await.is_none(),
            "authenticated"
        );
    }

    // Per source, in their handshakes: the 5th and 6th connection from one address take
    // the places of the two oldest.
    let mut a = Vec::new();
    for _ in 0..6 {
        a.push(connect_from([127, 0, 0, 3].into(), to).await);
    }
    for oldest in &mut a[..2] {
        assert!(closed_within(oldest, prompt).await.is_some(), "made room");
    }
    for kept in &mut a[2..] {
        let closed = closed_within(kept, still_open).await;
        assert!(closed.is_none(), "within the cap, closed after {closed:?}");
    }

    // In total: 8 connections are open; an SAE still gets in, in place of the oldest
    // connection that is still in its TLS handshake.
    sae_gets_a_key(&pki, &base(to)).await;
    assert!(
        closed_within(&mut a[2], prompt).await.is_some(),
        "the oldest handshake made room"
    );
    for kept in &mut authenticated {
        assert!(
            closed_within(kept, still_open).await.is_none(),
            "authenticated"
        );
    }
    kme.shutdown().await;
}
