//! SSML: parsed with a real XML parser (`roxmltree`), checked against an
//! allow-list, and written out again as a canonical document that is the
//! only SSML an engine ever receives. The gateway parses at request time
//! (422 `invalid_ssml`); the worker parses the queued text again before it
//! renders (jobs are data from a queue), and the neural engine parses the
//! canonical text once more to find its pauses.
//!
//! Why an allow-list: libespeak-ng acts on elements we never meant to
//! offer — `<audio src>` made it open any file on the worker's disk (and
//! run `sox` on it), `<voice name>` loads voice files by name. So only the
//! elements and attributes below pass, each value checked; anything else
//! is refused naming the element or attribute:
//!
//! | element | attributes | engines |
//! |---|---|---|
//! | `speak` (outermost only) | `version`, `xml:lang` (accepted, dropped: the voice decides the language) | all |
//! | `p`, `s` | `xml:lang` (accepted, dropped) | all: end a sentence |
//! | `break` (empty) | `time` (`250ms`, `1.5s`; at most [`MAX_BREAK_MS`]), `strength` | all: silence |
//! | `prosody` | `rate` (keyword or 50%–200%), `pitch`, `range` (keyword or ±100%), `volume` (keyword or ±100%) | espeak-ng; Piper reads the text |
//! | `emphasis` | `level` | espeak-ng; Piper reads the text |
//! | `say-as` | `interpret-as` (required), `format`, `detail` | espeak-ng; Piper reads the text |
//! | `sub` | `alias` (required) | all: the alias is spoken |
//! | `phoneme` | `ph` (required), `alphabet` | espeak-ng and Piper read the text |
//! | `mark` (empty) | `name` (required) | espeak-ng; Piper ignores it |
//!
//! No DTD or DOCTYPE (so no entity can be declared: only the five XML
//! entities and numeric character references exist), no processing
//! instruction but the XML declaration, elements only in no namespace or
//! the SSML one. A text without `<speak>` is read as the content of one.
//! The canonical form has UTF-8 text with `&`, `<`, `>` escaped, only
//! allowed attributes with normalised values, no comments.

use std::fmt::Write as _;

use roxmltree::{Document, Node as XmlNode, NodeType, ParsingOptions};

/// The SSML namespace (<https://www.w3.org/TR/speech-synthesis11/>).
pub const SSML_NAMESPACE: &str = "http://www.w3.org/2001/10/synthesis";
const XML_NAMESPACE: &str = "http://www.w3.org/XML/1998/namespace";
/// Longest `<break>`, as Amazon Polly allows.
pub const MAX_BREAK_MS: u32 = 10_000;
/// Elements nest at most this deep (the walk below recurses).
pub const MAX_DEPTH: usize = 32;

/// A validated SSML document: only allowed elements and attributes.
#[derive(Debug, Clone, PartialEq)]
pub struct Ssml {
    children: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// Decoded text (entities and character references resolved).
    Text(String),
    Element(Element),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Element {
    pub name: &'static str,
    /// Kept attributes in the allow-list's order, values normalised.
    pub attributes: Vec<(&'static str, String)>,
    pub children: Vec<Node>,
}

impl Element {
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What an engine without SSML support speaks: text, or a pause.
#[derive(Debug, Clone, PartialEq)]
pub enum Spoken {
    Text(String),
    Pause { ms: u32 },
}

/// What is wrong with a document, in words a customer can act on
/// (naming the element or attribute).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SsmlError(pub String);

fn err<T>(message: impl Into<String>) -> Result<T, SsmlError> {
    Err(SsmlError(message.into()))
}

/// A checked value to keep in the canonical form, or an accepted
/// attribute that no engine gets.
enum Keep {
    Value(String),
    Drop,
}

type Check = fn(&str) -> Result<Keep, String>;

struct Rule {
    name: &'static str,
    attributes: &'static [(&'static str, Check)],
    required: &'static [&'static str],
    /// No content allowed (`<break/>`, `<mark/>`).
    empty: bool,
}

const RULES: &[Rule] = &[
    Rule {
        name: "speak",
        attributes: &[("version", check_version), ("xml:lang", check_lang)],
        required: &[],
        empty: false,
    },
    Rule {
        name: "p",
        attributes: &[("xml:lang", check_lang)],
        required: &[],
        empty: false,
    },
    Rule {
        name: "s",
        attributes: &[("xml:lang", check_lang)],
        required: &[],
        empty: false,
    },
    Rule {
        name: "break",
        attributes: &[("time", check_break_time), ("strength", check_strength)],
        required: &[],
        empty: true,
    },
    Rule {
        name: "prosody",
        attributes: &[
            ("rate", check_rate),
            ("pitch", check_pitch),
            ("range", check_pitch),
            ("volume", check_volume),
        ],
        required: &[],
        empty: false,
    },
    Rule {
        name: "emphasis",
        attributes: &[("level", check_level)],
        required: &[],
        empty: false,
    },
    Rule {
        name: "say-as",
        attributes: &[
            ("interpret-as", check_interpret_as),
            ("format", check_token),
            ("detail", check_token),
        ],
        required: &["interpret-as"],
        empty: false,
    },
    Rule {
        name: "sub",
        attributes: &[("alias", check_alias)],
        required: &["alias"],
        empty: false,
    },
    Rule {
        name: "phoneme",
        attributes: &[("ph", check_ph), ("alphabet", check_alphabet)],
        required: &["ph"],
        empty: false,
    },
    Rule {
        name: "mark",
        attributes: &[("name", check_mark_name)],
        required: &["name"],
        empty: true,
    },
];

fn allowed_elements() -> String {
    RULES.iter().map(|r| r.name).collect::<Vec<_>>().join(", ")
}

/// Why SSML is refused, with the API's code: `invalid_ssml` (off the
/// allow-list, malformed) or `audio_too_long` (its breaks exceed
/// [`crate::credits::max_pause_ms`] for a text of that many characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

/// [`parse`], and the pause ceiling: the one rule the gateway applies at
/// request time and the worker again before rendering.
pub fn parse_within_ceiling(text: &str, characters: u64) -> Result<Ssml, Refusal> {
    let ssml = parse(text).map_err(|problem| Refusal {
        code: "invalid_ssml",
        message: format!("text is not valid SSML: {problem}"),
    })?;
    let breaks_ms = ssml.break_ms_total();
    let ceiling_ms = crate::credits::max_pause_ms(characters);
    if breaks_ms > ceiling_ms {
        return Err(Refusal {
            code: "audio_too_long",
            message: format!(
                "the breaks add up to {:.1} s, but a text of {characters} characters may pause for at most {:.1} s ({} s per character, at least {} s)",
                breaks_ms as f64 / 1000.0,
                ceiling_ms as f64 / 1000.0,
                crate::credits::MAX_PAUSE_SECS_PER_CHARACTER,
                crate::credits::MIN_AUDIO_CEILING_SECS,
            ),
        });
    }
    Ok(ssml)
}

/// Parses and checks `text` (a `<speak>` document, or SSML content without
/// one). `Err` names what is not allowed or not well-formed.
pub fn parse(text: &str) -> Result<Ssml, SsmlError> {
    // No DTD: no entity declarations, so nothing external or expanding.
    let options = ParsingOptions {
        allow_dtd: false,
        ..ParsingOptions::default()
    };
    let (source, shift) = if is_document(text) {
        (std::borrow::Cow::Borrowed(text), 0)
    } else {
        let wrapped = format!("<speak>{text}</speak>");
        (std::borrow::Cow::Owned(wrapped), "<speak>".len() as u32)
    };
    let doc = Document::parse_with_options(&source, options)
        .map_err(|e| SsmlError(describe_xml_error(&e, shift)))?;
    let root = doc.root_element();
    for top in doc.root().children() {
        if top.node_type() == NodeType::PI {
            return err(pi_message(&top));
        }
    }
    let name = element_name(&root)?;
    if name != "speak" {
        return err(format!(
            "the outermost element is <{name}>; a document starts with <speak>"
        ));
    }
    let speak = check_element(&root, 0)?;
    Ok(Ssml {
        children: speak.children,
    })
}

/// The old name: `Ok` if `text` is SSML voiceprod accepts.
pub fn validate(text: &str) -> Result<(), SsmlError> {
    parse(text).map(|_| ())
}

/// After whitespace and comments, an XML declaration, a DOCTYPE (refused
/// by the parser) or `<speak`: the text is a whole document.
fn is_document(text: &str) -> bool {
    let mut rest = text.trim_start();
    while let Some(after) = rest.strip_prefix("<!--") {
        match after.find("-->") {
            Some(end) => rest = after[end + 3..].trim_start(),
            None => return true,
        }
    }
    let lower = rest.get(..9).unwrap_or(rest).to_ascii_lowercase();
    lower.starts_with("<?xml")
        || lower.starts_with("<!doctype")
        || rest
            .strip_prefix("<speak")
            .is_some_and(|r| r.starts_with(|c: char| c.is_whitespace() || c == '>' || c == '/'))
}

fn describe_xml_error(e: &roxmltree::Error, shift: u32) -> String {
    if matches!(e, roxmltree::Error::DtdDetected) {
        return "a DOCTYPE (DTD) is not allowed in SSML".to_owned();
    }
    let pos = e.pos();
    let message = e.to_string();
    let suffix = format!(" at {}:{}", pos.row, pos.col);
    match message.strip_suffix(&suffix) {
        Some(what) => {
            let col = if pos.row == 1 {
                pos.col.saturating_sub(shift).max(1)
            } else {
                pos.col
            };
            format!(
                "not well-formed XML: {what} at line {}, column {col}",
                pos.row
            )
        }
        None => format!("not well-formed XML: {message}"),
    }
}

fn pi_message(node: &XmlNode) -> String {
    let target = node.pi().map_or("", |pi| pi.target);
    format!(
        "processing instructions (<?{target} ...?>) are not allowed; only the XML declaration at the start"
    )
}

/// `speak`, `say-as`, …: the local name of an SSML element, or an error
/// naming an element of another namespace.
fn element_name<'a>(node: &XmlNode<'a, '_>) -> Result<&'a str, SsmlError> {
    let tag = node.tag_name();
    match tag.namespace() {
        None | Some(SSML_NAMESPACE) => Ok(tag.name()),
        Some(ns) => {
            let shown = match node.lookup_prefix(ns) {
                Some(prefix) if !prefix.is_empty() => format!("{prefix}:{}", tag.name()),
                _ => tag.name().to_owned(),
            };
            err(format!(
                "element <{shown}> (namespace {ns}) is not allowed; SSML elements allowed: {}",
                allowed_elements()
            ))
        }
    }
}

/// Checks one element and its content.
fn check_element(node: &XmlNode, depth: usize) -> Result<Element, SsmlError> {
    if depth >= MAX_DEPTH {
        return err(format!("elements nest deeper than {MAX_DEPTH} levels"));
    }
    let name = element_name(node)?;
    let Some(rule) = RULES.iter().find(|r| r.name == name) else {
        if name == "audio" {
            return err(
                "element <audio> is not allowed: voiceprod does not play audio files or URLs from SSML",
            );
        }
        return err(format!(
            "element <{name}> is not allowed; SSML elements allowed: {}",
            allowed_elements()
        ));
    };
    if name == "speak" && depth > 0 {
        return err("<speak> may only be the outermost element");
    }
    let mut attributes = Vec::new();
    let mut seen: Vec<&'static str> = Vec::new();
    for attr in node.attributes() {
        let shown = match attr.namespace() {
            None => attr.name().to_owned(),
            Some(XML_NAMESPACE) => format!("xml:{}", attr.name()),
            Some(ns) => format!("{{{ns}}}{}", attr.name()),
        };
        let Some((key, check)) = rule.attributes.iter().find(|(n, _)| *n == shown) else {
            let allowed: Vec<&str> = rule.attributes.iter().map(|(n, _)| *n).collect();
            return err(if allowed.is_empty() {
                format!("attribute {shown} is not allowed on <{name}>, which takes none")
            } else {
                format!(
                    "attribute {shown} is not allowed on <{name}>; allowed: {}",
                    allowed.join(", ")
                )
            });
        };
        check_characters(attr.value()).map_err(|m| SsmlError(format!("<{name} {shown}>: {m}")))?;
        match check(attr.value()) {
            Ok(Keep::Value(v)) => attributes.push((*key, v)),
            Ok(Keep::Drop) => {}
            Err(why) => {
                return err(format!(
                    "<{name} {shown}=\"{}\">: {why}",
                    shorten(attr.value())
                ));
            }
        }
        seen.push(key);
    }
    for required in rule.required {
        if !seen.contains(required) {
            return err(format!("<{name}> needs a {required} attribute"));
        }
    }
    // Canonical attribute order: the allow-list's.
    attributes.sort_by_key(|(n, _)| rule.attributes.iter().position(|(r, _)| r == n));
    let mut children = Vec::new();
    for child in node.children() {
        match child.node_type() {
            NodeType::Element => {
                if rule.empty {
                    return err(format!("<{name}> must be empty"));
                }
                children.push(Node::Element(check_element(&child, depth + 1)?));
            }
            NodeType::Text => {
                let text = child.text().unwrap_or("");
                if rule.empty && !text.trim().is_empty() {
                    return err(format!("<{name}> must be empty"));
                }
                check_characters(text).map_err(SsmlError)?;
                match children.last_mut() {
                    Some(Node::Text(t)) => t.push_str(text),
                    _ => children.push(Node::Text(text.to_owned())),
                }
            }
            NodeType::PI => return err(pi_message(&child)),
            // Comments are dropped.
            NodeType::Comment | NodeType::Root => {}
        }
    }
    if rule.empty {
        children.clear();
    }
    Ok(Element {
        name: rule.name,
        attributes,
        children,
    })
}

/// Character references can name characters the raw text could not carry.
fn check_characters(s: &str) -> Result<(), String> {
    match s
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        Some(c) => Err(format!(
            "control character U+{:04X} is not allowed",
            u32::from(c)
        )),
        None => Ok(()),
    }
}

fn shorten(s: &str) -> String {
    if s.chars().count() <= 40 {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(40).collect();
        out.push('…');
        out
    }
}

fn one_of(value: &str, allowed: &[&str]) -> Result<Keep, String> {
    let v = value.trim();
    if allowed.contains(&v) {
        Ok(Keep::Value(v.to_owned()))
    } else {
        Err(format!("use one of {}", allowed.join(", ")))
    }
}

fn check_version(v: &str) -> Result<Keep, String> {
    one_of(v, &["1.0", "1.1"]).map(|_| Keep::Drop)
}

fn check_lang(v: &str) -> Result<Keep, String> {
    let v = v.trim();
    let ok = (1..=35).contains(&v.len())
        && v.split('-')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric()));
    if ok {
        Ok(Keep::Drop)
    } else {
        Err("a language tag such as en-US".to_owned())
    }
}

/// `250ms`, `3s`, `1.5s` (SSML time designations).
pub fn break_time_ms(v: &str) -> Option<f64> {
    let v = v.trim();
    let (number, scale) = if let Some(n) = v.strip_suffix("ms") {
        (n, 1.0)
    } else {
        (v.strip_suffix('s')?, 1000.0)
    };
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    let valid = match number.split_once('.') {
        None => digits(number),
        Some((whole, frac)) => (whole.is_empty() || digits(whole)) && digits(frac),
    };
    if !valid || number.len() > 12 {
        return None;
    }
    number.parse::<f64>().ok().map(|n| n * scale)
}

fn check_break_time(v: &str) -> Result<Keep, String> {
    let ms = break_time_ms(v).ok_or("a time such as 250ms or 1.5s")?;
    if ms > f64::from(MAX_BREAK_MS) {
        return Err(format!("a break is at most {}s", MAX_BREAK_MS / 1000));
    }
    Ok(Keep::Value(format!("{}ms", ms.round() as u32)))
}

const STRENGTHS: &[(&str, u32)] = &[
    ("none", 0),
    ("x-weak", 100),
    ("weak", 250),
    ("medium", 500),
    ("strong", 1000),
    ("x-strong", 1500),
];

fn check_strength(v: &str) -> Result<Keep, String> {
    let names: Vec<&str> = STRENGTHS.iter().map(|(n, _)| *n).collect();
    one_of(v, &names)
}

/// A number with an optional sign and a `%`, within `min..=max`.
fn percentage(v: &str, signed: bool, min: f64, max: f64) -> Option<String> {
    let n = v.trim().strip_suffix('%')?;
    let (sign, digits) = match n.chars().next()? {
        c @ ('+' | '-') if signed => (Some(c), &n[1..]),
        _ => (None, n),
    };
    let valid = !digits.is_empty()
        && digits.len() <= 8
        && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
        && digits.chars().filter(|&c| c == '.').count() <= 1
        && !digits.starts_with('.')
        && !digits.ends_with('.');
    let value: f64 = digits.parse().ok().filter(|_| valid)?;
    let value = if sign == Some('-') { -value } else { value };
    (min..=max).contains(&value).then(|| match sign {
        Some(_) => format!("{value:+}%"),
        None => format!("{value}%"),
    })
}

/// Slowest `prosody rate` as a percentage of the voice's own rate: slower
/// speech is more audio per credit.
pub const MIN_RATE_PERCENT: f64 = 50.0;
pub const MAX_RATE_PERCENT: f64 = 200.0;

fn check_rate(v: &str) -> Result<Keep, String> {
    if let Ok(k) = one_of(
        v,
        &["x-slow", "slow", "medium", "fast", "x-fast", "default"],
    ) {
        return Ok(k);
    }
    percentage(v, false, MIN_RATE_PERCENT, MAX_RATE_PERCENT)
        .map(Keep::Value)
        .ok_or_else(|| {
            format!(
                "use x-slow, slow, medium, fast, x-fast, default or a percentage from {MIN_RATE_PERCENT}% to {MAX_RATE_PERCENT}%"
            )
        })
}

fn check_pitch(v: &str) -> Result<Keep, String> {
    if let Ok(k) = one_of(v, &["x-low", "low", "medium", "high", "x-high", "default"]) {
        return Ok(k);
    }
    percentage(v, true, -100.0, 100.0)
        .map(Keep::Value)
        .ok_or_else(|| {
            "use x-low, low, medium, high, x-high, default or a change from -100% to +100%"
                .to_owned()
        })
}

fn check_volume(v: &str) -> Result<Keep, String> {
    if let Ok(k) = one_of(
        v,
        &[
            "silent", "x-soft", "soft", "medium", "loud", "x-loud", "default",
        ],
    ) {
        return Ok(k);
    }
    percentage(v, true, -100.0, 100.0)
        .map(Keep::Value)
        .ok_or_else(|| {
            "use silent, x-soft, soft, medium, loud, x-loud, default or a change from -100% to +100%"
                .to_owned()
        })
}

fn check_level(v: &str) -> Result<Keep, String> {
    one_of(v, &["strong", "moderate", "none", "reduced"])
}

fn check_interpret_as(v: &str) -> Result<Keep, String> {
    one_of(
        v,
        &[
            "characters",
            "spell-out",
            "cardinal",
            "number",
            "ordinal",
            "digits",
            "fraction",
            "unit",
            "date",
            "time",
            "telephone",
            "address",
            "currency",
            "verbatim",
            "tts:char",
            "tts:digits",
        ],
    )
}

/// `format` and `detail` of `say-as`: short words like `mdy` or `1`.
fn check_token(v: &str) -> Result<Keep, String> {
    let v = v.trim();
    let ok = (1..=32).contains(&v.len())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | ':' | '_'));
    if ok {
        Ok(Keep::Value(v.to_owned()))
    } else {
        Err("at most 32 letters, digits, '-', ':' or '_'".to_owned())
    }
}

fn check_alias(v: &str) -> Result<Keep, String> {
    if v.trim().is_empty() || v.chars().count() > 1000 {
        Err("1 to 1000 characters to speak".to_owned())
    } else {
        Ok(Keep::Value(v.to_owned()))
    }
}

fn check_ph(v: &str) -> Result<Keep, String> {
    if v.trim().is_empty() || v.chars().count() > 255 {
        Err("1 to 255 characters of phonemes".to_owned())
    } else {
        Ok(Keep::Value(v.trim().to_owned()))
    }
}

fn check_alphabet(v: &str) -> Result<Keep, String> {
    one_of(v, &["ipa", "x-sampa"])
}

fn check_mark_name(v: &str) -> Result<Keep, String> {
    let ok = (1..=64).contains(&v.len())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
    if ok {
        Ok(Keep::Value(v.to_owned()))
    } else {
        Err("at most 64 letters, digits, '-', '_', '.' or ':'".to_owned())
    }
}

impl Ssml {
    /// The content of `<speak>`.
    pub fn children(&self) -> &[Node] {
        &self.children
    }

    /// The document as engines receive it: `<speak>`, only allowed
    /// elements and attributes, text escaped (a `&lt;` in the text is a
    /// character, never markup).
    pub fn to_canonical(&self) -> String {
        let mut out = String::from("<speak>");
        write_nodes(&mut out, &self.children);
        out.push_str("</speak>");
        out
    }

    /// Every `<break>`'s pause added up: audio the document produces
    /// whatever is spoken.
    pub fn break_ms_total(&self) -> u64 {
        fn walk(nodes: &[Node], total: &mut u64) {
            for node in nodes {
                if let Node::Element(e) = node {
                    if e.name == "break" {
                        *total += u64::from(break_ms(e));
                    }
                    walk(&e.children, total);
                }
            }
        }
        let mut total = 0;
        walk(&self.children, &mut total);
        total
    }

    /// What an engine that cannot read SSML speaks: text (a `<p>` or `<s>`
    /// ends a sentence with a line break, a `<sub>` speaks its alias) and
    /// pauses (`<break>`). Empty texts are left out.
    pub fn spoken(&self) -> Vec<Spoken> {
        fn walk(nodes: &[Node], text: &mut String, out: &mut Vec<Spoken>) {
            for node in nodes {
                match node {
                    Node::Text(t) => text.push_str(t),
                    Node::Element(e) => match e.name {
                        "break" => {
                            out.push(Spoken::Text(std::mem::take(text)));
                            out.push(Spoken::Pause { ms: break_ms(e) });
                        }
                        "sub" => {
                            text.push_str(e.attribute("alias").unwrap_or(""));
                        }
                        "p" | "s" => {
                            text.push('\n');
                            walk(&e.children, text, out);
                            text.push('\n');
                        }
                        _ => walk(&e.children, text, out),
                    },
                }
            }
        }
        let mut out = Vec::new();
        let mut text = String::new();
        walk(&self.children, &mut text, &mut out);
        out.push(Spoken::Text(text));
        out.retain(|s| !matches!(s, Spoken::Text(t) if t.trim().is_empty()));
        out
    }
}

/// The pause of a checked `<break>`: its `time`, else its `strength`
/// (medium when it has neither).
pub fn break_ms(e: &Element) -> u32 {
    if let Some(ms) = e.attribute("time").and_then(break_time_ms) {
        return (ms.round() as u32).min(MAX_BREAK_MS);
    }
    let strength = e.attribute("strength").unwrap_or("medium");
    STRENGTHS
        .iter()
        .find(|(n, _)| *n == strength)
        .map_or(500, |(_, ms)| *ms)
}

fn write_nodes(out: &mut String, nodes: &[Node]) {
    for node in nodes {
        match node {
            Node::Text(t) => escape_into(out, t, false),
            Node::Element(e) => {
                out.push('<');
                out.push_str(e.name);
                for (name, value) in &e.attributes {
                    let _ = write!(out, " {name}=\"");
                    escape_into(out, value, true);
                    out.push('"');
                }
                if e.children.is_empty() {
                    out.push_str("/>");
                } else {
                    out.push('>');
                    write_nodes(out, &e.children);
                    let _ = write!(out, "</{}>", e.name);
                }
            }
        }
    }
}

fn escape_into(out: &mut String, s: &str, attribute: bool) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attribute => out.push_str("&quot;"),
            '\'' if attribute => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> String {
        match parse(text) {
            Ok(ssml) => panic!("accepted {text:?} as {}", ssml.to_canonical()),
            Err(e) => e.0,
        }
    }

    #[test]
    fn accepts_well_formed_ssml_of_allowed_elements() {
        for ok in [
            "<speak>Hello <break time=\"300ms\"/> world</speak>",
            "<?xml version=\"1.0\"?><speak><!-- hi --><prosody rate='slow'>Tom &amp; Jerry</prosody></speak>",
            "plain text is fine too",
            "Hello <break/> fragment <emphasis>without</emphasis> speak",
            "<speak version=\"1.0\" xmlns=\"http://www.w3.org/2001/10/synthesis\" xml:lang=\"en-US\"><p><s>One.</s></p></speak>",
            "<speak><say-as interpret-as=\"characters\">abc</say-as> <sub alias=\"World Wide Web\">WWW</sub> <phoneme alphabet=\"ipa\" ph=\"təˈmeɪtoʊ\">tomato</phoneme><mark name=\"m1\"/></speak>",
            "<speak><prosody rate=\"80%\" pitch=\"+10%\" volume=\"loud\" range=\"-20%\">x</prosody></speak>",
            "<!-- leading comment --><speak>x</speak>",
        ] {
            assert!(parse(ok).is_ok(), "{ok}: {:?}", parse(ok));
        }
    }

    #[test]
    fn refuses_malformed_ssml() {
        for bad in [
            "<speak>Hello",
            "<speak>Hello</voice></speak>",
            "</speak>",
            "<speak>Tom & Jerry</speak>",
            "<speak <b>x</b></speak>",
            "<speak>unterminated <break",
            "<speak><prosody rate=\"slow>x</prosody></speak>",
            "<>x",
            "<speak>a</speak>trailing",
            "<speak><break time=\"1s\" time=\"2s\"/></speak>",
        ] {
            refused(bad);
        }
    }

    #[test]
    fn refuses_audio_naming_it_wherever_it_is() {
        for bad in [
            "<speak>Hi.<audio src=\"/etc/passwd\"/></speak>",
            "Hi.<audio src=\"file:///etc/passwd\">alt</audio>",
            "<speak><p><prosody rate=\"slow\"><audio src=\"x.wav\"/></prosody></p></speak>",
            "<speak xmlns=\"http://www.w3.org/2001/10/synthesis\"><audio src=\"x.wav\"/></speak>",
        ] {
            let message = refused(bad);
            assert!(message.contains("<audio>"), "{bad}: {message}");
        }
    }

    #[test]
    fn refuses_elements_and_attributes_off_the_list_naming_them() {
        for (bad, named) in [
            (
                "<speak><voice name=\"../../etc\">x</voice></speak>",
                "<voice>",
            ),
            ("<speak><metadata>x</metadata></speak>", "<metadata>"),
            (
                "<speak><break time=\"1s\" src=\"/etc/passwd\"/></speak>",
                "attribute src",
            ),
            ("<speak><p onload=\"x\">x</p></speak>", "attribute onload"),
            ("<speak><s xml:base=\"/etc/\">x</s></speak>", "xml:base"),
            (
                "<speak xmlns:a=\"http://amazon.com\"><a:effect>x</a:effect></speak>",
                "<a:effect>",
            ),
            ("<speak><speak>x</speak></speak>", "<speak>"),
            ("<p>x</p><voice>y</voice>", "<voice>"),
            (
                "<speak><break>text</break></speak>",
                "<break> must be empty",
            ),
            ("<speak><sub>x</sub></speak>", "alias"),
        ] {
            let message = refused(bad);
            assert!(message.contains(named), "{bad}: {message} lacks {named}");
        }
    }

    #[test]
    fn refuses_dtds_entities_and_processing_instructions() {
        for (bad, named) in [
            (
                "<!DOCTYPE speak [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><speak>&x;</speak>",
                "DOCTYPE",
            ),
            ("<!DOCTYPE speak><speak>x</speak>", "DOCTYPE"),
            ("<speak>&x;</speak>", "not well-formed"),
            ("<speak>&nbsp;</speak>", "not well-formed"),
            (
                "<?xml-stylesheet href=\"x\"?><speak>x</speak>",
                "processing instruction",
            ),
            (
                "<speak><?php system('id') ?>x</speak>",
                "processing instruction",
            ),
            ("<speak>a&#0;b</speak>", "not well-formed"),
            ("<speak>a&#x7F;b</speak>", "control character"),
        ] {
            let message = refused(bad);
            assert!(message.contains(named), "{bad}: {message} lacks {named}");
        }
    }

    #[test]
    fn breaks_are_capped_at_ten_seconds_naming_the_limit() {
        let message = refused("<speak>a<break time=\"20000s\"/>b</speak>");
        assert!(message.contains("at most 10s"), "{message}");
        refused("<speak><break time=\"10001ms\"/></speak>");
        refused("<speak><break time=\"-1s\"/></speak>");
        refused("<speak><break time=\"1e9ms\"/></speak>");
        let ok = parse("<speak>a<break time=\"10s\"/><break time=\"1.5s\"/><break time=\"250ms\"/><break strength=\"strong\"/><break/></speak>").unwrap();
        assert_eq!(ok.break_ms_total(), 10_000 + 1_500 + 250 + 1_000 + 500);
    }

    #[test]
    fn slow_rates_below_half_are_refused() {
        refused("<speak><prosody rate=\"10%\">slow</prosody></speak>");
        refused("<speak><prosody rate=\"0.1\">slow</prosody></speak>");
        assert!(parse("<speak><prosody rate=\"50%\">x</prosody></speak>").is_ok());
    }

    #[test]
    fn canonical_form_keeps_only_what_was_checked_with_text_escaped() {
        let ssml = parse(
            "<?xml version=\"1.0\"?>\n<speak version=\"1.0\" xmlns=\"http://www.w3.org/2001/10/synthesis\" xml:lang=\"en-US\"><!-- c -->Caf&#233; &#xE9; &amp; &lt;audio src=&quot;/etc/passwd&quot;/&gt;<break strength=' strong ' time=\"1.5s\"/><sub alias=\"a &quot;b&quot;\">x</sub></speak>",
        )
        .unwrap();
        assert_eq!(
            ssml.to_canonical(),
            "<speak>Café é &amp; &lt;audio src=\"/etc/passwd\"/&gt;<break time=\"1500ms\" strength=\"strong\"/><sub alias=\"a &quot;b&quot;\">x</sub></speak>"
        );
        // The canonical form is itself accepted, unchanged.
        let again = parse(&ssml.to_canonical()).unwrap();
        assert_eq!(again.to_canonical(), ssml.to_canonical());
    }

    #[test]
    fn spoken_pieces_decode_references_and_follow_breaks_sub_and_sentences() {
        let ssml = parse(
            "<speak>Hi &amp; bye<break time=\"300ms\"/>Caf&#233; &#xE9;<break strength=\"strong\"/><emphasis>x</emphasis> <sub alias=\"World Wide Web\">WWW</sub><p>One</p><mark name=\"m\"/></speak>",
        )
        .unwrap();
        assert_eq!(
            ssml.spoken(),
            vec![
                Spoken::Text("Hi & bye".into()),
                Spoken::Pause { ms: 300 },
                Spoken::Text("Café é".into()),
                Spoken::Pause { ms: 1000 },
                Spoken::Text("x World Wide Web\nOne\n".into()),
            ]
        );
    }

    #[test]
    fn errors_in_a_fragment_point_at_the_customer_text() {
        let message = refused("ab</x>");
        assert!(message.contains("line 1, column 3"), "{message}");
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = format!("{}x{}", "<s>".repeat(40), "</s>".repeat(40));
        assert!(refused(&deep).contains("nest deeper"));
    }
}
