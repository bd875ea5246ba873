//! IP prefixes (`198.19.0.0/24`, `fd00::/64`): parsing, containment, and a longest-prefix
//! match table ([`PrefixTable`]).
//! Shared by the config (interface addresses, allowed IPs), the protocol core (routing an
//! inner packet to its peer) and the net layer (routes on the TUN).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An IP prefix: an address and a prefix length. The host bits are kept as written, so an
/// interface address like `198.19.0.1/24` round-trips.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IpCidr {
    /// The address as written.
    pub addr: IpAddr,
    /// Prefix length in bits (0..=32 for IPv4, 0..=128 for IPv6).
    pub prefix: u8,
}

/// Why a prefix string was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CidrError {
    /// The part before `/` is not an IPv4 or IPv6 address.
    #[error("'{0}' is not an IP address")]
    BadAddress(String),
    /// The part after `/` is not a number within the family's range.
    #[error("prefix length '{0}' is out of range (0-32 for IPv4, 0-128 for IPv6)")]
    BadPrefix(String),
}

impl IpCidr {
    /// Builds a prefix, refusing a length beyond the address family's width.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, CidrError> {
        if prefix > max_prefix(addr) {
            return Err(CidrError::BadPrefix(prefix.to_string()));
        }
        Ok(Self { addr, prefix })
    }

    /// True when `ip` lies inside this prefix (same family, same leading `prefix` bits).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = mask_u32(self.prefix);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = mask_u128(self.prefix);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }

    /// The network address (host bits cleared).
    pub fn network(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => IpAddr::V4((u32::from(a) & mask_u32(self.prefix)).into()),
            IpAddr::V6(a) => IpAddr::V6((u128::from(a) & mask_u128(self.prefix)).into()),
        }
    }

    /// True for an IPv4 prefix.
    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }
}

fn max_prefix(addr: IpAddr) -> u8 {
    if addr.is_ipv4() { 32 } else { 128 }
}

fn mask_u32(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

fn mask_u128(prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(prefix))
    }
}

impl FromStr for IpCidr {
    type Err = CidrError;

    /// Parses `ADDR/LEN`, or a bare `ADDR` as a host prefix (/32 or /128).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr_part, prefix_part) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr_part
            .trim()
            .parse()
            .map_err(|_| CidrError::BadAddress(addr_part.to_string()))?;
        let prefix = match prefix_part {
            None => max_prefix(addr),
            Some(p) => p
                .trim()
                .parse::<u8>()
                .map_err(|_| CidrError::BadPrefix(p.to_string()))?,
        };
        Self::new(addr, prefix)
    }
}

impl fmt::Display for IpCidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// A longest-prefix-match table: a binary trie per address family, built once from the
/// peers' allowed IPs. A lookup walks at most 32 (IPv4) or 128 (IPv6) nodes whatever the
/// number of prefixes, so routing among 1000 peers costs what routing among 2 does
/// (`benches/hub.rs`).
#[derive(Debug, Clone)]
pub struct PrefixTable<T> {
    v4: Trie<T>,
    v6: Trie<T>,
}

impl<T: Copy> Default for PrefixTable<T> {
    fn default() -> Self {
        Self {
            v4: Trie::default(),
            v6: Trie::default(),
        }
    }
}

impl<T: Copy> PrefixTable<T> {
    /// A table of `entries`; of two equal prefixes the later one wins.
    pub fn new<'a>(entries: impl IntoIterator<Item = (&'a IpCidr, T)>) -> Self {
        let mut table = Self::default();
        for (cidr, value) in entries {
            table.insert(cidr, value);
        }
        table
    }

    /// Adds `cidr` (its host bits ignored), replacing the value of an equal prefix.
    pub fn insert(&mut self, cidr: &IpCidr, value: T) {
        match cidr.network() {
            IpAddr::V4(a) => self
                .v4
                .insert(u128::from(u32::from(a)) << 96, cidr.prefix, value),
            IpAddr::V6(a) => self.v6.insert(u128::from(a), cidr.prefix, value),
        }
    }

    /// The value of the longest prefix that contains `ip`.
    pub fn lookup(&self, ip: IpAddr) -> Option<T> {
        match ip {
            IpAddr::V4(a) => self.v4.lookup(u128::from(u32::from(a)) << 96, 32),
            IpAddr::V6(a) => self.v6.lookup(u128::from(a), 128),
        }
    }
}

/// Bits are taken from the top of a `u128` (an IPv4 address is shifted up by 96).
#[derive(Debug, Clone)]
struct Trie<T> {
    /// Node 0 is the root (the /0 prefix); a child index of 0 means "none".
    nodes: Vec<TrieNode<T>>,
}

#[derive(Debug, Clone)]
struct TrieNode<T> {
    child: [u32; 2],
    value: Option<T>,
}

impl<T> Default for Trie<T> {
    fn default() -> Self {
        Self {
            nodes: vec![TrieNode {
                child: [0, 0],
                value: None,
            }],
        }
    }
}

fn bit(key: u128, depth: u8) -> usize {
    ((key >> (127 - u32::from(depth))) & 1) as usize
}

impl<T: Copy> Trie<T> {
    fn insert(&mut self, key: u128, prefix: u8, value: T) {
        let mut at = 0usize;
        for depth in 0..prefix {
            let b = bit(key, depth);
            let next = self.nodes[at].child[b];
            at = if next == 0 {
                let new = u32::try_from(self.nodes.len()).expect("fewer than 2^32 trie nodes");
                self.nodes.push(TrieNode {
                    child: [0, 0],
                    value: None,
                });
                self.nodes[at].child[b] = new;
                new as usize
            } else {
                next as usize
            };
        }
        self.nodes[at].value = Some(value);
    }

    fn lookup(&self, key: u128, width: u8) -> Option<T> {
        let mut at = 0usize;
        let mut best = self.nodes[0].value;
        for depth in 0..width {
            let next = self.nodes[at].child[bit(key, depth)];
            if next == 0 {
                break;
            }
            at = next as usize;
            best = self.nodes[at].value.or(best);
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_matches_v4_and_v6() {
        let a: IpCidr = "198.19.0.1/24".parse().unwrap();
        assert!(a.contains("198.19.0.200".parse().unwrap()));
        assert!(!a.contains("198.19.1.1".parse().unwrap()));
        assert_eq!(a.network().to_string(), "198.19.0.0");
        let b: IpCidr = "fd00::1/64".parse().unwrap();
        assert!(b.contains("fd00::ffff".parse().unwrap()));
        assert!(!b.contains("198.19.0.1".parse().unwrap()));
        let host: IpCidr = "198.19.0.2".parse().unwrap();
        assert_eq!(host.prefix, 32);
        assert_eq!("0.0.0.0/0".parse::<IpCidr>().unwrap().prefix, 0);
    }

    #[test]
    fn refuses_bad_input() {
        assert!(matches!(
            "1.2.3.4/33".parse::<IpCidr>(),
            Err(CidrError::BadPrefix(_))
        ));
        assert!(matches!(
            "nope/3".parse::<IpCidr>(),
            Err(CidrError::BadAddress(_))
        ));
        assert!(matches!(
            "::/129".parse::<IpCidr>(),
            Err(CidrError::BadPrefix(_))
        ));
    }

    #[test]
    fn longest_prefix_wins() {
        let wide: IpCidr = "198.19.0.0/16".parse().unwrap();
        let narrow: IpCidr = "198.19.3.7/24".parse().unwrap();
        let v6: IpCidr = "fd00::/64".parse().unwrap();
        let table = PrefixTable::new([(&wide, 1), (&narrow, 2), (&v6, 3)]);
        assert_eq!(table.lookup("198.19.3.9".parse().unwrap()), Some(2));
        assert_eq!(table.lookup("198.19.4.9".parse().unwrap()), Some(1));
        assert_eq!(table.lookup("10.0.0.1".parse().unwrap()), None);
        assert_eq!(table.lookup("fd00::9".parse().unwrap()), Some(3));
        assert_eq!(table.lookup("fd01::9".parse().unwrap()), None);
        let all = PrefixTable::new([(&"0.0.0.0/0".parse().unwrap(), 9), (&narrow, 2)]);
        assert_eq!(all.lookup("10.0.0.1".parse().unwrap()), Some(9));
        assert_eq!(all.lookup("198.19.3.1".parse().unwrap()), Some(2));
        assert_eq!(
            all.lookup("::1".parse().unwrap()),
            None,
            "a v4 /0 holds no v6"
        );
    }

    /// The scan the trie replaced: every prefix that contains `ip`, the longest wins (of
    /// equal ones, the last).
    fn scan(table: &[(IpCidr, usize)], ip: IpAddr) -> Option<usize> {
        table
            .iter()
            .filter(|(c, _)| c.contains(ip))
            .max_by_key(|(c, _)| c.prefix)
            .map(|(_, v)| *v)
    }

    fn arb_cidr() -> impl proptest::strategy::Strategy<Value = IpCidr> {
        use proptest::prelude::*;
        prop_oneof![
            // few distinct high bits so prefixes nest and collide
            (0u32..16, 0u8..=32).prop_map(|(a, p)| IpCidr {
                addr: IpAddr::V4((a << 28 | a).into()),
                prefix: p
            }),
            (0u128..16, 0u8..=128).prop_map(|(a, p)| IpCidr {
                addr: IpAddr::V6((a << 124 | a).into()),
                prefix: p
            }),
        ]
    }

    proptest::proptest! {
        /// The trie answers what a scan of every prefix answers.
        #[test]
        fn trie_matches_a_scan(
            prefixes in proptest::collection::vec(arb_cidr(), 0..40),
            probes in proptest::collection::vec(arb_cidr(), 1..40),
        ) {
            let table: Vec<(IpCidr, usize)> =
                prefixes.into_iter().enumerate().map(|(i, c)| (c, i)).collect();
            let trie = PrefixTable::new(table.iter().map(|(c, v)| (c, *v)));
            for probe in probes {
                proptest::prop_assert_eq!(trie.lookup(probe.addr), scan(&table, probe.addr));
            }
        }
    }
}
