//! The access token (docs/mcx.md §4): ES256 and RS256 JWTs checked against a JWKS file, the
//! issuer, the audience and the caller's clock, and the MC identities read from `mcptt_id`,
//! `mcvideo_id`, `mcdata_id`. Keys: `proto-vectors/mcx/token/` (generated with openssl for
//! these tests only).

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mbms_keys::kms::token::{self, Jwks, McIdentities, TokenError, TokenPolicy};
use serde_json::{Value, json};

const NOW: u64 = 1_796_234_400;

fn file(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/proto-vectors/mcx/token/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn jwks() -> Jwks {
    Jwks::from_json(&file("jwks.json")).unwrap()
}

fn policy() -> TokenPolicy {
    TokenPolicy {
        issuer: "https://idms.example.org".into(),
        audience: "kms.example.org".into(),
        leeway_secs: 30,
    }
}

fn claims() -> Value {
    json!({
        "iss": "https://idms.example.org",
        "aud": ["kms.example.org", "gms.example.org"],
        "sub": "alice",
        "exp": NOW + 3600,
        "nbf": NOW - 60,
        "mcptt_id": "sip:alice@example.org",
        "mcdata_id": "sip:alice-data@example.org",
    })
}

fn es256(kid: Option<&str>, key_file: &str, claims: &Value) -> String {
    let mut h = Header::new(Algorithm::ES256);
    h.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&h, claims, &EncodingKey::from_ec_der(&file(key_file))).unwrap()
}

fn rs256(claims: &Value) -> String {
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some("idms-rs256".into());
    jsonwebtoken::encode(
        &h,
        claims,
        &EncodingKey::from_rsa_der(&file("rs256-key.pkcs1.der")),
    )
    .unwrap()
}

fn good_es256() -> String {
    es256(Some("idms-es256"), "es256-key.pk8.der", &claims())
}

fn check(t: &str) -> Result<token::AccessToken, TokenError> {
    token::verify(t, &jwks(), &policy(), NOW)
}

fn with(field: &str, v: Value) -> Value {
    let mut c = claims();
    c[field] = v;
    c
}

#[test]
fn es256_and_rs256_tokens_verify_and_carry_the_mc_identities() {
    for t in [good_es256(), rs256(&claims())] {
        let a = check(&t).unwrap();
        assert_eq!(a.subject.as_deref(), Some("alice"));
        assert_eq!(a.expires, NOW + 3600);
        assert_eq!(
            a.identities,
            McIdentities {
                mcptt: Some("sip:alice@example.org".into()),
                mcvideo: None,
                mcdata: Some("sip:alice-data@example.org".into()),
            }
        );
        a.authorize("sip:alice@example.org").unwrap();
        a.authorize("sip:alice-data@example.org").unwrap();
    }
}

#[test]
fn an_identity_not_in_the_token_is_refused() {
    let a = check(&good_es256()).unwrap();
    assert_eq!(
        a.authorize("sip:bob@example.org"),
        Err(TokenError::IdentityNotInToken)
    );
    // A token with no MC identity authorises nobody.
    let mut c = claims();
    c.as_object_mut().unwrap().remove("mcptt_id");
    c.as_object_mut().unwrap().remove("mcdata_id");
    let a = check(&es256(Some("idms-es256"), "es256-key.pk8.der", &c)).unwrap();
    assert_eq!(
        a.authorize("sip:alice@example.org"),
        Err(TokenError::IdentityNotInToken)
    );
}

#[test]
fn an_expired_token_is_refused() {
    let t = es256(
        Some("idms-es256"),
        "es256-key.pk8.der",
        &with("exp", json!(NOW - 31)),
    );
    assert_eq!(check(&t), Err(TokenError::Expired));
    // Within the leeway it is still accepted.
    let t = es256(
        Some("idms-es256"),
        "es256-key.pk8.der",
        &with("exp", json!(NOW - 29)),
    );
    check(&t).unwrap();
    // No exp at all is malformed.
    let mut c = claims();
    c.as_object_mut().unwrap().remove("exp");
    assert!(matches!(
        check(&es256(Some("idms-es256"), "es256-key.pk8.der", &c)),
        Err(TokenError::Malformed(_))
    ));
}

#[test]
fn a_token_not_yet_valid_is_refused() {
    let t = es256(
        Some("idms-es256"),
        "es256-key.pk8.der",
        &with("nbf", json!(NOW + 120)),
    );
    assert_eq!(check(&t), Err(TokenError::NotYetValid));
}

#[test]
fn a_wrong_audience_is_refused() {
    let t = rs256(&with("aud", json!("other.example.org")));
    assert_eq!(check(&t), Err(TokenError::WrongAudience));
    let mut c = claims();
    c.as_object_mut().unwrap().remove("aud");
    assert_eq!(check(&rs256(&c)), Err(TokenError::WrongAudience));
}

#[test]
fn a_wrong_issuer_is_refused() {
    let t = es256(
        Some("idms-es256"),
        "es256-key.pk8.der",
        &with("iss", json!("https://evil.example")),
    );
    assert_eq!(check(&t), Err(TokenError::WrongIssuer));
}

#[test]
fn a_forged_signature_is_refused() {
    // Signed with another P-256 key under the trusted kid.
    let t = es256(Some("idms-es256"), "es256-other-key.pk8.der", &claims());
    assert_eq!(check(&t), Err(TokenError::BadSignature));
    // Claims altered after signing.
    let good = good_es256();
    let parts: Vec<&str> = good.split('.').collect();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let forged_claims =
        b64.encode(serde_json::to_vec(&with("mcptt_id", json!("sip:bob@example.org"))).unwrap());
    let forged = format!("{}.{}.{}", parts[0], forged_claims, parts[2]);
    assert_eq!(check(&forged), Err(TokenError::BadSignature));
}

#[test]
fn an_unknown_or_missing_kid_is_refused() {
    let t = es256(Some("nobody"), "es256-key.pk8.der", &claims());
    assert_eq!(check(&t), Err(TokenError::UnknownKid("nobody".into())));
    let t = es256(None, "es256-key.pk8.der", &claims());
    assert_eq!(check(&t), Err(TokenError::NoKid));
}

#[test]
fn other_algorithms_and_key_confusion_are_refused() {
    // HS256 keyed with a public value: never accepted.
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some("idms-es256".into());
    let t =
        jsonwebtoken::encode(&h, &claims(), &EncodingKey::from_secret(b"public").unwrap()).unwrap();
    assert_eq!(check(&t), Err(TokenError::Algorithm("HS256".into())));
    // An RS256 header naming the EC key.
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some("idms-es256".into());
    let t = jsonwebtoken::encode(
        &h,
        &claims(),
        &EncodingKey::from_rsa_der(&file("rs256-key.pkcs1.der")),
    )
    .unwrap();
    assert_eq!(check(&t), Err(TokenError::Algorithm("RS256".into())));
}

#[test]
fn garbage_tokens_and_jwks_are_refused_without_panic() {
    for t in [
        "",
        "a.b.c",
        "....",
        "eyJhbGciOiJFUzI1NiJ9.e30.",
        &"x".repeat(9000),
    ] {
        assert!(check(t).is_err(), "{t}");
    }
    assert!(matches!(
        Jwks::from_json(b"{\"keys\": 5}"),
        Err(TokenError::Jwks(_))
    ));
    assert!(matches!(
        Jwks::from_json(b"not json"),
        Err(TokenError::Jwks(_))
    ));
}

#[test]
fn a_kms_request_is_401_without_a_good_token_and_403_for_another_identity() {
    use mbms_keys::kms::routes::{RequestError, authorize};
    let bearer = format!("Bearer {}", good_es256());
    let ok = authorize(
        Some(&bearer),
        "sip:alice@example.org",
        &jwks(),
        &policy(),
        NOW,
    )
    .unwrap();
    assert_eq!(ok.subject.as_deref(), Some("alice"));
    let e = authorize(
        Some(&bearer),
        "sip:bob@example.org",
        &jwks(),
        &policy(),
        NOW,
    )
    .unwrap_err();
    assert_eq!((e.clone(), e.status()), (RequestError::Forbidden, 403));
    let e = authorize(
        Some(&bearer),
        "sip:alice@example.org",
        &jwks(),
        &policy(),
        NOW + 7200,
    )
    .unwrap_err();
    assert_eq!(
        (e.clone(), e.status()),
        (RequestError::Token(TokenError::Expired), 401)
    );
    let e = authorize(None, "sip:alice@example.org", &jwks(), &policy(), NOW).unwrap_err();
    assert_eq!(e.status(), 401);
}
