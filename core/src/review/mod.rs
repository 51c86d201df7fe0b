//! Reviews: review requests (F7–F9, F11, F12: `config`, `candidate`, `schedule`) and what
//! a `review.created` / `review.updated` webhook means for the merchant (F10) — a low
//! rating escalates to a person, a high one goes to a thank-you flow, the middle is
//! logged.

pub mod candidate;
pub mod config;
pub mod schedule;

use serde::{Deserialize, Serialize};

/// What happens to a review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewClass {
    /// Rating 1–2: someone should call the customer today.
    Escalate,
    /// Rating 3: recorded, no action.
    Log,
    /// Rating 4–5: the thank-you flow.
    ThankYou,
    /// No usable rating (some sites have none): recorded, no action.
    Unrated,
}

/// Classify a star rating. Ratings are 1–5; a value outside that range (or a fractional
/// one from an aggregator) is rounded and clamped rather than dropped, except that a
/// rating that isn't a finite number at all is `Unrated`.
pub fn classify(rating: Option<f64>) -> ReviewClass {
    let Some(r) = rating.filter(|r| r.is_finite() && *r > 0.0) else {
        return ReviewClass::Unrated;
    };
    let r = r.round().clamp(1.0, 5.0);
    if r <= 2.0 {
        ReviewClass::Escalate
    } else if r >= 4.0 {
        ReviewClass::ThankYou
    } else {
        ReviewClass::Log
    }
}

/// A rating as Podium (or a site behind it) reports it: a number, or a numeric string.
pub fn rating_from_json(value: &serde_json::Value) -> Option<f64> {
    match value {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn classifies_each_rating() {
        assert_eq!(classify(Some(1.0)), ReviewClass::Escalate);
        assert_eq!(classify(Some(2.0)), ReviewClass::Escalate);
        assert_eq!(classify(Some(2.4)), ReviewClass::Escalate);
        assert_eq!(classify(Some(3.0)), ReviewClass::Log);
        assert_eq!(classify(Some(4.0)), ReviewClass::ThankYou);
        assert_eq!(classify(Some(5.0)), ReviewClass::ThankYou);
        assert_eq!(classify(Some(10.0)), ReviewClass::ThankYou);
        assert_eq!(classify(Some(0.0)), ReviewClass::Unrated);
        assert_eq!(classify(Some(f64::NAN)), ReviewClass::Unrated);
        assert_eq!(classify(None), ReviewClass::Unrated);
    }

    #[test]
    fn reads_numbers_and_numeric_strings() {
        assert_eq!(rating_from_json(&json!(4)), Some(4.0));
        assert_eq!(rating_from_json(&json!(" 2 ")), Some(2.0));
        assert_eq!(rating_from_json(&json!("five")), None);
        assert_eq!(rating_from_json(&json!(null)), None);
    }
}
