//! HTTP Digest of the Key Request handler (RFC 7616, docs/profile.md §4): challenge, rspauth,
//! nonce expiry and replay, refusals.

use super::*;

#[test]
fn no_authorization_gets_a_challenge_with_the_gba_realm_qop_algorithm_and_opaque() {
    let b = bench();
    let value = b.challenge(PATH_REGISTER, t0());
    let c = Challenge::parse(&value).expect("parses");
    assert_eq!(c.realm(), REALM);
    assert_eq!(c.qop().as_str(), "auth-int");
    assert_eq!(c.algorithm().as_str(), "SHA-256");
    assert!(c.opaque().is_some_and(|o| !o.is_empty()));
    assert!(!c.stale());
    assert!(value.contains("qop=\"auth-int\""), "{value}");
    let other = Challenge::parse(&b.challenge(PATH_MSK, t0())).expect("parses");
    assert_ne!(c.nonce(), other.nonce(), "fresh nonce each time");
    assert_eq!(b.failures(), 0, "the first challenge is not a failure");

    let md5 = bench_with(&lab::config("auth", "MD5", "5m", 10), Box::new(Sequence(0)));
    let c = Challenge::parse(&md5.challenge(PATH_MSK, t0())).expect("parses");
    assert_eq!((c.qop().as_str(), c.algorithm().as_str()), ("auth", "MD5"));
}

#[test]
fn every_200_carries_authentication_info_with_rspauth_over_the_body() {
    let b = bench();
    let x = b.alice(PATH_REGISTER, MIME_REGISTER, &register_body(&[OPEN]));
    assert_eq!(x.resp.status, 200);
    assert_eq!(x.resp.header("content-type"), Some(MIME_REGISTER_RESPONSE));
    assert_eq!(x.rspauth(), RspauthStatus::Verified);
    let info = x.resp.header("authentication-info").expect("present");
    assert!(info.contains("qop=auth-int"), "{info}");
    // Over the body: another body does not verify.
    assert_eq!(
        x.auth
            .check_authentication_info(&x.creds, Some(info), b"<other/>"),
        RspauthStatus::Invalid
    );
    b.store
        .put_msk(&msk_record(1, 5, MskState::Current))
        .expect("put");
    let x = b.alice(
        PATH_MSK,
        MIME_MSK,
        &MskRequest::new(&[(KD, MskId::new(1, 0))]).to_xml(),
    );
    assert_eq!(x.resp.header("content-type"), Some(MIME_MSK_RESPONSE));
    assert_eq!(x.rspauth(), RspauthStatus::Verified);
    let x = b.alice(PATH_DEREGISTER, MIME_DEREGISTER, &deregister_body(&[OPEN]));
    assert_eq!(x.resp.header("content-type"), Some(MIME_REGISTER_RESPONSE));
    assert_eq!(x.rspauth(), RspauthStatus::Verified);
}

#[test]
fn qop_auth_and_md5_work_when_configured() {
    let b = bench_with(&lab::config("auth", "MD5", "5m", 10), Box::new(Sequence(0)));
    let x = b.alice(PATH_REGISTER, MIME_REGISTER, &register_body(&[OPEN]));
    assert_eq!(x.register_codes(), vec![(OPEN.to_owned(), 200)]);
    assert_eq!(x.rspauth(), RspauthStatus::Verified);
    assert!(
        x.resp
            .header("authentication-info")
            .is_some_and(|i| i.contains("qop=auth,"))
    );
}

#[test]
fn an_expired_nonce_gets_401_stale_true_and_a_fresh_nonce_when_the_response_was_right() {
    let b = bench_with(
        &lab::config("auth-int", "SHA-256", "1s", 10),
        Box::new(Sequence(0)),
    );
    let body = register_body(&[OPEN]);
    let mut s = b.session(PATH_REGISTER, t0());
    let old_nonce = s.challenge().nonce().to_owned();
    let alice = credentials(ALICE, 0x10);
    let ok = b.send(
        &mut s,
        &alice,
        PATH_REGISTER,
        MIME_REGISTER,
        body.as_bytes(),
        t0() + Duration::from_millis(999),
    );
    assert_eq!(ok.resp.status, 200);
    let late = t0() + Duration::from_secs(1);
    let x = b.send(
        &mut s,
        &alice,
        PATH_REGISTER,
        MIME_REGISTER,
        body.as_bytes(),
        late,
    );
    assert!(is_stale(&x.resp), "{:?}", x.resp);
    let fresh = Challenge::parse(www_authenticate(&x.resp)).expect("parses");
    assert_ne!(fresh.nonce(), old_nonce);
    // The fresh nonce works.
    let mut s2 = ClientSession::new(fresh);
    let y = b.send(
        &mut s2,
        &alice,
        PATH_REGISTER,
        MIME_REGISTER,
        body.as_bytes(),
        late,
    );
    assert_eq!(y.resp.status, 200);
    // The nonce is checked before the key source is asked: a wrong password on an expired
    // nonce is stale too (RFC 7616 §3.3, docs/profile.md §6), and fails on the fresh one.
    let wrong = credentials(ALICE, 0x99);
    let z = b.send(
        &mut s,
        &wrong,
        PATH_REGISTER,
        MIME_REGISTER,
        body.as_bytes(),
        late,
    );
    assert!(is_stale(&z.resp));
    let again = b.send(
        &mut s2,
        &wrong,
        PATH_REGISTER,
        MIME_REGISTER,
        body.as_bytes(),
        late,
    );
    assert_eq!(again.resp.status, 401);
    assert!(!is_stale(&again.resp));
    assert_eq!(b.failures(), 3);
}

#[test]
fn a_replayed_nonce_count_is_refused() {
    let b = bench();
    let body = register_body(&[OPEN]);
    let mut s = b.session(PATH_REGISTER, t0());
    let alice = credentials(ALICE, 0x10);
    let auth = s
        .authorize(&alice, "POST", PATH_REGISTER, body.as_bytes())
        .expect("authorize");
    let send = |a: &str| {
        b.call(
            request(
                "POST",
                PATH_REGISTER,
                Some(MIME_REGISTER),
                Some(a),
                body.as_bytes(),
            ),
            t0(),
        )
        .0
    };
    assert_eq!(send(auth.header_value()).status, 200);
    let again = send(auth.header_value());
    assert_eq!(again.status, 401, "same (nonce, nc)");
    assert!(!is_stale(&again));
    // Parallel requests on one nonce may arrive out of order: nc 3, then nc 2
    // (not seen yet) are both fine, each once.
    let nc2 = s
        .authorize(&alice, "POST", PATH_REGISTER, body.as_bytes())
        .expect("nc 2");
    let nc3 = s
        .authorize(&alice, "POST", PATH_REGISTER, body.as_bytes())
        .expect("nc 3");
    assert_eq!(send(nc3.header_value()).status, 200);
    assert_eq!(send(nc2.header_value()).status, 200);
    assert_eq!(send(nc2.header_value()).status, 401, "nc 2 again");
    assert_eq!(send(nc3.header_value()).status, 401, "nc 3 again");
    assert_eq!(b.failures(), 3);
}

#[test]
fn an_unknown_nonce_is_refused_stale_before_the_credentials_are_checked() {
    let b = bench();
    let body = register_body(&[OPEN]);
    let value = b
        .challenge(PATH_REGISTER, t0())
        .replace("nonce=\"", "nonce=\"ff");
    let mut s = ClientSession::new(Challenge::parse(&value).expect("parses"));
    let x = b.send(
        &mut s,
        &credentials(ALICE, 0x10),
        PATH_REGISTER,
        MIME_REGISTER,
        body.as_bytes(),
        t0(),
    );
    assert!(is_stale(&x.resp));
    let y = b.send(
        &mut s,
        &credentials(ALICE, 0x11),
        PATH_REGISTER,
        MIME_REGISTER,
        body.as_bytes(),
        t0(),
    );
    assert_eq!(y.resp.status, 401);
    assert!(
        is_stale(&y.resp),
        "unknown nonce: stale whatever the password"
    );
    let mut fresh =
        ClientSession::new(Challenge::parse(www_authenticate(&y.resp)).expect("parses"));
    let z = b.send(
        &mut fresh,
        &credentials(ALICE, 0x11),
        PATH_REGISTER,
        MIME_REGISTER,
        body.as_bytes(),
        t0(),
    );
    assert_eq!(z.resp.status, 401);
    assert!(!is_stale(&z.resp), "wrong password on a good nonce");
}

#[test]
fn nonces_are_bounded_and_the_oldest_is_forgotten_first() {
    let b = bench_with(
        &lab::config("auth-int", "SHA-256", "5m", 3),
        Box::new(Sequence(0)),
    );
    let body = register_body(&[OPEN]);
    let mut first = b.session(PATH_REGISTER, t0());
    let mut sessions: Vec<ClientSession> = (0..5).map(|_| b.session(PATH_REGISTER, t0())).collect();
    assert_eq!(b.handler.nonces_held(), 3);
    let alice = credentials(ALICE, 0x10);
    let x = b.send(
        &mut first,
        &alice,
        PATH_REGISTER,
        MIME_REGISTER,
        body.as_bytes(),
        t0(),
    );
    assert!(is_stale(&x.resp), "evicted nonce answered stale");
    assert_eq!(b.handler.nonces_held(), 3);
    let newest = sessions.last_mut().expect("five");
    let y = b.send(
        newest,
        &alice,
        PATH_REGISTER,
        MIME_REGISTER,
        body.as_bytes(),
        t0(),
    );
    assert_eq!(y.resp.status, 200);
}

/// A rewrite of a challenge.
type Edit = Box<dyn Fn(&str) -> String>;

/// Answers a challenge rewritten by `edit`, to `uri`.
fn answer_edited(b: &Bench, edit: impl Fn(&str) -> String, uri: &str) -> Response {
    let body = register_body(&[OPEN]);
    let value = edit(&b.challenge(PATH_REGISTER, t0()));
    let mut s = ClientSession::new(Challenge::parse(&value).expect("parses"));
    let auth = s
        .authorize(&credentials(ALICE, 0x10), "POST", uri, body.as_bytes())
        .expect("authorize");
    b.call(
        request(
            "POST",
            PATH_REGISTER,
            Some(MIME_REGISTER),
            Some(auth.header_value()),
            body.as_bytes(),
        ),
        t0(),
    )
    .0
}

#[test]
fn wrong_realm_uri_algorithm_or_qop_is_refused() {
    let b = bench();
    let same = |v: &str| v.to_owned();
    assert_eq!(
        answer_edited(&b, same, PATH_REGISTER).status,
        200,
        "control"
    );
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "realm",
            Box::new(|v: &str| v.replace("@bmsc.example.org", "@evil.example")),
            PATH_REGISTER,
        ),
        ("uri", Box::new(same), PATH_MSK),
        (
            "uri with query",
            Box::new(same),
            "/keymanagement/register?x",
        ),
        (
            "algorithm",
            Box::new(|v: &str| v.replace("algorithm=SHA-256", "algorithm=MD5")),
            PATH_REGISTER,
        ),
        (
            "qop",
            Box::new(|v: &str| v.replace("qop=\"auth-int\"", "qop=\"auth\"")),
            PATH_REGISTER,
        ),
    ];
    for (i, (what, edit, uri)) in cases.into_iter().enumerate() {
        let resp = answer_edited(&b, edit, uri);
        assert_eq!(resp.status, 401, "{what}");
        assert!(!is_stale(&resp), "{what}");
        assert_eq!(b.failures(), i as u64 + 1, "{what} counted");
    }
}

#[test]
fn a_wrong_response_or_a_changed_body_is_refused() {
    let b = bench();
    let body = register_body(&[OPEN]);
    let x = b.post(ALICE, 0x55, PATH_REGISTER, MIME_REGISTER, &body);
    assert_eq!(x.resp.status, 401, "wrong password");
    // auth-int: the body signed is not the body sent.
    let mut s = b.session(PATH_REGISTER, t0());
    let auth = s
        .authorize(
            &credentials(ALICE, 0x10),
            "POST",
            PATH_REGISTER,
            body.as_bytes(),
        )
        .expect("authorize");
    let tampered = register_body(&[OPEN, OPEN2]);
    let (resp, _) = b.call(
        request(
            "POST",
            PATH_REGISTER,
            Some(MIME_REGISTER),
            Some(auth.header_value()),
            tampered.as_bytes(),
        ),
        t0(),
    );
    assert_eq!(resp.status, 401);
    // Not Digest, or not parseable.
    for junk in [
        "Basic YWxhZGRpbjpvcGVuc2VzYW1l",
        "Digest",
        "Digest username=",
        "Digest \u{1}",
    ] {
        let (resp, _) = b.call(
            request(
                "POST",
                PATH_REGISTER,
                Some(MIME_REGISTER),
                Some(junk),
                body.as_bytes(),
            ),
            t0(),
        );
        assert_eq!(resp.status, 401, "{junk}");
    }
    assert_eq!(b.failures(), 6);
    assert!(!is_registered(&b.store.inner, ALICE, OPEN));
}

#[test]
fn an_unknown_btid_or_expired_keys_get_401_with_a_fresh_challenge() {
    let b = bench();
    let body = register_body(&[OPEN]);
    for (btid, seed) in [
        ("bm9ib2R5bm9ib2R5bm9ib2R5@bsf.example.org", 0x10),
        (OLD, 0x30),
    ] {
        let x = b.post(btid, seed, PATH_REGISTER, MIME_REGISTER, &body);
        assert_eq!(x.resp.status, 401, "{btid}");
        assert!(
            !is_stale(&x.resp),
            "fresh challenge, not stale: bootstrap again"
        );
    }
    assert_eq!(b.failures(), 2);
}

#[test]
fn an_unavailable_key_source_gets_503() {
    let b = bench();
    b.source.unavailable.store(true, Ordering::SeqCst);
    let x = b.alice(PATH_REGISTER, MIME_REGISTER, &register_body(&[OPEN]));
    assert_eq!(x.resp.status, 503);
    assert!(x.resp.header("retry-after").is_some());
}

#[test]
fn a_failing_nonce_generator_gets_503_not_a_panic() {
    let b = bench_with(
        &lab::config("auth-int", "SHA-256", "5m", 10),
        Box::new(Failing),
    );
    let (resp, _) = b.call(request("POST", PATH_MSK, Some(MIME_MSK), None, b""), t0());
    assert_eq!(resp.status, 503);
}

/// Every check that needs no key runs before the key source is asked: forged, replayed or
/// stale headers cost no lookup (a Zn round trip to the BSF).
#[test]
fn headers_refused_without_keys_cost_no_key_source_lookup() {
    let b = bench();
    let body = register_body(&[OPEN]);
    let alice = credentials(ALICE, 0x10);
    let mut s = b.session(PATH_REGISTER, t0());
    let good = s
        .authorize(&alice, "POST", PATH_REGISTER, body.as_bytes())
        .expect("authorize");
    let send = |a: &str| {
        b.call(
            request(
                "POST",
                PATH_REGISTER,
                Some(MIME_REGISTER),
                Some(a),
                body.as_bytes(),
            ),
            t0(),
        )
        .0
    };
    let v = good.header_value().to_owned();
    let nonce = s.challenge().nonce().to_owned();
    let forged = [
        v.replace(REALM, "3GPP-bootstrapping@evil.example"),
        v.replace("uri=\"/keymanagement/register\"", "uri=\"/x\""),
        v.replace(&nonce, "00112233445566778899aabbccddeeff"),
        v.replace("opaque=\"", "opaque=\"00"),
        v.replace("nc=00000001", "nc=00000000"),
        "Digest username=\"x\"".to_owned(),
    ];
    for f in &forged {
        assert_ne!(&v, f, "the forgery changed something");
        assert_eq!(send(f).status, 401, "{f}");
    }
    assert_eq!(b.source.lookups.load(Ordering::SeqCst), 0);
    assert_eq!(send(&v).status, 200);
    assert_eq!(b.source.lookups.load(Ordering::SeqCst), 1);
    // The same (nonce, nc) again is a replay: refused before the lookup.
    assert_eq!(send(&v).status, 401);
    assert_eq!(b.source.lookups.load(Ordering::SeqCst), 1);
    // A stale nonce too.
    let late = b
        .call(
            request(
                "POST",
                PATH_REGISTER,
                Some(MIME_REGISTER),
                Some(
                    s.authorize(&alice, "POST", PATH_REGISTER, body.as_bytes())
                        .expect("nc 2")
                        .header_value(),
                ),
                body.as_bytes(),
            ),
            t0() + Duration::from_secs(3600),
        )
        .0;
    assert!(is_stale(&late));
    assert_eq!(b.source.lookups.load(Ordering::SeqCst), 1);
}

/// The BSF's 5402 (not authorized) refuses the whole request with 403: without keys no
/// per-item answer could be authenticated.
#[test]
fn a_bsf_refusal_is_403_without_a_challenge() {
    let b = bench();
    b.source.not_authorized.store(true, Ordering::SeqCst);
    let x = b.alice(PATH_REGISTER, MIME_REGISTER, &register_body(&[OPEN]));
    assert_eq!(x.resp.status, 403);
    assert!(x.resp.header("www-authenticate").is_none());
    assert!(x.events.is_empty());
    assert_eq!(b.source.lookups.load(Ordering::SeqCst), 1);
}
