//! What a worker does with a batch: the job. The daemon's loop (pace,
//! windows, throttling, cursor, batch size) is the same whatever the job;
//! migrating legacy users is one job, and bulk rollback will be another.

use crate::core::id::UserId;
use crate::error::{Error, Result};
use crate::migrate::{self, Failure};
use crate::pg::session::{Planned, pipeline};
use crate::pg::store::{Locked, Store};
use crate::pg::{pool, state};
use deadpool_postgres::Object;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

/// What one claim-and-work step of a job did.
#[derive(Debug, Clone)]
pub(crate) struct Claimed {
    /// Users claimed (0: nothing after the cursor).
    pub users: usize,
    /// The last id claimed: the next claim starts after it (`None`: from
    /// the first user).
    pub last_id: Option<UserId>,
    /// Users done (for `run`: migrated and verified).
    pub done: u64,
    /// Users that failed (they stay as they were).
    pub failed: u64,
    /// Rows written.
    pub rows: u64,
    /// Of the users done, those whose residual keeps values their rules
    /// refuse (warnings recorded in `decant.user_state`).
    pub warned: u64,
    /// The claimed users' blobs' stored size, bytes (`pg_column_size`:
    /// compressed or not; 0: the job does not size its batches by them).
    pub bytes: u64,
    /// Whether the bytes cut the batch short of its count.
    pub cut: bool,
    /// How long the users were locked, when only part of the step
    /// (`None`: the whole step was one locking transaction).
    pub held: Option<std::time::Duration>,
    /// Users whose row changed between the read and the lock (redone).
    pub redone: u64,
    /// Transactions the step ran (committed or rolled back), which the
    /// load yield subtracts from the server's count.
    pub xacts: u64,
}

impl Claimed {
    /// Nothing claimed after `cursor`.
    fn nothing(cursor: Option<UserId>) -> Claimed {
        Claimed {
            users: 0,
            last_id: cursor,
            done: 0,
            failed: 0,
            rows: 0,
            warned: 0,
            bytes: 0,
            cut: false,
            held: None,
            redone: 0,
            // the read (or claim) that found nothing
            xacts: 1,
        }
    }
}

/// Runs a claim (`SELECT id, blob, flag ... FOR NO KEY UPDATE SKIP
/// LOCKED`) in `tx`: the users it locked, in id order.
async fn claim_rows(
    tx: &deadpool_postgres::Transaction<'_>,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    what: &str,
) -> Result<Vec<Locked>> {
    let stmt = tx
        .prepare_cached(sql)
        .await
        .map_err(|e| Error::db(format!("preparing the claim of {what}"), e))?;
    Ok(tx
        .query(&stmt, params)
        .await
        .map_err(|e| Error::db(format!("claiming {what}"), e))?
        .iter()
        .map(|r| Locked {
            id: r.get(0),
            blob: r.get(1),
            migrated: r.get(2),
        })
        .collect())
}

/// A unit of work the daemon's loop repeats: claim the next users after a
/// cursor with `SKIP LOCKED` and do them in one transaction.
pub(crate) trait Job: Send + Sync + 'static {
    /// Users the job could still take (the progress total, and whether a
    /// pass that claimed nothing is the end).
    fn remaining(&self, client: &Object) -> impl Future<Output = Result<i64>> + Send;

    /// Claims up to `size` users after `cursor` and does them in one
    /// transaction, stopping at the user that would take the batch's size
    /// over `budget` bytes (taking the first whatever its size): a legacy
    /// user's size is its blob as stored, a migrated user's its rows
    /// ([`ROW_BYTES`] each) and its stored residual.
    fn batch(
        &self,
        client: &mut Object,
        cursor: Option<UserId>,
        size: u32,
        budget: u64,
    ) -> impl Future<Output = Result<Claimed>> + Send;
}

/// Migrating legacy users: the job of `decant run`.
pub(crate) struct MigrateJob {
    pub store: Arc<Store>,
    /// The run's start on the server clock: users that failed since are
    /// not claimed again in this run.
    pub run_start: SystemTime,
    /// Only users in the rollout.
    pub rollout_only: bool,
    /// Held while a worker of this process reads its next batch (the
    /// shared pass row's lock orders the workers of every process).
    turn: tokio::sync::Mutex<()>,
}

/// What `decant run --dry-run` found: the batch the daemon would claim
/// now, migrated and verified in a transaction that is rolled back.
#[derive(Debug)]
pub struct DryRun {
    /// Users claimed, in id order.
    pub claimed: Vec<UserId>,
    /// What migrating them did before the rollback.
    pub report: migrate::BatchReport,
    /// How long the batch transaction took (its lock hold).
    pub elapsed: std::time::Duration,
}

impl MigrateJob {
    /// The job of a run that started at `run_start` (server clock).
    pub fn new(store: Arc<Store>, run_start: SystemTime, rollout_only: bool) -> MigrateJob {
        MigrateJob {
            store,
            run_start,
            rollout_only,
            turn: tokio::sync::Mutex::new(()),
        }
    }

    /// Claims up to `size` users after `cursor` as the daemon does (`SKIP
    /// LOCKED`): the ids claimed, and the users to migrate (those that
    /// failed in this run meanwhile, on another worker, left out).
    async fn claim(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        cursor: Option<UserId>,
        size: u32,
    ) -> Result<(Vec<UserId>, Vec<Locked>)> {
        let store = &*self.store;
        let sql = store.sql();
        let claim = match (self.rollout_only, cursor.is_none()) {
            (true, false) => &sql.claim_rollout,
            (true, true) => &sql.claim_rollout_first,
            (false, false) => &sql.claim,
            (false, true) => &sql.claim_first,
        };
        let mut locked = claim_rows(
            tx,
            claim,
            &[
                &cursor,
                &store.spec.settings.max_attempts,
                &self.run_start,
                &i64::from(size),
            ],
            "legacy users",
        )
        .await?;
        let claimed: Vec<UserId> = locked.iter().map(|l| l.id.clone()).collect();
        if claimed.is_empty() {
            return Ok((claimed, locked));
        }
        let recheck = state::failed_meanwhile(
            store.spec.source.id_type,
            &claimed,
            store.spec.settings.max_attempts,
            &self.run_start,
        );
        let failed: Vec<UserId> = pipeline(tx, None, &[recheck], None, Error::db_at)
            .await?
            .concat()
            .iter()
            .map(|r| r.get(0))
            .collect();
        locked.retain(|l| !failed.contains(&l.id));
        Ok((claimed, locked))
    }

    /// Step 1 of a batch: reads up to `size` claimable users after the
    /// furthest any worker has read (from the first user when `cursor` is
    /// `None`: a new pass), without locking them, and moves the shared
    /// pass on; with each row's version (`xmin`), the blobs' stored size,
    /// and whether `budget` cut the batch short: it stops before the user
    /// whose blob would take that size over `budget` bytes (the first is
    /// taken whatever its size).
    async fn peek(
        &self,
        client: &mut Object,
        cursor: Option<UserId>,
        size: u32,
        budget: u64,
    ) -> Result<(Vec<Locked>, HashMap<UserId, String>, u64, bool)> {
        let store = &*self.store;
        let spec = &store.spec;
        // one worker at a time, of this process (no lock wait for its
        // peers) and of every other (the pass row's lock)
        let _turn = self.turn.lock().await;
        let sql = store.sql();
        let tx = pool::batch_transaction(client, "reading a batch").await?;
        // the pass row is a hint (lost in a crash, the next read only
        // starts further back): its commit need not wait for the disk
        tx.batch_execute("SET LOCAL synchronous_commit = off")
            .await
            .map_err(|e| Error::db("reading a batch", e))?;
        let furthest: Option<UserId> = tx
            .query_opt(&sql.pass_read, &[])
            .await
            .map_err(|e| {
                if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) {
                    Error::Setup(
                        "the database lacks decant.pass, the row this version's daemons \
                         share their pass through: run `decant init` (idempotent) with \
                         this version and spec"
                            .into(),
                    )
                } else {
                    Error::db("reading the daemons' pass (decant.pass)", e)
                }
            })?
            .and_then(|r| r.get(0));
        // a pass starts over from the first user; else after the
        // furthest read by any worker
        let from = if cursor.is_none() {
            None
        } else {
            cursor.clone().max(furthest)
        };
        let peek = match (self.rollout_only, from.is_none()) {
            (true, false) => &sql.peek_rollout,
            (true, true) => &sql.peek_rollout_first,
            (false, false) => &sql.peek,
            (false, true) => &sql.peek_first,
        };
        let stmt = tx
            .prepare_cached(peek)
            .await
            .map_err(|e| Error::db("preparing the read of a batch", e))?;
        let rows = tx
            .query(
                &stmt,
                &[
                    &from,
                    &spec.settings.max_attempts,
                    &self.run_start,
                    &i64::from(size),
                    &i64::try_from(budget).unwrap_or(i64::MAX),
                ],
            )
            .await
            .map_err(|e| Error::db("reading legacy users", e))?;
        let mut versions = HashMap::with_capacity(rows.len());
        let bytes = rows.iter().map(|r| r.get::<_, i32>(4).max(0) as u64).sum();
        let cut = rows
            .first()
            .is_some_and(|r| r.get::<_, i64>(5) > rows.len() as i64);
        let peeked: Vec<Locked> = rows
            .iter()
            .map(|r| {
                let id: UserId = r.get(0);
                versions.insert(id.clone(), r.get::<_, String>(3));
                Locked {
                    id,
                    blob: r.get(1),
                    migrated: r.get(2),
                }
            })
            .collect();
        if let Some(last) = peeked.last() {
            tx.execute(&sql.pass_move, &[&last.id])
                .await
                .map_err(|e| Error::db("moving the daemons' pass on", e))?;
        }
        tx.commit()
            .await
            .map_err(|e| Error::db("reading legacy users", e))?;
        Ok((peeked, versions, bytes, cut))
    }

    /// Claims and migrates the next batch exactly as a worker would, then
    /// rolls everything back: nothing is written.
    pub async fn dry_run(&self, client: &mut Object, size: u32) -> Result<DryRun> {
        let started = std::time::Instant::now();
        let tx = pool::batch_transaction(client, "a dry-run batch").await?;
        let (claimed, locked) = self.claim(&tx, None, size).await?;
        let ids: Vec<UserId> = locked.iter().map(|l| l.id.clone()).collect();
        let report = migrate::migrate_locked(&self.store, &tx, &ids, locked).await?;
        let elapsed = started.elapsed();
        tx.rollback()
            .await
            .map_err(|e| Error::db("rolling the dry run back", e))?;
        Ok(DryRun {
            claimed,
            report,
            elapsed,
        })
    }
}

impl Job for MigrateJob {
    async fn remaining(&self, client: &Object) -> Result<i64> {
        let store = &self.store;
        Ok(client
            .query_one(
                &store.sql().claimable,
                &[
                    &None::<UserId>,
                    &store.spec.settings.max_attempts,
                    &self.run_start,
                    &self.rollout_only,
                ],
            )
            .await
            .map_err(|e| Error::db("counting legacy users", e))?
            .get(0))
    }

    /// Migrates up to `size` legacy users after `cursor` in two steps, so
    /// that no user is locked while its blob is read and exploded:
    ///
    /// 1. read the next claimable users without locking them (after the
    ///    furthest any worker of any daemon has read, kept in the row of
    ///    `decant.pass`, one worker at a time under its lock) with each
    ///    row's version (`xmin`), and parse, fix up, explode and verify
    ///    them: the client's work, no lock held;
    /// 2. in one transaction, lock those still claimable (`SKIP LOCKED`:
    ///    a user the backend holds is left for the next pass), redo the
    ///    few whose row changed since the read (now locked, so final),
    ///    write the rows, the residuals, the flags and the states, commit.
    ///
    /// The lock is held for step 2 only.
    async fn batch(
        &self,
        client: &mut Object,
        cursor: Option<UserId>,
        size: u32,
        budget: u64,
    ) -> Result<Claimed> {
        let store = &*self.store;
        let spec = &store.spec;
        let (peeked, versions, bytes, cut) =
            self.peek(client, cursor.clone(), size, budget).await?;
        let Some(last) = peeked.last().map(|l| l.id.clone()) else {
            return Ok(Claimed::nothing(cursor));
        };
        let claimed = peeked.len();
        let read: Vec<UserId> = peeked.iter().map(|l| l.id.clone()).collect();
        let mut prepared = migrate::prepare(spec, &read, peeked);

        let started = std::time::Instant::now();
        let tx = pool::begin(client, "a batch").await?;
        // the lock, then a fresh look at the users' states, one round trip:
        // a user another worker failed meanwhile keeps its source row as
        // it was, so the lock's re-check does not see the failure (its
        // state row is newer than the statement's snapshot): the second
        // statement, which runs after the lock with a snapshot of its own,
        // does, and the user is left alone. Both checks stay: the relock's
        // own filter keeps users its snapshot already knows failed from
        // being locked at all; this one catches a failure committed after
        // the relock's snapshot but before it locked the row (a window of
        // microseconds at a pass's restart: CI once saw a user failed
        // twice in one run without this check)
        let stmts = [
            Planned::new(
                &store.sql().relock,
                vec![
                    Box::new(&read),
                    Box::new(spec.settings.max_attempts),
                    Box::new(self.run_start),
                    Box::new(self.rollout_only),
                ],
                "locking legacy users",
            ),
            state::failed_meanwhile(
                spec.source.id_type,
                &read,
                spec.settings.max_attempts,
                &self.run_start,
            ),
        ];
        let [locked, failed] = <[_; 2]>::try_from(
            pipeline(&tx, Some(pool::CUSTOM_PLANS), &stmts, None, Error::db_at).await?,
        )
        .expect("two statements, two replies");
        drop(stmts);
        let mut now: HashMap<UserId, String> =
            locked.iter().map(|r| (r.get(0), r.get(1))).collect();
        for r in &failed {
            now.remove(&r.get::<_, UserId>(0));
        }
        // locked and unchanged: as prepared; locked but changed since the
        // read: read again under the lock and redone; not locked (held by
        // the backend, migrated, failed or held meanwhile): left alone
        let mut changed = Vec::new();
        let mut keep = |id: &UserId| match now.get(id) {
            Some(v) if Some(v) == versions.get(id) => true,
            Some(_) => {
                changed.push(id.clone());
                false
            }
            None => false,
        };
        prepared.ready.retain(|r| keep(&r.source.id));
        prepared.failed.retain(|f| keep(&f.user));
        prepared.skipped.clear();
        let redone = changed.len() as u64;
        if !changed.is_empty() {
            let again = store.lock(&tx, &changed, false).await?;
            prepared.extend(migrate::prepare(spec, &changed, again));
        }
        let ids: Vec<UserId> = read.into_iter().filter(|id| now.contains_key(id)).collect();
        // the locks taken so far outlive a rollback to this savepoint, sent
        // with the write's first statement
        let savepoint = Some("SAVEPOINT decant_batch");
        let result = migrate::write_prepared(store, &tx, prepared, savepoint).await;
        let report = match result {
            Ok(r) => r,
            Err(e) if e.is_retryable() => return Err(e),
            Err(e) if e.is_table_fault() => return Err(table_fault(e)),
            Err(e) => {
                // a database error in the batch: its users one by one, so
                // one bad user does not hold back the rest, still locked
                tracing::warn!(cause = %e, users = ids.len(), "batch failed; migrating its users one by one");
                tx.batch_execute("ROLLBACK TO SAVEPOINT decant_batch")
                    .await
                    .map_err(|e| Error::db("rolling a failed batch back", e))?;
                match migrate::migrate_each(store, &tx, &ids).await {
                    Ok(r) => r,
                    Err(e) if e.is_table_fault() => return Err(table_fault(e)),
                    Err(e) => return Err(e),
                }
            }
        };
        tx.commit()
            .await
            .map_err(|e| Error::db("committing a batch", e))?;
        let held = started.elapsed();
        // each failed user named in the log (README: the run names them);
        // a verification's or an unreadable blob's is logged where found
        for Failure { user, error } in &report.failed {
            if !matches!(error, Error::Verification { .. } | Error::Unreadable { .. }) {
                tracing::warn!(user = %user, cause = %error, "user failed; stays legacy");
            }
        }
        Ok(Claimed {
            users: claimed,
            last_id: Some(last),
            done: report.migrated.len() as u64,
            failed: report.failed.len() as u64,
            rows: report.migrated.iter().map(|m| m.rows as u64).sum(),
            warned: report.warned() as u64,
            bytes,
            cut,
            held: Some(held),
            redone,
            // the read and the locking write
            xacts: 2,
        })
    }
}

/// Ends an `EXISTS` on `decant.user_state` in a claim that walks the
/// source table after a cursor: with it, PostgreSQL keeps the `EXISTS` a
/// probe of each user's state row by its key (an `OFFSET` stops it from
/// becoming a join). As a join it was merged with the state table read
/// from its first row, since the cursor bounds only the source rows: an
/// evolution's claim with 10,000 users behind its cursor took 6.8 ms, 0.5
/// ms as a probe (every migrated user has a state row, so the probe
/// always finds one).
const PROBE: &str = " OFFSET 0";

/// Which migrated users a bulk rollback takes.
#[derive(Debug, Clone, PartialEq)]
pub enum Cohort {
    /// These users.
    Ids(Vec<UserId>),
    /// The users whose rollout bucket (the uniform hash `decant set
    /// rollout=` uses) is below this percentage.
    Percent(f64),
    /// The users migrated at or after this time.
    MigratedAfter(SystemTime),
    /// Every migrated user.
    All,
}

impl Cohort {
    /// The cohort's predicate on the source row `s` (its id column
    /// written `__ID__`, of SQL type `__IT__`), its parameter `$3`.
    fn predicate(&self) -> &'static str {
        match self {
            Cohort::Ids(_) => "s.__ID__ = ANY ($3::__IT__[])",
            Cohort::Percent(_) => "decant.rollout_bucket(s.__ID__::__IT__) < $3::integer",
            // a probe (`PROBE`): as a join, every claim read the state
            // rows behind its cursor
            Cohort::MigratedAfter(_) => {
                "EXISTS (SELECT 1 FROM decant.user_state st WHERE st.user_id = s.__ID__ \
                   AND st.migrated_at >= $3::timestamptz OFFSET 0)"
            }
            Cohort::All => "$3::boolean",
        }
    }

    fn param(&self) -> Box<dyn tokio_postgres::types::ToSql + Sync + Send> {
        match self {
            Cohort::Ids(ids) => Box::new(ids.clone()),
            Cohort::Percent(p) => Box::new((p * 100.0).round() as i32),
            Cohort::MigratedAfter(t) => Box::new(*t),
            Cohort::All => Box::new(true),
        }
    }
}

/// A claim of the users of the source row `s` matching `filter` (whose
/// own parameter, if any, is `$3`), after the cursor `$1` in the claims'
/// order and up to `$4` (the last user [`sizes`] let in: a claim that
/// skips users another worker holds must not reach past what was sized),
/// at most `$2`, but for the users `$5` (those that failed in this run),
/// locked (`SKIP LOCKED`): `[after the cursor, from the first user]`.
fn claims(spec: &crate::core::spec::Spec, filter: &str) -> [String; 2] {
    use crate::core::spec::quote;
    let (src, id, blob, flag) = (
        crate::pg::sql::source_table(spec),
        quote(&spec.source.id),
        quote(&spec.source.blob),
        quote(&spec.source.flag),
    );
    let it = spec.source.id_type.sql();
    let order = crate::pg::sql::in_order(spec, &format!("s.{id}"));
    [false, true].map(|first| {
        format!(
            "SELECT s.{id}::{it}, s.{blob}, s.{flag} FROM {src} AS s \
             WHERE {filter} AND {} AND {order} <= $4::{it} AND s.{id} <> ALL ($5::{it}[]) \
             ORDER BY {order} LIMIT $2 FOR NO KEY UPDATE OF s SKIP LOCKED",
            crate::pg::sql::after(spec, &format!("s.{id}"), 1, first)
        )
    })
}

/// The weight of one row in a migrated user's size, in the stored bytes
/// the byte budget counts: about what a row took in its blob as stored
/// (24,000 small objects of 1.45 MB of JSON were stored in 191 KB, 8 bytes
/// each; the example game's users about 10).
const ROW_BYTES: i64 = 8;

/// The walk of [`claims`] without its lock: the size of each user it
/// would take, in its order, for the byte budget: a migrated user's rows
/// (counted on the target tables' user indexes, [`ROW_BYTES`] each) and
/// its stored residual. Its parameters are the claim's `$1`-`$3`, and
/// the users to leave out as `$4`.
fn sizes(spec: &crate::core::spec::Spec, filter: &str) -> [String; 2] {
    use crate::core::spec::quote;
    let (src, id, blob) = (
        crate::pg::sql::source_table(spec),
        quote(&spec.source.id),
        quote(&spec.source.blob),
    );
    let mut rows: Vec<String> = spec
        .tables
        .iter()
        .enumerate()
        .map(|(ti, t)| {
            format!(
                "(SELECT count(*) FROM {} AS x WHERE x.{} = s.{id})",
                crate::pg::sql::target_table(spec, ti),
                quote(&t.user_column)
            )
        })
        .collect();
    if rows.is_empty() {
        rows.push("0".into());
    }
    let rows = rows.join(" + ");
    let it = spec.source.id_type.sql();
    let order = crate::pg::sql::in_order(spec, &format!("s.{id}"));
    [false, true].map(|first| {
        format!(
            "SELECT s.{id}::{it}, coalesce(pg_column_size(s.{blob}), 0)::int8 + {ROW_BYTES} * ({rows}) \
             FROM {src} AS s WHERE {filter} AND {} AND s.{id} <> ALL ($4::{it}[]) \
             ORDER BY {order} LIMIT $2",
            crate::pg::sql::after(spec, &format!("s.{id}"), 1, first)
        )
    })
}

/// What a byte budget lets a batch take of the users a [`sizes`]
/// statement read.
struct Fit {
    /// The last user it takes (`None`: no user is left).
    upto: Option<UserId>,
    /// Their size.
    bytes: u64,
    /// Whether the bytes cut the batch short of the users read.
    cut: bool,
}

/// Reads the next users' sizes with the [`sizes`] statement `sql` and
/// fits them into `budget` bytes (the first always).
async fn fitting(
    tx: &deadpool_postgres::Transaction<'_>,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    budget: u64,
) -> Result<Fit> {
    let stmt = tx
        .prepare_cached(sql)
        .await
        .map_err(|e| Error::db("preparing the read of the next users' sizes", e))?;
    let sizes: Vec<(UserId, i64)> = tx
        .query(&stmt, params)
        .await
        .map_err(|e| Error::db("reading the next users' sizes", e))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let n = crate::core::fits(sizes.iter().map(|(_, z)| *z), budget);
    Ok(Fit {
        upto: n.checked_sub(1).map(|last| sizes[last].0.clone()),
        bytes: sizes[..n].iter().map(|(_, z)| (*z).max(0) as u64).sum(),
        cut: n < sizes.len(),
    })
}

/// A bulk job's claim of migrated users matching a filter, sized by their
/// rows: [`sizes`] reads the next ones unlocked, [`claims`] locks up to
/// the last that fits (each after a cursor, and from the first user).
struct SizedClaim {
    sizes: [String; 2],
    claim: [String; 2],
    /// The last user a worker of this process claimed in this pass, held
    /// while a worker sizes and claims: the next worker starts after it
    /// instead of sizing the users a peer has just locked.
    furthest: tokio::sync::Mutex<Option<UserId>>,
    /// The users that failed in this run (their rows do not rebuild a
    /// blob): left out of the claims and the count of users left, so that
    /// the job ends instead of taking them again pass after pass.
    failed: std::sync::Mutex<Vec<UserId>>,
}

impl SizedClaim {
    /// The claim of the users of the source row `s` that `filter` (with
    /// its own parameter, if any, `$3`) takes.
    fn new(spec: &crate::core::spec::Spec, filter: &str) -> SizedClaim {
        SizedClaim {
            sizes: sizes(spec, filter),
            claim: claims(spec, filter),
            furthest: tokio::sync::Mutex::new(None),
            failed: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// The users that failed in this run so far.
    fn failed(&self) -> Vec<UserId> {
        self.failed.lock().expect("not poisoned").clone()
    }

    /// Leaves these users out of the rest of the run.
    fn fail(&self, users: impl IntoIterator<Item = UserId>) {
        self.failed.lock().expect("not poisoned").extend(users);
    }

    /// Claims the users after `cursor` (or after the last a worker of this
    /// process claimed, if further) that a batch of `size` users and
    /// `budget` bytes takes (`param`: the filter's `$3`); a `cursor` of
    /// `None` starts a pass over. When others (live traffic, a daemon of
    /// another process) hold every user sized, it moves past them and tries
    /// the next, as a plain `SKIP LOCKED` claim would.
    async fn next(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        param: &(dyn tokio_postgres::types::ToSql + Sync),
        cursor: Option<UserId>,
        size: u32,
        budget: u64,
        what: &str,
    ) -> Result<(Vec<Locked>, Fit)> {
        let mut furthest = self.furthest.lock().await;
        let mut cursor = match cursor {
            None => {
                *furthest = None;
                None
            }
            some => some.max(furthest.clone()),
        };
        let size = i64::from(size);
        let failed = self.failed();
        loop {
            let first = usize::from(cursor.is_none());
            let fit = fitting(
                tx,
                &self.sizes[first],
                &[&cursor, &size, param, &failed],
                budget,
            )
            .await?;
            let Some(upto) = fit.upto.clone() else {
                return Ok((Vec::new(), fit));
            };
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] =
                [&cursor, &size, param, &fit.upto, &failed];
            let locked = claim_rows(tx, &self.claim[first], &params, what).await?;
            if let Some(last) = locked.last() {
                *furthest = Some(last.id.clone());
                return Ok((locked, fit));
            }
            cursor = Some(upto);
        }
    }
}

/// Rolling a cohort of migrated users back: the job of `decant rollback`
/// in bulk. Each batch rebuilds its users' blobs, clears their flags,
/// deletes their rows and holds them out of the migration, in one
/// transaction.
pub(crate) struct RollbackJob {
    pub store: Arc<Store>,
    pub cohort: Cohort,
    claim: SizedClaim,
    remaining: String,
}

impl RollbackJob {
    pub fn new(store: Arc<Store>, cohort: Cohort) -> RollbackJob {
        let spec = &store.spec;
        let (src, id, flag) = (
            crate::pg::sql::source_table(spec),
            crate::core::spec::quote(&spec.source.id),
            crate::core::spec::quote(&spec.source.flag),
        );
        let pred = cohort
            .predicate()
            .replace("__ID__", &id)
            .replace("__IT__", spec.source.id_type.sql());
        let filter = format!("s.{flag} AND {pred}");
        RollbackJob {
            claim: SizedClaim::new(spec, &filter),
            remaining: format!(
                "SELECT count(*) FROM {src} AS s WHERE {filter} AND s.{id} <> ALL ($4::{}[])",
                spec.source.id_type.sql()
            ),
            store,
            cohort,
        }
    }
}

impl Job for RollbackJob {
    async fn remaining(&self, client: &Object) -> Result<i64> {
        // the cohort's parameter and the users that failed, numbered
        // as in the claim ($3, $4)
        let sql = self.remaining.replace("$3", "$1").replace("$4", "$2");
        Ok(client
            .query_one(&sql, &[&*self.cohort.param(), &self.claim.failed()])
            .await
            .map_err(|e| Error::db("counting the users to roll back", e))?
            .get(0))
    }

    async fn batch(
        &self,
        client: &mut Object,
        cursor: Option<UserId>,
        size: u32,
        budget: u64,
    ) -> Result<Claimed> {
        let store = &*self.store;
        let tx = pool::batch_transaction(client, "a rollback batch").await?;
        let param = self.cohort.param();
        // a migrated user weighs its rows: a cohort of very large users
        // comes a few a batch, not a count's worth rebuilt under one lock
        let (locked, fit) = self
            .claim
            .next(
                &tx,
                &*param,
                cursor.clone(),
                size,
                budget,
                "users to roll back",
            )
            .await?;
        let Some(last) = locked.last().map(|l| l.id.clone()) else {
            return Ok(Claimed::nothing(cursor));
        };
        let claimed = locked.len();
        let (done, failed) = migrate::rollback_locked(store, &tx, locked).await?;
        tx.commit()
            .await
            .map_err(|e| Error::db("committing a rollback batch", e))?;
        for Failure { user, error } in &failed {
            tracing::error!(user = %user, cause = %error, "cannot roll back; the user stays migrated");
        }
        self.claim.fail(failed.iter().map(|f| f.user.clone()));
        Ok(Claimed {
            users: claimed,
            last_id: Some(last),
            done: done.len() as u64,
            failed: failed.len() as u64,
            rows: 0,
            warned: 0,
            bytes: fit.bytes,
            cut: fit.cut,
            held: None,
            redone: 0,
            xacts: 1,
        })
    }
}

/// Re-migrating migrated users with an evolved mapping (`decant run
/// --evolve`, after `decant init --evolve` added tables and rules into
/// them): each user's blob is rebuilt from its rows and residual, exploded
/// with the new mapping, verified to rebuild the same blob, and only what
/// changes is written (rows into the new tables, a smaller residual).
pub(crate) struct EvolveJob {
    pub store: Arc<Store>,
    claim: SizedClaim,
    remaining: String,
}

impl EvolveJob {
    pub fn new(store: Arc<Store>) -> EvolveJob {
        let spec = &store.spec;
        let (src, id, flag) = (
            crate::pg::sql::source_table(spec),
            crate::core::spec::quote(&spec.source.id),
            crate::core::spec::quote(&spec.source.flag),
        );
        // the fingerprint is the claim's `$3`, the count's `$1`; the
        // claim's `OFFSET 0` keeps the EXISTS a probe of each user's state
        // row by its key (see `PROBE`)
        let stale = |n: usize, probe: &str| {
            format!(
                "s.{flag} AND EXISTS (SELECT 1 FROM decant.user_state st WHERE st.user_id = s.{id} \
                   AND st.fingerprint IS DISTINCT FROM ${n}::text{probe})"
            )
        };
        EvolveJob {
            claim: SizedClaim::new(spec, &stale(3, PROBE)),
            remaining: format!(
                "SELECT count(*) FROM {src} AS s WHERE {} AND s.{id} <> ALL ($2::{}[])",
                stale(1, ""),
                spec.source.id_type.sql()
            ),
            store,
        }
    }
}

impl Job for EvolveJob {
    async fn remaining(&self, client: &Object) -> Result<i64> {
        Ok(client
            .query_one(
                &self.remaining,
                &[&self.store.fingerprint, &self.claim.failed()],
            )
            .await
            .map_err(|e| Error::db("counting users to evolve", e))?
            .get(0))
    }

    async fn batch(
        &self,
        client: &mut Object,
        cursor: Option<UserId>,
        size: u32,
        budget: u64,
    ) -> Result<Claimed> {
        let store = &*self.store;
        let spec = &store.spec;
        let tx = pool::batch_transaction(client, "an evolution batch").await?;
        // sized as a rollback's: a migrated user weighs its rows
        let (locked, fit) = self
            .claim
            .next(
                &tx,
                &store.fingerprint,
                cursor.clone(),
                size,
                budget,
                "users to evolve",
            )
            .await?;
        let Some(last) = locked.last().map(|l| l.id.clone()) else {
            return Ok(Claimed::nothing(cursor));
        };
        let claimed = locked.len();
        // a peer may have evolved some since the claim's snapshot (the
        // staleness is in the state table, which the row lock's re-check
        // does not see): a fresh statement does
        let ids: Vec<UserId> = locked.iter().map(|l| l.id.clone()).collect();
        let done_meanwhile: Vec<UserId> = tx
            .query(
                "SELECT user_id FROM decant.user_state WHERE user_id = ANY ($1) AND fingerprint = $2",
                &[&ids, &store.fingerprint],
            )
            .await
            .map_err(|e| Error::db("re-checking claimed users", e))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let locked: Vec<Locked> = locked
            .into_iter()
            .filter(|l| !done_meanwhile.contains(&l.id))
            .collect();
        let ids: Vec<UserId> = locked.iter().map(|l| l.id.clone()).collect();
        let mut stored = store.read_rows(&tx, &ids).await?;
        let (mut done, mut failed, mut written) = (Vec::new(), Vec::new(), 0u64);
        // each evolved user's warnings under the new mapping: invalid
        // values stay in the residual, as the compatibility layer's writes
        // keep them (a migrated user has no legacy state to fail back to)
        let mut warnings: Vec<Option<serde_json::Value>> = Vec::new();
        for l in &locked {
            let old = stored.remove(&l.id).unwrap_or_default();
            let residual = l.blob.value(&l.id, spec.settings.max_depth)?;
            let blob = match crate::core::explode::reconstruct(spec, &old, &residual) {
                Ok(b) => b,
                Err(detail) => {
                    tracing::error!(user = %l.id, %detail, "cannot rebuild the blob; the user keeps its old mapping");
                    failed.push(l.id.clone());
                    continue;
                }
            };
            let new = crate::core::explode::explode_lenient(spec, &blob);
            let same = crate::core::explode::reconstruct(spec, &new.rows, &new.residual)
                .is_ok_and(|b| crate::core::json::json_eq(&b, &blob));
            if !same {
                tracing::error!(
                    user = %l.id,
                    "the new mapping does not rebuild the blob; the user keeps its old mapping"
                );
                failed.push(l.id.clone());
                continue;
            }
            let mut stmts = store.diff_statements(&l.id, &old, &new.rows);
            if new.residual != residual {
                stmts.push(store.blob_statement(&l.id, &new.residual, true));
            }
            written += new.rows.len().saturating_sub(old.len()) as u64;
            store.run(&tx, &l.id, stmts).await?;
            done.push(l.id.clone());
            warnings.push(crate::migrate::warnings_record(&new.warnings));
        }
        let warned = warnings.iter().filter(|w| w.is_some()).count() as u64;
        state::record_evolved(
            &*tx,
            spec.source.id_type,
            &done,
            &warnings,
            &store.fingerprint,
        )
        .await?;
        tx.commit()
            .await
            .map_err(|e| Error::db("committing an evolution batch", e))?;
        let failed_count = failed.len() as u64;
        self.claim.fail(failed);
        Ok(Claimed {
            users: claimed,
            last_id: Some(last),
            done: done.len() as u64,
            failed: failed_count,
            rows: written,
            warned,
            bytes: fit.bytes,
            cut: fit.cut,
            held: None,
            redone: 0,
            xacts: 1,
        })
    }
}

/// The run's stop on a fault of the tables or the database: no user is
/// failed for it and no attempt counted.
pub(crate) fn table_fault(e: Error) -> Error {
    Error::Setup(format!(
        "the run stopped on a fault of the tables or the database, not of any user \
         (no user failed, no attempt counted): {e}; fix it and run again"
    ))
}
