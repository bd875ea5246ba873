//! Thin, safe wrappers over the raw system calls the real devices share: `poll` and
//! `epoll` with a timeout, `bind` and `connect`, integer socket options, socket addresses
//! in C layout, and the interface ioctls (`SIOCGIFMTU`, `SIOCGIFFLAGS`). Nothing here
//! allocates.

use std::ffi::CStr;
use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr;
use std::time::{Duration, Instant};

/// Turns a `-1` return into the thread's `errno`.
pub(crate) fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Same as [`cvt`] for calls returning `ssize_t`.
pub(crate) fn cvt_size(ret: libc::ssize_t) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

/// A new socket, close-on-exec, owned.
pub(crate) fn socket(
    domain: libc::c_int,
    kind: libc::c_int,
    proto: libc::c_int,
) -> io::Result<OwnedFd> {
    // SAFETY: socket(2) takes no pointers; the flags are valid for any domain.
    let fd = cvt(unsafe { libc::socket(domain, kind | libc::SOCK_CLOEXEC, proto) })?;
    // SAFETY: `fd` was just returned by socket(2), is open and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Waits until `fd` is readable or `timeout` passes; true when readable. Retries on
/// `EINTR` with the time left.
pub(crate) fn poll_readable(fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `pfd` is a valid pollfd for the duration of the call; nfds is 1.
        let ret = unsafe { libc::poll(&mut pfd, 1, timeout_ms(left)) };
        match cvt(ret) {
            Ok(0) => return Ok(false),
            Ok(_) => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// A poll(2) timeout in milliseconds, rounded up so a short wait never becomes a busy loop.
fn timeout_ms(d: Duration) -> libc::c_int {
    let ms = d.as_nanos().div_ceil(1_000_000);
    ms.min(libc::c_int::MAX as u128) as libc::c_int
}

/// An epoll instance (level-triggered, read readiness), owned. Each registered descriptor
/// carries its own raw fd number as the event's token.
pub(crate) struct Epoll(OwnedFd);

/// One readiness slot of [`Epoll::wait`].
pub(crate) type EpollEvent = libc::epoll_event;

/// An empty readiness slot, to fill an array for [`Epoll::wait`].
pub(crate) const EPOLL_EVENT_NONE: EpollEvent = libc::epoll_event { events: 0, u64: 0 };

impl Epoll {
    /// A new instance, close-on-exec.
    pub(crate) fn new() -> io::Result<Self> {
        // SAFETY: epoll_create1 takes no pointers; EPOLL_CLOEXEC is a valid flag.
        let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: `fd` was just returned by epoll_create1, is open and owned by nobody else.
        Ok(Self(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Watches `fd` for readability (and errors, which the kernel always reports).
    pub(crate) fn add(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: fd.as_raw_fd() as u64,
        };
        // SAFETY: both descriptors are open; `event` is a live epoll_event for the call.
        let ret = unsafe {
            libc::epoll_ctl(
                self.0.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                fd.as_raw_fd(),
                &mut event,
            )
        };
        cvt(ret).map(drop)
    }

    /// Stops watching `fd` (call before closing it).
    pub(crate) fn delete(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        // SAFETY: both descriptors are open; EPOLL_CTL_DEL ignores the (null) event.
        let ret = unsafe {
            libc::epoll_ctl(
                self.0.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                fd.as_raw_fd(),
                ptr::null_mut(),
            )
        };
        cvt(ret).map(drop)
    }

    /// Waits until a watched descriptor is ready or `timeout` passes (zero: only looks);
    /// fills `events` from the front and returns how many are ready. Retries on `EINTR`
    /// with the time left.
    pub(crate) fn wait(&self, events: &mut [EpollEvent], timeout: Duration) -> io::Result<usize> {
        let deadline = Instant::now() + timeout;
        let max = events.len().min(libc::c_int::MAX as usize) as libc::c_int;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            // SAFETY: `events` is a live, writable array of at least `max` epoll_events.
            let ret = unsafe {
                libc::epoll_wait(
                    self.0.as_raw_fd(),
                    events.as_mut_ptr(),
                    max,
                    timeout_ms(left),
                )
            };
            match cvt(ret) {
                Ok(n) => return Ok(n as usize),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// Connects a datagram socket to `to` (its address in C form, `len` bytes).
pub(crate) fn connect(fd: BorrowedFd<'_>, to: &RawAddr, len: libc::socklen_t) -> io::Result<()> {
    // SAFETY: `to` is a valid sockaddr of `len` bytes, live for the call.
    let ret = unsafe { libc::connect(fd.as_raw_fd(), (to as *const RawAddr).cast(), len) };
    cvt(ret).map(drop)
}

/// Binds a socket to `addr` (its address in C form, `len` bytes).
pub(crate) fn bind(fd: BorrowedFd<'_>, addr: &RawAddr, len: libc::socklen_t) -> io::Result<()> {
    // SAFETY: `addr` is a valid sockaddr of `len` bytes, live for the call.
    let ret = unsafe { libc::bind(fd.as_raw_fd(), (addr as *const RawAddr).cast(), len) };
    cvt(ret).map(drop)
}

/// One `recvmmsg(MSG_DONTWAIT)` into `hdrs`: the datagrams received, 0 when nothing is
/// queued. Retries on `EINTR`.
///
/// # Safety
///
/// Every header in `hdrs` must point at its own live iovec(s), address buffer and control
/// buffer (or none), with the lengths stated, writable and aliased by nothing else until
/// this returns.
pub(crate) unsafe fn recvmmsg_dontwait(
    fd: BorrowedFd<'_>,
    hdrs: &mut [libc::mmsghdr],
) -> io::Result<usize> {
    let count = hdrs.len().min(libc::c_uint::MAX as usize) as libc::c_uint;
    loop {
        // SAFETY: the caller guarantees every header's buffers (see above); `hdrs` holds
        // `count` headers.
        let ret = unsafe {
            libc::recvmmsg(
                fd.as_raw_fd(),
                hdrs.as_mut_ptr(),
                count,
                libc::MSG_DONTWAIT,
                ptr::null_mut(),
            )
        };
        match cvt(ret) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(0),
            Err(e) => return Err(e),
            Ok(n) => return Ok(n as usize),
        }
    }
}

/// Sets an integer socket option.
pub(crate) fn set_int_option(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: the pointer and length describe `value`, a live c_int.
    let ret = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    cvt(ret).map(drop)
}

/// Reads an integer socket option.
pub(crate) fn get_int_option(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: the pointers describe `value` and `len`, both live and correctly sized.
    let ret = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    cvt(ret).map(|_| value)
}

/// A socket address in C layout, large enough for IPv4 and IPv6.
#[derive(Clone, Copy)]
#[repr(C)]
pub(crate) union RawAddr {
    v4: libc::sockaddr_in,
    v6: libc::sockaddr_in6,
}

impl RawAddr {
    /// An all-zero address (family `AF_UNSPEC`), to be filled by the kernel.
    pub(crate) fn zeroed() -> Self {
        // SAFETY: both variants are plain C structs for which all-zero bytes are valid.
        unsafe { mem::zeroed() }
    }

    /// The C form of `addr`. With `map_v4`, an IPv4 address becomes IPv4-mapped IPv6 (for a
    /// dual-stack `AF_INET6` socket). Returns the address and its length.
    pub(crate) fn from_socket_addr(addr: SocketAddr, map_v4: bool) -> (Self, libc::socklen_t) {
        match addr {
            SocketAddr::V4(a) if map_v4 => {
                let mapped = SocketAddrV6::new(a.ip().to_ipv6_mapped(), a.port(), 0, 0);
                Self::from_socket_addr(SocketAddr::V6(mapped), false)
            }
            SocketAddr::V4(a) => {
                let mut raw = Self::zeroed();
                raw.v4 = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(a.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                (raw, mem::size_of::<libc::sockaddr_in>() as libc::socklen_t)
            }
            SocketAddr::V6(a) => {
                let mut raw = Self::zeroed();
                raw.v6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: a.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: a.ip().octets(),
                    },
                    sin6_scope_id: a.scope_id(),
                };
                (raw, mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t)
            }
        }
    }

    /// The Rust form, with IPv4-mapped IPv6 turned into plain IPv4; `None` for another
    /// family.
    pub(crate) fn socket_addr(&self) -> Option<SocketAddr> {
        // SAFETY: every variant starts with the family field at the same offset, and any
        // bit pattern is a valid u16.
        let family = libc::c_int::from(unsafe { self.v4.sin_family });
        match family {
            libc::AF_INET => {
                // SAFETY: the family says the v4 variant was written.
                let a = unsafe { self.v4 };
                let ip = Ipv4Addr::from(a.sin_addr.s_addr.to_ne_bytes());
                Some(SocketAddr::V4(SocketAddrV4::new(
                    ip,
                    u16::from_be(a.sin_port),
                )))
            }
            libc::AF_INET6 => {
                // SAFETY: the family says the v6 variant was written.
                let a = unsafe { self.v6 };
                let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
                let port = u16::from_be(a.sin6_port);
                Some(match ip.to_ipv4_mapped() {
                    Some(v4) => SocketAddr::V4(SocketAddrV4::new(v4, port)),
                    None => SocketAddr::V6(SocketAddrV6::new(
                        ip,
                        port,
                        a.sin6_flowinfo,
                        a.sin6_scope_id,
                    )),
                })
            }
            _ => None,
        }
    }
}

/// Copies an interface name into the C form used by `ifreq` (NUL-terminated, 16 bytes).
/// The caller has validated the name (see `tun::validate_name`).
pub(crate) fn ifname_bytes(name: &str) -> [libc::c_char; libc::IFNAMSIZ] {
    let mut out = [0 as libc::c_char; libc::IFNAMSIZ];
    for (dst, &src) in out
        .iter_mut()
        .zip(name.as_bytes().iter().take(libc::IFNAMSIZ - 1))
    {
        *dst = src as libc::c_char;
    }
    out
}

/// The name in an `ifreq`, as the kernel wrote it back.
pub(crate) fn ifname_from(raw: &[libc::c_char; libc::IFNAMSIZ]) -> String {
    let bytes: Vec<u8> = raw
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// An `ifreq` naming `name`, with a zeroed request union.
pub(crate) fn ifreq_for(name: &str) -> libc::ifreq {
    // SAFETY: ifreq is a plain C struct (name array plus a union of plain fields and raw
    // pointers); all-zero bytes are a valid value.
    let mut req: libc::ifreq = unsafe { mem::zeroed() };
    req.ifr_name = ifname_bytes(name);
    req
}

/// Runs an interface ioctl that reads or writes `req`, on a throwaway `AF_INET` socket.
pub(crate) fn interface_ioctl(request: libc::Ioctl, req: &mut libc::ifreq) -> io::Result<()> {
    let sock = socket(libc::AF_INET, libc::SOCK_DGRAM, 0)?;
    // SAFETY: `req` is a valid, exclusively borrowed ifreq for the call; the SIOC*IF*
    // requests used with this helper read and write only within it.
    cvt(unsafe { libc::ioctl(sock.as_raw_fd(), request, req as *mut libc::ifreq) }).map(drop)
}

/// The kernel's index of interface `name`, or `None` when there is no such interface in
/// the calling thread's network namespace.
pub(crate) fn interface_index(name: &str) -> Option<u32> {
    let c = ifname_bytes(name);
    // SAFETY: `c` is NUL-terminated (its last byte is always 0), so it is a valid C string.
    let cstr = unsafe { CStr::from_ptr(c.as_ptr()) };
    // SAFETY: if_nametoindex reads the NUL-terminated string only.
    let index = unsafe { libc::if_nametoindex(cstr.as_ptr()) };
    (index != 0).then_some(index)
}

/// The effective user ID of this process (the owner secret files must have).
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid(2) takes no arguments, touches no memory and cannot fail.
    unsafe { libc::geteuid() }
}

/// For commands that only print (reports, tables, status): a closed stdout pipe (`| head`)
/// ends the process quietly, as it does for other Unix tools, instead of a panic in
/// `println!`. Never for the daemon or the KME, whose sockets must not raise SIGPIPE.
pub fn exit_quietly_on_closed_stdout() {
    // SAFETY: `signal` with SIG_DFL installs no Rust code as a handler; it only restores
    // the default disposition of SIGPIPE, which the Rust runtime had set to ignore.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
