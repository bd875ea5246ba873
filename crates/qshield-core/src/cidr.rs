//! IP prefixes (`198.19.0.0/24`, `fd00::/64`): parsing, containment, longest-prefix match.
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

/// Longest-prefix match: the index of the entry in `table` whose prefix contains `ip`
/// with the greatest length.
pub fn longest_match<'a, T>(
    table: impl IntoIterator<Item = (&'a IpCidr, T)>,
    ip: IpAddr,
) -> Option<T> {
    table
        .into_iter()
        .filter(|(cidr, _)| cidr.contains(ip))
        .max_by_key(|(cidr, _)| cidr.prefix)
        .map(|(_, v)| v)
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
        let narrow: IpCidr = "198.19.3.0/24".parse().unwrap();
        let table = [(&wide, 1), (&narrow, 2)];
        assert_eq!(longest_match(table, "198.19.3.9".parse().unwrap()), Some(2));
        assert_eq!(longest_match(table, "198.19.4.9".parse().unwrap()), Some(1));
        assert_eq!(longest_match(table, "10.0.0.1".parse().unwrap()), None);
    }
}
