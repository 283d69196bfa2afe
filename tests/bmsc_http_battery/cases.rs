//! The cases, grouped as the rows of the "HTTP statuses" table of README.md.

use mbms_keys::mbms::keyreq::{
    MIME_DEREGISTER, MIME_MSK, MIME_REGISTER, MskRequest, NAMESPACE, PATH_DEREGISTER, PATH_MSK,
    PATH_REGISTER, RegisterRequest,
};
use mbms_keys::mikey::MskId;

use crate::expect::{Expect, authed_error, challenged, closed, items, refused, status};
use crate::harness::{ids, register_body};
use crate::inputs::{Alter, Edit, Input, Script, signed};
use crate::lab::{ALICE, KD, OLD, OPEN, VIP, credentials};
use crate::raw::request_bytes;

pub struct Case {
    pub name: &'static str,
    pub input: Input,
    pub expect: Expect,
}

fn case(name: &'static str, input: Input, expect: Expect) -> Case {
    Case {
        name,
        input,
        expect,
    }
}

fn raw(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Input {
    Input::Raw(request_bytes(method, path, headers, body))
}

/// A body in the profile namespace: `<root xmlns=…>inner</root>`.
fn xml(root: &str, inner: &str) -> Vec<u8> {
    format!("<{root} xmlns=\"{NAMESPACE}\">{inner}</{root}>").into_bytes()
}

/// A registration body with an octet 0xff in its service id.
fn not_utf8() -> Vec<u8> {
    let mut body = xml("mbmsRegister", "<serviceId>urn:#</serviceId>");
    for b in &mut body {
        if *b == b'#' {
            *b = 0xff;
        }
    }
    body
}

/// A registration signed by Alice with this body.
fn register_with(body: &[u8]) -> Input {
    signed(PATH_REGISTER, Some(MIME_REGISTER), body).input()
}

/// A valid registration signed by Alice, altered.
fn register_altered(alter: Alter) -> Input {
    signed(
        PATH_REGISTER,
        Some(MIME_REGISTER),
        register_body(&[OPEN]).as_bytes(),
    )
    .alter(alter)
}

fn header(edit: Edit) -> Input {
    register_altered(Alter::Header(edit))
}

fn challenge(edit: Edit) -> Input {
    register_altered(Alter::Challenge(edit))
}

pub fn all() -> Vec<Case> {
    let reg = register_body(&[OPEN]);
    let reg = reg.as_bytes();
    let ct_reg = [("content-type", MIME_REGISTER)];
    vec![
        // ---- method and path: 405 with Allow: POST; an unknown path 404 for any method ----
        case(
            "GET on a known path",
            raw("GET", PATH_REGISTER, &[], b""),
            status(405).allow("POST").text(),
        ),
        case(
            "DELETE on a known path",
            raw("DELETE", PATH_MSK, &[], b""),
            status(405).allow("POST").text(),
        ),
        case(
            "PUT with a body: left unread",
            raw("PUT", PATH_DEREGISTER, &ct_reg, reg),
            status(405).allow("POST").text().close(),
        ),
        case(
            "method in lower case",
            raw("post", PATH_REGISTER, &ct_reg, reg),
            status(405).allow("POST").text().close(),
        ),
        case(
            "unknown path",
            raw("POST", "/keymanagement/nope", &ct_reg, reg),
            status(404).text().close(),
        ),
        case(
            "GET on an unknown path: 404, no Allow",
            raw("GET", "/", &[], b""),
            status(404).text(),
        ),
        case(
            "OPTIONS *",
            Input::Raw(b"OPTIONS * HTTP/1.1\r\nhost: x\r\n\r\n".to_vec()),
            status(404).text(),
        ),
        case(
            "CONNECT",
            Input::Raw(
                b"CONNECT example.org:443 HTTP/1.1\r\nhost: example.org:443\r\n\r\n".to_vec(),
            ),
            status(404).text(),
        ),
        // ---- not HTTP/1.1: 400 from the HTTP layer, closed ----
        case(
            "not HTTP",
            Input::Raw(b"HELLO THERE\r\n\r\n".to_vec()),
            status(400).close(),
        ),
        case(
            "two different Content-Length",
            Input::Raw(
                b"POST /keymanagement/register HTTP/1.1\r\nhost: x\r\n\
                  content-length: 3\r\ncontent-length: 5\r\n\r\nabcde"
                    .to_vec(),
            ),
            status(400).close(),
        ),
        case(
            "invalid Content-Length",
            raw("POST", PATH_REGISTER, &[("content-length", "-1")], b""),
            status(400).close(),
        ),
        case(
            "Transfer-Encoding other than chunked",
            Input::Raw(
                b"POST /keymanagement/register HTTP/1.1\r\nhost: x\r\n\
                  transfer-encoding: gzip\r\n\r\nabc"
                    .to_vec(),
            ),
            status(400).close(),
        ),
        case(
            "HTTP/2 prior-knowledge preface: closed",
            Input::Raw(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec()),
            closed(),
        ),
        // ---- request head over 16 KiB: 431, closed ----
        case(
            "request line over 16 KiB",
            raw(
                "POST",
                &format!("{PATH_REGISTER}?{}", "q".repeat(20 * 1024)),
                &[],
                b"",
            ),
            status(431).close(),
        ),
        case(
            "request header over 16 KiB",
            raw(
                "POST",
                PATH_REGISTER,
                &[("x-big", &"x".repeat(20 * 1024))],
                b"",
            ),
            status(431).close(),
        ),
        // ---- body framing broken: 400, closed ----
        case(
            "malformed chunk size",
            Input::Raw(
                b"POST /keymanagement/register HTTP/1.1\r\nhost: x\r\n\
                  transfer-encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"
                    .to_vec(),
            ),
            status(400).text().close(),
        ),
        case(
            "body cut short: the client closes its side",
            Input::Script(Script::ShortBody),
            status(400).text().close(),
        ),
        // ---- body size: 413 before authentication, connection closed ----
        case(
            "Content-Length over max_body",
            Input::Script(Script::OverDeclared),
            status(413).text().close(),
        ),
        case(
            "body one octet over max_body",
            raw("POST", PATH_REGISTER, &ct_reg, &[b'<'; 4097]),
            status(413).text().close(),
        ),
        case(
            "chunked body over max_body",
            Input::Script(Script::OverChunked),
            status(413).text().close(),
        ),
        case(
            "Expect: 100-continue over max_body: no 100 first",
            Input::Script(Script::ExpectContinue),
            status(413).text().close(),
        ),
        // ---- time: a header not in time is cut; a body not in time is 408 ----
        case(
            "slowloris: header dripped in",
            Input::Script(Script::SlowHeader),
            closed(),
        ),
        case(
            "body never completes",
            Input::Script(Script::SlowBody),
            status(408).text().close(),
        ),
        // ---- connections: 503 at max_connections ----
        case(
            "one connection over max_connections",
            Input::Script(Script::ConnectionLimit),
            status(503).text().close(),
        ),
        // ---- no credentials: 401 with a challenge, before anything else ----
        case(
            "no Authorization",
            raw("POST", PATH_REGISTER, &ct_reg, reg),
            challenged(),
        ),
        case(
            "no Authorization and a wrong Content-Type",
            raw("POST", PATH_MSK, &[("content-type", "text/xml")], b"<x/>"),
            challenged(),
        ),
        case(
            "no Authorization and malformed XML",
            raw("POST", PATH_REGISTER, &ct_reg, b"<mbmsRegister><serviceId>"),
            challenged(),
        ),
        // ---- bad Digest credentials: 401 with a fresh challenge, counted ----
        case(
            "scheme Basic",
            header(Edit::Whole("Basic QUxJQ0U6c2VjcmV0".into())),
            refused(false),
        ),
        case(
            "Digest syntax broken: unterminated quote",
            header(Edit::Whole("Digest username=\"abc, realm=x".into())),
            refused(false),
        ),
        case(
            "Authorization not UTF-8",
            Input::Raw(
                b"POST /keymanagement/register HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\
                  authorization: Digest username=\"\xff\xfe\"\r\n\r\n"
                    .to_vec(),
            ),
            refused(false),
        ),
        case(
            "Authorization over 4096 octets",
            header(Edit::Set("cnonce", format!("\"{}\"", "c".repeat(5000)))),
            refused(false),
        ),
        case(
            "response missing",
            header(Edit::Drop("response")),
            refused(false),
        ),
        case("nonce missing", header(Edit::Drop("nonce")), refused(false)),
        case("uri missing", header(Edit::Drop("uri")), refused(false)),
        case(
            "username missing",
            header(Edit::Drop("username")),
            refused(false),
        ),
        case(
            "cnonce missing",
            header(Edit::Drop("cnonce")),
            refused(false),
        ),
        case(
            "qop missing (RFC 2069 Digest)",
            header(Edit::Drop("qop")),
            refused(false),
        ),
        case("nc repeated", header(Edit::Repeat("nc")), refused(false)),
        case("uri repeated", header(Edit::Repeat("uri")), refused(false)),
        case(
            "nc not 8 hex digits",
            header(Edit::Set("nc", "1".into())),
            refused(false),
        ),
        case(
            "uri not the request target",
            register_altered(Alter::SignFor(PATH_MSK)),
            refused(false),
        ),
        case(
            "algorithm not the one challenged (MD5)",
            challenge(Edit::Set("algorithm", "MD5".into())),
            refused(false),
        ),
        case(
            "algorithm outside the profile (SHA-512-256)",
            header(Edit::Set("algorithm", "SHA-512-256".into())),
            refused(false),
        ),
        case(
            "qop not offered (auth)",
            challenge(Edit::Set("qop", "\"auth\"".into())),
            refused(false),
        ),
        case(
            "qop unknown (auth-conf)",
            header(Edit::Set("qop", "auth-conf".into())),
            refused(false),
        ),
        case(
            "wrong realm",
            challenge(Edit::Set(
                "realm",
                "\"3GPP-bootstrapping@evil.example.org\"".into(),
            )),
            refused(false),
        ),
        case(
            "wrong password",
            signed(PATH_REGISTER, Some(MIME_REGISTER), reg).by(credentials(ALICE, 0x11)),
            refused(false),
        ),
        case(
            "auth-int: body changed after signing",
            register_altered(Alter::Body(register_body(&[VIP]).into_bytes())),
            refused(false),
        ),
        case(
            "opaque changed",
            challenge(Edit::Set("opaque", "\"0123456789abcdef\"".into())),
            refused(false),
        ),
        case(
            "opaque missing",
            header(Edit::Drop("opaque")),
            refused(false),
        ),
        // ---- nonces: replay refused; unknown or expired nonce stale=true ----
        case(
            "replayed nonce and nc",
            Input::Script(Script::Replay),
            refused(false),
        ),
        case(
            "forged nonce, right password",
            challenge(Edit::Set(
                "nonce",
                "\"00112233445566778899aabbccddeeff\"".into(),
            )),
            refused(true),
        ),
        case(
            "expired nonce, right password",
            register_altered(Alter::Late),
            refused(true),
        ),
        // ---- B-TID: unknown or past its key lifetime: fresh challenge ----
        case(
            "unknown B-TID",
            signed(PATH_REGISTER, Some(MIME_REGISTER), reg).by(credentials(
                "bm9ib2R5bm9ib2R5bm9ib2R5@bsf.example.org",
                0x10,
            )),
            refused(false),
        ),
        case(
            "expired key material (B-TID past its key lifetime)",
            signed(PATH_REGISTER, Some(MIME_REGISTER), reg).by(credentials(OLD, 0x30)),
            refused(false),
        ),
        // ---- Content-Type, authenticated: 415 ----
        case(
            "Content-Type application/xml at register",
            signed(PATH_REGISTER, Some("application/xml"), reg).input(),
            authed_error(415),
        ),
        case(
            "Content-Type of register at deregister",
            signed(
                PATH_DEREGISTER,
                Some(MIME_REGISTER),
                RegisterRequest::deregister(&ids(&[OPEN]))
                    .to_xml()
                    .as_bytes(),
            )
            .input(),
            authed_error(415),
        ),
        case(
            "no Content-Type at msk",
            signed(
                PATH_MSK,
                None,
                MskRequest::new(&[(KD, MskId::new(1, 0))])
                    .to_xml()
                    .as_bytes(),
            )
            .input(),
            authed_error(415),
        ),
        // ---- body, authenticated: 400 ----
        case(
            "body not XML",
            register_with(b"hello, BM-SC"),
            authed_error(400),
        ),
        case("empty body", register_with(b""), authed_error(400)),
        case(
            "truncated XML",
            register_with(b"<mbmsRegister><serviceId>urn:example:mbms:open"),
            authed_error(400),
        ),
        case(
            "wrong root element",
            register_with(&xml(
                "mbmsMskRequest",
                "<msk keyDomainId=\"00f110\" mskId=\"00010000\"/>",
            )),
            authed_error(400),
        ),
        case(
            "deregistration body at register",
            register_with(&xml(
                "mbmsDeregister",
                "<serviceId>urn:example:mbms:open</serviceId>",
            )),
            authed_error(400),
        ),
        case(
            "unknown element",
            register_with(&xml(
                "mbmsRegister",
                "<service>urn:example:mbms:open</service>",
            )),
            authed_error(400),
        ),
        case(
            "DTD with an internal entity",
            register_with(
                format!(
                    "<?xml version=\"1.0\"?><!DOCTYPE mbmsRegister [<!ENTITY s \
                     \"urn:example:mbms:open\">]><mbmsRegister xmlns=\"{NAMESPACE}\">\
                     <serviceId>&s;</serviceId></mbmsRegister>"
                )
                .as_bytes(),
            ),
            authed_error(400),
        ),
        case(
            "undeclared entity reference",
            register_with(&xml("mbmsRegister", "<serviceId>&xxe;</serviceId>")),
            authed_error(400),
        ),
        case(
            "element in a foreign namespace",
            register_with(
                b"<mbmsRegister xmlns=\"urn:example:other\">\
                  <serviceId>urn:example:mbms:open</serviceId></mbmsRegister>",
            ),
            authed_error(400),
        ),
        case(
            "encoding other than UTF-8 declared",
            register_with(
                format!(
                    "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><mbmsRegister \
                     xmlns=\"{NAMESPACE}\"><serviceId>urn:example:mbms:open</serviceId>\
                     </mbmsRegister>"
                )
                .as_bytes(),
            ),
            authed_error(400),
        ),
        case(
            "body not UTF-8",
            register_with(&not_utf8()),
            authed_error(400),
        ),
        case(
            "empty service list",
            register_with(&xml("mbmsRegister", "")),
            authed_error(400),
        ),
        case(
            "MSK request without an msk",
            signed(PATH_MSK, Some(MIME_MSK), &xml("mbmsMskRequest", "")).input(),
            authed_error(400),
        ),
        // ---- per item, authenticated: 200 with one code per item ----
        case(
            "unknown service",
            register_with(register_body(&["urn:example:mbms:nope"]).as_bytes()),
            items(&[404]),
        ),
        case(
            "unknown service at deregister",
            signed(
                PATH_DEREGISTER,
                Some(MIME_DEREGISTER),
                RegisterRequest::deregister(&ids(&["urn:example:mbms:nope"]))
                    .to_xml()
                    .as_bytes(),
            )
            .input(),
            items(&[404]),
        ),
        case(
            "empty service id",
            register_with(&xml("mbmsRegister", "<serviceId> </serviceId>")),
            items(&[400]),
        ),
        case(
            "service not authorized for the IMPI",
            register_with(register_body(&[VIP]).as_bytes()),
            items(&[403]),
        ),
        case(
            "invalid keyDomainId, invalid mskId, mskId missing",
            signed(
                PATH_MSK,
                Some(MIME_MSK),
                &xml(
                    "mbmsMskRequest",
                    "<msk keyDomainId=\"00f1\" mskId=\"00010000\"/>\
                     <msk keyDomainId=\"00f110\" mskId=\"0001xyz0\"/>\
                     <msk keyDomainId=\"00f110\"/>",
                ),
            )
            .input(),
            items(&[400, 400, 400]),
        ),
        case(
            "unknown MSK, and one of a Key Group not registered",
            signed(
                PATH_MSK,
                Some(MIME_MSK),
                MskRequest::new(&[(KD, MskId::new(1, 7)), (KD, MskId::new(2, 0))])
                    .to_xml()
                    .as_bytes(),
            )
            .input(),
            items(&[404, 403]),
        ),
    ]
}
