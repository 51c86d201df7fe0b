//! Small helpers: wall-clock time and ISO-8601 formatting, random ids, E.164 checks and
//! the log redaction of phone numbers and e-mail addresses.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 if the clock is before 1970).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `2024-05-01T09:30:00.123Z` for a Unix time in milliseconds.
pub fn iso(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        tod / 3600,
        (tod % 3600) / 60,
        tod % 60
    )
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 → (year, month, day).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Fills `buf` from the OS random source; falls back to a per-process keyed hash of a
/// counter and the clock if the OS source fails (ids only need to be unique here).
fn fill_random(buf: &mut [u8]) {
    if getrandom::fill(buf).is_ok() {
        return;
    }
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let state = RandomState::new();
    for chunk in buf.chunks_mut(8) {
        let mut h = state.build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_i64(now_ms());
        let bytes = h.finish().to_le_bytes();
        for (dst, src) in chunk.iter_mut().zip(bytes.iter()) {
            *dst = *src;
        }
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// A uniformly random number in `[0, 1)`.
pub fn random_unit() -> f64 {
    let mut b = [0_u8; 8];
    fill_random(&mut b);
    #[allow(clippy::cast_precision_loss)]
    let v = (u64::from_le_bytes(b) >> 11) as f64 / (1_u64 << 53) as f64;
    v
}

/// `n` random bytes as hex.
pub fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    fill_random(&mut buf);
    hex(&buf)
}

/// A random version-4 UUID, the shape Podium uses for uids.
pub fn uuid() -> String {
    let mut b = [0u8; 16];
    fill_random(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b);
    let part = |from: usize, to: usize| h.get(from..to).unwrap_or_default();
    format!(
        "{}-{}-{}-{}-{}",
        part(0, 8),
        part(8, 12),
        part(12, 16),
        part(16, 20),
        part(20, 32)
    )
}

/// `^\+[1-9]\d{1,14}$`.
pub fn is_e164(s: &str) -> bool {
    let b = s.as_bytes();
    matches!(b.first(), Some(b'+'))
        && matches!(b.get(1), Some(b'1'..=b'9'))
        && (3..=16).contains(&b.len())
        && b.iter().skip(2).all(u8::is_ascii_digit)
}

/// A phone written in a path or query: `%2B` already decoded; a `+` turned into a space
/// by form decoding is put back.
pub fn phone_from_param(raw: &str) -> String {
    let t = raw.trim_end();
    match t.strip_prefix(' ') {
        Some(rest) if rest.bytes().all(|c| c.is_ascii_digit()) => format!("+{rest}"),
        _ => t.trim().to_owned(),
    }
}

/// `+61412345678` → `+6141****678`: never log a full phone number.
pub fn mask_phone(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    if chars.len() < 9 {
        let head: String = chars.iter().take(2).collect();
        return format!("{head}****");
    }
    let head: String = chars.iter().take(5).collect();
    let tail: String = chars.iter().skip(chars.len() - 3).collect();
    format!("{head}****{tail}")
}

/// `alice@example.com` → `a***@example.com`.
pub fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".to_owned(),
    }
}

/// Percent-decodes a path segment (invalid escapes are kept as written).
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let hi = b.get(i + 1).and_then(|x| (*x as char).to_digit(16));
            let lo = b.get(i + 2).and_then(|x| (*x as char).to_digit(16));
            if let (Some(hi), Some(lo)) = (hi, lo) {
                out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'?'));
                i += 3;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The request path as it may appear in logs: phone numbers and e-mails masked.
pub fn redact_path(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            let dec = percent_decode(seg);
            let digits = dec.trim_start_matches(['+', ' ']);
            let phone_like = !digits.is_empty()
                && digits.bytes().all(|c| c.is_ascii_digit())
                && (dec.starts_with(['+', ' ']) || digits.len() >= 7);
            if phone_like {
                mask_phone(&dec)
            } else if dec.contains('@') {
                mask_email(&dec)
            } else {
                seg.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_formats_known_instants() {
        assert_eq!(iso(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso(1_620_771_659_663), "2021-05-11T22:20:59.663Z");
        assert_eq!(iso(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn e164() {
        assert!(is_e164("+61412345678"));
        assert!(is_e164("+12"));
        assert!(!is_e164("+0412345678"));
        assert!(!is_e164("61412345678"));
        assert!(!is_e164("+1234567890123456"));
        assert!(!is_e164("+6141234567a"));
    }

    #[test]
    fn masks() {
        assert_eq!(mask_phone("+61412345678"), "+6141****678");
        assert_eq!(mask_phone("+1234"), "+1****");
        assert_eq!(mask_email("alice@example.com"), "a***@example.com");
        assert_eq!(
            redact_path("/v4/contacts/%2B61412345678"),
            "/v4/contacts/+6141****678"
        );
        assert_eq!(
            redact_path("/_sandbox/contacts/+61412345678/opt-out"),
            "/_sandbox/contacts/+6141****678/opt-out"
        );
        assert_eq!(redact_path("/v4/locations"), "/v4/locations");
        assert_eq!(redact_path("/v4/contacts/a@b.co"), "/v4/contacts/a***@b.co");
    }

    #[test]
    fn ids() {
        let u = uuid();
        assert_eq!(u.len(), 36);
        assert_ne!(u, uuid());
        assert_eq!(random_hex(4).len(), 8);
        assert_eq!(phone_from_param(" 61412345678"), "+61412345678");
        assert_eq!(phone_from_param("+61412345678"), "+61412345678");
    }
}
