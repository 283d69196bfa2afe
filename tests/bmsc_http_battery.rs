//! The HTTP bad-input battery of the BM-SC Key Request server (docs/profile.md §4) over loopback
//! sockets: one server, a table of named cases (`cases.rs`), each one kind of bad input.
//!
//! Every case checks the status the "HTTP statuses" table of README.md documents for its
//! input, and exactly which of challenge (with `stale`), `Allow`, `Connection: close`,
//! `Authentication-Info` and per-item codes come with it, and how many Digest failures it
//! counts. Right after every case a valid authenticated registration must get 200 with a
//! verified `rspauth`: the server stayed up and kept no state from the bad input.

#[path = "bmsc_http_battery/cases.rs"]
mod cases;
mod common;
#[path = "bmsc_http_battery/expect.rs"]
mod expect;
#[path = "bmsc_http/harness.rs"]
mod harness;
#[path = "bmsc_http_battery/inputs.rs"]
mod inputs;
#[path = "bmsc_keyreq/lab.rs"]
mod lab;
#[path = "bmsc_http/raw.rs"]
mod raw;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use mbms_keys::bmsc::config::Config;
use mbms_keys::bmsc::events::KeyRequestEvent;
use mbms_keys::mbms::digest::RspauthStatus;
use mbms_keys::mbms::keyreq::{MIME_REGISTER, PATH_REGISTER, RegisterResponse};

use harness::{LOCALHOST, Server, codes, ids, register_body, start};
use lab::{ALICE, OPEN2, credentials};
use raw::{authed, session};

/// The battery server's limits; the timeouts short, so the timeout cases stay short.
/// This one: the HTTP request timeout.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
/// The Digest nonce lifetime (`2s` in the configuration).
pub const NONCE_LIFETIME: Duration = Duration::from_secs(2);
/// The most HTTP connections served at once.
pub const MAX_CONNECTIONS: usize = 16;

fn battery_config() -> Config {
    let mut cfg = lab::config("auth-int", "SHA-256", "2s", 1000);
    assert_eq!(cfg.digest.nonce_lifetime, NONCE_LIFETIME);
    cfg.http.request_timeout = REQUEST_TIMEOUT;
    cfg.http.max_connections = MAX_CONNECTIONS;
    assert_eq!(cfg.http.max_body, 4096, "the size cases send more");
    cfg
}

/// A valid registration on a fresh nonce: 200, `rspauth` verified, the service registered,
/// and no Digest failure counted.
async fn still_serves(s: &mut Server, after: &str) {
    let failures = s.metrics.digest_failures.get();
    let alice = credentials(ALICE, 0x10);
    let body = register_body(&[OPEN2]);
    let mut sess = session(s.addr, PATH_REGISTER).await;
    let (r, auth) = authed(
        s.addr,
        &mut sess,
        &alice,
        PATH_REGISTER,
        MIME_REGISTER,
        body.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200, "after {after:?}: {r:?}");
    assert_eq!(
        auth.check_authentication_info(&alice, r.header("authentication-info"), &r.body),
        RspauthStatus::Verified,
        "after {after:?}"
    );
    let parsed = RegisterResponse::parse(&r.body).expect("register response");
    assert_eq!(
        codes(&parsed),
        vec![(OPEN2.to_owned(), 200)],
        "after {after:?}"
    );
    assert_eq!(
        s.next_event().await,
        KeyRequestEvent::Registered {
            btid: ALICE.parse().expect("btid"),
            ue_addr: LOCALHOST,
            service_ids: ids(&[OPEN2]),
        },
        "after {after:?}"
    );
    assert_eq!(s.metrics.digest_failures.get(), failures, "after {after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_gets_its_documented_status_and_a_valid_request_is_served_right_after() {
    let t = Instant::now();
    let mut s = start(battery_config()).await;
    still_serves(&mut s, "the start").await;
    let cases = cases::all();
    let mut names = HashSet::new();
    let mut expected_failures = 0;
    for case in &cases {
        assert!(names.insert(case.name), "two cases named {:?}", case.name);
        let failures = s.metrics.digest_failures.get();
        let seen = inputs::send(&mut s, &case.input).await;
        case.expect.check(case.name, &seen);
        assert_eq!(
            s.metrics.digest_failures.get() - failures,
            case.expect.failures,
            "{}: Digest failures counted",
            case.name
        );
        expected_failures += case.expect.failures;
        assert!(
            s.events.try_recv().is_err(),
            "{}: no Key Distribution event",
            case.name
        );
        still_serves(&mut s, case.name).await;
    }
    assert!(cases.len() >= 30, "{} cases", cases.len());

    // The driver counts every status it answers; 408 and 503 fall under "other".
    let m = &s.metrics;
    for code in [400, 404, 405, 413, 415] {
        let n = cases
            .iter()
            .filter(|c| c.expect.status == Some(code) && c.expect.text)
            .count() as u64;
        assert!(m.http_status_count(code) >= n, "{code}: {}", m.render());
    }
    assert!(m.http_other_status.get() >= 2, "{}", m.render());
    assert_eq!(
        m.http_status_count(200),
        cases.len() as u64 + 2 + cases.iter().filter(|c| c.expect.items.is_some()).count() as u64,
        "one valid registration per case, the first, the replayed original, the item answers"
    );
    assert_eq!(m.digest_failures.get(), expected_failures);
    eprintln!(
        "HTTP bad-input battery: {} cases, each answered as documented and followed by a \
         served valid request, in {:.1?}",
        cases.len(),
        t.elapsed()
    );
    s.stop().await;
}
