//! The check both config targets make on a refusal: the message is not empty and points at
//! a line of the text (and a column within it, when it names one), as
//! `FILE:LINE[:COL]: [FIELD: ]PROBLEM`.

use qshield::config::{ConfigError, Location};
use std::path::Path;

/// Asserts that `location` lies in `text` and that `message` starts with it.
pub fn check_located(text: &str, origin: &Path, location: &Location, message: &str) {
    assert_eq!(location.file, origin, "{message}");
    let lines: Vec<&str> = text.split('\n').collect();
    assert!(
        (1..=lines.len()).contains(&location.line),
        "line {} outside 1..={}: {message}",
        location.line,
        lines.len()
    );
    if let Some(column) = location.column {
        let width = lines[location.line - 1].chars().count();
        assert!(
            (1..=width + 1).contains(&column),
            "column {column} outside 1..={}: {message}",
            width + 1
        );
    }
    let at = location.to_string();
    assert!(
        message.starts_with(&format!("{at}: ")) && message.len() > at.len() + 2,
        "message does not start with its location '{at}' followed by a problem: {message}"
    );
}

/// The daemon config's refusal: every error of a parse from text has a location.
pub fn check_config_error(text: &str, origin: &Path, e: &ConfigError) {
    let message = e.to_string();
    assert!(!message.trim().is_empty());
    match e {
        ConfigError::Read { .. } | ConfigError::OwnKey { .. } => {
            panic!("parse from text gave an error without a location: {message}")
        }
        ConfigError::Toml { at, .. } | ConfigError::Invalid { at, .. } => {
            check_located(text, origin, at, &message)
        }
    }
    if let ConfigError::Invalid { field, .. } = e {
        assert!(
            !field.is_empty(),
            "an invalid value names no field: {message}"
        );
    }
}
