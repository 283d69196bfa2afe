//! The sans-IO receiver through its C ABI (`capi/`): a program of raw, built (valid, past the
//! MAC), replayed and bit-flipped datagrams, time steps, timer runs, key lookups, MSK responses
//! and save/restore cycles, each through the `extern "C"` functions. Findings: a caught panic
//! (`MBMS_ERR_PANIC`), a result code a function does not document, an acknowledgement for
//! anything but an MSK message, an `MTK_READY` whose key the lookups do not return.
#![no_main]

use std::ptr;

use libfuzzer_sys::fuzz_target;
use mbms_keys::crypto::{Msk, Mtk, Muk, Salt};
use mbms_keys::mbms::{
    KeyDomainId, MskDelivery, MskId, MskUpdate, MtkDelivery, MtkId, MtkKeys, Streaming, build_msk,
    build_mtk, profile,
};
use mbms_keys_capi::*;

const FQDN: &str = "bmsc.fuzz.example";
const FQDN_C: &std::ffi::CStr = c"bmsc.fuzz.example";
const BTID: &str = "btid-a@bsf";
const BTID_C: &std::ffi::CStr = c"btid-a@bsf";
const KS_NAF: [u8; 32] = [0x30; 32];
const STATE_KEY: [u8; 32] = [0x5a; 32];
const OTHER_KEY: [u8; 32] = [0xa5; 32];
const KD: KeyDomainId = KeyDomainId([0x00, 0xf1, 0x10]);
const MAX_STEPS: usize = 64;

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }
    fn take(&mut self, n: usize) -> &[u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }
}

fn new_receiver() -> *mut mbms_receiver {
    let mut r = ptr::null_mut();
    // SAFETY: valid strings, a 32-octet key, a writable out-pointer.
    let rc = unsafe {
        mbms_receiver_new(
            FQDN_C.as_ptr(),
            BTID_C.as_ptr(),
            KS_NAF.as_ptr(),
            32,
            &mut r,
        )
    };
    assert_eq!(rc, MBMS_OK);
    r
}

struct Run {
    r: *mut mbms_receiver,
    now: u64,
    msk_counter: u32,
    mtk_counter: u32,
    mtk_id: u16,
    history: Vec<Vec<u8>>,
}

impl Run {
    /// Feeds a datagram; checks the result and the acknowledgement; drains and checks events.
    fn feed(&mut self, d: &[u8], is_msk: bool, sent_mtk: Option<&Mtk>) {
        let mut ack = [0u8; MBMS_ACK_MAX_LEN];
        let mut ack_len = usize::MAX;
        // SAFETY: a live receiver; valid buffers of the stated lengths.
        let rc = unsafe {
            mbms_receiver_handle_datagram(
                self.r,
                self.now,
                d.as_ptr(),
                d.len(),
                ack.as_mut_ptr(),
                ack.len(),
                &mut ack_len,
            )
        };
        assert_eq!(rc, MBMS_OK, "{}", name(rc));
        assert!(ack_len <= MBMS_ACK_MAX_LEN);
        if ack_len > 0 {
            assert!(
                is_msk,
                "an acknowledgement for a datagram that is not an MSK message"
            );
        }
        if self.history.len() < 8 {
            self.history.push(d.to_vec());
        }
        self.drain(sent_mtk);
    }

    fn drain(&mut self, sent_mtk: Option<&Mtk>) {
        let mut polled = 0;
        loop {
            let mut ev = mbms_event::default();
            // SAFETY: a live receiver; a writable event.
            match unsafe { mbms_receiver_poll_event(self.r, &mut ev) } {
                MBMS_OK => {}
                MBMS_ERR_NOT_FOUND => break,
                rc => panic!("poll_event: {}", name(rc)),
            }
            polled += 1;
            assert!(polled <= 4096, "poll_event never ends");
            assert!((1..=7).contains(&ev.kind), "event kind {}", ev.kind);
            if ev.kind == MBMS_EVENT_MTK_READY {
                let mut key = std::mem::MaybeUninit::<mbms_srtp_key>::uninit();
                // SAFETY: a live receiver; a 6-octet MKI; a writable key.
                let rc = unsafe {
                    mbms_receiver_key_by_mki(self.r, ev.mki.as_ptr(), 6, key.as_mut_ptr())
                };
                assert_eq!(rc, MBMS_OK, "MTK_READY without its key: {}", name(rc));
                // SAFETY: written by the successful lookup.
                let key = unsafe { key.assume_init() };
                assert_eq!(key.mki, ev.mki);
                assert_eq!(key.master_key_len, 16);
                if let Some(m) = sent_mtk {
                    assert_eq!(&key.master_key[..16], m.as_bytes());
                }
            }
        }
    }

    fn step(&mut self, b: &mut Bytes<'_>) {
        match b.u8() % 9 {
            0 => {
                let n = usize::from(b.u8());
                let d = b.take(n).to_vec();
                self.feed(&d, true, None);
            }
            1 | 2 => {
                let sel = b.u8();
                let msk_id = MskId::new(1 + u16::from(sel & 1), 1 + u16::from((sel >> 1) % 3));
                self.msk_counter = self.msk_counter.wrapping_add(u32::from(b.u8() % 4));
                let update = match b.u8() % 4 {
                    0 | 1 => MskUpdate::NewKey {
                        msk: Msk::from_bytes([0xb0 + sel % 3; 16]),
                        seql: u16::from(b.u8()),
                        sequ: b.u16(),
                    },
                    2 => MskUpdate::ValidityOnly {
                        seql: u16::from(b.u8()),
                        sequ: b.u16(),
                    },
                    _ => MskUpdate::Invalidate {
                        seql: profile::INVALIDATION_SEQL,
                        sequ: profile::INVALIDATION_SEQU,
                    },
                };
                let d = MskDelivery::new(
                    KD,
                    msk_id,
                    self.msk_counter,
                    vec![0x60; profile::MSK_RAND_LEN],
                    FQDN,
                    BTID,
                    update,
                );
                let muk = Muk::from_bytes(KS_NAF);
                if let Ok(bytes) = build_msk(&muk, &d) {
                    self.feed(&bytes, true, None);
                }
            }
            3 | 4 => {
                let sel = b.u8();
                let msk_id = MskId::new(1 + u16::from(sel & 1), 1 + u16::from((sel >> 1) % 3));
                self.mtk_counter = self.mtk_counter.wrapping_add(u32::from(b.u8() % 4));
                self.mtk_id = self.mtk_id.wrapping_add(u16::from(b.u8() % 4));
                let mtk = Mtk::from_bytes([b.u8(); 16]);
                let streaming = sel & 0x80 != 0;
                let csb_id = profile::csb_id_for(msk_id);
                let d = MtkDelivery {
                    key_domain_id: KD,
                    msk_id,
                    csb_id,
                    mtk_id: MtkId(self.mtk_id),
                    counter: self.mtk_counter,
                    mtk: mtk.clone(),
                    salt: streaming.then(|| Salt::from_bytes([0xd0; 14])),
                    streaming: streaming.then(|| Streaming::srtp_default(u32::from(sel & 3), 0)),
                };
                let key = Msk::from_bytes([0xb0 + sel % 3; 16]);
                if let Ok(bytes) = build_mtk(&MtkKeys::new(&key, csb_id), &d) {
                    self.feed(&bytes, false, Some(&mtk));
                }
            }
            5 => {
                // Replay or bit-flip an earlier datagram.
                if !self.history.is_empty() {
                    let i = usize::from(b.u8()) % self.history.len();
                    let mut d = self.history[i].clone();
                    let flip = usize::from(b.u16());
                    if !d.is_empty() && flip & 1 == 1 {
                        let at = (flip >> 1) % d.len();
                        d[at] ^= 1 << (flip % 8);
                    }
                    self.feed(&d, true, None);
                }
            }
            6 => {
                self.now = self.now.saturating_add(u64::from(b.u16()));
                let mut at = 0u64;
                // SAFETY: a live receiver; a writable out-pointer.
                match unsafe { mbms_receiver_next_timeout(self.r, &mut at) } {
                    MBMS_OK | MBMS_ERR_NOT_FOUND => {}
                    rc => panic!("next_timeout: {}", name(rc)),
                }
                // SAFETY: a live receiver.
                assert_eq!(
                    unsafe { mbms_receiver_handle_timeout(self.r, self.now) },
                    MBMS_OK
                );
                self.drain(None);
            }
            7 => self.save_restore(b),
            _ => {
                let n = usize::from(b.u8() % 8);
                let mki = b.take(n).to_vec();
                let mut key = std::mem::MaybeUninit::<mbms_srtp_key>::uninit();
                // SAFETY: a live receiver; `mki` holds its length; a writable key.
                let rc = unsafe {
                    mbms_receiver_key_by_mki(self.r, mki.as_ptr(), mki.len(), key.as_mut_ptr())
                };
                let want_invalid = mki.len() != 6;
                assert!(
                    if want_invalid {
                        rc == MBMS_ERR_INVALID
                    } else {
                        rc == MBMS_OK || rc == MBMS_ERR_NOT_FOUND
                    },
                    "key_by_mki: {}",
                    name(rc)
                );
                let ssrc = u32::from(b.u8() % 4);
                // SAFETY: as above.
                let rc = unsafe { mbms_receiver_key_by_ssrc(self.r, ssrc, key.as_mut_ptr()) };
                assert!(
                    rc == MBMS_OK || rc == MBMS_ERR_NOT_FOUND,
                    "key_by_ssrc: {}",
                    name(rc)
                );
                let kd = u32::from(b.u8()) << 16 | 0xf110;
                // SAFETY: a live receiver.
                let rc = unsafe { mbms_receiver_msk_response(self.r, kd, 0x0001_0000, b.u16()) };
                assert_eq!(rc, MBMS_OK, "msk_response: {}", name(rc));
                self.drain(None);
            }
        }
    }

    fn save_restore(&mut self, b: &mut Bytes<'_>) {
        let mut need = 0usize;
        // SAFETY: a live receiver; NULL buffer with capacity 0; writable length.
        let rc = unsafe {
            mbms_receiver_save(
                self.r,
                STATE_KEY.as_ptr(),
                32,
                ptr::null_mut(),
                0,
                &mut need,
            )
        };
        assert_eq!(rc, MBMS_ERR_BUFFER_TOO_SMALL, "{}", name(rc));
        let mut blob = vec![0u8; need];
        let mut len = 0usize;
        // SAFETY: as above, with a buffer of `need` octets.
        let rc = unsafe {
            mbms_receiver_save(
                self.r,
                STATE_KEY.as_ptr(),
                32,
                blob.as_mut_ptr(),
                need,
                &mut len,
            )
        };
        assert_eq!((rc, len), (MBMS_OK, need), "{}", name(rc));
        let mode = b.u8() % 3;
        let (key, blob) = match mode {
            0 => (STATE_KEY, blob),
            1 => (OTHER_KEY, blob),
            _ => {
                let n = usize::from(b.u8());
                (STATE_KEY, b.take(n).to_vec())
            }
        };
        let mut s = ptr::null_mut();
        // SAFETY: valid strings and buffers of the stated lengths; a writable out-pointer.
        let rc = unsafe {
            mbms_receiver_restore(
                FQDN_C.as_ptr(),
                BTID_C.as_ptr(),
                KS_NAF.as_ptr(),
                32,
                key.as_ptr(),
                32,
                blob.as_ptr(),
                blob.len(),
                &mut s,
            )
        };
        match (mode, rc) {
            (0, MBMS_OK) => {
                // SAFETY: the old receiver is not used again.
                unsafe { mbms_receiver_free(self.r) };
                self.r = s;
            }
            (_, MBMS_ERR_STATE) if mode != 0 => assert!(s.is_null()),
            _ => panic!("restore (mode {mode}): {}", name(rc)),
        }
    }
}

fn name(rc: mbms_result) -> String {
    // SAFETY: a static NUL-terminated string.
    unsafe { std::ffi::CStr::from_ptr(mbms_result_name(rc)) }
        .to_string_lossy()
        .into_owned()
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    let mut run = Run {
        r: new_receiver(),
        now: u64::from(b.u16()),
        msk_counter: 0,
        mtk_counter: 0,
        mtk_id: 0,
        history: Vec::new(),
    };
    for _ in 0..MAX_STEPS {
        if b.0.is_empty() {
            break;
        }
        run.step(&mut b);
    }
    // SAFETY: the receiver is live and not used again; NULL is a no-op.
    unsafe {
        mbms_receiver_free(run.r);
        mbms_receiver_free(ptr::null_mut());
    }
});
