//! The census of `decant check`: what migrating each user would do, summed
//! over users in bounded memory. Pure code: the database read is in
//! `ops::check`.
//!
//! For a legacy user: the outcome (would migrate cleanly, with warnings
//! under `keep`, or would fail, with the rule, its path pattern and the
//! reason), the keys no rule claims (what stays in the residual), the JSON
//! types each rule meets, the blob's size and its rows per table. For a
//! migrated user: whether its stored rows still rebuild a blob that
//! explodes back into the same rows and residual.

use crate::core::explode::{self, Invalid, Row};
use crate::core::id::UserId;
use crate::core::json::{self, JsonView};
use crate::core::spec::{Node, RuleKind, Spec};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// Example ids kept per group.
pub const EXAMPLES: usize = 5;
/// Distinct unclaimed paths counted one by one; more are summed as other.
pub const MAX_PATHS: usize = 1000;

/// A distribution of non-negative integers in bounded memory: exact below
/// 128, then 64 buckets per power of two (under 1.6% relative error).
#[derive(Debug, Clone, Default)]
pub struct Distribution {
    buckets: BTreeMap<u32, u64>,
    count: u64,
    sum: u128,
    max: u64,
}

/// Percentiles of a distribution.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    /// Values recorded.
    pub count: u64,
    /// Mean.
    pub mean: f64,
    /// Median (the bucket's lower bound above 128).
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Largest value, exact.
    pub max: u64,
}

impl Distribution {
    fn bucket(v: u64) -> u32 {
        if v < 128 {
            return v as u32;
        }
        let bits = 64 - v.leading_zeros(); // >= 8
        let shift = bits - 7; // keep the top 7 bits: 64 steps per doubling
        128 + (bits - 8) * 64 + ((v >> shift) as u32 - 64)
    }

    fn lower_bound(b: u32) -> u64 {
        if b < 128 {
            return u64::from(b);
        }
        let bits = (b - 128) / 64 + 8;
        let top = u64::from((b - 128) % 64 + 64);
        top << (bits - 7)
    }

    /// Records one value.
    pub fn record(&mut self, v: u64) {
        *self.buckets.entry(Self::bucket(v)).or_default() += 1;
        self.count += 1;
        self.sum += u128::from(v);
        self.max = self.max.max(v);
    }

    /// Adds another distribution's values.
    pub fn merge(&mut self, other: &Distribution) {
        for (b, n) in &other.buckets {
            *self.buckets.entry(*b).or_default() += n;
        }
        self.count += other.count;
        self.sum += other.sum;
        self.max = self.max.max(other.max);
    }

    fn quantile(&self, q: f64) -> u64 {
        let rank = ((self.count as f64 * q).ceil() as u64).max(1);
        let mut seen = 0;
        for (b, n) in &self.buckets {
            seen += n;
            if seen >= rank {
                return Self::lower_bound(*b).min(self.max);
            }
        }
        self.max
    }

    /// Its percentiles.
    pub fn summary(&self) -> Summary {
        Summary {
            count: self.count,
            mean: if self.count == 0 {
                0.0
            } else {
                self.sum as f64 / self.count as f64
            },
            p50: self.quantile(0.5),
            p90: self.quantile(0.9),
            p99: self.quantile(0.99),
            max: self.max,
        }
    }
}

/// Users that share a problem: the rule, its path pattern and the reason.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Group {
    /// The rule's name.
    pub rule: String,
    /// The rule's path pattern as written in the spec.
    pub pattern: String,
    /// What the rule expected.
    pub reason: String,
    /// Users with this problem.
    pub users: u64,
    /// The first users found (in id order), with the value's path and the
    /// value.
    pub examples: Vec<Example>,
}

/// One user of a group.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Example {
    /// The user id.
    pub id: UserId,
    /// The JSON path of the value, `$.a.b`.
    pub path: String,
    /// The value (shortened when long) or the detail.
    pub value: String,
}

/// A key no rule claims: it stays in the residual.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Unclaimed {
    /// Its path, `$.a.b`.
    pub path: String,
    /// Users holding it.
    pub users: u64,
    /// The first of them (in id order).
    pub examples: Vec<UserId>,
}

/// The JSON types met at one rule path.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TypesSeen {
    /// The rule's name.
    pub rule: String,
    /// The path pattern (for an object rule's known key, the key appended;
    /// for an array rule, its elements).
    pub path: String,
    /// Count of values by JSON type (null, boolean, number, string, array,
    /// object).
    pub types: BTreeMap<String, u64>,
}

/// A rule and its path as the spec writes it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RulePath {
    /// The rule's name.
    pub rule: String,
    /// Its path.
    pub path: String,
}

/// What one fixup would change.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FixupEffect {
    /// The fixup's name.
    pub fixup: String,
    /// Legacy users whose blob it would change.
    pub users: u64,
    /// The first of them (in id order): the first path changed and the
    /// value there before.
    pub examples: Vec<Example>,
}

/// What migrating a set of users would do, summed.
#[derive(Debug, Clone, Default)]
pub struct Census {
    fixups: Vec<FixupEffect>,
    legacy: u64,
    clean: u64,
    warned: u64,
    failed: u64,
    migrated: u64,
    broken: Group,
    awaiting: Group,
    failures: BTreeMap<(String, String), Group>,
    warnings: BTreeMap<(String, String), Group>,
    unclaimed: BTreeMap<String, Unclaimed>,
    unclaimed_other: u64,
    types: BTreeMap<(usize, String), BTreeMap<&'static str, u64>>,
    /// The rules whose path some walked blob holds, and the blobs walked.
    reached: std::collections::BTreeSet<usize>,
    walked: u64,
    blob_bytes: Distribution,
    rows_per_user: Distribution,
    rows_by_table: Vec<u64>,
}

impl Group {
    fn add(&mut self, example: Example) {
        self.users += 1;
        if self.examples.len() < EXAMPLES {
            self.examples.push(example);
        }
    }

    fn merge(&mut self, other: Group) {
        self.users += other.users;
        let room = EXAMPLES.saturating_sub(self.examples.len());
        self.examples.extend(other.examples.into_iter().take(room));
    }
}

fn type_name<V: JsonView>(v: &V) -> &'static str {
    if v.is_null() {
        "null"
    } else if v.as_bool().is_some() {
        "boolean"
    } else if v.number().is_some() {
        "number"
    } else if v.as_str().is_some() {
        "string"
    } else if v.array().is_some() {
        "array"
    } else {
        "object"
    }
}

fn add_group(
    map: &mut BTreeMap<(String, String), Group>,
    spec: &Spec,
    id: &UserId,
    problem: &Invalid,
) {
    let pattern = spec
        .rules
        .iter()
        .find(|r| r.name == problem.rule)
        .map(|r| r.path.clone())
        .unwrap_or_default();
    map.entry((problem.rule.clone(), problem.reason().to_string()))
        .or_insert_with(|| Group {
            rule: problem.rule.clone(),
            pattern,
            reason: problem.reason().to_string(),
            ..Group::default()
        })
        .add(Example {
            id: id.clone(),
            path: problem.path.clone(),
            value: problem.value.clone(),
        });
}

impl Census {
    /// A census for `spec`.
    pub fn new(spec: &Spec) -> Census {
        Census {
            fixups: spec
                .fixups
                .iter()
                .map(|f| FixupEffect {
                    fixup: f.name.clone(),
                    users: 0,
                    examples: Vec::new(),
                })
                .collect(),
            rows_by_table: vec![0; spec.tables.len()],
            broken: Group {
                rule: "(stored rows)".into(),
                reason: "the stored rows and residual do not rebuild the blob they came from"
                    .into(),
                ..Group::default()
            },
            awaiting: Group {
                rule: "(evolution)".into(),
                reason: "migrated with the mapping before `decant init --evolve`: \
                         `decant run --evolve` re-migrates them"
                    .into(),
                ..Group::default()
            },
            ..Census::default()
        }
    }

    /// Adds a legacy user: what migrating it would do. `bytes` is the
    /// blob's size as JSON text.
    pub fn add_legacy<V: JsonView>(&mut self, spec: &Spec, id: &UserId, blob: &V, bytes: usize) {
        self.legacy += 1;
        self.walked += 1;
        self.blob_bytes.record(bytes as u64);
        let mut path = Vec::new();
        self.types_at(spec, blob, &spec.trie, &mut path);
        let e = match explode::explode_view(spec, blob) {
            Ok(e) => e,
            Err(problem) => {
                self.failed += 1;
                add_group(&mut self.failures, spec, id, &problem);
                return;
            }
        };
        // what the migration verifies, without the database
        let problem = match explode::reconstruct(spec, &e.rows, &e.residual) {
            Ok(rebuilt) if json::eq(&rebuilt, blob) => None,
            Ok(rebuilt) => Some(
                json::json_diff(&rebuilt, &blob.to_value(), &mut String::new())
                    .unwrap_or_else(|| "the rebuilt blob differs".into()),
            ),
            Err(e) => Some(e),
        };
        if let Some(detail) = problem {
            self.failed += 1;
            let problem = Invalid {
                rule: "(verification)".into(),
                path: "$".into(),
                expected: "the rows would not rebuild the blob".into(),
                value: detail,
            };
            add_group(&mut self.failures, spec, id, &problem);
            return;
        }
        if e.warnings.is_empty() {
            self.clean += 1;
        } else {
            self.warned += 1;
            // one count per user and group
            let mut seen = std::collections::BTreeSet::new();
            for w in &e.warnings {
                if seen.insert((w.rule.clone(), w.reason().to_string())) {
                    add_group(&mut self.warnings, spec, id, w);
                }
            }
        }
        let kept: std::collections::BTreeSet<&str> =
            e.warnings.iter().map(|w| w.path.as_str()).collect();
        let mut at = String::from("$");
        let mut found = std::collections::BTreeSet::new();
        unclaimed_paths(&e.residual, Some(&spec.trie), &mut at, &kept, &mut found);
        for p in found {
            self.add_unclaimed(p, id, 1);
        }
        self.add_rows(&e.rows);
    }

    /// Adds a legacy user whose blob cannot be read as JSON (the
    /// migration would fail it too).
    pub fn add_unreadable(&mut self, spec: &Spec, id: &UserId, bytes: usize, detail: String) {
        self.legacy += 1;
        self.failed += 1;
        self.blob_bytes.record(bytes as u64);
        let problem = Invalid {
            rule: "(blob)".into(),
            path: "$".into(),
            expected: "a blob decant can read as JSON".into(),
            value: detail,
        };
        add_group(&mut self.failures, spec, id, &problem);
    }

    /// Records what the fixups did to a legacy user's blob (before
    /// [`Census::add_legacy`] with the repaired blob).
    pub fn add_fixups(&mut self, id: &UserId, applied: &[crate::core::fixup::Applied]) {
        for a in applied {
            if let Some(e) = self.fixups.iter_mut().find(|e| e.fixup == a.fixup) {
                e.users += 1;
                if e.examples.len() < EXAMPLES {
                    let (path, value) = match a.changes.first() {
                        Some(c) => (
                            crate::core::fixup::path_text(&c.path),
                            c.before
                                .as_ref()
                                .map_or("(absent)".to_string(), Value::to_string),
                        ),
                        None => ("$".to_string(), "(a Rust fixup)".to_string()),
                    };
                    e.examples.push(Example {
                        id: id.clone(),
                        path,
                        value,
                    });
                }
            }
        }
    }

    /// Adds a legacy user that already has rows in target table `table`:
    /// the migration refuses it (it never adopts rows it did not write).
    pub fn add_has_rows(&mut self, spec: &Spec, id: &UserId, bytes: usize, table: &str) {
        self.legacy += 1;
        self.failed += 1;
        self.blob_bytes.record(bytes as u64);
        let problem = Invalid {
            rule: "(rows already there)".into(),
            path: "$".into(),
            expected: "a legacy user with no row in the target tables; decant never adopts rows"
                .into(),
            value: format!("has rows in table {table}"),
        };
        add_group(&mut self.failures, spec, id, &problem);
    }

    /// Adds a migrated user whose rows and residual are of the mapping
    /// before an evolution (`init --evolve`): they rebuild with that one,
    /// not with the spec's, until `run --evolve` re-migrates the user.
    pub fn add_awaiting_evolution(&mut self, id: &UserId, rows: &[Row]) {
        self.migrated += 1;
        self.add_rows(rows);
        self.awaiting.add(Example {
            id: id.clone(),
            path: "$".into(),
            value: "awaiting `decant run --evolve`".into(),
        });
    }

    /// Adds a migrated user whose residual cannot be read as JSON.
    pub fn add_unreadable_migrated(&mut self, id: &UserId, detail: String) {
        self.migrated += 1;
        self.broken.add(Example {
            id: id.clone(),
            path: "$".into(),
            value: detail,
        });
    }

    /// Adds a migrated user from its stored rows and residual.
    pub fn add_migrated(&mut self, spec: &Spec, id: &UserId, rows: &[Row], residual: &Value) {
        self.migrated += 1;
        self.add_rows(rows);
        let detail = match explode::reconstruct(spec, rows, residual) {
            Err(e) => Some(format!("cannot rebuild: {e}")),
            Ok(blob) => {
                let back = explode::explode_lenient(spec, &blob);
                if rows.is_empty() && !back.rows.is_empty() {
                    Some(format!(
                        "its values are in the blob column and none in the tables ({} rows' worth): \
                         a user inserted after finalize by the old code path? save its blob \
                         through decant (README: new users after finalize)",
                        back.rows.len()
                    ))
                } else if back.residual != *residual {
                    Some("the rebuilt blob leaves another residual".to_string())
                } else if !same_rows(&back.rows, rows) {
                    Some(format!(
                        "the rebuilt blob explodes into other rows ({} stored, {} again)",
                        rows.len(),
                        back.rows.len()
                    ))
                } else {
                    None
                }
            }
        };
        if let Some(value) = detail {
            self.broken.add(Example {
                id: id.clone(),
                path: "$".into(),
                value,
            });
        }
    }

    fn add_rows(&mut self, rows: &[Row]) {
        self.rows_per_user.record(rows.len() as u64);
        for r in rows {
            self.rows_by_table[r.table] += 1;
        }
    }

    fn add_unclaimed(&mut self, path: String, id: &UserId, users: u64) {
        let room = self.unclaimed.len() < MAX_PATHS;
        match self.unclaimed.get_mut(&path) {
            Some(u) => {
                u.users += users;
                if u.examples.len() < EXAMPLES {
                    u.examples.push(id.clone());
                }
            }
            None if room => {
                self.unclaimed.insert(
                    path.clone(),
                    Unclaimed {
                        path,
                        users,
                        examples: vec![id.clone()],
                    },
                );
            }
            None => self.unclaimed_other += users,
        }
    }

    /// Records the JSON type of every value a rule claims in `v`.
    fn types_at<V: JsonView>(&mut self, spec: &Spec, v: &V, node: &Node, path: &mut Vec<String>) {
        if let Some(ri) = node.terminal {
            self.reached.insert(ri);
            let rule = &spec.rules[ri];
            let mut record = |suffix: &str, t: &'static str| {
                *self
                    .types
                    .entry((ri, suffix.to_string()))
                    .or_default()
                    .entry(t)
                    .or_default() += 1;
            };
            match (rule.position.is_some(), &rule.kind, v.array()) {
                (true, _, Some(items)) => {
                    for item in items {
                        record("", type_name(item));
                    }
                }
                (false, RuleKind::Object { keys, nested, .. }, _) => match v.object() {
                    Some(entries) => {
                        for (k, item) in entries {
                            if keys.iter().any(|(key, _)| key == k) {
                                record(&crate::core::explode::show_key(k), type_name(item));
                            }
                        }
                        for (p, _) in nested {
                            if let Some(item) = nested_at(v, p) {
                                let at: String = p
                                    .iter()
                                    .map(|k| crate::core::explode::show_key(k))
                                    .collect();
                                record(&at, type_name(item));
                            }
                        }
                    }
                    None => record("", type_name(v)),
                },
                _ => record("", type_name(v)),
            }
            // deeper rules may claim keys inside an object rule's object
            if node.literal.is_empty() {
                return;
            }
        }
        if let Some(element) = node.array.as_deref() {
            for item in v.array().unwrap_or_default() {
                self.types_at(spec, item, element, path);
            }
            return;
        }
        let Some(entries) = v.object() else { return };
        for (k, child) in entries {
            let next = node.literal.get(k).or(node.wildcard.as_deref());
            if let Some(next) = next {
                path.push(k.to_string());
                self.types_at(spec, child, next, path);
                path.pop();
            }
        }
    }

    /// Adds the census of other users (taken after this one's, in id order).
    pub fn merge(&mut self, other: Census) {
        for (mine, theirs) in self.fixups.iter_mut().zip(other.fixups) {
            mine.users += theirs.users;
            let room = EXAMPLES.saturating_sub(mine.examples.len());
            mine.examples.extend(theirs.examples.into_iter().take(room));
        }
        self.legacy += other.legacy;
        self.clean += other.clean;
        self.warned += other.warned;
        self.failed += other.failed;
        self.migrated += other.migrated;
        self.broken.merge(other.broken);
        self.awaiting.merge(other.awaiting);
        for (k, g) in other.failures {
            match self.failures.get_mut(&k) {
                Some(mine) => mine.merge(g),
                None => {
                    self.failures.insert(k, g);
                }
            }
        }
        for (k, g) in other.warnings {
            match self.warnings.get_mut(&k) {
                Some(mine) => mine.merge(g),
                None => {
                    self.warnings.insert(k, g);
                }
            }
        }
        for (path, u) in other.unclaimed {
            if let Some(mine) = self.unclaimed.get_mut(&path) {
                mine.users += u.users;
                let room = EXAMPLES.saturating_sub(mine.examples.len());
                mine.examples.extend(u.examples.into_iter().take(room));
            } else if self.unclaimed.len() < MAX_PATHS {
                self.unclaimed.insert(path, u);
            } else {
                self.unclaimed_other += u.users;
            }
        }
        self.unclaimed_other += other.unclaimed_other;
        for (k, types) in other.types {
            let mine = self.types.entry(k).or_default();
            for (t, n) in types {
                *mine.entry(t).or_default() += n;
            }
        }
        self.reached.extend(other.reached);
        self.walked += other.walked;
        self.blob_bytes.merge(&other.blob_bytes);
        self.rows_per_user.merge(&other.rows_per_user);
        for (a, b) in self.rows_by_table.iter_mut().zip(other.rows_by_table) {
            *a += b;
        }
    }

    /// The report.
    pub fn report(&self, spec: &Spec) -> CensusReport {
        let sorted = |m: &BTreeMap<(String, String), Group>| {
            let mut v: Vec<Group> = m.values().cloned().collect();
            v.sort_by(|a, b| b.users.cmp(&a.users).then(a.rule.cmp(&b.rule)));
            v
        };
        let mut unclaimed: Vec<Unclaimed> = self.unclaimed.values().cloned().collect();
        unclaimed.sort_by(|a, b| b.users.cmp(&a.users).then(a.path.cmp(&b.path)));
        CensusReport {
            users: self.legacy + self.migrated,
            legacy: self.legacy,
            would_migrate_cleanly: self.clean,
            would_migrate_with_warnings: self.warned,
            would_fail: self.failed,
            fixups: self.fixups.clone(),
            failures: sorted(&self.failures),
            warnings: sorted(&self.warnings),
            unclaimed,
            unclaimed_other_users: self.unclaimed_other,
            types: self
                .types
                .iter()
                .map(|((ri, suffix), types)| TypesSeen {
                    rule: spec.rules[*ri].name.clone(),
                    path: format!("{}{suffix}", spec.rules[*ri].path),
                    types: types.iter().map(|(t, n)| (t.to_string(), *n)).collect(),
                })
                .collect(),
            rules_matching_nothing: if self.walked > 0 {
                spec.rules
                    .iter()
                    .enumerate()
                    .filter(|(ri, _)| !self.reached.contains(ri))
                    .map(|(_, r)| RulePath {
                        rule: r.name.clone(),
                        path: r.path.clone(),
                    })
                    .collect()
            } else {
                Vec::new()
            },
            blob_bytes: self.blob_bytes.summary(),
            rows_per_user: self.rows_per_user.summary(),
            projected_rows: spec
                .tables
                .iter()
                .zip(&self.rows_by_table)
                .map(|(t, n)| (t.name.clone(), *n))
                .collect(),
            migrated: self.migrated,
            migrated_not_rebuilding: (self.broken.users > 0).then(|| self.broken.clone()),
            migrated_awaiting_evolution: (self.awaiting.users > 0).then(|| self.awaiting.clone()),
        }
    }
}

/// What `decant check` found, for people (`Display` in the command line)
/// and scripts (`--json`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CensusReport {
    /// Users looked at.
    pub users: u64,
    /// Of which legacy.
    pub legacy: u64,
    /// Legacy users that would migrate with no warning.
    pub would_migrate_cleanly: u64,
    /// Legacy users that would migrate, some invalid values kept in the
    /// residual under `keep` rules.
    pub would_migrate_with_warnings: u64,
    /// Legacy users that would fail (and stay legacy), fixups applied.
    pub would_fail: u64,
    /// What each fixup would change, in order.
    pub fixups: Vec<FixupEffect>,
    /// Failures by rule, pattern and reason, largest first.
    pub failures: Vec<Group>,
    /// Warnings by rule, pattern and reason, largest first.
    pub warnings: Vec<Group>,
    /// Keys no rule claims (they stay in the residual), most held first.
    pub unclaimed: Vec<Unclaimed>,
    /// User-key pairs beyond the distinct paths listed.
    pub unclaimed_other_users: u64,
    /// JSON types met per rule path.
    pub types: Vec<TypesSeen>,
    /// The rules whose path no legacy user's blob checked holds (a typo
    /// in the path, or a key no user has yet): their rows stay unwritten.
    pub rules_matching_nothing: Vec<RulePath>,
    /// Legacy blobs' size as JSON text, bytes.
    pub blob_bytes: Summary,
    /// Rows per user (stored for migrated users, projected for legacy
    /// users that would migrate).
    pub rows_per_user: Summary,
    /// Rows per target table once these users are migrated (stored plus
    /// projected).
    pub projected_rows: BTreeMap<String, u64>,
    /// Users already migrated.
    pub migrated: u64,
    /// Migrated users whose stored rows no longer rebuild their blob.
    pub migrated_not_rebuilding: Option<Group>,
    /// Migrated users still of the mapping before `init --evolve` (their
    /// rows rebuild with that one): `run --evolve` re-migrates them. Not
    /// a failure.
    pub migrated_awaiting_evolution: Option<Group>,
}

impl CensusReport {
    /// Whether anything would fail: a legacy user that would not migrate
    /// or a migrated user whose rows do not rebuild.
    pub fn anything_fails(&self) -> bool {
        self.would_fail > 0 || self.migrated_not_rebuilding.is_some()
    }
}

/// Rows equal as multisets (the database returns them in key order, the
/// explode in blob order).
fn same_rows(a: &[Row], b: &[Row]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    fn key(r: &Row) -> (usize, Vec<std::borrow::Cow<'_, str>>) {
        (r.table, r.values.iter().map(|v| v.key_text()).collect())
    }
    let mut a: Vec<_> = a.iter().map(|r| (key(r), r)).collect();
    let mut b: Vec<_> = b.iter().map(|r| (key(r), r)).collect();
    a.sort_by(|x, y| x.0.cmp(&y.0));
    b.sort_by(|x, y| x.0.cmp(&y.0));
    a.iter().zip(&b).all(|(x, y)| {
        x.1.table == y.1.table
            && x.1.values.len() == y.1.values.len()
            && x.1.values.iter().zip(&y.1.values).all(|(p, q)| p.same(q))
    })
}

/// The value at a key path through nested objects.
fn nested_at<'a, V: JsonView>(v: &'a V, path: &[String]) -> Option<&'a V> {
    let mut here = v;
    for k in path {
        here = here.object()?.find(|(key, _)| key == k)?.1;
    }
    Some(here)
}

/// The paths of the residual's leaves (values that are not non-empty
/// objects), but for the values `keep` rules left there (`kept`) and the
/// empty objects and arrays where rules' paths go (`points: {}` under
/// `points.{year}`): a rule's place that holds nothing, not a key no rule
/// claims.
fn unclaimed_paths(
    v: &Value,
    node: Option<&Node>,
    at: &mut String,
    kept: &std::collections::BTreeSet<&str>,
    out: &mut std::collections::BTreeSet<String>,
) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                let len = at.len();
                // as the warnings write it, so that a kept value is known
                at.push_str(&crate::core::explode::show_key(k));
                let next = node.and_then(|n| n.literal.get(k).or(n.wildcard.as_deref()));
                unclaimed_paths(child, next, at, kept, out);
                at.truncate(len);
            }
        }
        // an array rule paths go through: what its elements leave, by
        // element (an empty one stands for an element claimed whole)
        Value::Array(items) if node.is_some_and(|n| n.array.is_some()) => {
            let element = node.and_then(|n| n.array.as_deref());
            for (i, item) in items.iter().enumerate() {
                let empty = match item {
                    Value::Object(m) => m.is_empty(),
                    Value::Array(a) => a.is_empty(),
                    _ => false,
                };
                if empty {
                    continue;
                }
                let len = at.len();
                at.push_str(&format!("[{i}]"));
                let mut inner = std::collections::BTreeSet::new();
                unclaimed_paths(item, element, at, kept, &mut inner);
                at.truncate(len);
                // one path for every element: `[*]`
                let prefix = format!("{at}[{i}]");
                out.extend(
                    inner
                        .into_iter()
                        .map(|p| format!("{at}[*]{}", &p[prefix.len()..])),
                );
            }
        }
        _ if at == "$" => {}
        Value::Object(m) if m.is_empty() && node.is_some() => {}
        Value::Array(a) if a.is_empty() && node.is_some() => {}
        _ => {
            if !kept_here(at, kept) {
                out.insert(at.clone());
            }
        }
    }
}

/// Whether the residual's value at `at` is there because a `keep` rule
/// kept an invalid value: the value itself, a value holding it (the
/// array an array rule's refused element stays in, an element for a bad
/// key inside it) or a value under it (an object kept whole under a key its column
/// refuses).
fn kept_here(at: &str, kept: &std::collections::BTreeSet<&str>) -> bool {
    let boundary = |rest: &str| rest.starts_with('.') || rest.starts_with('[');
    // `at` itself or a kept path under it: the paths starting with `at`
    // follow it in order
    let holds_one = kept
        .range::<str, _>((std::ops::Bound::Included(at), std::ops::Bound::Unbounded))
        .take_while(|k| k.starts_with(at))
        .any(|k| k.len() == at.len() || boundary(&k[at.len()..]));
    holds_one
        || at
            .char_indices()
            .filter(|&(i, c)| i > 0 && (c == '.' || c == '['))
            .any(|(i, _)| kept.contains(&at[..i]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    proptest! {
        #[test]
        fn percentiles_are_within_three_percent(mut v in proptest::collection::vec(0u64..10_000_000, 1..500)) {
            let mut d = Distribution::default();
            for x in &v {
                d.record(*x);
            }
            v.sort_unstable();
            let s = d.summary();
            prop_assert_eq!(s.max, *v.last().unwrap());
            prop_assert_eq!(s.count, v.len() as u64);
            for (q, got) in [(0.5, s.p50), (0.9, s.p90), (0.99, s.p99)] {
                let exact = v[((v.len() as f64 * q).ceil() as usize).max(1) - 1];
                prop_assert!(got <= exact && got as f64 >= exact as f64 * 0.97 - 1.0,
                    "q {} exact {} got {}", q, exact, got);
            }
        }

        #[test]
        fn merged_distributions_equal_one(a in proptest::collection::vec(0u64..1_000_000, 0..100),
                                          b in proptest::collection::vec(0u64..1_000_000, 1..100)) {
            let (mut x, mut y, mut all) = (Distribution::default(), Distribution::default(), Distribution::default());
            for v in &a { x.record(*v); all.record(*v); }
            for v in &b { y.record(*v); all.record(*v); }
            x.merge(&y);
            prop_assert_eq!(x.summary(), all.summary());
        }
    }

    #[test]
    fn a_kept_value_under_a_key_with_a_dot_is_not_an_unclaimed_key() {
        let spec = spec();
        let mut c = Census::new(&spec);
        let u = json!({"pref": {"a.b": "toolong", "ok": "fr"}, "old": {"x.y": 1, "": 2}});
        c.add_legacy(&spec, &UserId::Int(1), &u, u.to_string().len());
        let r = c.report(&spec);
        assert_eq!(r.warnings[0].examples[0].path, r#"$.pref["a.b"]"#);
        let unclaimed: Vec<&str> = r.unclaimed.iter().map(|u| u.path.as_str()).collect();
        assert_eq!(unclaimed, [r#"$.old[""]"#, r#"$.old["x.y"]"#]);
    }

    #[test]
    fn an_empty_object_where_a_rule_goes_is_not_an_unclaimed_key() {
        let spec = spec();
        let mut c = Census::new(&spec);
        let u = json!({"stats": {"a": {}}, "pref": {}, "old": {}, "list": []});
        c.add_legacy(&spec, &UserId::Int(1), &u, u.to_string().len());
        let r = c.report(&spec);
        let unclaimed: Vec<&str> = r.unclaimed.iter().map(|u| u.path.as_str()).collect();
        assert_eq!(unclaimed, ["$.list", "$.old"]);
    }

    #[test]
    fn a_value_kept_whole_around_or_under_an_invalid_one_is_not_an_unclaimed_key() {
        // a `keep` rule keeps more than the invalid value: a scalar array
        // whole for one bad element, an element object whole for a bad key
        // inside it, an object whole under a key its column refuses
        let spec = Spec::parse(
            r#"
[source]
table = "u"
id = "id"
blob = "data"

[tables.item.columns]
slot = "int2"
sku = { type = "text", max_length = 3 }

[tables.ach.columns]
pos = "int2"
at = "timestamptz"
extra = "jsonb"

[tables.friend.columns]
friend_id = "int8"
since = "int8"
extra = "jsonb"

[[rules]]
name = "items"
path = "inventory[{slot}]"
table = "item"
value = "sku"
on_invalid = "keep"

[[rules]]
name = "achs"
path = "achievements[{pos}]"
table = "ach"
keys = { at = "at" }
on_invalid = "keep"

[[rules]]
name = "friends"
path = "friends.{friend_id}"
table = "friend"
keys = { since = "since" }
on_invalid = "keep"
"#,
        )
        .unwrap();
        let mut c = Census::new(&spec);
        let u = json!({
            "inventory": ["abc", "toolong"],
            "achievements": [{"at": 1}, {"at": "yesterday"}],
            "friends": {"12": {"since": 5}, "bob": {"since": 6}},
            "old": 1
        });
        c.add_legacy(&spec, &UserId::Int(1), &u, u.to_string().len());
        let r = c.report(&spec);
        assert_eq!(r.would_migrate_with_warnings, 1);
        let warned: Vec<&str> = r
            .warnings
            .iter()
            .map(|w| w.examples[0].path.as_str())
            .collect();
        assert_eq!(warned.len(), 3, "one warning per rule: {warned:?}");
        let unclaimed: Vec<&str> = r.unclaimed.iter().map(|u| u.path.as_str()).collect();
        assert_eq!(unclaimed, ["$.old"]);
    }

    fn spec() -> Spec {
        Spec::parse(
            r#"
[source]
table = "u"
id = "id"
blob = "data"

[tables.stat.columns]
mode = "text"
stat = "text"
value = { type = "int4", min = 0 }

[tables.pref.columns]
key = "text"
value = { type = "text", max_length = 5 }

[[rules]]
name = "stats"
path = "stats.{mode}.{stat}"
table = "stat"
value = "value"
on_invalid = "fail"

[[rules]]
name = "prefs"
path = "pref.{key}"
table = "pref"
value = "value"
on_invalid = "keep"
"#,
        )
        .unwrap()
    }

    #[test]
    fn a_census_sorts_users_by_outcome_and_names_what_fails() {
        let spec = spec();
        let mut c = Census::new(&spec);
        let users = [
            json!({"stats": {"a": {"x": 1, "y": 2}}, "pref": {"l": "fr"}, "coins": 5}),
            json!({"stats": {"a": {"x": -1}}, "coins": 5}),
            json!({"stats": {"a": {"x": "7"}}}),
            json!({"stats": {"b": {"x": 3}}, "pref": {"l": "toolong"}, "old": {"k": 1}}),
        ];
        for (i, u) in users.iter().enumerate() {
            c.add_legacy(&spec, &UserId::Int(i as i64 + 1), u, u.to_string().len());
        }
        let r = c.report(&spec);
        assert_eq!((r.users, r.legacy), (4, 4));
        assert_eq!(
            (
                r.would_migrate_cleanly,
                r.would_migrate_with_warnings,
                r.would_fail
            ),
            (1, 1, 2)
        );
        assert!(r.anything_fails());
        assert_eq!(r.failures.len(), 2);
        for f in &r.failures {
            assert_eq!(
                (f.rule.as_str(), f.pattern.as_str(), f.users),
                ("stats", "stats.{mode}.{stat}", 1)
            );
        }
        let ids: Vec<UserId> = r
            .failures
            .iter()
            .map(|f| f.examples[0].id.clone())
            .collect();
        assert!(ids.contains(&UserId::Int(2)) && ids.contains(&UserId::Int(3)));
        assert_eq!(r.warnings.len(), 1);
        assert_eq!(r.warnings[0].examples[0].id, 4);
        assert_eq!(r.warnings[0].examples[0].path, "$.pref.l");
        let unclaimed: Vec<(&str, u64)> = r
            .unclaimed
            .iter()
            .map(|u| (u.path.as_str(), u.users))
            .collect();
        // the invalid value kept under `keep` is not an unclaimed key; the
        // failed users' keys are not counted (they would not migrate)
        assert_eq!(unclaimed, vec![("$.coins", 1), ("$.old.k", 1)]);
        assert_eq!(r.projected_rows["stat"], 3);
        assert_eq!(r.projected_rows["pref"], 1);
        let types: Vec<(&str, &BTreeMap<String, u64>)> = r
            .types
            .iter()
            .map(|t| (t.path.as_str(), &t.types))
            .collect();
        assert_eq!(types[0].0, "stats.{mode}.{stat}");
        assert_eq!(types[0].1["number"], 4);
        assert_eq!(types[0].1["string"], 1);
        assert_eq!(r.blob_bytes.count, 4);
    }

    #[test]
    fn a_rule_whose_path_no_blob_holds_is_named() {
        let spec = spec();
        let report = |users: &[serde_json::Value]| {
            let mut c = Census::new(&spec);
            for (i, u) in users.iter().enumerate() {
                c.add_legacy(&spec, &UserId::Int(i as i64 + 1), u, 10);
            }
            c.report(&spec).rules_matching_nothing
        };
        // `prefs` reads `pref`; the users hold `prefs` (a typo's effect)
        let none = report(&[json!({"stats": {"a": {"x": 1}}, "prefs": {"l": "fr"}})]);
        assert_eq!(
            none,
            vec![RulePath {
                rule: "prefs".into(),
                path: "pref.{key}".into()
            }]
        );
        // one user holding a value there is enough; an empty object
        // holds none
        assert!(
            report(&[
                json!({"stats": {"a": {"x": 1}}}),
                json!({"pref": {"l": "x"}})
            ])
            .is_empty()
        );
        assert_eq!(report(&[json!({"stats": {"a": {}}, "pref": {}})]).len(), 2);
        // no blob read: nothing said
        assert!(
            Census::new(&spec)
                .report(&spec)
                .rules_matching_nothing
                .is_empty()
        );
    }

    #[test]
    fn a_census_names_what_array_elements_leave_once_per_path() {
        let spec = Spec::parse(include_str!("../../fixtures/specs/through_arrays.toml")).unwrap();
        let mut c = Census::new(&spec);
        let users = [
            json!({"addresses": [{"street": "a", "geo": {"lat": 1}}, {"geo": {"lat": 2}},
                                 {"street": "b", "zip": "1"}], "name": "x"}),
            json!({"addresses": [{"geo": {"lat": 91}}], "matrix": [[1], [2, 3]]}),
        ];
        for (i, u) in users.iter().enumerate() {
            c.add_legacy(&spec, &UserId::Int(i as i64 + 1), u, u.to_string().len());
        }
        let r = c.report(&spec);
        assert_eq!(
            (r.would_migrate_cleanly, r.would_migrate_with_warnings),
            (1, 1)
        );
        let unclaimed: Vec<(&str, u64)> = r
            .unclaimed
            .iter()
            .map(|u| (u.path.as_str(), u.users))
            .collect();
        // not `$.addresses` (the array the rules go through), nor the kept
        // latitude of 91
        assert_eq!(
            unclaimed,
            vec![
                ("$.addresses[*].street", 1),
                ("$.addresses[*].zip", 1),
                ("$.name", 1)
            ]
        );
        // (a kept latitude still leaves its row, without it)
        assert_eq!(r.projected_rows["geo"], 3);
        assert_eq!(r.projected_rows["cell"], 3);
        let types: Vec<&str> = r.types.iter().map(|t| t.path.as_str()).collect();
        assert!(types.contains(&"matrix[{r}][{c}]"), "{types:?}");
    }

    #[test]
    fn merging_censuses_equals_one_census() {
        let spec = spec();
        let blobs: Vec<Value> = (0..40)
            .map(|i| json!({"stats": {"m": {"s": if i % 7 == 0 { json!(-1) } else { json!(i) }}}, "x": {"k": i % 3}}))
            .collect();
        let mut one = Census::new(&spec);
        let (mut a, mut b) = (Census::new(&spec), Census::new(&spec));
        for (i, blob) in blobs.iter().enumerate() {
            one.add_legacy(&spec, &UserId::Int(i as i64), blob, 10);
            if i < 17 { &mut a } else { &mut b }.add_legacy(
                &spec,
                &UserId::Int(i as i64),
                blob,
                10,
            );
        }
        a.merge(b);
        assert_eq!(a.report(&spec), one.report(&spec));
    }

    #[test]
    fn migrated_rows_that_do_not_rebuild_are_reported() {
        let spec = spec();
        let blob = json!({"stats": {"a": {"x": 1}}, "coins": 2});
        let e = explode::explode(&spec, &blob).unwrap();
        let mut c = Census::new(&spec);
        c.add_migrated(&spec, &UserId::Int(1), &e.rows, &e.residual);
        assert!(c.report(&spec).migrated_not_rebuilding.is_none());
        // a row edited by hand to a value the rule refuses
        let mut rows = e.rows.clone();
        rows[0].values[2] = crate::core::value::ColumnValue::I32(-5);
        c.add_migrated(&spec, &UserId::Int(2), &rows, &e.residual);
        // a residual that collides with a row's path
        c.add_migrated(
            &spec,
            &UserId::Int(3),
            &e.rows,
            &json!({"stats": {"a": {"x": 9}}}),
        );
        let r = c.report(&spec);
        assert_eq!(r.migrated, 3);
        let broken = r.migrated_not_rebuilding.unwrap();
        assert_eq!(broken.users, 2);
        assert_eq!(
            broken
                .examples
                .iter()
                .map(|e| e.id.clone())
                .collect::<Vec<_>>(),
            vec![2, 3]
        );
        assert!(r.projected_rows["stat"] == 3);
    }
}
