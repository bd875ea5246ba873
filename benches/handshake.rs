//! A full hybrid handshake (both sides' work: initiation, its processing, the response and
//! its processing), and the data-plane seal/open of one MTU-sized packet through a session.

use criterion::{Criterion, criterion_group, criterion_main};
use qshield::crypto::{CipherSuite, PublicIdentity, StaticIdentity};
use qshield::proto::handshake::{
    FreshEphemerals, InitiationParams, SessionKeys, consume_initiation, consume_response,
    create_initiation, create_response,
};
use qshield::proto::session::{RotationBudget, Session};
use qshield::proto::time::Instant;
use qshield::proto::wire::DataHeader;
use std::hint::black_box;
use std::time::Duration;

fn handshake(
    a: &StaticIdentity,
    pa: &PublicIdentity,
    b: &StaticIdentity,
    pb: &PublicIdentity,
) -> (SessionKeys, SessionKeys) {
    let params = InitiationParams {
        suite: CipherSuite::Aes256Gcm,
        sender_index: 1,
        timestamp_unix_ns: 1,
        qkd: None,
        local_public: pa,
    };
    let (init, state) = create_initiation(a, pb, params, &mut FreshEphemerals).unwrap();
    let rx = consume_initiation(b, pb, CipherSuite::Aes256Gcm, &init, |_| {
        Some(((), pa.clone()))
    })
    .unwrap();
    let (resp, kb) = create_response(rx, pa, 2, None, &mut FreshEphemerals).unwrap();
    (consume_response(a, &state, &resp).unwrap(), kb)
}

fn bench(c: &mut Criterion) {
    let (a, b) = (
        StaticIdentity::generate().unwrap(),
        StaticIdentity::generate().unwrap(),
    );
    let (pa, pb) = (a.public(), b.public());
    c.bench_function("handshake/full (both sides)", |bench| {
        bench.iter(|| black_box(handshake(&a, &pa, &b, &pb)))
    });

    let (ka, kb) = handshake(&a, &pa, &b, &pb);
    let budget = RotationBudget {
        rekey_after_bytes: u64::MAX / 2,
        rekey_after: Duration::from_secs(1 << 30),
        reject_after_bytes: u64::MAX,
        reject_after: Duration::from_secs(1 << 31),
    };
    let mut sa = Session::new(&ka, CipherSuite::Aes256Gcm, 1, Instant::ZERO);
    let mut sb = Session::new(&kb, CipherSuite::Aes256Gcm, 1, Instant::ZERO);
    let mut slot = vec![0u8; 16 + 1420 + 32];
    c.bench_function("session/seal+open 1420 B (aes-256-gcm)", |bench| {
        bench.iter(|| {
            let n = sa.seal(&mut slot, 1420);
            let hdr = DataHeader::parse(&slot[..n]).unwrap();
            black_box(
                sb.open(&hdr, &mut slot[..n], Instant::ZERO, &budget)
                    .unwrap(),
            )
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1)).sample_size(30);
    targets = bench
}
criterion_main!(benches);
