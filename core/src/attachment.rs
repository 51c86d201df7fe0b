//! Attachment policy (F4): what may be uploaded, judged before a single byte is sent.
//!
//! The limit is Podium's 25 MB read as **25,000,000 bytes** (decimal megabytes), not
//! 25 MiB (26,214,400). Podium does not say which it means; taking the smaller one means
//! a file we accept is never refused by Podium after the customer waited for the upload,
//! at the cost of refusing files between 25.0 MB and 25.0 MiB, which we tell the
//! customer plainly. A merchant may lower the limit, never raise it past Podium's.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::text;

/// Podium's documented attachment limit, in bytes (see the module docs for why decimal).
pub const PODIUM_MAX_ATTACHMENT_BYTES: u64 = 25_000_000;

/// Longest file name accepted (most file systems' limit).
pub const MAX_NAME_CHARS: usize = 255;

/// Extensions refused whatever content type the browser claims: executables and
/// scriptable documents an agent could be tricked into opening. (One string, split when
/// read: a table of `&str` costs the browser module a pointer pair per entry.)
const REFUSED_EXTENSIONS: &str =
    "exe com bat cmd msi msp scr pif cpl dll sys js mjs jse vbs vbe wsf wsh ps1 psm1 \
    sh bash jar apk app dmg pkg deb rpm lnk reg hta html htm xhtml svg svgz iso";

/// Content types inferred from the extension when the browser gives none (it leaves
/// `File.type` empty for types it does not know, HEIC on many systems), as
/// `extension=type` pairs.
const TYPES_BY_EXTENSION: &str =
    "jpg=image/jpeg jpeg=image/jpeg png=image/png gif=image/gif webp=image/webp \
    heic=image/heic heif=image/heif mp3=audio/mpeg m4a=audio/mp4 aac=audio/aac \
    ogg=audio/ogg oga=audio/ogg wav=audio/wav amr=audio/amr weba=audio/webm \
    mp4=video/mp4 mov=video/quicktime 3gp=video/3gpp webm=video/webm \
    pdf=application/pdf txt=text/plain vcf=text/vcard";

/// The default allow-list: what Podium's inbox renders (images, voice notes, short
/// videos) plus PDFs, plain text and contact cards.
pub const DEFAULT_ALLOWED_TYPES: &[&str] = &[
    "image/jpeg",
    "image/png",
    "image/gif",
    "image/webp",
    "image/heic",
    "image/heif",
    "audio/mpeg",
    "audio/mp4",
    "audio/aac",
    "audio/ogg",
    "audio/wav",
    "audio/x-wav",
    "audio/amr",
    "audio/webm",
    "video/mp4",
    "video/quicktime",
    "video/3gpp",
    "video/webm",
    "application/pdf",
    "text/plain",
    "text/vcard",
];

/// Default number of attachments in one message.
pub const DEFAULT_MAX_COUNT: usize = 5;

/// What a merchant allows. Deserializes from `{max_bytes?, allowed_types?, max_count?}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AttachmentPolicy {
    /// At most [`PODIUM_MAX_ATTACHMENT_BYTES`].
    pub max_bytes: u64,
    /// Exact types (`image/png`) or a whole family (`image/*`), lowercase.
    pub allowed_types: Vec<String>,
    pub max_count: usize,
}

impl Default for AttachmentPolicy {
    fn default() -> Self {
        AttachmentPolicy {
            max_bytes: PODIUM_MAX_ATTACHMENT_BYTES,
            allowed_types: DEFAULT_ALLOWED_TYPES
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            max_count: DEFAULT_MAX_COUNT,
        }
    }
}

/// Why a policy itself is unusable (a configuration error, not a customer's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyError {
    MaxBytesAbovePodium(u64),
    MaxBytesZero,
    BadType(String),
}

impl PolicyError {
    /// The message (also the `Display`), built without `core::fmt` (see `text.rs`).
    pub fn message(&self) -> String {
        match self {
            PolicyError::MaxBytesAbovePodium(n) => {
                let mut m = "max_bytes ".to_owned();
                text::push_uint(&mut m, *n);
                m.push_str(" exceeds Podium's limit of ");
                text::push_uint(&mut m, PODIUM_MAX_ATTACHMENT_BYTES);
                m.push_str(" bytes");
                m
            }
            PolicyError::MaxBytesZero => "max_bytes must be at least 1".into(),
            PolicyError::BadType(t) => {
                let mut m = "allowed type ".to_owned();
                m.push_str(&text::quoted(t));
                m.push_str(" is not of the form type/subtype or type/*");
                m
            }
        }
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for PolicyError {}

impl AttachmentPolicy {
    /// Check a merchant-supplied policy; the widget and the worker refuse a bad one.
    pub fn validated(mut self) -> Result<Self, PolicyError> {
        if self.max_bytes > PODIUM_MAX_ATTACHMENT_BYTES {
            return Err(PolicyError::MaxBytesAbovePodium(self.max_bytes));
        }
        if self.max_bytes == 0 {
            return Err(PolicyError::MaxBytesZero);
        }
        for t in &mut self.allowed_types {
            *t = t.trim().to_ascii_lowercase();
            let well_formed = text::split_once_byte(t, b'/').is_some_and(|(a, b)| {
                !a.is_empty() && !b.is_empty() && !b.bytes().any(|c| c == b'/')
            });
            if !well_formed {
                return Err(PolicyError::BadType(t.clone()));
            }
        }
        Ok(self)
    }

    fn allows(&self, content_type: &str) -> bool {
        let family = text::split_byte(content_type, b'/')
            .next()
            .unwrap_or_default();
        self.allowed_types.iter().any(|allowed| {
            allowed == content_type
                || allowed
                    .strip_suffix("/*")
                    .is_some_and(|allowed_family| allowed_family == family)
        })
    }
}

/// Why one attachment (or a set of them) is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachmentError {
    Empty,
    TooLarge { size: u64, limit: u64 },
    TypeNotAllowed { content_type: String },
    TooMany { count: usize, limit: usize },
    InvalidName,
    InvalidSize,
}

impl fmt::Display for AttachmentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for AttachmentError {}

impl AttachmentError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            AttachmentError::Empty => "attachment_empty",
            AttachmentError::TooLarge { .. } => "attachment_too_large",
            AttachmentError::TypeNotAllowed { .. } => "attachment_type_not_allowed",
            AttachmentError::TooMany { .. } => "attachment_too_many",
            AttachmentError::InvalidName => "attachment_invalid_name",
            AttachmentError::InvalidSize => "attachment_invalid_size",
        }
    }

    /// The message for people (also the `Display`), built without `core::fmt` (see
    /// `text.rs`): "the file is 31.5 MB and the limit is 25 MB".
    pub fn message(&self) -> String {
        match self {
            AttachmentError::Empty => "the file is empty".into(),
            AttachmentError::TooLarge { size, limit } => too_large_message(*size, *limit),
            AttachmentError::TypeNotAllowed { content_type } => {
                let mut m = "files of type ".to_owned();
                m.push_str(content_type);
                m.push_str(" can't be sent here");
                m
            }
            AttachmentError::TooMany { count, limit } => {
                let mut m = "at most ".to_owned();
                text::push_uint(&mut m, *limit as u64);
                m.push_str(" files can be sent in one message (");
                text::push_uint(&mut m, *count as u64);
                m.push_str(" given)");
                m
            }
            AttachmentError::InvalidName => {
                "the file name is empty, too long or contains control characters or slashes".into()
            }
            AttachmentError::InvalidSize => {
                "the file size must be a whole, non-negative number of bytes".into()
            }
        }
    }
}

/// An attachment that passed, with its content type as it will be sent upstream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Accepted {
    pub content_type: String,
}

/// Judge one file: name, the content type the client claims (may be empty), size in bytes.
pub fn check(
    policy: &AttachmentPolicy,
    name: &str,
    content_type: &str,
    size: u64,
) -> Result<Accepted, AttachmentError> {
    let extension = check_name(name)?;
    if size == 0 {
        return Err(AttachmentError::Empty);
    }
    if size > policy.max_bytes {
        return Err(AttachmentError::TooLarge {
            size,
            limit: policy.max_bytes,
        });
    }
    let content_type = resolve_content_type(content_type, extension.as_deref());
    let refused_extension = extension
        .as_deref()
        .is_some_and(|e| text::split_byte(REFUSED_EXTENSIONS, b' ').any(|r| r == e));
    if refused_extension || content_type.is_empty() || !policy.allows(&content_type) {
        return Err(AttachmentError::TypeNotAllowed {
            content_type: if content_type.is_empty() {
                "unknown".to_owned()
            } else {
                content_type
            },
        });
    }
    Ok(Accepted { content_type })
}

/// Judge how many files one message carries.
pub fn check_count(policy: &AttachmentPolicy, count: usize) -> Result<(), AttachmentError> {
    if count > policy.max_count {
        return Err(AttachmentError::TooMany {
            count,
            limit: policy.max_count,
        });
    }
    Ok(())
}

/// A size as JavaScript gives it (`File.size` is a double) to bytes.
pub fn size_from_f64(size: f64) -> Result<u64, AttachmentError> {
    // 2^53: beyond it a double no longer holds every integer.
    const MAX_SAFE: f64 = 9_007_199_254_740_992.0;
    if size.is_finite() && size >= 0.0 && size.fract() == 0.0 && size <= MAX_SAFE {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Ok(size as u64)
    } else {
        Err(AttachmentError::InvalidSize)
    }
}

/// Returns the lowercase extension, if any.
fn check_name(name: &str) -> Result<Option<String>, AttachmentError> {
    let bad = name.trim().is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name
            .chars()
            .any(|c| c.is_control() || c == '/' || c == '\\');
    if bad {
        return Err(AttachmentError::InvalidName);
    }
    Ok(text::rsplit_once_byte(name, b'.')
        .map(|(_, ext)| ext.trim().to_ascii_lowercase())
        .filter(|ext| !ext.is_empty()))
}

/// Lowercase, drop parameters (`; charset=…`), and infer from the extension when the
/// client sent nothing useful.
fn resolve_content_type(claimed: &str, extension: Option<&str>) -> String {
    let claimed = text::split_byte(claimed, b';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if !claimed.is_empty() && claimed != "application/octet-stream" {
        return claimed;
    }
    extension
        .and_then(|ext| {
            text::split_byte(TYPES_BY_EXTENSION, b' ')
                .filter_map(|pair| text::split_once_byte(pair, b'='))
                .find(|(e, _)| *e == ext)
        })
        .map(|(_, t)| t.to_owned())
        .unwrap_or(claimed)
}

/// "the file is 31.5 MB and the limit is 25 MB"; exact bytes when rounding would make
/// the two look equal ("25 MB and the limit is 25 MB" helps nobody).
fn too_large_message(size: u64, limit: u64) -> String {
    let (s, l) = (human_bytes(size), human_bytes(limit));
    let (s, l, unit) = if s == l {
        (text::grouped(size), text::grouped(limit), " bytes")
    } else {
        (s, l, "")
    };
    let mut m = "the file is ".to_owned();
    m.push_str(&s);
    m.push_str(unit);
    m.push_str(" and the limit is ");
    m.push_str(&l);
    m.push_str(unit);
    m
}

/// `25000000` → `25 MB`, `1536` → `1.5 KB` (decimal units, as the limit is).
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["bytes", "KB", "MB", "GB"];
    #[allow(clippy::cast_precision_loss)]
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    let name = UNITS.get(unit).copied().unwrap_or("bytes");
    let mut out = if unit == 0 {
        text::uint(bytes)
    } else if (value - value.round()).abs() < 0.05 {
        text::fixed(value, 0)
    } else {
        text::fixed(value, 1)
    };
    out.push(' ');
    out.push_str(name);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> AttachmentPolicy {
        AttachmentPolicy::default()
    }

    #[test]
    fn limit_is_exactly_25_000_000_bytes() {
        let p = policy();
        assert!(check(&p, "a.jpg", "image/jpeg", 25_000_000).is_ok());
        assert_eq!(
            check(&p, "a.jpg", "image/jpeg", 25_000_001),
            Err(AttachmentError::TooLarge {
                size: 25_000_001,
                limit: 25_000_000
            })
        );
        assert_eq!(
            check(&p, "a.jpg", "image/jpeg", 25_000_001)
                .unwrap_err()
                .to_string(),
            "the file is 25,000,001 bytes and the limit is 25,000,000 bytes"
        );
        let thirty_mb = check(&p, "clip.mp4", "video/mp4", 30 * 1024 * 1024).unwrap_err();
        assert_eq!(thirty_mb.code(), "attachment_too_large");
        assert_eq!(
            thirty_mb.to_string(),
            "the file is 31.5 MB and the limit is 25 MB"
        );
    }

    #[test]
    fn types() {
        let p = policy();
        assert_eq!(
            check(&p, "a.png", "IMAGE/PNG; foo=bar", 10)
                .unwrap()
                .content_type,
            "image/png"
        );
        assert_eq!(
            check(&p, "IMG_1.HEIC", "", 10).unwrap().content_type,
            "image/heic"
        );
        assert_eq!(
            check(&p, "x.pdf", "application/octet-stream", 10)
                .unwrap()
                .content_type,
            "application/pdf"
        );
        assert_eq!(
            check(&p, "a.zip", "application/zip", 10),
            Err(AttachmentError::TypeNotAllowed {
                content_type: "application/zip".into()
            })
        );
        assert_eq!(
            check(&p, "noext", "", 10),
            Err(AttachmentError::TypeNotAllowed {
                content_type: "unknown".into()
            })
        );
        // A lying content type does not smuggle an executable through.
        assert_eq!(
            check(&p, "invoice.exe", "image/png", 10)
                .unwrap_err()
                .code(),
            "attachment_type_not_allowed"
        );
        assert!(check(&p, "logo.svg", "image/svg+xml", 10).is_err());
    }

    #[test]
    fn wildcard_families() {
        let p = AttachmentPolicy {
            allowed_types: vec!["image/*".into()],
            ..policy()
        }
        .validated()
        .unwrap();
        assert!(check(&p, "a.tiff", "image/tiff", 1).is_ok());
        assert!(check(&p, "a.mp3", "audio/mpeg", 1).is_err());
    }

    #[test]
    fn names_and_sizes() {
        let p = policy();
        assert_eq!(
            check(&p, "", "image/png", 1),
            Err(AttachmentError::InvalidName)
        );
        assert_eq!(
            check(&p, "../a.png", "image/png", 1),
            Err(AttachmentError::InvalidName)
        );
        assert_eq!(
            check(&p, "a\u{0}.png", "image/png", 1),
            Err(AttachmentError::InvalidName)
        );
        assert_eq!(
            check(&p, "a.png", "image/png", 0),
            Err(AttachmentError::Empty)
        );
        assert_eq!(size_from_f64(12.0), Ok(12));
        for bad in [-1.0, 1.5, f64::NAN, f64::INFINITY, 1e300] {
            assert_eq!(
                size_from_f64(bad),
                Err(AttachmentError::InvalidSize),
                "{bad}"
            );
        }
    }

    #[test]
    fn count() {
        let p = policy();
        assert!(check_count(&p, 5).is_ok());
        assert_eq!(
            check_count(&p, 6),
            Err(AttachmentError::TooMany { count: 6, limit: 5 })
        );
    }

    #[test]
    fn policies_never_exceed_podium() {
        let too_big = AttachmentPolicy {
            max_bytes: 26_214_400,
            ..policy()
        };
        assert_eq!(
            too_big.validated(),
            Err(PolicyError::MaxBytesAbovePodium(26_214_400))
        );
        let bad_type = AttachmentPolicy {
            allowed_types: vec!["png".into()],
            ..policy()
        };
        assert!(matches!(bad_type.validated(), Err(PolicyError::BadType(_))));
        let partial: AttachmentPolicy = serde_json::from_str(r#"{"max_bytes": 1000}"#).unwrap();
        assert_eq!(partial.max_count, DEFAULT_MAX_COUNT);
        assert!(serde_json::from_str::<AttachmentPolicy>(r#"{"max_byte": 1}"#).is_err());
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(999), "999 bytes");
        assert_eq!(human_bytes(1_500), "1.5 KB");
        assert_eq!(human_bytes(25_000_000), "25 MB");
    }

    /// The messages as they were written with `format!` before they were built by hand
    /// (`text.rs`): the same text for every size.
    fn formatted(bytes: u64) -> String {
        const UNITS: [&str; 4] = ["bytes", "KB", "MB", "GB"];
        let mut value = bytes as f64;
        let mut unit = 0;
        while value >= 1000.0 && unit < UNITS.len() - 1 {
            value /= 1000.0;
            unit += 1;
        }
        if unit == 0 {
            format!("{bytes} bytes")
        } else if (value - value.round()).abs() < 0.05 {
            format!("{value:.0} {}", UNITS[unit])
        } else {
            format!("{value:.1} {}", UNITS[unit])
        }
    }

    #[test]
    fn messages_match_their_format_spelling() {
        for (bytes, limit) in [(31_457_280, 25_000_000), (25_000_001, 25_000_000), (1, 0)] {
            let e = AttachmentError::TooLarge { size: bytes, limit };
            let (s, l) = (formatted(bytes), formatted(limit));
            let want = if s == l {
                format!(
                    "the file is {} bytes and the limit is {} bytes",
                    text::grouped(bytes),
                    text::grouped(limit)
                )
            } else {
                format!("the file is {s} and the limit is {l}")
            };
            assert_eq!(e.to_string(), want);
        }
        assert_eq!(
            AttachmentError::TooMany { count: 7, limit: 5 }.to_string(),
            "at most 5 files can be sent in one message (7 given)"
        );
        assert_eq!(
            PolicyError::MaxBytesAbovePodium(99_999_999_999).to_string(),
            "max_bytes 99999999999 exceeds Podium's limit of 25000000 bytes"
        );
        assert_eq!(
            PolicyError::BadType("png".into()).to_string(),
            "allowed type \"png\" is not of the form type/subtype or type/*"
        );
    }

    proptest::proptest! {
        #[test]
        fn human_sizes_match_their_format_spelling(bytes in 0u64..(1 << 53), small in 0u64..5_000_000) {
            proptest::prop_assert_eq!(human_bytes(bytes), formatted(bytes));
            proptest::prop_assert_eq!(human_bytes(small), formatted(small));
        }
    }
}
