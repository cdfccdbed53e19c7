//! The validated mapping: source, settings, target tables and columns with
//! their validation, rules, and the pattern trie they compile to.

use super::ident::quote;
use crate::core::json::JsonView;
use crate::core::number::{Canonical, cmp_number, plain_integer};
use crate::core::value::{self, ColumnType, ColumnValue};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// A spec that does not parse or is not valid, with the file, the line and
/// what is wrong (naming the rule or table).
#[derive(Debug, Clone, thiserror::Error)]
#[error("spec {}:{line}: {message}", file.display())]
pub struct SpecError {
    /// The spec file (or `<inline>`).
    pub file: PathBuf,
    /// 1-based line of the offending item (0 when unknown).
    pub line: usize,
    /// What is wrong, naming the rule when there is one.
    pub message: String,
}

pub(crate) type Result<T, E = SpecError> = std::result::Result<T, E>;

/// Several problems as one error: the first with its line,
/// then each other on a line of its own as `spec FILE:LINE: message`, in
/// their order (at most 20 in all, then how many more).
pub(super) fn merged(mut errors: Vec<SpecError>) -> SpecError {
    const SHOWN: usize = 20;
    let more = errors.len().saturating_sub(SHOWN);
    let mut rest = errors.drain(..).take(SHOWN);
    let mut first = rest.next().expect("at least one error to merge");
    for e in rest {
        first.message.push_str(&format!(
            "\nspec {}:{}: {}",
            e.file.display(),
            e.line,
            e.message
        ));
    }
    if more > 0 {
        first
            .message
            .push_str(&format!("\n(and {more} more problems in the spec)"));
    }
    first
}

/// A parsed, validated mapping spec.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Where the blobs are.
    pub(crate) source: Source,
    /// Tunables with defaults.
    pub(crate) settings: Settings,
    /// Target tables, in name order.
    pub(crate) tables: Vec<Table>,
    /// Rules, in file order.
    pub(crate) rules: Vec<Rule>,
    /// The pattern trie the rules compile to.
    pub(crate) trie: Node,
    /// For each table, its rules by decreasing specificity (constants).
    pub(crate) routes: Vec<Vec<usize>>,
    /// Statistics a top-N reads fast in any mixed state.
    pub(crate) ranked: Vec<Ranked>,
    /// Fixups applied before explode, in order (from the `fixups` folder
    /// next to the spec file, or [`Spec::with_fixups`]).
    pub(crate) fixups: Vec<crate::core::fixup::Fixup>,
    /// The TOML text it was parsed from (`init` records it, so that
    /// commands that only report can run without the file).
    pub(crate) text: std::sync::Arc<str>,
}

/// A ranked statistic: one number of one rule (a scalar rule's value, or
/// a column an object rule maps from a key), at a concrete blob path, that
/// `decant init` indexes on both sides (table and legacy blobs) for a fast
/// top-N.
#[derive(Debug, Clone)]
pub(crate) struct Ranked {
    /// Its name, used for the index and function names.
    pub name: String,
    /// The target table.
    pub table: usize,
    /// The ranked column (the rule's scalar value column, or a column its
    /// object maps).
    pub value: usize,
    /// The columns that pick the statistic out of the table, with values.
    pub filter: Vec<(usize, ColumnValue)>,
    /// The concrete path in a blob of the value (a scalar rule) or of the
    /// object (an object rule).
    pub path: Vec<String>,
    /// An object rule's: the key path of the value in its object (the
    /// value is at `path` for a scalar rule).
    pub key: Option<Vec<String>>,
    /// Whether the legacy index leaves out users whose migration would
    /// fail (the top-N then never tests a blob, but every write to a
    /// legacy blob runs the test).
    pub index_fail_test: bool,
}

/// The source table and its columns.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Source {
    /// Schema of the source table (default `public`).
    pub schema: String,
    /// The source table.
    pub table: String,
    /// Its id column.
    pub id: String,
    /// The id column's kind (`[source] id_type`: an integer type, the
    /// default, `uuid` or `text`).
    pub id_type: crate::core::id::IdType,
    /// Its jsonb blob column.
    pub blob: String,
    /// Its boolean per-user `migrated` flag column (added by `decant init`).
    pub flag: String,
}

/// Tunables; each documents its default.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Settings {
    /// Schema of the target tables (default: the source schema).
    pub target_schema: String,
    /// Schema of the cross-user views `<table>_all` (default: the target
    /// schema).
    pub views_schema: String,
    /// A user whose migration failed this many times is skipped (default 5).
    pub max_attempts: i32,
    /// How long a call waits for a user's row lock, in ms (default 2000).
    pub lock_timeout_ms: u64,
    /// Statement timeout of every decant session, in ms (default 60000).
    pub statement_timeout_ms: u64,
    /// How long `init` and `finalize` keep retrying the brief table locks
    /// their schema changes need, in seconds (default 60). Each try waits
    /// for its locks at most a quarter of `lock_timeout_ms` (at most
    /// 500 ms), so the backend's calls queued behind it never time out;
    /// between tries the sessions holding the tables go on.
    pub ddl_retry_s: u64,
    /// Whether each target table's user column references the source
    /// table's id, `ON DELETE CASCADE` (default false: every row inserted
    /// then looks its user up, which slows the migration).
    pub foreign_keys: bool,
    /// How deeply a blob may nest (default 128, at most 512): a deeper
    /// blob fails its user with "nested deeper than N levels", on every
    /// path, and a client may not write one.
    pub max_depth: usize,
}

/// A normalized target table.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Table {
    /// Table name.
    pub name: String,
    /// The column holding the user id (default `user_id`).
    pub user_column: String,
    /// Columns other than the user id, in name order.
    pub columns: Vec<Column>,
    /// Indexes into `columns` of the key (after the user id): every column
    /// a rule captures, positions or sets as a constant.
    pub key: Vec<usize>,
    /// Indexes `init` creates beyond the primary key (`indexes = [["a",
    /// "b"]]`): column names, the user column allowed.
    pub indexes: Vec<Vec<String>>,
    /// Line of the table in the spec.
    pub line: usize,
}

impl Table {
    /// Index of a column by name.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}

/// A column with its type and validation.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Column {
    /// Column name.
    pub name: String,
    /// Its type.
    pub ty: ColumnType,
    /// Refuse JSON null / absence.
    pub not_null: bool,
    /// Inclusive lower bound for numbers.
    pub min: Option<Canonical>,
    /// Inclusive upper bound for numbers.
    pub max: Option<Canonical>,
    /// `min` when it is an integer, for the fast path.
    pub(super) min_int: Option<i64>,
    /// `max` when it is an integer, for the fast path.
    pub(super) max_int: Option<i64>,
    /// Allowed values for text.
    pub values: Option<Vec<String>>,
    /// Maximum length in characters for text.
    pub max_length: Option<usize>,
    /// A regular expression text must match (a captured key too), in the
    /// subset PostgreSQL and decant read alike.
    pub pattern: Option<Pattern>,
}

/// A column's `pattern`: a regular expression in the subset PostgreSQL's
/// `~` and decant read alike (ASCII; literals, `.`, bracket classes with
/// ranges, anchors, groups, alternation, quantifiers, escaped punctuation),
/// matched anywhere in the text unless anchored.
#[derive(Debug, Clone)]
pub struct Pattern {
    /// The pattern as the spec writes it (and the CHECK constraint and the
    /// views use it).
    pub text: String,
    re: regex::Regex,
}

impl Pattern {
    /// Compiles a spec's pattern, refusing what PostgreSQL would read
    /// otherwise.
    pub fn new(text: &str) -> std::result::Result<Pattern, String> {
        let mut chars = text.chars().peekable();
        let mut prev = None;
        while let Some(c) = chars.next() {
            if !(c.is_ascii_graphic() || c == ' ') {
                return Err(format!(
                    "pattern {text:?}: only printable ASCII is portable between PostgreSQL and decant"
                ));
            }
            if c == '\\' {
                match chars.next() {
                    Some(e) if e.is_ascii_punctuation() => {}
                    Some(e) => {
                        return Err(format!(
                            "pattern {text:?}: `\\{e}` means different things in PostgreSQL and decant; \
                             write a bracket class such as [0-9] or [A-Za-z_]"
                        ));
                    }
                    None => return Err(format!("pattern {text:?} ends with a lone `\\`")),
                }
            }
            if (prev == Some('(') && c == '?') || (prev == Some('[') && c == ':') {
                return Err(format!(
                    "pattern {text:?}: `{}{c}` (flags, lookaround, named classes) is not portable",
                    prev.unwrap_or(' ')
                ));
            }
            prev = Some(c);
        }
        // PostgreSQL's bound on a repetition count (RE_DUP_MAX): past it
        // its `~` refuses the pattern, every row then (the CHECK, the views)
        if let Some(n) = repetition_counts(text).find(|&n| n > 255) {
            return Err(format!(
                "pattern {text:?}: a repetition count of {n}; PostgreSQL allows at most 255"
            ));
        }
        // `.` matches a newline in PostgreSQL (not newline-sensitive) and
        // with (?s) here
        let re = regex::Regex::new(&format!("(?s){text}"))
            .map_err(|e| format!("pattern {text:?} is not a regular expression: {e}"))?;
        Ok(Pattern {
            text: text.to_string(),
            re,
        })
    }

    /// Whether `s` matches.
    pub fn matches(&self, s: &str) -> bool {
        self.re.is_match(s)
    }
}

/// The numbers of a pattern's bounds (`{n}`, `{n,}`, `{n,m}`), escaped
/// braces and those in bracket classes left out. A number too long for a
/// u64 counts as `u64::MAX`.
fn repetition_counts(text: &str) -> impl Iterator<Item = u64> + '_ {
    let b = text.as_bytes();
    let mut counts = Vec::new();
    let (mut i, mut class) = (0, false);
    while i < b.len() {
        match b[i] {
            b'\\' => i += 1,
            b'[' if !class => class = true,
            b']' if class => class = false,
            b'{' if !class => {
                // the digits up to the closing brace, a comma between
                let mut j = i + 1;
                while j < b.len() && (b[j].is_ascii_digit() || b[j] == b',') {
                    j += 1;
                }
                counts.extend(
                    text[i + 1..j]
                        .split(',')
                        .filter(|n| !n.is_empty())
                        .map(|n| n.parse().unwrap_or(u64::MAX)),
                );
                i = j - 1;
            }
            _ => {}
        }
        i += 1;
    }
    counts.into_iter()
}

impl Column {
    /// Converts and validates one JSON value for this column.
    pub fn check<V: JsonView>(&self, v: &V) -> std::result::Result<ColumnValue, String> {
        let cv = value::to_column(self.ty, v).map_err(|m| m.0)?;
        if cv == ColumnValue::Null {
            if self.not_null {
                return Err("expected a value, not null".into());
            }
            return Ok(cv);
        }
        if let Some(n) = v.number() {
            // plain integers against integer bounds without the canonical
            // form (the common case: counts against min = 0)
            let int = plain_integer(n);
            if let Some(min) = &self.min {
                let below = match (int, self.min_int) {
                    (Some(x), Some(b)) => x < b,
                    _ => cmp_number(n, min).is_some_and(|o| o.is_lt()),
                };
                if below {
                    return Err(format!("expected at least {min}"));
                }
            }
            if let Some(max) = &self.max {
                let above = match (int, self.max_int) {
                    (Some(x), Some(b)) => x > b,
                    _ => cmp_number(n, max).is_some_and(|o| o.is_gt()),
                };
                if above {
                    return Err(format!("expected at most {max}"));
                }
            }
        }
        if let Some(s) = v.as_str() {
            self.check_text(s)?;
        }
        Ok(cv)
    }

    /// Validates an object key captured into this column: any key for a
    /// text column (within its `values` and `max_length`); for an integer
    /// column, an integer in its canonical spelling (so it rebuilds the
    /// same key: "007", "+7" and "-0" are refused) within the type's range
    /// and the column's `min` and `max`.
    pub fn check_key(&self, key: &str) -> std::result::Result<ColumnValue, String> {
        if self.ty.is_integer() {
            let canonical = key
                .parse::<i128>()
                .ok()
                .filter(|n| n.to_string() == key)
                .ok_or_else(|| {
                    "expected an integer key in canonical form (no sign +, no leading zero)"
                        .to_string()
                })?;
            return self.check(&serde_json::Value::from(
                i64::try_from(canonical).map_err(|_| self.ty.describe().to_string())?,
            ));
        }
        if self.ty == crate::core::value::ColumnType::Date {
            return self.check(&serde_json::Value::String(key.to_string()));
        }
        self.check_text(key)?;
        Ok(ColumnValue::Text(key.to_string()))
    }

    fn check_text(&self, s: &str) -> std::result::Result<(), String> {
        if let Some(values) = &self.values {
            if !values.iter().any(|a| a == s) {
                return Err(format!("expected one of {}", values.join(", ")));
            }
        }
        if let Some(max) = self.max_length {
            if s.len() > max && s.chars().count() > max {
                return Err(format!("expected at most {max} characters"));
            }
        }
        if let Some(p) = &self.pattern {
            if !p.matches(s) {
                return Err(format!("expected text matching {}", p.text));
            }
        }
        Ok(())
    }
}

/// What a rule does when a value is invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// The user's migration fails and the user stays legacy (default).
    Fail,
    /// The raw value stays in the residual blob and a warning is recorded.
    Keep,
}

/// One step of a rule's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// An exact object key.
    Literal(String),
    /// Any object key, captured into the column with this index.
    Capture(usize),
    /// Every element of an array on the way (`list[{i}].more`), its
    /// position captured into the column with this index.
    Position(usize),
}

/// How the value a rule claims becomes a row.
#[derive(Debug, Clone)]
pub enum RuleKind {
    /// The value goes into one column.
    Scalar {
        /// Column index.
        column: usize,
    },
    /// The value is an object: known keys (or paths of keys into nested
    /// objects) become columns, the other keys (and known keys holding
    /// null) go to a jsonb extra column.
    Object {
        /// (JSON key, column index)
        keys: Vec<(String, usize)>,
        /// (path of keys into nested objects, column index): `keys = {
        /// "geo.lat" = "lat" }`, two keys or more. What such paths take
        /// out of a nested object leaves the rest of it in `extra`; an
        /// object they empty goes, and the rows make it again.
        nested: Vec<(Vec<String>, usize)>,
        /// The jsonb extra column.
        extra: usize,
    },
}

/// A mapping rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Its name, used in errors and warnings.
    pub name: String,
    /// The path as written.
    pub path: String,
    /// Line in the spec.
    pub line: usize,
    /// Index of the target table.
    pub table: usize,
    /// Steps of the path: object keys, and elements of arrays on the way.
    pub segments: Vec<Segment>,
    /// When the path ends in `[{col}]`: the value is an array whose
    /// elements become rows, with their position in this column.
    pub position: Option<usize>,
    /// How the claimed value becomes a row.
    pub kind: RuleKind,
    /// Columns set to a fixed value in every row of this rule.
    pub constants: Vec<(usize, ColumnValue)>,
    /// What to do with an invalid value.
    pub on_invalid: Policy,
}

/// A node of the compiled pattern trie. A literal key beats a wildcard at
/// the same place; there is no backtracking.
#[derive(Debug, Clone, Default)]
pub(crate) struct Node {
    pub literal: BTreeMap<String, Node>,
    pub wildcard: Option<Box<Node>>,
    /// The node of every element when the value here is an array that
    /// paths go through (`list[{i}].more`); such a node has no object keys.
    pub array: Option<Box<Node>>,
    /// With `array`: the position columns (table, column) of the rules
    /// going through it. An array whose last position one of them cannot
    /// hold stays whole in the residual, with one problem.
    pub array_limits: Vec<(usize, usize)>,
    /// The rule claiming the value here (a whole array when it has a
    /// position column).
    pub terminal: Option<usize>,
    /// The rule named when the value here has the wrong shape: the first
    /// (file order) `fail` rule under this node, else the first rule.
    pub first_rule: usize,
    /// Any rule under this node fails on invalid values.
    pub strict: bool,
}

impl Node {
    /// The node a step of a rule's path leads to (the rule made it).
    pub(crate) fn child(&self, seg: &Segment) -> &Node {
        match seg {
            Segment::Literal(k) => &self.literal[k],
            Segment::Capture(_) => self.wildcard.as_deref().expect("a capture has a wildcard"),
            Segment::Position(_) => self.array.as_deref().expect("a position has an array node"),
        }
    }

    /// Whether the values here are arrays: paths go through their elements,
    /// or a rule claims them as arrays (a position ends its path). An
    /// element claimed whole in a residual array is left as an empty
    /// container of this kind, which the rows fill back.
    pub(crate) fn holds_arrays(&self, rules: &[Rule]) -> bool {
        self.array.is_some() || self.terminal.is_some_and(|ri| rules[ri].position.is_some())
    }
}

impl Spec {
    /// The target tables no rule writes rows into (declared, created by
    /// `init`, and left empty by every migration).
    pub fn tables_without_rules(&self) -> Vec<&str> {
        self.tables
            .iter()
            .zip(&self.routes)
            .filter(|(_, routes)| routes.is_empty())
            .map(|(t, _)| t.name.as_str())
            .collect()
    }

    /// The declared columns no rule of their table writes, as (table,
    /// column), tables without any rule left out ([`Self::tables_without_rules`]
    /// names those): `init` creates them and every row leaves them NULL.
    pub fn columns_without_rules(&self) -> Vec<(&str, &str)> {
        let mut out = Vec::new();
        for (ti, (table, routes)) in self.tables.iter().zip(&self.routes).enumerate() {
            if routes.is_empty() {
                continue;
            }
            let mut written = vec![false; table.columns.len()];
            for rule in self.rules.iter().filter(|r| r.table == ti) {
                for seg in &rule.segments {
                    if let Segment::Capture(c) | Segment::Position(c) = seg {
                        written[*c] = true;
                    }
                }
                let kind = match &rule.kind {
                    RuleKind::Scalar { column } => vec![*column],
                    RuleKind::Object {
                        keys,
                        nested,
                        extra,
                    } => keys
                        .iter()
                        .map(|(_, c)| *c)
                        .chain(nested.iter().map(|(_, c)| *c))
                        .chain([*extra])
                        .collect(),
                };
                for c in kind
                    .into_iter()
                    .chain(rule.position)
                    .chain(rule.constants.iter().map(|(c, _)| *c))
                {
                    written[c] = true;
                }
            }
            out.extend(
                table
                    .columns
                    .iter()
                    .zip(&written)
                    .filter(|(_, w)| !**w)
                    .map(|(c, _)| (table.name.as_str(), c.name.as_str())),
            );
        }
        out
    }

    /// The keys inside the object rule `ri` claims that deeper rules claim
    /// instead (they are neither its columns nor its `extra`); empty for
    /// any other rule.
    pub(crate) fn claimed_inside(&self, ri: usize) -> Vec<&str> {
        let mut node = &self.trie;
        for seg in &self.rules[ri].segments {
            node = node.child(seg);
        }
        node.literal.keys().map(String::as_str).collect()
    }

    /// The spec with these fixups (in order) instead of its own: Rust
    /// function pairs ([`crate::Fixup::custom`]) and declarative ones.
    pub fn with_fixups(mut self, fixups: Vec<crate::core::fixup::Fixup>) -> Spec {
        self.fixups = fixups;
        self
    }

    /// The fixups applied before explode, in order.
    pub fn fixups(&self) -> &[crate::core::fixup::Fixup] {
        &self.fixups
    }

    /// The rule rows of `table` belong to: the most specific rule of the
    /// table whose constants all match, `value(ci)` giving a row's value
    /// of column `ci` (None: not known, matches no constant).
    pub(crate) fn route_by<'v>(
        &self,
        table: usize,
        value: impl Fn(usize) -> Option<&'v ColumnValue>,
    ) -> Option<usize> {
        self.routes[table].iter().copied().find(|&ri| {
            self.rules[ri]
                .constants
                .iter()
                .all(|(ci, cv)| value(*ci).is_some_and(|v| v.same(cv)))
        })
    }

    /// Where the blobs are: the source table and its columns.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// The tunables, defaults filled in.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The target tables, in name order (a [`Row`](crate::Row)'s `table`
    /// indexes this).
    pub fn tables(&self) -> &[Table] {
        &self.tables
    }

    /// `"schema"."table"` of a target table, quoted for SQL.
    pub fn qualified_table(&self, table: usize) -> String {
        format!(
            "{}.{}",
            quote(&self.settings.target_schema),
            quote(&self.tables[table].name)
        )
    }

    /// Index of a table by name.
    pub fn table(&self, name: &str) -> Option<usize> {
        self.tables.iter().position(|t| t.name == name)
    }
}
