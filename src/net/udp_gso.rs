//! UDP offloads for [`UdpSocket`](super::UdpSocket): GSO on send (`UDP_SEGMENT`: a run of
//! datagrams to one destination, all of one size but the last, leaves in one message whose
//! iovecs point at the batch slots as they lie; every message of a batch in one
//! `sendmmsg`), and GRO on receive (`UDP_GRO`: the kernel hands over runs of datagrams of
//! one source glued together, with their size in a control message; they are cut into the
//! batch's slots, and a run that does not fit waits for the next batch).

use super::Counters;
use super::sys::{self, RawAddr};
use crate::batch::{PacketBatch, SlotMeta};
use std::io;
use std::mem;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr;

/// Buffers of one `recvmmsg` with `UDP_GRO` on, each taking one coalesced run of datagrams.
pub(crate) const UDP_GRO_BUFFERS: usize = 8;
/// Bytes of each of those buffers (the largest coalesced run is 64 KiB).
pub(crate) const UDP_GRO_BUFFER_BYTES: usize = 65_536;

/// `SOL_UDP`.
pub(crate) const SOL_UDP: libc::c_int = 17;
/// `UDP_SEGMENT` (socket option and control message: the GSO segment size, a `u16`).
pub(crate) const UDP_SEGMENT: libc::c_int = 103;
/// `UDP_GRO` (socket option; control message: the segment size, an `int`).
pub(crate) const UDP_GRO: libc::c_int = 104;
/// Most segments the kernel takes in one GSO send (`UDP_MAX_SEGMENTS`, 64 on older kernels).
const GSO_MAX_SEGMENTS: usize = 64;
/// Most payload bytes of one GSO send (IPv4's 65 535 minus IP and UDP headers, rounded down).
const GSO_MAX_BYTES: usize = 65_000;
/// Messages per `sendmmsg` call.
const SEND_MSGS: usize = 64;
/// Datagrams (iovecs) per `sendmmsg` call.
const SEND_IOVS: usize = 256;
/// Bytes of a control-message buffer (one `UDP_SEGMENT` / `UDP_GRO` message, aligned).
const CMSG_BYTES: usize = 32;

/// An 8-byte-aligned control-message buffer.
#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct Cmsg([u8; CMSG_BYTES]);

/// Per-call arrays of a GSO `sendmmsg`, on the caller's stack (about 30 KiB).
struct SendScratch {
    hdrs: [libc::mmsghdr; SEND_MSGS],
    iovs: [libc::iovec; SEND_IOVS],
    names: [RawAddr; SEND_MSGS],
    cmsgs: [Cmsg; SEND_MSGS],
    /// Per message: first iovec, iovec count, segment size.
    runs: [(usize, usize, usize); SEND_MSGS],
    msgs: usize,
    iov_used: usize,
}

impl SendScratch {
    fn new() -> Self {
        // SAFETY: every field is a plain C struct, byte array or integer tuple for which
        // all-zero bytes are valid (null pointers, zero lengths).
        unsafe { mem::zeroed() }
    }
}

/// Sends every slot with `len > 0` using GSO runs; returns the datagrams sent. `Err` only
/// when the kernel refused GSO itself (`EIO`: the route's device cannot checksum): the
/// caller then turns GSO off and sends the batch again without it.
pub(crate) fn send_batch_gso(
    fd: BorrowedFd<'_>,
    batch: &PacketBatch,
    map_v4: bool,
    counters: &Counters,
) -> io::Result<usize> {
    let mut s = SendScratch::new();
    let mut sent = 0;
    let mut run_dest: Option<SocketAddr> = None;
    let mut run_bytes = 0;
    for i in (0..batch.len()).filter(|&i| batch.meta(i).len > 0) {
        let meta = batch.meta(i);
        let Some(dest) = meta.addr.filter(|a| map_v4 || a.is_ipv4()) else {
            counters.send_errors(1);
            continue;
        };
        let joins = s.msgs > 0 && run_dest == Some(dest) && {
            let (_, count, size) = s.runs[s.msgs - 1];
            let last_len = s.iovs[s.iov_used - 1].iov_len;
            last_len == size
                && meta.len <= size
                && count < GSO_MAX_SEGMENTS
                && run_bytes + meta.len <= GSO_MAX_BYTES
        };
        if !joins {
            if s.msgs == SEND_MSGS || s.iov_used == SEND_IOVS {
                sent += flush(fd, &mut s, counters)?;
            }
            let (name, name_len) = RawAddr::from_socket_addr(dest, map_v4);
            s.names[s.msgs] = name;
            s.hdrs[s.msgs].msg_hdr.msg_namelen = name_len;
            s.runs[s.msgs] = (s.iov_used, 0, meta.len);
            s.msgs += 1;
            run_dest = Some(dest);
            run_bytes = 0;
        } else if s.iov_used == SEND_IOVS {
            // the run continues in a new message after the flush
            sent += flush(fd, &mut s, counters)?;
            let (name, name_len) = RawAddr::from_socket_addr(dest, map_v4);
            s.names[0] = name;
            s.hdrs[0].msg_hdr.msg_namelen = name_len;
            s.runs[0] = (0, 0, meta.len);
            s.msgs = 1;
            run_bytes = 0;
        }
        let bytes = batch.bytes(i);
        s.iovs[s.iov_used] = libc::iovec {
            iov_base: bytes.as_ptr().cast_mut().cast(),
            iov_len: bytes.len(),
        };
        s.iov_used += 1;
        s.runs[s.msgs - 1].1 += 1;
        run_bytes += bytes.len();
    }
    if s.msgs > 0 {
        sent += flush(fd, &mut s, counters)?;
    }
    Ok(sent)
}

/// Links the messages in `s` and sends them all; returns datagrams sent and empties `s`.
fn flush(fd: BorrowedFd<'_>, s: &mut SendScratch, counters: &Counters) -> io::Result<usize> {
    for m in 0..s.msgs {
        let (first, count, size) = s.runs[m];
        let hdr = &mut s.hdrs[m].msg_hdr;
        hdr.msg_name = (&mut s.names[m] as *mut RawAddr).cast();
        hdr.msg_iov = &mut s.iovs[first];
        hdr.msg_iovlen = count;
        hdr.msg_flags = 0;
        if count > 1 {
            write_segment_cmsg(&mut s.cmsgs[m], size as u16);
            hdr.msg_control = s.cmsgs[m].0.as_mut_ptr().cast();
            hdr.msg_controllen = cmsg_space(2);
        } else {
            hdr.msg_control = ptr::null_mut();
            hdr.msg_controllen = 0;
        }
    }
    let (mut next, mut sent) = (0, 0);
    while next < s.msgs {
        // SAFETY: headers next..msgs are linked above to their own address, their own run
        // of iovecs (pointing at batch bytes borrowed for this call, only read) and their
        // own control buffer of the stated length; nothing else touches them meanwhile.
        let ret = unsafe {
            libc::sendmmsg(
                fd.as_raw_fd(),
                s.hdrs[next..].as_mut_ptr(),
                (s.msgs - next) as libc::c_uint,
                0,
            )
        };
        match sys::cvt(ret) {
            Ok(k) => {
                for m in next..next + k as usize {
                    sent += s.runs[m].1;
                }
                next += k as usize;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.raw_os_error() == Some(libc::EIO) && s.runs[next].1 > 1 => return Err(e),
            Err(e) => {
                tracing::trace!(error = %e, "UDP send failed");
                counters.send_errors(s.runs[next].1);
                next += 1;
            }
        }
    }
    s.msgs = 0;
    s.iov_used = 0;
    Ok(sent)
}

/// `CMSG_SPACE(n)` for a 64-bit `cmsghdr`.
fn cmsg_space(n: usize) -> usize {
    mem::size_of::<libc::cmsghdr>() + n.next_multiple_of(mem::size_of::<usize>())
}

/// Writes one `SOL_UDP`/`UDP_SEGMENT` control message carrying `size`.
fn write_segment_cmsg(buf: &mut Cmsg, size: u16) {
    let head = mem::size_of::<libc::cmsghdr>();
    // SAFETY: `buf` is 8-byte aligned and longer than a cmsghdr; all-zero plus the fields
    // written here form a valid cmsghdr.
    let mut h: libc::cmsghdr = unsafe { mem::zeroed() };
    h.cmsg_len = head + 2;
    h.cmsg_level = SOL_UDP;
    h.cmsg_type = UDP_SEGMENT;
    // SAFETY: the destination is `buf`, aligned for cmsghdr and at least its size.
    unsafe { ptr::write(buf.0.as_mut_ptr().cast::<libc::cmsghdr>(), h) };
    buf.0[head..head + 2].copy_from_slice(&size.to_ne_bytes());
}

/// True when the kernel knows `UDP_SEGMENT` (asking for the current value succeeds).
pub(crate) fn gso_supported(fd: BorrowedFd<'_>) -> bool {
    sys::get_int_option(fd, SOL_UDP, UDP_SEGMENT).is_ok()
}

/// Turns `UDP_GRO` on; true when the kernel accepted it.
pub(crate) fn enable_gro(fd: BorrowedFd<'_>) -> bool {
    sys::set_int_option(fd, SOL_UDP, UDP_GRO, 1).is_ok()
}

/// Receive side: a few 64 KiB buffers and what is left of the last `recvmmsg`.
pub(crate) struct GroRx {
    bufs: Box<[u8]>,
    /// Per buffer: length, segment size, source.
    got: [(usize, usize, Option<SocketAddr>); UDP_GRO_BUFFERS],
    count: usize,
    cur: usize,
    offset: usize,
}

impl GroRx {
    /// Buffers for a socket with `UDP_GRO` on (none when `on` is false: never used).
    pub(crate) fn new(on: bool) -> Self {
        let len = if on {
            UDP_GRO_BUFFERS * UDP_GRO_BUFFER_BYTES
        } else {
            0
        };
        Self {
            bufs: vec![0; len].into_boxed_slice(),
            got: [(0, 0, None); UDP_GRO_BUFFERS],
            count: 0,
            cur: 0,
            offset: 0,
        }
    }

    /// True when datagrams of an earlier receive are waiting.
    pub(crate) fn has_pending(&self) -> bool {
        self.cur < self.count
    }

    /// Fills slots `from..end` with waiting datagrams and new receives until they are
    /// full or nothing is queued; returns the new fill.
    pub(crate) fn fill(
        &mut self,
        fd: BorrowedFd<'_>,
        batch: &mut PacketBatch,
        from: usize,
        end: usize,
        counters: &Counters,
    ) -> io::Result<usize> {
        let mut filled = from;
        loop {
            filled = self.split_into(batch, filled, end, counters);
            if filled == end {
                return Ok(filled);
            }
            match self.receive(fd) {
                Ok(0) => return Ok(filled),
                Ok(_) => {}
                Err(e) if filled > from => {
                    tracing::debug!(error = %e, "UDP receive failed mid-batch");
                    return Ok(filled);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Cuts waiting runs into slots `filled..end`; returns the new fill.
    fn split_into(
        &mut self,
        batch: &mut PacketBatch,
        mut filled: usize,
        end: usize,
        c: &Counters,
    ) -> usize {
        while self.cur < self.count && filled < end {
            let (len, seg, addr) = self.got[self.cur];
            let base = self.cur * UDP_GRO_BUFFER_BYTES;
            let n = seg.min(len - self.offset);
            let (slot, meta) = batch.slot_and_meta_mut(filled);
            if n <= slot.len() {
                let from = base + self.offset;
                slot[..n].copy_from_slice(&self.bufs[from..from + n]);
                *meta = SlotMeta {
                    start: 0,
                    len: n,
                    addr,
                };
                filled += 1;
            } else {
                c.truncated(1);
            }
            self.offset += n;
            if self.offset >= len {
                self.cur += 1;
                self.offset = 0;
            }
        }
        filled
    }

    /// One `recvmmsg(MSG_DONTWAIT)` into every buffer; returns the messages received.
    fn receive(&mut self, fd: BorrowedFd<'_>) -> io::Result<usize> {
        // SAFETY: plain C structs and byte arrays; all-zero bytes are valid values.
        let mut hdrs: [libc::mmsghdr; UDP_GRO_BUFFERS] = unsafe { mem::zeroed() };
        // SAFETY: as above.
        let mut iovs: [libc::iovec; UDP_GRO_BUFFERS] = unsafe { mem::zeroed() };
        let mut names = [RawAddr::zeroed(); UDP_GRO_BUFFERS];
        let mut cmsgs = [Cmsg([0; CMSG_BYTES]); UDP_GRO_BUFFERS];
        for (k, chunk) in self.bufs.chunks_exact_mut(UDP_GRO_BUFFER_BYTES).enumerate() {
            iovs[k] = libc::iovec {
                iov_base: chunk.as_mut_ptr().cast(),
                iov_len: chunk.len(),
            };
            let h = &mut hdrs[k].msg_hdr;
            h.msg_iov = &mut iovs[k];
            h.msg_iovlen = 1;
            h.msg_name = (&mut names[k] as *mut RawAddr).cast();
            h.msg_namelen = mem::size_of::<RawAddr>() as libc::socklen_t;
            h.msg_control = cmsgs[k].0.as_mut_ptr().cast();
            h.msg_controllen = CMSG_BYTES;
        }
        // SAFETY: each header points at its own iovec (one distinct 64 KiB chunk of
        // `bufs`, exclusively borrowed), its own address buffer and its own aligned control
        // buffer, with the lengths stated; all outlive the call.
        let got = unsafe { sys::recvmmsg_dontwait(fd, &mut hdrs)? };
        if got == 0 {
            return Ok(0);
        }
        for k in 0..got {
            let h = &hdrs[k];
            let len = h.msg_len as usize;
            let truncated = h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            let seg = gro_size(&cmsgs[k], h.msg_hdr.msg_controllen).unwrap_or(len);
            let addr = names[k].socket_addr();
            let bad = truncated || addr.is_none() || seg == 0;
            self.got[k] = (if bad { 0 } else { len }, seg.max(1), addr);
        }
        self.count = got;
        self.cur = 0;
        self.offset = 0;
        // skip empty (dropped) entries
        while self.cur < self.count && self.got[self.cur].0 == 0 {
            self.cur += 1;
        }
        Ok(got)
    }
}

/// The segment size of a `UDP_GRO` control message, if the buffer holds one.
fn gro_size(buf: &Cmsg, controllen: usize) -> Option<usize> {
    let head = mem::size_of::<libc::cmsghdr>();
    if controllen < head {
        return None;
    }
    // SAFETY: the buffer is aligned for cmsghdr and at least `head` bytes were written.
    let h: libc::cmsghdr = unsafe { ptr::read(buf.0.as_ptr().cast()) };
    if h.cmsg_level != SOL_UDP || h.cmsg_type != UDP_GRO || h.cmsg_len < head + 2 {
        return None;
    }
    let d = &buf.0[head..];
    Some(if h.cmsg_len >= head + 4 {
        i32::from_ne_bytes([d[0], d[1], d[2], d[3]]) as usize
    } else {
        usize::from(u16::from_ne_bytes([d[0], d[1]]))
    })
}
