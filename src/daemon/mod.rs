//! The runtime (placeholder until it lands).
