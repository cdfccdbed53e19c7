//! DDL: the target tables a spec describes and decant's own objects, and
//! `init`, which applies them idempotently.

use crate::core::id::IdType;
use crate::core::spec::{Spec, quote};
use crate::error::{Error, Result};
use crate::pg::sql::{index_name, lit, source_table, target_table, target_tables};
use crate::pg::{api, views};
use tokio_postgres::Client;

/// decant's own objects (schema `decant`): per-user state and control row.
pub const OWN_OBJECTS: &str = include_str!("../../sql/decant.sql");

/// [`OWN_OBJECTS`] with the user id's type where it says `/*id*/bigint`.
pub(crate) fn own_objects(spec: &Spec) -> String {
    OWN_OBJECTS
        .trim()
        .replace("/*id*/bigint", spec.source.id_type.sql())
}

/// The name of the partial index on legacy users that keeps claiming cheap.
fn legacy_index(spec: &Spec) -> String {
    index_name(&format!("{}_decant_legacy_idx", spec.source.table))
}

/// The name of the partial index on migrated users that a text id's
/// bulk jobs (rollback, evolution) walk in byte order; `None` for other
/// ids, whose primary key serves in their own order.
fn migrated_index(spec: &Spec) -> Option<String> {
    (spec.source.id_type == IdType::Text)
        .then(|| index_name(&format!("{}_decant_migrated_idx", spec.source.table)))
}

/// [`migrated_index`] with its schema.
pub(crate) fn migrated_index_qualified(spec: &Spec) -> Option<String> {
    migrated_index(spec).map(|i| format!("{}.{i}", quote(&spec.source.schema)))
}

/// The statements `init` runs, in order, each idempotent. The flag column
/// and the legacy index touch the source table; the index is built
/// `CONCURRENTLY` so live writes go on.
pub fn statements(spec: &Spec) -> Vec<String> {
    statements_for(spec, false)
}

/// The statements of [`statements`]; `flagless` once the migration is
/// finalized and the flag dropped: no flag column or legacy index, and the
/// views and SQL API read the flag as `true`.
pub(crate) fn statements_for(spec: &Spec, flagless: bool) -> Vec<String> {
    let src = source_table(spec);
    let mut out = vec![own_objects(spec)];
    if !flagless {
        out.push(format!(
            "ALTER TABLE {src} ADD COLUMN IF NOT EXISTS {} boolean NOT NULL DEFAULT false",
            quote(&spec.source.flag)
        ));
        out.push(format!(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS {} ON {src} ({}) WHERE NOT {}",
            legacy_index(spec),
            crate::pg::sql::in_order(spec, &quote(&spec.source.id)),
            quote(&spec.source.flag)
        ));
        // a rollback's or an evolution's walk over migrated users after a
        // cursor, in byte order: without it, a text id's primary key (in
        // its column's collation) cannot give that order, and every batch
        // read and sorted the whole table
        if let Some(index) = migrated_index(spec) {
            out.push(format!(
                "CREATE INDEX CONCURRENTLY IF NOT EXISTS {index} ON {src} ({}) WHERE {}",
                crate::pg::sql::in_order(spec, &quote(&spec.source.id)),
                quote(&spec.source.flag)
            ));
        }
    }
    if spec.settings.target_schema != spec.source.schema {
        out.push(format!(
            "CREATE SCHEMA IF NOT EXISTS {}",
            quote(&spec.settings.target_schema)
        ));
    }
    for (ti, t) in spec.tables.iter().enumerate() {
        let mut cols = vec![format!(
            "    {} {} NOT NULL",
            quote(&t.user_column),
            spec.source.id_type.sql()
        )];
        for (ci, c) in t.columns.iter().enumerate() {
            let not_null = if c.not_null || t.key.contains(&ci) {
                " NOT NULL"
            } else {
                ""
            };
            cols.push(format!("    {} {}{not_null}", quote(&c.name), c.ty.sql()));
        }
        let key: Vec<String> = std::iter::once(quote(&t.user_column))
            .chain(t.key.iter().map(|&ci| quote(&t.columns[ci].name)))
            .collect();
        cols.push(format!("    PRIMARY KEY ({})", key.join(", ")));
        out.push(format!(
            "CREATE TABLE IF NOT EXISTS {} (\n{}\n)",
            target_table(spec, ti),
            cols.join(",\n")
        ));
    }
    for ti in 0..spec.tables.len() {
        out.extend(protection(spec, ti));
    }
    out.extend(forget_deleted(spec));
    if let Some((name, ddl)) = crate::pg::sql::reader(spec) {
        out.push(ddl);
        let signature = format!("{name}({})", spec.source.id_type.sql());
        out.push(crate::pg::sql::drop_readers_but(
            &signature,
            &spec.fingerprint(),
        ));
    }
    out.extend(reading_statements(spec, flagless));
    out
}

/// The name of the trigger on the source table that deletes a deleted
/// user's rows and state ([`forget_deleted`]).
const FORGET_TRIGGER: &str = "decant_forget_deleted_users";

/// A user deleted from the source table takes its rows and its state with
/// it: a statement-level trigger (its deleted rows as a transition table)
/// deletes them from every target table and `decant.user_state`. Without
/// it a migrated user's rows outlived it (its statistics stayed in the
/// views and the leaderboards), and a user made again under its id could
/// not migrate. `SECURITY DEFINER` (its owner, who ran `init`, owns the
/// tables): the backend role that deletes users needs no rights on
/// decant's state. It reads no flag, so it outlives `finalize
/// --drop-legacy`; a legacy user has no rows to find. Under
/// `foreign_keys` their cascade has already deleted the rows. On a
/// partitioned source the trigger is a row-level one (PostgreSQL gives
/// every partition, present and future, its copy of a row-level trigger,
/// not of a statement-level one), so that a user deleted through one of
/// its partitions goes too.
fn forget_deleted(spec: &Spec) -> [String; 3] {
    let it = spec.source.id_type.sql();
    let id = quote(&spec.source.id);
    // the ids as an array: each table is then probed by its index (a
    // join with the transition table, of unknown size to the planner,
    // could scan the whole table for one deleted user)
    let mut body = vec![format!(
        "    gone := ARRAY(SELECT g.{id}::{it} FROM decant_gone AS g);\n    \
         IF cardinality(gone) = 0 THEN\n        RETURN NULL;\n    END IF;"
    )];
    let mut row_body = Vec::new();
    for (ti, t) in spec.tables.iter().enumerate() {
        body.push(format!(
            "    DELETE FROM {} AS x WHERE x.{} = ANY (gone);",
            target_table(spec, ti),
            quote(&t.user_column)
        ));
        row_body.push(format!(
            "    DELETE FROM {} AS x WHERE x.{} = OLD.{id}::{it};",
            target_table(spec, ti),
            quote(&t.user_column)
        ));
    }
    body.push("    DELETE FROM decant.user_state AS x WHERE x.user_id = ANY (gone);".into());
    row_body.push(format!(
        "    DELETE FROM decant.user_state AS x WHERE x.user_id = OLD.{id}::{it};"
    ));
    let function = format!(
        "CREATE OR REPLACE FUNCTION decant.forget_deleted_users() RETURNS trigger\n    \
         LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS\n$$\n\
         DECLARE gone {it}[];\nBEGIN\n{}\n    RETURN NULL;\nEND\n$$",
        body.join("\n")
    );
    let row_function = format!(
        "CREATE OR REPLACE FUNCTION decant.forget_deleted_user() RETURNS trigger\n    \
         LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS\n$$\n\
         BEGIN\n{}\n    RETURN NULL;\nEND\n$$",
        row_body.join("\n")
    );
    let src = source_table(spec);
    let trigger = format!(
        "DO $decant$\nBEGIN\n    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = {src_lit}::regclass \
         AND tgname = {name}) THEN\n        \
         IF (SELECT c.relkind FROM pg_class AS c WHERE c.oid = {src_lit}::regclass) = 'p' THEN\n            \
         CREATE TRIGGER {FORGET_TRIGGER} AFTER DELETE ON {src} \
         FOR EACH ROW EXECUTE FUNCTION decant.forget_deleted_user();\n        \
         ELSE\n            \
         CREATE TRIGGER {FORGET_TRIGGER} AFTER DELETE ON {src} REFERENCING OLD TABLE AS decant_gone \
         FOR EACH STATEMENT EXECUTE FUNCTION decant.forget_deleted_users();\n        \
         END IF;\n    END IF;\nEND\n$decant$",
        src_lit = lit(&src),
        name = lit(FORGET_TRIGGER)
    );
    [function, row_function, trigger]
}

/// The cross-user views and the SQL API (which uses the views' helpers);
/// `flagless`: reading the flag as `true`.
pub(crate) fn reading_statements(spec: &Spec, flagless: bool) -> Vec<String> {
    let all = views::statements(spec)
        .into_iter()
        .chain(api::statements(spec));
    if flagless {
        // the indexes on legacy blobs have no legacy user left to index
        let on_source = format!(" ON {}", source_table(spec));
        // nor is anyone left to migrate on demand (its function sets the flag)
        let migrate = api::drop_migrate(spec);
        let migrate_fn = format!("CREATE OR REPLACE FUNCTION {}(", api::migrate_name(spec));
        all.filter(|s| !(s.starts_with("CREATE INDEX") && s.contains(&on_source)))
            .map(|s| {
                if s.starts_with(&migrate_fn) {
                    migrate.clone()
                } else {
                    crate::pg::sql::without_flag(spec, &s)
                }
            })
            .collect()
    } else {
        all.collect()
    }
}

/// The CHECK constraint stating column `c`'s validation as the migration
/// applies it, or `None` when it has none a column of its type can state.
/// Never stricter than decant's own check: numbers compare exactly
/// (numeric) or after the same monotone rounding on both sides (float8,
/// timestamps), texts by characters.
pub(crate) fn check_expression(c: &crate::core::spec::Column) -> Option<String> {
    check_expression_with(c, lit)
}

/// The text a CHECK constraint's name hashes (see [`owned_name`]): its
/// expression with texts written as decant wrote them before its literals
/// learned `E'...'` (quotes doubled, nothing else). The names of
/// constraints made by earlier versions stay the same, so an upgrade does
/// not re-make and re-validate them.
fn check_naming_text(c: &crate::core::spec::Column) -> Option<String> {
    check_expression_with(c, |s| format!("'{}'", s.replace('\'', "''")))
}

fn check_expression_with(c: &crate::core::spec::Column, lit: fn(&str) -> String) -> Option<String> {
    use crate::core::value::ColumnType as T;
    let col = quote(&c.name);
    let mut parts = Vec::new();
    let bound = |b: &crate::core::number::Canonical| -> Option<String> {
        let text = b.to_string();
        match c.ty {
            T::Int2 | T::Int4 | T::Int8 | T::Numeric => Some(format!("{}::numeric", lit(&text))),
            T::Float8 => text
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .map(|_| format!("{}::double precision", lit(&text))),
            T::TimestampMs | T::TimestampS => {
                let unit = if c.ty == T::TimestampS {
                    "1 second"
                } else {
                    "1 millisecond"
                };
                text.parse::<f64>().ok().filter(|f| f.is_finite()).map(|_| {
                    format!(
                        "(timestamptz 'epoch' + interval '{unit}' * {}::double precision)",
                        lit(&text)
                    )
                })
            }
            _ => None,
        }
    };
    if let Some(e) = c.min.as_ref().and_then(bound) {
        parts.push(format!("{col} >= {e}"));
    }
    if let Some(e) = c.max.as_ref().and_then(bound) {
        parts.push(format!("{col} <= {e}"));
    }
    if c.ty == T::Text {
        if let Some(values) = &c.values {
            let vs: Vec<String> = values.iter().map(|v| lit(v)).collect();
            parts.push(format!("{col} IN ({})", vs.join(", ")));
        }
        if let Some(n) = c.max_length {
            parts.push(format!("char_length({col}) <= {n}"));
        }
        if let Some(p) = &c.pattern {
            parts.push(format!("{col} ~ {}", lit(&p.text)));
        }
    }
    (!parts.is_empty()).then(|| parts.join(" AND "))
}

/// A name decant owns on table `ti` (`decant_<hash>_<what>`): the hash is
/// of the definition, so a changed validation makes a new constraint and
/// the old one is dropped as stale.
fn owned_name(what: &str, definition: &str) -> String {
    let hash = crate::pg::sql::stable_hash(definition.bytes());
    crate::pg::sql::short_name(&format!("decant_{hash:08x}_{what}"))
}

/// How the target tables' validation differs from what `init` makes of
/// `spec` (a spec whose validation changed since the last `init`):
/// decant's constraints missing or left over, a column NOT NULL that the
/// spec lets be null or the reverse. Empty when they agree; a table not
/// there is left to the other checks.
pub(crate) async fn validation_drift(
    client: &impl tokio_postgres::GenericClient,
    spec: &Spec,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (ti, t) in spec.tables.iter().enumerate() {
        let table = target_table(spec, ti);
        // (name, definition) of decant's constraints; (name, NOT NULL) of the columns
        let have: Vec<(String, String)> = name_pairs(
            client,
            "SELECT conname::text, pg_get_constraintdef(oid) FROM pg_constraint \
              WHERE conrelid = to_regclass($1) AND contype IN ('c', 'f') \
                AND left(conname, 7) = 'decant_'",
            &table,
        )
        .await?;
        let columns: Vec<(String, bool)> = name_pairs(
            client,
            "SELECT attname::text, attnotnull FROM pg_attribute \
              WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped",
            &table,
        )
        .await?;
        if columns.is_empty() {
            continue;
        }
        let want = constraints(spec, ti);
        for (name, def) in &want {
            if !have.iter().any(|(n, _)| n == name) {
                out.push(format!("{table} lacks the spec's `{def}`"));
            }
        }
        for (name, def) in &have {
            if !want.iter().any(|(n, _)| n == name) {
                out.push(format!(
                    "{table} has `{def}`, which the spec no longer states"
                ));
            }
        }
        for (ci, c) in t.columns.iter().enumerate() {
            if t.key.contains(&ci) {
                continue;
            }
            match columns.iter().find(|(n, _)| *n == c.name) {
                Some((_, true)) if !c.not_null => out.push(format!(
                    "{table}.{} is NOT NULL, the spec lets it be null",
                    quote(&c.name)
                )),
                Some((_, false)) if c.not_null => out.push(format!(
                    "{table}.{} allows NULL, the spec says not_null",
                    quote(&c.name)
                )),
                _ => {}
            }
        }
    }
    Ok(out)
}

/// The rows of catalog query `sql` on relation `table` (its `$1`), as
/// (name, value) pairs.
async fn name_pairs<T: for<'a> tokio_postgres::types::FromSql<'a>>(
    client: &impl tokio_postgres::GenericClient,
    sql: &str,
    table: &str,
) -> Result<Vec<(String, T)>> {
    Ok(client
        .query(sql, &[&table])
        .await
        .map_err(|e| Error::db(format!("reading the catalog on {table}"), e))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

/// The constraints (name, definition) the spec states on target table
/// `ti`, which [`protection`] makes.
fn constraints(spec: &Spec, ti: usize) -> Vec<(String, String)> {
    let t = &spec.tables[ti];
    let mut constraints: Vec<(String, String)> = t
        .columns
        .iter()
        .filter_map(|c| {
            let named = check_naming_text(c)?;
            check_expression(c).map(|e| (owned_name(&c.name, &named), format!("CHECK ({e})")))
        })
        .collect();
    if spec.settings.foreign_keys {
        let def = format!(
            "FOREIGN KEY ({}) REFERENCES {} ({}) ON DELETE CASCADE",
            quote(&t.user_column),
            source_table(spec),
            quote(&spec.source.id)
        );
        constraints.push((owned_name("user", &def), def));
    }
    constraints
}

/// What protects target table `ti` from values the spec refuses: a CHECK
/// per validated column, the foreign key to the source table when
/// `settings.foreign_keys`, and the declared indexes. Each constraint is
/// added `NOT VALID` (a brief lock) and then validated (reads the table
/// without blocking writes), so `init` stays online; constraints decant
/// made before and the spec no longer states are dropped.
fn protection(spec: &Spec, ti: usize) -> Vec<String> {
    let t = &spec.tables[ti];
    let table = target_table(spec, ti);
    let constraints = constraints(spec, ti);
    let names: Vec<String> = constraints.iter().map(|(n, _)| lit(n)).collect();
    // NOT NULL as the spec states it now (`not_null`, or a key column): a
    // spec that drops `not_null` must not leave the table refusing the
    // nulls its users now migrate with (each would fail on error 23502)
    let mut nullability = Vec::new();
    for (ci, c) in t.columns.iter().enumerate() {
        if t.key.contains(&ci) {
            continue;
        }
        let (now, change) = if c.not_null {
            ("NOT a.attnotnull", "SET NOT NULL")
        } else {
            ("a.attnotnull", "DROP NOT NULL")
        };
        nullability.push(format!(
            "    IF EXISTS (SELECT 1 FROM pg_attribute AS a WHERE a.attrelid = {rel}::regclass \
             AND a.attname = {col} AND {now}) THEN\n        \
             ALTER TABLE {table} ALTER COLUMN {q} {change};\n    END IF;\n",
            rel = lit(&table),
            col = lit(&c.name),
            q = quote(&c.name),
        ));
    }
    let mut out = Vec::new();
    if !nullability.is_empty() {
        out.push(format!(
            "DO $decant$\nBEGIN\n{}END\n$decant$",
            nullability.concat()
        ));
    }
    out.push(format!(
        "DO $decant$\nDECLARE stale text;\nBEGIN\n    \
         FOR stale IN SELECT conname FROM pg_constraint WHERE conrelid = {rel}::regclass \
         AND contype IN ('c', 'f') AND left(conname, 7) = 'decant_' \
         AND conname <> ALL (ARRAY[{names}]::text[]) LOOP\n        \
         EXECUTE format({drop}, stale);\n    \
         END LOOP;\nEND\n$decant$",
        rel = lit(&table),
        names = names.join(", "),
        drop = lit(&format!(
            "ALTER TABLE {} DROP CONSTRAINT %I",
            table.replace('%', "%%")
        )),
    ));
    for (name, def) in &constraints {
        out.push(format!(
            "DO $decant$\nBEGIN\n    \
             IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = {rel}::regclass AND conname = {n}) THEN\n        \
             ALTER TABLE {table} ADD CONSTRAINT {q} {def} NOT VALID;\n    \
             END IF;\nEND\n$decant$",
            rel = lit(&table),
            n = lit(name),
            q = quote(name),
        ));
        out.push(format!(
            "ALTER TABLE {table} VALIDATE CONSTRAINT {}",
            quote(name)
        ));
    }
    for index in &t.indexes {
        let cols: Vec<String> = index.iter().map(|c| quote(c)).collect();
        out.push(format!(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS {} ON {table} ({})",
            index_name(&format!("{}_{}_idx", t.name, index.join("_"))),
            cols.join(", ")
        ));
    }
    out
}

/// For a CHECK the rows already stored do not meet (`VALIDATE CONSTRAINT`
/// failing with 23514, after the spec's validation of a column changed):
/// which table and column, the rule the spec now states, the query that
/// finds the users holding such rows, and what to do.
fn unmet_check(spec: &Spec, stmt: &str, e: &tokio_postgres::Error) -> Option<Error> {
    if e.code() == Some(&tokio_postgres::error::SqlState::NOT_NULL_VIOLATION)
        && stmt.contains(" SET NOT NULL;")
    {
        // a `not_null` stated again, over nulls written while it was not
        let db = e.as_db_error()?;
        let (ti, t) = spec.tables.iter().enumerate().find(|(_, t)| {
            Some(t.name.as_str()) == db.table()
                && Some(spec.settings.target_schema.as_str()) == db.schema()
        })?;
        let column = db.column()?;
        let table = target_table(spec, ti);
        return Some(Error::Setup(format!(
            "init: rows already migrated in {table} hold NULL in column {}, which the spec \
             declares `not_null`; nothing was changed. Find their users with \
             `SELECT DISTINCT {} FROM {table} WHERE {} IS NULL`, then roll them back \
             (`decant rollback --ids FILE`; the new validation applies as they migrate again) or \
             relax the spec",
            quote(column),
            quote(&t.user_column),
            quote(column),
        )));
    }
    if e.code() != Some(&tokio_postgres::error::SqlState::CHECK_VIOLATION)
        || !stmt.contains(" VALIDATE CONSTRAINT ")
    {
        return None;
    }
    for (ti, t) in spec.tables.iter().enumerate() {
        for c in &t.columns {
            let Some(expr) = check_expression(c) else {
                continue;
            };
            let table = target_table(spec, ti);
            // two tables may hold a constraint of one name (same column,
            // same rule): the statement names its table
            if !stmt.starts_with(&format!("ALTER TABLE {table} "))
                || !stmt.ends_with(&quote(&owned_name(&c.name, &expr)))
            {
                continue;
            }
            return Some(Error::Setup(format!(
                "init: rows already migrated in {table} do not meet the spec's validation of column \
                 {} (`{expr}`); nothing was changed. Find their users with \
                 `SELECT DISTINCT {} FROM {table} WHERE NOT ({expr})`, then roll them back \
                 (`decant rollback --ids FILE`; the new validation applies as they migrate again) or \
                 relax the spec",
                quote(&c.name),
                quote(&t.user_column),
            )));
        }
    }
    None
}

/// The legacy index's name, schema-qualified.
pub(crate) fn legacy_index_qualified(spec: &Spec) -> String {
    format!("{}.{}", quote(&spec.source.schema), legacy_index(spec))
}

/// The cross-user views and their helpers as one script, for
/// `decant views`.
pub fn views_script(spec: &Spec) -> String {
    let mut s = String::from("-- cross-user views generated by decant from the mapping spec\n\n");
    for stmt in views::statements(spec) {
        s.push_str(stmt.trim_end().trim_end_matches(';'));
        s.push_str(";\n\n");
    }
    s
}

/// The whole DDL as one script, for `decant schema`.
pub fn script(spec: &Spec) -> String {
    let mut s = String::from("-- generated by decant from the mapping spec\n\n");
    let on_source = format!(" ON {} ", source_table(spec));
    for stmt in statements(spec) {
        if stmt.starts_with("CREATE INDEX CONCURRENTLY") && stmt.contains(&on_source) {
            // PostgreSQL refuses CONCURRENTLY on a partitioned table
            s.push_str(
                "-- On a plain source table. A partitioned one refuses CONCURRENTLY: `decant init`\n\
                 -- builds this index ON ONLY it, then each partition's CONCURRENTLY (named\n\
                 -- <index>_<partition>) and attaches it (ALTER INDEX ... ATTACH PARTITION).\n",
            );
        }
        s.push_str(stmt.trim_end().trim_end_matches(';'));
        s.push_str(";\n\n");
    }
    s
}

/// Refuses to take over objects of decant's names that another role owns:
/// the schema `decant` and everything in it, the target tables, the views
/// and their functions. Their owner can change what they do (a trigger on
/// `decant.control`, a replaced `decant.patch`), and it would run with the
/// rights of whoever runs `init`, the daemon or the backend: a role with
/// CREATE on the database could make itself a superuser through a
/// superuser's `init`. Trusted owners: the role running `init`, the source
/// table's owner, superusers, and (for an `init` not run by a superuser)
/// the roles it is a member of. Triggers on decant's own tables are
/// refused whoever owns them (decant makes none).
async fn check_owners(client: &Client, spec: &Spec) -> Result<()> {
    let (target, in_views) = (&spec.settings.target_schema, &spec.settings.views_schema);
    let relations: Vec<String> = spec
        .tables
        .iter()
        .enumerate()
        .flat_map(|(ti, t)| {
            [
                format!("{target}.{}", t.name),
                format!("{in_views}.{}", views::view_base(spec, ti)),
            ]
        })
        .collect();
    let functions: Vec<String> = std::iter::once(views::fails_base(spec))
        .chain(spec.ranked.iter().map(views::top_base))
        .map(|f| format!("{in_views}.{f}"))
        .collect();
    let rows = client
        .query(
            "WITH me AS (SELECT r.oid, r.rolsuper FROM pg_roles r WHERE r.rolname = current_user), \
             objects AS ( \
               SELECT 'schema' AS kind, quote_ident(n.nspname) AS name, n.nspowner AS owner \
                 FROM pg_namespace n WHERE n.nspname = 'decant' \
               UNION ALL \
               SELECT CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' \
                        WHEN 'S' THEN 'sequence' ELSE 'table' END, \
                      format('%I.%I', n.nspname, c.relname), c.relowner \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') \
                  AND (n.nspname = 'decant' OR n.nspname || '.' || c.relname = ANY ($2)) \
               UNION ALL \
               SELECT 'function', p.oid::regprocedure::text, p.proowner \
                 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
                WHERE n.nspname = 'decant' OR n.nspname || '.' || p.proname = ANY ($3) \
               UNION ALL \
               SELECT 'trigger', format('%s on %s', quote_ident(t.tgname), t.tgrelid::regclass), 0 \
                 FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                WHERE n.nspname = 'decant' AND NOT t.tgisinternal) \
             SELECT o.kind, o.name, coalesce(pg_get_userbyid(NULLIF(o.owner, 0)), '') \
               FROM objects o, me \
              WHERE o.owner = 0 OR NOT ( \
                    o.owner = me.oid \
                 OR o.owner = (SELECT c.relowner FROM pg_class c WHERE c.oid = to_regclass($1)) \
                 OR (SELECT r.rolsuper FROM pg_roles r WHERE r.oid = o.owner) \
                 OR (NOT me.rolsuper AND pg_has_role(me.oid, o.owner, 'MEMBER'))) \
              ORDER BY 1, 2",
            &[&source_table(spec), &relations, &functions],
        )
        .await
        .map_err(|e| Error::db("reading the owners of decant's objects", e))?;
    if rows.is_empty() {
        return Ok(());
    }
    let found: Vec<String> = rows
        .iter()
        .take(10)
        .map(|r| {
            let (kind, name, owner): (String, String, String) = (r.get(0), r.get(1), r.get(2));
            if kind == "trigger" {
                format!("trigger {name}")
            } else {
                format!("{kind} {name} (owned by {owner})")
            }
        })
        .collect();
    Err(Error::Setup(format!(
        "init would take over objects another role controls: {}{}. Their owner (or a trigger's \
         author) can change what they do, and it would run with the rights of whoever runs init, \
         the daemon or the backend. Objects decant makes must belong to the role running init, \
         the source table's owner or a superuser: if they are yours, `ALTER ... OWNER TO` one of \
         those (and drop the triggers on decant's tables); if not, find out who made them before \
         anything else",
        found.join(", "),
        if rows.len() > 10 {
            format!(" and {} more", rows.len() - 10)
        } else {
            String::new()
        }
    )))
}

/// Refuses a column's pattern this server cannot compile ("too complex",
/// past a limit decant does not know): the CHECK constraint, the views and
/// the SQL API would otherwise fail on every row, though `init` succeeds
/// (its constraints are added to empty tables, NOT VALID).
async fn check_patterns(client: &Client, spec: &Spec) -> Result<()> {
    for t in &spec.tables {
        for c in &t.columns {
            let Some(p) = &c.pattern else { continue };
            if let Err(e) = client.query_one("SELECT '' ~ $1", &[&p.text]).await {
                return Err(Error::Setup(format!(
                    "table {}, column {}: PostgreSQL cannot use the pattern {:?} ({}); write a \
                     simpler one (fewer nested or large repetitions)",
                    t.name,
                    c.name,
                    p.text,
                    crate::error::describe(&e)
                )));
            }
        }
    }
    Ok(())
}

/// Checks that the source table exists with the columns the spec names, of
/// usable types. The flag column may be missing (init adds it).
/// Refuses a target table that exists with another shape than the spec
/// gives it (a column missing or of another type, a NOT NULL column the
/// spec does not know and that has no default, another primary key): every
/// user would otherwise fail against it, one by one. Names each
/// difference and what to do.
pub async fn check_targets(client: &impl tokio_postgres::GenericClient, spec: &Spec) -> Result<()> {
    let mut problems = Vec::new();
    // the tables that differ and hold rows (a migrated user's values)
    let mut holding = Vec::new();
    for (ti, t) in spec.tables.iter().enumerate() {
        let name = target_table(spec, ti);
        let before = problems.len();
        let rows = client
            .query(
                "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull, \
                        a.atthasdef, coalesce(a.attnum = ANY (i.indkey), false) \
                   FROM pg_attribute a \
                   JOIN pg_class c ON c.oid = a.attrelid \
                   JOIN pg_namespace n ON n.oid = c.relnamespace \
                   LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary \
                  WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped",
                &[&spec.settings.target_schema, &t.name],
            )
            .await
            .map_err(|e| Error::db(format!("reading the columns of {name}"), e))?;
        if rows.is_empty() {
            continue;
        }
        let found: Vec<(String, String, bool, bool, bool)> = rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
            .collect();
        let want: Vec<(&str, &str)> =
            std::iter::once((t.user_column.as_str(), spec.source.id_type.sql()))
                .chain(t.columns.iter().map(|c| (c.name.as_str(), c.ty.sql())))
                .collect();
        for (col, ty) in &want {
            match found.iter().find(|f| f.0 == *col) {
                None => problems.push(format!("{name} has no column \"{col}\" ({ty})")),
                Some(f) if f.1 != *ty => {
                    problems.push(format!("{name}.\"{col}\" is {}, the spec says {ty}", f.1))
                }
                Some(_) => {}
            }
        }
        for f in &found {
            if f.2 && !f.3 && !want.iter().any(|(c, _)| *c == f.0) {
                problems.push(format!(
                    "{name}.\"{}\" is NOT NULL without a default and not in the spec",
                    f.0
                ));
            }
        }
        let key: std::collections::BTreeSet<&str> = std::iter::once(t.user_column.as_str())
            .chain(t.key.iter().map(|&ci| t.columns[ci].name.as_str()))
            .collect();
        let pk: std::collections::BTreeSet<&str> =
            found.iter().filter(|f| f.4).map(|f| f.0.as_str()).collect();
        if pk != key {
            problems.push(format!(
                "{name}'s primary key is ({}), the spec's is ({})",
                pk.into_iter().collect::<Vec<_>>().join(", "),
                key.into_iter().collect::<Vec<_>>().join(", ")
            ));
        }
        if problems.len() > before {
            let rows: bool = client
                .query_one(&format!("SELECT EXISTS (SELECT 1 FROM {name})"), &[])
                .await
                .map_err(|e| Error::db(format!("reading {name}"), e))?
                .get(0);
            if rows {
                holding.push(name);
            }
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    let what = if holding.is_empty() {
        "rename or drop those tables (they hold no rows), or change the spec to match them"
            .to_string()
    } else {
        // dropping them would lose migrated users' values (an outside
        // trial followed the advice and lost 10,000 users' orders)
        format!(
            "{} {} rows (migrated users' values, if decant made {}): change the spec to match, or \
             to change the tables, roll their users back first (`decant rollback --all` with the \
             spec they were made by; `decant status` shows it), then rename or drop them; never \
             drop a table that holds rows before the rollback",
            holding.join(", "),
            if holding.len() == 1 { "holds" } else { "hold" },
            if holding.len() == 1 { "it" } else { "them" }
        )
    };
    Err(Error::Setup(format!(
        "target tables exist with another shape than the spec's:\n  - {}\n{what}",
        problems.join("\n  - ")
    )))
}

/// The source table's enabled triggers that fire on decant's `UPDATE`s
/// of it (migrating, rolling back, and writes through decant), each as
/// `name (BEFORE)` or `name (AFTER)`. A `BEFORE` row trigger that changes
/// the blob column changes a user's data as it migrates or rolls back; an
/// `updated_at` trigger marks every user as touched.
pub async fn source_triggers(
    client: &impl tokio_postgres::GenericClient,
    spec: &Spec,
) -> Result<Vec<String>> {
    let rows = client
        .query(
            "SELECT t.tgname::text || CASE WHEN t.tgtype::int & 2 <> 0 THEN ' (BEFORE)' ELSE ' (AFTER)' END \
               FROM pg_trigger t \
              WHERE t.tgrelid = to_regclass($1) AND NOT t.tgisinternal AND t.tgenabled IN ('O', 'A') \
                AND t.tgtype::int & 16 <> 0 \
              ORDER BY t.tgname",
            &[&source_table(spec)],
        )
        .await
        .map_err(|e| Error::db("reading the source table's triggers", e))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The warning for [`source_triggers`], when there are any.
pub fn source_triggers_warning(spec: &Spec, triggers: &[String]) -> Option<String> {
    (!triggers.is_empty()).then(|| {
        format!(
            "the source table {} has triggers that fire on decant's UPDATEs of it (each user's \
             migration and rollback): {}. A BEFORE trigger that changes the column {} changes users' \
             data as they migrate; one that stamps a time marks every user touched. Disable them \
             for the migration, or run decant's commands with a connection string that names them \
             (`application_name=decant_migration`) and have the triggers skip those sessions \
             (`IF current_setting('application_name') = 'decant_migration' THEN RETURN NEW; END IF;`)",
            source_table(spec),
            triggers.join(", "),
            quote(&spec.source.blob)
        )
    })
}

/// The source table's enabled rules on `UPDATE`, each as `name (DO
/// INSTEAD)` or `name (DO ALSO)`. A rule rewrites decant's own `UPDATE`s
/// of the source (each user's migration and rollback): a conditional `DO
/// INSTEAD` one, whatever rows it matches, makes PostgreSQL refuse them
/// all (decant's writes return the ids they wrote: 0A000, "cannot
/// perform UPDATE RETURNING"), so every user fails and stays legacy; a
/// `DO ALSO` one runs its action for every user decant migrates or rolls
/// back.
async fn source_rules(
    client: &impl tokio_postgres::GenericClient,
    spec: &Spec,
) -> Result<Vec<String>> {
    let rows = client
        .query(
            "SELECT r.rulename::text || CASE WHEN r.is_instead THEN ' (DO INSTEAD)' ELSE ' (DO ALSO)' END \
               FROM pg_rewrite r \
              WHERE r.ev_class = to_regclass($1) AND r.ev_type = '2' AND r.ev_enabled IN ('O', 'A') \
              ORDER BY r.rulename",
            &[&source_table(spec)],
        )
        .await
        .map_err(|e| Error::db("reading the source table's rules", e))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The warning for [`source_rules`], when there are any.
fn source_rules_warning(spec: &Spec, rules: &[String]) -> Option<String> {
    (!rules.is_empty()).then(|| {
        format!(
            "the source table {} has rules on UPDATE that rewrite decant's UPDATEs of it (each \
             user's migration and rollback): {}. A DO INSTEAD rule, whatever rows it matches, makes \
             PostgreSQL refuse them all (0A000, \"cannot perform UPDATE RETURNING\"): every user \
             fails and stays legacy; a DO ALSO rule runs its action for every user migrated or rolled back. \
             Disable them for the migration (`ALTER TABLE {} DISABLE RULE <name>`) or drop them",
            source_table(spec),
            rules.join(", "),
            source_table(spec)
        )
    })
}

/// The source table's indexes that read the blob column (as a key, in an
/// expression or in a predicate), each as `name (method)`; decant's own
/// (their predicate reads the flag: they index legacy users only) are
/// left out. Queries through them see a migrated user's residual, not the
/// values moved to the tables, and every migration and rollback rewrites
/// their entries.
async fn source_blob_indexes(
    client: &impl tokio_postgres::GenericClient,
    spec: &Spec,
) -> Result<Vec<String>> {
    let reads = |column: &str| {
        format!(
            "EXISTS (SELECT 1 FROM pg_depend d JOIN pg_attribute a \
                 ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid \
               WHERE d.classid = 'pg_class'::regclass AND d.objid = i.indexrelid \
                 AND d.refclassid = 'pg_class'::regclass AND d.refobjid = i.indrelid \
                 AND a.attname = {column})"
        )
    };
    let rows = client
        .query(
            &format!(
                "SELECT c.relname::text || ' (' || m.amname::text || ')' \
                   FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
                   JOIN pg_am m ON m.oid = c.relam \
                  WHERE i.indrelid = to_regclass($1) AND {} AND NOT {} \
                  ORDER BY c.relname",
                reads("$2"),
                reads("$3")
            ),
            &[&source_table(spec), &spec.source.blob, &spec.source.flag],
        )
        .await
        .map_err(|e| Error::db("reading the source table's indexes", e))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The warning for [`source_blob_indexes`], when there are any.
fn source_blob_indexes_warning(spec: &Spec, indexes: &[String]) -> Option<String> {
    (!indexes.is_empty()).then(|| {
        format!(
            "the source table {} has indexes that read the column {}: {}. A migrated user's blob \
             keeps only its residual, so queries through them stop finding the values moved to \
             the tables as users migrate (read the `<table>_all` views or decant.load instead), \
             and each user's migration and rollback rewrites their entries; drop them once no \
             query needs them",
            source_table(spec),
            quote(&spec.source.blob),
            indexes.join(", ")
        )
    })
}

/// The source table's CHECK constraints that read the blob column, each
/// as `name: CHECK (...)`, but for those that also read the flag (they
/// can tell a residual). A migrated user's blob holds its residual alone,
/// which such a constraint may refuse: the user then fails to migrate on
/// it (23514).
async fn source_blob_checks(
    client: &impl tokio_postgres::GenericClient,
    spec: &Spec,
) -> Result<Vec<String>> {
    let rows = client
        .query(
            "SELECT c.conname::text || ': ' || pg_get_constraintdef(c.oid) \
               FROM pg_constraint c \
               JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey) \
              WHERE c.conrelid = to_regclass($1) AND c.contype = 'c' AND a.attname = $2 \
                AND NOT EXISTS (SELECT 1 FROM pg_attribute f WHERE f.attrelid = c.conrelid \
                                   AND f.attnum = ANY (c.conkey) AND f.attname = $3) \
              ORDER BY c.conname",
            &[&source_table(spec), &spec.source.blob, &spec.source.flag],
        )
        .await
        .map_err(|e| Error::db("reading the source table's CHECK constraints", e))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The warning for [`source_blob_checks`], when there are any.
fn source_blob_checks_warning(spec: &Spec, checks: &[String]) -> Option<String> {
    (!checks.is_empty()).then(|| {
        let (blob, flag) = (quote(&spec.source.blob), quote(&spec.source.flag));
        format!(
            "the source table {} has CHECK constraints that read the column {blob}: {}. A \
             migrated user's {blob} holds only its residual (what no rule claims), which such a \
             constraint may refuse: that user then fails to migrate (database error 23514, \
             listed by `decant status`; `decant check` cannot foresee it). Make each accept \
             migrated users, as `CHECK ({flag} OR (...))` (the flag is set by the same UPDATE), \
             or drop it",
            source_table(spec),
            checks.join("; ")
        )
    })
}

/// The source table's generated columns computed from the blob column
/// (stored, or virtual from PostgreSQL 18), each as `name = expression`,
/// but for those that also read the flag (they can tell a residual). A
/// migrated user's blob holds its residual alone, so such a column loses
/// the values moved to the tables when its user migrates (NULL, or what
/// the expression makes of their absence), and gets them back on rollback.
async fn source_blob_generated(
    client: &impl tokio_postgres::GenericClient,
    spec: &Spec,
) -> Result<Vec<String>> {
    // the expression's dependencies: from its pg_attrdef row (a column
    // made with the table), or from the column itself (one added later)
    let reads = |column: &str| {
        format!(
            "EXISTS (SELECT 1 FROM pg_depend d JOIN pg_attribute b \
                 ON b.attrelid = d.refobjid AND b.attnum = d.refobjsubid \
               WHERE ((d.classid = 'pg_class'::regclass AND d.objid = g.attrelid \
                        AND d.objsubid = g.attnum) \
                      OR (d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid)) \
                 AND d.refclassid = 'pg_class'::regclass \
                 AND d.refobjid = g.attrelid AND b.attname = {column})"
        )
    };
    let rows = client
        .query(
            &format!(
                "SELECT quote_ident(g.attname) || ' = ' || pg_get_expr(ad.adbin, ad.adrelid) \
                   FROM pg_attribute g \
                   JOIN pg_attrdef ad ON ad.adrelid = g.attrelid AND ad.adnum = g.attnum \
                  WHERE g.attrelid = to_regclass($1) AND g.attgenerated <> '' \
                    AND NOT g.attisdropped AND {} AND NOT {} \
                  ORDER BY g.attnum",
                reads("$2"),
                reads("$3")
            ),
            &[&source_table(spec), &spec.source.blob, &spec.source.flag],
        )
        .await
        .map_err(|e| Error::db("reading the source table's generated columns", e))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The warning for [`source_blob_generated`], when there are any.
fn source_blob_generated_warning(spec: &Spec, columns: &[String]) -> Option<String> {
    (!columns.is_empty()).then(|| {
        let blob = quote(&spec.source.blob);
        format!(
            "the source table {} has generated columns computed from the column {blob}: {}. A \
             migrated user's {blob} holds only its residual, so such a column loses the values \
             moved to the tables when its user migrates (it reads NULL, or what its expression \
             makes of their absence) and gets them back on rollback; a NOT NULL or CHECK on it \
             fails the user's migration. Read the `<table>_all` views or decant.load instead, \
             and drop the column once no query needs it",
            source_table(spec),
            columns.join("; ")
        )
    })
}

/// The views and materialized views (other than decant's `_all` views)
/// that read the source table's blob column, directly: each as
/// `name (view)` or `name (materialized view)`.
async fn source_blob_views(
    client: &impl tokio_postgres::GenericClient,
    spec: &Spec,
) -> Result<Vec<String>> {
    let own: Vec<String> = (0..spec.tables.len())
        .map(|ti| {
            format!(
                "{}.{}",
                quote(&spec.settings.views_schema),
                quote(&views::view_base(spec, ti))
            )
        })
        .collect();
    let rows = client
        .query(
            "SELECT DISTINCT v.oid::regclass::text || CASE v.relkind WHEN 'm' \
                    THEN ' (materialized view)' ELSE ' (view)' END \
               FROM pg_depend d \
               JOIN pg_rewrite r ON r.oid = d.objid \
               JOIN pg_class v ON v.oid = r.ev_class \
               JOIN pg_attribute b ON b.attrelid = d.refobjid AND b.attnum = d.refobjsubid \
              WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass \
                AND d.refobjid = to_regclass($1) AND b.attname = $2 \
                AND v.oid <> d.refobjid AND v.relkind IN ('v', 'm') \
                AND v.relnamespace <> coalesce(to_regnamespace('decant'), 0) \
                AND NOT EXISTS (SELECT 1 FROM unnest($3::text[]) AS o(name) \
                                 WHERE to_regclass(o.name) = v.oid) \
              ORDER BY 1",
            &[&source_table(spec), &spec.source.blob, &own],
        )
        .await
        .map_err(|e| Error::db("reading the views on the source table", e))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The warning for [`source_blob_views`], when there are any.
fn source_blob_views_warning(spec: &Spec, views: &[String]) -> Option<String> {
    (!views.is_empty()).then(|| {
        let blob = quote(&spec.source.blob);
        format!(
            "views read the column {blob} of the source table {}: {}. A migrated user's {blob} \
             holds only its residual, so from the first migrated user on they miss the values \
             moved to the tables (a report or leaderboard over them goes quietly wrong); read the \
             `<table>_all` views (every user's rows, whatever its state) or decant.load instead",
            source_table(spec),
            views.join(", ")
        )
    })
}

/// The publications (logical replication, change data capture) that
/// carry the source table or one of its partitions but not every target
/// table: each with the target tables it lacks. A publication `FOR ALL
/// TABLES` carries the target tables too.
async fn source_publications(
    client: &impl tokio_postgres::GenericClient,
    spec: &Spec,
) -> Result<Vec<(String, Vec<String>)>> {
    let targets: Vec<String> = target_tables(spec).collect();
    // the source itself and its partitions (pg_partition_tree gives no
    // row for a plain table)
    let rows = client
        .query(
            "SELECT p.pubname::text, \
                    array(SELECT t FROM unnest($2::text[]) WITH ORDINALITY AS x(t, i) \
                           WHERE NOT p.puballtables AND NOT EXISTS ( \
                                 SELECT 1 FROM pg_publication_tables pt \
                                  WHERE pt.pubname = p.pubname \
                                    AND to_regclass(format('%I.%I', pt.schemaname, pt.tablename)) \
                                        = to_regclass(x.t)) \
                           ORDER BY x.i) \
               FROM pg_publication p \
              WHERE EXISTS (SELECT 1 FROM pg_publication_tables pt \
                             WHERE pt.pubname = p.pubname \
                               AND to_regclass(format('%I.%I', pt.schemaname, pt.tablename)) \
                                   IN (SELECT to_regclass($1) UNION ALL \
                                       SELECT relid FROM pg_partition_tree(to_regclass($1)))) \
              ORDER BY 1",
            &[&source_table(spec), &targets],
        )
        .await
        .map_err(|e| Error::db("reading the publications of the source table", e))?;
    Ok(rows
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, Vec<String>>(1)))
        .filter(|(_, missing)| !missing.is_empty())
        .collect())
}

/// Where the source table has row-level security (its policies decide
/// which users a role sees): the target tables that have none (all of
/// them before `init` makes them). Empty when the source has none.
async fn targets_without_row_security(
    client: &impl tokio_postgres::GenericClient,
    spec: &Spec,
) -> Result<Vec<String>> {
    let targets: Vec<String> = target_tables(spec).collect();
    let rows = client
        .query(
            "SELECT x.t FROM unnest($2::text[]) WITH ORDINALITY AS x(t, i) \
              WHERE (SELECT relrowsecurity FROM pg_class WHERE oid = to_regclass($1)) \
                AND NOT coalesce((SELECT relrowsecurity FROM pg_class WHERE oid = to_regclass(x.t)), false) \
              ORDER BY x.i",
            &[&source_table(spec), &targets],
        )
        .await
        .map_err(|e| Error::db("reading the tables' row-level security", e))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The warning for [`targets_without_row_security`], when there are any.
fn row_security_warning(spec: &Spec, unguarded: &[String]) -> Option<String> {
    (!unguarded.is_empty()).then(|| {
        format!(
            "row-level security is on for the source table {src} (its policies decide which users \
             a role sees) but not for the target tables {t}: a role that may read them (`decant \
             grants` gives a backend SELECT) reads every migrated user's rows there, and the `_all` \
             views read every user's as their owner. Before users migrate, give the tables \
             policies on their user column that match the source's (`ALTER TABLE {first} ENABLE ROW \
             LEVEL SECURITY; CREATE POLICY ... ON {first} USING (...)`), and keep the views from \
             the roles the policies are for",
            src = source_table(spec),
            t = unguarded.join(", "),
            first = unguarded[0]
        )
    })
}

/// The warning for [`source_publications`], when there are any.
fn source_publications_warning(spec: &Spec, lacking: &[(String, Vec<String>)]) -> Option<String> {
    (!lacking.is_empty()).then(|| {
        let each: Vec<String> = lacking
            .iter()
            .map(|(p, missing)| {
                format!(
                    "{p} lacks {m} (`ALTER PUBLICATION {p} ADD TABLE {m}`)",
                    p = quote(p),
                    m = missing.join(", ")
                )
            })
            .collect();
        format!(
            "the source table {} is published without the target tables: {}. A subscriber (a \
             logical replica, a change-data-capture pipeline) receives a migrated user's {} \
             holding its residual alone, and none of the rows moved to the tables; add them to \
             the publication once `decant init` has made them (and make them on the \
             subscribers) before users migrate",
            source_table(spec),
            each.join("; "),
            quote(&spec.source.blob)
        )
    })
}

/// What `init`, `check` and `run` warn of about the source table: its
/// triggers that fire on decant's `UPDATE`s ([`source_triggers`]) and
/// rules that rewrite them (`source_rules`), its
/// indexes (`source_blob_indexes`), CHECK constraints
/// (`source_blob_checks`), generated columns (`source_blob_generated`)
/// and views (`source_blob_views`) that read the blob, publications that
/// carry it without the target tables (`source_publications`); and target
/// tables whose validation is not the spec's (`validation_drift`: a
/// spec edited since `init`; never after `init` itself, which applies it);
/// and target tables or columns the spec declares but no rule writes.
pub async fn source_warnings(
    client: &impl tokio_postgres::GenericClient,
    spec: &Spec,
) -> Result<Vec<String>> {
    let triggers = source_triggers(client, spec).await?;
    let rules = source_rules(client, spec).await?;
    let indexes = source_blob_indexes(client, spec).await?;
    let checks = source_blob_checks(client, spec).await?;
    let generated = source_blob_generated(client, spec).await?;
    let views = source_blob_views(client, spec).await?;
    let published = source_publications(client, spec).await?;
    let unguarded = targets_without_row_security(client, spec).await?;
    // a target table of another shape (one the team made, or made for
    // another spec): what `init` refuses, said before what its
    // constraints lack
    let shape = match check_targets(client, spec).await {
        Ok(()) => None,
        Err(Error::Setup(why)) => Some(format!("`decant init` refuses this spec here: {why}")),
        Err(e) => return Err(e),
    };
    let drift = match shape {
        Some(_) => Vec::new(),
        None => validation_drift(client, spec).await?,
    };
    let drift = (!drift.is_empty()).then(|| {
        format!(
            "the target tables' validation is not this spec's (`decant init` with it changes \
             them online; until then `decant run` refuses to start, and users would fail on \
             the tables' constraints where the spec allows their values):\n  - {}",
            drift.join("\n  - ")
        )
    });
    // a spec mistake rather than the database's, said where the spec's
    // other surprises are (check, init, run)
    let unwritten = spec.tables_without_rules();
    let unwritten = (!unwritten.is_empty()).then(|| {
        format!(
            "no rule writes rows into {}: declared in the spec, created by `decant init` and left \
             empty by every migration; give it a rule (`table = \"{}\"`) or remove it",
            unwritten
                .iter()
                .map(|t| format!("table `{t}`"))
                .collect::<Vec<_>>()
                .join(", "),
            unwritten[0]
        )
    });
    let unfilled = spec.columns_without_rules();
    let unfilled = (!unfilled.is_empty()).then(|| {
        format!(
            "no rule writes {}: declared in the spec, created by `decant init` and NULL in every \
             row; name it in a rule (`value`, `keys`, a `{{capture}}` or `constants`) or remove it",
            unfilled
                .iter()
                .map(|(t, c)| format!("column `{c}` of table `{t}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    });
    Ok(unwritten
        .into_iter()
        .chain(unfilled)
        .chain(source_triggers_warning(spec, &triggers))
        .chain(source_rules_warning(spec, &rules))
        .chain(source_blob_indexes_warning(spec, &indexes))
        .chain(source_blob_checks_warning(spec, &checks))
        .chain(source_blob_generated_warning(spec, &generated))
        .chain(source_blob_views_warning(spec, &views))
        .chain(source_publications_warning(spec, &published))
        .chain(row_security_warning(spec, &unguarded))
        .chain(shape)
        .chain(drift)
        .collect())
}

/// Refuses a session to which row-level security applies on the source
/// table or a target table: their policies would hide users (or their
/// rows) from it, silently, and `what` (the census, the daemon's claims,
/// the finalize gate, the counts) would pass over them: a daemon "done"
/// with legacy users left, a finalize passed with users never migrated.
/// A table's owner (unless it forces its policies), a superuser and a
/// BYPASSRLS role see every row.
pub(crate) async fn require_every_row(
    client: &impl tokio_postgres::GenericClient,
    spec: &Spec,
    what: &str,
) -> Result<()> {
    let tables: Vec<String> = std::iter::once(source_table(spec))
        .chain(target_tables(spec))
        .collect();
    let rows = client
        .query(
            "SELECT x.t, c.relforcerowsecurity, current_user::text \
               FROM unnest($1::text[]) WITH ORDINALITY AS x(t, i) \
               JOIN pg_class c ON c.oid = to_regclass(x.t) \
              WHERE row_security_active(c.oid) ORDER BY x.i",
            &[&tables],
        )
        .await
        .map_err(|e| Error::db("asking whether row-level security applies to this role", e))?;
    let Some(first) = rows.first() else {
        return Ok(());
    };
    let role = quote(&first.get::<_, String>(2));
    let on: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    let forced: Vec<&String> = rows
        .iter()
        .zip(&on)
        .filter(|(r, _)| r.get::<_, bool>(1))
        .map(|(_, t)| t)
        .collect();
    let forced = match forced.first() {
        Some(t) => format!(
            " ({t} forces its policies on its owner too: `ALTER TABLE {t} NO FORCE ROW LEVEL \
             SECURITY` while decant runs as its owner)"
        ),
        None => String::new(),
    };
    Err(Error::Setup(format!(
        "row-level security applies to role {role} on {}: its policies hide the users (or rows) \
         they do not let through, and {what} would pass over them without a word. Run decant's \
         commands as the tables' owner or as a role that bypasses row-level security (`ALTER \
         ROLE {role} BYPASSRLS`, by a superuser){forced}; backends may keep their policies (the \
         library and the SQL API read and write the users a role sees)",
        on.join(", ")
    )))
}

pub async fn check_source(client: &Client, spec: &Spec) -> Result<()> {
    let rows = client
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                    (SELECT format_type(t.typbasetype, t.typtypmod) FROM pg_type t
                      WHERE t.oid = a.atttypid AND t.typtype = 'd')
               FROM pg_attribute a
               JOIN pg_class c ON c.oid = a.attrelid
               JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped",
            &[&spec.source.schema, &spec.source.table],
        )
        .await
        .map_err(|e| Error::db("reading the source table's columns", e))?;
    if rows.is_empty() {
        // a name written in another case than PostgreSQL folded it to
        let near: Option<(String, String)> = client
            .query_opt(
                "SELECT n.nspname::text, c.relname::text FROM pg_class c \
                   JOIN pg_namespace n ON n.oid = c.relnamespace \
                  WHERE lower(n.nspname) = lower($1) AND lower(c.relname) = lower($2) \
                    AND c.relkind IN ('r', 'p') LIMIT 1",
                &[&spec.source.schema, &spec.source.table],
            )
            .await
            .map_err(|e| Error::db("looking for the source table", e))?
            .map(|r| (r.get(0), r.get(1)));
        let e = crate::pg::sql::no_source(spec);
        return Err(match near {
            Some((schema, table)) => Error::Setup(format!(
                "{e}; did you mean {}.{}? decant quotes names as the spec writes them \
                 (`schema = \"{schema}\"`, `table = \"{table}\"`)",
                quote(&schema),
                quote(&table)
            )),
            None => e,
        });
    }
    let kind: String = client
        .query_one(
            "SELECT c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
              WHERE n.nspname = $1 AND c.relname = $2",
            &[&spec.source.schema, &spec.source.table],
        )
        .await
        .map_err(|e| Error::db("reading the source table's kind", e))?
        .get(0);
    if kind != "r" && kind != "p" {
        let what = match kind.as_str() {
            "v" => "a view",
            "m" => "a materialized view",
            "f" => "a foreign table",
            _ => "no plain table",
        };
        return Err(Error::Setup(format!(
            "source table {} is {what}; decant migrates a plain table",
            source_table(spec)
        )));
    }
    // a table other tables inherit from: its scans read their rows too,
    // under ids its primary key does not keep unique across them (a
    // partitioned table's partitions are its rows, under its keys)
    let children: Option<String> = if kind == "p" {
        None
    } else {
        client
        .query_one(
            "SELECT string_agg(i.inhrelid::regclass::text, ', ' ORDER BY i.inhrelid::regclass::text) \
               FROM pg_inherits i WHERE i.inhparent = to_regclass($1)",
            &[&source_table(spec)],
        )
        .await
        .map_err(|e| Error::db("reading the source table's inheritance children", e))?
        .get(0)
    };
    if let Some(children) = children {
        return Err(Error::Setup(format!(
            "source table {} has tables inheriting from it ({children}): every query on it \
             reads their rows too, under ids its primary key does not keep unique across \
             them, so decant migrates a plain table without children: move their rows into \
             it and detach them (`ALTER TABLE <child> NO INHERIT <source>`), or drop them",
            source_table(spec)
        )));
    }
    // a column's catalog row: name, type, NOT NULL, a domain's base type
    let column = |name: &str| rows.iter().find(|r| r.get::<_, String>(0) == name);
    let type_of = |name: &str| column(name).map(|r| r.get::<_, String>(1));
    let want = |col: &str, ok: &[&str], what: &str| -> Result<()> {
        match type_of(col) {
            None => Err(Error::Setup(format!(
                "source table {} has no column \"{col}\" ({what})",
                source_table(spec)
            ))),
            Some(t) if !ok.contains(&t.as_str()) => Err(Error::Setup(format!(
                "source column \"{col}\" is {t}; decant needs {}",
                ok.join(" or ")
            ))),
            Some(_) => Ok(()),
        }
    };
    let id_type = spec.source.id_type;
    match type_of(&spec.source.id) {
        None => {
            return Err(Error::Setup(format!(
                "source table {} has no column \"{}\" (the user id)",
                source_table(spec),
                spec.source.id
            )));
        }
        Some(t) if IdType::of_column(&t) != Some(id_type) => {
            let fix = match IdType::of_column(&t) {
                Some(kind) => format!("set `id_type = \"{kind}\"` in [source] of the spec"),
                None => format!(
                    "decant takes user ids of type {} (declared by `id_type` in [source])",
                    IdType::NAMES
                ),
            };
            return Err(Error::Setup(format!(
                "source column \"{}\" is {t} but the spec's id type is {id_type}: {fix}",
                spec.source.id
            )));
        }
        Some(_) => {}
    }
    check_id_unique(client, spec).await?;
    // decant's state table keeps ids in the type init first gave them
    let state_ids = crate::pg::control::column_type(client, "decant.user_state", "user_id").await?;
    if let Some(t) = state_ids.filter(|t| IdType::of_column(t) != Some(id_type)) {
        if let Some(other) = crate::pg::identity::other_source(client, spec, false).await? {
            return Err(crate::pg::identity::one_source_per_database(&other, spec));
        }
        return Err(Error::Setup(format!(
            "decant.user_state keeps user ids as {t}, but the spec's id type is {id_type}: \
             the source's id column changed type after `decant init`; roll every user back, \
             drop schema decant and the target tables, and init again"
        )));
    }
    let blob_type = type_of(&spec.source.blob).unwrap_or_default();
    let text = blob_type == "text" || blob_type.starts_with("character varying");
    if blob_type == "json" || text {
        // the conversion PostgreSQL makes in place; what it loses
        // (duplicate keys, key order, spacing) decant could not give back
        let (src, blob) = (source_table(spec), quote(&spec.source.blob));
        return Err(Error::Setup(format!(
            "source column {blob} is {blob_type}; decant needs jsonb: `ALTER TABLE {src} ALTER \
             COLUMN {blob} TYPE jsonb USING {blob}::jsonb` converts it (rewriting the table under \
             an exclusive lock; jsonb keeps neither duplicate keys, nor key order, nor \
             spacing{})",
            if text {
                "; a row whose text is not JSON stops it, changing nothing"
            } else {
                ""
            }
        )));
    }
    let base_of = |name: &str| column(name).and_then(|r| r.get::<_, Option<String>>(3));
    if let (Some(domain), Some("jsonb")) = (
        type_of(&spec.source.blob),
        base_of(&spec.source.blob).as_deref(),
    ) {
        // decant binds and casts its blobs and residuals as jsonb, and a
        // residual may not meet the domain's CHECK
        let (src, blob) = (source_table(spec), quote(&spec.source.blob));
        return Err(Error::Setup(format!(
            "source column {blob} is {domain}, a domain over jsonb; decant needs the column \
             jsonb itself (a migrated user's blob holds only its residual, which the domain's \
             constraints may refuse): `ALTER TABLE {src} ALTER COLUMN {blob} TYPE jsonb` makes \
             it so without rewriting the table (a brief exclusive lock; the domain's constraints \
             leave with it)"
        )));
    }
    want(&spec.source.blob, &["jsonb"], "the blob")?;
    if type_of(&spec.source.flag).is_some() {
        want(&spec.source.flag, &["boolean"], "the migrated flag")?;
        let not_null = column(&spec.source.flag).is_some_and(|r| r.get::<_, bool>(2));
        if !not_null {
            // decant adds it NOT NULL DEFAULT false: this one is another's,
            // or left half made; a NULL flag is no state decant knows
            let (src, flag) = (source_table(spec), quote(&spec.source.flag));
            return Err(Error::Setup(format!(
                "source column {flag} exists and allows NULL; decant's flag is `boolean NOT NULL \
                 DEFAULT false`. If the column is your own, name another in the spec \
                 (`[source] flag = \"...\"`); if an earlier attempt left it, make it decant's \
                 (the UPDATE in batches on a large table; the CHECK validated without blocking \
                 writes lets SET NOT NULL skip its scan): \
                 `UPDATE {src} SET {flag} = false WHERE {flag} IS NULL; \
                 ALTER TABLE {src} ALTER COLUMN {flag} SET DEFAULT false; \
                 ALTER TABLE {src} ADD CONSTRAINT decant_flag_not_null CHECK ({flag} IS NOT NULL) NOT VALID; \
                 ALTER TABLE {src} VALIDATE CONSTRAINT decant_flag_not_null; \
                 ALTER TABLE {src} ALTER COLUMN {flag} SET NOT NULL; \
                 ALTER TABLE {src} DROP CONSTRAINT decant_flag_not_null`"
            )));
        }
        check_foreign_flag(client, spec).await?;
    }
    require_every_row(client, spec, "the census and `init`'s checks of the flag").await
}

/// A flag column that is set for some users where decant was never
/// initialized (no `decant` schema) is not decant's flag: decant would
/// take those users for migrated ones (no daemon would migrate them, the
/// census and `status` would count them, and their writes would be
/// exploded into the tables). The scan stops at the first users found;
/// it reads the whole table only when the column is set for no one, once,
/// before the first `init`.
async fn check_foreign_flag(client: &Client, spec: &Spec) -> Result<()> {
    if crate::pg::identity::initialized(client).await? {
        return Ok(());
    }
    let (src, flag) = (source_table(spec), quote(&spec.source.flag));
    let set: Vec<String> = client
        .query(
            &format!(
                "SELECT {}::text FROM {src} WHERE {flag} LIMIT 5",
                quote(&spec.source.id)
            ),
            &[],
        )
        .await
        .map_err(|e| Error::db(format!("reading the source column {flag}"), e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if set.is_empty() {
        return Ok(());
    }
    Err(Error::Setup(format!(
        "source column {flag} exists and is true for users (e.g. {}), but decant was never \
         initialized on this database (there is no `decant` schema): decant would take them for \
         migrated users and serve them from the empty target tables. If the column is your own, \
         name another in the spec (`[source] flag = \"decant_migrated\"`); if an earlier decant \
         left it and its `decant` schema was dropped since, restore that schema from a backup \
         rather than clearing the flag (a migrated user's blob holds only its residual, the rest \
         is in the target tables)",
        set.join(", ")
    )))
}

/// The id column names one row per user: NOT NULL and the whole key of
/// the primary key or of a unique index. Locks, claims and every call
/// find a user by it; a NULL id is no user, and a repeated one is two
/// users under one name.
async fn check_id_unique(client: &Client, spec: &Spec) -> Result<()> {
    let row = client
        .query_one(
            "SELECT a.attnotnull, EXISTS (SELECT 1 FROM pg_index i \
                     WHERE i.indrelid = c.oid AND i.indisunique AND i.indpred IS NULL \
                       AND i.indnkeyatts = 1 AND i.indkey[0] = a.attnum), \
                    c.relkind = 'p' \
               FROM pg_attribute a \
               JOIN pg_class c ON c.oid = a.attrelid \
               JOIN pg_namespace n ON n.oid = c.relnamespace \
              WHERE n.nspname = $1 AND c.relname = $2 AND a.attname = $3 AND NOT a.attisdropped",
            &[&spec.source.schema, &spec.source.table, &spec.source.id],
        )
        .await
        .map_err(|e| Error::db("reading the source table's keys", e))?;
    let (not_null, unique, partitioned): (bool, bool, bool) = (row.get(0), row.get(1), row.get(2));
    if not_null && unique {
        return Ok(());
    }
    let table = source_table(spec);
    let id = quote(&spec.source.id);
    let lacks = match (not_null, unique) {
        (false, false) => "may be NULL and is under no unique index",
        (false, true) => "may be NULL",
        _ => "is under no unique index (not the primary key)",
    };
    Err(Error::Setup(format!(
        "source column {id} of {table} {lacks}: decant finds each user by its id, \
         so it needs one row per id (the table's primary key, or NOT NULL with a unique index \
         on it alone); point `id` in [source] at such a column, or add the constraint \
         (`ALTER TABLE {table} ADD PRIMARY KEY ({id})`){}",
        if partitioned {
            // PostgreSQL keeps a partitioned table's keys unique only
            // when they hold its partition key
            format!(
                ", which on a partitioned table PostgreSQL allows only when the table is \
                 partitioned by the id alone (`PARTITION BY HASH ({id})` or by its range)"
            )
        } else {
            String::new()
        }
    )))
}

/// Applies [`statements`] idempotently after checking the source table,
/// and records the spec's mapping. A mapping that differs from the one
/// recorded while users are migrated with it is refused before anything
/// changes (see [`init_evolving`]).
pub async fn init(client: &Client, spec: &Spec) -> Result<()> {
    init_with(client, spec, false).await
}

/// [`init`] for an evolution: the spec may add tables and rules into them
/// to the recorded mapping (`decant run --evolve` then re-migrates the
/// migrated users with it).
pub async fn init_evolving(client: &Client, spec: &Spec) -> Result<()> {
    init_with(client, spec, true).await
}

async fn init_with(client: &Client, spec: &Spec, evolve: bool) -> Result<()> {
    check_source(client, spec).await?;
    // the recorded mapping first: with users migrated, a changed column
    // is said as a mapping that differs (roll the users back first), not
    // as a table of another shape
    crate::pg::identity::check_init(client, spec, evolve).await?;
    check_targets(client, spec).await?;
    check_patterns(client, spec).await?;
    check_owners(client, spec).await?;
    // finalized and the flag dropped (`decant finalize --drop-legacy`):
    // never added back
    let initialized = crate::pg::identity::initialized(client).await?;
    let finalized = initialized && crate::pg::control::read(client).await?.finalized;
    let flagless = finalized && !crate::pg::identity::flag_exists(client, spec).await?;
    // One transaction: a failure part-way (a permission, a lock timeout,
    // a statement the server refuses) leaves nothing behind, not a flag
    // column without its objects. Only the indexes built CONCURRENTLY
    // (so that live writes go on) cannot run inside one: they follow the
    // commit, each idempotent, and a build that failed before (left
    // INVALID, which IF NOT EXISTS would skip) is dropped and redone.
    // Every statement is idempotent: "already exists, skipping" notices on
    // a second run say nothing. Its locks are taken briefly, retried
    // behind the backend's transactions (`with_brief_locks`); a flag
    // column already there is not altered again (`ADD COLUMN IF NOT
    // EXISTS` would still lock the source table against every read).
    let has_flag = !flagless && crate::pg::identity::flag_exists(client, spec).await?;
    let add_flag = format!(
        "ALTER TABLE {} ADD COLUMN IF NOT EXISTS ",
        source_table(spec)
    );
    let (concurrent, plain): (Vec<String>, Vec<String>) = statements_for(spec, flagless)
        .into_iter()
        .filter(|s| !(has_flag && s.starts_with(&add_flag)))
        .partition(|s| s.starts_with("CREATE INDEX CONCURRENTLY"));
    let plain = &plain;
    with_brief_locks(client, spec, "init", &touched_relations(spec), move || {
        Box::pin(async move {
            for stmt in plain {
                client.batch_execute(stmt).await.map_err(|e| {
                    unmet_check(spec, stmt, &e)
                        .unwrap_or_else(|| Error::db(format!("init: {}", first_line(stmt)), e))
                })?;
            }
            crate::pg::identity::record(client, spec).await
        })
    })
    .await?;
    // (one statement per call: several in one would make a transaction)
    let quiet = |on: bool| async move {
        let _ = client
            .batch_execute(if on {
                "SET client_min_messages = warning"
            } else {
                "RESET client_min_messages"
            })
            .await;
    };
    quiet(true).await;
    // An index built CONCURRENTLY blocks no one, however long it takes (a
    // ranked statistic's on millions of blobs takes minutes): the server's
    // statement_timeout (a role's or a database's, there to stop runaway
    // queries) would only cancel it, half built, and PostgreSQL 17's
    // transaction_timeout would end the session with it. Off for these
    // builds alone, then back to what the session had.
    let timeouts: Vec<(String, String)> = client
        .query(
            "SELECT name, current_setting(name) FROM pg_settings \
              WHERE name IN ('statement_timeout', 'transaction_timeout') ORDER BY name",
            &[],
        )
        .await
        .map_err(|e| Error::db("init: reading the session's timeouts", e))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let set_timeouts = |values: Vec<(String, String)>| async move {
        for (name, value) in values {
            client
                .execute("SELECT set_config($1, $2, false)", &[&name, &value])
                .await
                .map_err(|e| Error::db(format!("init: setting {name}"), e))?;
        }
        Ok::<(), Error>(())
    };
    set_timeouts(
        timeouts
            .iter()
            .map(|(name, _)| (name.clone(), "0".to_string()))
            .collect(),
    )
    .await?;
    let built = build_concurrently(client, spec, &concurrent).await;
    set_timeouts(timeouts).await?;
    quiet(false).await;
    built?;
    tracing::info!(source = %source_table(spec), tables = spec.tables.len(), "schema initialized");
    Ok(())
}

/// Builds `init`'s CONCURRENTLY indexes one by one, each idempotent, and
/// marks each with its definition's fingerprint (a comment), so that a
/// spec that changes one (a ranked statistic's `where` or
/// `index_fail_test`) has it rebuilt: `IF NOT EXISTS` would keep the old
/// one under its name.
async fn build_concurrently(client: &Client, spec: &Spec, concurrent: &[String]) -> Result<()> {
    let parts = partitions(client, spec).await?;
    let on_source = format!(" ON {} ", source_table(spec));
    for stmt in concurrent {
        if !parts.is_empty() && stmt.contains(&on_source) {
            build_on_partitions(client, spec, stmt, &parts).await?;
        } else {
            build_one(client, spec, stmt).await?;
        }
    }
    Ok(())
}

/// One `CREATE INDEX CONCURRENTLY IF NOT EXISTS` on a plain table (see
/// [`build_concurrently`]).
async fn build_one(client: &Client, spec: &Spec, stmt: &str) -> Result<()> {
    {
        let mark = stale_index(client, spec, stmt).await?;
        client
            .batch_execute(stmt)
            .await
            .map_err(|e| Error::db(format!("init: {}", first_line(stmt)), e))?;
        if let Some((qualified, mark)) = mark {
            client
                .batch_execute(&format!("COMMENT ON INDEX {qualified} IS {}", lit(&mark)))
                .await
                .map_err(|e| Error::db(format!("init: marking the index {qualified}"), e))?;
        }
    }
    Ok(())
}

/// A relation of a partitioned source table's partition tree, below its
/// root.
struct Partition {
    /// `"schema"."name"`.
    table: String,
    /// Its schema, unquoted.
    schema: String,
    /// Its name, unquoted.
    name: String,
    /// Its parent's `"schema"."name"`.
    parent: String,
    /// A table holding rows (not itself partitioned).
    leaf: bool,
}

/// The partitions of the source table, every level, parents before
/// children; none for a plain table. A foreign table among them is
/// refused: it can hold no index.
async fn partitions(client: &Client, spec: &Spec) -> Result<Vec<Partition>> {
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text, pn.nspname::text, p.relname::text, \
                    t.isleaf, c.relkind::text \
               FROM pg_partition_tree(to_regclass($1)) AS t \
               JOIN pg_class c ON c.oid = t.relid \
               JOIN pg_namespace n ON n.oid = c.relnamespace \
               JOIN pg_class p ON p.oid = t.parentrelid \
               JOIN pg_namespace pn ON pn.oid = p.relnamespace \
              WHERE t.level > 0 \
              ORDER BY t.level, n.nspname, c.relname",
            &[&source_table(spec)],
        )
        .await
        .map_err(|e| Error::db("init: reading the source table's partitions", e))?;
    let parts: Vec<Partition> = rows
        .iter()
        .map(|r| {
            let (schema, name): (String, String) = (r.get(0), r.get(1));
            Partition {
                table: format!("{}.{}", quote(&schema), quote(&name)),
                parent: format!(
                    "{}.{}",
                    quote(&r.get::<_, String>(2)),
                    quote(&r.get::<_, String>(3))
                ),
                leaf: r.get(4),
                schema,
                name,
            }
        })
        .collect();
    let foreign: Vec<&str> = rows
        .iter()
        .zip(&parts)
        .filter(|(r, _)| r.get::<_, String>(5) == "f")
        .map(|(_, p)| p.table.as_str())
        .collect();
    if !foreign.is_empty() {
        return Err(Error::Setup(format!(
            "source table {} has foreign tables among its partitions ({}): decant indexes \
             the legacy users of every partition, and a foreign table can hold no index; \
             move their rows into local partitions, or detach them",
            source_table(spec),
            foreign.join(", ")
        )));
    }
    Ok(parts)
}

/// Runs `stmts` (of `init`, on `table`) in one transaction whose lock
/// waits are brief ([`with_brief_locks`]).
async fn briefly(client: &Client, spec: &Spec, table: &str, stmts: Vec<String>) -> Result<()> {
    with_brief_locks(client, spec, "init", &[table.to_string()], || {
        let stmts = stmts.clone();
        Box::pin(async move {
            for stmt in &stmts {
                client
                    .batch_execute(stmt)
                    .await
                    .map_err(|e| Error::db(format!("init: {}", first_line(stmt)), e))?;
            }
            Ok(())
        })
    })
    .await
}

/// Builds an index of `init`'s (`CREATE INDEX CONCURRENTLY IF NOT EXISTS
/// name ON source ...`) on a partitioned source table, online, the way
/// PostgreSQL's manual gives for one (which CONCURRENTLY cannot do at
/// once): the index made `ON ONLY` each partitioned table (empty and
/// invalid; a brief lock), then each leaf partition's built
/// CONCURRENTLY and attached to its parent's, which PostgreSQL marks
/// valid once every partition's is. A partition that already has its
/// index attached (one made since, which PostgreSQL builds itself) is
/// left; a build interrupted part-way is taken up where it stopped. An
/// index built from another definition is dropped first, with a brief
/// lock (a partitioned index cannot be dropped CONCURRENTLY).
async fn build_on_partitions(
    client: &Client,
    spec: &Spec,
    stmt: &str,
    parts: &[Partition],
) -> Result<()> {
    const PREFIX: &str = "CREATE INDEX CONCURRENTLY IF NOT EXISTS ";
    let src = source_table(spec);
    let on = format!(" ON {src} ");
    let (Some(rest), Some(at)) = (stmt.strip_prefix(PREFIX), stmt.find(&on)) else {
        return build_one(client, spec, stmt).await;
    };
    let quoted_name = &rest[..rest.find(&on).unwrap_or(0)];
    let tail = &stmt[at + on.len()..];
    let name = quoted_name.trim_matches('"').replace("\"\"", "\"");
    let root = format!("{}.{quoted_name}", quote(&spec.source.schema));
    let mark = format!(
        "decant index {:08x}",
        crate::pg::sql::stable_hash(stmt.bytes())
    );
    // decant's name for a partition's index: `<index>_<partition>`
    let own_index = |p: &Partition| {
        let short = index_name(&format!("{name}_{}", p.name));
        (format!("{}.{short}", quote(&p.schema)), short)
    };
    let found = client
        .query_opt(
            "SELECT i.indisvalid, obj_description(i.indexrelid, 'pg_class') \
               FROM pg_index i WHERE i.indexrelid = to_regclass($1)",
            &[&root],
        )
        .await
        .map_err(|e| Error::db("init: looking for an index", e))?;
    if let Some(found) = &found {
        let (valid, comment): (bool, Option<String>) = (found.get(0), found.get(1));
        match comment.as_deref() {
            Some(c) if c == mark && valid => return Ok(()),
            Some(c) if c.starts_with("decant index ") && c != mark => {
                tracing::warn!(
                    index = %root,
                    "the spec defines this index otherwise now; rebuilding it (online, but for \
                     a brief lock to drop it)"
                );
                briefly(
                    client,
                    spec,
                    &src,
                    vec![format!("DROP INDEX IF EXISTS {root}")],
                )
                .await?;
            }
            _ => {}
        }
    }
    // the index attached to `index` for the partition `table`, if any
    let attached = async |index: &str, table: &str| -> Result<Option<String>> {
        client
            .query_opt(
                "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_inherits h \
                   JOIN pg_index x ON x.indexrelid = h.inhrelid \
                   JOIN pg_class c ON c.oid = h.inhrelid \
                   JOIN pg_namespace n ON n.oid = c.relnamespace \
                  WHERE h.inhparent = to_regclass($1) AND x.indrelid = to_regclass($2)",
                &[&index, &table],
            )
            .await
            .map(|r| r.map(|r| r.get(0)))
            .map_err(|e| Error::db("init: reading the partitions' indexes", e))
    };
    // each partitioned partition's index (qualified): decant's, or one
    // attached before in its place (PostgreSQL makes one for a partition
    // created or attached once its parent's index exists)
    let mut index_of: std::collections::HashMap<&str, String> = std::collections::HashMap::new();
    let parent_index = |index_of: &std::collections::HashMap<&str, String>, p: &Partition| {
        index_of
            .get(p.parent.as_str())
            .cloned()
            .unwrap_or_else(|| root.clone())
    };
    // the partitioned tables' indexes, empty, each attached to its
    // parent's: one brief transaction
    let mut stmts = vec![format!(
        "CREATE INDEX IF NOT EXISTS {quoted_name} ON ONLY {src} {tail}"
    )];
    for p in parts.iter().filter(|p| !p.leaf) {
        let parent = parent_index(&index_of, p);
        if let Some(there) = attached(&parent, &p.table).await? {
            index_of.insert(&p.table, there);
            continue;
        }
        let (qualified, short) = own_index(p);
        stmts.push(format!(
            "CREATE INDEX IF NOT EXISTS {short} ON ONLY {} {tail}",
            p.table
        ));
        stmts.push(format!("ALTER INDEX {parent} ATTACH PARTITION {qualified}"));
        index_of.insert(&p.table, qualified);
    }
    briefly(client, spec, &src, stmts).await?;
    // each leaf's built CONCURRENTLY, then attached (a brief lock)
    for p in parts.iter().filter(|p| p.leaf) {
        let parent = parent_index(&index_of, p);
        if attached(&parent, &p.table).await?.is_some() {
            continue;
        }
        let (qualified, short) = own_index(p);
        build_one(
            client,
            spec,
            &format!("{PREFIX}{short} ON {} {tail}", p.table),
        )
        .await?;
        let attach = format!("ALTER INDEX {parent} ATTACH PARTITION {qualified}");
        briefly(client, spec, &p.table, vec![attach]).await?;
    }
    let valid: bool = client
        .query_one(
            "SELECT coalesce((SELECT indisvalid FROM pg_index \
                               WHERE indexrelid = to_regclass($1)), false)",
            &[&root],
        )
        .await
        .map_err(|e| Error::db("init: looking for an index", e))?
        .get(0);
    if !valid {
        return Err(Error::Setup(format!(
            "init: the index {root} on the partitioned source table {src} is not valid after \
             every partition's index was attached to it; `\\d+ {src}` in psql lists its \
             partitions: run `decant init` again"
        )));
    }
    client
        .batch_execute(&format!("COMMENT ON INDEX {root} IS {}", lit(&mark)))
        .await
        .map_err(|e| Error::db(format!("init: marking the index {root}"), e))
}

/// The tables and views `init` and `finalize` alter or replace: the
/// source table, the target tables and their views.
pub(crate) fn touched_relations(spec: &Spec) -> Vec<String> {
    std::iter::once(source_table(spec))
        .chain(target_tables(spec))
        .chain((0..spec.tables.len()).map(|ti| views::view_name(spec, ti)))
        .collect()
}

/// How long one try of [`with_brief_locks`] waits for a lock: a quarter
/// of the backend's `lock_timeout_ms`, at most 500 ms. A schema change
/// waiting for its lock queues every later statement on the table behind
/// it, the backend's calls included; those wait at most their
/// `lock_timeout_ms` and fail, so the change must give up well before.
pub(crate) fn ddl_lock_wait_ms(spec: &Spec) -> u64 {
    (spec.settings.lock_timeout_ms / 4).clamp(10, 500)
}

/// Runs `body` in a transaction whose every lock wait is brief (see
/// [`ddl_lock_wait_ms`]): when a lock is not granted in time, the
/// transaction rolls back (leaving nothing), the sessions holding
/// `relations` are logged, and it is tried again after a pause, for up to
/// the spec's `ddl_retry_s`; then the error names them and what to do.
/// `what` names the operation in messages.
pub(crate) async fn with_brief_locks<'s, T>(
    client: &'s Client,
    spec: &Spec,
    what: &str,
    relations: &[String],
    body: impl Fn() -> BoxFuture<'s, Result<T>>,
) -> Result<T> {
    let wait_ms = ddl_lock_wait_ms(spec);
    let limit = std::time::Duration::from_secs(spec.settings.ddl_retry_s);
    let started = std::time::Instant::now();
    let mut pause = std::time::Duration::from_millis(200);
    let mut tries = 0u32;
    loop {
        tries += 1;
        client
            .batch_execute(&format!(
                "BEGIN; SET LOCAL client_min_messages = warning; SET LOCAL lock_timeout = {wait_ms}"
            ))
            .await
            .map_err(|e| Error::db(format!("{what}: beginning its transaction"), e))?;
        let done = match body().await {
            Ok(v) => client
                .batch_execute("COMMIT")
                .await
                .map(|()| v)
                .map_err(|e| Error::db(format!("{what}: committing"), e)),
            Err(e) => {
                let _ = client.batch_execute("ROLLBACK").await;
                Err(e)
            }
        };
        match done {
            Err(e) if e.sqlstate() == Some("55P03") => {
                let holders = lock_holders(client, relations).await;
                let waited = started.elapsed();
                if waited + pause > limit {
                    return Err(Error::Setup(format!(
                        "{what}: could not take its brief locks on {} in {tries} tries over \
                         {:.0} s (each waits at most {wait_ms} ms, so that the backend's calls \
                         queued behind it do not time out); nothing was changed. {}; end those \
                         transactions or wait for a quieter moment, then run it again (the \
                         spec's `ddl_retry_s` sets how long it keeps trying)",
                        relations.join(", "),
                        waited.as_secs_f64(),
                        holders_text(&holders),
                    )));
                }
                tracing::warn!(
                    tries,
                    holders = %holders_text(&holders),
                    "{what}: a lock was not granted within {wait_ms} ms; nothing changed, \
                     trying again in {:.1} s",
                    pause.as_secs_f64()
                );
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_secs(5));
            }
            other => return other,
        }
    }
}

/// A boxed future that may move between threads (an `async` closure's
/// would make the callers' futures lose `Send`).
pub(crate) type BoxFuture<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// A session holding a lock on a relation: pid, state, seconds in its
/// transaction, the start of its query.
type Holder = (i32, String, f64, String);

/// The other sessions holding a lock on one of `relations` (names that do
/// not exist are skipped); empty when they cannot be read.
async fn lock_holders(client: &Client, relations: &[String]) -> Vec<Holder> {
    client
        .query(
            "SELECT DISTINCT a.pid, coalesce(a.state, ''), \
                    coalesce(extract(epoch FROM now() - a.xact_start)::float8, 0), \
                    left(coalesce(a.query, ''), 80) \
               FROM pg_locks AS l JOIN pg_stat_activity AS a ON a.pid = l.pid \
              WHERE l.granted AND l.pid <> pg_backend_pid() \
                AND l.relation IN (SELECT to_regclass(r) FROM unnest($1::text[]) AS r) \
              ORDER BY 3 DESC, 1 LIMIT 5",
            &[&relations],
        )
        .await
        .map(|rows| {
            rows.iter()
                .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
                .collect()
        })
        .unwrap_or_default()
}

fn holders_text(holders: &[Holder]) -> String {
    if holders.is_empty() {
        return "the sessions holding them had ended by the time they were looked for".into();
    }
    let each: Vec<String> = holders
        .iter()
        .map(|(pid, state, secs, query)| {
            let query = query.split_whitespace().collect::<Vec<_>>().join(" ");
            format!("pid {pid} ({state}, its transaction open {secs:.0} s: `{query}`)")
        })
        .collect();
    format!("held by {}", each.join(", "))
}

/// For a `CREATE INDEX CONCURRENTLY IF NOT EXISTS name ON table ...`
/// statement: drops the index it names when a failed earlier build left
/// it INVALID, or when it was built from another definition (its comment
/// holds another fingerprint; one built before the fingerprints, unmarked,
/// is taken as it is unless its predicate disagrees with the statement on
/// the fail test); then the index's name and the fingerprint it should
/// carry, when it does not carry it yet.
async fn stale_index(client: &Client, spec: &Spec, stmt: &str) -> Result<Option<(String, String)>> {
    let Some(name) = stmt
        .strip_prefix("CREATE INDEX CONCURRENTLY IF NOT EXISTS ")
        .and_then(|rest| rest.split(" ON ").next())
    else {
        return Ok(None);
    };
    let schema = stmt
        .split(" ON ")
        .nth(1)
        .and_then(|t| t.split_once("\".\""))
        .map(|(schema, _)| format!("{schema}\""))
        .unwrap_or_else(|| "public".into());
    let qualified = format!("{schema}.{name}");
    let mark = format!(
        "decant index {:08x}",
        crate::pg::sql::stable_hash(stmt.bytes())
    );
    let found = client
        .query_opt(
            "SELECT i.indisvalid, obj_description(i.indexrelid, 'pg_class'), \
                    pg_get_indexdef(i.indexrelid) \
               FROM pg_index i WHERE i.indexrelid = to_regclass($1)",
            &[&qualified],
        )
        .await
        .map_err(|e| Error::db("init: looking for an index", e))?;
    let Some(found) = found else {
        return Ok(Some((qualified, mark)));
    };
    let (valid, comment, def): (bool, Option<String>, String) =
        (found.get(0), found.get(1), found.get(2));
    let fails = crate::pg::views::fails_base(spec);
    let why = if !valid {
        Some("an earlier build left this index invalid")
    } else {
        match comment.as_deref() {
            Some(c) if c.starts_with("decant index ") && c != mark => {
                Some("the spec defines this index otherwise now")
            }
            None if def.contains(&fails) != stmt.contains(&fails) => {
                Some("the spec's `index_fail_test` for this index changed")
            }
            _ => None,
        }
    };
    if let Some(why) = why {
        tracing::warn!(index = %qualified, "{why}; rebuilding it (online)");
        client
            .batch_execute(&format!("DROP INDEX CONCURRENTLY IF EXISTS {qualified}"))
            .await
            .map_err(|e| Error::db(format!("init: dropping the index {qualified}"), e))?;
        return Ok(Some((qualified, mark)));
    }
    Ok((comment.as_deref() != Some(mark.as_str())).then_some((qualified, mark)))
}

fn first_line(s: &str) -> &str {
    // a DO block is named by the statement it runs
    if s.starts_with("DO ") {
        if let Some(l) = s.lines().find(|l| l.contains("ALTER TABLE")) {
            return l.trim();
        }
    }
    s.lines()
        .find(|l| !l.trim().is_empty() && !l.starts_with("--"))
        .unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_check_constraint_keeps_the_name_earlier_versions_gave_it() {
        let spec = Spec::parse(
            "[source]\ntable = \"u\"\n\n\
             [tables.t.columns]\nsku = { type = \"text\", pattern = '^a\\.b$', values = [\"a.b\", \"x$$y\"] }\n\
             n = \"int4\"\n\n\
             [[rules]]\nname = \"r\"\npath = \"r.{sku}\"\ntable = \"t\"\nvalue = \"n\"\n",
        )
        .unwrap();
        let c = spec.tables[0]
            .columns
            .iter()
            .find(|c| c.name == "sku")
            .unwrap();
        // written safely now, named as before
        let now = check_expression(c).unwrap();
        assert!(
            now.contains(r"E'^a\\.b\x24'") && now.contains(r"E'x\x24\x24y'"),
            "{now}"
        );
        let before = r#""sku" IN ('a.b', 'x$$y') AND "sku" ~ '^a\.b$'"#;
        let name = owned_name("sku", before);
        let ddl = protection(&spec, 0).join("\n");
        assert!(
            ddl.contains(&format!("ADD CONSTRAINT {} CHECK ({now})", quote(&name))),
            "{ddl}"
        );
    }
}
