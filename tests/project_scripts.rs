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
