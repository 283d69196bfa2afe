//! A bounded reader for the flat XML bodies of docs/profile.md §4: one root element holding a list of
//! leaf items with attributes or text. Anything outside that shape is refused before it can cost
//! memory or time: no DTD, no entities beyond the five predefined ones, bounded depth, item count
//! and value lengths.

use std::borrow::Cow;

use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

use super::{MAX_BODY_LEN, MAX_ITEMS, MAX_VALUE_LEN, NAMESPACE, XmlError};

/// Attributes an item may carry; the profile uses at most three.
const MAX_ATTRIBUTES: usize = 8;

/// Namespace bindings in scope at once; the profile needs one.
const MAX_NAMESPACE_BINDINGS: usize = 8;

/// Longest text copied from the input into an [`XmlError`].
const MAX_MESSAGE_LEN: usize = 120;

/// A leaf element below the root: its local name, attributes (local name, value) and text.
#[derive(Debug, Default)]
pub(super) struct Item {
    pub name: String,
    pub attributes: Vec<(String, String)>,
    pub text: String,
}

impl Item {
    /// The value of an attribute by local name.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The root element's local name and its items, in document order.
#[derive(Debug)]
pub(super) struct Document {
    pub root: String,
    pub items: Vec<Item>,
}

/// Cuts a text from the input for an error message (on a char boundary).
pub(super) fn clip(s: &str) -> String {
    s.chars().take(MAX_MESSAGE_LEN).collect()
}

/// XML 1.0 white space (production S).
fn is_xml_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Trims XML white space from both ends.
pub(super) fn trim_xml(s: &str) -> &str {
    s.trim_matches(is_xml_space)
}

/// Where an element or attribute name resolved to, owned so the reader can move on.
enum Ns {
    /// No namespace, or the profile's.
    Ours,
    Foreign(String),
    UnknownPrefix(String),
}

impl Ns {
    fn of(r: &ResolveResult<'_>) -> Self {
        match r {
            ResolveResult::Unbound => Self::Ours,
            ResolveResult::Bound(n) if n.0 == NAMESPACE => Self::Ours,
            ResolveResult::Bound(n) => Self::Foreign(clip(n.0)),
            ResolveResult::Unknown(p) => Self::UnknownPrefix(clip(p)),
        }
    }

    fn require(self, element: &str) -> Result<(), XmlError> {
        match self {
            Self::Ours => Ok(()),
            Self::Foreign(namespace) => Err(XmlError::ForeignNamespace {
                element: clip(element),
                namespace,
            }),
            Self::UnknownPrefix(p) => Err(XmlError::UnknownPrefix(p)),
        }
    }
}

fn syntax(offset: u64, message: &str) -> XmlError {
    XmlError::Syntax {
        offset,
        message: clip(message),
    }
}

/// XML 1.0 §2.2 Char: no C0 controls but tab, LF, CR; no U+FFFE, U+FFFF. Also applies to
/// what character references produce (WFC: Legal Character), which quick-xml does not check.
fn check_chars(s: &str) -> Result<(), XmlError> {
    match s
        .chars()
        .find(|c| matches!(c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}'))
    {
        Some(c) => Err(XmlError::Syntax {
            offset: 0,
            message: format!("character U+{:04X} is not allowed in XML", u32::from(c)),
        }),
        None => Ok(()),
    }
}

fn push_text(text: &mut String, more: &str) -> Result<(), XmlError> {
    if text.len().saturating_add(more.len()) > MAX_VALUE_LEN {
        return Err(XmlError::ValueTooLong { max: MAX_VALUE_LEN });
    }
    check_chars(more)?;
    text.push_str(more);
    Ok(())
}

/// Resolves `&name;` against the five predefined entities and character references only.
fn resolve_reference(name: &str) -> Result<Cow<'static, str>, XmlError> {
    let predefined = match name {
        "lt" => "<",
        "gt" => ">",
        "amp" => "&",
        "apos" => "'",
        "quot" => "\"",
        _ => {
            let Some(num) = name.strip_prefix('#') else {
                return Err(XmlError::Entity(clip(name)));
            };
            let code = match num.strip_prefix('x') {
                Some(hex) => u32::from_str_radix(hex, 16),
                None => num.parse::<u32>(),
            };
            return code
                .ok()
                .and_then(char::from_u32)
                .filter(|c| *c != '\0')
                .map(|c| Cow::Owned(c.to_string()))
                .ok_or_else(|| XmlError::Entity(clip(name)));
        }
    };
    Ok(Cow::Borrowed(predefined))
}

/// Reads an item's attributes: unprefixed ones and those in the profile namespace are kept;
/// namespace declarations and attributes of other namespaces (e.g. `xml:lang`) are skipped.
fn read_attributes(reader: &NsReader<&[u8]>, e: &BytesStart<'_>) -> Result<Item, XmlError> {
    let mut item = Item::default();
    for attr in e.attributes() {
        let attr = attr.map_err(|err| syntax(reader.buffer_position(), &err.to_string()))?;
        if attr.key.as_namespace_binding().is_some() {
            continue;
        }
        let (ns, local) = reader.resolver().resolve_attribute(attr.key);
        match Ns::of(&ns) {
            Ns::Ours => {}
            Ns::Foreign(_) => continue,
            Ns::UnknownPrefix(p) => return Err(XmlError::UnknownPrefix(p)),
        }
        if item.attributes.len() >= MAX_ATTRIBUTES {
            return Err(XmlError::TooManyAttributes {
                max: MAX_ATTRIBUTES,
            });
        }
        if attr.value.len() > MAX_VALUE_LEN || local.as_ref().len() > MAX_VALUE_LEN {
            return Err(XmlError::ValueTooLong { max: MAX_VALUE_LEN });
        }
        let value = attr
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|err| XmlError::Entity(clip(&err.to_string())))?;
        check_chars(&value)?;
        item.attributes
            .push((local.as_ref().to_owned(), value.into_owned()));
    }
    Ok(item)
}

/// The parse state: depth 0 is outside the root, 1 inside it, 2 inside an item.
#[derive(Default)]
struct Builder {
    root: Option<String>,
    root_closed: bool,
    depth: usize,
    items: Vec<Item>,
    current: Option<Item>,
}

impl Builder {
    fn open(
        &mut self,
        reader: &NsReader<&[u8]>,
        ns: Ns,
        e: &BytesStart<'_>,
    ) -> Result<(), XmlError> {
        let name = e.local_name();
        let name = name.as_ref();
        if name.len() > MAX_VALUE_LEN {
            return Err(XmlError::ValueTooLong { max: MAX_VALUE_LEN });
        }
        match self.depth {
            0 => {
                if self.root.is_some() {
                    return Err(syntax(
                        reader.buffer_position(),
                        "a second element after the root element",
                    ));
                }
                ns.require(name)?;
                self.root = Some(name.to_owned());
            }
            1 => {
                if self.items.len() >= MAX_ITEMS {
                    return Err(XmlError::TooManyItems { max: MAX_ITEMS });
                }
                ns.require(name)?;
                let mut item = read_attributes(reader, e)?;
                item.name = name.to_owned();
                self.current = Some(item);
            }
            _ => return Err(XmlError::TooDeep(clip(name))),
        }
        self.depth += 1;
        Ok(())
    }

    fn close(&mut self) {
        match self.depth {
            2 => self.items.extend(self.current.take()),
            1 => self.root_closed = true,
            _ => {}
        }
        self.depth = self.depth.saturating_sub(1);
    }

    fn text(&mut self, s: &str) -> Result<(), XmlError> {
        match self.current.as_mut() {
            Some(item) if self.depth == 2 => push_text(&mut item.text, s),
            _ if trim_xml(s).is_empty() => Ok(()),
            _ => Err(XmlError::UnexpectedText),
        }
    }
}

/// Parses a body into its root and leaf items under the limits of docs/profile.md §4.
pub(super) fn read_document(body: &[u8]) -> Result<Document, XmlError> {
    if body.len() > MAX_BODY_LEN {
        return Err(XmlError::TooLarge {
            len: body.len(),
            max: MAX_BODY_LEN,
        });
    }
    let body = body.strip_prefix(b"\xef\xbb\xbf").unwrap_or(body);
    let text = std::str::from_utf8(body).map_err(|e| XmlError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    let mut reader = NsReader::from_str(text);
    reader.config_mut().check_end_names = true;
    reader
        .resolver_mut()
        .set_max_namespace_bindings(MAX_NAMESPACE_BINDINGS);

    let mut b = Builder::default();
    loop {
        let (ns, event) = match reader.read_resolved_event() {
            Ok((ns, event)) => (Ns::of(&ns), event),
            Err(e) => return Err(syntax(reader.error_position(), &e.to_string())),
        };
        match event {
            Event::Decl(d) => {
                if b.root.is_some() {
                    return Err(syntax(
                        reader.buffer_position(),
                        "XML declaration after the root element",
                    ));
                }
                if let Some(enc) = d.encoding() {
                    let enc = enc.map_err(|e| syntax(reader.buffer_position(), &e.to_string()))?;
                    if !enc.eq_ignore_ascii_case("UTF-8") {
                        return Err(XmlError::Encoding(clip(&enc)));
                    }
                }
            }
            Event::DocType(_) => return Err(XmlError::Dtd),
            Event::PI(_) | Event::Comment(_) => {}
            Event::Start(e) => b.open(&reader, ns, &e)?,
            Event::Empty(e) => {
                b.open(&reader, ns, &e)?;
                b.close();
            }
            Event::End(_) => b.close(),
            Event::Text(t) => b.text(&t.xml10_content())?,
            Event::CData(c) if b.depth == 2 => b.text(&c.xml10_content())?,
            Event::CData(_) => return Err(XmlError::UnexpectedText),
            Event::GeneralRef(r) if b.depth == 2 => b.text(&resolve_reference(&r.into_inner())?)?,
            Event::GeneralRef(r) => {
                // Resolve first so an unknown entity is reported as such.
                resolve_reference(&r.into_inner())?;
                return Err(XmlError::UnexpectedText);
            }
            Event::Eof => break,
        }
    }
    match b.root {
        Some(root) if b.root_closed => Ok(Document {
            root,
            items: b.items,
        }),
        _ => Err(XmlError::Truncated),
    }
}
