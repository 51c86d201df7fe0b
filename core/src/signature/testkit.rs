//! Test helpers shared by the scheme modules: the tolerance-boundary check every scheme
//! with a timestamp runs, and the single-byte mutations the property tests apply.

use super::{SignatureError, Tolerance, Verified};

/// Deliberately asymmetric, so a swapped `past_ms` / `future_ms` shows up.
pub(crate) const TOL: Tolerance = Tolerance {
    past_ms: 300_000,
    future_ms: 60_000,
};

/// `verify_at(now_ms, tolerance)` must accept exactly `[ts_ms - future, ts_ms + past]`.
pub(crate) fn assert_tolerance_bounds(
    ts_ms: i64,
    verify_at: impl Fn(i64, Tolerance) -> Result<Verified, SignatureError>,
) {
    assert!(verify_at(ts_ms, TOL).is_ok());
    assert!(verify_at(ts_ms + TOL.past_ms, TOL).is_ok());
    assert_eq!(
        verify_at(ts_ms + TOL.past_ms + 1, TOL),
        Err(SignatureError::TimestampTooOld {
            age_ms: TOL.past_ms + 1
        })
    );
    assert_eq!(
        verify_at(ts_ms + TOL.past_ms + 1_000, TOL),
        Err(SignatureError::TimestampTooOld {
            age_ms: TOL.past_ms + 1_000
        })
    );
    assert!(verify_at(ts_ms - TOL.future_ms, TOL).is_ok());
    assert_eq!(
        verify_at(ts_ms - TOL.future_ms - 1, TOL),
        Err(SignatureError::TimestampInFuture {
            ahead_ms: TOL.future_ms + 1
        })
    );
    assert_eq!(
        verify_at(ts_ms - TOL.future_ms - 1_000, TOL),
        Err(SignatureError::TimestampInFuture {
            ahead_ms: TOL.future_ms + 1_000
        })
    );
    // Zero tolerance: only the exact instant.
    let zero = Tolerance {
        past_ms: 0,
        future_ms: 0,
    };
    assert!(verify_at(ts_ms, zero).is_ok());
    assert!(verify_at(ts_ms + 1, zero).is_err());
    assert!(verify_at(ts_ms - 1, zero).is_err());
}

/// `value` with the byte at `index % len` replaced by `replacement`, or `None` when that
/// is no change at all.
pub(crate) fn mutate(value: &[u8], index: usize, replacement: u8) -> Option<Vec<u8>> {
    let mut out = value.to_vec();
    let len = out.len();
    let slot = out.get_mut(index.checked_rem(len)?)?;
    if *slot == replacement {
        return None;
    }
    *slot = replacement;
    Some(out)
}

/// The same hex digit in the other case (`a` / `A`): hex signatures are accepted in
/// either case, so such a change doesn't alter the signature and is left out.
pub(crate) fn same_hex_digit(a: u8, b: u8) -> bool {
    a.is_ascii_hexdigit() && b.is_ascii_hexdigit() && a.eq_ignore_ascii_case(&b)
}

/// The header value with one printable-ASCII byte changed, skipping changes that don't
/// change the signature (a no-op, or a hex digit's case when `hex` is set).
pub(crate) fn mutate_header(
    value: &str,
    index: usize,
    replacement: u8,
    hex: bool,
) -> Option<String> {
    let len = value.len();
    let old = *value.as_bytes().get(index.checked_rem(len)?)?;
    if hex && same_hex_digit(old, replacement) {
        return None;
    }
    String::from_utf8(mutate(value.as_bytes(), index, replacement)?).ok()
}
