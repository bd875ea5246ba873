//! `qshield completions` and `qshield man`, generated from the clap definitions, checked
//! with the real tools: bash loads the bash script and completes a subcommand; `man`
//! (man-db, installed by scripts/install-deps.sh) renders every page.

use std::process::Command;

const SUBCOMMANDS: [&str; 10] = [
    "keygen",
    "pubkey",
    "check-config",
    "up",
    "status",
    "pki",
    "qkd",
    "kme",
    "completions",
    "man",
];

fn qshield(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_qshield"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "qshield {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn bash_loads_the_completions_and_completes_subcommands() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("qshield.bash");
    std::fs::write(&script, qshield(&["completions", "bash"])).unwrap();
    // Ask the completion function what follows `qshield k` and `qshield qkd s`.
    let probe = format!(
        r#"source {}
complete -p qshield >/dev/null || exit 3
words() {{ COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${{#COMP_LINE}}
  COMPREPLY=(); _qshield qshield "${{COMP_WORDS[-1]}}" "${{COMP_WORDS[-2]}}"; echo "${{COMPREPLY[*]}}"; }}
words qshield k
words qshield qkd s"#,
        script.display()
    );
    let out = Command::new("bash").args(["-c", &probe]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bash: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].split(' ').any(|w| w == "keygen") && lines[0].split(' ').any(|w| w == "kme"),
        "qshield k<TAB>: {}",
        lines[0]
    );
    assert!(
        lines[1].split(' ').any(|w| w == "simulate"),
        "qshield qkd s<TAB>: {}",
        lines[1]
    );
}

#[test]
fn zsh_and_fish_scripts_name_every_subcommand() {
    let zsh = qshield(&["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef qshield"), "{}", &zsh[..40]);
    let fish = qshield(&["completions", "fish"]);
    for sub in SUBCOMMANDS {
        assert!(zsh.contains(&format!("'{sub}:")), "zsh lacks {sub}");
        assert!(fish.contains(&format!("-a \"{sub}\"")), "fish lacks {sub}");
    }
}

#[test]
fn man_renders_every_page() {
    let page = qshield(&["man"]);
    assert!(
        page.starts_with(".ie \\n(.g .ds Aq") || page.contains(".TH qshield 1"),
        "{}",
        &page[..80]
    );
    for sub in SUBCOMMANDS {
        // (roff escapes a hyphen as \-)
        let escaped = format!("qshield\\-{}(1)", sub.replace('-', "\\-"));
        assert!(page.contains(&escaped), "qshield.1 does not list {escaped}");
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("man1");
    qshield(&["man", "--out-dir", out.to_str().unwrap()]);
    let mut pages: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    for want in [
        "qshield.1",
        "qshield-up.1",
        "qshield-kme.1",
        "qshield-qkd-rate.1",
        "qshield-pki-init.1",
    ] {
        assert!(pages.iter().any(|p| p == want), "{want} not in {pages:?}");
    }
    // man-db renders each page without a warning.
    for p in &pages {
        let r = Command::new("man")
            .args(["--warnings", "-l"])
            .arg(out.join(p))
            .env("MANWIDTH", "80")
            .env("MAN_KEEP_FORMATTING", "0")
            .output()
            .expect("man (man-db) is installed by scripts/install-deps.sh");
        let text = plain(&String::from_utf8_lossy(&r.stdout));
        assert!(
            r.status.success(),
            "man -l {p}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
        assert!(
            r.stderr.is_empty(),
            "man -l {p} warns: {}",
            String::from_utf8_lossy(&r.stderr)
        );
        let name = p.trim_end_matches(".1");
        assert!(text.contains("NAME") && text.contains(name), "{p}: {text}");
    }
}

/// Text without the overstrike of a terminal page (`N\x08N` is a bold N).
fn plain(text: &str) -> String {
    let mut out: Vec<char> = Vec::new();
    for c in text.chars() {
        if c == '\u{8}' {
            out.pop();
        } else {
            out.push(c);
        }
    }
    out.into_iter().collect()
}
