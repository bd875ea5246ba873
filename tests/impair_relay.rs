//! The impairment relay on loopback (no root): it carries datagrams both ways intact, applies
//! each direction's own impairment, counts what it did, and the `qshield-impair` binary
//! refuses bad flags by name, explains every flag in --help and writes its stats file on
//! SIGTERM.

use qshield::impair::model::{Direction, Impairment, Probability};
use qshield::impair::relay::{Relay, RelaySettings};
use serde_json::Value;
use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const DATAGRAMS: u32 = 500;

fn loopback() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind loopback");
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    s
}

/// A relay between two loopback sockets, forwarding on its own thread until dropped.
struct Running {
    side_a: UdpSocket,
    side_b: UdpSocket,
    relay_a: SocketAddr,
    relay_b: SocketAddr,
    relay: Arc<Relay>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Value>>,
}

impl Running {
    fn start(a_to_b: Impairment, b_to_a: Impairment) -> Self {
        let (side_a, side_b) = (loopback(), loopback());
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let relay = Arc::new(
            Relay::bind(RelaySettings {
                a_listen: any,
                b_listen: any,
                a_peer: side_a.local_addr().unwrap(),
                b_peer: side_b.local_addr().unwrap(),
                a_to_b,
                b_to_a,
                a_to_b_seed: 1,
                b_to_a_seed: 2,
            })
            .expect("relay binds"),
        );
        let (relay_a, relay_b) = relay.local_addrs().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (relay, stop) = (relay.clone(), stop.clone());
            std::thread::spawn(move || relay.run_until(&stop, None).expect("relay runs"))
        };
        Self {
            side_a,
            side_b,
            relay_a,
            relay_b,
            relay,
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> Value {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().expect("relay thread")
    }
}

/// Sends `count` numbered datagrams from `from` to `to` while `at` receives them; returns
/// the numbers `at` received, in arrival order, and from where each came. Paced (a test
/// socket has the default, small, receive buffer).
fn exchange(
    from: &UdpSocket,
    to: SocketAddr,
    at: &UdpSocket,
    count: u32,
) -> (Vec<u32>, Vec<SocketAddr>) {
    std::thread::scope(|scope| {
        let receiver = scope.spawn(|| {
            let (mut got, mut sources) = (Vec::new(), Vec::new());
            let mut buf = [0u8; 2048];
            // ends 500 ms after the last datagram (the socket's read timeout)
            while let Ok((n, src)) = at.recv_from(&mut buf) {
                assert_eq!(n, 1200, "datagram length changed");
                let id = u32::from_be_bytes(buf[..4].try_into().unwrap());
                assert!(
                    buf[4..n].iter().all(|&b| b == id as u8),
                    "datagram {id} changed on the way"
                );
                got.push(id);
                sources.push(src);
            }
            (got, sources)
        });
        let mut payload = vec![0u8; 1200];
        for i in 0..count {
            payload[..4].copy_from_slice(&i.to_be_bytes());
            payload[4..].fill(i as u8);
            from.send_to(&payload, to).unwrap();
            if i % 5 == 4 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        receiver.join().unwrap()
    })
}

#[test]
fn the_relay_carries_datagrams_both_ways_intact_and_in_order() {
    let r = Running::start(Impairment::default(), Impairment::default());
    let (ab, from_b) = exchange(&r.side_a, r.relay_a, &r.side_b, DATAGRAMS);
    let (ba, from_a) = exchange(&r.side_b, r.relay_b, &r.side_a, DATAGRAMS);
    let expected: Vec<u32> = (0..DATAGRAMS).collect();
    assert_eq!(ab, expected);
    assert_eq!(ba, expected);
    assert!(
        from_b.iter().all(|s| *s == r.relay_b),
        "A's datagrams reach B from the relay's B side"
    );
    assert!(
        from_a.iter().all(|s| *s == r.relay_a),
        "B's datagrams reach A from the relay's A side"
    );
    let stats = r.finish();
    for d in Direction::BOTH {
        assert_eq!(stats[d.key()]["received"], DATAGRAMS, "{d}");
        assert_eq!(stats[d.key()]["forwarded"], DATAGRAMS, "{d}");
    }
}

#[test]
fn each_direction_gets_its_own_impairment() {
    let lose_all = Impairment {
        loss: Probability::ALWAYS,
        ..Impairment::default()
    };
    let copy_all = Impairment {
        duplicate: Probability::ALWAYS,
        ..Impairment::default()
    };
    let r = Running::start(lose_all, copy_all);
    let (ab, _) = exchange(&r.side_a, r.relay_a, &r.side_b, 100);
    let (ba, _) = exchange(&r.side_b, r.relay_b, &r.side_a, 100);
    assert!(ab.is_empty(), "A->B loses everything, got {}", ab.len());
    let stats = r.relay.stats();
    assert_eq!(ba.len(), 200, "B->A sends every datagram twice: {stats}");
    let stats = r.relay.stats();
    assert_eq!(stats["a_to_b"]["dropped_random"], 100);
    assert_eq!(stats["b_to_a"]["duplicated"], 100);
    assert_eq!(stats["b_to_a"]["forwarded"], 200);
    r.finish();
}

fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_qshield-impair"))
}

const ADDRESSES: [&str; 8] = [
    "--a-listen",
    "127.0.0.1:0",
    "--b-listen",
    "127.0.0.1:0",
    "--a-peer",
    "127.0.0.1:9",
    "--b-peer",
    "127.0.0.1:9",
];

#[test]
fn the_binary_names_the_flag_of_a_bad_value_and_explains_every_flag() {
    let out = binary()
        .args(ADDRESSES)
        .args(["--reorder", "5%,0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--reorder") && err.contains("depth"), "{err}");
    let help = binary().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--a-listen",
        "--b-listen",
        "--a-peer",
        "--b-peer",
        "--loss ",
        "--burst ",
        "--reorder ",
        "--duplicate ",
        "--delay ",
        "--jitter ",
        "--jitter-shape",
        "--seed",
        "--stats",
        "--loss-a-to-b",
        "--reorder-b-to-a",
        "Gilbert-Elliott",
    ] {
        assert!(
            help.contains(flag),
            "--help does not explain {flag}:\n{help}"
        );
    }
}

#[test]
fn the_binary_writes_its_stats_and_exits_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let stats = dir.path().join("stats.json");
    let child = binary()
        .args(ADDRESSES)
        .args(["--loss", "1%", "--seed", "5", "--stats"])
        .arg(&stats)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !stats.exists() {
        assert!(Instant::now() < deadline, "no stats file after 10 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    assert_eq!(doc["a_to_b"]["received"], 0);
    assert_eq!(doc["settings"]["a_to_b_seed"], 5);
    assert_eq!(doc["settings"]["a_to_b"]["loss"], 0.01);
    assert!(String::from_utf8_lossy(&out.stderr).contains("seed 5"));
}
