#!/usr/bin/env bash
#! Regenerates core/src/phone/data.rs (the compiled phone metadata) with phonegen.
#!   scripts/phone-metadata.sh                               from the vendored XML if any, else the
#!                                                           phonenumber crate's bundled one
#!   scripts/phone-metadata.sh --xml FILE --metadata-version 9.0.43
#!                                                           vendor a newer PhoneNumberMetadata.xml
#!                                                           (phonegen/metadata/) and regenerate
#!   scripts/phone-metadata.sh --check                       exit 1 if data.rs is stale (CI)
#! Then run `cargo test -p gateway-core phone` (the differential tests use the same XML).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cargo run -q -p phonegen -- "$@"
