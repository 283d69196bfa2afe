//! The driver level (`mbms_client_*`): the library owns the sockets, the timers and a thread.
//!
//! `mbms_client_start` starts a thread running a single-threaded tokio runtime with the Rust
//! driver [`UeClient`] (UDP port 2269 or the configured one, the multicast groups, the MGV-S
//! state file, the Key Request client), registers to the configured services over HTTP Digest,
//! and from then on hands every receiver event to the application's callback, on that thread.
//! Before the callback runs, the event is applied to the client's [`MtkTable`], so a key lookup
//! made from inside the callback already sees an `MBMS_EVENT_MTK_READY`'s MTK.
//! `mbms_client_free` deregisters (bounded wait), stops the driver (which writes the state
//! file), and joins the thread.

use std::ffi::{c_char, c_void};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, SystemTime};

use mbms_keys::crypto::KsNaf;
use mbms_keys::gba::{Btid, GbaKeys};
use mbms_keys::mbms::KeyDomainId;
use mbms_keys::ue::driver::{UeClient, UeConfig, UeError, host_of};
use mbms_keys::ue::gba_keys::{StaticGbaKeys, UeGbaKeys};
use mbms_keys::ue::http::ClientError;
use mbms_keys::ue::multicast::Join;
use mbms_keys::ue::{MtkTable, ReceiverConfig};
use tokio::sync::oneshot;

use crate::event::mbms_event;
use crate::key::{mbms_srtp_key, write_key};
use crate::result::{
    MBMS_ERR_INVALID, MBMS_ERR_IO, MBMS_ERR_KEYS, MBMS_ERR_NOT_FOUND, MBMS_ERR_REFUSED, guard,
    guard_void, mbms_result, non_null, read_bytes, read_str, write_out,
};

/// Services, groups and Key Groups a configuration holds at most (each `add` beyond is
/// `MBMS_ERR_INVALID`): the configuration comes from the application, but nothing it is handed
/// grows without bound.
pub const MAX_CONFIG_ITEMS: usize = 64;

/// How long `mbms_client_free` waits for the deregistration answer.
const DEREGISTER_WAIT: Duration = Duration::from_secs(5);

/// How long `mbms_client_free` waits for the driver to stop and write its state.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

/// The settings of a client, filled by the `mbms_client_config_*` setters.
#[allow(non_camel_case_types)]
pub struct mbms_client_config {
    bmsc_url: Option<String>,
    bmsc_fqdn: Option<String>,
    gba: Option<(Btid, KsNaf)>,
    listen: SocketAddr,
    services: Vec<String>,
    joins: Vec<Join>,
    key_groups: Vec<(KeyDomainId, u16)>,
    state_file: Option<PathBuf>,
}

impl Default for mbms_client_config {
    fn default() -> Self {
        Self {
            bmsc_url: None,
            bmsc_fqdn: None,
            gba: None,
            listen: SocketAddr::from(([0, 0, 0, 0], mbms_keys::ue::driver::MIKEY_PORT)),
            services: Vec::new(),
            joins: Vec::new(),
            key_groups: Vec::new(),
            state_file: None,
        }
    }
}

/// `KD:GROUP`: 6 hex digits, a colon, 1 to 4 hex digits (as `mbms-keys ue --key-group`).
fn parse_key_group(s: &str) -> Option<(KeyDomainId, u16)> {
    let (kd, group) = s.split_once(':')?;
    let kd = kd.parse::<KeyDomainId>().ok()?;
    if group.is_empty() || group.len() > 4 || !group.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    Some((kd, u16::from_str_radix(group, 16).ok()?))
}

/// Borrows the configuration behind `c` mutably.
///
/// # Safety
/// `c` is NULL or a live configuration from `mbms_client_config_new`, used by no other thread.
unsafe fn config_mut<'a>(c: *mut mbms_client_config) -> Result<&'a mut mbms_client_config, u32> {
    non_null(c)?;
    // SAFETY: not NULL (checked above); a live, exclusively used configuration by the caller's
    // contract.
    Ok(unsafe { &mut *c })
}

fn push_bounded<T>(list: &mut Vec<T>, item: T) -> Result<(), mbms_result> {
    if list.len() >= MAX_CONFIG_ITEMS {
        return Err(MBMS_ERR_INVALID);
    }
    list.push(item);
    Ok(())
}

/// Creates an empty client configuration: listen on `0.0.0.0:2269`, no BM-SC, no GBA keys, no
/// services, no groups, no state file. Free it with `mbms_client_config_free`.
///
/// Errors: `MBMS_ERR_NULL` when `out` is NULL.
///
/// Thread-safety: a configuration is used by one thread at a time.
///
/// # Safety
/// `out` is NULL or writable for one pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mbms_client_config_new(out: *mut *mut mbms_client_config) -> mbms_result {
    guard(|| {
        non_null(out)?;
        let c = Box::into_raw(Box::new(mbms_client_config::default()));
        // SAFETY: `out` is writable by the caller's contract (NULL checked above).
        unsafe { write_out(out, c) }
    })
}

/// Sets the BM-SC's Key Request function, `http://host:port` (registration, MSK requests,
/// deregistration). Without it the client is push only. The BM-SC FQDN defaults to its host.
///
/// Errors: `MBMS_ERR_NULL`; `MBMS_ERR_INVALID` for text that is not UTF-8 or not an `http://`
/// URL with a host.
///
/// Thread-safety: a configuration is used by one thread at a time.
///
/// # Safety
/// `c` is NULL or a live configuration; `url` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mbms_client_config_set_bmsc_url(
    c: *mut mbms_client_config,
    url: *const c_char,
) -> mbms_result {
    guard(|| {
        // SAFETY: the caller's contract.
        let (c, url) = unsafe { (config_mut(c)?, read_str(url)?) };
        if !url.starts_with("http://") || host_of(url).is_none() {
            return Err(MBMS_ERR_INVALID);
        }
        c.bmsc_url = Some(url.to_owned());
        Ok(())
    })
}

/// Sets the BM-SC FQDN (the MIKEY IDi of the MUK ID) when it is not the host of the URL.
///
/// Errors: `MBMS_ERR_NULL`; `MBMS_ERR_INVALID` for an empty or non-UTF-8 name.
///
/// Thread-safety: a configuration is used by one thread at a time.
///
/// # Safety
/// `c` is NULL or a live configuration; `fqdn` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mbms_client_config_set_bmsc_fqdn(
    c: *mut mbms_client_config,
    fqdn: *const c_char,
) -> mbms_result {
    guard(|| {
        // SAFETY: the caller's contract.
        let (c, fqdn) = unsafe { (config_mut(c)?, read_str(fqdn)?) };
        if fqdn.is_empty() {
            return Err(MBMS_ERR_INVALID);
        }
        c.bmsc_fqdn = Some(fqdn.to_owned());
        Ok(())
    })
}

/// Sets the GBA keys (GBA_ME): the B-TID and Ks_NAF for the BM-SC (`len` = 32). The MUK and the
/// Digest password are derived inside; the key is copied and the copy is wiped on free.
///
/// Errors: `MBMS_ERR_NULL`; `MBMS_ERR_INVALID` for a B-TID that is not one, or `len` other
/// than 32.
///
/// Thread-safety: a configuration is used by one thread at a time.
///
/// # Safety
/// `c` is NULL or a live configuration; `btid` is NULL or a NUL-terminated string; `ks_naf` is
/// NULL or points to `len` readable octets.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mbms_client_config_set_gba(
    c: *mut mbms_client_config,
    btid: *const c_char,
    ks_naf: *const u8,
    len: usize,
) -> mbms_result {
    guard(|| {
        non_null(ks_naf)?;
        // SAFETY: the caller's contract.
        let (c, btid, ks) = unsafe { (config_mut(c)?, read_str(btid)?, read_bytes(ks_naf, len)?) };
        let btid = Btid::from_str(btid).map_err(|_| MBMS_ERR_INVALID)?;
        let ks = KsNaf::from_slice(ks).map_err(|_| MBMS_ERR_INVALID)?;
        c.gba = Some((btid, ks));
        Ok(())
    })
}

/// Sets the local address MIKEY pushes arrive on, e.g. `"0.0.0.0:2269"` (port 0: any free
/// port, see `mbms_client_local_port`).
///
/// Errors: `MBMS_ERR_NULL`; `MBMS_ERR_INVALID` for text that is not `IP:PORT`.
///
/// Thread-safety: a configuration is used by one thread at a time.
///
/// # Safety
/// `c` is NULL or a live configuration; `addr` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mbms_client_config_set_listen(
    c: *mut mbms_client_config,
    addr: *const c_char,
) -> mbms_result {
    guard(|| {
        // SAFETY: the caller's contract.
        let (c, addr) = unsafe { (config_mut(c)?, read_str(addr)?) };
        c.listen = addr.parse().map_err(|_| MBMS_ERR_INVALID)?;
        Ok(())
    })
}

/// Adds an MBMS user service to register to (at most 64).
///
/// Errors: `MBMS_ERR_NULL`; `MBMS_ERR_INVALID` for an empty or non-UTF-8 id, or one too many.
///
/// Thread-safety: a configuration is used by one thread at a time.
///
/// # Safety
/// `c` is NULL or a live configuration; `service_id` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mbms_client_config_add_service(
    c: *mut mbms_client_config,
    service_id: *const c_char,
) -> mbms_result {
    guard(|| {
        // SAFETY: the caller's contract.
        let (c, id) = unsafe { (config_mut(c)?, read_str(service_id)?) };
        if id.is_empty() {
            return Err(MBMS_ERR_INVALID);
        }
        push_bounded(&mut c.services, id.to_owned())
    })
}

/// Adds a multicast group carrying MTK messages, `GROUP[:PORT][%IFACE]` as `mbms-keys ue
/// --join` (PORT defaults to the listen port; IFACE is the interface address for IPv4, e.g.
/// `239.255.0.1:5000%127.0.0.1`, its name or index for IPv6, written `[GROUP]:PORT%IFACE`).
/// At most 64.
///
/// Errors: `MBMS_ERR_NULL`; `MBMS_ERR_INVALID` for another syntax, or one too many.
///
/// Thread-safety: a configuration is used by one thread at a time.
///
/// # Safety
/// `c` is NULL or a live configuration; `group` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mbms_client_config_add_join(
    c: *mut mbms_client_config,
    group: *const c_char,
) -> mbms_result {
    guard(|| {
        // SAFETY: the caller's contract.
        let (c, group) = unsafe { (config_mut(c)?, read_str(group)?) };
        let join = Join::from_str(group).map_err(|_| MBMS_ERR_INVALID)?;
        push_bounded(&mut c.joins, join)
    })
}

/// Adds a Key Group of the UE's services, `KD:GROUP` (6 hex digits, a colon, 1 to 4 hex digits,
/// e.g. `"00f110:0001"`), as `mbms-keys ue --key-group`: an MTK message under a missing MSK of
/// that group makes the client request the MSK. Groups of verified MSK messages are learned
/// without it. At most 64.
///
/// Errors: `MBMS_ERR_NULL`; `MBMS_ERR_INVALID` for another syntax, or one too many.
///
/// Thread-safety: a configuration is used by one thread at a time.
///
/// # Safety
/// `c` is NULL or a live configuration; `key_group` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mbms_client_config_add_key_group(
    c: *mut mbms_client_config,
    key_group: *const c_char,
) -> mbms_result {
    guard(|| {
        // SAFETY: the caller's contract.
        let (c, text) = unsafe { (config_mut(c)?, read_str(key_group)?) };
        let group = parse_key_group(text).ok_or(MBMS_ERR_INVALID)?;
        push_bounded(&mut c.key_groups, group)
    })
}

/// Sets the MGV-S state file: restored at start, written when keys change and at free. It is
/// sealed under a key kept next to it in `<path>.key` (created with mode 0600).
///
/// Errors: `MBMS_ERR_NULL`; `MBMS_ERR_INVALID` for an empty or non-UTF-8 path.
///
/// Thread-safety: a configuration is used by one thread at a time.
///
/// # Safety
/// `c` is NULL or a live configuration; `path` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mbms_client_config_set_state_file(
    c: *mut mbms_client_config,
    path: *const c_char,
) -> mbms_result {
    guard(|| {
        // SAFETY: the caller's contract.
        let (c, path) = unsafe { (config_mut(c)?, read_str(path)?) };
        if path.is_empty() {
            return Err(MBMS_ERR_INVALID);
        }
        c.state_file = Some(PathBuf::from(path));
        Ok(())
    })
}

/// Frees a configuration (its Ks_NAF copy is wiped). NULL is a no-op. A client started from it
/// keeps its own copy.
///
/// Thread-safety: not with any other use of the same configuration.
///
/// # Safety
/// `c` is NULL or a live configuration from `mbms_client_config_new`, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mbms_client_config_free(c: *mut mbms_client_config) {
    guard_void(|| {
        if !c.is_null() {
            // SAFETY: a live configuration from Box::into_raw, given up by the caller.
            drop(unsafe { Box::from_raw(c) });
        }
    });
}

/// Called on the library's thread for each receiver event (never for two events at once).
/// `ev` is valid only during the call. The callback may call `mbms_client_key_by_*` (the
/// event's MTK is already in the table) but not `mbms_client_free`.
#[allow(non_camel_case_types)]
pub type mbms_event_cb = Option<unsafe extern "C" fn(userdata: *mut c_void, ev: *const mbms_event)>;

/// The application's callback and its pointer, moved to the library's thread.
struct Callback {
    cb: mbms_event_cb,
    userdata: *mut c_void,
}

// SAFETY: the caller of `mbms_client_start` guarantees that the callback may be called, with
// `userdata`, from the library's thread (documented there); the library never dereferences
// `userdata` itself.
unsafe impl Send for Callback {}

impl Callback {
    fn call(&self, ev: &mbms_event) {
        if let Some(cb) = self.cb {
            // SAFETY: a function of the right signature by the caller's contract; `ev` lives
            // for the call.
            unsafe { cb(self.userdata, ev) };
        }
    }
}

/// A running client (opaque).
#[allow(non_camel_case_types)]
pub struct mbms_client {
    table: Arc<Mutex<MtkTable>>,
    local_port: u16,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    thread_id: ThreadId,
}

/// The result code of a driver failure.
fn ue_error_code(e: &UeError) -> mbms_result {
    match e {
        UeError::Keys(_) => MBMS_ERR_KEYS,
        UeError::Client(c) => client_error_code(c),
        UeError::State { .. } => crate::result::MBMS_ERR_STATE,
        _ => MBMS_ERR_IO,
    }
}

/// The result code of a Key Request failure: a 4xx status or refused credentials are a refusal.
fn client_error_code(e: &ClientError) -> mbms_result {
    match e {
        ClientError::Status(s) if s.is_client_error() => MBMS_ERR_REFUSED,
        ClientError::Unauthorized => MBMS_ERR_REFUSED,
        ClientError::BaseUrl(_) | ClientError::InvalidRequest(_) => MBMS_ERR_INVALID,
        _ => MBMS_ERR_IO,
    }
}

/// What the library's thread needs, taken from the configuration.
struct Plan {
    ue: UeConfig,
    keys: UeGbaKeys,
    services: Vec<String>,
}

fn plan(c: &mbms_client_config) -> Result<Plan, mbms_result> {
    let (btid, ks_naf) = c.gba.clone().ok_or(MBMS_ERR_KEYS)?;
    let fqdn = c
        .bmsc_fqdn
        .clone()
        .or_else(|| c.bmsc_url.as_deref().and_then(host_of))
        .ok_or(MBMS_ERR_INVALID)?;
    let mut ue = UeConfig::new(&fqdn);
    ue.listen = c.listen;
    ue.bmsc_url.clone_from(&c.bmsc_url);
    ue.state_file.clone_from(&c.state_file);
    ue.join.clone_from(&c.joins);
    ue.receiver = ReceiverConfig {
        key_groups: c.key_groups.clone(),
        ..ReceiverConfig::default()
    };
    let keys = UeGbaKeys {
        btid,
        material: GbaKeys::Me { ks_naf },
        // Keys handed over by the application do not expire while the client runs.
        expiry: SystemTime::now() + Duration::from_secs(10 * 365 * 24 * 3600),
    };
    // Registration needs the Key Request function; push-only clients register to nothing.
    let services = if c.bmsc_url.is_some() {
        c.services.clone()
    } else {
        Vec::new()
    };
    Ok(Plan { ue, keys, services })
}

/// Starts the client, registers, reports the outcome on `started`, then delivers events until
/// `stop` fires; deregisters and shuts the driver down.
async fn run(
    plan: Plan,
    table: Arc<Mutex<MtkTable>>,
    callback: Callback,
    started: std_mpsc::Sender<Result<u16, mbms_result>>,
    stop: oneshot::Receiver<()>,
) {
    let Plan { ue, keys, services } = plan;
    let mut client = match UeClient::start(ue, Arc::new(StaticGbaKeys::new(keys))).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "the UE client did not start");
            let _ = started.send(Err(ue_error_code(&e)));
            return;
        }
    };
    if !services.is_empty() {
        // [CHOICE] docs/c-api.md §8: the start succeeds when at least one service was accepted.
        let refused = match client.register(&services).await {
            Ok(r) if r.statuses.iter().any(|s| s.code == 200) => None,
            Ok(_) => Some(MBMS_ERR_REFUSED),
            Err(e) => {
                tracing::warn!(error = %e, "registration failed");
                Some(ue_error_code(&e))
            }
        };
        if let Some(code) = refused {
            client.shutdown().await;
            let _ = started.send(Err(code));
            return;
        }
    }
    if started.send(Ok(client.local_addr().port())).is_err() {
        client.shutdown().await;
        return;
    }
    let mut stop = stop;
    loop {
        tokio::select! {
            e = client.next_event() => match e {
                Some(event) => {
                    table
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .observe(&event);
                    // The lock is released: the callback may look keys up.
                    callback.call(&mbms_event::from_event(&event));
                }
                None => break,
            },
            _ = &mut stop => break,
        }
    }
    if !services.is_empty() {
        match tokio::time::timeout(DEREGISTER_WAIT, client.deregister(&services)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "deregistration failed"),
            Err(_) => tracing::warn!("no answer to the deregistration in time"),
        }
    }
    if tokio::time::timeout(SHUTDOWN_WAIT, client.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("the UE driver did not stop in time");
    }
}

/// Starts a client from `c` (copied: `c` may be freed afterwards): binds the MIKEY socket,
/// joins the groups, restores the state file, starts the library's thread, and registers to
/// the configured services over HTTP Digest (waiting for the answer, at most about 10 s). From
/// then on `cb` (may be NULL) is called on the library's thread with each event, `userdata`
/// passed through untouched; the first calls may come before this function returns.
///
/// Errors: `MBMS_ERR_NULL` (`c` or `out`); `MBMS_ERR_KEYS` without GBA keys;
/// `MBMS_ERR_INVALID` without a BM-SC FQDN (neither set nor a URL); `MBMS_ERR_IO` for a socket,
/// group, thread or HTTP failure; `MBMS_ERR_REFUSED` when the BM-SC refused the registration
/// (HTTP 4xx, Digest credentials, or no service accepted); `MBMS_ERR_STATE` for a state file
/// that does not open. On error `*out` is NULL and no thread runs.
///
/// Thread-safety: any thread. `cb` and `userdata` must be usable from the library's thread.
///
/// # Safety
/// `c` is NULL or a live configuration; `out` is NULL or writable for one pointer; `cb`, if not
/// NULL, is a function of this signature that may be called until `mbms_client_free` returns.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mbms_client_start(
    c: *const mbms_client_config,
    cb: mbms_event_cb,
    userdata: *mut c_void,
    out: *mut *mut mbms_client,
) -> mbms_result {
    guard(|| {
        non_null(c)?;
        non_null(out)?;
        // SAFETY: `out` is writable (NULL checked above): cleared first, so that it is NULL on
        // every error.
        unsafe { write_out(out, std::ptr::null_mut()) }?;
        // SAFETY: a live configuration by the caller's contract (NULL checked above).
        let config = unsafe { &*c };
        let plan = plan(config)?;
        let table = Arc::new(Mutex::new(MtkTable::new()));
        let (started_tx, started_rx) = std_mpsc::channel();
        let (stop_tx, stop_rx) = oneshot::channel();
        let callback = Callback { cb, userdata };
        let thread_table = table.clone();
        let thread = std::thread::Builder::new()
            .name("mbms-client".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(error = %e, "no runtime for the UE client");
                        let _ = started_tx.send(Err(MBMS_ERR_IO));
                        return;
                    }
                };
                // A panic in the driver ends the thread, never the application.
                let body = std::panic::AssertUnwindSafe(run(
                    plan,
                    thread_table,
                    callback,
                    started_tx,
                    stop_rx,
                ));
                let _ = std::panic::catch_unwind(|| runtime.block_on(body));
            })
            .map_err(|_| MBMS_ERR_IO)?;
        let thread_id = thread.thread().id();
        // A thread that ends without a word (a panic before it) is an I/O failure.
        let local_port = match started_rx.recv() {
            Ok(Ok(port)) => port,
            Ok(Err(code)) => {
                let _ = thread.join();
                return Err(code);
            }
            Err(_) => {
                let _ = thread.join();
                return Err(MBMS_ERR_IO);
            }
        };
        let client = Box::new(mbms_client {
            table,
            local_port,
            stop: Some(stop_tx),
            thread: Some(thread),
            thread_id,
        });
        // SAFETY: `out` is writable (checked above).
        unsafe { write_out(out, Box::into_raw(client)) }
    })
}

/// Borrows the client behind `cl`.
///
/// # Safety
/// `cl` is NULL or a live client from `mbms_client_start`.
unsafe fn client_ref<'a>(cl: *const mbms_client) -> Result<&'a mbms_client, mbms_result> {
    non_null(cl)?;
    // SAFETY: not NULL (checked above); live by the caller's contract; only shared access.
    Ok(unsafe { &*cl })
}

/// The UDP port the MIKEY socket is bound to (useful after a listen port of 0).
///
/// Errors: `MBMS_ERR_NULL`.
///
/// Thread-safety: any thread, concurrently with the other client functions but `_free`.
///
/// # Safety
/// `cl` is NULL or a live client; `port` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mbms_client_local_port(
    cl: *const mbms_client,
    port: *mut u16,
) -> mbms_result {
    guard(|| {
        // SAFETY: the caller's contract.
        let cl = unsafe { client_ref(cl)? };
        // SAFETY: writable by the caller's contract (NULL checked inside).
        unsafe { write_out(port, cl.local_port) }
    })
}

/// The MTK whose SRTP MKI is `mki` (MSK ID ‖ MTK ID, 6 octets), as `srtpdec`'s `request-key`
/// needs, from the MTKs of the MTK_READY events so far (the MTKs of invalidated MSKs are gone).
/// `out->ssrc` / `out->roc` are the first crypto session of its SRTP-ID map.
///
/// Errors: `MBMS_ERR_NULL`; `MBMS_ERR_NOT_FOUND` when no such MTK is held (also for a length
/// other than 6). `*out` is written only on success.
///
/// Thread-safety: any thread, concurrently with the other client functions but `_free`,
/// including from inside the event callback.
///
/// # Safety
/// `cl` is NULL or a live client; `mki` is NULL or points to `mki_len` readable octets; `out`
/// is NULL or writable for one `mbms_srtp_key`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mbms_client_key_by_mki(
    cl: *const mbms_client,
    mki: *const u8,
    mki_len: usize,
    out: *mut mbms_srtp_key,
) -> mbms_result {
    guard(|| {
        non_null(mki)?;
        non_null(out)?;
        // SAFETY: the caller's contract.
        let (cl, mki) = unsafe { (client_ref(cl)?, read_bytes(mki, mki_len)?) };
        let table = cl.table.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = table.by_mki(mki).ok_or(MBMS_ERR_NOT_FOUND)?;
        // SAFETY: `out` is writable by the caller's contract (NULL checked above).
        unsafe { write_key(entry, None, out) }
    })
}

/// The newest MTK whose SRTP-ID map names `ssrc`, with that session's ROC (as announced in the
/// MTK message).
///
/// Errors: `MBMS_ERR_NULL`; `MBMS_ERR_NOT_FOUND` when no held MTK names `ssrc`. `*out` is
/// written only on success.
///
/// Thread-safety: any thread, concurrently with the other client functions but `_free`,
/// including from inside the event callback.
///
/// # Safety
/// `cl` is NULL or a live client; `out` is NULL or writable for one `mbms_srtp_key`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mbms_client_key_by_ssrc(
    cl: *const mbms_client,
    ssrc: u32,
    out: *mut mbms_srtp_key,
) -> mbms_result {
    guard(|| {
        non_null(out)?;
        // SAFETY: the caller's contract.
        let cl = unsafe { client_ref(cl)? };
        let table = cl.table.lock().unwrap_or_else(PoisonError::into_inner);
        let (entry, session) = table.by_ssrc(ssrc).ok_or(MBMS_ERR_NOT_FOUND)?;
        // SAFETY: `out` is writable by the caller's contract (NULL checked above).
        unsafe { write_key(entry, Some(session), out) }
    })
}

/// Stops the client: deregisters from its services (waiting at most 5 s for the answer), stops
/// the driver (which writes the state file), joins the library's thread (no callback runs after
/// this returns), and wipes the MTK table. NULL is a no-op. Called from inside the callback it
/// only asks the thread to stop (it cannot wait for itself); the handle is then freed.
///
/// Thread-safety: not concurrently with any other use of the same client.
///
/// # Safety
/// `cl` is NULL or a live client from `mbms_client_start`, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mbms_client_free(cl: *mut mbms_client) {
    guard_void(|| {
        if cl.is_null() {
            return;
        }
        // SAFETY: a live client from Box::into_raw, given up by the caller.
        let mut client = unsafe { Box::from_raw(cl) };
        if let Some(stop) = client.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = client.thread.take()
            && std::thread::current().id() != client.thread_id
        {
            let _ = thread.join();
        }
        client
            .table
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    });
}

#[cfg(test)]
mod tests;
