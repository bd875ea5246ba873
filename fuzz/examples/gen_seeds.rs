//! Writes the seed corpora under `fuzz/seeds/<target>/` from real messages: a handshake
//! between the fixed sites A and B, the example configs, ETSI 014 and KME-to-KME requests,
//! CV-QKD link messages and frames, offload super-packets, the fixture identity files.
//! `endpoint_session` takes arbitrary input only; its seeds are a minimized corpus of a run.
//!
//! Run from the repository root: `cargo +nightly run --manifest-path fuzz/Cargo.toml
//! --example gen_seeds` (it replaces the files it writes, and writes nothing else).

use qshield::cvqkd::Detection;
use qshield::cvqkd::sim::bits::BitVec;
use qshield::cvqkd::sim::{ClassicalMessage, FrameData, QuantumBlock};
use qshield::kme::link::cvqkd::quantum_channel;
use qshield::kme::link::cvqkd::wire::{self, LinkReply, LinkRequest, ProtocolParams};
use qshield::net::offload::VirtioNetHdr;
use qshield::net::offload::vnet::{F_NEEDS_CSUM, GSO_NONE, GSO_TCPV4, GSO_TCPV6, GSO_UDP_L4};
use qshield::pki::{Entity, PkiPlan};
use qshield::proto::cookie::CookieChecker;
use qshield::proto::time::Instant;
use qshield::proto::wire::parse_fragment;
use qshield_fuzz::frames;
use qshield_fuzz::kme::{PadRange, RelayBody, push_json};
use qshield_fuzz::requests::format_raw;
use qshield_fuzz::sites::{Side, endpoint};
use std::path::{Path, PathBuf};

fn seeds_dir(target: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(target);
    std::fs::create_dir_all(&dir).expect("seeds directory");
    dir
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    std::fs::write(seeds_dir(target).join(name), bytes).expect("seed file");
}

/// A raw-mode seed: the even mode byte, then a datagram list.
fn raw_list(datagrams: &[Vec<u8>]) -> Vec<u8> {
    let mut v = vec![0u8];
    v.extend(frames::join(datagrams.iter().map(Vec::as_slice)));
    v
}

fn handshake_seeds() {
    let now = Instant::ZERO;
    let mut a = endpoint(Side::A, true, 1);
    let mut b = endpoint(Side::B, false, 2);
    a.start(now);
    let initiation: Vec<Vec<u8>> = std::iter::from_fn(|| a.poll_transmit())
        .map(|t| t.payload)
        .collect();
    let mut response = Vec::new();
    for d in &initiation {
        b.receive(now, Side::A.addr(), &mut d.clone());
    }
    while let Some(t) = b.poll_transmit() {
        response.push(t.payload);
    }
    let mut data = Vec::new();
    for d in &response {
        a.receive(now, Side::B.addr(), &mut d.clone());
    }
    while let Some(t) = a.poll_transmit() {
        data.push(t.payload);
    }
    let mut checker = CookieChecker::new(&Side::B.public().dh);
    let frag = parse_fragment(&initiation[0]).expect("a fragment");
    let mut rng = qshield::crypto::random::SeededRng::new(3);
    let cookie = checker.reply(now, Side::A.addr(), &frag, &mut rng);

    for target in ["datagram", "endpoint_handshake"] {
        write(target, "initiation", &raw_list(&initiation));
        let mut reversed = initiation.clone();
        reversed.reverse();
        reversed.push(initiation[0].clone());
        write(
            target,
            "initiation-reversed-duplicate",
            &raw_list(&reversed),
        );
        write(target, "response", &raw_list(&response));
        write(target, "data", &raw_list(&data));
        write(target, "cookie-reply", &raw_list(&[cookie.clone()]));
    }
}

fn config_seeds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for dir in ["configs", "configs/madrid"] {
        for entry in std::fs::read_dir(root.join(dir)).expect("configs") {
            let path = entry.expect("entry").path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if !name.ends_with(".toml") {
                continue;
            }
            let text = std::fs::read(&path).expect("config");
            let target = if name.starts_with("kme-") {
                "kme_config"
            } else {
                "site_config"
            };
            write(target, &name, &text);
        }
    }
    let fuzz_kme = qshield_fuzz::kme::config_text(Path::new("pki"), Path::new("data"));
    write("kme_config", "fuzz-kme-b.toml", fuzz_kme.as_bytes());
}

fn kme_seeds() {
    let r = |m: &str, uri: &str, caller: &str, body: &[u8]| format_raw(m, uri, caller, body);
    let id = "6f1d2c5a-0000-4000-8000-000000000001";
    let etsi = vec![
        r("GET", "/api/v1/keys/sae-b2/status", "sae-b", b""),
        r(
            "GET",
            "/api/v1/keys/sae-b2/enc_keys?number=2&size=512",
            "sae-b",
            b"",
        ),
        r(
            "POST",
            "/api/v1/keys/sae-b2/enc_keys",
            "sae-b",
            br#"{"number":1,"size":256}"#,
        ),
        r(
            "GET",
            &format!("/api/v1/keys/sae-b/dec_keys?key_ID={id}"),
            "sae-b2",
            b"",
        ),
        r(
            "POST",
            "/api/v1/keys/sae-b/dec_keys",
            "sae-b2",
            format!(r#"{{"key_IDs":[{{"key_ID":"{id}"}}]}}"#).as_bytes(),
        ),
        r("GET", "/api/v1/keys/sae-a/enc_keys", "sae-b", b""),
        r("GET", "/api/v1/keys/sae-b2/enc_keys", "kme-a", b""),
        r("GET", "/kme/v1/status", "kme-a", b""),
        r("DELETE", "/api/v1/keys/sae-b2/enc_keys", "sae-b", b""),
    ];
    write("etsi014", "requests", &raw_list(&etsi));
    for (i, req) in etsi.iter().enumerate() {
        write(
            "etsi014",
            &format!("request-{i}"),
            &raw_list(std::slice::from_ref(req)),
        );
    }

    let block: Vec<u8> = (0..64u8).collect();
    let push = push_json(&[(0, block.clone()), (1, vec![7; 32]), (2, vec![9; 16])]);
    let pushes = vec![
        r("POST", "/kme/v1/link/keys", "kme-a", &push),
        r(
            "POST",
            "/kme/v1/link/keys",
            "kme-a",
            &push_json(&[(u64::MAX - 1, vec![1; 8])]),
        ),
        r("POST", "/kme/v1/link/keys", "sae-b", &push),
        r(
            "POST",
            "/kme/v1/link/keys",
            "kme-a",
            br#"{"blocks":[{"seq":0,"key":"!!"}]}"#,
        ),
        r("GET", "/kme/v1/status", "kme-a", b""),
    ];
    write("kme_link_push", "pushes", &raw_list(&pushes));

    let relay = RelayBody {
        master: "sae-a".into(),
        slave: "sae-b".into(),
        passed: vec!["kme-a".into()],
        route: vec!["kme-b".into()],
        pads: vec![PadRange {
            seq: 0,
            offset: 0,
            len: 32,
        }],
        keys: vec![(id.into(), vec![0x5a; 32])],
    };
    let relays = vec![
        r("POST", "/kme/v1/link/keys", "kme-a", &push),
        r("POST", "/kme/v1/relay", "kme-a", &relay.to_json()),
        r(
            "POST",
            "/api/v1/keys/sae-a/dec_keys",
            "sae-b",
            format!(r#"{{"key_IDs":[{{"key_ID":"{id}"}}]}}"#).as_bytes(),
        ),
        r("POST", "/kme/v1/relay", "kme-a", &relay.to_json()),
        r("POST", "/kme/v1/relay", "kme-c", &relay.to_json()),
    ];
    write("kme_relay", "push-relay-dec", &raw_list(&relays));

    // Link-state adverts from the neighbours: a batch, a stale one, a malformed one.
    let advert = |origin: &str, seq: u64, peers: &[&str]| {
        let links: Vec<_> = peers
            .iter()
            .map(|p| {
                serde_json::json!({"peer": p, "send_bits": 4096, "receive_bits": 2048,
                    "key_rate_bps": 1000.0, "alarm": false, "excess_noise": null})
            })
            .collect();
        serde_json::json!({"origin": origin, "seq": seq, "links": links})
    };
    let batch = |adverts: Vec<serde_json::Value>| {
        serde_json::to_vec(&serde_json::json!({ "adverts": adverts })).expect("JSON")
    };
    let adverts = vec![
        r(
            "POST",
            "/kme/v1/topology",
            "kme-a",
            &batch(vec![
                advert("kme-a", 5, &["kme-b"]),
                advert("kme-c", 7, &["kme-b", "kme-d"]),
                advert("kme-b", 9, &["kme-a"]),
            ]),
        ),
        r(
            "POST",
            "/kme/v1/topology",
            "kme-c",
            &batch(vec![advert("kme-a", 4, &["kme-b"])]),
        ),
        r(
            "POST",
            "/kme/v1/topology",
            "kme-a",
            &batch(vec![advert("kme-a", 6, &["kme-a"])]),
        ),
        r("GET", "/kme/v1/status", "kme-a", b""),
    ];
    write("kme_relay", "topology-adverts", &raw_list(&adverts));
}

fn cvqkd_seeds() {
    let params = ProtocolParams {
        va: 4.0,
        eta: 0.6,
        v_el: 0.1,
        detection: Detection::Homodyne,
        block_size: 1 << 20,
        pe_samples: 1 << 19,
        epsilon: 1e-10,
        frame_bits: 65536,
    };
    let with = |selector: u8, body: Vec<u8>| [vec![selector], body].concat();
    let bits = BitVec::from_words(vec![0xdead_beef, 0x1234], 100);
    let requests = [
        LinkRequest::Start {
            params,
            block_id: 7,
        },
        LinkRequest::Estimate {
            msg: ClassicalMessage::PeAnswer {
                block_id: 7,
                alice_values: vec![0.5, -1.25, 3.0],
            },
            reconcile: true,
        },
        LinkRequest::Finish {
            msg: ClassicalMessage::Verification {
                block_id: 7,
                frame_ok: vec![true, false],
                pa_seed: 9,
            },
            seq: Some(4),
            leader_bytes: 17,
        },
    ];
    for (i, req) in requests.iter().enumerate() {
        write(
            "cvqkd_wire",
            &format!("request-{i}"),
            &with(0, wire::encode(req)),
        );
    }
    let replies = [
        LinkReply::Started {
            msg: ClassicalMessage::Disclosure {
                block_id: 7,
                bases: Some(bits.clone()),
                pe_seed: 3,
                bob_values: vec![0.25, 1.5],
            },
            next_seq: 2,
        },
        LinkReply::Estimated(Some(ClassicalMessage::Reconciliation {
            block_id: 7,
            code: 1,
            frames: vec![FrameData {
                rotations: vec![0.5; 8],
                syndrome: bits,
                hash_key: 11,
                tag: 12,
            }],
        })),
        LinkReply::Finished { stored_bytes: 32 },
        LinkReply::NoPulses { block_id: 8 },
    ];
    for (i, reply) in replies.iter().enumerate() {
        write(
            "cvqkd_wire",
            &format!("reply-{i}"),
            &with(1, wire::encode(reply)),
        );
    }
    let block = QuantumBlock {
        block_id: 7,
        x: (0..16).map(|i| f64::from(i) * 0.5).collect(),
        p: (0..16).map(|i| -f64::from(i)).collect(),
    };
    let frame = quantum_channel::encode(&block);
    for selector in [3u8, 4] {
        let mut v = vec![selector];
        v.extend_from_slice(&16u16.to_le_bytes());
        v.extend_from_slice(&frame);
        v.extend_from_slice(&frame);
        write("cvqkd_wire", &format!("frames-{selector}"), &v);
    }
    let mut v = vec![5u8];
    v.extend_from_slice(&16u16.to_le_bytes());
    v.extend_from_slice(&frame[8..]);
    write("cvqkd_wire", "payload", &v);
}

/// An IPv4 or IPv6 TCP/UDP super-packet with `payload` bytes of payload.
fn super_packet(v6: bool, udp: bool, payload: usize) -> Vec<u8> {
    let proto = if udp { 17 } else { 6 };
    let mut p = if v6 {
        let mut h = vec![0x60, 0, 0, 0, 0, 0, proto, 64];
        h.extend_from_slice(&[0xfd, 0, 0x51, 0x59, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        h.extend_from_slice(&[0xfd, 0, 0x51, 0x59, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        h
    } else {
        vec![
            0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, proto, 0, 0, 198, 19, 0, 1, 198, 19, 0, 2,
        ]
    };
    if udp {
        p.extend_from_slice(&[0x13, 0x88, 0x13, 0x89, 0, 0, 0, 0]);
    } else {
        p.extend_from_slice(&[0x13, 0x88, 0x13, 0x89, 0, 0, 0, 1, 0, 0, 0, 2, 0x50, 0x10]);
        p.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
    }
    p.extend((0..payload).map(|i| i as u8));
    p
}

fn offload_seeds() {
    let cases = [
        ("tcp4-tso", false, false, GSO_TCPV4, 100u16),
        ("tcp6-tso", true, false, GSO_TCPV6, 120),
        ("udp4-uso", false, true, GSO_UDP_L4, 90),
        ("tcp4-none", false, false, GSO_NONE, 0),
    ];
    for (name, v6, udp, gso, mss) in cases {
        let p = super_packet(v6, udp, 300);
        let hdr = VirtioNetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: gso,
            hdr_len: 40,
            gso_size: mss,
            csum_start: 20,
            csum_offset: 16,
        };
        let mut v = vec![0u8];
        v.extend_from_slice(&hdr.to_bytes());
        v.extend_from_slice(&p);
        write("vnet_offload", name, &v);
    }
}

fn identity_seeds() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/site-a");
    let read = |name: &str| std::fs::read(fixtures.join(name)).expect("fixture");
    let pki = tempfile::tempdir().expect("scratch");
    qshield::pki::init(&PkiPlan {
        out: pki.path().to_path_buf(),
        ca: "fuzz-ca".into(),
        kmes: vec![Entity {
            name: "kme-a".into(),
            sans: vec![],
        }],
        saes: vec![],
    })
    .expect("pki init");
    let cert = std::fs::read(pki.path().join("kme-a.pem")).expect("cert");
    let key = std::fs::read(pki.path().join("kme-a.key")).expect("key");
    let files = [
        read("x25519.key"),
        read("mlkem768.key"),
        read("public.key"),
        cert,
        key,
    ];
    write(
        "identity_files",
        "site-a-and-kme-a",
        &frames::join(files.iter().map(Vec::as_slice)),
    );
}

fn main() {
    handshake_seeds();
    config_seeds();
    kme_seeds();
    cvqkd_seeds();
    offload_seeds();
    identity_seeds();
    println!("seeds written under {}/seeds", env!("CARGO_MANIFEST_DIR"));
}
