//! Rule paths: `a.{capture}."quoted.key".list[{i}].b[{j}][{k}]` into steps.

use super::ident::check_ident;

/// One step of a path as written.
#[derive(Debug, PartialEq)]
pub(super) enum Step {
    Literal(String),
    Capture(String),
    /// An array element on the way, its position captured (`[{i}]` not
    /// at the end of the path).
    Position(String),
}

/// Parses `a.b.{x}."dotted.key".list[{pos}]`: the steps, and the position
/// column when the path ends in `[{column}]` (the value is an array whose
/// elements become rows). Positions before the end (`a[{i}].b`,
/// `m[{i}][{j}]`) are steps into the elements of arrays on the way.
pub(super) fn parse_path(path: &str) -> std::result::Result<(Vec<Step>, Option<String>), String> {
    let mut steps = Vec::new();
    let mut chars = path.chars().peekable();
    if path.is_empty() {
        return Err("is empty".into());
    }
    loop {
        match chars.peek() {
            None => return Err("ends with `.`".into()),
            Some('{') => {
                chars.next();
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) => name.push(c),
                        None => return Err(format!("`{{{name}` lacks its closing `}}`")),
                    }
                }
                check_ident(&name)?;
                steps.push(Step::Capture(name));
            }
            Some('"') => {
                chars.next();
                let mut key = String::new();
                loop {
                    match chars.next() {
                        None => return Err("unterminated quoted key".into()),
                        Some('\\') => match chars.next() {
                            Some(c) => key.push(c),
                            None => return Err("unterminated quoted key".into()),
                        },
                        Some('"') => break,
                        Some(c) => key.push(c),
                    }
                }
                steps.push(Step::Literal(key));
            }
            Some(_) => {
                let mut key = String::new();
                while let Some(&c) = chars.peek() {
                    if matches!(c, '.' | '[') {
                        break;
                    }
                    if matches!(c, '{' | '}' | ']' | '"') || c.is_whitespace() {
                        return Err(format!(
                            "unexpected `{c}`; quote keys with special characters: \"a.b\""
                        ));
                    }
                    key.push(c);
                    chars.next();
                }
                if key.is_empty() && steps.is_empty() && chars.peek() == Some(&'[') {
                    return Err(
                        "starts with an array position: rules start at a key of the \
                         blob's root object, and a blob whose root is an array has none \
                         (a Rust fixup, `Fixup::custom`, can wrap it in an object first: \
                         `{\"items\": [...]}` mapped by `items[{pos}]`)"
                            .into(),
                    );
                }
                if key.is_empty() {
                    return Err("empty key (two dots, or a dot at the start; a key that is \
                         the empty string is written \"\")"
                        .into());
                }
                // habits from jsonpath and from fixup paths, which would
                // name keys no blob holds
                if key == "$" && steps.is_empty() && chars.peek().is_none() {
                    return Err("a rule cannot claim the whole blob (`$`): give each key \
                         its own rule; several of its scalars go into one table as rows told \
                         apart by a constant column (`constants = { field = \"vip\" }`), \
                         or into one row of their own through an object rule on a key \
                         holding them (a key named `$` is written \"$\")"
                        .into());
                }
                if key == "$" && steps.is_empty() {
                    return Err("paths start at the blob's root without `$.` \
                         (a key named `$` is written \"$\")"
                        .into());
                }
                if key == "*" {
                    return Err(
                        "`*` matches nothing in a rule: capture the key into a column \
                         with `{column}` (a key named `*` is written \"*\")"
                            .into(),
                    );
                }
                steps.push(Step::Literal(key));
            }
        }
        while chars.peek() == Some(&'[') {
            chars.next();
            let mut rest = String::new();
            loop {
                match chars.next() {
                    Some(']') => break,
                    Some(c) => rest.push(c),
                    None => return Err(format!("`[{rest}` lacks its closing `]`")),
                }
            }
            let name = rest
                .strip_prefix('{')
                .and_then(|r| r.strip_suffix('}'))
                .ok_or("array position must be written `[{column}]`")?;
            check_ident(name)?;
            steps.push(Step::Position(name.to_string()));
        }
        match chars.next() {
            None => break,
            Some('.') => continue,
            Some(c) => return Err(format!("unexpected `{c}` after a key")),
        }
    }
    if steps.is_empty() {
        return Err("is empty".into());
    }
    let position = match steps.last() {
        Some(Step::Position(_)) => match steps.pop() {
            Some(Step::Position(name)) => Some(name),
            _ => None,
        },
        _ => None,
    };
    Ok((steps, position))
}
