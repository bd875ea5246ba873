//! `qshield-impair`: the impairment relay for namespace tests (see `qshield::impair` and
//! `qshield-impair --help`). Binds both sides, forwards until SIGINT or SIGTERM, writes the
//! stats file and prints the counters of both directions.

#![forbid(unsafe_code)]

use clap::Parser;
use qshield::impair::cli::{RelayArgs, direction_seed};
use qshield::impair::model::Direction;
use qshield::impair::relay::{Relay, RelaySettings};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

fn main() -> ExitCode {
    let args = RelayArgs::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("qshield-impair: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &RelayArgs) -> Result<(), Box<dyn std::error::Error>> {
    let seed = args.seed.unwrap_or_else(rand::random);
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone())?;
    }
    let relay = Relay::bind(RelaySettings {
        a_listen: args.a_listen,
        b_listen: args.b_listen,
        a_peer: args.a_peer,
        b_peer: args.b_peer,
        a_to_b: args.impairment(Direction::AToB),
        b_to_a: args.impairment(Direction::BToA),
        a_to_b_seed: direction_seed(seed, Direction::AToB),
        b_to_a_seed: direction_seed(seed, Direction::BToA),
    })?;
    eprintln!(
        "qshield-impair: seed {seed}; A {} -> B {} (from {}); B {} -> A {} (from {})",
        args.a_listen, args.b_peer, args.b_listen, args.b_listen, args.a_peer, args.a_listen
    );
    for d in Direction::BOTH {
        eprintln!("qshield-impair: {d}: {:?}", args.impairment(d));
    }
    let stats = relay.run_until(&stop, args.stats.as_deref())?;
    for d in Direction::BOTH {
        eprintln!("qshield-impair: {d}: {}", stats[d.key()]);
    }
    Ok(())
}
