//! The real clock: maps `std::time::Instant` onto the core's [`Instant`] and records the
//! wall clock at the origin (initiation timestamps must grow across restarts).

use crate::proto::time::Instant;
use std::time::{SystemTime, UNIX_EPOCH};

/// Monotonic clock with a fixed origin.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin: std::time::Instant,
    unix_ns_at_origin: u64,
}

impl Clock {
    /// A clock whose origin is now.
    pub fn start() -> Self {
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        Self {
            origin: std::time::Instant::now(),
            unix_ns_at_origin: u64::try_from(unix).unwrap_or(u64::MAX),
        }
    }

    /// The current instant.
    pub fn now(&self) -> Instant {
        Instant::from_nanos(u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    /// Wall clock at the origin, ns since the Unix epoch.
    pub fn unix_ns_at_origin(&self) -> u64 {
        self.unix_ns_at_origin
    }
}
