//! `qshield-flood`: floods a qshield site's UDP port with spoofed handshake datagrams, for
//! testing a deployment's resistance (tests/netns/flood.sh). Every handshake fragment it
//! sends carries a valid mac1 for the target's public key, so it passes the first check,
//! as an attacker who knows that public key could make it:
//!
//! - `initiation`: whole 3-fragment initiations of random content, one sender index each
//!   (reassembled, then refused by the handshake after its key agreement work);
//! - `response`: response fragments of random content under random receiver indices;
//! - `cookie`: cookie replies to random indices;
//! - `garbage`: random bytes of random length.
//!
//! Sources: one UDP socket per address of `--sources` (a CIDR whose addresses the sending
//! namespace treats as local, e.g. `ip route add local 198.18.4.0/24 dev lo`). It sends
//! for `--seconds` as fast as it can and prints one JSON line of what it sent.

use clap::Parser;
use qshield::cidr::IpCidr;
use qshield::config::identity_files::read_public_file;
use qshield::constants::MAX_HANDSHAKE_DATAGRAM_BYTES;
use qshield::proto::cookie::{append_macs, mac1_key};
use qshield::proto::wire::{
    COOKIE_REPLY_BYTES, INITIATION_FIXED_BYTES, INITIATION_PAYLOAD_MIN_BYTES, RESPONSE_BYTES,
    TYPE_COOKIE_REPLY, TYPE_INITIATION, TYPE_RESPONSE, split_message,
};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Datagrams made up front and sent round-robin (the send loop does no crypto).
const POOL_DATAGRAMS: usize = 4096;
/// Source addresses used at most.
const SOURCES_MAX: usize = 256;

#[derive(Parser, Debug)]
#[command(
    name = "qshield-flood",
    about = "Flood a qshield site with spoofed handshake datagrams (valid mac1) and garbage, for testing"
)]
struct Args {
    /// The site's UDP address (ip:port).
    #[arg(long)]
    target: SocketAddr,
    /// The site's public key file (what `qshield keygen` wrote as public.key).
    #[arg(long)]
    public_key: PathBuf,
    /// Source addresses: a CIDR the sending namespace treats as local (AnyIP route).
    #[arg(long)]
    sources: IpCidr,
    /// How long to send.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Kinds to send, comma-separated: initiation, response, cookie, garbage.
    #[arg(
        long,
        default_value = "initiation,response,cookie,garbage",
        value_delimiter = ','
    )]
    kinds: Vec<Kind>,
    /// Seed of the datagram contents.
    #[arg(long, default_value_t = 5158)]
    seed: u64,
}

/// What a flood datagram pretends to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Kind {
    Initiation,
    Response,
    Cookie,
    Garbage,
}

/// xorshift64*: reproducible contents without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// The datagrams of one flood message of `kind` for a receiver whose mac1 key is `mac1`.
fn message(kind: Kind, mac1: &[u8; 32], rng: &mut Rng) -> Vec<Vec<u8>> {
    let with_macs = |msg_type: u8, sender: u32, body: &[u8]| -> Vec<Vec<u8>> {
        split_message(msg_type, sender, body)
            .into_iter()
            .map(|mut f| {
                append_macs(&mut f, mac1, None);
                f
            })
            .collect()
    };
    match kind {
        Kind::Initiation => {
            let len = INITIATION_FIXED_BYTES + INITIATION_PAYLOAD_MIN_BYTES;
            let mut body = rng.bytes(len);
            body[0..4].copy_from_slice(&[1, 0, 0, 0]); // suite 1, reserved zero
            with_macs(TYPE_INITIATION, rng.next() as u32, &body)
        }
        Kind::Response => {
            let body = rng.bytes(RESPONSE_BYTES);
            let all = with_macs(TYPE_RESPONSE, rng.next() as u32, &body);
            vec![all[(rng.next() % all.len() as u64) as usize].clone()]
        }
        Kind::Cookie => {
            let mut reply = vec![TYPE_COOKIE_REPLY, 0, 0, 0];
            reply.extend_from_slice(&rng.bytes(COOKIE_REPLY_BYTES - 4));
            vec![reply]
        }
        Kind::Garbage => {
            let len = (rng.next() % MAX_HANDSHAKE_DATAGRAM_BYTES as u64) as usize;
            vec![rng.bytes(len)]
        }
    }
}

/// A pool of at least `n` datagrams, the kinds in turn.
fn pool(kinds: &[Kind], mac1: &[u8; 32], seed: u64, n: usize) -> Vec<Vec<u8>> {
    let mut rng = Rng(seed | 1);
    let mut out = Vec::with_capacity(n + 4);
    let mut i = 0;
    while out.len() < n {
        out.extend(message(kinds[i % kinds.len()], mac1, &mut rng));
        i += 1;
    }
    out
}

fn sockets(sources: &IpCidr, target: SocketAddr) -> Result<Vec<UdpSocket>, String> {
    let mut out = Vec::new();
    let base = sources.addr;
    for k in 1..=SOURCES_MAX as u32 {
        let addr = match base {
            IpAddr::V4(a) => IpAddr::V4((u32::from(a) + k).into()),
            IpAddr::V6(a) => IpAddr::V6((u128::from(a) + u128::from(k)).into()),
        };
        if !sources.contains(addr) {
            break;
        }
        let socket = UdpSocket::bind(SocketAddr::new(addr, 0))
            .map_err(|e| format!("cannot bind a source socket to {addr}: {e} (is --sources local in this namespace? `ip route add local CIDR dev lo`)"))?;
        socket
            .connect(target)
            .map_err(|e| format!("cannot connect to {target} from {addr}: {e}"))?;
        socket
            .set_nonblocking(true)
            .map_err(|e| format!("set_nonblocking: {e}"))?;
        out.push(socket);
    }
    if out.is_empty() {
        return Err(format!("--sources {sources} holds no usable address"));
    }
    Ok(out)
}

fn main() -> ExitCode {
    let args = Args::parse();
    let public = match read_public_file(&args.public_key) {
        Ok(p) => p,
        Err(e) => {
            eprintln!(
                "qshield-flood: --public-key {}: {e}",
                args.public_key.display()
            );
            return ExitCode::from(2);
        }
    };
    if args.kinds.is_empty() || args.seconds.is_nan() || args.seconds <= 0.0 {
        eprintln!("qshield-flood: --kinds must name a kind and --seconds must be positive");
        return ExitCode::from(2);
    }
    let mac1 = mac1_key(&public.dh);
    let datagrams = pool(&args.kinds, &mac1, args.seed, POOL_DATAGRAMS);
    let sockets = match sockets(&args.sources, args.target) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("qshield-flood: {e}");
            return ExitCode::from(2);
        }
    };
    let deadline = Instant::now() + Duration::from_secs_f64(args.seconds);
    let (mut sent, mut refused) = (0u64, 0u64);
    let mut i = 0usize;
    'send: loop {
        for _ in 0..1024 {
            let d = &datagrams[i % datagrams.len()];
            match sockets[i % sockets.len()].send(d) {
                Ok(_) => sent += 1,
                Err(_) => refused += 1,
            }
            i += 1;
        }
        if Instant::now() >= deadline {
            break 'send;
        }
    }
    println!(
        "{{\"sent\": {sent}, \"refused_locally\": {refused}, \"seconds\": {}, \"sources\": {}, \"per_second\": {}}}",
        args.seconds,
        sockets.len(),
        (sent as f64 / args.seconds) as u64
    );
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;
    use qshield::proto::cookie::mac1_valid;
    use qshield::proto::wire::parse_fragment;

    #[test]
    fn handshake_datagrams_carry_a_valid_mac1_and_the_mix_is_as_asked() {
        let key = [7u8; 32];
        let all = [
            Kind::Initiation,
            Kind::Response,
            Kind::Cookie,
            Kind::Garbage,
        ];
        let p = pool(&all, &key, 1, 400);
        let fragments: Vec<_> = p.iter().filter_map(|d| parse_fragment(d).ok()).collect();
        assert!(fragments.len() >= 200, "initiations (3 each) and responses");
        assert!(fragments.iter().all(|f| mac1_valid(&key, f)));
        let initiations = fragments
            .iter()
            .filter(|f| f.header.msg_type == TYPE_INITIATION)
            .count();
        assert_eq!(initiations % 3, 0, "whole initiations");
        assert!(
            p.iter()
                .any(|d| d.first() == Some(&TYPE_COOKIE_REPLY) && d.len() == COOKIE_REPLY_BYTES)
        );
        assert!(p.iter().all(|d| d.len() <= MAX_HANDSHAKE_DATAGRAM_BYTES));
    }
}
