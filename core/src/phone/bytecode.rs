//! The token format of compiled phone patterns: the contract between the generator
//! (`phonegen`, which parses and checks libphonenumber's patterns at build time) and the
//! matcher (`matcher.rs`, which runs them). `phonegen` includes this very file, so the
//! two can never disagree on a token.
//!
//! A program is the pattern's structure with every syntax decision already taken:
//! classes are 10-bit digit sets, quantifiers are folded into their atom, groups carry
//! their capture number and whether they are optional. There are no jump offsets: the
//! matcher finds a group's next `BAR` or its `CLOSE` by skipping tokens, which keeps the
//! programs as compressible as the pattern text and smaller than it (measured on 9.0.33:
//! 34 KB raw / 20 KB gzip for the 1,299 distinct patterns, against 68 / 23 KB of text
//! and 54 / 28 KB for a jump-based encoding). Reaching the end of a program is a match.
//!
//! | bytes | token |
//! |---|---|
//! | `0x00`–`0x09` | one digit, equal to the byte |
//! | `ANY` | one digit, any (`\d`) |
//! | `SET_0`–`SET_3`, `lo` | one digit in the set `(op - SET_0) << 8 \| lo` (bit d = digit d) |
//! | `SET_TABLE + i` | one digit in the common set `i` (`data::SETS`, chosen by phonegen) |
//! | `ANY_N + n` | `n` digits, any (`\d{n}`, 2 ≤ n ≤ 15) |
//! | `END` | assert the end of the input (`$`) |
//! | `OPT`, atom | the one-digit token that follows, optional (greedy) |
//! | `REP`, `min << 4 \| max`, atom | the one-digit token that follows, `min..=max` times (greedy) |
//! | `OPEN` / `OPEN_OPT` | a group / an optional group (greedy) |
//! | `OPEN_CAP + g - 1` / `OPEN_CAP_OPT + g - 1` | capture group g (1–4), plain / optional |
//! | `BAR` | separates a group's alternatives (the whole program is an implicit group) |
//! | `CLOSE` / `CLOSE_CAP + g - 1` | ends a group / capture group g |
//! | `TERM` | ends a program in a region's block (see `data.rs`) |

/// `\d`.
pub const ANY: u8 = 0x0A;
/// `$`: only matches at the end of the input.
pub const END: u8 = 0x0B;
/// First of the four set tokens (the low two bits carry digits 8 and 9).
pub const SET_0: u8 = 0x0C;
/// Last of the four set tokens.
pub const SET_3: u8 = 0x0F;
/// The next one-digit token is optional.
pub const OPT: u8 = 0x10;
/// Counted repetition of the one-digit token that follows.
pub const REP: u8 = 0x11;
/// A non-capturing group.
pub const OPEN: u8 = 0x12;
/// A non-capturing optional group.
pub const OPEN_OPT: u8 = 0x13;
/// Alternative separator.
pub const BAR: u8 = 0x14;
/// End of a non-capturing group.
pub const CLOSE: u8 = 0x15;
/// Ends a program inside a region's block in `data::PROGRAMS` (never inside a program).
pub const TERM: u8 = 0x16;
/// Capture group 1 (`+ g - 1` for group g).
pub const OPEN_CAP: u8 = 0x18;
/// Optional capture group 1 (`+ g - 1` for group g).
pub const OPEN_CAP_OPT: u8 = 0x1C;
/// End of capture group 1 (`+ g - 1` for group g).
pub const CLOSE_CAP: u8 = 0x20;

/// `\d{n}` is `ANY_N + n` (n from 2 to 15).
pub const ANY_N: u8 = 0x30;
/// The last `ANY_N` token.
pub const ANY_N_LAST: u8 = 0x3F;
/// First of the 128 one-byte tokens for the common sets in `data::SETS`.
pub const SET_TABLE: u8 = 0x80;

/// Capture groups a program may use.
pub const MAX_GROUPS: usize = 4;
/// Largest repetition count `REP` can carry (four bits).
#[allow(dead_code)] // read by phonegen only
pub const MAX_REPEAT: u8 = 15;
/// Longest program: bounds the matcher's visited set.
pub const MAX_PROGRAM_LEN: usize = 2048;
