//! Column types, the values they hold, and exact conversion between JSON
//! values and column values.
//!
//! Every conversion is checked by converting back: a JSON value is accepted
//! into a column only when the column value turns into a JSON value equal to
//! it under jsonb equality. That makes `reconstruct(explode(b)) == b` hold by
//! construction for every blob that validates.

use crate::core::json::JsonView;
use crate::core::number::{Canonical, canonical_number, number, plain_integer};
use serde_json::Value;
use std::borrow::Cow;

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
    /// `timestamptz` from a JSON number of seconds since the epoch (at most
    /// microsecond precision: Unix time, Python's `time.time()`)
    TimestampS,
    /// `timestamptz` from an RFC 3339 JSON string in UTC, written in one
    /// declared form ([`IsoForm`]): `timestamptz_iso` (fraction trimmed,
    /// `Z`), `_ms` (JavaScript's `Date.toISOString()`: exactly three
    /// digits), `_us` (exactly six), and each with `_offset` (`+00:00`
    /// for `Z`)
    TimestampIso(IsoForm),
    /// `date` from an ISO 8601 calendar date string, `YYYY-MM-DD` (years
    /// 0001 to 9999)
    Date,
    /// `jsonb` (any JSON value)
    Jsonb,
}

/// How an ISO 8601 (RFC 3339) timestamp column's values are written in the
/// blob: the fraction of a second and the UTC offset. A value is taken only
/// in this form (so it comes back the same); other offsets and spellings
/// are invalid values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IsoForm {
    /// Fraction digits: 0 for trimmed (none for a whole second, else as
    /// few as the value needs, up to 6), or exactly 3 or 6.
    pub fraction: u8,
    /// `+00:00` rather than `Z`.
    pub utc_offset: bool,
}

impl IsoForm {
    /// Fraction trimmed, `Z` (Go's `RFC3339Nano`, decant's own).
    pub const TRIMMED: IsoForm = IsoForm {
        fraction: 0,
        utc_offset: false,
    };
    /// Exactly three fraction digits, `Z` (JavaScript's `toISOString()`).
    pub const MS: IsoForm = IsoForm {
        fraction: 3,
        utc_offset: false,
    };

    /// The type's name in a spec.
    pub fn name(self) -> String {
        let digits = match self.fraction {
            3 => "_ms",
            6 => "_us",
            _ => "",
        };
        let offset = if self.utc_offset { "_offset" } else { "" };
        format!("timestamptz_iso{digits}{offset}")
    }

    /// The form of a spec's type name.
    fn parse(name: &str) -> Option<IsoForm> {
        let rest = name.strip_prefix("timestamptz_iso")?;
        let (rest, utc_offset) = match rest.strip_suffix("_offset") {
            Some(r) => (r, true),
            None => (rest, false),
        };
        let fraction = match rest {
            "" => 0,
            "_ms" => 3,
            "_us" => 6,
            _ => return None,
        };
        Some(IsoForm {
            fraction,
            utc_offset,
        })
    }

    /// The UTC offset as written.
    pub fn offset(self) -> &'static str {
        if self.utc_offset { "+00:00" } else { "Z" }
    }

    /// A regular expression (POSIX and Rust alike) a value in this form
    /// matches.
    pub fn pattern(self) -> String {
        let fraction = match self.fraction {
            3 => r"\.[0-9]{3}",
            6 => r"\.[0-9]{6}",
            _ => r"(\.[0-9]{0,5}[1-9])?",
        };
        let offset = if self.utc_offset { r"\+00:00" } else { "Z" };
        format!(
            "^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}T[0-9]{{2}}:[0-9]{{2}}:[0-9]{{2}}{fraction}{offset}$"
        )
    }

    /// A microsecond timestamp written in this form (microseconds a
    /// 3-digit form cannot hold are kept, six digits: `to_column` never
    /// makes such a value).
    pub fn render(self, us: i64) -> String {
        let (secs, sub) = (us.div_euclid(1_000_000), us.rem_euclid(1_000_000));
        // jiff's range stops about a day short of 9999-12-31T23:59:59 (and
        // of 0001-01-01), which PostgreSQL and decant's columns hold: the
        // date and the time of day by hand there
        let base = match jiff::Timestamp::from_second(secs) {
            Ok(ts) => ts.strftime("%Y-%m-%dT%H:%M:%S").to_string(),
            Err(_) => {
                let (days, second) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
                let Ok(days) = i32::try_from(days) else {
                    return us.to_string();
                };
                format!(
                    "{}T{:02}:{:02}:{:02}",
                    render_date(days),
                    second / 3600,
                    second / 60 % 60,
                    second % 60
                )
            }
        };
        let fraction = match self.fraction {
            3 if sub % 1000 == 0 => format!(".{:03}", sub / 1000),
            3 | 6 => format!(".{sub:06}"),
            _ if sub == 0 => String::new(),
            _ => format!(".{sub:06}").trim_end_matches('0').to_string(),
        };
        format!("{base}{fraction}{}", self.offset())
    }
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
            "timestamptz_s" => ColumnType::TimestampS,
            iso if iso.starts_with("timestamptz_iso") => {
                ColumnType::TimestampIso(IsoForm::parse(iso)?)
            }
            "date" => ColumnType::Date,
            "jsonb" => ColumnType::Jsonb,
            _ => return None,
        })
    }

    /// The spec names accepted by [`ColumnType::parse`], for error messages.
    pub const NAMES: &'static str = "bool, int2, int4, int8, float8, numeric, text, \
        timestamptz (epoch milliseconds), timestamptz_s (epoch seconds), timestamptz_iso (RFC 3339 text, fraction trimmed), \
        timestamptz_iso_ms (RFC 3339 text with exactly 3 fraction digits, as JavaScript writes it), \
        timestamptz_iso_us (exactly 6), and each with _offset (+00:00 for Z), \
        date (YYYY-MM-DD text), jsonb";

    /// The spec's name of the type whose [`ColumnType::identity`] is
    /// `identity` (`Int4` is `int4`), for messages that show recorded
    /// mapping lines.
    pub fn spec_name_of(identity: &str) -> Option<&'static str> {
        const SPEC_NAMES: [&str; 17] = [
            "bool",
            "int2",
            "int4",
            "int8",
            "float8",
            "numeric",
            "text",
            "timestamptz",
            "timestamptz_s",
            "timestamptz_iso",
            "timestamptz_iso_ms",
            "timestamptz_iso_us",
            "timestamptz_iso_offset",
            "timestamptz_iso_ms_offset",
            "timestamptz_iso_us_offset",
            "date",
            "jsonb",
        ];
        SPEC_NAMES
            .into_iter()
            .find(|n| ColumnType::parse(n).is_some_and(|t| t.identity() == identity))
    }

    /// The type's name in the mapping's identity (its fingerprint): the
    /// Rust variant's, as it always was (`TimestampIso`, `TimestampIsoMs`,
    /// `Int4`...), so a fingerprint recorded before a type was added stays
    /// the same.
    pub fn identity(self) -> String {
        match self {
            ColumnType::TimestampIso(IsoForm::TRIMMED) => "TimestampIso".into(),
            ColumnType::TimestampIso(IsoForm::MS) => "TimestampIsoMs".into(),
            ColumnType::TimestampIso(form) => form.name(),
            other => format!("{other:?}"),
        }
    }

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
            ColumnType::TimestampMs | ColumnType::TimestampS | ColumnType::TimestampIso(_) => {
                "timestamp with time zone"
            }
            ColumnType::Date => "date",
            ColumnType::Jsonb => "jsonb",
        }
    }

    /// The type a [`ColumnValue`] of this column binds as (its `ToSql`),
    /// and the type decant reads back: numeric travels as text to stay
    /// exact, every other type as itself.
    pub fn wire(self) -> &'static str {
        match self {
            ColumnType::Numeric => "text",
            other => other.sql(),
        }
    }

    /// SQL turning an expression of the [`wire`](Self::wire) type into the
    /// column type (`$1::text::numeric` for numeric).
    pub fn wire_to_column(self, expr: &str) -> String {
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

    /// For an epoch column, the decimal digits from its unit down to a
    /// microsecond (3 for milliseconds, 6 for seconds); 0 otherwise.
    pub(crate) fn micros_digits(self) -> i64 {
        match self {
            ColumnType::TimestampMs => 3,
            ColumnType::TimestampS => 6,
            _ => 0,
        }
    }

    /// Whether the column holds an integer (int2, int4 or int8).
    pub fn is_integer(self) -> bool {
        matches!(self, ColumnType::Int2 | ColumnType::Int4 | ColumnType::Int8)
    }

    /// Whether the column holds a number (what `min`/`max` bound and a
    /// ranked statistic orders by).
    pub fn is_number(self) -> bool {
        matches!(
            self,
            ColumnType::Int2
                | ColumnType::Int4
                | ColumnType::Int8
                | ColumnType::Float8
                | ColumnType::Numeric
                | ColumnType::TimestampMs
                | ColumnType::TimestampS
        )
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
            ColumnType::TimestampS => "epoch seconds (a number, at most microsecond precision)",
            ColumnType::TimestampIso(f) => match (f.fraction, f.utc_offset) {
                (3, false) => "an RFC 3339 timestamp string with exactly 3 fraction digits and Z",
                (3, true) => {
                    "an RFC 3339 timestamp string with exactly 3 fraction digits and +00:00"
                }
                (6, false) => "an RFC 3339 timestamp string with exactly 6 fraction digits and Z",
                (6, true) => {
                    "an RFC 3339 timestamp string with exactly 6 fraction digits and +00:00"
                }
                (_, false) => "an RFC 3339 timestamp string in canonical form",
                (_, true) => "an RFC 3339 timestamp string, fraction trimmed, with +00:00",
            },
            ColumnType::Date => "a date string YYYY-MM-DD",
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
    /// date as days since the Unix epoch (1970-01-01)
    Date(i32),
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

    /// A stable text form used to compare row keys (text borrowed, the
    /// common key, so a diff of a user's rows copies no key).
    pub(crate) fn key_text(&self) -> Cow<'_, str> {
        Cow::Owned(match self {
            ColumnValue::Null => "\u{1}null".into(),
            ColumnValue::Bool(b) => b.to_string(),
            ColumnValue::I16(v) => v.to_string(),
            ColumnValue::I32(v) | ColumnValue::Date(v) => v.to_string(),
            ColumnValue::I64(v) | ColumnValue::Micros(v) => v.to_string(),
            ColumnValue::F64(v) => v.to_string(),
            ColumnValue::Numeric(s) => canonical_number(s)
                .map(|c| c.to_string())
                .unwrap_or_else(|| s.clone()),
            ColumnValue::Text(s) => return Cow::Borrowed(s),
            ColumnValue::Json(v) => v.to_string(),
        })
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
    let wrong = || match timestamp_hint(ty, v) {
        Some(hint) => Mismatch(format!("expected {}; {hint}", ty.describe())),
        None => Mismatch(format!("expected {}", ty.describe())),
    };
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
        ColumnType::TimestampMs | ColumnType::TimestampS => {
            let n = v.number().ok_or_else(wrong)?;
            // a whole number of microseconds; an integer (the common case)
            // without building its canonical form
            let micros = match plain_integer(n)
                .and_then(|i| i.checked_mul(10i64.pow(ty.micros_digits() as u32)))
            {
                Some(micros) => micros,
                None => canonical_number(n)
                    .ok_or_else(wrong)?
                    .shifted(ty.micros_digits())
                    .to_i64()
                    .ok_or_else(wrong)?,
            };
            if !(MIN_MICROS..=MAX_MICROS).contains(&micros) {
                // a whole number past the years a column holds: most often
                // epoch milliseconds under an epoch-seconds type
                let as_ms =
                    ty == ColumnType::TimestampS && to_column(ColumnType::TimestampMs, v).is_ok();
                return Err(Mismatch(format!(
                    "expected {} in the years 0001 to 9999{}",
                    ty.describe(),
                    if as_ms {
                        "; read as epoch milliseconds it is in them: declare the column `timestamptz`"
                    } else {
                        ""
                    }
                )));
            }
            ColumnValue::Micros(micros)
        }
        ColumnType::TimestampIso(form) => {
            let s = v.as_str().ok_or_else(wrong)?;
            let micros = match s.parse::<jiff::Timestamp>() {
                Ok(ts) => ts.as_microsecond(),
                // past jiff's range: the form itself, read by hand
                Err(_) => parse_iso_utc(s).ok_or_else(wrong)?,
            };
            if !(MIN_MICROS..=MAX_MICROS).contains(&micros)
                || (form.fraction == 3 && micros % 1000 != 0)
            {
                return Err(wrong());
            }
            ColumnValue::Micros(micros)
        }
        ColumnType::Date => {
            ColumnValue::Date(parse_date(v.as_str().ok_or_else(wrong)?).ok_or_else(wrong)?)
        }
        ColumnType::Jsonb => ColumnValue::Json(v.to_value()),
    };
    // The round-trip check: only exact representations are accepted.
    // Integers, text, booleans and jsonb come back exactly by construction
    // (an integer column only takes numbers whose canonical form is an
    // integer in range), so only floats and timestamps need it.
    if !matches!(
        ty,
        ColumnType::Float8
            | ColumnType::TimestampMs
            | ColumnType::TimestampS
            | ColumnType::TimestampIso(_)
    ) {
        return Ok(cv);
    }
    let back = to_json(ty, &cv);
    if !crate::core::json::eq(&back, v) {
        let hint = timestamp_hint(ty, v)
            .map(|h| format!("; {h}"))
            .unwrap_or_default();
        return Err(Mismatch(format!(
            "expected {} (it would come back as {back}){hint}",
            ty.describe()
        )));
    }
    Ok(cv)
}

/// For a time column given a time in another of the forms decant reads
/// (epoch numbers, RFC 3339 text, a calendar day), the column type that
/// reads this value, so that a spec declaring the wrong form says how to
/// mend it: "the value is RFC 3339 text in this form: declare the column
/// \`timestamptz_iso_ms\`". The form named is the value's own spelling, so
/// the users of one form share one reason.
fn timestamp_hint<V: JsonView>(ty: ColumnType, v: &V) -> Option<String> {
    let time = |t: ColumnType| {
        matches!(
            t,
            ColumnType::TimestampMs
                | ColumnType::TimestampS
                | ColumnType::TimestampIso(_)
                | ColumnType::Date
        )
    };
    if !time(ty) {
        return None;
    }
    let (what, reader) = if v.number().is_some() {
        if matches!(ty, ColumnType::TimestampMs | ColumnType::TimestampS)
            || to_column(ColumnType::TimestampMs, v).is_err()
        {
            return None;
        }
        (
            "a number",
            "`timestamptz` for epoch milliseconds or `timestamptz_s` for epoch seconds".to_string(),
        )
    } else if let Some(s) = v.as_str() {
        if s.len() == 10 && parse_date(s).is_some() {
            if ty == ColumnType::Date {
                return None;
            }
            ("a calendar day", "`date`".to_string())
        } else {
            let (body, utc_offset) = if let Some(b) = s.strip_suffix('Z') {
                (b, false)
            } else if let Some(b) = s.strip_suffix("+00:00") {
                (b, true)
            } else {
                return None;
            };
            let fraction = match body.split_once('.') {
                Some((_, f)) if f.len() == 3 => 3,
                Some((_, f)) if f.len() == 6 => 6,
                _ => 0,
            };
            let form = IsoForm {
                fraction,
                utc_offset,
            };
            let own = ColumnType::TimestampIso(form);
            if own == ty || to_column(own, v).is_err() {
                return None;
            }
            ("RFC 3339 text in this form", format!("`{}`", form.name()))
        }
    } else {
        return None;
    };
    Some(format!("the value is {what}: declare the column {reader}"))
}

// PostgreSQL's timestamptz range is wider, but these bounds keep every
// value representable by jiff and by epoch-millisecond numbers.
const MIN_MICROS: i64 = -62_135_596_800_000_000; // 0001-01-01
const MAX_MICROS: i64 = 253_402_300_799_999_999; // 9999-12-31

impl ColumnValue {
    /// The object key a captured value stands for (text as it is, an
    /// integer in its canonical spelling); `None` for other values.
    pub fn object_key(&self) -> Option<String> {
        match self {
            ColumnValue::Text(s) => Some(s.clone()),
            ColumnValue::I16(n) => Some(n.to_string()),
            ColumnValue::I32(n) => Some(n.to_string()),
            ColumnValue::I64(n) => Some(n.to_string()),
            ColumnValue::Date(d) => Some(render_date(*d)),
            _ => None,
        }
    }
}

/// Days since 1970-01-01 of a date written `YYYY-MM-DD` exactly (years
/// 0001 to 9999, a real calendar day); `None` for anything else.
/// Microseconds since the epoch of `YYYY-MM-DDTHH:MM:SS[.f{1,6}]` then
/// `Z` or `+00:00`: the ISO forms decant writes, for the days at the ends
/// of PostgreSQL's range that jiff does not hold.
fn parse_iso_utc(s: &str) -> Option<i64> {
    let (date, time) = s.split_once('T')?;
    let days = i64::from(parse_date(date)?);
    let time = time
        .strip_suffix('Z')
        .or_else(|| time.strip_suffix("+00:00"))?;
    let (hms, fraction) = match time.split_once('.') {
        Some((hms, f)) => (hms, Some(f)),
        None => (time, None),
    };
    let b = hms.as_bytes();
    if b.len() != 8 || b[2] != b':' || b[5] != b':' {
        return None;
    }
    let number = |t: &str| -> Option<i64> {
        (!t.is_empty() && t.bytes().all(|c| c.is_ascii_digit()))
            .then(|| t.parse().ok())
            .flatten()
    };
    let (h, m, sec) = (
        number(&hms[0..2])?,
        number(&hms[3..5])?,
        number(&hms[6..8])?,
    );
    if h > 23 || m > 59 || sec > 59 {
        return None;
    }
    let sub = match fraction {
        None => 0,
        Some(f) if f.len() <= 6 => number(f)? * 10i64.pow(6 - f.len() as u32),
        Some(_) => return None,
    };
    Some((days * 86_400 + h * 3600 + m * 60 + sec) * 1_000_000 + sub)
}

pub(crate) fn parse_date(s: &str) -> Option<i32> {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<i32> {
        b[r].iter().try_fold(0i32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + i32::from(c - b'0'))
        })
    };
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, m, d) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let days_in = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    (y >= 1 && (1..=days_in).contains(&d)).then(|| days_from_civil(y, m, d))
}

/// `YYYY-MM-DD` of a day count since 1970-01-01.
pub(crate) fn render_date(days: i32) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

// Howard Hinnant's algorithms for the proleptic Gregorian calendar.
fn days_from_civil(y: i32, m: i32, d: i32) -> i32 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i32) -> (i32, i32, i32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i32::from(m <= 2), m, d)
}

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
        ColumnValue::Date(d) => Value::String(render_date(*d)),
        ColumnValue::Micros(us) => match ty {
            ColumnType::TimestampIso(form) => Value::String(form.render(*us)),
            // a whole number of the column's unit (the common case) without
            // building its canonical text
            _ if us % 10i64.pow(ty.micros_digits() as u32) == 0 => {
                Value::from(us / 10i64.pow(ty.micros_digits() as u32))
            }
            _ => number(
                &Canonical::from_i64(*us)
                    .shifted(-ty.micros_digits())
                    .to_string(),
            ),
        },
        ColumnValue::Json(v) => v.clone(),
    }
}

/// A float8 as PostgreSQL writes it (`extra_float_digits = 1`, the
/// setting decant's SQL functions run with), so that the views, the SQL
/// API and this layer agree on which numbers a float8 column keeps exactly
/// and what they come back as. PostgreSQL's Ryu writes the fewest digits
/// that read back to the same double, correctly rounded (a tie to the even
/// digit: `-144693218131339.625` as `...339.62`), and leaves the rounding
/// interval's bounds out: `5e22` lies exactly halfway to the next double
/// and reads back to this one only by the tie's rounding to even, so it is
/// written `4.9999999999999996e+22`. Rust's `Display` takes the bounds in
/// and rounds such ties up; it is kept where the two agree.
pub(crate) fn format_f64(f: f64) -> String {
    if f == 0.0 {
        return "0".into();
    }
    let shortest = format!("{f:e}");
    let digits = shortest
        .split(['e', 'E'])
        .next()
        .unwrap_or("")
        .chars()
        .filter(char::is_ascii_digit)
        .count()
        .max(1);
    // from the shortest length on, correctly rounded: the first that reads
    // back to `f` off the bounds is PostgreSQL's
    let pg = (digits - 1..17)
        .map(|p| format!("{f:.p$e}"))
        .find(|t| t.parse::<f64>() == Ok(f) && !halfway(t, f))
        .unwrap_or_else(|| format!("{f:.16e}"));
    if pg == shortest || same_digits(&pg, &shortest) {
        format!("{f}")
    } else {
        pg
    }
}

/// Whether two `d.ddde±x` texts hold the same digits and exponent.
fn same_digits(a: &str, b: &str) -> bool {
    let norm = |t: &str| -> Option<(String, i64)> {
        let (m, e) = t.split_once(['e', 'E'])?;
        let m = m.replace('.', "");
        let m = m.trim_end_matches('0').to_string();
        Some((m, e.parse().ok()?))
    };
    norm(a).is_some() && norm(a) == norm(b)
}

/// Whether the decimal `text` (`d.ddde±x` or plain) is exactly the
/// midpoint between the finite double `f` and one of its neighbours.
fn halfway(text: &str, f: f64) -> bool {
    // text = digits × 10^exp
    let text = text.trim_start_matches('-');
    let (mantissa, exp) = match text.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i64>().unwrap_or(0)),
        None => (text, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let Ok(digits) = format!("{int}{frac}").parse::<u128>() else {
        return false;
    };
    let exp = exp - frac.len() as i64;
    let f = f.abs();
    // f and a neighbour as integers times a power of two; their sum over
    // two is the midpoint m × 2^e
    let parts = |x: f64| -> (u128, i64) {
        let bits = x.to_bits();
        let e = ((bits >> 52) & 0x7ff) as i64;
        let m = u128::from(bits & ((1u64 << 52) - 1));
        if e == 0 {
            (m, -1074)
        } else {
            (m | (1 << 52), e - 1075)
        }
    };
    let bits = f.to_bits();
    let neighbours = [
        Some(f64::from_bits(bits + 1)),
        (bits > 0).then(|| f64::from_bits(bits - 1)),
    ];
    neighbours.into_iter().flatten().any(|n| {
        if !n.is_finite() {
            return false;
        }
        let ((a, ea), (b, eb)) = (parts(f), parts(n));
        let e = ea.min(eb);
        let (Some(a), Some(b)) = (
            a.checked_shl((ea - e) as u32),
            b.checked_shl((eb - e) as u32),
        ) else {
            return false;
        };
        // digits × 10^exp == (a + b) × 2^(e - 1)
        equal_scaled(digits, exp, a + b, e - 1)
    })
}

/// Whether d × 10^x equals m × 2^y, in exact integers (false where they
/// would overflow: no number of 17 digits is then such a midpoint).
fn equal_scaled(d: u128, x: i64, m: u128, y: i64) -> bool {
    let pow5 = |k: i64| -> Option<u128> { 5u128.checked_pow(u32::try_from(k).ok()?) };
    let shl = |v: u128, k: i64| -> Option<u128> {
        let k = u32::try_from(k).ok()?;
        if k >= 128 || v.leading_zeros() < k {
            None
        } else {
            Some(v << k)
        }
    };
    // d × 5^x × 2^x = m × 2^y, each side's powers moved to make integers
    let (left, right) = if x >= 0 {
        (pow5(x).and_then(|p| d.checked_mul(p)), Some(m))
    } else {
        (Some(d), pow5(-x).and_then(|p| m.checked_mul(p)))
    };
    let (Some(left), Some(right)) = (left, right) else {
        return false;
    };
    let (left, right) = if x >= y {
        (shl(left, x - y), Some(right))
    } else {
        (Some(left), shl(right, y - x))
    };
    left.is_some() && left == right
}

fn integer<V: JsonView>(v: &V) -> Option<i64> {
    let text = v.number()?;
    plain_integer(text).or_else(|| canonical_number(text)?.to_i64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::json::json_eq;
    use serde_json::json;

    fn n(s: &str) -> Value {
        number(s)
    }

    #[test]
    fn a_numeric_timestamp_is_written_as_its_canonical_text() {
        for name in ["timestamptz_s", "timestamptz_ms"] {
            let ty = ColumnType::parse(name).unwrap();
            for us in [
                0,
                1,
                -1,
                999,
                1_000,
                -1_000,
                1_000_000,
                -1_000_000,
                1_669_702_024_000_000,
                1_669_702_024_365_000,
                1_669_702_024_365_123,
                i64::MAX,
                i64::MIN,
            ] {
                let canonical = Canonical::from_i64(us)
                    .shifted(-ty.micros_digits())
                    .to_string();
                let got = to_json(ty, &ColumnValue::Micros(us));
                assert_eq!(got.to_string(), canonical, "{name} {us}");
                assert_eq!(got, number(&canonical), "{name} {us}");
            }
        }
    }

    #[test]
    fn iso_timestamps_hold_the_ends_of_the_range() {
        for (ty, text) in [
            ("timestamptz_iso_ms", "9999-12-31T00:00:00.000Z"),
            ("timestamptz_iso_ms", "9999-12-31T23:59:59.999Z"),
            ("timestamptz_iso", "9999-12-31T12:00:00.5Z"),
            (
                "timestamptz_iso_us_offset",
                "9999-12-31T23:59:59.999999+00:00",
            ),
            ("timestamptz_iso", "0001-01-01T00:00:00Z"),
            ("timestamptz_iso_ms", "2026-12-04T21:40:56.123Z"),
        ] {
            let ty = ColumnType::parse(ty).unwrap();
            let v = Value::String(text.into());
            let c = to_column(ty, &v).unwrap_or_else(|e| panic!("{text}: {e:?}"));
            assert_eq!(to_json(ty, &c), v, "{text}");
        }
        let ms = ColumnType::parse("timestamptz_iso_ms").unwrap();
        for bad in [
            "9999-12-31T24:00:00.000Z",
            "9999-12-32T00:00:00.000Z",
            "10000-01-01T00:00:00.000Z",
        ] {
            assert!(to_column(ms, &Value::String(bad.into())).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_float8_is_written_as_postgresql_writes_it() {
        // PostgreSQL 15: SELECT '5e22'::float8::text and the like
        for (input, pg) in [
            ("5e22", "4.9999999999999996e+22"),
            ("1e23", "9.999999999999999e+22"),
            ("2.109793591122499e+16", "2.1097935911224992e+16"),
            ("-5e22", "-4.9999999999999996e+22"),
            ("0.1", "0.1"),
            ("1510.25", "1510.25"),
            ("1e300", "1e+300"),
            ("5e-324", "5e-324"),
            ("-0", "0"),
            ("123456789012345680", "1.2345678901234568e+17"),
            // a tie between two shortest texts: the even digit
            ("-144693218131339.625", "-144693218131339.62"),
            ("-102918850115224.125", "-102918850115224.12"),
        ] {
            let f: f64 = input.parse().unwrap();
            let ours = format_f64(f);
            assert!(
                json_eq(&number(&ours), &number(pg)),
                "{input}: {ours}, PostgreSQL {pg}"
            );
            assert_eq!(ours.parse::<f64>().unwrap(), f, "{input}");
        }
        // the tie's text is refused, PostgreSQL's kept
        let col = |t: &str| to_column(ColumnType::Float8, &number(t));
        let e = col("5e22").unwrap_err().0;
        assert!(e.contains("4.9999999999999996e+22"), "{e}");
        let kept = col("4.9999999999999996e22").unwrap();
        assert!(json_eq(
            &to_json(ColumnType::Float8, &kept),
            &number("4.9999999999999996e22")
        ));
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

    #[test]
    fn dates_are_iso_calendar_days_and_come_back_the_same() {
        for ok in [
            "1970-01-01",
            "2024-02-29",
            "0001-01-01",
            "9999-12-31",
            "1969-12-31",
            "2000-03-01",
        ] {
            let cv = to_column(ColumnType::Date, &json!(ok)).unwrap();
            assert_eq!(to_json(ColumnType::Date, &cv), json!(ok));
        }
        assert_eq!(parse_date("1970-01-02"), Some(1));
        assert_eq!(parse_date("1969-12-31"), Some(-1));
        assert_eq!(parse_date("2000-01-01"), Some(10_957));
        for bad in [
            "2023-02-29",
            "2024-13-01",
            "2024-00-10",
            "0000-01-01",
            "2024-1-05",
            "2024-01-05T00:00:00Z",
            "",
            "20x9-01-01",
        ] {
            assert!(to_column(ColumnType::Date, &json!(bad)).is_err(), "{bad}");
        }
        assert!(to_column(ColumnType::Date, &json!(20240101)).is_err());
        // every day of four centuries round-trips
        for days in days_from_civil(1999, 12, 1)..days_from_civil(2401, 1, 1) {
            assert_eq!(parse_date(&render_date(days)), Some(days));
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
        // epoch seconds, to the microsecond
        for ok in [
            "1669702024",
            "1669702024.365123",
            "-1.5",
            "0",
            "1.669702024e9",
        ] {
            let cv = to_column(ColumnType::TimestampS, &n(ok)).unwrap();
            assert!(
                json_eq(&to_json(ColumnType::TimestampS, &cv), &n(ok)),
                "{ok}"
            );
        }
        assert_eq!(
            to_column(ColumnType::TimestampS, &n("1.5")).unwrap(),
            ColumnValue::Micros(1_500_000)
        );
        for bad in ["1.0000001", "253402300800", "-62135596801"] {
            assert!(to_column(ColumnType::TimestampS, &n(bad)).is_err(), "{bad}");
        }
        assert!(to_column(ColumnType::TimestampS, &json!("1")).is_err());
        let iso = json!("2022-11-29T06:07:04.365Z");
        let cv = to_column(ColumnType::TimestampIso(IsoForm::TRIMMED), &iso).unwrap();
        assert_eq!(
            to_json(ColumnType::TimestampIso(IsoForm::TRIMMED), &cv),
            iso
        );
        // a non-canonical spelling would not come back the same: refused
        assert!(
            to_column(
                ColumnType::TimestampIso(IsoForm::TRIMMED),
                &json!("2022-11-29T06:07:04.365+00:00")
            )
            .is_err()
        );
        assert!(
            to_column(
                ColumnType::TimestampIso(IsoForm::TRIMMED),
                &json!("yesterday")
            )
            .is_err()
        );
        // JavaScript's form: exactly three digits and Z, nothing else
        for ok in [
            "2022-11-29T06:07:04.360Z",
            "2022-11-29T06:07:04.000Z",
            "0001-01-01T00:00:00.000Z",
            "1969-12-31T23:59:59.999Z",
        ] {
            let cv = to_column(ColumnType::TimestampIso(IsoForm::MS), &json!(ok)).unwrap();
            assert_eq!(
                to_json(ColumnType::TimestampIso(IsoForm::MS), &cv),
                json!(ok),
                "{ok}"
            );
        }
        for refused in [
            "2022-11-29T06:07:04.36Z",
            "2022-11-29T06:07:04Z",
            "2022-11-29T06:07:04.360123Z",
            "2022-11-29T11:37:04.360+05:30",
            "2022-11-29 06:07:04.360Z",
        ] {
            assert!(
                to_column(ColumnType::TimestampIso(IsoForm::MS), &json!(refused)).is_err(),
                "{refused}"
            );
        }
    }

    #[test]
    fn a_time_in_another_form_names_the_column_type_that_reads_it() {
        let t = |name: &str| ColumnType::parse(name).unwrap();
        let reason = |ty: &str, v: Value| to_column(t(ty), &v).unwrap_err().0;
        let cases = [
            (
                "timestamptz",
                json!("2024-01-02T00:00:00Z"),
                "`timestamptz_iso`",
            ),
            (
                "timestamptz_s",
                json!("2024-01-02T00:00:00.120Z"),
                "`timestamptz_iso_ms`",
            ),
            (
                "timestamptz",
                json!("2024-01-02T00:00:00.000001+00:00"),
                "`timestamptz_iso_us_offset`",
            ),
            (
                "timestamptz_iso",
                json!("2024-01-02T00:00:00.120Z"),
                "`timestamptz_iso_ms`",
            ),
            (
                "timestamptz_iso_ms",
                json!(1704153600000i64),
                "`timestamptz` for epoch milliseconds",
            ),
            (
                "date",
                json!(1704153600),
                "`timestamptz` for epoch milliseconds or `timestamptz_s` for epoch seconds",
            ),
            ("timestamptz_iso", json!("2024-01-02"), "`date`"),
        ];
        for (ty, v, hint) in cases {
            let r = reason(ty, v.clone());
            assert!(
                r.starts_with(&format!("expected {}", t(ty).describe())),
                "{ty} {v}: {r}"
            );
            assert!(r.contains("; the value is "), "{ty} {v}: {r}");
            assert!(
                r.contains(&format!("declare the column {hint}")),
                "{ty} {v}: {r}"
            );
            // the hinted type reads it
            let named = hint.split('`').nth(1).unwrap();
            assert!(to_column(t(named), &v).is_ok(), "{named} {v}");
        }
        // no hint where no form reads the value, or the column is no time
        for (ty, v) in [
            ("timestamptz", json!("yesterday")),
            ("timestamptz_iso", json!("2024-01-02T01:00:00+01:00")),
            ("timestamptz_iso", json!("2024-01-02T00:00:00.50Z")),
            ("timestamptz", json!(true)),
            ("date", json!(1e300)),
            ("date", json!("2024-02-30")),
            ("int4", json!("2024-01-02")),
            ("timestamptz", json!(1518332594336000i64)),
        ] {
            let r = reason(ty, v.clone());
            assert!(!r.contains("declare"), "{ty} {v}: {r}");
            assert!(
                r.starts_with(&format!("expected {}", t(ty).describe())),
                "{ty} {v}: {r}"
            );
        }
        // epoch milliseconds under epoch seconds: past the years 0001 to
        // 9999, said so, with the type that reads them (an outside trial
        // was told "a number, at most microsecond precision")
        let r = reason("timestamptz_s", json!(1518332594336i64));
        assert!(
            r.contains("in the years 0001 to 9999")
                && r.contains(
                    "read as epoch milliseconds it is in them: declare the column `timestamptz`"
                ),
            "{r}"
        );
        assert!(to_column(t("timestamptz"), &json!(1518332594336i64)).is_ok());
    }

    #[test]
    fn every_iso_form_takes_only_its_own_spelling() {
        let iso = |name: &str| ColumnType::parse(name).unwrap();
        let cases: [(&str, &[&str], &[&str]); 6] = [
            (
                "timestamptz_iso",
                &[
                    "2022-11-29T06:07:04Z",
                    "2022-11-29T06:07:04.36Z",
                    "2022-11-29T06:07:04.000001Z",
                ],
                &["2022-11-29T06:07:04.360Z", "2022-11-29T06:07:04+00:00"],
            ),
            (
                "timestamptz_iso_offset",
                &["2022-11-29T06:07:04+00:00", "2022-11-29T06:07:04.5+00:00"],
                &[
                    "2022-11-29T06:07:04Z",
                    "2022-11-29T11:37:04+05:30",
                    "2022-11-29T06:07:04.50+00:00",
                ],
            ),
            (
                "timestamptz_iso_ms",
                &["2022-11-29T06:07:04.360Z", "2022-11-29T06:07:04.000Z"],
                &[
                    "2022-11-29T06:07:04.36Z",
                    "2022-11-29T06:07:04.360123Z",
                    "2022-11-29T06:07:04.360+00:00",
                ],
            ),
            (
                "timestamptz_iso_ms_offset",
                &["2022-11-29T06:07:04.360+00:00"],
                &["2022-11-29T06:07:04.360Z", "2022-11-29T06:07:04+00:00"],
            ),
            (
                "timestamptz_iso_us",
                &["2022-11-29T06:07:04.360000Z", "9999-12-30T21:59:59.999999Z"],
                &[
                    "2022-11-29T06:07:04.36Z",
                    "2022-11-29T06:07:04.360000+00:00",
                ],
            ),
            (
                // Python's datetime.isoformat() of an aware UTC time with
                // microseconds
                "timestamptz_iso_us_offset",
                &[
                    "2022-11-29T06:07:04.365123+00:00",
                    "0001-01-01T00:00:00.000000+00:00",
                ],
                &[
                    "2022-11-29T06:07:04.365123Z",
                    "2022-11-29T06:07:04.365123-00:00",
                    "2022-11-29 06:07:04.365123+00:00",
                ],
            ),
        ];
        for (name, ok, refused) in cases {
            let ty = iso(name);
            let ColumnType::TimestampIso(form) = ty else {
                panic!("{name}")
            };
            assert_eq!(form.name(), name);
            for v in ok {
                let cv = to_column(ty, &json!(v)).unwrap_or_else(|e| panic!("{name} {v}: {e:?}"));
                assert_eq!(to_json(ty, &cv), json!(v), "{name}");
            }
            for v in refused {
                assert!(to_column(ty, &json!(v)).is_err(), "{name} took {v}");
            }
        }
        assert_eq!(ColumnType::parse("timestamptz_iso_ns"), None);
        // the identity names of the first two forms never change
        assert_eq!(iso("timestamptz_iso").identity(), "TimestampIso");
        assert_eq!(iso("timestamptz_iso_ms").identity(), "TimestampIsoMs");
        assert_eq!(ColumnType::Int4.identity(), "Int4");
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
}
