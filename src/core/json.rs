//! A blob as the migration reads it: JSON text parsed into a tree that
//! borrows from the text (keys, strings without escapes and number texts
//! point into it), so exploding a blob allocates little beyond the rows.
//!
//! [`JsonView`] lets the rules walk either this tree or a
//! `serde_json::Value` (the compatibility layer's writes) with one code
//! path. Objects of both iterate in the same order, by key, so walking
//! either gives the same rows in the same order.

use crate::core::number::canonical_number;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fmt;

/// A read-only view of a JSON value.
pub trait JsonView: Sized {
    /// Whether the value is `null`.
    fn is_null(&self) -> bool;
    /// The boolean, if it is one.
    fn as_bool(&self) -> Option<bool>;
    /// The string, if it is one.
    fn as_str(&self) -> Option<&str>;
    /// The number's JSON text, if it is a number.
    fn number(&self) -> Option<&str>;
    /// The elements, if it is an array.
    fn array(&self) -> Option<&[Self]>;
    /// The entries in key order, if it is an object.
    fn object(&self) -> Option<impl ExactSizeIterator<Item = (&str, &Self)>>;
    /// An owned copy.
    fn to_value(&self) -> Value;
}

impl JsonView for Value {
    fn is_null(&self) -> bool {
        Value::is_null(self)
    }
    fn as_bool(&self) -> Option<bool> {
        Value::as_bool(self)
    }
    fn as_str(&self) -> Option<&str> {
        Value::as_str(self)
    }
    fn number(&self) -> Option<&str> {
        match self {
            Value::Number(n) => Some(n.as_str()),
            _ => None,
        }
    }
    fn array(&self) -> Option<&[Value]> {
        self.as_array().map(Vec::as_slice)
    }
    fn object(&self) -> Option<impl ExactSizeIterator<Item = (&str, &Value)>> {
        self.as_object()
            .map(|m| m.iter().map(|(k, v)| (k.as_str(), v)))
    }
    fn to_value(&self) -> Value {
        self.clone()
    }
}

/// A JSON value borrowing from the text it was parsed from.
#[derive(Debug, Clone, PartialEq)]
pub enum Json<'a> {
    /// `null`
    Null,
    /// `true` or `false`
    Bool(bool),
    /// A number, as its text.
    Number(&'a str),
    /// A string, unescaped (borrowed when it had no escapes).
    String(Cow<'a, str>),
    /// An array.
    Array(Vec<Json<'a>>),
    /// An object, its keys unique and sorted as `serde_json::Map` sorts
    /// them (a repeated key keeps its last value, as `serde_json` does).
    Object(Vec<(Cow<'a, str>, Json<'a>)>),
}

impl JsonView for Json<'_> {
    fn is_null(&self) -> bool {
        matches!(self, Json::Null)
    }
    fn as_bool(&self) -> Option<bool> {
        match self {
            Json::Bool(b) => Some(*b),
            _ => None,
        }
    }
    fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }
    fn number(&self) -> Option<&str> {
        match self {
            Json::Number(n) => Some(n),
            _ => None,
        }
    }
    fn array(&self) -> Option<&[Self]> {
        match self {
            Json::Array(a) => Some(a),
            _ => None,
        }
    }
    fn object(&self) -> Option<impl ExactSizeIterator<Item = (&str, &Self)>> {
        match self {
            Json::Object(entries) => Some(entries.iter().map(|(k, v)| (k.as_ref(), v))),
            _ => None,
        }
    }
    fn to_value(&self) -> Value {
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Number(n) => crate::core::number::number(n),
            Json::String(s) => Value::String(s.to_string()),
            Json::Array(a) => Value::Array(a.iter().map(Json::to_value).collect()),
            Json::Object(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_value()))
                    .collect::<Map<String, Value>>(),
            ),
        }
    }
}

/// Why a text is not JSON, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Byte offset of the problem.
    pub at: usize,
    /// What was wrong.
    pub what: &'static str,
    /// The depth limit, when the text is valid JSON as far as it was read
    /// but nested deeper than it.
    pub depth_limit: Option<usize>,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.depth_limit {
            Some(limit) => write!(f, "nested deeper than {limit} levels"),
            None => write!(f, "invalid JSON at byte {}: {}", self.at, self.what),
        }
    }
}

impl std::error::Error for ParseError {}

/// Parses one JSON value (RFC 8259; surrounding whitespace allowed),
/// nested at most `max_depth` levels (a spec's `max_depth`).
pub fn parse_limited(text: &str, max_depth: usize) -> Result<Json<'_>, ParseError> {
    let mut p = Parser {
        s: text,
        b: text.as_bytes(),
        i: 0,
        depth: 0,
        max_depth,
    };
    let v = p.value()?;
    p.skip_ws();
    if p.i != p.b.len() {
        return Err(p.err("trailing characters"));
    }
    Ok(v)
}

/// The default depth limit (a spec's `[settings] max_depth`): nesting
/// deeper than the limit is refused on every path that reads or writes a
/// blob (migration, census, load, save, patch, rollback), so a blob that
/// migrates also loads and rolls back. (serde_json's own parser stops one
/// level short of 128 with numbers inside; the blob reader falls back to
/// this parser.)
pub const MAX_DEPTH: usize = 128;

/// The highest depth limit a spec may set: every path that walks a blob
/// recurses once per level, within a 2 MiB thread stack (a tokio worker's;
/// tested).
pub const DEPTH_CEILING: usize = 512;

/// Whether a value is nested deeper than `max_depth` levels (an object or
/// array is one level; a scalar at the top is none). Stops descending past
/// the limit.
pub fn deeper_than(v: &Value, max_depth: usize) -> bool {
    let below = |c: &Value| deeper_than(c, max_depth - 1);
    match v {
        Value::Array(a) => max_depth == 0 || a.iter().any(below),
        Value::Object(o) => max_depth == 0 || o.values().any(below),
        _ => false,
    }
}

struct Parser<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
    depth: usize,
    max_depth: usize,
}

impl<'a> Parser<'a> {
    fn err(&self, what: &'static str) -> ParseError {
        ParseError {
            at: self.i,
            what,
            depth_limit: None,
        }
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    fn expect(&mut self, word: &'static str) -> Result<(), ParseError> {
        if self.b[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            Ok(())
        } else {
            Err(self.err("expected a value"))
        }
    }

    fn value(&mut self) -> Result<Json<'a>, ParseError> {
        self.skip_ws();
        match self.b.get(self.i) {
            None => Err(self.err("unexpected end")),
            Some(b'n') => self.expect("null").map(|()| Json::Null),
            Some(b't') => self.expect("true").map(|()| Json::Bool(true)),
            Some(b'f') => self.expect("false").map(|()| Json::Bool(false)),
            Some(b'"') => self.string().map(Json::String),
            Some(b'-' | b'0'..=b'9') => self.number().map(Json::Number),
            Some(b'[') => self.nested(Parser::array),
            Some(b'{') => self.nested(Parser::object),
            Some(_) => Err(self.err("expected a value")),
        }
    }

    fn nested(
        &mut self,
        f: fn(&mut Parser<'a>) -> Result<Json<'a>, ParseError>,
    ) -> Result<Json<'a>, ParseError> {
        self.depth += 1;
        if self.depth > self.max_depth {
            return Err(ParseError {
                depth_limit: Some(self.max_depth),
                ..self.err("nested too deep")
            });
        }
        self.i += 1;
        let v = f(self);
        self.depth -= 1;
        v
    }

    fn array(&mut self) -> Result<Json<'a>, ParseError> {
        let mut items = Vec::new();
        self.skip_ws();
        if self.b.get(self.i) == Some(&b']') {
            self.i += 1;
            return Ok(Json::Array(items));
        }
        loop {
            items.push(self.value()?);
            self.skip_ws();
            match self.b.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(Json::Array(items));
                }
                _ => return Err(self.err("expected `,` or `]`")),
            }
        }
    }

    fn object(&mut self) -> Result<Json<'a>, ParseError> {
        let mut entries: Vec<(Cow<'a, str>, Json<'a>)> = Vec::new();
        self.skip_ws();
        if self.b.get(self.i) == Some(&b'}') {
            self.i += 1;
            return Ok(Json::Object(entries));
        }
        loop {
            self.skip_ws();
            if self.b.get(self.i) != Some(&b'"') {
                return Err(self.err("expected a key"));
            }
            let key = self.string()?;
            self.skip_ws();
            if self.b.get(self.i) != Some(&b':') {
                return Err(self.err("expected `:`"));
            }
            self.i += 1;
            let v = self.value()?;
            entries.push((key, v));
            self.skip_ws();
            match self.b.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    break;
                }
                _ => return Err(self.err("expected `,` or `}`")),
            }
        }
        // serde_json's order (byte order of the keys); jsonb's own order
        // (shorter keys first) needs a sort, a repeated key keeps its last
        // value
        if !entries.windows(2).all(|w| w[0].0 < w[1].0) {
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            let mut unique: Vec<(Cow<'a, str>, Json<'a>)> = Vec::with_capacity(entries.len());
            for e in entries {
                match unique.last_mut() {
                    Some(last) if last.0 == e.0 => *last = e,
                    _ => unique.push(e),
                }
            }
            entries = unique;
        }
        Ok(Json::Object(entries))
    }

    fn number(&mut self) -> Result<&'a str, ParseError> {
        let start = self.i;
        let digits = |p: &mut Parser<'a>| {
            let from = p.i;
            while let Some(b'0'..=b'9') = p.b.get(p.i) {
                p.i += 1;
            }
            p.i - from
        };
        if self.b.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        let int_start = self.i;
        let n = digits(self);
        if n == 0 || (n > 1 && self.b[int_start] == b'0') {
            return Err(self.err("invalid number"));
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            if digits(self) == 0 {
                return Err(self.err("invalid number"));
            }
        }
        if let Some(b'e' | b'E') = self.b.get(self.i) {
            self.i += 1;
            if let Some(b'+' | b'-') = self.b.get(self.i) {
                self.i += 1;
            }
            if digits(self) == 0 {
                return Err(self.err("invalid number"));
            }
        }
        Ok(&self.s[start..self.i])
    }

    /// A string starting at the opening quote.
    fn string(&mut self) -> Result<Cow<'a, str>, ParseError> {
        self.i += 1;
        let start = self.i;
        loop {
            match self.b.get(self.i) {
                None => return Err(self.err("unterminated string")),
                Some(b'"') => {
                    let s = &self.s[start..self.i];
                    self.i += 1;
                    return Ok(Cow::Borrowed(s));
                }
                Some(b'\\') => break,
                Some(c) if *c < 0x20 => return Err(self.err("control character in a string")),
                Some(_) => self.i += 1,
            }
        }
        let mut out = String::with_capacity(self.i - start + 16);
        out.push_str(&self.s[start..self.i]);
        loop {
            let from = self.i;
            while let Some(c) = self.b.get(self.i) {
                if *c == b'"' || *c == b'\\' || *c < 0x20 {
                    break;
                }
                self.i += 1;
            }
            out.push_str(&self.s[from..self.i]);
            match self.b.get(self.i) {
                None => return Err(self.err("unterminated string")),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(Cow::Owned(out));
                }
                Some(b'\\') => {
                    self.i += 1;
                    let esc = *self
                        .b
                        .get(self.i)
                        .ok_or_else(|| self.err("unterminated string"))?;
                    self.i += 1;
                    match esc {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let hi = self.hex4()?;
                            let c = if (0xD800..0xDC00).contains(&hi) {
                                if !self.b[self.i..].starts_with(b"\\u") {
                                    return Err(self.err("lone surrogate"));
                                }
                                self.i += 2;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err(self.err("lone surrogate"));
                                }
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else {
                                hi
                            };
                            out.push(char::from_u32(c).ok_or_else(|| self.err("lone surrogate"))?);
                        }
                        _ => return Err(self.err("invalid escape")),
                    }
                }
                Some(_) => return Err(self.err("control character in a string")),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, ParseError> {
        let h = self
            .s
            .get(self.i..self.i + 4)
            .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| self.err("invalid \\u escape"))?;
        self.i += 4;
        Ok(u32::from_str_radix(h, 16).expect("four hex digits"))
    }
}

/// Whether `a` and `b` are equal as jsonb defines it: numbers by value,
/// everything else exactly (object entries of both come in key order).
pub fn eq<A: JsonView, B: JsonView>(a: &A, b: &B) -> bool {
    if let (Some(x), Some(y)) = (a.number(), b.number()) {
        return x == y || canonical_number(x) == canonical_number(y);
    }
    if let (Some(x), Some(y)) = (a.object(), b.object()) {
        return x.len() == y.len() && x.zip(y).all(|((kx, vx), (ky, vy))| kx == ky && eq(vx, vy));
    }
    if let (Some(x), Some(y)) = (a.array(), b.array()) {
        return x.len() == y.len() && x.iter().zip(y).all(|(xv, yv)| eq(xv, yv));
    }
    if let (Some(x), Some(y)) = (a.as_str(), b.as_str()) {
        return x == y;
    }
    if let (Some(x), Some(y)) = (a.as_bool(), b.as_bool()) {
        return x == y;
    }
    a.is_null() && b.is_null()
}

/// Equality as PostgreSQL's jsonb defines it: object key order does not
/// matter, numbers compare by numeric value, everything else exactly.
pub fn json_eq(a: &Value, b: &Value) -> bool {
    eq(a, b)
}

/// The path of the first difference between two JSON values under jsonb
/// equality, or `None` when they are equal.
pub fn json_diff(a: &Value, b: &Value, path: &mut String) -> Option<String> {
    // the common case, equal, without building paths
    if json_eq(a, b) {
        return None;
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if x.as_str() == y.as_str()
                || canonical_number(x.as_str()) == canonical_number(y.as_str())
            {
                None
            } else {
                Some(format!("at {}: {x} != {y}", show_path(path)))
            }
        }
        (Value::Object(x), Value::Object(y)) => {
            for (k, xv) in x {
                let len = path.len();
                path.push('.');
                path.push_str(k);
                let r = match y.get(k) {
                    Some(yv) => json_diff(xv, yv, path),
                    None => Some(format!("at {}: key missing on the right", show_path(path))),
                };
                path.truncate(len);
                if r.is_some() {
                    return r;
                }
            }
            for k in y.keys() {
                if !x.contains_key(k) {
                    return Some(format!(
                        "at {}.{k}: key missing on the left",
                        show_path(path)
                    ));
                }
            }
            None
        }
        (Value::Array(x), Value::Array(y)) => {
            if x.len() != y.len() {
                return Some(format!(
                    "at {}: array of {} elements != array of {}",
                    show_path(path),
                    x.len(),
                    y.len()
                ));
            }
            for (i, (xv, yv)) in x.iter().zip(y).enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                let r = json_diff(xv, yv, path);
                path.truncate(len);
                if r.is_some() {
                    return r;
                }
            }
            None
        }
        _ if a == b => None,
        _ => Some(format!("at {}: {a} != {b}", show_path(path))),
    }
}

fn show_path(path: &str) -> &str {
    if path.is_empty() { "$" } else { path }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn parse(text: &str) -> Result<Json<'_>, ParseError> {
        parse_limited(text, MAX_DEPTH)
    }

    #[test]
    fn parses_borrowing_where_it_can() {
        let text = r#" {"b": [1, -2.50e3, true, null], "a": "x\"y\u00e9\ud83d\udca5", "é": {}} "#;
        let v = parse(text).unwrap();
        let Json::Object(entries) = &v else {
            panic!("an object")
        };
        let keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(keys, ["a", "b", "é"], "sorted as serde_json sorts");
        assert!(matches!(entries[1].0, Cow::Borrowed(_)));
        assert_eq!(entries[0].1, Json::String(Cow::Owned("x\"yé💥".into())));
        assert_eq!(v.to_value(), serde_json::from_str::<Value>(text).unwrap());
        assert!(eq(
            &v,
            &json!({"b": [1, -2500, true, null], "a": "x\"yé💥", "é": {}})
        ));
        assert_eq!(
            entries[1].1.array().unwrap()[1].number(),
            Some("-2.50e3"),
            "numbers keep their text"
        );
    }

    #[test]
    fn repeated_keys_keep_the_last_value_like_serde_json() {
        let text = r#"{"a": 1, "b": 2, "a": 3}"#;
        let ours = parse(text).unwrap().to_value();
        let theirs: Value = serde_json::from_str(text).unwrap();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn refuses_what_is_not_json() {
        for bad in [
            "",
            "{",
            "[1,]",
            "{\"a\" 1}",
            "01",
            "1.",
            "-",
            "1e",
            "\"\\x\"",
            "\"\\ud800\"",
            "\"a\nb\"",
            "nul",
            "1 2",
            "{1: 2}",
            "\"\\u12\"",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
        let nest = |n: usize| "[".repeat(n) + &"]".repeat(n);
        let e = parse(&nest(MAX_DEPTH + 1)).unwrap_err();
        assert_eq!(e.depth_limit, Some(MAX_DEPTH));
        assert_eq!(e.to_string(), "nested deeper than 128 levels");
        assert!(parse(&nest(MAX_DEPTH)).is_ok());
        let e = parse_limited(&nest(6), 5).unwrap_err();
        assert_eq!(e.to_string(), "nested deeper than 5 levels");
        assert!(parse_limited(&nest(5), 5).is_ok());
        assert_eq!(parse("[").unwrap_err().depth_limit, None);
        let v: Value = serde_json::from_str(&nest(5)).unwrap();
        assert!(deeper_than(&v, 4) && !deeper_than(&v, 5));
        assert!(!deeper_than(&Value::Null, 0) && deeper_than(&serde_json::json!({}), 0));
    }

    #[test]
    fn the_ceiling_fits_a_worker_thread_stack() {
        // parse, convert, compare, print and drop a blob at the ceiling on
        // a thread with a tokio worker's stack
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(|| {
                let n = DEPTH_CEILING;
                let text = "[".repeat(n - 1) + "{\"a\": 1.50}" + &"]".repeat(n - 1);
                let parsed = parse_limited(&text, n).unwrap();
                let value = parsed.to_value();
                assert!(eq(&parsed, &value) && !deeper_than(&value, n));
                assert!(deeper_than(&value, n - 1));
                let printed = value.to_string();
                assert!(eq(&parse_limited(&printed, n).unwrap(), &value));
                assert_eq!(json_diff(&value, &value, &mut String::new()), None);
                drop((value, parsed));
            })
            .unwrap()
            .join()
            .unwrap();
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            "-?(0|[1-9][0-9]{0,25})(\\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?"
                .prop_map(|s| crate::core::number::number(&s)),
            any::<String>().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::btree_map(any::<String>(), inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Parsing serde_json's text of a value gives back the value, and
        /// equality agrees with `json_eq` both ways.
        #[test]
        fn parse_agrees_with_serde_json(v in json_value(), pretty in any::<bool>()) {
            let text = if pretty { serde_json::to_string_pretty(&v) } else { serde_json::to_string(&v) }.unwrap();
            let parsed = parse(&text).unwrap();
            prop_assert_eq!(parsed.to_value(), v.clone());
            prop_assert!(eq(&v, &parsed));
            prop_assert!(eq(&parsed, &v));
        }

        /// Equality is the same whichever side is parsed text.
        #[test]
        fn eq_agrees_across_views(a in json_value(), b in json_value()) {
            let (ta, tb) = (a.to_string(), b.to_string());
            let (pa, pb) = (parse(&ta).unwrap(), parse(&tb).unwrap());
            let want = eq(&a, &b);
            prop_assert_eq!(eq(&pa, &pb), want);
            prop_assert_eq!(eq(&a, &pb), want);
            prop_assert_eq!(eq(&pa, &b), want);
        }
    }
    #[test]
    fn json_diff_names_the_path() {
        let a = json!({"a": {"b": [1, 2]}});
        let b = json!({"a": {"b": [1, 3]}});
        let d = json_diff(&a, &b, &mut String::new()).unwrap();
        assert!(d.contains(".a.b[1]"), "{d}");
        assert!(json_eq(
            &json!({"x": 1, "y": 2}),
            &json!({"y": 2, "x": 1.0})
        ));
    }
}
