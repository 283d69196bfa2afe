//! The receive path allocates only what its result carries: reading any
//! vector message (`MessageView::decode`), verifying a download MTK message
//! and handing its MTK to the media client allocate nothing (a streaming
//! one copies its SP into the result); verifying an MSK message allocates
//! its IDi and IDr copies and its key derivation's label. Counted by a
//! global allocator, per thread, so that tests running side by side do not
//! mix.

// The counting allocator implements the unsafe `GlobalAlloc` trait.
#![allow(unsafe_code)]

mod common;
mod ue_support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use mbms_keys::crypto::Msk;
use mbms_keys::mbms::{MtkKeys, PreparedMuk, UnverifiedMsk, UnverifiedMtk, profile};
use mbms_keys::mikey::MessageView;
use mbms_keys::ue::Event;
use ue_support::*;

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

#[test]
fn reading_any_vector_message_allocates_nothing() {
    for (name, bytes) in common::all_messages() {
        let (n, view) = allocations(|| {
            let view = MessageView::decode(&bytes).expect("vector reads");
            // Walk every payload, as a verifier does.
            (view.payloads().count(), view.kemac(), view.key_id_ext())
        });
        assert_eq!(n, 0, "{name}: {view:?}");
    }
}

/// The MIKEY-SAKKE fields a verifier reads (the GENERIC-ID map, the UIDs, the
/// SAKKE data, the ECCSI signature and the octets it covers) are read in place.
#[test]
fn reading_the_mikey_sakke_fields_allocates_nothing() {
    use mbms_keys::mikey::IdRole;
    use mbms_keys::mikey::view::CsIdMapView;
    let mut read = 0;
    for (name, bytes) in common::all_messages() {
        if !name.starts_with("streamwide-mikey-sakke") {
            continue;
        }
        let (n, found) = allocations(|| {
            let view = MessageView::decode(&bytes).expect("vector reads");
            let spi = match view.hdr().cs_id_map {
                CsIdMapView::GenericId(map) => map.iter().map(|e| e.spi.len()).sum(),
                _ => 0,
            };
            let uids = (view.idr(IdRole::IDRUIDI), view.idr(IdRole::IDRUIDR));
            let sakke = view.sakke();
            let eccsi = view.sign().and_then(|s| s.eccsi());
            (spi, uids, sakke, eccsi, view.mac_input().map(<[u8]>::len))
        });
        assert_eq!(n, 0, "{name}: {found:?}");
        assert!(
            found.1.0.is_some() && found.2.is_some() && found.3.is_some(),
            "{name}"
        );
        read += 1;
    }
    assert_eq!(read, 4);
}

#[test]
fn verifying_an_mtk_message_allocates_only_the_sp_it_returns() {
    for name in ["mtk-message-download", "mtk-message-streaming"] {
        let bytes = vector(name);
        let msk = common::load(name)["inputs"]["msk"]
            .as_str()
            .map(Msk::from_hex);
        let keys = MtkKeys::new(&msk.unwrap().unwrap(), profile::csb_id_for(id(1, 2)));
        let (n, msg) = allocations(|| UnverifiedMtk::parse(&bytes).and_then(|un| un.verify(&keys)));
        let msg = msg.expect("the vector verifies");
        // The SP of a streaming message is copied into the result.
        let expected = msg.sp.as_ref().map_or(0, |sp| 1 + sp.params.len());
        assert_eq!(n, expected, "{name}");
    }
}

#[test]
fn verifying_an_msk_message_allocates_its_identities_and_key_derivation_label_only() {
    let bytes = vector("msk-message-normal");
    let muk = PreparedMuk::new(&vector_muk());
    let (n, msg) =
        allocations(|| UnverifiedMsk::parse(&bytes).and_then(|un| un.verify_prepared(&muk)));
    msg.expect("the vector verifies");
    // IDi and IDr in the result, and the RFC 3830 §4.1.4 PRF label
    // (const ‖ 0xFF ‖ CSB ID ‖ RAND) of the per-message key derivation.
    assert_eq!(n, 3);
}

#[test]
fn the_receiver_hands_out_an_mtk_without_allocating() {
    let mut rx = receiver();
    let mut bmsc = Bmsc::vectors(&mut rx);
    let key = msk(1);
    let msk_id = id(1, 2);
    rx.handle_datagram(epoch(), &bmsc.new_key(msk_id, &key, 0, 0xffff));
    let messages: Vec<Vec<u8>> = (1..=3)
        .map(|i| mtk_msg(&key, msk_id, i, u32::from(i), &mtk(i as u8)))
        .collect();
    // The first message sizes the event queue.
    rx.handle_datagram(epoch(), &messages[0]);
    drain(&mut rx);
    for m in &messages[1..] {
        let (n, _) = allocations(|| rx.handle_datagram(epoch(), m));
        assert_eq!(n, 0);
        let events = drain(&mut rx);
        assert!(
            matches!(events.as_slice(), [Event::MtkReady { .. }]),
            "{events:?}"
        );
    }
}
