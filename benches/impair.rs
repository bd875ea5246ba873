//! The impairment relay's speed: the engine's cost per datagram (plain and with every knob
//! on), and the relay's forwarding rate on loopback next to its peer, the same datagrams
//! sent straight from socket to socket in the same run (1200-byte datagrams, batches of 64
//! through `sendmmsg`/`recvmmsg`, at most `WINDOW_DATAGRAMS` in flight). Each loopback run
//! asserts that every datagram arrived.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use qshield::batch::{PacketBatch, SlotMeta};
use qshield::impair::engine::Engine;
use qshield::impair::model::{Delay, Impairment, JitterShape, Probability, Reorder};
use qshield::impair::relay::{Relay, RelaySettings};
use qshield::net::{UdpIo, UdpSocket};
use qshield::proto::time::Instant;
use std::hint::black_box;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const DATAGRAM_BYTES: usize = 1200;
const BATCH: usize = 64;
/// In flight at most (well inside the sockets' 7 MiB buffers: nothing is dropped).
const WINDOW_DATAGRAMS: u64 = 1024;

fn every_knob() -> Impairment {
    Impairment {
        loss: Probability::new(0.01).unwrap(),
        burst: None,
        reorder: Some(Reorder {
            probability: Probability::new(0.02).unwrap(),
            depth: NonZeroU32::new(3).unwrap(),
            max_hold: Duration::from_millis(100),
        }),
        duplicate: Probability::new(0.01).unwrap(),
        delay: Delay {
            base: Duration::from_micros(500),
            jitter: Duration::from_micros(100),
            shape: JitterShape::Uniform,
        },
    }
}

fn engine(c: &mut Criterion) {
    let mut g = c.benchmark_group("impair/engine push+poll");
    g.throughput(Throughput::Elements(1));
    for (name, settings) in [
        ("no impairment", Impairment::default()),
        ("every knob", every_knob()),
    ] {
        let mut e: Engine<u64> = Engine::new(settings, 1);
        let mut now = Instant::ZERO;
        g.bench_function(name, |b| {
            b.iter(|| {
                now = now + Duration::from_micros(10);
                e.push(now, black_box(7));
                while let Some(d) = e.poll_ready(now) {
                    black_box(d);
                }
            })
        });
    }
    g.finish();
}

/// Sends `count` datagrams from `tx` to `to` and receives them on `rx`, pipelined.
fn pump(tx: &UdpSocket, to: SocketAddr, rx: &UdpSocket, count: u64) {
    let mut out = PacketBatch::new(BATCH, DATAGRAM_BYTES);
    for i in 0..BATCH {
        out.slot_mut(i)[..DATAGRAM_BYTES].fill(i as u8);
        out.set_meta(
            i,
            SlotMeta {
                start: 0,
                len: DATAGRAM_BYTES,
                addr: Some(to),
            },
        );
    }
    out.set_len(BATCH);
    let mut inbox = PacketBatch::new(BATCH, DATAGRAM_BYTES);
    let (mut sent, mut received) = (0u64, 0u64);
    while received < count {
        let room = sent < count && sent - received + BATCH as u64 <= WINDOW_DATAGRAMS;
        if room {
            sent += tx.send_batch(&out).expect("send") as u64;
        }
        let wait = if room {
            Duration::ZERO
        } else {
            Duration::from_secs(2)
        };
        let got = rx.recv_batch(&mut inbox, wait).expect("receive") as u64;
        assert!(
            got > 0 || room,
            "{} of {sent} datagrams never arrived",
            sent - received
        );
        received += got;
    }
}

fn loopback(c: &mut Criterion) {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let (tx, rx) = (UdpSocket::bind(any).unwrap(), UdpSocket::bind(any).unwrap());
    let relay = Arc::new(
        Relay::bind(RelaySettings {
            a_listen: any,
            b_listen: any,
            a_peer: tx.local_addr().unwrap(),
            b_peer: rx.local_addr().unwrap(),
            a_to_b: Impairment::default(),
            b_to_a: Impairment::default(),
            a_to_b_seed: 1,
            b_to_a_seed: 2,
        })
        .unwrap(),
    );
    let (relay_a, _) = relay.local_addrs().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let (relay, stop) = (relay.clone(), stop.clone());
        std::thread::spawn(move || relay.run_until(&stop, None).expect("relay runs"))
    };
    let direct = rx.local_addr().unwrap();
    let mut g = c.benchmark_group("impair/loopback 1200 B datagrams");
    g.throughput(Throughput::Elements(BATCH as u64));
    // One iteration is one batch; all of a sample's batches go through one pipelined pump.
    let (tx, rx) = (&tx, &rx);
    let timed = |to: SocketAddr| {
        move |b: &mut criterion::Bencher| {
            b.iter_custom(|iters| {
                let t0 = std::time::Instant::now();
                pump(tx, to, rx, iters * BATCH as u64);
                t0.elapsed()
            })
        }
    };
    g.bench_function("direct (peer)", timed(direct));
    g.bench_function("through the relay", timed(relay_a));
    g.finish();
    stop.store(true, Ordering::Relaxed);
    let stats = thread.join().unwrap();
    assert_eq!(
        stats["a_to_b"]["received"], stats["a_to_b"]["forwarded"],
        "the relay kept datagrams"
    );
}

criterion_group!(benches, engine, loopback);
criterion_main!(benches);
