//! SQL identifiers from the spec: checked when parsed, always quoted.

/// Checks a SQL identifier from the spec: letters, digits, `_`, at most 63
/// bytes, not starting with a digit. decant always quotes it as well.
pub(crate) fn check_ident(name: &str) -> std::result::Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a valid name (letters, digits and _, not starting with a digit, at most 63 bytes)"
        ))
    }
}

/// Quotes an identifier already checked by [`check_ident`].
pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `name` as PostgreSQL keeps it: cut to 63 bytes (names from the spec
/// are ASCII).
pub(crate) fn cut_name(name: &str) -> &str {
    &name[..name.len().min(63)]
}
