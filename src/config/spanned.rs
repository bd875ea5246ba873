//! Span-aware validation shared by the daemon's config (`super::validate`, `super::peers`)
//! and the KME's (`crate::kme::config`): the text being validated and its file
//! ([`Source`]), a span resolved to `FILE:LINE:COL`, refusals of a field's value
//! ([`InvalidField`]), relative paths, and the value parsers both files need (socket
//! addresses, IDs, durations, prefix lists), each reporting the span of the value it refused.
//! What a value may be and what the message says stay with each config; the mechanics live
//! here once.

use super::error::{ConfigError, Location, Problem};
use super::raw::{self, StringList};
use super::units::{self, DurationSyntax, UnitError};
use crate::cidr::IpCidr;
use serde::de::DeserializeOwned;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// A config error type that can report a well-formed value validation refused.
pub(crate) trait InvalidField: Sized {
    /// What is wrong with a value, in this config's terms.
    type Problem;
    /// The refusal of `field`'s value at `at`.
    fn invalid(at: Location, field: String, problem: Self::Problem) -> Self;
}

impl InvalidField for ConfigError {
    type Problem = Problem;

    fn invalid(at: Location, field: String, problem: Problem) -> Self {
        Self::Invalid {
            at,
            field,
            problem: Box::new(problem),
        }
    }
}

/// The characters an ID may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdCharset {
    /// ASCII letters, digits, `-`, `.`, `_`, `:` (the KME's IDs: KMEs and SAEs).
    AsciiName,
    /// Anything but `/`, whitespace and control characters (an ID that goes into a URL
    /// path: the daemon's SAE IDs).
    PathSegment,
}

impl IdCharset {
    /// Whether `id` is non-empty and made of these characters only.
    pub(crate) fn accepts(self, id: &str) -> bool {
        let ok = |c: char| match self {
            Self::AsciiName => c.is_ascii_alphanumeric() || "-._:".contains(c),
            Self::PathSegment => !(c == '/' || c.is_whitespace() || c.is_control()),
        };
        !id.is_empty() && id.chars().all(ok)
    }
}

/// The text being validated and where it came from.
pub(crate) struct Source<'a> {
    /// The whole config text (spans index into it).
    pub text: &'a str,
    /// The config file's path (for messages and relative paths).
    pub origin: &'a Path,
}

impl Source<'_> {
    /// Deserializes the raw schema; a syntax or schema error is located and attributed to a
    /// field where possible.
    pub fn parse_toml<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        toml::from_str(self.text).map_err(|e| super::toml_error(&e, self.text, self.origin))
    }

    /// Where a span starts.
    pub fn location(&self, span: &Range<usize>) -> Location {
        Location::at_span(self.origin, self.text, span)
    }

    /// The 1-based line of a span's start.
    pub fn line(&self, span: &Range<usize>) -> usize {
        self.location(span).line
    }

    /// The refusal of `field`'s value at `span`.
    pub fn invalid<E: InvalidField>(
        &self,
        span: Range<usize>,
        field: impl Into<String>,
        problem: E::Problem,
    ) -> E {
        E::invalid(self.location(&span), field.into(), problem)
    }

    /// A path as written, relative ones taken from the config file's directory.
    pub fn resolve(&self, written: &str) -> PathBuf {
        let path = Path::new(written);
        match self.origin.parent() {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.to_path_buf(),
        }
    }

    /// A socket address, `IPv4:PORT` or `[IPv6]:PORT`; `problem` words the refusal of the
    /// text as written.
    pub fn socket_addr<E: InvalidField>(
        &self,
        raw: &Spanned<String>,
        field: &str,
        problem: impl FnOnce(&str) -> E::Problem,
    ) -> Result<SocketAddr, E> {
        raw.get_ref()
            .parse()
            .map_err(|_| self.invalid(raw.span(), field, problem(raw.get_ref())))
    }

    /// An ID made of `charset`; `problem` words the refusal of the ID as written.
    pub fn id<E: InvalidField>(
        &self,
        raw: &Spanned<String>,
        field: &str,
        charset: IdCharset,
        problem: impl FnOnce(&str) -> E::Problem,
    ) -> Result<String, E> {
        let id = raw.get_ref();
        if !charset.accepts(id) {
            return Err(self.invalid(raw.span(), field, problem(id)));
        }
        Ok(id.clone())
    }

    /// A duration written at `span` in `syntax`; `problem` words why it does not parse.
    pub fn duration<E: InvalidField>(
        &self,
        text: &str,
        span: Range<usize>,
        field: &str,
        syntax: DurationSyntax,
        problem: impl FnOnce(UnitError) -> E::Problem,
    ) -> Result<Duration, E> {
        units::parse_duration_as(text, syntax).map_err(|e| self.invalid(span, field, problem(e)))
    }

    /// A non-empty list of prefixes (`interface.address`, `peer[i].allowed_ips`); a bad entry
    /// is named by its index (`peer[0].allowed_ips[1]`).
    pub(super) fn cidr_list(
        &self,
        raw: &Spanned<StringList>,
        field: &str,
    ) -> Result<Vec<IpCidr>, ConfigError> {
        let entries = raw::entries(raw);
        if entries.is_empty() {
            return Err(self.invalid(raw.span(), field, Problem::EmptyList));
        }
        let parse = |(text, span, suffix): (&str, Range<usize>, String)| {
            text.parse::<IpCidr>().map_err(|source| {
                let problem = Problem::Cidr {
                    value: text.to_string(),
                    source,
                };
                self.invalid(span, format!("{field}{suffix}"), problem)
            })
        };
        entries.into_iter().map(parse).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_charsets() {
        assert!(IdCharset::AsciiName.accepts("kme-a.b_c:1"));
        assert!(!IdCharset::AsciiName.accepts(""));
        assert!(!IdCharset::AsciiName.accepts("sae é"));
        assert!(!IdCharset::AsciiName.accepts("a/b"));
        assert!(IdCharset::PathSegment.accepts("sae-é"));
        assert!(!IdCharset::PathSegment.accepts(""));
        assert!(!IdCharset::PathSegment.accepts("a/b"));
        assert!(!IdCharset::PathSegment.accepts("a b"));
        assert!(!IdCharset::PathSegment.accepts("a\u{7}"));
    }

    #[test]
    fn refusals_name_line_column_and_field() {
        let text = "a = 1\nlisten = \"nowhere\"\n";
        let src = Source {
            text,
            origin: Path::new("/etc/q/x.toml"),
        };
        let raw = Spanned::new(15..24, "nowhere".to_string());
        let e: ConfigError = src
            .socket_addr(&raw, "listen", |w| Problem::IpAddress(w.to_string()))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/q/x.toml:2:10: listen: 'nowhere' is not an IPv4 or IPv6 address"
        );
        assert_eq!(src.resolve("d"), Path::new("/etc/q/d"));
        assert_eq!(src.resolve("/d"), Path::new("/d"));
    }
}
