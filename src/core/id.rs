//! User ids: the source table's id column may be an integer (smallint,
//! integer or bigint, carried as `bigint`), a `uuid` or text (`text` or
//! `varchar`). The spec names which (`[source] id_type`); every statement
//! binds ids in that type, and the state table, the target tables' user
//! columns and the SQL API use it.

use std::fmt;

/// The kind of the source table's id column, as the spec declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum IdType {
    /// `smallint`, `integer` or `bigint`, bound as `bigint` (the default).
    #[default]
    Int,
    /// `uuid`.
    Uuid,
    /// `text` or `varchar`, bound as `text`.
    Text,
}

impl IdType {
    /// The names `[source] id_type` accepts.
    pub const NAMES: &'static str = "bigint, integer, smallint, uuid, text";

    /// Reads a declared id type (`bigint`, `integer`, `smallint`, `int8`,
    /// `int4`, `int2`, `uuid`, `text`, `varchar`).
    pub fn parse(name: &str) -> Option<IdType> {
        Some(match name {
            "bigint" | "int8" | "integer" | "int4" | "int" | "smallint" | "int2" => IdType::Int,
            "uuid" => IdType::Uuid,
            "text" | "varchar" | "character varying" => IdType::Text,
            _ => return None,
        })
    }

    /// The kind as a message names it: `integer: smallint, integer or
    /// bigint`, `uuid`, `text`.
    pub fn describe(self) -> &'static str {
        match self {
            IdType::Int => "integer: smallint, integer or bigint",
            IdType::Uuid => "uuid",
            IdType::Text => "text",
        }
    }

    /// The SQL type ids are bound, returned and stored in.
    pub fn sql(self) -> &'static str {
        match self {
            IdType::Int => "bigint",
            IdType::Uuid => "uuid",
            IdType::Text => "text",
        }
    }

    /// The source column types (as `format_type` names them, less any
    /// length) this kind serves.
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            IdType::Int => &["bigint", "integer", "smallint"],
            IdType::Uuid => &["uuid"],
            IdType::Text => &["text", "character varying"],
        }
    }

    /// The kind serving a source column type, if any.
    pub fn of_column(ty: &str) -> Option<IdType> {
        let base = ty.split('(').next().unwrap_or(ty).trim();
        [IdType::Int, IdType::Uuid, IdType::Text]
            .into_iter()
            .find(|k| k.columns().contains(&base))
    }

    /// Reads a user id written on a command line or in a setting (an
    /// integer or uuid may be surrounded by spaces; a text id is taken
    /// exactly).
    pub fn id(self, text: &str) -> Result<UserId, String> {
        match self {
            IdType::Int => text
                .trim()
                .parse::<i64>()
                .map(UserId::Int)
                .map_err(|_| format!("\"{text}\" is not an integer user id")),
            IdType::Uuid => parse_uuid(text)
                .map(|u| UserId::Uuid(u.to_be_bytes()))
                .ok_or_else(|| format!("\"{text}\" is not a uuid user id")),
            IdType::Text => Ok(UserId::Text(text.to_string())),
        }
    }

    /// `id` in this kind: an integer id of a text column becomes its
    /// text, a text id of an integer or uuid column is read as one (a
    /// caller may name users in whatever form it holds them).
    pub fn coerce(self, id: UserId) -> Result<UserId, String> {
        match (self, id) {
            (IdType::Int, id @ UserId::Int(_))
            | (IdType::Uuid, id @ UserId::Uuid(_))
            | (IdType::Text, id @ UserId::Text(_)) => Ok(id),
            (IdType::Text, id) => Ok(UserId::Text(id.to_string())),
            (kind, UserId::Text(t)) => kind.id(&t),
            (kind, id) => Err(format!(
                "user id {id} is not a{} id (the spec's `[source] id_type` is {kind})",
                if kind == IdType::Int {
                    "n integer"
                } else {
                    " uuid"
                }
            )),
        }
    }
}

impl fmt::Display for IdType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.sql())
    }
}

/// One user's id, in the kind of the source's id column.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UserId {
    /// An integer id (smallint, integer or bigint column).
    Int(i64),
    /// A uuid, as its 16 bytes (in the order written).
    Uuid([u8; 16]),
    /// A text id.
    Text(String),
}

impl UserId {
    /// A user id written on a command line or in a setting, whatever the
    /// id column's kind: an integer written canonically (`42`, not `042`
    /// nor ` 42`) is an integer id, anything else text, kept exactly. The
    /// spec's kind reads it when it is used ([`IdType::coerce`]: a uuid
    /// column parses the text, a text column takes an integer's digits).
    pub fn guess(text: &str) -> UserId {
        match text.parse::<i64>() {
            Ok(i) if i.to_string() == text => UserId::Int(i),
            _ => UserId::Text(text.to_string()),
        }
    }

    /// The integer id, if it is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            UserId::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The kind of id this is.
    pub fn kind(&self) -> IdType {
        match self {
            UserId::Int(_) => IdType::Int,
            UserId::Uuid(_) => IdType::Uuid,
            UserId::Text(_) => IdType::Text,
        }
    }
}

/// [`UserId::guess`]: for command-line arguments.
impl std::str::FromStr for UserId {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<UserId, Self::Err> {
        Ok(UserId::guess(s))
    }
}

impl From<i64> for UserId {
    fn from(i: i64) -> UserId {
        UserId::Int(i)
    }
}

impl From<i32> for UserId {
    fn from(i: i32) -> UserId {
        UserId::Int(i.into())
    }
}

impl From<&str> for UserId {
    fn from(s: &str) -> UserId {
        UserId::Text(s.to_string())
    }
}

impl From<String> for UserId {
    fn from(s: String) -> UserId {
        UserId::Text(s)
    }
}

impl From<&UserId> for UserId {
    fn from(u: &UserId) -> UserId {
        u.clone()
    }
}

impl PartialEq<i64> for UserId {
    fn eq(&self, other: &i64) -> bool {
        matches!(self, UserId::Int(i) if i == other)
    }
}

/// An integer id as a JSON number, others as strings.
impl serde::Serialize for UserId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            UserId::Int(i) => s.serialize_i64(*i),
            _ => s.collect_str(self),
        }
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserId::Int(i) => write!(f, "{i}"),
            UserId::Uuid(u) => {
                let h = format!("{:032x}", u128::from_be_bytes(*u));
                write!(
                    f,
                    "{}-{}-{}-{}-{}",
                    &h[0..8],
                    &h[8..12],
                    &h[12..16],
                    &h[16..20],
                    &h[20..32]
                )
            }
            UserId::Text(s) => f.write_str(s),
        }
    }
}

impl UserId {
    /// The id as a message shows it: as `Display` does, but a text id
    /// that would not read as one word in a list (empty, blank at an
    /// edge, with a comma, a quote or a control character) in JSON
    /// quotes, so `""` and `" a"` are seen.
    pub fn shown(&self) -> String {
        match self {
            UserId::Text(s)
                if s.is_empty()
                    || s.trim() != s
                    || s.chars().any(|c| c == ',' || c == '"' || c.is_control()) =>
            {
                serde_json::Value::String(s.clone()).to_string()
            }
            other => other.to_string(),
        }
    }
}

/// Reads a uuid in any form PostgreSQL's `uuid_in` takes: 32 hex digits,
/// optionally in braces, with a hyphen after any group of four.
pub fn parse_uuid(text: &str) -> Option<u128> {
    let t = text.trim();
    let t = t
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .unwrap_or(t);
    if t.starts_with('-') || t.ends_with('-') || t.contains("--") {
        return None;
    }
    let hex: String = t.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    u128::from_str_radix(&hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_id_a_list_would_hide_is_shown_quoted() {
        let t = |s: &str| UserId::Text(s.into()).shown();
        assert_eq!(t("alice"), "alice");
        assert_eq!(t("a b"), "a b");
        assert_eq!(t(""), "\"\"");
        assert_eq!(t(" a"), "\" a\"");
        assert_eq!(t("a,b"), "\"a,b\"");
        assert_eq!(t("tab\there"), "\"tab\\there\"");
        assert_eq!(UserId::Int(-3).shown(), "-3");
    }

    #[test]
    fn ids_read_and_print_in_their_kind() {
        assert_eq!(IdType::Int.id(" 42 ").unwrap(), UserId::Int(42));
        assert!(IdType::Int.id("4x").unwrap_err().contains("not an integer"));
        let u = IdType::Uuid
            .id("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11")
            .unwrap();
        assert_eq!(u.to_string(), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
        assert_eq!(
            IdType::Uuid
                .id("{a0eebc999c0b4ef8bb6d6bb9bd380a11}")
                .unwrap(),
            u
        );
        assert!(IdType::Uuid.id("a0eebc99-9c0b").is_err());
        assert!(
            IdType::Uuid
                .id("-a0eebc999c0b4ef8bb6d6bb9bd380a11")
                .is_err()
        );
        assert_eq!(IdType::Text.id("007").unwrap().to_string(), "007");
        assert_eq!(UserId::from(7i64), 7);
        assert_eq!(UserId::guess("42"), UserId::Int(42));
        assert_eq!(UserId::guess("042"), UserId::Text("042".into()));
        assert_eq!(
            IdType::Uuid.coerce(UserId::guess(&u.to_string())).unwrap(),
            u
        );
        // a text column's id that looks like a uuid stays as written
        let upper = "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11";
        assert_eq!(
            IdType::Text
                .coerce(UserId::guess(upper))
                .unwrap()
                .to_string(),
            upper
        );
        assert_eq!(UserId::guess(" 42"), UserId::Text(" 42".into()));
        assert_eq!(
            IdType::Text.coerce(UserId::Int(42)).unwrap(),
            UserId::Text("42".into())
        );
        assert_eq!(
            IdType::Int.coerce(UserId::Text("42".into())).unwrap(),
            UserId::Int(42)
        );
        assert_eq!(IdType::Uuid.coerce(UserId::Text(u.to_string())).unwrap(), u);
        assert!(
            IdType::Uuid
                .coerce(UserId::Int(3))
                .unwrap_err()
                .contains("not a uuid id")
        );
        assert!(
            IdType::Int
                .coerce(u.clone())
                .unwrap_err()
                .contains("not an integer id")
        );
    }

    proptest::proptest! {
        /// An id printed and read back in its kind is the same id; a text
        /// id keeps its exact text ("007" stays "007").
        #[test]
        fn ids_round_trip_through_their_text(i in proptest::num::i64::ANY, u in proptest::num::u128::ANY, t in ".*") {
            for id in [UserId::Int(i), UserId::Uuid(u.to_be_bytes()), UserId::Text(t.clone())] {
                let back = id.kind().id(&id.to_string()).unwrap();
                proptest::prop_assert_eq!(&back, &id);
                proptest::prop_assert_eq!(id.kind().coerce(UserId::guess(&id.to_string())).unwrap(), id);
            }
        }
    }

    #[test]
    fn column_types_map_to_kinds() {
        assert_eq!(IdType::of_column("integer"), Some(IdType::Int));
        assert_eq!(
            IdType::of_column("character varying(40)"),
            Some(IdType::Text)
        );
        assert_eq!(IdType::of_column("uuid"), Some(IdType::Uuid));
        assert_eq!(IdType::of_column("numeric"), None);
        assert_eq!(IdType::parse("int4"), Some(IdType::Int));
        assert_eq!(IdType::parse("jsonb"), None);
    }
}
