//! Pins the handshake: with fixed static keys, fixed ephemeral keys and deterministic ML-KEM
//! encapsulations, the initiation and response bytes and the traffic keys are fixed values.
//! A second, independent implementation of the key schedule (RustCrypto `sha2`, `hmac`,
//! `hkdf`, `chacha20poly1305`, `x25519-dalek`, `ml-kem`) recomputes every sealed field and
//! both traffic keys from the same inputs and must agree byte for byte.

#![allow(deprecated)] // ml-kem's expanded-key encoding is the FIPS 203 form we store.

use ml_kem::{B32, DecapsulationKey768, EncapsulationKey768, ExpandedKeyEncoding, KeyExport, Seed};
use qshield::crypto::dh::DhSecret;
use qshield::crypto::kem::{KemPublic, KemSecret};
use qshield::crypto::{CipherSuite, CryptoError, PublicIdentity, Secret, StaticIdentity, labels};
use qshield::proto::handshake::{
    Ephemerals, InitiationParams, consume_initiation, consume_response, create_initiation,
    create_response,
};
use qshield::proto::wire::{Initiation, Response};
use std::collections::VecDeque;

// ------------------------------------------------------------------ fixed inputs

fn kem_from_seed(byte: u8) -> KemSecret {
    let dk = DecapsulationKey768::from_seed(Seed::from([byte; 64]));
    KemSecret::from_bytes(&dk.to_expanded_bytes()).expect("FIPS 203 expanded key")
}

fn dh_from(byte: u8) -> DhSecret {
    DhSecret::from_bytes(&Secret::new([byte; 32])).unwrap()
}

fn identity(dh: u8, kem: u8) -> StaticIdentity {
    StaticIdentity {
        dh: dh_from(dh),
        kem: kem_from_seed(kem),
    }
}

/// Ephemeral keys and encapsulation coins handed out in a fixed order.
struct Fixed {
    dh: VecDeque<u8>,
    kem: VecDeque<u8>,
    coins: VecDeque<u8>,
}

impl Ephemerals for Fixed {
    fn dh(&mut self) -> Result<DhSecret, CryptoError> {
        Ok(dh_from(self.dh.pop_front().expect("enough fixed DH keys")))
    }
    fn kem(&mut self) -> Result<KemSecret, CryptoError> {
        Ok(kem_from_seed(
            self.kem.pop_front().expect("enough fixed KEM keys"),
        ))
    }
    fn encapsulate(&mut self, to: &KemPublic) -> Result<(Vec<u8>, Secret<32>), CryptoError> {
        let ek = EncapsulationKey768::new(&to.0.as_slice().try_into().unwrap()).unwrap();
        let m = B32::from([self.coins.pop_front().expect("enough coins"); 32]);
        let (ct, ss) = ek.encapsulate_deterministic(&m);
        Ok((ct.to_vec(), Secret::from_slice(&ss).unwrap()))
    }
}

struct Run {
    initiation: Vec<u8>,
    response: Vec<u8>,
    i2r: [u8; 32],
    r2i: [u8; 32],
}

fn run_fixed() -> Run {
    let (a, b) = (identity(0x11, 0x21), identity(0x12, 0x22));
    let (pa, pb) = (a.public(), b.public());
    let mut eph_a = Fixed {
        dh: [0x31].into(),
        kem: [0x41].into(),
        coins: [0x51].into(),
    };
    let mut eph_b = Fixed {
        dh: [0x32].into(),
        kem: [].into(),
        coins: [0x52, 0x53].into(),
    };
    let params = InitiationParams {
        suite: CipherSuite::Aes256Gcm,
        sender_index: 0x0102_0304,
        timestamp_unix_ns: 1_700_000_000_000_000_000,
        qkd: None,
        local_public: &pa,
    };
    let (initiation, state) = create_initiation(&a, &pb, params, &mut eph_a).unwrap();
    let pa2 = pa.clone();
    let rx = consume_initiation(&b, &pb, CipherSuite::Aes256Gcm, &initiation, |k| {
        (*k == pa2.dh).then(|| ((), pa2.clone()))
    })
    .unwrap();
    let (response, keys_b) = create_response(rx, &pa, 0x0506_0708, None, &mut eph_b).unwrap();
    let keys_a = consume_response(&a, &state, &response).unwrap();
    assert_eq!(keys_a.send, keys_b.receive);
    assert_eq!(keys_a.receive, keys_b.send);
    Run {
        initiation,
        response,
        i2r: *keys_a.send.expose(),
        r2i: *keys_a.receive.expose(),
    }
}

// ------------------------------------------------------------------ independent schedule

mod reference {
    use chacha20poly1305::aead::{Aead, KeyInit, Payload};
    use hkdf::Hkdf;
    use hmac::{Hmac, Mac};
    use sha2::{Digest, Sha256};

    pub fn hash(parts: &[&[u8]]) -> [u8; 32] {
        let mut h = Sha256::new();
        for p in parts {
            h.update(p);
        }
        h.finalize().into()
    }

    pub fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
        let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
        m.update(data);
        m.finalize().into_bytes().into()
    }

    pub fn mix(ck: &[u8; 32], label: &[u8], input: &[u8]) -> [u8; 32] {
        Hkdf::<Sha256>::extract(Some(ck), &[label, input].concat())
            .0
            .into()
    }

    pub fn key(ck: &[u8; 32], label: &[u8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        Hkdf::<Sha256>::from_prk(ck)
            .unwrap()
            .expand(label, &mut out)
            .unwrap();
        out
    }

    pub fn seal(key: &[u8; 32], aad: &[u8], msg: &[u8]) -> Vec<u8> {
        chacha20poly1305::ChaCha20Poly1305::new(key.into())
            .encrypt(&[0u8; 12].into(), Payload { msg, aad })
            .unwrap()
    }
}

fn x25519(sk: u8, pk: &[u8; 32]) -> [u8; 32] {
    x25519_dalek::StaticSecret::from([sk; 32])
        .diffie_hellman(&x25519_dalek::PublicKey::from(*pk))
        .to_bytes()
}

fn x25519_public(sk: u8) -> [u8; 32] {
    x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from([sk; 32])).to_bytes()
}

fn ml_ek(seed: u8) -> Vec<u8> {
    DecapsulationKey768::from_seed(Seed::from([seed; 64]))
        .encapsulation_key()
        .to_bytes()
        .to_vec()
}

fn ml_encaps(ek: &[u8], coin: u8) -> (Vec<u8>, Vec<u8>) {
    let ek = EncapsulationKey768::new(&ek.try_into().unwrap()).unwrap();
    let (ct, ss) = ek.encapsulate_deterministic(&B32::from([coin; 32]));
    (ct.to_vec(), ss.to_vec())
}

fn digest(dh: u8, kem: u8) -> [u8; 32] {
    reference::hash(&[&x25519_public(dh), &ml_ek(kem)])
}

/// What the independent schedule computes.
struct Expected {
    i2r: [u8; 32],
    r2i: [u8; 32],
    sealed_static: Vec<u8>,
    sealed_payload: Vec<u8>,
    classical: [u8; 16],
    full: [u8; 16],
}

/// The whole schedule of docs/protocol.md §3, from the raw inputs.
fn reference_run(init: &Initiation, resp: &Response) -> Expected {
    use reference::*;
    let mut ck = hash(&[labels::PROTOCOL]);
    let mut h = hash(&[&ck, &digest(0x12, 0x22)]);
    h = hash(&[&h, &init.public_part()]);
    ck = mix(&ck, labels::MIX_ES, &x25519(0x31, &x25519_public(0x12)));
    let (_, ss_sr) = ml_encaps(&ml_ek(0x22), 0x51);
    ck = mix(&ck, labels::MIX_KEM_RESPONDER_STATIC, &ss_sr);
    let sealed_static = seal(
        &key(&ck, labels::KEY_INITIATOR_STATIC),
        &h,
        &x25519_public(0x11),
    );
    h = hash(&[&h, &sealed_static]);
    h = hash(&[&h, &digest(0x11, 0x21)]);
    ck = mix(&ck, labels::MIX_SS, &x25519(0x11, &x25519_public(0x12)));
    let mut payload = 1_700_000_000_000_000_000u64.to_le_bytes().to_vec();
    payload.push(0);
    let sealed_payload = seal(&key(&ck, labels::KEY_INITIATION_PAYLOAD), &h, &payload);
    h = hash(&[&h, &sealed_payload]);
    h = hash(&[&h, &resp.public_part()]);
    ck = mix(&ck, labels::MIX_EE, &x25519(0x32, &x25519_public(0x31)));
    ck = mix(&ck, labels::MIX_SE, &x25519(0x32, &x25519_public(0x11)));
    let (_, ss_e) = ml_encaps(&ml_ek(0x41), 0x52);
    ck = mix(&ck, labels::MIX_KEM_EPHEMERAL, &ss_e);
    let (_, ss_si) = ml_encaps(&ml_ek(0x21), 0x53);
    ck = mix(&ck, labels::MIX_KEM_INITIATOR_STATIC, &ss_si);
    let classical: [u8; 16] = hmac(&key(&ck, labels::KEY_CONFIRM_CLASSICAL), &h)[..16]
        .try_into()
        .unwrap();
    h = hash(&[&h, &classical]);
    ck = mix(&ck, labels::MIX_NO_QKD, &[]);
    let full: [u8; 16] = seal(&key(&ck, labels::KEY_CONFIRM_FULL), &h, &[])[..16]
        .try_into()
        .unwrap();
    let i2r = key(&ck, labels::TRAFFIC_INITIATOR_TO_RESPONDER);
    let r2i = key(&ck, labels::TRAFFIC_RESPONDER_TO_INITIATOR);
    Expected {
        i2r,
        r2i,
        sealed_static,
        sealed_payload,
        classical,
        full,
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

// ------------------------------------------------------------------ the tests

#[test]
fn handshake_is_deterministic_with_fixed_inputs() {
    let (r1, r2) = (run_fixed(), run_fixed());
    assert_eq!(r1.initiation, r2.initiation);
    assert_eq!(r1.response, r2.response);
    assert_eq!((r1.i2r, r1.r2i), (r2.i2r, r2.r2i));
}

#[test]
fn independent_schedule_agrees_on_every_field_and_key() {
    let run = run_fixed();
    let init = Initiation::decode(&run.initiation).unwrap();
    let resp = Response::decode(&run.response).unwrap();
    // public fields are exactly the fixed inputs
    assert_eq!(init.sender_index, 0x0102_0304);
    assert_eq!(init.ephemeral_dh, x25519_public(0x31));
    assert_eq!(init.ephemeral_kem, ml_ek(0x41));
    assert_eq!(
        init.kem_to_responder_static,
        ml_encaps(&ml_ek(0x22), 0x51).0
    );
    assert_eq!(resp.ephemeral_dh, x25519_public(0x32));
    assert_eq!(
        resp.kem_to_initiator_ephemeral,
        ml_encaps(&ml_ek(0x41), 0x52).0
    );
    assert_eq!(
        resp.kem_to_initiator_static,
        ml_encaps(&ml_ek(0x21), 0x53).0
    );
    let Expected {
        i2r,
        r2i,
        sealed_static,
        sealed_payload,
        classical,
        full,
    } = reference_run(&init, &resp);
    assert_eq!(
        init.sealed_static, sealed_static,
        "sealed initiator static key"
    );
    assert_eq!(init.sealed_payload, sealed_payload, "sealed payload");
    assert_eq!(
        resp.confirm_classical, classical,
        "classical confirmation tag"
    );
    assert_eq!(resp.confirm_full, full, "full confirmation tag");
    assert_eq!(run.i2r, i2r, "traffic key initiator -> responder");
    assert_eq!(run.r2i, r2i, "traffic key responder -> initiator");
}

#[test]
fn pinned_message_digests_and_traffic_keys() {
    let run = run_fixed();
    assert_eq!(run.initiation.len(), 2385);
    assert_eq!(run.response.len(), 2252);
    let pinned = [
        hex(&reference::hash(&[&run.initiation])),
        hex(&reference::hash(&[&run.response])),
        hex(&run.i2r),
        hex(&run.r2i),
    ];
    assert_eq!(
        pinned, PINNED,
        "the wire encoding or the key schedule changed: update docs/protocol.md and these vectors together"
    );
}

#[test]
fn public_identity_encoding_is_x25519_then_mlkem() {
    let id = identity(0x11, 0x21).public();
    let bytes = id.to_bytes();
    assert_eq!(&bytes[..32], &x25519_public(0x11));
    assert_eq!(&bytes[32..], ml_ek(0x21).as_slice());
    assert_eq!(PublicIdentity::from_bytes(&bytes).unwrap(), id);
}

/// SHA-256 of the initiation, SHA-256 of the response, traffic key i->r, traffic key r->i.
const PINNED: [&str; 4] = [
    "cd28694f63c5e5dff61ef3c68d813b7df9bd4739f9fe307c4aca2ac33f12d785",
    "290e956f712513078892cdc01f4c579337ce302efd9082f843d82cb926c9f40b",
    "bfb8fac6f7a471513c525eb9d27fef60b39b69fa5beb709ebae187328502cd3b",
    "f541086a267ba75d99bba5e49f4f1a7fee61136ea1199efb8a94e94efe275da6",
];
