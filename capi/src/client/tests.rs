//! The driver level from Rust, as a C caller uses it: NULL and malformed arguments, a
//! push-only client fed MSK and MTK messages over loopback (events on the library's thread, key
//! lookups from inside the callback), start failures and their codes, free joining the thread.

use std::ffi::{CString, c_void};
use std::io::{Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::ptr::{null, null_mut};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mbms_keys::crypto::{Msk, Mtk, Salt};
use mbms_keys::mbms::{
    MskDelivery, MskUpdate, MtkDelivery, MtkKeys, Streaming, build_msk, build_mtk,
};
use mbms_keys::mikey::MtkId;

use super::*;
use crate::event::{MBMS_EVENT_MSK_INSTALLED, MBMS_EVENT_MTK_READY};
use crate::result::{MBMS_ERR_NULL, MBMS_ERR_STATE, MBMS_OK};

const FQDN: &str = "bmsc.example.org";
const BTID: &str = "ICEiIyQlJicoKSorLC0uLw==@bsf.example.org";
const KS_NAF: [u8; 32] = [0x42; 32];
const SSRC: u32 = 0x1122_3344;

fn c(s: &str) -> CString {
    CString::new(s).unwrap()
}

fn new_config() -> *mut mbms_client_config {
    let mut cfg = null_mut();
    // SAFETY: a writable pointer.
    assert_eq!(unsafe { mbms_client_config_new(&mut cfg) }, MBMS_OK);
    cfg
}

/// A push-only configuration on 127.0.0.1, any port.
fn push_only() -> *mut mbms_client_config {
    let cfg = new_config();
    // SAFETY: a live configuration and NUL-terminated strings.
    unsafe {
        assert_eq!(
            mbms_client_config_set_bmsc_fqdn(cfg, c(FQDN).as_ptr()),
            MBMS_OK
        );
        let btid = c(BTID);
        assert_eq!(
            mbms_client_config_set_gba(cfg, btid.as_ptr(), KS_NAF.as_ptr(), 32),
            MBMS_OK
        );
        assert_eq!(
            mbms_client_config_set_listen(cfg, c("127.0.0.1:0").as_ptr()),
            MBMS_OK
        );
    }
    cfg
}

fn msk_message(counter: u32) -> Vec<u8> {
    let d = MskDelivery::new(
        "00f110".parse().unwrap(),
        "00010002".parse().unwrap(),
        counter,
        vec![counter as u8; 16],
        FQDN,
        BTID,
        MskUpdate::NewKey {
            msk: Msk::from_bytes([0xb0; 16]),
            seql: 1,
            sequ: 100,
        },
    );
    // GBA_ME: MUK = Ks_NAF (docs/profile.md §1).
    build_msk(&mbms_keys::crypto::Muk::from_bytes(KS_NAF), &d).unwrap()
}

fn mtk_message(mtk_id: u16, counter: u32, roc: u32) -> Vec<u8> {
    let d = MtkDelivery {
        key_domain_id: "00f110".parse().unwrap(),
        msk_id: "00010002".parse().unwrap(),
        csb_id: 0x0001_0002,
        mtk_id: MtkId(mtk_id),
        counter,
        mtk: Mtk::from_bytes([mtk_id as u8; 16]),
        salt: Some(Salt::from_bytes([0x5d; 14])),
        streaming: Some(Streaming::srtp_default(SSRC, roc)),
    };
    build_mtk(&MtkKeys::new(&Msk::from_bytes([0xb0; 16]), 0x0001_0002), &d).unwrap()
}

/// What the callback saw: each event, and for MTK_READY the key found by its MKI from inside
/// the callback.
#[derive(Default)]
struct Seen {
    events: Vec<mbms_event>,
    keys_in_callback: Vec<(u32, mbms_srtp_key)>,
    client: Option<usize>,
}

static SEEN: Mutex<Option<Seen>> = Mutex::new(None);

unsafe extern "C" fn record(userdata: *mut c_void, ev: *const mbms_event) {
    assert_eq!(userdata as usize, 0x5eed, "userdata passed through");
    // SAFETY: valid for the call.
    let ev = unsafe { *ev };
    let mut seen = SEEN.lock().unwrap();
    let seen = seen.get_or_insert_with(Seen::default);
    if ev.kind == MBMS_EVENT_MTK_READY
        && let Some(cl) = seen.client
    {
        let mut key = std::mem::MaybeUninit::<mbms_srtp_key>::uninit();
        // SAFETY: a live client (freed only after the test stops pushing) and a writable key.
        let r = unsafe {
            mbms_client_key_by_mki(
                cl as *const mbms_client,
                ev.mki.as_ptr(),
                6,
                key.as_mut_ptr(),
            )
        };
        if r == MBMS_OK {
            // SAFETY: written on success.
            seen.keys_in_callback
                .push((ev.mtk_id.into(), unsafe { key.assume_init() }));
        }
    }
    seen.events.push(ev);
}

fn wait_for(pred: impl Fn(&Seen) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if SEEN.lock().unwrap().as_ref().is_some_and(&pred) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the callback was not called in time"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_push_only_client_delivers_events_and_keys_are_found_from_inside_the_callback() {
    *SEEN.lock().unwrap() = Some(Seen::default());
    let cfg = push_only();
    let mut cl = null_mut();
    // SAFETY: a live configuration, a callback of the right type, a writable out-pointer.
    let r = unsafe { mbms_client_start(cfg, Some(record), 0x5eed as *mut c_void, &mut cl) };
    assert_eq!(r, MBMS_OK);
    // SAFETY: the client keeps its own copy.
    unsafe { mbms_client_config_free(cfg) };
    SEEN.lock().unwrap().as_mut().unwrap().client = Some(cl as usize);
    let mut port = 0u16;
    // SAFETY: a live client.
    assert_eq!(unsafe { mbms_client_local_port(cl, &mut port) }, MBMS_OK);
    assert_ne!(port, 0);

    let bmsc = UdpSocket::bind("127.0.0.1:0").unwrap();
    bmsc.send_to(&msk_message(5), ("127.0.0.1", port)).unwrap();
    wait_for(|s| s.events.iter().any(|e| e.kind == MBMS_EVENT_MSK_INSTALLED));
    bmsc.send_to(&mtk_message(2, 1, 0), ("127.0.0.1", port))
        .unwrap();
    bmsc.send_to(&mtk_message(3, 2, 1), ("127.0.0.1", port))
        .unwrap();
    wait_for(|s| s.keys_in_callback.len() == 2);

    {
        let seen = SEEN.lock().unwrap();
        let seen = seen.as_ref().unwrap();
        let installed = seen
            .events
            .iter()
            .find(|e| e.kind == MBMS_EVENT_MSK_INSTALLED)
            .unwrap();
        assert_eq!(
            (
                installed.key_domain_id,
                installed.msk_id,
                installed.seql,
                installed.sequ
            ),
            (0x00f110, 0x0001_0002, 1, 100)
        );
        let (id, k) = &seen.keys_in_callback[0];
        assert_eq!(*id, 2);
        assert_eq!(&k.master_key[..k.master_key_len], &[2u8; 16]);
        assert_eq!(&k.master_salt[..k.master_salt_len], &[0x5d; 14]);
        assert_eq!(&k.mki[..k.mki_len], &[0, 1, 0, 2, 0, 2]);
        assert_eq!((k.ssrc, k.roc, k.mtk_id), (SSRC, 0, 2));
        assert_eq!(k.policy, crate::key::MBMS_SRTP_AES_CM_128_HMAC_SHA1_80);
    }
    // By SSRC: the newest MTK naming it, with its ROC.
    let mut k = std::mem::MaybeUninit::<mbms_srtp_key>::uninit();
    // SAFETY: a live client and a writable key.
    let r = unsafe { mbms_client_key_by_ssrc(cl, SSRC, k.as_mut_ptr()) };
    assert_eq!(r, MBMS_OK);
    // SAFETY: written on success.
    let k = unsafe { k.assume_init() };
    assert_eq!((k.mtk_id, k.roc, k.master_key[0]), (3, 1, 3));
    let mut k2 = std::mem::MaybeUninit::<mbms_srtp_key>::uninit();
    // SAFETY: as above.
    unsafe {
        assert_eq!(
            mbms_client_key_by_ssrc(cl, 7, k2.as_mut_ptr()),
            MBMS_ERR_NOT_FOUND
        );
        let unknown = [9u8; 6];
        assert_eq!(
            mbms_client_key_by_mki(cl, unknown.as_ptr(), 6, k2.as_mut_ptr()),
            MBMS_ERR_NOT_FOUND
        );
        assert_eq!(
            mbms_client_key_by_mki(cl, unknown.as_ptr(), 5, k2.as_mut_ptr()),
            MBMS_ERR_NOT_FOUND
        );
    }

    // After free no callback runs: a push then changes nothing.
    // SAFETY: a live client, not used afterwards.
    unsafe { mbms_client_free(cl) };
    let before = SEEN.lock().unwrap().as_ref().unwrap().events.len();
    let _ = bmsc.send_to(&mtk_message(4, 3, 1), ("127.0.0.1", port));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(SEEN.lock().unwrap().as_ref().unwrap().events.len(), before);
}

#[test]
fn null_pointers_are_refused_and_free_of_null_is_a_no_op() {
    let s = c("x");
    let mut key = std::mem::MaybeUninit::<mbms_srtp_key>::uninit();
    let mut port = 0u16;
    // SAFETY: every call below gets NULL where the function must refuse it.
    unsafe {
        assert_eq!(mbms_client_config_new(null_mut()), MBMS_ERR_NULL);
        assert_eq!(
            mbms_client_config_set_bmsc_url(null_mut(), s.as_ptr()),
            MBMS_ERR_NULL
        );
        assert_eq!(
            mbms_client_config_set_bmsc_fqdn(null_mut(), s.as_ptr()),
            MBMS_ERR_NULL
        );
        assert_eq!(
            mbms_client_config_set_gba(null_mut(), s.as_ptr(), KS_NAF.as_ptr(), 32),
            MBMS_ERR_NULL
        );
        assert_eq!(
            mbms_client_config_set_listen(null_mut(), s.as_ptr()),
            MBMS_ERR_NULL
        );
        assert_eq!(
            mbms_client_config_add_service(null_mut(), s.as_ptr()),
            MBMS_ERR_NULL
        );
        assert_eq!(
            mbms_client_config_add_join(null_mut(), s.as_ptr()),
            MBMS_ERR_NULL
        );
        assert_eq!(
            mbms_client_config_add_key_group(null_mut(), s.as_ptr()),
            MBMS_ERR_NULL
        );
        assert_eq!(
            mbms_client_config_set_state_file(null_mut(), s.as_ptr()),
            MBMS_ERR_NULL
        );
        let cfg = new_config();
        assert_eq!(mbms_client_config_set_bmsc_url(cfg, null()), MBMS_ERR_NULL);
        assert_eq!(mbms_client_config_set_bmsc_fqdn(cfg, null()), MBMS_ERR_NULL);
        assert_eq!(
            mbms_client_config_set_gba(cfg, null(), KS_NAF.as_ptr(), 32),
            MBMS_ERR_NULL
        );
        let btid = c(BTID);
        assert_eq!(
            mbms_client_config_set_gba(cfg, btid.as_ptr(), null(), 32),
            MBMS_ERR_NULL
        );
        assert_eq!(
            mbms_client_config_set_gba(cfg, btid.as_ptr(), null(), 0),
            MBMS_ERR_NULL
        );
        assert_eq!(mbms_client_config_set_listen(cfg, null()), MBMS_ERR_NULL);
        assert_eq!(mbms_client_config_add_service(cfg, null()), MBMS_ERR_NULL);
        assert_eq!(mbms_client_config_add_join(cfg, null()), MBMS_ERR_NULL);
        assert_eq!(mbms_client_config_add_key_group(cfg, null()), MBMS_ERR_NULL);
        assert_eq!(
            mbms_client_config_set_state_file(cfg, null()),
            MBMS_ERR_NULL
        );
        let mut cl = std::ptr::dangling_mut::<mbms_client>();
        assert_eq!(
            mbms_client_start(null(), None, null_mut(), &mut cl),
            MBMS_ERR_NULL
        );
        assert_eq!(
            mbms_client_start(cfg, None, null_mut(), null_mut()),
            MBMS_ERR_NULL
        );
        assert_eq!(mbms_client_local_port(null(), &mut port), MBMS_ERR_NULL);
        assert_eq!(
            mbms_client_key_by_ssrc(null(), 1, key.as_mut_ptr()),
            MBMS_ERR_NULL
        );
        assert_eq!(
            mbms_client_key_by_mki(null(), [0u8; 6].as_ptr(), 6, key.as_mut_ptr()),
            MBMS_ERR_NULL
        );
        mbms_client_config_free(cfg);
        mbms_client_config_free(null_mut());
        mbms_client_free(null_mut());
    }
    // With a live client: NULL outputs and inputs.
    let cfg = push_only();
    let mut cl = null_mut();
    // SAFETY: a live configuration; then NULL where it must be refused.
    unsafe {
        assert_eq!(mbms_client_start(cfg, None, null_mut(), &mut cl), MBMS_OK);
        assert_eq!(mbms_client_local_port(cl, null_mut()), MBMS_ERR_NULL);
        assert_eq!(mbms_client_key_by_ssrc(cl, 1, null_mut()), MBMS_ERR_NULL);
        assert_eq!(
            mbms_client_key_by_mki(cl, null(), 6, key.as_mut_ptr()),
            MBMS_ERR_NULL
        );
        assert_eq!(
            mbms_client_key_by_mki(cl, [0u8; 6].as_ptr(), 6, null_mut()),
            MBMS_ERR_NULL
        );
        mbms_client_free(cl);
        mbms_client_config_free(cfg);
    }
}

#[test]
fn malformed_settings_are_invalid_and_bounded() {
    let cfg = new_config();
    let bad_utf8 = [0xffu8, 0xfe, 0];
    // SAFETY: a live configuration and NUL-terminated strings.
    unsafe {
        for url in ["", "ftp://h:1", "http://", "https://bmsc:443"] {
            assert_eq!(
                mbms_client_config_set_bmsc_url(cfg, c(url).as_ptr()),
                MBMS_ERR_INVALID,
                "{url}"
            );
        }
        assert_eq!(
            mbms_client_config_set_bmsc_url(cfg, bad_utf8.as_ptr().cast()),
            MBMS_ERR_INVALID
        );
        assert_eq!(
            mbms_client_config_set_bmsc_fqdn(cfg, c("").as_ptr()),
            MBMS_ERR_INVALID
        );
        let btid = c(BTID);
        assert_eq!(
            mbms_client_config_set_gba(cfg, btid.as_ptr(), KS_NAF.as_ptr(), 31),
            MBMS_ERR_INVALID
        );
        assert_eq!(
            mbms_client_config_set_gba(cfg, c("no at sign").as_ptr(), KS_NAF.as_ptr(), 32),
            MBMS_ERR_INVALID
        );
        for addr in ["", "127.0.0.1", "host:1", "127.0.0.1:99999"] {
            assert_eq!(
                mbms_client_config_set_listen(cfg, c(addr).as_ptr()),
                MBMS_ERR_INVALID,
                "{addr}"
            );
        }
        assert_eq!(
            mbms_client_config_add_service(cfg, c("").as_ptr()),
            MBMS_ERR_INVALID
        );
        for j in ["", "not-an-ip", "239.1.1.1:x"] {
            assert_eq!(
                mbms_client_config_add_join(cfg, c(j).as_ptr()),
                MBMS_ERR_INVALID,
                "{j}"
            );
        }
        for g in [
            "",
            "00f110",
            "00f110:",
            "00f110:12345",
            "0f110:1",
            "00f110:xy",
        ] {
            assert_eq!(
                mbms_client_config_add_key_group(cfg, c(g).as_ptr()),
                MBMS_ERR_INVALID,
                "{g}"
            );
        }
        assert_eq!(
            mbms_client_config_add_key_group(cfg, c("00f110:0001").as_ptr()),
            MBMS_OK
        );
        assert_eq!(
            mbms_client_config_set_state_file(cfg, c("").as_ptr()),
            MBMS_ERR_INVALID
        );
        for i in 0..MAX_CONFIG_ITEMS {
            let id = c(&format!("urn:s:{i}"));
            assert_eq!(mbms_client_config_add_service(cfg, id.as_ptr()), MBMS_OK);
        }
        assert_eq!(
            mbms_client_config_add_service(cfg, c("urn:one:more").as_ptr()),
            MBMS_ERR_INVALID
        );
        mbms_client_config_free(cfg);
    }
}

fn start_code(cfg: *mut mbms_client_config) -> mbms_result {
    let mut cl = std::ptr::dangling_mut::<mbms_client>();
    // SAFETY: a live configuration and a writable out-pointer.
    let r = unsafe { mbms_client_start(cfg, None, null_mut(), &mut cl) };
    if r == MBMS_OK {
        // SAFETY: a live client.
        unsafe { mbms_client_free(cl) };
    } else {
        assert!(cl.is_null(), "*out is NULL on error");
    }
    r
}

/// An HTTP server on 127.0.0.1 that answers every request with `status` and closes.
fn http_answering(status: &'static str) -> (String, std::thread::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let t = std::thread::spawn(move || {
        l.set_nonblocking(false).unwrap();
        if let Ok((mut s, _)) = l.accept() {
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    (url, t)
}

#[test]
fn start_failures_have_their_codes_and_leave_no_client() {
    // No GBA keys.
    let cfg = new_config();
    // SAFETY: a live configuration.
    unsafe {
        assert_eq!(
            mbms_client_config_set_bmsc_fqdn(cfg, c(FQDN).as_ptr()),
            MBMS_OK
        );
        assert_eq!(
            mbms_client_config_set_listen(cfg, c("127.0.0.1:0").as_ptr()),
            MBMS_OK
        );
    }
    assert_eq!(start_code(cfg), MBMS_ERR_KEYS);
    // SAFETY: a live configuration.
    unsafe { mbms_client_config_free(cfg) };

    // No FQDN (neither set nor a URL).
    let cfg = new_config();
    // SAFETY: a live configuration.
    unsafe {
        let btid = c(BTID);
        assert_eq!(
            mbms_client_config_set_gba(cfg, btid.as_ptr(), KS_NAF.as_ptr(), 32),
            MBMS_OK
        );
    }
    assert_eq!(start_code(cfg), MBMS_ERR_INVALID);
    // SAFETY: a live configuration.
    unsafe { mbms_client_config_free(cfg) };

    // The listen port is taken.
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let cfg = push_only();
    let addr = c(&taken.local_addr().unwrap().to_string());
    // SAFETY: a live configuration.
    unsafe { assert_eq!(mbms_client_config_set_listen(cfg, addr.as_ptr()), MBMS_OK) };
    assert_eq!(start_code(cfg), MBMS_ERR_IO);

    // A state file that does not open (garbage sealed under its key).
    let dir = mbms_lab::TempDir::new("capi-client-state");
    let state = dir.path().join("ue.state");
    std::fs::write(&state, b"not a sealed state").unwrap();
    let cfg2 = push_only();
    // SAFETY: a live configuration.
    unsafe {
        let p = c(state.to_str().unwrap());
        assert_eq!(mbms_client_config_set_state_file(cfg2, p.as_ptr()), MBMS_OK);
    }
    assert_eq!(start_code(cfg2), MBMS_ERR_STATE);
    // SAFETY: live configurations.
    unsafe { mbms_client_config_free(cfg2) };

    // Registration refused with 403; registration to nobody listening.
    let (url, server) = http_answering("403 Forbidden");
    // SAFETY: a live configuration.
    unsafe {
        assert_eq!(
            mbms_client_config_set_listen(cfg, c("127.0.0.1:0").as_ptr()),
            MBMS_OK
        );
        assert_eq!(
            mbms_client_config_set_bmsc_url(cfg, c(&url).as_ptr()),
            MBMS_OK
        );
        assert_eq!(
            mbms_client_config_add_service(cfg, c("urn:s:1").as_ptr()),
            MBMS_OK
        );
    }
    assert_eq!(start_code(cfg), MBMS_ERR_REFUSED);
    server.join().unwrap();
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = c(&format!("http://{}", closed.local_addr().unwrap()));
    drop(closed);
    // SAFETY: a live configuration.
    unsafe { assert_eq!(mbms_client_config_set_bmsc_url(cfg, url.as_ptr()), MBMS_OK) };
    assert_eq!(start_code(cfg), MBMS_ERR_IO);
    // SAFETY: a live configuration.
    unsafe { mbms_client_config_free(cfg) };
}

#[test]
fn the_host_of_the_url_is_the_default_fqdn_and_key_groups_parse() {
    assert_eq!(
        host_of("http://bmsc.example.org:8080/x").as_deref(),
        Some("bmsc.example.org")
    );
    assert_eq!(host_of("http://[::1]:80").as_deref(), Some("::1"));
    assert_eq!(host_of("http://").as_deref(), None);
    assert_eq!(parse_key_group("00f110:1").map(|(_, g)| g), Some(1));
    assert_eq!(parse_key_group("00f110:ffff").map(|(_, g)| g), Some(0xffff));
}
