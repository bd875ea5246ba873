//! The demo's report (scripts/lib/report.py, written by scripts/demo.sh) rendered by a real
//! browser: headless Chromium (Debian's `chromium`, installed by scripts/install-deps.sh)
//! opens the report made from a recorded demo run (tests/fixtures/demo-report/: the samples,
//! events and daemon log of `scripts/demo.sh --attack ring-link`), renders every chart with
//! no console error, and takes a screenshot. The page fetches nothing: no URL but its own.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn chromium(profile: &Path, args: &[&str]) -> (String, String) {
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .expect("chromium (Debian package chromium) is installed by scripts/install-deps.sh");
    assert!(
        out.status.success(),
        "chromium {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_demo_report_renders_in_chromium_without_console_errors() {
    let fixture = root().join("tests/fixtures/demo-report");
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.html");
    let out = Command::new("python3")
        .arg(root().join("scripts/lib/report.py"))
        .arg(fixture.join("samples.jsonl"))
        .arg(fixture.join("events.txt"))
        .arg(fixture.join("a.log"))
        .arg(&report)
        .arg("qshield demo: the Madrid topology, Eve on the ring")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "report.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = std::fs::read_to_string(&report).unwrap();
    for fetch in ["http://", "https://", "<script", "<link", "src="] {
        assert!(
            !html.contains(fetch),
            "the report must be self-contained: it has {fetch}"
        );
    }
    let url = format!("file://{}", report.display());
    let profile = dir.path().join("profile");
    let (dom, log) = chromium(&profile, &["--dump-dom", &url]);
    assert_eq!(
        dom.matches("<svg").count(),
        5,
        "five charts: {}",
        &dom[..dom.len().min(400)]
    );
    for want in [
        "hospital-a → hospital-b through the tunnel",
        "estimated excess noise ξ̂",
        "alarm ring-1 → ring-2",
        "keys over ring-3",
        "QKD key_ID",
    ] {
        assert!(dom.contains(want), "the rendered page lacks {want:?}");
    }
    assert!(dom.contains("class=\"alarm\""), "no alarm band drawn");
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught"))
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:?}");
    let shot = dir.path().join("report.png");
    chromium(
        &profile,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1200,1500",
            &url,
        ],
    );
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
    // The README shows a screenshot of a real run's report.
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(readme.contains("docs/demo-report.png"));
    let committed = std::fs::read(root().join("docs/demo-report.png")).unwrap();
    assert!(committed.starts_with(b"\x89PNG\r\n\x1a\n"));
}
