//! The BM-SC Key Request interface of docs/profile.md §4 \[CHOICE for paths and XML\]: paths, MIME
//! types and the XML bodies of registration, deregistration and MSK request (TS 33.246 6.3.2.3,
//! 6.3.2.4), shared by the UE client and the BM-SC server.
//!
//! Senders emit exactly the docs/profile.md bodies; readers accept the elements with or without the
//! namespace (any prefix bound to it), UTF-8 only, no DTD, no entities but the five predefined,
//! within the bounds below. A request item whose identifiers do not parse is kept as received
//! ([`MskRef::Malformed`], an empty service id) so a server can answer 400 for that item and
//! serve the others.

mod xml;

use std::fmt::Write as _;

use quick_xml::escape::escape;
use thiserror::Error;

use crate::mikey::{KeyDomainId, MskId};

use xml::{Document, Item, clip, read_document, trim_xml};

/// docs/profile.md §4: registration to user services.
pub const PATH_REGISTER: &str = "/keymanagement/register";
/// docs/profile.md §4: deregistration from user services.
pub const PATH_DEREGISTER: &str = "/keymanagement/deregister";
/// docs/profile.md §4: MSK request.
pub const PATH_MSK: &str = "/keymanagement/msk";

/// docs/profile.md §4: body of a registration.
pub const MIME_REGISTER: &str = "application/mbms-register+xml";
/// docs/profile.md §4: body of a deregistration.
pub const MIME_DEREGISTER: &str = "application/mbms-deregister+xml";
/// docs/profile.md §4: answer to a registration or a deregistration.
pub const MIME_REGISTER_RESPONSE: &str = "application/mbms-register-response+xml";
/// docs/profile.md §4: body of an MSK request.
pub const MIME_MSK: &str = "application/mbms-msk+xml";
/// docs/profile.md §4: answer to an MSK request.
pub const MIME_MSK_RESPONSE: &str = "application/mbms-msk-response+xml";

/// docs/profile.md §4 \[CHOICE\]: the namespace of every body.
pub const NAMESPACE: &str = "urn:mbms-keys:keymanagement:1";

/// Largest body read, checked before parsing.
pub const MAX_BODY_LEN: usize = 64 * 1024;
/// Most items (services, MSKs, statuses) in one body.
pub const MAX_ITEMS: usize = 256;
/// Longest text or attribute value, in octets.
pub const MAX_VALUE_LEN: usize = 1024;

/// docs/profile.md §4 per-item codes.
pub mod code {
    /// Done: registered, deregistered, or the MSK will be pushed.
    pub const OK: u16 = 200;
    /// The item was malformed.
    pub const MALFORMED: u16 = 400;
    /// Not authorized for that service.
    pub const FORBIDDEN: u16 = 403;
    /// Unknown service or MSK.
    pub const NOT_FOUND: u16 = 404;
    /// Internal failure.
    pub const INTERNAL: u16 = 500;
}

const DECLARATION: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";

/// A body could not be read (or a value cannot be written). Messages quote at most a short
/// piece of the input.
#[non_exhaustive]
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum XmlError {
    /// The body exceeds [`MAX_BODY_LEN`].
    #[error("body is {len} octets; at most {max} are accepted")]
    TooLarge {
        /// The body's length in octets.
        len: usize,
        /// The limit, [`MAX_BODY_LEN`].
        max: usize,
    },
    /// The body is not UTF-8.
    #[error("body is not UTF-8 (first bad octet at {offset})")]
    NotUtf8 {
        /// Offset of the first octet that is not UTF-8.
        offset: usize,
    },
    /// The XML declaration names another encoding.
    #[error("encoding {0:?} is not accepted; only UTF-8")]
    Encoding(String),
    /// Not well-formed XML.
    #[error("malformed XML at octet {offset}: {message}")]
    Syntax {
        /// Octet offset in the body where the parser stopped.
        offset: u64,
        /// The XML parser's message.
        message: String,
    },
    /// A document type declaration (DTD) was present.
    #[error("DOCTYPE/DTD is not accepted")]
    Dtd,
    /// An entity reference other than the five predefined ones or a valid character reference.
    #[error("entity reference {0:?} is not accepted")]
    Entity(String),
    /// The document ended inside an element, or had no root element.
    #[error("XML document is truncated or empty")]
    Truncated,
    /// The root element is not the one expected.
    #[error("root element <{found}> is not one of {expected}")]
    UnknownRoot {
        /// The root element's name.
        found: String,
        /// The root elements accepted there.
        expected: &'static str,
    },
    /// An element below the root is not known.
    #[error("unexpected element <{found}> in <{parent}>")]
    UnknownElement {
        /// The element's name.
        found: String,
        /// The element it is in.
        parent: &'static str,
    },
    /// An element in a namespace other than [`NAMESPACE`].
    #[error("element <{element}> is in foreign namespace {namespace:?}")]
    ForeignNamespace {
        /// The element's name.
        element: String,
        /// The namespace it is in.
        namespace: String,
    },
    /// A prefix bound to no namespace.
    #[error("namespace prefix {0:?} is not declared")]
    UnknownPrefix(String),
    /// Elements nested deeper than root → item.
    #[error("element <{0}> is nested too deep")]
    TooDeep(String),
    /// Character data where none belongs.
    #[error("unexpected character data outside an item")]
    UnexpectedText,
    /// More than [`MAX_ITEMS`] items.
    #[error("more than {max} items")]
    TooManyItems {
        /// The limit, [`MAX_ITEMS`].
        max: usize,
    },
    /// An item with too many attributes.
    #[error("more than {max} attributes on an item")]
    TooManyAttributes {
        /// The most attributes an item may have.
        max: usize,
    },
    /// A text or attribute value over [`MAX_VALUE_LEN`] octets.
    #[error("a value exceeds {max} octets")]
    ValueTooLong {
        /// The limit, [`MAX_VALUE_LEN`].
        max: usize,
    },
    /// A request without items (docs/profile.md §4: "one or more").
    #[error("<{0}> holds no item")]
    NoItems(&'static str),
    /// A required attribute is absent.
    #[error("<{element}> lacks attribute {attribute}")]
    MissingAttribute {
        /// The element lacking it.
        element: &'static str,
        /// The attribute's name.
        attribute: &'static str,
    },
    /// An attribute value of a response that does not parse.
    #[error("<{element}> attribute {attribute} is invalid: {value:?}")]
    BadAttribute {
        /// The element carrying it.
        element: &'static str,
        /// The attribute's name.
        attribute: &'static str,
        /// The value as received.
        value: String,
    },
    /// A value that cannot be put in a body (empty, too long, or with control characters).
    #[error("value cannot be sent: {0}")]
    BadValue(&'static str),
}

/// Registration or deregistration: the same content under another root (docs/profile.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegisterKind {
    /// `<mbmsRegister>`, `application/mbms-register+xml`.
    Register,
    /// `<mbmsDeregister>`, `application/mbms-deregister+xml`.
    Deregister,
}

impl RegisterKind {
    /// The root element name.
    #[must_use]
    pub fn root(self) -> &'static str {
        match self {
            Self::Register => "mbmsRegister",
            Self::Deregister => "mbmsDeregister",
        }
    }

    /// The request path.
    #[must_use]
    pub fn path(self) -> &'static str {
        match self {
            Self::Register => PATH_REGISTER,
            Self::Deregister => PATH_DEREGISTER,
        }
    }

    /// The request Content-Type.
    #[must_use]
    pub fn mime(self) -> &'static str {
        match self {
            Self::Register => MIME_REGISTER,
            Self::Deregister => MIME_DEREGISTER,
        }
    }
}

/// Checks that a service id can be sent: non-empty, at most [`MAX_VALUE_LEN`] octets, without
/// control characters (which XML 1.0 cannot carry) or surrounding white space (which readers
/// trim).
///
/// # Errors
/// [`XmlError::BadValue`] naming the rule broken.
pub fn check_service_id(id: &str) -> Result<(), XmlError> {
    if id.is_empty() {
        return Err(XmlError::BadValue("empty service id"));
    }
    if id.len() > MAX_VALUE_LEN {
        return Err(XmlError::BadValue("service id over 1024 octets"));
    }
    if id.chars().any(char::is_control) {
        return Err(XmlError::BadValue("control character in service id"));
    }
    if trim_xml(id).len() != id.len() {
        return Err(XmlError::BadValue("white space around service id"));
    }
    Ok(())
}

/// Reads the root and checks it is one of `expected` (local names).
fn root_of<'a>(
    doc: &Document,
    expected: &'a [&'a str],
    list: &'static str,
) -> Result<&'a str, XmlError> {
    expected
        .iter()
        .copied()
        .find(|r| *r == doc.root)
        .ok_or_else(|| XmlError::UnknownRoot {
            found: clip(&doc.root),
            expected: list,
        })
}

fn check_items(doc: &Document, item: &'static str, parent: &'static str) -> Result<(), XmlError> {
    match doc.items.iter().find(|i| i.name != item) {
        Some(other) => Err(XmlError::UnknownElement {
            found: clip(&other.name),
            parent,
        }),
        None => Ok(()),
    }
}

fn required<'a>(
    item: &'a Item,
    element: &'static str,
    attribute: &'static str,
) -> Result<&'a str, XmlError> {
    item.attribute(attribute)
        .ok_or(XmlError::MissingAttribute { element, attribute })
}

fn parse_code(item: &Item) -> Result<u16, XmlError> {
    let raw = required(item, "status", "code")?;
    trim_xml(raw)
        .parse::<u16>()
        .ok()
        .filter(|c| (100..=599).contains(c))
        .ok_or_else(|| XmlError::BadAttribute {
            element: "status",
            attribute: "code",
            value: clip(raw),
        })
}

fn open_root(out: &mut String, root: &str) {
    out.push_str(DECLARATION);
    let _ = writeln!(out, "<{root} xmlns=\"{NAMESPACE}\">");
}

/// A registration or deregistration (docs/profile.md §4, TS 33.246 6.3.2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterRequest {
    /// Registration or deregistration.
    pub kind: RegisterKind,
    /// The user service ids, text trimmed of XML white space. An empty one is the malformed
    /// item a server answers 400 for.
    pub service_ids: Vec<String>,
}

impl RegisterRequest {
    /// A registration to `service_ids`.
    #[must_use]
    pub fn register(service_ids: &[String]) -> Self {
        Self {
            kind: RegisterKind::Register,
            service_ids: service_ids.to_vec(),
        }
    }

    /// A deregistration from `service_ids`.
    #[must_use]
    pub fn deregister(service_ids: &[String]) -> Self {
        Self {
            kind: RegisterKind::Deregister,
            service_ids: service_ids.to_vec(),
        }
    }

    /// The docs/profile.md §4 body. Call [`check_service_id`] on untrusted ids first.
    #[must_use]
    pub fn to_xml(&self) -> String {
        let root = self.kind.root();
        let mut out = String::with_capacity(128 + 40 * self.service_ids.len());
        open_root(&mut out, root);
        for id in &self.service_ids {
            let _ = writeln!(out, "  <serviceId>{}</serviceId>", escape(id.as_str()));
        }
        let _ = writeln!(out, "</{root}>");
        out
    }

    /// Reads a `<mbmsRegister>` or `<mbmsDeregister>` body.
    ///
    /// # Errors
    /// [`XmlError`] when the body breaks a rule of the module doc, has another root or element,
    /// or holds no `<serviceId>`.
    pub fn parse(body: &[u8]) -> Result<Self, XmlError> {
        let doc = read_document(body)?;
        let root = root_of(
            &doc,
            &["mbmsRegister", "mbmsDeregister"],
            "mbmsRegister, mbmsDeregister",
        )?;
        let (kind, parent) = if root == "mbmsRegister" {
            (RegisterKind::Register, "mbmsRegister")
        } else {
            (RegisterKind::Deregister, "mbmsDeregister")
        };
        check_items(&doc, "serviceId", parent)?;
        if doc.items.is_empty() {
            return Err(XmlError::NoItems(parent));
        }
        let service_ids = doc
            .items
            .iter()
            .map(|i| trim_xml(&i.text).to_owned())
            .collect();
        Ok(Self { kind, service_ids })
    }
}

/// The status of one requested service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceStatus {
    /// The service id as requested.
    pub service_id: String,
    /// A docs/profile.md §4 per-item code ([`code`]).
    pub code: u16,
}

/// The answer to a registration or deregistration: one status per requested service
/// (TS 33.246 6.3.2.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterResponse {
    /// The statuses in request order.
    pub statuses: Vec<ServiceStatus>,
}

impl RegisterResponse {
    /// The docs/profile.md §4 body.
    #[must_use]
    pub fn to_xml(&self) -> String {
        let root = "mbmsRegisterResponse";
        let mut out = String::with_capacity(128 + 64 * self.statuses.len());
        open_root(&mut out, root);
        for s in &self.statuses {
            let _ = writeln!(
                out,
                "  <status serviceId=\"{}\" code=\"{}\"/>",
                escape(s.service_id.as_str()),
                s.code
            );
        }
        let _ = writeln!(out, "</{root}>");
        out
    }

    /// Reads a `<mbmsRegisterResponse>` body.
    ///
    /// # Errors
    /// [`XmlError`] when the body breaks a rule of the module doc, or a status lacks its
    /// `serviceId` or has a `code` outside 100..=599.
    pub fn parse(body: &[u8]) -> Result<Self, XmlError> {
        let doc = read_document(body)?;
        root_of(&doc, &["mbmsRegisterResponse"], "mbmsRegisterResponse")?;
        check_items(&doc, "status", "mbmsRegisterResponse")?;
        let statuses = doc
            .items
            .iter()
            .map(|i| {
                Ok(ServiceStatus {
                    service_id: trim_xml(required(i, "status", "serviceId")?).to_owned(),
                    code: parse_code(i)?,
                })
            })
            .collect::<Result<_, XmlError>>()?;
        Ok(Self { statuses })
    }
}

/// One `<msk>` reference: typed when both ids parse, kept as received otherwise so a server can
/// answer 400 for it (docs/profile.md §4).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MskRef {
    /// A Key Domain ID and MSK ID (Key Number 0 = the current MSK).
    Id(KeyDomainId, MskId),
    /// Attribute values that did not parse (an absent attribute reads as empty).
    Malformed {
        /// `keyDomainId` as received.
        key_domain_id: String,
        /// `mskId` as received.
        msk_id: String,
    },
}

impl MskRef {
    /// The typed ids, if the reference was well formed.
    #[must_use]
    pub fn ids(&self) -> Option<(KeyDomainId, MskId)> {
        match self {
            Self::Id(kd, id) => Some((*kd, *id)),
            Self::Malformed { .. } => None,
        }
    }

    /// Reads the attributes strictly: exactly 6 and 8 hex digits, nothing around them.
    fn from_item(item: &Item) -> Self {
        let kd = item.attribute("keyDomainId").unwrap_or_default();
        let id = item.attribute("mskId").unwrap_or_default();
        let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
        let typed = if hex(kd, 2 * KeyDomainId::LEN) && hex(id, 2 * MskId::LEN) {
            kd.parse().ok().zip(id.parse().ok())
        } else {
            None
        };
        match typed {
            Some((kd, id)) => Self::Id(kd, id),
            None => Self::Malformed {
                key_domain_id: kd.to_owned(),
                msk_id: id.to_owned(),
            },
        }
    }

    fn attributes(&self) -> (String, String) {
        match self {
            Self::Id(kd, id) => (kd.to_string(), id.to_string()),
            Self::Malformed {
                key_domain_id,
                msk_id,
            } => (
                escape(key_domain_id.as_str()).into_owned(),
                escape(msk_id.as_str()).into_owned(),
            ),
        }
    }
}

impl From<(KeyDomainId, MskId)> for MskRef {
    fn from((kd, id): (KeyDomainId, MskId)) -> Self {
        Self::Id(kd, id)
    }
}

/// An MSK request (docs/profile.md §4, TS 33.246 6.3.2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MskRequest {
    /// The requested MSKs in document order.
    pub msks: Vec<MskRef>,
}

impl MskRequest {
    /// A request for these MSKs.
    #[must_use]
    pub fn new(msks: &[(KeyDomainId, MskId)]) -> Self {
        Self {
            msks: msks.iter().copied().map(MskRef::from).collect(),
        }
    }

    /// The docs/profile.md §4 body.
    #[must_use]
    pub fn to_xml(&self) -> String {
        let root = "mbmsMskRequest";
        let mut out = String::with_capacity(128 + 64 * self.msks.len());
        open_root(&mut out, root);
        for m in &self.msks {
            let (kd, id) = m.attributes();
            let _ = writeln!(out, "  <msk keyDomainId=\"{kd}\" mskId=\"{id}\"/>");
        }
        let _ = writeln!(out, "</{root}>");
        out
    }

    /// Reads a `<mbmsMskRequest>` body; an `<msk>` whose ids do not parse becomes
    /// [`MskRef::Malformed`] instead of failing the request.
    ///
    /// # Errors
    /// [`XmlError`] when the body breaks a rule of the module doc or holds no `<msk>`.
    pub fn parse(body: &[u8]) -> Result<Self, XmlError> {
        let doc = read_document(body)?;
        root_of(&doc, &["mbmsMskRequest"], "mbmsMskRequest")?;
        check_items(&doc, "msk", "mbmsMskRequest")?;
        if doc.items.is_empty() {
            return Err(XmlError::NoItems("mbmsMskRequest"));
        }
        Ok(Self {
            msks: doc.items.iter().map(MskRef::from_item).collect(),
        })
    }
}

/// The status of one requested MSK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MskStatus {
    /// The MSK as requested.
    pub msk: MskRef,
    /// A docs/profile.md §4 per-item code ([`code`]).
    pub code: u16,
}

/// The answer to an MSK request: one status per requested MSK (TS 33.246 6.3.2.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MskResponse {
    /// The statuses in request order.
    pub statuses: Vec<MskStatus>,
}

impl MskResponse {
    /// The docs/profile.md §4 body.
    #[must_use]
    pub fn to_xml(&self) -> String {
        let root = "mbmsMskResponse";
        let mut out = String::with_capacity(128 + 72 * self.statuses.len());
        open_root(&mut out, root);
        for s in &self.statuses {
            let (kd, id) = s.msk.attributes();
            let _ = writeln!(
                out,
                "  <status keyDomainId=\"{kd}\" mskId=\"{id}\" code=\"{}\"/>",
                s.code
            );
        }
        let _ = writeln!(out, "</{root}>");
        out
    }

    /// Reads a `<mbmsMskResponse>` body. A status whose ids do not parse (the server's echo of a
    /// malformed request item) is kept as [`MskRef::Malformed`].
    ///
    /// # Errors
    /// [`XmlError`] when the body breaks a rule of the module doc or a status has no valid
    /// `code`.
    pub fn parse(body: &[u8]) -> Result<Self, XmlError> {
        let doc = read_document(body)?;
        root_of(&doc, &["mbmsMskResponse"], "mbmsMskResponse")?;
        check_items(&doc, "status", "mbmsMskResponse")?;
        let statuses = doc
            .items
            .iter()
            .map(|i| {
                Ok(MskStatus {
                    msk: MskRef::from_item(i),
                    code: parse_code(i)?,
                })
            })
            .collect::<Result<_, XmlError>>()?;
        Ok(Self { statuses })
    }
}

#[cfg(test)]
mod tests;
