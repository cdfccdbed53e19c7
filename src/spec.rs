//! The mapping spec (`decant.toml`): where the blobs live and the rules that
//! map JSON paths to rows of normalized tables.
//!
//! Parsing checks everything that can be checked without a database:
//! identifiers, types, columns named by rules, rules that claim the same
//! leaf, rules whose rows could not be told apart. Every error names the
//! rule (or table) and the line.

use crate::error::{Error, Result};
use crate::json::JsonView;
use crate::value::{self, Canonical, ColumnType, ColumnValue};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use toml::Spanned;

/// A parsed, validated mapping spec.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Where the blobs are.
    pub source: Source,
    /// Tunables with defaults.
    pub settings: Settings,
    /// Target tables, in name order.
    pub tables: Vec<Table>,
    /// Rules, in file order.
    pub rules: Vec<Rule>,
    /// The pattern trie the rules compile to.
    pub(crate) trie: Node,
    /// For each table, its rules by decreasing specificity (constants).
    pub(crate) routes: Vec<Vec<usize>>,
}

/// The source table and its columns.
#[derive(Debug, Clone)]
pub struct Source {
    /// Schema of the source table (default `public`).
    pub schema: String,
    /// The source table.
    pub table: String,
    /// Its id column (bigint or integer).
    pub id: String,
    /// Its jsonb blob column.
    pub blob: String,
    /// Its boolean per-user `migrated` flag column (added by `decant init`).
    pub flag: String,
}

/// Tunables; each documents its default.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Schema of the target tables (default: the source schema).
    pub target_schema: String,
    /// A user whose migration failed this many times is skipped (default 5).
    pub max_attempts: i32,
    /// How long a call waits for a user's row lock, in ms (default 2000).
    pub lock_timeout_ms: u64,
    /// Statement timeout of every decant session, in ms (default 60000).
    pub statement_timeout_ms: u64,
}

/// A normalized target table.
#[derive(Debug, Clone)]
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
    min_int: Option<i64>,
    /// `max` when it is an integer, for the fast path.
    max_int: Option<i64>,
    /// Allowed values for text.
    pub values: Option<Vec<String>>,
    /// Maximum length in characters for text.
    pub max_length: Option<usize>,
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
            let int = value::plain_integer(n);
            if let Some(min) = &self.min {
                let below = match (int, self.min_int) {
                    (Some(x), Some(b)) => x < b,
                    _ => value::cmp_number(n, min).is_some_and(|o| o.is_lt()),
                };
                if below {
                    return Err(format!("expected at least {min}"));
                }
            }
            if let Some(max) = &self.max {
                let above = match (int, self.max_int) {
                    (Some(x), Some(b)) => x > b,
                    _ => value::cmp_number(n, max).is_some_and(|o| o.is_gt()),
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

    /// Validates an object key captured into this (text) column.
    pub fn check_key(&self, key: &str) -> std::result::Result<ColumnValue, String> {
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
}

/// How the value a rule claims becomes a row.
#[derive(Debug, Clone)]
pub enum RuleKind {
    /// The value goes into one column.
    Scalar {
        /// Column index.
        column: usize,
    },
    /// The value is an object: known keys become columns, the other keys
    /// (and known keys holding null) go to a jsonb extra column.
    Object {
        /// (JSON key, column index)
        keys: Vec<(String, usize)>,
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
    /// Object steps of the path.
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
    /// The rule claiming the value here (a whole array when it has a
    /// position column).
    pub terminal: Option<usize>,
    /// First rule (file order) under this node, named when the value here
    /// has the wrong shape.
    pub first_rule: usize,
    /// Any rule under this node fails on invalid values.
    pub strict: bool,
}

// ----- raw TOML shapes -----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    source: Spanned<RawSource>,
    #[serde(default)]
    settings: RawSettings,
    #[serde(default)]
    tables: BTreeMap<String, RawTable>,
    #[serde(default)]
    rules: Vec<Spanned<RawRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    #[serde(default = "default_schema")]
    schema: String,
    table: String,
    #[serde(default = "default_id")]
    id: String,
    #[serde(default = "default_blob")]
    blob: String,
    #[serde(default = "default_flag")]
    flag: String,
}

fn default_schema() -> String {
    "public".into()
}
fn default_id() -> String {
    "id".into()
}
fn default_blob() -> String {
    "data".into()
}
fn default_flag() -> String {
    "migrated".into()
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    target_schema: Option<String>,
    max_attempts: Option<i32>,
    lock_timeout_ms: Option<u64>,
    statement_timeout_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    #[serde(default)]
    user_column: Option<String>,
    columns: BTreeMap<String, Spanned<RawColumn>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawColumn {
    Type(String),
    Full(RawColumnFull),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawColumnFull {
    #[serde(rename = "type")]
    ty: String,
    #[serde(default)]
    not_null: bool,
    min: Option<toml::Value>,
    max: Option<toml::Value>,
    values: Option<Vec<String>>,
    max_length: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: String,
    path: String,
    table: String,
    value: Option<String>,
    keys: Option<BTreeMap<String, String>>,
    extra: Option<String>,
    #[serde(default)]
    constants: BTreeMap<String, toml::Value>,
    #[serde(default)]
    on_invalid: Option<String>,
}

/// Reads and validates a spec file.
pub fn load(path: &Path) -> Result<Spec> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_named(&text, path)
}

impl Spec {
    /// Parses and validates spec text (errors name the file `<inline>`).
    pub fn parse(text: &str) -> Result<Spec> {
        parse_named(text, Path::new("<inline>"))
    }

    /// Index of a table by name.
    pub fn table(&self, name: &str) -> Option<usize> {
        self.tables.iter().position(|t| t.name == name)
    }
}

struct Ctx<'a> {
    text: &'a str,
    file: PathBuf,
}

impl Ctx<'_> {
    fn line(&self, offset: usize) -> usize {
        let offset = offset.min(self.text.len());
        self.text[..offset].bytes().filter(|&b| b == b'\n').count() + 1
    }

    fn err(&self, offset: usize, message: impl Into<String>) -> Error {
        Error::Spec {
            file: self.file.clone(),
            line: self.line(offset),
            message: message.into(),
        }
    }
}

fn parse_named(text: &str, file: &Path) -> Result<Spec> {
    let cx = Ctx {
        text,
        file: file.to_path_buf(),
    };
    let raw: RawSpec = toml::from_str(text).map_err(|e| {
        let offset = e.span().map(|s| s.start).unwrap_or(0);
        cx.err(offset, format!("does not parse: {}", e.message()))
    })?;

    let src_at = raw.source.span().start;
    let src = raw.source.into_inner();
    for (what, name) in [
        ("source.schema", &src.schema),
        ("source.table", &src.table),
        ("source.id", &src.id),
        ("source.blob", &src.blob),
        ("source.flag", &src.flag),
    ] {
        check_ident(name).map_err(|m| cx.err(src_at, format!("{what}: {m}")))?;
    }
    let source = Source {
        schema: src.schema,
        table: src.table,
        id: src.id,
        blob: src.blob,
        flag: src.flag,
    };
    let settings = Settings {
        target_schema: raw
            .settings
            .target_schema
            .unwrap_or_else(|| source.schema.clone()),
        max_attempts: raw.settings.max_attempts.unwrap_or(5),
        lock_timeout_ms: raw.settings.lock_timeout_ms.unwrap_or(2000),
        statement_timeout_ms: raw.settings.statement_timeout_ms.unwrap_or(60_000),
    };
    check_ident(&settings.target_schema)
        .map_err(|m| cx.err(0, format!("settings.target_schema: {m}")))?;

    let mut tables = Vec::new();
    for (name, t) in &raw.tables {
        // a table's place is that of its first column (toml cannot span a
        // table declared through a dotted header)
        let at = t
            .columns
            .values()
            .next()
            .map(|c| c.span().start)
            .unwrap_or(0);
        check_ident(name).map_err(|m| cx.err(at, format!("table `{name}`: {m}")))?;
        let user_column = t.user_column.clone().unwrap_or_else(|| "user_id".into());
        check_ident(&user_column)
            .map_err(|m| cx.err(at, format!("table `{name}`: user_column: {m}")))?;
        let mut columns = Vec::new();
        for (cname, raw_col) in &t.columns {
            let cat = raw_col.span().start;
            let err = |m: String| cx.err(cat, format!("table `{name}` column `{cname}`: {m}"));
            check_ident(cname).map_err(&err)?;
            if *cname == user_column {
                return Err(err(
                    "is the user id column; it is added by decant, do not declare it".into(),
                ));
            }
            columns.push(column(cname, raw_col.get_ref()).map_err(&err)?);
        }
        if columns.is_empty() {
            return Err(cx.err(at, format!("table `{name}` has no columns")));
        }
        tables.push(Table {
            name: name.clone(),
            user_column,
            columns,
            key: Vec::new(),
            line: cx.line(at),
        });
    }

    let mut rules = Vec::new();
    let mut names = BTreeSet::new();
    for raw_rule in &raw.rules {
        let at = raw_rule.span().start;
        let r = raw_rule.get_ref();
        let err = |m: String| cx.err(at, format!("rule `{}`: {m}", r.name));
        if !names.insert(r.name.clone()) {
            return Err(err("another rule has the same name".into()));
        }
        let table_idx = tables
            .iter()
            .position(|t| t.name == r.table)
            .ok_or_else(|| {
                err(format!(
                    "table `{}` is not declared under [tables]",
                    r.table
                ))
            })?;
        let table = &tables[table_idx];
        let col = |c: &str, role: &str| {
            table.column(c).ok_or_else(|| {
                err(format!(
                    "{role} `{c}` is not a column of table `{}`",
                    table.name
                ))
            })
        };
        let (steps, position) = parse_path(&r.path).map_err(|m| err(format!("path: {m}")))?;
        let mut segments = Vec::new();
        let mut used = BTreeSet::new();
        for step in steps {
            segments.push(match step {
                Step::Literal(k) => Segment::Literal(k),
                Step::Capture(c) => {
                    let i = col(&c, "capture")?;
                    if table.columns[i].ty != ColumnType::Text {
                        return Err(err(format!("capture column `{c}` must be of type text")));
                    }
                    if !used.insert(i) {
                        return Err(err(format!("column `{c}` is captured twice")));
                    }
                    Segment::Capture(i)
                }
            });
        }
        let position = match position {
            Some(c) => {
                let i = col(&c, "position")?;
                if !matches!(
                    table.columns[i].ty,
                    ColumnType::Int2 | ColumnType::Int4 | ColumnType::Int8
                ) {
                    return Err(err(format!(
                        "position column `{c}` must be an integer type"
                    )));
                }
                if !used.insert(i) {
                    return Err(err(format!("column `{c}` is used twice")));
                }
                Some(i)
            }
            None => None,
        };
        let kind = match (&r.value, &r.keys) {
            (Some(v), None) => {
                if r.extra.is_some() {
                    return Err(err("`extra` goes with `keys`, not with `value`".into()));
                }
                let i = col(v, "value")?;
                if !used.insert(i) {
                    return Err(err(format!("column `{v}` is used twice")));
                }
                RuleKind::Scalar { column: i }
            }
            (None, Some(keys)) => {
                let extra_name = r.extra.clone().unwrap_or_else(|| "extra".into());
                let extra = col(&extra_name, "extra")?;
                if table.columns[extra].ty != ColumnType::Jsonb {
                    return Err(err(format!("extra column `{extra_name}` must be jsonb")));
                }
                if !used.insert(extra) {
                    return Err(err(format!("column `{extra_name}` is used twice")));
                }
                let mut ks = Vec::new();
                for (k, c) in keys {
                    let i = col(c, "key column")?;
                    if !used.insert(i) {
                        return Err(err(format!("column `{c}` is used twice")));
                    }
                    ks.push((k.clone(), i));
                }
                RuleKind::Object { keys: ks, extra }
            }
            (Some(_), Some(_)) => {
                return Err(err(
                    "give either `value` (a scalar) or `keys` (an object), not both".into(),
                ));
            }
            (None, None) => {
                return Err(err(
                    "give `value` (the column of a scalar) or `keys` (object keys to columns)"
                        .into(),
                ));
            }
        };
        let mut constants = Vec::new();
        for (c, tv) in &r.constants {
            let i = col(c, "constant")?;
            if !used.insert(i) {
                return Err(err(format!("column `{c}` is both written and constant")));
            }
            let jv = serde_json::to_value(tv).map_err(|e| err(format!("constant `{c}`: {e}")))?;
            let cv = table.columns[i]
                .check(&jv)
                .map_err(|m| err(format!("constant `{c}` = {jv}: {m}")))?;
            if cv == ColumnValue::Null {
                return Err(err(format!("constant `{c}` must not be null")));
            }
            constants.push((i, cv));
        }
        let on_invalid = match r.on_invalid.as_deref() {
            None | Some("fail") => Policy::Fail,
            Some("keep") => Policy::Keep,
            Some(other) => {
                return Err(err(format!(
                    "on_invalid = \"{other}\": expected \"fail\" or \"keep\""
                )));
            }
        };
        rules.push(Rule {
            name: r.name.clone(),
            path: r.path.clone(),
            line: cx.line(at),
            table: table_idx,
            segments,
            position,
            kind,
            constants,
            on_invalid,
        });
    }
    if rules.is_empty() {
        return Err(cx.err(0, "no [[rules]]: the spec maps nothing"));
    }

    let rule_err = |r: &Rule, m: String| Error::Spec {
        file: cx.file.clone(),
        line: r.line,
        message: format!("rule `{}`: {m}", r.name),
    };

    // Keys: every column that identifies a row; every rule must set them all.
    for (ti, table) in tables.iter_mut().enumerate() {
        let mut key = BTreeSet::new();
        for r in rules.iter().filter(|r| r.table == ti) {
            key.extend(identity_columns(r));
        }
        for r in rules.iter().filter(|r| r.table == ti) {
            let mine: BTreeSet<usize> = identity_columns(r).collect();
            if let Some(missing) = key.iter().find(|k| !mine.contains(k)) {
                return Err(rule_err(
                    r,
                    format!(
                        "does not set key column `{}` of table `{}` that another rule on it sets; \
                         give it a constant",
                        table.columns[*missing].name, table.name
                    ),
                ));
            }
        }
        table.key = key.into_iter().collect();
        for c in &table.columns {
            if c.not_null && !key_or_written_by_all(&rules, ti, table, c) {
                return Err(Error::Spec {
                    file: cx.file.clone(),
                    line: table.line,
                    message: format!(
                        "table `{}` column `{}` is not_null but a rule does not always write it",
                        table.name, c.name
                    ),
                });
            }
        }
    }

    let trie = build_trie(&rules).map_err(|(i, m)| rule_err(&rules[i], m))?;

    // Rows of rules sharing a table must be routable back to their rule.
    let mut routes = vec![Vec::new(); tables.len()];
    for (ti, route) in routes.iter_mut().enumerate() {
        let mut on: Vec<usize> = (0..rules.len()).filter(|&i| rules[i].table == ti).collect();
        for (x, &a) in on.iter().enumerate() {
            for &b in &on[x + 1..] {
                if !distinguishable(&rules[a], &rules[b]) {
                    return Err(rule_err(
                        &rules[b],
                        format!(
                            "its rows in table `{}` could not be told apart from those of rule `{}`; \
                             give both a constant column with different values",
                            tables[ti].name, rules[a].name
                        ),
                    ));
                }
            }
        }
        on.sort_by_key(|&i| std::cmp::Reverse(rules[i].constants.len()));
        *route = on;
    }

    Ok(Spec {
        source,
        settings,
        tables,
        rules,
        trie,
        routes,
    })
}

fn identity_columns(r: &Rule) -> impl Iterator<Item = usize> + '_ {
    r.segments
        .iter()
        .filter_map(|s| match s {
            Segment::Capture(c) => Some(*c),
            Segment::Literal(_) => None,
        })
        .chain(r.position)
        .chain(r.constants.iter().map(|(c, _)| *c))
}

fn key_or_written_by_all(rules: &[Rule], ti: usize, table: &Table, c: &Column) -> bool {
    let ci = table.column(&c.name).expect("own column");
    if table.key.contains(&ci) {
        return true;
    }
    // an object key column may be absent from the object: only a scalar
    // value column is always written
    rules
        .iter()
        .filter(|r| r.table == ti)
        .all(|r| matches!(r.kind, RuleKind::Scalar { column } if column == ci))
}

fn distinguishable(a: &Rule, b: &Rule) -> bool {
    let ca: BTreeMap<usize, &ColumnValue> = a.constants.iter().map(|(c, v)| (*c, v)).collect();
    let cb: BTreeMap<usize, &ColumnValue> = b.constants.iter().map(|(c, v)| (*c, v)).collect();
    let conflict = ca
        .iter()
        .any(|(c, v)| cb.get(c).is_some_and(|w| w.key_text() != v.key_text()));
    if conflict {
        return true;
    }
    // one strictly more specific than the other: rows matching the more
    // specific rule's constants route to it, and explode refuses a row of the
    // general rule that would be mistaken for it
    let a_in_b = ca.keys().all(|c| cb.contains_key(c));
    let b_in_a = cb.keys().all(|c| ca.contains_key(c));
    (a_in_b || b_in_a) && ca.len() != cb.len()
}

fn build_trie(rules: &[Rule]) -> std::result::Result<Node, (usize, String)> {
    let mut root = Node {
        first_rule: usize::MAX,
        ..Node::default()
    };
    for (ri, r) in rules.iter().enumerate() {
        let mut node = &mut root;
        let visit = |n: &mut Node| {
            n.first_rule = n.first_rule.min(ri);
            n.strict |= r.on_invalid == Policy::Fail;
        };
        visit(node);
        for (depth, seg) in r.segments.iter().enumerate() {
            if let Some(other) = node.terminal {
                return Err((
                    ri,
                    format!(
                        "claims values inside `{}`, which rule `{}` claims whole",
                        show_steps(&r.segments[..depth]),
                        rules[other].name
                    ),
                ));
            }
            node = match seg {
                Segment::Literal(k) => node.literal.entry(k.clone()).or_insert_with(|| Node {
                    first_rule: usize::MAX,
                    ..Node::default()
                }),
                Segment::Capture(_) => node.wildcard.get_or_insert_with(|| {
                    Box::new(Node {
                        first_rule: usize::MAX,
                        ..Node::default()
                    })
                }),
            };
            visit(node);
        }
        if let Some(other) = node.terminal {
            return Err((
                ri,
                format!(
                    "claims the same values as rule `{}` (`{}`)",
                    rules[other].name, rules[other].path
                ),
            ));
        }
        if !node.literal.is_empty() || node.wildcard.is_some() {
            return Err((
                ri,
                format!(
                    "claims `{}` whole, but another rule claims values inside it",
                    r.path
                ),
            ));
        }
        node.terminal = Some(ri);
    }
    Ok(root)
}

fn show_steps(segs: &[Segment]) -> String {
    segs.iter()
        .map(|s| match s {
            Segment::Literal(k) => k.clone(),
            Segment::Capture(_) => "{*}".into(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

fn column(name: &str, raw: &RawColumn) -> std::result::Result<Column, String> {
    let full = match raw {
        RawColumn::Type(t) => RawColumnFull {
            ty: t.clone(),
            not_null: false,
            min: None,
            max: None,
            values: None,
            max_length: None,
        },
        RawColumn::Full(f) => RawColumnFull {
            ty: f.ty.clone(),
            not_null: f.not_null,
            min: f.min.clone(),
            max: f.max.clone(),
            values: f.values.clone(),
            max_length: f.max_length,
        },
    };
    let ty = ColumnType::parse(&full.ty).ok_or_else(|| {
        format!(
            "unknown type `{}`; known types: {}",
            full.ty,
            ColumnType::NAMES
        )
    })?;
    let bound =
        |v: &Option<toml::Value>, what: &str| -> std::result::Result<Option<Canonical>, String> {
            match v {
                None => Ok(None),
                Some(toml::Value::Integer(i)) => Ok(value::canonical_number(&i.to_string())),
                Some(toml::Value::Float(f)) => Ok(value::canonical_number(&f.to_string())),
                Some(other) => Err(format!("{what} must be a number, not {other}")),
            }
        };
    let min = bound(&full.min, "min")?;
    let max = bound(&full.max, "max")?;
    let numeric = matches!(
        ty,
        ColumnType::Int2
            | ColumnType::Int4
            | ColumnType::Int8
            | ColumnType::Float8
            | ColumnType::Numeric
            | ColumnType::TimestampMs
    );
    if (min.is_some() || max.is_some()) && !numeric {
        return Err(format!("min/max apply to numbers, not to {}", full.ty));
    }
    if (full.values.is_some() || full.max_length.is_some()) && ty != ColumnType::Text {
        return Err(format!(
            "values/max_length apply to text, not to {}",
            full.ty
        ));
    }
    let as_int = |b: &Option<Canonical>| {
        b.as_ref()
            .and_then(|c| value::plain_integer(&c.to_string()))
    };
    Ok(Column {
        name: name.to_string(),
        ty,
        not_null: full.not_null,
        min_int: as_int(&min),
        max_int: as_int(&max),
        min,
        max,
        values: full.values,
        max_length: full.max_length,
    })
}

/// Checks a SQL identifier from the spec: letters, digits, `_`, at most 63
/// bytes, not starting with a digit. decant always quotes it as well.
pub fn check_ident(name: &str) -> std::result::Result<(), String> {
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
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[derive(Debug, PartialEq)]
enum Step {
    Literal(String),
    Capture(String),
}

/// Parses `a.b.{x}."dotted.key".list[{pos}]`.
fn parse_path(path: &str) -> std::result::Result<(Vec<Step>, Option<String>), String> {
    let mut steps = Vec::new();
    let mut position = None;
    let mut chars = path.chars().peekable();
    if path.is_empty() {
        return Err("is empty".into());
    }
    loop {
        if position.is_some() {
            return Err("`[{column}]` must end the path".into());
        }
        match chars.peek() {
            None => return Err("ends with `.`".into()),
            Some('{') => {
                chars.next();
                let name: String = chars.by_ref().take_while(|&c| c != '}').collect();
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
                if key.is_empty() {
                    return Err("empty key".into());
                }
                steps.push(Step::Literal(key));
            }
        }
        if chars.peek() == Some(&'[') {
            chars.next();
            let rest: String = chars.by_ref().take_while(|&c| c != ']').collect();
            let name = rest
                .strip_prefix('{')
                .and_then(|r| r.strip_suffix('}'))
                .ok_or("array position must be written `[{column}]`")?;
            check_ident(name)?;
            position = Some(name.to_string());
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
    Ok((steps, position))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GAME: &str = include_str!("../fixtures/game/decant.toml");

    fn spec_err(text: &str) -> (usize, String) {
        match Spec::parse(text) {
            Err(Error::Spec { line, message, .. }) => (line, message),
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("spec accepted:\n{text}"),
        }
    }

    #[test]
    fn the_game_spec_parses() {
        let spec = Spec::parse(GAME).unwrap();
        assert_eq!(spec.source.table, "user");
        let stat = &spec.tables[spec.table("user_statistic").unwrap()];
        let key: Vec<&str> = stat
            .key
            .iter()
            .map(|&i| stat.columns[i].name.as_str())
            .collect();
        assert_eq!(key, ["mode", "statistic_id"]);
        assert!(spec.rules.len() >= 7);
    }

    #[test]
    fn paths_parse() {
        assert_eq!(
            parse_path(r#"a.{x}."b.c[0]".list[{pos}]"#).unwrap(),
            (
                vec![
                    Step::Literal("a".into()),
                    Step::Capture("x".into()),
                    Step::Literal("b.c[0]".into()),
                    Step::Literal("list".into())
                ],
                Some("pos".into())
            )
        );
        assert!(parse_path("a..b").is_err());
        assert!(parse_path("a[{p}].b").is_err());
        assert!(parse_path("a.{1x}").is_err());
        assert!(parse_path("").is_err());
    }

    const BASE: &str = r#"
[source]
table = "user"

[tables.t.columns]
k = "text"
v = "int8"
"#;

    #[test]
    fn a_spec_that_does_not_parse_names_the_line() {
        let (line, msg) = spec_err("[source]\ntable = \"user\"\n\n[[rules]\n");
        assert_eq!(line, 4, "{msg}");
        assert!(msg.contains("does not parse"), "{msg}");
    }

    #[test]
    fn two_rules_claiming_one_leaf_are_refused() {
        let text = format!(
            "{BASE}\n[[rules]]\nname = \"one\"\npath = \"s.{{k}}\"\ntable = \"t\"\nvalue = \"v\"\nconstants = {{}}\n\n\
             [[rules]]\nname = \"two\"\npath = \"s.{{k}}\"\ntable = \"t\"\nvalue = \"v\"\n"
        );
        let (line, msg) = spec_err(&text);
        assert!(msg.contains("rule `two`"), "{msg}");
        assert_eq!(line, 16, "{msg}");
    }

    #[test]
    fn a_rule_inside_a_claimed_value_is_refused() {
        let text = format!(
            "{BASE}\n[tables.u.columns]\nv = \"jsonb\"\n\n[[rules]]\nname = \"whole\"\npath = \"s\"\ntable = \"u\"\nvalue = \"v\"\n\n\
             [[rules]]\nname = \"inner\"\npath = \"s.{{k}}\"\ntable = \"t\"\nvalue = \"v\"\n"
        );
        let (_, msg) = spec_err(&text);
        assert!(
            msg.contains("rule `inner`") && msg.contains("whole"),
            "{msg}"
        );
    }

    #[test]
    fn unknown_type_is_refused_with_its_line() {
        let text =
            "[source]\ntable = \"user\"\n\n[tables.t.columns]\nk = \"text\"\nv = \"integer64\"\n";
        let (line, msg) = spec_err(text);
        assert_eq!(line, 6, "{msg}");
        assert!(msg.contains("unknown type `integer64`"), "{msg}");
    }

    #[test]
    fn bad_identifiers_are_refused() {
        let (_, msg) = spec_err("[source]\ntable = \"user; drop table x\"\n");
        assert!(msg.contains("not a valid name"), "{msg}");
        let text = format!(
            "{BASE}\n[[rules]]\nname = \"r\"\npath = \"s.{{k-1}}\"\ntable = \"t\"\nvalue = \"v\"\n"
        );
        let (line, msg) = spec_err(&text);
        assert!(
            msg.contains("rule `r`") && msg.contains("not a valid name"),
            "{msg}"
        );
        assert_eq!(line, 9);
    }

    #[test]
    fn missing_columns_and_tables_are_named() {
        let text = format!(
            "{BASE}\n[[rules]]\nname = \"r\"\npath = \"s.{{k}}\"\ntable = \"t\"\nvalue = \"nope\"\n"
        );
        let (_, msg) = spec_err(&text);
        assert!(msg.contains("`nope` is not a column of table `t`"), "{msg}");
        let text = format!(
            "{BASE}\n[[rules]]\nname = \"r\"\npath = \"s.{{k}}\"\ntable = \"missing\"\nvalue = \"v\"\n"
        );
        let (_, msg) = spec_err(&text);
        assert!(msg.contains("table `missing` is not declared"), "{msg}");
    }

    #[test]
    fn rules_sharing_a_table_need_telling_apart() {
        let text = format!(
            "{BASE}\n[[rules]]\nname = \"a\"\npath = \"s.{{k}}\"\ntable = \"t\"\nvalue = \"v\"\n\n\
             [[rules]]\nname = \"b\"\npath = \"old.{{k}}\"\ntable = \"t\"\nvalue = \"v\"\n"
        );
        let (_, msg) = spec_err(&text);
        assert!(msg.contains("could not be told apart"), "{msg}");
        // a constant makes them distinguishable
        let text = format!(
            "{BASE}\n[[rules]]\nname = \"a\"\npath = \"s.{{k}}\"\ntable = \"t\"\nvalue = \"v\"\n\n\
             [[rules]]\nname = \"b\"\npath = \"xp\"\ntable = \"t\"\nvalue = \"v\"\nconstants = {{ k = \"xp\" }}\n"
        );
        Spec::parse(&text).unwrap();
    }

    #[test]
    fn literal_beats_wildcard_without_conflict() {
        let text = format!(
            "{BASE}\n[tables.sel.columns]\npos = \"int4\"\nv = \"text\"\n\n\
             [[rules]]\nname = \"a\"\npath = \"s.{{k}}\"\ntable = \"t\"\nvalue = \"v\"\n\n\
             [[rules]]\nname = \"b\"\npath = \"s.selected[{{pos}}]\"\ntable = \"sel\"\nvalue = \"v\"\n"
        );
        Spec::parse(&text).unwrap();
    }
}
