//! Throughput of the simulated GG02 link through the whole pipeline (modulation, channel,
//! detection, estimation, MD + LDPC reconciliation, verification, privacy amplification)
//! on one core: simulated symbols per second at 10 km, and key bits per second.
//! Run with `cargo bench --bench cvqkd`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use qshield::cvqkd::sim::{
    Attack, LinkSimulator, SimConfig, choose_modulation,
    codes::{CodeFamily, DEFAULT_FRAME_BITS},
};
use qshield::cvqkd::{FiniteSizeParams, LinkParams, transmittance_from_distance};
use std::time::Instant;

/// Pulses per block in the benchmark.
const BLOCK: u64 = 1 << 21;

fn config(km: f64) -> SimConfig {
    let mut link = LinkParams::reference(transmittance_from_distance(km, 0.2).unwrap());
    link.reconciliation_efficiency = 1.0;
    let finite = FiniteSizeParams::new(BLOCK, BLOCK / 2, 1e-10);
    // V_A as `qkd simulate --va auto` chooses it: the SNR just above the operating point of
    // the code that leaves the most key (at 10 km, 2^21: R = 0.4 at V_A ≈ 2.9).
    let choice = choose_modulation(&link, &finite, &CodeFamily::new(DEFAULT_FRAME_BITS))
        .expect("the benchmark link is in range");
    link.modulation_variance_snu = choice.modulation_variance_snu;
    SimConfig {
        link,
        finite,
        attack: Attack::None,
        frame_bits: DEFAULT_FRAME_BITS,
        max_iterations: 100,
        seed: 1,
    }
}

fn pipeline(c: &mut Criterion) {
    let mut sim = LinkSimulator::new(config(10.0)).unwrap();
    report_key_rate(&mut sim, 3);
    let mut group = c.benchmark_group("cvqkd");
    group.sample_size(10);
    group.throughput(Throughput::Elements(BLOCK));
    group.bench_function("pipeline_10km_symbols", |b| {
        b.iter(|| sim.run_block().unwrap().report.key_bits)
    });
    group.finish();
}

/// Print key bits per second (criterion reports one throughput, the symbols).
fn report_key_rate(sim: &mut LinkSimulator, blocks: usize) {
    let start = Instant::now();
    let (mut bits, mut frames, mut failed) = (0usize, 0usize, 0usize);
    let mut beta = 0.0;
    for _ in 0..blocks {
        let r = sim.run_block().unwrap().report;
        (bits, frames, failed) = (
            bits + r.key_bits,
            frames + r.frames,
            failed + r.frames_failed,
        );
        beta += r.beta.unwrap_or(0.0) / blocks as f64;
    }
    let s = start.elapsed().as_secs_f64();
    assert!(
        bits > 0,
        "the benchmark link must produce key (whole pipeline)"
    );
    eprintln!(
        "cvqkd 10 km: {:.3e} symbols/s/core, {:.3e} key bits/s, {:.0} key bits/block, beta {beta:.3}, FER {failed}/{frames}",
        (BLOCK as f64 * blocks as f64) / s,
        bits as f64 / s,
        bits as f64 / blocks as f64
    );
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
