//! The lexing of libpq connection strings shared by the TLS settings
//! (`tls`) and connection services (`service`): `key=value` pairs and a
//! URL's percent escapes.

/// `key=value` pairs of a libpq connection string (values possibly
/// single-quoted with `\` escapes), with each pair's original text.
pub(crate) fn key_values(s: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut chars = s.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut key = String::new();
        while let Some(&(_, c)) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        // spaces around the `=`
        while chars.next_if(|&(_, c)| c.is_whitespace()).is_some() {}
        chars.next_if(|&(_, c)| c == '=');
        while chars.next_if(|&(_, c)| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.peek().map(|&(_, c)| c) == Some('\'') {
            chars.next();
            while let Some((_, c)) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next().map(|(_, c)| c)),
                    '\'' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&(_, c)) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                if c == '\\' {
                    chars.next();
                    value.extend(chars.next().map(|(_, c)| c));
                    continue;
                }
                value.push(c);
                chars.next();
            }
        }
        let end = chars.peek().map(|&(i, _)| i).unwrap_or(s.len());
        out.push((key, value, s[start..end].to_string()));
    }
    out
}

/// `s` with its `%XX` escapes decoded (a URL's query values).
pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `v` as a value of a `key=value` connection string: single-quoted, with
/// `\` and `'` escaped.
pub(crate) fn quote(v: &str) -> String {
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}
