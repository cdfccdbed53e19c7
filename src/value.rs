//! Column types, the values they hold, and exact conversion between JSON
//! values and column values.
//!
//! Every conversion is checked by converting back: a JSON value is accepted
//! into a column only when the column value turns into a JSON value equal to
//! it under jsonb equality. That makes `reconstruct(explode(b)) == b` hold by
//! construction for every blob that validates.

use crate::json::JsonView;
use serde_json::{Number, Value};
use std::cmp::Ordering;
use std::fmt;

/// A column type from the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColumnType {
    /// `boolean`
    Bool,
    /// `smallint`
    Int2,
    /// `integer`
    Int4,
    /// `bigint`
    Int8,
    /// `double precision`
    Float8,
    /// `numeric` (exact, any JSON number)
    Numeric,
    /// `text`
    Text,
    /// `timestamptz` from a JSON number of milliseconds since the epoch
    TimestampMs,
    /// `timestamptz` from an RFC 3339 JSON string
    TimestampIso,
    /// `jsonb` (any JSON value)
    Jsonb,
}

impl ColumnType {
    /// Parses the spec's type name.
    pub fn parse(name: &str) -> Option<ColumnType> {
        Some(match name {
            "bool" | "boolean" => ColumnType::Bool,
            "int2" | "smallint" => ColumnType::Int2,
            "int4" | "integer" | "int" => ColumnType::Int4,
            "int8" | "bigint" => ColumnType::Int8,
            "float8" | "double precision" => ColumnType::Float8,
            "numeric" => ColumnType::Numeric,
            "text" => ColumnType::Text,
            "timestamptz" | "timestamptz_ms" => ColumnType::TimestampMs,
            "timestamptz_iso" => ColumnType::TimestampIso,
            "jsonb" => ColumnType::Jsonb,
            _ => return None,
        })
    }

    /// The spec names accepted by [`ColumnType::parse`], for error messages.
    pub const NAMES: &'static str = "bool, int2, int4, int8, float8, numeric, text, \
        timestamptz (epoch milliseconds), timestamptz_iso (RFC 3339 text), jsonb";

    /// The PostgreSQL type of the column, spelled as `format_type` spells
    /// it (so the catalog can be compared with it).
    pub fn sql(self) -> &'static str {
        match self {
            ColumnType::Bool => "boolean",
            ColumnType::Int2 => "smallint",
            ColumnType::Int4 => "integer",
            ColumnType::Int8 => "bigint",
            ColumnType::Float8 => "double precision",
            ColumnType::Numeric => "numeric",
            ColumnType::Text => "text",
            ColumnType::TimestampMs | ColumnType::TimestampIso => "timestamp with time zone",
            ColumnType::Jsonb => "jsonb",
        }
    }

    /// The type decant binds arrays of, and reads back, over the wire.
    /// Numeric travels as text to stay exact.
    pub(crate) fn wire(self) -> &'static str {
        match self {
            ColumnType::Numeric => "text",
            other => other.sql(),
        }
    }

    /// SQL turning a wire expression into the column type.
    pub(crate) fn wire_to_column(self, expr: &str) -> String {
        match self {
            ColumnType::Numeric => format!("{expr}::numeric"),
            _ => expr.to_string(),
        }
    }

    /// SQL turning a column into its wire form.
    pub(crate) fn column_to_wire(self, column: &str) -> String {
        match self {
            ColumnType::Numeric => format!("{column}::text"),
            _ => column.to_string(),
        }
    }

    /// A human name used in error messages ("an int8", ...).
    pub fn describe(self) -> &'static str {
        match self {
            ColumnType::Bool => "a boolean",
            ColumnType::Int2 => "an integer in int2 range",
            ColumnType::Int4 => "an integer in int4 range",
            ColumnType::Int8 => "an integer in int8 range",
            ColumnType::Float8 => "a number exact in float8",
            ColumnType::Numeric => "a number",
            ColumnType::Text => "a string",
            ColumnType::TimestampMs => {
                "epoch milliseconds (a number, at most microsecond precision)"
            }
            ColumnType::TimestampIso => "an RFC 3339 timestamp string in canonical form",
            ColumnType::Jsonb => "any JSON value",
        }
    }
}

/// A value of one column of one row.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnValue {
    /// SQL NULL
    Null,
    /// boolean
    Bool(bool),
    /// smallint
    I16(i16),
    /// integer
    I32(i32),
    /// bigint
    I64(i64),
    /// double precision
    F64(f64),
    /// numeric, as its decimal text
    Numeric(String),
    /// text
    Text(String),
    /// timestamptz as microseconds since the Unix epoch
    Micros(i64),
    /// jsonb
    Json(Value),
}

impl ColumnValue {
    /// Equality as the database sees it (numerics by value), without
    /// allocating in the common cases.
    pub(crate) fn same(&self, other: &ColumnValue) -> bool {
        match (self, other) {
            (ColumnValue::Text(a), ColumnValue::Text(b)) => a == b,
            (ColumnValue::Numeric(a), ColumnValue::Numeric(b)) => {
                a == b || canonical_number(a) == canonical_number(b)
            }
            (a, b) => a == b,
        }
    }

    /// A stable text form used to compare row keys.
    pub(crate) fn key_text(&self) -> String {
        match self {
            ColumnValue::Null => "\u{1}null".into(),
            ColumnValue::Bool(b) => b.to_string(),
            ColumnValue::I16(v) => v.to_string(),
            ColumnValue::I32(v) => v.to_string(),
            ColumnValue::I64(v) | ColumnValue::Micros(v) => v.to_string(),
            ColumnValue::F64(v) => v.to_string(),
            ColumnValue::Numeric(s) => canonical_number(s)
                .map(|c| c.to_string())
                .unwrap_or_else(|| s.clone()),
            ColumnValue::Text(s) => s.clone(),
            ColumnValue::Json(v) => v.to_string(),
        }
    }
}

/// Why a JSON value does not fit a column.
#[derive(Debug, Clone, PartialEq)]
pub struct Mismatch(pub String);

/// Converts a JSON value into a value of `ty`, exactly, or says why not.
/// JSON `null` becomes SQL NULL for every type.
pub fn to_column<V: JsonView>(ty: ColumnType, v: &V) -> Result<ColumnValue, Mismatch> {
    if v.is_null() {
        return Ok(ColumnValue::Null);
    }
    let wrong = || Mismatch(format!("expected {}", ty.describe()));
    let cv = match ty {
        ColumnType::Bool => ColumnValue::Bool(v.as_bool().ok_or_else(wrong)?),
        ColumnType::Int2 => {
            let n = integer(v).ok_or_else(wrong)?;
            ColumnValue::I16(i16::try_from(n).map_err(|_| wrong())?)
        }
        ColumnType::Int4 => {
            let n = integer(v).ok_or_else(wrong)?;
            ColumnValue::I32(i32::try_from(n).map_err(|_| wrong())?)
        }
        ColumnType::Int8 => ColumnValue::I64(integer(v).ok_or_else(wrong)?),
        ColumnType::Float8 => {
            let f: f64 = v.number().ok_or_else(wrong)?.parse().map_err(|_| wrong())?;
            if !f.is_finite() {
                return Err(wrong());
            }
            ColumnValue::F64(f)
        }
        ColumnType::Numeric => ColumnValue::Numeric(v.number().ok_or_else(wrong)?.to_string()),
        ColumnType::Text => ColumnValue::Text(v.as_str().ok_or_else(wrong)?.to_string()),
        ColumnType::TimestampMs => {
            let c = canonical_number(v.number().ok_or_else(wrong)?).ok_or_else(wrong)?;
            // milliseconds * 1000 must be a whole number of microseconds
            let micros = c.shifted(3).to_i64().ok_or_else(wrong)?;
            if !(MIN_MICROS..=MAX_MICROS).contains(&micros) {
                return Err(wrong());
            }
            ColumnValue::Micros(micros)
        }
        ColumnType::TimestampIso => {
            let s = v.as_str().ok_or_else(wrong)?;
            let ts: jiff::Timestamp = s.parse().map_err(|_| wrong())?;
            let micros = ts.as_microsecond();
            if !(MIN_MICROS..=MAX_MICROS).contains(&micros) {
                return Err(wrong());
            }
            ColumnValue::Micros(micros)
        }
        ColumnType::Jsonb => ColumnValue::Json(v.to_value()),
    };
    // The round-trip check: only exact representations are accepted.
    // Integers, text, booleans and jsonb come back exactly by construction
    // (an integer column only takes numbers whose canonical form is an
    // integer in range), so only floats and timestamps need it.
    if !matches!(
        ty,
        ColumnType::Float8 | ColumnType::TimestampMs | ColumnType::TimestampIso
    ) {
        return Ok(cv);
    }
    let back = to_json(ty, &cv);
    if !crate::json::eq(&back, v) {
        return Err(Mismatch(format!(
            "expected {} (it would come back as {back})",
            ty.describe()
        )));
    }
    Ok(cv)
}

// PostgreSQL's timestamptz range is wider, but these bounds keep every
// value representable by jiff and by epoch-millisecond numbers.
const MIN_MICROS: i64 = -62_135_596_800_000_000; // 0001-01-01
const MAX_MICROS: i64 = 253_402_300_799_999_999; // 9999-12-31

/// Converts a column value back to the JSON value it stands for.
pub fn to_json(ty: ColumnType, cv: &ColumnValue) -> Value {
    match cv {
        ColumnValue::Null => Value::Null,
        ColumnValue::Bool(b) => Value::Bool(*b),
        ColumnValue::I16(n) => Value::from(*n),
        ColumnValue::I32(n) => Value::from(*n),
        ColumnValue::I64(n) => Value::from(*n),
        ColumnValue::F64(f) => number(&format_f64(*f)),
        ColumnValue::Numeric(s) => number(s),
        ColumnValue::Text(s) => Value::String(s.clone()),
        ColumnValue::Micros(us) => match ty {
            ColumnType::TimestampIso => {
                Value::String(match jiff::Timestamp::from_microsecond(*us) {
                    Ok(ts) => ts.to_string(),
                    Err(_) => us.to_string(),
                })
            }
            _ => number(&Canonical::from_i64(*us).shifted(-3).to_string()),
        },
        ColumnValue::Json(v) => v.clone(),
    }
}

fn format_f64(f: f64) -> String {
    // Rust's Display gives the shortest text that parses back to the same f64.
    let s = format!("{f}");
    if s == "-0" { "0".into() } else { s }
}

/// Builds a JSON number from JSON number text, exactly (a string when the
/// text is not a number).
pub fn number(text: &str) -> Value {
    match serde_json::from_str::<Number>(text) {
        Ok(n) => Value::Number(n),
        Err(_) => Value::String(text.to_string()),
    }
}

fn integer<V: JsonView>(v: &V) -> Option<i64> {
    let text = v.number()?;
    plain_integer(text).or_else(|| canonical_number(text)?.to_i64())
}

/// The value of number text made of plain digits (an optional minus and at
/// most 18 digits), the common case, without building the canonical form.
pub(crate) fn plain_integer(text: &str) -> Option<i64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if !digits.is_empty() && digits.len() <= 18 && digits.bytes().all(|b| b.is_ascii_digit()) {
        text.parse().ok()
    } else {
        None
    }
}

/// A JSON number as sign, significant digits and a power of ten:
/// `value = (-1)^negative * digits * 10^exponent`, with no leading or
/// trailing zeros in `digits` (zero is empty digits, positive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Canonical {
    negative: bool,
    digits: String,
    exponent: i64,
}

impl Canonical {
    fn from_i64(n: i64) -> Canonical {
        canonical_number(&n.to_string()).expect("an integer is a number")
    }

    fn shifted(&self, by: i64) -> Canonical {
        let mut c = self.clone();
        if !c.digits.is_empty() {
            c.exponent += by;
        }
        c
    }

    fn to_i64(&self) -> Option<i64> {
        if self.digits.is_empty() {
            return Some(0);
        }
        if self.exponent < 0 || self.digits.len() as i64 + self.exponent > 19 {
            return None;
        }
        let mut s = self.digits.clone();
        s.extend(std::iter::repeat_n('0', self.exponent as usize));
        let magnitude: i128 = s.parse().ok()?;
        i64::try_from(if self.negative { -magnitude } else { magnitude }).ok()
    }

    fn cmp_magnitude(&self, other: &Canonical) -> Ordering {
        // order of magnitude first: position of the leading digit
        let lead_a = self.digits.len() as i64 + self.exponent;
        let lead_b = other.digits.len() as i64 + other.exponent;
        match (self.digits.is_empty(), other.digits.is_empty()) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            _ => {}
        }
        lead_a.cmp(&lead_b).then_with(|| {
            let n = self.digits.len().max(other.digits.len());
            let pad = |d: &str| format!("{d:0<n$}");
            pad(&self.digits).cmp(&pad(&other.digits))
        })
    }
}

impl PartialOrd for Canonical {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Canonical {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self.negative, other.negative) {
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
            (false, false) => self.cmp_magnitude(other),
            (true, true) => other.cmp_magnitude(self),
        }
    }
}

impl fmt::Display for Canonical {
    /// Plain decimal text (no exponent) for modest exponents, else `de±x`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.digits.is_empty() {
            return f.write_str("0");
        }
        if self.negative {
            f.write_str("-")?;
        }
        let len = self.digits.len() as i64;
        if self.exponent >= 0 && self.exponent <= 30 {
            write!(f, "{}{}", self.digits, "0".repeat(self.exponent as usize))
        } else if self.exponent < 0 && -self.exponent < len {
            let split = (len + self.exponent) as usize;
            write!(f, "{}.{}", &self.digits[..split], &self.digits[split..])
        } else if self.exponent < 0 && -self.exponent - len <= 30 {
            write!(
                f,
                "0.{}{}",
                "0".repeat((-self.exponent - len) as usize),
                self.digits
            )
        } else {
            write!(f, "{}e{}", self.digits, self.exponent)
        }
    }
}

/// A JSON number's text in parts: `-int.frac e exp`.
struct NumberText<'a> {
    negative: bool,
    int_part: &'a str,
    frac_part: &'a str,
    exp: i64,
}

/// Splits number text into its parts; `None` if it is not a number.
fn split_number(text: &str) -> Option<NumberText<'_>> {
    let (negative, rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text),
    };
    let (mantissa, exp) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], rest[i + 1..].parse::<i64>().ok()?),
        None => (rest, 0),
    };
    let (int_part, frac_part) = match mantissa.find('.') {
        Some(i) => (&mantissa[..i], &mantissa[i + 1..]),
        None => (mantissa, ""),
    };
    if int_part.is_empty()
        || !int_part
            .bytes()
            .chain(frac_part.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    Some(NumberText {
        negative,
        int_part,
        frac_part,
        exp,
    })
}

/// Parses JSON number text into its canonical form; `None` if it is not a
/// number.
pub fn canonical_number(text: &str) -> Option<Canonical> {
    let NumberText {
        negative,
        int_part,
        frac_part,
        exp,
    } = split_number(text)?;
    let all = format!("{int_part}{frac_part}");
    let mut exponent = exp.checked_sub(frac_part.len() as i64)?;
    let trimmed_lead = all.trim_start_matches('0');
    let digits = trimmed_lead.trim_end_matches('0');
    exponent += (trimmed_lead.len() - digits.len()) as i64;
    if digits.is_empty() {
        return Some(Canonical {
            negative: false,
            digits: String::new(),
            exponent: 0,
        });
    }
    Some(Canonical {
        negative,
        digits: digits.to_string(),
        exponent,
    })
}

/// Writes a JSON number's text as PostgreSQL's binary `numeric` (digit
/// count, weight, sign and display scale, then base-10000 digits), the same
/// value and display scale `numeric_in` gives the text ("1.50" keeps scale
/// 2, "1.5e3" is 1500 with scale 0). `None` when the text is not a JSON
/// number or the value is beyond the numeric format (weight or scale out
/// of range), which `numeric_in` rejects too.
pub(crate) fn numeric_binary(text: &str, out: &mut impl bytes::BufMut) -> Option<()> {
    const POS: u16 = 0x0000;
    const NEG: u16 = 0x4000;
    const DSCALE_MAX: i64 = 0x3FFF;
    let NumberText {
        negative,
        int_part,
        frac_part,
        exp,
    } = split_number(text)?;
    if exp.unsigned_abs() > i32::MAX as u64 / 2 {
        return None;
    }
    let dscale = (frac_part.len() as i64 - exp).max(0);
    if dscale > DSCALE_MAX {
        return None;
    }
    // the significant decimal digits, and how many stand left of the point
    let all = int_part.bytes().chain(frac_part.bytes());
    let lead = all.clone().take_while(|&b| b == b'0').count();
    let total = int_part.len() + frac_part.len();
    if lead == total {
        // zero (also "-0"): positive, no digits, the text's scale
        out.put_i16(0);
        out.put_i16(0);
        out.put_u16(POS);
        out.put_i16(dscale as i16);
        return Some(());
    }
    let trail = all.clone().rev().take_while(|&b| b == b'0').count();
    let sig = total - lead - trail;
    let mut point = int_part.len() as i64 + exp - lead as i64;
    // pad left so the point falls between base-10000 digits
    let pad = (4 - point.rem_euclid(4)) % 4;
    point += pad;
    let weight = point / 4 - 1;
    let ndigits = (pad as usize + sig).div_ceil(4);
    if !(i16::MIN as i64..=i16::MAX as i64).contains(&weight) || ndigits > i16::MAX as usize {
        return None;
    }
    out.put_i16(ndigits as i16);
    out.put_i16(weight as i16);
    out.put_u16(if negative { NEG } else { POS });
    out.put_i16(dscale as i16);
    let mut digits = std::iter::repeat_n(0u8, pad as usize)
        .chain(all.skip(lead).take(sig).map(|b| b - b'0'))
        .chain(std::iter::repeat(0));
    for _ in 0..ndigits {
        let mut d: i16 = 0;
        for _ in 0..4 {
            d = d * 10 + i16::from(digits.next().unwrap_or(0));
        }
        out.put_i16(d);
    }
    Some(())
}

/// Compares a JSON number with a bound from the spec (`min`/`max`).
pub(crate) fn cmp_number(v: &str, bound: &Canonical) -> Option<Ordering> {
    Some(canonical_number(v)?.cmp(bound))
}

/// Equality as PostgreSQL's jsonb defines it: object key order does not
/// matter, numbers compare by numeric value, everything else exactly.
pub fn json_eq(a: &Value, b: &Value) -> bool {
    crate::json::eq(a, b)
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
    use serde_json::json;

    fn n(s: &str) -> Value {
        number(s)
    }

    #[test]
    fn canonical_numbers_compare_by_value() {
        assert!(json_eq(&n("1"), &n("1.0")));
        assert!(json_eq(&n("100"), &n("1e2")));
        assert!(json_eq(&n("0.00"), &n("-0")));
        assert!(json_eq(&n("12.5e-1"), &n("1.25")));
        assert!(!json_eq(&n("1"), &n("1.0000000000000000000001")));
        let big = canonical_number("123456789012345678901234567890").unwrap();
        let bigger = canonical_number("123456789012345678901234567891").unwrap();
        assert!(big < bigger);
        assert!(canonical_number("-5").unwrap() < canonical_number("-4.5").unwrap());
        assert!(canonical_number("0.001").unwrap() < canonical_number("0.01").unwrap());
        assert_eq!(canonical_number("1.5e3").unwrap().to_i64(), Some(1500));
        assert_eq!(canonical_number("1.5").unwrap().to_i64(), None);
    }

    #[test]
    fn integers_must_fit_their_column() {
        assert_eq!(
            to_column(ColumnType::Int2, &n("32767")),
            Ok(ColumnValue::I16(32767))
        );
        assert!(to_column(ColumnType::Int2, &n("32768")).is_err());
        assert_eq!(
            to_column(ColumnType::Int4, &n("4.0")),
            Ok(ColumnValue::I32(4))
        );
        assert!(to_column(ColumnType::Int4, &n("4.5")).is_err());
        assert!(to_column(ColumnType::Int8, &json!("4")).is_err());
        assert_eq!(
            to_column(ColumnType::Int8, &n("-9223372036854775808")),
            Ok(ColumnValue::I64(i64::MIN))
        );
        assert!(to_column(ColumnType::Int8, &n("9223372036854775808")).is_err());
    }

    #[test]
    fn floats_are_accepted_only_when_exact() {
        assert_eq!(
            to_column(ColumnType::Float8, &n("1234.5")),
            Ok(ColumnValue::F64(1234.5))
        );
        assert!(to_column(ColumnType::Float8, &n("0.1000000000000000000001")).is_err());
        assert!(to_column(ColumnType::Float8, &n("1e400")).is_err());
        let Ok(ColumnValue::Numeric(text)) = to_column(ColumnType::Numeric, &n("1e400")) else {
            panic!("numeric takes any number");
        };
        assert_eq!(canonical_number(&text), canonical_number("1e400"));
    }

    /// The binary numeric of a text, as (ndigits, weight, sign, dscale, digits).
    fn numeric_parts(text: &str) -> Option<(i16, i16, u16, i16, Vec<i16>)> {
        let mut b = Vec::new();
        numeric_binary(text, &mut b)?;
        let w: Vec<i16> = b
            .chunks(2)
            .map(|c| i16::from_be_bytes([c[0], c[1]]))
            .collect();
        Some((w[0], w[1], w[2] as u16, w[3], w[4..].to_vec()))
    }

    #[test]
    fn numerics_encode_as_postgres_binary() {
        assert_eq!(numeric_parts("0"), Some((0, 0, 0, 0, vec![])));
        assert_eq!(numeric_parts("-0.00"), Some((0, 0, 0, 2, vec![])));
        assert_eq!(numeric_parts("113"), Some((1, 0, 0, 0, vec![113])));
        assert_eq!(
            numeric_parts("12345.6"),
            Some((3, 1, 0, 1, vec![1, 2345, 6000]))
        );
        assert_eq!(
            numeric_parts("-1.50"),
            Some((2, 0, 0x4000, 2, vec![1, 5000]))
        );
        assert_eq!(numeric_parts("0.001"), Some((1, -1, 0, 3, vec![10])));
        assert_eq!(numeric_parts("1.5e3"), Some((1, 0, 0, 0, vec![1500])));
        assert_eq!(numeric_parts("1.5E-3"), Some((1, -1, 0, 4, vec![15])));
        assert_eq!(numeric_parts("1e8"), Some((1, 2, 0, 0, vec![1])));
        assert_eq!(numeric_parts("000120000"), Some((1, 1, 0, 0, vec![12])));
        assert_eq!(numeric_parts("1e400").map(|p| p.1), Some(100));
        assert_eq!(numeric_parts("1e-20000"), None);
        assert_eq!(numeric_parts("1e200000"), None);
        assert_eq!(numeric_parts("1x"), None);
    }

    proptest::proptest! {
        /// Decoding the binary numeric gives back the text's value, and its
        /// display scale is the text's digits after the point less the
        /// exponent, as `numeric_in` sets it.
        #[test]
        fn numeric_binary_keeps_value_and_scale(
            neg in proptest::bool::ANY,
            int in "(0|[1-9][0-9]{0,30})",
            frac in proptest::option::of("[0-9]{0,30}"),
            exp in proptest::option::of(-60i64..60),
        ) {
            let mut text = format!("{}{int}", if neg { "-" } else { "" });
            if let Some(f) = &frac { if !f.is_empty() { text.push('.'); text.push_str(f); } }
            if let Some(e) = exp { text.push_str(&format!("e{e}")); }
            let (ndigits, weight, sign, dscale, digits) = numeric_parts(&text).unwrap();
            proptest::prop_assert_eq!(ndigits as usize, digits.len());
            let frac_len = frac.as_deref().map_or(0, str::len) as i64;
            proptest::prop_assert_eq!(dscale as i64, (frac_len - exp.unwrap_or(0)).max(0));
            let body: String = digits.iter().map(|d| format!("{d:04}")).collect();
            let decoded = format!(
                "{}0.{body}e{}",
                if sign == 0x4000 { "-" } else { "" },
                4 * (weight as i64 + 1)
            );
            proptest::prop_assert_eq!(canonical_number(&decoded), canonical_number(&text));
            proptest::prop_assert!(digits.iter().all(|d| (0..10_000).contains(d)));
            proptest::prop_assert!(digits.first() != Some(&0) && digits.last() != Some(&0));
        }
    }

    #[test]
    fn timestamps_round_trip() {
        let ms = n("1669702024365");
        let cv = to_column(ColumnType::TimestampMs, &ms).unwrap();
        assert_eq!(cv, ColumnValue::Micros(1_669_702_024_365_000));
        assert!(json_eq(&to_json(ColumnType::TimestampMs, &cv), &ms));
        let frac = n("1669702024365.25");
        let cv = to_column(ColumnType::TimestampMs, &frac).unwrap();
        assert!(json_eq(&to_json(ColumnType::TimestampMs, &cv), &frac));
        assert!(to_column(ColumnType::TimestampMs, &n("1.0001")).is_err());
        let iso = json!("2022-11-29T06:07:04.365Z");
        let cv = to_column(ColumnType::TimestampIso, &iso).unwrap();
        assert_eq!(to_json(ColumnType::TimestampIso, &cv), iso);
        // a non-canonical spelling would not come back the same: refused
        assert!(
            to_column(
                ColumnType::TimestampIso,
                &json!("2022-11-29T06:07:04.365+00:00")
            )
            .is_err()
        );
        assert!(to_column(ColumnType::TimestampIso, &json!("yesterday")).is_err());
    }

    #[test]
    fn null_is_sql_null_for_every_type() {
        for ty in [
            ColumnType::Bool,
            ColumnType::Text,
            ColumnType::Jsonb,
            ColumnType::Int8,
        ] {
            assert_eq!(to_column(ty, &Value::Null), Ok(ColumnValue::Null));
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
