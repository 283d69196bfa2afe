//! The KMS documents of TS 33.180 Annex D (namespace [`NAMESPACE`]): `KmsRequest` and
//! `KmsResponse` with KmsInit (KmsCertificate), KmsKeyProv (KmsKeySet), KmsCertCache and
//! KmsError, as the schema in `docs/mcx/schema/kms-schema.xsd` has them.
//!
//! Building goes through [`Element`] trees written in canonical form ([`xml::canonical`]);
//! reading checks the structure element by element (order, cardinality, types) and refuses what
//! the schema does not allow, with a [`KmsError::Structure`] naming the element.

use super::xml::{self, Element};
use super::{DS_NS, EXT_NS, KeyId, KmsError, NAMESPACE, Secret, XENC_NS, XSI_NS};

/// `KmsResponse/@Version` (fixed in the schema).
pub const RESPONSE_VERSION: &str = "1.0.0";
/// `KmsRequest/@Version` (fixed in the schema).
pub const REQUEST_VERSION: &str = "1.1.0";
/// `KmsKeySet/@Version` (fixed in the schema).
pub const KEY_SET_VERSION: &str = "1.1.0";

/// A client's request (TS 33.180 D.2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsRequest {
    /// `@Id`.
    pub id: Option<String>,
    /// The MC service identity the keys are for.
    pub user_uri: String,
    /// The KMS.
    pub kms_uri: String,
    /// `xsd:dateTime`.
    pub time: String,
    /// Optional client identifier.
    pub client_id: Option<String>,
    /// Optional device identifier.
    pub device_id: Option<String>,
    /// The URL requested.
    pub client_req_url: String,
    /// The TrK-ID in the client's trusted store (Rel-17), as the extension element
    /// `ext:TrkId` ([`EXT_NS`], docs/mcx.md §2 [CHOICE]).
    pub trk_id: Option<KeyId>,
    /// The InK-ID (extension element `ext:InkId`).
    pub ink_id: Option<KeyId>,
}

/// `KmsError` (ErrorType).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorInfo {
    /// ErrorCode.
    pub code: i64,
    /// ErrorMsg.
    pub message: String,
}

/// `KmsCertificate/@Role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `Root`.
    Root,
    /// `External`.
    External,
}

/// A KMS certificate (TS 33.180 D.3.2.2): the public keys of a KMS.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KmsCertificate {
    /// `@Id`.
    pub id: Option<String>,
    /// `@Version`.
    pub version: Option<String>,
    /// `@Role`.
    pub role: Option<Role>,
    /// `CertUri`.
    pub cert_uri: Option<String>,
    /// `KmsUri`.
    pub kms_uri: String,
    /// `Issuer`.
    pub issuer: Option<String>,
    /// `ValidFrom`.
    pub valid_from: Option<String>,
    /// `ValidTo`.
    pub valid_to: Option<String>,
    /// `Revoked`.
    pub revoked: Option<bool>,
    /// `UserIdFormat` ("2": UID format 2).
    pub user_id_format: String,
    /// `UserKeyPeriod`, seconds.
    pub user_key_period: u64,
    /// `UserKeyOffset`, seconds.
    pub user_key_offset: u64,
    /// `PubEncKey`: the SAKKE public key Z (`04‖x‖y`).
    pub pub_enc_key: Vec<u8>,
    /// `PubAuthKey`: the ECCSI KPAK (`04‖x‖y`).
    pub pub_auth_key: Vec<u8>,
    /// `ParameterSet`.
    pub parameter_set: Option<u32>,
    /// `KmsDomainList/KmsDomain`.
    pub domains: Vec<String>,
}

/// An `xenc:EncryptedKey` as carried in a key element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedKey {
    /// `EncryptionMethod/@Algorithm`.
    pub algorithm: String,
    /// `ds:KeyInfo/ds:KeyName`: the TrK-ID it is encrypted under.
    pub key_name: Option<String>,
    /// `CipherData/CipherValue`, decoded from base64.
    pub cipher_value: Vec<u8>,
}

/// The content of a key element: the key itself (`KeyContentType`) or encrypted
/// (`EncKeyContentType`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyContent {
    /// The key octets (hexBinary on the wire).
    Plain(Secret),
    /// An EncryptedKey under the TrK.
    Encrypted(EncryptedKey),
}

/// One user's key material for one key period (`KmsKeySet`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsKeySet {
    /// `KmsUri`.
    pub kms_uri: String,
    /// `CertUri`.
    pub cert_uri: Option<String>,
    /// `Issuer`.
    pub issuer: Option<String>,
    /// `UserUri`.
    pub user_uri: String,
    /// `UserID`: the UID (32 octets for format 2), hex on the wire.
    pub user_id: Vec<u8>,
    /// `ValidFrom`.
    pub valid_from: Option<String>,
    /// `ValidTo`.
    pub valid_to: Option<String>,
    /// `KeyPeriodNo`.
    pub key_period_no: u64,
    /// `Revoked`.
    pub revoked: Option<bool>,
    /// `UserDecryptKey`: the SAKKE RSK.
    pub rsk: KeyContent,
    /// `UserSigningKeySSK`: the ECCSI SSK.
    pub ssk: KeyContent,
    /// `UserPubTokenPVT`: the ECCSI PVT.
    pub pvt: KeyContent,
}

/// New transport and integrity keys a KmsInit or KmsKeyProv may deliver
/// (`KmsInitTkIkType`, `KmsKeyProvTkIkType`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewKeys {
    /// `NewTransportKey` elements.
    pub transport: Vec<KeyContent>,
    /// `NewIntegrityKey` elements.
    pub integrity: Vec<KeyContent>,
}

/// The message a response carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KmsMessage {
    /// `KmsInit`.
    Init {
        /// The KMS certificate.
        certificate: Box<KmsCertificate>,
        /// New TrK/InK.
        new_keys: NewKeys,
    },
    /// `KmsKeyProv`.
    KeyProv {
        /// The key sets.
        key_sets: Vec<KmsKeySet>,
        /// New TrK/InK.
        new_keys: NewKeys,
    },
    /// `KmsCertCache`.
    CertCache {
        /// `@CacheNum`.
        cache_num: Option<u64>,
        /// The certificates.
        certificates: Vec<KmsCertificate>,
    },
}

/// A KMS response (TS 33.180 D.2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsResponse {
    /// `@Id`.
    pub id: Option<String>,
    /// `UserUri`.
    pub user_uri: String,
    /// `KmsUri`.
    pub kms_uri: String,
    /// `Time` (`xsd:dateTime`).
    pub time: String,
    /// `KmsId`.
    pub kms_id: Option<String>,
    /// `ClientReqUrl`.
    pub client_req_url: String,
    /// `KmsMessage`.
    pub message: Option<KmsMessage>,
    /// `KmsError`.
    pub error: Option<ErrorInfo>,
}

/// `YYYY-MM-DDThh:mm:ssZ` for seconds since the Unix epoch (`xsd:dateTime`, UTC).
#[must_use]
pub fn xml_datetime(unix_secs: u64) -> String {
    let days = i64::try_from(unix_secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = unix_secs % 86_400;
    // H. Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

fn leaf(local: &str, text: &str) -> Element {
    Element::new(NAMESPACE, "", local).text(text)
}

fn leaf_opt(local: &str, text: Option<&str>) -> Option<Element> {
    text.map(|t| leaf(local, t))
}

fn xsi_type(e: Element, ty: &str) -> Element {
    e.ns_attr(XSI_NS, "xsi", "type", ty)
}

/// An `xenc:EncryptedKey` element.
#[must_use]
pub fn encrypted_key_element(k: &EncryptedKey) -> Element {
    use base64::Engine as _;
    let mut e = Element::new(XENC_NS, "xenc", "EncryptedKey")
        .child(Element::new(XENC_NS, "xenc", "EncryptionMethod").attr("Algorithm", &k.algorithm));
    if let Some(name) = &k.key_name {
        e = e.child(
            Element::new(DS_NS, "ds", "KeyInfo")
                .child(Element::new(DS_NS, "ds", "KeyName").text(name)),
        );
    }
    e.child(
        Element::new(XENC_NS, "xenc", "CipherData").child(
            Element::new(XENC_NS, "xenc", "CipherValue")
                .text(&base64::engine::general_purpose::STANDARD.encode(&k.cipher_value)),
        ),
    )
}

fn key_element(local: &str, k: &KeyContent) -> Element {
    let e = Element::new(NAMESPACE, "", local);
    match k {
        KeyContent::Plain(s) => xsi_type(e, "KeyContentType").text(&hex::encode_upper(s.expose())),
        KeyContent::Encrypted(k) => {
            xsi_type(e, "EncKeyContentType").child(encrypted_key_element(k))
        }
    }
}

fn certificate_element(c: &KmsCertificate) -> Element {
    let mut e = Element::new(NAMESPACE, "", "KmsCertificate");
    if let Some(id) = &c.id {
        e = e.attr("Id", id);
    }
    e = e.attr("Version", c.version.as_deref().unwrap_or("1.1.0"));
    if let Some(r) = c.role {
        e = e.attr(
            "Role",
            match r {
                Role::Root => "Root",
                Role::External => "External",
            },
        );
    }
    let mut e = e
        .child_opt(leaf_opt("CertUri", c.cert_uri.as_deref()))
        .child(leaf("KmsUri", &c.kms_uri))
        .child_opt(leaf_opt("Issuer", c.issuer.as_deref()))
        .child_opt(leaf_opt("ValidFrom", c.valid_from.as_deref()))
        .child_opt(leaf_opt("ValidTo", c.valid_to.as_deref()))
        .child_opt(
            c.revoked
                .map(|r| leaf("Revoked", if r { "true" } else { "false" })),
        )
        .child(leaf("UserIdFormat", &c.user_id_format))
        .child(leaf("UserKeyPeriod", &c.user_key_period.to_string()))
        .child(leaf("UserKeyOffset", &c.user_key_offset.to_string()))
        .child(leaf("PubEncKey", &hex::encode_upper(&c.pub_enc_key)))
        .child(leaf("PubAuthKey", &hex::encode_upper(&c.pub_auth_key)))
        .child_opt(
            c.parameter_set
                .map(|p| leaf("ParameterSet", &p.to_string())),
        );
    if !c.domains.is_empty() {
        let mut list = Element::new(NAMESPACE, "", "KmsDomainList");
        for d in &c.domains {
            list = list.child(leaf("KmsDomain", d));
        }
        e = e.child(list);
    }
    e
}

fn key_set_element(k: &KmsKeySet) -> Element {
    Element::new(NAMESPACE, "", "KmsKeySet")
        .attr("Version", KEY_SET_VERSION)
        .child(leaf("KmsUri", &k.kms_uri))
        .child_opt(leaf_opt("CertUri", k.cert_uri.as_deref()))
        .child_opt(leaf_opt("Issuer", k.issuer.as_deref()))
        .child(leaf("UserUri", &k.user_uri))
        .child(leaf("UserID", &hex::encode(&k.user_id)))
        .child_opt(leaf_opt("ValidFrom", k.valid_from.as_deref()))
        .child_opt(leaf_opt("ValidTo", k.valid_to.as_deref()))
        .child(leaf("KeyPeriodNo", &k.key_period_no.to_string()))
        .child_opt(
            k.revoked
                .map(|r| leaf("Revoked", if r { "true" } else { "false" })),
        )
        .child(key_element("UserDecryptKey", &k.rsk))
        .child(key_element("UserSigningKeySSK", &k.ssk))
        .child(key_element("UserPubTokenPVT", &k.pvt))
}

fn with_new_keys(mut e: Element, n: &NewKeys, ext_type: &str) -> Element {
    // NewTransportKey/NewIntegrityKey are `EncKeyContentType`: a new TrK or InK is only ever
    // written encrypted ([`super::transport::protect`] encrypts them); one still in clear is
    // left out of the document rather than sent as it is.
    let encrypted = |v: &[KeyContent]| -> Vec<EncryptedKey> {
        v.iter()
            .filter_map(|k| match k {
                KeyContent::Encrypted(k) => Some(k.clone()),
                KeyContent::Plain(_) => None,
            })
            .collect()
    };
    let (transport, integrity) = (encrypted(&n.transport), encrypted(&n.integrity));
    if transport.is_empty() && integrity.is_empty() {
        return e;
    }
    e = xsi_type(e, ext_type);
    for k in &transport {
        e = e.child(Element::new(NAMESPACE, "", "NewTransportKey").child(encrypted_key_element(k)));
    }
    for k in &integrity {
        e = e.child(Element::new(NAMESPACE, "", "NewIntegrityKey").child(encrypted_key_element(k)));
    }
    e
}

impl KmsResponse {
    /// The `KmsResponse` element.
    #[must_use]
    pub fn to_element(&self) -> Element {
        let mut e = Element::new(NAMESPACE, "", "KmsResponse");
        if let Some(id) = &self.id {
            e = e.attr("Id", id);
        }
        e = e
            .attr("Version", RESPONSE_VERSION)
            .child(leaf("UserUri", &self.user_uri))
            .child(leaf("KmsUri", &self.kms_uri))
            .child(leaf("Time", &self.time))
            .child_opt(leaf_opt("KmsId", self.kms_id.as_deref()))
            .child(leaf("ClientReqUrl", &self.client_req_url));
        if let Some(m) = &self.message {
            let inner = match m {
                KmsMessage::Init {
                    certificate,
                    new_keys,
                } => with_new_keys(
                    Element::new(NAMESPACE, "", "KmsInit")
                        .attr("Version", "1.0.0")
                        .child(certificate_element(certificate)),
                    new_keys,
                    "KmsInitTkIkType",
                ),
                KmsMessage::KeyProv { key_sets, new_keys } => {
                    let mut p = Element::new(NAMESPACE, "", "KmsKeyProv").attr("Version", "1.0.0");
                    for k in key_sets {
                        p = p.child(key_set_element(k));
                    }
                    with_new_keys(p, new_keys, "KmsKeyProvTkIkType")
                }
                KmsMessage::CertCache {
                    cache_num,
                    certificates,
                } => {
                    let mut c =
                        Element::new(NAMESPACE, "", "KmsCertCache").attr("Version", "1.0.0");
                    if let Some(n) = cache_num {
                        c = c.attr("CacheNum", &n.to_string());
                    }
                    for cert in certificates {
                        c = c.child(certificate_element(cert));
                    }
                    c
                }
            };
            e = e.child(Element::new(NAMESPACE, "", "KmsMessage").child(inner));
        }
        if let Some(err) = &self.error {
            e = e.child(
                Element::new(NAMESPACE, "", "KmsError")
                    .child(leaf("ErrorCode", &err.code.to_string()))
                    .child(leaf("ErrorMsg", &err.message)),
            );
        }
        e
    }

    /// The unsigned document (canonical form, with an XML declaration).
    #[must_use]
    pub fn to_xml(&self) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>{}",
            xml::canonical(&self.to_element())
        )
    }
}

impl KmsRequest {
    /// The `KmsRequest` element.
    #[must_use]
    pub fn to_element(&self) -> Element {
        let mut e = Element::new(NAMESPACE, "", "KmsRequest");
        if let Some(id) = &self.id {
            e = e.attr("Id", id);
        }
        e.attr("Version", REQUEST_VERSION)
            .child(leaf("UserUri", &self.user_uri))
            .child(leaf("KmsUri", &self.kms_uri))
            .child(leaf("Time", &self.time))
            .child_opt(leaf_opt("ClientId", self.client_id.as_deref()))
            .child_opt(leaf_opt("DeviceId", self.device_id.as_deref()))
            .child(leaf("ClientReqUrl", &self.client_req_url))
            .child_opt(
                self.trk_id
                    .map(|id| Element::new(EXT_NS, "ext", "TrkId").text(&id.to_string())),
            )
            .child_opt(
                self.ink_id
                    .map(|id| Element::new(EXT_NS, "ext", "InkId").text(&id.to_string())),
            )
    }

    /// The request document.
    #[must_use]
    pub fn to_xml(&self) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>{}",
            xml::canonical(&self.to_element())
        )
    }

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

fn unexpected(parent: &str, e: &Element) -> KmsError {
    KmsError::Structure(format!("unexpected element {} in {parent}", e.local))
}

fn missing(parent: &str, local: &str) -> KmsError {
    KmsError::Structure(format!("{parent}: missing {local}"))
}

/// Walks the child elements of one element in schema order.
pub(super) struct Cursor<'a> {
    parent: &'a str,
    items: Vec<&'a Element>,
    at: usize,
}

impl<'a> Cursor<'a> {
    pub(super) fn new(e: &'a Element) -> Result<Self, KmsError> {
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

    pub(super) fn opt(&mut self, local: &str) -> Option<&'a Element> {
        let e = self.peek(local)?;
        self.at += 1;
        Some(e)
    }

    pub(super) fn one(&mut self, local: &str) -> Result<&'a Element, KmsError> {
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
pub(super) fn encrypted_key(e: &Element) -> Result<EncryptedKey, KmsError> {
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
        } else if c.ns == XENC_NS || c.ns == DS_NS {
            return Err(unexpected("EncryptedKey", c));
        }
    }
    Ok(EncryptedKey {
        algorithm: algorithm
            .ok_or_else(|| missing("EncryptedKey", "EncryptionMethod/@Algorithm"))?,
        key_name,
        cipher_value: cipher_value.ok_or_else(|| missing("EncryptedKey", "CipherData"))?,
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

fn new_keys(c: &mut Cursor<'_>) -> Result<NewKeys, KmsError> {
    let mut n = NewKeys::default();
    while let Some(e) = c.opt("NewTransportKey") {
        n.transport.push(encrypted_content(e)?);
    }
    while let Some(e) = c.opt("NewIntegrityKey") {
        n.integrity.push(encrypted_content(e)?);
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
    /// whose signature is **not** checked (use [`super::transport`] for protected responses).
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
