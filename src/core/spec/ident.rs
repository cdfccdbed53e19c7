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

/// Checks the name of an object that may already exist (the source's
/// schema, table and columns, the schemas decant writes into): any name
/// PostgreSQL takes quoted (`my-app`, `the users`, `Joueurs_été`), at most
/// 63 bytes, without a NUL, and without `$`, which could end the
/// dollar-quoted bodies of the functions decant generates. decant always
/// quotes it.
pub(crate) fn check_existing_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() {
        Err("an empty name".into())
    } else if name.len() > 63 {
        Err(format!(
            "`{name}` is longer than PostgreSQL's 63 bytes ({} bytes)",
            name.len()
        ))
    } else if name.contains(['\0', '$']) {
        Err(format!(
            "`{name}` holds a NUL or a `$`, which decant cannot quote in the bodies of its generated functions: rename it"
        ))
    } else {
        Ok(())
    }
}

/// Quotes an identifier already checked by [`check_ident`] or
/// [`check_existing_name`].
pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `name` as PostgreSQL keeps it: cut to 63 bytes, never inside a
/// character (as PostgreSQL cuts a multibyte name).
pub(crate) fn cut_name(name: &str) -> &str {
    &name[..floor_char_boundary(name, 63)]
}

/// The largest index at most `at` that starts a character of `s`.
pub(crate) fn floor_char_boundary(s: &str, at: usize) -> usize {
    if at >= s.len() {
        return s.len();
    }
    (0..=at).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0)
}
