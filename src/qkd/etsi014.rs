//! ETSI GS QKD 014 V1.1.1 data formats (§6, Tables 9–13), exactly as the spec spells them,
//! shared by the KME server (`crate::kme`) and the SAE client. Field names follow the spec
//! (`key_ID`, `source_KME_ID`, …); optional fields are omitted when absent.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Table 9: the answer to "Get status".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(non_snake_case)]
pub struct Status {
    /// KME ID of the KME answering.
    pub source_KME_ID: String,
    /// KME ID of the KME the slave SAE is attached to.
    pub target_KME_ID: String,
    /// SAE ID of the calling (master) SAE.
    pub master_SAE_ID: String,
    /// SAE ID of the slave SAE named in the URL.
    pub slave_SAE_ID: String,
    /// Default key size, in bits.
    pub key_size: u32,
    /// Keys of the default size the KME can deliver now.
    pub stored_key_count: u64,
    /// Upper bound of `stored_key_count`.
    pub max_key_count: u64,
    /// Most keys per request.
    pub max_key_per_request: u32,
    /// Largest key size, in bits.
    pub max_key_size: u32,
    /// Smallest key size, in bits.
    pub min_key_size: u32,
    /// Most `additional_slave_SAE_IDs`; 0 when key multicast is not supported.
    pub max_SAE_ID_count: u32,
    /// For future use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_extension: Option<Map<String, Value>>,
}

/// Table 10: the body of "Get key" (every field optional; the body may be empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[allow(non_snake_case)]
#[serde(deny_unknown_fields)]
pub struct KeyRequest {
    /// Number of keys (default 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<u32>,
    /// Bits per key (default: the status `key_size`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u32>,
    /// Further slave SAEs to share the same keys (key multicast).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub additional_slave_SAE_IDs: Option<Vec<String>>,
    /// Extensions the KME must handle or refuse.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extension_mandatory: Option<Vec<Map<String, Value>>>,
    /// Extensions the KME may ignore.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extension_optional: Option<Vec<Map<String, Value>>>,
}

/// One key of a key container (Table 11).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(non_snake_case)]
pub struct Key {
    /// The key's ID, a UUID string.
    pub key_ID: String,
    /// For future use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_ID_extension: Option<Map<String, Value>>,
    /// The key, base64 (RFC 4648).
    pub key: String,
    /// For future use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_extension: Option<Map<String, Value>>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({}, [redacted])", self.key_ID)
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.key);
    }
}

/// Table 11: the answer to "Get key" and "Get key with key IDs".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyContainer {
    /// The keys.
    pub keys: Vec<Key>,
    /// For future use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_container_extension: Option<Map<String, Value>>,
}

/// One entry of a key ID list (Table 12).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(non_snake_case)]
#[serde(deny_unknown_fields)]
pub struct KeyIdEntry {
    /// The key's ID.
    pub key_ID: String,
    /// For future use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_ID_extension: Option<Map<String, Value>>,
}

/// Table 12: the body of "Get key with key IDs".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[allow(non_snake_case)]
#[serde(deny_unknown_fields)]
pub struct KeyIds {
    /// The IDs.
    pub key_IDs: Vec<KeyIdEntry>,
    /// For future use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_IDs_extension: Option<Map<String, Value>>,
}

/// Table 13: the error body of 400 and 503 answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong.
    pub message: String,
    /// Name/value pairs with details.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Vec<Map<String, Value>>>,
}

/// The messages the spec fixes (§6.2, §6.3), word for word.
pub mod messages {
    /// A size the KME cannot serve because it is not a multiple of 8.
    pub const SIZE_NOT_MULTIPLE_OF_8: &str = "size shall be a multiple of 8";
    /// An `extension_mandatory` name the KME does not know.
    pub const MANDATORY_EXTENSION_UNSUPPORTED: &str =
        "not all extension_mandatory parameters are supported";
    /// An `extension_mandatory` option the KME cannot meet.
    pub const MANDATORY_EXTENSION_UNMET: &str =
        "not all extension_mandatory request options could be met";
    /// A key ID the KME does not hold for this caller.
    pub const KEYS_NOT_FOUND: &str = "one or more keys specified are not found on KME";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_examples_round_trip() {
        let status = r#"{"source_KME_ID":"AAAABBBBCCCCDDDD","target_KME_ID":"EEEEFFFFGGGGHHHH","master_SAE_ID":"IIIIJJJJKKKKLLLL","slave_SAE_ID":"MMMMNNNNOOOOPPPP","key_size":352,"stored_key_count":25000,"max_key_count":100000,"max_key_per_request":128,"max_key_size":1024,"min_key_size":64,"max_SAE_ID_count":0}"#;
        let s: Status = serde_json::from_str(status).unwrap();
        assert_eq!(serde_json::to_string(&s).unwrap(), status);
        let keys = r#"{"keys":[{"key_ID":"bc490419-7d60-487f-adc1-4ddcc177c139","key":"wHHVxRwDJs3/bXd38GHP3oe4svTuRpZS0yCC7x4Ly+s="}]}"#;
        let k: KeyContainer = serde_json::from_str(keys).unwrap();
        assert_eq!(serde_json::to_string(&k).unwrap(), keys);
        assert!(
            !format!("{:?}", k.keys[0]).contains("wHHV"),
            "keys never print"
        );
        let err = r#"{"message":"not all extension_mandatory parameters are supported","details":[{"extension_mandatory_unsupported":"abc_route_type is not supported"}]}"#;
        let e: ErrorBody = serde_json::from_str(err).unwrap();
        assert_eq!(e.message, messages::MANDATORY_EXTENSION_UNSUPPORTED);
        let ids: KeyIds = serde_json::from_str(r#"{"key_IDs":[{"key_ID":"x"}]}"#).unwrap();
        assert_eq!(ids.key_IDs[0].key_ID, "x");
        let req: KeyRequest = serde_json::from_str("{}").unwrap();
        assert_eq!(req, KeyRequest::default());
        assert!(
            serde_json::from_str::<KeyRequest>(r#"{"nubmer":1}"#).is_err(),
            "typos are refused"
        );
    }
}
