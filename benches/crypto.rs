//! Criterion benches of the crypto layer: AEAD seal/open per packet size for both suites
//! (throughput in bytes), X25519 agreement, ML-KEM-768 keygen/encapsulate/decapsulate.
//!
//! Defaults are short (1 s warm-up, 2 s measurement, 20 samples) so the whole run stays under
//! about two minutes on two cores; pass criterion's own flags to override, e.g.
//! `cargo bench --bench crypto -- --measurement-time 10 aead/seal`.

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use qshield::crypto::dh::DhSecret;
use qshield::crypto::kem::KemSecret;
use qshield::crypto::{CipherSuite, PacketKey, Secret};
use std::hint::black_box;
use std::time::Duration;

/// Inner packet sizes: tiny (ACK-like), medium, a full default-MTU packet, a GSO-sized chunk.
const PACKET_SIZES: [usize; 4] = [64, 512, 1420, 8192];
const SUITES: [CipherSuite; 2] = [CipherSuite::Aes256Gcm, CipherSuite::ChaCha20Poly1305];
/// Stand-in for the 16-byte data header authenticated as AAD.
const AAD: [u8; 16] = [4, 0, 0, 0, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0];

fn aead(c: &mut Criterion) {
    for suite in SUITES {
        let key = PacketKey::new(suite, &Secret::new([0x42; 32]));
        let mut group = c.benchmark_group(format!("aead/{suite}"));
        for size in PACKET_SIZES {
            group.throughput(Throughput::Bytes(size as u64));
            // Seal in place; the buffer is re-encrypted each time (the cost does not depend
            // on the bytes), with a fresh counter per packet as the data plane does.
            let mut buf = vec![0xabu8; size];
            let mut counter = 0u64;
            group.bench_function(BenchmarkId::new("seal", size), |b| {
                b.iter(|| {
                    counter += 1;
                    black_box(key.seal(counter, &AAD, black_box(&mut buf)))
                })
            });
            // Open in place needs a valid ciphertext each time: the untimed setup copies it.
            let sealed = key.seal_to_vec(7, &AAD, &vec![0xabu8; size]);
            group.bench_function(BenchmarkId::new("open", size), |b| {
                b.iter_batched_ref(
                    || sealed.clone(),
                    |ct| key.open(7, &AAD, black_box(ct)).expect("authentic"),
                    BatchSize::SmallInput,
                )
            });
        }
        group.finish();
    }
}

fn x25519(c: &mut Criterion) {
    let a = DhSecret::generate().expect("keygen");
    let b = DhSecret::generate().expect("keygen").public();
    c.bench_function("x25519/agree", |bench| {
        bench.iter(|| a.agree(black_box(&b)).expect("agree"))
    });
    c.bench_function("x25519/generate", |bench| {
        bench.iter(|| DhSecret::generate().expect("keygen"))
    });
}

fn mlkem768(c: &mut Criterion) {
    let mut group = c.benchmark_group("ml-kem-768");
    group.bench_function("keygen", |b| {
        b.iter(|| KemSecret::generate().expect("keygen"))
    });
    let sk = KemSecret::generate().expect("keygen");
    let pk = sk.public().clone();
    group.bench_function("encapsulate", |b| {
        b.iter(|| black_box(&pk).encapsulate().expect("encapsulate"))
    });
    let (ct, _) = pk.encapsulate().expect("encapsulate");
    group.bench_function("decapsulate", |b| {
        b.iter(|| sk.decapsulate(black_box(&ct)).expect("decapsulate"))
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
        // HTML plots cost seconds per benchmark; `--plotting-backend` brings them back.
        .without_plots()
}

criterion_group! {
    name = benches;
    config = config();
    targets = aead, x25519, mlkem768
}
criterion_main!(benches);
