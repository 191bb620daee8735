//! SQL's LIKE: `%` matches any run of characters, `_` exactly one, and the escape character makes
//! the next one literal. Matched by running the pattern's automaton on a bitset of pattern
//! positions, 64 at a time: text length times pattern length / 64 word steps at worst, with no
//! backtracking, so a hostile pattern (4,096 characters at most) against a long text stays cheap.
//! Never a regular expression.

#[derive(Debug, Clone, Copy, PartialEq)]
enum Token {
    Any,
    One,
    Char(char),
}

/// The pattern's tokens, with runs of `%` merged into one (they match the same).
fn tokens(pattern: &str, escape: Option<char>) -> Vec<Token> {
    let mut out = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        let token = match c {
            c if Some(c) == escape => Token::Char(chars.next().unwrap_or(c)),
            '%' => Token::Any,
            '_' => Token::One,
            c => Token::Char(c),
        };
        if !(token == Token::Any && out.last() == Some(&Token::Any)) {
            out.push(token);
        }
    }
    out
}

/// Bit `i` of a set of pattern positions.
fn bit(i: usize) -> (usize, u64) {
    (i / 64, 1u64 << (i % 64))
}

/// A `%` also matches nothing: every position before one is also a position after it. (No two
/// `%` are next to each other, so one step reaches every position.)
fn skip_empty_runs(state: &mut [u64], any: &[u64]) {
    let mut carry = 0;
    for (word, any) in state.iter_mut().zip(any) {
        let before = *word & any;
        *word |= (before << 1) | carry;
        carry = before >> 63;
    }
}

/// Whether `text` matches `pattern`. Position `i` of the set means "the first `i` tokens
/// matched"; each character moves every position whose token takes it one on, and `%` takes
/// any character without moving.
pub fn like(text: &str, pattern: &str, escape: Option<char>) -> bool {
    let tokens = tokens(pattern, escape);
    match tokens.len() < 64 {
        true => like_in_one_word(text, &tokens),
        false => like_in_words(text, &tokens),
    }
}

/// [`like`] for patterns of fewer than 64 tokens (nearly all): the set is one word.
fn like_in_one_word(text: &str, tokens: &[Token]) -> bool {
    let (mut any, mut one) = (0u64, 0u64);
    let mut by_char: Vec<(char, u64)> = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        match token {
            Token::Any => any |= 1 << i,
            Token::One => one |= 1 << i,
            Token::Char(c) => match by_char.iter_mut().find(|(k, _)| k == c) {
                Some((_, mask)) => *mask |= 1 << i,
                None => by_char.push((*c, 1 << i)),
            },
        }
    }
    let mut state = 1u64;
    state |= (state & any) << 1;
    for c in text.chars() {
        let own = by_char.iter().find(|(k, _)| *k == c).map_or(0, |(_, mask)| *mask);
        state = ((state & (one | own)) << 1) | (state & any);
        if state == 0 {
            return false;
        }
        state |= (state & any) << 1;
    }
    state & (1 << tokens.len()) != 0
}

/// [`like`] for long patterns: the set spans several words.
fn like_in_words(text: &str, tokens: &[Token]) -> bool {
    let words = (tokens.len() + 1).div_ceil(64);
    let (mut any, mut one) = (vec![0u64; words], vec![0u64; words]);
    // Each literal character's positions, found by binary search: sorted once, no hashing.
    let mut literals: Vec<(char, usize)> = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        let (w, b) = bit(i);
        match token {
            Token::Any => any[w] |= b,
            Token::One => one[w] |= b,
            Token::Char(c) => literals.push((*c, i)),
        }
    }
    literals.sort_unstable();
    let (mut keys, mut masks): (Vec<char>, Vec<u64>) = (Vec::new(), Vec::new());
    for (c, i) in literals {
        if keys.last() != Some(&c) {
            keys.push(c);
            masks.resize(masks.len() + words, 0);
        }
        let (w, b) = bit(i);
        masks[(keys.len() - 1) * words + w] |= b;
    }
    let mut state = vec![0u64; words];
    state[0] = 1;
    skip_empty_runs(&mut state, &any);
    let mut next = vec![0u64; words];
    for c in text.chars() {
        let own = keys.binary_search(&c).ok().map(|k| &masks[k * words..(k + 1) * words]);
        let (mut carry, mut alive) = (0u64, 0u64);
        for w in 0..words {
            let moving = state[w] & (one[w] | own.map_or(0, |o| o[w]));
            next[w] = (moving << 1) | carry | (state[w] & any[w]);
            carry = moving >> 63;
            alive |= next[w];
        }
        if alive == 0 {
            return false;
        }
        std::mem::swap(&mut state, &mut next);
        skip_empty_runs(&mut state, &any);
    }
    let (w, b) = bit(tokens.len());
    state[w] & b != 0
}

#[cfg(test)]
mod tests {
    use super::{like, Token};

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
        assert!(like("", "", None));
        assert!(!like("a", "", None));
        assert!(like("abc", "%%%", None));
        assert!(like("abc", "a%%c", None));
    }

    /// What LIKE means, by the book: a recursive match over characters (small inputs only).
    fn reference(text: &[char], pattern: &[Token]) -> bool {
        match pattern.split_first() {
            None => text.is_empty(),
            Some((Token::Any, rest)) => (0..=text.len()).any(|skip| reference(&text[skip..], rest)),
            Some((Token::One, rest)) => !text.is_empty() && reference(&text[1..], rest),
            Some((Token::Char(c), rest)) => text.first() == Some(c) && reference(&text[1..], rest),
        }
    }

    proptest::proptest! {
        #[test]
        fn agrees_with_the_book(text in "[ab_%]{0,12}", pattern in "[ab_%!]{0,10}") {
            let chars: Vec<char> = text.chars().collect();
            let tokens = super::tokens(&pattern, Some('!'));
            proptest::prop_assert_eq!(like(&text, &pattern, Some('!')), reference(&chars, &tokens));
        }

        #[test]
        fn long_patterns_cross_words(len in 60usize..200, cut in 0usize..200) {
            // Positions past the first 64-bit word: a literal pattern of `len` characters.
            let text: String = (0..len).map(|i| if i % 7 == 0 { 'b' } else { 'a' }).collect();
            let pattern = format!("%{}", &text[cut.min(len)..]);
            proptest::prop_assert!(like(&text, &pattern, None));
            let longer = pattern.clone() + "x";
            proptest::prop_assert!(!like(&text, &longer, None));
        }
    }

    proptest::proptest! {
        #[test]
        fn one_word_and_many_words_agree(text in "[ab]{0,80}", pattern in "[ab_%]{0,63}") {
            let tokens = super::tokens(&pattern, None);
            proptest::prop_assert_eq!(
                super::like_in_one_word(&text, &tokens),
                super::like_in_words(&text, &tokens)
            );
        }
    }

    #[test]
    fn a_hostile_pattern_against_a_long_text_is_answered() {
        // Quadratic for a backtracking matcher (found by fuzzing): 4,000 x 120,000 steps.
        let pattern = format!("%{}b", "a".repeat(4000));
        let text = "a".repeat(120_000);
        assert!(!like(&text, &pattern, None));
        assert!(like(&format!("{text}b"), &pattern, None));
    }
}
