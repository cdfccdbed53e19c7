//! PostgreSQL's binary wire encoding of column values: what `COPY ...
//! (FORMAT binary)` and bound parameters carry.

use crate::core::explode::Row;
use crate::core::id::{IdType, UserId};
use crate::core::json;
use crate::core::number::{NumberText, canonical_number, split_number};
use crate::core::spec::Column;
use crate::core::value::{ColumnType, ColumnValue};
use crate::error::{Error, Result};
use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_postgres::types::{IsNull, ToSql, Type};

/// A boxed bind parameter.
pub(crate) type Param<'a> = Box<dyn ToSql + Sync + Send + 'a>;

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

/// A blob as the database sent it: jsonb's text, parsed only when needed,
/// either borrowed ([`Blob::parse`], what migration explodes) or owned
/// ([`Blob::value`]). A NULL blob reads as JSON `null`
/// ([`Blob::is_sql_null`] tells the two apart).
#[derive(Debug, Clone)]
pub(crate) struct Blob {
    /// Its JSON text (`null` for SQL NULL).
    text: String,
    /// Whether the column held SQL NULL.
    sql_null: bool,
}

impl Blob {
    /// Whether the column held SQL NULL (read as JSON `null`): written
    /// back so where the blob comes back as it was.
    pub fn is_sql_null(&self) -> bool {
        self.sql_null
    }

    /// The size of its JSON text, bytes.
    pub fn text_len(&self) -> usize {
        self.text.len()
    }

    /// The blob as a tree borrowing from its text, nested at most
    /// `max_depth` levels (the spec's `max_depth`).
    pub fn parse(&self, user: &UserId, max_depth: usize) -> Result<crate::core::json::Json<'_>> {
        json::parse_limited(&self.text, max_depth).map_err(|e| not_json(user, e))
    }

    /// The blob as an owned value, nested at most `max_depth` levels.
    /// serde_json's parser first (the fast path: what it accepts is nested
    /// at most 128 levels); where it refuses or the limit is lower,
    /// decant's own parser decides, so every path reads the same blobs.
    pub fn value(&self, user: &UserId, max_depth: usize) -> Result<Value> {
        if max_depth >= SERDE_DEPTH {
            if let Ok(v) = serde_json::from_str(&self.text) {
                return Ok(v);
            }
        }
        json::parse_limited(&self.text, max_depth)
            .map(|j| json::JsonView::to_value(&j))
            .map_err(|e| not_json(user, e))
    }
}

/// serde_json's parser accepts nothing nested deeper than this.
const SERDE_DEPTH: usize = 128;

/// Refuses a blob a client writes nested deeper than `max_depth` levels
/// (the spec's `max_depth`): every path could write it, none could read it
/// back.
pub(crate) fn check_depth(user: &UserId, blob: &Value, max_depth: usize) -> Result<()> {
    if json::deeper_than(blob, max_depth) {
        // a write (or a fixup's repair) past the limit: no path could read
        // it back
        return Err(Error::Verification {
            user: user.clone(),
            detail: too_deep("the blob", max_depth),
        });
    }
    Ok(())
}

fn too_deep(subject: &str, max_depth: usize) -> String {
    format!(
        "{subject} is nested deeper than {max_depth} levels (the spec's \
         `[settings] max_depth`, applied on every path; PostgreSQL accepts it, \
         so raise the limit, flatten the blob or keep the user legacy)"
    )
}

fn not_json(user: &UserId, e: json::ParseError) -> Error {
    let detail = match e.depth_limit {
        Some(limit) => too_deep("it", limit),
        None => format!("what the database sent is not JSON ({e})"),
    };
    Error::Unreadable {
        user: user.clone(),
        detail,
    }
}

/// The JSON text of a `jsonb` (its binary form: a version byte, then the
/// text) or `json` value.
fn json_text<'a>(
    ty: &Type,
    raw: &'a [u8],
) -> std::result::Result<&'a [u8], Box<dyn std::error::Error + Sync + Send>> {
    if *ty != Type::JSONB {
        return Ok(raw);
    }
    match raw.split_first() {
        Some((1, text)) => Ok(text),
        _ => Err("unsupported jsonb binary format version".into()),
    }
}

impl<'a> tokio_postgres::types::FromSql<'a> for Blob {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Blob {
            text: std::str::from_utf8(json_text(ty, raw)?)?.to_owned(),
            sql_null: false,
        })
    }

    fn from_sql_null(
        _: &Type,
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Blob {
            text: "null".into(),
            sql_null: true,
        })
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB || *ty == Type::JSON
    }
}

/// The binary COPY stream of rows of one table: the user id, then each
/// column (PostgreSQL's binary COPY format: a header, per tuple a field
/// count and length-prefixed fields in each type's binary form, a trailer).
/// Values are encoded by `ColumnValue`'s `ToSql`, as the INSERTs bind them,
/// except `numeric`, which binds as text and is encoded here. `None` when
/// a numeric has no form `numeric_in` would take.
pub(crate) fn copy_stream(columns: &[Column], rows: &[(&UserId, &Row)]) -> Option<bytes::BytesMut> {
    use bytes::BufMut;
    let mut out = bytes::BytesMut::with_capacity(64 * rows.len() + 32);
    out.put_slice(b"PGCOPY\n\xff\r\n\0");
    out.put_i32(0); // flags
    out.put_i32(0); // header extension length
    for (user, row) in rows {
        out.put_i16(1 + row.values.len() as i16);
        match user {
            UserId::Int(i) => {
                out.put_i32(8);
                out.put_i64(*i);
            }
            UserId::Uuid(u) => {
                out.put_i32(16);
                out.put_slice(u);
            }
            UserId::Text(t) => {
                out.put_i32(i32::try_from(t.len()).ok()?);
                out.put_slice(t.as_bytes());
            }
        }
        for (c, v) in columns.iter().zip(&row.values) {
            put_field(&mut out, c.ty, v)?;
        }
    }
    out.put_i16(-1);
    Some(out)
}

/// A `jsonb` (or `json`) column's value, read past serde_json's nesting
/// limit of 128: a value a spec's `max_depth` lets a user migrate (up to
/// [`json::DEPTH_CEILING`]) must read back from its table, or check,
/// rollback and finalize could not read that user.
#[derive(Debug, Clone)]
pub(crate) struct PgJson(pub Value);

impl<'a> tokio_postgres::types::FromSql<'a> for PgJson {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let text = json_text(ty, raw)?;
        if let Ok(v) = serde_json::from_slice(text) {
            return Ok(PgJson(v));
        }
        let text = std::str::from_utf8(text)?;
        let v = json::parse_limited(text, json::DEPTH_CEILING)?;
        Ok(PgJson(json::JsonView::to_value(&v)))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB || *ty == Type::JSON
    }
}

/// A `date` in days since 1970-01-01 (PostgreSQL counts from 2000-01-01).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PgDate(pub i32);

/// Days from 1970-01-01 to 2000-01-01.
const PG_DATE_EPOCH: i32 = 10_957;

impl ToSql for PgDate {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        use bytes::BufMut;
        out.put_i32(self.0 - PG_DATE_EPOCH);
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::DATE
    }

    tokio_postgres::types::to_sql_checked!();
}

impl<'a> tokio_postgres::types::FromSql<'a> for PgDate {
    fn from_sql(
        _: &Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let days = i32::from_be_bytes(raw.try_into().map_err(|_| "a date is 4 bytes")?);
        // (PostgreSQL's infinite dates are the extremes of i32; decant
        // never writes them)
        Ok(PgDate(days.saturating_add(PG_DATE_EPOCH)))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::DATE
    }
}

/// A user id binds in the statement's id type: an integer id as int2, int4
/// or int8 (refused when out of the column's range), a uuid as its 16
/// bytes, a text id as text (a uuid or text id given where the other is
/// expected is converted when it reads as one).
impl ToSql for UserId {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        use bytes::BufMut;
        let wrong = || -> Box<dyn std::error::Error + Sync + Send> {
            format!(
                "user id {self} is {} but the id column is {ty}: set `[source] id_type` in the spec \
                 to the id column's type",
                match self.kind() {
                    IdType::Int => "an integer",
                    IdType::Uuid => "a uuid",
                    IdType::Text => "text",
                }
            )
            .into()
        };
        match (self, ty) {
            (UserId::Int(i), t) if *t == Type::INT8 => out.put_i64(*i),
            (UserId::Int(i), t) if *t == Type::INT4 => {
                out.put_i32(i32::try_from(*i).map_err(|_| wrong())?)
            }
            (UserId::Int(i), t) if *t == Type::INT2 => {
                out.put_i16(i16::try_from(*i).map_err(|_| wrong())?)
            }
            (UserId::Uuid(u), t) if *t == Type::UUID => out.put_slice(u),
            (UserId::Text(s), t) if [Type::INT8, Type::INT4, Type::INT2].contains(t) => {
                let i: i64 = s.trim().parse().map_err(|_| wrong())?;
                return UserId::Int(i).to_sql(ty, out);
            }
            (UserId::Text(s), t) if *t == Type::UUID => {
                out.put_u128(crate::core::id::parse_uuid(s).ok_or_else(wrong)?)
            }
            (id, t) if [Type::TEXT, Type::VARCHAR, Type::BPCHAR, Type::NAME].contains(t) => {
                out.put_slice(id.to_string().as_bytes())
            }
            _ => return Err(wrong()),
        }
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        [
            Type::INT8,
            Type::INT4,
            Type::INT2,
            Type::UUID,
            Type::TEXT,
            Type::VARCHAR,
            Type::BPCHAR,
            Type::NAME,
        ]
        .contains(ty)
    }

    tokio_postgres::types::to_sql_checked!();
}

impl<'a> tokio_postgres::types::FromSql<'a> for UserId {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(match *ty {
            Type::INT8 => UserId::Int(i64::from_be_bytes(raw.try_into()?)),
            Type::INT4 => UserId::Int(i32::from_be_bytes(raw.try_into()?).into()),
            Type::INT2 => UserId::Int(i16::from_be_bytes(raw.try_into()?).into()),
            Type::UUID => UserId::Uuid(raw.try_into()?),
            _ => UserId::Text(std::str::from_utf8(raw)?.to_string()),
        })
    }

    fn accepts(ty: &Type) -> bool {
        <UserId as ToSql>::accepts(ty)
    }
}

/// Appends one field: its length (-1 for NULL), then its binary form.
fn put_field(out: &mut bytes::BytesMut, ty: ColumnType, v: &ColumnValue) -> Option<()> {
    use bytes::BufMut;
    let at = out.len();
    out.put_i32(0);
    let null = match (ty, v) {
        (_, ColumnValue::Null) => true,
        (ColumnType::Numeric, ColumnValue::Numeric(text)) => {
            numeric_binary(text, out)?;
            false
        }
        _ => {
            let pg = match ty {
                ColumnType::Bool => Type::BOOL,
                ColumnType::Int2 => Type::INT2,
                ColumnType::Int4 => Type::INT4,
                ColumnType::Int8 => Type::INT8,
                ColumnType::Float8 => Type::FLOAT8,
                ColumnType::Numeric => Type::NUMERIC,
                ColumnType::Text => Type::TEXT,
                ColumnType::TimestampMs | ColumnType::TimestampS | ColumnType::TimestampIso(_) => {
                    Type::TIMESTAMPTZ
                }
                ColumnType::Date => Type::DATE,
                ColumnType::Jsonb => Type::JSONB,
            };
            matches!(v.to_sql_checked(&pg, out).ok()?, IsNull::Yes)
        }
    };
    let len = if null {
        out.truncate(at + 4);
        -1
    } else {
        i32::try_from(out.len() - at - 4).ok()?
    };
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
    Some(())
}

/// Builds the array parameter of one column for many rows.
pub(crate) fn bind<'a>(values: impl Iterator<Item = &'a ColumnValue>) -> Param<'a> {
    Box::new(values.collect::<Vec<&'a ColumnValue>>())
}

// A column value binds as its column's wire type (numeric as text,
// timestamps as timestamptz); text and json are written straight from the
// row, without copies. Each variant checks that PostgreSQL expects its type.
impl ToSql for ColumnValue {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            ColumnValue::Null => Ok(IsNull::Yes),
            ColumnValue::Bool(b) => b.to_sql_checked(ty, out),
            ColumnValue::I16(n) => n.to_sql_checked(ty, out),
            ColumnValue::I32(n) => n.to_sql_checked(ty, out),
            ColumnValue::I64(n) => n.to_sql_checked(ty, out),
            ColumnValue::F64(f) => f.to_sql_checked(ty, out),
            ColumnValue::Numeric(s) | ColumnValue::Text(s) => s.as_str().to_sql_checked(ty, out),
            ColumnValue::Micros(us) => micros_to_time(*us).to_sql_checked(ty, out),
            ColumnValue::Date(d) => PgDate(*d).to_sql_checked(ty, out),
            ColumnValue::Json(v) => v.to_sql_checked(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        <bool as ToSql>::accepts(ty)
            || <i16 as ToSql>::accepts(ty)
            || <i32 as ToSql>::accepts(ty)
            || <i64 as ToSql>::accepts(ty)
            || <f64 as ToSql>::accepts(ty)
            || <&str as ToSql>::accepts(ty)
            || <SystemTime as ToSql>::accepts(ty)
            || <Value as ToSql>::accepts(ty)
            || *ty == Type::DATE
    }

    tokio_postgres::types::to_sql_checked!();
}

/// Whether a returned column holds exactly the value sent, read without
/// allocating where the type allows.
pub(crate) fn stored_equals(
    ty: ColumnType,
    row: &tokio_postgres::Row,
    idx: usize,
    sent: &ColumnValue,
) -> bool {
    use ColumnValue as V;
    match ty {
        ColumnType::Numeric => match (row.get::<_, Option<&str>>(idx), sent) {
            (None, V::Null) => true,
            (Some(a), V::Numeric(b)) => a == b || canonical_number(a) == canonical_number(b),
            _ => false,
        },
        ColumnType::Text => match (row.get::<_, Option<&str>>(idx), sent) {
            (None, V::Null) => true,
            (Some(a), V::Text(b)) => a == b,
            _ => false,
        },
        _ => read(ty, row, idx).same(sent),
    }
}

/// Reads one column of a result row in its wire form.
pub(crate) fn read(ty: ColumnType, row: &tokio_postgres::Row, idx: usize) -> ColumnValue {
    fn opt<T>(v: Option<T>, f: impl FnOnce(T) -> ColumnValue) -> ColumnValue {
        v.map(f).unwrap_or(ColumnValue::Null)
    }
    match ty {
        ColumnType::Bool => opt(row.get(idx), ColumnValue::Bool),
        ColumnType::Int2 => opt(row.get(idx), ColumnValue::I16),
        ColumnType::Int4 => opt(row.get(idx), ColumnValue::I32),
        ColumnType::Int8 => opt(row.get(idx), ColumnValue::I64),
        ColumnType::TimestampMs | ColumnType::TimestampS | ColumnType::TimestampIso(_) => {
            opt(row.get(idx), |t| ColumnValue::Micros(time_to_micros(t)))
        }
        ColumnType::Float8 => opt(row.get(idx), ColumnValue::F64),
        ColumnType::Numeric => opt(row.get(idx), ColumnValue::Numeric),
        ColumnType::Text => opt(row.get(idx), ColumnValue::Text),
        ColumnType::Date => opt(row.get(idx), |PgDate(d)| ColumnValue::Date(d)),
        ColumnType::Jsonb => opt(row.get(idx), |PgJson(v)| ColumnValue::Json(v)),
    }
}

/// Reads one column of a result row that holds an array (`array_agg`) of
/// `len` values in their wire form; NULL (no rows) reads as empty.
pub(crate) fn read_array(
    ty: ColumnType,
    row: &tokio_postgres::Row,
    idx: usize,
) -> Vec<ColumnValue> {
    fn all<T>(v: Option<Vec<Option<T>>>, f: impl Fn(T) -> ColumnValue) -> Vec<ColumnValue> {
        v.unwrap_or_default()
            .into_iter()
            .map(|x| x.map(&f).unwrap_or(ColumnValue::Null))
            .collect()
    }
    match ty {
        ColumnType::Bool => all(row.get(idx), ColumnValue::Bool),
        ColumnType::Int2 => all(row.get(idx), ColumnValue::I16),
        ColumnType::Int4 => all(row.get(idx), ColumnValue::I32),
        ColumnType::Int8 => all(row.get(idx), ColumnValue::I64),
        ColumnType::TimestampMs | ColumnType::TimestampS | ColumnType::TimestampIso(_) => {
            all(row.get(idx), |t| ColumnValue::Micros(time_to_micros(t)))
        }
        ColumnType::Float8 => all(row.get(idx), ColumnValue::F64),
        ColumnType::Numeric => all(row.get(idx), ColumnValue::Numeric),
        ColumnType::Text => all(row.get(idx), ColumnValue::Text),
        ColumnType::Date => all(row.get(idx), |PgDate(d)| ColumnValue::Date(d)),
        ColumnType::Jsonb => all(row.get(idx), |PgJson(v)| ColumnValue::Json(v)),
    }
}

// timestamptz travels as SystemTime: exact to the microsecond on every
// supported server version (extract(epoch) is a double before PG 14).
fn micros_to_time(us: i64) -> SystemTime {
    let d = Duration::from_micros(us.unsigned_abs());
    if us >= 0 {
        UNIX_EPOCH + d
    } else {
        UNIX_EPOCH - d
    }
}

fn time_to_micros(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_micros() as i64,
        Err(e) => -(e.duration().as_micros() as i64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::number::canonical_number;
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
}
