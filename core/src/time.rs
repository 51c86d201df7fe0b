//! Timestamps as providers send them (RFC 3339 / ISO 8601 strings, unix seconds or
//! milliseconds), turned into epoch milliseconds without a date library or a clock.

/// Days from 1970-01-01 to a civil date (Howard Hinnant's algorithm), for any year.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = month;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

fn digits(s: &str, from: usize, len: usize) -> Option<i64> {
    let part = s.get(from..from + len)?;
    if part.bytes().all(|b| b.is_ascii_digit()) {
        part.parse().ok()
    } else {
        None
    }
}

/// `2026-11-21T10:00:00Z`, `2026-11-21T10:00:00.123+10:00`, `2026-11-21 10:00:00-0500`
/// → epoch milliseconds. A date without a zone is refused: guessing one is how a
/// scheduled text goes out ten hours early.
pub fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    let s = text.trim();
    if s.len() < 20 || !s.is_ascii() {
        return None;
    }
    let bytes = s.as_bytes();
    let sep_ok = |i: usize, c: &[u8]| bytes.get(i).is_some_and(|b| c.contains(b));
    let separators = [
        (4, &b"-"[..]),
        (7, b"-"),
        (10, b"Tt "),
        (13, b":"),
        (16, b":"),
    ];
    if !separators.iter().all(|(i, c)| sep_ok(*i, c)) {
        return None;
    }
    let (year, month, day) = (digits(s, 0, 4)?, digits(s, 5, 2)?, digits(s, 8, 2)?);
    let (hour, minute, second) = (digits(s, 11, 2)?, digits(s, 14, 2)?, digits(s, 17, 2)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = s.get(19..)?;
    let mut millis = 0_i64;
    if let Some(fraction) = rest.strip_prefix('.') {
        let n = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        let frac = fraction.get(..n)?;
        // Only the first three digits matter; the rest are sub-millisecond.
        let padded: String = frac.chars().chain("000".chars()).take(3).collect();
        millis = padded.parse().ok()?;
        rest = fraction.get(n..)?;
    }
    let offset_minutes = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first() {
                Some(b'+') => 1,
                Some(b'-') => -1,
                _ => return None,
            };
            let zone = rest.get(1..)?;
            let (h, m) = match zone.len() {
                5 if zone.as_bytes().get(2) == Some(&b':') => {
                    (digits(zone, 0, 2)?, digits(zone, 3, 2)?)
                }
                4 => (digits(zone, 0, 2)?, digits(zone, 2, 2)?),
                _ => return None,
            };
            if h > 23 || m > 59 {
                return None;
            }
            sign * (h * 60 + m)
        }
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    seconds.checked_mul(1000)?.checked_add(millis)
}

/// A JSON timestamp as providers send it: an RFC 3339 string, or a number of unix
/// seconds (below 10^11) or milliseconds (above; 10^11 seconds is the year 5138).
pub fn from_json_ms(value: &serde_json::Value) -> Option<i64> {
    match value {
        serde_json::Value::String(s) => parse_rfc3339_ms(s),
        serde_json::Value::Number(n) => {
            let n = n.as_i64()?;
            if n <= 0 {
                None
            } else if n < 100_000_000_000 {
                n.checked_mul(1000)
            } else {
                Some(n)
            }
        }
        _ => None,
    }
}

/// Epoch milliseconds → `2026-11-21T10:00:00.000Z`, for records operators read.
pub fn format_rfc3339(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    // Inverse of days_from_civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_shapes_providers_send() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_ms("2021-05-11T22:20:59.663Z"),
            Some(1_620_771_659_663)
        );
        assert_eq!(
            parse_rfc3339_ms("2021-05-12T08:20:59.663+10:00"),
            Some(1_620_771_659_663)
        );
        assert_eq!(
            parse_rfc3339_ms("2021-05-11 17:20:59.663123-0500"),
            Some(1_620_771_659_663)
        );
        assert_eq!(
            parse_rfc3339_ms("2024-02-29T00:00:00Z"),
            Some(1_709_164_800_000)
        );
    }

    #[test]
    fn refuses_what_is_not_a_zoned_timestamp() {
        for bad in [
            "",
            "2021-05-11",
            "2021-05-11T22:20:59",
            "2021-02-30T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2021-13-01T00:00:00Z",
            "2021-05-11T24:00:00Z",
            "2021-05-11T22:20:59.Z",
            "2021-05-11T22:20:59+1000x",
            "２０２１-05-11T22:20:59Z",
        ] {
            assert_eq!(parse_rfc3339_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn numbers_are_seconds_or_milliseconds() {
        assert_eq!(
            from_json_ms(&serde_json::json!(1_649_367_553)),
            Some(1_649_367_553_000)
        );
        assert_eq!(
            from_json_ms(&serde_json::json!(1_620_771_659_663_i64)),
            Some(1_620_771_659_663)
        );
        assert_eq!(from_json_ms(&serde_json::json!(-5)), None);
        assert_eq!(from_json_ms(&serde_json::json!(null)), None);
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,40}") {
            let _ = parse_rfc3339_ms(&s);
        }

        #[test]
        fn format_then_parse_round_trips(ms in 0_i64..8_000_000_000_000) {
            prop_assert_eq!(parse_rfc3339_ms(&format_rfc3339(ms)), Some(ms));
        }
    }
}
