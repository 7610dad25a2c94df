//! A plain reference for Redis's glob, written from SEMANTICS.md: parse the pattern into
//! tokens, then match with a table over (token, byte) positions. It shares no code or
//! strategy with the crate's backtracking matcher and has no nesting guard.

/// One pattern element; every element but `Star` consumes exactly one byte.
#[derive(Debug)]
enum Token {
    Star,
    AnyByte,
    Byte(u8),
    /// A set of single bytes and inclusive ranges; `negated` flips the result.
    Set {
        negated: bool,
        bytes: Vec<u8>,
        ranges: Vec<(u8, u8)>,
    },
}

fn tokens(p: &[u8]) -> Vec<Token> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            b'*' => {
                out.push(Token::Star);
                i += 1;
            }
            b'?' => {
                out.push(Token::AnyByte);
                i += 1;
            }
            b'\\' if i + 1 < p.len() => {
                out.push(Token::Byte(p[i + 1]));
                i += 2;
            }
            b'[' => {
                i += 1;
                let negated = p.get(i) == Some(&b'^');
                if negated {
                    i += 1;
                }
                let (mut bytes, mut ranges) = (Vec::new(), Vec::new());
                loop {
                    if i + 1 < p.len() && p[i] == b'\\' {
                        bytes.push(p[i + 1]);
                        i += 2;
                    } else if i < p.len() && p[i] == b']' {
                        i += 1; // closed
                        break;
                    } else if i >= p.len() {
                        break; // unclosed: the set runs to the end of the pattern
                    } else if i + 2 < p.len() && p[i + 1] == b'-' {
                        let (a, b) = (p[i], p[i + 2]);
                        ranges.push((a.min(b), a.max(b)));
                        i += 3;
                    } else {
                        bytes.push(p[i]);
                        i += 1;
                    }
                }
                out.push(Token::Set {
                    negated,
                    bytes,
                    ranges,
                });
            }
            byte => {
                out.push(Token::Byte(byte));
                i += 1;
            }
        }
    }
    out
}

fn accepts(token: &Token, c: u8) -> bool {
    match token {
        Token::Star => unreachable!("stars consume no single byte"),
        Token::AnyByte => true,
        Token::Byte(b) => *b == c,
        Token::Set {
            negated,
            bytes,
            ranges,
        } => {
            let member = bytes.contains(&c) || ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi);
            member != *negated
        }
    }
}

/// Whether `channel` matches `pattern` under Redis's rules (without the nesting guard).
pub fn reference_match(pattern: &str, channel: &str) -> bool {
    let (p, s) = (pattern.as_bytes(), channel.as_bytes());
    if s.is_empty() {
        // Redis's quirk: the empty channel matches only the empty pattern.
        return p.is_empty();
    }
    let toks = tokens(p);
    // can[i][j]: tokens[i..] match s[j..].
    let mut can = vec![vec![false; s.len() + 1]; toks.len() + 1];
    can[toks.len()][s.len()] = true;
    for i in (0..toks.len()).rev() {
        for j in (0..=s.len()).rev() {
            can[i][j] = match &toks[i] {
                Token::Star => can[i + 1][j] || (j < s.len() && can[i][j + 1]),
                t => j < s.len() && accepts(t, s[j]) && can[i + 1][j + 1],
            };
        }
    }
    can[0][0]
}
