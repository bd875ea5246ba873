//! The wire format: message types, the data header, handshake fragments and the two
//! handshake messages, each with an encoder and a decoder that never panics on bad input.
//! All integers are little-endian. `docs/protocol.md` has the field tables.

use crate::constants::{DATA_HEADER_BYTES, MAX_HANDSHAKE_DATAGRAM_BYTES};
use crate::crypto::dh::X25519_PUBLIC_BYTES;
use crate::crypto::kem::{MLKEM768_CIPHERTEXT_BYTES, MLKEM768_PUBLIC_BYTES};

/// First byte of a handshake-initiation fragment.
pub const TYPE_INITIATION: u8 = 1;
/// First byte of a handshake-response fragment.
pub const TYPE_RESPONSE: u8 = 2;
/// First byte of a cookie reply.
pub const TYPE_COOKIE_REPLY: u8 = 3;
/// First byte of a data message.
pub const TYPE_DATA: u8 = 4;

/// Fragment header: type, index, count, reserved, sender index (4), message length (2), reserved (2).
pub const FRAGMENT_HEADER_BYTES: usize = 12;
/// mac1 and mac2, 16 bytes each, closing every fragment.
pub const FRAGMENT_MACS_BYTES: usize = 32;
/// Bytes of message carried per fragment at most.
pub const FRAGMENT_PAYLOAD_MAX_BYTES: usize =
    MAX_HANDSHAKE_DATAGRAM_BYTES - FRAGMENT_HEADER_BYTES - FRAGMENT_MACS_BYTES;
/// A handshake message spans at most this many fragments.
pub const FRAGMENTS_MAX: usize = 4;
/// Cookie reply: type+reserved (4), receiver index (4), nonce (12), sealed cookie (32).
pub const COOKIE_REPLY_BYTES: usize = 4 + 4 + 12 + 16 + 16;
/// AEAD tag on handshake fields.
pub const SEAL_TAG_BYTES: usize = 16;
/// Longest QKD key_ID carried in an initiation, in bytes.
pub const QKD_KEY_ID_MAX_BYTES: usize = 128;

/// Why a datagram or message could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Empty datagram or unknown first byte.
    #[error("unknown message type")]
    UnknownType,
    /// Shorter than its fixed fields.
    #[error("truncated message")]
    Truncated,
    /// Longer than allowed.
    #[error("oversized message")]
    Oversized,
    /// A field holds a value outside its domain (reserved bits set, bad count, bad length).
    #[error("malformed field: {0}")]
    BadField(&'static str),
}

/// Reads a little-endian u32 at `at` (caller checked the length).
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

// ---------------------------------------------------------------- data header

/// The 16-byte header of a data message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataHeader {
    /// The receiver's session index.
    pub receiver_index: u32,
    /// Packet counter (the AEAD nonce).
    pub counter: u64,
}

impl DataHeader {
    /// Writes the header into the first 16 bytes of `out`.
    pub fn write(&self, out: &mut [u8]) {
        out[0] = TYPE_DATA;
        out[1..4].fill(0);
        out[4..8].copy_from_slice(&self.receiver_index.to_le_bytes());
        out[8..16].copy_from_slice(&self.counter.to_le_bytes());
    }

    /// Parses the header of a data datagram (type byte already checked by the caller or here).
    pub fn parse(b: &[u8]) -> Result<Self, WireError> {
        if b.len() < DATA_HEADER_BYTES + SEAL_TAG_BYTES {
            return Err(WireError::Truncated);
        }
        if b[0] != TYPE_DATA {
            return Err(WireError::UnknownType);
        }
        if b[1..4] != [0, 0, 0] {
            return Err(WireError::BadField("data reserved bytes"));
        }
        let counter = u64::from_le_bytes(b[8..16].try_into().expect("8 bytes"));
        Ok(Self {
            receiver_index: u32_at(b, 4),
            counter,
        })
    }
}

// ---------------------------------------------------------------- fragments

/// The parsed header of one handshake fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentHeader {
    /// [`TYPE_INITIATION`] or [`TYPE_RESPONSE`].
    pub msg_type: u8,
    /// Position of this fragment, from 0.
    pub index: u8,
    /// Number of fragments of the message.
    pub count: u8,
    /// The sender's session index (identifies the message being reassembled).
    pub sender_index: u32,
    /// Length of the whole message in bytes.
    pub message_len: u16,
}

/// Number of fragments a message of `len` bytes needs.
pub fn fragment_count(len: usize) -> usize {
    len.div_ceil(FRAGMENT_PAYLOAD_MAX_BYTES).max(1)
}

impl FragmentHeader {
    /// Bytes of message this fragment must carry, from the header alone.
    pub fn expected_payload_len(&self) -> usize {
        let len = usize::from(self.message_len);
        let before = usize::from(self.index) * FRAGMENT_PAYLOAD_MAX_BYTES;
        (len - before).min(FRAGMENT_PAYLOAD_MAX_BYTES)
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[self.msg_type, self.index, self.count, 0]);
        out.extend_from_slice(&self.sender_index.to_le_bytes());
        out.extend_from_slice(&self.message_len.to_le_bytes());
        out.extend_from_slice(&[0, 0]);
    }
}

/// A handshake fragment as received: header and borrowed pieces of the datagram.
#[derive(Debug, Clone, Copy)]
pub struct Fragment<'a> {
    /// The header.
    pub header: FragmentHeader,
    /// This fragment's share of the message.
    pub payload: &'a [u8],
    /// Bytes covered by mac1 (header and payload).
    pub mac1_input: &'a [u8],
    /// The mac1 field.
    pub mac1: &'a [u8; 16],
    /// Bytes covered by mac2 (header, payload and mac1).
    pub mac2_input: &'a [u8],
    /// The mac2 field (all zero when the sender had no cookie).
    pub mac2: &'a [u8; 16],
}

/// Parses and checks a handshake fragment: counts, lengths, reserved bytes.
pub fn parse_fragment(b: &[u8]) -> Result<Fragment<'_>, WireError> {
    if b.len() > MAX_HANDSHAKE_DATAGRAM_BYTES {
        return Err(WireError::Oversized);
    }
    if b.len() < FRAGMENT_HEADER_BYTES + FRAGMENT_MACS_BYTES + 1 {
        return Err(WireError::Truncated);
    }
    let header = parse_fragment_header(b)?;
    let payload_len = b.len() - FRAGMENT_HEADER_BYTES - FRAGMENT_MACS_BYTES;
    if payload_len != header.expected_payload_len() {
        return Err(WireError::BadField("fragment length"));
    }
    let mac1_at = FRAGMENT_HEADER_BYTES + payload_len;
    Ok(Fragment {
        header,
        payload: &b[FRAGMENT_HEADER_BYTES..mac1_at],
        mac1_input: &b[..mac1_at],
        mac1: b[mac1_at..mac1_at + 16].try_into().expect("16 bytes"),
        mac2_input: &b[..mac1_at + 16],
        mac2: b[mac1_at + 16..mac1_at + 32].try_into().expect("16 bytes"),
    })
}

fn parse_fragment_header(b: &[u8]) -> Result<FragmentHeader, WireError> {
    let (msg_type, index, count) = (b[0], b[1], b[2]);
    if msg_type != TYPE_INITIATION && msg_type != TYPE_RESPONSE {
        return Err(WireError::UnknownType);
    }
    if b[3] != 0 || b[10] != 0 || b[11] != 0 {
        return Err(WireError::BadField("fragment reserved bytes"));
    }
    let message_len = u16::from_le_bytes([b[8], b[9]]);
    let len = usize::from(message_len);
    if len == 0 || len > FRAGMENTS_MAX * FRAGMENT_PAYLOAD_MAX_BYTES {
        return Err(WireError::BadField("message length"));
    }
    if usize::from(count) != fragment_count(len) || index >= count {
        return Err(WireError::BadField("fragment index or count"));
    }
    Ok(FragmentHeader {
        msg_type,
        index,
        count,
        sender_index: u32_at(b, 4),
        message_len,
    })
}

/// Splits `message` into fragments; each is `header ‖ payload` with room left for the MACs,
/// which the caller appends (they depend on the receiver's key and the cookie).
pub fn split_message(msg_type: u8, sender_index: u32, message: &[u8]) -> Vec<Vec<u8>> {
    let count = fragment_count(message.len());
    debug_assert!(count <= FRAGMENTS_MAX && message.len() <= usize::from(u16::MAX));
    message
        .chunks(FRAGMENT_PAYLOAD_MAX_BYTES)
        .enumerate()
        .map(|(i, chunk)| {
            let mut out = Vec::with_capacity(MAX_HANDSHAKE_DATAGRAM_BYTES);
            let header = FragmentHeader {
                msg_type,
                index: i as u8,
                count: count as u8,
                sender_index,
                message_len: message.len() as u16,
            };
            header.write(&mut out);
            out.extend_from_slice(chunk);
            out
        })
        .collect()
}

// ---------------------------------------------------------------- handshake messages

/// Handshake initiation, the first message (reassembled from its fragments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Initiation {
    /// Cipher suite wire id the initiator will use for data.
    pub suite: u8,
    /// Initiator's session index.
    pub sender_index: u32,
    /// Initiator's ephemeral X25519 public key.
    pub ephemeral_dh: [u8; X25519_PUBLIC_BYTES],
    /// Initiator's ephemeral ML-KEM-768 encapsulation key.
    pub ephemeral_kem: Vec<u8>,
    /// ML-KEM ciphertext to the responder's static key.
    pub kem_to_responder_static: Vec<u8>,
    /// Sealed initiator static X25519 public key (32 + tag).
    pub sealed_static: Vec<u8>,
    /// Sealed payload (timestamp, QKD key_ID) + tag.
    pub sealed_payload: Vec<u8>,
}

/// Fixed-size part of an initiation, in bytes (everything before the sealed payload).
pub const INITIATION_FIXED_BYTES: usize = 4
    + 4
    + X25519_PUBLIC_BYTES
    + MLKEM768_PUBLIC_BYTES
    + MLKEM768_CIPHERTEXT_BYTES
    + X25519_PUBLIC_BYTES
    + SEAL_TAG_BYTES;
/// Sealed payload sizes: timestamp (8) + key_ID length (1) + key_ID, plus tag.
pub const INITIATION_PAYLOAD_MIN_BYTES: usize = 8 + 1 + SEAL_TAG_BYTES;

impl Initiation {
    /// The transcript-bound prefix: every field except the sealed parts.
    pub fn public_part(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(INITIATION_FIXED_BYTES);
        v.extend_from_slice(&[self.suite, 0, 0, 0]);
        v.extend_from_slice(&self.sender_index.to_le_bytes());
        v.extend_from_slice(&self.ephemeral_dh);
        v.extend_from_slice(&self.ephemeral_kem);
        v.extend_from_slice(&self.kem_to_responder_static);
        v
    }

    /// The encoded message.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = self.public_part();
        v.extend_from_slice(&self.sealed_static);
        v.extend_from_slice(&self.sealed_payload);
        v
    }

    /// Decodes a reassembled initiation.
    pub fn decode(b: &[u8]) -> Result<Self, WireError> {
        let max = INITIATION_FIXED_BYTES + INITIATION_PAYLOAD_MIN_BYTES + QKD_KEY_ID_MAX_BYTES;
        if b.len() < INITIATION_FIXED_BYTES + INITIATION_PAYLOAD_MIN_BYTES {
            return Err(WireError::Truncated);
        }
        if b.len() > max {
            return Err(WireError::Oversized);
        }
        if b[1..4] != [0, 0, 0] {
            return Err(WireError::BadField("initiation reserved bytes"));
        }
        let mut r = Reader { b, at: 4 };
        let sender_index = r.u32();
        Ok(Self {
            suite: b[0],
            sender_index,
            ephemeral_dh: r.take(X25519_PUBLIC_BYTES).try_into().expect("32 bytes"),
            ephemeral_kem: r.take(MLKEM768_PUBLIC_BYTES).to_vec(),
            kem_to_responder_static: r.take(MLKEM768_CIPHERTEXT_BYTES).to_vec(),
            sealed_static: r.take(X25519_PUBLIC_BYTES + SEAL_TAG_BYTES).to_vec(),
            sealed_payload: r.rest().to_vec(),
        })
    }
}

/// Handshake response, the second message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Flags: bit 0 = a QKD key was mixed in. Other bits zero.
    pub flags: u8,
    /// Responder's session index.
    pub sender_index: u32,
    /// The initiator's session index (from the initiation).
    pub receiver_index: u32,
    /// Responder's ephemeral X25519 public key.
    pub ephemeral_dh: [u8; X25519_PUBLIC_BYTES],
    /// ML-KEM ciphertext to the initiator's ephemeral key.
    pub kem_to_initiator_ephemeral: Vec<u8>,
    /// ML-KEM ciphertext to the initiator's static key.
    pub kem_to_initiator_static: Vec<u8>,
    /// Classical confirmation tag (before the QKD key is mixed).
    pub confirm_classical: [u8; 16],
    /// Full confirmation: AEAD tag over nothing, after every secret.
    pub confirm_full: [u8; 16],
}

/// Response flag: the responder mixed a QKD key into this session.
pub const RESPONSE_FLAG_QKD: u8 = 1;
/// Encoded response length in bytes.
pub const RESPONSE_BYTES: usize =
    4 + 4 + 4 + X25519_PUBLIC_BYTES + 2 * MLKEM768_CIPHERTEXT_BYTES + 16 + 16;

impl Response {
    /// The transcript-bound prefix (everything but the two confirmation tags).
    pub fn public_part(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(RESPONSE_BYTES);
        v.extend_from_slice(&[self.flags, 0, 0, 0]);
        v.extend_from_slice(&self.sender_index.to_le_bytes());
        v.extend_from_slice(&self.receiver_index.to_le_bytes());
        v.extend_from_slice(&self.ephemeral_dh);
        v.extend_from_slice(&self.kem_to_initiator_ephemeral);
        v.extend_from_slice(&self.kem_to_initiator_static);
        v
    }

    /// The encoded message.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = self.public_part();
        v.extend_from_slice(&self.confirm_classical);
        v.extend_from_slice(&self.confirm_full);
        v
    }

    /// Decodes a reassembled response.
    pub fn decode(b: &[u8]) -> Result<Self, WireError> {
        match b.len().cmp(&RESPONSE_BYTES) {
            std::cmp::Ordering::Less => return Err(WireError::Truncated),
            std::cmp::Ordering::Greater => return Err(WireError::Oversized),
            std::cmp::Ordering::Equal => {}
        }
        if b[0] & !RESPONSE_FLAG_QKD != 0 || b[1..4] != [0, 0, 0] {
            return Err(WireError::BadField("response flags or reserved bytes"));
        }
        let mut r = Reader { b, at: 4 };
        Ok(Self {
            flags: b[0],
            sender_index: r.u32(),
            receiver_index: r.u32(),
            ephemeral_dh: r.take(X25519_PUBLIC_BYTES).try_into().expect("32 bytes"),
            kem_to_initiator_ephemeral: r.take(MLKEM768_CIPHERTEXT_BYTES).to_vec(),
            kem_to_initiator_static: r.take(MLKEM768_CIPHERTEXT_BYTES).to_vec(),
            confirm_classical: r.take(16).try_into().expect("16 bytes"),
            confirm_full: r.take(16).try_into().expect("16 bytes"),
        })
    }
}

/// The plaintext inside an initiation's sealed payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitiationPayload {
    /// Initiator's wall clock, nanoseconds since the Unix epoch (replay protection).
    pub timestamp_unix_ns: u64,
    /// The QKD key_ID the responder must fetch (`dec_keys`), empty when none.
    pub qkd_key_id: Vec<u8>,
}

impl InitiationPayload {
    /// Encodes `timestamp(8) ‖ key_id_len(1) ‖ key_id`.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(9 + self.qkd_key_id.len());
        v.extend_from_slice(&self.timestamp_unix_ns.to_le_bytes());
        v.push(self.qkd_key_id.len() as u8);
        v.extend_from_slice(&self.qkd_key_id);
        v
    }

    /// Decodes the opened payload.
    pub fn decode(b: &[u8]) -> Result<Self, WireError> {
        if b.len() < 9 {
            return Err(WireError::Truncated);
        }
        let id_len = usize::from(b[8]);
        if id_len > QKD_KEY_ID_MAX_BYTES || b.len() != 9 + id_len {
            return Err(WireError::BadField("QKD key_ID length"));
        }
        Ok(Self {
            timestamp_unix_ns: u64::from_le_bytes(b[..8].try_into().expect("8 bytes")),
            qkd_key_id: b[9..].to_vec(),
        })
    }
}

// ---------------------------------------------------------------- cookie reply

/// A cookie reply: the responder's answer to a handshake fragment under load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieReply {
    /// The sender index of the fragment that triggered it.
    pub receiver_index: u32,
    /// Random AEAD nonce.
    pub nonce: [u8; 12],
    /// Sealed 16-byte cookie + tag.
    pub sealed_cookie: [u8; 32],
}

impl CookieReply {
    /// The encoded datagram.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(COOKIE_REPLY_BYTES);
        v.extend_from_slice(&[TYPE_COOKIE_REPLY, 0, 0, 0]);
        v.extend_from_slice(&self.receiver_index.to_le_bytes());
        v.extend_from_slice(&self.nonce);
        v.extend_from_slice(&self.sealed_cookie);
        v
    }

    /// Decodes a cookie-reply datagram.
    pub fn decode(b: &[u8]) -> Result<Self, WireError> {
        if b.len() != COOKIE_REPLY_BYTES {
            return Err(if b.len() < COOKIE_REPLY_BYTES {
                WireError::Truncated
            } else {
                WireError::Oversized
            });
        }
        if b[0] != TYPE_COOKIE_REPLY {
            return Err(WireError::UnknownType);
        }
        if b[1..4] != [0, 0, 0] {
            return Err(WireError::BadField("cookie reserved bytes"));
        }
        Ok(Self {
            receiver_index: u32_at(b, 4),
            nonce: b[8..20].try_into().expect("12 bytes"),
            sealed_cookie: b[20..52].try_into().expect("32 bytes"),
        })
    }
}

/// A cursor over a buffer whose length the caller has checked.
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let s = &self.b[self.at..self.at + n];
        self.at += n;
        s
    }

    fn u32(&mut self) -> u32 {
        let v = u32_at(self.b, self.at);
        self.at += 4;
        v
    }

    fn rest(&mut self) -> &'a [u8] {
        let s = &self.b[self.at..];
        self.at = self.b.len();
        s
    }
}
