//! The docs' file map stays true: every repository path the README and `docs/*.md` quote in
//! backticks exists, and the sans-IO core crate keeps depending on no I/O library (the rule
//! `docs/architecture.md` and `src/lib.rs` state, which the compiler holds only as long as
//! nobody adds such a dependency).

use std::path::Path;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Top-level folders whose paths the docs quote.
const TOP_LEVEL: &[&str] = &[
    "src/", "crates/", "tests/", "scripts/", "docs/", "configs/", "deploy/", "benches/",
];

/// The backticked spans of `text`.
fn backticked(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// A quoted span as a repository path, if it is one: `src/kme/mod.rs`, `tests/netns/*.sh`
/// (a glob: its folder must exist), `crates/qshield-core/src/proto/` (a folder).
fn as_repo_path(span: &str) -> Option<&str> {
    let span = span.trim();
    if span.contains(' ') || !TOP_LEVEL.iter().any(|top| span.starts_with(top)) {
        return None;
    }
    Some(match span.find('*') {
        Some(glob) => &span[..span[..glob].rfind('/').map_or(0, |slash| slash + 1)],
        None => span,
    })
}

fn docs() -> Vec<String> {
    let mut files = vec!["README.md".to_string()];
    let dir = Path::new(ROOT).join("docs");
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let name = entry.expect("a docs/ entry").file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".md") {
            files.push(format!("docs/{name}"));
        }
    }
    files.sort();
    files
}

#[test]
fn every_path_the_docs_quote_exists() {
    let mut missing = Vec::new();
    let mut checked = 0;
    for doc in docs() {
        let text = std::fs::read_to_string(Path::new(ROOT).join(&doc))
            .unwrap_or_else(|e| panic!("{doc}: {e}"));
        for span in backticked(&text) {
            if let Some(path) = as_repo_path(span) {
                checked += 1;
                if !Path::new(ROOT).join(path).exists() {
                    missing.push(format!("{doc}: `{span}`"));
                }
            }
        }
    }
    assert!(
        checked > 20,
        "only {checked} quoted paths found: the scan is broken"
    );
    assert!(
        missing.is_empty(),
        "the docs quote paths that do not exist:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_quoted_path_scan_recognises_paths_and_globs() {
    assert_eq!(as_repo_path("src/kme/mod.rs"), Some("src/kme/mod.rs"));
    assert_eq!(as_repo_path("tests/netns/*.sh"), Some("tests/netns/"));
    assert_eq!(as_repo_path("qshield up"), None);
    assert_eq!(as_repo_path("src/a b"), None);
    assert_eq!(backticked("a `x` b `y` c"), vec!["x", "y"]);
}

/// Crates that do I/O (sockets, files, threads of their own, the clock) or wrap it.
const IO_CRATES: &[&str] = &[
    "tokio",
    "reqwest",
    "hyper",
    "hyper-util",
    "axum",
    "rustls",
    "tokio-rustls",
    "libc",
    "redb",
    "signal-hook",
    "tracing-subscriber",
    "tempfile",
    "clap",
];

#[test]
fn the_core_crate_depends_on_no_io_library() {
    let manifest = std::fs::read_to_string(Path::new(ROOT).join("crates/qshield-core/Cargo.toml"))
        .expect("crates/qshield-core/Cargo.toml");
    let manifest: toml::Table = manifest.parse().expect("a TOML manifest");
    let dependencies = manifest
        .get("dependencies")
        .and_then(|d| d.as_table())
        .expect("a [dependencies] table");
    assert!(
        dependencies.contains_key("aws-lc-rs"),
        "the scan reads the wrong table"
    );
    let io: Vec<&String> = dependencies
        .keys()
        .filter(|name| IO_CRATES.contains(&name.as_str()))
        .collect();
    assert!(
        io.is_empty(),
        "qshield-core must stay sans-IO (docs/architecture.md), but depends on {io:?}"
    );
}
