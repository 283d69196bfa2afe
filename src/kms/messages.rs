//! The KMS documents of TS 33.180 Annex D (namespace [`NAMESPACE`]): `KmsRequest` and
//! `KmsResponse` with KmsInit (KmsCertificate), KmsKeyProv (KmsKeySet), KmsCertCache and
//! KmsError, as the schema in `docs/mcx/schema/kms-schema.xsd` has them.
//!
//! Building goes through [`Element`] trees written in canonical form ([`xml::canonical`]);
//! reading checks the structure element by element (order, cardinality, types) and refuses what
//! the schema does not allow, with a [`KmsError::Structure`](super::KmsError::Structure) naming the
//! element (`read.rs`).

use super::xml::{self, Element};
use super::{DS_NS, EXT_NS, KeyId, NAMESPACE, Secret, XENC_NS, XSI_NS};

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
    /// `ext:TrkId` ([`EXT_NS`], docs/mcx.md §2 \[CHOICE\]).
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
    /// `CarriedKeyName`: the identifier of the key carried (8 hex digits), written for a new
    /// TrK/InK (docs/mcx.md §3.4).
    pub carried_key_name: Option<String>,
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

/// A new TrK or InK and its identifier: the identifier travels as the EncryptedKey's
/// `CarriedKeyName` (docs/mcx.md §3.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKey {
    /// The new key's TrK-ID or InK-ID.
    pub id: KeyId,
    /// The key (in clear before protection and after opening).
    pub key: KeyContent,
}

/// New transport and integrity keys a KmsInit or KmsKeyProv may deliver
/// (`KmsInitTkIkType`, `KmsKeyProvTkIkType`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewKeys {
    /// `NewTransportKey` elements.
    pub transport: Vec<NewKey>,
    /// `NewIntegrityKey` elements.
    pub integrity: Vec<NewKey>,
}

impl NewKeys {
    /// Whether no new key is carried.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.transport.is_empty() && self.integrity.is_empty()
    }
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
    .child_opt(
        k.carried_key_name
            .as_deref()
            .map(|n| Element::new(XENC_NS, "xenc", "CarriedKeyName").text(n)),
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
    // The identifier is always the NewKey's: CarriedKeyName (docs/mcx.md §3.4).
    let encrypted = |v: &[NewKey]| -> Vec<EncryptedKey> {
        v.iter()
            .filter_map(|k| match &k.key {
                KeyContent::Encrypted(e) => Some(EncryptedKey {
                    carried_key_name: Some(k.id.to_string()),
                    ..e.clone()
                }),
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
}

mod read;
pub(super) use read::Cursor;
