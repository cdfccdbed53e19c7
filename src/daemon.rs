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

use crate::compat::Decant;
use crate::control::{self, Control};
use crate::db;
use crate::error::{Error, Result};
use crate::migrate::{self, Failure};
use crate::schedule::{Rate, Schedule};
use deadpool_postgres::Object;
use governor::{DefaultDirectRateLimiter, RateLimiter};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::watch;

/// Options of a run; each documents its default.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Parallel workers, each one session (default 1, which leaves room
    /// for live traffic; 2 keeps both cores of a 2-core server busy).
    pub workers: usize,
    /// The rate when the control row does not set one; `--rate` writes
    /// the control row instead (default: whatever the control row says).
    pub rate: Option<Rate>,
    /// Low-traffic windows (default: always open).
    pub schedule: Schedule,
    /// Target duration of one batch transaction, which bounds how long a
    /// backend call may wait for a user's lock (default 100 ms).
    pub target_batch: Duration,
    /// Target duration of a batch while other sessions are working
    /// (default 20 ms): short bursts leave the CPU and the WAL to them
    /// sooner.
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
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            workers: 1,
            rate: None,
            schedule: Schedule::default(),
            target_batch: Duration::from_millis(100),
            busy_batch: Duration::from_millis(20),
            max_batch: 1000,
            rollout_only: false,
            until_done: true,
            throttle: Throttle::default(),
        }
    }
}

/// Thresholds of the database signals the daemon backs off on.
#[derive(Debug, Clone)]
pub struct Throttle {
    /// Hold back while other sessions wait on locks the daemon holds
    /// (default true).
    pub on_lock_waits: bool,
    /// Hold back while a replica's replay lag exceeds this (default 10 s).
    pub max_replica_lag: Duration,
    /// Hold back while more sessions than this are active, the daemon's
    /// excluded (default: no limit).
    pub max_active: Option<i64>,
    /// A query returning one boolean: true holds the daemon back.
    pub query: Option<String>,
    /// Hold back while other sessions are working and a small committed
    /// transaction (the commit probe, 4 per second) takes more than this
    /// many times its time before the daemon started (default 1.5; `None`
    /// turns the probe off). This is the daemon's own impact on the
    /// backend: its WAL and CPU slow everyone's commits.
    pub max_commit_slowdown: Option<f64>,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle {
            on_lock_waits: true,
            max_replica_lag: Duration::from_secs(10),
            max_active: None,
            query: None,
            max_commit_slowdown: Some(1.5),
        }
    }
}

/// Live counters of a run, shared with whoever shows progress.
#[derive(Debug, Default)]
pub struct Progress {
    /// Users migrated by this run.
    pub migrated: AtomicU64,
    /// Users whose migration failed in this run.
    pub failed: AtomicU64,
    /// Rows written by this run.
    pub rows: AtomicU64,
    /// Legacy users claimable when the run started.
    pub total: AtomicU64,
    /// Why the daemon is not working right now, if it is not.
    pub holding: Mutex<Option<String>>,
    /// Time the workers spent held back by database signals, summed over
    /// workers (microseconds).
    pub held_micros: AtomicU64,
    batch_micros: Mutex<Vec<u32>>,
}

impl Progress {
    fn hold(&self, why: Option<String>) {
        let mut h = self.holding.lock().expect("not poisoned");
        if *h != why {
            if let Some(w) = &why {
                tracing::info!(reason = %w, "holding back");
            } else if h.is_some() {
                tracing::info!("resuming work");
            }
            *h = why;
        }
    }

    /// Duration percentiles (p50, p99) of the batch transactions so far:
    /// the longest any user's row lock was held by this run.
    pub fn batch_percentiles(&self) -> Option<(Duration, Duration)> {
        let mut v = self.batch_micros.lock().expect("not poisoned").clone();
        if v.is_empty() {
            return None;
        }
        v.sort_unstable();
        let at = |q: f64| {
            Duration::from_micros(u64::from(v[((v.len() - 1) as f64 * q).round() as usize]))
        };
        Some((at(0.5), at(0.99)))
    }
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
    decant: Decant,
    opts: RunOptions,
    control: watch::Receiver<Control>,
    signals: watch::Receiver<Option<String>>,
    limiter: Mutex<(Rate, Option<Arc<DefaultDirectRateLimiter>>)>,
    run_start: SystemTime,
    pids: Mutex<Vec<i32>>,
    progress: Arc<Progress>,
    stop: watch::Receiver<bool>,
    stopping: AtomicBool,
    /// Highest id claimed by this process, so workers do not rescan what
    /// their peers already passed.
    cursor: AtomicI64,
    /// The commit probe's idle baseline and recent times.
    probe: Mutex<CommitProbe>,
    /// Other sessions worked on the database in the last second.
    others_working: AtomicBool,
}

/// Times of a small committed transaction: a baseline taken before the
/// workers start, and the last few taken while they run.
#[derive(Debug, Clone)]
pub struct CommitProbe {
    baseline: Duration,
    recent: std::collections::VecDeque<Duration>,
}

impl CommitProbe {
    /// Probes averaged to decide (one second at four per second).
    const WINDOW: usize = 4;

    /// A probe whose idle time is the median of `samples`.
    pub fn new(mut samples: Vec<Duration>) -> CommitProbe {
        samples.sort();
        let baseline = samples
            .get(samples.len() / 2)
            .copied()
            .unwrap_or(Duration::from_millis(1))
            .max(Duration::from_micros(50));
        CommitProbe {
            baseline,
            recent: std::collections::VecDeque::with_capacity(Self::WINDOW),
        }
    }

    /// Records one probe.
    pub fn push(&mut self, took: Duration) {
        if self.recent.len() == Self::WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(took);
    }

    /// The idle time.
    pub fn baseline(&self) -> Duration {
        self.baseline
    }

    /// Mean of the recent probes over the baseline (1 with no probes).
    pub fn slowdown(&self) -> f64 {
        if self.recent.is_empty() {
            return 1.0;
        }
        let mean = self.recent.iter().sum::<Duration>() / self.recent.len() as u32;
        mean.as_secs_f64() / self.baseline.as_secs_f64()
    }
}

/// Times one commit probe: a statement that takes a transaction id, so its
/// commit is flushed to the WAL like any backend write's.
async fn probe_commit(client: &Object) -> Result<Duration> {
    let started = Instant::now();
    client
        .simple_query("SELECT txid_current()")
        .await
        .map_err(|e| Error::db("probing commit time", e))?;
    Ok(started.elapsed())
}

/// Runs the daemon until the table is done (with `until_done`) or
/// `shutdown` resolves; a batch under way is finished first.
pub async fn run(
    decant: &Decant,
    opts: RunOptions,
    progress: Arc<Progress>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<RunReport> {
    let started = Instant::now();
    let admin = db::get(decant.pool()).await?;
    if let Some(rate) = opts.rate {
        control::set(&**admin, &control::Setting::Rate(rate)).await?;
    }
    let initial = control::read(&**admin).await?;
    let run_start: SystemTime = admin
        .query_one("SELECT now()", &[])
        .await
        .map_err(|e| Error::db("reading the server clock", e))?
        .get(0);
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let (control_tx, control_rx) = watch::channel(initial);
    // the first signals are read before any batch; the monitor refreshes them
    let (signals_tx, signals_rx) = watch::channel(None);
    let shared = Arc::new(Shared {
        decant: decant.clone(),
        opts: opts.clone(),
        control: control_rx,
        signals: signals_rx,
        limiter: Mutex::new((Rate::Max, None)),
        run_start,
        pids: Mutex::new(Vec::new()),
        progress: progress.clone(),
        stop: stop_rx,
        stopping: AtomicBool::new(false),
        cursor: AtomicI64::new(i64::MIN),
        probe: Mutex::new(CommitProbe::new(Vec::new())),
        others_working: AtomicBool::new(false),
    });
    let total = claimable(&shared, &admin).await?;
    progress.total.store(total as u64, Ordering::Relaxed);
    tracing::info!(legacy = total, workers = opts.workers, "daemon started");

    if opts.throttle.max_commit_slowdown.is_some() {
        let mut samples = Vec::new();
        for _ in 0..9 {
            samples.push(probe_commit(&admin).await?);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let probe = CommitProbe::new(samples);
        tracing::info!(
            baseline_ms = probe.baseline().as_secs_f64() * 1e3,
            "commit probe baseline"
        );
        *shared.probe.lock().expect("not poisoned") = probe;
    }
    signals_tx.send_replace(check_signals(&shared, &admin).await);
    let monitor = tokio::spawn(monitor(shared.clone(), admin, control_tx, signals_tx));
    let mut workers = Vec::new();
    for w in 0..opts.workers.max(1) {
        let shared = shared.clone();
        workers.push(tokio::spawn(async move { worker(w, shared).await }));
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
    if let Some(e) = first_error {
        return Err(e);
    }
    let client = db::get(decant.pool()).await?;
    let over_limit: i64 = client
        .query_one(
            "SELECT count(*) FROM decant.user_state WHERE state = 'failed' AND attempts >= $1",
            &[&decant.spec().settings.max_attempts],
        )
        .await
        .map_err(|e| Error::db("counting users over the attempt limit", e))?
        .get(0);
    let report = RunReport {
        migrated: progress.migrated.load(Ordering::Relaxed),
        failed: progress.failed.load(Ordering::Relaxed),
        rows: progress.rows.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
        batch_p50_p99: progress.batch_percentiles(),
        over_limit,
        interrupted: *shared.stop.borrow(),
        held_back: Duration::from_micros(
            progress.held_micros.load(Ordering::Relaxed) / opts.workers.max(1) as u64,
        ),
    };
    tracing::info!(
        migrated = report.migrated,
        failed = report.failed,
        rows = report.rows,
        secs = report.elapsed.as_secs_f64(),
        interrupted = report.interrupted,
        "daemon stopped"
    );
    Ok(report)
}

async fn claimable(shared: &Shared, client: &Object) -> Result<i64> {
    let store = shared.decant.store();
    Ok(client
        .query_one(
            &store.claimable,
            &[
                &i64::MIN,
                &store.spec.settings.max_attempts,
                &shared.run_start,
                &shared.opts.rollout_only,
            ],
        )
        .await
        .map_err(|e| Error::db("counting legacy users", e))?
        .get(0))
}

/// Re-reads the control row and the database signals every 250 ms.
async fn monitor(
    shared: Arc<Shared>,
    client: Object,
    control_tx: watch::Sender<Control>,
    signals_tx: watch::Sender<Option<String>>,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match control::read(&**client).await {
            Ok(c) => {
                control_tx.send_if_modified(|old| {
                    let changed = *old != c;
                    if changed {
                        tracing::info!(paused = c.paused, rate = %c.rate, batch = ?c.batch_size,
                            rollout = c.rollout_percent, "control row changed");
                        *old = c;
                    }
                    changed
                });
            }
            Err(e) => tracing::warn!(cause = %e, "cannot read the control row"),
        }
        let held = check_signals(&shared, &client).await;
        signals_tx.send_if_modified(|old| {
            let changed = *old != held;
            *old = held;
            changed
        });
    }
}

/// The reason to hold back, if any signal says so.
async fn check_signals(shared: &Shared, client: &Object) -> Option<String> {
    let t = &shared.opts.throttle;
    let pids = shared.pids.lock().expect("not poisoned").clone();
    let row = client
        .query_one(
            "SELECT
               (SELECT count(*) FROM pg_stat_activity a
                 WHERE $1::bool AND a.pid <> ALL ($2::int[])
                   AND pg_blocking_pids(a.pid) && $2::int[]),
               (SELECT coalesce(extract(epoch FROM max(replay_lag))::float8, 0) FROM pg_stat_replication),
               (SELECT count(*) FROM pg_stat_activity
                 WHERE state = 'active' AND backend_type = 'client backend'
                   AND pid <> pg_backend_pid() AND pid <> ALL ($2::int[])),
               (SELECT count(*) FROM pg_stat_activity
                 WHERE backend_type = 'client backend' AND datname = current_database()
                   AND pid <> pg_backend_pid() AND pid <> ALL ($2::int[])
                   AND (state = 'active' OR state_change > now() - interval '1 second'))",
            &[&t.on_lock_waits, &pids],
        )
        .await;
    let row = match row {
        Ok(r) => r,
        Err(e) => return Some(format!("cannot read database signals: {e}")),
    };
    let waiting: i64 = row.get(0);
    let lag: f64 = row.get(1);
    let active: i64 = row.get(2);
    let working: i64 = row.get(3);
    shared.others_working.store(working > 0, Ordering::Relaxed);
    if waiting > 0 {
        return Some(format!("{waiting} sessions wait on locks the daemon holds"));
    }
    if lag > t.max_replica_lag.as_secs_f64() {
        return Some(format!("replica replay lag {lag:.1} s"));
    }
    if let Some(max) = t.max_active {
        if active > max {
            return Some(format!("{active} active sessions (limit {max})"));
        }
    }
    if let Some(max) = t.max_commit_slowdown {
        match probe_commit(client).await {
            Ok(took) => {
                let mut probe = shared.probe.lock().expect("not poisoned");
                probe.push(took);
                let slowdown = probe.slowdown();
                // the daemon's own commits are slower when it is busy; that
                // only matters when somebody else is working
                if working > 0 && slowdown > max {
                    return Some(format!(
                        "commits take {slowdown:.1}x their idle time ({:.1} ms) while {working} \
                         other sessions work",
                        probe.baseline().as_secs_f64() * 1e3
                    ));
                }
            }
            Err(e) => return Some(format!("cannot probe commit time: {e}")),
        }
    }
    if let Some(q) = &t.query {
        match client
            .query_one(q.as_str(), &[])
            .await
            .map(|r| r.try_get::<_, bool>(0))
        {
            Ok(Ok(true)) => return Some("the throttle query says hold back".into()),
            Ok(Ok(false)) => {}
            Ok(Err(e)) | Err(e) => return Some(format!("the throttle query failed: {e}")),
        }
    }
    None
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

async fn worker(w: usize, shared: Arc<Shared>) -> Result<()> {
    let store = shared.decant.store();
    let mut client = db::get(shared.decant.pool()).await?;
    let pid: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .map_err(|e| Error::db("reading the worker's session id", e))?
        .get(0);
    shared.pids.lock().expect("not poisoned").push(pid);
    let claim = if shared.opts.rollout_only {
        &store.claim_rollout
    } else {
        &store.claim
    };
    let mut batch: u32 = 10;
    let mut backoff = Duration::from_millis(100);
    let mut cursor = i64::MIN;
    loop {
        if shared.stopped() {
            return Ok(());
        }
        let control = shared.control.borrow().clone();
        if control.paused {
            shared
                .progress
                .hold(Some("paused (decant resume to go on)".into()));
            shared.nap(Duration::from_millis(500)).await;
            continue;
        }
        let now = jiff::Timestamp::now();
        if !shared.opts.schedule.is_open(now) {
            let next = shared.opts.schedule.next_open(now);
            shared.progress.hold(Some(match &next {
                Some(z) => format!("outside the windows; the next opens at {z}"),
                None => "outside the windows".into(),
            }));
            shared.nap(Duration::from_secs(1)).await;
            continue;
        }
        let signal = shared.signals.borrow().clone();
        if let Some(why) = signal {
            shared.progress.hold(Some(why));
            batch = (batch / 2).max(1);
            let napped = Instant::now();
            shared.nap(backoff).await;
            shared.progress.held_micros.fetch_add(
                napped.elapsed().as_micros().min(u128::from(u64::MAX)) as u64,
                Ordering::Relaxed,
            );
            backoff = (backoff * 2).min(Duration::from_secs(5));
            continue;
        }
        backoff = Duration::from_millis(100);
        shared.progress.hold(None);

        let mut size = control
            .batch_size
            .unwrap_or(batch)
            .min(shared.opts.max_batch)
            .max(1);
        if let Some(burst) = control.rate.burst() {
            size = size.min(burst);
        }
        if let Some(limiter) = shared.limiter(control.rate) {
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

        cursor = cursor.max(shared.cursor.load(Ordering::Relaxed));
        let started = Instant::now();
        let outcome = migrate_claimed(&shared, &mut client, claim, cursor, size).await;
        let elapsed = started.elapsed();
        let (claimed, last_id) = match outcome {
            Ok(v) => v,
            Err(e) if e.is_retryable() => {
                tracing::warn!(worker = w, cause = %e, "batch failed; retrying");
                if matches!(e, Error::Pool(_)) || client.is_closed() {
                    client = db::get(shared.decant.pool()).await?;
                }
                shared.nap(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
            Err(e) => return Err(e),
        };
        if claimed == 0 {
            if cursor != i64::MIN {
                // end of a pass: start over for users skipped while locked
                cursor = i64::MIN;
                shared.cursor.store(i64::MIN, Ordering::Relaxed);
                continue;
            }
            let left = claimable(&shared, &client).await?;
            if left == 0 {
                if shared.opts.until_done {
                    shared.stopping.store(true, Ordering::Relaxed);
                    return Ok(());
                }
                shared
                    .progress
                    .hold(Some("no legacy user left; watching for new ones".into()));
                shared.nap(Duration::from_secs(5)).await;
            } else {
                // the rest are locked by live traffic or a peer: revisit
                shared.nap(Duration::from_millis(100)).await;
            }
            continue;
        }
        cursor = last_id;
        shared.cursor.fetch_max(last_id, Ordering::Relaxed);
        shared
            .progress
            .batch_micros
            .lock()
            .expect("not poisoned")
            .push(elapsed.as_micros().min(u128::from(u32::MAX)) as u32);
        // aim each batch at the target time: locks stay short
        if control.batch_size.is_none() && claimed >= size as usize {
            let target = if shared.others_working.load(Ordering::Relaxed) {
                shared.opts.busy_batch.min(shared.opts.target_batch)
            } else {
                shared.opts.target_batch
            }
            .as_secs_f64();
            let ideal = f64::from(size) * target / elapsed.as_secs_f64().max(1e-4);
            let ideal = ideal.clamp(f64::from(size) / 2.0, f64::from(size) * 2.0);
            batch = (ideal as u32).clamp(1, shared.opts.max_batch);
        }
    }
}

/// Claims up to `size` users after `cursor` and migrates them in one
/// transaction; returns how many were claimed and the last id.
async fn migrate_claimed(
    shared: &Shared,
    client: &mut Object,
    claim: &str,
    cursor: i64,
    size: u32,
) -> Result<(usize, i64)> {
    let store = shared.decant.store();
    let tx = client
        .transaction()
        .await
        .map_err(|e| Error::db("beginning a batch", e))?;
    let stmt = tx
        .prepare_cached(claim)
        .await
        .map_err(|e| Error::db("preparing the claim", e))?;
    let rows = tx
        .query(
            &stmt,
            &[
                &cursor,
                &store.spec.settings.max_attempts,
                &shared.run_start,
                &i64::from(size),
            ],
        )
        .await
        .map_err(|e| Error::db("claiming users", e))?;
    let mut locked: Vec<crate::store::Locked> = rows
        .iter()
        .map(|r| crate::store::Locked {
            id: r.get(0),
            blob: r.get(1),
            migrated: r.get(2),
        })
        .collect();
    let Some(last) = locked.last().map(|l| l.id) else {
        return Ok((0, cursor));
    };
    let claimed = locked.len();
    let ids: Vec<i64> = locked.iter().map(|l| l.id).collect();
    let stmt = tx
        .prepare_cached(&store.recheck)
        .await
        .map_err(|e| Error::db("preparing the claim re-check", e))?;
    let failed_meanwhile: Vec<i64> = tx
        .query(
            &stmt,
            &[&ids, &store.spec.settings.max_attempts, &shared.run_start],
        )
        .await
        .map_err(|e| Error::db("re-checking claimed users", e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    locked.retain(|l| !failed_meanwhile.contains(&l.id));
    let ids: Vec<i64> = locked.iter().map(|l| l.id).collect();
    let result = migrate::migrate_locked(store, &tx, &ids, locked).await;
    let report = match result {
        Ok(r) => {
            tx.commit()
                .await
                .map_err(|e| Error::db("committing a batch", e))?;
            r
        }
        Err(e) if e.is_retryable() => return Err(e),
        Err(e) => {
            // a database error in the batch: retry its users one by one,
            // so one bad user does not hold back the rest
            drop(tx);
            tracing::warn!(cause = %e, users = ids.len(), "batch failed; migrating its users one by one");
            migrate::migrate_batch(store, client, &ids, migrate::LockWait::Skip).await?
        }
    };
    let p = &shared.progress;
    p.migrated
        .fetch_add(report.migrated.len() as u64, Ordering::Relaxed);
    p.failed
        .fetch_add(report.failed.len() as u64, Ordering::Relaxed);
    p.rows.fetch_add(
        report.migrated.iter().map(|m| m.rows as u64).sum(),
        Ordering::Relaxed,
    );
    for Failure { user, error } in &report.failed {
        tracing::debug!(user, cause = %error, "user failed; stays legacy");
    }
    Ok((claimed, last))
}

/// Peak resident memory of this process (VmHWM), when the OS tells.
pub fn peak_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::CommitProbe;
    use std::time::Duration;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_commit_probe_compares_the_last_second_with_the_idle_median() {
        let mut p = CommitProbe::new(vec![ms(1), ms(9), ms(2), ms(2), ms(3)]);
        assert_eq!(p.baseline(), ms(2));
        assert_eq!(p.slowdown(), 1.0);
        p.push(ms(4));
        assert!((p.slowdown() - 2.0).abs() < 1e-9);
        for _ in 0..3 {
            p.push(ms(8));
        }
        assert!((p.slowdown() - 3.5).abs() < 1e-9, "{}", p.slowdown());
        // older probes leave the window
        for _ in 0..4 {
            p.push(ms(2));
        }
        assert!((p.slowdown() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn a_probe_without_samples_or_faster_than_possible_has_a_floor() {
        assert_eq!(CommitProbe::new(Vec::new()).baseline(), ms(1));
        assert_eq!(
            CommitProbe::new(vec![Duration::from_micros(3)]).baseline(),
            Duration::from_micros(50)
        );
    }
}
