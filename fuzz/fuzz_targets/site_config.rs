//! `site_config`: the daemon's TOML config parser and validator (`qshield::config::parse`)
//! on arbitrary text, read as if from `configs/site-a.toml` so the peers'
//! `public_key_file`s of the seeds resolve. A refusal must name its line (and column, when
//! it gives one, within that line) and start with `FILE:LINE`; a field error names the field.
//!
//! Seeds: the example configs of `configs/` and `configs/madrid/`; dictionary
//! `dict/site_config.dict` (every key and section).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::LazyLock;

static ORIGIN: LazyLock<PathBuf> = LazyLock::new(|| {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../configs/site-a.toml"
    ))
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = qshield::config::parse(text, &ORIGIN) {
        qshield_fuzz::config_errors::check_config_error(text, &ORIGIN, &e);
    }
});
