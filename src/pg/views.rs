//! Cross-user views generated from the spec: one view per target table,
//! `<table>_all`, with the rows of migrated users from the table and, for
//! legacy users, the same rows exploded from the blob in SQL: the same
//! paths (a literal key beats a wildcard), the same column conversions and
//! validation, the same policies (a value a `keep` rule refuses gives no
//! row; a user with a value a `fail` rule refuses gives no row anywhere, as
//! its migration would fail), an array rule's elements each on its own.
//!
//! Values from the spec (keys, constants, allowed texts, bounds) are
//! written as escaped SQL literals: DDL has no bind parameters.

use crate::core::explode;
use crate::core::spec::{Column, Node, Policy, Ranked, RuleKind, Segment, Spec, quote};
use crate::core::value::{ColumnType, ColumnValue, IsoForm};
use crate::pg::sql::{index_name, lit, source_table, target_table};

/// The schema the views live in: the spec's `views_schema`, else the
/// target schema.
pub(crate) fn views_schema(spec: &Spec) -> String {
    quote(&spec.settings.views_schema)
}

/// The unquoted names, in the views schema, of the view of target table
/// `table` (`<table>_all`), of the function saying whether a blob would
/// fail to migrate (`<source>_decant_blob_fails`), and of a ranked
/// statistic's top-N function (`<name>_top`), each cut to PostgreSQL's
/// name length.
pub(crate) fn view_base(spec: &Spec, table: usize) -> String {
    crate::core::spec::cut_name(&format!("{}_all", spec.tables[table].name)).to_string()
}

/// See [`view_base`].
pub(crate) fn fails_base(spec: &Spec) -> String {
    crate::core::spec::cut_name(&format!("{}_decant_blob_fails", spec.source.table)).to_string()
}

/// See [`view_base`].
pub(crate) fn top_base(r: &Ranked) -> String {
    crate::core::spec::cut_name(&format!("{}_top", r.name)).to_string()
}

/// `"schema"."<table>_all"`.
pub(crate) fn view_name(spec: &Spec, table: usize) -> String {
    format!("{}.{}", views_schema(spec), quote(&view_base(spec, table)))
}

/// The name of the function saying whether a blob holds a value a `fail`
/// rule refuses (its user would fail to migrate).
pub(crate) fn fails_fn(spec: &Spec) -> String {
    format!("{}.{}", views_schema(spec), quote(&fails_base(spec)))
}

/// The statements that create the views and their helper functions, each
/// idempotent (`CREATE OR REPLACE`).
pub(crate) fn statements(spec: &Spec) -> Vec<String> {
    let mut out = Vec::new();
    if spec.settings.views_schema != spec.settings.target_schema
        && spec.settings.views_schema != spec.source.schema
    {
        out.push(format!(
            "CREATE SCHEMA IF NOT EXISTS {}",
            views_schema(spec)
        ));
    }
    out.push(HELPERS.trim().to_string());
    // PL/pgSQL, to read the blob once: an inlined SQL function would
    // decompress a TOASTed blob again for every `->` of every rule (a view
    // of 30,000 users, 2% of them 300 kB, ran 2.4x slower). `|| '{}'`
    // returns an object as it is, detoasted into a variable; the fail test
    // of anything else does not read it. Its one query reads no table, so
    // one generic plan serves every call: a session forcing custom plans
    // (decant's batches do) would plan it again per call, 4x the time.
    out.push(format!(
        "CREATE OR REPLACE FUNCTION {}(blob jsonb) RETURNS boolean\n    \
         LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET plan_cache_mode = force_generic_plan \
         AS\n$$\nDECLARE\n    \
         decant_blob jsonb := CASE WHEN jsonb_typeof(blob) = 'object' \
         THEN blob || '{{}}'::jsonb ELSE blob END;\nBEGIN\n    RETURN {};\nEND $$",
        fails_fn(spec),
        blob_fails(spec, "decant_blob")
    ));
    for ti in 0..spec.tables.len() {
        out.push(view(spec, ti));
    }
    for r in &spec.ranked {
        out.extend(ranked(spec, r));
    }
    out
}

/// The name of a ranked statistic's index on its target table:
/// `<table>_<name>_rank_idx`, with a hash of the two names when another
/// ranked statistic's would be the same (table `a_b` and name `c`, table
/// `a` and name `b_c`): PostgreSQL would skip the second index as already
/// there (`IF NOT EXISTS`), leaving that leaderboard without one.
fn rank_index(spec: &Spec, r: &Ranked) -> String {
    let plain = |r: &Ranked| format!("{}_{}_rank_idx", spec.tables[r.table].name, r.name);
    let name = plain(r);
    if spec
        .ranked
        .iter()
        .any(|o| o.name != r.name && plain(o) == name)
    {
        let t = &spec.tables[r.table].name;
        let hash = crate::pg::sql::stable_hash(t.bytes().chain([0]).chain(r.name.bytes()));
        format!("{t}_{}_{hash:08x}_rank_idx", r.name)
    } else {
        name
    }
}

/// The top-N function of a ranked statistic: `"<name>_top"(n)`.
pub(crate) fn top_fn(spec: &Spec, r: &Ranked) -> String {
    format!("{}.{}", views_schema(spec), quote(&top_base(r)))
}

/// For a ranked statistic: an index on the target table's rows of it, an
/// expression index on the legacy blobs' value (both built CONCURRENTLY,
/// in ranking order), and a top-N function that merges two index scans.
/// Ties rank by user id. The top-N tests each legacy candidate's blob for
/// a failing value, unless `index_fail_test` puts that test in the legacy
/// index's predicate (reads never test; every legacy write does).
fn ranked(spec: &Spec, r: &Ranked) -> Vec<String> {
    let t = &spec.tables[r.table];
    let s = &spec.source;
    let vcol = &t.columns[r.value];
    let filter: Vec<String> = r
        .filter
        .iter()
        .map(|(ci, cv)| {
            format!(
                "{} = {}",
                quote(&t.columns[*ci].name),
                constant(t.columns[*ci].ty, cv)
            )
        })
        .collect();
    let filter = if filter.is_empty() {
        "true".to_string()
    } else {
        filter.join(" AND ")
    };
    let path = |blob: String| {
        r.path
            .iter()
            .fold(blob, |at, k| format!("({at} -> {})", lit(k)))
    };
    // the legacy value, as the view gives it (on the blob `b`), and the
    // condition for the user to have a row of it (on the source row `s`)
    let legacy = |b: &str| -> (String, String) {
        let at = path(b.to_string());
        match &r.key {
            None => (
                convert(vcol.ty, &at),
                format!("{at} IS NOT NULL AND ({})", valid(vcol, &at)),
            ),
            Some(key) => {
                // an object rule's: a row where the object is one, NULL in
                // it where the key is absent, null or refused (kept in
                // the residual)
                let kv = nested_value(&at, key);
                let value = format!(
                    "(CASE WHEN {kv} IS NOT NULL AND jsonb_typeof({kv}) <> 'null' AND ({}) \
                     THEN {} END)",
                    valid(vcol, &kv),
                    convert(vcol.ty, &kv)
                );
                (
                    value,
                    format!("coalesce(jsonb_typeof({at}) = 'object', false)"),
                )
            }
        }
    };
    let (value, _) = legacy(&quote(&s.blob));
    let (svalue, srow) = legacy(&format!("s.{}", quote(&s.blob)));
    let user = quote(&t.user_column);
    let v = quote(&vcol.name);
    let (id, flag) = (quote(&s.id), quote(&s.flag));
    vec![
        format!(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS {} ON {} ({v} DESC NULLS LAST, {user}) WHERE {filter}",
            index_name(&rank_index(spec, r)),
            target_table(spec, r.table)
        ),
        format!(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS {} ON {} (({value}) DESC NULLS LAST, {id}) \
             WHERE NOT {flag}{}",
            index_name(&format!("{}_{}_legacy_rank_idx", s.table, r.name)),
            source_table(spec),
            if r.index_fail_test {
                // the test's body in the statement (a comment), so that
                // the index's mark (a hash of the statement) changes with
                // it: `init` replaces the function in place, and an index
                // built on the old body would keep its old answers (users
                // a changed rule no longer fails left out of the top-N
                // and the views, or ones it now fails in)
                format!(
                    " AND NOT {}({}) /* fail test {:08x} */",
                    fails_fn(spec),
                    quote(&s.blob),
                    crate::pg::sql::stable_hash(blob_fails(spec, "decant_blob").bytes())
                )
            } else {
                String::new()
            },
        ),
        format!(
            "CREATE OR REPLACE FUNCTION {top}(n integer) RETURNS TABLE (user_id {it}, value {ty})\n    \
             LANGUAGE sql STABLE AS\n$$\n\
             SELECT u, v FROM (\n  \
               (SELECT t.{user}::{it} AS u, t.{v} AS v FROM {table} AS t WHERE {filter}\n   \
                 ORDER BY t.{v} DESC NULLS LAST, t.{user} LIMIT greatest($1, 0))\n  \
               UNION ALL\n  \
               (SELECT s.{id}::{it}, {svalue} FROM {src} AS s\n   \
                 WHERE {NOT_FINALIZED} AND NOT s.{flag} AND {srow} AND NOT {fails}(s.{blob})\n   \
                 ORDER BY {svalue} DESC NULLS LAST, s.{id} LIMIT greatest($1, 0))\n\
             ) AS x ORDER BY v DESC NULLS LAST, u LIMIT greatest($1, 0)\n$$",
            top = top_fn(spec, r),
            it = spec.source.id_type.sql(),
            ty = vcol.ty.sql(),
            table = target_table(spec, r.table),
            src = source_table(spec),
            fails = fails_fn(spec),
            blob = quote(&s.blob),
        ),
    ]
}

/// Helpers the generated SQL calls: the canonical RFC 3339 timestamp (NULL
/// for any other text, never an error) and the exact-double test.
///
/// No exception block: a subtransaction cannot start in a parallel
/// worker, and the views' scans of a large source table go parallel (a
/// value a cast would refuse is found NULL before the cast instead).
///
/// Both are immutable for every input (the blob-fails function, immutable
/// too, goes into the predicate of a ranked statistic's legacy index): the
/// timestamp is read only in its canonical UTC form (`...Z`, no time zone
/// or date style involved), and a double's text is taken with a fixed
/// `extra_float_digits`, whatever the session sets.
const HELPERS: &str = r#"
CREATE OR REPLACE FUNCTION decant.iso_timestamptz_as(t text, form text) RETURNS timestamptz
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS
$$
DECLARE ts timestamptz;
BEGIN
    IF t !~ form THEN
        RETURN NULL;
    END IF;
    -- every form starts YYYY-MM-DDTHH:MI:SS: fields out of range are
    -- NULL here, so that the cast never raises
    IF decant.iso_date(left(t, 10)) IS NULL OR substr(t, 12, 2)::int > 23
       OR substr(t, 15, 2)::int > 59 OR substr(t, 18, 2)::int > 59 THEN
        RETURN NULL;
    END IF;
    ts := t::timestamptz;
    IF to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS') <> left(t, 19) THEN
        RETURN NULL;
    END IF;
    RETURN ts;
END
$$;
CREATE OR REPLACE FUNCTION decant.iso_timestamptz(t text) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS
$$ SELECT decant.iso_timestamptz_as(t, '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{0,5}[1-9])?Z$') $$;
CREATE OR REPLACE FUNCTION decant.iso_ms_timestamptz(t text) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS
$$ SELECT decant.iso_timestamptz_as(t, '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$') $$;
CREATE OR REPLACE FUNCTION decant.iso_date(t text) RETURNS date
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS
$$
DECLARE d date; y int; m int; day int; last int;
BEGIN
    IF t !~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' THEN
        RETURN NULL;
    END IF;
    -- a day that does not exist is NULL here, so that the cast never raises
    -- (the Gregorian calendar, which PostgreSQL uses for every year)
    y := substr(t, 1, 4)::int;
    m := substr(t, 6, 2)::int;
    day := substr(t, 9, 2)::int;
    last := CASE
        WHEN m = 2 AND (y % 4 = 0 AND y % 100 <> 0 OR y % 400 = 0) THEN 29
        WHEN m = 2 THEN 28
        WHEN m IN (4, 6, 9, 11) THEN 30
        ELSE 31 END;
    IF y < 1 OR m < 1 OR m > 12 OR day < 1 OR day > last THEN
        RETURN NULL;
    END IF;
    d := t::date;
    IF to_char(d, 'YYYY-MM-DD') <> t THEN
        RETURN NULL;
    END IF;
    RETURN d;
END
$$;
CREATE OR REPLACE FUNCTION decant.exact_float8(n numeric) RETURNS boolean
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET extra_float_digits = 1 AS
$$ SELECT (n = 0 OR abs(n) BETWEEN 4.9406564584124654e-324 AND 1.7976931348623157e308)
          AND (n::float8)::text::numeric = n $$;
CREATE OR REPLACE FUNCTION decant.strip(v jsonb, path text[]) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS
$$
-- an object rule's nested key path taken out of its object: the value at
-- the path goes unless it is null; an object this empties goes too (the
-- rows make it again), one that was empty stays
DECLARE below jsonb;
BEGIN
    IF v IS NULL OR jsonb_typeof(v) <> 'object' OR NOT v ? path[1] THEN
        RETURN v;
    END IF;
    IF cardinality(path) = 1 THEN
        IF jsonb_typeof(v -> path[1]) = 'null' THEN
            RETURN v;
        END IF;
        RETURN v - path[1];
    END IF;
    below := decant.strip(v -> path[1], path[2:]);
    IF below = '{}'::jsonb AND v -> path[1] <> '{}'::jsonb THEN
        RETURN v - path[1];
    END IF;
    RETURN jsonb_set(v, path[1:1], below);
END
$$
"#;

/// The value at a nested key path of object `v` (SQL NULL when a key on
/// the way is absent or holds no object), as the Rust layer reads it.
pub(super) fn nested_value(v: &str, path: &[String]) -> String {
    let mut x = format!("({v} -> {})", lit(&path[0]));
    for k in &path[1..] {
        x = format!(
            "(CASE WHEN jsonb_typeof({x}) = 'object' THEN {x} -> {} END)",
            lit(k)
        );
    }
    x
}

/// `ARRAY['a', 'b']` for a key path.
pub(super) fn text_array(path: &[String]) -> String {
    let keys: Vec<String> = path.iter().map(|k| lit(k)).collect();
    format!("ARRAY[{}]::text[]", keys.join(", "))
}

/// True until `decant.control.finalized` is set.
const NOT_FINALIZED: &str = "(SELECT NOT c.finalized FROM decant.control AS c)";

/// The view of one target table.
fn view(spec: &Spec, ti: usize) -> String {
    let t = &spec.tables[ti];
    let cols: Vec<String> = std::iter::once(quote(&t.user_column))
        .chain(t.columns.iter().map(|c| quote(&c.name)))
        .collect();
    let mut parts = vec![format!(
        "SELECT {} FROM {}",
        cols.join(", "),
        target_table(spec, ti)
    )];
    for (ri, r) in spec.rules.iter().enumerate() {
        if r.table == ti {
            parts.push(rule_rows(spec, ri, &legacy(spec)));
        }
    }
    format!(
        "CREATE OR REPLACE VIEW {} AS\n{}",
        view_name(spec, ti),
        parts.join("\nUNION ALL\n")
    )
}

/// A path from the root of the blob to a node, as SQL: the lateral joins
/// that reach every value at it, the conditions for them to exist, the
/// value there, and the captured keys by column.
pub(super) struct Walk {
    pub joins: Vec<String>,
    pub conds: Vec<String>,
    pub value: String,
    pub captures: Vec<(usize, String)>,
    /// The positions of the array elements on the way, by column (SQL
    /// integers from 0).
    pub positions: Vec<(usize, String)>,
}

/// Walks `segments` from `blob` through the trie. Wildcards skip the keys a
/// literal at the same place claims.
fn walk<'n>(spec: &'n Spec, blob: &str, segments: &[Segment], tag: &str) -> (Walk, &'n Node) {
    let mut w = Walk {
        joins: Vec::new(),
        conds: Vec::new(),
        value: blob.to_string(),
        captures: Vec::new(),
        positions: Vec::new(),
    };
    let mut node = &spec.trie;
    for (i, seg) in segments.iter().enumerate() {
        let cur = w.value.clone();
        match seg {
            Segment::Literal(k) => {
                w.value = format!("({cur} -> {})", lit(k));
                w.conds.push(format!("jsonb_typeof({cur}) = 'object'"));
                w.conds.push(format!("{} IS NOT NULL", w.value));
                node = &node.literal[k];
            }
            Segment::Capture(ci) => {
                let e = format!("{tag}e{i}");
                w.joins.push(format!(
                    "CROSS JOIN LATERAL jsonb_each(CASE WHEN jsonb_typeof({cur}) = 'object' \
                     THEN {cur} END) AS {e}(k, v)"
                ));
                let literals: Vec<String> = node.literal.keys().map(|k| lit(k)).collect();
                if !literals.is_empty() {
                    w.conds
                        .push(format!("{e}.k NOT IN ({})", literals.join(", ")));
                }
                w.value = format!("{e}.v");
                w.captures.push((*ci, format!("{e}.k")));
                node = node
                    .wildcard
                    .as_deref()
                    .expect("a capture follows a wildcard");
            }
            Segment::Position(ci) => {
                let e = format!("{tag}e{i}");
                w.joins.push(format!(
                    "CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof({cur}) = 'array' \
                     THEN {cur} END) WITH ORDINALITY AS {e}(v, n)"
                ));
                // an array too long for a position column under it stays
                // whole: no rule under it makes rows of it
                w.conds.push(fits(spec, node, &cur));
                w.value = format!("{e}.v");
                w.positions.push((*ci, format!("({e}.n - 1)")));
                node = node.array.as_deref().expect("a position has an array node");
            }
        }
    }
    (w, node)
}

/// Whether array `arr` (at `node`, which paths go through) is short
/// enough for every position column under it.
pub(super) fn fits(spec: &Spec, node: &Node, arr: &str) -> String {
    let last = last_position(arr);
    let mut ok: Vec<String> = node
        .array_limits
        .iter()
        .map(|&(ti, ci)| {
            format!(
                "coalesce({}, false)",
                valid(&spec.tables[ti].columns[ci], &last)
            )
        })
        .collect();
    ok.insert(0, format!("jsonb_typeof({arr}) = 'array'"));
    format!("({})", ok.join(" AND "))
}

/// The last position of array `arr` as a JSON number (SQL NULL when
/// `arr` is no array): what a position column under it must hold.
fn last_position(arr: &str) -> String {
    format!(
        "to_jsonb(jsonb_array_length(CASE WHEN jsonb_typeof({arr}) = 'array' THEN {arr} END) - 1)"
    )
}

/// Whether JSON value `x` converts into column `c` and passes its
/// validation (a JSON null is SQL NULL, valid unless `not_null`).
pub(super) fn valid(c: &Column, x: &str) -> String {
    let num = format!("({x})::numeric");
    let text = format!("({x} #>> '{{}}')");
    let is = |t: &str| format!("jsonb_typeof({x}) = '{t}'");
    let typed = typed(c.ty, x);
    let mut checks = vec![typed];
    if let Some(min) = &c.min {
        checks.push(format!(
            "CASE WHEN {} THEN {num} >= {} ELSE true END",
            is("number"),
            lit(&min.to_string())
        ));
    }
    if let Some(max) = &c.max {
        checks.push(format!(
            "CASE WHEN {} THEN {num} <= {} ELSE true END",
            is("number"),
            lit(&max.to_string())
        ));
    }
    if let Some(values) = &c.values {
        let vs: Vec<String> = values.iter().map(|v| lit(v)).collect();
        checks.push(format!(
            "CASE WHEN {} THEN {text} IN ({}) ELSE true END",
            is("string"),
            vs.join(", ")
        ));
    }
    if let Some(max) = c.max_length {
        checks.push(format!(
            "CASE WHEN {} THEN char_length({text}) <= {max} ELSE true END",
            is("string")
        ));
    }
    if let Some(p) = &c.pattern {
        checks.push(format!(
            "CASE WHEN {} THEN {text} ~ {} ELSE true END",
            is("string"),
            lit(&p.text)
        ));
    }
    let not_null = if c.not_null { "false" } else { "true" };
    format!(
        "CASE WHEN {x} IS NULL OR {} THEN {not_null} ELSE ({}) END",
        is("null"),
        checks.join(" AND ")
    )
}

/// Whether JSON value `x` (not null) has the type and the exact value
/// column type `ty` takes (the conversion's own rules, before the column's
/// validation).
fn typed(ty: ColumnType, x: &str) -> String {
    let num = format!("({x})::numeric");
    let text = format!("({x} #>> '{{}}')");
    let is = |t: &str| format!("jsonb_typeof({x}) = '{t}'");
    match ty {
        ColumnType::Bool => is("boolean"),
        ColumnType::Int2 | ColumnType::Int4 | ColumnType::Int8 => {
            let (lo, hi) = match ty {
                ColumnType::Int2 => (i16::MIN as i64, i16::MAX as i64),
                ColumnType::Int4 => (i32::MIN as i64, i32::MAX as i64),
                _ => (i64::MIN, i64::MAX),
            };
            format!(
                "({} AND CASE WHEN {} THEN {num} = trunc({num}) AND {num} BETWEEN {lo} AND {hi} END)",
                is("number"),
                is("number")
            )
        }
        ColumnType::Numeric => is("number"),
        ColumnType::Float8 => format!(
            "({n} AND CASE WHEN {n} THEN decant.exact_float8({num}) END)",
            n = is("number")
        ),
        ColumnType::Text | ColumnType::Jsonb => {
            if ty == ColumnType::Text {
                is("string")
            } else {
                "true".into()
            }
        }
        ColumnType::TimestampMs | ColumnType::TimestampS => format!(
            "({n} AND CASE WHEN {n} THEN {us} = trunc({us}) \
             AND {us} BETWEEN -62135596800000000 AND 253402300799999999 END)",
            n = is("number"),
            us = micros(ty, &num)
        ),
        ColumnType::TimestampIso(form) => format!(
            "({s} AND CASE WHEN {s} THEN {} IS NOT NULL END)",
            iso_cast(form, &text),
            s = is("string")
        ),
        ColumnType::Date => format!(
            "({s} AND CASE WHEN {s} THEN decant.iso_date({text}) IS NOT NULL END)",
            s = is("string")
        ),
    }
}

/// The timestamptz of text expression `text` in ISO form `form`, NULL when
/// it is not written exactly so (the two first forms by their functions of
/// old, which indexes may name).
fn iso_cast(form: IsoForm, text: &str) -> String {
    match form {
        IsoForm::TRIMMED => format!("decant.iso_timestamptz({text})"),
        IsoForm::MS => format!("decant.iso_ms_timestamptz({text})"),
        _ => format!(
            "decant.iso_timestamptz_as({text}, {})",
            lit(&form.pattern())
        ),
    }
}

/// Numeric expression `num` of an epoch column's unit in microseconds.
fn micros(ty: ColumnType, num: &str) -> String {
    format!("{num} * 1{}", "0".repeat(ty.micros_digits() as usize))
}

/// The column value of JSON value `x`: NULL for JSON null and for a value
/// the type does not take (so no cast ever raises).
fn convert(ty: ColumnType, x: &str) -> String {
    let num = format!("({x})::numeric");
    let text = format!("({x} #>> '{{}}')");
    let value = match ty {
        ColumnType::Bool => format!("({x})::boolean"),
        ColumnType::Int2 => format!("{num}::int2"),
        ColumnType::Int4 => format!("{num}::int4"),
        ColumnType::Int8 => format!("{num}::int8"),
        ColumnType::Float8 => format!("{num}::float8"),
        ColumnType::Numeric => num,
        ColumnType::Text => text,
        // whole days, then the microseconds left: each product exact in
        // the double interval arithmetic uses
        ColumnType::TimestampMs | ColumnType::TimestampS => format!(
            "(timestamptz '1970-01-01 00:00:00+00' \
             + div({us}, 86400000000)::float8 * interval '24 hours' \
             + mod({us}, 86400000000)::float8 * interval '1 microsecond')",
            us = micros(ty, &num)
        ),
        ColumnType::TimestampIso(form) => iso_cast(form, &text),
        ColumnType::Date => format!("decant.iso_date({text})"),
        ColumnType::Jsonb => x.to_string(),
    };
    format!(
        "CASE WHEN {x} IS NULL OR jsonb_typeof({x}) = 'null' THEN NULL::{ty} \
         WHEN {} THEN {value} END",
        typed(ty, x),
        ty = ty.sql()
    )
}

/// A value from the spec (a constant, a ranked statistic's filter) as a
/// SQL literal of its column type: a plain constant, so an index predicate
/// may hold it.
pub(super) fn constant(ty: ColumnType, cv: &ColumnValue) -> String {
    let text = match cv {
        ColumnValue::Null => return format!("NULL::{}", ty.sql()),
        ColumnValue::Bool(b) => return b.to_string(),
        ColumnValue::Text(t) => t.clone(),
        ColumnValue::Json(v) => v.to_string(),
        // RFC 3339 in UTC: read the same whatever the session's time zone
        ColumnValue::Micros(_) => {
            crate::core::value::to_json(ColumnType::TimestampIso(IsoForm::TRIMMED), cv)
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| cv.key_text().into_owned())
        }
        // YYYY-MM-DD, not the days since 1970 it is held as
        ColumnValue::Date(d) => crate::core::value::render_date(*d),
        number => number.key_text().into_owned(),
    };
    format!("{}::{}", lit(&text), ty.sql())
}

/// What one rule makes of one value `v` (an element for array rules):
/// the column expressions, the row's validity (false: no row, a problem)
/// and whether it has a partial problem (an object rule's known key with
/// an invalid value: kept in the residual, the row made without it).
pub(super) struct Made {
    pub columns: Vec<String>,
    pub whole_ok: String,
    pub partial_problem: String,
}

pub(super) fn make(spec: &Spec, ri: usize, v: &str, walk: &Walk, position: Option<&str>) -> Made {
    let r = &spec.rules[ri];
    let t = &spec.tables[r.table];
    let mut columns: Vec<String> = t
        .columns
        .iter()
        .map(|c| format!("NULL::{}", c.ty.sql()))
        .collect();
    let mut ok = Vec::new();
    let mut partial = vec!["false".to_string()];
    for (ci, key) in &walk.captures {
        let c = &t.columns[*ci];
        if c.ty == ColumnType::Text {
            // a key is text: it converts to itself
            columns[*ci] = key.clone();
            ok.push(key_valid(c, key));
        } else if c.ty.is_integer() {
            // the JSON number a key in canonical integer spelling stands
            // for (NULL for any other key), then as a value of the column
            let n = format!(
                "(CASE WHEN {key} ~ '^-?(0|[1-9][0-9]{{0,18}})$' AND {key} <> '-0' \
                 THEN to_jsonb({key}::numeric) END)"
            );
            columns[*ci] = convert(c.ty, &n);
            ok.push(format!("({n} IS NOT NULL AND {})", valid(c, &n)));
        } else {
            // (a date): the key as a JSON string
            let j = format!("to_jsonb({key})");
            columns[*ci] = convert(c.ty, &j);
            ok.push(valid(c, &j));
        }
    }
    for (ci, p) in &walk.positions {
        let as_json = format!("to_jsonb({p})");
        columns[*ci] = convert(t.columns[*ci].ty, &as_json);
        ok.push(valid(&t.columns[*ci], &as_json));
    }
    if let (Some(ci), Some(p)) = (r.position, position) {
        let as_json = format!("to_jsonb({p})");
        columns[ci] = convert(t.columns[ci].ty, &as_json);
        ok.push(valid(&t.columns[ci], &as_json));
    }
    for (ci, cv) in &r.constants {
        columns[*ci] = constant(t.columns[*ci].ty, cv);
    }
    // the primary key entry fits a B-tree page, as explode checks it
    let mut fixed = explode::KEY_ENTRY_BASE;
    let mut texts = Vec::new();
    for &ci in &t.key {
        let captured = walk.captures.iter().find(|(c, _)| *c == ci);
        match (captured, r.constants.iter().find(|(c, _)| *c == ci)) {
            (Some((_, key)), _) if t.columns[ci].ty == ColumnType::Text => {
                texts.push(explode::text_key_bytes_sql(key));
            }
            (_, Some((_, cv))) => fixed += explode::key_part_bytes(cv),
            _ => fixed += 8,
        }
    }
    if !texts.is_empty() || fixed > explode::MAX_KEY_ENTRY {
        texts.insert(0, fixed.to_string());
        ok.push(format!(
            "{} <= {}",
            texts.join(" + "),
            explode::MAX_KEY_ENTRY
        ));
    }
    match &r.kind {
        RuleKind::Scalar { column } => {
            columns[*column] = convert(t.columns[*column].ty, v);
            ok.push(valid(&t.columns[*column], v));
        }
        RuleKind::Object {
            keys,
            nested,
            extra,
        } => {
            ok.push(format!("jsonb_typeof({v}) = 'object'"));
            let known: Vec<String> = keys.iter().map(|(k, _)| lit(k)).collect();
            let all = keys
                .iter()
                .map(|(k, ci)| (format!("({v} -> {})", lit(k)), ci))
                .chain(nested.iter().map(|(p, ci)| (nested_value(v, p), ci)));
            for (kv, ci) in all {
                let c = &t.columns[*ci];
                let present = format!("({kv} IS NOT NULL AND jsonb_typeof({kv}) <> 'null')");
                let good = valid(c, &kv);
                columns[*ci] = format!(
                    "CASE WHEN {present} AND ({good}) THEN {} END",
                    convert(c.ty, &kv)
                );
                partial.push(format!("({present} AND NOT ({good}))"));
                if c.not_null {
                    ok.push(present);
                }
            }
            // unknown keys, and known keys holding null; not the keys
            // deeper rules claim
            let unknown = if known.is_empty() {
                "true".to_string()
            } else {
                format!("x.key NOT IN ({})", known.join(", "))
            };
            let inside: Vec<String> = spec.claimed_inside(ri).into_iter().map(lit).collect();
            let not_inside = if inside.is_empty() {
                String::new()
            } else {
                format!(" AND x.key NOT IN ({})", inside.join(", "))
            };
            // what nested key paths leave of their objects
            let mut rest = format!("CASE WHEN jsonb_typeof({v}) = 'object' THEN {v} END");
            for (p, _) in nested {
                rest = format!("decant.strip({rest}, {})", text_array(p));
            }
            columns[*extra] = format!(
                "(SELECT json_object_agg(x.key, x.value)::jsonb FROM jsonb_each({rest}) AS x \
                 WHERE ({unknown} OR jsonb_typeof(x.value) = 'null'){not_inside})"
            );
        }
    }
    // a row of a general rule must not look like a more specific one's
    let route = &spec.routes[r.table];
    if route.len() > 1 {
        for &other in route.iter().take_while(|&&o| o != ri) {
            let o = &spec.rules[other];
            let same: Vec<String> = o
                .constants
                .iter()
                .map(|(ci, cv)| {
                    format!(
                        "coalesce(({}) = ({}), false)",
                        columns[*ci],
                        constant(t.columns[*ci].ty, cv)
                    )
                })
                .collect();
            if !same.is_empty() {
                ok.push(format!("NOT ({})", same.join(" AND ")));
            }
        }
    }
    if ok.is_empty() {
        ok.push("true".into());
    }
    Made {
        columns,
        whole_ok: ok
            .iter()
            .map(|c| format!("coalesce({c}, false)"))
            .collect::<Vec<_>>()
            .join(" AND "),
        partial_problem: format!("({})", partial.join(" OR ")),
    }
}

/// Whether a captured key passes its text column's checks.
fn key_valid(c: &Column, key: &str) -> String {
    let mut checks = vec!["true".to_string()];
    if let Some(values) = &c.values {
        let vs: Vec<String> = values.iter().map(|v| lit(v)).collect();
        checks.push(format!("{key} IN ({})", vs.join(", ")));
    }
    if let Some(max) = c.max_length {
        checks.push(format!("char_length({key}) <= {max}"));
    }
    if let Some(p) = &c.pattern {
        checks.push(format!("{key} ~ {}", lit(&p.text)));
    }
    checks.join(" AND ")
}

/// Where a rule's rows are read from: a FROM clause with alias `s`, the
/// user id and blob expressions, and conditions on the source row.
pub(super) struct RowSource {
    pub from: String,
    pub id: String,
    pub blob: String,
    pub conds: Vec<String>,
}

/// The legacy users of the source table whose blobs do not fail, while
/// the migration is not finalized: what the views read.
fn legacy(spec: &Spec) -> RowSource {
    let s = &spec.source;
    RowSource {
        from: format!("{} AS s", source_table(spec)),
        id: format!("s.{}::{}", quote(&s.id), s.id_type.sql()),
        blob: format!("s.{}", quote(&s.blob)),
        // once finalized, one statement (`UPDATE decant.control SET
        // finalized = true`) turns every legacy arm off: a one-time filter
        // per query
        conds: vec![
            NOT_FINALIZED.to_string(),
            format!("NOT s.{}", quote(&s.flag)),
            format!("NOT {}(s.{})", fails_fn(spec), quote(&s.blob)),
        ],
    }
}

/// The rows rule `ri` gives for the blobs of `src`, as the lenient explode
/// makes them (a `fail` rule's refusals are left to `src`'s conditions).
pub(super) fn rule_rows(spec: &Spec, ri: usize, src: &RowSource) -> String {
    let r = &spec.rules[ri];
    let t = &spec.tables[r.table];
    let (w, _) = walk(spec, &src.blob, &r.segments, "");
    let mut joins = w.joins.clone();
    let mut conds = src.conds.clone();
    conds.extend(w.conds.iter().cloned());
    let made = match r.position {
        None => {
            let m = make(spec, ri, &w.value, &w, None);
            conds.push(m.whole_ok.clone());
            m
        }
        Some(_) => {
            let arr = w.value.clone();
            joins.push(format!(
                "CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof({arr}) = 'array' \
                 THEN {arr} END) WITH ORDINALITY AS a(v, n)"
            ));
            let m = make(spec, ri, "a.v", &w, Some("(a.n - 1)"));
            // each element on its own, in an array whose last position
            // fits the position column (one too long is kept whole)
            conds.push(m.whole_ok.clone());
            conds.push(position_fits(spec, ri, &arr));
            m
        }
    };
    let cols: Vec<String> = std::iter::once(format!("{} AS {}", src.id, quote(&t.user_column)))
        .chain(
            made.columns
                .iter()
                .zip(&t.columns)
                .map(|(e, c)| format!("{e} AS {}", quote(&c.name))),
        )
        .collect();
    format!(
        "SELECT {} FROM {} {} WHERE {}",
        cols.join(", "),
        src.from,
        joins.join(" "),
        conds.join(" AND ")
    )
}

/// Whether the last position of array `arr` fits rule `ri`'s position
/// column: an array longer than it can number is kept whole.
pub(super) fn position_fits(spec: &Spec, ri: usize, arr: &str) -> String {
    let r = &spec.rules[ri];
    let ci = r.position.expect("an array rule");
    let last = last_position(arr);
    format!(
        "coalesce({}, false)",
        valid(&spec.tables[r.table].columns[ci], &last)
    )
}

/// Whether a blob holds a value that a `fail` rule refuses, or a non-object
/// where a `fail` rule's path needs one: its user would fail to migrate.
fn blob_fails(spec: &Spec, blob: &str) -> String {
    // a NULL blob fails its user (the migration reads it as JSON null)
    let mut checks = vec![format!("{blob} IS NULL")];
    // strict non-terminal nodes holding a non-object
    let mut stack: Vec<(Vec<Segment>, &Node)> = vec![(Vec::new(), &spec.trie)];
    while let Some((path, node)) = stack.pop() {
        // a rule's own value is checked below; deeper rules may claim keys
        // inside an object rule's object
        if node.strict && node.terminal.is_none() {
            let (w, _) = walk(spec, blob, &path, "f");
            let wrong = if node.array.is_some() {
                format!("NOT {}", fits(spec, node, &w.value))
            } else {
                format!("jsonb_typeof({}) <> 'object'", w.value)
            };
            checks.push(exists(&w, &wrong));
        }
        if let Some(child) = node.array.as_deref() {
            let mut p = path.clone();
            p.push(Segment::Position(usize::MAX));
            stack.push((p, child));
        }
        for (k, child) in &node.literal {
            let mut p = path.clone();
            p.push(Segment::Literal(k.clone()));
            stack.push((p, child));
        }
        if let Some(child) = node.wildcard.as_deref() {
            let mut p = path.clone();
            p.push(Segment::Capture(usize::MAX));
            stack.push((p, child));
        }
    }
    // values fail rules refuse
    for (ri, r) in spec.rules.iter().enumerate() {
        if r.on_invalid != Policy::Fail {
            continue;
        }
        let (w, _) = walk(spec, blob, &r.segments, "f");
        let problem = match r.position {
            None => {
                let m = make(spec, ri, &w.value, &w, None);
                format!("NOT ({}) OR {}", m.whole_ok, m.partial_problem)
            }
            Some(_) => {
                let arr = &w.value;
                let m = make(spec, ri, "b.v", &w, Some("(b.n - 1)"));
                format!(
                    "jsonb_typeof({arr}) <> 'array' OR EXISTS (SELECT 1 FROM \
                     jsonb_array_elements(CASE WHEN jsonb_typeof({arr}) = 'array' THEN {arr} END) \
                     WITH ORDINALITY AS b(v, n) WHERE NOT ({}) OR {})",
                    m.whole_ok, m.partial_problem
                )
            }
        };
        checks.push(exists(&w, &problem));
    }
    checks.join("\n    OR ")
}

/// `EXISTS (...)` over the values a walk reaches, with a condition.
fn exists(w: &Walk, cond: &str) -> String {
    let mut conds = w.conds.clone();
    conds.push(format!("({cond})"));
    if w.joins.is_empty() {
        format!("coalesce(({}), false)", conds.join(" AND "))
    } else {
        format!(
            "EXISTS (SELECT 1 {} WHERE {})",
            w.joins.join(" ").replacen("CROSS JOIN LATERAL", "FROM", 1),
            conds.join(" AND ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranked_indexes_whose_plain_names_meet_get_distinct_ones() {
        let spec = Spec::parse(
            "[source]\ntable = \"u\"\n\n\
             [tables.a_b.columns]\nk = \"text\"\nv = \"int4\"\n\n\
             [tables.a.columns]\nk = \"text\"\nv = \"int4\"\n\n\
             [[rules]]\nname = \"x\"\npath = \"x.{k}\"\ntable = \"a_b\"\nvalue = \"v\"\n\n\
             [[rules]]\nname = \"y\"\npath = \"y.{k}\"\ntable = \"a\"\nvalue = \"v\"\n\n\
             [[ranked]]\nname = \"c\"\ntable = \"a_b\"\nvalue = \"v\"\nwhere = { k = \"p\" }\n\n\
             [[ranked]]\nname = \"b_c\"\ntable = \"a\"\nvalue = \"v\"\nwhere = { k = \"p\" }\n\n\
             [[ranked]]\nname = \"d\"\ntable = \"a\"\nvalue = \"v\"\nwhere = { k = \"q\" }\n",
        )
        .unwrap();
        let names: Vec<String> = spec.ranked.iter().map(|r| rank_index(&spec, r)).collect();
        assert!(
            names[0].starts_with("a_b_c_") && names[1].starts_with("a_b_c_"),
            "{names:?}"
        );
        assert_ne!(names[0], names[1]);
        // a name nothing meets keeps its plain form (no index rebuilt)
        assert_eq!(names[2], "a_d_rank_idx");
    }

    #[test]
    fn the_helpers_of_the_first_iso_forms_hold_their_patterns() {
        for form in [IsoForm::TRIMMED, IsoForm::MS] {
            assert!(
                HELPERS.contains(&format!("(t, '{}')", form.pattern())),
                "{}",
                form.name()
            );
        }
    }
}
