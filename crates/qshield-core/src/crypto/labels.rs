//! Every domain-separation label of the key schedule and the MACs, in one place.
//! Changing any byte here changes the protocol: the test vectors in `tests/` pin them.
//! `docs/protocol.md` shows where each one enters.

/// Initial chaining key = SHA-256(PROTOCOL); also the transcript hash's first input.
pub const PROTOCOL: &[u8] = b"qshield v1: X25519 + ML-KEM-768 + QKD, HKDF-SHA-256";

/// mac1 key = SHA-256(MAC1 ‖ receiver's static X25519 public key).
pub const MAC1: &[u8] = b"qshield v1 mac1";
/// Cookie-reply encryption key = SHA-256(COOKIE_KEY ‖ sender's static X25519 public key).
pub const COOKIE_KEY: &[u8] = b"qshield v1 cookie key";
/// Cookie value = HMAC(rotating secret, COOKIE_VALUE ‖ source address ‖ source port).
pub const COOKIE_VALUE: &[u8] = b"qshield v1 cookie value";

/// Mixed with DH(initiator ephemeral, responder static).
pub const MIX_ES: &[u8] = b"qshield v1 mix es";
/// Mixed with the ML-KEM secret encapsulated to the responder's static key.
pub const MIX_KEM_RESPONDER_STATIC: &[u8] = b"qshield v1 mix kem-sr";
/// Mixed with DH(initiator static, responder static).
pub const MIX_SS: &[u8] = b"qshield v1 mix ss";
/// Mixed with DH(responder ephemeral, initiator ephemeral).
pub const MIX_EE: &[u8] = b"qshield v1 mix ee";
/// Mixed with DH(responder ephemeral, initiator static).
pub const MIX_SE: &[u8] = b"qshield v1 mix se";
/// Mixed with the ML-KEM secret encapsulated to the initiator's ephemeral key.
pub const MIX_KEM_EPHEMERAL: &[u8] = b"qshield v1 mix kem-e";
/// Mixed with the ML-KEM secret encapsulated to the initiator's static key.
pub const MIX_KEM_INITIATOR_STATIC: &[u8] = b"qshield v1 mix kem-si";
/// Mixed with the QKD key delivered by the KME (after every asymmetric secret).
pub const MIX_QKD: &[u8] = b"qshield v1 mix qkd";
/// Mixed (with no secret) when the session has no QKD key, so the two cases never collide.
pub const MIX_NO_QKD: &[u8] = b"qshield v1 mix no-qkd";

/// Key that seals the initiator's static public key in the initiation.
pub const KEY_INITIATOR_STATIC: &[u8] = b"qshield v1 key initiator-static";
/// Key that seals the initiation payload (timestamp, QKD key_ID).
pub const KEY_INITIATION_PAYLOAD: &[u8] = b"qshield v1 key initiation-payload";
/// Key of the classical confirmation tag (before the QKD mix).
pub const KEY_CONFIRM_CLASSICAL: &[u8] = b"qshield v1 key confirm-classical";
/// Key of the full confirmation (AEAD of nothing, after the QKD mix).
pub const KEY_CONFIRM_FULL: &[u8] = b"qshield v1 key confirm-full";
/// Traffic key, initiator to responder.
pub const TRAFFIC_INITIATOR_TO_RESPONDER: &[u8] = b"qshield v1 traffic i->r";
/// Traffic key, responder to initiator.
pub const TRAFFIC_RESPONDER_TO_INITIATOR: &[u8] = b"qshield v1 traffic r->i";
