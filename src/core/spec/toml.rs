//! The TOML layer of the spec: the raw file shapes and their translation
//! into the validated model, with every error pointing at its line.

use super::checks::{complete, resolve_ranked};
use super::ident::{check_existing_name, check_ident, cut_name};
use super::model::*;
use super::path::{Step, parse_path};
use crate::core::id::IdType;
use crate::core::json;
use crate::core::number::{Canonical, canonical_number, plain_integer};
use crate::core::value::{ColumnType, ColumnValue};
use ::toml::Spanned;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

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
    #[serde(default)]
    ranked: Vec<Spanned<RawRanked>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRanked {
    name: String,
    table: String,
    value: String,
    #[serde(default, rename = "where")]
    filter: BTreeMap<String, ::toml::Value>,
    #[serde(default)]
    index_fail_test: bool,
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
    #[serde(default)]
    id_type: Option<String>,
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
    views_schema: Option<String>,
    max_attempts: Option<i32>,
    lock_timeout_ms: Option<u64>,
    statement_timeout_ms: Option<u64>,
    ddl_retry_s: Option<u64>,
    foreign_keys: Option<bool>,
    max_depth: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    #[serde(default)]
    user_column: Option<String>,
    columns: BTreeMap<String, Spanned<RawColumn>>,
    #[serde(default)]
    indexes: Vec<Vec<String>>,
}

enum RawColumn {
    Type(String),
    Full(RawColumnFull),
}

// by hand rather than `untagged`, so that an unknown option or a wrong
// value is named ("unknown field `colour`, expected one of ...") instead
// of "did not match any variant"
impl<'de> Deserialize<'de> for RawColumn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        match ::toml::Value::deserialize(d)? {
            ::toml::Value::String(s) => Ok(RawColumn::Type(s)),
            v @ ::toml::Value::Table(_) => RawColumnFull::deserialize(v)
                .map(RawColumn::Full)
                .map_err(|e| D::Error::custom(e.message())),
            other => Err(D::Error::custom(format!(
                "a column is a type name (\"int4\") or a table ({{ type = \"int4\", min = 0 }}), not a {}",
                other.type_str()
            ))),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawColumnFull {
    #[serde(rename = "type")]
    ty: String,
    #[serde(default)]
    not_null: bool,
    min: Option<::toml::Value>,
    max: Option<::toml::Value>,
    values: Option<Vec<String>>,
    max_length: Option<usize>,
    #[serde(default)]
    pattern: Option<String>,
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
    constants: BTreeMap<String, ::toml::Value>,
    #[serde(default)]
    on_invalid: Option<String>,
}

/// The text being parsed, to turn a byte offset into a line of an error.
struct Ctx<'a> {
    text: &'a str,
    file: PathBuf,
}

impl Ctx<'_> {
    fn line(&self, offset: usize) -> usize {
        let offset = offset.min(self.text.len());
        self.text[..offset].bytes().filter(|&b| b == b'\n').count() + 1
    }

    /// Where `key` is set under the header `[section]` (the header when
    /// not found, 0 without one): toml gives no place for a table's
    /// fields once read into a struct.
    fn key_at(&self, section: &str, key: &str) -> usize {
        let header = format!("[{section}]");
        let mut offset = 0;
        let mut inside = false;
        let mut header_at = 0;
        for line in self.text.split_inclusive('\n') {
            let t = line.trim_start();
            if t.starts_with('[') {
                inside = t.trim_end().starts_with(&header);
                if inside {
                    header_at = offset;
                }
            } else if inside
                && t.strip_prefix(key)
                    .is_some_and(|rest| rest.trim_start().starts_with('='))
            {
                return offset + (line.len() - t.len());
            }
            offset += line.len();
        }
        header_at
    }

    fn err(&self, offset: usize, message: impl Into<String>) -> SpecError {
        SpecError {
            file: self.file.clone(),
            line: self.line(offset),
            message: message.into(),
        }
    }
}

/// Parses spec text: the file's shapes, each entry translated, then the
/// checks across entries (`checks::complete`).
pub(super) fn parse_named(text: &str, file: &Path) -> Result<Spec> {
    let cx = Ctx {
        text,
        file: file.to_path_buf(),
    };
    let raw: RawSpec = ::toml::from_str(text).map_err(|e| {
        let offset = e.span().map(|s| s.start).unwrap_or(0);
        cx.err(offset, format!("does not parse: {}", e.message()))
    })?;
    // the entries are read independently, so one error does not hide the
    // next: every source, table and rule problem is reported at once
    let mut errors = Vec::new();
    let source_settings = source_and_settings(&cx, &raw).map_err(|e| errors.push(e));
    let mut tables = Vec::new();
    let mut broken_tables = BTreeSet::new();
    for (name, t) in &raw.tables {
        match table(&cx, name, t) {
            Ok(t) => tables.push(t),
            Err(e) => {
                broken_tables.insert(name.as_str());
                errors.push(e);
            }
        }
    }
    // names are unique per kind (rules, ranked statistics)
    let unique = |names: &mut BTreeSet<String>, name: &str, at: usize, kind: &str| {
        if names.insert(name.to_string()) {
            Ok(())
        } else {
            Err(cx.err(
                at,
                format!("{kind} `{name}`: another {kind} has the same name"),
            ))
        }
    };
    let mut rules = Vec::new();
    let mut names = BTreeSet::new();
    for raw_rule in &raw.rules {
        // a rule into a table refused above would only add "not declared"
        if broken_tables.contains(raw_rule.get_ref().table.as_str()) {
            continue;
        }
        match rule(&cx, raw_rule, &tables)
            .and_then(|r| unique(&mut names, &r.name, raw_rule.span().start, "rule").map(|()| r))
        {
            Ok(r) => rules.push(r),
            Err(e) => errors.push(e),
        }
    }
    // in file order, the spec-wide problem last
    errors.sort_by_key(|e| e.line);
    if raw.rules.is_empty() {
        errors.push(cx.err(0, "no [[rules]]: the spec maps nothing"));
    }
    let (source, settings) = match source_settings {
        Ok(ss) if errors.is_empty() => ss,
        _ => return Err(merged(errors)),
    };
    // the relations the spec names or makes, as PostgreSQL keeps their
    // names (cut to 63 bytes): two that meet would be one object
    let mut relations: BTreeMap<(String, String), String> = BTreeMap::new();
    relations.insert(
        (source.schema.clone(), source.table.clone()),
        "the source table".into(),
    );
    let mut meet = |schema: &str, name: &str, what: String, at: usize| -> Result<()> {
        let key = (schema.to_string(), cut_name(name).to_string());
        match relations.get(&key) {
            Some(other) => Err(cx.err(
                at,
                format!(
                    "{what} would be named `{}`, as {other} is (PostgreSQL cuts names to 63 \
                     bytes): rename one, or set `[settings] views_schema` or `target_schema`",
                    key.1
                ),
            )),
            None => {
                relations.insert(key, what);
                Ok(())
            }
        }
    };
    let table_at = |name: &str| cx.text.find(&format!("[tables.{name}")).unwrap_or(0);
    for t in &tables {
        meet(
            &settings.target_schema,
            &t.name,
            format!("table `{}`", t.name),
            table_at(&t.name),
        )?;
    }
    for t in &tables {
        meet(
            &settings.views_schema,
            &format!("{}_all", t.name),
            format!("table `{}`'s cross-user view", t.name),
            table_at(&t.name),
        )?;
    }
    let mut spec = complete(&cx.file, source, settings, tables, rules)?;
    let mut names = BTreeSet::new();
    let mut tops = BTreeSet::new();
    for raw_ranked in &raw.ranked {
        let ranked = ranked(&cx, raw_ranked, &spec)?;
        unique(
            &mut names,
            &ranked.name,
            raw_ranked.span().start,
            "ranked statistic",
        )?;
        let top = cut_name(&format!("{}_top", ranked.name)).to_string();
        if !tops.insert(top.clone()) {
            return Err(cx.err(
                raw_ranked.span().start,
                format!(
                    "ranked statistic `{}`: its top-N function would be named `{top}`, as another's \
                     is (PostgreSQL cuts names to 63 bytes): rename one",
                    ranked.name
                ),
            ));
        }
        spec.ranked.push(ranked);
    }
    spec.text = std::sync::Arc::from(text);
    Ok(spec)
}

/// One `[[ranked]]` entry, resolved to its rule and blob path.
fn ranked(cx: &Ctx<'_>, raw: &Spanned<RawRanked>, spec: &Spec) -> Result<Ranked> {
    let at = raw.span().start;
    let r = raw.get_ref();
    let err = |m: String| cx.err(at, format!("ranked `{}`: {m}", r.name));
    check_ident(&r.name).map_err(|m| err(format!("name: {m}")))?;
    let table = spec.table(&r.table).ok_or_else(|| {
        err(format!(
            "table `{}` is not declared under [tables]",
            r.table
        ))
    })?;
    let t = &spec.tables[table];
    let col = |c: &str| {
        t.column(c)
            .ok_or_else(|| err(format!("`{c}` is not a column of table `{}`", t.name)))
    };
    let value = col(&r.value)?;
    if !t.columns[value].ty.is_number() {
        return Err(err(format!("`{}` is not a number column", r.value)));
    }
    let mut filter = Vec::new();
    for (c, tv) in &r.filter {
        let ci = col(c)?;
        let jv = serde_json::to_value(tv).map_err(|e| err(format!("where `{c}`: {e}")))?;
        let cv = t.columns[ci]
            .check(&jv)
            .map_err(|m| err(format!("where `{c}` = {jv}: {m}")))?;
        filter.push((ci, cv));
    }
    let (path, key) = resolve_ranked(spec, table, value, &filter).map_err(err)?;
    Ok(Ranked {
        name: r.name.clone(),
        table,
        value,
        filter,
        path,
        key,
        index_fail_test: r.index_fail_test,
    })
}

/// `[source]` and `[settings]`, defaults filled in.
fn source_and_settings(cx: &Ctx<'_>, raw: &RawSpec) -> Result<(Source, Settings)> {
    let src = raw.source.get_ref();
    for (what, name) in [
        ("source.schema", &src.schema),
        ("source.table", &src.table),
        ("source.id", &src.id),
        ("source.blob", &src.blob),
        ("source.flag", &src.flag),
    ] {
        let key = what.trim_start_matches("source.");
        check_existing_name(name)
            .map_err(|m| cx.err(cx.key_at("source", key), format!("{what}: {m}")))?;
        // a schema-qualified name where a bare one goes (a table whose
        // own name holds a dot is not taken: rare, and this mistake is not)
        if let Some((schema, table)) = name.split_once('.').filter(|_| key == "table") {
            return Err(cx.err(
                cx.key_at("source", key),
                format!(
                    "{what}: `{name}` is not a table name: for a table in another schema \
                     write schema = \"{schema}\" and table = \"{table}\""
                ),
            ));
        }
    }
    // one column cannot be two of them: the flag over the blob would be
    // read as a boolean, the id as the blob, each failing late and darkly
    for (key, name, other_key, other) in [
        ("blob", &src.blob, "id", &src.id),
        ("flag", &src.flag, "id", &src.id),
        ("flag", &src.flag, "blob", &src.blob),
    ] {
        if name == other {
            return Err(cx.err(
                cx.key_at("source", key),
                format!(
                    "source.{key}: `{name}` is also source.{other_key}: the id, the blob and \
                     the flag are three different columns (the flag is a boolean column \
                     `decant init` adds, named e.g. \"migrated\")"
                ),
            ));
        }
    }
    let id_type = match &src.id_type {
        None => IdType::default(),
        Some(name) => IdType::parse(name).ok_or_else(|| {
            cx.err(
                cx.key_at("source", "id_type"),
                format!(
                    "source.id_type: unknown id type \"{name}\"; one of {}",
                    IdType::NAMES
                ),
            )
        })?,
    };
    let source = Source {
        schema: src.schema.clone(),
        table: src.table.clone(),
        id: src.id.clone(),
        blob: src.blob.clone(),
        flag: src.flag.clone(),
        id_type,
    };
    let target_schema = raw
        .settings
        .target_schema
        .clone()
        .unwrap_or_else(|| source.schema.clone());
    let settings = Settings {
        views_schema: raw
            .settings
            .views_schema
            .clone()
            .unwrap_or_else(|| target_schema.clone()),
        target_schema,
        max_attempts: raw.settings.max_attempts.unwrap_or(5),
        lock_timeout_ms: raw.settings.lock_timeout_ms.unwrap_or(2000),
        statement_timeout_ms: raw.settings.statement_timeout_ms.unwrap_or(60_000),
        ddl_retry_s: raw.settings.ddl_retry_s.unwrap_or(60),
        foreign_keys: raw.settings.foreign_keys.unwrap_or(false),
        max_depth: raw.settings.max_depth.unwrap_or(json::MAX_DEPTH),
    };
    if !(1..=json::DEPTH_CEILING).contains(&settings.max_depth) {
        return Err(cx.err(
            cx.key_at("settings", "max_depth"),
            format!(
                "settings.max_depth: {} is out of range: a blob's depth limit is 1 to {}",
                settings.max_depth,
                json::DEPTH_CEILING
            ),
        ));
    }
    check_existing_name(&settings.target_schema).map_err(|m| {
        let at = cx.key_at("settings", "target_schema");
        cx.err(at, format!("settings.target_schema: {m}"))
    })?;
    check_existing_name(&settings.views_schema).map_err(|m| {
        let at = cx.key_at("settings", "views_schema");
        cx.err(at, format!("settings.views_schema: {m}"))
    })?;
    // schema `decant` is decant's own: its state, control row and SQL API,
    // which `init` replaces; the team's tables and views go elsewhere
    for (section, key, name) in [
        ("source", "schema", &source.schema),
        ("settings", "target_schema", &settings.target_schema),
        ("settings", "views_schema", &settings.views_schema),
    ] {
        // (a target schema taken from the source's is refused as the
        // source's, which comes first)
        if name == "decant" {
            return Err(cx.err(
                cx.key_at(section, key),
                format!(
                    "{section}.{key}: schema `decant` is decant's own (its state, control row \
                     and SQL API); put the source, the target tables and the views in another \
                     schema"
                ),
            ));
        }
    }
    Ok((source, settings))
}

/// One `[tables.<name>]` entry.
fn table(cx: &Ctx<'_>, name: &str, t: &RawTable) -> Result<Table> {
    // a table's place is that of its first column in the file (toml
    // cannot span a table declared through a dotted header; the map is in
    // name order)
    let at = t
        .columns
        .values()
        .map(|c| c.span().start)
        .min()
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
    let mut indexes: Vec<Vec<String>> = Vec::new();
    for index in &t.indexes {
        if index.is_empty() {
            return Err(cx.err(at, format!("table `{name}`: an index needs columns")));
        }
        for c in index {
            if *c != user_column && !columns.iter().any(|col: &Column| col.name == *c) {
                return Err(cx.err(
                    at,
                    format!("table `{name}`: index column `{c}` is not a column of the table"),
                ));
            }
            if index.iter().filter(|x| *x == c).count() > 1 {
                return Err(cx.err(
                    at,
                    format!("table `{name}`: index column `{c}` is listed twice"),
                ));
            }
        }
        if indexes.contains(index) {
            return Err(cx.err(
                at,
                format!(
                    "table `{name}`: index ({}) is declared twice",
                    index.join(", ")
                ),
            ));
        }
        indexes.push(index.clone());
    }
    Ok(Table {
        name: name.to_string(),
        user_column,
        columns,
        key: Vec::new(),
        indexes,
        line: cx.line(at),
    })
}

/// One `[[rules]]` entry, its names resolved against the tables.
fn rule(cx: &Ctx<'_>, raw_rule: &Spanned<RawRule>, tables: &[Table]) -> Result<Rule> {
    let at = raw_rule.span().start;
    let r = raw_rule.get_ref();
    let err = |m: String| cx.err(at, format!("rule `{}`: {m}", r.name));
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
    let position_column = |c: &str, used: &mut BTreeSet<usize>| {
        let i = col(c, "position")?;
        if !table.columns[i].ty.is_integer() {
            return Err(err(format!(
                "position column `{c}` must be an integer type"
            )));
        }
        if !used.insert(i) {
            return Err(err(format!("column `{c}` is used twice")));
        }
        Ok(i)
    };
    for step in steps {
        segments.push(match step {
            Step::Literal(k) => Segment::Literal(k),
            Step::Capture(c) => {
                let i = col(&c, "capture")?;
                let ty = table.columns[i].ty;
                if ty != ColumnType::Text && ty != ColumnType::Date && !ty.is_integer() {
                    return Err(err(format!(
                        "capture column `{c}` must be of type text, date or an integer type \
                         (int2, int4, int8), not {}",
                        ty.sql()
                    )));
                }
                if !used.insert(i) {
                    return Err(err(format!("column `{c}` is captured twice")));
                }
                Segment::Capture(i)
            }
            Step::Position(c) => Segment::Position(position_column(&c, &mut used)?),
        });
    }
    let position = match position {
        Some(c) => Some(position_column(&c, &mut used)?),
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
            let extra = col(&extra_name, "extra").map_err(|e| {
                if r.extra.is_none() {
                    err(format!(
                        "an object rule keeps the keys it does not map in a jsonb column, \
                         `extra` unless the rule names another (`extra = \"...\"`); \
                         table `{}` has none: add `extra = \"jsonb\"` to its columns",
                        table.name
                    ))
                } else {
                    e
                }
            })?;
            if table.columns[extra].ty != ColumnType::Jsonb {
                return Err(err(format!("extra column `{extra_name}` must be jsonb")));
            }
            if !used.insert(extra) {
                return Err(err(format!("column `{extra_name}` is used twice")));
            }
            let mut ks = Vec::new();
            let mut nested: Vec<(Vec<String>, usize)> = Vec::new();
            for (k, c) in keys {
                let i = col(c, "key column")?;
                if !used.insert(i) {
                    return Err(err(format!("column `{c}` is used twice")));
                }
                // `geo.lat` is a path into a nested object, `"geo.lat"` a
                // key with a dot, as in rule paths
                let path = if k.contains(['.', '"', '[', '{']) {
                    let (steps, position) =
                        parse_path(k).map_err(|m| err(format!("key `{k}` in `keys`: {m}")))?;
                    let mut path = Vec::new();
                    for step in steps {
                        match step {
                            Step::Literal(s) => path.push(s),
                            Step::Capture(_) | Step::Position(_) => {
                                return Err(err(format!(
                                    "key `{k}` in `keys`: only object keys, no captures or \
                                     positions (give those to the rule's path)"
                                )));
                            }
                        }
                    }
                    if position.is_some() {
                        return Err(err(format!(
                            "key `{k}` in `keys`: only object keys, no captures or positions \
                             (give those to the rule's path)"
                        )));
                    }
                    path
                } else {
                    vec![k.clone()]
                };
                let all = ks
                    .iter()
                    .map(|(f, _): &(String, usize)| std::slice::from_ref(f))
                    .chain(nested.iter().map(|(p, _)| p.as_slice()));
                for other in all {
                    let n = other.len().min(path.len());
                    if other[..n] == path[..n] {
                        return Err(err(format!(
                            "keys `{}` and `{k}` overlap: one holds the other",
                            other.join(".")
                        )));
                    }
                }
                match <[String; 1]>::try_from(path) {
                    Ok([key]) => ks.push((key, i)),
                    Err(path) => nested.push((path, i)),
                }
            }
            RuleKind::Object {
                keys: ks,
                nested,
                extra,
            }
        }
        (Some(_), Some(_)) => {
            return Err(err(
                "give either `value` (a scalar) or `keys` (an object), not both".into(),
            ));
        }
        (None, None) => {
            return Err(err(
                "give `value` (the column of a scalar) or `keys` (object keys to columns)".into(),
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
    Ok(Rule {
        name: r.name.clone(),
        path: r.path.clone(),
        line: cx.line(at),
        table: table_idx,
        segments,
        position,
        kind,
        constants,
        on_invalid,
    })
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
            pattern: None,
        },
        RawColumn::Full(f) => RawColumnFull {
            ty: f.ty.clone(),
            not_null: f.not_null,
            min: f.min.clone(),
            max: f.max.clone(),
            values: f.values.clone(),
            max_length: f.max_length,
            pattern: f.pattern.clone(),
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
        |v: &Option<::toml::Value>, what: &str| -> std::result::Result<Option<Canonical>, String> {
            match v {
                None => Ok(None),
                Some(::toml::Value::Integer(i)) => Ok(canonical_number(&i.to_string())),
                Some(::toml::Value::Float(f)) => Ok(canonical_number(&f.to_string())),
                Some(other) => Err(format!("{what} must be a number, not {other}")),
            }
        };
    let min = bound(&full.min, "min")?;
    let max = bound(&full.max, "max")?;
    if (min.is_some() || max.is_some()) && !ty.is_number() {
        return Err(format!("min/max apply to numbers, not to {}", full.ty));
    }
    if (full.values.is_some() || full.max_length.is_some() || full.pattern.is_some())
        && ty != ColumnType::Text
    {
        return Err(format!(
            "values/max_length/pattern apply to text, not to {}",
            full.ty
        ));
    }
    // bounds no value meets would fail (or keep in the residual) every
    // value of the column: a typo, refused rather than discovered mid-run
    if let (Some(lo), Some(hi)) = (&min, &max)
        && lo > hi
    {
        return Err(format!(
            "min {lo} is above max {hi}: no value could be valid"
        ));
    }
    if full.values.as_ref().is_some_and(|v| v.is_empty()) {
        return Err("values = [] allows no value: list the allowed values, or leave it out".into());
    }
    if full.max_length == Some(0) {
        return Err(
            "max_length = 0 allows only the empty string: give a length of at least 1".into(),
        );
    }
    let pattern = full.pattern.as_deref().map(Pattern::new).transpose()?;
    let as_int = |b: &Option<Canonical>| b.as_ref().and_then(|c| plain_integer(&c.to_string()));
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
        pattern,
    })
}
