//! Text bounded for headers, reply texts and error reports: cut at a character boundary, with
//! an ellipsis saying so.

/// `text` cut to at most `max` bytes (plus the ellipsis), at a character boundary.
pub fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut at = max;
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    format!("{}…", &text[..at])
}

#[cfg(test)]
mod tests {
    #[test]
    fn cuts_at_a_character_boundary() {
        assert_eq!(super::cut("short", 10), "short");
        assert_eq!(super::cut("abcdef", 3), "abc…");
        assert_eq!(super::cut("aé", 2), "a…", "é is two bytes: the cut falls before it");
    }
}
