//! Fixups: numbered, reversible transforms of one user's blob, applied
//! before explode so that dirty legacy data is repaired as it migrates
//! (the up/down record migrations of the DynamoDB pattern).
//!
//! Each fixup records what it changed, as a list of [`Change`]s (a path and
//! the value it held before, or none): undoing them in reverse order gives
//! the original blob back exactly, whatever the fixup was. The record is
//! stored with the user's state; rollback undoes it, except where the
//! backend wrote over what the fixup left since (that newer write stays).
//!
//! Declarative fixups are files `NNNN-name.toml` in a `fixups` folder next
//! to the spec, one operation each, on a dotted path where `*` matches any
//! key at its level and every element of an array on the way (a number
//! picks one element; the last step is an object's key; a key holding a
//! dot goes in double quotes, `parts."a.b".wear`):
//!
//! ```toml
//! op = "coerce_number"          # a numeric string becomes the number
//! path = "marriage.stats.*.*"
//! ```
//!
//! Operations: `rename` (`to = "new.path"`, the same `*`s), `delete` (both
//! with an optional `unless = [values]` they leave alone),
//! `default` (`value = ...`, set where the key is missing and its parent
//! exists), `coerce_number`, `clamp` (`min`, `max`), `null_to_object`
//! (also with `path = "$"`: a blob that is NULL or JSON `null` becomes
//! `{}`; rollback gives back what the column held, SQL NULL or JSON
//! `null`: [`mark_sql_null`]).
//! Library users add Rust function pairs with [`Fixup::custom`].

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// One change a fixup made: at `path`, the value before (none: the key was
/// absent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// Object keys from the root.
    pub path: Vec<String>,
    /// The value before the change; absent when the key did not exist
    /// (a JSON `null` before is `Some(Value::Null)`). At the root (an
    /// empty path) absent is a blob column that held SQL NULL.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub before: Option<Value>,
}

/// A field that is present is `Some`, even when it holds `null`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// What a fixup did to one user, as stored with the user's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Applied {
    /// The fixup's name (its file name without `.toml`).
    pub fixup: String,
    /// The changes of a declarative fixup.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
    /// What a Rust fixup's `down` needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<Value>,
}

/// A Rust fixup's `up`: changes the blob and returns what `down` needs to
/// undo it, or `None` when it changed nothing.
pub type Up = Arc<dyn Fn(&mut Value) -> Option<Value> + Send + Sync>;
/// A Rust fixup's `down`: undoes `up` given what `up` returned.
pub type Down = Arc<dyn Fn(&mut Value, &Value) + Send + Sync>;

/// A declarative operation.
#[derive(Clone)]
enum Op {
    Rename { to: Vec<String> },
    Delete,
    Default { value: Value },
    CoerceNumber,
    Clamp { min: Option<f64>, max: Option<f64> },
    NullToObject,
    Custom { up: Up, down: Down },
}

/// A fixup.
#[derive(Clone)]
pub struct Fixup {
    /// Its name: `0001-string-numbers`.
    pub name: String,
    path: Vec<String>,
    op: Op,
    /// Values left alone (`unless = [...]`): a rename or delete skips a
    /// key holding one of them.
    unless: Vec<Value>,
}

impl fmt::Debug for Fixup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fixup").field("name", &self.name).finish()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FixupFile {
    op: String,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    value: Option<toml::Value>,
    #[serde(default)]
    min: Option<f64>,
    #[serde(default)]
    max: Option<f64>,
    #[serde(default)]
    unless: Option<Vec<toml::Value>>,
    #[serde(default)]
    description: Option<String>,
}

/// The keys of a fixup's dotted path: a key holding a dot, a quote, a
/// bracket or a brace is written in double quotes, `\\` escaping the next
/// character, as in rule paths (`stats."a.b".*`); `*` is any key, so a
/// key named `*` cannot be a step.
fn split(path: &str) -> Result<Vec<String>, String> {
    const WHAT: &str = "dotted keys, `*` for any key at its level, a key with a dot in \
                        double quotes (`stats.\"a.b\"`)";
    let mut steps = Vec::new();
    let mut chars = path.chars().peekable();
    loop {
        let mut key = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('\\') => key.extend(chars.next()),
                    Some('"') => break,
                    Some(c) => key.push(c),
                    None => return Err(format!("`{path}`: an unterminated quoted key")),
                }
            }
            if key == "*" {
                return Err(format!(
                    "`{path}`: `*` is any key, so a key named `*` cannot be a step (a Rust \
                     fixup can change it: `Fixup::custom`)"
                ));
            }
            match chars.next() {
                None => {
                    steps.push(key);
                    return Ok(steps);
                }
                Some('.') => steps.push(key),
                Some(c) => {
                    return Err(format!(
                        "`{path}`: `{c}` after a quoted key (a `.` or the end goes there)"
                    ));
                }
            }
        } else {
            let mut dot = false;
            for c in chars.by_ref() {
                if c == '.' {
                    dot = true;
                    break;
                }
                if c == '"' {
                    return Err(format!(
                        "`{path}`: a quote inside a key (quote the whole key: \"a\\\"b\")"
                    ));
                }
                if matches!(c, '[' | ']' | '{' | '}') {
                    // a rule path's habits, which would name keys no blob holds
                    return Err(format!(
                        "`{path}`: `{c}` in a key; a fixup's path steps into array elements \
                         and any key with `*` or a number, dotted (`garage.cars.*.hp`, not \
                         `garage.cars[{{i}}].hp`); quote a key that holds `{c}`"
                    ));
                }
                key.push(c);
            }
            if key.is_empty() {
                return Err(format!(
                    "`{path}`: an empty key; a fixup's `path` is {WHAT}"
                ));
            }
            steps.push(key);
            if !dot {
                return Ok(steps);
            }
            if chars.peek().is_none() {
                return Err(format!(
                    "`{path}`: ends with `.`; a fixup's `path` is {WHAT}"
                ));
            }
        }
    }
}

/// A change's path as a fixup path writes it (`$.a."b.c".0`; `$` for the
/// whole blob).
pub fn path_text(path: &[String]) -> String {
    let mut out = String::from("$");
    for k in path {
        out.push('.');
        if k.is_empty() || k.contains(['.', '"', '\\', '[', ']', '{', '}']) || k == "*" {
            out.push('"');
            for c in k.chars() {
                if matches!(c, '"' | '\\') {
                    out.push('\\');
                }
                out.push(c);
            }
            out.push('"');
        } else {
            out.push_str(k);
        }
    }
    out
}

impl Fixup {
    /// A Rust fixup: `up` changes a blob and returns what `down` needs to
    /// undo it exactly (stored with the user's state).
    pub fn custom(
        name: &str,
        up: impl Fn(&mut Value) -> Option<Value> + Send + Sync + 'static,
        down: impl Fn(&mut Value, &Value) + Send + Sync + 'static,
    ) -> Fixup {
        Fixup {
            name: name.to_string(),
            path: Vec::new(),
            op: Op::Custom {
                up: Arc::new(up),
                down: Arc::new(down),
            },
            unless: Vec::new(),
        }
    }

    /// Parses a fixup file's text; `name` is its file name without `.toml`.
    pub fn parse(name: &str, text: &str) -> Result<Fixup, String> {
        let f: FixupFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let _ = f.description;
        // `$` is the whole blob: a NULL (or JSON null) blob made `{}`
        let root = f.path.as_deref() == Some("$");
        if root && f.op != "null_to_object" {
            return Err(
                "`path = \"$\"` (the whole blob) goes only with op = \"null_to_object\"".into(),
            );
        }
        let path = match f.path.as_deref() {
            Some(_) if root => Vec::new(),
            Some(p) if !p.is_empty() => split(p)?,
            _ => {
                return Err(
                    "`path` is required: dotted keys, `*` for any key at its level, \
                            `$` for the whole blob"
                        .into(),
                );
            }
        };
        let op = match f.op.as_str() {
            "rename" => {
                let to = split(f.to.as_deref().ok_or("rename needs `to`")?)?;
                let stars = |p: &[String]| p.iter().filter(|k| *k == "*").count();
                if stars(&to) != stars(&path) || to.last().is_some_and(|k| k == "*") {
                    return Err("rename: `to` must have the same `*`s as `path`, not last".into());
                }
                Op::Rename { to }
            }
            "delete" => Op::Delete,
            "default" => {
                let value = f.value.ok_or("default needs `value`")?;
                let value = serde_json::to_value(value).map_err(|e| e.to_string())?;
                Op::Default { value }
            }
            "coerce_number" => Op::CoerceNumber,
            "clamp" => {
                if f.min.is_none() && f.max.is_none() {
                    return Err("clamp needs `min`, `max` or both".into());
                }
                Op::Clamp {
                    min: f.min,
                    max: f.max,
                }
            }
            "null_to_object" => Op::NullToObject,
            other => {
                return Err(format!(
                    "unknown op `{other}`: rename, delete, default, coerce_number, clamp or null_to_object"
                ));
            }
        };
        if path.last().is_some_and(|k| k == "*")
            && matches!(op, Op::Rename { .. } | Op::Default { .. })
        {
            return Err("`path` of rename and default must end in a key, not `*`".into());
        }
        let unless = match f.unless {
            None => Vec::new(),
            Some(_) if !matches!(op, Op::Rename { .. } | Op::Delete) => {
                return Err("`unless` goes with rename and delete".into());
            }
            Some(vs) => vs
                .into_iter()
                .map(|v| serde_json::to_value(v).map_err(|e| e.to_string()))
                .collect::<Result<_, _>>()?,
        };
        Ok(Fixup {
            name: name.to_string(),
            path,
            op,
            unless,
        })
    }

    /// The fixups of the folder `dir` (`NNNN-name.toml`, in number order);
    /// none when it does not exist.
    pub fn load_dir(dir: &Path) -> Result<Vec<Fixup>, String> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Ok(Vec::new());
        };
        let mut files: Vec<(u64, String, std::path::PathBuf)> = Vec::new();
        for e in entries {
            let path = e.map_err(|e| format!("{}: {e}", dir.display()))?.path();
            if path.extension().and_then(|x| x.to_str()) != Some("toml") {
                continue;
            }
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_string();
            let number = name
                .split('-')
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .ok_or_else(|| {
                    format!(
                        "{}: a fixup file is named NNNN-name.toml (a number first)",
                        path.display()
                    )
                })?;
            files.push((number, name, path));
        }
        files.sort();
        for w in files.windows(2) {
            if w[0].0 == w[1].0 {
                return Err(format!(
                    "{} and {}: two fixups with number {}",
                    w[0].2.display(),
                    w[1].2.display(),
                    w[0].0
                ));
            }
        }
        files
            .into_iter()
            .map(|(_, name, path)| {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                Fixup::parse(&name, &text).map_err(|e| format!("{}: {e}", path.display()))
            })
            .collect()
    }

    /// Applies the fixup; what it changed, or `None` when nothing.
    pub fn apply(&self, blob: &mut Value) -> Option<Applied> {
        if let Op::Custom { up, .. } = &self.op {
            return up(blob).map(|undo| Applied {
                fixup: self.name.clone(),
                changes: Vec::new(),
                custom: Some(undo),
            });
        }
        let mut changes = Vec::new();
        let mut at = Vec::new();
        if self.path.is_empty() {
            // the whole blob (only `null_to_object` takes `$`)
            if matches!(self.op, Op::NullToObject) && blob.is_null() {
                changes.push(Change {
                    path: Vec::new(),
                    before: Some(Value::Null),
                });
                *blob = Value::Object(Map::new());
            }
        } else {
            self.walk(blob, 0, &mut at, &mut changes);
        }
        // a rename's target is written after the walk (it may lie in the
        // subtree walked)
        if let Op::Rename { to } = &self.op {
            let moves: Vec<(Vec<String>, Value)> = changes
                .iter()
                .map(|c| {
                    (
                        c.path.clone(),
                        c.before.clone().expect("a moved value existed"),
                    )
                })
                .collect();
            changes.clear();
            for (from, value) in moves {
                let target = substitute(to, &self.path, &from);
                let parent_ok = matches!(
                    get(blob, &target[..target.len() - 1]),
                    Some(Value::Object(_))
                );
                if !parent_ok || get(blob, &target).is_some() {
                    // no parent to hold it, or the target is taken: left as is
                    continue;
                }
                remove(blob, &from);
                changes.push(Change {
                    path: from,
                    before: Some(value.clone()),
                });
                changes.push(Change {
                    path: target.clone(),
                    before: None,
                });
                set(blob, &target, value);
            }
        }
        (!changes.is_empty()).then(|| Applied {
            fixup: self.name.clone(),
            changes,
            custom: None,
        })
    }

    fn walk(&self, v: &mut Value, depth: usize, at: &mut Vec<String>, changes: &mut Vec<Change>) {
        let key = &self.path[depth];
        let last = depth + 1 == self.path.len();
        // an array on the way to the leaf: `*` goes into every element, a
        // number into that one (the leaf itself is an object's key)
        if let Value::Array(items) = v {
            if last {
                return;
            }
            for (i, item) in items.iter_mut().enumerate() {
                let i = i.to_string();
                if key == "*" || *key == i {
                    at.push(i);
                    self.walk(item, depth + 1, at, changes);
                    at.pop();
                }
            }
            return;
        }
        let Value::Object(map) = v else { return };
        let keys: Vec<String> = if key == "*" {
            map.keys().cloned().collect()
        } else {
            vec![key.clone()]
        };
        for k in keys {
            at.push(k.clone());
            if last {
                self.at_leaf(map, &k, at, changes);
            } else if let Some(child) = map.get_mut(&k) {
                self.walk(child, depth + 1, at, changes);
            }
            at.pop();
        }
    }

    fn at_leaf(
        &self,
        map: &mut Map<String, Value>,
        k: &str,
        at: &[String],
        changes: &mut Vec<Change>,
    ) {
        let record = |changes: &mut Vec<Change>, before: Option<Value>| {
            changes.push(Change {
                path: at.to_vec(),
                before,
            })
        };
        match &self.op {
            Op::Delete | Op::Rename { .. } => {
                if let Some(old) = map.get(k)
                    && !self.unless.contains(old)
                {
                    record(changes, Some(old.clone()));
                    if matches!(self.op, Op::Delete) {
                        map.remove(k);
                    }
                }
            }
            Op::Default { value } => {
                if !map.contains_key(k) {
                    record(changes, None);
                    map.insert(k.to_string(), value.clone());
                }
            }
            Op::CoerceNumber => {
                if let Some(Value::String(s)) = map.get(k)
                    && let Some(n) = as_number(s)
                {
                    record(changes, Some(Value::String(s.clone())));
                    map.insert(k.to_string(), n);
                }
            }
            Op::Clamp { min, max } => {
                if let Some(Value::Number(n)) = map.get(k)
                    && let Some(b) = clamped(n, *min, *max)
                {
                    record(changes, Some(Value::Number(n.clone())));
                    map.insert(k.to_string(), number_of(b));
                }
            }
            Op::NullToObject => {
                if let Some(Value::Null) = map.get(k) {
                    record(changes, Some(Value::Null));
                    map.insert(k.to_string(), Value::Object(Map::new()));
                }
            }
            Op::Custom { .. } => {}
        }
    }
}

/// Undoes what fixups did, given their records in the order applied:
/// the last first. A Rust fixup's `down` is looked up in `fixups` by name.
///
/// A value is put back only where the blob still holds what the fixup
/// left: one the backend wrote since (a clamped count raised again, a
/// renamed key rewritten) is a newer write, kept as it is. Records of a
/// fixup `fixups` no longer lists are undone as recorded.
pub fn undo(blob: &mut Value, applied: &[Applied], fixups: &[Fixup]) -> Result<(), String> {
    for a in applied.iter().rev() {
        let op = fixups.iter().find(|f| f.name == a.fixup).map(|f| &f.op);
        if let Some(data) = &a.custom {
            let down = match op {
                Some(Op::Custom { down, .. }) => down,
                _ => {
                    return Err(format!(
                        "fixup `{}` is a Rust fixup this program does not define: roll back from the program that does",
                        a.fixup
                    ));
                }
            };
            down(blob, data);
        }
        if let Some(Op::Rename { .. }) = op {
            // one move is two records: the key it left, the key it made
            for pair in a.changes.chunks(2).rev() {
                let [from, made] = pair else {
                    return Err(format!("fixup `{}`: a move recorded by halves", a.fixup));
                };
                let moved = from.before.as_ref();
                // the key it made, as it made it, goes; the key it left
                // comes back unless the backend wrote it again since
                if same(get(blob, &made.path), moved) {
                    remove(blob, &made.path);
                    if get(blob, &from.path).is_none() {
                        restore(blob, &a.fixup, from)?;
                    }
                }
            }
            continue;
        }
        for c in a.changes.iter().rev() {
            let left = op.and_then(|op| op.left(c.before.as_ref()));
            if let Some(left) = left
                && !same(get(blob, &c.path), left.as_ref())
            {
                continue;
            }
            restore(blob, &a.fixup, c)?;
        }
    }
    Ok(())
}

/// Marks the records of `applied` made on a blob column that held SQL
/// NULL (read as JSON `null`): the change at the root had no value before
/// it, so that [`undo`] and [`was_sql_null`] give SQL NULL back.
pub fn mark_sql_null(applied: &mut [Applied]) {
    for c in applied.iter_mut().flat_map(|a| a.changes.iter_mut()) {
        if c.path.is_empty() && c.before == Some(Value::Null) {
            c.before = None;
        }
    }
}

/// Whether the blob `applied` was recorded on was SQL NULL (see
/// [`mark_sql_null`]).
pub fn was_sql_null(applied: &[Applied]) -> bool {
    applied
        .iter()
        .flat_map(|a| a.changes.iter())
        .any(|c| c.path.is_empty() && c.before.is_none())
}

/// Puts back what `c` records as there before.
fn restore(blob: &mut Value, fixup: &str, c: &Change) -> Result<(), String> {
    match &c.before {
        // the whole blob was SQL NULL: read as a JSON null, which the
        // caller writes as SQL NULL ([`was_sql_null`])
        None if c.path.is_empty() => *blob = Value::Null,
        Some(v) => {
            if !set(blob, &c.path, v.clone()) {
                return Err(format!(
                    "fixup `{fixup}`: cannot restore {}: its parent is gone",
                    path_text(&c.path)
                ));
            }
        }
        None => {
            remove(blob, &c.path);
        }
    }
    Ok(())
}

/// Both absent, or equal as jsonb compares them.
fn same(a: Option<&Value>, b: Option<&Value>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => crate::core::json::json_eq(a, b),
        _ => false,
    }
}

impl Op {
    /// What a declarative op left where it found `before` (`Some(None)`:
    /// nothing), or `None` when that is not known (a rename's two
    /// records, a Rust fixup).
    fn left(&self, before: Option<&Value>) -> Option<Option<Value>> {
        match (self, before) {
            (Op::Delete, _) => Some(None),
            (Op::Default { value }, None) => Some(Some(value.clone())),
            (Op::CoerceNumber, Some(Value::String(s))) => Some(as_number(s)),
            (Op::Clamp { min, max }, Some(Value::Number(n))) => {
                Some(clamped(n, *min, *max).map(number_of))
            }
            (Op::NullToObject, Some(Value::Null) | None) => Some(Some(Value::Object(Map::new()))),
            _ => None,
        }
    }
}

/// The bound a clamp puts `n` at, if it is out of bounds.
fn clamped(n: &serde_json::Number, min: Option<f64>, max: Option<f64>) -> Option<f64> {
    let x = n.as_f64()?;
    match (min, max) {
        (Some(lo), _) if x < lo => Some(lo),
        (_, Some(hi)) if x > hi => Some(hi),
        _ => None,
    }
}

impl Fixup {
    /// A lax SQL/JSON path that finds a value in every blob this fixup
    /// would change, and perhaps in some it would not (it may say too
    /// much, never too little: a number in `unless`, a rename's taken
    /// target, a string that is no number and a key where a step needs an
    /// array element are not told apart); `None` for a Rust fixup, which no path
    /// describes. For the SQL API's on-demand migration, which migrates
    /// only blobs no fixup changes.
    pub fn might_change(&self) -> Option<String> {
        let key = |k: &str| format!(".{}", Value::String(k.to_string()));
        if matches!(self.op, Op::Custom { .. }) {
            return None;
        }
        let Some((leaf, prefix)) = self.path.split_last() else {
            // the whole blob: only `null_to_object` takes `$`
            return Some("lax $ ? (@ == null)".into());
        };
        let mut p = String::from("lax $");
        for k in prefix {
            // `*` and an index step into objects and arrays alike
            if k == "*" || (!k.is_empty() && k.bytes().all(|b| b.is_ascii_digit())) {
                p.push_str(".**{1}");
            } else {
                p.push_str(&key(k));
            }
        }
        let at_leaf = |p: String| {
            if leaf == "*" {
                format!("{p}.*")
            } else {
                format!("{p}{}", key(leaf))
            }
        };
        Some(match &self.op {
            // a value `unless` names is left alone: told apart for strings,
            // booleans and null alone (SQL/JSON compares numbers by value,
            // `unless` by their text, 1 against 1.0), each tested by type
            // first (a comparison across types is unknown, never true)
            Op::Delete | Op::Rename { .. } => {
                let kept: Vec<String> = self
                    .unless
                    .iter()
                    .filter_map(|v| match v {
                        Value::String(_) => Some(format!("(@.type() != \"string\" || @ != {v})")),
                        Value::Bool(_) => Some(format!("(@.type() != \"boolean\" || @ != {v})")),
                        Value::Null => Some("@.type() != \"null\"".to_string()),
                        _ => None,
                    })
                    .collect();
                if kept.is_empty() {
                    at_leaf(p)
                } else {
                    format!("{} ? ({})", at_leaf(p), kept.join(" && "))
                }
            }
            // its leaf is a key (never `*`), missing from an object
            Op::Default { .. } => {
                format!("{p} ? (@.type() == \"object\" && !exists(@{}))", key(leaf))
            }
            Op::CoerceNumber => format!("{} ? (@.type() == \"string\")", at_leaf(p)),
            Op::Clamp { min, max } => {
                let out: Vec<String> = [
                    min.map(|lo| format!("@ < {lo}")),
                    max.map(|hi| format!("@ > {hi}")),
                ]
                .into_iter()
                .flatten()
                .collect();
                if out.is_empty() {
                    "lax $ ? (false)".into()
                } else {
                    format!(
                        "{} ? (@.type() == \"number\" && ({}))",
                        at_leaf(p),
                        out.join(" || ")
                    )
                }
            }
            Op::NullToObject => format!("{} ? (@ == null)", at_leaf(p)),
            Op::Custom { .. } => return None,
        })
    }

    /// Applies `fixups` in order, as the migration does; the records of
    /// those that changed something.
    pub fn apply_all(blob: &mut Value, fixups: &[Fixup]) -> Vec<Applied> {
        fixups.iter().filter_map(|f| f.apply(blob)).collect()
    }
}

fn as_number(s: &str) -> Option<Value> {
    let t = s.trim();
    if t.is_empty() || t != s {
        return None;
    }
    // JSON's number grammar, kept exactly (arbitrary precision)
    match serde_json::from_str::<Value>(t) {
        Ok(v @ Value::Number(_)) => Some(v),
        _ => None,
    }
}

fn number_of(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 9.0e15 {
        Value::from(x as i64)
    } else {
        serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
    }
}

fn substitute(to: &[String], from_pattern: &[String], from: &[String]) -> Vec<String> {
    let mut captured = from_pattern
        .iter()
        .zip(from)
        .filter(|(p, _)| *p == "*")
        .map(|(_, k)| k.clone());
    to.iter()
        .map(|k| {
            if k == "*" {
                captured.next().unwrap_or_default()
            } else {
                k.clone()
            }
        })
        .collect()
}

/// `v`'s child `k`: an object's key, or an array's element by its index.
fn child<'v>(v: &'v Value, k: &str) -> Option<&'v Value> {
    match v {
        Value::Object(m) => m.get(k),
        Value::Array(a) => a.get(k.parse::<usize>().ok()?),
        _ => None,
    }
}

/// [`child`], mutable.
fn child_mut<'v>(v: &'v mut Value, k: &str) -> Option<&'v mut Value> {
    match v {
        Value::Object(m) => m.get_mut(k),
        Value::Array(a) => a.get_mut(k.parse::<usize>().ok()?),
        _ => None,
    }
}

fn get<'v>(v: &'v Value, path: &[String]) -> Option<&'v Value> {
    path.iter().try_fold(v, |v, k| child(v, k))
}

fn remove(v: &mut Value, path: &[String]) -> Option<Value> {
    let (last, parents) = path.split_last()?;
    let parent = parents.iter().try_fold(v, |v, k| child_mut(v, k))?;
    parent.as_object_mut()?.remove(last)
}

fn set(v: &mut Value, path: &[String], value: Value) -> bool {
    let Some((last, parents)) = path.split_last() else {
        *v = value;
        return true;
    };
    match parents
        .iter()
        .try_fold(v, |v, k| child_mut(v, k))
        .and_then(Value::as_object_mut)
    {
        Some(parent) => {
            parent.insert(last.clone(), value);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn fx(name: &str, text: &str) -> Fixup {
        Fixup::parse(name, text).unwrap()
    }

    #[test]
    fn a_fixup_s_sql_test_reads_its_path_and_op() {
        let t = |text: &str| fx("f", text).might_change();
        assert_eq!(
            t("op = \"rename\"\npath = 'a.*.\"q\\\"k\"'\nto = 'a.*.z'\nunless = [\"x\", true, 1]")
                .unwrap(),
            "lax $.\"a\".**{1}.\"q\\\"k\" ? ((@.type() != \"string\" || @ != \"x\") \
             && (@.type() != \"boolean\" || @ != true))"
        );
        assert_eq!(
            t("op = \"clamp\"\npath = \"s.0.*\"\nmin = -1.5").unwrap(),
            "lax $.\"s\".**{1}.* ? (@.type() == \"number\" && (@ < -1.5))"
        );
        assert_eq!(
            t("op = \"default\"\npath = \"a.b\"\nvalue = 1").unwrap(),
            "lax $.\"a\" ? (@.type() == \"object\" && !exists(@.\"b\"))"
        );
        assert_eq!(
            t("op = \"null_to_object\"\npath = \"$\"").unwrap(),
            "lax $ ? (@ == null)"
        );
        let custom = Fixup::custom("r", |_| None, |_, _| {});
        assert_eq!(custom.might_change(), None);
    }

    fn game_fixups() -> Vec<Fixup> {
        vec![
            fx(
                "0001-numbers",
                "op = \"coerce_number\"\npath = \"marriage.stats.*.*\"",
            ),
            fx(
                "0002-negative",
                "op = \"clamp\"\npath = \"marriage.stats.*.*\"\nmin = 0",
            ),
            fx(
                "0003-null-stats",
                "op = \"null_to_object\"\npath = \"marriage.stats\"",
            ),
            fx(
                "0004-mode",
                "op = \"rename\"\npath = \"marriage.config.mode\"\nto = \"marriage.config.legacyMode\"\nunless = [\"kidnap\", \"murder\"]",
            ),
            fx(
                "0005-default",
                "op = \"default\"\npath = \"marriage.config.mans\"\nvalue = 1",
            ),
            fx("0006-delete", "op = \"delete\"\npath = \"old.*\""),
        ]
    }

    #[test]
    fn each_operation_changes_what_it_says_and_undoes_exactly() {
        let original = json!({
            "marriage": {
                "stats": {"duo": {"points": "127", "won": -1, "big": "1.50e3", "name": "x1"}, "solo": {"won": 3}},
                "config": {"mode": "zombie"}
            },
            "old": {"a": 1, "b": [1]},
            "keep": "7"
        });
        let fixups = game_fixups();
        let mut blob = original.clone();
        let applied = Fixup::apply_all(&mut blob, &fixups);
        let expected: Value = serde_json::from_str(
            r#"{"marriage": {"stats": {"duo": {"points": 127, "won": 0, "big": 1.50e3, "name": "x1"},
                                        "solo": {"won": 3}},
                             "config": {"legacyMode": "zombie", "mans": 1}},
                "old": {}, "keep": "7"}"#,
        )
        .unwrap();
        assert_eq!(blob, expected);
        assert_eq!(applied.len(), 5, "{applied:?}"); // the null fixup found no null
        // the records survive the state table's JSON
        let stored = serde_json::to_value(&applied).unwrap();
        let back: Vec<Applied> = serde_json::from_value(stored).unwrap();
        let mut undone = blob.clone();
        undo(&mut undone, &back, &fixups).unwrap();
        assert_eq!(undone, original);
        // the coerced number is the number the text says
        assert_eq!(
            blob["marriage"]["stats"]["duo"]["big"].as_f64(),
            Some(1500.0)
        );
    }

    #[test]
    fn null_to_object_and_a_taken_rename_target() {
        let original =
            json!({"marriage": {"stats": null, "config": {"mode": "a", "legacyMode": "b"}}});
        let mut blob = original.clone();
        let applied = Fixup::apply_all(&mut blob, &game_fixups());
        // a null before survives the state table's JSON
        let applied: Vec<Applied> =
            serde_json::from_value(serde_json::to_value(&applied).unwrap()).unwrap();
        assert_eq!(blob["marriage"]["stats"], json!({}));
        // the rename's target is taken: left as is
        assert_eq!(blob["marriage"]["config"]["mode"], json!("a"));
        // a value `unless` names is left alone
        let mut known = json!({"marriage": {"config": {"mode": "kidnap"}}});
        assert!(Fixup::apply_all(&mut known, &game_fixups()[3..4]).is_empty());
        assert_eq!(known["marriage"]["config"]["mode"], json!("kidnap"));
        undo(&mut blob, &applied, &game_fixups()).unwrap();
        assert_eq!(blob, original);
    }

    #[test]
    fn rust_fixups_undo_with_their_down() {
        let f = Fixup::custom(
            "0100-double",
            |b| {
                let x = b.get("xp")?.as_i64()?;
                b["xp"] = json!(x * 2);
                Some(json!(x))
            },
            |b, old| b["xp"] = old.clone(),
        );
        let mut blob = json!({"xp": 21});
        let applied = Fixup::apply_all(&mut blob, std::slice::from_ref(&f));
        assert_eq!(blob, json!({"xp": 42}));
        assert!(
            undo(&mut blob.clone(), &applied, &[])
                .unwrap_err()
                .contains("0100-double")
        );
        undo(&mut blob, &applied, &[f]).unwrap();
        assert_eq!(blob, json!({"xp": 21}));
    }

    #[test]
    fn a_star_goes_into_every_element_of_an_array_on_the_way() {
        let original = json!({
            "garage": {"cars": [
                {"hp": -5, "model": "a"},
                {"hp": 90, "horsepower": 1},
                7,
                {"hp": "80"}
            ]},
            "tags": ["1", "x"]
        });
        let fixups = vec![
            fx("1-n", "op = \"coerce_number\"\npath = \"garage.cars.*.hp\""),
            fx(
                "2-c",
                "op = \"clamp\"\npath = \"garage.cars.*.hp\"\nmin = 0",
            ),
            fx(
                "3-r",
                "op = \"rename\"\npath = \"garage.cars.*.horsepower\"\nto = \"garage.cars.*.power\"",
            ),
            fx(
                "4-d",
                "op = \"default\"\npath = \"garage.cars.0.model\"\nvalue = \"?\"",
            ),
            fx("5-x", "op = \"delete\"\npath = \"garage.cars.3.hp\""),
            // a leaf in an array is not an object's key: left alone
            fx("6-n", "op = \"coerce_number\"\npath = \"tags.*\""),
        ];
        let mut blob = original.clone();
        let applied = Fixup::apply_all(&mut blob, &fixups);
        assert_eq!(
            blob,
            json!({
                "garage": {"cars": [
                    {"hp": 0, "model": "a"},
                    {"hp": 90, "power": 1},
                    7,
                    {}
                ]},
                "tags": ["1", "x"]
            })
        );
        assert_eq!(applied.len(), 4, "{applied:?}");
        let applied: Vec<Applied> =
            serde_json::from_value(serde_json::to_value(&applied).unwrap()).unwrap();
        undo(&mut blob, &applied, &fixups).unwrap();
        assert_eq!(blob, original);
    }

    #[test]
    fn undo_keeps_what_the_backend_wrote_since() {
        let original = json!({
            "marriage": {
                "stats": {"duo": {"points": "127", "won": -1, "lost": -2}},
                "config": {"mode": "zombie"}
            },
            "old": {"a": 1, "b": 2}
        });
        let fixups = game_fixups();
        let mut blob = original.clone();
        let applied = Fixup::apply_all(&mut blob, &fixups);
        // the backend writes over some of what the fixups left
        blob["marriage"]["stats"]["duo"]["won"] = json!(5); // clamped, raised since
        blob["marriage"]["stats"]["duo"]["points"] = json!(130.0); // coerced, changed
        blob["marriage"]["config"]["legacyMode"] = json!("duo"); // renamed, rewritten
        blob["marriage"]["config"]["mans"] = json!(3); // defaulted, changed
        blob["old"]["a"] = json!(9); // deleted, written again
        undo(&mut blob, &applied, &fixups).unwrap();
        assert_eq!(
            blob,
            json!({
                "marriage": {
                    // the untouched fix is undone, the newer writes kept
                    "stats": {"duo": {"points": 130.0, "won": 5, "lost": -2}},
                    "config": {"legacyMode": "duo", "mans": 3}
                },
                "old": {"a": 9, "b": 2}
            })
        );
        // the renamed key written again by the backend, the key the rename
        // made untouched: the backend's stays, the made one goes
        let mut blob = original.clone();
        let applied = Fixup::apply_all(&mut blob, &fixups);
        assert_eq!(blob["marriage"]["config"]["legacyMode"], json!("zombie"));
        blob["marriage"]["config"]["mode"] = json!("murder");
        undo(&mut blob, &applied, &fixups).unwrap();
        assert_eq!(blob["marriage"]["config"], json!({"mode": "murder"}));
        // nothing written since: all undone, numbers compared as jsonb
        let mut blob = original.clone();
        let applied = Fixup::apply_all(&mut blob, &fixups);
        blob["marriage"]["stats"]["duo"]["points"] = json!(127.0);
        undo(&mut blob, &applied, &fixups).unwrap();
        assert_eq!(blob, original);
    }

    #[test]
    fn a_null_blob_becomes_an_object_and_comes_back() {
        let root = Fixup::parse("0001-null-blob", "op = \"null_to_object\"\npath = \"$\"").unwrap();
        let fixups = [root];
        // a NULL blob (read as JSON null) becomes {}, recorded at the root
        let mut blob = Value::Null;
        let applied = Fixup::apply_all(&mut blob, &fixups);
        assert_eq!(blob, json!({}));
        assert_eq!(applied[0].changes[0].path, Vec::<String>::new());
        undo(&mut blob, &applied, &fixups).unwrap();
        assert_eq!(blob, Value::Null);
        assert!(!was_sql_null(&applied));
        // one that was SQL NULL is recorded so (through the record's JSON)
        let mut blob = Value::Null;
        let mut applied = Fixup::apply_all(&mut blob, &fixups);
        mark_sql_null(&mut applied);
        let applied: Vec<Applied> =
            serde_json::from_value(serde_json::to_value(&applied).unwrap()).unwrap();
        assert!(was_sql_null(&applied));
        undo(&mut blob, &applied, &fixups).unwrap();
        assert_eq!(blob, Value::Null);
        // a blob the backend wrote since is a newer write, kept
        let mut blob = Value::Null;
        let applied = Fixup::apply_all(&mut blob, &fixups);
        blob["level"] = json!(2);
        undo(&mut blob, &applied, &fixups).unwrap();
        assert_eq!(blob, json!({"level": 2}));
        // any other blob is left alone
        for other in [json!({}), json!({"a": null}), json!([]), json!(0)] {
            let mut blob = other.clone();
            assert!(Fixup::apply_all(&mut blob, &fixups).is_empty());
            assert_eq!(blob, other);
        }
    }

    #[test]
    fn bad_fixup_files_are_refused() {
        for (text, says) in [
            ("op = \"explode\"\npath = \"a\"", "unknown op"),
            ("op = \"delete\"", "`path` is required"),
            ("op = \"rename\"\npath = \"a.*\"\nto = \"b\"", "same `*`s"),
            ("op = \"clamp\"\npath = \"a\"", "clamp needs"),
            ("op = \"default\"\npath = \"a\"", "default needs"),
            ("op = \"delete\"\npath = \"a\"\ncolour = 1", "unknown field"),
            ("op = \"delete\"\npath = \"a..b\"", "an empty key"),
            ("op = \"delete\"\npath = \"a.\"", "ends with `.`"),
            ("op = \"delete\"\npath = 'a.\"b'", "unterminated quoted key"),
            ("op = \"delete\"\npath = 'a.\"b\"c'", "after a quoted key"),
            ("op = \"delete\"\npath = 'a.b\"c'", "a quote inside a key"),
            ("op = \"delete\"\npath = 'a.\"*\"'", "a key named `*`"),
            (
                "op = \"clamp\"\nmin = 0\npath = \"cars[{i}].hp\"",
                "`[` in a key",
            ),
            (
                "op = \"clamp\"\nmin = 0\npath = \"stats.{mode}\"",
                "`{` in a key",
            ),
            ("op = \"rename\"\npath = \"a\"\nto = \"\"", "an empty key"),
            (
                "op = \"delete\"\npath = \"$\"",
                "goes only with op = \"null_to_object\"",
            ),
        ] {
            let err = Fixup::parse("0001-x", text).unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
    }

    #[test]
    fn quoted_keys_name_keys_with_dots() {
        let text = r#"op = "rename"
path = 'parts."a.b".*."say \"hi\""'
to = 'parts."a.b".*.""'"#;
        let f = Fixup::parse("0001-q", text).unwrap();
        assert_eq!(f.path, ["parts", "a.b", "*", "say \"hi\""]);
        let mut blob = json!({"parts": {"a.b": {"x": {"say \"hi\"": 1}}, "a": {"b": {"x": {}}}}});
        let original = blob.clone();
        let applied = Fixup::apply_all(&mut blob, std::slice::from_ref(&f));
        assert_eq!(
            blob,
            json!({"parts": {"a.b": {"x": {"": 1}}, "a": {"b": {"x": {}}}}})
        );
        assert_eq!(
            path_text(&applied[0].changes[0].path),
            r#"$.parts."a.b".x."say \"hi\"""#
        );
        undo(&mut blob, &applied, std::slice::from_ref(&f)).unwrap();
        assert_eq!(blob, original);
        // an unquoted key keeps its spaces, as before
        let f = Fixup::parse("0002-s", "op = \"delete\"\npath = \"x y.z\"").unwrap();
        assert_eq!(f.path, ["x y", "z"]);
    }

    proptest! {
        /// What [`path_text`] writes, a fixup's path reads back.
        #[test]
        fn path_text_reads_back(path in prop::collection::vec(
            "[a-z. \"\\\\*\\[{]{0,5}".prop_filter("a key named *", |k| k != "*"), 1..4)) {
            let text = path_text(&path);
            prop_assert_eq!(split(text.strip_prefix("$.").unwrap()).unwrap(), path);
        }
    }

    fn json_tree() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-5i64..5).prop_map(Value::from),
            prop_oneof![Just("3"), Just("-2"), Just("x"), Just("1e2")]
                .prop_map(|s| Value::String(s.into())),
        ];
        leaf.prop_recursive(4, 40, 5, |inner| {
            prop_oneof![
                3 => prop::collection::btree_map(
                    prop_oneof![
                        Just("a"),
                        Just("b"),
                        Just("0"),
                        Just("stats"),
                        Just("mode"),
                        Just("old")
                    ]
                    .prop_map(String::from),
                    inner.clone(),
                    0..4,
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
                1 => prop::collection::vec(inner, 0..3).prop_map(Value::Array),
            ]
        })
    }

    proptest! {
        #[test]
        fn undo_restores_any_blob(blob in json_tree()) {
            let fixups = vec![
                fx("1-n", "op = \"coerce_number\"\npath = \"*.*\""),
                fx("2-c", "op = \"clamp\"\npath = \"*.a\"\nmin = 0\nmax = 3"),
                fx("3-o", "op = \"null_to_object\"\npath = \"*\""),
                fx("4-r", "op = \"rename\"\npath = \"*.mode\"\nto = \"*.old\""),
                fx("5-d", "op = \"default\"\npath = \"stats.b\"\nvalue = 0"),
                fx("6-x", "op = \"delete\"\npath = \"a.*\""),
                // through arrays: every element, and one by its index
                fx("7-n", "op = \"coerce_number\"\npath = \"*.*.a\""),
                fx("8-r", "op = \"rename\"\npath = \"*.0.mode\"\nto = \"*.0.b\""),
                fx("9-x", "op = \"delete\"\npath = \"*.*.*.old\""),
            ];
            let mut fixed = blob.clone();
            let applied = Fixup::apply_all(&mut fixed, &fixups);
            // through the state table's JSON
            let applied: Vec<Applied> =
                serde_json::from_value(serde_json::to_value(&applied).unwrap()).unwrap();
            undo(&mut fixed, &applied, &fixups).unwrap();
            prop_assert_eq!(fixed, blob);
        }
    }
}
