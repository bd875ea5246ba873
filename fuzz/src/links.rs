//! The link-push action the `kme_link_push` and `kme_relay` targets share: blocks pushed
//! by a caller (mostly `kme-a`, the leader of the link this KME follows), with sequence
//! numbers near the next one expected or anywhere, as JSON or as raw bytes.

use crate::kme::{Kme, push_json};
use crate::requests::caller;
use arbitrary::Arbitrary;
use axum::http::Method;

/// A block's sequence number.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Seq {
    /// The next expected plus this.
    Next(u8),
    /// Any.
    Any(u64),
}

/// One push.
#[derive(Arbitrary, Debug)]
pub struct Push {
    /// `None`: `kme-a`; else `CALLERS[i % 8]`.
    pub caller: Option<u8>,
    /// Sequence numbers and key bytes.
    pub blocks: Vec<(Seq, Vec<u8>)>,
    /// Sent instead of the JSON of `blocks`.
    pub raw: Option<Vec<u8>>,
}

impl Push {
    /// Sends the push and checks the answer against the model.
    pub fn send(&self, kme: &mut Kme) {
        let who = self.caller.map_or("kme-a", caller);
        let next = kme.model.next_seq();
        let blocks: Vec<(u64, Vec<u8>)> = self
            .blocks
            .iter()
            .map(|(s, b)| {
                let seq = match *s {
                    Seq::Next(d) => next.saturating_add(u64::from(d)),
                    Seq::Any(n) => n,
                };
                (seq, b.clone())
            })
            .collect();
        let body = self.raw.clone().unwrap_or_else(|| push_json(&blocks));
        if let Some(reply) = kme.call(who, Method::POST, "/kme/v1/link/keys", body) {
            match &self.raw {
                None => kme.note_push(who, &blocks, &reply),
                Some(raw) => match parse_push(raw) {
                    Some(blocks) => kme.note_push(who, &blocks, &reply),
                    None if reply.status == 200 => kme.model.forget_levels(),
                    None => {}
                },
            }
        }
    }
}

/// The blocks of a raw push body, as the harness reads its JSON.
fn parse_push(raw: &[u8]) -> Option<Vec<(u64, Vec<u8>)>> {
    use base64::Engine;
    let v: serde_json::Value = serde_json::from_slice(raw).ok()?;
    v.get("blocks")?
        .as_array()?
        .iter()
        .map(|b| {
            let seq = b.get("seq")?.as_u64()?;
            let key = base64::engine::general_purpose::STANDARD
                .decode(b.get("key")?.as_str()?)
                .ok()?;
            Some((seq, key))
        })
        .collect()
}
