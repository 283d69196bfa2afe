use super::*;

use serde_json::Value;

fn vectors() -> Vec<(String, Value)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/proto-vectors");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("proto-vectors") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        if name.starts_with("digest-") && name.ends_with(".json") {
            let text = std::fs::read_to_string(&path).expect("read");
            out.push((name, serde_json::from_str(&text).expect("json")));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or_else(|| panic!("field {k}"))
}

fn creds(user: &str, pass: &str) -> Credentials {
    Credentials::new(user, Zeroizing::new(pass.to_owned()))
}

#[test]
fn every_digest_vector_reproduces() {
    let all = vectors();
    assert!(all.len() >= 5, "found {} digest vectors", all.len());
    for (name, v) in all {
        let i = &v["inputs"];
        let body = i["body_hex"]
            .as_str()
            .map(|h| hex::decode(h).expect("hex"))
            .unwrap_or_default();
        let www = format!(
            "Digest realm=\"{}\", qop=\"{}\", nonce=\"{}\", algorithm={}",
            s(i, "realm"),
            s(i, "qop"),
            s(i, "nonce"),
            s(i, "algorithm")
        );
        let mut session = ClientSession::new(Challenge::parse(&www).expect("challenge"));
        let c = creds(s(i, "username"), s(i, "password"));
        let nc = u32::from_str_radix(s(i, "nc"), 16).expect("nc");
        let mut auth = None;
        for _ in 0..nc {
            auth = Some(
                session
                    .authorize_with_cnonce(&c, s(i, "method"), s(i, "uri"), &body, s(i, "cnonce"))
                    .expect("authorize"),
            );
        }
        let auth = auth.expect("nc >= 1");
        assert_eq!(auth.response(), s(&v["expected"], "response"), "{name}");
        assert_eq!(auth.qop().map(Qop::as_str), Some(s(i, "qop")), "{name}");
        if let Some(rsp) = v["expected"]["rspauth_empty_response_body"].as_str() {
            assert_eq!(auth.expected_rspauth(&c, b""), rsp, "{name}");
            let info = format!("rspauth=\"{rsp}\"");
            assert_eq!(
                auth.check_authentication_info(&c, Some(&info), b""),
                RspauthStatus::Verified,
                "{name}"
            );
        }
        // The server side accepts the same request and answers with the same rspauth.
        let got = DigestResponse::parse(auth.header_value()).expect("parse own header");
        let expect = Expectation {
            realm: s(i, "realm"),
            method: s(i, "method"),
            uri: s(i, "uri"),
            body: &body,
            algorithm: s(i, "algorithm").parse().expect("alg"),
            qop: QopOffer::Both,
        };
        assert_eq!(got.verify(&expect, s(i, "password")), Ok(()), "{name}");
        if let Some(rsp) = v["expected"]["rspauth_empty_response_body"].as_str() {
            let info = got.authentication_info(s(i, "password"), b"");
            assert!(
                info.contains(&format!("rspauth=\"{rsp}\"")),
                "{name}: {info}"
            );
        }
    }
}

fn round_trip(algorithm: Algorithm, offer: QopOffer) {
    let realm = realm_for("bmsc.example");
    let password = "9TsOrbpCOXxlp2I8lAAOE2oXkbRoCUtrkDkX88Xi6Pc=";
    let c = creds("ICEiIyQlJicoKSorLC0uLw==@bsf.example", password);
    let www = challenge(&ChallengeParams {
        realm: &realm,
        nonce: "n0nce",
        opaque: Some("op\"aque"),
        algorithm,
        qop: offer,
        stale: false,
    });
    let ch = Challenge::parse(&www).expect("own challenge parses");
    assert_eq!(ch.algorithm(), algorithm);
    assert_eq!(ch.opaque(), Some("op\"aque"));
    let want_qop = if offer == QopOffer::Auth {
        Qop::Auth
    } else {
        Qop::AuthInt
    };
    assert_eq!(ch.qop(), want_qop);
    let mut session = ClientSession::new(ch);
    let body = b"<mbmsMskRequest/>";
    for n in 1..=3u32 {
        let auth = session
            .authorize(&c, "POST", "/keymanagement/msk", body)
            .expect("authorize");
        assert_eq!(auth.nc(), n, "nc counts per nonce");
        let got = DigestResponse::parse(auth.header_value()).expect("server parses");
        assert_eq!(got.username(), c.username());
        assert_eq!(got.nc(), n);
        assert_eq!(got.opaque(), Some("op\"aque"));
        let expect = Expectation {
            realm: &realm,
            method: "POST",
            uri: "/keymanagement/msk",
            body,
            algorithm,
            qop: offer,
        };
        assert_eq!(got.verify(&expect, password), Ok(()));
        let tampered = Expectation {
            body: b"<mbmsMskRequest/> ",
            ..expect
        };
        let tampered_result = got.verify(&tampered, password);
        if want_qop == Qop::AuthInt {
            assert_eq!(
                tampered_result,
                Err(VerifyError::Response),
                "auth-int covers the body"
            );
        } else {
            assert_eq!(tampered_result, Ok(()), "auth does not cover the body");
        }
        assert_eq!(
            got.verify(&expect, "d3JvbmcgcGFzc3dvcmQ="),
            Err(VerifyError::Response)
        );
        let response_body = b"<mbmsMskResponse/>";
        let info = got.authentication_info(password, response_body);
        assert_eq!(
            auth.check_authentication_info(&c, Some(&info), response_body),
            RspauthStatus::Verified
        );
        let other_body = auth.check_authentication_info(&c, Some(&info), b"<x/>");
        if want_qop == Qop::AuthInt {
            assert_eq!(other_body, RspauthStatus::Invalid);
        } else {
            assert_eq!(other_body, RspauthStatus::Verified);
        }
        let wrong_pw = creds(c.username(), "d3JvbmcgcGFzc3dvcmQ=");
        assert_eq!(
            auth.check_authentication_info(&wrong_pw, Some(&info), response_body),
            RspauthStatus::Invalid
        );
    }
}

#[test]
fn client_server_round_trip_md5_auth() {
    round_trip(Algorithm::Md5, QopOffer::Auth);
}

#[test]
fn client_server_round_trip_md5_auth_int() {
    round_trip(Algorithm::Md5, QopOffer::AuthInt);
}

#[test]
fn client_server_round_trip_sha256_auth() {
    round_trip(Algorithm::Sha256, QopOffer::Auth);
}

#[test]
fn client_server_round_trip_sha256_auth_int() {
    round_trip(Algorithm::Sha256, QopOffer::AuthInt);
}

#[test]
fn client_server_round_trip_both_offered_picks_auth_int() {
    round_trip(Algorithm::Sha256, QopOffer::Both);
}

fn sample_auth() -> (Credentials, Authorization) {
    let c = creds("user@bsf", "cGFzcw==");
    let mut session = ClientSession::new(
        Challenge::parse("Digest realm=\"3GPP-bootstrapping@b\", nonce=\"n\", qop=\"auth-int\"")
            .expect("challenge"),
    );
    let auth = session
        .authorize_with_cnonce(&c, "POST", "/keymanagement/register", b"x", "c1")
        .expect("authorize");
    (c, auth)
}

#[test]
fn authentication_info_missing_or_wrong_is_reported() {
    let (c, auth) = sample_auth();
    let rsp = auth.expected_rspauth(&c, b"body");
    assert_eq!(
        auth.check_authentication_info(&c, None, b"body"),
        RspauthStatus::Missing
    );
    assert_eq!(
        auth.check_authentication_info(&c, Some("nextnonce=\"abc\""), b"body"),
        RspauthStatus::Missing
    );
    let good = format!("rspauth=\"{rsp}\", qop=auth-int, nc=00000001, cnonce=\"c1\"");
    assert_eq!(
        auth.check_authentication_info(&c, Some(&good), b"body"),
        RspauthStatus::Verified
    );
    let upper = format!("rspauth=\"{}\"", rsp.to_uppercase());
    assert_eq!(
        auth.check_authentication_info(&c, Some(&upper), b"body"),
        RspauthStatus::Verified
    );
    for bad in [
        format!("rspauth=\"{rsp}\", nc=00000002"),
        format!("rspauth=\"{rsp}\", cnonce=\"other\""),
        format!("rspauth=\"{rsp}\", qop=auth"),
        format!("rspauth=\"{}\"", &rsp[..rsp.len() - 1]),
        "rspauth=\"00000000000000000000000000000000\"".to_owned(),
        "rspauth=\"unterminated".to_owned(),
        "=\"x\"".to_owned(),
        "rspauth=\"é\"".to_owned(),
    ] {
        assert_eq!(
            auth.check_authentication_info(&c, Some(&bad), b"body"),
            RspauthStatus::Invalid,
            "{bad}"
        );
    }
}

#[test]
fn challenge_format_is_rfc7616() {
    let h = challenge(&ChallengeParams {
        realm: "3GPP-bootstrapping@bmsc.example",
        nonce: "abc",
        opaque: None,
        algorithm: Algorithm::Sha256,
        qop: QopOffer::AuthInt,
        stale: true,
    });
    assert_eq!(
        h,
        "Digest realm=\"3GPP-bootstrapping@bmsc.example\", qop=\"auth-int\", nonce=\"abc\", \
         algorithm=SHA-256, stale=true"
    );
    let c = Challenge::parse(&h).expect("parse");
    assert!(c.stale());
    assert_eq!(c.nonce(), "abc");
    assert_eq!(c.realm(), "3GPP-bootstrapping@bmsc.example");
}

#[test]
fn lighttpd_challenge_parses() {
    let h = "Digest realm=\"3GPP-bootstrapping@bmsc.example\", charset=\"UTF-8\", algorithm=SHA-256, \
             nonce=\"6b02dd76:3a47f7668dac59610c2b252d6222b617e02dc9f88a58afa1bbb656b091b0ced1\", qop=\"auth\"";
    let c = Challenge::parse(h).expect("lighttpd challenge");
    assert_eq!(c.algorithm(), Algorithm::Sha256);
    assert_eq!(c.qop(), Qop::Auth);
}

#[test]
fn challenge_selection_prefers_auth_int_then_sha256() {
    let md5 = "Digest realm=\"r\", nonce=\"1\", qop=\"auth\", algorithm=MD5";
    let sha = "Digest realm=\"r\", nonce=\"2\", qop=\"auth\", algorithm=SHA-256";
    let md5_int = "Digest realm=\"r\", nonce=\"3\", qop=\"auth-int\", algorithm=MD5";
    let basic = "Basic realm=\"r\"";
    assert_eq!(
        Challenge::select([basic, md5, sha]).map(|c| c.nonce().to_owned()),
        Ok("2".into())
    );
    assert_eq!(
        Challenge::select([md5, md5_int, sha]).map(|c| c.nonce().to_owned()),
        Ok("3".into())
    );
    assert_eq!(
        Challenge::select([basic]).map(|c| c.nonce().to_owned()),
        Err(DigestError::NotDigest)
    );
    assert_eq!(
        Challenge::select([]).map(|c| c.nonce().to_owned()),
        Err(DigestError::NotDigest)
    );
}

#[test]
fn unsupported_challenges_are_refused() {
    let cases: [(&str, DigestError); 8] = [
        ("Basic realm=\"r\"", DigestError::NotDigest),
        ("Digest", DigestError::NotDigest),
        ("Digestrealm=\"r\"", DigestError::NotDigest),
        ("Digest realm=\"r\", nonce=\"n\"", DigestError::NoQop),
        (
            "Digest realm=\"r\", nonce=\"n\", qop=\"auth\", algorithm=SHA-512-256",
            DigestError::UnsupportedAlgorithm("SHA-512-256".into()),
        ),
        (
            "Digest realm=\"r\", nonce=\"n\", qop=\"auth\", algorithm=MD5-sess",
            DigestError::UnsupportedAlgorithm("MD5-sess".into()),
        ),
        (
            "Digest realm=\"r\", nonce=\"n\", qop=\"auth\", userhash=true",
            DigestError::Userhash,
        ),
        (
            "Digest nonce=\"n\", qop=\"auth\"",
            DigestError::Missing("realm"),
        ),
    ];
    for (h, e) in cases {
        assert_eq!(Challenge::parse(h).map(|_| ()), Err(e), "{h}");
    }
    assert_eq!(
        Challenge::parse("Digest realm=\"ré\", nonce=\"n\", qop=\"auth\"").map(|_| ()),
        Err(DigestError::NotAscii)
    );
    let long = format!(
        "Digest realm=\"{}\", nonce=\"n\", qop=\"auth\"",
        "r".repeat(5000)
    );
    assert_eq!(
        Challenge::parse(&long).map(|_| ()),
        Err(DigestError::TooLong)
    );
    assert_eq!(
        Challenge::parse("digest REALM=\"r\", nonce=\"n\", qop=\"auth\"").map(|_| ()),
        Err(DigestError::Missing("realm"))
    );
    assert!(Challenge::parse("DIGEST realm=\"r\", nonce=\"n\", qop=\"auth\"").is_ok());
}

#[test]
fn hostile_authorization_headers_never_panic() {
    let (_, auth) = sample_auth();
    let good = auth.header_value().to_owned();
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    for _ in 0..20_000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut b = good.clone().into_bytes();
        let pos = (seed as usize) % b.len();
        b[pos] = (seed >> 32) as u8;
        b.truncate(((seed >> 40) as usize % b.len()).max(pos));
        let text = String::from_utf8_lossy(&b);
        let _ = DigestResponse::parse(&text);
        let _ = Challenge::parse(&text);
        let _ = parse_auth_params(&text);
    }
    for h in [
        "Digest username=",
        "Digest username=\"",
        "Digest ,,,",
        "Digest =",
        "Digest a=b=c",
        "Digest nc=zz, username=\"u\"",
        "Digest username=\"u\", realm=\"r\", nonce=\"n\", uri=\"/\", response=\"x\", qop=auth, nc=1",
    ] {
        assert!(DigestResponse::parse(h).is_err(), "{h}");
    }
}

#[test]
fn verify_checks_realm_uri_algorithm_and_qop() {
    let (_, auth) = sample_auth();
    let got = DigestResponse::parse(auth.header_value()).expect("parse");
    let base = Expectation {
        realm: "3GPP-bootstrapping@b",
        method: "POST",
        uri: "/keymanagement/register",
        body: b"x",
        algorithm: Algorithm::Md5,
        qop: QopOffer::AuthInt,
    };
    assert_eq!(got.verify(&base, "cGFzcw=="), Ok(()));
    let cases = [
        (
            Expectation {
                realm: "other",
                ..base
            },
            VerifyError::Realm,
        ),
        (
            Expectation {
                uri: "/keymanagement/msk",
                ..base
            },
            VerifyError::Uri,
        ),
        (
            Expectation {
                algorithm: Algorithm::Sha256,
                ..base
            },
            VerifyError::Algorithm,
        ),
        (
            Expectation {
                qop: QopOffer::Auth,
                ..base
            },
            VerifyError::Qop,
        ),
        (
            Expectation {
                method: "GET",
                ..base
            },
            VerifyError::Response,
        ),
    ];
    for (e, want) in cases {
        assert_eq!(got.verify(&e, "cGFzcw=="), Err(want));
    }
}

#[test]
fn debug_output_is_redacted() {
    let (c, auth) = sample_auth();
    assert!(!format!("{c:?}").contains("cGFzcw=="));
    let dbg = format!("{auth:?}");
    assert!(!dbg.contains(auth.response()), "{dbg}");
    let got = DigestResponse::parse(auth.header_value()).expect("parse");
    assert!(!format!("{got:?}").contains(auth.response()));
}

#[test]
fn a_repeated_parameter_is_found_in_any_case_and_quoting() {
    let base = "username=\"a\", realm=\"r\", nonce=\"n\", uri=\"/x\", response=\"00\", \
                cnonce=\"c\", nc=00000001, qop=auth-int";
    let ok = DigestResponse::parse(&format!("Digest {base}")).expect("parses");
    assert_eq!(ok.repeated_parameter(), None);
    for (extra, name) in [
        (", nc=00000001", "nc"),
        (", URI=\"/y\"", "uri"),
        (", foo=1, Foo=\"2\"", "foo"),
        (", Realm=r", "realm"),
    ] {
        let header = format!("digest {base}{extra}");
        let parsed = DigestResponse::parse(&header).expect("parses");
        assert_eq!(parsed.repeated_parameter(), Some(name), "{header}");
    }
}

#[test]
fn parameter_names_match_in_any_case() {
    // RFC 7235 §2.1: auth-param names are case-insensitive.
    let header = "Digest USERNAME=\"a\", Realm=\"r\", NONCE=\"n\", Uri=\"/x\", Response=\"00\", \
                  CNonce=\"c\", NC=0000000a, QOP=auth, Algorithm=SHA-256";
    let d = DigestResponse::parse(header).expect("parses");
    assert_eq!(
        (
            d.username(),
            d.realm(),
            d.nonce(),
            d.uri(),
            d.cnonce(),
            d.nc()
        ),
        ("a", "r", "n", "/x", "c", 10)
    );
    assert_eq!((d.qop(), d.algorithm()), (Qop::Auth, Algorithm::Sha256));
    assert_eq!(d.repeated_parameter(), None);
}

#[test]
fn the_authorization_header_is_parsed_once() {
    let header = "Digest username=\"a\", realm=\"r\", nonce=\"n\", uri=\"/x\", \
                  response=\"00\", cnonce=\"c\", nc=00000001, qop=auth-int";
    let before = super::auth_param_parses();
    DigestResponse::parse(header).expect("parses");
    assert_eq!(super::auth_param_parses() - before, 1);
}

#[test]
fn quoted_values_with_and_without_escapes_parse_and_quote_back() {
    let got = parse_auth_params(r#"a="x\"y\\z", b="plain", c=tok, d="""#).expect("parses");
    let want = [("a", r#"x"y\z"#), ("b", "plain"), ("c", "tok"), ("d", "")];
    assert_eq!(
        got.iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect::<Vec<_>>(),
        want
    );
    assert_eq!(quote(r#"x"y\z"#), r#"x\"y\\z"#);
    assert_eq!(quote("plain"), "plain");
    assert_eq!(
        parse_auth_params(r#"a="unterminated"#),
        Err(DigestError::Syntax)
    );
}
