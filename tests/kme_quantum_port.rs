//! The quantum port of a CV-QKD follower (kme-b, leader kme-a configured at 127.0.0.1) is
//! one end of a fiber: this test plays the leader's KME (its certificate on the classical
//! channel, pulse frames on the quantum port) and strangers. Loopback has many addresses:
//! 127.0.0.2 stands for another host. Only the leader's address is accepted, one
//! connection at a time, slow senders are cut off, junk frames neither replace nor evict
//! the genuine block, and a starved link raises the alarm and shows it in status.

mod support;

use qshield::cvqkd::sim::{ClassicalMessage, QuantumBlock};
use qshield::kme::KmeHandle;
use qshield::kme::link::cvqkd::quantum_channel;
use qshield::kme::link::cvqkd::wire::{self, LinkReply, LinkRequest, ProtocolParams};
use reqwest::StatusCode;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::kme::*;
use tokio::io::AsyncWriteExt;

const BLOCK: u64 = 1 << 14;

struct Follower {
    pki: Pki,
    _dir: tempfile::TempDir,
    kme: KmeHandle,
    quantum: SocketAddr,
    params: ProtocolParams,
}

/// kme-b following a CV-QKD link from kme-a (127.0.0.1, never running: this test plays it).
async fn follower() -> Follower {
    let pki = Pki::new("qport-ca", &["kme-a", "kme-b"], &["sae-a", "sae-b"]);
    let (pa, pb, qport) = (free_port(), free_port(), free_port());
    let dir = private_tempdir();
    let rest = format!(
        "[[sae]]\nid = \"sae-b\"\n[[remote_sae]]\nid = \"sae-a\"\nroute = [\"kme-a\"]\n\
         [[sae_pair]]\nmaster = \"sae-b\"\nslave = \"sae-a\"\nboth_ways = true\n\
         [[link]]\npeer = \"kme-a\"\nurl = \"https://127.0.0.1:{pa}\"\nrole = \"follower\"\nsource = \"cvqkd\"\n\
         [link.cvqkd]\ndistance_km = 1.0\nva = 4.0\nblock_size = {BLOCK}\npe_samples = {}\nepsilon = 1e-6\nframe_bits = 4096\nquantum_port = {qport}\n",
        BLOCK / 2
    );
    let text = kme_table(&pki, &dir.path().join("db"), "kme-b", pb) + &rest;
    let cfg = load_config(&text, dir.path());
    let proto = qshield::kme::link::cvqkd::protocol(cfg.links[0].cvqkd.as_ref().unwrap()).unwrap();
    let params = ProtocolParams::of(&proto);
    let kme = qshield::kme::start(cfg).await.unwrap();
    Follower {
        pki,
        _dir: dir,
        kme,
        quantum: format!("127.0.0.1:{qport}").parse().unwrap(),
        params,
    }
}

/// A block of `BLOCK` pulses, every quadrature `value`.
fn block(id: u64, value: f64) -> QuantumBlock {
    QuantumBlock {
        block_id: id,
        x: vec![value; BLOCK as usize],
        p: vec![value; BLOCK as usize],
    }
}

/// Sends one frame from 127.0.0.1 and waits until the follower has closed the connection.
async fn send_frame(f: &Follower, b: &QuantumBlock) {
    let mut tcp = connect_from([127, 0, 0, 1].into(), f.quantum).await;
    // A refused connection may be reset while the frame is written.
    let _ = quantum_channel::send(&mut tcp, b).await;
    let _ = tcp.shutdown().await;
    assert!(
        closed_within(&mut tcp, Duration::from_secs(20))
            .await
            .is_some(),
        "the follower never closed the connection of block {}",
        b.block_id
    );
}

/// The leader's `Start` of `block_id` on the classical channel (as kme-a).
async fn start_block(f: &Follower, block_id: u64) -> (StatusCode, Option<LinkReply>) {
    let r = f
        .pki
        .client(Some("kme-a"))
        .post(format!(
            "https://127.0.0.1:{}{}",
            f.kme.local_addr().port(),
            wire::PATH
        ))
        .header(reqwest::header::CONTENT_TYPE, wire::CONTENT_TYPE)
        .body(wire::encode(&LinkRequest::Start {
            params: f.params,
            block_id,
        }))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body = r.bytes().await.unwrap();
    (status, wire::decode(&body).ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_connection_from_another_address_is_refused() {
    let f = follower().await;
    let mut stranger = connect_from([127, 0, 0, 2].into(), f.quantum).await;
    assert!(
        closed_within(&mut stranger, Duration::from_secs(5))
            .await
            .is_some(),
        "a connection from 127.0.0.2 (not the leader's address) was kept open"
    );
    // The leader's address still gets through.
    send_frame(&f, &block(7, 1.0)).await;
    let (status, reply) = start_block(&f, 7).await;
    assert_eq!(status, StatusCode::OK);
    assert!(matches!(reply, Some(LinkReply::Started { .. })));
    let c = f.kme.status().await.links[0].cvqkd.clone().unwrap();
    assert_eq!(
        (c.quantum_connections_refused, c.quantum_blocks_received),
        (1, 1),
        "{c:?}"
    );
    f.kme.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_concurrent_connection_is_refused() {
    let f = follower().await;
    let mut first = connect_from([127, 0, 0, 1].into(), f.quantum).await;
    first
        .write_all(&quantum_channel::FRAME_MAGIC)
        .await
        .unwrap();
    let mut second = connect_from([127, 0, 0, 1].into(), f.quantum).await;
    assert!(
        closed_within(&mut second, Duration::from_secs(3))
            .await
            .is_some(),
        "a second connection was taken while the first was being received"
    );
    let c = f.kme.status().await.links[0].cvqkd.clone().unwrap();
    assert_eq!(c.quantum_connections_refused, 1, "{c:?}");
    drop(first);
    f.kme.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_sender_is_cut_off_and_the_port_serves_again() {
    let f = follower().await;
    let mut slow = connect_from([127, 0, 0, 1].into(), f.quantum).await;
    let frame = quantum_channel::encode(&block(9, 1.0));
    slow.write_all(&frame[..100]).await.unwrap();
    let deadline = quantum_channel::frame_deadline(BLOCK);
    let t0 = Instant::now();
    assert!(
        closed_within(&mut slow, deadline + Duration::from_secs(5))
            .await
            .is_some(),
        "a sender stalled mid-frame was never cut off"
    );
    assert!(
        t0.elapsed() + Duration::from_secs(1) >= deadline,
        "cut off early"
    );
    send_frame(&f, &block(10, 1.0)).await;
    let (status, reply) = start_block(&f, 10).await;
    assert_eq!(status, StatusCode::OK);
    assert!(matches!(reply, Some(LinkReply::Started { .. })));
    let c = f.kme.status().await.links[0].cvqkd.clone().unwrap();
    assert_eq!(c.quantum_frames_refused, 1, "{c:?}");
    f.kme.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn junk_frames_neither_replace_nor_evict_the_genuine_block() {
    let f = follower().await;
    send_frame(&f, &block(1000, 5.0)).await;
    // Same block ID (replace), then two more blocks (evict).
    send_frame(&f, &block(1000, -5.0)).await;
    send_frame(&f, &block(1001, -5.0)).await;
    send_frame(&f, &block(1002, -5.0)).await;
    let (status, reply) = start_block(&f, 1000).await;
    assert_eq!(status, StatusCode::OK, "the genuine block was lost");
    let Some(LinkReply::Started {
        msg: ClassicalMessage::Disclosure { bob_values, .. },
        ..
    }) = reply
    else {
        panic!("no disclosure: {reply:?}");
    };
    let mean = bob_values.iter().sum::<f64>() / bob_values.len() as f64;
    assert!(mean > 2.0, "Bob measured the junk block (mean {mean})");
    f.kme.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_starved_link_raises_the_alarm_and_shows_in_status() {
    let f = follower().await;
    for id in [2000, 2001] {
        start_block(&f, id).await;
    }
    let c = f.kme.status().await.links[0].cvqkd.clone().unwrap();
    let alarm = c
        .alarm
        .clone()
        .expect("no alarm after two blocks without pulses");
    assert!(alarm.contains("without pulses"), "{alarm}");
    assert_eq!(
        (c.blocks_without_pulses, c.consecutive_blocks_without_pulses),
        (2, 2),
        "{c:?}"
    );
    // Nothing is relayed over a starved link.
    let url = format!("{}/sae-a/enc_keys", base(f.kme.local_addr()));
    let r = post_enc_keys(&f.pki.client(Some("sae-b")), &url, 1, 256).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("under alarm"),
        "{body}"
    );
    f.kme.shutdown().await;
}
