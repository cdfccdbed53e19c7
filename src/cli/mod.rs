//! The command line: arguments (clap), dispatch to the library, and the
//! reports people read. `run` (the daemon, its progress and summary) is in
//! `run.rs`; the demo, the benchmark and the example game in `tools/`.

mod args;
pub(crate) mod exit;
mod metrics;
mod run;

use args::{ScheduleArgs, Target};

use crate::tools::{bench, demo, example, rehearse, soak};
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use decant::Spec;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Parser)]
#[command(
    name = "decant",
    version,
    about = "Migrate a PostgreSQL jsonb blob column into normalized tables, online, user by user",
    after_help = "Exit status: 0 done; 1 failed (the message says why); 2 bad spec or arguments; \
                  3 done, but users failed (or `check`: users would fail); 4 database unreachable."
)]
struct Cli {
    /// Log lines as text (coloured on a terminal) or as one JSON object
    /// per line.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Print the DDL of the target tables and of decant's own objects.
    Schema {
        /// The mapping spec.
        #[arg(long, default_value = "decant.toml")]
        spec: PathBuf,
    },
    /// Print the cross-user views (`<table>_all`: migrated users' rows from
    /// the tables, legacy users' rows exploded from the blob in SQL).
    Views {
        /// The mapping spec.
        #[arg(long, default_value = "decant.toml")]
        spec: PathBuf,
    },
    /// Create the target tables, decant's objects and the flag column
    /// (idempotent), and record the spec's mapping. A different mapping is
    /// refused while users are migrated with the recorded one.
    Init {
        #[command(flatten)]
        target: Target,
        /// Accept a mapping that adds tables and rules into them to the
        /// recorded one; then `decant run --evolve` re-migrates the
        /// migrated users with it.
        #[arg(long)]
        evolve: bool,
    },
    /// Migrate one user now, in one verified transaction.
    Migrate {
        #[command(flatten)]
        target: Target,
        /// The user id (a negative one as `--user -5` or `--user=-5`).
        #[arg(long, allow_hyphen_values = true)]
        user: decant::UserId,
    },
    /// Roll users back: rebuild each blob from the tables, clear the flag,
    /// delete the rows, and hold the user out of the migration until
    /// `decant release`. One user now (--user), or a cohort (--ids,
    /// --percent, --migrated-after, --all) through the daemon's throttled,
    /// windowed, pausable, crash-safe loop.
    Rollback(run::RollbackArgs),
    /// End the migration: refuses (naming counts and example ids) unless
    /// every user is migrated, verified and still rebuilds its blob, none
    /// held or failed; then records the phase finalized (views read the
    /// tables alone; run, rollback and on-demand migration stop) and prints
    /// the SQL that drops the flag and an empty blob column, to run when
    /// the old code path is gone (--drop-legacy runs it).
    Finalize {
        #[command(flatten)]
        target: Target,
        /// Also drop the flag column and the legacy index, and regenerate
        /// the views and SQL API without them, in one transaction (restart
        /// the backends first: a handle made before reads the flag).
        #[arg(long)]
        drop_legacy: bool,
    },
    /// Print the GRANTs a backend role needs to use the library or the SQL
    /// API (read and write users in either state, migrate on demand, read
    /// the views); --apply runs them in one transaction.
    Grants {
        /// The backend's role.
        role: String,
        /// The mapping spec.
        #[arg(long, default_value = "decant.toml")]
        spec: PathBuf,
        /// Apply them to the database instead of printing them.
        #[arg(long)]
        apply: bool,
        /// Connection string (URL or key=value), for --apply.
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
    },
    /// Put held (rolled back) users back into the migration; with
    /// --failed, give failed users their attempts back instead.
    Release {
        #[command(flatten)]
        target: Target,
        /// Only these users (a file of ids); default: every held user
        /// (every failed one with --failed).
        #[arg(long, conflicts_with = "user")]
        ids: Option<PathBuf>,
        /// Only this user (as `decant rollback --user` names it).
        #[arg(long, allow_hyphen_values = true)]
        user: Option<String>,
        /// Failed users instead: their attempts back to none, so the
        /// daemon tries them again (those at `max_attempts` are skipped
        /// until then). For after their cause is fixed: a fixup, the
        /// spec, their data.
        #[arg(long)]
        failed: bool,
    },
    /// Run the migration daemon: claim legacy users in batches, migrate
    /// them at the set rate, inside the windows, backing off when the
    /// database is busy. SIGINT/SIGTERM finish the current batch and exit.
    Run(run::RunArgs),
    /// Pause every running daemon (within about a second).
    Pause(Target),
    /// Resume paused daemons.
    Resume(Target),
    /// Change live settings: rate=50/s, batch=100|auto, rollout=10,
    /// allow=1,2,3, paused=true|false, window=01:00-05:00,13:00-14:00|none,
    /// tz=Asia/Kathmandu.
    Set {
        #[command(flatten)]
        target: Target,
        /// key=value settings.
        #[arg(required = true)]
        settings: Vec<decant::Setting>,
    },
    /// Counts by state, failures by reason, recent rate, the running
    /// daemons, projected finish. Without the spec file, the spec `init`
    /// recorded is used.
    Status {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        schedule: ScheduleArgs,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Census, read-only (one REPEATABLE READ READ ONLY snapshot; safe on
    /// the live database or a hot standby): what migrating each user would
    /// do, failures by rule and reason, unclaimed keys, value types, sizes
    /// and projected rows. Exit status 3 when a user would fail.
    Check {
        #[command(flatten)]
        target: Target,
        /// Look at about N random users instead of all.
        #[arg(long, conflicts_with = "ids")]
        sample: Option<u64>,
        /// Look at the users whose ids the file lists (whitespace or comma
        /// separated; `#` starts a comment).
        #[arg(long)]
        ids: Option<PathBuf>,
        /// Users read per page.
        #[arg(long, default_value_t = 1000)]
        page: usize,
        /// Bytes of blobs (as stored, after compression) read per page: a
        /// page ends before the user that would pass them, so very large
        /// blobs come a few at a time (a page's first user always comes).
        #[arg(long, default_value_t = decant::PAGE_BYTES)]
        page_bytes: u64,
        /// Print the report as one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Rehearse the whole migration on a copy: restore a pg_dump (custom,
    /// tar, directory or plain SQL) into a scratch database, census it,
    /// migrate it at full speed with verification, and project how long
    /// production will take at --rate inside the --windows. Nothing is
    /// written but the scratch database, removed at the end unless --keep.
    Rehearse {
        /// The pg_dump file (or directory).
        #[arg(long)]
        dump: PathBuf,
        /// The mapping spec.
        #[arg(long, default_value = "decant.toml")]
        spec: PathBuf,
        /// A server to restore on (a new database is created there)
        /// instead of a throwaway cluster of the local server binaries.
        #[arg(long)]
        server: Option<String>,
        /// Keep the scratch database (with --server).
        #[arg(long)]
        keep: bool,
        /// The scratch database's name on --server (default
        /// decant_rehearsal_<pid>).
        #[arg(long)]
        name: Option<String>,
        /// Production's rate, for the projection (e.g. 50/s).
        #[arg(long)]
        rate: Option<decant::Rate>,
        #[command(flatten)]
        schedule: ScheduleArgs,
        /// Production's user count (default: the dump's); a dump taken
        /// mid-migration projects the same share of them left to migrate.
        #[arg(long)]
        users: Option<u64>,
        /// Workers of the rehearsal run.
        #[arg(long, default_value_t = 2)]
        workers: usize,
        /// How many of the largest blobs to migrate alone and time.
        #[arg(long, default_value_t = 10)]
        largest: usize,
        /// Print the report as one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Load a bundled example into a database: its table with generated
    /// users, and its spec written to --spec and its fixups next to it (if
    /// absent). `--example game` (the default: a "user" table) or
    /// `--example shop` (a "customer" table).
    Example {
        #[command(flatten)]
        target: Target,
        /// Which example: game or shop.
        #[arg(long, default_value = "game")]
        example: String,
        /// Users to generate.
        #[arg(long, default_value_t = 10_000)]
        users: i64,
        /// Generator seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Load into a table of that name `decant example` did not create.
        #[arg(long)]
        force: bool,
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
        /// Measure only the leaderboard: half the users migrated, top-50
        /// through the plain view and through the ranked path.
        #[arg(long)]
        leaderboard_only: bool,
        /// Measure only the per-call latency of load and patch, through
        /// the Rust layer and the SQL API, on legacy and migrated users.
        #[arg(long)]
        api_only: bool,
        /// Measure only the census against the daemon (`decant check`
        /// against `decant run --rate max`), and the census's memory at
        /// --users and at --memory-users.
        #[arg(long)]
        check_only: bool,
        /// Run only the soak, this long (30m, 90s, 1h): the daemon at
        /// default settings under the compatibility layer's patches and
        /// pgbench on its own database, reported minute by minute, every
        /// acknowledged write read back at the end. Give --users enough for
        /// the length (the daemon runs 700-1,000 users/s under that load).
        #[arg(long, value_parser = soak::parse_length)]
        soak: Option<std::time::Duration>,
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
        /// Which bundled example: game (the default) or shop.
        #[arg(long, default_value = "game")]
        example: String,
    },
}

/// The log filter from `RUST_LOG` (default `info`). The driver's debug
/// lines print every statement's parameters, users' whole blobs among
/// them (personal data in the logs of a production run turned to debug):
/// it stays at `info` unless `RUST_LOG` names it (`tokio_postgres=debug`).
fn log_filter(env: Option<&str>) -> String {
    match env.map(str::trim).filter(|e| !e.is_empty()) {
        None => "info".into(),
        Some(e) if e.contains("tokio_postgres") => e.into(),
        Some(e) => format!("{e},tokio_postgres=info"),
    }
}

/// Runs the command line: parse, set up logging, run, report.
pub async fn main() {
    // a closed pipe (`decant status --json | head -1`) ends the process
    // quietly, as it does other Unix tools, instead of a panic in println!
    // SAFETY: setting a signal's action to its default has no
    // precondition; SIGPIPE's is process-wide
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(log_filter(
        std::env::var("RUST_LOG").ok().as_deref(),
    ))
    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let json = matches!(cli.log_format, LogFormat::Json);
    match cli.log_format {
        // colours only on a terminal: a log file gets plain text
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => logs.json().with_ansi(false).init(),
    }
    if let Err(e) = run(cli).await {
        let status = exit::exit_status(&e);
        if json {
            // one JSON object like every other line, for the log shipper
            // (the line that matters most was plain text)
            tracing::error!(exit_status = status, "{}", exit::report(&e));
        } else {
            eprintln!("error: {}", exit::report(&e));
        }
        std::process::exit(status);
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Schema { spec } => {
            let spec = Spec::load(&spec)?;
            print!("{}", decant::schema_script(&spec));
        }
        Command::Views { spec } => {
            let spec = Spec::load(&spec)?;
            print!("{}", decant::views_script(&spec));
        }
        Command::Init { target, evolve } => {
            let spec = target.spec()?;
            let client = decant::connect(&target.url()?).await?;
            if evolve {
                decant::init_evolving(&client, &spec).await?;
            } else {
                decant::init(&client, &spec).await?;
            }
            if decant::flag_column_exists(&client, &spec).await? {
                println!("initialized: target tables, decant schema, flag column and legacy index");
            } else {
                println!(
                    "initialized: target tables and decant schema (the flag column was dropped by \
                     `finalize --drop-legacy`; the views and SQL API read every user as migrated)"
                );
            }
            for w in decant::source_warnings(&client, &spec).await? {
                eprintln!("warning: {w}");
            }
            // roles granted before lack the tables a spec added
            let behind = decant::roles_missing_grants(&client, &spec).await?;
            if !behind.is_empty() {
                eprintln!(
                    "warning: {} had decant's grants but lack the spec's new tables or views: \
                     their calls on migrated users fail with \"permission denied\" until \
                     `decant grants <role> --apply` runs for each",
                    behind.join(", ")
                );
            }
        }
        Command::Migrate { target, user } => {
            let decant = target.decant()?;
            let user = args::user_id(decant.spec().source().id_type, &user)?;
            let held = !decant
                .held_users(std::slice::from_ref(&user))
                .await?
                .is_empty();
            let report = decant.migrate_user(user.clone()).await?;
            if let Some(m) = report.migrated.first() {
                println!("user {user}: migrated, {} rows, verified", m.rows);
                if held {
                    println!(
                        "  it was held out of the migration by a rollback: migrating it by hand ended the hold"
                    );
                }
                if !m.fixups.is_empty() {
                    println!(
                        "  repaired first by fixups {} (undone on rollback)",
                        m.fixups.join(", ")
                    );
                }
                for w in &m.warnings {
                    println!("  warning: {w} (kept in the residual)");
                }
            } else if let Some(f) = report.failed.first() {
                return Err(
                    exit::UsersFailed(format!("{} (the user stays legacy)", f.error)).into(),
                );
            } else {
                println!("user {user}: already migrated");
            }
        }
        Command::Rollback(args) => run::rollback(args).await?,
        Command::Finalize {
            target,
            drop_legacy,
        } => {
            let f = decant::finalize(&target.url()?, &target.decant()?, drop_legacy).await?;
            if f.already {
                println!(
                    "already finalized; every one of {} users is migrated and verified",
                    f.users
                );
            } else {
                println!(
                    "finalized: every one of {} users is migrated and verified; the views read the tables alone, \
                     and nothing migrates or rolls back any more",
                    f.users
                );
            }
            if f.residual_users > 0 {
                println!(
                    "{}: they hold keys no rule claims, values a `keep` rule kept, or empty \
                     objects and arrays (as the blobs had them, or standing for array elements \
                     the rows fill back) (the blob column keeps them; `decant.load` returns \
                     them). By top-level key:",
                    decant::words::residual_note(f.residual_users)
                );
                for u in &f.unclaimed {
                    let ids: Vec<String> = u.examples.iter().map(ToString::to_string).collect();
                    println!(
                        "  {}: {} (e.g. {})",
                        u.path,
                        decant::words::users(u.users),
                        ids.join(", ")
                    );
                }
                if f.more_keys > 0 {
                    println!(
                        "  and {} more top-level {}, each held by as many users as the last above or fewer",
                        f.more_keys,
                        if f.more_keys == 1 { "key" } else { "keys" }
                    );
                }
            }
            if f.flag_dropped {
                println!(
                    "the flag column and the legacy index are dropped; the views and SQL API read every user as migrated"
                );
            } else {
                println!("\n{}", f.drop_sql);
            }
        }
        Command::Grants {
            role,
            spec,
            apply,
            database_url,
        } => {
            let spec = Spec::load(&spec)?;
            if apply {
                let target = args::Target {
                    database_url,
                    spec: PathBuf::new(),
                };
                let client = decant::connect(&target.url()?).await?;
                decant::apply_grants(&client, &spec, &role).await?;
                println!("granted {role} what the library and the SQL API need");
            } else {
                print!("{}", decant::grants_script(&spec, &role)?);
            }
        }
        Command::Release {
            target,
            ids,
            user,
            failed,
        } => {
            let decant = target.decant()?;
            let kind = decant.spec().source().id_type;
            let ids = match (ids.as_deref(), user) {
                (Some(file), _) => {
                    let list = args::read_ids(file, kind)?;
                    args::warn_missing(&decant, &list, file).await?;
                    Some(list)
                }
                (None, Some(user)) => {
                    let Ok(id) = kind.id(&user) else {
                        exit::usage!(
                            "--user {user}: not a user id of the spec's id_type ({})",
                            kind.describe()
                        )
                    };
                    let list = vec![id];
                    if !decant.missing_users(&list).await?.is_empty() {
                        return Err(decant::Error::UserNotFound(list[0].clone()).into());
                    }
                    Some(list)
                }
                (None, None) => None,
            };
            if failed {
                let n = decant.retry_failed(ids.as_deref()).await?;
                println!(
                    "{} {} their attempts back: the daemon tries them again \
                     (`decant check` first shows whether they now migrate)",
                    decant::words::users(n).replace("user", "failed user"),
                    if n == 1 { "has" } else { "have" }
                );
            } else {
                let n = decant.release(ids.as_deref()).await?;
                println!(
                    "released {}: the migration takes them again",
                    decant::words::users(n).replace("user", "held user")
                );
            }
        }
        Command::Run(args) => run::run_daemon(args).await?,
        Command::Pause(target) => {
            set_control(&target, &[decant::Setting::Paused(true)]).await?;
            println!("paused: running daemons hold back within about a second");
        }
        Command::Resume(target) => {
            set_control(&target, &[decant::Setting::Paused(false)]).await?;
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
            let schedule = schedule.schedule()?;
            let status = match decant::status(&target.decant_or_recorded().await?, &schedule).await
            {
                // a spec edited ahead of `init --evolve`: status reads,
                // it changes nothing, so the recorded mapping serves
                // (a spec of another source table is no such edit)
                Err(decant::Error::SpecMismatch { detail })
                    if !detail.starts_with("decant in this database serves") =>
                {
                    let url = target.url()?;
                    let client = decant::connect(&url).await?;
                    let Some(spec) = decant::recorded_spec(&client).await? else {
                        return Err(decant::Error::SpecMismatch { detail }.into());
                    };
                    eprintln!(
                        "note: {} maps otherwise than the mapping recorded by `decant init` (not yet \
                         applied with `init --evolve`?); status is the recorded mapping's",
                        target.spec.display()
                    );
                    decant::status(&decant::Decant::connect(&url, spec, 2)?, &schedule).await?
                }
                other => other?,
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                println!("{status}");
            }
        }
        Command::Check {
            target,
            sample,
            ids,
            page,
            page_bytes,
            json,
        } => {
            let selection = match (sample, ids) {
                (Some(n), _) => decant::Selection::Sample(n),
                (None, Some(file)) => {
                    decant::Selection::Ids(args::read_ids(&file, target.spec()?.source().id_type)?)
                }
                (None, None) => decant::Selection::All,
            };
            if page == 0 {
                exit::usage!("--page must be at least 1");
            }
            let opts = decant::CheckOptions {
                selection,
                page,
                page_bytes,
            };
            let progress = decant::CheckProgress::default();
            let bar = run::labelled_bar("checking", 0);
            let url = target.url()?;
            let check = decant::check(&url, target.spec()?, &opts, &progress);
            tokio::pin!(check);
            let check = loop {
                tokio::select! {
                    done = &mut check => break done?,
                    _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => {
                        if let Some(bar) = &bar {
                            bar.set_length(progress.total());
                            bar.set_position(progress.done());
                        }
                    }
                }
            };
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&check)?);
            } else {
                print!("{check}");
            }
            if let Some(peak) = decant::peak_memory() {
                eprintln!("peak memory {:.1} MiB", peak as f64 / 1048576.0);
            }
            for w in &check.source_warnings {
                eprintln!("warning: {w}");
            }
            if check.census.anything_fails() {
                // flush before exiting: the report is the point
                use std::io::Write;
                std::io::stdout().flush()?;
                std::process::exit(exit::code::USERS_FAILED);
            }
        }
        Command::Rehearse {
            dump,
            spec,
            server,
            keep,
            name,
            rate,
            schedule,
            users,
            workers,
            largest,
            json,
        } => {
            if workers == 0 {
                exit::usage!("--workers must be at least 1");
            }
            let opts = rehearse::RehearseOptions {
                dump,
                spec: Spec::load(&spec)?,
                server,
                keep,
                name,
                rate,
                schedule: schedule.schedule()?,
                users,
                workers,
                largest,
            };
            let spinner = run::spinner();
            let show = |line: &str| match &spinner {
                Some(s) => s.set_message(line.to_string()),
                None => tracing::info!("{line}"),
            };
            let out = rehearse::run(&opts, &show).await;
            if let Some(s) = &spinner {
                s.finish_and_clear();
            }
            let out = out?;
            if json {
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                print!("{out}");
            }
        }
        Command::Example {
            target,
            example,
            users,
            seed,
            force,
        } => {
            let ex =
                example::by_name(&example).map_err(|e| exit::Usage(format!("--example: {e}")))?;
            let client = decant::connect(&target.url()?).await?;
            ex.refuse_foreign_table(&client, force).await?;
            let dirty = ex.load(&client, users, seed).await?;
            if !target.spec.exists() {
                std::fs::write(&target.spec, ex.spec)
                    .with_context(|| format!("writing {}", target.spec.display()))?;
                println!("wrote the {}'s spec to {}", ex.name, target.spec.display());
                let dir = target
                    .spec
                    .parent()
                    .unwrap_or(std::path::Path::new("."))
                    .join("fixups");
                if !dir.exists() {
                    std::fs::create_dir_all(&dir)
                        .with_context(|| format!("creating {}", dir.display()))?;
                    for (name, text) in ex.fixups {
                        let file = dir.join(format!("{name}.toml"));
                        std::fs::write(&file, text)
                            .with_context(|| format!("writing {}", file.display()))?;
                    }
                    println!(
                        "wrote the {}'s fixups (one per kind of dirt) to {}",
                        ex.name,
                        dir.display()
                    );
                }
            }
            println!(
                "loaded {users} generated users ({dirty} dirty) into \"{}\"; next: decant init, decant run",
                ex.table
            );
        }
        Command::Bench {
            users,
            memory_users,
            naive_users,
            latency_secs,
            memory_secs,
            latency_only,
            leaderboard_only,
            api_only,
            check_only,
            soak,
            latency_compare,
            database_url,
        } => {
            let opts = bench::BenchOptions {
                users,
                memory_users,
                naive_users,
                latency_secs,
                memory_secs,
                latency_only,
                leaderboard_only,
                api_only,
                check_only,
                soak,
                latency_compare,
                exe: std::env::current_exe().context("locating the decant executable")?,
                database_url,
            };
            let report = match opts.soak {
                Some(length) => soak::run(&opts, length).await?,
                None => bench::run(&opts).await?,
            };
            println!("{report}");
        }
        Command::Demo {
            users,
            seed,
            workers,
            database_url,
            example,
        } => {
            let opts = demo::DemoOptions {
                users,
                seed,
                workers,
                database_url,
                example: example::by_name(&example)
                    .map_err(|e| exit::Usage(format!("--example: {e}")))?,
                ..Default::default()
            };
            let bar = run::progress_bar(users as u64);
            // the rate counts from the first migrated user, not from the
            // cluster start and the load
            let started = std::sync::OnceLock::new();
            let summary = demo::run(&opts, &|done, _total| {
                if let Some(bar) = &bar {
                    bar.set_position(done);
                    if done > 0 {
                        let since = *started.get_or_init(Instant::now);
                        bar.set_message(run::rate_message(done, since, None));
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

async fn set_control(target: &Target, settings: &[decant::Setting]) -> Result<()> {
    // the control row needs only the database; a spec given is still
    // checked, so that a bad one is reported here too
    if target.spec.exists() {
        target.spec()?;
    }
    let client = decant::connect(&target.url()?).await?;
    for s in settings {
        decant::set_control(&client, s).await.map_err(|e| match e {
            // an id of the wrong kind is bad input, as a bad value is
            decant::Error::Setup(m) if m.starts_with("allow=") => exit::Usage(m).into(),
            e => anyhow::Error::from(e),
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::log_filter;

    #[test]
    fn debug_logs_leave_the_driver_s_parameters_out_unless_asked() {
        assert_eq!(log_filter(None), "info");
        assert_eq!(log_filter(Some(" ")), "info");
        assert_eq!(log_filter(Some("debug")), "debug,tokio_postgres=info");
        assert_eq!(
            log_filter(Some("decant=trace")),
            "decant=trace,tokio_postgres=info"
        );
        assert_eq!(
            log_filter(Some("debug,tokio_postgres=debug")),
            "debug,tokio_postgres=debug"
        );
    }
}
