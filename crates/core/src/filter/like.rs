//! SQL's LIKE: `%` matches any run of characters, `_` exactly one, and the escape character makes
//! the next one literal. Matched by the classic two-pointer wildcard walk (linear memory, at
//! worst text length times pattern length steps: both are bounded), never a regular expression.

#[derive(Debug, Clone, Copy, PartialEq)]
enum Token {
    Any,
    One,
    Char(char),
}

fn tokens(pattern: &str, escape: Option<char>) -> Vec<Token> {
    let mut out = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        out.push(match c {
            c if Some(c) == escape => Token::Char(chars.next().unwrap_or(c)),
            '%' => Token::Any,
            '_' => Token::One,
            c => Token::Char(c),
        });
    }
    out
}

/// Whether `text` matches `pattern`.
pub fn like(text: &str, pattern: &str, escape: Option<char>) -> bool {
    let pattern = tokens(pattern, escape);
    let text: Vec<char> = text.chars().collect();
    let (mut t, mut p) = (0, 0);
    // The last `%` seen and the text position it was tried from.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(Token::Any) => {
                star = Some((p, t));
                p += 1;
            }
            Some(Token::One) => {
                t += 1;
                p += 1;
            }
            Some(Token::Char(c)) if *c == text[t] => {
                t += 1;
                p += 1;
            }
            _ => match star {
                // Let the last `%` take one more character and try again from there.
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|tok| *tok == Token::Any)
}

#[cfg(test)]
mod tests {
    use super::like;

    #[test]
    fn wildcards_and_escapes_match_as_in_sql() {
        assert!(like("order.created", "order.%", None));
        assert!(like("order.created", "%created", None));
        assert!(like("abc", "a_c", None));
        assert!(!like("abbc", "a_c", None));
        assert!(like("", "%", None));
        assert!(!like("", "_", None));
        assert!(like("50%", "50!%", Some('!')));
        assert!(!like("500", "50!%", Some('!')));
        assert!(like("a_b", "a!_b", Some('!')));
        assert!(like("mississippi", "%iss%ppi", None));
        assert!(!like("mississippi", "%iss%ppx", None));
        assert!(like("ééx", "é_x", None), "characters, not bytes");
    }
}
