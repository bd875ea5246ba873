//! The project's scripts install what they need before anything is built: on a fresh machine
//! `.ci/run` used to run `cargo clippy --all-targets` (which builds the dev-dependency
//! `etsi014-client` and so needs pkg-config and libsodium-dev) before `scripts/test.sh` had
//! installed those packages, and failed after 98 s.

use std::path::Path;

fn script(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// Line number (0-based) of the first non-comment line containing `needle`.
fn first_line(text: &str, needle: &str) -> Option<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim_start().starts_with('#'))
        .find(|(_, l)| l.contains(needle))
        .map(|(i, _)| i)
}

#[test]
fn every_script_installs_before_it_builds() {
    for path in [
        ".ci/run",
        "scripts/test.sh",
        "scripts/demo.sh",
        "scripts/bench.sh",
        "scripts/soak.sh",
    ] {
        let text = script(path);
        let install = first_line(&text, "scripts/install-deps.sh")
            .unwrap_or_else(|| panic!("{path} never runs scripts/install-deps.sh"));
        if let Some(build) = first_line(&text, "cargo ") {
            assert!(
                install < build,
                "{path}: line {} runs cargo before the install step on line {}",
                build + 1,
                install + 1
            );
        }
    }
}

#[test]
fn the_install_step_covers_the_dev_dependencies_native_builds() {
    let text = script("scripts/install-deps.sh");
    let packages = text
        .lines()
        .find(|l| l.trim_start().starts_with("packages=("))
        .expect("install-deps.sh has a packages=(...) list");
    for pkg in [
        "pkg-config",
        "libsodium-dev",
        "libssl-dev",
        "iperf3",
        "nftables",
        "iproute2",
    ] {
        assert!(
            packages.split(['(', ')', ' ']).any(|w| w == pkg),
            "install-deps.sh does not install {pkg}"
        );
    }
}

/// Every fuzz target of `fuzz/Cargo.toml` has its source, is described in docs/testing.md,
/// and runs in the smoke step of scripts/test.sh (which runs them all through fuzz.sh);
/// fuzz/ stays out of the root workspace.
#[test]
fn every_fuzz_target_is_documented_and_smoke_tested() {
    let manifest = script("fuzz/Cargo.toml");
    let mut targets = Vec::new();
    let mut in_bin = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
        } else if in_bin && line.starts_with("name = ") {
            targets.push(
                line.trim_start_matches("name = ")
                    .trim_matches('"')
                    .to_string(),
            );
        }
    }
    assert!(targets.len() >= 10, "fuzz targets found: {targets:?}");
    assert!(
        manifest.contains("[workspace]"),
        "fuzz/ must be its own workspace"
    );
    let docs = script("docs/testing.md");
    for t in &targets {
        script(&format!("fuzz/fuzz_targets/{t}.rs"));
        assert!(
            docs.contains(&format!("| `{t}` |")),
            "docs/testing.md does not describe {t}"
        );
    }
    let test = script("scripts/test.sh");
    assert!(
        first_line(&test, "scripts/fuzz.sh").is_some(),
        "scripts/test.sh has no fuzz smoke"
    );
}
