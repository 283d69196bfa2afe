//! A bounded XML tree for the KMS documents and its exclusive canonical form.
//!
//! The reader refuses what a KMS document never needs before it can cost memory or time: a DTD
//! (so no entity beyond the five predefined ones), processing instructions inside the document
//! element, more than [`MAX_DEPTH`] levels, more than [`MAX_NODES`] elements, input over
//! [`MAX_DOCUMENT_LEN`]. Comments are dropped (they are not part of the
//! canonical form the signature covers).
//!
//! The writer is Exclusive XML Canonicalization 1.0 without comments
//! (<http://www.w3.org/2001/10/xml-exc-c14n#>): namespace declarations only where a prefix is
//! visibly utilized and not already rendered by an output ancestor, attributes sorted by
//! namespace URI then local name, empty elements as start/end pairs, the c14n escapes. The builder
//! writes every document through it, so what is sent is already canonical, and the signature
//! check canonicalizes what was received with the same code.

use std::collections::BTreeMap;

use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

use super::{KmsError, MAX_DOCUMENT_LEN};

/// Deepest nesting a KMS document needs (SignedKmsResponse … CipherValue is 9).
pub const MAX_DEPTH: usize = 24;
/// Most elements in one document (a KmsKeyProv with a few key sets needs about 30 each).
pub const MAX_NODES: usize = 4096;

/// The `xml` prefix, bound by definition and never declared (XML Namespaces §3).
const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";

/// An attribute: its namespace (empty for none), prefix (empty for none), local name, value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// Namespace URI, empty when the attribute is unprefixed.
    pub ns: String,
    /// The prefix used, empty when none.
    pub prefix: String,
    /// Local name.
    pub local: String,
    /// The normalized value.
    pub value: String,
}

/// A child of an element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// An element.
    Element(Element),
    /// Character data (entity references resolved, line ends normalized).
    Text(String),
}

/// An element with its resolved namespace.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    /// Namespace URI, empty for none.
    pub ns: String,
    /// The prefix used, empty for the default namespace.
    pub prefix: String,
    /// Local name.
    pub local: String,
    /// Attributes other than namespace declarations.
    pub attributes: Vec<Attribute>,
    /// Children in document order.
    pub children: Vec<Node>,
}

impl Element {
    /// A new element in namespace `ns` written with `prefix` (empty: the default namespace).
    #[must_use]
    pub fn new(ns: &str, prefix: &str, local: &str) -> Self {
        Self {
            ns: ns.to_owned(),
            prefix: prefix.to_owned(),
            local: local.to_owned(),
            ..Self::default()
        }
    }

    /// Adds an unprefixed attribute.
    #[must_use]
    pub fn attr(mut self, local: &str, value: &str) -> Self {
        self.attributes.push(Attribute {
            ns: String::new(),
            prefix: String::new(),
            local: local.to_owned(),
            value: value.to_owned(),
        });
        self
    }

    /// Adds a namespaced attribute (e.g. `xsi:type`).
    #[must_use]
    pub fn ns_attr(mut self, ns: &str, prefix: &str, local: &str, value: &str) -> Self {
        self.attributes.push(Attribute {
            ns: ns.to_owned(),
            prefix: prefix.to_owned(),
            local: local.to_owned(),
            value: value.to_owned(),
        });
        self
    }

    /// Adds a child element.
    #[must_use]
    pub fn child(mut self, e: Element) -> Self {
        self.children.push(Node::Element(e));
        self
    }

    /// Adds a child element when `Some`.
    #[must_use]
    pub fn child_opt(self, e: Option<Element>) -> Self {
        match e {
            Some(e) => self.child(e),
            None => self,
        }
    }

    /// Adds text content.
    #[must_use]
    pub fn text(mut self, t: &str) -> Self {
        self.children.push(Node::Text(t.to_owned()));
        self
    }

    /// Whether this element is `local` in namespace `ns`.
    #[must_use]
    pub fn is(&self, ns: &str, local: &str) -> bool {
        self.ns == ns && self.local == local
    }

    /// The child elements.
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// The value of an attribute without namespace.
    #[must_use]
    pub fn attribute(&self, local: &str) -> Option<&str> {
        self.attribute_ns("", local)
    }

    /// The value of an attribute in namespace `ns`.
    #[must_use]
    pub fn attribute_ns(&self, ns: &str, local: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|a| a.ns == ns && a.local == local)
            .map(|a| a.value.as_str())
    }

    /// The concatenated text children, XML white space trimmed.
    #[must_use]
    pub fn text_content(&self) -> String {
        let mut s = String::new();
        for n in &self.children {
            if let Node::Text(t) = n {
                s.push_str(t);
            }
        }
        s.trim_matches([' ', '\t', '\r', '\n']).to_owned()
    }

    /// Whether any child is non-blank text (an element that should hold only elements).
    #[must_use]
    pub fn has_text(&self) -> bool {
        self.children.iter().any(
            |n| matches!(n, Node::Text(t) if !t.trim_matches([' ', '\t', '\r', '\n']).is_empty()),
        )
    }
}

fn syntax(reader: &NsReader<&[u8]>, message: impl std::fmt::Display) -> KmsError {
    let mut m = message.to_string();
    m.truncate(120);
    KmsError::Xml {
        offset: reader.buffer_position(),
        message: m,
    }
}

/// XML 1.0 §2.2 Char, also for what character references produce.
fn check_chars(s: &str) -> Result<(), KmsError> {
    match s.chars().find(|c| {
        matches!(c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}')
    }) {
        Some(c) => Err(KmsError::Xml {
            offset: 0,
            message: format!("character U+{:04X} is not allowed in XML", u32::from(c)),
        }),
        None => Ok(()),
    }
}

/// Resolves `&name;` against the five predefined entities and character references only.
fn resolve_reference(name: &str) -> Result<String, KmsError> {
    let s = match name {
        "lt" => "<",
        "gt" => ">",
        "amp" => "&",
        "apos" => "'",
        "quot" => "\"",
        _ => {
            let bad = || KmsError::Xml {
                offset: 0,
                message: format!(
                    "entity &{}; is not allowed",
                    name.chars().take(40).collect::<String>()
                ),
            };
            let num = name.strip_prefix('#').ok_or_else(bad)?;
            let code = match num.strip_prefix('x') {
                Some(hex) => u32::from_str_radix(hex, 16),
                None => num.parse::<u32>(),
            };
            let c = code.ok().and_then(char::from_u32).ok_or_else(bad)?;
            let s = c.to_string();
            check_chars(&s)?;
            return Ok(s);
        }
    };
    Ok(s.to_owned())
}

fn resolved(reader: &NsReader<&[u8]>, r: &ResolveResult<'_>) -> Result<String, KmsError> {
    match r {
        ResolveResult::Unbound => Ok(String::new()),
        ResolveResult::Bound(n) => Ok(n.0.to_owned()),
        ResolveResult::Unknown(p) => Err(syntax(reader, format!("unbound prefix {p}"))),
    }
}

fn prefix_of(qname: &str) -> String {
    qname
        .split_once(':')
        .map_or_else(String::new, |(p, _)| p.to_owned())
}

fn open(reader: &NsReader<&[u8]>, e: &BytesStart<'_>) -> Result<Element, KmsError> {
    let (ns, local) = reader.resolver().resolve_element(e.name());
    let mut el = Element {
        ns: resolved(reader, &ns)?,
        prefix: prefix_of(e.name().as_ref()),
        local: local.as_ref().to_owned(),
        ..Element::default()
    };
    for attr in e.attributes() {
        let attr = attr.map_err(|err| syntax(reader, err))?;
        if attr.key.as_namespace_binding().is_some() {
            continue;
        }
        if el.attributes.len() >= 16 {
            return Err(syntax(reader, "too many attributes"));
        }
        let (ns, local) = reader.resolver().resolve_attribute(attr.key);
        let value = attr
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|err| syntax(reader, err))?;
        check_chars(&value)?;
        el.attributes.push(Attribute {
            ns: resolved(reader, &ns)?,
            prefix: prefix_of(attr.key.as_ref()),
            local: local.as_ref().to_owned(),
            value: value.into_owned(),
        });
    }
    Ok(el)
}

/// Appends text to the innermost open element (line ends normalized, XML 1.0 §2.11).
fn push_text(stack: &mut [Element], t: &str) -> Result<(), KmsError> {
    check_chars(t)?;
    let Some(top) = stack.last_mut() else {
        return if t.trim_matches([' ', '\t', '\r', '\n']).is_empty() {
            Ok(())
        } else {
            Err(KmsError::Xml {
                offset: 0,
                message: "text outside the document element".into(),
            })
        };
    };
    match top.children.last_mut() {
        Some(Node::Text(prev)) => prev.push_str(t),
        _ => top.children.push(Node::Text(t.to_owned())),
    }
    Ok(())
}

/// Parses a whole document into its document element.
///
/// # Errors
/// [`KmsError::TooLarge`] over [`MAX_DOCUMENT_LEN`], [`KmsError::Xml`] for anything not
/// well-formed or outside the bounds of this module.
pub fn parse(input: &[u8]) -> Result<Element, KmsError> {
    if input.len() > MAX_DOCUMENT_LEN {
        return Err(KmsError::TooLarge {
            max: MAX_DOCUMENT_LEN,
        });
    }
    let input = input.strip_prefix(b"\xef\xbb\xbf").unwrap_or(input);
    let text = std::str::from_utf8(input).map_err(|e| KmsError::Xml {
        offset: e.valid_up_to() as u64,
        message: "not UTF-8".into(),
    })?;
    let mut reader = NsReader::from_str(text);
    reader.resolver_mut().set_max_namespace_bindings(32);
    reader.config_mut().check_end_names = true;
    reader.config_mut().expand_empty_elements = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut nodes = 0usize;
    loop {
        let ev = reader.read_event().map_err(|err| syntax(&reader, err))?;
        match ev {
            Event::Start(e) => {
                if root.is_some() {
                    return Err(syntax(&reader, "content after the document element"));
                }
                nodes += 1;
                if stack.len() >= MAX_DEPTH || nodes > MAX_NODES {
                    return Err(syntax(&reader, "document too deep or too many elements"));
                }
                let el = open(&reader, &e)?;
                stack.push(el);
            }
            Event::End(_) => {
                let Some(done) = stack.pop() else {
                    return Err(syntax(&reader, "unbalanced end tag"));
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(Node::Element(done)),
                    None => root = Some(done),
                }
            }
            Event::Empty(_) => return Err(syntax(&reader, "unexpected empty element event")),
            Event::Text(t) => {
                push_text(&mut stack, &t.xml10_content())?;
            }
            Event::GeneralRef(r) => {
                let s = resolve_reference(&r.into_inner())?;
                push_text(&mut stack, &s)?;
            }
            Event::CData(c) => {
                push_text(&mut stack, &c.xml10_content())?;
            }
            Event::Decl(d) => {
                if let Some(enc) = d.encoding() {
                    let enc = enc.map_err(|err| syntax(&reader, err))?;
                    if !enc.eq_ignore_ascii_case("UTF-8") {
                        return Err(syntax(&reader, "only UTF-8 documents are read"));
                    }
                }
            }
            Event::Comment(_) => {}
            Event::PI(_) if stack.is_empty() => {}
            Event::PI(_) => return Err(syntax(&reader, "processing instruction in the document")),
            Event::DocType(_) => return Err(syntax(&reader, "a DTD is not allowed")),
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(syntax(&reader, "unclosed element"));
    }
    root.ok_or_else(|| syntax(&reader, "no document element"))
}

fn escape_text(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
}

fn escape_attr(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '"' => out.push_str("&quot;"),
            '\t' => out.push_str("&#x9;"),
            '\n' => out.push_str("&#xA;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
}

fn qname(out: &mut String, prefix: &str, local: &str) {
    if !prefix.is_empty() {
        out.push_str(prefix);
        out.push(':');
    }
    out.push_str(local);
}

/// Writes `e` in Exclusive XML Canonicalization 1.0 (no comments, no InclusiveNamespaces),
/// leaving out the direct children `skip` selects (the enveloped-signature transform).
///
/// `rendered` holds the namespace declarations in effect in the output around `e`: empty
/// for the apex of a canonicalized subtree.
fn write(
    out: &mut String,
    e: &Element,
    rendered: &BTreeMap<String, String>,
    skip: Option<&dyn Fn(&Element) -> bool>,
) {
    // Visibly utilized prefixes: the element's own and its prefixed attributes'.
    let mut decls: BTreeMap<String, String> = BTreeMap::new();
    decls.insert(e.prefix.clone(), e.ns.clone());
    for a in &e.attributes {
        if !a.prefix.is_empty() && a.ns != XML_NS {
            decls.insert(a.prefix.clone(), a.ns.clone());
        }
    }
    let mut inner = rendered.clone();
    let mut ns_out = String::new();
    for (p, uri) in decls {
        let before = rendered.get(&p).map_or("", String::as_str);
        if p.is_empty() && uri.is_empty() && before.is_empty() {
            continue;
        }
        if before == uri && rendered.contains_key(&p) {
            continue;
        }
        if p.is_empty() {
            ns_out.push_str(" xmlns=\"");
        } else {
            ns_out.push_str(" xmlns:");
            ns_out.push_str(&p);
            ns_out.push_str("=\"");
        }
        escape_attr(&mut ns_out, &uri);
        ns_out.push('"');
        inner.insert(p, uri);
    }
    out.push('<');
    qname(out, &e.prefix, &e.local);
    out.push_str(&ns_out);
    let mut attrs: Vec<&Attribute> = e.attributes.iter().collect();
    attrs.sort_by(|a, b| (a.ns.as_str(), a.local.as_str()).cmp(&(b.ns.as_str(), b.local.as_str())));
    for a in attrs {
        out.push(' ');
        qname(out, &a.prefix, &a.local);
        out.push_str("=\"");
        escape_attr(out, &a.value);
        out.push('"');
    }
    out.push('>');
    for n in &e.children {
        match n {
            Node::Text(t) => escape_text(out, t),
            Node::Element(c) if skip.is_some_and(|f| f(c)) => {}
            Node::Element(c) => write(out, c, &inner, None),
        }
    }
    out.push_str("</");
    qname(out, &e.prefix, &e.local);
    out.push('>');
}

/// The exclusive canonical form of `e` as the apex of a subtree.
#[must_use]
pub fn canonical(e: &Element) -> String {
    let mut out = String::new();
    write(&mut out, e, &BTreeMap::new(), None);
    out
}

/// The exclusive canonical form of `e` without the direct children `skip` selects.
#[must_use]
pub fn canonical_without(e: &Element, skip: &dyn Fn(&Element) -> bool) -> String {
    let mut out = String::new();
    write(&mut out, e, &BTreeMap::new(), Some(skip));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_form_declares_used_prefixes_sorts_attributes_and_drops_comments() {
        let doc = br#"<?xml version="1.0"?>
<!-- c --><a:r xmlns:a="urn:a" xmlns:b="urn:b" z="1" b:y="2" a="&amp;&#9;"><a:e/><!-- x --><c xmlns="urn:c">t&gt;&#13;</c></a:r>"#;
        let root = parse(doc).unwrap();
        assert_eq!(
            canonical(&root),
            "<a:r xmlns:a=\"urn:a\" xmlns:b=\"urn:b\" a=\"&amp;&#x9;\" z=\"1\" b:y=\"2\"><a:e></a:e><c xmlns=\"urn:c\">t&gt;&#xD;</c></a:r>"
        );
    }

    #[test]
    fn a_dtd_and_entities_are_refused() {
        assert!(parse(b"<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>").is_err());
        assert!(parse(b"<a>&x;</a>").is_err());
    }

    #[test]
    fn depth_is_bounded() {
        let deep = "<a>".repeat(MAX_DEPTH + 1) + &"</a>".repeat(MAX_DEPTH + 1);
        assert!(parse(deep.as_bytes()).is_err());
    }
}
