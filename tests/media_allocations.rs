//! The SRTP sender's per-packet work allocates no packet buffer: `Protector::protect` reuses
//! the caller's output buffer, passed through the SRTP transform and handed back (docs/srtp.md).
//! What is left is the transform's own one small allocation per packet (its authentication
//! tag). Counted by a global allocator, per thread, so that tests running side by side do not
//! mix.

// The counting allocator implements the unsafe `GlobalAlloc` trait.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use mbms_keys::bmsc::config::{SrtpSenderConfig, SrtpSuite};
use mbms_keys::bmsc::distribution::MediaKey;
use mbms_keys::bmsc::media::Protector;
use mbms_keys::crypto::{Mtk, Salt};
use mbms_keys::mikey::{MskId, MtkId};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counter is a const-initialized thread-local, which does not allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: as the caller's contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as the caller's contract.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: as the caller's contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Heap allocations made by `f` on this thread.
fn allocations<T>(f: impl FnOnce() -> T) -> (usize, T) {
    let before = ALLOCATIONS.with(Cell::get);
    let out = f();
    (ALLOCATIONS.with(Cell::get) - before, out)
}

const SSRC: u32 = 0x0102_0304;

fn rtp(seq: u16, payload: usize) -> Vec<u8> {
    let mut p = vec![0x80, 96];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&[0; 4]);
    p.extend_from_slice(&SSRC.to_be_bytes());
    p.extend((0..payload).map(|i| i as u8));
    p
}

fn protector(suite: SrtpSuite, mki: bool) -> Protector {
    let cfg = SrtpSenderConfig {
        rtp_input: "127.0.0.1:1".parse().unwrap(),
        media_destination: "127.0.0.1:2".parse().unwrap(),
        suite,
        mki,
        key_lead: 1,
        udp_offload: true,
    };
    let mut p = Protector::new(SSRC, 0, &cfg);
    let key = MediaKey {
        msk_id: MskId::new(1, 2),
        mtk_id: MtkId(3),
        mtk: Mtk::from_bytes([7; 16]),
        salt: Salt::from_bytes([9; 14]),
        sent: 1,
    };
    assert_eq!(p.offer_key(&key), Ok(true));
    p
}

#[test]
fn protecting_into_a_reused_buffer_allocates_at_most_once_per_packet() {
    for (suite, mki) in [
        (SrtpSuite::AesCm128HmacSha1_80, true),
        (SrtpSuite::AesCm128HmacSha1_32, false),
    ] {
        let mut p = protector(suite, mki);
        let packets: Vec<Vec<u8>> = (1..=1000u16).map(|s| rtp(s, 1200)).collect();
        let mut out = Vec::new();
        // The first packet sizes the buffer.
        p.protect(&packets[0], &mut out).expect("protected");
        let (n, lens) = allocations(|| {
            packets[1..]
                .iter()
                .map(|pk| {
                    p.protect(pk, &mut out).expect("protected");
                    out.len()
                })
                .collect::<Vec<_>>()
        });
        let mki_len = if mki { 6 } else { 0 };
        assert!(
            lens.iter()
                .all(|&l| l == 12 + 1200 + mki_len + suite.tag_len()),
            "every packet protected whole"
        );
        // The collected lengths' vector: a few allocations; the rest per packet.
        let per_packet = (n as f64 - 12.0) / (packets.len() - 1) as f64;
        assert!(
            per_packet <= 1.0,
            "{suite:?}: {n} allocations for {} packets",
            packets.len() - 1
        );
    }
}
