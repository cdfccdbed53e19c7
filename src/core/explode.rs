//! Explode a blob into rows plus a residual, and reconstruct it.
//!
//! Pure code, no I/O. The invariant, proven by property tests below:
//! `reconstruct(explode(b)) == b` under jsonb equality for every blob `b`
//! that explodes without error.
//!
//! The residual is the blob minus what the rules claimed: unknown keys,
//! empty objects and arrays (rows cannot recreate those), and values a
//! `keep` rule found invalid. Objects that rules claimed entirely are
//! dropped; the rows recreate them.

use crate::core::json::JsonView;
use crate::core::spec::{Node, Policy, Rule, RuleKind, Segment, Spec};
use crate::core::value::{self, ColumnValue};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

/// One row of a target table (the user id is kept alongside, not here).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Index of the table in [`Spec::tables`].
    pub table: usize,
    /// One value per column of the table, in its column order.
    pub values: Vec<ColumnValue>,
}

/// The result of exploding one blob.
#[derive(Debug, Clone, PartialEq)]
pub struct Exploded {
    /// The rows to write.
    pub rows: Vec<Row>,
    /// What stays in the blob column.
    pub residual: Value,
    /// Invalid values that `keep` rules left in the residual.
    pub warnings: Vec<Invalid>,
}

/// An invalid value: where, under which rule, what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The rule that claims the value.
    pub rule: String,
    /// JSON path of the value, `$.a.b[2]`.
    pub path: String,
    /// What the rule expected.
    pub expected: String,
    /// The value, as JSON text (shortened when long).
    pub value: String,
}

impl Invalid {
    /// What the rule expected without this value's own detail (what it
    /// would come back as), to group users by: failures in
    /// `decant.user_state`, the census's groups.
    pub fn reason(&self) -> &str {
        self.expected
            .split(" (it would come back as ")
            .next()
            .unwrap_or(&self.expected)
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rule `{}` at {}: {}, got {}",
            self.rule, self.path, self.expected, self.value
        )
    }
}

impl std::error::Error for Invalid {}

/// Explodes a blob. A value invalid under a `fail` rule is an error; under
/// a `keep` rule it stays in the residual and is listed in `warnings`.
pub fn explode(spec: &Spec, blob: &Value) -> Result<Exploded, Invalid> {
    explode_with(spec, blob, false)
}

/// As [`explode`], for any view of the blob (the migration explodes the
/// borrowed [`crate::core::json::Json`] it parsed from the database's text).
pub fn explode_view<V: JsonView>(spec: &Spec, blob: &V) -> Result<Exploded, Invalid> {
    explode_with(spec, blob, false)
}

/// As [`explode`], but every rule acts as `keep`: used for writes through
/// the compatibility layer, which must never lose a client's value.
pub fn explode_lenient(spec: &Spec, blob: &Value) -> Exploded {
    explode_with(spec, blob, true).expect("lenient explode does not fail")
}

fn explode_with<V: JsonView>(spec: &Spec, blob: &V, lenient: bool) -> Result<Exploded, Invalid> {
    let mut w = Walker {
        spec,
        lenient,
        rows: Vec::new(),
        warnings: Vec::new(),
        path: Vec::new(),
        captures: Vec::new(),
        positions: Vec::new(),
    };
    let residual = w.walk(blob, &spec.trie)?;
    Ok(Exploded {
        rows: w.rows,
        residual: residual.unwrap_or_else(|| Value::Object(Map::new())),
        warnings: w.warnings,
    })
}

enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

struct Walker<'s, 'v> {
    spec: &'s Spec,
    lenient: bool,
    rows: Vec<Row>,
    warnings: Vec<Invalid>,
    path: Vec<Step<'v>>,
    captures: Vec<&'v str>,
    /// Positions of the array elements on the way (`list[{i}].more`).
    positions: Vec<usize>,
}

/// Where [`Walker::take_nested`] puts what it takes.
struct Taking<'r, 'x> {
    rule: &'r Rule,
    values: &'x mut Vec<ColumnValue>,
    problems: &'x mut Vec<Invalid>,
    /// Columns whose value was invalid and kept in the residual.
    kept: &'x mut Vec<usize>,
    /// The JSON path below the rule's value, for problems.
    at: String,
}

struct Claim {
    row: Option<Row>,
    residual: Option<Value>,
    problems: Vec<Invalid>,
}

impl<'v> Walker<'_, 'v> {
    /// Walks `v` at `node`; returns what stays in the residual here.
    fn walk<V: JsonView>(&mut self, v: &'v V, node: &Node) -> Result<Option<Value>, Invalid> {
        if let Some(ri) = node.terminal {
            if node.literal.is_empty() {
                return self.claim(v, ri);
            }
            return self.claim_beside(v, ri, node);
        }
        if let Some(element) = node.array.as_deref() {
            return self.walk_array(v, node, element);
        }
        let Some(map) = v.object() else {
            if self.path.is_empty() {
                // the blob itself is not an object: no rule is to blame
                let expected = if v.is_null() {
                    // players who never saved: the fixup is the usual answer
                    "expected a JSON object at the root of the blob (a fixup with \
                     `op = \"null_to_object\"` and `path = \"$\"` migrates a null one as {})"
                } else {
                    "expected a JSON object at the root of the blob"
                };
                let mut problem = self.invalid(&self.spec.rules[node.first_rule], expected, v);
                problem.rule = "(blob)".into();
                return self
                    .settle(node.strict, vec![problem])
                    .map(|()| Some(v.to_value()));
            }
            let problem = self.invalid(&self.spec.rules[node.first_rule], "expected an object", v);
            return self
                .settle(node.strict, vec![problem])
                .map(|()| Some(v.to_value()));
        };
        if map.len() == 0 {
            return Ok(Some(v.to_value()));
        }
        let mut residual = Map::new();
        for (k, child_v) in map {
            let (child, captured) = match node.literal.get(k) {
                Some(c) => (c, false),
                None => match node.wildcard.as_deref() {
                    Some(c) => (c, true),
                    None => {
                        residual.insert(k.to_string(), child_v.to_value());
                        continue;
                    }
                },
            };
            self.path.push(Step::Key(k));
            if captured {
                self.captures.push(k);
            }
            let r = self.walk(child_v, child);
            if captured {
                self.captures.pop();
            }
            self.path.pop();
            if let Some(r) = r? {
                residual.insert(k.to_string(), r);
            }
        }
        Ok((!residual.is_empty()).then_some(Value::Object(residual)))
    }

    /// An array that paths go through (`list[{i}].more`): each element is
    /// walked on its own. The residual keeps the array at its length when
    /// any element leaves something, an element claimed whole standing as
    /// an empty container the rows fill back; nothing when every element
    /// is claimed whole (the rows make the array again).
    fn walk_array<V: JsonView>(
        &mut self,
        v: &'v V,
        node: &Node,
        element: &Node,
    ) -> Result<Option<Value>, Invalid> {
        let first = &self.spec.rules[node.first_rule];
        let Some(items) = v.array() else {
            let problem = self.invalid(first, "expected an array", v);
            return self
                .settle(node.strict, vec![problem])
                .map(|()| Some(v.to_value()));
        };
        if items.is_empty() {
            return Ok(Some(v.to_value()));
        }
        // too long for a position column under it: one problem, kept whole
        let last = items.len() - 1;
        for &(ti, ci) in &node.array_limits {
            let column = &self.spec.tables[ti].columns[ci];
            if let Err(m) = column.check(&Value::from(last)) {
                let problem = self.invalid(
                    first,
                    &format!(
                        "an array whose last position fits column `{}` of table `{}` ({m})",
                        column.name, self.spec.tables[ti].name
                    ),
                    &Value::from(format!("{} elements", items.len())),
                );
                return self
                    .settle(node.strict, vec![problem])
                    .map(|()| Some(v.to_value()));
            }
        }
        let mut left = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            self.path.push(Step::Index(i));
            self.positions.push(i);
            let r = self.walk(item, element);
            self.positions.pop();
            self.path.pop();
            left.push(r?);
        }
        if left.iter().all(Option::is_none) {
            return Ok(None);
        }
        let holder = if element.holds_arrays(&self.spec.rules) {
            Value::Array(Vec::new())
        } else {
            Value::Object(Map::new())
        };
        Ok(Some(Value::Array(
            left.into_iter()
                .map(|r| r.unwrap_or_else(|| holder.clone()))
                .collect(),
        )))
    }

    /// An object rule's claim on an object where deeper rules claim some
    /// keys: it claims the object without them, they claim theirs, and
    /// what both leave is the residual here.
    fn claim_beside<V: JsonView>(
        &mut self,
        v: &'v V,
        ri: usize,
        node: &Node,
    ) -> Result<Option<Value>, Invalid> {
        let Some(map) = v.object() else {
            return self.claim(v, ri);
        };
        let rule = &self.spec.rules[ri];
        let mut own = Map::new();
        let mut inside = Vec::new();
        for (k, child_v) in map {
            match node.literal.get(k) {
                Some(child) => inside.push((k, child_v, child)),
                None => {
                    own.insert(k.to_string(), child_v.to_value());
                }
            }
        }
        let c = self.claim_value(rule, &Value::Object(own), None);
        self.settle(rule.on_invalid == Policy::Fail, c.problems)?;
        self.rows.extend(c.row);
        let mut residual = match c.residual {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        for (k, child_v, child) in inside {
            self.path.push(Step::Key(k));
            let r = self.walk(child_v, child);
            self.path.pop();
            if let Some(r) = r? {
                residual.insert(k.to_string(), r);
            }
        }
        Ok((!residual.is_empty()).then_some(Value::Object(residual)))
    }

    /// Records problems as warnings, or fails when the policy is strict.
    fn settle(&mut self, strict: bool, mut problems: Vec<Invalid>) -> Result<(), Invalid> {
        if strict && !self.lenient && !problems.is_empty() {
            return Err(problems.swap_remove(0));
        }
        self.warnings.append(&mut problems);
        Ok(())
    }

    fn claim<V: JsonView>(&mut self, v: &'v V, ri: usize) -> Result<Option<Value>, Invalid> {
        let rule = &self.spec.rules[ri];
        let strict = rule.on_invalid == Policy::Fail;
        if rule.position.is_none() {
            let c = self.claim_value(rule, v, None);
            self.settle(strict, c.problems)?;
            self.rows.extend(c.row);
            return Ok(c.residual);
        }
        let Some(items) = v.array() else {
            let problem = self.invalid(rule, "expected an array", v);
            return self
                .settle(strict, vec![problem])
                .map(|()| Some(v.to_value()));
        };
        if items.is_empty() {
            return Ok(Some(v.to_value()));
        }
        // An array longer than its position column counts is one problem
        // (kept or failed whole), not one per element past the limit.
        if let Some(ci) = rule.position {
            let column = &self.spec.tables[rule.table].columns[ci];
            let last = items.len() - 1;
            if let Err(m) = column.check(&Value::from(last)) {
                let problem = self.invalid(
                    rule,
                    &format!(
                        "an array whose last position fits column `{}` ({m})",
                        column.name
                    ),
                    &Value::from(format!("{} elements", items.len())),
                );
                return self
                    .settle(strict, vec![problem])
                    .map(|()| Some(v.to_value()));
            }
        }
        // Each element on its own: one the rule refuses stays in the
        // residual at its position (an object element with refused keys,
        // those keys), an element claimed whole stands there as an empty
        // object its row fills back; the array goes when every element is
        // claimed whole (the rows make it again).
        let mut rows = Vec::with_capacity(items.len());
        let mut problems = Vec::new();
        let mut left = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            self.path.push(Step::Index(i));
            // an element leaves a residual only with a problem
            let c = self.claim_value(rule, item, Some(i));
            self.path.pop();
            problems.extend(c.problems);
            rows.extend(c.row);
            left.push(c.residual);
        }
        self.settle(strict, problems)?;
        self.rows.append(&mut rows);
        if left.iter().all(Option::is_none) {
            return Ok(None);
        }
        Ok(Some(Value::Array(
            left.into_iter()
                .map(|r| r.unwrap_or_else(|| Value::Object(Map::new())))
                .collect(),
        )))
    }

    fn claim_value<V: JsonView>(&self, rule: &Rule, v: &V, position: Option<usize>) -> Claim {
        let table = &self.spec.tables[rule.table];
        let mut values = vec![ColumnValue::Null; table.columns.len()];
        let whole_invalid = |problem: Invalid| Claim {
            row: None,
            residual: Some(v.to_value()),
            problems: vec![problem],
        };
        let mut caps = self.captures.iter();
        let mut positions = self.positions.iter();
        for seg in &rule.segments {
            if let Segment::Position(ci) = seg {
                let p = *positions.next().expect("one position per array step");
                match table.columns[*ci].check(&Value::from(p)) {
                    Ok(cv) => values[*ci] = cv,
                    Err(m) => {
                        let col = &table.columns[*ci].name;
                        return whole_invalid(self.invalid(
                            rule,
                            &format!("position for `{col}`: {m}"),
                            &Value::from(p),
                        ));
                    }
                }
            }
            if let Segment::Capture(ci) = seg {
                let key = caps.next().expect("one capture per wildcard step");
                match table.columns[*ci].check_key(key) {
                    Ok(cv) => values[*ci] = cv,
                    Err(m) => {
                        let col = &table.columns[*ci].name;
                        // a time column's hint names types a key column
                        // cannot have (the spec refuses them there)
                        let m = match m.split_once(": declare the column `timestamptz") {
                            Some((head, _)) => format!(
                                "{head} (a captured key's column is text, date or an integer \
                                 type: declare it `text` to keep such keys as written)"
                            ),
                            None => m,
                        };
                        return whole_invalid(self.invalid(
                            rule,
                            &format!("key for `{col}`: {m}"),
                            &Value::String((*key).to_string()),
                        ));
                    }
                }
            }
        }
        if let (Some(ci), Some(p)) = (rule.position, position) {
            match table.columns[ci].check(&Value::from(p)) {
                Ok(cv) => values[ci] = cv,
                Err(m) => return whole_invalid(self.invalid(rule, &format!("position: {m}"), v)),
            }
        }
        for (ci, cv) in &rule.constants {
            values[*ci] = cv.clone();
        }
        // A primary key entry past what a B-tree page holds is refused by
        // the server (54000) as the rows are written: a check here makes it
        // an invalid value under the rule's policy, which `check` sees.
        let key_bytes = key_entry_bytes(table, &values);
        if key_bytes > MAX_KEY_ENTRY {
            return whole_invalid(self.invalid(
                rule,
                &format!(
                    "expected keys that fit table `{}`'s primary key index \
                     (a B-tree entry of at most {MAX_KEY_ENTRY} bytes)",
                    table.name
                ),
                v,
            ));
        }
        let mut problems = Vec::new();
        let mut residual = None;
        match &rule.kind {
            RuleKind::Scalar { column } => match table.columns[*column].check(v) {
                Ok(cv) => values[*column] = cv,
                Err(m) => return whole_invalid(self.invalid(rule, &m, v)),
            },
            RuleKind::Object {
                keys,
                nested,
                extra,
            } => {
                let Some(map) = v.object() else {
                    return whole_invalid(self.invalid(rule, "expected an object", v));
                };
                let mut extra_map = Map::new();
                let mut kept = Map::new();
                let mut kept_nested = Vec::new();
                for (k, kv) in map {
                    let known = keys.iter().find(|(jk, _)| jk == k);
                    if known.is_none() && nested.iter().any(|(p, _)| p[0] == k) {
                        let mut taking = Taking {
                            rule,
                            values: &mut values,
                            problems: &mut problems,
                            kept: &mut kept_nested,
                            at: show_key(k),
                        };
                        let (e, kp) = self.take_nested(&mut taking, kv, k, nested, 1);
                        if let Some(e) = e {
                            extra_map.insert(k.to_string(), e);
                        }
                        if let Some(kp) = kp {
                            kept.insert(k.to_string(), kp);
                        }
                        continue;
                    }
                    match known {
                        Some((_, ci)) if !kv.is_null() => match table.columns[*ci].check(kv) {
                            Ok(cv) => values[*ci] = cv,
                            Err(m) => {
                                let mut p = self.invalid(rule, &m, kv);
                                p.path = format!("{}{}", p.path, show_key(k));
                                problems.push(p);
                                kept.insert(k.to_string(), kv.to_value());
                            }
                        },
                        // a known key holding null goes to extra, so that
                        // "absent" (NULL column) and "null" stay distinct
                        _ => {
                            extra_map.insert(k.to_string(), kv.to_value());
                        }
                    }
                }
                // a not-null key column must be present
                for (jk, ci) in keys {
                    let col = &table.columns[*ci];
                    if col.not_null && values[*ci] == ColumnValue::Null && !kept.contains_key(jk) {
                        return whole_invalid(self.invalid(
                            rule,
                            &format!("key `{jk}` is required"),
                            v,
                        ));
                    }
                }
                for (path, ci) in nested {
                    let col = &table.columns[*ci];
                    if col.not_null && values[*ci] == ColumnValue::Null && !kept_nested.contains(ci)
                    {
                        return whole_invalid(self.invalid(
                            rule,
                            &format!("key `{}` is required", path.join(".")),
                            v,
                        ));
                    }
                }
                if !extra_map.is_empty() {
                    values[*extra] = ColumnValue::Json(Value::Object(extra_map));
                }
                if !kept.is_empty() {
                    residual = Some(Value::Object(kept));
                }
            }
        }
        let row = Row {
            table: rule.table,
            values,
        };
        // A row of a general rule must not look like a more specific one's.
        if self.spec.routes[rule.table].len() > 1 {
            if let Ok(other) = route(self.spec, &row) {
                if !std::ptr::eq(&self.spec.rules[other], rule) {
                    let name = &self.spec.rules[other].name;
                    return whole_invalid(self.invalid(
                        rule,
                        &format!("a row that rule `{name}` would claim when read back"),
                        v,
                    ));
                }
            }
        }
        Claim {
            row: Some(row),
            residual,
            problems,
        }
    }

    /// What an object rule's nested key paths take out of `v`, the value
    /// at their first `depth` keys (the last of them `key`): each path's
    /// value into its column (an invalid one kept, a null one left in
    /// extra), and what is left for extra and for the residual (`None`:
    /// nothing, the object was emptied and the rows make it again). A
    /// non-object or an empty object stays whole in extra.
    fn take_nested<V: JsonView>(
        &self,
        t: &mut Taking<'_, '_>,
        v: &'v V,
        key: &str,
        paths: &[(Vec<String>, usize)],
        depth: usize,
    ) -> (Option<Value>, Option<Value>) {
        let Some(map) = v.object().filter(|m| m.len() > 0) else {
            return (Some(v.to_value()), None);
        };
        let table = &self.spec.tables[t.rule.table];
        let mut extra = Map::new();
        let mut kept = Map::new();
        for (k, kv) in map {
            let mut here = paths
                .iter()
                .filter(|(p, _)| p[depth - 1] == key && p.get(depth).is_some_and(|s| s == k))
                .peekable();
            let Some((first, ci)) = here.peek().map(|(p, ci)| (p, *ci)) else {
                extra.insert(k.to_string(), kv.to_value());
                continue;
            };
            let len = t.at.len();
            t.at.push_str(&show_key(k));
            if first.len() == depth + 1 {
                // (paths do not overlap: this one alone ends here)
                if kv.is_null() {
                    extra.insert(k.to_string(), Value::Null);
                } else {
                    match table.columns[ci].check(kv) {
                        Ok(cv) => t.values[ci] = cv,
                        Err(m) => {
                            let mut p = self.invalid(t.rule, &m, kv);
                            p.path.push_str(&t.at);
                            t.problems.push(p);
                            t.kept.push(ci);
                            kept.insert(k.to_string(), kv.to_value());
                        }
                    }
                }
            } else {
                let deeper: Vec<(Vec<String>, usize)> = here.cloned().collect();
                let (e, kp) = self.take_nested(t, kv, k, &deeper, depth + 1);
                if let Some(e) = e {
                    extra.insert(k.to_string(), e);
                }
                if let Some(kp) = kp {
                    kept.insert(k.to_string(), kp);
                }
            }
            t.at.truncate(len);
        }
        (
            (!extra.is_empty()).then_some(Value::Object(extra)),
            (!kept.is_empty()).then_some(Value::Object(kept)),
        )
    }

    fn invalid<V: JsonView>(&self, rule: &Rule, expected: &str, v: &V) -> Invalid {
        let mut path = String::from("$");
        for s in &self.path {
            match s {
                Step::Key(k) => path.push_str(&show_key(k)),
                Step::Index(i) => path.push_str(&format!("[{i}]")),
            }
        }
        let mut value = v.to_value().to_string();
        if value.len() > 120 {
            let cut = (0..=117)
                .rev()
                .find(|&i| value.is_char_boundary(i))
                .unwrap_or(0);
            value.truncate(cut);
            value.push_str("...");
        }
        Invalid {
            rule: rule.name.clone(),
            path,
            expected: expected.to_string(),
            value,
        }
    }
}

/// An object key as a step of a JSON path: `.key`, or `["a.b"]` when the
/// key is empty or holds anything but letters, digits and `_`.
pub(crate) fn show_key(k: &str) -> String {
    if !k.is_empty() && k.chars().all(|c| c.is_alphanumeric() || c == '_') {
        format!(".{k}")
    } else {
        format!("[{}]", Value::String(k.to_string()))
    }
}

/// The rule a row belongs to: the most specific rule of its table whose
/// constants all match the row.
pub fn route(spec: &Spec, row: &Row) -> Result<usize, String> {
    spec.route_by(row.table, |ci| Some(&row.values[ci]))
        .ok_or_else(|| {
            format!(
                "a row of table `{}` matches no rule",
                spec.tables[row.table].name
            )
        })
}

/// One step of the place a row's value goes: an object key or an array
/// position.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum At<'a> {
    Key(Cow<'a, str>),
    Index(usize),
}

impl fmt::Display for At<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            At::Key(k) => write!(f, ".{k}"),
            At::Index(i) => write!(f, "[{i}]"),
        }
    }
}

fn show_at(path: &[At<'_>]) -> String {
    let s: String = path.iter().map(ToString::to_string).collect();
    s.trim_start_matches('.').to_string()
}

/// An array element not made yet while rows fill an array that rows make
/// (a position whose row comes later). PostgreSQL's jsonb cannot hold a
/// NUL character, so no value of a blob looks like it.
const HOLE: &str = "\u{0}decant: no row for this position";

fn position_of(cv: &ColumnValue) -> Result<i64, String> {
    match *cv {
        ColumnValue::I16(p) => Ok(i64::from(p)),
        ColumnValue::I32(p) => Ok(i64::from(p)),
        ColumnValue::I64(p) => Ok(p),
        ref other => Err(format!("position holds {other:?}")),
    }
}

/// Rebuilds the blob from rows and the residual.
pub fn reconstruct(spec: &Spec, rows: &[Row], residual: &Value) -> Result<Value, String> {
    let mut root = residual.clone();
    let mut arrays: BTreeMap<Vec<At<'_>>, Vec<(i64, Value)>> = BTreeMap::new();
    let mut grew = false;
    for row in rows {
        let rule = &spec.rules[route(spec, row)?];
        let table = &spec.tables[rule.table];
        let mut path: Vec<At<'_>> = Vec::with_capacity(rule.segments.len());
        for seg in &rule.segments {
            path.push(match seg {
                Segment::Literal(k) => At::Key(Cow::Borrowed(k.as_str())),
                Segment::Position(ci) => {
                    let p = position_of(&row.values[*ci])?;
                    At::Index(usize::try_from(p).map_err(|_| {
                        format!(
                            "table `{}`: position column `{}` holds {p}",
                            table.name, table.columns[*ci].name
                        )
                    })?)
                }
                Segment::Capture(ci) => At::Key(match &row.values[*ci] {
                    ColumnValue::Text(s) => Cow::Borrowed(s.as_str()),
                    // an integer or a date key, in the canonical spelling it
                    // was taken in
                    other => match other.object_key() {
                        Some(k) => Cow::Owned(k),
                        None => {
                            return Err(format!(
                                "table `{}`: key column `{}` holds {other:?}",
                                table.name, table.columns[*ci].name
                            ));
                        }
                    },
                }),
            });
        }
        let value = row_value(spec, rule, row)?;
        match rule.position {
            Some(ci) => {
                let pos = position_of(&row.values[ci])?;
                arrays.entry(path).or_default().push((pos, value));
            }
            None => grew |= insert_at(&mut root, &path, value)?,
        }
    }
    for (path, mut items) in arrays {
        items.sort_by_key(|(p, _)| *p);
        // the residual kept the array for elements the rule refused: each
        // row fills its element's place (an empty object, or the keys of
        // an object element the rule refused)
        if let Some(Value::Array(kept)) = value_at_mut(&mut root, &path) {
            if !kept.is_empty() {
                fill_kept(kept, items, &show_at(&path))?;
                continue;
            }
        }
        if items.iter().enumerate().any(|(i, (p, _))| *p != i as i64) {
            return Err(format!(
                "array at {}: positions are not 0..n",
                show_at(&path)
            ));
        }
        grew |= insert_at(
            &mut root,
            &path,
            Value::Array(items.into_iter().map(|(_, v)| v).collect()),
        )?;
    }
    if grew && has_hole(&root) {
        return Err("an array on a rule's path: positions are not 0..n".into());
    }
    Ok(root)
}

/// The value at `path` in `root`, if the residual holds one there.
fn value_at_mut<'a>(root: &'a mut Value, path: &[At<'_>]) -> Option<&'a mut Value> {
    path.iter().try_fold(root, |here, step| match (here, step) {
        (Value::Object(map), At::Key(k)) => map.get_mut(k.as_ref()),
        (Value::Array(items), At::Index(p)) => items.get_mut(*p),
        _ => None,
    })
}

/// Puts an array rule's rows into the array the residual kept at their
/// path: each in its element's place, which the explode left as an empty
/// object (an element claimed whole) or as the keys of an object element
/// the rule refused.
fn fill_kept(kept: &mut [Value], items: Vec<(i64, Value)>, at: &str) -> Result<(), String> {
    let len = kept.len();
    for (p, value) in items {
        let slot = usize::try_from(p)
            .ok()
            .and_then(|i| kept.get_mut(i))
            .ok_or_else(|| {
                format!("array at {at}: a row at position {p} past the residual's {len} elements")
            })?;
        match (slot, value) {
            (Value::Object(here), Value::Object(add)) => {
                merge_into(here, add, &format!("{at}[{p}]"))?
            }
            (slot @ Value::Object(_), value) if slot.as_object().is_some_and(Map::is_empty) => {
                *slot = value;
            }
            _ => return Err(format!("at {at}[{p}]: row and residual collide")),
        }
    }
    Ok(())
}

fn has_hole(v: &Value) -> bool {
    match v {
        Value::String(s) => s == HOLE,
        Value::Array(items) => items.iter().any(has_hole),
        Value::Object(map) => map.values().any(has_hole),
        _ => false,
    }
}

/// An empty container for the step after it: an object before a key, an
/// array before a position.
fn container_for(next: Option<&At<'_>>) -> Value {
    match next {
        Some(At::Index(_)) => Value::Array(Vec::new()),
        _ => Value::Object(Map::new()),
    }
}

/// Puts a row's value at its place, making the objects and arrays on the
/// way; merges an object into the object the residual holds there, and
/// fills an empty container the residual left for an element claimed
/// whole. Says whether an array grew by a position (its earlier positions
/// are holes until their rows come).
fn insert_at(root: &mut Value, path: &[At<'_>], value: Value) -> Result<bool, String> {
    let mut here = root;
    let mut grew = false;
    let mut value = Some(value);
    for (i, step) in path.iter().enumerate() {
        let last = i + 1 == path.len();
        let slot: &mut Value = match step {
            At::Key(key) => {
                let Value::Object(map) = here else {
                    return Err(format!(
                        "at {}: a row lands inside a non-object",
                        show_at(&path[..i])
                    ));
                };
                // look up before inserting: most steps exist already, and an
                // entry() would copy the key every time
                if !map.contains_key(key.as_ref()) {
                    let fresh = if last {
                        value.take().expect("placed once")
                    } else {
                        container_for(path.get(i + 1))
                    };
                    map.insert(key.to_string(), fresh);
                    if last {
                        return Ok(grew);
                    }
                }
                map.get_mut(key.as_ref()).expect("present")
            }
            At::Index(p) => {
                let Value::Array(items) = here else {
                    return Err(format!(
                        "at {}: a row lands inside a non-array",
                        show_at(&path[..i])
                    ));
                };
                if items.len() <= *p {
                    grew = true;
                    items.resize(*p + 1, Value::String(HOLE.into()));
                }
                let slot = &mut items[*p];
                if matches!(slot, Value::String(h) if h == HOLE) {
                    if last {
                        *slot = value.take().expect("placed once");
                        return Ok(grew);
                    }
                    *slot = container_for(path.get(i + 1));
                }
                slot
            }
        };
        if last {
            let value = value.take().expect("placed once");
            match (slot, value) {
                // the residual holds the keys a keep rule left behind
                // (nested keys: at any depth)
                (Value::Object(existing), Value::Object(add)) => {
                    merge_into(existing, add, &show_at(path))?;
                }
                // an element claimed whole: the residual left an empty array
                (Value::Array(existing), Value::Array(add)) if existing.is_empty() => {
                    *existing = add;
                }
                _ => return Err(format!("at {}: row and residual collide", show_at(path))),
            }
            return Ok(grew);
        }
        here = slot;
    }
    Err("a rule with an empty path".into())
}

fn row_value(spec: &Spec, rule: &Rule, row: &Row) -> Result<Value, String> {
    let table = &spec.tables[rule.table];
    Ok(match &rule.kind {
        RuleKind::Scalar { column } => {
            value::to_json(table.columns[*column].ty, &row.values[*column])
        }
        RuleKind::Object {
            keys,
            nested,
            extra,
        } => {
            let mut map = Map::new();
            for (jk, ci) in keys {
                let cv = &row.values[*ci];
                if *cv != ColumnValue::Null {
                    map.insert(jk.clone(), value::to_json(table.columns[*ci].ty, cv));
                }
            }
            match &row.values[*extra] {
                ColumnValue::Null => {}
                ColumnValue::Json(Value::Object(e)) => {
                    for (k, v) in e {
                        if map.insert(k.clone(), v.clone()).is_some() {
                            return Err(format!("key `{k}` is both a column and in extra"));
                        }
                    }
                }
                other => return Err(format!("extra column holds {other:?}")),
            }
            // nested keys into the objects extra kept the rest of, making
            // the objects they emptied
            for (path, ci) in nested {
                let cv = &row.values[*ci];
                if *cv == ColumnValue::Null {
                    continue;
                }
                let mut here = &mut map;
                for k in &path[..path.len() - 1] {
                    if !here.contains_key(k) {
                        here.insert(k.clone(), Value::Object(Map::new()));
                    }
                    here = match here.get_mut(k) {
                        Some(Value::Object(m)) => m,
                        _ => {
                            return Err(format!(
                                "key `{}`: extra holds a non-object on its way",
                                path.join(".")
                            ));
                        }
                    };
                }
                let last = path[path.len() - 1].clone();
                if here
                    .insert(last, value::to_json(table.columns[*ci].ty, cv))
                    .is_some()
                {
                    return Err(format!(
                        "key `{}` is both a column and in extra",
                        path.join(".")
                    ));
                }
            }
            Value::Object(map)
        }
    })
}

/// Merges object `add` into `existing`, at every depth; any other value
/// met twice is a collision at `at`.
fn merge_into(
    existing: &mut Map<String, Value>,
    add: Map<String, Value>,
    at: &str,
) -> Result<(), String> {
    for (k, v) in add {
        match (existing.get_mut(&k), v) {
            (None, v) => {
                existing.insert(k, v);
            }
            (Some(Value::Object(e)), Value::Object(a)) => merge_into(e, a, &format!("{at}.{k}"))?,
            _ => return Err(format!("at {at}.{k}: row and residual collide")),
        }
    }
    Ok(())
}

/// The largest B-tree index entry PostgreSQL stores (`index row size ...
/// exceeds btree version 4 maximum 2704`).
pub(crate) const MAX_KEY_ENTRY: usize = 2704;

/// What a primary key entry holds besides its key columns, counted by
/// [`key_entry_bytes`]: the entry's header and the user id (16 bytes, a
/// uuid's; a text id's own length is not counted).
pub(crate) const KEY_ENTRY_BASE: usize = 24;

/// The bytes a text key column takes in an index entry: a 4-byte header,
/// the text, aligned to 4. The views compute the same in SQL.
pub(crate) fn text_key_bytes(len: usize) -> usize {
    (len + 7) / 4 * 4
}

/// [`text_key_bytes`] as SQL, of a text expression's bytes.
pub(crate) fn text_key_bytes_sql(text: &str) -> String {
    format!("(octet_length({text}) + 7) / 4 * 4")
}

/// The bytes a key column's value takes in an index entry (see
/// [`text_key_bytes`]; any other value counted as 8).
pub(crate) fn key_part_bytes(v: &ColumnValue) -> usize {
    match v {
        ColumnValue::Text(t) | ColumnValue::Numeric(t) => text_key_bytes(t.len()),
        _ => 8,
    }
}

/// The size of a row's primary key entry as the server lays it out
/// uncompressed, about (an upper bound). The server may compress a
/// longer entry, but only when its keys repeat themselves: a key of
/// kilobytes is an invalid value either way, the same in `check`, `run`
/// and the views.
fn key_entry_bytes(table: &crate::core::spec::Table, values: &[ColumnValue]) -> usize {
    KEY_ENTRY_BASE
        + table
            .key
            .iter()
            .map(|&ci| key_part_bytes(&values[ci]))
            .sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::json::json_eq;
    use crate::core::number;
    use proptest::prelude::*;
    use serde_json::json;

    fn game() -> Spec {
        Spec::parse(include_str!("../../fixtures/game/decant.toml")).unwrap()
    }

    fn round_trip(spec: &Spec, blob: &Value) -> Exploded {
        let e = explode(spec, blob).unwrap_or_else(|i| panic!("{i}"));
        let back = reconstruct(spec, &e.rows, &e.residual).unwrap();
        assert!(
            json_eq(&back, blob),
            "round trip differs\n  blob: {blob}\n  back: {back}\n  residual: {}",
            e.residual
        );
        e
    }

    fn example() -> Value {
        json!({"bots": {"selected": ["bot_03", "bot_11"], "bot_03": {"level": 4, "unlocked": true}},
         "pref": {"sound": true, "theme": "dark"},
         "xp": 1234.5,
         "marriage": {"config": {"mans": 3, "mode": "kidnap"},
                      "stats": {"lastPlayed": 1669702024365u64,
                                "kidnap": {"points": 113, "gamesPlayed": 13, "gamesWon": 6},
                                "murder": {"points": 20, "gamesPlayed": 4, "gamesWon": 1}},
                      "achievements": {"first_win": {"unlockedAt": 1669702024365u64, "progress": 1}}}})
    }

    #[test]
    fn the_spec_example_explodes_fully() {
        let spec = game();
        let e = round_trip(&spec, &example());
        assert_eq!(e.residual, json!({}), "everything is claimed");
        assert!(e.warnings.is_empty());
        let count = |t: &str| {
            let ti = spec.table(t).unwrap();
            e.rows.iter().filter(|r| r.table == ti).count()
        };
        assert_eq!(count("user_statistic"), 2 + 6);
        assert_eq!(count("user_selected_bot"), 2);
        assert_eq!(count("user_bot"), 1);
        assert_eq!(count("user_preference"), 2);
        assert_eq!(count("user_config"), 1);
        assert_eq!(count("user_achievement"), 1);
    }

    #[test]
    fn an_array_longer_than_its_position_type_is_one_problem() {
        // `selected_bots` keeps (int2 positions), a copy of it fails
        let keep = game();
        let fail = Spec::parse(&include_str!("../../fixtures/game/decant.toml").replacen(
            "value = \"bot_id\"\non_invalid = \"keep\"",
            "value = \"bot_id\"\non_invalid = \"fail\"",
            1,
        ))
        .unwrap();
        assert_ne!(
            fail.rules.iter().map(|r| r.on_invalid).collect::<Vec<_>>(),
            keep.rules.iter().map(|r| r.on_invalid).collect::<Vec<_>>()
        );
        let long: Vec<Value> = (0..40_000).map(|i| json!(format!("bot_{i}"))).collect();
        let blob = json!({"bots": {"selected": long}});
        let e = round_trip(&keep, &blob);
        assert_eq!(e.warnings.len(), 1, "one warning, not one per element");
        let w = &e.warnings[0];
        assert!(
            w.value.contains("40000 elements") && w.expected.contains("`position`"),
            "{w}"
        );
        assert_eq!(e.residual, blob);
        let err = explode(&fail, &blob).unwrap_err();
        assert!(err.expected.contains("last position fits"), "{err}");
        // exactly at the limit: 32,768 elements fit (positions 0..=32,767)
        let fits: Vec<Value> = (0..32_768).map(|i| json!(format!("b{i}"))).collect();
        let e = round_trip(&fail, &json!({"bots": {"selected": fits}}));
        assert!(e.warnings.is_empty());
        assert_eq!(e.rows.len(), 32_768);
    }

    #[test]
    fn unknown_keys_and_empty_containers_stay_in_the_residual() {
        let spec = game();
        let blob = json!({"legacyCoins": 5, "marriage": {"stats": {}, "oldStats": {"a": 1}},
                          "bots": {"selected": [], "b1": {"level": 2, "skin": "red", "unlocked": null}},
                          "pref": {}});
        let e = round_trip(&spec, &blob);
        assert_eq!(
            e.residual,
            json!({"legacyCoins": 5, "marriage": {"stats": {}, "oldStats": {"a": 1}},
                   "bots": {"selected": []}, "pref": {}})
        );
        let bot = e
            .rows
            .iter()
            .find(|r| r.table == spec.table("user_bot").unwrap())
            .unwrap();
        assert_eq!(
            bot.values[1],
            ColumnValue::Json(json!({"skin": "red", "unlocked": null}))
        );
    }

    #[test]
    fn a_blob_that_is_not_an_object_is_named_as_such() {
        let spec = game();
        for blob in [json!([1, 2]), json!("text"), json!(null), json!(7)] {
            let e = explode(&spec, &blob).unwrap_err();
            assert_eq!(e.rule, "(blob)", "{blob}");
            assert_eq!(e.path, "$");
            assert!(e.expected.contains("JSON object at the root"), "{e}");
            // a null one names the fixup that migrates it
            assert_eq!(e.expected.contains("null_to_object"), blob.is_null(), "{e}");
            // kept whole by the lenient explode, and rebuilt
            let kept = explode_lenient(&spec, &blob);
            assert!(kept.rows.is_empty() && kept.warnings.len() == 1);
            assert_eq!(
                reconstruct(&spec, &kept.rows, &kept.residual).unwrap(),
                blob
            );
        }
    }

    #[test]
    fn a_blob_that_is_not_an_object_migrates_whole_when_no_rule_fails() {
        // every rule `keep`: the root is an invalid value kept whole, as
        // the README says, instead of failing the user
        let spec = Spec::parse(
            r#"
[source]
table = "u"
id = "id"
blob = "data"
[tables.stat.columns]
k = "text"
v = "numeric"
[[rules]]
name = "stats"
path = "s.{k}"
table = "stat"
value = "v"
on_invalid = "keep"
"#,
        )
        .unwrap();
        for blob in [json!([1, 2]), json!("text"), json!(null), json!(7)] {
            let e = explode(&spec, &blob).unwrap();
            assert!(e.rows.is_empty(), "{blob}");
            assert_eq!(e.residual, blob);
            assert_eq!(e.warnings.len(), 1, "{blob}");
            assert_eq!(e.warnings[0].rule, "(blob)");
        }
    }

    #[test]
    fn a_captured_key_of_another_time_form_is_told_a_type_a_key_may_have() {
        // it said "declare the column `timestamptz_iso`", which the spec
        // refuses for a captured key
        let spec = Spec::parse(
            r#"
[source]
table = "u"
[tables.visit.columns]
day = "date"
n = "int4"
[[rules]]
name = "visits"
path = "visits.{day}"
table = "visit"
value = "n"
"#,
        )
        .unwrap();
        for key in ["2024-02-29T00:00:00Z", "2024-02-29T00:00:00.123+00:00"] {
            let e = explode(&spec, &json!({"visits": {key: 1}})).unwrap_err();
            assert!(
                e.expected
                    .contains("a captured key's column is text, date or an integer type")
                    && !e.expected.contains("timestamptz"),
                "{key}: {e}"
            );
        }
    }

    #[test]
    fn invalid_values_under_fail_rules_are_precise_errors() {
        let spec = game();
        let blob = json!({"marriage": {"stats": {"kidnap": {"points": -3}}}});
        let e = explode(&spec, &blob).unwrap_err();
        assert_eq!(e.rule, "mode_statistics");
        assert_eq!(e.path, "$.marriage.stats.kidnap.points");
        assert_eq!(e.expected, "expected at least 0");
        assert_eq!(e.value, "-3");
        let blob = json!({"marriage": {"stats": {"kidnap": {"points": "113"}}}});
        let e = explode(&spec, &blob).unwrap_err();
        assert!(
            e.to_string().contains("expected a number, got \"113\""),
            "{e}"
        );
        let blob = json!({"marriage": {"stats": null}});
        let e = explode(&spec, &blob).unwrap_err();
        assert_eq!(
            (e.path.as_str(), e.expected.as_str()),
            ("$.marriage.stats", "expected an object")
        );
        let blob = json!({"marriage": {"config": {"mode": "zombie"}}});
        let e = explode(&spec, &blob).unwrap_err();
        assert_eq!(e.path, "$.marriage.config.mode");
        assert!(e.expected.contains("one of kidnap"), "{e}");
    }

    #[test]
    fn a_key_past_what_a_primary_key_index_holds_is_an_invalid_value() {
        let spec = |policy: &str| {
            Spec::parse(&format!(
                r#"
[source]
table = "u"

[tables.stat.columns]
mode = "text"
stat = "text"
value = "int4"

[[rules]]
name = "stats"
path = "stats.{{mode}}.{{stat}}"
table = "stat"
value = "value"
on_invalid = "{policy}"
"#
            ))
            .unwrap()
        };
        // the server's limit: 24 bytes besides the keys, each text key
        // with its header, aligned
        let fits = "k".repeat(2704 - 24 - 8 - 4);
        let long = format!("{fits}x");
        let blob = json!({"stats": {"m": {"ok": 1, (fits.as_str()): 2, (long.as_str()): 3}}});
        let e = explode(&spec("fail"), &blob).unwrap_err();
        assert_eq!(e.path, format!("$.stats.m.{long}"));
        assert_eq!(
            e.expected,
            "expected keys that fit table `stat`'s primary key index \
             (a B-tree entry of at most 2704 bytes)"
        );
        let e = explode(&spec("keep"), &blob).unwrap();
        assert_eq!(e.rows.len(), 2);
        assert_eq!(e.warnings.len(), 1);
        assert_eq!(e.residual, json!({"stats": {"m": {(long.as_str()): 3}}}));
    }

    #[test]
    fn users_group_by_what_was_expected_not_by_their_own_values() {
        let spec = Spec::parse(
            r#"
[source]
table = "u"

[tables.seen.columns]
at = "timestamptz_iso"
extra = "jsonb"

[tables.item.columns]
pos = { type = "int2", max = 2 }
v = "int4"

[[rules]]
name = "seen"
path = "seen"
table = "seen"
keys = { at = "at" }
on_invalid = "keep"

[[rules]]
name = "items"
path = "items[{pos}]"
table = "item"
value = "v"
on_invalid = "keep"
"#,
        )
        .unwrap();
        let reasons = |blob: Value| -> Vec<String> {
            round_trip(&spec, &blob)
                .warnings
                .iter()
                .map(|w| w.reason().to_string())
                .collect()
        };
        // two offsets that are not Z, two arrays too long: one reason each
        let a = reasons(
            json!({"seen": {"at": "2020-10-09T23:04:06.465+00:00"}, "items": [1, 2, 3, 4]}),
        );
        let b = reasons(
            json!({"seen": {"at": "2021-01-01T00:00:00+02:00"}, "items": [1, 2, 3, 4, 5, 6]}),
        );
        assert_eq!(a.len(), 2, "{a:?}");
        assert_eq!(a, b);
        assert!(
            a.iter().all(|r| !r.contains("2020") && !r.contains('4')),
            "{a:?}"
        );
        // the message still says what this value would have come back as
        let e = round_trip(
            &spec,
            &json!({"seen": {"at": "2020-10-09T23:04:06.465+00:00"}}),
        );
        assert!(
            e.warnings[0]
                .to_string()
                .contains("2020-10-09T23:04:06.465Z"),
            "{}",
            e.warnings[0]
        );
    }

    #[test]
    fn a_wrong_shape_shared_by_a_keep_and_a_fail_rule_names_the_fail_rule() {
        let spec = Spec::parse(
            r#"
[source]
table = "u"

[tables.stat.columns]
mode = "text"
name = "text"
value = "float8"

[[rules]]
name = "pvp"
path = "stats.pvp.{name}"
table = "stat"
value = "value"
constants = { mode = "pvp" }
on_invalid = "keep"

[[rules]]
name = "pve"
path = "stats.pve.{name}"
table = "stat"
value = "value"
constants = { mode = "pve" }
on_invalid = "fail"
"#,
        )
        .unwrap();
        // `stats` is on both rules' paths: the user fails, by `pve`'s policy
        let e = explode(&spec, &json!({"stats": null})).unwrap_err();
        assert_eq!((e.rule.as_str(), e.path.as_str()), ("pve", "$.stats"));
        // below it, each rule answers for its own branch
        let kept = explode(&spec, &json!({"stats": {"pvp": 3}})).unwrap();
        assert_eq!(kept.warnings[0].rule, "pvp");
        assert_eq!(kept.residual, json!({"stats": {"pvp": 3}}));
    }

    #[test]
    fn invalid_values_under_keep_rules_stay_in_the_residual() {
        let spec = game();
        let blob = json!({"bots": {"selected": ["a", 7], "b1": {"level": 500, "unlocked": true}}});
        let e = round_trip(&spec, &blob);
        assert_eq!(e.warnings.len(), 2, "{:?}", e.warnings);
        // the refused element stays at its position, the valid one
        // stands as an empty object its row fills back
        assert_eq!(
            e.residual,
            json!({"bots": {"selected": [{}, 7], "b1": {"level": 500}}})
        );
        assert_eq!(
            e.rows
                .iter()
                .filter(|r| r.table == spec.table("user_selected_bot").unwrap())
                .count(),
            1
        );
        // an element that is itself an empty object (here refused) or an
        // array beside claimed ones comes back as it was
        let e = round_trip(&spec, &json!({"bots": {"selected": [{}, "b", [], "c", 7]}}));
        assert_eq!(
            e.residual,
            json!({"bots": {"selected": [{}, {}, [], {}, 7]}})
        );
    }

    #[test]
    fn a_general_row_that_looks_like_a_specific_one_is_refused() {
        let spec = game();
        let blob = json!({"marriage": {"stats": {"global": {"xp": 3}}}});
        let e = explode(&spec, &blob).unwrap_err();
        assert!(e.expected.contains("rule `xp`"), "{e}");
    }

    #[test]
    fn lenient_explode_never_fails() {
        let spec = game();
        let blob = json!({"marriage": {"stats": {"kidnap": {"points": -3, "wins": 2}}}});
        let e = explode_lenient(&spec, &blob);
        assert_eq!(e.warnings.len(), 1);
        let back = reconstruct(&spec, &e.rows, &e.residual).unwrap();
        assert!(json_eq(&back, &blob));
    }

    #[test]
    fn a_blob_that_is_not_an_object_is_invalid() {
        let spec = game();
        let e = explode(&spec, &json!([1, 2])).unwrap_err();
        assert_eq!(e.path, "$");
    }

    // ----- property tests -----

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z]{1,8}",
            "[a-zA-Z0-9_.\\[\\]{}\"\\\\ ]{0,6}",
            "\\PC{0,5}",
            Just("selected".to_string()),
            Just("kidnap".to_string()),
            Just("murder".to_string()),
            Just("global".to_string()),
            Just("xp".to_string()),
        ]
        .prop_map(|k| k.replace('\0', ""))
    }

    fn number() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<i64>().prop_map(Value::from),
            (0u32..1000).prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| number::number(&format!("{f:e}"))),
            "-?[1-9][0-9]{0,30}(\\.[0-9]{1,20})?(e-?[0-9]{1,3})?".prop_map(|s| number::number(&s)),
            Just(number::number("1669702024365")),
            Just(number::number("0.000")),
        ]
    }

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            number(),
            "\\PC{0,10}".prop_map(|s| Value::String(s.replace('\0', ""))),
            Just(json!({})),
            Just(json!([])),
        ]
    }

    fn any_json() -> impl Strategy<Value = Value> {
        leaf().prop_recursive(5, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(key(), inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn obj(entries: Vec<(String, Value)>) -> Value {
        Value::Object(entries.into_iter().collect())
    }

    /// Blobs shaped like the game's, with generated keys and values in every
    /// place (valid or not) and arbitrary JSON sprinkled in.
    fn game_blob() -> impl Strategy<Value = Value> {
        let stat_value =
            prop_oneof![4 => (0u32..100_000).prop_map(Value::from), 1 => number(), 1 => leaf()];
        let stats = prop::collection::vec(
            (key(), prop::collection::vec((key(), stat_value), 0..4)),
            0..4,
        )
        .prop_map(|modes| obj(modes.into_iter().map(|(m, s)| (m, obj(s))).collect()));
        let achievement = (
            prop::option::of(prop_oneof![number(), leaf()]),
            prop::option::of(prop_oneof![(0u32..10).prop_map(Value::from), leaf()]),
            prop::collection::vec((key(), leaf()), 0..2),
        )
            .prop_map(|(u, p, mut rest)| {
                if let Some(u) = u {
                    rest.push(("unlockedAt".into(), u));
                }
                if let Some(p) = p {
                    rest.push(("progress".into(), p));
                }
                obj(rest)
            });
        let achievements =
            prop::collection::vec((key(), prop_oneof![4 => achievement, 1 => leaf()]), 0..3);
        let bot = (
            prop::option::of(prop_oneof![(0u32..120).prop_map(Value::from), leaf()]),
            prop::option::of(leaf()),
            prop::collection::vec((key(), any_json()), 0..2),
        )
            .prop_map(|(l, u, mut rest)| {
                if let Some(l) = l {
                    rest.push(("level".into(), l));
                }
                if let Some(u) = u {
                    rest.push(("unlocked".into(), u));
                }
                obj(rest)
            });
        let selected = prop_oneof![
            prop::collection::vec("[a-z_0-9]{1,6}".prop_map(Value::String), 0..5)
                .prop_map(Value::Array),
            any_json(),
        ];
        let bots = (
            prop::collection::vec((key(), bot), 0..3),
            prop::option::of(selected),
        )
            .prop_map(|(mut b, s)| {
                if let Some(s) = s {
                    b.push(("selected".into(), s));
                }
                obj(b)
            });
        let config = prop_oneof![
            (
                prop::option::of(leaf()),
                prop::option::of(prop_oneof![
                    Just(json!("kidnap")),
                    Just(json!("zombie")),
                    leaf()
                ]),
                prop::collection::vec((key(), any_json()), 0..2)
            )
                .prop_map(|(mans, mode, mut rest)| {
                    if let Some(m) = mans {
                        rest.push(("mans".into(), m));
                    }
                    if let Some(m) = mode {
                        rest.push(("mode".into(), m));
                    }
                    obj(rest)
                }),
            leaf(),
        ];
        let marriage = (
            prop::option::of(prop_oneof![4 => stats, 1 => leaf()]),
            prop::option::of(number()),
            prop::option::of(achievements.prop_map(obj)),
            prop::option::of(config),
            prop::collection::vec((key(), any_json()), 0..2),
        )
            .prop_map(|(stats, last, ach, cfg, mut rest)| {
                let mut stats = stats.unwrap_or_else(|| json!({}));
                if let (Some(l), Value::Object(m)) = (last, &mut stats) {
                    m.insert("lastPlayed".into(), l);
                }
                rest.push(("stats".into(), stats));
                if let Some(a) = ach {
                    rest.push(("achievements".into(), a));
                }
                if let Some(c) = cfg {
                    rest.push(("config".into(), c));
                }
                obj(rest)
            });
        (
            prop::option::of(marriage),
            prop::option::of(bots),
            prop::option::of(prop::collection::vec((key(), any_json()), 0..4).prop_map(obj)),
            prop::option::of(number()),
            prop::collection::vec((key(), any_json()), 0..3),
        )
            .prop_map(|(m, b, p, xp, mut rest)| {
                if let Some(m) = m {
                    rest.push(("marriage".into(), m));
                }
                if let Some(b) = b {
                    rest.push(("bots".into(), b));
                }
                if let Some(p) = p {
                    rest.push(("pref".into(), p));
                }
                if let Some(x) = xp {
                    rest.push(("xp".into(), x));
                }
                obj(rest)
            })
    }

    /// Yearly counters under integer keys: `orders.byYear.{year}.{month}`.
    fn yearly(policy: &str) -> Spec {
        Spec::parse(&format!(
            r#"
[source]
table = "user"

[tables.yearly.columns]
year = {{ type = "int4", min = 1900, max = 2100 }}
month = {{ type = "int2", min = 1, max = 12 }}
count = "int8"

[[rules]]
name = "yearly"
path = "orders.byYear.{{year}}.{{month}}"
table = "yearly"
value = "count"
on_invalid = "{policy}"
"#
        ))
        .unwrap()
    }

    #[test]
    fn integer_captures_take_canonical_keys_and_give_them_back() {
        let spec = yearly("fail");
        let blob = json!({"orders": {"byYear": {"2023": {"1": 5, "12": 3}, "2024": {"7": 0}}}});
        let e = round_trip(&spec, &blob);
        assert_eq!(e.rows.len(), 3);
        // (columns in name order: count, month, year)
        let want = [
            ColumnValue::I64(3),
            ColumnValue::I16(12),
            ColumnValue::I32(2023),
        ];
        assert!(e.rows.iter().any(|r| r.values == want), "{:?}", e.rows);
        // a key that would not come back the same, or out of the column's
        // range: refused under `fail`, kept whole under `keep`
        for bad in [
            json!({"orders": {"byYear": {"2024": {"007": 1}}}}),
            json!({"orders": {"byYear": {"+2024": {"1": 1}}}}),
            json!({"orders": {"byYear": {"20x9": {"1": 1}}}}),
            json!({"orders": {"byYear": {"2024": {"-0": 1}}}}),
            json!({"orders": {"byYear": {"2024": {"13": 1}}}}),
            json!({"orders": {"byYear": {"1899": {"1": 1}}}}),
            json!({"orders": {"byYear": {"2024": {"99999": 1}}}}),
            json!({"orders": {"byYear": {"2024": {"": 1}}}}),
        ] {
            let invalid = explode(&spec, &bad).unwrap_err();
            assert!(invalid.expected.contains("key for"), "{bad}: {invalid}");
            let kept = round_trip(&yearly("keep"), &bad);
            assert!(kept.rows.is_empty(), "{bad}");
        }
    }

    /// Per-key types under a wildcard, in one table.
    pub(crate) const TYPED_STATS: &str = include_str!("../../fixtures/specs/typed_stats.toml");

    #[test]
    fn a_literal_key_routes_to_a_differently_typed_column_of_the_same_table() {
        let spec = Spec::parse(TYPED_STATS).unwrap();
        let blob = json!({"stats": {"kidnap": {"gamesPlayed": 13, "rating": 1510.25, "avgScore": 7.5},
                                    "murder": {"gamesPlayed": 4, "points": 20}}});
        let e = round_trip(&spec, &blob);
        assert_eq!(e.rows.len(), 5);
        // (columns in name order: games, mode, rating, statistic_id, value)
        let row = |mode: &str, stat: &str| {
            e.rows
                .iter()
                .find(|r| {
                    r.values[1] == ColumnValue::Text(mode.into())
                        && r.values[3] == ColumnValue::Text(stat.into())
                })
                .unwrap()
                .values
                .clone()
        };
        assert_eq!(row("kidnap", "gamesPlayed")[0], ColumnValue::I32(13));
        assert_eq!(row("kidnap", "gamesPlayed")[4], ColumnValue::Null);
        assert_eq!(row("kidnap", "rating")[2], ColumnValue::F64(1510.25));
        assert_eq!(
            row("kidnap", "avgScore")[4],
            ColumnValue::Numeric("7.5".into())
        );
        assert_eq!(row("murder", "points")[0], ColumnValue::Null);
        // gamesPlayed is an integer now: 1.5 fails the user (fail rule);
        // a rating that is no number stays in the residual (keep rule)
        assert!(explode(&spec, &json!({"stats": {"k": {"gamesPlayed": 1.5}}})).is_err());
        let kept = round_trip(&spec, &json!({"stats": {"k": {"rating": "high", "x": 1}}}));
        assert_eq!(kept.rows.len(), 1);
        assert_eq!(kept.residual, json!({"stats": {"k": {"rating": "high"}}}));
    }

    const OBJECT_AND_DEEPER: &str = include_str!("../../fixtures/specs/object_and_deeper.toml");

    #[test]
    fn an_object_rule_shares_its_object_with_deeper_rules() {
        let spec = Spec::parse(OBJECT_AND_DEEPER).unwrap();
        let blob = json!({"orders": {"currency": "EUR", "total": 10.5, "gift": true,
                                     "byYear": {"2023": 4, "2024": 1}, "notes": ["a", "b"]}});
        let e = round_trip(&spec, &blob);
        // one orders row (gift in extra), two yearly rows, two notes
        assert_eq!(e.rows.len(), 5, "{:?}", e.rows);
        assert_eq!(e.residual, json!({}));
        let ot = spec.table("orders").unwrap();
        let orders = e.rows.iter().find(|r| r.table == ot).unwrap();
        // (columns in name order: currency, extra, total)
        assert_eq!(orders.values[1], ColumnValue::Json(json!({"gift": true})));
        // only the deeper keys: the object rule's row is empty
        round_trip(&spec, &json!({"orders": {"byYear": {"2024": 1}}}));
        round_trip(&spec, &json!({"orders": {}}));
        // a deeper value the rule refuses fails the user; a kept one stays
        assert!(explode(&spec, &json!({"orders": {"byYear": {"2024": -1}}})).is_err());
        assert!(explode(&spec, &json!({"orders": {"byYear": 7}})).is_err());
        let kept = round_trip(&spec, &json!({"orders": {"total": 1, "notes": [1, "x"]}}));
        assert_eq!(kept.residual, json!({"orders": {"notes": [1, {}]}}));
        // overlapping claims are refused, naming the key
        let overlap = OBJECT_AND_DEEPER.replace(
            "keys = { currency = \"currency\", total = \"total\" }",
            "keys = { currency = \"currency\", byYear = \"total\" }",
        );
        let err = Spec::parse(&overlap).unwrap_err().to_string();
        assert!(err.contains("`byYear` mapped to a column"), "{err}");
        let wildcard = format!(
            "{OBJECT_AND_DEEPER}\n[[rules]]\nname = \"any\"\npath = \"orders.{{year}}\"\ntable = \"yearly\"\nvalue = \"n\"\n"
        );
        let err = Spec::parse(&wildcard).unwrap_err().to_string();
        assert!(err.contains("every key"), "{err}");
        // a scalar or array rule still claims its value whole
        let scalar = OBJECT_AND_DEEPER.replace(
            "keys = { currency = \"currency\", total = \"total\" }\nextra = \"extra\"",
            "value = \"total\"",
        );
        let err = Spec::parse(&scalar).unwrap_err().to_string();
        assert!(err.contains("whole"), "{err}");
    }

    const THROUGH_ARRAYS: &str = include_str!("../../fixtures/specs/through_arrays.toml");

    #[test]
    fn paths_go_through_array_elements_and_arrays_of_arrays() {
        let spec = Spec::parse(THROUGH_ARRAYS).unwrap();
        let blob = json!({
            "addresses": [
                {"street": "Main 1", "geo": {"lat": 48.1, "lng": 11.5}, "phones": ["+49 1", "+49 2"]},
                {"geo": {"lat": 52.5, "lng": 13.4, "alt": 34}},
                {"street": "Elm 3"}
            ],
            "matrix": [[1, 2], [], [3]],
            "scores": {"red": [{"points": 3}, {"points": 5, "mvp": true}], "blue": []}
        });
        let e = round_trip(&spec, &blob);
        let count = |t: &str| {
            let ti = spec.table(t).unwrap();
            e.rows.iter().filter(|r| r.table == ti).count()
        };
        assert_eq!(
            (count("geo"), count("phone"), count("cell"), count("score")),
            (2, 2, 3, 2)
        );
        // what the rules leave of each element stays at its position; an
        // element claimed whole stands as an empty container
        assert_eq!(
            e.residual,
            json!({"addresses": [{"street": "Main 1"}, {}, {"street": "Elm 3"}],
                   "matrix": [[], [], []],
                   "scores": {"red": [{}, {"mvp": true}], "blue": []}})
        );
        let geo = spec.table("geo").unwrap();
        let second = e
            .rows
            .iter()
            .find(|r| r.table == geo && r.values[0] == ColumnValue::I16(1))
            .unwrap();
        // (columns in name order: addr, extra, lat, lng)
        assert_eq!(second.values[1], ColumnValue::Json(json!({"alt": 34})));
        // every element claimed whole: the rows make the arrays again
        let e = round_trip(
            &spec,
            &json!({"addresses": [{"geo": {"lat": 1.5}}, {"phones": ["1"]}],
                    "matrix": [[1], [2, 3]]}),
        );
        assert_eq!(e.residual, json!({}));
        // the wrong shape on the way, or an invalid value, stays where it is
        let e = round_trip(
            &spec,
            &json!({"addresses": [5, {"geo": {"lat": 91}}, null, {"geo": "x"}],
                    "matrix": [[1, "two"], 7, [3]]}),
        );
        assert_eq!(
            e.residual,
            json!({"addresses": [5, {"geo": {"lat": 91}}, null, {"geo": "x"}],
                   "matrix": [[{}, "two"], 7, []]})
        );
        assert_eq!(e.warnings.len(), 6, "{:?}", e.warnings);
        assert!(
            e.warnings
                .iter()
                .any(|w| w.path == "$.addresses[0]" && w.expected == "expected an object"),
            "{:?}",
            e.warnings
        );
        let e = round_trip(&spec, &json!({"addresses": {"a": 1}}));
        assert_eq!(e.warnings[0].expected, "expected an array");
        // a fail rule on the way: its wrong shapes fail the user
        assert!(explode(&spec, &json!({"scores": {"red": [5]}})).is_err());
        assert!(explode(&spec, &json!({"scores": {"red": {"points": 1}}})).is_err());
        assert!(explode(&spec, &json!({"scores": {"red": [{"points": -1}]}})).is_err());
        round_trip(&spec, &json!({"scores": {"red": [{}, {"points": 0}]}}));
        // an inner array too long for its position column: kept whole, once
        let e = round_trip(&spec, &json!({"matrix": [[1], (0..9).collect::<Vec<_>>()]}));
        assert_eq!(e.warnings.len(), 1, "{:?}", e.warnings);
        assert_eq!(
            e.residual,
            json!({"matrix": [[], (0..9).collect::<Vec<_>>()]})
        );
        // an outer array too long for a position column under it: one
        // problem, the array kept whole
        let long: Vec<Value> = (0..32_769).map(|_| json!({"geo": {"lat": 1}})).collect();
        let e = round_trip(&spec, &json!({"addresses": long}));
        assert_eq!(e.warnings.len(), 1);
        assert!(
            e.warnings[0]
                .expected
                .contains("last position fits column `addr` of table `geo`"),
            "{}",
            e.warnings[0]
        );
        assert!(e.rows.is_empty());
    }

    /// `THROUGH_ARRAYS` with an object rule on the addresses themselves.
    pub(crate) fn elements_shared() -> String {
        format!(
            "{THROUGH_ARRAYS}\n[tables.address.columns]\naddr = \"int2\"\nstreet = \"text\"\nextra = \"jsonb\"\n\n\
             [[rules]]\nname = \"addresses\"\npath = \"addresses[{{addr}}]\"\ntable = \"address\"\n\
             keys = {{ street = \"street\" }}\nextra = \"extra\"\non_invalid = \"keep\"\n"
        )
    }

    #[test]
    fn an_object_rule_shares_array_elements_with_deeper_rules() {
        let spec = Spec::parse(&elements_shared()).unwrap();
        let blob = json!({"addresses": [
            {"street": "Main 1", "zip": "1", "geo": {"lat": 48.1}, "phones": ["1"]},
            {"geo": {"lat": 91}},
            7,
            {"street": 5}
        ]});
        let e = round_trip(&spec, &blob);
        let count = |t: &str| {
            let ti = spec.table(t).unwrap();
            e.rows.iter().filter(|r| r.table == ti).count()
        };
        // each object element gives an address row (without geo and
        // phones, which the deeper rules claim); 7 is no object
        assert_eq!((count("address"), count("geo"), count("phone")), (3, 2, 1));
        let at = spec.table("address").unwrap();
        let first = e.rows.iter().find(|r| r.table == at).unwrap();
        // (columns in name order: addr, extra, street)
        assert_eq!(first.values[1], ColumnValue::Json(json!({"zip": "1"})));
        assert_eq!(
            e.residual,
            json!({"addresses": [{}, {"geo": {"lat": 91}}, 7, {"street": 5}]})
        );
        assert_eq!(e.warnings.len(), 3, "{:?}", e.warnings);
        let e = round_trip(
            &spec,
            &json!({"addresses": [{"street": "a", "geo": {"lat": 1}}]}),
        );
        assert_eq!(e.residual, json!({}));
        // a key the object rule maps may not be claimed deeper
        let overlap = elements_shared().replace(
            "keys = { street = \"street\" }",
            "keys = { street = \"street\", geo = \"street2\" }",
        );
        let overlap = overlap.replace(
            "street = \"text\"\n",
            "street = \"text\"\nstreet2 = \"jsonb\"\n",
        );
        let err = Spec::parse(&overlap).unwrap_err().to_string();
        assert!(err.contains("`geo` mapped to a column"), "{err}");
    }

    #[test]
    fn rows_that_leave_a_gap_in_an_array_are_refused() {
        let spec = Spec::parse(THROUGH_ARRAYS).unwrap();
        let e = explode(&spec, &json!({"matrix": [[1], [2], [3]]})).unwrap();
        let cell = spec.table("cell").unwrap();
        let rows: Vec<Row> = e
            .rows
            .iter()
            // (columns in name order: c, r, v): drop the row of matrix[1]
            .filter(|r| !(r.table == cell && r.values[1] == ColumnValue::I16(1)))
            .cloned()
            .collect();
        let err = reconstruct(&spec, &rows, &e.residual).unwrap_err();
        assert!(err.contains("not 0..n"), "{err}");
    }

    #[test]
    fn paths_through_arrays_are_checked_where_they_meet_other_rules() {
        let with = |extra: &str| Spec::parse(&format!("{THROUGH_ARRAYS}\n{extra}"));
        // a value read as an array by one path and an object by another
        let err = with(
            "[[rules]]\nname = \"street\"\npath = \"addresses.street\"\ntable = \"phone\"\n\
             value = \"number\"\nconstants = { pos = 0, addr = 0 }\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("either an array or an object"), "{err}");
        // an array rule claims its array whole: no path may go through it
        let err = with(
            "[tables.whole.columns]\ni = \"int2\"\nv = \"jsonb\"\n\
             [[rules]]\nname = \"whole\"\npath = \"matrix[{i}]\"\ntable = \"whole\"\nvalue = \"v\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("whole"), "{err}");
        // a leaderboard cannot rank array elements
        let err = with(
            "[[ranked]]\nname = \"red\"\ntable = \"score\"\nvalue = \"points\"\n\
             where = { team = \"red\", round = 0 }\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("array elements"), "{err}");
        // a position column must be an integer, and is used once
        let err = Spec::parse(&THROUGH_ARRAYS.replace(
            "path = \"addresses[{addr}].geo\"",
            "path = \"addresses[{extra}].geo\"",
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("integer type") || err.contains("used twice"),
            "{err}"
        );
    }

    fn through_arrays_blob() -> impl Strategy<Value = Value> {
        let geo = prop_oneof![
            4 => prop::collection::btree_map(
                prop_oneof![Just("lat".to_string()), Just("lng".to_string()), key()],
                prop_oneof![number(), leaf()],
                0..4,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
            1 => leaf(),
        ];
        let phones = prop_oneof![
            4 => prop::collection::vec(prop_oneof![3 => "[+0-9 ]{0,24}".prop_map(Value::from), 1 => leaf()], 0..4)
                .prop_map(Value::Array),
            1 => leaf(),
        ];
        let address = prop_oneof![
            6 => (prop::option::of(geo), prop::option::of(phones), prop::option::of(leaf()))
                .prop_map(|(g, p, s)| {
                    let mut m = Map::new();
                    if let Some(g) = g { m.insert("geo".into(), g); }
                    if let Some(p) = p { m.insert("phones".into(), p); }
                    if let Some(s) = s { m.insert("street".into(), s); }
                    Value::Object(m)
                }),
            1 => leaf(),
        ];
        let addresses = prop_oneof![
            5 => prop::collection::vec(address, 0..5).prop_map(Value::Array),
            1 => leaf(),
        ];
        let row = prop_oneof![
            5 => prop::collection::vec(prop_oneof![number(), leaf()], 0..10).prop_map(Value::Array),
            1 => leaf(),
        ];
        let matrix = prop_oneof![
            5 => prop::collection::vec(row, 0..4).prop_map(Value::Array),
            1 => leaf(),
        ];
        let round = prop_oneof![
            5 => prop::collection::btree_map(
                prop_oneof![Just("points".to_string()), key()],
                prop_oneof![number(), leaf()],
                0..3,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
            1 => leaf(),
        ];
        let scores = prop::collection::btree_map(
            key(),
            prop_oneof![4 => prop::collection::vec(round, 0..4).prop_map(Value::Array), 1 => leaf()],
            0..3,
        )
        .prop_map(|m| Value::Object(m.into_iter().collect()));
        (
            prop::option::of(addresses),
            prop::option::of(matrix),
            prop::option::of(scores),
        )
            .prop_map(|(a, m, s)| {
                let mut blob = Map::new();
                if let Some(a) = a {
                    blob.insert("addresses".into(), a);
                }
                if let Some(m) = m {
                    blob.insert("matrix".into(), m);
                }
                if let Some(s) = s {
                    blob.insert("scores".into(), s);
                }
                Value::Object(blob)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn reconstruct_inverts_explode_under_nested_keys(
            places in prop::collection::btree_map(
                key(),
                prop_oneof![
                    5 => prop::collection::btree_map(
                        prop_oneof![Just("geo".to_string()), Just("label".to_string()), Just("a.b".to_string()), key()],
                        prop_oneof![
                            3 => prop::collection::btree_map(
                                prop_oneof![Just("lat".to_string()), Just("lng".to_string()), Just("acc".to_string()), key()],
                                prop_oneof![
                                    3 => prop_oneof![number(), leaf()],
                                    1 => prop::collection::btree_map(
                                        prop_oneof![Just("m".to_string()), key()],
                                        prop_oneof![number(), leaf()],
                                        0..3,
                                    ).prop_map(|m| Value::Object(m.into_iter().collect())),
                                ],
                                0..4,
                            ).prop_map(|m| Value::Object(m.into_iter().collect())),
                            1 => prop_oneof![number(), leaf()],
                        ],
                        0..4,
                    ).prop_map(|m| Value::Object(m.into_iter().collect())),
                    1 => leaf(),
                ],
                0..3,
            )
        ) {
            let blob = json!({"places": Value::Object(places.into_iter().collect())});
            for policy in ["keep", "fail"] {
                rebuilds(&nested_keys(policy), &blob, policy)?;
            }
        }

        #[test]
        fn reconstruct_inverts_explode_through_arrays(blob in through_arrays_blob()) {
            for spec in [Spec::parse(THROUGH_ARRAYS).unwrap(), Spec::parse(&elements_shared()).unwrap()] {
                rebuilds(&spec, &blob, "")?;
                // the lenient explode (every rule keeps) too
                let e = explode_lenient(&spec, &blob);
                let back = reconstruct(&spec, &e.rows, &e.residual).unwrap();
                prop_assert!(json_eq(&back, &blob), "lenient: blob {} back {}", blob, back);
            }
        }
    }

    fn nested_keys(policy: &str) -> Spec {
        Spec::parse(&NESTED_KEYS.replace(
            "on_invalid = \"keep\"",
            &format!("on_invalid = \"{policy}\""),
        ))
        .unwrap()
    }

    const NESTED_KEYS: &str = r#"
[source]
table = "user"

[tables.place.columns]
name = "text"
label = "text"
lat = { type = "float8", min = -90, max = 90 }
lng = "float8"
m = "int4"
dotted = "int4"
extra = "jsonb"

[[rules]]
name = "place"
path = "places.{name}"
table = "place"
keys = { label = "label", "geo.lat" = "lat", "geo.lng" = "lng", "geo.acc.m" = "m", '"a.b"' = "dotted" }
extra = "extra"
on_invalid = "keep"
"#;

    #[test]
    fn nested_key_paths_take_values_out_of_nested_objects() {
        let spec = nested_keys("keep");
        let t = &spec.tables[0];
        let col = |r: &Row, c: &str| r.values[t.column(c).unwrap()].clone();
        let place = |geo: Value| json!({"places": {"home": {"label": "h", "geo": geo, "a.b": 1}}});
        let e = round_trip(
            &spec,
            &place(json!({"lat": 1.5, "lng": 2, "alt": 3, "acc": {"m": 4}})),
        );
        assert_eq!(e.residual, json!({}));
        let r = &e.rows[0];
        assert_eq!(col(r, "lat"), ColumnValue::F64(1.5));
        assert_eq!(col(r, "m"), ColumnValue::I32(4));
        assert_eq!(
            col(r, "dotted"),
            ColumnValue::I32(1),
            "a quoted key with a dot is one key"
        );
        assert_eq!(
            col(r, "extra"),
            ColumnValue::Json(json!({"geo": {"alt": 3}}))
        );
        // an object the paths empty goes (the row makes it again); one that
        // was empty, a non-object and a null stay in extra
        for (geo, extra) in [
            (json!({"lat": 1, "acc": {"m": 2}}), None),
            (json!({}), Some(json!({"geo": {}}))),
            (json!({"acc": {}}), Some(json!({"geo": {"acc": {}}}))),
            (json!(5), Some(json!({"geo": 5}))),
            (json!({"lat": null}), Some(json!({"geo": {"lat": null}}))),
            (json!({"acc": [1]}), Some(json!({"geo": {"acc": [1]}}))),
        ] {
            let e = round_trip(&spec, &place(geo.clone()));
            assert_eq!(
                col(&e.rows[0], "extra"),
                extra.map_or(ColumnValue::Null, ColumnValue::Json),
                "{geo}"
            );
        }
        // an invalid value stays in the residual at its path, once
        let e = round_trip(&spec, &place(json!({"lat": 91, "lng": 1, "x": 0})));
        assert_eq!(
            e.residual,
            json!({"places": {"home": {"geo": {"lat": 91}}}})
        );
        assert_eq!(e.warnings.len(), 1);
        assert_eq!(e.warnings[0].path, "$.places.home.geo.lat");
        assert_eq!(
            col(&e.rows[0], "extra"),
            ColumnValue::Json(json!({"geo": {"x": 0}}))
        );
        // a fail rule fails it
        let err = explode(&nested_keys("fail"), &place(json!({"lat": 91}))).unwrap_err();
        assert_eq!(err.path, "$.places.home.geo.lat");
    }

    #[test]
    fn nested_key_paths_are_checked() {
        let with = |keys: &str| {
            Spec::parse(&NESTED_KEYS.replace(
                "keys = { label = \"label\", \"geo.lat\" = \"lat\", \"geo.lng\" = \"lng\", \"geo.acc.m\" = \"m\", '\"a.b\"' = \"dotted\" }",
                keys,
            ))
            .map(|_| ())
            .map_err(|e| e.to_string())
        };
        assert_eq!(with("keys = { \"geo.lat\" = \"lat\" }"), Ok(()));
        let err = with("keys = { geo = \"label\", \"geo.lat\" = \"lat\" }").unwrap_err();
        assert!(err.contains("overlap"), "{err}");
        let err = with("keys = { \"geo.{x}\" = \"lat\" }").unwrap_err();
        assert!(err.contains("only object keys"), "{err}");
        let err = with("keys = { \"geo[{x}]\" = \"lat\" }").unwrap_err();
        assert!(err.contains("only object keys"), "{err}");
        let err = with("keys = { \"geo..lat\" = \"lat\" }").unwrap_err();
        assert!(err.contains("key `geo..lat`"), "{err}");
    }

    /// Explodes `blob` (leniently when a fail rule refuses it) and rebuilds
    /// it: the blob must come back (`label` names the case).
    fn rebuilds(spec: &Spec, blob: &Value, label: &str) -> Result<(), TestCaseError> {
        let e = explode(spec, blob).unwrap_or_else(|_| explode_lenient(spec, blob));
        let back = reconstruct(spec, &e.rows, &e.residual).unwrap();
        prop_assert!(json_eq(&back, blob), "{label}: blob {} back {}", blob, back);
        Ok(())
    }

    fn year_key() -> impl Strategy<Value = String> {
        prop_oneof![
            (1900i32..=2100).prop_map(|y| y.to_string()),
            (-3i32..20).prop_map(|m| m.to_string()),
            "0[0-9]{1,3}",
            "[+-]?[0-9]{1,12}",
            "[0-9]{1,3}[a-z]?[0-9]?",
            Just("-0".to_string()),
        ]
    }

    fn yearly_blob() -> impl Strategy<Value = Value> {
        let months = prop::collection::btree_map(year_key(), leaf(), 0..4)
            .prop_map(|m| Value::Object(m.into_iter().collect()));
        prop::collection::btree_map(year_key(), prop_oneof![4 => months, 1 => leaf()], 0..4)
            .prop_map(|y| json!({"orders": {"byYear": Value::Object(y.into_iter().collect())}}))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn reconstruct_inverts_explode_under_per_key_types(
            stats in prop::collection::btree_map(
                key(),
                prop_oneof![
                    4 => prop::collection::btree_map(
                        prop_oneof![Just("gamesPlayed".to_string()), Just("rating".to_string()), key()],
                        prop_oneof![number(), leaf()],
                        0..4,
                    )
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
                    1 => leaf(),
                ],
                0..3,
            )
        ) {
            let spec = Spec::parse(TYPED_STATS).unwrap();
            let blob = json!({"stats": Value::Object(stats.into_iter().collect())});
            rebuilds(&spec, &blob, "")?;
        }

        #[test]
        fn reconstruct_inverts_explode_under_date_captures(
            days in prop::collection::btree_map(
                prop_oneof![
                    (-719_162i32..2_932_896).prop_map(value::render_date),
                    "[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}",
                    "[0-9]{4}-02-(29|30|31)",
                    "[a-z0-9 -]{0,10}",
                ],
                prop_oneof![number(), leaf()],
                0..5,
            )
        ) {
            let blob = json!({"visits": Value::Object(days.into_iter().collect())});
            for policy in ["fail", "keep"] {
                let spec = Spec::parse(&format!(
                    "[source]\ntable = \"user\"\n\n[tables.daily.columns]\nday = \"date\"\nn = \"numeric\"\n\n\
                     [[rules]]\nname = \"daily\"\npath = \"visits.{{day}}\"\ntable = \"daily\"\nvalue = \"n\"\n\
                     on_invalid = \"{policy}\"\n"
                ))
                .unwrap();
                rebuilds(&spec, &blob, policy)?;
            }
        }

        #[test]
        fn reconstruct_inverts_explode_with_an_object_rule_and_deeper_rules(
            orders in prop::collection::btree_map(
                prop_oneof![
                    Just("currency".to_string()), Just("total".to_string()),
                    Just("byYear".to_string()), Just("notes".to_string()), key(),
                ],
                prop_oneof![
                    2 => prop::collection::btree_map(year_key(), prop_oneof![number(), leaf()], 0..3)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                    1 => prop::collection::vec(leaf(), 0..3).prop_map(Value::Array),
                    2 => leaf(),
                ],
                0..5,
            ),
            whole in prop::option::of(leaf()),
        ) {
            let spec = Spec::parse(OBJECT_AND_DEEPER).unwrap();
            let blob = match whole {
                Some(v) => json!({"orders": v}),
                None => json!({"orders": Value::Object(orders.into_iter().collect())}),
            };
            rebuilds(&spec, &blob, "")?;
        }

        #[test]
        fn reconstruct_inverts_explode_under_patterns(
            skus in prop::collection::btree_map(
                prop_oneof!["[A-Z]{3}-[0-9]{2}", "[A-Za-z0-9-]{0,7}", "\\PC{0,4}"],
                prop_oneof![
                    "[a-z]{1,3}:[0-9]".prop_map(Value::String),
                    "\\PC{0,5}".prop_map(Value::String),
                    leaf(),
                ],
                0..5,
            )
        ) {
            let blob = json!({"stock": Value::Object(skus.into_iter().collect())});
            for policy in ["fail", "keep"] {
                let spec = Spec::parse(&format!(
                    "[source]\ntable = \"user\"\n\n[tables.stock.columns]\n\
                     sku = {{ type = \"text\", pattern = '^[A-Z]{{3}}-[0-9]{{2}}$' }}\n\
                     bin = {{ type = \"text\", pattern = '^[a-z]+:[0-9]$' }}\n\n\
                     [[rules]]\nname = \"stock\"\npath = \"stock.{{sku}}\"\ntable = \"stock\"\nvalue = \"bin\"\n\
                     on_invalid = \"{policy}\"\n"
                ))
                .unwrap();
                rebuilds(&spec, &blob, policy)?;
            }
        }

        #[test]
        fn reconstruct_inverts_explode_under_integer_captures(blob in yearly_blob()) {
            for policy in ["fail", "keep"] {
                let spec = yearly(policy);
                rebuilds(&spec, &blob, policy)?;
            }
        }

        #[test]
        fn reconstruct_inverts_explode_on_game_blobs(blob in game_blob()) {
            let spec = game();
            match explode(&spec, &blob) {
                Ok(e) => {
                    let back = reconstruct(&spec, &e.rows, &e.residual).unwrap();
                    prop_assert!(json_eq(&back, &blob), "blob {} back {}", blob, back);
                }
                Err(invalid) => {
                    // a fail rule refused it; the lenient path must still
                    // round-trip, keeping the value in the residual
                    prop_assert!(!invalid.rule.is_empty());
                    let e = explode_lenient(&spec, &blob);
                    prop_assert!(!e.warnings.is_empty());
                    let back = reconstruct(&spec, &e.rows, &e.residual).unwrap();
                    prop_assert!(json_eq(&back, &blob), "blob {} back {}", blob, back);
                }
            }
        }

        #[test]
        fn reconstruct_inverts_explode_on_any_json(blob in any_json()) {
            let spec = game();
            let e = explode_lenient(&spec, &blob);
            let back = reconstruct(&spec, &e.rows, &e.residual).unwrap();
            prop_assert!(json_eq(&back, &blob), "blob {} back {}", blob, back);
        }
    }
}
