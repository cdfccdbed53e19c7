//! The monitor: four times a second it re-reads the control row and the
//! database's signals (sessions waiting on the daemon's locks, replica lag,
//! active sessions, the commit probe, a user throttle query) and publishes
//! them; workers obey between batches.

use crate::core::schedule::Rate;
use crate::error::{Error, Result};
use crate::pg::control::{self, Control};
use crate::pg::sql;
use deadpool_postgres::Object;
use std::sync::atomic::{AtomicBool, Ordering};
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
            whole_server: true,
            query: None,
            max_commit_slowdown: Some(1.5),
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
}

impl Signals {
    pub fn new(throttle: Throttle) -> Signals {
        Signals {
            throttle,
            pids: Mutex::new(Vec::new()),
            others_working: AtomicBool::new(false),
            probe: Mutex::new(CommitProbe::new(Vec::new())),
        }
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
#[derive(Debug, Clone)]
pub(crate) struct CommitProbe {
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
        let row = client
            .query_one(
                sql::HEARTBEAT,
                &[
                    &self.id,
                    &self.host,
                    &(std::process::id() as i32),
                    &self.job,
                    &(self.workers as i32),
                    &(p.migrated() as i64),
                    &(p.failed() as i64),
                    &rate_share,
                    &holding,
                ],
            )
            .await;
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
            Err(e) => tracing::warn!(cause = %e, "cannot write the daemon's heartbeat"),
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
                        tracing::warn!(cause = %e, "cannot mark the monitor's session");
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
            let holding = signals_tx.borrow().clone();
            heartbeat.beat(client, rate, holding.as_deref()).await;
        }
        match control::read(&***client).await {
            Ok(mut c) => {
                rate = c.rate;
                // the rate is every daemon's together: this one takes its share
                c.rate = c.rate.share(heartbeat.live);
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
        let held = check_signals(&shared, client).await;
        if shared.throttle.max_commit_slowdown.is_some() {
            let ratio = shared.probe.lock().expect("not poisoned").slowdown();
            heartbeat
                .progress
                .probe_ratio
                .store(ratio.to_bits(), Ordering::Relaxed);
        }
        signals_tx.send_if_modified(|old| {
            let changed = *old != held;
            *old = held;
            changed
        });
    }
}

/// The reason to hold back, if any signal says so.
pub(crate) async fn check_signals(shared: &Signals, client: &Object) -> Option<String> {
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
