//! The SQL API, generated from the spec, for backends in any language:
//! `decant.load(id)`, `decant.load_many(ids)`, `decant.save(id, blob)` and
//! `decant.patch(id, merge_patch)`, which behave as the Rust layer's calls
//! of the same names.
//!
//! - `load` and `load_many` read one snapshot and take no lock: they run
//!   inside a READ ONLY transaction and on a hot standby. A migrated
//!   user's blob is rebuilt from the tables and the residual.
//! - `save` and `patch` lock the user's row (`FOR NO KEY UPDATE`) first;
//!   a legacy user's blob is written whole; a migrated user's rows are
//!   exploded leniently (an invalid value stays in the residual, never
//!   refused), only rows that changed are written or deleted, and the
//!   residual only when it changes. An object patch re-explodes only the
//!   tables whose rule paths meet the paths it changes
//!   (`decant.patch_paths`), and recomputes the residual of its top-level
//!   keys only (each top-level key leaves its residual independently).
//!
//! Internal functions carry the source table's name:
//! `decant."<source>_rows_<table>"(id, blob)` (the rows a blob gives),
//! `decant."<source>_residual"(blob)`, `decant."<source>_rebuild"(id,
//! residual)` and `decant."<source>_write"(id, migrated, blob, paths)`.
//! They are PL/pgSQL, which keeps its plans for the session (a SQL
//! function that cannot be inlined is planned on every call), and set
//! `jit = off` (the generated expressions are large enough for the
//! planner to JIT-compile them, at 0.5 s a call).
//!
//! Objects and arrays are aggregated as `json_object_agg(..)::jsonb` and
//! `json_agg(..)::jsonb`, never `jsonb_object_agg` / `jsonb_agg`: those
//! copy each value token by token and took 3 s to put one 60,000-key
//! object under a key (PostgreSQL 17), where the json forms take 0.1 s;
//! on small values both cost the same.

use crate::core::spec::{Node, RuleKind, Segment, Spec, quote};
use crate::core::value::ColumnType;
use crate::pg::sql::{
    has_rows_in, index_name, lit, migrates_on_demand, source_table, target_table,
};
use crate::pg::views::{RowSource, Walk, constant, fails_fn, make, rule_rows, valid};

/// The name of an internal function of this spec's source table.
fn internal(spec: &Spec, what: &str) -> String {
    format!(
        "decant.{}",
        index_name(&format!("{}_{what}", spec.source.table))
    )
}

/// The function giving the rows a blob explodes into, for one table.
fn rows_fn(spec: &Spec, ti: usize) -> String {
    internal(spec, &format!("rows_{}", spec.tables[ti].name))
}

/// The statements that create the SQL API, each idempotent (`CREATE OR
/// REPLACE`). They use the views' helpers: run after them.
pub(crate) fn statements(spec: &Spec) -> Vec<String> {
    let mut out = vec![HELPERS.trim().to_string()];
    for ti in 0..spec.tables.len() {
        out.push(rows(spec, ti));
    }
    // PL/pgSQL, not SQL: a SQL function that cannot be inlined is planned
    // again on every call; PL/pgSQL keeps its plans for the session
    out.push(format!(
        "CREATE OR REPLACE FUNCTION {}(blob jsonb) RETURNS jsonb\n    \
         LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp IMMUTABLE PARALLEL SAFE SET jit = off AS\n$$\n\
         BEGIN\n    RETURN coalesce({}, '{{}}'::jsonb);\nEND\n$$",
        internal(spec, "residual"),
        residual(spec, &spec.trie, "$1", 0, &mut Vec::new())
    ));
    out.push(rebuild(spec));
    out.push(write(spec));
    out.push(if on_demand(spec) {
        migrate(spec)
    } else {
        drop_migrate(spec)
    });
    out.extend(calls(spec));
    out
}

/// Whether the SQL writes migrate a user of the rollout on demand, as the
/// Rust layer does: for a spec with target tables and no Rust fixup (its
/// function runs in Rust alone). A blob one of the spec's fixups would
/// change is left to the daemon and the Rust layer.
fn on_demand(spec: &Spec) -> bool {
    !spec.tables.is_empty() && fixups_might_change(spec).is_some()
}

/// The test that a fixup might change a blob (`$2`), for each of the
/// spec's fixups ([`crate::core::fixup::Fixup::might_change`]); `None`
/// when a Rust fixup is among them.
fn fixups_might_change(spec: &Spec) -> Option<Vec<String>> {
    spec.fixups
        .iter()
        .map(|f| {
            f.might_change().map(|path| {
                format!(
                    "jsonb_path_exists($2, {}::jsonpath, '{{}}'::jsonb, true)",
                    lit(&path)
                )
            })
        })
        .collect()
}

/// The name of the on-demand migration function (see [`migrate`]).
pub(crate) fn migrate_name(spec: &Spec) -> String {
    internal(spec, "migrate")
}

/// Drops the on-demand migration function, where SQL writes migrate no
/// one (a spec with a Rust fixup; the finalized phase, without a flag).
pub(crate) fn drop_migrate(spec: &Spec) -> String {
    format!(
        "DROP FUNCTION IF EXISTS {}({}, jsonb)",
        migrate_name(spec),
        spec.source.id_type.sql()
    )
}

/// `decant."<source>_migrate"(id, blob)`: migrates a legacy user whose
/// source row the caller holds locked, with `blob` its blob, as the
/// daemon would: unless a `fail` rule refuses a value (or the blob is
/// NULL), a fixup would change it or the user already has rows, it sets
/// the flag, writes the rows and residual with the SQL API's write
/// (validation as the migration's: refused values of `keep` rules stay
/// in the residual), checks that they rebuild `blob` exactly (by its
/// text) and records the user migrated.
/// Returns whether it did; anything else leaves the user as it was
/// (a subtransaction), legacy, for the daemon to try and record, but for
/// the errors a caller retries its transaction on (serialization
/// failure, deadlock, lock timeout), raised as they came.
fn migrate(spec: &Spec) -> String {
    let (src, id, blob, flag) = source_names(spec);
    let it = spec.source.id_type.sql();
    let has_rows: Vec<String> = (0..spec.tables.len())
        .map(|ti| has_rows_in(spec, ti, "$1"))
        .collect();
    format!(
        "CREATE OR REPLACE FUNCTION {name}({it}, jsonb) RETURNS boolean\n    \
         LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET jit = off AS\n$$\n\
         #variable_conflict use_column\n\
         DECLARE _decant_residual jsonb;\n\
         BEGIN\n    \
           -- a blob a fixup would change is left to the daemon and the Rust\n    \
           -- layer, which apply them\n    \
           IF $2 IS NULL OR {fails}($2){fixups} THEN\n        RETURN false;\n    END IF;\n    \
           -- rows already there (another tool, a hand fix) are not adopted\n    \
           IF {has_rows} THEN\n        RETURN false;\n    END IF;\n    \
           BEGIN\n        \
             UPDATE {src} AS s SET {flag} = true WHERE s.{id} = $1;\n        \
             PERFORM {write}($1, true, $2, NULL);\n        \
             SELECT s.{blob} INTO _decant_residual FROM {src} AS s WHERE s.{id} = $1;\n        \
             IF {rebuild}($1, _decant_residual)::text IS DISTINCT FROM $2::text THEN\n            \
               RAISE EXCEPTION 'its rows and residual do not rebuild its blob';\n        \
             END IF;\n    \
           -- the caller retries these, as any write of its own\n    \
           EXCEPTION WHEN serialization_failure OR deadlock_detected OR lock_not_available THEN\n        \
             RAISE;\n    \
           WHEN OTHERS THEN\n        \
             RAISE WARNING 'decant: user % was not migrated on demand: %; it stays legacy for the daemon', \
               $1, SQLERRM;\n        \
             RETURN false;\n    \
           END;\n    \
           INSERT INTO decant.user_state AS st \
             (user_id, state, attempts, warnings, fixups, fingerprint, migrated_at, updated_at) \
             VALUES ($1, 'migrated', 0, NULL, NULL, {fingerprint}, now(), now()) \
             ON CONFLICT (user_id) DO UPDATE SET state = 'migrated', warnings = NULL, fixups = NULL, \
             fingerprint = EXCLUDED.fingerprint, reason = NULL, last_error = NULL, \
             migrated_at = now(), updated_at = now();\n    \
           RETURN true;\n\
         END\n$$",
        name = migrate_name(spec),
        fails = fails_fn(spec),
        fixups = fixups_might_change(spec)
            .unwrap_or_default()
            .iter()
            .map(|t| format!(" OR {t}"))
            .collect::<String>(),
        has_rows = has_rows.join(" OR "),
        write = internal(spec, "write"),
        rebuild = internal(spec, "rebuild"),
        fingerprint = lit(&spec.fingerprint()),
    )
}

/// Helpers independent of the spec: RFC 7396 merge patch, placing rebuilt
/// values into the residual, and the JSON forms of timestamps.
const HELPERS: &str = r#"
CREATE OR REPLACE FUNCTION decant.merge_patch(target jsonb, patch jsonb) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS
$$
DECLARE _gone text[]; _not_put text[]; _merged jsonb;
BEGIN
    IF patch IS NULL OR jsonb_typeof(patch) <> 'object' THEN
        RETURN patch;
    END IF;
    IF target IS NULL OR jsonb_typeof(target) <> 'object' THEN
        target := '{}';
    END IF;
    -- each object built once, by the binary operators: the target less
    -- the keys the patch removes (a null), then the patch's other
    -- non-object values over it, then each object of the patch merged
    -- into the target's value. (A jsonb_set per key copied the whole
    -- object each time: a patch of 100,000 keys took 9 minutes, the
    -- user's row locked throughout. jsonb_object_agg over both objects'
    -- keys copies every value token by token, and before PostgreSQL 15
    -- scans the rest of the value for each of its strings: a one-counter
    -- patch of a blob holding a 400 kB object took 1.4 s on 13 and 14,
    -- 23 ms on 15, and could not be cancelled; this takes 0.6 ms on 15.)
    SELECT coalesce(array_agg(p.key) FILTER (WHERE jsonb_typeof(p.value) = 'null'), '{}'),
           coalesce(array_agg(p.key) FILTER (WHERE jsonb_typeof(p.value) IN ('null', 'object')), '{}'),
           json_object_agg(p.key, decant.merge_patch(target -> p.key, p.value))
               FILTER (WHERE jsonb_typeof(p.value) = 'object')::jsonb
      INTO _gone, _not_put, _merged
      FROM jsonb_each(patch) AS p;
    RETURN (target - _gone) || (patch - _not_put) || coalesce(_merged, '{}');
END
$$;
CREATE OR REPLACE FUNCTION decant.patch_paths(patch jsonb) RETURNS jsonb
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$
-- the paths an object merge patch changes: down its objects to each value
-- that replaces or removes (an empty object replaces a non-object)
WITH RECURSIVE w(path, v) AS (
    SELECT jsonb_build_array(e.key), e.value FROM jsonb_each(patch) AS e
    UNION ALL
    SELECT w.path || jsonb_build_array(e.key), e.value
      FROM w, jsonb_each(CASE WHEN jsonb_typeof(w.v) = 'object' THEN w.v END) AS e
)
SELECT coalesce(jsonb_agg(w.path), '[]') FROM w
 WHERE jsonb_typeof(w.v) <> 'object' OR w.v = '{}'
$$;
CREATE OR REPLACE FUNCTION decant.positions(entries jsonb) RETURNS TABLE (i int, v jsonb)
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$
-- an array rule's aggregated rows (see decant.fill) as (position, value)
SELECT (x.n - 1)::int, x.v FROM jsonb_array_elements(
    CASE WHEN jsonb_typeof(entries) = 'array' THEN entries END) WITH ORDINALITY AS x(v, n)
UNION ALL
SELECT x.key::int, x.value FROM jsonb_each(
    CASE WHEN jsonb_typeof(entries) = 'object' THEN entries -> 'decant:positions' END) AS x
$$;
CREATE OR REPLACE FUNCTION decant.fill(kept jsonb, entries jsonb) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS
$$
-- an array rule's rows put into the array the residual kept (for elements
-- the rule refused), each in its element's place: an empty object there
-- (an element claimed whole) takes the row's value, the refused keys of
-- an object element merge with the row's object. `entries`: the rows'
-- values in position order, or {"decant:positions": {"<position>": value}}
-- when some positions have no row. One pass over the array (setting each
-- element in turn copied the whole array each time: 5.6 s for 9,000 rows)
DECLARE bad record; out jsonb;
BEGIN
    SELECT e.i, e.v, kept -> e.i AS slot INTO bad FROM decant.positions(entries) AS e
     WHERE e.i < 0 OR kept -> e.i IS NULL
        OR NOT (kept -> e.i = '{}'::jsonb
                OR (jsonb_typeof(kept -> e.i) = 'object' AND jsonb_typeof(e.v) = 'object'))
     ORDER BY e.i LIMIT 1;
    IF FOUND AND (bad.slot IS NULL OR bad.i < 0) THEN
        RAISE EXCEPTION 'decant: cannot rebuild the blob: a row at position % past the residual''s % elements',
            bad.i, jsonb_array_length(kept) USING ERRCODE = 'data_corrupted';
    ELSIF FOUND THEN
        RAISE EXCEPTION 'decant: cannot rebuild the blob: row and residual collide (the residual holds %, a row %)',
            left(bad.slot::text, 200), left(bad.v::text, 200) USING ERRCODE = 'data_corrupted';
    END IF;
    SELECT json_agg(CASE WHEN e.v IS NULL THEN k.v
                         WHEN k.v = '{}'::jsonb THEN e.v
                         ELSE decant.graft(k.v, e.v) END ORDER BY k.n)::jsonb INTO out
      FROM jsonb_array_elements(kept) WITH ORDINALITY AS k(v, n)
      LEFT JOIN decant.positions(entries) AS e ON e.i = k.n - 1;
    RETURN coalesce(out, kept);
END
$$;
CREATE OR REPLACE FUNCTION decant.deep_merge(a jsonb, b jsonb) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS
$$
BEGIN
    -- an array rule's rows into the array the residual kept for elements
    -- the rule refused
    IF jsonb_typeof(a) = 'array' AND a <> '[]'::jsonb
       AND (jsonb_typeof(b) = 'array' OR (jsonb_typeof(b) = 'object' AND b ? 'decant:positions')) THEN
        RETURN decant.fill(a, b);
    END IF;
    IF a IS NULL OR b IS NULL OR jsonb_typeof(a) <> 'object' OR jsonb_typeof(b) <> 'object' THEN
        RETURN coalesce(b, a);
    END IF;
    -- no key on both sides with different values: one concatenation
    IF a || b = b || a THEN
        RETURN a || b;
    END IF;
    RETURN a || coalesce((
        SELECT json_object_agg(e.key, CASE WHEN a ? e.key THEN decant.deep_merge(a -> e.key, e.value)
                                           ELSE e.value END)::jsonb
          FROM jsonb_each(b) AS e), '{}');
END
$$;
CREATE OR REPLACE FUNCTION decant.cat(a jsonb, b jsonb) RETURNS jsonb
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT coalesce(a || b, a, b) $$;
CREATE OR REPLACE FUNCTION decant.graft(root jsonb, entries jsonb) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS
$$
-- the rows' object `entries` merged into the residual `root` at every
-- depth (the residual holds the keys a `keep` rule left behind); a row's
-- value that is not an object meeting one in the residual is a collision
BEGIN
    IF entries IS NULL THEN
        RETURN root;
    END IF;
    IF root IS NULL THEN
        RETURN entries;
    END IF;
    -- an array rule's rows into the array the residual kept for elements
    -- the rule refused
    IF jsonb_typeof(root) = 'array' AND root <> '[]'::jsonb
       AND (jsonb_typeof(entries) = 'array' OR (jsonb_typeof(entries) = 'object' AND entries ? 'decant:positions')) THEN
        RETURN decant.fill(root, entries);
    END IF;
    IF jsonb_typeof(entries) <> 'object' THEN
        -- an array claimed whole, where the residual left an empty one
        IF root = '[]'::jsonb AND jsonb_typeof(entries) = 'array' THEN
            RETURN entries;
        END IF;
        -- a value both in the rows and in the residual (a write that
        -- bypassed decant put it back into the blob column): as the Rust
        -- layer, no answer rather than one of the two
        RAISE EXCEPTION 'decant: cannot rebuild the blob: row and residual collide (the residual holds %, a row %)',
            left(root::text, 200), left(entries::text, 200)
            USING ERRCODE = 'data_corrupted';
    END IF;
    IF jsonb_typeof(root) <> 'object' THEN
        RAISE EXCEPTION 'decant: cannot rebuild the blob: a row lands inside a non-object (%)', root
            USING ERRCODE = 'data_corrupted';
    END IF;
    -- no key on both sides with different values: one concatenation
    IF root || entries = entries || root THEN
        RETURN root || entries;
    END IF;
    RETURN root || (
        SELECT json_object_agg(e.key, CASE WHEN root ? e.key THEN decant.graft(root -> e.key, e.value)
                                           ELSE e.value END)::jsonb
          FROM jsonb_each(entries) AS e);
END
$$;
CREATE OR REPLACE FUNCTION decant.put_all(root jsonb, items jsonb) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS
$$
-- puts rows' values (`items`: [[path, value], ...]) each at its path of
-- keys (strings) and positions (numbers), making the objects and arrays
-- on the way: a position past the end of an array grows it with nulls
-- that other rows fill; an empty container the residual left for an
-- element claimed whole is filled; an object meeting what the residual
-- kept there merges with it. Level by level, each container built once
-- (putting one row at a time copied the whole blob each time: 29 s for a
-- user with 5,000 rows through an array)
DECLARE v jsonb; kinds text[]; out jsonb;
BEGIN
    FOR v IN SELECT x -> 1 FROM jsonb_array_elements(items) AS x WHERE x -> 0 = '[]'::jsonb LOOP
        IF root IS NULL OR jsonb_typeof(root) = 'null' OR root = '[]'::jsonb THEN
            root := v;
        ELSE
            root := decant.deep_merge(root, v);
        END IF;
    END LOOP;
    SELECT array_agg(DISTINCT jsonb_typeof(x -> 0 -> 0)) INTO kinds
      FROM jsonb_array_elements(items) AS x WHERE x -> 0 <> '[]'::jsonb;
    IF kinds IS NULL THEN
        RETURN root;
    END IF;
    IF root IS NULL OR jsonb_typeof(root) = 'null' THEN
        root := CASE WHEN kinds = ARRAY['number'] THEN '[]'::jsonb ELSE '{}'::jsonb END;
    END IF;
    IF kinds = ARRAY['number'] AND jsonb_typeof(root) = 'array' THEN
        IF EXISTS (SELECT FROM jsonb_array_elements(items) AS x WHERE (x -> 0 ->> 0)::int < 0) THEN
            RAISE EXCEPTION 'decant: cannot rebuild the blob: a row at a negative position'
                USING ERRCODE = 'data_corrupted';
        END IF;
        -- the array: its elements as the residual kept them, those rows
        -- reach made again; one element a row ends at is its value
        WITH g AS (
            SELECT (x -> 0 ->> 0)::int AS i,
                   count(*) = 1 AND bool_and((x -> 0) - 0 = '[]'::jsonb) AS leaf,
                   (array_agg(x -> 1))[1] AS v,
                   json_agg(json_build_array((x -> 0) - 0, x -> 1))::jsonb AS sub
              FROM jsonb_array_elements(items) AS x
             WHERE x -> 0 <> '[]'::jsonb
             GROUP BY 1
        )
        SELECT json_agg(CASE WHEN g.i IS NULL THEN coalesce(root -> s.i, 'null'::jsonb)
                             WHEN NOT g.leaf THEN decant.put_all(root -> s.i, g.sub)
                             WHEN root -> s.i IS NULL OR jsonb_typeof(root -> s.i) = 'null'
                                  OR root -> s.i = '[]'::jsonb THEN g.v
                             ELSE decant.deep_merge(root -> s.i, g.v) END ORDER BY s.i)::jsonb
          INTO out
          FROM generate_series(0, greatest(jsonb_array_length(root) - 1, (SELECT max(g.i) FROM g))) AS s(i)
          LEFT JOIN g ON g.i = s.i;
        RETURN coalesce(out, root);
    END IF;
    IF kinds = ARRAY['string'] AND jsonb_typeof(root) = 'object' THEN
        SELECT root || json_object_agg(g.k, CASE
                   WHEN NOT g.leaf THEN decant.put_all(root -> g.k, g.sub)
                   WHEN root -> g.k IS NULL OR jsonb_typeof(root -> g.k) = 'null'
                        OR root -> g.k = '[]'::jsonb THEN g.v
                   ELSE decant.deep_merge(root -> g.k, g.v) END)::jsonb
          INTO out
          FROM (SELECT x -> 0 ->> 0 AS k,
                       count(*) = 1 AND bool_and((x -> 0) - 0 = '[]'::jsonb) AS leaf,
                       (array_agg(x -> 1))[1] AS v,
                       json_agg(json_build_array((x -> 0) - 0, x -> 1))::jsonb AS sub
                  FROM jsonb_array_elements(items) AS x
                 WHERE x -> 0 <> '[]'::jsonb
                 GROUP BY 1) AS g;
        RETURN out;
    END IF;
    RAISE EXCEPTION 'decant: cannot rebuild the blob: a row lands inside a non-% (%)',
        CASE WHEN 'number' = ANY(kinds) THEN 'array' ELSE 'object' END, root
        USING ERRCODE = 'data_corrupted';
END
$$;
CREATE OR REPLACE FUNCTION decant.epoch_ms(t timestamptz) RETURNS numeric
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS
$$ SELECT trim_scale(((t AT TIME ZONE 'UTC')::date - date '1970-01-01')::numeric * 86400000
          + round(extract(epoch FROM (t AT TIME ZONE 'UTC')::time)::numeric * 1000000) / 1000) $$;
CREATE OR REPLACE FUNCTION decant.iso_text(t timestamptz) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS
$$ SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
          || CASE WHEN to_char(t AT TIME ZONE 'UTC', 'US') = '000000' THEN ''
                  ELSE '.' || rtrim(to_char(t AT TIME ZONE 'UTC', 'US'), '0') END
          || 'Z' $$
"#;

/// `decant."<source>_rows_<table>"(id, blob)`: the rows the lenient explode
/// makes of a blob for one table (every rule acts as `keep`).
fn rows(spec: &Spec, ti: usize) -> String {
    let t = &spec.tables[ti];
    let src = RowSource {
        from: "(SELECT $1 AS i, $2 AS b) AS s".into(),
        id: "s.i".into(),
        blob: "s.b".into(),
        conds: Vec::new(),
    };
    let mut parts: Vec<String> = (0..spec.rules.len())
        .filter(|&ri| spec.rules[ri].table == ti)
        .map(|ri| rule_rows(spec, ri, &src))
        .collect();
    if parts.is_empty() {
        let nulls: Vec<String> = std::iter::once(format!("NULL::{}", spec.source.id_type.sql()))
            .chain(t.columns.iter().map(|c| format!("NULL::{}", c.ty.sql())))
            .collect();
        parts.push(format!("SELECT {} WHERE false", nulls.join(", ")));
    }
    let cols: Vec<String> = std::iter::once(format!(
        "{} {}",
        quote(&t.user_column),
        spec.source.id_type.sql()
    ))
    .chain(
        t.columns
            .iter()
            .map(|c| format!("{} {}", quote(&c.name), c.ty.sql())),
    )
    .collect();
    format!(
        "CREATE OR REPLACE FUNCTION {}({}, jsonb) RETURNS TABLE ({})\n    \
         LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp IMMUTABLE PARALLEL SAFE ROWS 50 SET extra_float_digits = 1 SET jit = off AS\n$$\n\
         #variable_conflict use_column\n\
         BEGIN\n    RETURN QUERY\n{};\nEND\n$$",
        rows_fn(spec, ti),
        spec.source.id_type.sql(),
        cols.join(", "),
        parts.join("\nUNION ALL\n")
    )
}

/// What the lenient explode leaves in the residual of JSON value `x` at
/// trie `node`, or NULL when everything there is claimed. `keys` are the
/// keys captured on the way (one per wildcard), as SQL.
fn residual(spec: &Spec, node: &Node, x: &str, depth: usize, keys: &mut Vec<String>) -> String {
    if let Some(ri) = node.terminal {
        if node.literal.is_empty() {
            return claimed(spec, ri, x, keys);
        }
        // an object rule sharing its object with deeper rules: what it
        // leaves of the object without their keys, and what they leave of
        // theirs
        let inside: Vec<String> = node.literal.keys().map(|k| lit(k)).collect();
        let own = format!("({x} - ARRAY[{}]::text[])", inside.join(", "));
        let mut parts = vec![format!(
            "SELECT o.key AS k, o.value AS r FROM jsonb_each({}) AS o",
            claimed(spec, ri, &own, keys)
        )];
        for (k, child) in &node.literal {
            parts.push(format!(
                "SELECT {}, {}",
                lit(k),
                residual(
                    spec,
                    child,
                    &format!("({x} -> {})", lit(k)),
                    depth + 1,
                    keys
                )
            ));
        }
        return format!(
            "CASE WHEN jsonb_typeof({x}) <> 'object' THEN {} ELSE \
             (SELECT json_object_agg(p{depth}.k, p{depth}.r)::jsonb FROM ({}) AS p{depth}(k, r) \
             WHERE p{depth}.r IS NOT NULL) END",
            claimed(spec, ri, x, keys),
            parts.join(" UNION ALL ")
        );
    }
    if let Some(element) = node.array.as_deref() {
        // an array paths go through: kept at its length when an element
        // leaves something (an element claimed whole stands as an empty
        // container), gone when every element is claimed whole; a
        // non-array, an empty array or one too long stays whole
        let a = format!("a{depth}");
        keys.push(format!("({a}.n - 1)"));
        let each = residual(spec, element, &format!("{a}.value"), depth + 1, keys);
        keys.pop();
        let holder = if element.holds_arrays(&spec.rules) {
            "'[]'::jsonb"
        } else {
            "'{}'::jsonb"
        };
        return format!(
            "CASE WHEN NOT {fits} OR {x} = '[]'::jsonb THEN {x} ELSE \
             (SELECT CASE WHEN bool_and(q{depth}.r IS NULL) THEN NULL \
             ELSE json_agg(coalesce(q{depth}.r, {holder}) ORDER BY q{depth}.n)::jsonb END \
             FROM (SELECT {a}.n, {each} AS r FROM jsonb_array_elements({x}) WITH ORDINALITY \
             AS {a}(value, n) OFFSET 0) AS q{depth}) END",
            fits = crate::pg::views::fits(spec, node, x),
        );
    }
    let e = format!("e{depth}");
    let value = format!("{e}.value");
    let mut arms = Vec::new();
    for (k, child) in &node.literal {
        arms.push(format!(
            "WHEN {} THEN {}",
            lit(k),
            residual(spec, child, &value, depth + 1, keys)
        ));
    }
    let other = match node.wildcard.as_deref() {
        Some(child) => {
            keys.push(format!("{e}.key"));
            let r = residual(spec, child, &value, depth + 1, keys);
            keys.pop();
            r
        }
        None => value.clone(),
    };
    let each = if arms.is_empty() {
        other
    } else {
        format!("CASE {e}.key {} ELSE {other} END", arms.join(" "))
    };
    // a non-object or an empty object stays whole; an object keeps what
    // its keys leave (nothing left: the key goes)
    format!(
        "CASE WHEN jsonb_typeof({x}) <> 'object' OR {x} = '{{}}'::jsonb THEN {x} ELSE \
         (SELECT json_object_agg(q{depth}.k, q{depth}.r)::jsonb FROM (SELECT {e}.key AS k, {each} AS r \
         FROM jsonb_each({x}) AS {e} OFFSET 0) AS q{depth} WHERE q{depth}.r IS NOT NULL) END"
    )
}

/// What rule `ri` leaves of value `x`: nothing when it claims it whole, the
/// value when it refuses it, an object rule's refused known keys when it
/// claims the rest.
fn claimed(spec: &Spec, ri: usize, x: &str, keys: &[String]) -> String {
    let r = &spec.rules[ri];
    // `keys` holds the captured keys and the positions on the way, in
    // the order of the path
    let mut captures = Vec::new();
    let mut positions = Vec::new();
    let steps = r.segments.iter().filter_map(|s| match s {
        Segment::Capture(ci) => Some((false, *ci)),
        Segment::Position(ci) => Some((true, *ci)),
        Segment::Literal(_) => None,
    });
    for ((is_position, ci), k) in steps.zip(keys.iter().cloned()) {
        if is_position {
            positions.push((ci, k));
        } else {
            captures.push((ci, k));
        }
    }
    let w = Walk {
        joins: Vec::new(),
        conds: Vec::new(),
        value: x.to_string(),
        captures,
        positions,
    };
    if r.position.is_some() {
        // each element on its own: a refused one stays at its position
        // (an object element's refused keys), one claimed whole stands as
        // an empty object; nothing when every element is claimed whole; a
        // non-array, an empty array or one too long stays whole
        let each = claimed_value(spec, ri, "b.v", &w, Some("(b.n - 1)"));
        return format!(
            "CASE WHEN jsonb_typeof({x}) <> 'array' OR jsonb_array_length({x}) = 0 \
             OR NOT {fits} THEN {x} ELSE \
             (SELECT CASE WHEN bool_and(q.r IS NULL) THEN NULL \
             ELSE json_agg(coalesce(q.r, '{{}}'::jsonb) ORDER BY q.n)::jsonb END \
             FROM (SELECT b.n, {each} AS r FROM jsonb_array_elements({x}) WITH ORDINALITY \
             AS b(v, n) OFFSET 0) AS q) END",
            fits = crate::pg::views::position_fits(spec, ri, x),
        );
    }
    claimed_value(spec, ri, x, &w, None)
}

/// What rule `ri` leaves of one value `x` (an element, for an array
/// rule, at `position`): nothing when it claims it whole, the value when
/// it refuses it, an object rule's refused known keys when it claims the
/// rest.
fn claimed_value(spec: &Spec, ri: usize, x: &str, w: &Walk, position: Option<&str>) -> String {
    let r = &spec.rules[ri];
    let t = &spec.tables[r.table];
    let m = make(spec, ri, x, w, position);
    let kept = match &r.kind {
        RuleKind::Scalar { .. } => "NULL::jsonb".to_string(),
        RuleKind::Object { keys, nested, .. } => {
            let arms: Vec<String> = keys
                .iter()
                .map(|(k, ci)| {
                    format!(
                        "WHEN {} THEN NOT coalesce({}, false)",
                        lit(k),
                        valid(&t.columns[*ci], "k.value")
                    )
                })
                .collect();
            let flat = if arms.is_empty() {
                "NULL::jsonb".to_string()
            } else {
                format!(
                    "(SELECT json_object_agg(k.key, k.value)::jsonb FROM jsonb_each({x}) AS k \
                     WHERE jsonb_typeof(k.value) <> 'null' AND CASE k.key {} ELSE false END)",
                    arms.join(" ")
                )
            };
            // an invalid value at a nested key path, kept at its path
            nested.iter().fold(flat, |acc, (p, ci)| {
                let kv = crate::pg::views::nested_value(x, p);
                let obj = nest(p, &kv);
                format!(
                    "decant.deep_merge({acc}, CASE WHEN jsonb_typeof({kv}) <> 'null' \
                     AND NOT coalesce({}, false) THEN {obj} END)",
                    valid(&t.columns[*ci], &kv)
                )
            })
        }
    };
    format!("CASE WHEN {} THEN {kept} ELSE {x} END", m.whole_ok)
}

/// JSON value `v` under the key path `path`: `{"geo": {"lat": v}}`.
fn nest(path: &[String], v: &str) -> String {
    path.iter().rev().fold(v.to_string(), |inner, k| {
        format!("jsonb_build_object({}, {inner})", lit(k))
    })
}

/// The JSON value of column expression `c` of type `ty`, as the Rust
/// layer renders it.
fn json_of(ty: ColumnType, c: &str) -> String {
    match ty {
        ColumnType::Jsonb => c.to_string(),
        ColumnType::TimestampMs => format!("to_jsonb(decant.epoch_ms({c}))"),
        // (numeric multiplication is exact; division would round)
        ColumnType::TimestampS => format!("to_jsonb(trim_scale(decant.epoch_ms({c}) * 0.001))"),
        ColumnType::TimestampIso(form) => {
            let offset = form.offset();
            match form.fraction {
                3 | 6 => format!(
                    "to_jsonb(to_char({c} AT TIME ZONE 'UTC', \
                     'YYYY-MM-DD\"T\"HH24:MI:SS.{}\"{offset}\"'))",
                    if form.fraction == 3 { "MS" } else { "US" }
                ),
                // decant.iso_text ends with Z
                _ if form.utc_offset => {
                    format!("to_jsonb(left(decant.iso_text({c}), -1) || '{offset}')")
                }
                _ => format!("to_jsonb(decant.iso_text({c}))"),
            }
        }
        ColumnType::Date => format!("to_jsonb(to_char({c}, 'YYYY-MM-DD'))"),
        _ => format!("to_jsonb({c})"),
    }
}

/// `decant."<source>_rebuild"(id, residual)`: the blob of a migrated user
/// from its rows and its residual. Each rule's values are nested into one
/// object (one array per parent for array rules); one statement reads
/// them all, they are joined by their paths into one object (see
/// [`rows_tree`]) and grafted onto the residual, merging deep. An array
/// per captured key, and the rules through arrays, are put all at once (`decant.put_all`).
fn rebuild(spec: &Spec) -> String {
    let mut parts = Vec::new();
    let mut dynamic = Vec::new();
    let mut through = Vec::new();
    for (ri, r) in spec.rules.iter().enumerate() {
        let t = &spec.tables[r.table];
        let col = |ci: usize| format!("t.{}", quote(&t.columns[ci].name));
        // the rows this rule reads back: its constants match, and those of
        // no more specific rule of the table do
        let matches = |o: usize| -> Vec<String> {
            spec.rules[o]
                .constants
                .iter()
                .map(|(ci, cv)| {
                    format!(
                        "{} IS NOT DISTINCT FROM {}",
                        col(*ci),
                        constant(t.columns[*ci].ty, cv)
                    )
                })
                .collect()
        };
        let mut conds = vec![format!("t.{} = $1", quote(&t.user_column))];
        conds.extend(matches(ri));
        for &other in spec.routes[r.table].iter().take_while(|&&o| o != ri) {
            let m = matches(other);
            if !m.is_empty() {
                conds.push(format!("NOT ({})", m.join(" AND ")));
            }
        }
        // an integer key in its canonical spelling, as `text` writes it
        let key = |ci: usize| match t.columns[ci].ty {
            ColumnType::Text => col(ci),
            ColumnType::Date => format!("to_char({}, 'YYYY-MM-DD')", col(ci)),
            _ => format!("{}::text", col(ci)),
        };
        let path: Vec<String> = r
            .segments
            .iter()
            .map(|s| match s {
                Segment::Literal(k) => lit(k),
                Segment::Capture(ci) => key(*ci),
                Segment::Position(ci) => col(*ci),
            })
            .collect();
        let value = match &r.kind {
            RuleKind::Scalar { column } => json_of(t.columns[*column].ty, &col(*column)),
            RuleKind::Object {
                keys,
                nested,
                extra,
            } => {
                let mut obj: Vec<String> = keys
                    .iter()
                    .map(|(k, ci)| {
                        format!(
                            "CASE WHEN {c} IS NULL THEN '{{}}'::jsonb ELSE jsonb_build_object({}, {}) END",
                            lit(k),
                            json_of(t.columns[*ci].ty, &col(*ci)),
                            c = col(*ci)
                        )
                    })
                    .collect();
                obj.push(format!("coalesce({}, '{{}}'::jsonb)", col(*extra)));
                // nested key paths into the objects extra kept the rest of
                nested.iter().fold(format!("({})", obj.join(" || ")), |acc, (p, ci)| {
                    let one = nest(p, &json_of(t.columns[*ci].ty, &col(*ci)));
                    format!(
                        "decant.deep_merge({acc}, CASE WHEN {c} IS NULL THEN '{{}}'::jsonb ELSE {one} END)",
                        c = col(*ci)
                    )
                })
            }
        };
        let table = target_table(spec, r.table);
        if r.segments.iter().any(|s| matches!(s, Segment::Position(_))) {
            // through arrays: each row's value (each array, for an array
            // rule) put at its path of keys and positions
            let at = format!("jsonb_build_array({})", path.join(", "));
            through.push(match r.position {
                // (a JSON null leaf is a row whose value is NULL: put as
                // null, where a NULL would void the whole blob)
                None => format!(
                    "SELECT {at}, coalesce({value}, 'null'::jsonb) FROM {table} AS t WHERE {}",
                    conds.join(" AND ")
                ),
                Some(pi) => {
                    let group: Vec<String> = r
                        .segments
                        .iter()
                        .filter_map(|s| match s {
                            Segment::Capture(ci) | Segment::Position(ci) => Some(col(*ci)),
                            Segment::Literal(_) => None,
                        })
                        .collect();
                    format!(
                        "SELECT {at}, {} FROM {table} AS t WHERE {} GROUP BY {}",
                        elements(&value, &col(pi)),
                        conds.join(" AND "),
                        group.join(", ")
                    )
                }
            });
            continue;
        }
        if let Some(pi) = r.position {
            // the whole array, in position order, under its key, one per
            // parent object
            let (parent, last) = path.split_at(path.len() - 1);
            let group: Vec<String> = r
                .segments
                .iter()
                .filter_map(|s| match s {
                    Segment::Capture(ci) => Some(col(*ci)),
                    Segment::Literal(_) | Segment::Position(_) => None,
                })
                .collect();
            let obj = format!(
                "jsonb_build_object({}, {}) FROM {table} AS t WHERE {}",
                last[0],
                elements(&value, &col(pi)),
                conds.join(" AND "),
            );
            if group.is_empty() {
                // one array per user: one row
                parts.push(Part {
                    prefix: parent.to_vec(),
                    head: Some(last[0].clone()),
                    query: format!("SELECT {obj} HAVING count(*) > 0"),
                });
            } else {
                // one array per captured key: a row each, the array at its
                // own path (the array's key in it: the arrays of one parent
                // are put side by side, not merged one by one)
                dynamic.push(format!(
                    "SELECT jsonb_build_array({}), {} FROM {table} AS t WHERE {} GROUP BY {}",
                    path.join(", "),
                    elements(&value, &col(pi)),
                    conds.join(" AND "),
                    group.join(", ")
                ));
            }
            continue;
        }
        // The rule's values nested into one object per user, aggregated
        // from the last segment up to the first captured one, and put once
        // under the literal path before it.
        let first = r
            .segments
            .iter()
            .position(|s| matches!(s, Segment::Capture(_)))
            .unwrap_or(r.segments.len() - 1);
        let tail = &r.segments[first..];
        let alias = |i: usize| format!("k{i}");
        let captured: Vec<String> = tail
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s {
                Segment::Capture(ci) => Some(format!("{} AS {}", key(*ci), alias(i))),
                Segment::Literal(_) | Segment::Position(_) => None,
            })
            .collect();
        let mut cur = format!(
            "SELECT {}{value} AS v FROM {table} AS t WHERE {}",
            captured
                .iter()
                .map(|c| format!("{c}, "))
                .collect::<String>(),
            conds.join(" AND ")
        );
        for (i, seg) in tail.iter().enumerate().rev() {
            let before: Vec<String> = tail[..i]
                .iter()
                .enumerate()
                .filter(|(_, s)| matches!(s, Segment::Capture(_)))
                .map(|(j, _)| format!("q.{}", alias(j)))
                .collect();
            let keep = before
                .iter()
                .map(|b| format!("{b} AS {}, ", &b[2..]))
                .collect::<String>();
            cur = match seg {
                Segment::Capture(_) => format!(
                    "SELECT {keep}json_object_agg(q.{}, q.v)::jsonb AS v FROM ({cur}) AS q{}",
                    alias(i),
                    if before.is_empty() {
                        " HAVING count(*) > 0".to_string()
                    } else {
                        format!(" GROUP BY {}", before.join(", "))
                    }
                ),
                Segment::Literal(k) => format!(
                    "SELECT {keep}jsonb_build_object({}, q.v) AS v FROM ({cur}) AS q",
                    lit(k)
                ),
                Segment::Position(_) => unreachable!("rules through arrays are put row by row"),
            };
        }
        parts.push(Part {
            prefix: path[..first].to_vec(),
            head: match &r.segments[first] {
                Segment::Literal(k) => Some(lit(k)),
                Segment::Capture(_) | Segment::Position(_) => None,
            },
            query: format!("SELECT q.v FROM ({cur}) AS q"),
        });
    }
    let (tree_vars, body) = rows_tree(&parts);
    // rows' values at their paths, all put into the blob by one call
    // (one put per row copied the whole blob each time)
    let put_all = |comment: &str, queries: &[String]| {
        if queries.is_empty() {
            return String::new();
        }
        format!(
            "-- {comment}\n    \
             SELECT json_agg(json_build_array(q.p, q.v))::jsonb INTO _decant_items FROM (\n        {}\n    ) AS q(p, v);\n    \
             IF _decant_items IS NOT NULL THEN\n        \
             _decant_blob := decant.put_all(_decant_blob, _decant_items);\n    \
             END IF;\n    ",
            queries.join("\n        UNION ALL\n        ")
        )
    };
    let through = put_all(
        "the rows of rules through arrays, each at its path",
        &through,
    );
    let dynamic = put_all("the arrays under captured keys, each at its path", &dynamic);
    format!(
        "CREATE OR REPLACE FUNCTION {}({}, jsonb) RETURNS jsonb\n    \
         LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp STABLE SET extra_float_digits = 1 SET jit = off AS\n$$\n\
         #variable_conflict use_column\n\
         DECLARE _decant_blob jsonb := $2; _decant_entries jsonb; _decant_items jsonb;{tree_vars}\n\
         BEGIN\n    \
           {through}\
           -- the rows of every rule not through an array, nested into one\n    \
           -- object in one statement, grafted once onto the residual\n    \
           {body}\n    \
           IF _decant_blob IS NULL OR _decant_blob = '{{}}'::jsonb THEN\n        \
             _decant_blob := coalesce(_decant_entries, _decant_blob);\n    \
           ELSIF _decant_entries IS NOT NULL THEN\n        \
             _decant_blob := decant.graft(_decant_blob, _decant_entries);\n    \
           END IF;\n    \
           {dynamic}IF _decant_blob IS NULL AND $2 IS NOT NULL THEN\n        \
             -- never hand a caller (or a patch's write) a blob that lost its residual\n        \
             RAISE EXCEPTION 'decant: the blob of user % rebuilt as NULL from a residual and rows', $1 \
               USING ERRCODE = 'data_corrupted', HINT = 'a defect of decant''s SQL rebuild: report it; `decant rollback --user` rebuilds through Rust';\n    \
           END IF;\n    \
           RETURN _decant_blob;\n\
         END\n$$",
        internal(spec, "rebuild"),
        spec.source.id_type.sql()
    )
}

/// An array rule's rows aggregated: their values in position order when
/// they are positions 0 to n - 1 (the whole array), else by position
/// (`{"decant:positions": {"1": v}}`), for `decant.fill` to put into
/// the array the residual kept for the elements the rule refused.
fn elements(value: &str, position: &str) -> String {
    format!(
        "CASE WHEN count(*) = max({position}) + 1 THEN json_agg({value} ORDER BY {position})::jsonb \
         ELSE jsonb_build_object('decant:positions', json_object_agg({position}, {value})::jsonb) END"
    )
}

/// What the rows of one rule not through an array rebuild: a non-empty
/// object, or nothing.
struct Part {
    /// The literal keys it goes under, as SQL literals.
    prefix: Vec<String>,
    /// Its object's one key when that is literal (as an SQL literal); none
    /// when its keys are captured.
    head: Option<String>,
    /// A query of at most one row, the object.
    query: String,
}

/// The PL/pgSQL that puts into `_decant_entries` the rows of the rules
/// not through arrays, as one object, and the variables it declares. One
/// statement reads every part; then each level of their paths, deepest
/// first, joins its parts and its children (a level nothing reaches is
/// NULL): by concatenation where their keys cannot meet (distinct literal
/// keys, at most one part of captured keys: a captured key is never one a
/// sibling names, explode routes it there), by a deep merge elsewhere.
fn rows_tree(parts: &[Part]) -> (String, String) {
    if parts.is_empty() {
        return (String::new(), "_decant_entries := NULL;".to_string());
    }
    // the distinct paths and their prefixes, deepest first so that a
    // level's children are made before it
    let mut levels: Vec<Vec<String>> = Vec::new();
    for p in parts {
        for n in 0..=p.prefix.len() {
            if !levels.contains(&p.prefix[..n].to_vec()) {
                levels.push(p.prefix[..n].to_vec());
            }
        }
    }
    levels.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
    let name = |level: &[String]| {
        if level.is_empty() {
            "_decant_entries".to_string()
        } else {
            format!(
                "_decant_n{}",
                levels.iter().position(|l| l == level).unwrap()
            )
        }
    };
    let part = |i: usize| format!("_decant_e{i}");
    let mut declare: Vec<String> = (0..parts.len()).map(part).collect();
    declare.extend(levels.iter().filter(|l| !l.is_empty()).map(|l| name(l)));
    let mut body = vec![format!(
        "SELECT {} INTO {};",
        parts
            .iter()
            .map(|p| format!("({})", p.query))
            .collect::<Vec<_>>()
            .join(",\n        "),
        (0..parts.len()).map(part).collect::<Vec<_>>().join(", ")
    )];
    for level in &levels {
        let mut terms = Vec::new();
        let mut heads = Vec::new();
        for (i, p) in parts.iter().enumerate().filter(|(_, p)| &p.prefix == level) {
            terms.push(part(i));
            heads.push(p.head.clone());
        }
        for child in levels
            .iter()
            .filter(|c| c.len() == level.len() + 1 && c.starts_with(level))
        {
            let c = name(child);
            let key = &child[level.len()];
            terms.push(format!(
                "CASE WHEN {c} IS NOT NULL THEN jsonb_build_object({key}, {c}) END"
            ));
            heads.push(Some(key.clone()));
        }
        let literal: Vec<&String> = heads.iter().flatten().collect();
        let distinct: std::collections::BTreeSet<&String> = literal.iter().copied().collect();
        let disjoint = distinct.len() == literal.len() && heads.len() - literal.len() <= 1;
        // `cat` and `deep_merge` of NULL and x are x
        let join = if disjoint {
            "decant.cat"
        } else {
            "decant.deep_merge"
        };
        let merged = terms
            .into_iter()
            .reduce(|acc, t| format!("{join}({acc}, {t})"))
            .unwrap_or_else(|| "NULL".into());
        body.push(format!("{} := {merged};", name(level)));
    }
    (
        format!(" {} jsonb;", declare.join(" jsonb; ")),
        body.join("\n    "),
    )
}

/// The source table and its id, blob and flag columns, quoted.
fn source_names(spec: &Spec) -> (String, String, String, String) {
    let s = &spec.source;
    (
        source_table(spec),
        quote(&s.id),
        quote(&s.blob),
        quote(&s.flag),
    )
}

/// `decant."<source>_write"(id, migrated, blob)`: writes a locked user's
/// blob: whole for a legacy user; for a migrated one, the rows that
/// changed (by their text, as the Rust layer compares them), the rows
/// gone, and the residual.
fn write(spec: &Spec) -> String {
    let (src, id, blob, flag) = source_names(spec);
    let it = spec.source.id_type.sql();
    let mut stmts = Vec::new();
    for (ti, t) in spec.tables.iter().enumerate() {
        let user = quote(&t.user_column);
        let key: Vec<String> = std::iter::once(user.clone())
            .chain(t.key.iter().map(|&ci| quote(&t.columns[ci].name)))
            .collect();
        let same_key = |a: &str, b: &str| {
            key.iter()
                .map(|k| format!("{a}.{k} = {b}.{k}"))
                .collect::<Vec<_>>()
                .join(" AND ")
        };
        let cols_of = |a: &str| {
            key.iter()
                .map(|k| format!("{a}.{k}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let all: Vec<String> = std::iter::once(user.clone())
            .chain(t.columns.iter().map(|c| quote(&c.name)))
            .collect();
        let row = |a: &str| {
            format!(
                "ROW({})::text",
                all.iter()
                    .map(|c| format!("{a}.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let non_key: Vec<String> = (0..t.columns.len())
            .filter(|ci| !t.key.contains(ci))
            .map(|ci| format!("{0} = EXCLUDED.{0}", quote(&t.columns[ci].name)))
            .collect();
        let on_conflict = if non_key.is_empty() {
            "NOTHING".to_string()
        } else {
            format!("UPDATE SET {}", non_key.join(", "))
        };
        let table = target_table(spec, ti);
        // whether a patch touches what this table's rows come from: a
        // path it changes and a rule's path agree wherever both have a
        // literal key
        let touched: Vec<String> = spec
            .rules
            .iter()
            .filter(|r| r.table == ti)
            .map(|r| {
                let agree: Vec<String> = r
                    .segments
                    .iter()
                    .enumerate()
                    .filter_map(|(i, seg)| match seg {
                        Segment::Literal(k) => Some(format!(
                            "(jsonb_array_length(p.path) <= {i} OR p.path ->> {i} = {})",
                            lit(k)
                        )),
                        Segment::Capture(_) | Segment::Position(_) => None,
                    })
                    .collect();
                if agree.is_empty() {
                    "true".to_string()
                } else {
                    format!(
                        "EXISTS (SELECT 1 FROM jsonb_array_elements($4) AS p(path) WHERE {})",
                        agree.join(" AND ")
                    )
                }
            })
            .collect();
        let gate = if touched.is_empty() {
            "IF true THEN\n    ".to_string()
        } else {
            format!("IF $4 IS NULL OR {} THEN\n    ", touched.join(" OR "))
        };
        // The rows gone are found with a hashed `NOT IN` (every key column
        // is NOT NULL), not `NOT EXISTS`: the planner estimates the rows
        // function at its `ROWS 50`, and while the table's statistics say a
        // user has few rows it ran that anti-join as a nested loop, 16 s for
        // a user of 15,000 rows (115 ms after an ANALYZE). A hashed subplan
        // is linear whatever the statistics say.
        stmts.push(format!(
            "{gate}WITH n AS MATERIALIZED (SELECT * FROM {rows}($1, $3)),\n         \
             gone AS (DELETE FROM {table} AS o WHERE o.{user} = $1 \
             AND ({okey}) NOT IN (SELECT {nkey} FROM n))\n    \
             INSERT INTO {table} ({cols}) SELECT {ncols} FROM n WHERE NOT EXISTS \
             (SELECT 1 FROM {table} AS o WHERE o.{user} = $1 AND {nk} AND {orow} = {nrow})\n    \
             ON CONFLICT ({key}) DO {on_conflict};\n    END IF;",
            rows = rows_fn(spec, ti),
            nk = same_key("n", "o"),
            okey = cols_of("o"),
            nkey = cols_of("n"),
            cols = all.join(", "),
            ncols = all
                .iter()
                .map(|c| format!("n.{c}"))
                .collect::<Vec<_>>()
                .join(", "),
            orow = row("o"),
            nrow = row("n"),
            key = key.join(", "),
        ));
    }
    format!(
        "CREATE OR REPLACE FUNCTION {name}({it}, boolean, jsonb, jsonb) RETURNS void\n    \
         LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET extra_float_digits = 1 SET jit = off AS\n$$\n\
         #variable_conflict use_column\n\
         DECLARE _decant_residual jsonb; _decant_roots text[];\n\
         BEGIN\n    \
           -- the spec's depth limit: a container at level N is nested N + 1 deep\n    \
           IF jsonb_path_exists($3, 'strict $.**{{{depth}}} ? (@.type() == \"object\" || @.type() == \"array\")') THEN\n        \
             RAISE EXCEPTION 'decant: the blob of user % is nested deeper than {depth} levels', $1 \
             USING ERRCODE = 'program_limit_exceeded', \
             HINT = 'the spec''s [settings] max_depth, applied on every path; flatten the blob or raise the limit';\n    \
           END IF;\n    \
           IF NOT $2 THEN\n        \
             UPDATE {src} AS s SET {blob} = $3 WHERE s.{id} = $1;\n        \
             RETURN;\n    \
           END IF;\n    \
           {stmts}\n    \
           IF $4 IS NULL THEN\n        \
             _decant_residual := {residual}($3);\n    \
           ELSE\n        \
             -- the root's keys leave their residuals independently: only\n        \
             -- the changed ones are computed again (all of it when the stored\n        \
             -- residual is no object: the blob before the patch was none);\n        \
             -- an IF, not a CASE: the planner computes a function of constant\n        \
             -- arguments in every arm of a CASE, the whole blob's residual too\n        \
             _decant_roots := ARRAY(SELECT DISTINCT p.path ->> 0 FROM jsonb_array_elements($4) AS p(path));\n        \
             SELECT s.{blob} INTO _decant_residual FROM {src} AS s WHERE s.{id} = $1;\n        \
             IF jsonb_typeof(_decant_residual) = 'object' THEN\n            \
               _decant_residual := (_decant_residual - _decant_roots) || {residual}((SELECT \
                 coalesce(json_object_agg(e.key, e.value)::jsonb, '{{}}') \
                 FROM jsonb_each($3) AS e WHERE e.key = ANY (_decant_roots)));\n        \
             ELSE\n            \
               _decant_residual := {residual}($3);\n        \
             END IF;\n    \
           END IF;\n    \
           UPDATE {src} AS s SET {blob} = _decant_residual \
             WHERE s.{id} = $1 AND s.{flag} AND s.{blob}::text IS DISTINCT FROM _decant_residual::text;\n\
         END\n$$",
        name = internal(spec, "write"),
        depth = spec.settings.max_depth,
        stmts = stmts.join("\n    "),
        residual = internal(spec, "residual"),
    )
}

/// The public calls: `decant.load`, `decant.load_many`, `decant.save`,
/// `decant.patch`.
fn calls(spec: &Spec) -> Vec<String> {
    let (src, id, blob, flag) = source_names(spec);
    let it = spec.source.id_type.sql();
    let rebuild = internal(spec, "rebuild");
    let write = internal(spec, "write");
    // the spec's bound on a row-lock wait, as the Rust layer's sessions
    // have it: a caller gets lock_not_available (55P03) to retry rather
    // than wait behind a long transaction without end
    let lock_timeout = format!("'{}ms'", spec.settings.lock_timeout_ms);
    // a user of the rollout is migrated first, inside the same lock (see
    // [`migrate`]): the test the Rust layer's lock makes; save reads the
    // blob (detoasting it) only then
    let (eligible, migrate_first, read_and_migrate_first) = if on_demand(spec) {
        let eligible = migrates_on_demand(
            &format!("s.{flag}"),
            &format!("s.{id}"),
            &spec.settings.max_attempts.to_string(),
        );
        // asked again in a statement of its own once the lock is held: the
        // locking statement re-reads only the locked row after a wait, its
        // test of decant.user_state and decant.control keeps the snapshot
        // from before it (a rollback that held the lock and marked the
        // user held would be undone; an outside trial did that)
        let recheck = format!(
            "IF _decant_on_demand THEN\n        \
               SELECT {eligible} INTO _decant_on_demand FROM {src} AS s WHERE s.{id} = $1;\n    \
             END IF;\n    "
        );
        let migrate = format!(
            "_decant_migrated := {}($1, _decant_blob);",
            migrate_name(spec)
        );
        (
            eligible,
            format!("{recheck}IF _decant_on_demand THEN\n        {migrate}\n    END IF;\n    "),
            format!(
                "{recheck}IF _decant_on_demand THEN\n        \
                   SELECT s.{blob} INTO _decant_blob FROM {src} AS s WHERE s.{id} = $1;\n        \
                   {migrate}\n    \
                 END IF;\n    "
            ),
        )
    } else {
        ("false".to_string(), String::new(), String::new())
    };
    // a NULL id is the caller's bug, not an unknown user (a backend
    // mapping P0002 to "404 not found" would hide it)
    let missing = "IF $1 IS NULL THEN\n            \
                   RAISE EXCEPTION 'decant: a NULL user id' USING ERRCODE = 'null_value_not_allowed', \
                   HINT = 'pass the user''s id';\n        \
                   END IF;\n        \
                   RAISE EXCEPTION USING ERRCODE = 'no_data_found', \
                   MESSAGE = format('decant: user %s does not exist', $1), \
                   HINT = 'check the id; load_many leaves unknown users out'";
    vec![
        format!(
            "CREATE OR REPLACE FUNCTION decant.load({it}) RETURNS jsonb\n    \
             LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp STABLE AS\n$$\n\
             #variable_conflict use_column\n\
             DECLARE _decant_blob jsonb; _decant_migrated boolean;\n\
             BEGIN\n    \
               SELECT s.{blob}, s.{flag} INTO _decant_blob, _decant_migrated FROM {src} AS s WHERE s.{id} = $1;\n    \
               IF NOT FOUND THEN\n        {missing};\n    END IF;\n    \
               IF _decant_migrated THEN\n        \
                 RETURN {rebuild}($1, _decant_blob);\n    \
               END IF;\n    \
               RETURN _decant_blob;\n\
             END\n$$"
        ),
        format!(
            "CREATE OR REPLACE FUNCTION decant.load_many({it}[]) RETURNS TABLE (id {it}, blob jsonb)\n    \
             LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS\n$$\n\
             SELECT s.{id}::{it}, CASE WHEN s.{flag} THEN {rebuild}(s.{id}, s.{blob}) ELSE s.{blob} END\n  \
               FROM {src} AS s WHERE s.{id} = ANY ($1) ORDER BY s.{id}\n$$"
        ),
        format!(
            "CREATE OR REPLACE FUNCTION decant.save({it}, jsonb) RETURNS void\n    \
             LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET lock_timeout = {lock_timeout} AS\n$$\n\
             #variable_conflict use_column\n\
             DECLARE _decant_blob jsonb; _decant_migrated boolean; _decant_on_demand boolean;\n\
             BEGIN\n    \
               IF $2 IS NULL THEN\n        \
                 RAISE EXCEPTION 'decant: save of user % with a NULL blob', $1 \
                 USING ERRCODE = 'null_value_not_allowed', HINT = 'pass ''null''::jsonb for a JSON null';\n    \
               END IF;\n    \
               SELECT s.{flag}, {eligible} INTO _decant_migrated, _decant_on_demand \
                 FROM {src} AS s WHERE s.{id} = $1 FOR NO KEY UPDATE;\n    \
               IF NOT FOUND THEN\n        {missing};\n    END IF;\n    \
               {read_and_migrate_first}\
               PERFORM {write}($1, _decant_migrated, $2, NULL);\n\
             END\n$$"
        ),
        format!(
            "CREATE OR REPLACE FUNCTION decant.patch({it}, jsonb) RETURNS jsonb\n    \
             LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET lock_timeout = {lock_timeout} AS\n$$\n\
             #variable_conflict use_column\n\
             DECLARE _decant_blob jsonb; _decant_before jsonb; _decant_migrated boolean; \
               _decant_on_demand boolean;\n\
             BEGIN\n    \
               IF $2 IS NULL THEN\n        \
                 RAISE EXCEPTION 'decant: patch of user % with a NULL patch', $1 \
                 USING ERRCODE = 'null_value_not_allowed', HINT = 'pass ''null''::jsonb to replace the blob by a JSON null';\n    \
               END IF;\n    \
               SELECT s.{blob}, s.{flag}, {eligible} INTO _decant_blob, _decant_migrated, _decant_on_demand \
                 FROM {src} AS s WHERE s.{id} = $1 FOR NO KEY UPDATE;\n    \
               IF NOT FOUND THEN\n        {missing};\n    END IF;\n    \
               {migrate_first}\
               -- (a user just migrated on demand: its rows and residual\n    \
               -- were checked to rebuild the blob in hand)\n    \
               IF _decant_migrated AND NOT _decant_on_demand THEN\n        \
                 _decant_blob := {rebuild}($1, _decant_blob);\n    \
               END IF;\n    \
               _decant_before := _decant_blob;\n    \
               _decant_blob := decant.merge_patch(_decant_blob, $2);\n    \
               -- a legacy blob the patch leaves as it was (the same text, not\n    \
               -- only an equal value: 1.0 = 1) is not rewritten\n    \
               IF NOT _decant_migrated AND _decant_blob = _decant_before \
                 AND _decant_blob::text = _decant_before::text THEN\n        \
                 RETURN _decant_blob;\n    \
               END IF;\n    \
               -- an object patch changes only the paths it holds\n    \
               PERFORM {write}($1, _decant_migrated, _decant_blob, CASE WHEN jsonb_typeof($2) = 'object' \
                 AND jsonb_typeof(_decant_blob) = 'object' THEN decant.patch_paths($2) END);\n    \
               RETURN _decant_blob;\n\
             END\n$$"
        ),
    ]
}
