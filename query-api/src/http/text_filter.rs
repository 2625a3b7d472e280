//! Text filters of the listings (`brand`, `region`, `q`): how a reader's text is accepted, and
//! how it is matched literally against the lower-cased copies the read models keep.

/// The longest `q` (or other text filter) accepted.
const MAX_TEXT: usize = 200;

/// A text filter: trimmed, at most [`MAX_TEXT`] characters, no control characters;
/// lower-cased (the read models keep lower-cased copies to match against).
pub(super) fn plain_text(raw: &str) -> Result<String, String> {
    let text = raw.trim();
    if text.chars().count() > MAX_TEXT {
        Err(format!("must be at most {MAX_TEXT} characters"))
    } else if text.chars().any(char::is_control) {
        Err("must not contain control characters".to_owned())
    } else {
        Ok(text.to_lowercase())
    }
}

/// `text` as a regular expression that matches exactly that text.
fn escape_regex(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() * 2);
    for c in text.chars() {
        if c.is_ascii_punctuation() || c == ' ' {
            pattern.push('\\');
            pattern.push(c);
        } else {
            pattern.push(c);
        }
    }
    pattern
}

/// A filter on `text` that matches it literally: no character of it can act as a pattern or
/// an operator.
pub(super) fn literal(text: &str) -> mongodb::bson::Regex {
    mongodb::bson::Regex {
        pattern: escape_regex(text),
        options: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_text_has_no_pattern_characters_left() {
        assert_eq!(escape_regex(".*"), "\\.\\*");
        assert_eq!(escape_regex("a+b (c)"), "a\\+b\\ \\(c\\)");
        assert_eq!(escape_regex("{\"$ne\":null}"), "\\{\\\"\\$ne\\\"\\:null\\}");
        assert_eq!(escape_regex("é^$|"), "é\\^\\$\\|");
    }
}
