//! The quantum channel of a simulated device pair carried as real traffic: the pulses of
//! one block ([`QuantumBlock`], Wigner samples standing for the coherent states) framed on
//! a plain TCP stream from Alice's KME to Bob's (light is not encrypted; Eve may sit on
//! it). A frame is `"QSQ1"`, the payload length (u32, big-endian) and the payload
//! (postcard). The receiver bounds the length by the block size it expects and allocates
//! only as the bytes arrive, so a sender cannot make it allocate more than it sends or more
//! than one block; [`frame_deadline`] bounds how long a frame may take.

use crate::cvqkd::sim::QuantumBlock;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Frame magic and version.
pub const FRAME_MAGIC: [u8; 4] = *b"QSQ1";
/// Payload bytes per pulse (two f64 quadratures) plus slack for the postcard lengths.
const PAYLOAD_BYTES_PER_PULSE: u64 = 16;
/// Fixed payload overhead allowed besides the pulses, bytes.
const PAYLOAD_SLACK_BYTES: u64 = 64;
/// Time any frame may take, besides its bytes at [`FRAME_MIN_BYTES_PER_SECOND`].
pub const FRAME_BASE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// Slowest sending rate a frame's deadline allows for, bytes per second.
pub const FRAME_MIN_BYTES_PER_SECOND: u64 = 1 << 20;
/// Bytes read into a frame at once: a frame's buffer grows only as its bytes arrive.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Why a quantum frame was refused.
#[derive(Debug, thiserror::Error)]
pub enum QuantumChannelError {
    /// The stream failed or closed mid-frame.
    #[error("quantum channel: {0}")]
    Io(#[from] std::io::Error),
    /// The frame does not start with the magic.
    #[error("quantum channel: not a pulse frame (bad magic)")]
    BadMagic,
    /// The payload is longer than a block of the expected size can be.
    #[error("quantum channel: frame of {got} bytes exceeds {max} for blocks of {pulses} pulses")]
    TooLong {
        /// Announced payload length.
        got: u64,
        /// Largest allowed.
        max: u64,
        /// Expected pulses per block.
        pulses: u64,
    },
    /// The payload does not decode, or its two quadratures differ in length.
    #[error("quantum channel: malformed pulse block ({0})")]
    Malformed(String),
    /// The block has another size than the protocol's (or, for a relay, more pulses than
    /// its bound).
    #[error("quantum channel: block of {got} pulses, expected {expected}")]
    WrongSize {
        /// Pulses in the frame.
        got: usize,
        /// Pulses expected.
        expected: u64,
    },
}

/// Largest payload accepted for blocks of `pulses`.
pub fn max_payload(pulses: u64) -> u64 {
    pulses
        .saturating_mul(PAYLOAD_BYTES_PER_PULSE)
        .saturating_add(PAYLOAD_SLACK_BYTES)
}

/// How long a receiver gives one frame of a block of `pulses` (from the connection's
/// start): [`FRAME_BASE_TIMEOUT`] plus its largest payload at
/// [`FRAME_MIN_BYTES_PER_SECOND`]. A slower sender is cut off.
pub fn frame_deadline(pulses: u64) -> std::time::Duration {
    FRAME_BASE_TIMEOUT
        + std::time::Duration::from_secs(max_payload(pulses) / FRAME_MIN_BYTES_PER_SECOND)
}

/// Encodes one block as a frame.
pub fn encode(block: &QuantumBlock) -> Vec<u8> {
    let payload = postcard::to_stdvec(block).expect("a pulse block always serializes");
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.extend_from_slice(&FRAME_MAGIC);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&payload);
    out
}

/// Decodes a frame's payload and checks the block has `pulses` pulses.
pub fn decode_payload(payload: &[u8], pulses: u64) -> Result<QuantumBlock, QuantumChannelError> {
    let block = decode_any_size(payload)?;
    if block.len() as u64 != pulses {
        return Err(QuantumChannelError::WrongSize {
            got: block.len(),
            expected: pulses,
        });
    }
    Ok(block)
}

/// Decodes a frame's payload whatever its block size.
fn decode_any_size(payload: &[u8]) -> Result<QuantumBlock, QuantumChannelError> {
    let block: QuantumBlock =
        postcard::from_bytes(payload).map_err(|e| QuantumChannelError::Malformed(e.to_string()))?;
    if block.x.len() != block.p.len() {
        return Err(QuantumChannelError::Malformed(
            "quadratures of different lengths".into(),
        ));
    }
    Ok(block)
}

/// Writes one block to the stream.
pub async fn send<W: AsyncWriteExt + Unpin>(
    w: &mut W,
    block: &QuantumBlock,
) -> Result<(), QuantumChannelError> {
    w.write_all(&encode(block)).await?;
    w.flush().await?;
    Ok(())
}

/// Reads one block of exactly `pulses` pulses; `Ok(None)` at a clean end of stream.
pub async fn receive<R: AsyncReadExt + Unpin>(
    r: &mut R,
    pulses: u64,
) -> Result<Option<QuantumBlock>, QuantumChannelError> {
    let Some(payload) = read_frame(r, pulses).await? else {
        return Ok(None);
    };
    decode_payload(&payload, pulses).map(Some)
}

/// Reads one block of at most `max_pulses` pulses (for a relay that does not know the
/// protocol's block size); `Ok(None)` at a clean end of stream.
pub async fn receive_at_most<R: AsyncReadExt + Unpin>(
    r: &mut R,
    max_pulses: u64,
) -> Result<Option<QuantumBlock>, QuantumChannelError> {
    let Some(payload) = read_frame(r, max_pulses).await? else {
        return Ok(None);
    };
    // The byte bound leaves slack for postcard's lengths: check the pulses themselves.
    let block = decode_any_size(&payload)?;
    if block.len() as u64 > max_pulses {
        return Err(QuantumChannelError::WrongSize {
            got: block.len(),
            expected: max_pulses,
        });
    }
    Ok(Some(block))
}

async fn read_frame<R: AsyncReadExt + Unpin>(
    r: &mut R,
    pulses: u64,
) -> Result<Option<Vec<u8>>, QuantumChannelError> {
    let mut header = [0u8; 8];
    match r.read_exact(&mut header[..1]).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    r.read_exact(&mut header[1..]).await?;
    if header[..4] != FRAME_MAGIC {
        return Err(QuantumChannelError::BadMagic);
    }
    let len = u64::from(u32::from_be_bytes(header[4..].try_into().expect("4 bytes")));
    let max = max_payload(pulses);
    if len > max {
        return Err(QuantumChannelError::TooLong {
            got: len,
            max,
            pulses,
        });
    }
    let len = len as usize;
    let mut payload = Vec::new();
    while payload.len() < len {
        let chunk = READ_CHUNK_BYTES.min(len - payload.len());
        let start = payload.len();
        payload.resize(start + chunk, 0);
        r.read_exact(&mut payload[start..]).await?;
    }
    Ok(Some(payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(n: usize) -> QuantumBlock {
        QuantumBlock {
            block_id: 7,
            x: (0..n).map(|i| i as f64 * 0.5).collect(),
            p: (0..n).map(|i| -(i as f64)).collect(),
        }
    }

    #[tokio::test]
    async fn frames_round_trip_and_fit_the_bound() {
        let b = block(1000);
        let frame = encode(&b);
        assert!((frame.len() as u64 - 8) <= max_payload(1000));
        let mut r = &frame[..];
        assert_eq!(receive(&mut r, 1000).await.unwrap(), Some(b));
        assert!(receive(&mut r, 1000).await.unwrap().is_none(), "clean end");
    }

    #[tokio::test]
    async fn refuses_bad_frames_without_allocating_their_length() {
        let frame = encode(&block(1000));
        let e = receive(&mut &frame[..], 10).await.unwrap_err();
        assert!(matches!(e, QuantumChannelError::TooLong { .. }), "{e}");
        let e = receive(&mut &frame[..], 1001).await.unwrap_err();
        assert!(matches!(e, QuantumChannelError::WrongSize { .. }), "{e}");
        let mut bad = frame.clone();
        bad[0] = b'X';
        let e = receive(&mut &bad[..], 1000).await.unwrap_err();
        assert!(matches!(e, QuantumChannelError::BadMagic), "{e}");
        let mut junk = frame[..8].to_vec();
        junk.extend_from_slice(&vec![0xff; frame.len() - 8]);
        let e = receive(&mut &junk[..], 1000).await.unwrap_err();
        assert!(matches!(e, QuantumChannelError::Malformed(_)), "{e}");
        let e = receive(&mut &frame[..20], 1000).await.unwrap_err();
        assert!(matches!(e, QuantumChannelError::Io(_)), "truncated: {e}");
    }

    /// Found by fuzz target cvqkd_wire: the length bound leaves slack for postcard's
    /// lengths, room for a few pulses more than `max_pulses`, and `receive_at_most` (Eve's
    /// relay) handed such a block on.
    #[tokio::test]
    async fn at_most_refuses_a_block_larger_than_its_bound_within_the_slack() {
        let frame = encode(&block(18));
        assert!(
            (frame.len() as u64 - 8) <= max_payload(16),
            "within the byte bound"
        );
        let e = receive_at_most(&mut &frame[..], 16).await.unwrap_err();
        assert!(matches!(e, QuantumChannelError::WrongSize { .. }), "{e}");
        let frame = encode(&block(12));
        let got = receive_at_most(&mut &frame[..], 16).await.unwrap();
        assert_eq!(got.map(|b| b.len()), Some(12), "smaller blocks pass");
    }
}
