//! libphonenumber's number patterns, parsed and compiled to the matcher's bytecode.
//!
//! Only the subset the metadata uses is accepted: digits, `\d`, `[…]` of digits and
//! digit ranges, `(…)` and `(?:…)`, `|`, `$`, and the greedy quantifiers `?`, `{n}` and
//! `{n,m}`. Anything else is an error naming the pattern, so a metadata update that
//! needs more can never be compiled into something that silently means less.

use std::fmt;

#[path = "../../core/src/phone/bytecode.rs"]
#[allow(dead_code)]
mod bytecode;
pub use bytecode::TERM;
use bytecode::*;

/// Why a pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    /// The pattern as written in the metadata (whitespace removed).
    pub pattern: String,
    /// Byte offset in `pattern` where parsing stopped.
    pub at: usize,
    pub reason: String,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unsupported phone pattern `{}` (at byte {}): {}",
            self.pattern, self.at, self.reason
        )
    }
}

impl std::error::Error for PatternError {}

/// A compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compiled {
    /// The pattern with whitespace removed (the regex crate's `x` mode, as the
    /// `phonenumber` crate compiles them).
    pub source: String,
    pub program: Vec<u8>,
    /// Number of capture groups.
    pub groups: u8,
}

/// Parse and compile one pattern, without a table of common sets.
pub fn compile(pattern: &str) -> Result<Compiled, PatternError> {
    parse(pattern)?.compile(&[])
}

/// A pattern parsed and checked, ready to compile.
#[derive(Debug, Clone)]
pub struct Parsed {
    source: String,
    ast: Alternation,
    groups: u8,
}

/// Parse one pattern (refusing anything outside the subset).
pub fn parse(pattern: &str) -> Result<Parsed, PatternError> {
    let source: String = pattern.chars().filter(|c| !c.is_whitespace()).collect();
    let mut parser = Parser {
        src: source.as_bytes(),
        pos: 0,
        groups: 0,
    };
    let ast = parser.alternation().map_err(|(at, reason)| PatternError {
        pattern: source.clone(),
        at,
        reason,
    })?;
    if parser.pos != source.len() {
        return Err(PatternError {
            pattern: source.clone(),
            at: parser.pos,
            reason: "unbalanced `)`".into(),
        });
    }
    if usize::from(parser.groups) > MAX_GROUPS {
        return Err(PatternError {
            at: source.len(),
            reason: format!("more than {MAX_GROUPS} capture groups"),
            pattern: source,
        });
    }
    Ok(Parsed {
        groups: parser.groups,
        ast,
        source,
    })
}

impl Parsed {
    /// The pattern with whitespace removed.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Every digit set of two or more digits (other than `\d`) the pattern uses, with
    /// repeats: what a table of common sets is chosen from.
    pub fn sets(&self) -> Vec<u16> {
        fn walk(alts: &Alternation, out: &mut Vec<u16>) {
            for item in alts.iter().flatten() {
                match &item.node {
                    Node::Set(mask) if mask.count_ones() > 1 && *mask != 0x3FF => out.push(*mask),
                    Node::Group(inner, _) => walk(inner, out),
                    _ => {}
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.ast, &mut out);
        out
    }

    /// Compile, writing a set found in `sets` (at most 128) as the one-byte token
    /// `SET_TABLE + i`.
    pub fn compile(&self, sets: &[u16]) -> Result<Compiled, PatternError> {
        let program = compile_alternation(&self.ast, sets);
        if program.len() > MAX_PROGRAM_LEN || sets.len() > 128 {
            return Err(PatternError {
                pattern: self.source.clone(),
                at: self.source.len(),
                reason: format!(
                    "compiles to {} bytes, more than {MAX_PROGRAM_LEN}",
                    program.len()
                ),
            });
        }
        Ok(Compiled {
            groups: self.groups,
            program,
            source: self.source.clone(),
        })
    }
}

/// Alternatives, each a sequence of quantified items.
type Alternation = Vec<Vec<Item>>;

#[derive(Debug, Clone)]
struct Item {
    node: Node,
    min: u8,
    max: u8,
}

#[derive(Debug, Clone)]
enum Node {
    /// One digit out of a set (bit d = digit d).
    Set(u16),
    /// `$`.
    End,
    /// A group; `Some(g)` for capture group g (1-based).
    Group(Alternation, Option<u8>),
}

struct Parser<'a> {
    src: &'a [u8],
    pos: usize,
    groups: u8,
}

type PResult<T> = Result<T, (usize, String)>;

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    fn fail<T>(&self, reason: impl Into<String>) -> PResult<T> {
        Err((self.pos, reason.into()))
    }

    fn alternation(&mut self) -> PResult<Alternation> {
        let mut alts = vec![self.sequence()?];
        while self.peek() == Some(b'|') {
            self.pos += 1;
            alts.push(self.sequence()?);
        }
        Ok(alts)
    }

    fn sequence(&mut self) -> PResult<Vec<Item>> {
        let mut items = Vec::new();
        while let Some(c) = self.peek() {
            if c == b'|' || c == b')' {
                break;
            }
            let node = self.atom()?;
            let (min, max) = self.quantifier()?;
            if matches!(node, Node::End) && (min, max) != (1, 1) {
                return self.fail("a quantified `$`");
            }
            if let Node::Group(_, Some(_)) = node {
                if (min, max) != (1, 1) && (min, max) != (0, 1) {
                    return self.fail("a capture group repeated more than once");
                }
            }
            items.push(Item { node, min, max });
        }
        Ok(items)
    }

    fn atom(&mut self) -> PResult<Node> {
        let Some(c) = self.peek() else {
            return self.fail("unexpected end");
        };
        self.pos += 1;
        match c {
            b'0'..=b'9' => Ok(Node::Set(1 << (c - b'0'))),
            b'\\' => {
                if self.peek() == Some(b'd') {
                    self.pos += 1;
                    Ok(Node::Set(0x3FF))
                } else {
                    self.fail("an escape other than `\\d`")
                }
            }
            b'[' => self.class(),
            b'$' => Ok(Node::End),
            b'(' => {
                let capture = if self.src.get(self.pos..self.pos + 2) == Some(b"?:") {
                    self.pos += 2;
                    None
                } else if self.peek() == Some(b'?') {
                    return self.fail("a group flag other than `?:`");
                } else {
                    self.groups = self
                        .groups
                        .checked_add(1)
                        .ok_or((self.pos, "too many groups".to_string()))?;
                    Some(self.groups)
                };
                let alts = self.alternation()?;
                if self.peek() != Some(b')') {
                    return self.fail("unclosed `(`");
                }
                self.pos += 1;
                Ok(Node::Group(alts, capture))
            }
            _ => {
                self.pos -= 1;
                self.fail(format!("the character `{}`", char::from(c)))
            }
        }
    }

    fn class(&mut self) -> PResult<Node> {
        let mut mask = 0u16;
        if self.peek() == Some(b'^') {
            return self.fail("a negated class");
        }
        loop {
            match self.peek() {
                Some(b']') if mask != 0 => {
                    self.pos += 1;
                    return Ok(Node::Set(mask));
                }
                Some(b'\\') if self.src.get(self.pos + 1) == Some(&b'd') => {
                    self.pos += 2;
                    mask |= 0x3FF;
                }
                Some(lo @ b'0'..=b'9') => {
                    self.pos += 1;
                    let mut hi = lo;
                    if self.peek() == Some(b'-') {
                        match self.src.get(self.pos + 1) {
                            Some(&h @ b'0'..=b'9') if h >= lo => {
                                hi = h;
                                self.pos += 2;
                            }
                            _ => return self.fail("a class range that is not digit-digit"),
                        }
                    }
                    for d in lo..=hi {
                        mask |= 1 << (d - b'0');
                    }
                }
                _ => return self.fail("something other than digits in a class"),
            }
        }
    }

    fn quantifier(&mut self) -> PResult<(u8, u8)> {
        let q = match self.peek() {
            Some(b'?') => {
                self.pos += 1;
                (0, 1)
            }
            Some(b'{') => {
                self.pos += 1;
                let min = self.number()?;
                let max = if self.peek() == Some(b',') {
                    self.pos += 1;
                    self.number()?
                } else {
                    min
                };
                if self.peek() != Some(b'}') {
                    return self.fail("a repetition that is not {n} or {n,m}");
                }
                self.pos += 1;
                if min > max || max > MAX_REPEAT || max == 0 {
                    return self.fail(format!(
                        "a repetition outside 1..={MAX_REPEAT} (or min > max)"
                    ));
                }
                (min, max)
            }
            _ => return Ok((1, 1)),
        };
        if matches!(self.peek(), Some(b'?' | b'{' | b'*' | b'+')) {
            return self.fail("a lazy or stacked quantifier");
        }
        Ok(q)
    }

    fn number(&mut self) -> PResult<u8> {
        let start = self.pos;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        std::str::from_utf8(self.src.get(start..self.pos).unwrap_or_default())
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or((start, "a repetition count".to_string()))
    }
}

fn atom(mask: u16, sets: &[u16]) -> Vec<u8> {
    if mask == 0x3FF {
        vec![ANY]
    } else if mask.count_ones() == 1 {
        // `trailing_zeros` of a one-bit mask below 2^10 is the digit, < 10.
        vec![u8::try_from(mask.trailing_zeros()).unwrap_or(0)]
    } else if let Some(i) = sets
        .iter()
        .position(|s| *s == mask)
        .and_then(|i| u8::try_from(i).ok())
    {
        vec![SET_TABLE + i]
    } else {
        let [lo, hi] = mask.to_le_bytes();
        vec![SET_0 + hi, lo]
    }
}

fn compile_alternation(alts: &Alternation, sets: &[u16]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, seq) in alts.iter().enumerate() {
        if i > 0 {
            out.push(BAR);
        }
        for item in seq {
            compile_item(item, sets, &mut out);
        }
    }
    out
}

fn compile_item(item: &Item, sets: &[u16], out: &mut Vec<u8>) {
    let Item { node, min, max } = item;
    let (min, max) = (*min, *max);
    match node {
        Node::End => out.push(END),
        // `\d{n}`, the most common item of all, in one byte.
        Node::Set(0x3FF) if min == max && min >= 2 => out.push(ANY_N + min),
        Node::Set(mask) => {
            match (min, max) {
                (1, 1) => {}
                (0, 1) => out.push(OPT),
                _ => out.extend([REP, (min << 4) | max]),
            }
            out.extend(atom(*mask, sets));
        }
        Node::Group(alts, capture) => {
            let body = compile_alternation(alts, sets);
            let (open, open_opt, close) = match capture {
                Some(g) => (OPEN_CAP + g - 1, OPEN_CAP_OPT + g - 1, CLOSE_CAP + g - 1),
                None => (OPEN, OPEN_OPT, CLOSE),
            };
            // x{2,4} = x x (?:x (?:x)?)? — a capture group is only ever `?` (the parser
            // refuses counted ones), so the copies are all non-capturing.
            for _ in 0..min {
                out.push(open);
                out.extend_from_slice(&body);
                out.push(close);
            }
            for _ in min..max {
                out.push(open_opt);
                out.extend_from_slice(&body);
            }
            for _ in min..max {
                out.push(close);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn compiles_the_subset() {
        let c = compile("[2-9]\\d{9}").unwrap();
        assert_eq!(c.program, vec![SET_0 + 3, 0xFC, ANY_N + 9]);
        let c = parse("[2-9]\\d{1,9}").unwrap().compile(&[0x3FC]).unwrap();
        assert_eq!(c.program, vec![SET_TABLE, REP, 0x19, ANY]);
        assert_eq!(c.groups, 0);
        let c = compile(" 0 (1\\d)? ").unwrap();
        assert_eq!(c.source, "0(1\\d)?");
        assert_eq!(c.groups, 1);
        assert_eq!(c.program, vec![0, OPEN_CAP_OPT, 1, ANY, CLOSE_CAP]);
        let c = compile("1|2(?:3|4?)").unwrap();
        assert_eq!(c.program, vec![1, BAR, 2, OPEN, 3, BAR, OPT, 4, CLOSE]);
        let c = compile("(?:1|2){1,2}").unwrap();
        assert_eq!(
            c.program,
            vec![OPEN, 1, BAR, 2, CLOSE, OPEN_OPT, 1, BAR, 2, CLOSE]
        );
    }

    #[test]
    fn refuses_everything_else() {
        for p in [
            "\\w", "a", "1*", "1+", "[^1]", "1??", "(?i)1", "(1", "1)", "[a-z]", "1{2}?", "1{16}",
            "$?", "(1){2}", "1{3,2}", ".", "[]",
        ] {
            let e = compile(p).unwrap_err();
            assert!(e.to_string().contains(&e.pattern), "{p}: {e}");
        }
    }
}
