//! Just enough of the inner IPv4/IPv6 header to route a packet to its peer, check its
//! source against the peer's allowed IPs, and strip the padding after decryption.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Addresses and length read from an inner packet's IP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InnerHeader {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Total packet length the header declares, in bytes.
    pub len: usize,
}

/// Parses an IPv4 or IPv6 header; `None` for anything else or a header longer than `packet`.
pub fn parse(packet: &[u8]) -> Option<InnerHeader> {
    match packet.first()? >> 4 {
        4 if packet.len() >= 20 => {
            let len = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
            let src = Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]);
            let dst = Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]);
            (20..=packet.len()).contains(&len).then_some(InnerHeader {
                src: src.into(),
                dst: dst.into(),
                len,
            })
        }
        6 if packet.len() >= 40 => {
            let len = 40 + usize::from(u16::from_be_bytes([packet[4], packet[5]]));
            let src: [u8; 16] = packet[8..24].try_into().ok()?;
            let dst: [u8; 16] = packet[24..40].try_into().ok()?;
            (len <= packet.len()).then_some(InnerHeader {
                src: Ipv6Addr::from(src).into(),
                dst: Ipv6Addr::from(dst).into(),
                len,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_v4_and_v6_and_refuses_junk() {
        let mut v4 = [0u8; 28];
        v4[0] = 0x45;
        v4[2..4].copy_from_slice(&28u16.to_be_bytes());
        v4[12..16].copy_from_slice(&[198, 19, 0, 1]);
        v4[16..20].copy_from_slice(&[198, 19, 0, 2]);
        let h = parse(&v4).unwrap();
        assert_eq!(
            (h.src.to_string(), h.dst.to_string(), h.len),
            ("198.19.0.1".into(), "198.19.0.2".into(), 28)
        );
        assert!(
            parse(&v4[..27]).is_none(),
            "declared length beyond the buffer"
        );
        let mut v6 = [0u8; 48];
        v6[0] = 0x60;
        v6[4..6].copy_from_slice(&8u16.to_be_bytes());
        v6[39] = 2;
        assert_eq!(parse(&v6).unwrap().len, 48);
        assert!(parse(&[0x10; 40]).is_none());
        assert!(parse(&[]).is_none());
    }
}
