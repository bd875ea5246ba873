//! The SAE's ETSI GS QKD 014 client over mutual TLS: `enc_keys` (we are the master SAE) and
//! `dec_keys` (the peer was), one key per call, with bounded timeouts. Implements
//! [`KeySource`]; [`super::memory::MemoryKme`] is its in-memory twin. The TLS private key
//! must be accessible by this process's user only; its PEM bytes, the KME's answers (keys
//! in base64) and the decoded keys live in buffers zeroized on drop.

use super::etsi014::{ErrorBody, KeyIdEntry, KeyIds, KeyRequest, Status};
use super::{DeliveredKey, KeySource, QkdError};
use crate::config::KmeClientConfig;
use crate::config::identity_files;
use crate::constants::KME_CALL_TIMEOUT;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use reqwest::blocking::{Client, Response};
use serde::Deserialize;
use std::path::Path;
use zeroize::Zeroizing;

/// A connection to one KME.
pub struct Etsi014Client {
    http: Client,
    base: String,
}

impl std::fmt::Debug for Etsi014Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Etsi014Client({})", self.base)
    }
}

fn read(path: &Path) -> Result<Vec<u8>, QkdError> {
    std::fs::read(path).map_err(|e| QkdError::Setup(format!("{}: {e}", path.display())))
}

impl Etsi014Client {
    /// A client for the KME in `cfg`, presenting the SAE certificate and trusting only the CA.
    pub fn new(cfg: &KmeClientConfig) -> Result<Self, QkdError> {
        let ca = reqwest::Certificate::from_pem(&read(&cfg.ca_file)?)
            .map_err(|e| QkdError::Setup(format!("{}: {e}", cfg.ca_file.display())))?;
        let key_pem = identity_files::read_private_file(&cfg.key_file)
            .map_err(|e| QkdError::Setup(e.to_string()))?;
        let mut identity_pem = Zeroizing::new(read(&cfg.cert_file)?);
        identity_pem.extend_from_slice(b"\n");
        identity_pem.extend_from_slice(&key_pem);
        let identity = reqwest::Identity::from_pem(&identity_pem).map_err(|e| {
            QkdError::Setup(format!(
                "{} / {}: {e}",
                cfg.cert_file.display(),
                cfg.key_file.display()
            ))
        });
        let http = Client::builder()
            .tls_backend_rustls()
            .tls_certs_only([ca])
            .identity(identity?)
            .min_tls_version(reqwest::tls::Version::TLS_1_2)
            .timeout(KME_CALL_TIMEOUT)
            .connect_timeout(KME_CALL_TIMEOUT)
            .build()
            .map_err(|e| QkdError::Setup(format!("TLS client: {}", without_url(&e))))?;
        Ok(Self {
            http,
            base: cfg.url.clone(),
        })
    }

    fn url(&self, sae: &str, method: &str) -> String {
        format!(
            "{}/api/v1/keys/{}/{method}",
            self.base,
            encode_path_segment(sae)
        )
    }

    /// `GET …/{slave}/status`.
    pub fn status(&self, slave_sae: &str) -> Result<Status, QkdError> {
        let response = self
            .http
            .get(self.url(slave_sae, "status"))
            .send()
            .map_err(connect_error)?;
        parse(response)
    }
}

impl KeySource for Etsi014Client {
    fn new_key(&self, slave_sae: &str, size_bits: u32) -> Result<DeliveredKey, QkdError> {
        let body = KeyRequest {
            number: Some(1),
            size: Some(size_bits),
            ..KeyRequest::default()
        };
        let response = self
            .http
            .post(self.url(slave_sae, "enc_keys"))
            .json(&body)
            .send()
            .map_err(connect_error)?;
        one_key(parse(response)?, None, size_bits)
    }

    fn key_by_id(
        &self,
        master_sae: &str,
        key_id: &str,
        size_bits: u32,
    ) -> Result<DeliveredKey, QkdError> {
        let entry = KeyIdEntry {
            key_ID: key_id.to_string(),
            key_ID_extension: None,
        };
        let body = KeyIds {
            key_IDs: vec![entry],
            key_IDs_extension: None,
        };
        let response = self
            .http
            .post(self.url(master_sae, "dec_keys"))
            .json(&body)
            .send()
            .map_err(connect_error)?;
        one_key(parse(response)?, Some(key_id), size_bits)
    }

    fn describe(&self) -> String {
        self.base.clone()
    }
}

fn connect_error(e: reqwest::Error) -> QkdError {
    if e.is_timeout() {
        QkdError::Timeout
    } else {
        QkdError::Unreachable(without_url(&e))
    }
}

/// reqwest's message without the URL (it is in the log line already).
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(source) = std::error::Error::source(e) {
        text = format!("{text}: {source}");
    }
    text
}

/// The largest answer body read from a KME (one key of at most 64 kbit is ~11 KiB of JSON).
const MAX_ANSWER_BYTES: u64 = 1 << 20;

/// A JSON body from a 200, or the KME's error. The body (it holds keys in base64) is read
/// into a buffer that is zeroized on drop, at most [`MAX_ANSWER_BYTES`].
fn parse<T: serde::de::DeserializeOwned>(mut response: Response) -> Result<T, QkdError> {
    use std::io::Read as _;
    let status = response.status();
    let mut body = Zeroizing::new(Vec::new());
    (&mut response)
        .take(MAX_ANSWER_BYTES + 1)
        .read_to_end(&mut body)
        .map_err(|e| QkdError::Malformed(e.to_string()))?;
    if body.len() as u64 > MAX_ANSWER_BYTES {
        return Err(QkdError::Malformed(format!(
            "answer larger than {MAX_ANSWER_BYTES} bytes"
        )));
    }
    if !status.is_success() {
        let message = serde_json::from_slice::<ErrorBody>(&body)
            .map(|b| b.message)
            .unwrap_or_default();
        return Err(QkdError::Refused {
            status: status.as_u16(),
            message,
        });
    }
    serde_json::from_slice(&body)
        .map_err(|e| QkdError::Malformed(format!("answer is not ETSI 014 JSON: {e}")))
}

/// A key container as received (Table 11), its keys in buffers zeroized on drop; unknown
/// fields (the extensions) are ignored.
#[derive(Deserialize)]
struct ReceivedContainer {
    keys: Vec<ReceivedKey>,
}

/// One received key: its ID and its base64 text, zeroized on drop.
#[derive(Deserialize)]
#[allow(non_snake_case)]
struct ReceivedKey {
    key_ID: String,
    #[serde(deserialize_with = "zeroizing_string")]
    key: Zeroizing<String>,
}

/// Deserializes a string straight into a zeroizing buffer (the `String` serde builds is
/// moved, not copied).
fn zeroizing_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Zeroizing<String>, D::Error> {
    String::deserialize(d).map(Zeroizing::new)
}

/// The single key of a container, checked: the expected ID (if any), base64, its size.
fn one_key(
    mut container: ReceivedContainer,
    want_id: Option<&str>,
    size_bits: u32,
) -> Result<DeliveredKey, QkdError> {
    if container.keys.len() != 1 {
        return Err(QkdError::Malformed(format!(
            "{} keys in the answer, asked for 1",
            container.keys.len()
        )));
    }
    let key = container.keys.remove(0);
    if want_id.is_some_and(|id| id != key.key_ID) {
        return Err(QkdError::Malformed(format!(
            "answer names key {}, asked for {}",
            key.key_ID,
            want_id.unwrap_or("")
        )));
    }
    if key.key_ID.is_empty() || key.key_ID.len() > crate::proto::wire::QKD_KEY_ID_MAX_BYTES {
        return Err(QkdError::Malformed(
            "key_ID empty or longer than 128 bytes".into(),
        ));
    }
    let mut bytes = Zeroizing::new(Vec::with_capacity(key.key.len() / 4 * 3 + 3));
    B64.decode_vec(key.key.as_bytes(), &mut bytes)
        .map_err(|_| QkdError::Malformed("key is not base64".into()))?;
    if bytes.len() * 8 != size_bits as usize {
        return Err(QkdError::Malformed(format!(
            "key has {} bits, asked for {size_bits}",
            bytes.len() * 8
        )));
    }
    Ok(DeliveredKey {
        key_id: key.key_ID.clone(),
        key: bytes,
    })
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode_path_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(id: &str, bytes: &[u8]) -> ReceivedContainer {
        let json = serde_json::json!({
            "keys": [{ "key_ID": id, "key": B64.encode(bytes), "key_extension": {} }],
            "key_container_extension": {}
        });
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn checks_the_answer() {
        assert_eq!(
            one_key(container("k", &[1; 32]), Some("k"), 256)
                .unwrap()
                .key
                .len(),
            32
        );
        assert!(matches!(
            one_key(container("k", &[1; 16]), None, 256),
            Err(QkdError::Malformed(_))
        ));
        assert!(matches!(
            one_key(container("x", &[1; 32]), Some("k"), 256),
            Err(QkdError::Malformed(_))
        ));
        assert!(matches!(
            one_key(ReceivedContainer { keys: Vec::new() }, None, 256),
            Err(QkdError::Malformed(_))
        ));
        assert_eq!(encode_path_segment("sae-a/b c"), "sae-a%2Fb%20c");
    }
}
