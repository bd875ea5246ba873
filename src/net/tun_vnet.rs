//! The offloaded TUN path (`IFF_VNET_HDR`): every read is one `virtio_net_hdr` and a packet
//! of up to 64 KiB, cut into the batch's slots by [`offload::segment`]; every write is one
//! coalesced group from [`offload::gro`], handed to `writev` as a header and the members'
//! payloads where they lie in the batch (no copy of the payload).
//!
//! [`VnetReader`] and [`VnetWriter`] hold the per-direction state (the read buffer and a
//! super-packet whose segments did not all fit in the last batch; the grouping table). The
//! device keeps each behind its own mutex, taken only by the one thread of that direction.

use super::offload::gro::MAX_GROUP_SEGMENTS;
use super::offload::{GROUP_HEADER_MAX, GroTable, Plan, VNET_HDR_LEN, VirtioNetHdr};
use super::tun_too_big::TooBigResponder;
use super::{Counters, sys};
use crate::batch::{PacketBatch, SlotMeta};
use crate::constants::DATA_HEADER_BYTES;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

/// Bytes of one TUN read with offloads on: the virtio header and a super-packet of up to
/// 64 KiB (one more byte tells a truncated read apart).
pub(crate) const TUN_READ_BUFFER_BYTES: usize = 10 + 65_536 + 1;

/// Read side: the buffer one read fills, and the segments of it still to hand out.
pub(crate) struct VnetReader {
    buf: Box<[u8]>,
    /// (plan, bytes in `buf` after the virtio header, next segment).
    pending: Option<(Plan, usize, usize)>,
}

impl VnetReader {
    /// A reader with its buffer when `vnet_hdr` (else an empty one, never used).
    pub(crate) fn new_if(vnet_hdr: bool) -> Self {
        let len = if vnet_hdr { TUN_READ_BUFFER_BYTES } else { 0 };
        Self {
            buf: vec![0; len].into_boxed_slice(),
            pending: None,
        }
    }

    /// True when segments of an earlier read are waiting (no need to poll).
    pub(crate) fn has_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Fills the batch from slot 0 with waiting segments and new reads, until the batch is
    /// full or the TUN has nothing queued; returns the slots filled. Each inner packet may
    /// be at most the tunnel MTU; longer ones go to `too_big` (dropped, counted, answered).
    pub(crate) fn fill(
        &mut self,
        fd: &OwnedFd,
        batch: &mut PacketBatch,
        too_big: &TooBigResponder,
        counters: &Counters,
    ) -> io::Result<usize> {
        let room = too_big.mtu();
        let mut filled = 0;
        loop {
            if let Some((plan, len, k)) = self.pending {
                let packet = &self.buf[VNET_HDR_LEN..VNET_HDR_LEN + len];
                let mut k = k;
                while k < plan.count() && filled < batch.capacity() {
                    if plan.segment_len(k) > room {
                        // the super-packet's headers stand for the segment's in the answer
                        too_big.answer(fd, packet, plan.segment_len(k), counters);
                    } else {
                        let (slot, meta) = batch.slot_and_meta_mut(filled);
                        let n = plan.write(packet, k, &mut slot[DATA_HEADER_BYTES..]);
                        *meta = SlotMeta {
                            start: DATA_HEADER_BYTES,
                            len: n,
                            addr: None,
                        };
                        filled += 1;
                    }
                    k += 1;
                }
                self.pending = (k < plan.count()).then_some((plan, len, k));
                if filled == batch.capacity() {
                    return Ok(filled);
                }
            }
            match super::tun::read_packet(fd, &mut self.buf) {
                Ok(n) if n < VNET_HDR_LEN || n >= self.buf.len() => counters.truncated(1),
                Ok(n) => self.plan(n, counters),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(filled),
                Err(e) if filled > 0 => {
                    tracing::debug!(error = %e, "TUN read failed mid-batch");
                    return Ok(filled);
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn plan(&mut self, n: usize, counters: &Counters) {
        let hdr = VirtioNetHdr::parse(&self.buf).unwrap_or_default();
        match Plan::new(&hdr, &self.buf[VNET_HDR_LEN..n]) {
            Ok(plan) => self.pending = Some((plan, n - VNET_HDR_LEN, 0)),
            Err(e) => {
                tracing::trace!(error = %e, "TUN packet dropped");
                counters.truncated(1);
            }
        }
    }
}

/// Write side: the grouping table and one header buffer, reused for every batch.
pub(crate) struct VnetWriter {
    table: GroTable,
    header: [u8; GROUP_HEADER_MAX],
    /// Coalesce TCP segments (else every packet is written alone, with a plain header).
    coalesce: bool,
}

impl VnetWriter {
    pub(crate) fn new(coalesce: bool) -> Self {
        Self {
            table: GroTable::new(),
            header: [0; GROUP_HEADER_MAX],
            coalesce,
        }
    }

    /// Writes the batch's packets (slots with `len > 0`), coalesced; returns packets written.
    pub(crate) fn send(&mut self, fd: &OwnedFd, batch: &PacketBatch, counters: &Counters) -> usize {
        let packet = |i: usize| {
            if batch.meta(i).len > 0 {
                batch.bytes(i)
            } else {
                &[][..]
            }
        };
        if self.coalesce {
            self.table.build(batch.len(), packet);
        } else {
            self.table.build_alone(batch.len(), packet);
        }
        let mut sent = 0;
        let Self { table, header, .. } = self;
        for g in table.groups() {
            let first = table.members(g).next().map_or(&[][..], packet);
            let hl = g.write_header(first, header);
            let mut iovs = [libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            }; 1 + MAX_GROUP_SEGMENTS];
            iovs[0] = iovec(&header[..hl]);
            let mut n = 1;
            for m in table.members(g) {
                iovs[n] = iovec(&packet(m)[g.hdr_len..]);
                n += 1;
            }
            match writev(fd, &iovs[..n]) {
                Ok(_) => sent += g.count,
                Err(e) => {
                    tracing::trace!(error = %e, segments = g.count, "TUN write failed");
                    counters.send_errors(g.count);
                }
            }
        }
        sent
    }
}

fn iovec(b: &[u8]) -> libc::iovec {
    libc::iovec {
        iov_base: b.as_ptr().cast_mut().cast(),
        iov_len: b.len(),
    }
}

/// One `writev(2)` of a whole packet, retried on `EINTR`.
fn writev(fd: &OwnedFd, iovs: &[libc::iovec]) -> io::Result<usize> {
    loop {
        // SAFETY: every iovec describes a live slice borrowed for this call (the header
        // buffer and batch slots); the kernel only reads them. `iovs.len()` is at most
        // 1 + MAX_GROUP_SEGMENTS (65), far below IOV_MAX.
        let ret = unsafe { libc::writev(fd.as_raw_fd(), iovs.as_ptr(), iovs.len() as libc::c_int) };
        match sys::cvt_size(ret) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}
