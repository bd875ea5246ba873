//! `kme_config`: the KME's TOML config parser and validator (`qshield::kme::config::parse`)
//! on arbitrary text. A refusal must name its line (and column, when it gives one, within
//! that line) and start with `FILE:LINE`; a refused value names its field.
//!
//! Seeds: the KME configs of `configs/madrid/` and the test configs; dictionary
//! `dict/kme_config.dict` (every key and section).
#![no_main]

use libfuzzer_sys::fuzz_target;
use qshield::kme::KmeConfigError;
use qshield_fuzz::config_errors::{check_config_error, check_located};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let origin = Path::new("/etc/qshield/kme.toml");
    match qshield::kme::config::parse(text, origin) {
        Ok(_) => {}
        Err(KmeConfigError::Toml(e)) => check_config_error(text, origin, &e),
        Err(e @ KmeConfigError::Invalid { .. }) => {
            let KmeConfigError::Invalid { at, field, .. } = &e else {
                unreachable!()
            };
            assert!(!field.is_empty(), "an invalid value names no field: {e}");
            check_located(text, origin, at, &e.to_string());
        }
    }
});
