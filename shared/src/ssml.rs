//! A well-formedness check of SSML: the gateway refuses invalid SSML at
//! request time (422 `invalid_ssml`) and the worker checks again before it
//! reaches the engine.
//!
//! espeak-ng reads SSML leniently: an unclosed or misspelled tag is read
//! aloud or silently dropped, and the customer gets audio that is not what
//! they wrote. We refuse instead (`invalid_ssml`, credits refunded): tags
//! must nest and close, comments and processing instructions must end,
//! and `&` must start an entity. Which elements espeak-ng supports is its
//! business; unknown elements are ignored by it.

/// `Err` says what is wrong, in words a customer can act on.
pub fn validate(ssml: &str) -> Result<(), String> {
    let mut open: Vec<&str> = Vec::new();
    let mut rest = ssml;
    while let Some(start) = rest.find('<') {
        check_text(&rest[..start])?;
        let after = &rest[start + 1..];
        if let Some(comment) = after.strip_prefix("!--") {
            let end = comment
                .find("-->")
                .ok_or("a comment <!-- is never closed")?;
            rest = &comment[end + 3..];
            continue;
        }
        if let Some(pi) = after.strip_prefix('?') {
            let end = pi.find("?>").ok_or("a <? declaration is never closed")?;
            rest = &pi[end + 2..];
            continue;
        }
        let end = after.find('>').ok_or("a tag is never closed with '>'")?;
        let tag = &after[..end];
        rest = &after[end + 1..];
        if tag.contains('<') {
            return Err(format!("malformed tag <{tag}>"));
        }
        if let Some(name) = tag.strip_prefix('/') {
            let name = name.trim();
            match open.pop() {
                Some(o) if o == name => {}
                Some(o) => return Err(format!("</{name}> closes <{o}>")),
                None => return Err(format!("</{name}> closes nothing")),
            }
            continue;
        }
        let self_closing = tag.ends_with('/');
        let body = tag.trim_end_matches('/');
        let name = body.split_whitespace().next().unwrap_or("");
        let name_ok = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ':' | '.'))
            && body.starts_with(name);
        if !name_ok {
            return Err(format!("malformed tag <{tag}>"));
        }
        if !quotes_balanced(body) {
            return Err(format!("unbalanced quotes in <{tag}>"));
        }
        if !self_closing {
            open.push(name);
        }
    }
    check_text(rest)?;
    match open.pop() {
        Some(o) => Err(format!("<{o}> is never closed")),
        None => Ok(()),
    }
}

/// Attribute values are closed by the quote that opened them.
fn quotes_balanced(tag: &str) -> bool {
    let mut quote: Option<char> = None;
    for c in tag.chars() {
        match quote {
            None if c == '"' || c == '\'' => quote = Some(c),
            Some(q) if c == q => quote = None,
            _ => {}
        }
    }
    quote.is_none()
}

/// Text between tags: every `&` starts an entity like `&amp;` or `&#233;`.
fn check_text(text: &str) -> Result<(), String> {
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        let after = &rest[amp + 1..];
        let end = after.find(';').filter(|&e| {
            e > 0
                && after[..e]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '#')
        });
        let Some(end) = end else {
            return Err("'&' must start an entity such as &amp;".to_owned());
        };
        rest = &after[end + 1..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::validate;

    #[test]
    fn accepts_well_formed_ssml() {
        for ok in [
            "<speak>Hello <break time=\"300ms\"/> world</speak>",
            "<?xml version=\"1.0\"?><speak><!-- hi --><prosody rate='slow'>Tom &amp; Jerry</prosody></speak>",
            "plain text is fine too",
        ] {
            assert_eq!(validate(ok), Ok(()), "{ok}");
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
        ] {
            assert!(validate(bad).is_err(), "{bad}");
        }
    }
}
