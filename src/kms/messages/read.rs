//! Reading the KMS documents: the structure of the schema checked element by element (order,
//! cardinality, types), with a [`KmsError::Structure`] naming the element for what it does not
//! allow.

use super::super::xml::{self, Element};
use super::super::{DS_NS, EXT_NS, KeyId, KmsError, NAMESPACE, Secret, XENC_NS, XSI_NS};
use super::{
    EncryptedKey, ErrorInfo, KEY_SET_VERSION, KeyContent, KmsCertificate, KmsKeySet, KmsMessage,
    KmsRequest, KmsResponse, NewKey, NewKeys, RESPONSE_VERSION, Role,
};

impl KmsRequest {
    /// Reads a request document.
    ///
    /// # Errors
    /// [`KmsError`] for XML or structure errors.
    pub fn parse(input: &[u8]) -> Result<Self, KmsError> {
        let root = xml::parse(input)?;
        if !root.is(NAMESPACE, "KmsRequest") {
            return Err(unexpected("document", &root));
        }
        let mut c = Cursor::new(&root)?;
        let req = Self {
            id: root.attribute("Id").map(str::to_owned),
            user_uri: c.text("UserUri")?,
            kms_uri: c.text("KmsUri")?,
            time: c.text("Time")?,
            client_id: c.opt_text("ClientId")?,
            device_id: c.opt_text("DeviceId")?,
            client_req_url: c.text("ClientReqUrl")?,
            trk_id: None,
            ink_id: None,
        };
        let mut req = req;
        c.skip_local("KrrList");
        c.skip_local("ClientError");
        for e in c.rest() {
            if e.is(EXT_NS, "TrkId") {
                req.trk_id = Some(KeyId::parse(&e.text_content())?);
            } else if e.is(EXT_NS, "InkId") {
                req.ink_id = Some(KeyId::parse(&e.text_content())?);
            } else if e.ns == NAMESPACE {
                return Err(unexpected("KmsRequest", e));
            }
        }
        Ok(req)
    }
}

/// An element name cut for an error message (names come from the peer).
fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

fn unexpected(parent: &str, e: &Element) -> KmsError {
    KmsError::Structure(format!(
        "unexpected element {} in {}",
        clip(&e.local),
        clip(parent)
    ))
}

fn missing(parent: &str, local: &str) -> KmsError {
    KmsError::Structure(format!("{}: missing {local}", clip(parent)))
}

/// Walks the child elements of one element in schema order.
pub(in crate::kms) struct Cursor<'a> {
    parent: &'a str,
    items: Vec<&'a Element>,
    at: usize,
}

impl<'a> Cursor<'a> {
    pub(in crate::kms) fn new(e: &'a Element) -> Result<Self, KmsError> {
        if e.has_text() {
            return Err(KmsError::Structure(format!(
                "{}: text where elements belong",
                e.local
            )));
        }
        Ok(Self {
            parent: &e.local,
            items: e.elements().collect(),
            at: 0,
        })
    }

    fn peek(&self, local: &str) -> Option<&'a Element> {
        self.items
            .get(self.at)
            .copied()
            .filter(|e| e.is(NAMESPACE, local))
    }

    pub(in crate::kms) fn opt(&mut self, local: &str) -> Option<&'a Element> {
        let e = self.peek(local)?;
        self.at += 1;
        Some(e)
    }

    pub(in crate::kms) fn one(&mut self, local: &str) -> Result<&'a Element, KmsError> {
        self.opt(local).ok_or_else(|| missing(self.parent, local))
    }

    fn text(&mut self, local: &str) -> Result<String, KmsError> {
        let e = self.one(local)?;
        leaf_text(e)
    }

    fn opt_text(&mut self, local: &str) -> Result<Option<String>, KmsError> {
        self.opt(local).map(leaf_text).transpose()
    }

    fn skip_local(&mut self, local: &str) {
        let _ = self.opt(local);
    }

    /// The remaining elements (the schema's `any ##other` tail).
    fn rest(&mut self) -> impl Iterator<Item = &'a Element> {
        let r = self.items.get(self.at..).unwrap_or(&[]).to_vec();
        self.at = self.items.len();
        r.into_iter()
    }

    /// Refuses anything left in our namespace (foreign extensions are allowed by `any ##other`).
    fn finish(mut self) -> Result<(), KmsError> {
        let parent = self.parent;
        for e in self.rest() {
            if e.ns == NAMESPACE || e.ns.is_empty() {
                return Err(unexpected(parent, e));
            }
        }
        Ok(())
    }
}

fn leaf_text(e: &Element) -> Result<String, KmsError> {
    if e.elements().next().is_some() {
        return Err(KmsError::Structure(format!(
            "{}: element content where text belongs",
            e.local
        )));
    }
    Ok(e.text_content())
}

fn integer(e: &Element) -> Result<u64, KmsError> {
    let t = leaf_text(e)?;
    t.parse::<u64>()
        .map_err(|_| KmsError::Structure(format!("{}: not a non-negative integer", e.local)))
}

fn boolean(e: &Element) -> Result<bool, KmsError> {
    match leaf_text(e)?.as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(KmsError::Structure(format!("{}: not a boolean", e.local))),
    }
}

fn hex_binary(e: &Element) -> Result<Vec<u8>, KmsError> {
    hex::decode(leaf_text(e)?)
        .map_err(|_| KmsError::Structure(format!("{}: not hexBinary", e.local)))
}

fn certificate(e: &Element) -> Result<KmsCertificate, KmsError> {
    let mut c = Cursor::new(e)?;
    let role = match e.attribute("Role") {
        None => None,
        Some("Root") => Some(Role::Root),
        Some("External") => Some(Role::External),
        Some(_) => {
            return Err(KmsError::Structure(
                "KmsCertificate: Role not Root or External".into(),
            ));
        }
    };
    let cert = KmsCertificate {
        id: e.attribute("Id").map(str::to_owned),
        version: e.attribute("Version").map(str::to_owned),
        role,
        cert_uri: c.opt_text("CertUri")?,
        kms_uri: c.text("KmsUri")?,
        issuer: c.opt_text("Issuer")?,
        valid_from: c.opt_text("ValidFrom")?,
        valid_to: c.opt_text("ValidTo")?,
        revoked: c.opt("Revoked").map(boolean).transpose()?,
        user_id_format: c.text("UserIdFormat")?,
        user_key_period: integer(c.one("UserKeyPeriod")?)?,
        user_key_offset: integer(c.one("UserKeyOffset")?)?,
        pub_enc_key: hex_binary(c.one("PubEncKey")?)?,
        pub_auth_key: hex_binary(c.one("PubAuthKey")?)?,
        parameter_set: c
            .opt("ParameterSet")
            .map(|p| {
                integer(p)
                    .and_then(|v| u32::try_from(v).map_err(|_| missing("ParameterSet", "value")))
            })
            .transpose()?,
        domains: match c.opt("KmsDomainList") {
            None => Vec::new(),
            Some(list) => {
                let mut d = Cursor::new(list)?;
                let mut v = Vec::new();
                while let Some(x) = d.opt("KmsDomain") {
                    v.push(leaf_text(x)?);
                }
                d.finish()?;
                v
            }
        },
    };
    c.finish()?;
    Ok(cert)
}

/// Reads an `xenc:EncryptedKey`.
fn encrypted_key(e: &Element) -> Result<EncryptedKey, KmsError> {
    use base64::Engine as _;
    if !e.is(XENC_NS, "EncryptedKey") || e.has_text() {
        return Err(KmsError::Structure(format!(
            "{}: not an xenc:EncryptedKey",
            e.local
        )));
    }
    let mut algorithm = None;
    let mut key_name = None;
    let mut cipher_value = None;
    let mut carried_key_name = None;
    for c in e.elements() {
        if c.is(XENC_NS, "EncryptionMethod") && algorithm.is_none() && cipher_value.is_none() {
            algorithm = c.attribute("Algorithm").map(str::to_owned);
        } else if c.is(DS_NS, "KeyInfo") && key_name.is_none() && cipher_value.is_none() {
            key_name = c
                .elements()
                .find(|k| k.is(DS_NS, "KeyName"))
                .map(Element::text_content);
        } else if c.is(XENC_NS, "CipherData") && cipher_value.is_none() {
            let v = c
                .elements()
                .find(|v| v.is(XENC_NS, "CipherValue"))
                .ok_or_else(|| missing("CipherData", "CipherValue"))?;
            let text: String = v
                .text_content()
                .chars()
                .filter(|c| !c.is_ascii_whitespace())
                .collect();
            cipher_value = Some(
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .map_err(|_| KmsError::Structure("CipherValue: not base64".into()))?,
            );
        } else if c.is(XENC_NS, "CarriedKeyName")
            && cipher_value.is_some()
            && carried_key_name.is_none()
        {
            carried_key_name = Some(c.text_content());
        } else if c.ns == XENC_NS || c.ns == DS_NS {
            return Err(unexpected("EncryptedKey", c));
        }
    }
    Ok(EncryptedKey {
        algorithm: algorithm
            .ok_or_else(|| missing("EncryptedKey", "EncryptionMethod/@Algorithm"))?,
        key_name,
        cipher_value: cipher_value.ok_or_else(|| missing("EncryptedKey", "CipherData"))?,
        carried_key_name,
    })
}

fn encrypted_content(e: &Element) -> Result<KeyContent, KmsError> {
    let mut c = Cursor::new(e)?;
    let inner = c.rest().collect::<Vec<_>>();
    match inner.as_slice() {
        [k] => Ok(KeyContent::Encrypted(encrypted_key(k)?)),
        _ => Err(KmsError::Structure(format!(
            "{}: expected one xenc:EncryptedKey",
            e.local
        ))),
    }
}

/// A key element: `xsi:type` says which content it has; without it (as in some deployed KMSs,
/// though the schema's type is abstract) text is read as the key in hex and one child as an
/// EncryptedKey.
fn key_content(e: &Element) -> Result<KeyContent, KmsError> {
    let ty = e
        .attribute_ns(XSI_NS, "type")
        .map(|t| t.rsplit(':').next().unwrap_or(t));
    let encrypted = match ty {
        Some("KeyContentType") => false,
        Some("EncKeyContentType") => true,
        Some(_) => {
            return Err(KmsError::Structure(format!(
                "{}: unknown xsi:type",
                e.local
            )));
        }
        None => e.elements().next().is_some(),
    };
    if encrypted {
        encrypted_content(e)
    } else {
        Ok(KeyContent::Plain(Secret::new(hex_binary(e)?)))
    }
}

fn key_set(e: &Element) -> Result<KmsKeySet, KmsError> {
    if e.attribute("Version").is_some_and(|v| v != KEY_SET_VERSION) {
        return Err(KmsError::Structure(
            "KmsKeySet: Version is not 1.1.0".into(),
        ));
    }
    let mut c = Cursor::new(e)?;
    let k = KmsKeySet {
        kms_uri: c.text("KmsUri")?,
        cert_uri: c.opt_text("CertUri")?,
        issuer: c.opt_text("Issuer")?,
        user_uri: c.text("UserUri")?,
        user_id: hex_binary(c.one("UserID")?)?,
        valid_from: c.opt_text("ValidFrom")?,
        valid_to: c.opt_text("ValidTo")?,
        key_period_no: integer(c.one("KeyPeriodNo")?)?,
        revoked: c.opt("Revoked").map(boolean).transpose()?,
        rsk: key_content(c.one("UserDecryptKey")?)?,
        ssk: key_content(c.one("UserSigningKeySSK")?)?,
        pvt: key_content(c.one("UserPubTokenPVT")?)?,
    };
    // KmsKeySetType has no `any` tail.
    if let Some(extra) = c.rest().next() {
        return Err(unexpected("KmsKeySet", extra));
    }
    Ok(k)
}

/// A `NewTransportKey`/`NewIntegrityKey`: one EncryptedKey whose `CarriedKeyName` is the new
/// key's identifier (8 hex digits), required (docs/mcx.md §3.4 \[CHOICE\]).
fn new_key(e: &Element) -> Result<NewKey, KmsError> {
    let key = encrypted_content(e)?;
    let KeyContent::Encrypted(k) = &key else {
        return Err(missing(&e.local, "xenc:EncryptedKey"));
    };
    let id = k
        .carried_key_name
        .as_deref()
        .ok_or_else(|| missing(&e.local, "xenc:CarriedKeyName"))
        .and_then(|n| {
            KeyId::parse(n.trim()).map_err(|_| {
                KmsError::Structure(format!("{}: CarriedKeyName is not 8 hex digits", e.local))
            })
        })?;
    Ok(NewKey { id, key })
}

fn new_keys(c: &mut Cursor<'_>) -> Result<NewKeys, KmsError> {
    let mut n = NewKeys::default();
    while let Some(e) = c.opt("NewTransportKey") {
        n.transport.push(new_key(e)?);
    }
    while let Some(e) = c.opt("NewIntegrityKey") {
        n.integrity.push(new_key(e)?);
    }
    Ok(n)
}

fn message(e: &Element) -> Result<KmsMessage, KmsError> {
    let mut c = Cursor::new(e)?;
    let inner: Vec<&Element> = c.rest().collect();
    let [m] = inner.as_slice() else {
        return Err(KmsError::Structure(
            "KmsMessage: expected exactly one message".into(),
        ));
    };
    let mut c = Cursor::new(m)?;
    let msg = if m.is(NAMESPACE, "KmsInit") {
        let cert = match c.opt("SignedKmsCertificate") {
            Some(s) => {
                let mut sc = Cursor::new(s)?;
                let cert = certificate(sc.one("KmsCertificate")?)?;
                for x in sc.rest() {
                    if !x.is(DS_NS, "Signature") {
                        return Err(unexpected("SignedKmsCertificate", x));
                    }
                }
                cert
            }
            None => certificate(c.one("KmsCertificate")?)?,
        };
        KmsMessage::Init {
            certificate: Box::new(cert),
            new_keys: new_keys(&mut c)?,
        }
    } else if m.is(NAMESPACE, "KmsKeyProv") {
        let mut key_sets = Vec::new();
        while let Some(k) = c.opt("KmsKeySet") {
            key_sets.push(key_set(k)?);
        }
        KmsMessage::KeyProv {
            key_sets,
            new_keys: new_keys(&mut c)?,
        }
    } else if m.is(NAMESPACE, "KmsCertCache") {
        let cache_num = m
            .attribute("CacheNum")
            .map(|n| {
                n.parse::<u64>()
                    .map_err(|_| KmsError::Structure("CacheNum: not an integer".into()))
            })
            .transpose()?;
        let mut certificates = Vec::new();
        while let Some(s) = c.opt("SignedKmsCertificate") {
            certificates.push(certificate(Cursor::new(s)?.one("KmsCertificate")?)?);
        }
        while let Some(k) = c.opt("KmsCertificate") {
            certificates.push(certificate(k)?);
        }
        KmsMessage::CertCache {
            cache_num,
            certificates,
        }
    } else {
        return Err(unexpected("KmsMessage", m));
    };
    c.finish()?;
    Ok(msg)
}

impl KmsResponse {
    /// Reads a `KmsResponse` element.
    ///
    /// # Errors
    /// [`KmsError::Structure`] naming what the schema does not allow.
    pub fn from_element(e: &Element) -> Result<Self, KmsError> {
        if !e.is(NAMESPACE, "KmsResponse") {
            return Err(unexpected("document", e));
        }
        if e.attribute("Version")
            .is_some_and(|v| v != RESPONSE_VERSION)
        {
            return Err(KmsError::Structure(
                "KmsResponse: Version is not 1.0.0".into(),
            ));
        }
        let mut c = Cursor::new(e)?;
        let r = Self {
            id: e.attribute("Id").map(str::to_owned),
            user_uri: c.text("UserUri")?,
            kms_uri: c.text("KmsUri")?,
            time: c.text("Time")?,
            kms_id: c.opt_text("KmsId")?,
            client_req_url: c.text("ClientReqUrl")?,
            message: c.opt("KmsMessage").map(message).transpose()?,
            error: c
                .opt("KmsError")
                .map(|x| {
                    let mut ec = Cursor::new(x)?;
                    let code = leaf_text(ec.one("ErrorCode")?)?
                        .parse::<i64>()
                        .map_err(|_| KmsError::Structure("ErrorCode: not an integer".into()))?;
                    let message = leaf_text(ec.one("ErrorMsg")?)?;
                    ec.finish()?;
                    Ok::<_, KmsError>(ErrorInfo { code, message })
                })
                .transpose()?,
        };
        c.finish()?;
        Ok(r)
    }

    /// Reads an unprotected response document: a `KmsResponse`, or a `SignedKmsResponse`
    /// whose signature is **not** checked (use [`crate::kms::transport`] for protected responses).
    ///
    /// # Errors
    /// [`KmsError`] for XML or structure errors.
    pub fn parse(input: &[u8]) -> Result<Self, KmsError> {
        let root = xml::parse(input)?;
        if root.is(NAMESPACE, "SignedKmsResponse") {
            let mut c = Cursor::new(&root)?;
            let r = Self::from_element(c.one("KmsResponse")?)?;
            return Ok(r);
        }
        Self::from_element(&root)
    }
}
