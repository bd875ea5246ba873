//! Real-device tests of `qshield::net`: TUN creation and configuration, packets both ways
//! through a TUN, UDP batches on loopback, dual stack, truncation, cleanup on drop.
//!
//! They need root (CAP_NET_ADMIN for the TUN, CAP_SYS_ADMIN for namespaces); without it
//! they FAIL with a message, they never skip. Each test runs in a thread that moved itself
//! into a fresh network namespace (`unshare(CLONE_NEWNET)` is per thread), so no traffic
//! leaves it. Addresses: 198.18.0.0/15 and fd00:5159::/32 only, plus loopback.

use qshield::batch::{PacketBatch, SlotMeta};
use qshield::cidr::IpCidr;
use qshield::constants::DATA_HEADER_BYTES;
use qshield::net::netlink::Netlink;
use qshield::net::tun::interface_index;
use qshield::net::{NetError, OffloadWish, TunDevice, TunIo, TunSettings, UdpIo, UdpSocket};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(5);

/// Runs `f` on a thread inside a new, empty network namespace with `lo` up.
fn in_fresh_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "tests/net_root.rs needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) to create TUN devices \
         in private network namespaces; run it as root, e.g. `sudo -E cargo test --test net_root`"
    );
    let worker = thread::spawn(move || {
        // SAFETY: unshare(CLONE_NEWNET) takes no pointers and moves only this thread.
        let ret = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(
            ret,
            0,
            "unshare(CLONE_NEWNET): {}",
            io::Error::last_os_error()
        );
        let lo = interface_index("lo").expect("a new namespace has lo");
        Netlink::open()
            .and_then(|mut nl| nl.set_link_up(lo, None))
            .expect("bring lo up");
        f()
    });
    worker
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

fn cidrs(list: &[&str]) -> Vec<IpCidr> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

fn settings(name: &str, addresses: &[&str], routes: &[&str]) -> TunSettings {
    TunSettings {
        name: name.into(),
        mtu: 1400,
        offload: qshield::net::OffloadWish::all(),
        addresses: cidrs(addresses),
        routes: cidrs(routes),
    }
}

/// `ip -o <args>` run from the calling thread, so in its network namespace.
fn ip(args: &[&str]) -> String {
    let out = Command::new("ip")
        .arg("-o")
        .args(args)
        .output()
        .expect("run ip (iproute2)");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Reads the TUN until a UDP packet to `dst` arrives; returns its payload.
fn read_udp_from_tun(tun: &TunDevice, dst: SocketAddr) -> Vec<u8> {
    let mut batch = PacketBatch::new(16, 1400);
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        tun.recv_batch(&mut batch, Duration::from_millis(200))
            .unwrap();
        for i in 0..batch.len() {
            assert_eq!(batch.meta(i).start, DATA_HEADER_BYTES);
            if let Some(payload) = udp_payload_to(batch.bytes(i), dst) {
                return payload.to_vec();
            }
        }
    }
    panic!("no UDP packet to {dst} came out of the TUN within {WAIT:?}");
}

/// The UDP payload of an IPv4 or IPv6 packet when it is UDP to `dst`.
fn udp_payload_to(packet: &[u8], dst: SocketAddr) -> Option<&[u8]> {
    let (proto, dst_ip, header) = match packet.first()? >> 4 {
        4 => {
            let ihl = usize::from(packet[0] & 0x0f) * 4;
            let ip: [u8; 4] = packet.get(16..20)?.try_into().ok()?;
            (packet[9], IpAddr::from(ip), ihl)
        }
        6 => {
            let ip: [u8; 16] = packet.get(24..40)?.try_into().ok()?;
            (packet[6], IpAddr::from(ip), 40)
        }
        _ => return None,
    };
    let udp = packet.get(header..)?;
    let port = u16::from_be_bytes(udp.get(2..4)?.try_into().ok()?);
    (proto == 17 && dst_ip == dst.ip() && port == dst.port()).then(|| &udp[8..])
}

/// One's-complement sum of 16-bit words.
fn checksum_add(mut sum: u32, bytes: &[u8]) -> u32 {
    for pair in bytes.chunks(2) {
        let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    sum
}

fn checksum_fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A UDP header plus payload, checksum over the pseudo-header `pseudo`.
fn udp_segment(src_port: u16, dst_port: u16, payload: &[u8], pseudo: &[u8]) -> Vec<u8> {
    let len = (8 + payload.len()) as u16;
    let mut udp = Vec::new();
    udp.extend_from_slice(&src_port.to_be_bytes());
    udp.extend_from_slice(&dst_port.to_be_bytes());
    udp.extend_from_slice(&len.to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    let sum = checksum_fold(checksum_add(checksum_add(0, pseudo), &udp));
    udp[6..8].copy_from_slice(&(if sum == 0 { 0xffff } else { sum }).to_be_bytes());
    udp
}

fn ipv4_udp(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), payload: &[u8]) -> Vec<u8> {
    let udp_len = (8 + payload.len()) as u16;
    let mut pseudo = [src.0.octets(), dst.0.octets()].concat();
    pseudo.extend_from_slice(&[0, 17]);
    pseudo.extend_from_slice(&udp_len.to_be_bytes());
    let udp = udp_segment(src.1, dst.1, payload, &pseudo);
    let total = (20 + udp.len()) as u16;
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0];
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&src.0.octets());
    ip.extend_from_slice(&dst.0.octets());
    let sum = checksum_fold(checksum_add(0, &ip));
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    ip.extend_from_slice(&udp);
    ip
}

fn ipv6_udp(src: (Ipv6Addr, u16), dst: (Ipv6Addr, u16), payload: &[u8]) -> Vec<u8> {
    let udp_len = (8 + payload.len()) as u16;
    let mut pseudo = [src.0.octets(), dst.0.octets()].concat();
    pseudo.extend_from_slice(&[0, 0]);
    pseudo.extend_from_slice(&udp_len.to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, 17]);
    let udp = udp_segment(src.1, dst.1, payload, &pseudo);
    let mut ip = vec![0x60, 0, 0, 0];
    ip.extend_from_slice(&udp_len.to_be_bytes());
    ip.extend_from_slice(&[17, 64]);
    ip.extend_from_slice(&src.0.octets());
    ip.extend_from_slice(&dst.0.octets());
    ip.extend_from_slice(&udp);
    ip
}

/// A batch holding `packets` in the TUN layout (after the data header).
fn tun_batch(packets: &[Vec<u8>]) -> PacketBatch {
    let mut batch = PacketBatch::new(packets.len(), 1400);
    for (i, p) in packets.iter().enumerate() {
        batch.slot_mut(i)[DATA_HEADER_BYTES..DATA_HEADER_BYTES + p.len()].copy_from_slice(p);
        let meta = SlotMeta {
            start: DATA_HEADER_BYTES,
            len: p.len(),
            addr: None,
        };
        batch.set_meta(i, meta);
    }
    batch.set_len(packets.len());
    batch
}

/// A batch of UDP datagrams, each with its destination.
fn udp_batch(datagrams: &[(Vec<u8>, SocketAddr)], mtu: usize) -> PacketBatch {
    let mut batch = PacketBatch::new(datagrams.len(), mtu);
    for (i, (bytes, to)) in datagrams.iter().enumerate() {
        batch.slot_mut(i)[..bytes.len()].copy_from_slice(bytes);
        batch.set_meta(
            i,
            SlotMeta {
                start: 0,
                len: bytes.len(),
                addr: Some(*to),
            },
        );
    }
    batch.set_len(datagrams.len());
    batch
}

/// Receives until `n` datagrams arrived (or fails after [`WAIT`]).
fn recv_n(sock: &UdpSocket, n: usize, mtu: usize) -> Vec<(Vec<u8>, SocketAddr)> {
    let mut batch = PacketBatch::new(n.max(1), mtu);
    let mut got = Vec::new();
    let deadline = Instant::now() + WAIT;
    while got.len() < n && Instant::now() < deadline {
        sock.recv_batch(&mut batch, Duration::from_millis(200))
            .unwrap();
        for i in 0..batch.len() {
            assert_eq!(batch.meta(i).start, 0);
            got.push((batch.bytes(i).to_vec(), batch.meta(i).addr.unwrap()));
        }
    }
    assert_eq!(got.len(), n, "datagrams received within {WAIT:?}");
    got
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn tun_is_created_with_mtu_addresses_routes_and_up() {
    in_fresh_netns(|| {
        let s = settings(
            "qs0",
            &["198.18.0.1/24", "198.18.1.1/24", "fd00:5159::1/64"],
            &["198.18.0.0/24", "198.19.9.0/24", "fd00:5159:1::/64"],
        );
        let tun = TunDevice::create(&s).expect("create TUN");
        assert_eq!(tun.name(), "qs0");
        assert_eq!(Some(tun.index()), interface_index("qs0"));
        assert_eq!(tun.mtu().unwrap(), 1400);
        assert!(tun.is_up().unwrap());
        let addrs = ip(&["addr", "show", "dev", "qs0"]);
        for want in [
            "inet 198.18.0.1/24",
            "inet 198.18.1.1/24",
            "inet6 fd00:5159::1/64",
        ] {
            assert!(addrs.contains(want), "{want} missing in:\n{addrs}");
        }
        let routes = ip(&["route", "show", "dev", "qs0"]);
        assert!(routes.contains("198.19.9.0/24"), "{routes}");
        assert_eq!(routes.matches("198.18.0.0/24").count(), 1, "{routes}");
        let mut nl = Netlink::open().unwrap();
        assert!(nl.is_local("fd00:5159::1".parse().unwrap()).unwrap());
        assert!(nl.is_local("198.18.1.1".parse().unwrap()).unwrap());
        assert!(!nl.is_local("198.19.9.9".parse().unwrap()).unwrap());
        let routes6 = ip(&["-6", "route", "show", "dev", "qs0"]);
        assert!(routes6.contains("fd00:5159:1::/64"), "{routes6}");
    });
}

#[test]
fn tun_name_pattern_and_busy_name_errors() {
    in_fresh_netns(|| {
        let tun = TunDevice::create(&settings("qs%d", &[], &[])).expect("create TUN");
        assert!(tun.name().starts_with("qs"), "{}", tun.name());
        let err = TunDevice::create(&settings(tun.name(), &[], &[])).unwrap_err();
        assert!(matches!(err, NetError::TunCreate { .. }), "{err}");
        assert!(err.to_string().contains(tun.name()), "{err}");
    });
}

#[test]
fn udp_sent_to_a_routed_address_comes_out_of_the_tun() {
    in_fresh_netns(|| {
        let s = settings(
            "qs0",
            &["198.18.0.1/24", "fd00:5159::1/64"],
            &["198.19.9.0/24", "fd00:5159:1::/64"],
        );
        let tun = TunDevice::create(&s).expect("create TUN");
        let sock = UdpSocket::bind(sa("0.0.0.0:0")).unwrap();
        let v4_dst = sa("198.19.9.9:7777");
        sock.send_to(b"into the tunnel v4", v4_dst).unwrap();
        assert_eq!(read_udp_from_tun(&tun, v4_dst), b"into the tunnel v4");
        let sock6 = UdpSocket::bind(sa("[fd00:5159::1]:0")).unwrap();
        let v6_dst = sa("[fd00:5159:1::9]:7777");
        sock6.send_to(b"into the tunnel v6", v6_dst).unwrap();
        assert_eq!(read_udp_from_tun(&tun, v6_dst), b"into the tunnel v6");
        assert!(tun.stats().received >= 2);
    });
}

#[test]
fn packets_written_to_the_tun_reach_local_sockets() {
    in_fresh_netns(|| {
        let s = settings("qs0", &["198.18.0.1/24", "fd00:5159::1/64"], &[]);
        let tun = TunDevice::create(&s).expect("create TUN");
        let sock4 = UdpSocket::bind(sa("198.18.0.1:7000")).unwrap();
        let sock6 = UdpSocket::bind(sa("[fd00:5159::1]:7000")).unwrap();
        let (peer4, peer6) = (
            "198.18.0.2".parse().unwrap(),
            "fd00:5159::2".parse().unwrap(),
        );
        let local4 = "198.18.0.1".parse().unwrap();
        let local6 = "fd00:5159::1".parse().unwrap();
        let packets = [
            ipv4_udp((peer4, 5555), (local4, 7000), b"out of the tunnel v4"),
            ipv6_udp((peer6, 5556), (local6, 7000), b"out of the tunnel v6"),
        ];
        assert_eq!(tun.send_batch(&tun_batch(&packets)).unwrap(), 2);
        let got4 = recv_n(&sock4, 1, 1400);
        assert_eq!(
            got4[0],
            (b"out of the tunnel v4".to_vec(), sa("198.18.0.2:5555"))
        );
        let got6 = recv_n(&sock6, 1, 1400);
        assert_eq!(
            got6[0],
            (b"out of the tunnel v6".to_vec(), sa("[fd00:5159::2]:5556"))
        );
    });
}

#[test]
fn tun_write_errors_are_counted_and_the_rest_written() {
    in_fresh_netns(|| {
        let tun = TunDevice::create(&settings("qs0", &["198.18.0.1/24"], &[])).unwrap();
        let sock = UdpSocket::bind(sa("198.18.0.1:7000")).unwrap();
        let good = ipv4_udp(
            ("198.18.0.2".parse().unwrap(), 5555),
            ("198.18.0.1".parse().unwrap(), 7000),
            b"still delivered",
        );
        // An empty slot is skipped; a garbage "packet" with a bad version is refused by
        // the kernel (or dropped); either way the good one after it gets through.
        let batch = tun_batch(&[vec![], vec![0x00; 3], good]);
        let sent = tun.send_batch(&batch).unwrap();
        let stats = tun.stats();
        assert_eq!(sent as u64 + stats.send_errors, 2, "{stats:?}");
        assert_eq!(recv_n(&sock, 1, 1400)[0].0, b"still delivered");
    });
}

#[test]
fn udp_batch_of_100_on_loopback_keeps_contents_and_sources() {
    in_fresh_netns(|| {
        let rx = UdpSocket::bind(sa("127.0.0.1:0")).unwrap();
        let (tx_a, tx_b) = (
            UdpSocket::bind(sa("127.0.0.1:0")).unwrap(),
            UdpSocket::bind(sa("127.0.0.1:0")).unwrap(),
        );
        assert!(rx.recv_buffer_bytes().unwrap() >= 1 << 20);
        let to = rx.local_addr().unwrap();
        let datagram = |n: usize| vec![n as u8; 50 + n * 7];
        let batch_a = udp_batch(
            &(0..100).map(|n| (datagram(n), to)).collect::<Vec<_>>(),
            1400,
        );
        assert_eq!(tx_a.send_batch(&batch_a).unwrap(), 100);
        let got = recv_n(&rx, 100, 1400);
        for (n, (bytes, from)) in got.iter().enumerate() {
            assert_eq!(bytes, &datagram(n), "datagram {n}");
            assert_eq!(*from, tx_a.local_addr().unwrap());
        }
        tx_b.send_to(b"other source", to).unwrap();
        assert_eq!(
            recv_n(&rx, 1, 1400)[0],
            (b"other source".to_vec(), tx_b.local_addr().unwrap())
        );
        assert_eq!(tx_a.stats().sent, 100);
        assert_eq!(rx.stats().received, 101);
    });
}

#[test]
fn udp_recv_times_out_with_zero() {
    in_fresh_netns(|| {
        let rx = UdpSocket::bind(sa("127.0.0.1:0")).unwrap();
        let mut batch = PacketBatch::new(8, 1400);
        let t0 = Instant::now();
        assert_eq!(
            rx.recv_batch(&mut batch, Duration::from_millis(50))
                .unwrap(),
            0
        );
        assert!(t0.elapsed() >= Duration::from_millis(50));
        assert!(batch.is_empty());
    });
}

#[test]
fn dual_stack_socket_sees_and_reaches_ipv4_peers_as_ipv4() {
    in_fresh_netns(|| {
        let server = UdpSocket::bind(sa("[::]:0")).unwrap();
        let port = server.local_addr().unwrap().port();
        let client4 = UdpSocket::bind(sa("127.0.0.1:0")).unwrap();
        let client6 = UdpSocket::bind(sa("[::1]:0")).unwrap();
        client4
            .send_to(
                b"v4 hello",
                SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port),
            )
            .unwrap();
        let got = recv_n(&server, 1, 1400);
        assert_eq!(
            got[0],
            (b"v4 hello".to_vec(), client4.local_addr().unwrap())
        );
        assert!(got[0].1.is_ipv4());
        let reply = udp_batch(&[(b"v4 reply".to_vec(), got[0].1)], 1400);
        assert_eq!(server.send_batch(&reply).unwrap(), 1);
        assert_eq!(recv_n(&client4, 1, 1400)[0].0, b"v4 reply");
        client6
            .send_to(
                b"v6 hello",
                SocketAddr::new(Ipv6Addr::LOCALHOST.into(), port),
            )
            .unwrap();
        assert_eq!(recv_n(&server, 1, 1400)[0].1, client6.local_addr().unwrap());
    });
}

#[test]
fn ipv4_socket_counts_ipv6_destinations_as_errors() {
    in_fresh_netns(|| {
        let tx = UdpSocket::bind(sa("127.0.0.1:0")).unwrap();
        let rx = UdpSocket::bind(sa("127.0.0.1:0")).unwrap();
        let to = rx.local_addr().unwrap();
        let batch = udp_batch(&[(b"a".to_vec(), sa("[::1]:9")), (b"b".to_vec(), to)], 1400);
        assert_eq!(tx.send_batch(&batch).unwrap(), 1);
        assert_eq!(tx.stats().send_errors, 1);
        assert_eq!(recv_n(&rx, 1, 1400)[0].0, b"b");
        assert!(tx.send_to(b"x", sa("[::1]:9")).is_err());
    });
}

#[test]
fn truncated_datagrams_are_dropped_and_counted() {
    in_fresh_netns(|| {
        let tx = UdpSocket::bind(sa("127.0.0.1:0")).unwrap();
        let rx = UdpSocket::bind(sa("127.0.0.1:0")).unwrap();
        let to = rx.local_addr().unwrap();
        let stride = PacketBatch::stride_for(1280);
        let big = vec![0xee; stride + 1];
        let list: Vec<_> = [big.clone(), vec![1; 600], big, vec![2; stride]]
            .into_iter()
            .map(|d| (d, to))
            .collect();
        assert_eq!(tx.send_batch(&udp_batch(&list, 4000)).unwrap(), 4);
        let got = recv_n(&rx, 2, 1280);
        assert_eq!(got[0].0, vec![1; 600]);
        assert_eq!(got[1].0, vec![2; stride]);
        assert_eq!(rx.stats().dropped_truncated, 2);
    });
}

#[test]
fn dropping_the_tun_removes_the_interface() {
    in_fresh_netns(|| {
        let tun = TunDevice::create(&settings("qs-drop", &["198.18.0.1/24"], &["198.19.0.0/24"]))
            .unwrap();
        assert!(interface_index("qs-drop").is_some());
        drop(tun);
        let deadline = Instant::now() + WAIT;
        while interface_index("qs-drop").is_some() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(
            interface_index("qs-drop"),
            None,
            "interface still there after drop"
        );
    });
}

/// Waits until the thread at `/proc/<task>` sits in poll(2) or epoll_wait(2) (x86_64: poll 7,
/// ppoll 271, epoll_wait 232, epoll_pwait 281), read from its `syscall` file; panics after
/// `WAIT`.
fn wait_until_blocked_in_poll(task: std::path::PathBuf) {
    let file = std::path::Path::new("/proc").join(task).join("syscall");
    let deadline = Instant::now() + WAIT;
    loop {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        if matches!(
            text.split_whitespace().next(),
            Some("7" | "271" | "232" | "281")
        ) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the receiver never blocked in poll: {} says '{}'",
            file.display(),
            text.trim()
        );
        thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn one_socket_sends_while_another_thread_waits_in_recv() {
    in_fresh_netns(|| {
        let sock = std::sync::Arc::new(UdpSocket::bind(sa("127.0.0.1:0")).unwrap());
        let peer = UdpSocket::bind(sa("127.0.0.1:0")).unwrap();
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let receiver = {
            let sock = sock.clone();
            thread::spawn(move || {
                // "/proc/thread-self" links to "<pid>/task/<tid>": this thread's own entry.
                tid_tx
                    .send(std::fs::read_link("/proc/thread-self").unwrap())
                    .unwrap();
                let mut batch = PacketBatch::new(4, 1400);
                let n = sock.recv_batch(&mut batch, WAIT).unwrap();
                (n, batch.bytes(0).to_vec())
            })
        };
        wait_until_blocked_in_poll(tid_rx.recv().unwrap());
        let t0 = Instant::now();
        sock.send_to(b"ping", peer.local_addr().unwrap()).unwrap();
        assert!(
            t0.elapsed() < Duration::from_secs(1),
            "send waited for the receiver"
        );
        let got = recv_n(&peer, 1, 1400);
        peer.send_to(b"pong", got[0].1).unwrap();
        assert_eq!(receiver.join().unwrap(), (1, b"pong".to_vec()));
    });
}

/// Every datagram queued now: receives until one call comes back empty.
fn recv_all(sock: &UdpSocket, mtu: usize) -> Vec<(Vec<u8>, SocketAddr)> {
    let mut batch = PacketBatch::new(64, mtu);
    let mut got = Vec::new();
    while sock
        .recv_batch(&mut batch, Duration::from_millis(100))
        .unwrap()
        > 0
    {
        for i in 0..batch.len() {
            got.push((batch.bytes(i).to_vec(), batch.meta(i).addr.unwrap()));
        }
    }
    got
}

/// Fills `to`'s shared receive queue from `flood` (more bytes than the 7 MiB buffer), then
/// sends 50 datagrams from `peer`; returns (flood datagrams, peer datagrams) received.
fn flood_then_peer(rx: &UdpSocket, flood: &UdpSocket, peer: &UdpSocket) -> (usize, usize) {
    const FLOOD: usize = 8000;
    let to = rx.local_addr().unwrap();
    let to = match to {
        SocketAddr::V6(a) if a.ip().is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), a.port())
        }
        a => a,
    };
    let flood_batch = udp_batch(&vec![(vec![0xf1; 1400], to); 64], 1400);
    for _ in 0..FLOOD / 64 {
        flood.send_batch(&flood_batch).unwrap();
    }
    for n in 0..50u8 {
        peer.send_to(&[0xbe, n], to).unwrap();
    }
    let got = recv_all(rx, 1400);
    let from_peer: Vec<_> = got
        .iter()
        .filter(|(_, from)| *from == peer.local_addr().unwrap())
        .collect();
    for (n, (bytes, _)) in from_peer.iter().enumerate() {
        assert_eq!(
            bytes,
            &vec![0xbe, n as u8],
            "the peer's datagrams, in order"
        );
    }
    let flood_got = got.len() - from_peer.len();
    assert!(
        flood_got < FLOOD,
        "the flood did not fill the shared queue ({flood_got} of {FLOOD} received)"
    );
    (flood_got, from_peer.len())
}

#[test]
fn a_peer_endpoint_keeps_its_datagrams_while_a_flood_fills_the_shared_queue() {
    in_fresh_netns(|| {
        for (bind, offload) in [
            ("127.0.0.1:0", OffloadWish::none()),
            ("[::]:0", OffloadWish::all()),
        ] {
            let rx = UdpSocket::bind_offloaded(sa(bind), offload).unwrap();
            let flood = UdpSocket::bind(sa("127.0.0.1:0")).unwrap();
            let peer = UdpSocket::bind(sa("127.0.0.1:0")).unwrap();
            // Without a queue of its own the peer loses what it sends behind the flood (the
            // kernel drops from a full queue whoever sent; a datagram may slip into the
            // last bytes of room).
            let (_, shared) = flood_then_peer(&rx, &flood, &peer);
            assert!(
                shared < 5,
                "{bind}: {shared} of 50 peer datagrams through the shared queue"
            );
            rx.set_peer_endpoints(&[peer.local_addr().unwrap()]);
            assert_eq!(rx.peer_queues(), vec![peer.local_addr().unwrap()]);
            let (flood_got, own) = flood_then_peer(&rx, &flood, &peer);
            assert_eq!(own, 50, "{bind}: peer datagrams through its own queue");
            assert!(
                flood_got > 0,
                "{bind}: the rest still arrives on the bound socket"
            );
            // Forgotten again (the peer roamed away): back to the shared queue.
            rx.set_peer_endpoints(&[]);
            assert!(rx.peer_queues().is_empty());
            let (_, shared) = flood_then_peer(&rx, &flood, &peer);
            assert!(
                shared < 5,
                "{bind}: {shared} of 50 after the peer queue was closed"
            );
        }
    });
}

#[test]
fn peer_queues_leave_the_port_closed_to_a_second_bind() {
    in_fresh_netns(|| {
        let rx = UdpSocket::bind(sa("127.0.0.1:0")).unwrap();
        let peer = UdpSocket::bind(sa("127.0.0.1:0")).unwrap();
        rx.set_peer_endpoints(&[peer.local_addr().unwrap()]);
        assert_eq!(rx.peer_queues().len(), 1);
        match UdpSocket::bind(rx.local_addr().unwrap()) {
            Err(NetError::UdpBind { source, .. }) => {
                assert_eq!(source.raw_os_error(), Some(libc::EADDRINUSE), "{source}")
            }
            other => panic!("a second socket bound the daemon's port: {other:?}"),
        }
    });
}

#[test]
fn an_icmp_error_on_a_peer_queue_is_not_a_receive_error() {
    in_fresh_netns(|| {
        let rx = UdpSocket::bind(sa("127.0.0.1:0")).unwrap();
        let gone = UdpSocket::bind(sa("127.0.0.1:0")).unwrap();
        let gone_addr = gone.local_addr().unwrap();
        rx.set_peer_endpoints(&[gone_addr]);
        drop(gone);
        // Port unreachable comes back and is reported on the peer's connected socket.
        rx.send_to(b"to a closed port", gone_addr).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let other = UdpSocket::bind(sa("127.0.0.1:0")).unwrap();
        other
            .send_to(b"still here", rx.local_addr().unwrap())
            .unwrap();
        assert_eq!(
            recv_n(&rx, 1, 1400)[0],
            (b"still here".to_vec(), other.local_addr().unwrap())
        );
    });
}
