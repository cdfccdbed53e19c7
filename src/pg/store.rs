//! Executing the spec's SQL (`pg::sql`): reading and writing a user's rows
//! in the target tables and the blob in the source table, by INSERT,
//! binary COPY or upsert, with the values encoded by `pg::codec`.

use crate::core::explode::Row;
use crate::core::id::UserId;
use crate::core::spec::Spec;
use crate::core::spec::quote;
use crate::error::{Error, Result};
use crate::pg::codec::{Blob, Param, bind, copy_stream, read, read_array, stored_equals};
use crate::pg::session::{Planned, pipeline};
use crate::pg::sql::{Sql, source_table};
use deadpool_postgres::Transaction;
use futures_util::SinkExt;
use futures_util::future::try_join_all;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use tokio_postgres::types::ToSql;

/// A spec with the SQL generated from it, and the queries that read and
/// write users' rows and blobs.
#[derive(Debug)]
pub(crate) struct Store {
    pub spec: Arc<Spec>,
    sql: Sql,
    /// The statements of the finalized phase (the flag read as `true`).
    sql_finalized: Sql,
    /// Whether this handle runs in the finalized phase (read from the
    /// control row at its first call).
    finalized: std::sync::atomic::AtomicBool,
    /// The mapping's fingerprint, recorded with every user it migrates.
    pub fingerprint: String,
    /// Whether the last catalog check found the target tables plain: the
    /// next insert then skips the check before it (the one after it, under
    /// the insert's locks, is what decides).
    plain: std::sync::atomic::AtomicBool,
}

#[derive(Clone, Copy)]
enum Write {
    Insert,
    InsertReturning,
}

/// A user as one lock-free read finds it: the flag, the blob (the
/// residual of a migrated user) and a migrated user's rows.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub id: UserId,
    pub blob: Blob,
    pub migrated: bool,
    pub rows: Vec<Row>,
}

/// A locked source row.
#[derive(Debug)]
pub(crate) struct Locked {
    pub id: UserId,
    pub blob: Blob,
    pub migrated: bool,
}

/// Rows of one table in one batch from which `COPY` is used rather than
/// an `INSERT`. Each COPY is its own round trips, one after the other, while
/// the INSERTs of a batch are sent together: in the short batches used
/// while others work (a few hundred to two thousand rows per table, a
/// client at lower CPU priority) COPY made `decant demo` migrate 540
/// users/s against 1,353 with INSERTs; in full-speed batches (the statistic
/// table alone gets ~16,000 rows) COPY is the faster (BENCHMARKS.md).
const COPY_MIN_ROWS: usize = 4_000;

/// One user's blob and flag, as [`Store::write_blobs`] writes them.
pub(crate) struct BlobWrite<'a> {
    /// The user.
    pub user: &'a UserId,
    /// Its blob (a migrated user's residual).
    pub blob: &'a Value,
    /// Its flag.
    pub migrated: bool,
    /// A JSON `null` blob is written as SQL NULL (what the column held),
    /// where the column allows NULL.
    pub sql_null: bool,
}

impl Store {
    /// The SQL of a spec, generated once.
    pub fn new(spec: Arc<Spec>) -> Store {
        Store {
            sql: Sql::new(&spec),
            sql_finalized: Sql::finalized(&spec),
            finalized: std::sync::atomic::AtomicBool::new(false),
            fingerprint: spec.fingerprint(),
            plain: std::sync::atomic::AtomicBool::new(false),
            spec,
        }
    }

    /// The statements for the phase: once finalized, none reads the flag.
    pub fn sql(&self) -> &Sql {
        if self.finalized.load(std::sync::atomic::Ordering::Relaxed) {
            &self.sql_finalized
        } else {
            &self.sql
        }
    }

    /// Whether this handle runs in the finalized phase.
    pub fn is_finalized(&self) -> bool {
        self.finalized.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Switches to the finalized phase's statements.
    pub fn set_finalized(&self, finalized: bool) {
        self.finalized
            .store(finalized, std::sync::atomic::Ordering::Relaxed);
    }

    /// Locks the source rows of `ids` (in id order, so concurrent lockers
    /// cannot deadlock); with `skip`, rows locked elsewhere are left out.
    pub async fn lock(
        &self,
        tx: &Transaction<'_>,
        ids: &[UserId],
        skip: bool,
    ) -> Result<Vec<Locked>> {
        let sql = if skip {
            &self.sql().lock_skip
        } else {
            &self.sql().lock_wait
        };
        let stmt = tx
            .prepare_cached(sql)
            .await
            .map_err(|e| Error::db("preparing the lock query", e))?;
        let rows = tx.query(&stmt, &[&ids]).await.map_err(|e| match ids {
            [one] => Error::db_user(one, "locking the source row", e),
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

    /// Of `users`, those with rows in some target table, with the first
    /// such table; `first` (a simple statement such as a `SAVEPOINT`) is
    /// sent ahead of the check, in the same round trip.
    pub async fn users_with_rows(
        &self,
        tx: &Transaction<'_>,
        users: &[UserId],
        first: Option<&'static str>,
    ) -> Result<HashMap<UserId, String>> {
        let check = (!users.is_empty() && !self.spec.tables.is_empty()).then(|| {
            Planned::new(
                &self.sql().has_rows,
                vec![Box::new(users)],
                "checking for rows already there",
            )
        });
        if check.is_none() && first.is_none() {
            return Ok(HashMap::new());
        }
        let stmts: Vec<Planned> = check.into_iter().collect();
        Ok(pipeline(tx, first, &stmts, None, Error::db_at)
            .await?
            .concat()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    /// Writes blobs and flags, every one of them (see [`written`]).
    pub async fn write_blobs(&self, tx: &Transaction<'_>, items: &[BlobWrite<'_>]) -> Result<()> {
        let stmts: Vec<Planned> = self.blobs_statement(items).into_iter().collect();
        let replies = pipeline(tx, None, &stmts, None, Error::db_at).await?;
        written(self, items, replies.first().map_or(&[][..], Vec::as_slice))
    }

    /// The statement of [`Store::write_blobs`], for the caller's pipeline;
    /// none when there is nothing to write.
    pub fn blobs_statement<'a>(&'a self, items: &[BlobWrite<'a>]) -> Option<Planned<'a>> {
        if items.is_empty() {
            return None;
        }
        let ids: Vec<&UserId> = items.iter().map(|i| i.user).collect();
        let blobs: Vec<&Value> = items.iter().map(|i| i.blob).collect();
        let flags: Vec<bool> = items.iter().map(|i| i.migrated).collect();
        let nulls: Vec<bool> = items.iter().map(|i| i.sql_null).collect();
        Some(Planned::new(
            &self.sql().write_blobs,
            vec![
                Box::new(ids),
                Box::new(blobs),
                Box::new(flags),
                Box::new(nulls),
            ],
            "writing blobs",
        ))
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
        let out = pipeline(tx, None, &[self.plain_statement()], None, Error::db_at).await?;
        Ok(plain_answer(&out))
    }

    /// The statement of [`Store::tables_are_plain`], for a pipeline.
    fn plain_statement(&self) -> Planned<'_> {
        let (tables, columns, types) = &self.sql().plain_params;
        Planned::new(
            &self.sql().plain_check,
            vec![Box::new(tables), Box::new(columns), Box::new(types)],
            "checking the target tables in the catalog",
        )
    }

    /// Inserts the rows of a batch (each with its user) and says which
    /// users' rows the database did not store exactly as sent, with what
    /// it stored for them.
    ///
    /// When the target tables are plain (see `tables_are_plain`), PostgreSQL
    /// stores exactly the values sent, and the insert returns nothing;
    /// otherwise `INSERT ... RETURNING` says what was stored and it is
    /// compared. The check that decides runs after the insert, whose locks
    /// keep any new trigger, rule or type change out until commit; the
    /// check before it only picks the way in, and is skipped while the
    /// last check found the tables plain (one catalog query per batch, not
    /// two). Found not plain after a plain insert, the rows are deleted
    /// and inserted again with `RETURNING`, in the same transaction.
    pub async fn insert_rows(
        &self,
        tx: &Transaction<'_>,
        rows: &[(&UserId, &Row)],
    ) -> Result<HashMap<UserId, Vec<Row>>> {
        use std::sync::atomic::Ordering::Relaxed;
        if rows.is_empty() {
            return Ok(HashMap::new());
        }
        let by_table = self.by_table(rows);
        if self.plain.load(Relaxed) || self.tables_are_plain(tx).await? {
            // COPY for tables with many rows; the few rows of the others go
            // in by INSERTs sent together (one COPY per table costs a round
            // trip each, which short batches feel)
            let (copied, mut inserted): (Vec<_>, Vec<_>) = by_table
                .iter()
                .map(|rs| {
                    if rs.len() >= COPY_MIN_ROWS {
                        (rs.clone(), Vec::new())
                    } else {
                        (Vec::new(), rs.clone())
                    }
                })
                .unzip();
            if !self.copy_rows(tx, &copied).await? {
                for (into, rs) in inserted.iter_mut().zip(copied) {
                    into.extend(rs);
                }
            }
            let plain = self.insert_then_check(tx, &inserted).await?;
            self.plain.store(plain, Relaxed);
            if plain {
                return Ok(HashMap::new());
            }
            // a trigger, rule or type change committed since the last
            // check: what was stored is not known; insert again, returning
            let mut users: Vec<UserId> = rows.iter().map(|(u, _)| (*u).clone()).collect();
            users.dedup();
            self.delete_rows(tx, &users).await?;
        }
        let stored = self
            .write_rows(tx, &by_table, Write::InsertReturning)
            .await?;
        let mut differs = std::collections::HashSet::new();
        for (ti, returned) in &stored {
            let sent = by_table[*ti].iter();
            let table = &self.spec.tables[*ti];
            if returned.len() != sent.len() {
                differs.extend(sent.map(|(u, _)| (*u).clone()));
                differs.extend(returned.iter().map(|r| r.get::<_, UserId>(0)));
                continue;
            }
            // the insert returns rows in the order it took them
            for (back, (user, row)) in returned.iter().zip(sent) {
                let same = back.get::<_, UserId>(0) == **user
                    && table
                        .columns
                        .iter()
                        .enumerate()
                        .all(|(ci, c)| stored_equals(c.ty, back, ci + 1, &row.values[ci]));
                if !same {
                    differs.insert((*user).clone());
                    differs.insert(back.get::<_, UserId>(0));
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
    async fn copy_rows(
        &self,
        tx: &Transaction<'_>,
        by_table: &[Vec<(&UserId, &Row)>],
    ) -> Result<bool> {
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
                .copy_in::<_, bytes::Bytes>(self.sql.tables[ti].copy.as_str())
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
    fn by_table<'u, 'r>(&self, rows: &[(&'u UserId, &'r Row)]) -> Vec<Vec<(&'u UserId, &'r Row)>> {
        let mut by_table = vec![Vec::new(); self.spec.tables.len()];
        for &(u, r) in rows {
            by_table[r.table].push((u, r));
        }
        by_table
    }

    /// One statement per table that has rows (`how`), each with its
    /// table's index.
    fn row_writes<'a>(
        &'a self,
        by_table: &[Vec<(&'a UserId, &'a Row)>],
        how: Write,
    ) -> (Vec<usize>, Vec<Planned<'a>>) {
        by_table
            .iter()
            .enumerate()
            .filter(|(_, rs)| !rs.is_empty())
            .map(|(ti, rs)| {
                let table = &self.spec.tables[ti];
                let mut params: Vec<Param> = vec![Box::new(
                    rs.iter().map(|(u, _)| *u).collect::<Vec<&UserId>>(),
                )];
                for ci in 0..table.columns.len() {
                    params.push(bind(rs.iter().map(|(_, r)| &r.values[ci])));
                }
                let sql = match how {
                    Write::Insert => &self.sql().tables[ti].insert,
                    Write::InsertReturning => &self.sql().tables[ti].insert_returning,
                };
                let what = format!("writing rows of table {}", table.name);
                (ti, Planned::new(sql, params, what))
            })
            .unzip()
    }

    /// Writes rows grouped by table, one statement per table, all sent
    /// together, and returns what each statement returned.
    async fn write_rows(
        &self,
        tx: &Transaction<'_>,
        by_table: &[Vec<(&UserId, &Row)>],
        how: Write,
    ) -> Result<Vec<(usize, Vec<tokio_postgres::Row>)>> {
        let (tables, stmts) = self.row_writes(by_table, how);
        let out = pipeline(tx, None, &stmts, None, Error::db_at).await?;
        Ok(tables.into_iter().zip(out).collect())
    }

    /// Inserts rows grouped by table and then checks that the tables are
    /// plain (`tables_are_plain`), in one round trip: the statements run in
    /// the order sent, so the check runs after the inserts, as
    /// `insert_rows` needs.
    async fn insert_then_check(
        &self,
        tx: &Transaction<'_>,
        by_table: &[Vec<(&UserId, &Row)>],
    ) -> Result<bool> {
        let (_, mut stmts) = self.row_writes(by_table, Write::Insert);
        stmts.push(self.plain_statement());
        let out = pipeline(tx, None, &stmts, None, Error::db_at).await?;
        Ok(plain_answer(&out))
    }

    fn group(&self, results: Vec<(usize, Vec<tokio_postgres::Row>)>) -> HashMap<UserId, Vec<Row>> {
        let mut out: HashMap<UserId, Vec<Row>> = HashMap::new();
        for (ti, rows) in results {
            let table = &self.spec.tables[ti];
            for r in rows {
                let user: UserId = r.get(0);
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

    /// Users as one statement reads them (one snapshot, no lock, no
    /// write): flag, blob, and a migrated user's rows. Unknown users are
    /// left out; the order is by id.
    pub async fn snapshot(
        &self,
        client: &deadpool_postgres::Object,
        users: &[UserId],
    ) -> Result<Vec<Snapshot>> {
        let (sql, one) = match users {
            [one] => (&self.sql().snapshot_one, Some(one)),
            _ => (&self.sql().snapshot, None),
        };
        let stmt = client
            .prepare_cached(sql)
            .await
            .map_err(|e| Error::db("preparing the snapshot read", e))?;
        let rows = match one {
            Some(id) => client.query(&stmt, &[id]).await,
            None => client.query(&stmt, &[&users]).await,
        }
        .map_err(|e| Error::db("reading users", e))?;
        Ok(rows.iter().map(|r| self.decode_snapshot(r)).collect())
    }

    /// A migrated user's rows from a row of `rows_one` (or `snapshot`).
    pub fn decode_rows(&self, row: &tokio_postgres::Row) -> Vec<Row> {
        self.decode_snapshot(row).rows
    }

    /// A row of `snapshot`: the source columns, then per table the row
    /// count and one array per column.
    pub(crate) fn decode_snapshot(&self, r: &tokio_postgres::Row) -> Snapshot {
        let mut user_rows = Vec::new();
        let mut idx = 3;
        for (ti, t) in self.spec.tables.iter().enumerate() {
            let n = r.get::<_, i64>(idx) as usize;
            let columns: Vec<Vec<_>> = t
                .columns
                .iter()
                .enumerate()
                .map(|(ci, c)| read_array(c.ty, r, idx + 1 + ci))
                .collect();
            idx += 1 + t.columns.len();
            let mut columns: Vec<_> = columns.into_iter().map(Vec::into_iter).collect();
            for _ in 0..n {
                let values = columns
                    .iter_mut()
                    .map(|c| c.next().expect("one value per row in each column array"))
                    .collect();
                user_rows.push(Row { table: ti, values });
            }
        }
        Snapshot {
            id: r.get(0),
            blob: r.get(1),
            migrated: r.get(2),
            rows: user_rows,
        }
    }

    /// Reads every row of `users`, grouped by user.
    pub async fn read_rows(
        &self,
        tx: &Transaction<'_>,
        users: &[UserId],
    ) -> Result<HashMap<UserId, Vec<Row>>> {
        let work = self
            .sql
            .tables
            .iter()
            .enumerate()
            .map(|(ti, t)| async move {
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
    pub async fn delete_rows(&self, tx: &Transaction<'_>, users: &[UserId]) -> Result<()> {
        let work = self.sql.tables.iter().map(|t| async move {
            self.exec(tx, &t.delete_users, &[&users], "deleting rows")
                .await
        });
        try_join_all(work).await.map(drop)
    }

    /// The statements that make one user's rows equal `new` given that
    /// they are `old` now: upserts of rows that are new or changed,
    /// deletes of rows that are gone, one statement per table and kind.
    /// Deletes (keys gone) and upserts (keys kept or new) touch disjoint
    /// rows, so they may be sent together.
    pub fn diff_statements<'a>(
        &'a self,
        user: &UserId,
        old: &'a [Row],
        new: &'a [Row],
    ) -> Vec<Planned<'a>> {
        // each row's key once (text keys borrowed)
        let key = |r: &'a Row| {
            let t = &self.spec.tables[r.table];
            (
                r.table,
                t.key
                    .iter()
                    .map(|&ci| r.values[ci].key_text())
                    .collect::<Vec<_>>(),
            )
        };
        let old_keys: Vec<_> = old.iter().map(key).collect();
        let new_keys: Vec<_> = new.iter().map(key).collect();
        let old_by_key: HashMap<_, &Row> = old_keys.iter().zip(old).collect();
        let new_set: std::collections::HashSet<_> = new_keys.iter().collect();
        let mut gone: Vec<Vec<&Row>> = vec![Vec::new(); self.spec.tables.len()];
        for (k, r) in old_keys.iter().zip(old) {
            if !new_set.contains(k) {
                gone[r.table].push(r);
            }
        }
        let mut changed: Vec<Vec<&Row>> = vec![Vec::new(); self.spec.tables.len()];
        for (k, r) in new_keys.iter().zip(new) {
            if old_by_key.get(k).is_none_or(|o| *o != r) {
                changed[r.table].push(r);
            }
        }
        let mut out = Vec::new();
        for (ti, rs) in gone.iter().enumerate().filter(|(_, rs)| !rs.is_empty()) {
            let table = &self.spec.tables[ti];
            out.push(match &self.sql().tables[ti].delete_keys {
                Some(sql) => {
                    let mut params: Vec<Param> = vec![Box::new(user.clone())];
                    for &ci in &table.key {
                        params.push(bind(rs.iter().map(|r| &r.values[ci])));
                    }
                    Planned::new(sql, params, "deleting removed rows")
                }
                // a table keyed by the user alone: its one row is gone
                None => Planned::new(
                    &self.sql().tables[ti].delete_users,
                    vec![Box::new(vec![user.clone()])],
                    "deleting removed rows",
                ),
            });
        }
        for (ti, rs) in changed.iter().enumerate().filter(|(_, rs)| !rs.is_empty()) {
            let table = &self.spec.tables[ti];
            let mut params: Vec<Param> = vec![Box::new(vec![user.clone(); rs.len()])];
            for ci in 0..table.columns.len() {
                params.push(bind(rs.iter().map(|r| &r.values[ci])));
            }
            out.push(Planned::new(
                &self.sql().tables[ti].upsert,
                params,
                "writing changed rows",
            ));
        }
        out
    }

    /// The statement that writes one user's blob and flag.
    pub fn blob_statement<'a>(
        &'a self,
        user: &UserId,
        blob: &'a Value,
        migrated: bool,
    ) -> Planned<'a> {
        Planned::new(
            &self.sql().write_one,
            vec![Box::new(user.clone()), Box::new(blob), Box::new(migrated)],
            "writing the blob",
        )
    }

    /// Runs planned statements in `tx`, one after the other.
    pub async fn run(
        &self,
        tx: &Transaction<'_>,
        user: &UserId,
        stmts: Vec<Planned<'_>>,
    ) -> Result<()> {
        for s in stmts {
            let refs: Vec<&(dyn ToSql + Sync)> = s.params.iter().map(|p| p.as_ref() as _).collect();
            let stmt = tx
                .prepare_cached(s.sql)
                .await
                .map_err(|e| Error::db_user(user, &format!("preparing: {}", s.what), e))?;
            tx.execute(&stmt, &refs)
                .await
                .map_err(|e| Error::db_user(user, &s.what, e))?;
        }
        Ok(())
    }
}

/// Refuses a write of blobs and flags that left some users' rows as they
/// were (`returned`: the ids [`Store::blobs_statement`] wrote): a trigger
/// on the source table that returns NULL for a row (`BEFORE UPDATE`)
/// skips decant's UPDATE of it, silently, so a migrated user would keep
/// its whole blob and its flag unset beside the rows just written, and a
/// rolled-back user its residual and its flag beside rows about to be
/// deleted. The caller's transaction rolls back; the daemon then retries
/// the batch user by user and records those users failed.
pub(crate) fn written(
    store: &Store,
    items: &[BlobWrite<'_>],
    returned: &[tokio_postgres::Row],
) -> Result<()> {
    if returned.len() >= items.len() {
        return Ok(());
    }
    let done: std::collections::HashSet<UserId> = returned.iter().map(|r| r.get(0)).collect();
    let Some(missed) = items.iter().find(|i| !done.contains(i.user)) else {
        return Ok(());
    };
    Err(Error::Verification {
        user: missed.user.clone(),
        detail: format!(
            "the UPDATE of its row in {} changed nothing (a trigger on the table returned NULL \
             for it), so its {} and flag could not be written: the user is left as it was. Make \
             the trigger let decant's sessions through (`application_name=decant_migration` in \
             decant's connection string, tested in the trigger) or disable it for the migration",
            source_table(&store.spec),
            quote(&store.spec.source.blob)
        ),
    })
}

/// The answer of the catalog check, the last statement of `replies`.
fn plain_answer(replies: &[Vec<tokio_postgres::Row>]) -> bool {
    replies
        .last()
        .and_then(|rows| rows.first())
        .is_some_and(|r| r.get(0))
}
