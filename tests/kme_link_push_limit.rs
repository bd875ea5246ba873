//! The largest push a link leader can send (`links::MAX_BLOCKS_PER_PUSH` blocks of
//! `links::MAX_BLOCK_BYTES`, the size of a whole pair given to one direction) is accepted
//! by the follower over real mutual TLS. With axum's default 2 MiB body limit such a push
//! was refused with 413, and a leader whose unconfirmed blocks had grown that large could
//! never push again.

mod support;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use qshield::kme::link::random::{LinkPush, MAX_BLOCK_BYTES, MAX_BLOCKS_PER_PUSH, WireBlock};
use reqwest::StatusCode;
use support::kme::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_largest_push_is_accepted() {
    let pki = Pki::new("push-ca", &["kme-a", "kme-b"], &["sae-a", "sae-b"]);
    let dir = tempfile::tempdir().unwrap();
    // kme-b follows the link; kme-a (the leader) is played by this test, with its
    // certificate, so nothing else pushes.
    let spec = Spec {
        id: "kme-b",
        port: free_port(),
        extra_kme: "",
        saes: &["sae-b"],
        remote: &[("sae-a", &["kme-a"])],
        links: &[Link {
            peer: "kme-a",
            port: free_port(),
            leader: false,
            rate: 1000,
            pool_max: 1 << 30,
        }],
    };
    let b = start_spec(&pki, dir.path(), &spec).await;
    let push = LinkPush {
        blocks: (0..MAX_BLOCKS_PER_PUSH as u64)
            .map(|seq| WireBlock {
                seq,
                key: B64.encode(vec![seq as u8; MAX_BLOCK_BYTES]),
            })
            .collect(),
    };
    let body = serde_json::to_vec(&push).unwrap();
    assert!(body.len() > 2 << 20, "larger than axum's default limit");
    let url = format!("https://127.0.0.1:{}/kme/v1/link/keys", spec.port);
    let r = pki
        .client(Some("kme-a"))
        .post(&url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    let status = b.status().await;
    let link = status.links.iter().find(|l| l.peer == "kme-a").unwrap();
    let pushed_bits = 8 * (MAX_BLOCKS_PER_PUSH * MAX_BLOCK_BYTES) as u64;
    assert_eq!(link.generated_bits, pushed_bits, "every block stored");
    assert_eq!(
        link.send_pool_bits + link.receive_pool_bits,
        pushed_bits,
        "both directions' blocks in the follower's pools"
    );
    b.shutdown().await;
}
