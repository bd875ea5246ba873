//! `kme_link_push`: `POST /kme/v1/link/keys` of the KME in-process (`qshield_fuzz::kme`),
//! through the real router and role layer: pushes from any caller, JSON from the blocks'
//! sequence numbers (near the next expected one, or anywhere up to `u64::MAX`) and key
//! bytes, or raw bodies (bad JSON, bad base64, unknown fields). Checks: only `kme-a`, the
//! leader of the link this KME follows, gets a 200; after each push the status document's
//! pool levels equal what the model stored (first push of a number wins, numbers below
//! the next expected are ignored).
//!
//! Input: a first byte; even: raw requests (the seed format of `qshield_fuzz::requests`);
//! odd: `arbitrary` pushes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qshield_fuzz::kme::Kme;
use qshield_fuzz::links::Push;
use qshield_fuzz::requests::run_input;

fuzz_target!(|data: &[u8]| {
    run_input(data, 16, |kme: &mut Kme, p: Push| {
        p.send(kme);
        kme.check_levels();
    });
});
