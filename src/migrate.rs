//! Migration (and rollback) of users, each wholly in one transaction.
//!
//! For a batch of users, one transaction: lock the source rows, explode each
//! blob, write every user's rows (one statement per table), read them back,
//! rebuild each blob and compare it with the original, then replace each
//! blob by its residual, set the flags and record the state. A user whose
//! blob is invalid or does not verify is left legacy (its rows are removed
//! within the transaction) and recorded as failed; the others go on. A
//! database error rolls the whole batch back and the batch is retried user
//! by user, so one bad user never holds back the rest.

use crate::core::explode::{self, Exploded, Row};
use crate::core::fixup;
use crate::core::id::UserId;
use crate::core::json::{Json, JsonView, json_diff};
use crate::error::{Error, Result};
use crate::pg::codec::check_depth;
use crate::pg::session::{Pipe, Planned, pipeline};
use crate::pg::store::{BlobWrite, Locked, Store};
use crate::pg::{pool, state};
use deadpool_postgres::{Object, Transaction};
use serde_json::Value;
use std::collections::HashMap;

/// What happened to each user of a batch.
#[derive(Debug, Default)]
pub struct BatchReport {
    /// Users migrated and verified.
    pub migrated: Vec<Migrated>,
    /// Users that failed, each with why; they stay legacy.
    pub failed: Vec<Failure>,
    /// Users not touched: already migrated, gone, or locked by live
    /// traffic when skipping locked rows.
    pub skipped: Vec<UserId>,
}

impl BatchReport {
    /// How many migrated users keep values `keep` rules refused in their
    /// residual (those with warnings).
    pub fn warned(&self) -> usize {
        self.migrated
            .iter()
            .filter(|m| !m.warnings.is_empty())
            .count()
    }
}

/// A migrated user.
#[derive(Debug, Clone)]
pub struct Migrated {
    /// The user.
    pub user: UserId,
    /// Rows written.
    pub rows: usize,
    /// Values `keep` rules left in the residual.
    pub warnings: Vec<explode::Invalid>,
    /// The fixups that changed its blob before explode, in order.
    pub fixups: Vec<String>,
}

/// A legacy user's blob as migrated: parsed from the database's text, or
/// an owned copy repaired by fixups (with what they did).
enum Parsed<'a> {
    Text(Json<'a>),
    Fixed(Value, Vec<fixup::Applied>),
}

impl Parsed<'_> {
    fn explode(&self, spec: &crate::core::spec::Spec) -> Result<Exploded, explode::Invalid> {
        match self {
            Parsed::Text(j) => explode::explode_view(spec, j),
            Parsed::Fixed(v, _) => explode::explode_view(spec, v),
        }
    }

    /// Equal to `other` under jsonb equality.
    fn same(&self, other: &Value) -> bool {
        match self {
            Parsed::Text(j) => crate::core::json::eq(other, j),
            Parsed::Fixed(v, _) => crate::core::json::eq(other, v),
        }
    }

    fn value(&self) -> Value {
        match self {
            Parsed::Text(j) => j.to_value(),
            Parsed::Fixed(v, _) => v.clone(),
        }
    }
}

/// A user whose migration failed.
#[derive(Debug)]
pub struct Failure {
    /// The user.
    pub user: UserId,
    /// Why.
    pub error: Error,
}

impl Failure {
    /// The failure without user-specific detail, to group users by.
    pub fn reason(&self) -> String {
        match &self.error {
            Error::Invalid { invalid, .. } => {
                format!("rule `{}`: {}", invalid.rule, invalid.reason())
            }
            Error::Verification { .. } => "verification failed".into(),
            // "it is nested deeper than 128 levels", without the advice
            Error::Unreadable { detail, .. } => {
                let why = detail.split(" (").next().unwrap_or(detail);
                format!("cannot read the blob: {}", why.trim_start_matches("it is "))
            }
            Error::HasRows { table, .. } => format!("already has rows in table {table}"),
            // the code, what decant was doing and the object the server
            // names: never the message or its detail, which may hold the
            // user's values ("Failing row contains ...")
            other => match other.sqlstate() {
                Some(code) => {
                    let mut why = format!("database error {code}");
                    if let Error::Db { context, source } = other {
                        if !context.is_empty() {
                            why.push_str(&format!(" {context}"));
                        }
                        let db = source.as_db_error();
                        if let Some(c) = db.and_then(|d| d.constraint()) {
                            why.push_str(&format!(" (constraint \"{c}\")"));
                        } else if let Some(c) = db.and_then(|d| d.column()) {
                            why.push_str(&format!(" (column \"{c}\")"));
                        }
                    }
                    why
                }
                None => "error".into(),
            },
        }
    }
}

/// Whether to wait for row locks held by others (up to `lock_timeout`) or
/// skip those users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockWait {
    /// Wait up to the session's `lock_timeout`.
    Wait,
    /// `SKIP LOCKED`: never queue behind live traffic.
    Skip,
}

/// Migrates `ids` in one transaction (see the module docs).
pub(crate) async fn migrate_batch(
    store: &Store,
    client: &mut Object,
    ids: &[UserId],
    wait: LockWait,
) -> Result<BatchReport> {
    let attempt = async {
        let tx = pool::batch_transaction(client, "a migration batch").await?;
        let report = migrate_locked_batch(store, &tx, ids, wait).await?;
        tx.commit()
            .await
            .map_err(|e| Error::db("committing a migration batch", e))?;
        Ok::<_, Error>(report)
    }
    .await;
    match attempt {
        Ok(report) => Ok(report),
        // the tables' fault, not the users': nobody is failed for it
        Err(e) if e.is_table_fault() => Err(e),
        // a lock timeout, a dropped connection, no connection: not the
        // user's fault; the caller tries again later
        Err(e) if e.is_retryable() && (ids.len() == 1 || matches!(e, Error::Pool(_))) => Err(e),
        // one bad user must not hold back the rest of its batch
        Err(e) if ids.len() > 1 => {
            tracing::warn!(cause = %e, users = ids.len(), "batch failed; retrying user by user");
            let mut all = BatchReport::default();
            for id in ids {
                let r =
                    Box::pin(migrate_batch(store, client, std::slice::from_ref(id), wait)).await?;
                all.migrated.extend(r.migrated);
                all.failed.extend(r.failed);
                all.skipped.extend(r.skipped);
            }
            Ok(all)
        }
        Err(e) => {
            // one user, a fatal database error: record it, the user stays legacy
            let failure = Failure {
                user: ids[0].clone(),
                error: e,
            };
            record_failures(store, &*client, std::slice::from_ref(&failure)).await?;
            Ok(BatchReport {
                failed: vec![failure],
                ..BatchReport::default()
            })
        }
    }
}

/// After a batch failed on a database error: its users one by one, each in
/// a savepoint of the same transaction `tx`, which keeps every claimed
/// row locked meanwhile (no other worker can claim a user between the
/// batch and its retry, so an attempt is counted once). A user whose
/// migration fails on a database error is rolled back to its savepoint
/// and recorded failed; a retryable error or a fault of the tables ends
/// it all, with nobody failed for it.
pub(crate) async fn migrate_each(
    store: &Store,
    tx: &Transaction<'_>,
    ids: &[UserId],
) -> Result<BatchReport> {
    let savepoint = async |sql: &str| {
        tx.batch_execute(sql)
            .await
            .map_err(|e| Error::db(format!("{sql} (retrying a batch user by user)"), e))
    };
    let mut all = BatchReport::default();
    for id in ids {
        savepoint("SAVEPOINT decant_user").await?;
        match migrate_locked_batch(store, tx, std::slice::from_ref(id), LockWait::Wait).await {
            Ok(r) => {
                savepoint("RELEASE SAVEPOINT decant_user").await?;
                all.migrated.extend(r.migrated);
                all.failed.extend(r.failed);
                all.skipped.extend(r.skipped);
            }
            Err(e) if e.is_retryable() || e.is_table_fault() => return Err(e),
            Err(e) => {
                savepoint("ROLLBACK TO SAVEPOINT decant_user").await?;
                let failure = Failure {
                    user: id.clone(),
                    error: e,
                };
                record_failures(store, tx, std::slice::from_ref(&failure)).await?;
                all.failed.push(failure);
            }
        }
    }
    Ok(all)
}

/// Records failures (attempts + 1, reason, error), in the caller's
/// transaction or on its own.
async fn record_failures(store: &Store, conn: &impl Pipe, failures: &[Failure]) -> Result<()> {
    let (ids, reasons, errors) = failure_columns(failures);
    state::record_failed(conn, store.spec.source.id_type, &ids, &reasons, &errors).await
}

/// Failures as the columns the state table records: users, reasons,
/// errors.
fn failure_columns(failures: &[Failure]) -> (Vec<UserId>, Vec<String>, Vec<String>) {
    (
        failures.iter().map(|f| f.user.clone()).collect(),
        failures.iter().map(Failure::reason).collect(),
        failures.iter().map(|f| f.error.to_string()).collect(),
    )
}

/// The body of a batch, on an open transaction; also used by on-demand
/// migration inside a backend call's transaction.
pub(crate) async fn migrate_locked_batch(
    store: &Store,
    tx: &Transaction<'_>,
    ids: &[UserId],
    wait: LockWait,
) -> Result<BatchReport> {
    let locked = store.lock(tx, ids, wait == LockWait::Skip).await?;
    migrate_locked(store, tx, ids, locked).await
}

/// Migrates users whose source rows `tx` holds locked.
pub(crate) async fn migrate_locked(
    store: &Store,
    tx: &Transaction<'_>,
    ids: &[UserId],
    locked: Vec<Locked>,
) -> Result<BatchReport> {
    let prepared = prepare(&store.spec, ids, locked);
    write_prepared(store, tx, prepared, None).await
}

/// A user whose blob is exploded and verified, ready to be written.
#[derive(Debug)]
pub(crate) struct Ready {
    /// The source row as read.
    pub source: Locked,
    /// Its rows and residual.
    exploded: Exploded,
    /// The blob the fixups repaired and what they did (none changed it:
    /// `None`).
    fixed: Option<(Value, Vec<fixup::Applied>)>,
}

/// A batch after the client's work (parse, fixups, explode, verify) and
/// before any write: what [`write_prepared`] writes.
#[derive(Debug, Default)]
pub(crate) struct Prepared {
    /// Users ready to be written, in the order read.
    pub ready: Vec<Ready>,
    /// Users that failed (invalid blob, rows that do not rebuild it).
    pub failed: Vec<Failure>,
    /// Users not touched: already migrated or gone.
    pub skipped: Vec<UserId>,
}

impl Prepared {
    /// Adds another batch's users.
    pub fn extend(&mut self, other: Prepared) {
        self.ready.extend(other.ready);
        self.failed.extend(other.failed);
        self.skipped.extend(other.skipped);
    }
}

/// The client's part of migrating `locked` (the source rows of `ids` as
/// read): parse each blob, apply the fixups, explode it and check that its
/// rows and residual rebuild it exactly. It needs no database, so the
/// daemon does it before it locks anyone; what the database stores is
/// checked again by [`write_prepared`] when it may differ from what was
/// sent.
pub(crate) fn prepare(
    spec: &crate::core::spec::Spec,
    ids: &[UserId],
    locked: Vec<Locked>,
) -> Prepared {
    let mut out = Prepared::default();
    let present: std::collections::HashSet<&UserId> = locked.iter().map(|l| &l.id).collect();
    out.skipped
        .extend(ids.iter().filter(|id| !present.contains(*id)).cloned());
    for l in locked {
        if l.migrated {
            out.skipped.push(l.id);
            continue;
        }
        let verdict = prepare_one(spec, &l);
        match verdict {
            Ok((exploded, fixed)) => out.ready.push(Ready {
                source: l,
                exploded,
                fixed,
            }),
            Err(error) => out.failed.push(Failure { user: l.id, error }),
        }
    }
    out
}

/// [`prepare`] for one legacy user: its rows and residual, verified, and
/// what the fixups did.
#[allow(clippy::type_complexity)]
fn prepare_one(
    spec: &crate::core::spec::Spec,
    l: &Locked,
) -> Result<(Exploded, Option<(Value, Vec<fixup::Applied>)>)> {
    let blob = l.blob.parse(&l.id, spec.settings.max_depth)?;
    let blob = if spec.fixups.is_empty() {
        Parsed::Text(blob)
    } else {
        let mut value = blob.to_value();
        let mut applied = fixup::Fixup::apply_all(&mut value, &spec.fixups);
        if l.blob.is_sql_null() {
            fixup::mark_sql_null(&mut applied);
        }
        if applied.is_empty() {
            Parsed::Text(blob)
        } else {
            check_depth(&l.id, &value, spec.settings.max_depth)?;
            Parsed::Fixed(value, applied)
        }
    };
    let e = blob.explode(spec).map_err(|invalid| Error::Invalid {
        user: l.id.clone(),
        invalid,
    })?;
    if let Some(detail) = verify(spec, &blob, &e.rows, &e.residual) {
        return Err(Error::Verification {
            user: l.id.clone(),
            detail,
        });
    }
    let fixed = match blob {
        Parsed::Fixed(v, applied) => Some((v, applied)),
        Parsed::Text(_) => None,
    };
    Ok((e, fixed))
}

/// Why `rows` and `residual` do not rebuild `blob` (`None`: they do).
fn verify(
    spec: &crate::core::spec::Spec,
    blob: &Parsed<'_>,
    rows: &[Row],
    residual: &Value,
) -> Option<String> {
    match explode::reconstruct(spec, rows, residual) {
        Ok(rebuilt) if blob.same(&rebuilt) => None,
        Ok(rebuilt) => json_diff(&rebuilt, &blob.value(), &mut String::new())
            .or_else(|| Some("the rebuilt blob differs".into())),
        Err(e) => Some(e),
    }
}

/// Writes a prepared batch in `tx`, which holds its users' source rows
/// locked, unchanged since they were read: each user's rows, its residual
/// in place of its blob, its flag and its state; failures recorded.
/// `first` (a simple statement such as a `SAVEPOINT`) goes out ahead of
/// the first statement, in the same round trip.
pub(crate) async fn write_prepared(
    store: &Store,
    tx: &Transaction<'_>,
    prepared: Prepared,
    first: Option<&'static str>,
) -> Result<BatchReport> {
    let spec = &store.spec;
    let Prepared {
        ready: mut todo,
        failed,
        skipped,
    } = prepared;
    for f in &failed {
        match &f.error {
            Error::Verification { user, detail } => {
                tracing::error!(user = %user, %detail, "verification failed; user stays legacy");
            }
            Error::Unreadable { user, detail } => {
                tracing::error!(user = %user, %detail, "cannot read the blob; user stays legacy");
            }
            _ => {}
        }
    }
    let mut report = BatchReport {
        failed,
        skipped,
        ..BatchReport::default()
    };

    // rows already there (another tool, a hand fix) would be adopted into
    // the migrated state unseen: such users fail instead
    let exploded: Vec<UserId> = todo.iter().map(|r| r.source.id.clone()).collect();
    let has_rows = store.users_with_rows(tx, &exploded, first).await?;
    if !has_rows.is_empty() {
        todo.retain(|r| match has_rows.get(&r.source.id) {
            Some(table) => {
                report.failed.push(Failure {
                    user: r.source.id.clone(),
                    error: Error::HasRows {
                        user: r.source.id.clone(),
                        table: table.clone(),
                    },
                });
                false
            }
            None => true,
        });
    }

    let rows: Vec<(&UserId, &Row)> = todo
        .iter()
        .flat_map(|r| r.exploded.rows.iter().map(move |row| (&r.source.id, row)))
        .collect();
    // The sent rows rebuild each blob (`prepare` checked); when the
    // database stored other values (a trigger, a conversion), the insert
    // says which users', and those fail, named with what the stored rows
    // rebuild.
    let differs = store.insert_rows(tx, &rows).await?;
    if !differs.is_empty() {
        let mut bad = Vec::new();
        todo.retain(|r| {
            let Some(back) = differs.get(&r.source.id) else {
                return true;
            };
            let e = &r.exploded;
            let rebuilt = match &r.fixed {
                Some((v, _)) => Some(verify(
                    spec,
                    &Parsed::Fixed(v.clone(), Vec::new()),
                    back,
                    &e.residual,
                )),
                None => r
                    .source
                    .blob
                    .parse(&r.source.id, spec.settings.max_depth)
                    .ok()
                    .map(|j| verify(spec, &Parsed::Text(j), back, &e.residual)),
            };
            let detail = rebuilt.flatten().unwrap_or_else(|| {
                format!(
                    "the database stored {} rows that differ from the {} written",
                    back.len(),
                    e.rows.len()
                )
            });
            bad.push((r.source.id.clone(), detail));
            false
        });
        let ids: Vec<UserId> = bad.iter().map(|b| b.0.clone()).collect();
        store.delete_rows(tx, &ids).await?;
        for (user, detail) in bad {
            tracing::error!(user = %user, %detail, "verification failed; user stays legacy");
            report.failed.push(Failure {
                user: user.clone(),
                error: Error::Verification { user, detail },
            });
        }
    }

    // the residuals and flags, the migrated users' and the failed users'
    // states: sent together, one round trip
    // (a blob that was SQL NULL and stays whole in the residual stays so)
    let blobs: Vec<BlobWrite> = todo
        .iter()
        .map(|r| BlobWrite {
            user: &r.source.id,
            blob: &r.exploded.residual,
            migrated: true,
            sql_null: r.source.blob.is_sql_null() && r.exploded.residual.is_null(),
        })
        .collect();
    let ids: Vec<UserId> = todo.iter().map(|r| r.source.id.clone()).collect();
    let warnings: Vec<Option<Value>> = todo
        .iter()
        .map(|r| warnings_record(&r.exploded.warnings))
        .collect();
    let fixups: Vec<Option<Value>> = todo
        .iter()
        .map(|r| {
            r.fixed
                .as_ref()
                .and_then(|(_, applied)| serde_json::to_value(applied).ok())
        })
        .collect();
    let (failed_ids, reasons, errors) = failure_columns(&report.failed);
    let ty = store.spec.source.id_type;
    let mut stmts: Vec<Planned> = store.blobs_statement(&blobs).into_iter().collect();
    if !ids.is_empty() {
        stmts.push(state::migrated(
            ty,
            &ids,
            &warnings,
            &fixups,
            &store.fingerprint,
        ));
    }
    if !failed_ids.is_empty() {
        stmts.push(state::failed(ty, &failed_ids, &reasons, &errors));
    }
    let replies = pipeline(tx, None, &stmts, None, Error::db_at).await?;
    drop(stmts);
    if !blobs.is_empty() {
        crate::pg::store::written(store, &blobs, &replies[0])?;
    }
    drop(blobs);
    report.migrated = todo
        .into_iter()
        .map(|r| Migrated {
            user: r.source.id,
            rows: r.exploded.rows.len(),
            warnings: r.exploded.warnings,
            fixups: r
                .fixed
                .map(|(_, applied)| applied.into_iter().map(|a| a.fixup).collect())
                .unwrap_or_default(),
        })
        .collect();
    Ok(report)
}

/// Rolls `ids` back in one transaction: rebuilds each blob from its rows,
/// writes it, clears the flag, deletes the rows and holds the user out of
/// the migration (state `held`, until `decant release`). Returns the users
/// rolled back (users not migrated are left alone).
pub(crate) async fn rollback_batch(
    store: &Store,
    client: &mut Object,
    ids: &[UserId],
    wait: LockWait,
) -> Result<Vec<UserId>> {
    let tx = pool::batch_transaction(client, "a rollback batch").await?;
    // finalized (perhaps since this handle read the phase): the views and
    // the backends read the tables alone, so a blob brought back would
    // take the user's data out of their sight
    let finalized: bool = tx
        .query_one(
            "SELECT coalesce((SELECT finalized FROM decant.control), false)",
            &[],
        )
        .await
        .map_err(|e| Error::db_own("reading the phase", e))?
        .get(0);
    if finalized {
        return Err(Error::finalized());
    }
    let locked = store.lock(&tx, ids, wait == LockWait::Skip).await?;
    let (done, failed) = rollback_locked(store, &tx, locked).await?;
    if let Some(f) = failed.into_iter().next() {
        return Err(f.error);
    }
    tx.commit()
        .await
        .map_err(|e| Error::db("committing a rollback", e))?;
    Ok(done)
}

/// Rolls back the migrated users among `locked` (rows locked by `tx`):
/// the users rolled back, and those whose rows do not rebuild a blob (left
/// migrated, untouched).
pub(crate) async fn rollback_locked(
    store: &Store,
    tx: &Transaction<'_>,
    locked: Vec<Locked>,
) -> Result<(Vec<UserId>, Vec<Failure>)> {
    let migrated: Vec<Locked> = locked.into_iter().filter(|l| l.migrated).collect();
    let users: Vec<UserId> = migrated.iter().map(|l| l.id.clone()).collect();
    let mut stored: HashMap<UserId, Vec<Row>> = store.read_rows(tx, &users).await?;
    let mut fixed: HashMap<UserId, Value> =
        state::fixups_of(&**tx, store.spec.source.id_type, &users).await?;
    let mut blobs: Vec<(UserId, Value, bool)> = Vec::with_capacity(migrated.len());
    let mut failed = Vec::new();
    for l in &migrated {
        // a blob that was SQL NULL comes back so: kept whole as the residual,
        // or made `{}` by a fixup on `$` that recorded it
        let mut sql_null = l.blob.is_sql_null();
        let rows = stored.remove(&l.id).unwrap_or_default();
        let rebuilt = l
            .blob
            .value(&l.id, store.spec.settings.max_depth)
            .and_then(|residual| {
                let mut blob =
                    explode::reconstruct(&store.spec, &rows, &residual).map_err(|detail| {
                        Error::Verification {
                            user: l.id.clone(),
                            detail: format!("cannot rebuild the blob for rollback: {detail}"),
                        }
                    })?;
                // the fixups applied when it migrated, undone last first
                if let Some(record) = fixed.remove(&l.id) {
                    let applied: Vec<fixup::Applied> =
                        serde_json::from_value(record).map_err(|e| Error::Verification {
                            user: l.id.clone(),
                            detail: format!("its fixup record is unreadable: {e}"),
                        })?;
                    sql_null |= fixup::was_sql_null(&applied);
                    fixup::undo(&mut blob, &applied, &store.spec.fixups).map_err(|detail| {
                        Error::Verification {
                            user: l.id.clone(),
                            detail: format!("cannot undo its fixups: {detail}"),
                        }
                    })?;
                }
                Ok(blob)
            });
        match rebuilt {
            Ok(blob) => {
                let sql_null = sql_null && blob.is_null();
                blobs.push((l.id.clone(), blob, sql_null))
            }
            Err(error) => failed.push(Failure {
                user: l.id.clone(),
                error,
            }),
        }
    }
    let done: Vec<UserId> = blobs.iter().map(|(id, ..)| id.clone()).collect();
    let items: Vec<BlobWrite> = blobs
        .iter()
        .map(|(user, blob, sql_null)| BlobWrite {
            user,
            blob,
            migrated: false,
            sql_null: *sql_null,
        })
        .collect();
    store.write_blobs(tx, &items).await?;
    store.delete_rows(tx, &done).await?;
    state::record_held(&**tx, store.spec.source.id_type, &done).await?;
    Ok((done, failed))
}

/// A user's warnings as `decant.user_state` records them: a JSON array of
/// texts, or NULL for none.
pub(crate) fn warnings_record(warnings: &[explode::Invalid]) -> Option<Value> {
    (!warnings.is_empty()).then(|| {
        Value::Array(
            warnings
                .iter()
                .map(|w| Value::String(w.to_string()))
                .collect(),
        )
    })
}
