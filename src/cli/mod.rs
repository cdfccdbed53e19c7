//! The `decant` command: a thin layer over the library.

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use decant::{Decant, Spec};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(
    name = "decant",
    version,
    about = "Migrate a PostgreSQL jsonb blob column into normalized tables, online, user by user"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the database and the spec are.
#[derive(Args)]
struct Target {
    /// Connection string (URL or key=value); defaults to $DATABASE_URL.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// The mapping spec.
    #[arg(long, default_value = "decant.toml")]
    spec: PathBuf,
}

impl Target {
    fn spec(&self) -> Result<Spec> {
        Ok(decant::spec::load(&self.spec)?)
    }

    fn url(&self) -> Result<&str> {
        match &self.database_url {
            Some(u) => Ok(u),
            None => bail!("no database: pass --database-url or set DATABASE_URL"),
        }
    }

    fn decant(&self) -> Result<Decant> {
        Ok(Decant::connect(self.url()?, self.spec()?, 2)?)
    }
}

/// Low-traffic windows.
#[derive(Args)]
struct ScheduleArgs {
    /// A daily window HH:MM-HH:MM (several allowed; may cross midnight).
    #[arg(long = "window")]
    windows: Vec<decant::schedule::Window>,
    /// Time zone of the windows (IANA name, e.g. Asia/Kathmandu; default UTC).
    #[arg(long)]
    tz: Option<String>,
}

impl ScheduleArgs {
    fn schedule(&self) -> Result<decant::schedule::Schedule> {
        decant::schedule::Schedule::new(self.windows.clone(), self.tz.as_deref())
            .map_err(anyhow::Error::msg)
    }
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    schedule: ScheduleArgs,
    /// Rate: N/s, N/min or max; stored in the control row for every
    /// daemon (default: the control row's, initially max).
    #[arg(long)]
    rate: Option<decant::schedule::Rate>,
    /// Parallel workers (sessions). One leaves room for live traffic; use
    /// as many as the database has cores for full speed.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Target duration of a batch transaction in ms (bounds lock waits).
    #[arg(long, default_value_t = 100)]
    target_batch_ms: u64,
    /// Target duration of a batch while other sessions work on the
    /// database: short bursts leave them the CPU and the WAL sooner
    #[arg(long, default_value_t = 20)]
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
    /// Hold back while other sessions work and a small commit takes more
    /// than this many times its time before the daemon started (0: off)
    #[arg(long, default_value_t = 1.5)]
    max_commit_slowdown: f64,
    /// Hold back while a replica lags more than this many seconds.
    #[arg(long, default_value_t = 10.0)]
    max_replica_lag: f64,
    /// A query returning one boolean; true holds the daemon back.
    #[arg(long)]
    throttle_query: Option<String>,
    /// Do not hold back when sessions wait on the daemon's locks.
    #[arg(long)]
    ignore_lock_waits: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Print the DDL of the target tables and of decant's own objects.
    Schema {
        /// The mapping spec.
        #[arg(long, default_value = "decant.toml")]
        spec: PathBuf,
    },
    /// Create the target tables, decant's objects and the flag column
    /// (idempotent).
    Init(Target),
    /// Migrate one user now, in one verified transaction.
    Migrate {
        #[command(flatten)]
        target: Target,
        /// The user id.
        #[arg(long)]
        user: i64,
    },
    /// Roll one user back: rebuild the blob from the tables, clear the flag.
    Rollback {
        #[command(flatten)]
        target: Target,
        /// The user id.
        #[arg(long)]
        user: i64,
    },
    /// Run the migration daemon: claim legacy users in batches, migrate
    /// them at the set rate, inside the windows, backing off when the
    /// database is busy. SIGINT/SIGTERM finish the current batch and exit.
    Run(RunArgs),
    /// Pause every running daemon (within about a second).
    Pause(Target),
    /// Resume paused daemons.
    Resume(Target),
    /// Change live settings: rate=50/s, batch=100|auto, rollout=10,
    /// allow=1,2,3, paused=true|false.
    Set {
        #[command(flatten)]
        target: Target,
        /// key=value settings.
        #[arg(required = true)]
        settings: Vec<decant::control::Setting>,
    },
    /// Counts by state, failures by reason, recent rate, projected finish.
    Status {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        schedule: ScheduleArgs,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Load the example game into a database: its "user" table with
    /// generated users, and its spec written to --spec (if absent).
    Example {
        #[command(flatten)]
        target: Target,
        /// Users to generate.
        #[arg(long, default_value_t = 10_000)]
        users: i64,
        /// Generator seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Measure decant against set-based SQL and a naive client on generated
    /// game data, all in one run on one throwaway cluster (fsync on);
    /// prints a Markdown report.
    Bench {
        /// Users of the main comparison.
        #[arg(long, default_value_t = 200_000)]
        users: i64,
        /// Users of the second memory measurement (0 skips it).
        #[arg(long, default_value_t = 1_000_000)]
        memory_users: i64,
        /// Users the naive client migrates (a sample).
        #[arg(long, default_value_t = 2_000)]
        naive_users: i64,
        /// Seconds of backend latency measurement, without and with the daemon.
        #[arg(long, default_value_t = 20)]
        latency_secs: u64,
        /// Seconds the daemon runs for the memory comparison.
        #[arg(long, default_value_t = 60)]
        memory_secs: u64,
        /// Measure only the backend latency, without and with the daemon.
        #[arg(long)]
        latency_only: bool,
        /// Other `decant run` arguments whose latency to measure after the
        /// default settings' (repeatable; one string of arguments each)
        #[arg(long, default_value = "--max-commit-slowdown 0")]
        latency_compare: Vec<String>,
        /// Server to use instead of a throwaway cluster.
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
    },
    /// Run the whole job on a generated game database in a throwaway
    /// PostgreSQL (or in a new database on $DATABASE_URL's server).
    Demo {
        /// Users to generate.
        #[arg(long, default_value_t = 20_000)]
        users: i64,
        /// Generator seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Parallel migration workers.
        #[arg(long, default_value_t = 2)]
        workers: usize,
        /// Server to use instead of a throwaway cluster.
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
    },
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = run(Cli::parse()).await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Schema { spec } => {
            let spec = decant::spec::load(&spec)?;
            print!("{}", decant::schema::script(&spec));
        }
        Command::Init(target) => {
            let spec = target.spec()?;
            let decant = Decant::connect(target.url()?, spec, 1)?;
            let client = decant.pool().get().await.context("connecting")?;
            decant::schema::init(&client, decant.spec()).await?;
            println!("initialized: target tables, decant schema, flag column and legacy index");
        }
        Command::Migrate { target, user } => {
            let report = target.decant()?.migrate_user(user).await?;
            if let Some(m) = report.migrated.first() {
                println!("user {user}: migrated, {} rows, verified", m.rows);
                for w in &m.warnings {
                    println!("  warning: {w} (kept in the residual)");
                }
            } else if let Some(f) = report.failed.first() {
                bail!("{} (the user stays legacy)", f.error);
            } else {
                println!("user {user}: already migrated");
            }
        }
        Command::Rollback { target, user } => {
            if target.decant()?.rollback_user(user).await? {
                println!("user {user}: rolled back, blob rebuilt from the tables");
            } else {
                println!("user {user}: not migrated, nothing to roll back");
            }
        }
        Command::Run(args) => run_daemon(args).await?,
        Command::Pause(target) => {
            set_control(&target, &[decant::control::Setting::Paused(true)]).await?;
            println!("paused: running daemons hold back within about a second");
        }
        Command::Resume(target) => {
            set_control(&target, &[decant::control::Setting::Paused(false)]).await?;
            println!("resumed");
        }
        Command::Set { target, settings } => {
            set_control(&target, &settings).await?;
            println!("set: running daemons obey within about a second");
        }
        Command::Status {
            target,
            schedule,
            json,
        } => {
            let status = decant::status::status(&target.decant()?, &schedule.schedule()?).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                println!("{status}");
            }
        }
        Command::Example {
            target,
            users,
            seed,
        } => {
            let pool = decant::Decant::connect(target.url()?, decant::example::spec(), 1)?;
            let client = pool.pool().get().await.context("connecting")?;
            let dirty = decant::example::load(&client, users, seed).await?;
            if !target.spec.exists() {
                std::fs::write(&target.spec, decant::example::SPEC)
                    .with_context(|| format!("writing {}", target.spec.display()))?;
                println!("wrote the game's spec to {}", target.spec.display());
            }
            println!(
                "loaded {users} generated users ({dirty} dirty) into \"user\"; next: decant init, decant run"
            );
        }
        Command::Bench {
            users,
            memory_users,
            naive_users,
            latency_secs,
            memory_secs,
            latency_only,
            latency_compare,
            database_url,
        } => {
            let opts = decant::bench::BenchOptions {
                users,
                memory_users,
                naive_users,
                latency_secs,
                memory_secs,
                latency_only,
                latency_compare,
                exe: std::env::current_exe().context("locating the decant executable")?,
                database_url,
            };
            println!("{}", decant::bench::run(&opts).await?);
        }
        Command::Demo {
            users,
            seed,
            workers,
            database_url,
        } => {
            let opts = decant::demo::DemoOptions {
                users,
                seed,
                workers,
                database_url,
                ..Default::default()
            };
            let bar = progress_bar(users as u64);
            // the rate counts from the first migrated user, not from the
            // cluster start and the load
            let started = std::sync::OnceLock::new();
            let summary = decant::demo::run(&opts, &|done, _total| {
                if let Some(bar) = &bar {
                    bar.set_position(done);
                    if done > 0 {
                        let since = *started.get_or_init(Instant::now);
                        bar.set_message(rate_message(done, since, None));
                    }
                }
            })
            .await?;
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            println!("{summary}");
        }
    }
    Ok(())
}

async fn set_control(target: &Target, settings: &[decant::control::Setting]) -> Result<()> {
    let decant = target.decant()?;
    let client = decant.pool().get().await.context("connecting")?;
    for s in settings {
        decant::control::set(&**client, s).await?;
    }
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

async fn run_daemon(args: RunArgs) -> Result<()> {
    if args.nice != 0 {
        lower_priority(args.nice);
    }
    let decant = Decant::connect(args.target.url()?, args.target.spec()?, args.workers + 2)?;
    let opts = decant::daemon::RunOptions {
        workers: args.workers,
        rate: args.rate,
        schedule: args.schedule.schedule()?,
        target_batch: Duration::from_millis(args.target_batch_ms),
        busy_batch: Duration::from_millis(args.busy_batch_ms.max(1)),
        max_batch: args.max_batch.max(1),
        rollout_only: args.rollout_only,
        until_done: !args.watch,
        throttle: decant::daemon::Throttle {
            on_lock_waits: !args.ignore_lock_waits,
            max_replica_lag: Duration::from_secs_f64(args.max_replica_lag.max(0.0)),
            max_active: args.max_active,
            max_commit_slowdown: (args.max_commit_slowdown > 0.0)
                .then_some(args.max_commit_slowdown),
            query: args.throttle_query,
        },
    };
    let progress = Arc::new(decant::daemon::Progress::default());
    let reporter = tokio::spawn(report_progress(progress.clone()));
    let report = decant::daemon::run(&decant, opts, progress.clone(), shutdown_signal()).await;
    reporter.abort();
    let _ = reporter.await;
    let report = report?;
    let secs = report.elapsed.as_secs_f64().max(1e-9);
    println!(
        "{}: {} users migrated, {} failed, {} rows in {:.1} s ({:.0} users/s, {:.0} rows/s)",
        if report.interrupted {
            "stopped"
        } else {
            "done"
        },
        report.migrated,
        report.failed,
        report.rows,
        secs,
        report.migrated as f64 / secs,
        report.rows as f64 / secs
    );
    if let Some((p50, p99)) = report.batch_p50_p99 {
        println!(
            "batch transaction (lock hold) p50 {:.1} ms, p99 {:.1} ms",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3
        );
    }
    if !report.held_back.is_zero() {
        println!(
            "held back by database signals {:.1} s ({:.0}% of the run)",
            report.held_back.as_secs_f64(),
            100.0 * report.held_back.as_secs_f64() / secs
        );
    }
    if report.over_limit > 0 {
        println!(
            "{} users at the attempt limit are skipped; see `decant status`",
            report.over_limit
        );
    }
    if let Some(peak) = decant::daemon::peak_memory() {
        println!("peak memory {:.1} MiB", peak as f64 / 1048576.0);
    }
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutdown requested; finishing the current batch");
}

/// A progress bar on a terminal, else a log line every 5 s.
async fn report_progress(progress: Arc<decant::daemon::Progress>) {
    let done = |p: &decant::daemon::Progress| {
        p.migrated.load(Ordering::Relaxed) + p.failed.load(Ordering::Relaxed)
    };
    if std::io::stderr().is_terminal() {
        let bar = progress_bar(progress.total.load(Ordering::Relaxed)).expect("a terminal");
        let _guard = ClearOnDrop(bar.clone());
        let started = Instant::now();
        loop {
            let now = done(&progress);
            bar.set_length(progress.total.load(Ordering::Relaxed).max(now));
            bar.set_position(now);
            let holding = progress.holding.lock().expect("not poisoned").clone();
            bar.set_message(rate_message(now, started, holding));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    } else {
        let mut last = (Instant::now(), 0u64);
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            let now = done(&progress);
            let rate = (now - last.1) as f64 / last.0.elapsed().as_secs_f64();
            let total = progress.total.load(Ordering::Relaxed);
            tracing::info!(
                done = now,
                total,
                migrated = progress.migrated.load(Ordering::Relaxed),
                failed = progress.failed.load(Ordering::Relaxed),
                users_per_s = rate.round(),
                holding = progress
                    .holding
                    .lock()
                    .expect("not poisoned")
                    .as_deref()
                    .unwrap_or(""),
                "progress"
            );
            last = (Instant::now(), now);
        }
    }
}

/// "1234 users/s", and why the daemon holds back if it does.
fn rate_message(done: u64, started: Instant, holding: Option<String>) -> String {
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

fn progress_bar(total: u64) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "migrating {bar:40} {pos}/{len} users  {msg}  eta {eta}",
        )
        .expect("valid template"),
    );
    Some(bar)
}

// glibc's allocator spent a third of the daemon's CPU time in malloc/free
// (perf); mimalloc is much cheaper for its many small JSON allocations.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
