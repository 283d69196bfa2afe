//! The KMS documents against programs we did not write (docs/mcx.md §5): Python `xmlschema`
//! validates every response we build against the 3GPP schema; `python3-xmlsec` decrypts our
//! standard-mode EncryptedKeys to exactly the key and signs a response our client accepts;
//! `xmlsec1 --verify` accepts our signatures and rejects a tampered copy.
//!
//! Each test skips when its peer is missing, and fails then under `MBMS_REQUIRE_ORACLES=1`.

mod kms_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mbms_keys::crypto::Seeded;
use mbms_keys::kms::transport::{self, Mode, TransportKeys};
use mbms_lab::TempDir;

use kms_support::oracles::{DECRYPT, VALIDATE, ok, run, text};
use kms_support::*;

/// Every document we build: the unprotected responses, the request, and the protected
/// responses of both modes, with and without an InK.
fn built_documents(dir: &Path) -> Vec<PathBuf> {
    let mut docs = Vec::new();
    let mut put = |name: &str, body: String| {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        docs.push(p);
    };
    let responses = [
        ("init", init_response()),
        ("keyprov", keyprov_response()),
        ("certcache", certcache_response()),
        ("error", error_response()),
    ];
    for (name, r) in &responses {
        put(&format!("{name}.xml"), r.to_xml());
        for (mode, m) in [(Mode::Standard, "standard"), (Mode::Bound, "bound")] {
            for ink in [false, true] {
                let doc = transport::protect(r, &keys(mode, ink), &mut Seeded::new(7)).unwrap();
                put(&format!("{name}-{m}-ink{ink}.xml"), doc);
            }
        }
    }
    docs
}

#[test]
fn every_built_response_validates_against_the_3gpp_schema() {
    let Some(py) = python() else { return };
    let dir = TempDir::new("kms-schema");
    let docs = built_documents(dir.path());
    let out = run(Command::new(py)
        .arg("-c")
        .arg(VALIDATE)
        .arg(schema_path())
        .args(&docs));
    assert!(ok(&out), "xmlschema refused: {}", text(&out));
    assert!(
        text(&out).contains(&format!("valid {} invalid 0", docs.len())),
        "{}",
        text(&out)
    );
}

#[test]
fn the_schema_oracle_refuses_a_key_without_its_type() {
    // The oracle must be able to fail: the reference KeyProv lacks the xsi:type the abstract
    // key content type requires.
    let Some(py) = python() else { return };
    let out = run(Command::new(py)
        .arg("-c")
        .arg(VALIDATE)
        .arg(schema_path())
        .arg(vector("responses/streamwide_test_key_prov_response.xml")));
    assert!(!ok(&out), "{}", text(&out));
}

#[test]
fn python_xmlsec_decrypts_standard_mode_keys_to_exactly_the_keys() {
    let Some(py) = python() else { return };
    let dir = TempDir::new("kms-decrypt");
    for ink in [false, true] {
        let k = keys(Mode::Standard, ink);
        let mut lines = Vec::new();
        for (name, r) in [("init", init_response()), ("keyprov", keyprov_response())] {
            let doc = transport::protect(&r, &k, &mut Seeded::new(1)).unwrap();
            let p = dir.path().join(format!("{name}-{ink}.xml"));
            std::fs::write(&p, doc).unwrap();
            let out = run(Command::new(&py)
                .arg("-c")
                .arg(DECRYPT)
                .arg(&p)
                .arg(hex::encode(k.trk.expose())));
            assert!(ok(&out), "xmlsec refused: {}", text(&out));
            lines.extend(
                String::from_utf8(out.stdout)
                    .unwrap()
                    .lines()
                    .map(str::to_owned),
            );
        }
        let second_ssk = octets(32, 7);
        let expected = vec![
            format!("NewTransportKey {}", hex::encode(new_trk())),
            format!("UserDecryptKey {}", hex::encode(rsk())),
            format!("UserSigningKeySSK {}", hex::encode(ssk())),
            format!("UserPubTokenPVT {}", hex::encode(pvt())),
            format!("UserDecryptKey {}", hex::encode(rsk())),
            format!("UserSigningKeySSK {}", hex::encode(second_ssk)),
            format!("UserPubTokenPVT {}", hex::encode(pvt())),
        ];
        assert_eq!(lines, expected);
    }
}

#[test]
fn python_xmlsec_cannot_decrypt_bound_mode_keys_to_the_bare_key() {
    // Bound mode puts the identifiers inside; a standard library sees RFC 5649, which
    // xmlsec 1.2 does not have, or (where it has it) the key with the IDs in front: never the
    // bare key.
    let Some(py) = python() else { return };
    let dir = TempDir::new("kms-decrypt-bound");
    let k = keys(Mode::Bound, true);
    let doc = transport::protect(&keyprov_response(), &k, &mut Seeded::new(1)).unwrap();
    let p = dir.path().join("bound.xml");
    std::fs::write(&p, doc).unwrap();
    let out = run(Command::new(py)
        .arg("-c")
        .arg(DECRYPT)
        .arg(&p)
        .arg(hex::encode(k.trk.expose())));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for bare in [rsk(), ssk(), pvt()] {
        assert!(
            !stdout
                .lines()
                .any(|l| l.ends_with(&format!(" {}", hex::encode(&bare)))),
            "a bound key decrypted to the bare key: {stdout}"
        );
    }
    // What a library with RFC 5649 recovers starts with TrK-ID ‖ InK-ID.
    for line in stdout.lines() {
        assert!(line.contains(" 1122334455667788"), "{line}");
    }
}

fn xmlsec1_verify(xmlsec1: &Path, dir: &Path, key: &[u8], doc: &str, name: &str) -> Output {
    let key_file = dir.join(format!("{name}.key"));
    std::fs::write(&key_file, key).unwrap();
    let doc_file = dir.join(format!("{name}.xml"));
    std::fs::write(&doc_file, doc).unwrap();
    run(Command::new(xmlsec1)
        .arg("--verify")
        .arg("--hmackey")
        .arg(&key_file)
        .arg("--id-attr:Id")
        .arg("urn:3gpp:ns:mcsecKMSInterface:1.0:SignedKmsResponse")
        .arg(&doc_file))
}

#[test]
fn xmlsec1_verifies_our_signatures_and_rejects_a_tampered_copy() {
    let Some(xmlsec1) = mbms_lab::oracle::oracle("xmlsec1", &[], "apt-get install xmlsec1") else {
        return;
    };
    let dir = TempDir::new("kms-xmlsec1");
    let mut checked = 0;
    for (name, r) in [
        ("init", init_response()),
        ("keyprov", keyprov_response()),
        ("certcache", certcache_response()),
        ("error", error_response()),
    ] {
        for mode in [Mode::Standard, Mode::Bound] {
            for ink in [false, true] {
                let k = keys(mode, ink);
                let sig_key = match &k.ink {
                    Some((_, ink)) => ink.expose().to_vec(),
                    None => k.trk.expose().to_vec(),
                };
                let doc = transport::protect(&r, &k, &mut Seeded::new(3)).unwrap();
                let tag = format!("{name}-{mode:?}-{ink}");
                let out = xmlsec1_verify(&xmlsec1, dir.path(), &sig_key, &doc, &tag);
                assert!(ok(&out), "{tag}: xmlsec1 refused: {}", text(&out));
                let tampered = doc.replacen("sip:alice@example.org", "sip:mallory@example.org", 1);
                assert_ne!(tampered, doc);
                let out = xmlsec1_verify(
                    &xmlsec1,
                    dir.path(),
                    &sig_key,
                    &tampered,
                    &format!("{tag}-t"),
                );
                assert!(!ok(&out), "{tag}: xmlsec1 accepted a tampered copy");
                let out =
                    xmlsec1_verify(&xmlsec1, dir.path(), &[0x55; 32], &doc, &format!("{tag}-k"));
                assert!(!ok(&out), "{tag}: xmlsec1 accepted another key");
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 16);
}

const SIGN: &str = r##"
import sys, xmlsec
from lxml import etree
doc = etree.parse(sys.argv[1], etree.XMLParser(remove_blank_text=False))
root = doc.getroot()
for s in root.findall("{http://www.w3.org/2000/09/xmldsig#}Signature"):
    root.remove(s)
# Re-serialize with indentation and another prefix layout: our canonicalizer must cope.
etree.indent(root, space="  ")
text = etree.tostring(root).decode()
if len(sys.argv) > 4:
    # Comments, a foreign extension with escapes, xml:lang, CDATA and a CR: what canonical form
    # must normalize the same way on both sides.
    text = text.replace("</KmsResponse>", sys.argv[4] + "</KmsResponse>", 1)
root = etree.fromstring(text.encode(), etree.XMLParser(strip_cdata=False))
sig = xmlsec.template.create(root, xmlsec.constants.TransformExclC14N, xmlsec.constants.TransformHmacSha256, ns="dsig")
root.append(sig)
ref = xmlsec.template.add_reference(sig, xmlsec.constants.TransformSha256, uri="#" + root.get("Id"))
xmlsec.template.add_transform(ref, xmlsec.constants.TransformEnveloped)
xmlsec.template.add_transform(ref, xmlsec.constants.TransformExclC14N)
ki = xmlsec.template.ensure_key_info(sig)
xmlsec.template.add_key_name(ki, sys.argv[3])
xmlsec.tree.add_ids(root, ["Id"])
ctx = xmlsec.SignatureContext()
ctx.key = xmlsec.Key.from_binary_data(xmlsec.constants.KeyDataHmac, bytes.fromhex(sys.argv[2]))
ctx.sign(sig)
sys.stdout.write(etree.tostring(root, xml_declaration=True, encoding="UTF-8").decode())
"##;

#[test]
fn our_client_accepts_a_response_python_xmlsec_signed() {
    let Some(py) = python() else { return };
    let dir = TempDir::new("kms-foreign-sig");
    for mode in [Mode::Standard, Mode::Bound] {
        let k: TransportKeys = keys(mode, true);
        let (ink_id, ink) = k.ink.clone().unwrap();
        let ours = transport::protect(&keyprov_response(), &k, &mut Seeded::new(5)).unwrap();
        let p = dir.path().join(format!("{mode:?}.xml"));
        std::fs::write(&p, ours).unwrap();
        let out = run(Command::new(&py)
            .arg("-c")
            .arg(SIGN)
            .arg(&p)
            .arg(hex::encode(ink.expose()))
            .arg(ink_id.to_string()));
        assert!(ok(&out), "xmlsec could not sign: {}", text(&out));
        let theirs = String::from_utf8(out.stdout).unwrap();
        assert!(theirs.contains("\n  "), "re-indented: {theirs}");
        let opened = transport::open(theirs.as_bytes(), &k).expect("foreign signature accepted");
        assert_eq!(opened, keyprov_response());
        // And the same document altered after signing is refused.
        let altered = theirs.replacen("<KeyPeriodNo>1516<", "<KeyPeriodNo>1517<", 1);
        assert_ne!(altered, theirs);
        assert!(transport::open(altered.as_bytes(), &k).is_err());
    }
}

#[test]
fn our_canonical_form_matches_xmlsec_on_comments_escapes_and_cdata() {
    let Some(py) = python() else { return };
    let dir = TempDir::new("kms-c14n");
    let extra = "<!-- a comment --><x:Note xmlns:x=\"urn:example:x\" xmlns:y=\"urn:example:y\" b=\"2\" \
                 y:z=\"3\" a=\"1 &lt; 2 &amp; &quot;q&quot;&#9;&#10;\" xml:lang=\"en\">t &amp; &lt;b&gt; \
                 <![CDATA[raw <c> & ]]>&#13;\u{e9}<x:Empty/></x:Note><!-- after -->";
    for ink in [false, true] {
        let k = keys(Mode::Standard, ink);
        let (id, key) = match &k.ink {
            Some((id, key)) => (*id, key.clone()),
            None => (k.trk_id, k.trk.clone()),
        };
        let ours = transport::protect(&keyprov_response(), &k, &mut Seeded::new(9)).unwrap();
        let p = dir.path().join(format!("c14n-{ink}.xml"));
        std::fs::write(&p, ours).unwrap();
        let out = run(Command::new(&py)
            .arg("-c")
            .arg(SIGN)
            .arg(&p)
            .arg(hex::encode(key.expose()))
            .arg(id.to_string())
            .arg(extra));
        assert!(ok(&out), "xmlsec could not sign: {}", text(&out));
        let theirs = String::from_utf8(out.stdout).unwrap();
        assert!(
            theirs.contains("<![CDATA[") && theirs.contains("<!-- a comment -->"),
            "{theirs}"
        );
        let opened = transport::open(theirs.as_bytes(), &k).expect("same canonical form");
        assert_eq!(opened, keyprov_response());
        // Our reader refuses a processing instruction inside the document (a KMS document has
        // none), before any signature work.
        let with_pi = theirs.replacen("<x:Empty/>", "<x:Empty/><?pi data?>", 1);
        assert!(matches!(
            transport::open(with_pi.as_bytes(), &k),
            Err(mbms_keys::kms::KmsError::Xml { .. })
        ));
    }
}
