//! The migration daemon (`decant run`): workers claim legacy users in
//! batches with `FOR NO KEY UPDATE SKIP LOCKED` (so they never queue behind
//! live traffic and several processes share the table), and migrate each
//! batch in one verified transaction. A monitor re-reads the control row
//! and the database's signals a few times a second; workers obey them
//! between batches: pause, rate, windows, throttling, adaptive batch size.
//!
//! Nothing lives outside the batch transaction: a crash or `kill -9` at any
//! instant leaves each user wholly legacy or wholly migrated, and a restart
//! picks up where the table says.
//!
//! Here: the options, the run and the worker loop (pace, windows, signals,
//! cursor, batch size). `job` is what a worker does with a batch (claim and
//! migrate), `monitor` the control row and signals, `progress` the counters.

mod job;
mod monitor;
mod progress;

pub use job::{Cohort, DryRun};
pub use monitor::Throttle;
pub use progress::{Phase, Progress, peak_memory};

use crate::compat::Decant;
use crate::core::id::UserId;
use crate::core::schedule::{Rate, Schedule};
use crate::error::{Error, Result};
use crate::pg::control::{self, Control};
use crate::pg::{pool, state};
use governor::{DefaultDirectRateLimiter, RateLimiter};
use job::{Claimed, EvolveJob, Job, MigrateJob, RollbackJob};
use monitor::Signals;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Options of a run; each documents its default.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Parallel workers, each one session (default 1, which leaves room
    /// for live traffic; 2 keeps both cores of a 2-core server busy). A
    /// run holds one session of the handle's pool per worker and one for
    /// its monitor, for the whole run: on a smaller pool it starts fewer
    /// workers (and warns), and a pool of one session cannot run.
    pub workers: usize,
    /// The rate when the control row does not set one; `--rate` writes
    /// the control row instead (default: whatever the control row says).
    pub rate: Option<Rate>,
    /// Low-traffic windows (default: always open).
    pub schedule: Schedule,
    /// Target duration of one batch's locking transaction, which bounds
    /// how long a backend call may wait for a user's lock (default 25 ms;
    /// a migration batch reads and explodes its blobs before it locks).
    pub target_batch: Duration,
    /// Target duration of a batch's locking transaction while other
    /// sessions are working (default 10 ms): short bursts leave the CPU
    /// and the WAL to them sooner.
    pub busy_batch: Duration,
    /// Largest batch (default 1000).
    pub max_batch: u32,
    /// Only users in the rollout (default false: backfill everyone).
    pub rollout_only: bool,
    /// Exit when no legacy user is left to claim (default true); false
    /// keeps polling for new legacy users.
    pub until_done: bool,
    /// Database signals that hold the daemon back.
    pub throttle: Throttle,
    /// How long the run rides out a database it cannot reach (a restart, a
    /// failover, terminated sessions): its sessions are re-opened with
    /// backoff meanwhile, and past this the run stops with the cause
    /// (default 5 minutes).
    pub max_outage: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            workers: 1,
            rate: None,
            schedule: Schedule::default(),
            target_batch: Duration::from_millis(25),
            busy_batch: Duration::from_millis(10),
            max_batch: 1000,
            rollout_only: false,
            until_done: true,
            throttle: Throttle::default(),
            max_outage: Duration::from_secs(300),
        }
    }
}

/// `decant run --dry-run`: claims the batch a worker would claim now
/// (`size` users, or the control row's batch size when it sets one; the
/// rollout's users only with `rollout_only`), migrates and verifies it in
/// its transaction, and rolls everything back. Nothing is written; the
/// claimed rows are locked (`SKIP LOCKED`, as the daemon locks them) for
/// the batch's duration.
pub async fn dry_run(decant: &Decant, size: u32, rollout_only: bool) -> Result<DryRun> {
    let mut client = pool::get(decant.pool()).await?;
    crate::pg::identity::verify(&**client, decant.spec(), false).await?;
    crate::pg::identity::require_reader(&**client, decant.spec()).await?;
    crate::pg::schema::require_every_row(&**client, decant.spec(), "the dry run's claims").await?;
    let control = control::read(&**client).await?;
    if control.finalized {
        return Err(Error::Setup(
            "the migration is finalized (`decant finalize`): there is no batch to try".into(),
        ));
    }
    let run_start: std::time::SystemTime = client
        .query_one("SELECT now()", &[])
        .await
        .map_err(|e| Error::db("reading the server clock", e))?
        .get(0);
    let job = MigrateJob::new(decant.store().clone(), run_start, rollout_only);
    let size = control.batch_size.unwrap_or(size).max(1);
    job.dry_run(&mut client, size).await
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// Users migrated.
    pub migrated: u64,
    /// Users that failed (they stay legacy).
    pub failed: u64,
    /// Rows written.
    pub rows: u64,
    /// Of the users migrated (or evolved), those whose residual keeps
    /// values their rules refuse (their warnings in `decant.user_state`).
    pub warned: u64,
    /// Users whose row a backend changed between a batch's unlocked read
    /// and its lock: read again under the lock and migrated from there.
    pub redone: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Batch transaction p50 and p99 (the per-user lock hold time).
    pub batch_p50_p99: Option<(Duration, Duration)>,
    /// Users skipped for reaching the attempt limit.
    pub over_limit: i64,
    /// Whether the run stopped for a shutdown signal.
    pub interrupted: bool,
    /// Time held back by database signals, averaged over the workers.
    pub held_back: Duration,
}

struct Shared {
    opts: RunOptions,
    control: watch::Receiver<Control>,
    signals: watch::Receiver<Option<String>>,
    limiter: Mutex<(Rate, Option<Arc<DefaultDirectRateLimiter>>)>,
    /// When the commit probe's ceiling lets the next batch start (the
    /// workers reserve their batches' share of it in turn).
    paced: Mutex<monitor::Pacer>,
    /// What the monitor reads and the workers feed (their session ids).
    watch: Arc<Signals>,
    progress: Arc<Progress>,
    stop: watch::Receiver<bool>,
    stopping: AtomicBool,
    /// The furthest id any worker of this process claimed in this pass,
    /// so workers do not rescan what their peers already passed (`None`:
    /// the pass starts over from the first user).
    cursor: Mutex<Option<UserId>>,
}

/// Runs the daemon until the table is done (with `until_done`) or
/// `shutdown` resolves; a batch under way is finished first.
pub async fn run(
    decant: &Decant,
    opts: RunOptions,
    progress: Arc<Progress>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<RunReport> {
    let rollout_only = opts.rollout_only;
    run_job(
        decant,
        opts,
        progress,
        shutdown,
        "migrate",
        |store, run_start| MigrateJob::new(store, run_start, rollout_only),
    )
    .await
}

/// Rolls a cohort of migrated users back through the daemon's loop (the
/// same pace, windows, throttling, pause and graceful stop as `run`): each
/// batch rebuilds its users' blobs from the tables, clears their flags,
/// deletes their rows and holds them out of the migration (`decant
/// release` puts them back), in one transaction. In the report, `migrated`
/// counts the users rolled back and `failed` those whose rows do not
/// rebuild a blob (they stay migrated).
pub async fn rollback(
    decant: &Decant,
    cohort: Cohort,
    opts: RunOptions,
    progress: Arc<Progress>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<RunReport> {
    let cohort = match cohort {
        Cohort::Ids(ids) => Cohort::Ids(decant.ids(&ids)?),
        other => other,
    };
    run_job(decant, opts, progress, shutdown, "rollback", |store, _| {
        RollbackJob::new(store, cohort)
    })
    .await
}

/// Re-migrates the migrated users whose mapping is not the spec's (after
/// `decant init --evolve` added tables and rules into them) through the
/// daemon's loop: each user's blob is rebuilt, exploded with the spec,
/// verified and only what changes written. In the report, `migrated`
/// counts the users evolved and `failed` those left with their old
/// mapping (logged).
pub async fn evolve(
    decant: &Decant,
    opts: RunOptions,
    progress: Arc<Progress>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<RunReport> {
    run_job(decant, opts, progress, shutdown, "evolve", |store, _| {
        EvolveJob::new(store)
    })
    .await
}

/// The daemon's loop around the job `make` builds (from the store and the
/// run's start on the server clock).
async fn run_job<J: Job>(
    decant: &Decant,
    opts: RunOptions,
    progress: Arc<Progress>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    job_name: &'static str,
    make: impl FnOnce(Arc<crate::pg::store::Store>, std::time::SystemTime) -> J,
) -> Result<RunReport> {
    let started = Instant::now();
    let pool = decant.pool();
    let mut opts = opts;
    let asked = opts.workers.max(1);
    opts.workers = workers_for_pool(asked, pool.status().max_size)?;
    if opts.workers < asked {
        tracing::warn!(
            asked,
            workers = opts.workers,
            pool = pool.status().max_size,
            "the handle's pool has room for fewer workers than asked (each worker holds a \
             session for the whole run, and the monitor one more): running with fewer; make \
             the handle with a pool of at least workers + 2"
        );
    }
    let admin = pool::get(pool).await?;
    // the monitor's session is a daemon's too (its probes are no backend
    // traffic for another daemon)
    admin
        .query_one(crate::pg::sql::DAEMON_SESSION, &[])
        .await
        .map_err(|e| Error::db("marking the daemon's session", e))?;
    check_free_sessions(&admin, opts.workers.max(1)).await?;
    crate::pg::schema::require_every_row(
        &**admin,
        decant.spec(),
        &format!("the daemon's {job_name} pass"),
    )
    .await?;
    warn_if_blind(&admin).await?;
    let standby: bool = admin
        .query_one("SELECT pg_is_in_recovery()", &[])
        .await
        .map_err(|e| Error::db("asking whether the server is a standby", e))?
        .get(0);
    if standby {
        return Err(Error::Setup(
            "this server is a hot standby (in recovery): the daemon writes, so point it at the \
             primary (`decant check` and `decant status` do run on a standby)"
                .into(),
        ));
    }
    // a run that is refused (another mapping, finalized) leaves the
    // shared rate as it was: it is set only once the run may start
    crate::pg::identity::verify(&**admin, decant.spec(), false).await?;
    // the residuals it writes are this version's: the SQL API and the
    // views must be too
    crate::pg::identity::require_reader(&**admin, decant.spec()).await?;
    let mut initial = control::read(&**admin).await?;
    if initial.finalized {
        return Err(Error::finalized());
    }
    if job_name != "rollback" {
        // rows written under tables stricter than the spec fail one by
        // one on the server's errors; a rollback writes no rows, and is
        // never held back by this
        let drift = crate::pg::schema::validation_drift(&**admin, decant.spec()).await?;
        if !drift.is_empty() {
            return Err(Error::Setup(format!(
                "the target tables' validation is not this spec's (its validation changed since \
                 `decant init` last ran):\n  - {}\nrun `decant init` with this spec first: it \
                 changes them online",
                drift.join("\n  - ")
            )));
        }
    }
    for w in crate::pg::schema::source_warnings(&**admin, decant.spec()).await? {
        tracing::warn!("{w}");
    }
    if job_name == "migrate" {
        // a plain run after `init --evolve` migrates legacy users only
        let evolving =
            crate::pg::state::awaiting_evolution(&**admin, &decant.spec().fingerprint()).await?;
        if evolving > 0 {
            tracing::warn!(
                "{} of the mapping before `decant init --evolve`: this run migrates legacy \
                 users only; `decant run --evolve` re-migrates them",
                crate::core::users_of(evolving, "migrated")
            );
        }
    }
    if let Some(q) = &opts.throttle.query {
        // tried once before the run: a query that fails (a table not
        // there, no boolean) held the daemon back for good, said only in
        // the progress line
        monitor::throttle_query(&**admin, q)
            .await
            .map_err(|why| Error::Setup(format!("--throttle-query `{q}` {why}")))?;
    }
    if let Some(rate) = opts.rate {
        control::set(&**admin, &control::Setting::Rate(rate)).await?;
        initial = control::read(&**admin).await?;
    }
    // registered before the first batch: the rate is shared from the start
    let mut heartbeat = monitor::Heartbeat::new(job_name, opts.workers.max(1), progress.clone());
    heartbeat.rate = initial.rate;
    if !opts.schedule.windows.is_empty() {
        // its own windows, for status's projection
        let windows: Vec<String> = opts
            .schedule
            .windows
            .iter()
            .map(ToString::to_string)
            .collect();
        let tz = opts.schedule.tz.iana_name().unwrap_or("UTC");
        heartbeat.windows = Some((windows.join(","), tz.to_string()));
    }
    heartbeat.beat(&admin, initial.rate, None).await;
    initial.rate = initial.rate.share(heartbeat.live);
    let heartbeat_id = heartbeat.id.clone();
    let run_start: std::time::SystemTime = admin
        .query_one("SELECT now()", &[])
        .await
        .map_err(|e| Error::db("reading the server clock", e))?
        .get(0);
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopping = progress.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopping.stopping();
        let _ = stop_tx.send(true);
    });
    let (control_tx, control_rx) = watch::channel(initial);
    // the first signals are read before any batch; the monitor refreshes them
    let (signals_tx, signals_rx) = watch::channel(None);
    let watch = Arc::new(Signals::new(
        opts.throttle.clone(),
        decant.spec().fingerprint(),
    ));
    let shared = Arc::new(Shared {
        opts: opts.clone(),
        control: control_rx,
        signals: signals_rx,
        limiter: Mutex::new((Rate::Max, None)),
        paced: Mutex::new(monitor::Pacer::default()),
        watch: watch.clone(),
        progress: progress.clone(),
        stop: stop_rx,
        stopping: AtomicBool::new(false),
        cursor: Mutex::new(None),
    });
    let job = Arc::new(make(decant.store().clone(), run_start));
    let total = job.remaining(&admin).await?;
    progress.total.store(total as u64, Ordering::Relaxed);
    tracing::info!(users = total, workers = opts.workers, "daemon started");

    watch.calibrate(&admin).await?;
    signals_tx.send_replace(monitor::check_signals(&watch, &admin, 0).await);
    let monitor = tokio::spawn(monitor::monitor(
        watch,
        admin,
        pool.clone(),
        control_tx,
        signals_tx,
        heartbeat,
    ));
    let mut workers = Vec::new();
    for w in 0..opts.workers.max(1) {
        let (shared, job, pool) = (shared.clone(), job.clone(), pool.clone());
        workers.push(tokio::spawn(
            async move { worker(w, shared, job, pool).await },
        ));
    }
    let mut first_error = None;
    for w in workers {
        match w.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(join) => {
                first_error.get_or_insert(Error::Setup(format!("a worker panicked: {join}")));
            }
        }
    }
    monitor.abort();
    let client = pool::get(pool).await;
    if let Ok(c) = &client {
        let _ = c
            .execute("DELETE FROM decant.daemon WHERE id = $1", &[&heartbeat_id])
            .await;
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let max_attempts = decant.spec().settings.max_attempts;
    let over_limit = match client {
        Ok(c) => state::over_limit(&**c, decant.spec(), max_attempts).await?,
        // stopped while the database is away: the report without the count
        Err(e) if *shared.stop.borrow() => {
            tracing::warn!(error = %e, "stopped while the database is unreachable; users at the attempt limit not counted");
            0
        }
        Err(e) => return Err(e),
    };
    let report = RunReport {
        migrated: progress.migrated.load(Ordering::Relaxed),
        failed: progress.failed.load(Ordering::Relaxed),
        rows: progress.rows.load(Ordering::Relaxed),
        warned: progress.warned.load(Ordering::Relaxed),
        redone: progress.redone.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
        batch_p50_p99: progress.batch_percentiles(),
        over_limit,
        interrupted: *shared.stop.borrow(),
        held_back: Duration::from_micros(
            progress.held_micros.load(Ordering::Relaxed) / opts.workers.max(1) as u64,
        ),
    };
    // `done` is what the job did to each user: migrated, rolled back or
    // evolved; rows are the rows a migration or an evolution wrote (a
    // rollback counts none: `rows=0` read as nothing done)
    // (a field that is None is left out of the line)
    let writes = job_name != "rollback";
    tracing::info!(
        job = job_name,
        done = report.migrated,
        failed = report.failed,
        rows = writes.then_some(report.rows),
        secs = report.elapsed.as_secs_f64(),
        redone = writes.then_some(report.redone),
        interrupted = report.interrupted,
        "daemon stopped"
    );
    Ok(report)
}

/// Refuses more workers than the server, the role and the database have
/// sessions free for (each worker holds one, the monitor's is already
/// open): taking them all would lock the backend out ("too many clients").
async fn check_free_sessions(admin: &deadpool_postgres::Object, workers: usize) -> Result<()> {
    let row = admin
        .query_one(crate::pg::sql::FREE_SESSIONS, &[])
        .await
        .map_err(|e| Error::db("counting the server's free sessions", e))?;
    let free: i64 = row.get(0);
    let what: String = row.get(1);
    if workers as i64 > free {
        return Err(Error::Setup(format!(
            "--workers {workers}: each worker needs a session and {what} has {free} free; \
             use fewer workers (the backend needs sessions too) or raise the limit"
        )));
    }
    Ok(())
}

/// Warns when the daemon's role cannot see other roles' sessions' state
/// (PostgreSQL shows it only to a superuser or a member of
/// `pg_read_all_stats`): the throttle would count only this role's
/// traffic as others working.
async fn warn_if_blind(admin: &deadpool_postgres::Object) -> Result<()> {
    let row = admin
        .query_one(
            "SELECT r.rolsuper OR pg_has_role(current_user, 'pg_read_all_stats', 'USAGE'), \
                    current_user::text \
               FROM pg_roles r WHERE r.rolname = current_user",
            &[],
        )
        .await
        .map_err(|e| Error::db("reading the daemon role's rights", e))?;
    if !row.get::<_, bool>(0) {
        let role: String = row.get(1);
        tracing::warn!(
            role = %role,
            "this role sees only its own sessions' state, so the throttle cannot tell when other \
             roles' traffic is working, nor read the replicas' lag (--max-replica-lag does nothing); \
             GRANT pg_read_all_stats TO {role} to let it see the whole server"
        );
    }
    Ok(())
}

impl Shared {
    fn limiter(&self, rate: Rate) -> Option<Arc<DefaultDirectRateLimiter>> {
        let mut l = self.limiter.lock().expect("not poisoned");
        if l.0 != rate || (l.1.is_none() && rate != Rate::Max) {
            *l = (rate, rate.quota().map(|q| Arc::new(RateLimiter::direct(q))));
        }
        l.1.clone()
    }

    fn stopped(&self) -> bool {
        *self.stop.borrow() || self.stopping.load(Ordering::Relaxed)
    }

    /// Naps as [`Shared::nap`] and counts the time as held back.
    async fn nap_held(&self, d: Duration) {
        let napped = Instant::now();
        self.nap(d).await;
        self.progress.held_micros.fetch_add(
            napped.elapsed().as_micros().min(u128::from(u64::MAX)) as u64,
            Ordering::Relaxed,
        );
    }

    /// Sleeps up to `d`, waking early on shutdown or a control change.
    async fn nap(&self, d: Duration) {
        let mut stop = self.stop.clone();
        let mut control = self.control.clone();
        // wake on changes after now, not on ones already acted upon
        stop.borrow_and_update();
        control.borrow_and_update();
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = stop.changed() => {}
            _ = control.changed() => {}
        }
    }
}

async fn worker<J: Job>(
    w: usize,
    shared: Arc<Shared>,
    job: Arc<J>,
    pool: deadpool_postgres::Pool,
) -> Result<()> {
    // the pool has room for every worker and the monitor, unless the
    // caller's backend calls share it: then wait for them, however long
    let mut client = loop {
        match pool.get().await {
            Ok(c) => break c,
            Err(deadpool_postgres::PoolError::Timeout(deadpool_postgres::TimeoutType::Wait)) => {
                if shared.stopped() {
                    return Ok(());
                }
                tracing::warn!(
                    worker = w,
                    "every session of the handle's pool is in use; waiting"
                );
                shared.progress.hold(
                    Phase::HeldBack,
                    Some("waiting for a free session of the handle's pool".into()),
                );
            }
            Err(e) => return Err(Error::Pool(e)),
        }
    };
    let mut pid: i32 = client
        .query_one(crate::pg::sql::DAEMON_SESSION, &[])
        .await
        .map_err(|e| Error::db("reading the worker's session id", e))?
        .get(0);
    shared.watch.pids.lock().expect("not poisoned").push(pid);
    let mut batch: u32 = 10;
    let mut bytes_budget = FIRST_BATCH_BYTES;
    let mut backoff = Duration::from_millis(100);
    let mut cursor: Option<UserId> = None;
    // the last pass found every user left locked (and said so)
    let mut stalled = false;
    // whether this pass has migrated (or failed) any user yet
    let mut pass_moved = false;
    // the last batch lost its session before doing anything, after its
    // turn under the rate and the pacer: the next goes at once on the new
    // session (waiting for another turn, idle, a proxy ending idle
    // sessions would end that one too, and the run would stall)
    let mut turn_taken = false;
    loop {
        if shared.stopped() {
            return Ok(());
        }
        let mismatch = shared.watch.mismatch.lock().expect("not poisoned").clone();
        if let Some(detail) = mismatch {
            return Err(Error::SpecMismatch { detail });
        }
        let control = shared.control.borrow().clone();
        if control.paused {
            shared.progress.hold(
                Phase::Paused,
                Some("paused (decant resume to go on)".into()),
            );
            shared.nap(Duration::from_millis(500)).await;
            continue;
        }
        let now = jiff::Timestamp::now();
        // --window given: those; else the control row's, live
        let schedule = if shared.opts.schedule.windows.is_empty() {
            &control.schedule
        } else {
            &shared.opts.schedule
        };
        if !schedule.is_open(now) {
            let next = schedule.next_open(now);
            shared.progress.hold(
                Phase::OutsideWindow,
                Some(match &next {
                    Some(z) => format!("outside the windows; the next opens at {z}"),
                    None => "outside the windows".into(),
                }),
            );
            shared.nap(Duration::from_secs(1)).await;
            continue;
        }
        let signal = shared.signals.borrow().clone();
        if let Some(why) = signal {
            // its own session gone too (the server restarted or stopped):
            // re-open it now, under --max-outage, rather than wait for a
            // monitor that cannot reach the database either
            if client.is_closed() {
                let cause = format!("the session closed while holding back ({why})");
                let Some(c) = reopen(&shared, &pool, w, cause, client, &mut pid).await? else {
                    return Ok(());
                };
                client = c;
                continue;
            }
            shared.progress.hold(Phase::HeldBack, Some(why));
            batch = (batch / 2).max(1);
            shared.nap_held(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
            continue;
        }
        backoff = Duration::from_millis(100);
        // a pass that found every user left locked says so until a batch
        // claims one again (the batches between find nothing either)
        if !stalled {
            shared.progress.hold(Phase::Working, None);
        }

        let mut size = control
            .batch_size
            .unwrap_or(batch)
            .min(shared.opts.max_batch)
            .max(1);
        if let Some(burst) = control.rate.burst() {
            size = size.min(burst);
        }
        // the commit probe's ceiling: a quarter second's users at most a
        // batch, each batch in its turn (a batch retried after a lost
        // session already had its turn, but keeps the ceiling)
        let retrying = std::mem::take(&mut turn_taken);
        let ceiling = shared.watch.ceiling();
        if let Some(per_s) = ceiling {
            size = size.min((per_s / 4.0) as u32).max(1);
        }
        if let Some(per_s) = ceiling.filter(|_| !retrying) {
            let wait =
                shared
                    .paced
                    .lock()
                    .expect("not poisoned")
                    .reserve(Instant::now(), size, per_s);
            if !wait.is_zero() {
                shared.nap_held(wait.min(Duration::from_millis(250))).await;
                continue;
            }
        }
        if let Some(limiter) = shared.limiter(control.rate).filter(|_| !retrying) {
            let n = NonZeroU32::new(size).expect("size is at least one");
            let mut stop = shared.stop.clone();
            tokio::select! {
                r = limiter.until_n_ready(n) => { r.map_err(|e| Error::Setup(format!("rate limiter: {e}")))?; }
                _ = stop.changed() => continue,
            }
            // the wait may have been long: obey a pause that came meanwhile
            if shared.control.borrow().paused {
                continue;
            }
        }

        cursor = cursor.max(shared.cursor.lock().expect("not poisoned").clone());
        let started = Instant::now();
        // a fixed batch size is the user's: the bytes bound only memory
        let budget = if control.batch_size.is_some() {
            MAX_BATCH_BYTES
        } else {
            bytes_budget
        };
        let outcome = job.batch(&mut client, cursor.clone(), size, budget).await;
        let elapsed = started.elapsed();
        let Claimed {
            users: claimed,
            last_id,
            done,
            failed,
            rows,
            warned,
            bytes,
            cut,
            held,
            redone,
            xacts,
        } = match outcome {
            Ok(v) => v,
            Err(e) if e.is_retryable() => {
                shared.watch.own(1);
                tracing::warn!(worker = w, cause = %e, "batch failed; retrying");
                if e.is_connection_lost() || client.is_closed() {
                    let Some(c) =
                        reopen(&shared, &pool, w, e.to_string(), client, &mut pid).await?
                    else {
                        return Ok(());
                    };
                    client = c;
                    // once: a batch that fails again on its new session
                    // waits for its turn as any other
                    turn_taken = !retrying;
                    continue;
                }
                shared.nap(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
            Err(e) => return Err(e),
        };
        shared.watch.own(xacts);
        let p = &shared.progress;
        p.migrated.fetch_add(done, Ordering::Relaxed);
        p.failed.fetch_add(failed, Ordering::Relaxed);
        p.rows.fetch_add(rows, Ordering::Relaxed);
        p.warned.fetch_add(warned, Ordering::Relaxed);
        p.redone.fetch_add(redone, Ordering::Relaxed);
        if claimed > 0 && done + failed > 0 {
            pass_moved = true;
        }
        if claimed == 0 {
            if cursor.is_some() {
                // end of a pass: start over for users skipped while locked
                cursor = None;
                *shared.cursor.lock().expect("not poisoned") = None;
                // a pass that read users and did none: they are all locked
                // (read without a lock, skipped when locked): say so, and
                // do not read them again at once
                if std::mem::replace(&mut pass_moved, false) {
                    continue;
                }
            }
            shared.watch.own(1);
            let left = match job.remaining(&client).await {
                Ok(n) => n,
                // the next batch finds out and re-opens the session
                Err(e) if e.is_retryable() => {
                    shared.nap(backoff).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if left == 0 {
                stalled = false;
                if shared.opts.until_done {
                    shared.stopping.store(true, Ordering::Relaxed);
                    shared.progress.stopping();
                    return Ok(());
                }
                shared.progress.hold(
                    Phase::Watching,
                    Some("no legacy user left; watching for new ones".into()),
                );
                shared.nap(Duration::from_secs(5)).await;
            } else {
                // the rest are locked by live traffic or a peer: revisit
                stalled = true;
                shared.progress.hold(
                    Phase::HeldBack,
                    Some(format!(
                        "every user left is locked by another session ({}: a \
                         backend's open transactions, or batches under way); trying them again",
                        crate::core::users(left)
                    )),
                );
                shared.nap(Duration::from_millis(100)).await;
            }
            continue;
        }
        if done + failed > 0 && std::mem::take(&mut stalled) {
            shared.progress.hold(Phase::Working, None);
        }
        {
            let mut furthest = shared.cursor.lock().expect("not poisoned");
            if *furthest < last_id {
                furthest.clone_from(&last_id);
            }
        }
        cursor = last_id;
        shared
            .progress
            .batch_micros
            .lock()
            .expect("not poisoned")
            .push((
                held.unwrap_or(elapsed)
                    .as_micros()
                    .min(u128::from(u32::MAX)) as u32,
                claimed as u32,
            ));
        // aim each batch at the target time: locks stay short
        let target = if shared.watch.others_working.load(Ordering::Relaxed) {
            shared.opts.busy_batch.min(shared.opts.target_batch)
        } else {
            shared.opts.target_batch
        }
        .as_secs_f64();
        let took = held.unwrap_or(elapsed).as_secs_f64().max(1e-4);
        if control.batch_size.is_none() && claimed >= size as usize {
            let ideal = f64::from(size) * target / took;
            let ideal = ideal.clamp(f64::from(size) / 2.0, f64::from(size) * 2.0);
            batch = (ideal as u32).clamp(1, shared.opts.max_batch);
        }
        // and at twice the target's bytes: a batch of ordinary users stops
        // at its count, a run of very large blobs at its bytes (a few users
        // a batch, not a count's worth of them in memory and locked)
        if control.batch_size.is_none() && bytes > 0 {
            bytes_budget = next_budget(bytes, target / took);
        }
        // a batch the bytes cut short: its count is what the bytes allow
        // (the rate limiter and the pacer reserve a batch's count before
        // it, so a count the bytes never reach would slow a set rate)
        if control.batch_size.is_none() && cut {
            batch = (claimed as u32).clamp(1, shared.opts.max_batch);
        }
    }
}

/// How many workers a run starts on a pool of `pool_size` sessions when
/// `asked` for: each worker holds a session for the whole run and the
/// monitor holds one more, so at most `pool_size - 1` (a worker beyond
/// that would wait for a session until a peer ends, and give up after the
/// pool's wait). A pool of one session cannot run at all.
fn workers_for_pool(asked: usize, pool_size: usize) -> Result<usize> {
    if pool_size < 2 {
        return Err(Error::Setup(format!(
            "a run needs at least 2 sessions (one for its monitor, one per worker) and the \
             handle's pool has {pool_size}: make the handle with a pool of at least workers + 2 \
             (`Decant::connect(url, spec, workers + 2)`)"
        )));
    }
    Ok(asked.max(1).min(pool_size - 1))
}

/// The blobs' stored bytes (`pg_column_size`, compressed or not) of a
/// worker's first batch.
const FIRST_BATCH_BYTES: u64 = 1 << 20;
/// The fewest stored bytes a batch is allowed (it always takes one user).
const MIN_BATCH_BYTES: u64 = 64 << 10;
/// The most stored bytes a batch reads, whatever its time or a fixed
/// batch size: the daemon holds each blob several times over, as text and
/// as trees, while it explodes and verifies it, and JSON compresses
/// several times over.
const MAX_BATCH_BYTES: u64 = 16 << 20;

/// The next batch's stored bytes after one of `bytes` whose lock hold was
/// `ratio` of the target: twice what would have taken the target, within
/// [`MIN_BATCH_BYTES`] and [`MAX_BATCH_BYTES`].
fn next_budget(bytes: u64, ratio: f64) -> u64 {
    // `as` saturates: an infinite ratio gives u64::MAX
    ((2.0 * bytes as f64 * ratio) as u64).clamp(MIN_BATCH_BYTES, MAX_BATCH_BYTES)
}

/// A fresh session for worker `w` after its own (`lost`, of process id
/// `pid`) went away (`cause`), tried with backoff (0.1 s doubling to 5 s)
/// until the database answers; its process id replaces `pid` among those
/// the probes count as the daemon's own. `None` when the run is stopped meanwhile; an
/// error, naming the last cause, once the database has been unreachable
/// for `max_outage`.
async fn reopen(
    shared: &Shared,
    pool: &deadpool_postgres::Pool,
    w: usize,
    mut cause: String,
    lost: deadpool_postgres::Object,
    pid: &mut i32,
) -> Result<Option<deadpool_postgres::Object>> {
    // its pool slot first: every worker may be here at once, and the pool
    // holds only one session more than they do
    drop(lost);
    let since = Instant::now();
    let mut wait = Duration::from_millis(100);
    tracing::warn!(worker = w, cause = %cause, "session lost; re-opening");
    loop {
        if shared.stopped() {
            return Ok(None);
        }
        match pool.get().await {
            Ok(c) => match c.query_one(crate::pg::sql::DAEMON_SESSION, &[]).await {
                Ok(r) => {
                    tracing::info!(
                        worker = w,
                        after_secs = since.elapsed().as_secs_f64(),
                        "session re-opened"
                    );
                    shared.progress.hold(Phase::Working, None);
                    let mut pids = shared.watch.pids.lock().expect("not poisoned");
                    pids.retain(|&x| x != *pid);
                    *pid = r.get(0);
                    pids.push(*pid);
                    return Ok(Some(c));
                }
                Err(e) => cause = Error::db("reading the worker's session id", e).to_string(),
            },
            Err(e) => cause = Error::Pool(e).to_string(),
        }
        if since.elapsed() >= shared.opts.max_outage {
            return Err(Error::Outage {
                secs: since.elapsed().as_secs_f64(),
                cause,
            });
        }
        tracing::warn!(worker = w, cause = %cause, "database unreachable; retrying");
        shared.progress.hold(
            Phase::Reconnecting,
            Some(format!("reconnecting to the database ({cause})")),
        );
        shared.nap(wait).await;
        wait = (wait * 2).min(Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    use super::{MAX_BATCH_BYTES, MIN_BATCH_BYTES, next_budget, workers_for_pool};

    #[test]
    fn a_run_starts_no_more_workers_than_its_pool_can_hold_with_the_monitor() {
        assert_eq!(workers_for_pool(2, 4).unwrap(), 2);
        assert_eq!(workers_for_pool(3, 4).unwrap(), 3);
        assert_eq!(workers_for_pool(4, 4).unwrap(), 3);
        assert_eq!(workers_for_pool(2, 2).unwrap(), 1);
        assert_eq!(workers_for_pool(0, 2).unwrap(), 1);
        let err = workers_for_pool(1, 1).unwrap_err().to_string();
        assert!(
            err.contains("at least 2 sessions") && err.contains("has 1"),
            "{err}"
        );
    }

    #[test]
    fn the_next_batch_gets_twice_the_bytes_that_would_take_the_target() {
        // on target: twice the bytes; four times over: half of them
        assert_eq!(next_budget(1 << 20, 1.0), 2 << 20);
        assert_eq!(next_budget(1 << 20, 0.25), 512 << 10);
        // within the bounds whatever the batch
        assert_eq!(next_budget(1, 1.0), MIN_BATCH_BYTES);
        assert_eq!(next_budget(1 << 30, 10.0), MAX_BATCH_BYTES);
        assert_eq!(next_budget(u64::MAX, f64::INFINITY), MAX_BATCH_BYTES);
        assert_eq!(next_budget(1 << 20, 0.0), MIN_BATCH_BYTES);
    }
}
