//! The compatibility layer the game backend links: every call runs in one
//! transaction that first reads the user's `migrated` flag under a row lock
//! (`FOR NO KEY UPDATE`), then takes the old (blob) or the new (tables) code
//! path. The lock makes a call and that user's migration or rollback
//! strictly ordered, so no write is lost in between.

use crate::core::explode::{self, Exploded, Row};
use crate::core::id::UserId;
use crate::core::spec::Spec;
use crate::error::{Error, Result};
use crate::migrate::{self, BatchReport, LockWait};
use crate::pg::codec::check_depth;
use crate::pg::control::{self, Setting};
use crate::pg::pool;
use crate::pg::session::{Lent, Planned, Session};
use crate::pg::store::{Locked, Store};
use deadpool_postgres::{Pool, Transaction};
use serde_json::{Map, Value};
use std::sync::Arc;

/// What a handle found of its spec's mapping against the recorded one,
/// and when.
type Known = (std::result::Result<(), String>, std::time::Instant);

/// How long a handle keeps a mapping mismatch before it checks again.
const MISMATCH_KEPT: std::time::Duration = std::time::Duration::from_secs(2);

/// A handle on one database and one mapping spec: the compatibility layer
/// (`migration_compatible_transaction`, `load`, `save`, `patch`, `modify`)
/// and the migration of single users. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Decant {
    pool: Pool,
    store: Arc<Store>,
    /// Whether the spec's mapping is the one recorded by `init`, and when
    /// that was found (checked at the first call; a match is kept until a
    /// call finds decant's objects changed, a mismatch for a moment, a
    /// database error not at all).
    identity: Arc<std::sync::Mutex<Option<Known>>>,
}

impl Decant {
    /// Connects with a pool of `size` sessions. Each session carries the
    /// spec's `lock_timeout` and `statement_timeout` (startup options,
    /// checked once per new session) and keeps its prepared statements:
    /// connect to PostgreSQL directly, not through a pooler in transaction
    /// mode (a session without its limits is refused, saying so).
    pub fn connect(url: &str, spec: Spec, size: usize) -> Result<Decant> {
        let pool = pool::pool(url, &spec.settings, size)?;
        Ok(Decant::with_pool(pool, spec))
    }

    /// Uses an existing pool (whose sessions should set `lock_timeout`).
    pub fn with_pool(pool: Pool, spec: Spec) -> Decant {
        Decant {
            pool,
            store: Arc::new(Store::new(Arc::new(spec))),
            identity: Arc::new(std::sync::Mutex::new(None)),
        }
    }

    /// The spec in use.
    pub fn spec(&self) -> &Spec {
        &self.store.spec
    }

    /// The pool the handle's calls take their sessions from: for the
    /// backend's own statements on the same sessions (and their settings).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Refuses to read or write users with a spec whose mapping is not the
    /// one recorded by `init`, and picks the phase's statements (once the
    /// migration is finalized, none reads the flag): one check per handle,
    /// at its first call.
    pub(crate) async fn verified(&self) -> Result<()> {
        let known = self.identity.lock().expect("not poisoned").clone();
        match known {
            Some((Ok(()), _)) => return Ok(()),
            // a handle made with a new spec before `init --evolve` recorded
            // it works once it has
            Some((Err(detail), at)) if at.elapsed() < MISMATCH_KEPT => {
                return Err(Error::SpecMismatch { detail });
            }
            _ => {}
        }
        let client = pool::get(&self.pool).await?;
        match crate::pg::identity::verify(&**client, &self.store.spec, false).await {
            Ok(()) => {
                crate::pg::identity::require_reader(&**client, &self.store.spec).await?;
                // no control row (deleted by hand): not finalized
                let row = client
                    .query_one(
                        "SELECT coalesce((SELECT finalized FROM decant.control), false)",
                        &[],
                    )
                    .await
                    .map_err(|e| Error::db_own("reading the phase", e))?;
                self.store.set_finalized(row.get(0));
                self.know(Ok(()));
                Ok(())
            }
            Err(Error::SpecMismatch { detail }) => {
                self.know(Err(detail.clone()));
                Err(Error::SpecMismatch { detail })
            }
            Err(e) => Err(e),
        }
    }

    fn know(&self, known: std::result::Result<(), String>) {
        *self.identity.lock().expect("not poisoned") = Some((known, std::time::Instant::now()));
    }

    /// A call's error, checked against a change of the recorded mapping:
    /// `init` with another mapping (`init --evolve`) replaces the function
    /// the calls read migrated users' rows with, so a handle made with the
    /// old spec fails on it (undefined function) and is refused from then
    /// on, naming the change, instead of reading and writing migrated
    /// users through a mapping that no longer is theirs.
    async fn recheck(&self, e: Error) -> Error {
        if !matches!(e.sqlstate(), Some("42883" | "42P01" | "42703")) {
            return e;
        }
        *self.identity.lock().expect("not poisoned") = None;
        match self.verified().await {
            Err(Error::SpecMismatch { detail }) => {
                let detail = format!(
                    "{detail}. The mapping recorded by `decant init` changed while this handle \
                     was in use (`init --evolve`?): restart the backend with the spec `init` \
                     recorded"
                );
                self.know(Err(detail.clone()));
                Error::SpecMismatch { detail }
            }
            _ => e,
        }
    }

    /// `user` in the kind of the spec's id column (see [`IdType::coerce`]).
    pub(crate) fn id(&self, user: impl Into<UserId>) -> Result<UserId> {
        self.store
            .spec
            .source
            .id_type
            .coerce(user.into())
            .map_err(Error::Setup)
    }

    /// `users` in the kind of the spec's id column.
    pub(crate) fn ids<U: Into<UserId> + Clone>(&self, users: &[U]) -> Result<Vec<UserId>> {
        users.iter().map(|u| self.id(u.clone())).collect()
    }

    pub(crate) fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Changes the control row every running daemon obeys (pause, rate,
    /// batch size, rollout), as `decant set` does.
    pub async fn set_control(&self, setting: &Setting) -> Result<()> {
        let client = pool::get(&self.pool).await?;
        control::set(&**client, setting).await
    }

    /// Runs `old` (the blob code path) or `new` (the normalized code path)
    /// on one open transaction, chosen by the user's `migrated` flag read
    /// under a row lock at its start; commits on `Ok`, rolls back on `Err`.
    ///
    /// The lock wait is bounded by `lock_timeout`; exceeding it gives
    /// [`Error::LockTimeout`], which [`Error::is_retryable`].
    pub async fn migration_compatible_transaction<T, E, Old, New>(
        &self,
        user: impl Into<UserId>,
        old: Old,
        new: New,
    ) -> std::result::Result<T, E>
    where
        E: From<Error>,
        Old: AsyncFnOnce(&Transaction<'_>) -> std::result::Result<T, E>,
        New: AsyncFnOnce(&Transaction<'_>) -> std::result::Result<T, E>,
    {
        let user = &self.id(user)?;
        self.verified().await?;
        let mut lent = Lent::new(pool::get(&self.pool).await?);
        let out = async {
            let tx = lent
                .client()
                .transaction()
                .await
                .map_err(|e| Error::db_user(user, "beginning a transaction", e))?;
            let locked = self.lock_for_write(&tx, user).await?;
            let out = if locked.migrated {
                new(&tx).await
            } else {
                old(&tx).await
            };
            match out {
                Ok(v) => {
                    // a statement that failed (its error ignored by the
                    // closure) aborted the transaction, and PostgreSQL
                    // answers COMMIT with a rollback and no error: ask first
                    if let Err(e) = tx.batch_execute("SELECT 1").await {
                        let _ = tx.rollback().await;
                        // 25P02 is that; anything else (a session closed
                        // or terminated) is no fault of the closure's
                        let what = if e.code()
                            == Some(&tokio_postgres::error::SqlState::IN_FAILED_SQL_TRANSACTION)
                        {
                            "the transaction was aborted by a failed statement whose error the \
                             closure did not return; nothing was committed"
                        } else {
                            "the session was lost before the commit (the closure's statements \
                             were not committed)"
                        };
                        return Err(Error::db_user(user, what, e).into());
                    }
                    tx.commit()
                        .await
                        .map_err(|e| Error::db_user(user, "committing", e))?;
                    Ok(v)
                }
                Err(e) => {
                    // the error that matters is the closure's; a failed
                    // rollback only means the session is gone, which aborts it
                    let _ = tx.rollback().await;
                    Err(e)
                }
            }
        }
        .await;
        lent.done();
        out
    }

    async fn lock_one(&self, tx: &Transaction<'_>, user: &UserId) -> Result<Locked> {
        self.store
            .lock(tx, std::slice::from_ref(user), false)
            .await?
            .pop()
            .ok_or_else(|| Error::UserNotFound(user.clone()))
    }

    /// Locks a user about to be written; a legacy user in the rollout is
    /// migrated first, inside the same lock (on-demand migration). If that
    /// migration fails, the user stays legacy and the write goes to the blob.
    async fn lock_for_write(&self, tx: &Transaction<'_>, user: &UserId) -> Result<Locked> {
        let stmt = tx
            .prepare_cached(&self.store.sql().lock_call)
            .await
            .map_err(|e| Error::db_user(user, "preparing the lock", e))?;
        let max = self.store.spec.settings.max_attempts;
        let row = tx
            .query_opt(&stmt, &[user, &max])
            .await
            .map_err(|e| Error::db_user(user, "locking the source row", e))?
            .ok_or_else(|| Error::UserNotFound(user.clone()))?;
        let locked = Locked {
            id: row.get(0),
            blob: row.get(1),
            migrated: row.get(2),
        };
        if !row.get::<_, bool>(3) {
            return Ok(locked);
        }
        // asked again now that the lock is held: the locking statement's
        // own test kept its snapshot from before a wait (a rollback that
        // held the lock and marked the user held would be undone)
        let again = tx
            .prepare_cached(&self.store.sql().on_demand_again)
            .await
            .map_err(|e| Error::db_user(user, "preparing the on-demand test", e))?;
        let again = tx
            .query_one(&again, &[user, &max])
            .await
            .map_err(|e| Error::db_user(user, "testing on-demand migration under the lock", e))?;
        if !again.get::<_, bool>(0) {
            return Ok(locked);
        }
        // a savepoint, so that a database error in the migration leaves the
        // call itself intact
        let savepoint = |sql: &'static str| async move {
            tx.batch_execute(sql)
                .await
                .map_err(|e| Error::db_user(user, "on-demand migration savepoint", e))
        };
        savepoint("SAVEPOINT decant_on_demand").await?;
        match migrate::migrate_locked(&self.store, tx, std::slice::from_ref(user), vec![locked])
            .await
        {
            Ok(report) => {
                savepoint("RELEASE SAVEPOINT decant_on_demand").await?;
                if let Some(f) = report.failed.first() {
                    tracing::warn!(user = %user, cause = %f.error, "on-demand migration failed; user stays legacy");
                } else {
                    tracing::debug!(user = %user, "migrated on demand");
                }
            }
            Err(e) => {
                savepoint("ROLLBACK TO SAVEPOINT decant_on_demand").await?;
                tracing::warn!(user = %user, cause = %e, "on-demand migration failed; user stays legacy");
            }
        }
        // the row is still locked by this transaction: re-reading is instant
        self.lock_one(tx, user).await
    }

    /// Writes one user: `change` gets the user as locked (and a migrated
    /// user's rows) and returns the blob to write, which is returned.
    ///
    /// Two round trips: `BEGIN`, the lock and the read of the user's rows
    /// go out together (the read runs after the lock is granted, so it sees
    /// the rows that go with the flag; for a legacy user it reads nothing,
    /// its per-table scans gated off by the flag); then the writes and
    /// `COMMIT`. A legacy user in the rollout, to migrate on demand first,
    /// takes the path of [`Decant::write_user_in_tx`].
    async fn write_user(
        &self,
        user: &UserId,
        change: impl FnOnce(&Locked, &[Row]) -> Result<(Value, bool)>,
    ) -> Result<Value> {
        self.verified().await?;
        let sql = &self.store.sql();
        let max = self.store.spec.settings.max_attempts;
        let mut session = Session::new(pool::get(&self.pool).await?, user.clone());
        let read = session
            .begin_with(vec![
                Planned::new(
                    &sql.lock_call,
                    vec![Box::new(user.clone()), Box::new(max)],
                    "locking the source row",
                ),
                Planned::new(
                    &sql.rows_one,
                    vec![Box::new(user.clone())],
                    "reading the user's rows",
                ),
            ])
            .await;
        let mut read = match read {
            Ok(read) => read,
            Err(e) => return Err(self.recheck(e).await),
        };
        let rows = read.pop().unwrap_or_default();
        let Some(lock) = read.pop().and_then(|mut r| r.pop()) else {
            session.rollback().await;
            return Err(Error::UserNotFound(user.clone()));
        };
        if lock.get::<_, bool>(3) {
            session.rollback().await;
            return self.write_user_in_tx(user, change).await;
        }
        let locked = Locked {
            id: lock.get(0),
            blob: lock.get(1),
            migrated: lock.get(2),
        };
        let old = match rows.first() {
            Some(r) if locked.migrated => self.store.decode_rows(r),
            _ => Vec::new(),
        };
        let written = change(&locked, &old).and_then(|(blob, changed)| {
            let new = self.plan_write(&locked, &blob)?;
            Ok((blob, changed, new))
        });
        let (blob, changed, new) = match written {
            Ok(w) => w,
            Err(e) => {
                session.rollback().await;
                return Err(e);
            }
        };
        let stmts = self.write_statements(&locked, &blob, &old, &new, changed);
        session.commit_with(stmts).await?;
        Ok(blob)
    }

    /// [`Decant::write_user`] in a plain transaction, with on-demand
    /// migration first.
    async fn write_user_in_tx(
        &self,
        user: &UserId,
        change: impl FnOnce(&Locked, &[Row]) -> Result<(Value, bool)>,
    ) -> Result<Value> {
        let mut lent = Lent::new(pool::get(&self.pool).await?);
        let out = self.write_user_on(lent.client(), user, change).await;
        lent.done();
        out
    }

    async fn write_user_on(
        &self,
        client: &mut deadpool_postgres::Object,
        user: &UserId,
        change: impl FnOnce(&Locked, &[Row]) -> Result<(Value, bool)>,
    ) -> Result<Value> {
        let tx = client
            .transaction()
            .await
            .map_err(|e| Error::db_user(user, "beginning a transaction", e))?;
        let locked = self.lock_for_write(&tx, user).await?;
        let old = if locked.migrated {
            self.store
                .read_rows(&tx, std::slice::from_ref(user))
                .await?
                .remove(user)
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let (blob, changed) = change(&locked, &old)?;
        let new = self.plan_write(&locked, &blob)?;
        let stmts = self.write_statements(&locked, &blob, &old, &new, changed);
        self.store.run(&tx, user, stmts).await?;
        tx.commit()
            .await
            .map_err(|e| Error::db_user(user, "committing", e))?;
        Ok(blob)
    }

    /// The user's whole blob as clients know it: the blob itself for a
    /// legacy user, rebuilt from the tables and the residual for a migrated
    /// one. One statement: no row lock, no write, one round trip.
    pub async fn load(&self, user: impl Into<UserId>) -> Result<Value> {
        let user = self.id(user)?;
        self.load_many(std::slice::from_ref(&user))
            .await?
            .pop()
            .map(|(_, blob)| blob)
            .ok_or(Error::UserNotFound(user))
    }

    /// The blobs of many users as clients know them, read by one statement
    /// (one consistent snapshot) without locking: for reports, exports and
    /// verification. Users that do not exist are left out, an id given
    /// twice gives one entry; the order is by id.
    pub async fn load_many<U>(&self, users: &[U]) -> Result<Vec<(UserId, Value)>>
    where
        U: Into<UserId> + Clone,
    {
        self.verified().await?;
        let users = self.ids(users)?;
        let client = pool::get(&self.pool).await?;
        let read = match self.store.snapshot(&client, &users).await {
            Ok(read) => read,
            Err(e) => return Err(self.recheck(e).await),
        };
        read.into_iter()
            .map(|u| {
                let blob = u.blob.value(&u.id, self.max_depth())?;
                if !u.migrated {
                    return Ok((u.id, blob));
                }
                let full =
                    explode::reconstruct(&self.store.spec, &u.rows, &blob).map_err(|detail| {
                        Error::Verification {
                            user: u.id.clone(),
                            detail: format!("cannot rebuild the blob: {detail}"),
                        }
                    })?;
                Ok((u.id, full))
            })
            .collect()
    }

    /// Replaces the user's blob. For a migrated user the changed rows are
    /// upserted, removed rows deleted and the residual rewritten if it
    /// changed; a value a rule finds invalid is kept in the residual
    /// (never refused, never lost) and logged.
    pub async fn save(&self, user: impl Into<UserId>, blob: &Value) -> Result<()> {
        self.write_user(&self.id(user)?, |_, _| Ok((blob.clone(), true)))
            .await
            .map(drop)
    }

    /// Applies an RFC 7396 JSON merge patch to the user's blob and returns
    /// the result.
    pub async fn patch(&self, user: impl Into<UserId>, patch: &Value) -> Result<Value> {
        self.modify_noting(user, |blob| merge_patch_noting(blob, patch))
            .await
    }

    /// Read-modify-write of the user's blob under the row lock (for
    /// increments and other updates that depend on the current value).
    /// Returns the blob as written.
    pub async fn modify(
        &self,
        user: impl Into<UserId>,
        f: impl FnOnce(&mut Value),
    ) -> Result<Value> {
        self.modify_noting(user, |blob| {
            f(blob);
            true
        })
        .await
    }

    /// [`Decant::modify`] with an `f` that says whether it changed the
    /// blob.
    async fn modify_noting(
        &self,
        user: impl Into<UserId>,
        f: impl FnOnce(&mut Value) -> bool,
    ) -> Result<Value> {
        self.write_user(&self.id(user)?, |locked, rows| {
            let mut blob = self.current(locked, rows)?;
            let changed = f(&mut blob);
            Ok((blob, changed))
        })
        .await
    }

    /// The spec's depth limit on blobs.
    fn max_depth(&self) -> usize {
        self.store.spec.settings.max_depth
    }

    /// A locked user's blob as clients know it, rebuilt from its rows
    /// for a migrated user.
    fn current(&self, locked: &Locked, rows: &[Row]) -> Result<Value> {
        let stored = locked.blob.value(&locked.id, self.max_depth())?;
        if !locked.migrated {
            return Ok(stored);
        }
        explode::reconstruct(&self.store.spec, rows, &stored).map_err(|detail| {
            Error::Verification {
                user: locked.id.clone(),
                detail: format!("cannot rebuild the blob: {detail}"),
            }
        })
    }

    /// For a migrated user, the blob to write exploded into rows and
    /// residual (an invalid value is kept in the residual and logged);
    /// `None` for a legacy user, whose blob is written as it is.
    fn plan_write(&self, locked: &Locked, blob: &Value) -> Result<Option<Exploded>> {
        check_depth(&locked.id, blob, self.max_depth())?;
        if !locked.migrated {
            return Ok(None);
        }
        let new = explode::explode_lenient(&self.store.spec, blob);
        for w in &new.warnings {
            tracing::warn!(user = %locked.id, warning = %w, "invalid value kept in the residual");
        }
        Ok(Some(new))
    }

    /// The statements that write a locked user's blob: the blob itself for
    /// a legacy user; for a migrated one the rows that change (`old` are
    /// its rows as stored) and the residual, only if it changes.
    fn write_statements<'a>(
        &'a self,
        locked: &Locked,
        blob: &'a Value,
        old: &'a [Row],
        new: &'a Option<Exploded>,
        changed: bool,
    ) -> Vec<Planned<'a>> {
        let user = &locked.id;
        let Some(new) = new else {
            // a legacy blob a patch left as it was is not written again (a
            // new row version of the whole blob, its WAL, and the daemon
            // would redo the user)
            if !changed {
                return Vec::new();
            }
            return vec![self.store.blob_statement(user, blob, false)];
        };
        let mut stmts = self.store.diff_statements(user, old, &new.rows);
        // a stored residual that does not parse is rewritten
        if locked.blob.value(user, self.max_depth()).ok().as_ref() != Some(&new.residual) {
            stmts.push(self.store.blob_statement(user, &new.residual, true));
        }
        stmts
    }

    /// Migrates one user now, waiting for its row lock up to
    /// `lock_timeout`. A user already migrated is reported as skipped.
    pub async fn migrate_user(&self, user: impl Into<UserId>) -> Result<BatchReport> {
        let user = self.id(user)?;
        self.verified().await?;
        let mut lent = Lent::new(pool::get(&self.pool).await?);
        let report = migrate::migrate_batch(
            &self.store,
            lent.client(),
            std::slice::from_ref(&user),
            LockWait::Wait,
        )
        .await;
        lent.done();
        let report = report?;
        if report.skipped.contains(&user) && !self.exists(&user).await? {
            return Err(Error::UserNotFound(user));
        }
        Ok(report)
    }

    /// Migrates a batch of users in one transaction, skipping users whose
    /// rows live traffic holds locked.
    pub async fn migrate_batch<U>(&self, users: &[U]) -> Result<BatchReport>
    where
        U: Into<UserId> + Clone,
    {
        self.verified().await?;
        let users = self.ids(users)?;
        let mut lent = Lent::new(pool::get(&self.pool).await?);
        let report =
            migrate::migrate_batch(&self.store, lent.client(), &users, LockWait::Skip).await;
        lent.done();
        report
    }

    /// Rolls one user back: rebuilds the whole blob from the tables, clears
    /// the flag, deletes the rows and holds the user out of the migration
    /// (the daemon and on-demand migration leave it legacy until
    /// [`Decant::release`]; [`Decant::migrate_user`] still migrates it).
    /// Returns false if the user was not migrated.
    pub async fn rollback_user(&self, user: impl Into<UserId>) -> Result<bool> {
        let user = self.id(user)?;
        self.verified().await?;
        let mut lent = Lent::new(pool::get(&self.pool).await?);
        let done = migrate::rollback_batch(
            &self.store,
            lent.client(),
            std::slice::from_ref(&user),
            LockWait::Wait,
        )
        .await;
        lent.done();
        let done = done?;
        if done.is_empty() && !self.exists(&user).await? {
            return Err(Error::UserNotFound(user));
        }
        Ok(!done.is_empty())
    }

    /// Of `users`, those a rollback holds out of the migration (until
    /// [`Decant::release`], or [`Decant::migrate_user`] on each).
    pub async fn held_users(&self, users: &[UserId]) -> Result<Vec<UserId>> {
        let users = self.ids(users)?;
        let client = pool::get(&self.pool).await?;
        crate::pg::identity::require_init(&**client).await?;
        crate::pg::state::held(&**client, self.store.spec.source.id_type, &users).await
    }

    /// Puts held users (rolled back; `None`: all of them) back into the
    /// migration; returns how many were held.
    pub async fn release(&self, users: Option<&[UserId]>) -> Result<u64> {
        let users = users.map(|u| self.ids(u)).transpose()?;
        let client = pool::get(&self.pool).await?;
        crate::pg::identity::require_init(&**client).await?;
        crate::pg::identity::require_same_source(&**client, &self.store.spec).await?;
        crate::pg::state::release(&**client, self.store.spec.source.id_type, users.as_deref()).await
    }

    /// Gives failed users (`None`: all of them) their attempts back, so
    /// that the daemon tries them again once their cause is fixed (a
    /// fixup, the spec, their data): those at `max_attempts` are skipped
    /// until then. Returns how many failed users it reset.
    pub async fn retry_failed(&self, users: Option<&[UserId]>) -> Result<u64> {
        let users = users.map(|u| self.ids(u)).transpose()?;
        let client = pool::get(&self.pool).await?;
        crate::pg::identity::require_init(&**client).await?;
        crate::pg::identity::require_same_source(&**client, &self.store.spec).await?;
        crate::pg::state::retry_failed(&**client, self.store.spec.source.id_type, users.as_deref())
            .await
    }

    /// The users of `users` that are not in the source table (in id
    /// order), so that a list of ids handed to `release`, `retry_failed`
    /// or a rollback cohort can say which of them named nobody.
    pub async fn missing_users(&self, users: &[UserId]) -> Result<Vec<UserId>> {
        let users = self.ids(users)?;
        let client = pool::get(&self.pool).await?;
        if crate::pg::identity::initialized(&**client).await? {
            crate::pg::identity::require_same_source(&**client, &self.store.spec).await?;
        }
        crate::pg::state::missing_users(&**client, &self.store.spec, &users).await
    }

    async fn exists(&self, user: &UserId) -> Result<bool> {
        let client = pool::get(&self.pool).await?;
        let row = client
            .query_one(&self.store.sql().exists, &[user])
            .await
            .map_err(|e| Error::db_user(user, "looking the user up", e))?;
        Ok(row.get(0))
    }
}

/// RFC 7396 JSON merge patch: objects merge key by key, `null` removes a
/// key, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    merge_patch_noting(target, patch);
}

/// [`merge_patch`], saying whether the target changed.
fn merge_patch_noting(target: &mut Value, patch: &Value) -> bool {
    let Value::Object(p) = patch else {
        let changed = target != patch;
        if changed {
            *target = patch.clone();
        }
        return changed;
    };
    let mut changed = false;
    if !target.is_object() {
        *target = Value::Object(Map::new());
        changed = true;
    }
    let t = target.as_object_mut().expect("made an object above");
    for (k, v) in p {
        if v.is_null() {
            changed |= t.remove(k).is_some();
        } else {
            changed |= merge_patch_noting(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::{merge_patch, merge_patch_noting};
    use serde_json::json;

    #[test]
    fn a_patch_says_whether_it_changed_the_blob() {
        let blobs = [
            json!({"a": 1, "b": {"c": [1, 2], "d": null}}),
            json!({}),
            json!([1]),
            json!(null),
            json!(5),
        ];
        let patches = [
            json!({}),
            json!({"a": 1}),
            json!({"a": 2}),
            json!({"a": null}),
            json!({"x": null}),
            json!({"b": {"c": [1, 2]}}),
            json!({"b": {"c": [2, 1]}}),
            json!({"b": {"d": null}}),
            json!({"b": {}}),
            json!({"n": {}}),
            json!([1]),
            json!(5),
        ];
        for blob in &blobs {
            for patch in &patches {
                let mut after = blob.clone();
                let changed = merge_patch_noting(&mut after, patch);
                assert_eq!(changed, &after != blob, "{blob} patched with {patch}");
            }
        }
    }

    #[test]
    fn merge_patch_follows_rfc_7396() {
        // the examples of RFC 7396 appendix A
        let cases = [
            (json!({"a":"b"}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"b"}), json!({"b":"c"}), json!({"a":"b","b":"c"})),
            (json!({"a":"b"}), json!({"a":null}), json!({})),
            (
                json!({"a":"b","b":"c"}),
                json!({"a":null}),
                json!({"b":"c"}),
            ),
            (json!({"a":["b"]}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"c"}), json!({"a":["b"]}), json!({"a":["b"]})),
            (
                json!({"a":{"b":"c"}}),
                json!({"a":{"b":"d","c":null}}),
                json!({"a":{"b":"d"}}),
            ),
            (json!({"a":[{"b":"c"}]}), json!({"a":[1]}), json!({"a":[1]})),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a":"b"}), json!(["c"]), json!(["c"])),
            (json!({"a":"foo"}), json!(null), json!(null)),
            (json!({"a":"foo"}), json!("bar"), json!("bar")),
            (json!({"e":null}), json!({"a":1}), json!({"e":null,"a":1})),
            (json!([1, 2]), json!({"a":"b","c":null}), json!({"a":"b"})),
            (
                json!({}),
                json!({"a":{"bb":{"ccc":null}}}),
                json!({"a":{"bb":{}}}),
            ),
        ];
        for (mut target, patch, want) in cases {
            merge_patch(&mut target, &patch);
            assert_eq!(target, want, "patch {patch}");
        }
    }
}
