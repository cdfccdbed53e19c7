//! Reading and writing a user's rows in the target tables and the blob in
//! the source table. SQL is generated once per spec; values always travel
//! as bind parameters (arrays through `unnest`, one statement per table for
//! any number of users); identifiers are validated and quoted.

use crate::error::{Error, Result};
use crate::explode::Row;
use crate::schema::{source_table, target_table};
use crate::spec::{Spec, quote};
use crate::value::{ColumnType, ColumnValue};
use deadpool_postgres::Transaction;
use futures_util::SinkExt;
use futures_util::future::try_join_all;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_postgres::types::{IsNull, ToSql, Type};

type Param<'a> = Box<dyn ToSql + Sync + Send + 'a>;

/// A spec with the SQL generated from it.
#[derive(Debug)]
pub(crate) struct Store {
    pub spec: Arc<Spec>,
    pub lock_wait: String,
    pub lock_skip: String,
    /// Claims the next legacy users after a cursor (daemon).
    pub claim: String,
    /// As `claim`, only users in the rollout.
    pub claim_rollout: String,
    /// Of claimed users, those a peer failed since the claim's snapshot
    /// (the failure is recorded in another table, so the row lock's
    /// re-check cannot see it; a fresh statement can).
    pub recheck: String,
    /// Counts the legacy users a claim could still take.
    pub claimable: String,
    /// Whether a user exists (to tell "not found" from "nothing to do").
    pub exists: String,
    /// Blobs and flags of many users, without locking (snapshot reads).
    pub snapshot: String,
    /// Locks one user for a backend call and says whether it is a legacy
    /// user in the rollout (to migrate on demand first).
    pub lock_call: String,
    pub write_blobs: String,
    pub state_migrated: String,
    pub state_failed: String,
    pub state_legacy: String,
    /// Whether the target tables store exactly what is sent (see
    /// `tables_are_plain`), and its parameters: tables, columns, types.
    plain_check: String,
    plain_params: (Vec<String>, Vec<String>, Vec<String>),
    tables: Vec<TableSql>,
}

#[derive(Debug)]
struct TableSql {
    /// `COPY ... FROM STDIN (FORMAT binary)` of the user column and every
    /// spec column, for plain tables.
    copy: String,
    insert: String,
    insert_returning: String,
    upsert: String,
    select: String,
    delete_users: String,
    delete_keys: Option<String>,
}

#[derive(Clone, Copy)]
enum Write {
    Insert,
    InsertReturning,
    Upsert,
}

/// A locked source row.
#[derive(Debug)]
pub(crate) struct Locked {
    pub id: i64,
    pub blob: Blob,
    pub migrated: bool,
}

/// A blob as the database sent it: jsonb's text, parsed only when needed,
/// either borrowed ([`Blob::parse`], what migration explodes) or owned
/// ([`Blob::value`]). A NULL blob reads as JSON `null`.
#[derive(Debug, Clone)]
pub(crate) struct Blob(String);

impl Blob {
    /// The blob as a tree borrowing from its text.
    pub fn parse(&self, user: i64) -> Result<crate::json::Json<'_>> {
        crate::json::parse(&self.0).map_err(|e| not_json(user, e))
    }

    /// The blob as an owned value.
    pub fn value(&self, user: i64) -> Result<Value> {
        serde_json::from_str(&self.0).map_err(|e| not_json(user, e))
    }
}

fn not_json(user: i64, e: impl std::fmt::Display) -> Error {
    Error::Verification {
        user,
        detail: format!("the blob the database sent is not JSON ({e})"),
    }
}

impl<'a> tokio_postgres::types::FromSql<'a> for Blob {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let text = if *ty == Type::JSONB {
            match raw.split_first() {
                Some((1, text)) => text,
                _ => return Err("unsupported jsonb binary format version".into()),
            }
        } else {
            raw
        };
        Ok(Blob(std::str::from_utf8(text)?.to_owned()))
    }

    fn from_sql_null(
        _: &Type,
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Blob("null".into()))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB || *ty == Type::JSON
    }
}

impl Store {
    pub fn new(spec: Arc<Spec>) -> Store {
        let s = &spec.source;
        let src = source_table(&spec);
        let (id, blob, flag) = (quote(&s.id), quote(&s.blob), quote(&s.flag));
        let lock = format!(
            "SELECT {id}::bigint, {blob}, {flag} FROM {src} WHERE {id} = ANY($1::bigint[]) \
             ORDER BY {id} FOR NO KEY UPDATE"
        );
        let tables = (0..spec.tables.len())
            .map(|ti| table_sql(&spec, ti))
            .collect();
        // Legacy users not failed too often nor already failed in this run
        // ($2 = max attempts, $3 = run start), from the partial index. The
        // state rows are bounded by the cursor too: without it the anti
        // join reads every state row behind the cursor (all the users
        // migrated so far) on every claim, 30 ms per claim at 150,000.
        let claimable_where = format!(
            "NOT s.{flag} AND s.{id} > $1 AND NOT EXISTS (SELECT 1 FROM decant.user_state st \
               WHERE st.user_id = s.{id} AND st.user_id > $1 AND st.state = 'failed' \
                 AND (st.attempts >= $2 OR st.updated_at >= $3))"
        );
        let claim = |extra: &str| {
            format!(
                "SELECT s.{id}::bigint, s.{blob}, s.{flag} FROM {src} AS s WHERE {claimable_where}{extra} \
                 ORDER BY s.{id} LIMIT $4 FOR NO KEY UPDATE OF s SKIP LOCKED"
            )
        };
        let mut plain_params = (Vec::new(), Vec::new(), Vec::new());
        for (ti, t) in spec.tables.iter().enumerate() {
            let name = crate::schema::target_table(&spec, ti);
            let cols = std::iter::once((t.user_column.as_str(), "bigint"))
                .chain(t.columns.iter().map(|c| (c.name.as_str(), c.ty.sql())));
            for (col, ty) in cols {
                plain_params.0.push(name.clone());
                plain_params.1.push(col.to_string());
                plain_params.2.push(ty.to_string());
            }
        }
        Store {
            plain_check: "SELECT NOT EXISTS (SELECT 1 FROM pg_trigger \
                   WHERE tgrelid = ANY($1::text[]::regclass[]) AND NOT tgisinternal) \
               AND NOT EXISTS (SELECT 1 FROM pg_rewrite WHERE ev_class = ANY($1::text[]::regclass[])) \
               AND NOT EXISTS (SELECT 1 FROM pg_class \
                   WHERE oid = ANY($1::text[]::regclass[]) AND relkind <> 'r') \
               AND (SELECT count(*) FROM unnest($1::text[]::regclass[], $2::text[], $3::text[]) AS e(t, col, ty) \
                      JOIN pg_attribute a ON a.attrelid = e.t AND a.attname = e.col AND NOT a.attisdropped \
                     WHERE format_type(a.atttypid, a.atttypmod) = e.ty) = cardinality($2::text[])"
                .into(),
            plain_params,
            exists: format!("SELECT EXISTS (SELECT 1 FROM {src} WHERE {id} = $1)"),
            snapshot: format!(
                "SELECT {id}::bigint, {blob}, {flag} FROM {src} WHERE {id} = ANY($1::bigint[]) ORDER BY {id}"
            ),
            recheck: "SELECT user_id FROM decant.user_state WHERE user_id = ANY($1::bigint[]) \
                 AND state = 'failed' AND (attempts >= $2 OR updated_at >= $3)"
                .into(),
            claim: claim(""),
            claim_rollout: claim(&format!(" AND decant.in_rollout(s.{id})")),
            claimable: format!(
                "SELECT count(*) FROM {src} AS s WHERE {claimable_where} \
                 AND ($4 = false OR decant.in_rollout(s.{id}))"
            ),
            lock_call: format!(
                "SELECT {id}::bigint, {blob}, {flag}, NOT {flag} AND decant.in_rollout({id}) \
                   AND NOT EXISTS (SELECT 1 FROM decant.user_state st WHERE st.user_id = {id} \
                                    AND st.state = 'failed' AND st.attempts >= $2) \
                 FROM {src} WHERE {id} = $1 FOR NO KEY UPDATE"
            ),
            lock_skip: format!("{lock} SKIP LOCKED"),
            lock_wait: lock,
            write_blobs: format!(
                "UPDATE {src} AS s SET {blob} = v.blob, {flag} = v.migrated \
                 FROM unnest($1::bigint[], $2::jsonb[], $3::bool[]) AS v(id, blob, migrated) \
                 WHERE s.{id} = v.id"
            ),
            state_migrated: "INSERT INTO decant.user_state AS s \
                    (user_id, state, attempts, warnings, migrated_at, updated_at) \
                 SELECT u, 'migrated', 0, w, now(), now() FROM unnest($1::bigint[], $2::jsonb[]) AS v(u, w) \
                 ON CONFLICT (user_id) DO UPDATE SET state = 'migrated', warnings = EXCLUDED.warnings, \
                    reason = NULL, last_error = NULL, migrated_at = now(), updated_at = now()"
                .into(),
            state_failed: "INSERT INTO decant.user_state AS s \
                    (user_id, state, attempts, reason, last_error, updated_at) \
                 SELECT u, 'failed', 1, r, e, now() FROM unnest($1::bigint[], $2::text[], $3::text[]) AS v(u, r, e) \
                 ON CONFLICT (user_id) DO UPDATE SET state = 'failed', attempts = s.attempts + 1, \
                    reason = EXCLUDED.reason, last_error = EXCLUDED.last_error, updated_at = now()"
                .into(),
            state_legacy: "INSERT INTO decant.user_state AS s (user_id, state, updated_at) \
                 SELECT u, 'legacy', now() FROM unnest($1::bigint[]) AS u \
                 ON CONFLICT (user_id) DO UPDATE SET state = 'legacy', migrated_at = NULL, \
                    warnings = NULL, updated_at = now()"
                .into(),
            spec,
            tables,
        }
    }

    /// Locks the source rows of `ids` (in id order, so concurrent lockers
    /// cannot deadlock); with `skip`, rows locked elsewhere are left out.
    pub async fn lock(&self, tx: &Transaction<'_>, ids: &[i64], skip: bool) -> Result<Vec<Locked>> {
        let sql = if skip {
            &self.lock_skip
        } else {
            &self.lock_wait
        };
        let stmt = tx
            .prepare_cached(sql)
            .await
            .map_err(|e| Error::db("preparing the lock query", e))?;
        let rows = tx.query(&stmt, &[&ids]).await.map_err(|e| match ids {
            [one] => Error::db_user(*one, "locking the source row", e),
            _ => Error::db("locking source rows", e),
        })?;
        Ok(rows
            .iter()
            .map(|r| Locked {
                id: r.get(0),
                blob: r.get(1),
                migrated: r.get(2),
            })
            .collect())
    }

    /// Writes blobs and flags: `(id, blob, migrated)`.
    pub async fn write_blobs(
        &self,
        tx: &Transaction<'_>,
        items: &[(i64, &Value, bool)],
    ) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = items.iter().map(|i| i.0).collect();
        let blobs: Vec<&Value> = items.iter().map(|i| i.1).collect();
        let flags: Vec<bool> = items.iter().map(|i| i.2).collect();
        self.exec(
            tx,
            &self.write_blobs,
            &[&ids, &blobs, &flags],
            "writing blobs",
        )
        .await
        .map(drop)
    }

    async fn exec(
        &self,
        tx: &Transaction<'_>,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        what: &str,
    ) -> Result<u64> {
        let stmt = tx
            .prepare_cached(sql)
            .await
            .map_err(|e| Error::db(format!("preparing: {what}"), e))?;
        tx.execute(&stmt, params)
            .await
            .map_err(|e| Error::db(what.to_string(), e))
    }

    /// Whether the target tables store exactly what is sent: plain tables
    /// (not partitioned, not views), no user trigger, no rule, and every
    /// column of exactly the type the spec names (no typmod, no domain).
    /// Read in the caller's transaction.
    async fn tables_are_plain(&self, tx: &Transaction<'_>) -> Result<bool> {
        let stmt = tx
            .prepare_cached(&self.plain_check)
            .await
            .map_err(|e| Error::db("preparing the target tables' check", e))?;
        let (tables, columns, types) = &self.plain_params;
        tx.query_one(&stmt, &[tables, columns, types])
            .await
            .map(|r| r.get(0))
            .map_err(|e| Error::db("checking the target tables in the catalog", e))
    }

    /// Inserts the rows of a batch (each with its user) and says which
    /// users' rows the database did not store exactly as sent, with what
    /// it stored for them.
    ///
    /// When the target tables are plain (see `tables_are_plain`, checked
    /// before the insert and again after it, when the insert's locks keep
    /// any new trigger or rule out until commit), PostgreSQL stores exactly
    /// the values sent, and the insert returns nothing; otherwise
    /// `INSERT ... RETURNING` says what was stored and it is compared.
    pub async fn insert_rows(
        &self,
        tx: &Transaction<'_>,
        rows: &[(i64, &Row)],
    ) -> Result<HashMap<i64, Vec<Row>>> {
        let by_table = self.by_table(rows);
        if self.tables_are_plain(tx).await? {
            // COPY for tables with many rows; the few rows of the others go
            // in by INSERTs sent together (one COPY per table costs a round
            // trip each, which short batches feel)
            let (copied, mut inserted): (Vec<_>, Vec<_>) = by_table
                .into_iter()
                .map(|rs| {
                    if rs.len() >= COPY_MIN_ROWS {
                        (rs, Vec::new())
                    } else {
                        (Vec::new(), rs)
                    }
                })
                .unzip();
            if !self.copy_rows(tx, &copied).await? {
                for (into, rs) in inserted.iter_mut().zip(copied) {
                    into.extend(rs);
                }
            }
            self.write_rows(tx, &inserted, Write::Insert).await?;
            if self.tables_are_plain(tx).await? {
                return Ok(HashMap::new());
            }
            // a trigger, rule or type change committed between the two
            // checks: the batch is retried, and then sees it
            return Err(Error::Setup(
                "a target table changed (trigger, rule or type) during a batch".into(),
            ));
        }
        let stored = self
            .write_rows(tx, &by_table, Write::InsertReturning)
            .await?;
        let mut differs = std::collections::HashSet::new();
        for (ti, returned) in &stored {
            let sent = by_table[*ti].iter();
            let table = &self.spec.tables[*ti];
            if returned.len() != sent.len() {
                differs.extend(sent.map(|(u, _)| *u));
                differs.extend(returned.iter().map(|r| r.get::<_, i64>(0)));
                continue;
            }
            // the insert returns rows in the order it took them
            for (back, (user, row)) in returned.iter().zip(sent) {
                let same = back.get::<_, i64>(0) == *user
                    && table
                        .columns
                        .iter()
                        .enumerate()
                        .all(|(ci, c)| stored_equals(c.ty, back, ci + 1, &row.values[ci]));
                if !same {
                    differs.insert(*user);
                    differs.insert(back.get::<_, i64>(0));
                }
            }
        }
        if differs.is_empty() {
            return Ok(HashMap::new());
        }
        let mut grouped = self.group(stored);
        grouped.retain(|u, _| differs.contains(u));
        for u in differs {
            grouped.entry(u).or_default();
        }
        Ok(grouped)
    }

    /// Writes rows grouped by table with one binary `COPY` per table, the
    /// cheapest way into PostgreSQL (no array decoding, no plan, heap
    /// tuples written in multi-insert batches). Only for plain tables:
    /// COPY returns nothing to compare. Says `false`, having sent nothing,
    /// when a value has no binary form decant writes (a numeric beyond
    /// what `numeric_in` takes): the caller inserts instead, and the
    /// database reports on the value as it would for any insert.
    async fn copy_rows(&self, tx: &Transaction<'_>, by_table: &[Vec<(i64, &Row)>]) -> Result<bool> {
        let mut streams = Vec::new();
        for (ti, rows) in by_table.iter().enumerate().filter(|(_, rs)| !rs.is_empty()) {
            match copy_stream(&self.spec.tables[ti].columns, rows) {
                Some(data) => streams.push((ti, data)),
                None => return Ok(false),
            }
        }
        for (ti, data) in streams {
            let what = || format!("copying rows into table {}", self.spec.tables[ti].name);
            let sink = tx
                .copy_in::<_, bytes::Bytes>(self.tables[ti].copy.as_str())
                .await
                .map_err(|e| Error::db(what(), e))?;
            let mut sink = std::pin::pin!(sink);
            sink.send(data.freeze())
                .await
                .map_err(|e| Error::db(what(), e))?;
            sink.as_mut()
                .finish()
                .await
                .map_err(|e| Error::db(what(), e))?;
        }
        Ok(true)
    }

    /// Rows grouped by table, each group in the order given.
    fn by_table<'r>(&self, rows: &[(i64, &'r Row)]) -> Vec<Vec<(i64, &'r Row)>> {
        let mut by_table = vec![Vec::new(); self.spec.tables.len()];
        for &(u, r) in rows {
            by_table[r.table].push((u, r));
        }
        by_table
    }

    /// Writes rows grouped by table, one statement per table, and returns
    /// what each statement returned.
    async fn write_rows(
        &self,
        tx: &Transaction<'_>,
        by_table: &[Vec<(i64, &Row)>],
        how: Write,
    ) -> Result<Vec<(usize, Vec<tokio_postgres::Row>)>> {
        let work = by_table
            .iter()
            .enumerate()
            .filter(|(_, rs)| !rs.is_empty())
            .map(|(ti, rs)| {
                let table = &self.spec.tables[ti];
                let mut params: Vec<Param> =
                    vec![Box::new(rs.iter().map(|(u, _)| *u).collect::<Vec<i64>>())];
                for ci in 0..table.columns.len() {
                    params.push(bind(rs.iter().map(|(_, r)| &r.values[ci])));
                }
                let sql = match how {
                    Write::Insert => &self.tables[ti].insert,
                    Write::InsertReturning => &self.tables[ti].insert_returning,
                    Write::Upsert => &self.tables[ti].upsert,
                };
                async move {
                    let refs: Vec<&(dyn ToSql + Sync)> =
                        params.iter().map(|p| p.as_ref() as _).collect();
                    let what = format!("writing rows of table {}", table.name);
                    let stmt = tx
                        .prepare_cached(sql)
                        .await
                        .map_err(|e| Error::db(format!("preparing: {what}"), e))?;
                    let out = tx
                        .query(&stmt, &refs)
                        .await
                        .map_err(|e| Error::db(what, e))?;
                    Ok::<_, Error>((ti, out))
                }
            });
        try_join_all(work).await
    }

    fn group(&self, results: Vec<(usize, Vec<tokio_postgres::Row>)>) -> HashMap<i64, Vec<Row>> {
        let mut out: HashMap<i64, Vec<Row>> = HashMap::new();
        for (ti, rows) in results {
            let table = &self.spec.tables[ti];
            for r in rows {
                let user: i64 = r.get(0);
                let values = table
                    .columns
                    .iter()
                    .enumerate()
                    .map(|(ci, c)| read(c.ty, &r, ci + 1))
                    .collect();
                out.entry(user).or_default().push(Row { table: ti, values });
            }
        }
        out
    }

    /// Reads every row of `users`, grouped by user.
    pub async fn read_rows(
        &self,
        tx: &Transaction<'_>,
        users: &[i64],
    ) -> Result<HashMap<i64, Vec<Row>>> {
        let work = self.tables.iter().enumerate().map(|(ti, t)| async move {
            let stmt = tx
                .prepare_cached(&t.select)
                .await
                .map_err(|e| Error::db("preparing a read", e))?;
            let rows = tx.query(&stmt, &[&users]).await.map_err(|e| {
                Error::db(
                    format!("reading rows of table {}", self.spec.tables[ti].name),
                    e,
                )
            })?;
            Ok::<_, Error>((ti, rows))
        });
        Ok(self.group(try_join_all(work).await?))
    }

    /// Deletes every row of `users` from every table.
    pub async fn delete_rows(&self, tx: &Transaction<'_>, users: &[i64]) -> Result<()> {
        let work = self.tables.iter().map(|t| async move {
            self.exec(tx, &t.delete_users, &[&users], "deleting rows")
                .await
        });
        try_join_all(work).await.map(drop)
    }

    /// Makes one user's rows equal `new` given that they are `old` now:
    /// upserts rows that are new or changed, deletes rows that are gone.
    pub async fn write_diff(
        &self,
        tx: &Transaction<'_>,
        user: i64,
        old: &[Row],
        new: &[Row],
    ) -> Result<()> {
        let key = |r: &Row| {
            let t = &self.spec.tables[r.table];
            (
                r.table,
                t.key
                    .iter()
                    .map(|&ci| r.values[ci].key_text())
                    .collect::<Vec<_>>(),
            )
        };
        let old_by_key: HashMap<_, &Row> = old.iter().map(|r| (key(r), r)).collect();
        let new_keys: std::collections::HashSet<_> = new.iter().map(key).collect();
        let changed: Vec<(i64, &Row)> = new
            .iter()
            .filter(|r| old_by_key.get(&key(r)).is_none_or(|o| *o != *r))
            .map(|r| (user, r))
            .collect();
        let gone: Vec<&Row> = old.iter().filter(|r| !new_keys.contains(&key(r))).collect();
        if !gone.is_empty() {
            let mut by_table: Vec<Vec<&Row>> = vec![Vec::new(); self.spec.tables.len()];
            for r in gone {
                by_table[r.table].push(r);
            }
            for (ti, rs) in by_table.iter().enumerate().filter(|(_, rs)| !rs.is_empty()) {
                let table = &self.spec.tables[ti];
                let user_param: Param = Box::new(user);
                let mut params: Vec<Param> = vec![user_param];
                for &ci in &table.key {
                    params.push(bind(rs.iter().map(|r| &r.values[ci])));
                }
                let (sql, params) = match &self.tables[ti].delete_keys {
                    Some(sql) => (sql, params),
                    // a table keyed by the user alone: its one row is gone
                    None => (
                        &self.tables[ti].delete_users,
                        vec![Box::new(vec![user]) as Param],
                    ),
                };
                let refs: Vec<&(dyn ToSql + Sync)> =
                    params.iter().map(|p| p.as_ref() as _).collect();
                self.exec(tx, sql, &refs, "deleting removed rows").await?;
            }
        }
        let changed = self.by_table(&changed);
        self.write_rows(tx, &changed, Write::Upsert).await.map(drop)
    }
}

fn table_sql(spec: &Spec, ti: usize) -> TableSql {
    let t = &spec.tables[ti];
    let name = target_table(spec, ti);
    let user = quote(&t.user_column);
    let cols: Vec<String> = t.columns.iter().map(|c| quote(&c.name)).collect();
    let all_cols = std::iter::once(user.clone())
        .chain(cols.iter().cloned())
        .collect::<Vec<_>>()
        .join(", ");
    let params: Vec<String> = t
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| format!("${}::{}[]", i + 2, c.ty.wire()))
        .collect();
    let aliases: Vec<String> = (0..t.columns.len()).map(|i| format!("c{i}")).collect();
    let converted: Vec<String> = t
        .columns
        .iter()
        .zip(&aliases)
        .map(|(c, a)| c.ty.wire_to_column(a))
        .collect();
    let insert = format!(
        "INSERT INTO {name} ({all_cols}) SELECT u, {} FROM unnest($1::bigint[], {}) AS v(u, {})",
        converted.join(", "),
        params.join(", "),
        aliases.join(", ")
    );
    let key_cols: Vec<String> = std::iter::once(user.clone())
        .chain(t.key.iter().map(|&ci| quote(&t.columns[ci].name)))
        .collect();
    let non_key: Vec<String> = (0..t.columns.len())
        .filter(|ci| !t.key.contains(ci))
        .map(|ci| format!("{0} = EXCLUDED.{0}", quote(&t.columns[ci].name)))
        .collect();
    let upsert = format!(
        "{insert} ON CONFLICT ({}) DO {}",
        key_cols.join(", "),
        if non_key.is_empty() {
            "NOTHING".to_string()
        } else {
            format!("UPDATE SET {}", non_key.join(", "))
        }
    );
    let projection = t
        .columns
        .iter()
        .map(|c| c.ty.column_to_wire(&quote(&c.name)))
        .collect::<Vec<_>>()
        .join(", ");
    let select =
        format!("SELECT {user}, {projection} FROM {name} WHERE {user} = ANY($1::bigint[])");
    // what the database stored, as it stored it (after any trigger or
    // conversion): the migration verifies these
    let insert_returning = format!("{insert} RETURNING {user}, {projection}");
    let delete_keys = (!t.key.is_empty()).then(|| {
        let keys: Vec<String> = t.key.iter().map(|&ci| quote(&t.columns[ci].name)).collect();
        let wire: Vec<String> = t
            .key
            .iter()
            .enumerate()
            .map(|(i, &ci)| format!("${}::{}[]", i + 2, t.columns[ci].ty.wire()))
            .collect();
        let conv: Vec<String> = t
            .key
            .iter()
            .enumerate()
            .map(|(i, &ci)| t.columns[ci].ty.wire_to_column(&format!("k{i}")))
            .collect();
        let ks: Vec<String> = (0..t.key.len()).map(|i| format!("k{i}")).collect();
        format!(
            "DELETE FROM {name} WHERE {user} = $1 AND ({}) IN (SELECT {} FROM unnest({}) AS v({}))",
            keys.join(", "),
            conv.join(", "),
            wire.join(", "),
            ks.join(", ")
        )
    });
    TableSql {
        copy: format!("COPY {name} ({all_cols}) FROM STDIN (FORMAT binary)"),
        insert: insert.clone(),
        insert_returning,
        upsert,
        select,
        delete_users: format!("DELETE FROM {name} WHERE {user} = ANY($1::bigint[])"),
        delete_keys,
    }
}

/// The binary COPY stream of rows of one table: the user id, then each
/// column (PostgreSQL's binary COPY format: a header, per tuple a field
/// count and length-prefixed fields in each type's binary form, a trailer).
/// Values are encoded by `ColumnValue`'s `ToSql`, as the INSERTs bind them,
/// except `numeric`, which binds as text and is encoded here. `None` when
/// a numeric has no form `numeric_in` would take.
fn copy_stream(columns: &[crate::spec::Column], rows: &[(i64, &Row)]) -> Option<bytes::BytesMut> {
    use bytes::BufMut;
    let mut out = bytes::BytesMut::with_capacity(64 * rows.len() + 32);
    out.put_slice(b"PGCOPY\n\xff\r\n\0");
    out.put_i32(0); // flags
    out.put_i32(0); // header extension length
    for (user, row) in rows {
        out.put_i16(1 + row.values.len() as i16);
        out.put_i32(8);
        out.put_i64(*user);
        for (c, v) in columns.iter().zip(&row.values) {
            put_field(&mut out, c.ty, v)?;
        }
    }
    out.put_i16(-1);
    Some(out)
}

/// Rows of one table in one batch from which `COPY` is used rather than
/// an `INSERT`. Each COPY is its own round trips, one after the other, while
/// the INSERTs of a batch are sent together: in the short batches used
/// while others work (a few hundred to two thousand rows per table, a
/// client at lower CPU priority) COPY made `decant demo` migrate 540
/// users/s against 1,353 with INSERTs; in full-speed batches (the statistic
/// table alone gets ~16,000 rows) COPY is the faster (BENCHMARKS.md).
const COPY_MIN_ROWS: usize = 4_000;

/// Appends one field: its length (-1 for NULL), then its binary form.
fn put_field(out: &mut bytes::BytesMut, ty: ColumnType, v: &ColumnValue) -> Option<()> {
    use bytes::BufMut;
    let at = out.len();
    out.put_i32(0);
    let null = match (ty, v) {
        (_, ColumnValue::Null) => true,
        (ColumnType::Numeric, ColumnValue::Numeric(text)) => {
            crate::value::numeric_binary(text, out)?;
            false
        }
        _ => {
            let pg = match ty {
                ColumnType::Bool => Type::BOOL,
                ColumnType::Int2 => Type::INT2,
                ColumnType::Int4 => Type::INT4,
                ColumnType::Int8 => Type::INT8,
                ColumnType::Float8 => Type::FLOAT8,
                ColumnType::Numeric => Type::NUMERIC,
                ColumnType::Text => Type::TEXT,
                ColumnType::TimestampMs | ColumnType::TimestampIso => Type::TIMESTAMPTZ,
                ColumnType::Jsonb => Type::JSONB,
            };
            matches!(v.to_sql_checked(&pg, out).ok()?, IsNull::Yes)
        }
    };
    let len = if null {
        out.truncate(at + 4);
        -1
    } else {
        i32::try_from(out.len() - at - 4).ok()?
    };
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
    Some(())
}

/// Builds the array parameter of one column for many rows.
fn bind<'a>(values: impl Iterator<Item = &'a ColumnValue>) -> Param<'a> {
    Box::new(values.collect::<Vec<&'a ColumnValue>>())
}

// A column value binds as its column's wire type (numeric as text,
// timestamps as timestamptz); text and json are written straight from the
// row, without copies. Each variant checks that PostgreSQL expects its type.
impl ToSql for ColumnValue {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            ColumnValue::Null => Ok(IsNull::Yes),
            ColumnValue::Bool(b) => b.to_sql_checked(ty, out),
            ColumnValue::I16(n) => n.to_sql_checked(ty, out),
            ColumnValue::I32(n) => n.to_sql_checked(ty, out),
            ColumnValue::I64(n) => n.to_sql_checked(ty, out),
            ColumnValue::F64(f) => f.to_sql_checked(ty, out),
            ColumnValue::Numeric(s) | ColumnValue::Text(s) => s.as_str().to_sql_checked(ty, out),
            ColumnValue::Micros(us) => micros_to_time(*us).to_sql_checked(ty, out),
            ColumnValue::Json(v) => v.to_sql_checked(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        <bool as ToSql>::accepts(ty)
            || <i16 as ToSql>::accepts(ty)
            || <i32 as ToSql>::accepts(ty)
            || <i64 as ToSql>::accepts(ty)
            || <f64 as ToSql>::accepts(ty)
            || <&str as ToSql>::accepts(ty)
            || <SystemTime as ToSql>::accepts(ty)
            || <Value as ToSql>::accepts(ty)
    }

    tokio_postgres::types::to_sql_checked!();
}

/// Whether a returned column holds exactly the value sent, read without
/// allocating where the type allows.
fn stored_equals(
    ty: ColumnType,
    row: &tokio_postgres::Row,
    idx: usize,
    sent: &ColumnValue,
) -> bool {
    use ColumnValue as V;
    match ty {
        ColumnType::Numeric => match (row.get::<_, Option<&str>>(idx), sent) {
            (None, V::Null) => true,
            (Some(a), V::Numeric(b)) => {
                a == b || crate::value::canonical_number(a) == crate::value::canonical_number(b)
            }
            _ => false,
        },
        ColumnType::Text => match (row.get::<_, Option<&str>>(idx), sent) {
            (None, V::Null) => true,
            (Some(a), V::Text(b)) => a == b,
            _ => false,
        },
        _ => read(ty, row, idx).same(sent),
    }
}

/// Reads one column of a result row in its wire form.
fn read(ty: ColumnType, row: &tokio_postgres::Row, idx: usize) -> ColumnValue {
    fn opt<T>(v: Option<T>, f: impl FnOnce(T) -> ColumnValue) -> ColumnValue {
        v.map(f).unwrap_or(ColumnValue::Null)
    }
    match ty {
        ColumnType::Bool => opt(row.get(idx), ColumnValue::Bool),
        ColumnType::Int2 => opt(row.get(idx), ColumnValue::I16),
        ColumnType::Int4 => opt(row.get(idx), ColumnValue::I32),
        ColumnType::Int8 => opt(row.get(idx), ColumnValue::I64),
        ColumnType::TimestampMs | ColumnType::TimestampIso => {
            opt(row.get(idx), |t| ColumnValue::Micros(time_to_micros(t)))
        }
        ColumnType::Float8 => opt(row.get(idx), ColumnValue::F64),
        ColumnType::Numeric => opt(row.get(idx), ColumnValue::Numeric),
        ColumnType::Text => opt(row.get(idx), ColumnValue::Text),
        ColumnType::Jsonb => opt(row.get(idx), ColumnValue::Json),
    }
}

// timestamptz travels as SystemTime: exact to the microsecond on every
// supported server version (extract(epoch) is a double before PG 14).
fn micros_to_time(us: i64) -> SystemTime {
    let d = Duration::from_micros(us.unsigned_abs());
    if us >= 0 {
        UNIX_EPOCH + d
    } else {
        UNIX_EPOCH - d
    }
}

fn time_to_micros(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_micros() as i64,
        Err(e) => -(e.duration().as_micros() as i64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The claim's anti join on the state table starts at the cursor: an
    /// unbounded one reads every state row behind it on every claim, which
    /// made a 200,000-user run a quarter slower (BENCHMARKS.md).
    #[test]
    fn the_claim_bounds_the_state_rows_by_the_cursor() {
        let store = Store::new(Arc::new(crate::example::spec()));
        for sql in [&store.claim, &store.claim_rollout, &store.claimable] {
            assert!(sql.contains("s.\"id\" > $1"), "{sql}");
            assert!(sql.contains("st.user_id > $1"), "{sql}");
        }
    }
}
