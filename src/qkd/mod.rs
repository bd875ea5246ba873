//! The SAE side of QKD key delivery: the ETSI GS QKD 014 data formats ([`etsi014`]) shared
//! with the KME, and (with the KME integration) the key-source trait and its mTLS client.

pub mod etsi014;
