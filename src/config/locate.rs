//! Maps a byte offset in a TOML document back to the field path that holds it
//! (`peer[1].allowed_ips[0]`), so errors reported by the TOML deserializer (wrong type,
//! unknown key, missing key) name the field like the validator's own errors do.

use std::ops::Range;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// The path of the deepest key or value whose span contains `offset`. When the parser
/// dropped that key (a duplicate key), the path is the enclosing table's plus the key
/// written on that line. `None` for a syntax error (not about any one field).
pub(super) fn field_at(text: &str, offset: usize) -> Option<String> {
    let (doc, errors) = DeTable::parse_recoverable(text);
    if !errors.iter().all(|e| e.message().contains("duplicate")) {
        return None;
    }
    let mut path = String::new();
    if search_table(doc.get_ref(), offset, &mut path) {
        return Some(path);
    }
    if errors.is_empty() {
        return None;
    }
    key_on_line(doc.get_ref(), text, offset)
}

/// The enclosing table (the last header before `offset`) plus the key written on the line.
fn key_on_line(doc: &DeTable<'_>, text: &str, offset: usize) -> Option<String> {
    let mut headers = Vec::new();
    collect_headers(doc, &mut String::new(), &mut headers);
    let table = headers
        .into_iter()
        .filter(|(start, _)| *start <= offset)
        .max_by_key(|(start, _)| *start)
        .map(|(_, path)| path)
        .unwrap_or_default();
    let line_start = text.get(..offset)?.rfind('\n').map_or(0, |i| i + 1);
    let line = text.get(line_start..)?.lines().next()?;
    let key = line.split_once('=')?.0.trim();
    Some(if table.is_empty() {
        key.to_string()
    } else {
        format!("{table}.{key}")
    })
}

/// Every table (and array-of-tables entry) with the start of its span and its path.
fn collect_headers(table: &DeTable<'_>, path: &mut String, out: &mut Vec<(usize, String)>) {
    for (key, value) in table {
        let base = path.len();
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key.get_ref());
        collect_value(value, path, out);
        path.truncate(base);
    }
}

fn collect_value(value: &Spanned<DeValue<'_>>, path: &mut String, out: &mut Vec<(usize, String)>) {
    match value.get_ref() {
        DeValue::Table(t) => {
            out.push((value.span().start, path.clone()));
            collect_headers(t, path, out);
        }
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let base = path.len();
                path.push_str(&format!("[{i}]"));
                collect_value(item, path, out);
                path.truncate(base);
            }
        }
        _ => {}
    }
}

fn search_table(table: &DeTable<'_>, offset: usize, path: &mut String) -> bool {
    for (key, value) in table {
        let base = path.len();
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key.get_ref());
        if contains(&key.span(), offset) || search_value(value, offset, path) {
            return true;
        }
        path.truncate(base);
    }
    false
}

fn search_value(value: &Spanned<DeValue<'_>>, offset: usize, path: &mut String) -> bool {
    let found_inside = match value.get_ref() {
        DeValue::Table(table) => search_table(table, offset, path),
        DeValue::Array(items) => search_array(items, offset, path),
        _ => false,
    };
    found_inside || contains(&value.span(), offset)
}

fn search_array(items: &[Spanned<DeValue<'_>>], offset: usize, path: &mut String) -> bool {
    for (i, item) in items.iter().enumerate() {
        let base = path.len();
        path.push_str(&format!("[{i}]"));
        if search_value(item, offset, path) {
            return true;
        }
        path.truncate(base);
    }
    false
}

fn contains(span: &Range<usize>, offset: usize) -> bool {
    span.start <= offset && offset < span.end
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "[interface]\nname = \"a\"\n[[peer]]\nname = \"x\"\n\
                       [[peer]]\nallowed_ips = [\"a\", 3]\n";

    fn at(needle: &str, nth: usize) -> usize {
        DOC.match_indices(needle).nth(nth).map(|(i, _)| i).unwrap()
    }

    #[test]
    fn finds_keys_values_headers_and_array_entries() {
        assert_eq!(field_at(DOC, 0).as_deref(), Some("interface"));
        assert_eq!(
            field_at(DOC, at("name", 0)).as_deref(),
            Some("interface.name")
        );
        assert_eq!(
            field_at(DOC, at("\"x\"", 0)).as_deref(),
            Some("peer[0].name")
        );
        assert_eq!(field_at(DOC, at("[[peer]]", 1)).as_deref(), Some("peer[1]"));
        assert_eq!(
            field_at(DOC, at("3", 0)).as_deref(),
            Some("peer[1].allowed_ips[1]")
        );
        assert_eq!(field_at("a = = 1", 0), None);
        let dup = "[interface]\nname = \"a\"\nname = \"b\"\n";
        assert_eq!(field_at(dup, 23).as_deref(), Some("interface.name"));
    }
}
