//! The hybrid handshake's key schedule: pure functions from identities, ephemeral keys and
//! (optionally) a QKD key to messages and session keys. No state beyond the values passed
//! in and out; the peer state machine decides when to call them.
//!
//! The chaining key absorbs, in order: DH(e_i, s_r), ML-KEM to s_r, DH(s_i, s_r),
//! DH(e_r, e_i), DH(e_r, s_i), ML-KEM to e_i, ML-KEM to s_i, then the QKD key (or a
//! no-QKD marker). Every public value is hashed into the transcript `h`, which is the AAD of
//! every sealed field and the input of both confirmation tags. See `docs/protocol.md`.

use super::wire::{
    Initiation, InitiationPayload, RESPONSE_FLAG_QKD, Response, SEAL_TAG_BYTES, WireError,
};
use crate::crypto::dh::{DhPublic, DhSecret};
use crate::crypto::kem::{KemPublic, KemSecret};
use crate::crypto::{
    CipherSuite, CryptoError, PacketKey, PublicIdentity, Secret, StaticIdentity, kdf, labels,
};
use zeroize::Zeroizing;

/// A QKD key delivered by a KME, with the ID both sides use to name it.
pub struct QkdKey {
    /// The ETSI 014 `key_ID` (a UUID string as bytes).
    pub key_id: Vec<u8>,
    /// The key bits (zeroized on drop).
    pub material: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for QkdKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "QkdKey({}, [redacted])",
            String::from_utf8_lossy(&self.key_id)
        )
    }
}

/// Why a handshake message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The message could not be decoded.
    #[error("malformed handshake message: {0}")]
    Wire(#[from] WireError),
    /// A primitive refused a value (for example a low-order X25519 key).
    #[error("{0}")]
    Crypto(#[from] CryptoError),
    /// The initiator's identity could not be opened: it holds a wrong public key for us.
    #[error(
        "initiation is not sealed to this site's identity (the initiator is configured with a different public key for us)"
    )]
    NotForUs,
    /// The initiator's static key is not one of our configured peers.
    #[error("initiation from an unknown static key {0} (not configured as a peer here)")]
    UnknownInitiator(String),
    /// The initiator could not prove its static key (payload failed to open).
    #[error("initiator failed to prove its static key")]
    InitiatorAuthFailed,
    /// The initiator offered a different data cipher.
    #[error("peer offers cipher {offered}, this site is configured for {ours}")]
    SuiteMismatch {
        /// What the initiator asked for.
        offered: String,
        /// What we are configured for.
        ours: CipherSuite,
    },
    /// Classical key confirmation failed: wrong static keys or altered message.
    #[error(
        "response failed classical key confirmation (the responder does not hold the keys configured for it, or the message was altered)"
    )]
    ClassicalConfirmationFailed,
    /// Classical confirmation passed but the full one did not: the QKD keys differ.
    #[error(
        "QKD key mismatch: classical confirmation passed but the keys after mixing the QKD key differ (KMEs out of sync or wrong key_ID)"
    )]
    QkdKeyMismatch,
    /// The responder claims a QKD key that the initiator never offered.
    #[error("response claims a QKD key that was not offered")]
    UnexpectedQkd,
    /// Policy `require`: the initiator offered no QKD key.
    #[error("the peer offered no QKD key and this site's QKD policy is \"require\"")]
    QkdRequired,
    /// Policy `require`: the responder answered without the QKD key we offered.
    #[error(
        "the peer answered without the offered QKD key and this site's QKD policy is \"require\""
    )]
    QkdNotUsed,
}

/// The keys and indices of a new session, from one side's point of view.
pub struct SessionKeys {
    /// Key for packets we send.
    pub send: Secret<32>,
    /// Key for packets we receive.
    pub receive: Secret<32>,
    /// Our session index (the peer puts it in data headers).
    pub local_index: u32,
    /// The peer's session index (we put it in data headers).
    pub remote_index: u32,
    /// True when we initiated this session.
    pub is_initiator: bool,
    /// The ID of the QKD key mixed in, if one was.
    pub qkd_key_id: Option<String>,
}

impl SessionKeys {
    /// True when a QKD key was mixed in.
    pub fn qkd_mixed(&self) -> bool {
        self.qkd_key_id.is_some()
    }
}

/// Running chaining key and transcript hash.
#[derive(Clone)]
struct Transcript {
    ck: Secret<32>,
    h: [u8; 32],
}

impl Transcript {
    fn new(responder: &PublicIdentity) -> Self {
        let ck = kdf::hash(&[labels::PROTOCOL]);
        let h = kdf::hash(&[&ck, &responder.digest()]);
        Self {
            ck: Secret::new(ck),
            h,
        }
    }

    fn absorb(&mut self, data: &[u8]) {
        self.h = kdf::hash(&[&self.h, data]);
    }

    fn mix(&mut self, label: &[u8], secret: &Secret<32>) {
        self.ck = kdf::mix(&self.ck, label, secret.expose());
    }

    fn key(&self, label: &[u8]) -> Secret<32> {
        kdf::expand(&self.ck, label)
    }

    fn seal(&self, label: &[u8], plaintext: &[u8]) -> Vec<u8> {
        handshake_aead(&self.key(label)).seal_to_vec(0, &self.h, plaintext)
    }

    fn open(&self, label: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        handshake_aead(&self.key(label)).open_to_vec(0, &self.h, sealed)
    }

    fn confirm_classical(&self) -> [u8; 16] {
        let full = kdf::hmac(self.key(labels::KEY_CONFIRM_CLASSICAL).expose(), &[&self.h]);
        full[..16].try_into().expect("16 bytes")
    }

    fn mix_qkd(&mut self, qkd: Option<&QkdKey>) {
        match qkd {
            Some(k) => self.ck = kdf::mix(&self.ck, labels::MIX_QKD, &k.material),
            None => self.ck = kdf::mix(&self.ck, labels::MIX_NO_QKD, &[]),
        }
    }

    fn confirm_full(&self) -> [u8; 16] {
        let tag = self.seal(labels::KEY_CONFIRM_FULL, &[]);
        tag[..SEAL_TAG_BYTES].try_into().expect("16 bytes")
    }

    fn traffic(&self, is_initiator: bool) -> (Secret<32>, Secret<32>) {
        let i2r = self.key(labels::TRAFFIC_INITIATOR_TO_RESPONDER);
        let r2i = self.key(labels::TRAFFIC_RESPONDER_TO_INITIATOR);
        if is_initiator { (i2r, r2i) } else { (r2i, i2r) }
    }
}

/// Where a handshake gets its ephemeral keys and KEM encapsulations. [`FreshEphemerals`] is
/// the real source; test vectors substitute fixed values to pin the whole exchange.
pub trait Ephemerals {
    /// A new ephemeral X25519 key.
    fn dh(&mut self) -> Result<DhSecret, CryptoError>;
    /// A new ephemeral ML-KEM-768 key.
    fn kem(&mut self) -> Result<KemSecret, CryptoError>;
    /// An encapsulation to `to`: (ciphertext, shared secret).
    fn encapsulate(&mut self, to: &KemPublic) -> Result<(Vec<u8>, Secret<32>), CryptoError>;
}

/// Fresh randomness from the system for every ephemeral value.
#[derive(Debug, Default, Clone, Copy)]
pub struct FreshEphemerals;

impl Ephemerals for FreshEphemerals {
    fn dh(&mut self) -> Result<DhSecret, CryptoError> {
        DhSecret::generate()
    }
    fn kem(&mut self) -> Result<KemSecret, CryptoError> {
        KemSecret::generate()
    }
    fn encapsulate(&mut self, to: &KemPublic) -> Result<(Vec<u8>, Secret<32>), CryptoError> {
        to.encapsulate()
    }
}

/// Handshake fields are sealed with ChaCha20-Poly1305, each key used once (nonce 0).
fn handshake_aead(key: &Secret<32>) -> PacketKey {
    PacketKey::new(CipherSuite::ChaCha20Poly1305, key)
}

/// What the initiator keeps between sending the initiation and receiving the response.
pub struct InitiatorState {
    transcript: Transcript,
    ephemeral_dh: DhSecret,
    ephemeral_kem: KemSecret,
    /// Our session index for this handshake.
    pub sender_index: u32,
    /// The QKD key offered in the initiation.
    pub qkd: Option<QkdKey>,
}

/// Everything a fresh initiation needs besides the identities.
pub struct InitiationParams<'a> {
    /// Data cipher we will use.
    pub suite: CipherSuite,
    /// Our session index.
    pub sender_index: u32,
    /// Our wall clock (replay protection at the responder).
    pub timestamp_unix_ns: u64,
    /// QKD key to offer, if any.
    pub qkd: Option<QkdKey>,
    /// Our public identity (bound into the transcript).
    pub local_public: &'a PublicIdentity,
}

/// Builds an initiation to `remote`; returns the encoded message and the state to keep.
pub fn create_initiation(
    local: &StaticIdentity,
    remote: &PublicIdentity,
    params: InitiationParams<'_>,
    eph: &mut dyn Ephemerals,
) -> Result<(Vec<u8>, InitiatorState), HandshakeError> {
    let mut t = Transcript::new(remote);
    let ephemeral_dh = eph.dh()?;
    let ephemeral_kem = eph.kem()?;
    let (ct, ss_kem) = eph.encapsulate(&remote.kem)?;
    let mut msg = Initiation {
        suite: params.suite.wire_id(),
        sender_index: params.sender_index,
        ephemeral_dh: ephemeral_dh.public().0,
        ephemeral_kem: ephemeral_kem.public().0.clone(),
        kem_to_responder_static: ct,
        sealed_static: Vec::new(),
        sealed_payload: Vec::new(),
    };
    t.absorb(&msg.public_part());
    t.mix(labels::MIX_ES, &ephemeral_dh.agree(&remote.dh)?);
    t.mix(labels::MIX_KEM_RESPONDER_STATIC, &ss_kem);
    msg.sealed_static = t.seal(labels::KEY_INITIATOR_STATIC, &local.dh.public().0);
    t.absorb(&msg.sealed_static);
    t.absorb(&params.local_public.digest());
    t.mix(labels::MIX_SS, &local.dh.agree(&remote.dh)?);
    let payload = InitiationPayload {
        timestamp_unix_ns: params.timestamp_unix_ns,
        qkd_key_id: params
            .qkd
            .as_ref()
            .map(|k| k.key_id.clone())
            .unwrap_or_default(),
    };
    msg.sealed_payload = t.seal(labels::KEY_INITIATION_PAYLOAD, &payload.encode());
    t.absorb(&msg.sealed_payload);
    let state = InitiatorState {
        transcript: t,
        ephemeral_dh,
        ephemeral_kem,
        sender_index: params.sender_index,
        qkd: params.qkd,
    };
    Ok((msg.encode(), state))
}

/// A validated initiation, ready for a response once the QKD key (if any) is at hand.
pub struct ReceivedInitiation<P> {
    transcript: Transcript,
    initiator_ephemeral_dh: DhPublic,
    initiator_ephemeral_kem: KemPublic,
    /// The peer it came from, as returned by the lookup.
    pub peer: P,
    /// The initiator's session index.
    pub initiator_index: u32,
    /// The opened payload (timestamp, QKD key_ID).
    pub payload: InitiationPayload,
}

/// Opens an initiation addressed to `local`; `lookup` maps the initiator's static X25519 key
/// to a configured peer and its public identity.
pub fn consume_initiation<P>(
    local: &StaticIdentity,
    local_public: &PublicIdentity,
    suite: CipherSuite,
    message: &[u8],
    lookup: impl FnOnce(&DhPublic) -> Option<(P, PublicIdentity)>,
) -> Result<ReceivedInitiation<P>, HandshakeError> {
    let msg = Initiation::decode(message)?;
    check_suite(msg.suite, suite)?;
    let mut t = Transcript::new(local_public);
    t.absorb(&msg.public_part());
    let e_i = DhPublic(msg.ephemeral_dh);
    t.mix(labels::MIX_ES, &local.dh.agree(&e_i)?);
    t.mix(
        labels::MIX_KEM_RESPONDER_STATIC,
        &local.kem.decapsulate(&msg.kem_to_responder_static)?,
    );
    let static_bytes = t
        .open(labels::KEY_INITIATOR_STATIC, &msg.sealed_static)
        .map_err(|_| HandshakeError::NotForUs)?;
    let static_dh = DhPublic(
        static_bytes
            .as_slice()
            .try_into()
            .map_err(|_| HandshakeError::NotForUs)?,
    );
    t.absorb(&msg.sealed_static);
    let (peer, remote) =
        lookup(&static_dh).ok_or_else(|| HandshakeError::UnknownInitiator(hex8(&static_dh.0)))?;
    t.absorb(&remote.digest());
    t.mix(labels::MIX_SS, &local.dh.agree(&remote.dh)?);
    let payload = t
        .open(labels::KEY_INITIATION_PAYLOAD, &msg.sealed_payload)
        .map_err(|_| HandshakeError::InitiatorAuthFailed)?;
    t.absorb(&msg.sealed_payload);
    Ok(ReceivedInitiation {
        transcript: t,
        initiator_ephemeral_dh: e_i,
        initiator_ephemeral_kem: KemPublic::from_bytes(&msg.ephemeral_kem)?,
        peer,
        initiator_index: msg.sender_index,
        payload: InitiationPayload::decode(&payload)?,
    })
}

fn check_suite(offered: u8, ours: CipherSuite) -> Result<(), HandshakeError> {
    match CipherSuite::from_wire_id(offered) {
        Some(s) if s == ours => Ok(()),
        Some(s) => Err(HandshakeError::SuiteMismatch {
            offered: s.name().to_string(),
            ours,
        }),
        None => Err(HandshakeError::SuiteMismatch {
            offered: format!("unknown id {offered}"),
            ours,
        }),
    }
}

fn hex8(b: &[u8]) -> String {
    b[..8].iter().map(|x| format!("{x:02x}")).collect()
}

/// Builds the response to a validated initiation; `qkd` is the key named by its key_ID
/// (or `None` to answer without QKD). Returns the message and our session keys.
pub fn create_response<P>(
    received: ReceivedInitiation<P>,
    remote: &PublicIdentity,
    sender_index: u32,
    qkd: Option<&QkdKey>,
    eph: &mut dyn Ephemerals,
) -> Result<(Vec<u8>, SessionKeys), HandshakeError> {
    let mut t = received.transcript;
    let e_r = eph.dh()?;
    let (ct_e, ss_e) = eph.encapsulate(&received.initiator_ephemeral_kem)?;
    let (ct_s, ss_s) = eph.encapsulate(&remote.kem)?;
    let mut msg = Response {
        flags: if qkd.is_some() { RESPONSE_FLAG_QKD } else { 0 },
        sender_index,
        receiver_index: received.initiator_index,
        ephemeral_dh: e_r.public().0,
        kem_to_initiator_ephemeral: ct_e,
        kem_to_initiator_static: ct_s,
        confirm_classical: [0; 16],
        confirm_full: [0; 16],
    };
    t.absorb(&msg.public_part());
    t.mix(
        labels::MIX_EE,
        &e_r.agree(&received.initiator_ephemeral_dh)?,
    );
    t.mix(labels::MIX_SE, &e_r.agree(&remote.dh)?);
    t.mix(labels::MIX_KEM_EPHEMERAL, &ss_e);
    t.mix(labels::MIX_KEM_INITIATOR_STATIC, &ss_s);
    msg.confirm_classical = t.confirm_classical();
    t.absorb(&msg.confirm_classical);
    t.mix_qkd(qkd);
    msg.confirm_full = t.confirm_full();
    let (send, receive) = t.traffic(false);
    let keys = SessionKeys {
        send,
        receive,
        local_index: sender_index,
        remote_index: received.initiator_index,
        is_initiator: false,
        qkd_key_id: qkd.map(|k| String::from_utf8_lossy(&k.key_id).into_owned()),
    };
    Ok((msg.encode(), keys))
}

/// Opens the response to our initiation and confirms the keys: classical tag first, then
/// the full tag, so a QKD mismatch is told apart from a broken handshake.
pub fn consume_response(
    local: &StaticIdentity,
    state: &InitiatorState,
    message: &[u8],
) -> Result<SessionKeys, HandshakeError> {
    let msg = Response::decode(message)?;
    if msg.receiver_index != state.sender_index {
        return Err(HandshakeError::Wire(WireError::BadField(
            "response receiver index",
        )));
    }
    let mut t = state.transcript.clone();
    t.absorb(&msg.public_part());
    let e_r = DhPublic(msg.ephemeral_dh);
    t.mix(labels::MIX_EE, &state.ephemeral_dh.agree(&e_r)?);
    t.mix(labels::MIX_SE, &local.dh.agree(&e_r)?);
    t.mix(
        labels::MIX_KEM_EPHEMERAL,
        &state
            .ephemeral_kem
            .decapsulate(&msg.kem_to_initiator_ephemeral)?,
    );
    t.mix(
        labels::MIX_KEM_INITIATOR_STATIC,
        &local.kem.decapsulate(&msg.kem_to_initiator_static)?,
    );
    if !ct_eq(&t.confirm_classical(), &msg.confirm_classical) {
        return Err(HandshakeError::ClassicalConfirmationFailed);
    }
    t.absorb(&msg.confirm_classical);
    let qkd_claimed = msg.flags & RESPONSE_FLAG_QKD != 0;
    let qkd = match (qkd_claimed, state.qkd.as_ref()) {
        (true, None) => return Err(HandshakeError::UnexpectedQkd),
        (true, Some(k)) => Some(k),
        (false, _) => None,
    };
    t.mix_qkd(qkd);
    if !ct_eq(&t.confirm_full(), &msg.confirm_full) {
        return Err(HandshakeError::QkdKeyMismatch);
    }
    let (send, receive) = t.traffic(true);
    Ok(SessionKeys {
        send,
        receive,
        local_index: state.sender_index,
        remote_index: msg.sender_index,
        is_initiator: true,
        qkd_key_id: qkd.map(|k| String::from_utf8_lossy(&k.key_id).into_owned()),
    })
}

/// Constant-time equality of two tags.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

/// The response's index fields, readable before the expensive work (routing to the
/// pending handshake).
pub fn response_receiver_index(message: &[u8]) -> Result<u32, WireError> {
    Ok(Response::decode(message)?.receiver_index)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Site {
        id: StaticIdentity,
        public: PublicIdentity,
    }

    fn site() -> Site {
        let id = StaticIdentity::generate().unwrap();
        let public = id.public();
        Site { id, public }
    }

    fn qkd(id: &str, byte: u8) -> QkdKey {
        QkdKey {
            key_id: id.as_bytes().to_vec(),
            material: Zeroizing::new(vec![byte; 32]),
        }
    }

    fn run(
        a: &Site,
        b: &Site,
        qa: Option<QkdKey>,
        qb: Option<QkdKey>,
    ) -> Result<(SessionKeys, SessionKeys), HandshakeError> {
        let params = InitiationParams {
            suite: CipherSuite::Aes256Gcm,
            sender_index: 11,
            timestamp_unix_ns: 5,
            qkd: qa,
            local_public: &a.public,
        };
        let (init, state) = create_initiation(&a.id, &b.public, params, &mut FreshEphemerals)?;
        let a_pub = a.public.clone();
        let rx = consume_initiation(&b.id, &b.public, CipherSuite::Aes256Gcm, &init, |k| {
            (*k == a_pub.dh).then(|| ((), a_pub.clone()))
        })?;
        let (resp, kb) = create_response(rx, &a.public, 22, qb.as_ref(), &mut FreshEphemerals)?;
        let ka = consume_response(&a.id, &state, &resp)?;
        Ok((ka, kb))
    }

    #[test]
    fn both_sides_derive_mirrored_keys() {
        let (a, b) = (site(), site());
        let (ka, kb) = run(&a, &b, None, None).unwrap();
        assert_eq!(ka.send, kb.receive);
        assert_eq!(ka.receive, kb.send);
        assert_ne!(ka.send, ka.receive);
        assert_eq!(
            (
                ka.local_index,
                ka.remote_index,
                kb.local_index,
                kb.remote_index
            ),
            (11, 22, 22, 11)
        );
    }

    #[test]
    fn qkd_key_changes_the_session_keys() {
        let (a, b) = (site(), site());
        let (ka, kb) = run(&a, &b, Some(qkd("k1", 1)), Some(qkd("k1", 1))).unwrap();
        assert_eq!(ka.send, kb.receive);
        assert!(ka.qkd_mixed() && kb.qkd_mixed());
        assert_eq!(ka.qkd_key_id.as_deref(), Some("k1"));
    }

    #[test]
    fn qkd_mismatch_is_named() {
        let (a, b) = (site(), site());
        let err = run(&a, &b, Some(qkd("k1", 1)), Some(qkd("k1", 2)))
            .err()
            .unwrap();
        assert_eq!(err, HandshakeError::QkdKeyMismatch);
    }

    #[test]
    fn unknown_initiator_and_wrong_responder_key() {
        let (a, b, c) = (site(), site(), site());
        let params = InitiationParams {
            suite: CipherSuite::Aes256Gcm,
            sender_index: 1,
            timestamp_unix_ns: 1,
            qkd: None,
            local_public: &a.public,
        };
        let (init, _) = create_initiation(&a.id, &b.public, params, &mut FreshEphemerals).unwrap();
        let err = consume_initiation(&b.id, &b.public, CipherSuite::Aes256Gcm, &init, |_| {
            None::<((), PublicIdentity)>
        })
        .err()
        .unwrap();
        assert!(matches!(err, HandshakeError::UnknownInitiator(_)));
        // c is not b: the sealed static key does not open.
        let err = consume_initiation(&c.id, &c.public, CipherSuite::Aes256Gcm, &init, |_| {
            None::<((), PublicIdentity)>
        })
        .err()
        .unwrap();
        assert!(matches!(
            err,
            HandshakeError::NotForUs | HandshakeError::Crypto(_)
        ));
    }
}
