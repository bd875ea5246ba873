//! [`PeerId`]: which configured peer a request, an event or a timer is about — its place in
//! config order, the index into the endpoint's peer table. The runtime turns it into the
//! peer's name with [`Endpoint::peer_name`](super::endpoint::Endpoint::peer_name).

use std::fmt;

/// A peer of one endpoint: its index in config order. Displayed as that index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerId(usize);

impl PeerId {
    /// The peer at `index` in config order.
    pub const fn from_index(index: usize) -> Self {
        Self(index)
    }

    /// Its index in config order.
    pub const fn index(self) -> usize {
        self.0
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
