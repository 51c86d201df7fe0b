//! Message texts built without `core::fmt`: numbers, thousands separators, one-decimal
//! sizes and quoted strings, written digit by digit. The browser module that checks
//! phones and files is a third smaller without the formatting machinery (and its float
//! printing), and these are the only things its messages need. Results are exactly what
//! the `format!` spelled next to each function gives (tests compare them).

/// `n` in decimal (`format!("{n}")`).
pub(crate) fn push_uint(out: &mut String, n: u64) {
    let mut digits = [0u8; 20];
    let mut len = 0;
    let mut rest = n;
    for slot in digits.iter_mut() {
        *slot = b'0' + (rest % 10) as u8;
        len += 1;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    for d in digits.iter().take(len).rev() {
        out.push(char::from(*d));
    }
}

/// `n` in decimal, as a new string.
pub(crate) fn uint(n: u64) -> String {
    let mut out = String::with_capacity(20);
    push_uint(&mut out, n);
    out
}

/// `25000001` → `25,000,001`.
pub(crate) fn grouped(n: u64) -> String {
    let digits = uint(n);
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `v` (finite, not negative) with `decimals` (0 or 1) digits after the point, rounded
/// half to even on the exact binary value, as `format!("{v:.0}")` / `{v:.1}` do.
pub(crate) fn fixed(v: f64, decimals: u32) -> String {
    let scale: u64 = if decimals == 0 { 1 } else { 10 };
    let bits = v.to_bits();
    let exponent = ((bits >> 52) & 0x7FF) as i32;
    let fraction = bits & ((1 << 52) - 1);
    // v = mantissa × 2^shift exactly (mantissa < 2^53, so mantissa × 10 < 2^57).
    let (mantissa, shift) = if exponent == 0 {
        (fraction, -1074)
    } else {
        (fraction | (1 << 52), exponent - 1075)
    };
    let scaled = mantissa * scale;
    let units: u64 = if !v.is_finite() || v < 0.0 {
        0
    } else if shift >= 0 {
        // Values this size never reach a message (sizes are below 2^53 bytes).
        scaled.checked_shl(shift.unsigned_abs()).unwrap_or(u64::MAX)
    } else if shift <= -64 {
        // Below 2^-7: rounds to zero at one decimal.
        0
    } else {
        let s = shift.unsigned_abs();
        let q = scaled >> s;
        let r = scaled - (q << s);
        let half = 1u64 << (s - 1);
        if r > half || (r == half && q % 2 == 1) {
            q + 1
        } else {
            q
        }
    };
    let mut out = String::with_capacity(24);
    push_uint(&mut out, units / scale);
    if decimals > 0 {
        out.push('.');
        out.push(char::from(b'0' + (units % scale) as u8));
    }
    out
}

/// `s` in double quotes with `\`, `"` and control characters escaped: what
/// `format!("{s:?}")` gives for text without unprintable non-ASCII characters (which
/// this leaves as they are).
pub(crate) fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\0' => out.push_str("\\0"),
            c if c.is_ascii_control() => {
                out.push_str("\\u{");
                let n = u32::from(c);
                for shift in [4u32, 0] {
                    let d = ((n >> shift) & 0xF) as u8;
                    if shift == 0 || d != 0 {
                        out.push(char::from(if d < 10 { b'0' + d } else { b'a' + d - 10 }));
                    }
                }
                out.push('}');
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `s` split at the first ASCII `sep`: `s.split_once(sep)` without the string searcher
/// (and `memchr`) that char patterns bring into the browser module.
pub(crate) fn split_once_byte(s: &str, sep: u8) -> Option<(&str, &str)> {
    let i = s.bytes().position(|b| b == sep)?;
    Some((s.get(..i)?, s.get(i + 1..)?))
}

/// `s` split at the last ASCII `sep` (`s.rsplit_once(sep)`).
pub(crate) fn rsplit_once_byte(s: &str, sep: u8) -> Option<(&str, &str)> {
    let i = s.bytes().rposition(|b| b == sep)?;
    Some((s.get(..i)?, s.get(i + 1..)?))
}

/// The pieces of `s` between ASCII `sep`s (`s.split(sep)`).
pub(crate) fn split_byte(s: &str, sep: u8) -> SplitByte<'_> {
    SplitByte { rest: Some(s), sep }
}

/// Iterator of [`split_byte`].
#[derive(Debug)]
pub(crate) struct SplitByte<'a> {
    rest: Option<&'a str>,
    sep: u8,
}

impl<'a> Iterator for SplitByte<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let s = self.rest?;
        match split_once_byte(s, self.sep) {
            Some((piece, rest)) => {
                self.rest = Some(rest);
                Some(piece)
            }
            None => {
                self.rest = None;
                Some(s)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn like_format() {
        for n in [0u64, 7, 10, 999, 1000, 25_000_000, 25_000_001, u64::MAX] {
            assert_eq!(uint(n), format!("{n}"));
        }
        assert_eq!(grouped(25_000_001), "25,000,001");
        assert_eq!(grouped(999), "999");
        for v in [
            0.0, 0.25, 0.75, 1.05, 1.15, 1.25, 2.5, 3.5, 24.95, 31.45, 999.95, 1e15,
        ] {
            assert_eq!(fixed(v, 1), format!("{v:.1}"), "{v}");
            assert_eq!(fixed(v, 0), format!("{v:.0}"), "{v}");
        }
        for s in ["ZZ", "a\"b\\c", "tab\there", "\u{1b}x\u{7f}", "é", ""] {
            assert_eq!(quoted(s), format!("{s:?}"), "{s}");
        }
    }

    proptest! {
        #[test]
        fn byte_splits_split_like_str(s in "[a;/. =é]{0,12}") {
            for sep in [b';', b'/', b'.', b' ', b'='] {
                let c = char::from(sep);
                prop_assert_eq!(split_once_byte(&s, sep), s.split_once(c));
                prop_assert_eq!(rsplit_once_byte(&s, sep), s.rsplit_once(c));
                prop_assert_eq!(split_byte(&s, sep).collect::<Vec<_>>(), s.split(c).collect::<Vec<_>>());
            }
        }

        #[test]
        fn sizes_print_like_format(bytes in 0u64..(1 << 53), divisions in 0u32..4) {
            let mut v = bytes as f64;
            for _ in 0..divisions {
                v /= 1000.0;
            }
            prop_assert_eq!(fixed(v, 1), format!("{v:.1}"));
            prop_assert_eq!(fixed(v, 0), format!("{v:.0}"));
            prop_assert_eq!(uint(bytes), format!("{bytes}"));
        }

        #[test]
        fn printable_text_quotes_like_debug(s in "[ -~]{0,20}") {
            prop_assert_eq!(quoted(&s), format!("{s:?}"));
        }
    }
}
