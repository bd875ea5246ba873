//! Why the KME refused a request, typed for its counters: the status code and the reason
//! ([`Refusal`]), and for a 503 what was short ([`Shortage`]). Imports nothing of the KME.

/// Why a request could not be served now (a 503): what an operator looks at first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Shortage {
    /// A `[[sae_pair]]` rate or volume limit.
    Quota,
    /// Not enough pad (or local key) for the request.
    NoKeyMaterial,
    /// Keys the slave has not fetched fill the store (`max_key_count`).
    StoreFull,
    /// No path to the slave's KME (no link-state route with the pad, or no link at all).
    NoPath,
    /// A link on the way is under alarm or out of service.
    LinkAlarm,
    /// A KME further on refused the relay or did not answer.
    RelayFailed,
    /// This KME's own fault (its store, a task): see its log.
    Internal,
}

impl Shortage {
    /// Every reason, in label order.
    pub const ALL: [Self; 7] = [
        Self::Quota,
        Self::NoKeyMaterial,
        Self::StoreFull,
        Self::NoPath,
        Self::LinkAlarm,
        Self::RelayFailed,
        Self::Internal,
    ];

    /// The reason as metrics and the status document name it.
    pub const fn label(self) -> &'static str {
        match self {
            Self::Quota => "quota",
            Self::NoKeyMaterial => "no_key_material",
            Self::StoreFull => "store_full",
            Self::NoPath => "no_path",
            Self::LinkAlarm => "link_alarm",
            Self::RelayFailed => "relay_failed",
            Self::Internal => "internal",
        }
    }
}

/// A refusal an SAE pair or a link is counted for: its status code and reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Refusal {
    /// 400: the request itself is wrong (format, size, number, an unknown key ID).
    BadRequest,
    /// 503: it could not be served now.
    Unavailable(Shortage),
}

impl Refusal {
    /// Every refusal counted.
    pub fn all() -> impl Iterator<Item = Self> {
        std::iter::once(Self::BadRequest).chain(Shortage::ALL.into_iter().map(Self::Unavailable))
    }

    /// The HTTP status code.
    pub const fn code(self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::Unavailable(_) => 503,
        }
    }

    /// The reason label.
    pub const fn reason(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::Unavailable(s) => s.label(),
        }
    }
}
