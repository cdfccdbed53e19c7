//! The checks that make a spec valid beyond its syntax: identifiers, rules
//! whose rows can be told apart, key columns, and the compiled pattern trie
//! in which no two rules claim one value.

use super::model::*;
use crate::core::value::ColumnValue;
use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::path::Path;

/// The checks across rules, then the spec: every rule on a table sets its
/// key columns, not-null columns are always written, no two rules claim
/// one value (the trie), and rows of rules sharing a table can be routed
/// back to their rule.
pub(super) fn complete(
    file: &Path,
    source: Source,
    settings: Settings,
    mut tables: Vec<Table>,
    mut rules: Vec<Rule>,
) -> Result<Spec> {
    share_elements(&mut rules);
    let rule_err = |r: &Rule, m: String| SpecError {
        file: file.to_path_buf(),
        line: r.line,
        message: format!("rule `{}`: {m}", r.name),
    };

    // Keys: every column that identifies a row; every rule must set them
    // all. Each table's problems are reported together.
    let mut errors = Vec::new();
    for (ti, table) in tables.iter_mut().enumerate() {
        let mut key = BTreeSet::new();
        for r in rules.iter().filter(|r| r.table == ti) {
            key.extend(identity_columns(r));
        }
        for r in rules.iter().filter(|r| r.table == ti) {
            let mine: BTreeSet<usize> = identity_columns(r).collect();
            if let Some(missing) = key.iter().find(|k| !mine.contains(k)) {
                errors.push(rule_err(
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
                // name the rules that may leave it NULL and the way out
                let leaving: Vec<&str> = rules
                    .iter()
                    .filter(|r| r.table == ti)
                    .filter(|r| !matches!(r.kind, RuleKind::Scalar { column } if column == ci_of(table, c)))
                    .map(|r| r.name.as_str())
                    .collect();
                errors.push(SpecError {
                    file: file.to_path_buf(),
                    line: table.line,
                    message: format!(
                        "table `{}` column `{}` is not_null but {} may leave it NULL \
                         (an object rule's row has NULL where its object lacks the key; \
                         a rule that does not write the column leaves it NULL): \
                         drop `not_null`, or write the column from a scalar rule \
                         whose value is required",
                        table.name,
                        c.name,
                        leaving
                            .iter()
                            .map(|n| format!("rule `{n}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                });
            }
        }
    }
    if !errors.is_empty() {
        errors.sort_by_key(|e| e.line);
        return Err(merged(errors));
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
        ranked: Vec::new(),
        fixups: Vec::new(),
        text: std::sync::Arc::from(""),
    })
}

/// An object rule on the elements of an array (`addresses[{p}]`, keys to
/// columns) that deeper rules go through (`addresses[{p}].geo`) claims
/// each element beside them rather than the array whole: its path goes
/// through the array like theirs, and each element is its object, minus
/// the keys they claim.
fn share_elements(rules: &mut [Rule]) {
    for i in 0..rules.len() {
        let Some(pi) = rules[i].position else {
            continue;
        };
        if !matches!(rules[i].kind, RuleKind::Object { .. }) {
            continue;
        }
        let n = rules[i].segments.len();
        let through = rules.iter().enumerate().any(|(j, o)| {
            j != i
                && o.segments.len() > n
                && o.segments[..n] == rules[i].segments[..]
                && matches!(o.segments[n], Segment::Position(_))
        });
        if through {
            rules[i].segments.push(Segment::Position(pi));
            rules[i].position = None;
        }
    }
}

fn identity_columns(r: &Rule) -> impl Iterator<Item = usize> + '_ {
    r.segments
        .iter()
        .filter_map(|s| match s {
            Segment::Capture(c) | Segment::Position(c) => Some(*c),
            Segment::Literal(_) => None,
        })
        .chain(r.position)
        .chain(r.constants.iter().map(|(c, _)| *c))
}

fn ci_of(table: &Table, c: &Column) -> usize {
    table.column(&c.name).expect("own column")
}

fn key_or_written_by_all(rules: &[Rule], ti: usize, table: &Table, c: &Column) -> bool {
    let ci = ci_of(table, c);
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
        // the rule named for a wrong shape here: the first whose policy
        // decides what happens, a `fail` rule when there is one
        let visit = |n: &mut Node| {
            let fail = r.on_invalid == Policy::Fail;
            if n.first_rule == usize::MAX || (fail && !n.strict) {
                n.first_rule = ri;
            }
            n.strict |= fail;
        };
        visit(node);
        for (depth, seg) in r.segments.iter().enumerate() {
            if let Some(other) = node.terminal {
                if let Err(why) = beside_object_rule(&rules[other], seg) {
                    return Err((
                        ri,
                        format!(
                            "claims values inside `{}`, which rule `{}` claims {why}",
                            show_steps(&r.segments[..depth]),
                            rules[other].name
                        ),
                    ));
                }
            }
            let through_array = matches!(seg, Segment::Position(_));
            let other_way = if through_array {
                !node.literal.is_empty() || node.wildcard.is_some()
            } else {
                node.array.is_some()
            };
            if other_way {
                let (mine, theirs) = if through_array {
                    ("an array", "an object")
                } else {
                    ("an object", "an array")
                };
                return Err((
                    ri,
                    format!(
                        "goes through `{}` as {mine}, where another rule's path goes through it \
                         as {theirs}; a value is either an array or an object",
                        show_steps(&r.segments[..depth])
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
                Segment::Position(ci) => {
                    if !node.array_limits.contains(&(r.table, *ci)) {
                        node.array_limits.push((r.table, *ci));
                    }
                    node.array.get_or_insert_with(|| {
                        Box::new(Node {
                            first_rule: usize::MAX,
                            ..Node::default()
                        })
                    })
                }
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
        let inside = node
            .wildcard
            .as_ref()
            .map(|_| Segment::Capture(usize::MAX))
            .into_iter()
            .chain(node.array.as_ref().map(|_| Segment::Position(usize::MAX)))
            .chain(node.literal.keys().map(|k| Segment::Literal(k.clone())));
        for seg in inside {
            if let Err(why) = beside_object_rule(r, &seg) {
                return Err((
                    ri,
                    format!(
                        "claims `{}` {why}, but another rule claims values inside it",
                        r.path
                    ),
                ));
            }
        }
        node.terminal = Some(ri);
    }
    Ok(root)
}

/// Whether a deeper rule may claim key `seg` inside the value rule `r`
/// claims: only an object rule (no array position) shares its object, and
/// only with keys it does not map itself (those leave its `extra`). The
/// error says how `r` claims the value, for the message.
fn beside_object_rule(r: &Rule, seg: &Segment) -> std::result::Result<(), String> {
    match (&r.kind, r.position, seg) {
        (RuleKind::Object { keys, nested, .. }, None, Segment::Literal(k)) => {
            if keys.iter().any(|(jk, _)| jk == k) || nested.iter().any(|(p, _)| &p[0] == k) {
                Err(format!("with key `{k}` mapped to a column"))
            } else {
                Ok(())
            }
        }
        (RuleKind::Object { .. }, None, Segment::Capture(_)) => {
            Err("with every key (a wildcard under an object rule would take its keys)".into())
        }
        _ => Err("whole".into()),
    }
}

fn show_steps(segs: &[Segment]) -> String {
    segs.iter()
        .map(|s| match s {
            Segment::Literal(k) => format!(".{k}"),
            Segment::Capture(_) => ".{*}".into(),
            Segment::Position(_) => "[*]".into(),
        })
        .collect::<String>()
        .trim_start_matches('.')
        .to_string()
}

/// Resolves a ranked statistic: the rule whose rows hold the values of
/// `filter` (the first in routing order whose constants all match, as a
/// row read back is routed), which must be a scalar rule writing `value`
/// or an object rule mapping it from a key, with every captured key fixed
/// by `filter` and no array position. Gives the concrete blob path of the
/// value (of the object, for an object rule, with its keys).
pub(super) fn resolve_ranked(
    spec: &Spec,
    table: usize,
    value: usize,
    filter: &[(usize, ColumnValue)],
) -> std::result::Result<(Vec<String>, Option<Vec<String>>), String> {
    let fixed = |ci: usize| filter.iter().find(|(c, _)| *c == ci).map(|(_, v)| v);
    let t = &spec.tables[table];
    let rule = spec
        .route_by(table, fixed)
        .ok_or_else(|| "no rule writes rows with these values".to_string())?;
    let r = &spec.rules[rule];
    let object = match &r.kind {
        RuleKind::Scalar { column } if *column == value => None,
        RuleKind::Object { keys, nested, .. } => {
            // (its columns are never `not_null`: a row has NULL where its
            // object lacks the key)
            let key = keys
                .iter()
                .map(|(k, ci)| (vec![k.clone()], *ci))
                .chain(nested.iter().cloned())
                .find(|(_, ci)| *ci == value);
            let Some((key, _)) = key else {
                return Err(format!(
                    "rule `{}` maps no key of its object to `{}`",
                    r.name, t.columns[value].name
                ));
            };
            Some(key)
        }
        _ => {
            return Err(format!(
                "rule `{}` does not write `{}` as its value",
                r.name, t.columns[value].name
            ));
        }
    };
    if r.position.is_some() || r.segments.iter().any(|s| matches!(s, Segment::Position(_))) {
        return Err(format!(
            "rule `{}` writes array elements; rank one value",
            r.name
        ));
    }
    for (ci, _) in filter {
        let constant = r.constants.iter().any(|(c, _)| c == ci);
        let captured = r.segments.contains(&Segment::Capture(*ci));
        if !constant && !captured {
            return Err(format!(
                "column `{}` is neither captured nor constant in rule `{}`",
                t.columns[*ci].name, r.name
            ));
        }
    }
    let mut path = Vec::new();
    let mut node = &spec.trie;
    for seg in &r.segments {
        let key = match seg {
            Segment::Literal(k) => k.clone(),
            Segment::Position(_) => unreachable!("refused above"),
            Segment::Capture(ci) => match fixed(*ci).and_then(ColumnValue::object_key) {
                Some(k) => {
                    if node.literal.contains_key(&k) {
                        return Err(format!(
                            "`{k}` is claimed by another rule's literal key at that place"
                        ));
                    }
                    t.columns[*ci].check_key(&k)?;
                    k
                }
                None => {
                    return Err(format!(
                        "give a value for `{}`, which rule `{}` captures",
                        t.columns[*ci].name, r.name
                    ));
                }
            },
        };
        node = node.child(seg);
        path.push(key);
    }
    Ok((path, object))
}
