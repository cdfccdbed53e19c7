//! `decant run` and `decant rollback` of a cohort: the daemon's loop with a
//! progress bar on a terminal (log lines otherwise), stopped by
//! SIGINT/SIGTERM, and its summary; `decant run --dry-run`.

use super::args::{ScheduleArgs, Target};
use anyhow::Result;
use clap::Args;
use decant::{Decant, Progress};
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The arguments of `decant run`.
#[derive(Args)]
pub(super) struct RunArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    schedule: ScheduleArgs,
    /// Rate: N/s, N/min or max; stored in the control row for every
    /// daemon (default: the control row's, initially max).
    #[arg(long)]
    rate: Option<decant::Rate>,
    /// Parallel workers (sessions). One leaves room for live traffic; use
    /// as many as the database has cores for full speed.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Target duration of a batch's locking transaction in ms: how long a
    /// backend call may wait for a user the daemon holds (blobs are read
    /// and exploded before the lock, so this is the write alone).
    #[arg(long, default_value_t = 25)]
    target_batch_ms: u64,
    /// Target duration of a batch's locking transaction while other
    /// sessions work on the database: short bursts leave them the CPU and
    /// the WAL sooner
    #[arg(long, default_value_t = 10)]
    busy_batch_ms: u64,
    /// Lower this process's CPU priority by this much (nice), so that a
    /// backend on the same host wins the CPU (0 keeps it)
    #[arg(long, default_value_t = 10)]
    nice: i32,
    /// Largest batch.
    #[arg(long, default_value_t = 1000)]
    max_batch: u32,
    /// Migrate only users in the rollout (percentage and allow-list).
    #[arg(long)]
    rollout_only: bool,
    /// Keep running when no legacy user is left, watching for new ones.
    #[arg(long)]
    watch: bool,
    /// Hold back while more sessions than this are active.
    #[arg(long)]
    max_active: Option<i64>,
    /// Slow down while other sessions work and a small commit takes more
    /// than this many times its time before the daemon started: a ceiling
    /// on the rate, cut while commits are slower, raised while they are
    /// not (0: off)
    #[arg(long, default_value_t = 1.5)]
    max_commit_slowdown: f64,
    /// Yield to the backend's load: while the server's other transactions
    /// per second run above 1.25x their usual rate (the 30th percentile of
    /// the last 5 minutes), hold the rate to the daemon's calm rate times
    /// (usual / now) to this power; 2 takes about a quarter of the rate at
    /// twice the load (0: off)
    #[arg(long, default_value_t = 2.0)]
    load_yield: f64,
    /// Serve Prometheus metrics at http://ADDR/metrics while running
    /// (e.g. 127.0.0.1:9187).
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<String>,
    /// Count only this database's other sessions as the backend's traffic
    /// (default: every database's on the server, which share its disk,
    /// WAL and CPU).
    #[arg(long)]
    this_database_only: bool,
    /// Hold back while a replica lags more than this many seconds (0:
    /// off, as for `rollback`).
    #[arg(long, default_value_t = 10.0)]
    max_replica_lag: f64,
    /// A query returning one boolean; true holds the daemon back.
    #[arg(long)]
    throttle_query: Option<String>,
    /// Seconds the run rides out a database it cannot reach (restart,
    /// failover, terminated sessions), re-opening its sessions with
    /// backoff; past them it exits with status 4 and the cause.
    #[arg(long, default_value_t = 300.0)]
    max_outage: f64,
    /// Do not hold back when sessions wait on the daemon's locks.
    #[arg(long)]
    ignore_lock_waits: bool,
    /// Claim, migrate and verify one batch exactly as a worker would, then
    /// roll it back and report: nothing is written (useful against
    /// production before the first real batch).
    #[arg(long)]
    dry_run: bool,
    /// Users in the dry run's batch (the control row's batch size wins
    /// when it sets one).
    #[arg(long, default_value_t = 100)]
    dry_run_batch: u32,
    /// Re-migrate the migrated users with the spec's evolved mapping
    /// (after `decant init --evolve`) instead of migrating legacy users.
    #[arg(long, conflicts_with = "dry_run")]
    evolve: bool,
}

/// `decant rollback` of a cohort: which users, and the pace.
#[derive(Args)]
pub(super) struct RollbackArgs {
    #[command(flatten)]
    target: Target,
    /// One user, now (waits for its row lock up to lock_timeout).
    #[arg(long, group = "cohort", allow_hyphen_values = true)]
    user: Option<decant::UserId>,
    /// The users whose ids the file lists (whitespace or comma separated).
    #[arg(long, group = "cohort")]
    ids: Option<std::path::PathBuf>,
    /// The users whose rollout bucket is below this percentage (the hash
    /// `decant set rollout=` uses).
    #[arg(long, group = "cohort")]
    percent: Option<f64>,
    /// The users migrated at or after this time (RFC 3339, e.g.
    /// 2026-12-01T10:00:00Z).
    #[arg(long, group = "cohort")]
    migrated_after: Option<jiff::Timestamp>,
    /// Every migrated user.
    #[arg(long, group = "cohort")]
    all: bool,
    #[command(flatten)]
    schedule: ScheduleArgs,
    /// Rate: N/s, N/min or max (stored in the control row, as `run` does).
    #[arg(long)]
    rate: Option<decant::Rate>,
    /// Parallel workers (sessions).
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Target duration of a batch transaction in ms (bounds lock waits).
    #[arg(long, default_value_t = 100)]
    target_batch_ms: u64,
    /// As `run`'s: slow down while others work and a small commit takes
    /// more than this many times its idle time (0: off, for a rollback
    /// that must not wait for the backend's traffic).
    #[arg(long, default_value_t = 1.5)]
    max_commit_slowdown: f64,
    /// As `run`'s: yield to a surge of the server's other transactions
    /// (0: off).
    #[arg(long, default_value_t = 2.0)]
    load_yield: f64,
    /// As `run`'s: hold back while a replica lags more than this many
    /// seconds (0: off, for a rollback that must not wait for replicas).
    #[arg(long, default_value_t = 10.0)]
    max_replica_lag: f64,
}

/// `decant rollback`: one user now, or a cohort through the daemon's loop.
pub(super) async fn rollback(args: RollbackArgs) -> Result<()> {
    let cohort = match (
        &args.user,
        &args.ids,
        args.percent,
        args.migrated_after,
        args.all,
    ) {
        (Some(user), ..) => {
            let decant = args.target.decant()?;
            let user = super::args::user_id(decant.spec().source().id_type, user)?;
            if decant.rollback_user(user.clone()).await? {
                println!(
                    "user {user}: rolled back, blob rebuilt from the tables; held out of the migration until `decant release --user {}`",
                    super::args::shell_word(&user.to_string())
                );
            } else {
                println!("user {user}: not migrated, nothing to roll back");
            }
            return Ok(());
        }
        (None, Some(file), ..) => {
            let ids = super::args::read_ids(file, args.target.spec()?.source().id_type)?;
            super::args::warn_missing(&args.target.decant()?, &ids, file).await?;
            decant::Cohort::Ids(ids)
        }
        (None, None, Some(p), ..) => {
            if !(0.0..=100.0).contains(&p) {
                super::exit::usage!("--percent {p}: give a percentage from 0 to 100");
            }
            decant::Cohort::Percent(p)
        }
        (None, None, None, Some(t), _) => {
            decant::Cohort::MigratedAfter(std::time::SystemTime::from(t))
        }
        (None, None, None, None, true) => decant::Cohort::All,
        _ => super::exit::usage!(
            "which users? --user N, --ids FILE, --percent P, --migrated-after TIME or --all"
        ),
    };
    if args.workers == 0 {
        super::exit::usage!("--workers must be at least 1");
    }
    check_throttle_args(args.load_yield, args.max_commit_slowdown)?;
    if !args.max_replica_lag.is_finite() || args.max_replica_lag < 0.0 {
        super::exit::usage!(
            "--max-replica-lag {}: give a number of seconds, or 0 for off",
            args.max_replica_lag
        );
    }
    let decant = Decant::connect(&args.target.url()?, args.target.spec()?, args.workers + 2)?;
    let opts = decant::RunOptions {
        workers: args.workers,
        rate: args.rate,
        schedule: args.schedule.schedule()?,
        target_batch: Duration::from_millis(args.target_batch_ms.max(1)),
        throttle: decant::Throttle {
            max_commit_slowdown: (args.max_commit_slowdown > 0.0)
                .then_some(args.max_commit_slowdown),
            load_yield: (args.load_yield > 0.0).then_some(args.load_yield),
            max_replica_lag: replica_lag_limit(args.max_replica_lag),
            ..decant::Throttle::default()
        },
        ..decant::RunOptions::default()
    };
    let progress = Arc::new(Progress::default());
    let reporter = tokio::spawn(report_progress_as(ROLLING_BACK, progress.clone()));
    let report = decant::rollback(&decant, cohort, opts, progress, shutdown_signal()).await;
    reporter.abort();
    let _ = reporter.await;
    let report = report?;
    println!(
        "{}: {} rolled back (held out of the migration until `decant release`), {} could not be rebuilt, in {:.1} s",
        if report.interrupted {
            "stopped"
        } else {
            "done"
        },
        decant::words::users(report.migrated),
        report.failed,
        report.elapsed.as_secs_f64()
    );
    print_lock_hold(&report);
    print_peak_memory();
    if report.failed > 0 {
        return Err(super::exit::UsersFailed(format!(
            "{} could not be rolled back (their rows do not rebuild a blob); they stay migrated: see the log",
            decant::words::users(report.failed)
        ))
        .into());
    }
    Ok(())
}

/// `decant run --dry-run`: one batch, rolled back, reported.
async fn dry_run(args: &RunArgs) -> Result<()> {
    if args.dry_run_batch == 0 {
        super::exit::usage!("--dry-run-batch must be at least 1");
    }
    let decant = Decant::connect(&args.target.url()?, args.target.spec()?, 2)?;
    let d = decant::dry_run(&decant, args.dry_run_batch, args.rollout_only).await?;
    let r = &d.report;
    match (d.claimed.first(), d.claimed.last()) {
        (Some(first), Some(last)) => println!(
            "dry run: claimed {} (ids {first} to {last}) as the daemon would, in {:.1} ms",
            decant::words::users(d.claimed.len()),
            d.elapsed.as_secs_f64() * 1e3
        ),
        _ => println!("dry run: no legacy user to claim"),
    }
    let rows: usize = r.migrated.iter().map(|m| m.rows).sum();
    let warned = r.warned();
    println!(
        "would migrate {} ({rows} rows, verified; {warned} with values kept in the residual)",
        decant::words::users(r.migrated.len())
    );
    println!("would fail {}", decant::words::users(r.failed.len()));
    for f in &r.failed {
        // most errors name their user already
        let e = f.error.to_string();
        if e.starts_with(&format!("user {}:", f.user)) {
            println!("  {e}");
        } else {
            println!("  user {}: {e}", f.user);
        }
    }
    for m in r.migrated.iter().filter(|m| !m.warnings.is_empty()) {
        for w in &m.warnings {
            println!("  user {}: warning: {w}", m.user);
        }
    }
    if !r.skipped.is_empty() {
        println!(
            "skipped {} (already migrated or gone)",
            decant::words::users(r.skipped.len())
        );
    }
    println!("nothing written: the batch's transaction was rolled back");
    Ok(())
}

/// Lowers the CPU priority of every thread of this process (on Linux a
/// nice value belongs to a thread; threads started later inherit it).
fn lower_priority(nice: i32) {
    let tids: Vec<u32> = std::fs::read_dir("/proc/self/task")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    for tid in tids {
        // SAFETY: setpriority only reads its integer arguments
        let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, nice) };
        if r != 0 {
            let error = std::io::Error::last_os_error();
            tracing::warn!(nice, tid, %error, "cannot lower the CPU priority");
            return;
        }
    }
}

/// Refuses daemon settings that cannot work, instead of clamping them.
fn check_run_args(args: &RunArgs) -> Result<()> {
    if args.workers == 0 {
        super::exit::usage!("--workers must be at least 1");
    }
    if args.workers > 64 {
        super::exit::usage!(
            "--workers {}: each worker holds a session and the server's cores are the limit; use at most 64",
            args.workers
        );
    }
    if args.max_batch == 0 {
        super::exit::usage!("--max-batch must be at least 1");
    }
    if args.target_batch_ms == 0 || args.busy_batch_ms == 0 {
        super::exit::usage!("--target-batch-ms and --busy-batch-ms must be at least 1");
    }
    if !args.max_outage.is_finite() || args.max_outage <= 0.0 || args.max_outage > 1e9 {
        super::exit::usage!(
            "--max-outage {}: give a number of seconds, more than 0",
            args.max_outage
        );
    }
    if !args.max_replica_lag.is_finite() || args.max_replica_lag < 0.0 {
        super::exit::usage!(
            "--max-replica-lag {}: give a number of seconds, or 0 for off",
            args.max_replica_lag
        );
    }
    check_throttle_args(args.load_yield, args.max_commit_slowdown)
}

/// `--load-yield` and `--max-commit-slowdown` of `run` and `rollback`.
fn check_throttle_args(load_yield: f64, max_commit_slowdown: f64) -> Result<()> {
    if !load_yield.is_finite() || load_yield < 0.0 {
        super::exit::usage!("--load-yield {load_yield}: give a power (2), or 0 for off");
    }
    if !max_commit_slowdown.is_finite() || max_commit_slowdown < 0.0 {
        super::exit::usage!(
            "--max-commit-slowdown {max_commit_slowdown}: give a factor (1.5), or 0 for off"
        );
    }
    Ok(())
}

pub(super) async fn run_daemon(args: RunArgs) -> Result<()> {
    check_run_args(&args)?;
    if args.dry_run {
        return dry_run(&args).await;
    }
    if args.nice != 0 {
        lower_priority(args.nice);
    }
    let decant = Decant::connect(&args.target.url()?, args.target.spec()?, args.workers + 2)?;
    let opts = decant::RunOptions {
        workers: args.workers,
        rate: args.rate,
        schedule: args.schedule.schedule()?,
        target_batch: Duration::from_millis(args.target_batch_ms),
        busy_batch: Duration::from_millis(args.busy_batch_ms.max(1)),
        max_batch: args.max_batch.max(1),
        rollout_only: args.rollout_only,
        until_done: !args.watch,
        throttle: decant::Throttle {
            on_lock_waits: !args.ignore_lock_waits,
            max_replica_lag: replica_lag_limit(args.max_replica_lag),
            max_active: args.max_active,
            max_commit_slowdown: (args.max_commit_slowdown > 0.0)
                .then_some(args.max_commit_slowdown),
            whole_server: !args.this_database_only,
            query: args.throttle_query,
            load_yield: (args.load_yield > 0.0).then_some(args.load_yield),
        },
        max_outage: Duration::from_secs_f64(args.max_outage),
    };
    let progress = Arc::new(Progress::default());
    if let Some(addr) = &args.metrics_addr {
        super::metrics::serve(addr, progress.clone()).await?;
    }
    let reporter = tokio::spawn(report_progress(progress.clone()));
    let report = if args.evolve {
        decant::evolve(&decant, opts, progress.clone(), shutdown_signal()).await
    } else {
        decant::run(&decant, opts, progress.clone(), shutdown_signal()).await
    };
    reporter.abort();
    let _ = reporter.await;
    let report = report?;
    let secs = report.elapsed.as_secs_f64().max(1e-9);
    println!(
        "{}: {} {}, {} failed, {} rows in {:.1} s ({} users/s, {} rows/s)",
        if report.interrupted {
            "stopped"
        } else {
            "done"
        },
        decant::words::users(report.migrated),
        if args.evolve {
            "re-migrated with the evolved spec"
        } else {
            "migrated"
        },
        report.failed,
        report.rows,
        secs,
        per_second(report.migrated, secs),
        per_second(report.rows, secs)
    );
    if report.warned > 0 {
        println!(
            "{} of them {} in the residual values {} refuse ({}); their warnings: \
             `SELECT user_id, warnings FROM decant.user_state WHERE warnings IS NOT NULL`",
            report.warned,
            if report.warned == 1 { "keeps" } else { "keep" },
            if args.evolve {
                "the rules"
            } else {
                "`keep` rules"
            },
            if args.evolve {
                "an evolution fails no migrated user for a value, as the library's writes do not"
            } else {
                "as the rule's policy says"
            }
        );
    }
    print_lock_hold(&report);
    if !report.held_back.is_zero() {
        println!(
            "held back by database signals {:.1} s ({:.0}% of the run)",
            report.held_back.as_secs_f64(),
            100.0 * report.held_back.as_secs_f64() / secs
        );
    }
    // an evolve run re-migrates migrated users: legacy users at the
    // attempt limit are not its work
    if report.over_limit > 0 && !args.evolve {
        println!(
            "{} at the attempt limit {} skipped; see `decant status` (after fixing \
             their cause, `decant release --failed` has them tried again)",
            decant::words::users(report.over_limit),
            decant::words::is_are(report.over_limit)
        );
    }
    print_peak_memory();
    if args.evolve && report.failed > 0 {
        return Err(super::exit::UsersFailed(format!(
            "{} could not be re-migrated with the evolved spec; they keep their old \
             mapping: see the log",
            decant::words::users(report.failed)
        ))
        .into());
    }
    if !args.evolve && (report.failed > 0 || report.over_limit > 0) {
        // (a user failed in earlier runs, at the attempt limit, is one the
        // migration leaves legacy: the status says so even when none
        // failed in this run)
        let what = if report.failed == 0 {
            format!(
                "no user failed in this run, but {} {} at the attempt limit (failed in \
                 earlier runs); {} legacy",
                decant::words::users(report.over_limit),
                decant::words::is_are(report.over_limit),
                if report.over_limit == 1 {
                    "it stays"
                } else {
                    "they stay"
                }
            )
        } else {
            format!(
                "{} failed in this run and {} {} at the attempt limit; they stay legacy",
                decant::words::users(report.failed),
                report.over_limit,
                decant::words::is_are(report.over_limit)
            )
        };
        return Err(super::exit::UsersFailed(format!(
            "{what}: `decant status` lists them by reason"
        ))
        .into());
    }
    Ok(())
}

/// How long a stop waits for the batches under way before it ends the
/// process (their transactions then roll back on the server).
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Signals this soon after the first are the same request delivered
/// twice, not a second one.
const SAME_SIGNAL: Duration = Duration::from_millis(250);

/// Resolves on SIGINT or SIGTERM. Batches under way then finish; a second
/// signal (not within [`SAME_SIGNAL`] of the first), or [`STOP_GRACE`]
/// without the run ending (a server that stopped answering mid-batch),
/// ends the process at once with status 1: nothing is lost, an unfinished
/// batch rolls back and its users stay legacy.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing a SIGINT handler");
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    tracing::info!(
        grace_secs = STOP_GRACE.as_secs(),
        "shutdown requested; finishing the batches under way (a second signal stops at once)"
    );
    let first = Instant::now();
    tokio::spawn(async move {
        let grace = tokio::time::sleep(STOP_GRACE);
        tokio::pin!(grace);
        let why = loop {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
                _ = &mut grace => break "the batches under way did not finish in the grace time",
            }
            // the same request delivered twice (`timeout` signals the
            // process, then its process group) is not a second one
            if first.elapsed() >= SAME_SIGNAL {
                break "a second signal";
            }
        };
        tracing::error!(
            "stopping at once ({why}); an unfinished batch rolls back on the server and its users stay legacy"
        );
        std::process::exit(1);
    });
}

/// The progress label of a rollback.
const ROLLING_BACK: &str = "rolling back";

/// A progress bar on a terminal, else a log line every 5 s.
async fn report_progress(progress: Arc<Progress>) {
    report_progress_as("migrating", progress).await
}

async fn report_progress_as(label: &str, progress: Arc<Progress>) {
    let done = |p: &Progress| p.migrated() + p.failed();
    if std::io::stderr().is_terminal() {
        let bar = labelled_bar(label, progress.total()).expect("a terminal");
        let _guard = ClearOnDrop(bar.clone());
        let started = Instant::now();
        loop {
            let now = done(&progress);
            bar.set_length(progress.total().max(now));
            bar.set_position(now);
            let holding = progress.holding().or_else(|| progress.paced());
            bar.set_message(rate_message(now, started, holding));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    } else {
        let mut last = (Instant::now(), 0u64);
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            let now = done(&progress);
            let rate = (now - last.1) as f64 / last.0.elapsed().as_secs_f64();
            // the total is counted when the run starts: users that became
            // its work since (an evolution beside a migration) raise it
            let total = progress.total().max(now);
            let holding = progress.holding().or_else(|| progress.paced());
            let holding = holding.as_deref().unwrap_or("");
            // a rollback's users done are rolled back, not migrated
            if label == ROLLING_BACK {
                tracing::info!(
                    job = label,
                    done = now,
                    total,
                    rolled_back = progress.migrated(),
                    failed = progress.failed(),
                    users_per_s = rate.round(),
                    holding,
                    "progress"
                );
            } else {
                tracing::info!(
                    job = label,
                    done = now,
                    total,
                    migrated = progress.migrated(),
                    failed = progress.failed(),
                    users_per_s = rate.round(),
                    holding,
                    "progress"
                );
            }
            last = (Instant::now(), now);
        }
    }
}

/// The summary's line of the batches' lock hold, if any batch ran.
fn print_lock_hold(report: &decant::RunReport) {
    if let Some((p50, p99)) = report.batch_p50_p99 {
        println!(
            "batch transaction (lock hold) p50 {:.1} ms, p99 {:.1} ms",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3
        );
    }
}

/// The summary's line of the process's peak memory, where the system
/// tells it.
fn print_peak_memory() {
    if let Some(peak) = decant::peak_memory() {
        println!("peak memory {:.1} MiB", peak as f64 / 1048576.0);
    }
}

/// `n` over `secs` for a summary: whole numbers from 10 up, one decimal
/// below (a run that migrated one user in 2.1 s says 0.5, not 0).
fn per_second(n: u64, secs: f64) -> String {
    let rate = n as f64 / secs.max(1e-9);
    if rate >= 10.0 || rate == 0.0 {
        format!("{rate:.0}")
    } else if rate >= 0.05 {
        format!("{rate:.1}")
    } else {
        format!("{rate:.3}")
    }
}

/// "1234 users/s", and why the daemon holds back if it does.
pub(super) fn rate_message(done: u64, started: Instant, holding: Option<String>) -> String {
    let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-3);
    match holding {
        Some(why) => format!("{rate:.0} users/s  holding: {why}"),
        None => format!("{rate:.0} users/s"),
    }
}

struct ClearOnDrop(indicatif::ProgressBar);

impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

pub(super) fn progress_bar(total: u64) -> Option<indicatif::ProgressBar> {
    labelled_bar("migrating", total)
}

/// A progress bar on a terminal (None otherwise): `label`, then users.
pub(super) fn labelled_bar(label: &str, total: u64) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{label} {{bar:40}} {{pos}}/{{len}} users  {{msg}}  eta {{eta}}"
        ))
        .expect("valid template"),
    );
    Some(bar)
}

/// A spinner with a message line on a terminal (None otherwise).
pub(super) fn spinner() -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let s = indicatif::ProgressBar::new_spinner();
    s.enable_steady_tick(std::time::Duration::from_millis(120));
    Some(s)
}

/// `--max-replica-lag`, checked finite and not negative: a limit in
/// seconds, or none for 0 (the daemon and a rollback alike; a zero limit
/// would hold them back at any lag a replica reports, which is never
/// exactly none while the primary writes).
fn replica_lag_limit(secs: f64) -> Duration {
    if secs > 0.0 {
        Duration::from_secs_f64(secs)
    } else {
        Duration::MAX
    }
}

#[cfg(test)]
mod tests {
    use super::{per_second, replica_lag_limit};
    use std::time::Duration;

    #[test]
    fn a_replica_lag_limit_of_zero_is_off_for_run_and_rollback_alike() {
        assert_eq!(replica_lag_limit(0.0), Duration::MAX);
        assert_eq!(replica_lag_limit(2.5), Duration::from_millis(2500));
    }

    #[test]
    fn a_slow_run_is_not_summed_up_as_zero_per_second() {
        assert_eq!(per_second(1, 2.1), "0.5");
        assert_eq!(per_second(1, 100.0), "0.010");
        assert_eq!(per_second(0, 3.0), "0");
        assert_eq!(per_second(95, 10.0), "9.5");
        assert_eq!(per_second(12_340, 10.0), "1234");
        assert_eq!(per_second(7, 0.0), "7000000000");
    }
}
