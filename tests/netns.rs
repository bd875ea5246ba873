//! The namespace suite: each `#[test]` runs one scenario script of `tests/netns/` against the
//! real `qshield` binary (and `qshield-impair` between the sites of the impair_* scenarios),
//! with real TUN devices, UDP sockets, ping and iperf3 inside network
//! namespaces the script makes (and removes) itself.
//!
//! The scripts need root. Without it they fail (never skip) and say why. A static mutex runs
//! them one at a time: each is CPU-heavy and the namespaces of two scenarios must not race
//! for the same resources. `every_script_has_a_test` fails when a script has no test here.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// One scenario at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/netns")
}

/// Runs `tests/netns/<name>.sh`; panics with its whole output unless it exits 0.
fn run_scenario(name: &str) {
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let script = scripts_dir().join(format!("{name}.sh"));
    // Short and unique: namespace names embed the tag (and interface names stay fixed).
    let tag = format!(
        "{}{}",
        &name[..name.len().min(6)],
        std::process::id() % 100_000
    );
    let started = std::time::Instant::now();
    let out = Command::new("bash")
        .arg(&script)
        .env("QSHIELD_BIN", env!("CARGO_BIN_EXE_qshield"))
        .env("QSHIELD_FLOOD_BIN", env!("CARGO_BIN_EXE_qshield-flood"))
        .env("QSHIELD_IMPAIR_BIN", env!("CARGO_BIN_EXE_qshield-impair"))
        .env("TAG", &tag)
        .output()
        .unwrap_or_else(|e| panic!("cannot run bash {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        panic!(
            "scenario {name} failed ({}) after {:.1} s\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
            out.status,
            started.elapsed().as_secs_f64()
        );
    }
    // Shown with `cargo test -- --nocapture`: what the scenario measured.
    println!(
        "scenario {name} passed in {:.1} s\n{stdout}{stderr}",
        started.elapsed().as_secs_f64()
    );
}

/// Declares one test per scenario script, and the list `every_script_has_a_test` checks.
macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                run_scenario(stringify!($name));
            }
        )*
        const SCENARIOS: &[&str] = &[$(stringify!($name)),*];
    };
}

scenarios!(
    tunnel_up,
    rotation_iperf,
    restart,
    fragments_dropped,
    wrong_key,
    garbage,
    shutdown,
    ipv6_underlay,
    chacha,
    bad_config,
    status,
    madrid,
    madrid_allow,
    offload_on,
    offload_off,
    rotation_1s,
    madrid_attack,
    metrics,
    wireshark,
    keepalive,
    roaming,
    three_sites,
    tun_mtu_too_big,
    flood,
    impair_handshake_loss,
    impair_tcp_reorder,
    impair_duplicates,
    impair_rotation,
    impair_transfer_sha,
    hub_spokes,
);

#[test]
fn every_script_has_a_test() {
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(scripts_dir()).expect("tests/netns exists") {
        let path = entry.expect("readable directory entry").path();
        if path.extension().is_some_and(|e| e == "sh")
            && path.file_stem().is_some_and(|s| s != "lib")
        {
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            if !SCENARIOS.contains(&stem.as_str()) {
                missing.push(stem);
            }
        }
    }
    missing.sort();
    assert!(
        missing.is_empty(),
        "scenario scripts without a #[test] in tests/netns.rs: {missing:?} (add them to scenarios!)"
    );
    for name in SCENARIOS {
        assert!(
            scripts_dir().join(format!("{name}.sh")).is_file(),
            "tests/netns.rs names scenario {name} but tests/netns/{name}.sh does not exist"
        );
    }
}
