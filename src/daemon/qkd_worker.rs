//! The QKD worker: one thread that takes the core's key requests, calls the KME (ETSI 014
//! over mutual TLS, or its in-memory twin), and hands each answer back to the core. Only this
//! thread ever waits on a KME; the data plane never does.

use super::runtime::Shared;
use crate::proto::handshake::QkdKey;
use crate::proto::qkd_flow::QkdRequest;
use crate::qkd::KeySource;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

/// How the worker reaches keys: the source, each peer's SAE ID (config order), the key size.
pub struct QkdFetcher {
    /// The KME client or its twin.
    pub source: Arc<dyn KeySource>,
    /// SAE ID of peer `i`.
    pub peer_saes: Vec<String>,
    /// Key size in bits.
    pub key_bits: u32,
}

/// Starts the worker; it ends when the daemon shuts down.
pub fn spawn(
    shared: Arc<Shared>,
    jobs: Receiver<QkdRequest>,
    fetcher: QkdFetcher,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("qkd".into())
        .spawn(move || run(&shared, &jobs, &fetcher))
}

fn run(shared: &Shared, jobs: &Receiver<QkdRequest>, fetcher: &QkdFetcher) {
    while !shared.shutdown.load(Ordering::Relaxed) {
        match jobs.recv_timeout(Duration::from_millis(100)) {
            Ok(request) => serve(shared, fetcher, request),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

fn serve(shared: &Shared, fetcher: &QkdFetcher, request: QkdRequest) {
    let result = fetch(shared, fetcher, &request);
    let drained = {
        let mut ep = shared.lock();
        ep.handle_qkd_key(shared.clock.now(), request.id, result);
        Shared::drain(&mut ep)
    };
    shared.flush(drained);
}

/// One KME call; the key as the core takes it, or the error as text for its event.
fn fetch(shared: &Shared, fetcher: &QkdFetcher, request: &QkdRequest) -> Result<QkdKey, String> {
    let Some(sae) = fetcher.peer_saes.get(request.peer) else {
        return Err(format!("no SAE ID configured for peer {}", request.peer));
    };
    let kme = fetcher.source.describe();
    let result = match &request.key_id {
        None => fetcher.source.new_key(sae, fetcher.key_bits),
        Some(id) => fetcher.source.key_by_id(sae, id, fetcher.key_bits),
    };
    match result {
        Ok(k) => {
            let call = if request.key_id.is_some() {
                "dec_keys"
            } else {
                "enc_keys"
            };
            tracing::info!(interface = %shared.interface, peer_sae = %sae, key_id = %k.key_id, %kme, call, "QKD key delivered");
            Ok(QkdKey {
                key_id: k.key_id.into_bytes(),
                material: k.key,
            })
        }
        Err(e) => {
            tracing::warn!(interface = %shared.interface, peer_sae = %sae, %kme, error = %e, "QKD key request failed");
            Err(e.to_string())
        }
    }
}
