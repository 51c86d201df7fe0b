//! Compiles libphonenumber's metadata, as the `phonenumber` crate loads it, into the
//! tables `core::phone` runs on (`core/src/phone/data.rs`): per region the codes,
//! prefixes and rules, and every pattern as bytecode for core's small matcher.
//!
//! A generator rather than a build script: the output is committed, so a metadata
//! update is a reviewable diff (each pattern is listed in the file), builds of the
//! worker and the widget never compile the crate's XML loader and regex engine, and a
//! newer XML can be fed in from the command line (`scripts/phone-metadata.sh`). CI runs
//! it with `--check` and fails if the committed file differs.

pub mod emit;
pub mod model;
pub mod pattern;
