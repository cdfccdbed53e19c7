//! The monitor: four times a second it re-reads the control row and the
//! database's signals (sessions waiting on the daemon's locks, replica lag,
//! active sessions, the commit probe, the server's transaction count for
//! the load yield, a user throttle query) and publishes them; workers obey
//! between batches.

use crate::core::schedule::Rate;
use crate::error::{Error, Result};
use crate::pg::control::{self, Control};
use crate::pg::sql;
use deadpool_postgres::Object;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

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
    /// Count the other sessions of every database on the server as the
    /// backend's traffic (default true: the rest of the game may live in
    /// another database of the same cluster, and it shares the WAL, the
    /// disk and the CPU); false counts only this database's.
    pub whole_server: bool,
    /// A query returning one boolean: true holds the daemon back.
    pub query: Option<String>,
    /// Slow down while other sessions are working and a small committed
    /// transaction (the commit probe, 4 per second) takes more than this
    /// many times its time before the daemon started (default 1.5; `None`
    /// turns the probe off). This is the daemon's own impact on the
    /// backend: its WAL and CPU slow everyone's commits. The probe sets a
    /// ceiling on the daemon's rate (`Ceiling`): cut while commits are
    /// slower than this, raised while they are not; at zero the daemon
    /// holds back.
    pub max_commit_slowdown: Option<f64>,
    /// Yield to the backend's load: while the server's other transactions
    /// per second (every database's with `whole_server`, the daemon's own
    /// subtracted) run above their usual rate, the daemon's rate is held
    /// to its rate before, times (usual / now) to this power (default 2:
    /// twice the usual load, about a quarter of the rate; `None` turns it
    /// off). See `LoadYield` in the monitor.
    pub load_yield: Option<f64>,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle {
            on_lock_waits: true,
            max_replica_lag: Duration::from_secs(10),
            max_active: None,
            whole_server: true,
            query: None,
            max_commit_slowdown: Some(1.5),
            load_yield: Some(2.0),
        }
    }
}

/// What the monitor and the workers share: the thresholds, the workers'
/// sessions (never counted as others), whether others work, the probe.
#[derive(Debug)]
pub(crate) struct Signals {
    pub throttle: Throttle,
    pub pids: Mutex<Vec<i32>>,
    /// Other sessions worked on the database in the last second.
    pub others_working: AtomicBool,
    /// The commit probe's idle baseline and recent times.
    pub probe: Mutex<CommitProbe>,
    /// The probe's ceiling on the daemon's rate, and the daemon's recent
    /// progress it is measured against.
    pub ceiling: Mutex<(Ceiling, Recent)>,
    /// The ceiling in users per second (f64 bits; infinity for none), for
    /// the workers to pace by: the commit probe's or the load yield's,
    /// whichever is lower.
    pub ceiling_now: AtomicU64,
    /// Transactions the daemon's own sessions ran (workers and monitor),
    /// which the load yield subtracts from the server's.
    pub own_xacts: AtomicU64,
    /// The load yield's view of the server's other transactions.
    pub load: Mutex<LoadYield>,
    /// The fingerprint of the daemon's spec's mapping.
    pub fingerprint: String,
    /// Why the workers must stop: `init` recorded another mapping while
    /// the daemon ran (set by the monitor).
    pub mismatch: Mutex<Option<String>>,
}

impl Signals {
    pub fn new(throttle: Throttle, fingerprint: String) -> Signals {
        Signals {
            throttle,
            fingerprint,
            mismatch: Mutex::new(None),
            pids: Mutex::new(Vec::new()),
            others_working: AtomicBool::new(false),
            probe: Mutex::new(CommitProbe::new(Vec::new())),
            ceiling: Mutex::new((Ceiling::default(), Recent::default())),
            ceiling_now: AtomicU64::new(f64::INFINITY.to_bits()),
            own_xacts: AtomicU64::new(0),
            load: Mutex::new(LoadYield::default()),
        }
    }

    /// Counts `n` transactions of the daemon's own sessions.
    pub fn own(&self, n: u64) {
        self.own_xacts.fetch_add(n, Ordering::Relaxed);
    }

    /// The probe's ceiling on the daemon's rate in users per second, if it
    /// sets one.
    pub fn ceiling(&self) -> Option<f64> {
        let c = f64::from_bits(self.ceiling_now.load(Ordering::Relaxed));
        c.is_finite().then_some(c)
    }

    /// Takes the commit probe's idle baseline (before the workers start).
    pub async fn calibrate(&self, client: &Object) -> Result<()> {
        if self.throttle.max_commit_slowdown.is_none() {
            return Ok(());
        }
        let mut samples = Vec::new();
        for _ in 0..9 {
            samples.push(probe_commit(client).await?);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let probe = CommitProbe::new(samples);
        tracing::info!(
            baseline_ms = probe.baseline().as_secs_f64() * 1e3,
            "commit probe baseline"
        );
        *self.probe.lock().expect("not poisoned") = probe;
        Ok(())
    }
}

/// Times of a small committed transaction: a baseline taken before the
/// workers start, and the last few taken while they run.
///
/// The baseline follows the server's idle time as it is now: a whole
/// window of probes below half of it lowers it to their median (commits
/// got much faster than the idle measure: a busy time is over; noise
/// alone would ratchet it down), and [`CommitProbe::REBASE`] of
/// the daemon held back altogether while commits stay slow raises it to
/// the median of those probes: the daemon did nothing, so the others'
/// own load made the commits slow, and holding back longer would stall
/// the migration for as long as that load lasts (seen with a busy backend
/// of five sessions on two cores: 0.2 ms at the start, 1.5 ms under the
/// backend alone, 2 users migrated in 60 s).
#[derive(Debug, Clone)]
pub(crate) struct CommitProbe {
    baseline: Duration,
    recent: std::collections::VecDeque<Duration>,
    /// Since when the daemon has been held back altogether, and the
    /// probes taken since.
    held: Option<(Instant, Vec<Duration>)>,
}

impl CommitProbe {
    /// Probes averaged to decide (one second at four per second).
    const WINDOW: usize = 4;

    /// How long the daemon holds back altogether before the commits it
    /// sees are taken as the server's idle time.
    pub const REBASE: Duration = Duration::from_secs(10);

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
            held: None,
        }
    }

    /// Records one probe.
    pub fn push(&mut self, took: Duration) {
        if self.recent.len() == Self::WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(took);
        if self.recent.len() == Self::WINDOW && self.recent.iter().all(|t| *t < self.baseline / 2) {
            self.baseline = Self::new(self.recent.iter().copied().collect()).baseline;
        }
    }

    /// Records at `now` whether the daemon is held back altogether (it
    /// did nothing in the last second under a ceiling that stops it), the
    /// last probe `took` so long. After [`CommitProbe::REBASE`] of that,
    /// the baseline becomes the median of the probes since, if higher;
    /// returns the new baseline then.
    pub fn hold(&mut self, now: Instant, held: bool, took: Duration) -> Option<Duration> {
        if !held {
            self.held = None;
            return None;
        }
        let (since, probes) = self.held.get_or_insert_with(|| (now, Vec::new()));
        probes.push(took);
        if now.duration_since(*since) < Self::REBASE {
            return None;
        }
        let idle = Self::new(std::mem::take(probes)).baseline;
        self.held = None;
        (idle > self.baseline).then(|| {
            self.baseline = idle;
            idle
        })
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

/// The commit probe's ceiling on the daemon's rate: additive increase,
/// multiplicative decrease, as a TCP sender paces by its losses. While the
/// probe says commits are too slow and others work, the ceiling is cut to
/// 70% of what the daemon did in the last second (at most once per probe
/// window, so one slow window cuts once); while they are not, it grows 5%
/// plus 10 users/s a tick (from zero to 700 users/s in about 8 s), and it is
/// lifted once it is well above what the daemon manages by itself. So the
/// daemon settles at the rate the backend's commits bear, lower when the
/// backend's load grows, instead of alternating between full speed and a
/// standstill. Below one user a second the daemon holds back.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ceiling {
    users_per_s: Option<f64>,
    /// Ticks left until the probe's window holds no probe from before the
    /// last cut.
    settle: usize,
}

impl Ceiling {
    const CUT: f64 = 0.7;
    const GROWTH: f64 = 1.05;
    const STEP: f64 = 10.0;

    /// One tick: `over` when the probe says commits are too slow while
    /// others work, `doing` the daemon's users per second over the last
    /// second. Returns the ceiling (None: no ceiling).
    pub fn update(&mut self, over: bool, doing: f64) -> Option<f64> {
        if over {
            if self.settle == 0 {
                let from = self.users_per_s.map_or(doing, |c| c.min(doing));
                self.users_per_s = Some(from * Self::CUT);
                self.settle = CommitProbe::WINDOW;
            }
        } else if let Some(c) = self.users_per_s {
            let up = c * Self::GROWTH + Self::STEP;
            // far above what the daemon does: the ceiling no longer binds
            self.users_per_s = (up < doing * 2.0 + 100.0).then_some(up);
        }
        self.settle = self.settle.saturating_sub(1);
        self.users_per_s
    }

    /// The ceiling as it stands (None: no ceiling).
    pub fn now(&self) -> Option<f64> {
        self.users_per_s
    }

    /// Whether the ceiling stops the daemon altogether.
    pub fn holds(ceiling: Option<f64>) -> bool {
        ceiling.is_some_and(|c| c < 1.0)
    }
}

/// The daemon's users per second over about the last second, from its
/// progress counter read each tick.
#[derive(Debug, Clone, Default)]
pub(crate) struct Recent {
    seen: std::collections::VecDeque<(Instant, u64)>,
}

impl Recent {
    /// Records the counter at `now` and returns the rate since the oldest
    /// reading within the last second or so (0 with one reading).
    pub fn rate(&mut self, now: Instant, count: u64) -> f64 {
        self.seen.push_back((now, count));
        while self.seen.len() > 2
            && now.duration_since(self.seen[1].0) >= Duration::from_millis(1000)
        {
            self.seen.pop_front();
        }
        let (t0, c0) = self.seen[0];
        let secs = now.duration_since(t0).as_secs_f64();
        if secs <= 0.0 {
            return 0.0;
        }
        count.saturating_sub(c0) as f64 / secs
    }
}

/// Paces batches under the commit probe's ceiling: each batch reserves
/// its users' share of a second in turn; a quarter second left unused
/// carries over, so short stalls cost no rate.
#[derive(Debug, Clone, Default)]
pub(crate) struct Pacer {
    next: Option<Instant>,
}

impl Pacer {
    /// How long a batch of `size` users must wait at `now` under a ceiling
    /// of `per_s` users per second; when it need not wait (zero), its time
    /// is reserved.
    pub fn reserve(&mut self, now: Instant, size: u32, per_s: f64) -> Duration {
        let next = self.next.unwrap_or(now);
        if next > now {
            return next - now;
        }
        let from = next.max(now.checked_sub(Duration::from_millis(250)).unwrap_or(now));
        self.next = Some(from + Duration::from_secs_f64(f64::from(size) / per_s.max(1e-3)));
        Duration::ZERO
    }
}

/// The backend's load, as the server's transactions per second other than
/// the daemon's, and the daemon's yield to it. Each tick the server's
/// transaction count (`pg_stat_database`: commits and rollbacks, every
/// database's or this one's) and the daemon's own are recorded; the
/// others' rate is taken over the last [`LoadYield::WINDOW`] (the server
/// publishes a session's counts about once a second, so a shorter window
/// sees whole seconds come and go). Once a second that rate joins a
/// history of the last [`LoadYield::HISTORY`]; its
/// [`LoadYield::PERCENTILE`] is the usual load, so a surge shorter than
/// most of the history does not become usual, and a load that stays for
/// minutes does (the commit probe still guards it then).
///
/// While the others run above [`LoadYield::DEAD_BAND`] times their usual
/// rate the daemon's rate is held to its calm rate (its own rate while it
/// did not yield, averaged over a few seconds) times
/// `((usual + FLOOR) / (now + FLOOR)) ^ power`, never below
/// [`LoadYield::MIN_SHARE`] of it: with the default power 2, a doubled
/// load holds the daemon to about a quarter of its rate, a tripled one to
/// about an eighth; when the load drops back the ceiling is lifted.
#[derive(Debug, Clone, Default)]
pub(crate) struct LoadYield {
    /// (when, the server's transactions, the daemon's own) each tick of
    /// the last window.
    seen: std::collections::VecDeque<(Instant, u64, u64)>,
    /// The others' rate once a second over the last history.
    history: std::collections::VecDeque<(Instant, f64)>,
    /// The daemon's users per second while it did not yield (a moving
    /// average).
    calm: Option<f64>,
    /// The last tick's others' rate, their usual rate and the share of the
    /// calm rate the daemon may take (1 while it does not yield).
    pub last: Option<(f64, f64, f64)>,
}

impl LoadYield {
    /// The others' rate is measured over this much time.
    pub const WINDOW: Duration = Duration::from_secs(5);
    /// The usual rate is taken from this much history.
    pub const HISTORY: Duration = Duration::from_secs(300);
    /// Seconds of history before the daemon yields at all (long enough
    /// that the few seconds before the backend's traffic came up, when a
    /// daemon starts with it, are fewer than the percentile's share).
    pub const MIN_HISTORY: usize = 20;
    /// The usual rate: this percentile of the history.
    pub const PERCENTILE: f64 = 0.3;
    /// Others at up to this many times their usual rate are usual.
    pub const DEAD_BAND: f64 = 1.25;
    /// Transactions per second added to both sides of the ratio, so a
    /// server with almost no other traffic does not make noise a surge.
    pub const FLOOR: f64 = 20.0;
    /// The yield never holds the daemon below this share of its calm rate
    /// (holding back altogether is the commit probe's and the other
    /// signals' call).
    pub const MIN_SHARE: f64 = 0.05;
    /// The calm rate's moving average: the weight of each tick.
    const CALM_WEIGHT: f64 = 0.05;

    /// Records one tick: `server` transactions on the server so far,
    /// `own` the daemon's. Returns the others' rate over the window, once
    /// the window spans at least half its length.
    pub fn observe(&mut self, now: Instant, server: u64, own: u64) -> Option<f64> {
        // counters reset (pg_stat_reset): start over
        if self
            .seen
            .back()
            .is_some_and(|&(_, s, o)| server < s || own < o)
        {
            self.seen.clear();
        }
        self.seen.push_back((now, server, own));
        while self.seen.len() > 2 && now.duration_since(self.seen[1].0) >= Self::WINDOW {
            self.seen.pop_front();
        }
        let (t0, s0, o0) = self.seen[0];
        let secs = now.duration_since(t0).as_secs_f64();
        if secs < Self::WINDOW.as_secs_f64() / 2.0 {
            return None;
        }
        let others = (server - s0) as f64 - (own - o0) as f64;
        let rate = others.max(0.0) / secs;
        if self
            .history
            .back()
            .is_none_or(|&(t, _)| now.duration_since(t) >= Duration::from_secs(1))
        {
            self.history.push_back((now, rate));
            while self
                .history
                .front()
                .is_some_and(|&(t, _)| now.duration_since(t) > Self::HISTORY)
            {
                self.history.pop_front();
            }
        }
        Some(rate)
    }

    /// The others' usual rate: the history's percentile, once it holds
    /// enough seconds.
    pub fn usual(&self) -> Option<f64> {
        if self.history.len() < Self::MIN_HISTORY {
            return None;
        }
        let mut rates: Vec<f64> = self.history.iter().map(|&(_, r)| r).collect();
        rates.sort_by(f64::total_cmp);
        Some(rates[((rates.len() - 1) as f64 * Self::PERCENTILE) as usize])
    }

    /// The share of its calm rate the daemon may take while the others
    /// run at `now` against their `usual` rate.
    pub fn share(now: f64, usual: f64, power: f64) -> f64 {
        let ratio = (usual + Self::FLOOR) / (now + Self::FLOOR);
        if ratio * Self::DEAD_BAND >= 1.0 {
            return 1.0;
        }
        ratio.powf(power).clamp(Self::MIN_SHARE, 1.0)
    }

    /// One tick: records the counters, and returns the ceiling on the
    /// daemon's users per second while it yields (`doing` is its rate over
    /// the last second).
    pub fn update(
        &mut self,
        now: Instant,
        server: u64,
        own: u64,
        doing: f64,
        power: f64,
    ) -> Option<f64> {
        let rate = self.observe(now, server, own);
        let (Some(rate), Some(usual)) = (rate, self.usual()) else {
            self.last = None;
            self.calm_with(doing);
            return None;
        };
        let share = Self::share(rate, usual, power);
        self.last = Some((rate, usual, share));
        if share >= 1.0 {
            self.calm_with(doing);
            return None;
        }
        // yielding from the first tick: the rate it had is what it did;
        // a daemon that has done nothing yet has no calm rate to take a
        // share of, and is left to the commit probe rather than stopped
        let calm = match self.calm {
            Some(calm) => calm,
            None if doing > 0.0 => *self.calm.insert(doing),
            None => return None,
        };
        Some(calm * share)
    }

    /// Folds `doing` into the calm rate; a second without progress (the
    /// daemon paused, outside its windows, held back, or out of users) is
    /// not its rate, and leaves it as it was.
    fn calm_with(&mut self, doing: f64) {
        if doing <= 0.0 {
            return;
        }
        self.calm = Some(match self.calm {
            Some(c) => c + (doing - c) * Self::CALM_WEIGHT,
            None => doing,
        });
    }
}

/// Times one commit probe: a statement that takes a transaction id, so its
/// commit is flushed to the WAL like any backend write's.
pub(crate) async fn probe_commit(client: &Object) -> Result<Duration> {
    let started = Instant::now();
    client
        .simple_query(sql::COMMIT_PROBE)
        .await
        .map_err(|e| Error::db("probing commit time", e))?;
    Ok(started.elapsed())
}

/// This daemon's row in `decant.daemon`: who it is and what it did.
pub(crate) struct Heartbeat {
    /// `host:pid:start:n`.
    pub id: String,
    pub host: String,
    pub job: &'static str,
    pub workers: usize,
    pub progress: Arc<super::progress::Progress>,
    /// Live daemons at the last beat, this one included (1 when the table
    /// is missing: a database initialized by an older decant).
    pub live: usize,
    /// The table is missing: warned once, no more beats.
    pub missing: bool,
    /// The control row's rate at the last beat from `run` (before sharing).
    pub rate: Rate,
    /// The windows the daemon was started with (`run --window`, comma
    /// separated) and their time zone, written into its row at every beat,
    /// for status's projection.
    pub windows: Option<(String, String)>,
    /// The table lacks the `windows` and `tz` columns (made by an older
    /// decant): beats write the row without them.
    no_windows: bool,
}

impl Heartbeat {
    pub fn new(
        job: &'static str,
        workers: usize,
        progress: Arc<super::progress::Progress>,
    ) -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unknown".into());
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        // several daemons may run in one process (the library's callers)
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Heartbeat {
            id: format!("{host}:{}:{start}:{n}", std::process::id()),
            host,
            job,
            workers,
            progress,
            live: 1,
            missing: false,
            rate: Rate::Max,
            windows: None,
            no_windows: false,
        }
    }

    /// Writes this daemon's row (and removes the rows of daemons gone
    /// silent) and counts the live daemons, this one included. `rate` is
    /// the control row's (all daemons' together); the row records this
    /// daemon's share of it after the count.
    pub async fn beat(&mut self, client: &Object, rate: Rate, holding: Option<&str>) {
        if self.missing {
            return;
        }
        let p = &self.progress;
        let rate_share = rate.share(self.live).to_string();
        let pid = std::process::id() as i32;
        let (workers, migrated, failed) =
            (self.workers as i32, p.migrated() as i64, p.failed() as i64);
        let (windows, tz) = match &self.windows {
            Some((w, z)) => (Some(w.as_str()), Some(z.as_str())),
            None => (None, None),
        };
        let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![
            &self.id,
            &self.host,
            &pid,
            &self.job,
            &workers,
            &migrated,
            &failed,
            &rate_share,
            &holding,
        ];
        let statement = if self.no_windows {
            sql::HEARTBEAT_WITHOUT_WINDOWS
        } else {
            params.push(&windows);
            params.push(&tz);
            sql::HEARTBEAT
        };
        let mut row = client.query_one(statement, &params).await;
        if !self.no_windows
            && matches!(&row, Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_COLUMN))
        {
            // a decant.daemon made by an older decant: status projects
            // with the control row's windows
            self.no_windows = true;
            row = client
                .query_one(sql::HEARTBEAT_WITHOUT_WINDOWS, &params[..9])
                .await;
        }
        match row {
            Ok(r) => {
                let before = self.live;
                self.live = r.get::<_, i64>(0).max(0) as usize + 1;
                // a daemon came or went: the share just written is stale
                if rate.share(before) != rate.share(self.live) {
                    let _ = client
                        .execute(
                            "UPDATE decant.daemon SET rate_share = $2 WHERE id = $1",
                            &[&self.id, &rate.share(self.live).to_string()],
                        )
                        .await;
                }
            }
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => {
                self.missing = true;
                tracing::warn!(
                    "decant.daemon is missing (initialized by an older decant): the rate is not \
                     shared with other daemons and status cannot list this one; run `decant init`"
                );
            }
            Err(e) => tracing::warn!(
                cause = %crate::error::describe(&e),
                "cannot write the daemon's heartbeat"
            ),
        }
    }
}

/// Re-reads the control row and the database signals every 250 ms, and
/// beats every second.
pub(crate) async fn monitor(
    shared: Arc<Signals>,
    client: Object,
    pool: deadpool_postgres::Pool,
    control_tx: watch::Sender<Control>,
    signals_tx: watch::Sender<Option<String>>,
    mut heartbeat: Heartbeat,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut session = Some(client);
    let mut ticks: u64 = 0;
    // the control row's rate, before this daemon takes its share
    let mut rate = heartbeat.rate;
    loop {
        tick.tick().await;
        ticks += 1;
        // a session gone (server restarted, session terminated): a new one
        // (its slot in the pool freed first), tried again next tick until
        // the database answers; the workers meanwhile re-open theirs
        if session.as_ref().is_none_or(|c| c.is_closed()) {
            session = None;
            match pool.get().await {
                Ok(c) => {
                    if let Err(e) = c.query_one(sql::DAEMON_SESSION, &[]).await {
                        tracing::warn!(
                            cause = %crate::error::describe(&e),
                            "cannot mark the monitor's session"
                        );
                        continue;
                    }
                    tracing::info!("monitor session re-opened");
                    session = Some(c);
                }
                Err(e) => {
                    let why = format!("database unreachable ({})", Error::Pool(e));
                    signals_tx.send_if_modified(|old| {
                        let changed = old.as_deref() != Some(why.as_str());
                        *old = Some(why.clone());
                        changed
                    });
                    continue;
                }
            }
        }
        let client = session.as_ref().expect("opened above");
        if ticks % 4 == 1 {
            // paused, outside the windows, held back, or slowed under the
            // commit probe's ceiling (what the workers last said, then the
            // signals they have not yet seen)
            let holding = heartbeat
                .progress
                .holding()
                .or_else(|| signals_tx.borrow().clone())
                .or_else(|| heartbeat.progress.paced());
            shared.own(1);
            heartbeat.beat(client, rate, holding.as_deref()).await;
            shared.own(1);
            if let Some(detail) = mapping_changed(client, &shared.fingerprint).await {
                *shared.mismatch.lock().expect("not poisoned") = Some(detail);
            }
        }
        shared.own(1);
        match control::read(&***client).await {
            Ok(mut c) => {
                rate = c.rate;
                // the rate is every daemon's together: this one takes its share
                c.rate = c.rate.share(heartbeat.live);
                heartbeat.progress.rate_share.store(
                    c.rate.per_second().unwrap_or(0.0).to_bits(),
                    Ordering::Relaxed,
                );
                control_tx.send_if_modified(|old| {
                    let changed = *old != c;
                    if changed {
                        tracing::info!(paused = c.paused, rate = %c.rate, batch = c.batch_size,
                            rollout = c.rollout_percent, "control row changed");
                        *old = c;
                    }
                    changed
                });
            }
            Err(e) => tracing::warn!(cause = %e, "cannot read the control row"),
        }
        let done = heartbeat.progress.migrated() + heartbeat.progress.failed();
        let held = check_signals(&shared, client, done).await;
        if let Some(limit) = shared.throttle.max_commit_slowdown {
            heartbeat
                .progress
                .probe_limit
                .store(limit.to_bits(), Ordering::Relaxed);
            let ratio = shared.probe.lock().expect("not poisoned").slowdown();
            heartbeat
                .progress
                .probe_ratio
                .store(ratio.to_bits(), Ordering::Relaxed);
        }
        if shared.throttle.max_commit_slowdown.is_some() || shared.throttle.load_yield.is_some() {
            heartbeat.progress.ceiling.store(
                shared.ceiling().unwrap_or(f64::INFINITY).to_bits(),
                Ordering::Relaxed,
            );
        }
        if shared.throttle.load_yield.is_some() {
            let last = shared.load.lock().expect("not poisoned").last;
            *heartbeat.progress.load.lock().expect("not poisoned") = last;
        }
        signals_tx.send_if_modified(|old| {
            let changed = *old != held;
            *old = held;
            changed
        });
    }
}

/// Why the daemon must stop, if `init` recorded a mapping other than its
/// spec's since it started (`init --evolve`): it would go on migrating
/// (or rolling back, or evolving) users with a mapping that is no longer
/// the recorded one, as a backend's handle is refused to. Read through
/// `to_jsonb` so that a control row without the column (an `init` of an
/// old version) answers NULL rather than an error every second.
async fn mapping_changed(client: &Object, ours: &str) -> Option<String> {
    let row = client
        .query_one(
            "SELECT to_jsonb(c) ->> 'spec_fingerprint' FROM decant.control AS c",
            &[],
        )
        .await
        .ok()?;
    let recorded: Option<String> = row.get(0);
    recorded.filter(|r| r != ours).map(|_| {
        "the mapping recorded by `decant init` changed while this daemon ran (`decant init \
         --evolve`?): it stopped rather than go on with a mapping that is no longer the \
         recorded one. Start it again with the spec `init` recorded (after an evolution, \
         `decant run --evolve` re-migrates the users migrated with the old mapping)"
            .to_string()
    })
}

/// The reason to hold back, if any signal says so.
///
/// `done` is the daemon's progress counter (users it finished), which the
/// commit probe's [`Ceiling`] measures the daemon's rate by.
pub(crate) async fn check_signals(shared: &Signals, client: &Object, done: u64) -> Option<String> {
    let t = &shared.throttle;
    let pids = shared.pids.lock().expect("not poisoned").clone();
    let row = client
        .query_one(sql::SIGNALS, &[&t.on_lock_waits, &pids, &t.whole_server])
        .await;
    let row = match row {
        Ok(r) => r,
        Err(e) => return Some(format!("cannot read database signals: {e}")),
    };
    let waiting: i64 = row.get(0);
    let lag: f64 = row.get(1);
    let active: i64 = row.get(2);
    let working: i64 = row.get(3);
    let server_xacts: i64 = row.get(4);
    shared.own(1);
    shared.others_working.store(working > 0, Ordering::Relaxed);
    let now = Instant::now();
    let doing = shared
        .ceiling
        .lock()
        .expect("not poisoned")
        .1
        .rate(now, done);
    // the load yield's ceiling, before any reason to hold back returns
    let yielded = t.load_yield.and_then(|power| {
        let own = shared.own_xacts.load(Ordering::Relaxed);
        let mut load = shared.load.lock().expect("not poisoned");
        load.update(now, server_xacts.max(0) as u64, own, doing, power)
    });
    // the probe's ceiling as it stands, for a tick that does not probe
    let kept = shared.ceiling.lock().expect("not poisoned").0.now();
    let publish = |probe: Option<f64>| {
        let c = match (probe, yielded) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).unwrap_or(f64::INFINITY),
        };
        shared.ceiling_now.store(c.to_bits(), Ordering::Relaxed);
    };
    if waiting > 0 {
        publish(kept);
        return Some(format!("{waiting} sessions wait on locks the daemon holds"));
    }
    if lag > t.max_replica_lag.as_secs_f64() {
        publish(kept);
        return Some(format!("replica replay lag {lag:.1} s"));
    }
    if let Some(max) = t.max_active {
        if active > max {
            publish(kept);
            return Some(format!("{active} active sessions (limit {max})"));
        }
    }
    if let Some(max) = t.max_commit_slowdown {
        shared.own(1);
        match probe_commit(client).await {
            Ok(took) => {
                let mut probe = shared.probe.lock().expect("not poisoned");
                probe.push(took);
                // the daemon's own commits are slower when it is busy; that
                // only matters when somebody else is working
                let over = working > 0 && probe.slowdown() > max;
                let held = over && doing == 0.0 && Ceiling::holds(kept);
                if let Some(idle) = probe.hold(now, held, took) {
                    tracing::info!(
                        baseline_ms = idle.as_secs_f64() * 1e3,
                        "commits stayed slow while the daemon held back for {} s: the others' \
                         own load; the commit probe takes their time as the idle time",
                        CommitProbe::REBASE.as_secs()
                    );
                }
                let slowdown = probe.slowdown();
                let over = working > 0 && slowdown > max;
                let ceiling = shared
                    .ceiling
                    .lock()
                    .expect("not poisoned")
                    .0
                    .update(over, doing);
                publish(ceiling);
                if over && Ceiling::holds(ceiling) {
                    return Some(format!(
                        "commits take {slowdown:.1}x their idle time ({:.1} ms) while {working} \
                         other sessions work",
                        probe.baseline().as_secs_f64() * 1e3
                    ));
                }
            }
            Err(e) => return Some(format!("cannot probe commit time: {e}")),
        }
    } else {
        publish(None);
    }
    if let Some(q) = &t.query {
        shared.own(1);
        match throttle_query(&***client, q).await {
            Ok(true) => return Some("the throttle query says hold back".into()),
            Ok(false) => {}
            Err(why) => return Some(format!("the throttle query {why}")),
        }
    }
    None
}

/// The throttle query's answer (true or NULL: hold back), or why it gives none
/// (the server's message; not one boolean).
pub(crate) async fn throttle_query(
    client: &impl tokio_postgres::GenericClient,
    q: &str,
) -> std::result::Result<bool, String> {
    let rows = client
        .query(q, &[])
        .await
        .map_err(|e| format!("failed: {}", crate::error::describe(&e)))?;
    let not_one = "must return one row of one boolean (true: hold back)";
    match &rows[..] {
        [row] if row.len() == 1 => row
            .try_get::<_, Option<bool>>(0)
            .map_err(|_| format!("{not_one}; its column is {}", row.columns()[0].type_()))
            .map(|b| b.unwrap_or(true)),
        [row] => Err(format!("{not_one}; it returned {} columns", row.len())),
        rows => Err(format!("{not_one}; it returned {} rows", rows.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::{Ceiling, CommitProbe, LoadYield, Pacer, Recent};
    use std::time::Duration;
    use std::time::Instant;

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
    fn commits_slow_while_the_daemon_holds_back_become_the_idle_time() {
        let mut p = CommitProbe::new(vec![Duration::from_micros(200); 9]);
        let t0 = Instant::now();
        let slow = Duration::from_micros(1500);
        // held back, commits still 7.5x: after REBASE they are the idle time
        let mut rebased = None;
        for i in 0..=40u64 {
            p.push(slow);
            assert!(p.slowdown() > 7.0 || rebased.is_some());
            if let Some(b) = p.hold(t0 + ms(250 * i), true, slow) {
                assert!(ms(250 * i) >= CommitProbe::REBASE, "{i}");
                rebased = Some(b);
                break;
            }
        }
        assert_eq!(rebased, Some(slow));
        assert!((p.slowdown() - 1.0).abs() < 1e-9);
        // a hold that ends early restarts the count
        let mut p = CommitProbe::new(vec![Duration::from_micros(200); 9]);
        for i in 0..30u64 {
            let held = i != 20;
            assert_eq!(p.hold(t0 + ms(250 * i), held, slow), None, "{i}");
        }
        assert_eq!(p.baseline(), Duration::from_micros(200));
        // commits well under the idle time for a whole window lower it;
        // noise just under it does not
        let mut p = CommitProbe::new(vec![ms(2); 9]);
        for _ in 0..8 {
            p.push(Duration::from_micros(1900));
        }
        assert_eq!(p.baseline(), ms(2));
        for _ in 0..4 {
            p.push(Duration::from_micros(400));
        }
        assert_eq!(p.baseline(), Duration::from_micros(400));
    }

    #[test]
    fn a_probe_without_samples_or_faster_than_possible_has_a_floor() {
        assert_eq!(CommitProbe::new(Vec::new()).baseline(), ms(1));
        assert_eq!(
            CommitProbe::new(vec![Duration::from_micros(3)]).baseline(),
            Duration::from_micros(50)
        );
    }

    #[test]
    fn the_ceiling_cuts_once_per_window_and_grows_back() {
        let mut c = Ceiling::default();
        // commits fine: no ceiling
        assert_eq!(c.update(false, 800.0), None);
        // too slow: 70% of what the daemon did, then no second cut until
        // the probe's window has only probes taken after the first
        assert_eq!(c.update(true, 800.0), Some(560.0));
        for _ in 0..3 {
            assert_eq!(c.update(true, 560.0), Some(560.0));
        }
        assert_eq!(c.update(true, 560.0), Some(392.0));
        // a daemon slower than its ceiling is cut from what it did
        for _ in 0..3 {
            c.update(true, 100.0);
        }
        let cut = c.update(true, 100.0).unwrap();
        assert!((cut - 70.0).abs() < 1e-9, "{cut}");
        // fine again: it grows each tick, and is lifted once far above
        // what the daemon does
        let up = c.update(false, 70.0).unwrap();
        assert!((up - (70.0 * 1.05 + 10.0)).abs() < 1e-9, "{up}");
        let mut ticks = 0;
        while c.update(false, 150.0).is_some() {
            ticks += 1;
            assert!(ticks < 100, "never lifted");
        }
        assert!(ticks > 3, "lifted after {ticks} ticks");
    }

    #[test]
    fn a_ceiling_cut_to_nothing_holds_the_daemon_back_until_commits_recover() {
        let mut c = Ceiling::default();
        // the daemon did nothing yet (it starts while commits are slow)
        let zero = c.update(true, 0.0);
        assert!(Ceiling::holds(zero));
        for _ in 0..10 {
            assert!(Ceiling::holds(c.update(true, 0.0)));
        }
        // from nothing to 700 users/s in well under ten seconds of ticks
        // (the daemon keeping up with its ceiling)
        let (mut ticks, mut doing) = (0, 0.0);
        while let Some(v) = c.update(false, doing).filter(|v| *v < 700.0) {
            doing = v;
            ticks += 1;
        }
        assert!((20..40).contains(&ticks), "{ticks} ticks");
        assert!(!Ceiling::holds(None) && !Ceiling::holds(Some(5.0)));
    }

    #[test]
    fn the_recent_rate_spans_about_the_last_second() {
        let t = Instant::now();
        let at = |ms: u64| t + Duration::from_millis(ms);
        let mut r = Recent::default();
        assert_eq!(r.rate(at(0), 0), 0.0);
        assert!((r.rate(at(250), 100) - 400.0).abs() < 1e-9);
        r.rate(at(500), 200);
        r.rate(at(750), 300);
        r.rate(at(1000), 400);
        // a burst long ago leaves the window
        r.rate(at(1250), 400);
        r.rate(at(1500), 400);
        r.rate(at(1750), 400);
        let now = r.rate(at(2000), 400);
        assert_eq!(now, 0.0, "{now}");
    }

    #[test]
    fn the_pacer_spaces_batches_by_the_ceiling_and_carries_a_quarter_second() {
        let t = Instant::now() + Duration::from_secs(10);
        let at = |ms: u64| t + Duration::from_millis(ms);
        let mut p = Pacer::default();
        // 100 users/s: a batch of 20 takes 200 ms of the ceiling
        assert_eq!(p.reserve(at(0), 20, 100.0), Duration::ZERO);
        assert_eq!(p.reserve(at(50), 20, 100.0), Duration::from_millis(150));
        assert_eq!(p.reserve(at(200), 20, 100.0), Duration::ZERO);
        // a stall: at most a quarter second's credit
        assert_eq!(p.reserve(at(2000), 50, 100.0), Duration::ZERO);
        assert_eq!(p.reserve(at(2100), 10, 100.0), Duration::from_millis(150));
        // 1,000 users in one second at 500 users/s: two seconds of batches
        let mut p = Pacer::default();
        let (mut now, mut users) = (0u64, 0u32);
        while users < 1000 {
            let wait = p.reserve(at(now), 10, 500.0);
            if wait.is_zero() {
                users += 10;
            } else {
                now += wait.as_millis() as u64;
            }
        }
        assert!((1950..=2000).contains(&now), "{now} ms");
    }

    /// Feeds `secs` seconds of ticks (four a second) to `load`: the others
    /// at `others` transactions a second, the daemon's own at `own`, the
    /// daemon doing `doing` users a second; returns the last ceiling.
    fn feed(
        load: &mut LoadYield,
        clock: &mut (Instant, u64, u64),
        secs: u64,
        others: u64,
        own: u64,
        doing: f64,
    ) -> Option<f64> {
        let mut ceiling = None;
        for _ in 0..secs * 4 {
            clock.0 += ms(250);
            clock.1 += (others + own) / 4;
            clock.2 += own / 4;
            ceiling = load.update(clock.0, clock.1, clock.2, doing, 2.0);
        }
        ceiling
    }

    #[test]
    fn the_others_rate_leaves_out_the_daemons_own_transactions() {
        let mut load = LoadYield::default();
        let t = Instant::now();
        assert_eq!(load.observe(t, 1000, 0), None, "one tick is no rate");
        // 300 a second on the server, 100 of them the daemon's
        let mut rate = None;
        for i in 1..=40u64 {
            rate = load.observe(t + ms(250 * i), 1000 + 75 * i, 25 * i);
        }
        let rate = rate.expect("ten seconds make a rate");
        assert!((rate - 200.0).abs() < 1e-6, "{rate}");
        // a reset of the server's counters starts the window over
        assert_eq!(load.observe(t + ms(250 * 41), 10, 1025), None);
    }

    #[test]
    fn a_doubled_load_holds_the_daemon_to_a_quarter_and_lets_go_when_it_drops() {
        let mut load = LoadYield::default();
        let mut clock = (Instant::now(), 0, 0);
        // a minute of the usual load: the daemon runs free
        assert_eq!(feed(&mut load, &mut clock, 60, 200, 150, 1000.0), None);
        assert_eq!(load.last.map(|l| l.2), Some(1.0));
        // the load doubles: the window's rate passes 1.25x the usual in
        // its second second, and from then the ceiling is about a quarter
        // of the calm rate (the daemon, held, does less; its own
        // transactions fall with it)
        assert_eq!(feed(&mut load, &mut clock, 1, 400, 150, 1000.0), None);
        assert!(feed(&mut load, &mut clock, 1, 400, 150, 1000.0).is_some());
        let held = feed(&mut load, &mut clock, 5, 400, 40, 300.0).expect("yields");
        let share = LoadYield::share(400.0, 200.0, 2.0);
        assert!((share - (220.0f64 / 420.0).powi(2)).abs() < 1e-9);
        assert!((held - 1000.0 * share).abs() < 1.0, "{held}");
        // thirty seconds of it do not make it usual
        let still = feed(&mut load, &mut clock, 30, 400, 40, 270.0).expect("still yields");
        assert!((still - 1000.0 * share).abs() < 1.0, "{still}");
        // the load drops back: within a window the daemon runs free
        assert_eq!(feed(&mut load, &mut clock, 6, 200, 150, 1000.0), None);
    }

    #[test]
    fn the_usual_load_and_its_noise_are_not_a_surge() {
        let mut load = LoadYield::default();
        let mut clock = (Instant::now(), 0, 0);
        // no history yet: no yield even at a high load
        assert_eq!(feed(&mut load, &mut clock, 8, 800, 0, 500.0), None);
        let mut load = LoadYield::default();
        let mut clock = (Instant::now(), 0, 0);
        // the usual load wobbling by a fifth either way
        for _ in 0..10 {
            assert_eq!(feed(&mut load, &mut clock, 5, 240, 100, 500.0), None);
            assert_eq!(feed(&mut load, &mut clock, 5, 160, 100, 500.0), None);
        }
        // a server with hardly any other traffic: a few more are noise
        assert_eq!(LoadYield::share(6.0, 1.0, 2.0), 1.0);
        // a load that stays becomes usual within minutes
        let mut load = LoadYield::default();
        let mut clock = (Instant::now(), 0, 0);
        feed(&mut load, &mut clock, 60, 200, 0, 500.0);
        assert!(feed(&mut load, &mut clock, 60, 400, 0, 500.0).is_some());
        assert_eq!(feed(&mut load, &mut clock, 300, 400, 0, 500.0), None);
        // and the share has a floor
        assert_eq!(LoadYield::share(1e6, 100.0, 2.0), LoadYield::MIN_SHARE);
        // a pause (no progress) does not make the calm rate zero
        let mut load = LoadYield::default();
        let mut clock = (Instant::now(), 0, 0);
        feed(&mut load, &mut clock, 60, 200, 100, 800.0);
        feed(&mut load, &mut clock, 30, 200, 10, 0.0);
        let held = feed(&mut load, &mut clock, 8, 400, 10, 0.0).expect("yields");
        let share = LoadYield::share(400.0, 200.0, 2.0);
        assert!((held - 800.0 * share).abs() < 1.0, "{held}");
    }

    #[test]
    fn a_surge_before_any_progress_does_not_stop_the_daemon() {
        // history gathered while the daemon had no work (paused, outside
        // its window): no calm rate yet
        let mut load = LoadYield::default();
        let mut clock = (Instant::now(), 0, 0);
        assert_eq!(feed(&mut load, &mut clock, 60, 200, 0, 0.0), None);
        // the surge comes before its first user: no ceiling of zero
        for _ in 0..8 {
            let ceiling = feed(&mut load, &mut clock, 1, 400, 0, 0.0);
            assert_eq!(ceiling, None, "a daemon without a calm rate is not held");
        }
        assert!(load.last.is_some_and(|l| l.2 < 1.0), "the surge is seen");
        // once it makes progress, that is its calm rate, and it yields
        let held = feed(&mut load, &mut clock, 1, 400, 10, 300.0).expect("yields");
        assert!(held > 0.0 && held < 300.0, "{held}");
    }
}
