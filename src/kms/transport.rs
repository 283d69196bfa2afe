//! TrK/InK protection of KMS responses (TS 33.180 Annex D, Rel-17 security extension;
//! docs/mcx.md §3).
//!
//! The KMS encrypts every key element as an `xenc:EncryptedKey` under the client's 256-bit
//! transport key (TrK), and signs the whole response as a `SignedKmsResponse` with an enveloped
//! XML Signature, HMAC-SHA256 under the integrity key (InK), or under the TrK when the client
//! has no InK; canonicalization is Exclusive XML C14N 1.0 for both the reference and SignedInfo.
//!
//! The client ([`open`]) checks in this order and hands out nothing before the last step:
//! structure (the schema's elements, [`KmsResponse::from_element`]) → signature (before anything
//! is decrypted) → decryption, and in [`Mode::Bound`] the TrK-ID and InK-ID recovered from inside
//! the encrypted content against its trusted store → the key material.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use zeroize::Zeroizing;

use super::messages::{Cursor, EncryptedKey, KeyContent, KmsMessage, KmsResponse, NewKeys};
use super::xml::{self, Element};
use super::{DS_NS, KeyId, KmsError, NAMESPACE, Secret};
use crate::crypto::Random;
use crate::crypto::keywrap::{self, GCM_IV_LEN};

/// RFC 3394 AES-256 key wrap (XML Encryption 1.0).
pub const KW_AES256: &str = "http://www.w3.org/2001/04/xmlenc#kw-aes256";
/// RFC 5649 AES-256 key wrap with padding (XML Encryption 1.1).
pub const KW_AES256_PAD: &str = "http://www.w3.org/2009/xmlenc11#kw-aes-256-pad";
/// AES-256-GCM (XML Encryption 1.1).
pub const AES256_GCM: &str = "http://www.w3.org/2009/xmlenc11#aes256-gcm";
/// Exclusive XML Canonicalization 1.0, without comments.
pub const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
/// The enveloped-signature transform.
pub const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
/// HMAC-SHA256 (RFC 4051).
pub const HMAC_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256";
/// SHA-256 digest.
pub const SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";

/// `SignedKmsResponse/@Id`, the signature's reference target.
pub const SIGNED_ID: &str = "SignedKmsResponse";

/// How key material is encrypted for a client (docs/mcx.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Interoperable XML Encryption: an XML Security library decrypts each EncryptedKey to
    /// exactly the key.
    Standard,
    /// The TrK-ID, and the InK-ID when the client has an InK, are inside the encrypted content
    /// (`bound_plaintext`, docs/mcx.md §3.2); the client compares them with its trusted store.
    Bound,
}

/// A client's transport keys: the KMS's record of them, or the client's trusted store.
#[derive(Debug, Clone)]
pub struct TransportKeys {
    /// TrK-ID.
    pub trk_id: KeyId,
    /// The 256-bit TrK.
    pub trk: Secret,
    /// InK-ID and the InK, when the client has one.
    pub ink: Option<(KeyId, Secret)>,
    /// The protection mode.
    pub mode: Mode,
}

impl TransportKeys {
    fn trk(&self) -> Result<[u8; 32], KmsError> {
        self.trk
            .expose()
            .try_into()
            .map_err(|_| KmsError::TrkLength)
    }

    /// The key the signature is made with and its identifier (Signature-ID): the InK, or the
    /// TrK when there is no InK.
    fn signature_key(&self) -> (KeyId, &[u8]) {
        match &self.ink {
            Some((id, k)) => (*id, k.expose()),
            None => (self.trk_id, self.trk.expose()),
        }
    }
}

/// \[CHOICE\] docs/mcx.md §3.2 (profile.md §6): the bound-mode plaintext of an EncryptedKey is
/// `TrK-ID (4 octets, big-endian) ‖ [InK-ID (4 octets, big-endian), when the client has an InK]
/// ‖ [the new key's own TrK-ID or InK-ID (4 octets, big-endian), for a NewTransportKey or
/// NewIntegrityKey] ‖ key`, wrapped with RFC 5649 ([`KW_AES256_PAD`]) under the TrK. This
/// function and [`unbind`] are the only places that know the layout.
fn bound_plaintext(keys: &TransportKeys, carried: Option<KeyId>, key: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut p = Zeroizing::new(Vec::with_capacity(12 + key.len()));
    p.extend_from_slice(&keys.trk_id.0.to_be_bytes());
    if let Some((ink_id, _)) = &keys.ink {
        p.extend_from_slice(&ink_id.0.to_be_bytes());
    }
    if let Some(id) = carried {
        p.extend_from_slice(&id.0.to_be_bytes());
    }
    p.extend_from_slice(key);
    p
}

/// Splits a bound plaintext and checks its identifiers against the trusted store (and, for a
/// new key, against the identifier its `CarriedKeyName` names).
fn unbind(
    keys: &TransportKeys,
    carried: Option<KeyId>,
    plain: &[u8],
    element: &'static str,
) -> Result<Secret, KmsError> {
    let (trk_id, rest) = plain
        .split_first_chunk::<4>()
        .ok_or(KmsError::BoundTrkIdMismatch { element })?;
    if u32::from_be_bytes(*trk_id) != keys.trk_id.0 {
        return Err(KmsError::BoundTrkIdMismatch { element });
    }
    let rest = match &keys.ink {
        Some((ink_id, _)) => {
            let (id, rest) = rest
                .split_first_chunk::<4>()
                .ok_or(KmsError::BoundInkIdMismatch { element })?;
            if u32::from_be_bytes(*id) != ink_id.0 {
                return Err(KmsError::BoundInkIdMismatch { element });
            }
            rest
        }
        None => rest,
    };
    let rest = match carried {
        Some(new_id) => {
            let (id, rest) = rest
                .split_first_chunk::<4>()
                .ok_or(KmsError::BoundNewKeyIdMismatch { element })?;
            if u32::from_be_bytes(*id) != new_id.0 {
                return Err(KmsError::BoundNewKeyIdMismatch { element });
            }
            rest
        }
        None => rest,
    };
    Ok(Secret::new(rest.to_vec()))
}

/// Encrypts one key for the client. \[CHOICE\] docs/mcx.md §3.1: standard mode uses RFC 3394
/// [`KW_AES256`] (the algorithm TS 33.180 deployments name) when the key is a multiple of 8
/// octets (SSK, TrK, InK), and AES-256-GCM ([`AES256_GCM`]) otherwise (PVT 65, RSK 257
/// octets), because RFC 3394 cannot wrap them and XML Security libraries do not all have
/// RFC 5649.
fn encrypt(
    keys: &TransportKeys,
    carried: Option<KeyId>,
    key: &[u8],
    rng: &mut dyn Random,
) -> Result<EncryptedKey, KmsError> {
    let trk = keys.trk()?;
    let err = |_| KmsError::Structure("key material cannot be wrapped".into());
    let (algorithm, cipher_value) = match keys.mode {
        Mode::Bound => (
            KW_AES256_PAD,
            keywrap::kwp_wrap(&trk, &bound_plaintext(keys, carried, key)).map_err(err)?,
        ),
        Mode::Standard if key.len() >= 16 && key.len().is_multiple_of(8) => {
            (KW_AES256, keywrap::kw_wrap(&trk, key).map_err(err)?)
        }
        Mode::Standard => {
            let mut iv = [0u8; GCM_IV_LEN];
            rng.fill(&mut iv).map_err(|_| KmsError::Rng)?;
            (AES256_GCM, keywrap::gcm_seal(&trk, iv, key).map_err(err)?)
        }
    };
    Ok(EncryptedKey {
        algorithm: algorithm.to_owned(),
        key_name: Some(keys.trk_id.to_string()),
        cipher_value,
        carried_key_name: carried.map(|id| id.to_string()),
    })
}

fn decrypt(
    keys: &TransportKeys,
    carried: Option<KeyId>,
    k: &EncryptedKey,
    element: &'static str,
) -> Result<Secret, KmsError> {
    let trk = keys.trk()?;
    // In bound mode the identifiers inside the content decide; the clear KeyName is only a hint.
    if keys.mode == Mode::Standard
        && let Some(name) = &k.key_name
        && KeyId::parse(name).ok() != Some(keys.trk_id)
    {
        return Err(KmsError::UnknownTransportKey {
            element,
            found: name.chars().take(16).collect(),
        });
    }
    let fail = |_| KmsError::Decrypt { element };
    match (keys.mode, k.algorithm.as_str()) {
        (Mode::Bound, KW_AES256_PAD) => {
            let plain = keywrap::kwp_unwrap(&trk, &k.cipher_value).map_err(fail)?;
            unbind(keys, carried, &plain, element)
        }
        (Mode::Standard, KW_AES256) => Ok(Secret::new(
            keywrap::kw_unwrap(&trk, &k.cipher_value)
                .map_err(fail)?
                .to_vec(),
        )),
        (Mode::Standard, AES256_GCM) => Ok(Secret::new(
            keywrap::gcm_open(&trk, &k.cipher_value)
                .map_err(fail)?
                .to_vec(),
        )),
        (_, uri) => Err(KmsError::UnsupportedAlgorithm {
            what: "key encryption",
            uri: uri.chars().take(80).collect(),
        }),
    }
}

/// What `map_keys` applies to each key: the content, the element's name, and for a new TrK/InK
/// its identifier.
type KeyFn<'a> =
    dyn FnMut(&KeyContent, &'static str, Option<KeyId>) -> Result<KeyContent, KmsError> + 'a;

/// Applies `f` to every key content of a response, naming the element.
fn map_keys(r: &mut KmsResponse, f: &mut KeyFn<'_>) -> Result<(), KmsError> {
    let mut new_keys = |n: &mut NewKeys| -> Result<(), KmsError> {
        for k in &mut n.transport {
            k.key = f(&k.key, "NewTransportKey", Some(k.id))?;
        }
        for k in &mut n.integrity {
            k.key = f(&k.key, "NewIntegrityKey", Some(k.id))?;
        }
        Ok(())
    };
    match &mut r.message {
        Some(KmsMessage::Init { new_keys: n, .. }) => new_keys(n)?,
        Some(KmsMessage::KeyProv {
            key_sets,
            new_keys: n,
        }) => {
            new_keys(n)?;
            for s in key_sets {
                s.rsk = f(&s.rsk, "UserDecryptKey", None)?;
                s.ssk = f(&s.ssk, "UserSigningKeySSK", None)?;
                s.pvt = f(&s.pvt, "UserPubTokenPVT", None)?;
            }
        }
        Some(KmsMessage::CertCache { .. }) | None => {}
    }
    Ok(())
}

fn ds(local: &str) -> Element {
    Element::new(DS_NS, "ds", local)
}

fn signed_info(digest: &[u8]) -> Element {
    ds("SignedInfo")
        .child(ds("CanonicalizationMethod").attr("Algorithm", EXC_C14N))
        .child(ds("SignatureMethod").attr("Algorithm", HMAC_SHA256))
        .child(
            ds("Reference")
                .attr("URI", &format!("#{SIGNED_ID}"))
                .child(
                    ds("Transforms")
                        .child(ds("Transform").attr("Algorithm", ENVELOPED))
                        .child(ds("Transform").attr("Algorithm", EXC_C14N)),
                )
                .child(ds("DigestMethod").attr("Algorithm", SHA256))
                .child(ds("DigestValue").text(&B64.encode(digest))),
        )
}

/// The KMS side: encrypts every key of `response` under the client's TrK (as `keys.mode`
/// says) and returns the `SignedKmsResponse` document signed under its InK (or TrK).
///
/// # Errors
/// [`KmsError::Rng`] when no IV can be drawn; [`KmsError::TrkLength`] for a TrK that is not
/// 32 octets.
pub fn protect(
    response: &KmsResponse,
    keys: &TransportKeys,
    rng: &mut dyn Random,
) -> Result<String, KmsError> {
    let mut r = response.clone();
    map_keys(&mut r, &mut |k, _, carried| match k {
        KeyContent::Plain(s) => Ok(KeyContent::Encrypted(encrypt(
            keys,
            carried,
            s.expose(),
            rng,
        )?)),
        KeyContent::Encrypted(e) => Ok(KeyContent::Encrypted(e.clone())),
    })?;
    let mut root = Element::new(NAMESPACE, "", "SignedKmsResponse")
        .attr("Id", SIGNED_ID)
        .child(r.to_element());
    let digest = keywrap::sha256(xml::canonical(&root).as_bytes());
    let info = signed_info(&digest);
    let (sig_id, sig_key) = keys.signature_key();
    let value = crate::crypto::hmac_sha256(sig_key, xml::canonical(&info).as_bytes());
    root = root.child(
        ds("Signature")
            .child(info)
            .child(ds("SignatureValue").text(&B64.encode(value)))
            .child(ds("KeyInfo").child(ds("KeyName").text(&sig_id.to_string()))),
    );
    Ok(format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>{}",
        xml::canonical(&root)
    ))
}

fn algorithm(e: &Element, what: &'static str, want: &str) -> Result<(), KmsError> {
    match e.attribute("Algorithm") {
        Some(a) if a == want && e.elements().next().is_none() => Ok(()),
        other => Err(KmsError::UnsupportedAlgorithm {
            what,
            uri: other.unwrap_or("").chars().take(80).collect(),
        }),
    }
}

fn ds_child<'a>(
    it: &mut impl Iterator<Item = &'a Element>,
    local: &str,
) -> Result<&'a Element, KmsError> {
    match it.next() {
        Some(e) if e.is(DS_NS, local) => Ok(e),
        _ => Err(KmsError::Structure(format!(
            "ds:Signature: expected ds:{local}"
        ))),
    }
}

fn b64(e: &Element) -> Result<Vec<u8>, KmsError> {
    let t: String = e
        .text_content()
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    B64.decode(t)
        .map_err(|_| KmsError::Structure(format!("ds:{}: not base64", e.local)))
}

/// Checks the enveloped signature of a `SignedKmsResponse` root.
fn verify(root: &Element, signature: &Element, keys: &TransportKeys) -> Result<(), KmsError> {
    let mut parts = signature.elements();
    let info = ds_child(&mut parts, "SignedInfo")?;
    let value = b64(ds_child(&mut parts, "SignatureValue")?)?;
    let key_name = match parts.next() {
        Some(ki) if ki.is(DS_NS, "KeyInfo") => ki
            .elements()
            .find(|k| k.is(DS_NS, "KeyName"))
            .map(Element::text_content),
        Some(_) => {
            return Err(KmsError::Structure(
                "ds:Signature: unexpected element".into(),
            ));
        }
        None => None,
    };
    if parts.next().is_some() {
        return Err(KmsError::Structure(
            "ds:Signature: unexpected element".into(),
        ));
    }
    let (sig_id, sig_key) = keys.signature_key();
    if keys.mode == Mode::Standard
        && let Some(name) = key_name
        && KeyId::parse(&name).ok() != Some(sig_id)
    {
        return Err(KmsError::UnknownSignatureKey(
            name.chars().take(16).collect(),
        ));
    }
    let mut si = info.elements();
    algorithm(
        ds_child(&mut si, "CanonicalizationMethod")?,
        "canonicalization",
        EXC_C14N,
    )?;
    algorithm(
        ds_child(&mut si, "SignatureMethod")?,
        "signature",
        HMAC_SHA256,
    )?;
    let reference = ds_child(&mut si, "Reference")?;
    if si.next().is_some() {
        return Err(KmsError::Structure(
            "ds:SignedInfo: exactly one Reference is accepted".into(),
        ));
    }
    // The reference must cover the whole document: the root's own Id, nothing else.
    let id = root.attribute("Id").unwrap_or("");
    if id.is_empty() || reference.attribute("URI") != Some(&format!("#{id}")) {
        return Err(KmsError::Structure(
            "ds:Reference does not point at the SignedKmsResponse".into(),
        ));
    }
    let mut rp = reference.elements();
    let transforms: Vec<&Element> = ds_child(&mut rp, "Transforms")?.elements().collect();
    match transforms.as_slice() {
        [a, b] if a.is(DS_NS, "Transform") && b.is(DS_NS, "Transform") => {
            algorithm(a, "transform", ENVELOPED)?;
            algorithm(b, "transform", EXC_C14N)?;
        }
        _ => {
            return Err(KmsError::UnsupportedAlgorithm {
                what: "transform",
                uri: "(other than enveloped-signature, exc-c14n)".into(),
            });
        }
    }
    algorithm(ds_child(&mut rp, "DigestMethod")?, "digest", SHA256)?;
    let digest_value = b64(ds_child(&mut rp, "DigestValue")?)?;
    // SignatureValue first: nothing of the content is relied on before the key has spoken.
    let expected = crate::crypto::hmac_sha256(sig_key, xml::canonical(info).as_bytes());
    if !crate::crypto::ct_eq(&expected, &value) {
        return Err(KmsError::BadSignature);
    }
    let content = xml::canonical_without(root, &|c| std::ptr::eq(c, signature));
    if !crate::crypto::ct_eq(&keywrap::sha256(content.as_bytes()), &digest_value) {
        return Err(KmsError::DigestMismatch);
    }
    Ok(())
}

/// The client side: checks a protected response against the trusted `keys` (structure →
/// signature → decryption and, in bound mode, the recovered TrK-ID/InK-ID) and returns it
/// with every key in clear.
///
/// An unsigned `KmsResponse` is refused ([`KmsError::Unsigned`]), but for one carrying only a
/// `KmsError`, which is returned as [`KmsError::Refused`] (a KMS that does not know the
/// client's TrK cannot sign for it).
///
/// # Errors
/// The first check that fails, as a [`KmsError`].
pub fn open(input: &[u8], keys: &TransportKeys) -> Result<KmsResponse, KmsError> {
    let root = xml::parse(input)?;
    if root.is(NAMESPACE, "KmsResponse") {
        let r = KmsResponse::from_element(&root)?;
        return match (r.error, r.message) {
            (Some(e), None) => Err(refused(e)),
            _ => Err(KmsError::Unsigned),
        };
    }
    if !root.is(NAMESPACE, "SignedKmsResponse") {
        return Err(KmsError::Structure(format!(
            "unexpected document element {}",
            root.local.chars().take(40).collect::<String>()
        )));
    }
    // 1. Structure.
    let mut c = Cursor::new(&root)?;
    let inner = c.one("KmsResponse")?;
    let mut response = KmsResponse::from_element(inner)?;
    let rest: Vec<&Element> = root.elements().skip(1).collect();
    let signature = match rest.as_slice() {
        [] => return Err(KmsError::Unsigned),
        [s] if s.is(DS_NS, "Signature") => *s,
        _ => {
            return Err(KmsError::Structure(
                "SignedKmsResponse: expected KmsResponse and one ds:Signature".into(),
            ));
        }
    };
    // 2. Signature, before anything is decrypted.
    verify(&root, signature, keys)?;
    if let Some(e) = response.error.take()
        && response.message.is_none()
    {
        return Err(refused(e));
    }
    // 3. Decryption and, in bound mode, the recovered identifiers.
    map_keys(&mut response, &mut |k, element, carried| match k {
        KeyContent::Encrypted(e) => Ok(KeyContent::Plain(decrypt(keys, carried, e, element)?)),
        KeyContent::Plain(_) => Err(KmsError::Structure(format!(
            "{element}: key material in clear in a protected response"
        ))),
    })?;
    Ok(response)
}

fn refused(e: super::messages::ErrorInfo) -> KmsError {
    KmsError::Refused {
        code: e.code,
        message: e.message.chars().take(200).collect(),
    }
}
