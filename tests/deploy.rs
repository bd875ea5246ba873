//! The systemd units and the Debian package (issue 13), with the real tools:
//! `systemd-analyze verify` and `systemd-analyze security --offline=true` on both units (the
//! exposure figures docs/deploy.md states), and the package built by
//! scripts/package-deb.sh, installed with dpkg (root), used, and purged.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (installed by scripts/install-deps.sh)"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `unit` (a template in `dir`) copied as an instance `NAME@test.service` starting
/// `binary`, for the tools that want an instance and an existing executable.
fn instance(unit: &Path, binary: &str, into: &Path) -> PathBuf {
    let text = std::fs::read_to_string(unit).unwrap();
    let text = text
        .replace("/usr/local/bin/qshield", binary)
        .replace("/usr/bin/qshield", binary);
    let name = unit
        .file_name()
        .unwrap()
        .to_string_lossy()
        .replace("@.service", "@test.service");
    let path = into.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// `systemd-analyze verify` says nothing; returns the exposure `security` rates.
fn verify_and_rate(unit: &Path) -> f64 {
    let dir = unit.parent().unwrap();
    let (ok, said) = run(Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(unit)
        .current_dir(dir));
    assert!(
        ok && said.trim().is_empty(),
        "systemd-analyze verify {}: {said}",
        unit.display()
    );
    let (_, said) = run(Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(unit)
        .current_dir(dir));
    let line = said
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no exposure level in: {said}"));
    let figure = line
        .split(':')
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap();
    figure.parse().unwrap()
}

#[test]
fn both_units_verify_and_rate_as_docs_deploy_md_says() {
    let dir = tempfile::tempdir().unwrap();
    let binary = env!("CARGO_BIN_EXE_qshield");
    let docs = std::fs::read_to_string(root().join("docs/deploy.md")).unwrap();
    let docs = docs.split_whitespace().collect::<Vec<_>>().join(" ");
    for (unit, what) in [
        ("qshield@.service", "the daemon's unit at exposure"),
        ("qshield-kme@.service", "the KME's at"),
    ] {
        let path = instance(&root().join("deploy").join(unit), binary, dir.path());
        let exposure = verify_and_rate(&path);
        assert!(
            exposure < 3.0,
            "{unit}: exposure {exposure}, more than 3 (\"OK\")"
        );
        let stated = format!("{what} **{exposure:.1}**");
        assert!(
            docs.contains(&stated),
            "docs/deploy.md should say \"{stated}\" (systemd-analyze security measured {exposure})"
        );
    }
    // What each may do: the daemon CAP_NET_ADMIN only, the KME nothing; the KME's store 0700.
    let daemon = std::fs::read_to_string(root().join("deploy/qshield@.service")).unwrap();
    assert!(
        daemon
            .lines()
            .any(|l| l == "CapabilityBoundingSet=CAP_NET_ADMIN")
    );
    let kme = std::fs::read_to_string(root().join("deploy/qshield-kme@.service")).unwrap();
    for line in [
        "CapabilityBoundingSet=",
        "StateDirectoryMode=0700",
        "NoNewPrivileges=yes",
    ] {
        assert!(
            kme.lines().any(|l| l == line),
            "the KME's unit lacks {line}"
        );
    }
}

#[test]
fn the_debian_package_installs_works_and_purges() {
    let euid = effective_uid();
    assert_eq!(
        euid, 0,
        "installing a package needs root: run the tests as root (CI does)"
    );
    let out = tempfile::tempdir().unwrap();
    let (ok, said) = run(Command::new("bash")
        .arg(root().join("scripts/package-deb.sh"))
        .args(["--binary", env!("CARGO_BIN_EXE_qshield"), "--out"])
        .arg(out.path()));
    assert!(ok, "package-deb.sh: {said}");
    let deb = said.lines().last().unwrap().trim().to_string();
    assert!(deb.ends_with(".deb") && Path::new(&deb).exists(), "{said}");
    let (ok, said) = run(Command::new("dpkg").args(["-i", &deb]));
    assert!(ok, "dpkg -i: {said}");
    let purge = || run(Command::new("dpkg").args(["--purge", "qshield"]));
    let checks = std::panic::catch_unwind(|| {
        let (ok, said) = run(Command::new("/usr/bin/qshield").arg("--version"));
        assert!(ok && said.starts_with("qshield "), "{said}");
        let (ok, said) = run(Command::new("man").args(["-w", "qshield-kme"]));
        assert!(
            ok && said.contains("/usr/share/man/man1/qshield-kme.1.gz"),
            "{said}"
        );
        assert!(Path::new("/usr/share/bash-completion/completions/qshield").exists());
        // The shipped two-site example, with an identity made for it.
        let work = tempfile::tempdir().unwrap();
        let examples = Path::new("/usr/share/doc/qshield/examples");
        let (ok, said) = run(Command::new("cp").arg("-r").arg(examples).arg(work.path()));
        assert!(ok, "{said}");
        let copy = work.path().join("examples");
        std::fs::remove_file(copy.join("keys/site-a/public.key")).unwrap();
        let (ok, said) = run(Command::new("/usr/bin/qshield")
            .args(["keygen", "--out-dir"])
            .arg(copy.join("keys/site-a")));
        assert!(ok, "keygen: {said}");
        let (ok, said) = run(Command::new("/usr/bin/qshield")
            .arg("check-config")
            .arg(copy.join("site-a.toml")));
        assert!(ok, "check-config of the shipped example: {said}");
        let units = tempfile::tempdir().unwrap();
        for unit in ["qshield@.service", "qshield-kme@.service"] {
            let installed = Path::new("/lib/systemd/system").join(unit);
            let text = std::fs::read_to_string(&installed).unwrap();
            assert!(
                text.contains("ExecStart=/usr/bin/qshield "),
                "{unit}: {text}"
            );
            verify_and_rate(&instance(&installed, "/usr/bin/qshield", units.path()));
        }
    });
    let (ok, said) = purge();
    assert!(ok, "dpkg --purge: {said}");
    if let Err(e) = checks {
        std::panic::resume_unwind(e);
    }
    assert!(
        !Path::new("/usr/bin/qshield").exists(),
        "the binary outlived the package"
    );
    assert!(!Path::new("/lib/systemd/system/qshield@.service").exists());
    let (_, said) = run(Command::new("dpkg").args(["-s", "qshield"]));
    assert!(
        said.contains("is not installed") || said.contains("not installed"),
        "{said}"
    );
}

/// The effective user ID, from /proc (no `unsafe` in the tests).
fn effective_uid() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    line.split_whitespace().nth(2).unwrap().parse().unwrap()
}
