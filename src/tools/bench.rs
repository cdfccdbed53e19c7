//! `decant bench`: decant against the bars it must beat, all in one run on
//! one throwaway cluster (fsync on), because these machines drift by 30%
//! or more between runs. Every variant starts from a copy of the same
//! generated database.
//!
//! - set-based SQL by PostgreSQL alone, no verification: the whole table in
//!   one transaction, and batches of 100 users in a PL/pgSQL loop;
//! - a naive client: one transaction per user, one INSERT per row;
//! - `decant run --rate max` (a child process): users/s, rows/s, batch
//!   transaction (lock hold) percentiles, peak memory;
//! - the backend's patch latency, idle and while the daemon runs;
//! - the daemon's peak memory at a second, larger size.

use super::cluster::{ClusterOptions, TempCluster};
use super::example;
use super::traffic::{Traffic, WriteKind};
use anyhow::{Context, Result, anyhow};
use decant::{connect, with_dbname};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Benchmark options.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Users of the main comparison (default 200,000).
    pub users: i64,
    /// Users of the second memory measurement (default 1,000,000; 0 skips).
    pub memory_users: i64,
    /// Users the naive client migrates (a sample; default 2,000).
    pub naive_users: i64,
    /// Seconds of backend writes measured without and with the daemon
    /// (default 20).
    pub latency_secs: u64,
    /// Seconds the daemon runs for the memory comparison (default 60).
    pub memory_secs: u64,
    /// Measure only the backend latency (faster iteration on it).
    pub latency_only: bool,
    /// Measure only the leaderboard: half the users migrated, top-50 by a
    /// ranked statistic through the plain view and the ranked path.
    pub leaderboard_only: bool,
    /// Measure only the per-call latency of load and patch through the
    /// Rust layer and the SQL API (half the users migrated).
    pub api_only: bool,
    /// Measure only the census against the daemon: `decant check` and
    /// `decant run --rate max` on the same users, and the census's memory
    /// at `users` and at `memory_users`.
    pub check_only: bool,
    /// Run only the soak, this long: the daemon at default settings under
    /// both backends' load (`soak.rs`; dispatched by the command line).
    pub soak: Option<Duration>,
    /// `decant run` arguments measured after the default settings, each a
    /// space-separated string (default: the commit probe off).
    pub latency_compare: Vec<String>,
    /// The `decant` executable to run as the daemon.
    pub exe: PathBuf,
    /// A server to use instead of a throwaway cluster.
    pub database_url: Option<String>,
}

const SET_BASED: &str = include_str!("../../sql/bench_setbased.sql");

/// Drops the CHECK constraints `init` put on the target tables.
const DROP_CHECKS: &str = "DO $$ DECLARE r record; BEGIN \
    FOR r IN SELECT conrelid::regclass AS t, conname FROM pg_constraint \
             WHERE contype = 'c' AND conname LIKE 'decant\\_%' LOOP \
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', r.t, r.conname); \
    END LOOP; END $$";
const BACKEND_RATE: f64 = 200.0;

/// Where a benchmark runs: a server (a throwaway cluster, fsync on, unless
/// a URL was given), an admin session on it, and a directory holding the
/// example game's spec.
pub(super) struct Setup {
    /// Kept for its drop: stops and removes the cluster.
    _cluster: Option<TempCluster>,
    /// The server's connection string (database `postgres`).
    pub(super) server: String,
    pub(super) admin: tokio_postgres::Client,
    pub(super) dir: PathBuf,
    pub(super) spec_path: PathBuf,
}

impl Setup {
    /// Starts the cluster (or connects to `--database-url`) and writes the
    /// spec.
    pub(super) async fn new(opts: &BenchOptions) -> Result<Setup> {
        let (cluster, server) = match &opts.database_url {
            Some(u) => (None, u.clone()),
            None => {
                let cluster = tokio::task::spawn_blocking(|| {
                    TempCluster::start(&ClusterOptions {
                        fsync: true,
                        shared_buffers: "2GB".into(),
                        ..ClusterOptions::default()
                    })
                })
                .await
                .context("starting the throwaway cluster")??;
                let url = cluster.url("postgres");
                (Some(cluster), url)
            }
        };
        let admin = connect(&server).await?;
        let dir = std::env::temp_dir().join(format!("decant-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let spec_path = dir.join("decant.toml");
        std::fs::write(&spec_path, example::SPEC)
            .with_context(|| format!("writing {}", spec_path.display()))?;
        Ok(Setup {
            _cluster: cluster,
            server,
            admin,
            dir,
            spec_path,
        })
    }

    /// Drops the benchmark's databases `dbs` and its directory (the
    /// cluster goes with the value).
    pub(super) async fn clean(self, dbs: &[&str]) {
        for db in dbs {
            let _ = self
                .admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                .await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs the benchmark and returns its report as Markdown.
pub async fn run(opts: &BenchOptions) -> Result<String> {
    let setup = Setup::new(opts).await?;
    let result = run_all(opts, &setup.server, &setup.admin, &setup.spec_path).await;
    setup
        .clean(&[
            "bench_template",
            "bench_a1",
            "bench_a2",
            "bench_naive",
            "bench_decant",
            "bench_mem_small",
            "bench_mem_large",
        ])
        .await;
    result
}

pub(super) async fn drop_db(admin: &tokio_postgres::Client, name: &str) -> Result<()> {
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .with_context(|| format!("dropping {name}"))
}

async fn create_from_template(admin: &tokio_postgres::Client, name: &str) -> Result<()> {
    drop_db(admin, name).await?;
    admin
        .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE bench_template"))
        .await
        .with_context(|| format!("copying the template to {name}"))
}

pub(super) async fn load_db(
    admin: &tokio_postgres::Client,
    server: &str,
    name: &str,
    users: i64,
) -> Result<Duration> {
    drop_db(admin, name).await?;
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .with_context(|| format!("creating {name}"))?;
    let client = connect(&with_dbname(server, name)?).await?;
    let started = Instant::now();
    example::load(&client, users, 1).await?;
    decant::init(&client, &example::spec()).await?;
    client
        .batch_execute("VACUUM ANALYZE")
        .await
        .with_context(|| "vacuuming")?;
    client
        .batch_execute("CHECKPOINT")
        .await
        .with_context(|| "checkpoint")?;
    Ok(started.elapsed())
}

async fn count_rows(client: &tokio_postgres::Client) -> Result<i64> {
    let spec = example::spec();
    let mut n = 0;
    for ti in 0..spec.tables().len() {
        let c: i64 = client
            .query_one(
                &format!("SELECT count(*) FROM {}", spec.qualified_table(ti)),
                &[],
            )
            .await
            .with_context(|| "counting rows")?
            .get(0);
        n += c;
    }
    Ok(n)
}

async fn count_migrated(client: &tokio_postgres::Client) -> Result<i64> {
    Ok(client
        .query_one("SELECT count(*) FROM \"user\" WHERE migrated", &[])
        .await
        .with_context(|| "counting migrated users")?
        .get(0))
}

#[derive(Default)]
struct Line {
    what: String,
    users: i64,
    rows: i64,
    pub(super) secs: f64,
    note: String,
    /// What the database server spent on it.
    cost: Option<ServerCost>,
}

/// The database server's cumulative work at one moment: the CPU time of
/// its processes (when they run on this host, readable in /proc) and its
/// WAL position.
#[derive(Debug, Clone, Copy, Default)]
struct ServerWork {
    cpu: Option<Duration>,
    wal: i64,
}

/// What the server spent between two [`ServerWork`] readings.
#[derive(Debug, Clone, Copy, Default)]
struct ServerCost {
    cpu: Option<Duration>,
    wal: i64,
}

/// Reads the server's work so far: its WAL position, and the CPU time of
/// the postmaster (its own and that of the children it reaped) plus that
/// of its live children, from /proc (None for a server elsewhere).
async fn server_work(admin: &tokio_postgres::Client) -> Result<ServerWork> {
    let row = admin
        .query_one(
            "SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint, current_setting('data_directory')",
            &[],
        )
        .await
        .context("reading the WAL position")?;
    let (wal, dir): (i64, String) = (row.get(0), row.get(1));
    let cpu = std::fs::read_to_string(Path::new(&dir).join("postmaster.pid"))
        .ok()
        .and_then(|t| t.lines().next()?.trim().parse::<i32>().ok())
        .and_then(process_tree_cpu);
    Ok(ServerWork { cpu, wal })
}

/// CPU time of process `pid` (with the children it reaped) and of its live
/// children.
fn process_tree_cpu(pid: i32) -> Option<Duration> {
    // fields after the command name: state(3) ppid(4) ... utime(14)
    // stime(15) cutime(16) cstime(17), counted from 1
    let fields = |p: i32| -> Option<Vec<i64>> {
        let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
        let rest = stat.rsplit_once(')')?.1;
        Some(
            rest.split_whitespace()
                .map(|f| f.parse().unwrap_or(0))
                .collect(),
        )
    };
    // (after the name, field n of stat is index n - 3)
    let me = fields(pid)?;
    let mut ticks = me.get(11)? + me.get(12)? + me.get(13)? + me.get(14)?;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if let Some(f) = fields(child) {
            if f.get(1) == Some(&i64::from(pid)) {
                ticks += f.get(11).unwrap_or(&0) + f.get(12).unwrap_or(&0);
            }
        }
    }
    // SAFETY: sysconf has no preconditions
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
    Some(Duration::from_secs_f64(ticks as f64 / hz as f64))
}

impl ServerWork {
    fn since(self, before: ServerWork) -> ServerCost {
        ServerCost {
            cpu: self.cpu.zip(before.cpu).map(|(a, b)| a.saturating_sub(b)),
            wal: self.wal - before.wal,
        }
    }
}

async fn run_all(
    opts: &BenchOptions,
    server: &str,
    admin: &tokio_postgres::Client,
    spec_path: &Path,
) -> Result<String> {
    let mut out = String::new();
    tracing::info!(users = opts.users, "loading the template database");
    let load_time = load_db(admin, server, "bench_template", opts.users).await?;
    if opts.latency_only {
        let line = latency(opts, admin, server, spec_path).await?;
        return Ok(format!("{} users, latency only:\n{line}\n", opts.users));
    }
    if opts.leaderboard_only {
        return leaderboard(opts, server).await;
    }
    if opts.api_only {
        return api(opts, server).await;
    }
    if opts.check_only {
        return check_vs_run(opts, admin, server, spec_path).await;
    }
    let mut lines = Vec::new();

    // (a1) set-based, whole table, one transaction
    let whole = SET_BASED.replace("{{FILTER}}", "true");
    lines.push(
        set_based(
            admin,
            server,
            "bench_a1",
            &[],
            &whole,
            Line {
                what: "(a1) set-based SQL, whole table, one transaction".into(),
                note: "no validation, no verification; one backend".into(),
                ..Line::default()
            },
        )
        .await?,
    );
    // (a2) set-based, batches of 100 users in a PL/pgSQL loop
    let body = SET_BASED.replace("{{FILTER}}", "id BETWEEN lo AND lo + 99");
    let looped = format!(
        "DO $bench$ DECLARE lo bigint := 1; top bigint; BEGIN
           SELECT max(id) INTO top FROM \"user\";
           WHILE lo <= top LOOP
             {body};
             COMMIT;
             lo := lo + 100;
           END LOOP;
         END $bench$"
    );
    lines.push(
        set_based(
            admin,
            server,
            "bench_a2",
            &["SET plan_cache_mode = force_generic_plan"],
            &looped,
            Line {
                what: "(a2) set-based SQL, 100-user batches in PL/pgSQL".into(),
                note: "no validation, no verification; one backend; generic plans".into(),
                ..Line::default()
            },
        )
        .await?,
    );

    // (b) naive client on a sample
    create_from_template(admin, "bench_naive").await?;
    tracing::info!(users = opts.naive_users, "naive client");
    let work = server_work(admin).await?;
    let (users, rows, secs) = naive(&with_dbname(server, "bench_naive")?, opts.naive_users).await?;
    lines.push(Line {
        what: format!("(b) naive client, first {} users", opts.naive_users),
        users,
        rows,
        secs,
        note: "one transaction per user, one INSERT round trip per row".into(),
        cost: Some(server_work(admin).await?.since(work)),
    });
    let _ = admin
        .batch_execute("DROP DATABASE bench_naive WITH (FORCE)")
        .await;

    // decant at full speed, alone
    create_from_template(admin, "bench_decant").await?;
    let url = with_dbname(server, "bench_decant")?;
    tracing::info!("decant run --rate max");
    let work = server_work(admin).await?;
    let daemon = run_daemon(
        opts,
        &url,
        spec_path,
        &["--rate", "max", "--workers", "2"],
        None,
    )
    .await?;
    let cost = Some(server_work(admin).await?.since(work));
    let c = connect(&url).await?;
    let migrated = count_migrated(&c).await?;
    let rows = count_rows(&c).await?;
    lines.push(Line {
        what: "decant run --rate max --workers 2".into(),
        users: daemon.migrated,
        rows,
        secs: daemon.secs,
        note: format!(
            "validates and verifies every user; {} failed (dirty)",
            daemon.failed
        ),
        cost,
    });
    if migrated != daemon.migrated {
        return Err(anyhow!(format!(
            "the daemon reported {} users but {migrated} are migrated",
            daemon.migrated
        )));
    }
    drop(c);
    drop_db(admin, "bench_decant").await?;

    let latency = latency(opts, admin, server, spec_path).await?;

    // memory: the daemon's peak over the same time at two sizes
    let mut memory = Vec::new();
    if opts.memory_users > 0 {
        for (name, users) in [
            ("bench_mem_small", opts.users),
            ("bench_mem_large", opts.memory_users),
        ] {
            if name == "bench_mem_small" {
                create_from_template(admin, name).await?;
            } else {
                let _ = admin
                    .batch_execute("DROP DATABASE IF EXISTS bench_template WITH (FORCE)")
                    .await;
                tracing::info!(users, "loading the large database");
                load_db(admin, server, name, users).await?;
            }
            let url = with_dbname(server, name)?;
            tracing::info!(users, secs = opts.memory_secs, "daemon memory");
            let limit = Some(Duration::from_secs(opts.memory_secs));
            let r = run_daemon(
                opts,
                &url,
                spec_path,
                &["--rate", "max", "--workers", "2"],
                limit,
            )
            .await?;
            memory.push((users, r));
            let _ = admin
                .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
                .await;
        }
    }

    // report
    let bar = lines[..2]
        .iter()
        .map(|l| l.users as f64 / l.secs)
        .fold(0.0, f64::max);
    let naive_rate = lines[2].users as f64 / lines[2].secs;
    let decant_rate = lines[3].users as f64 / lines[3].secs;
    writeln!(out, "Generated game database: {} users (loaded in {:.0} s), PostgreSQL with fsync on, 2 cores.\n", opts.users, load_time.as_secs_f64()).ok();
    writeln!(
        out,
        "| variant | users | rows | seconds | users/s | rows/s | server CPU µs/user | WAL bytes/user | note |"
    )
    .ok();
    writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---|").ok();
    for l in &lines {
        let per_user = |v: f64| v / (l.users.max(1) as f64);
        let (cpu, wal) = match l.cost {
            Some(c) => (
                c.cpu
                    .map(|d| format!("{:.0}", per_user(d.as_secs_f64() * 1e6)))
                    .unwrap_or_else(|| "–".into()),
                format!("{:.0}", per_user(c.wal as f64)),
            ),
            None => ("–".into(), "–".into()),
        };
        writeln!(
            out,
            "| {} | {} | {} | {:.1} | {:.0} | {:.0} | {cpu} | {wal} | {} |",
            l.what,
            l.users,
            l.rows,
            l.secs,
            l.users as f64 / l.secs,
            l.rows as f64 / l.secs,
            l.note
        )
        .ok();
    }
    writeln!(
        out,
        "\nServer CPU is the database server's processes' (the postmaster, its \
         backends and background workers, read from /proc), WAL the bytes of the \
         WAL position's advance, both over the variant's run, divided by the users \
         it migrated."
    )
    .ok();
    writeln!(out).ok();
    writeln!(
        out,
        "- decant vs the set-based bar (faster of a1, a2): {:.2}x; vs the naive client: {:.1}x",
        decant_rate / bar,
        decant_rate / naive_rate
    )
    .ok();
    if let Some((p50, p99)) = daemon.batch_ms {
        writeln!(
            out,
            "- per-user lock hold (the batch transaction): p50 {p50:.1} ms, p99 {p99:.1} ms"
        )
        .ok();
    }
    writeln!(out, "{latency}").ok();
    if let Some(mib) = daemon.peak_mib {
        writeln!(
            out,
            "- daemon peak memory over the whole {}-user run: {mib:.1} MiB",
            opts.users
        )
        .ok();
    }
    for (users, r) in &memory {
        writeln!(
            out,
            "- daemon peak memory over its first {} s at {users} users: {} ({} users migrated meanwhile)",
            opts.memory_secs,
            r.peak_mib.map(|m| format!("{m:.1} MiB")).unwrap_or_else(|| "unknown".into()),
            r.migrated
        )
        .ok();
    }
    Ok(out)
}

/// The backend's patch latency: idle, then with the daemon at its default
/// settings, on a fresh copy of the template. One line of the report.
async fn latency(
    opts: &BenchOptions,
    admin: &tokio_postgres::Client,
    server: &str,
    spec_path: &Path,
) -> Result<String> {
    create_from_template(admin, "bench_latency").await?;
    let url = with_dbname(server, "bench_latency")?;
    let decant = decant::Decant::connect(&url, example::spec(), 8)?;
    tracing::info!(secs = opts.latency_secs, "backend patch latency, no daemon");
    let idle = Traffic::start(
        &decant,
        opts.users,
        BACKEND_RATE,
        WriteKind::Patch("pref", "bench"),
        1,
    );
    tokio::time::sleep(Duration::from_secs(opts.latency_secs)).await;
    let idle = idle.stop().await?;
    // the daemon at default settings, then (for comparison, in the same
    // run) with other arguments: by default its commit probe off
    let mut runs: Vec<Vec<&str>> = vec![Vec::new()];
    runs.extend(
        opts.latency_compare
            .iter()
            .map(|a| a.split_whitespace().collect()),
    );
    let mut with_daemon = Vec::new();
    for (seed, args) in (2..).zip(&runs) {
        tracing::info!(
            secs = opts.latency_secs,
            ?args,
            "backend patch latency, daemon running"
        );
        let busy = Traffic::start(
            &decant,
            opts.users,
            BACKEND_RATE,
            WriteKind::Patch("pref", "bench"),
            seed,
        );
        let during = run_daemon(
            opts,
            &url,
            spec_path,
            args,
            Some(Duration::from_secs(opts.latency_secs)),
        )
        .await?;
        let busy = busy.stop().await?;
        with_daemon.push((busy, during));
    }
    drop(decant);
    drop_db(admin, "bench_latency").await?;

    let ms = |d: Option<(Duration, Duration)>| match d {
        Some((a, b)) => format!(
            "p50 {:.2} ms, p99 {:.2} ms",
            a.as_secs_f64() * 1e3,
            b.as_secs_f64() * 1e3
        ),
        None => "no writes".into(),
    };
    let ratio = |d: Option<(Duration, Duration)>| match (d, idle.latency) {
        (Some((_, b)), Some((_, i))) => format!("{:.1}x", b.as_secs_f64() / i.as_secs_f64()),
        _ => "n/a".into(),
    };
    let mut out = format!(
        "- backend patch latency ({BACKEND_RATE:.0} patches/s through the compatibility layer, {} s each): no daemon {} ({} writes)",
        opts.latency_secs,
        ms(idle.latency),
        idle.writes,
    );
    for ((busy, during), args) in with_daemon.iter().zip(&runs) {
        let what = if args.is_empty() {
            "daemon at default settings (`decant run`: 1 worker, rate max, locks held 25 ms a batch or 10 ms while others work, commit probe 1.5x, nice 10)".to_string()
        } else {
            format!("`decant run {}`", args.join(" "))
        };
        let _ = write!(
            out,
            "; {what} {} ({} writes, p99 {} idle, {} users migrated meanwhile{}{})",
            ms(busy.latency),
            busy.writes,
            ratio(busy.latency),
            during.migrated,
            match during.held_secs {
                Some(h) => format!(", held back {h:.1} s"),
                None => String::new(),
            },
            match during.batch_ms {
                Some((p50, p99)) => format!(", lock hold p50 {p50:.1} ms, p99 {p99:.1} ms"),
                None => String::new(),
            }
        );
    }
    Ok(out)
}

/// `decant check` against `decant run --rate max --workers 2` on the same
/// users, then the census's peak memory at a second, larger size.
async fn check_vs_run(
    opts: &BenchOptions,
    admin: &tokio_postgres::Client,
    server: &str,
    spec_path: &Path,
) -> Result<String> {
    let url = with_dbname(server, "bench_template")?;
    tracing::info!("decant check");
    let small = run_check(opts, &url, spec_path).await?;
    create_from_template(admin, "bench_decant").await?;
    let run_url = with_dbname(server, "bench_decant")?;
    tracing::info!("decant run --rate max");
    let daemon = run_daemon(
        opts,
        &run_url,
        spec_path,
        &["--rate", "max", "--workers", "2"],
        None,
    )
    .await?;
    drop_db(admin, "bench_decant").await?;
    let run_rate = daemon.migrated as f64 / daemon.secs;
    let mut out = format!(
        "| command | users | seconds | users/s | peak memory |\n|---|---:|---:|---:|---:|\n\
         | `decant check` | {} | {:.1} | {:.0} | {:.1} MiB |\n\
         | `decant run --rate max --workers 2` | {} | {:.1} | {:.0} | {} |\n\n\
         The census reads {:.1}x as many users per second as the daemon migrates.\n",
        small.users,
        small.secs,
        small.users as f64 / small.secs,
        small.peak_mib,
        daemon.migrated,
        daemon.secs,
        run_rate,
        daemon
            .peak_mib
            .map_or("–".into(), |m| format!("{m:.1} MiB")),
        small.users as f64 / small.secs / run_rate,
    );
    if opts.memory_users > 0 {
        let _ = admin
            .batch_execute("DROP DATABASE IF EXISTS bench_template WITH (FORCE)")
            .await;
        tracing::info!(users = opts.memory_users, "loading the large database");
        load_db(admin, server, "bench_check_large", opts.memory_users).await?;
        let large = run_check(opts, &with_dbname(server, "bench_check_large")?, spec_path).await?;
        let _ = admin
            .batch_execute("DROP DATABASE bench_check_large WITH (FORCE)")
            .await;
        out.push_str(&format!(
            "\n`decant check` peak memory: {:.1} MiB at {} users, {:.1} MiB at {} users ({:.0} users/s).\n",
            small.peak_mib,
            small.users,
            large.peak_mib,
            large.users,
            large.users as f64 / large.secs
        ));
    }
    Ok(out)
}

struct CheckRun {
    users: u64,
    secs: f64,
    peak_mib: f64,
}

/// Runs `decant check --json` as a child process.
async fn run_check(opts: &BenchOptions, url: &str, spec: &Path) -> Result<CheckRun> {
    let started = Instant::now();
    let out = tokio::process::Command::new(&opts.exe)
        .arg("check")
        .arg("--spec")
        .arg(spec)
        .arg("--json")
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("starting {}", opts.exe.display()))?;
    let secs = started.elapsed().as_secs_f64();
    // exit status 3: some users would fail, as the game's dirty ones do
    if !matches!(out.status.code(), Some(0 | 3)) {
        return Err(anyhow!(format!(
            "decant check failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("reading the census's JSON")?;
    let err = String::from_utf8_lossy(&out.stderr);
    let peak_mib = err
        .lines()
        .find_map(|l| l.strip_prefix("peak memory "))
        .and_then(|l| l.trim_end_matches(" MiB").parse().ok())
        .unwrap_or(f64::NAN);
    Ok(CheckRun {
        users: report["users"].as_u64().unwrap_or(0),
        secs,
        peak_mib,
    })
}

/// Times `sql` on a fresh copy of the template (after `setup`), and
/// fills `line` with what it migrated.
async fn set_based(
    admin: &tokio_postgres::Client,
    server: &str,
    name: &str,
    setup: &[&str],
    sql: &str,
    mut line: Line,
) -> Result<Line> {
    create_from_template(admin, name).await?;
    let c = connect(&with_dbname(server, name)?).await?;
    // no validation: the tables' CHECK constraints (what `init` adds for
    // the spec's validations) would refuse the dirty users' values
    c.batch_execute(DROP_CHECKS)
        .await
        .with_context(|| format!("{name}: dropping the CHECK constraints"))?;
    for s in setup {
        c.batch_execute(s)
            .await
            .with_context(|| format!("{name}: {s}"))?;
    }
    tracing::info!(variant = %line.what, "set-based SQL");
    let work = server_work(admin).await?;
    let started = Instant::now();
    c.batch_execute(sql)
        .await
        .with_context(|| format!("{name}: set-based SQL"))?;
    line.secs = started.elapsed().as_secs_f64();
    line.cost = Some(server_work(admin).await?.since(work));
    line.users = count_migrated(&c).await?;
    line.rows = count_rows(&c).await?;
    drop(c);
    drop_db(admin, name).await?;
    Ok(line)
}

/// Top-50 by a ranked statistic with half the users migrated (the even
/// ids): the plain view against the ranked path, server-side execution
/// time (EXPLAIN ANALYZE) medians of runs taken alternately.
/// Migrates the users with even ids of the template database (two batches
/// at a time); returns how many migrated (dirty users stay legacy).
async fn migrate_evens(decant: &decant::Decant, users: i64) -> Result<usize> {
    let started = Instant::now();
    let evens: Vec<i64> = (1..=users).filter(|i| i % 2 == 0).collect();
    let (a, b) = evens.split_at(evens.len() / 2);
    let half = async |ids: &[i64]| -> Result<usize> {
        let mut migrated = 0;
        for chunk in ids.chunks(500) {
            migrated += decant.migrate_batch(chunk).await?.migrated.len();
        }
        Ok(migrated)
    };
    let (ma, mb) = tokio::try_join!(half(a), half(b))?;
    tracing::info!(
        migrated = ma + mb,
        secs = started.elapsed().as_secs_f64(),
        "half migrated"
    );
    Ok(ma + mb)
}

/// The template database with its even users migrated and vacuumed: a
/// handle (pool of `pool` sessions), how many migrated, and a session.
async fn half_migrated(
    opts: &BenchOptions,
    server: &str,
    pool: usize,
) -> Result<(decant::Decant, usize, tokio_postgres::Client)> {
    let url = with_dbname(server, "bench_template")?;
    let decant = decant::Decant::connect(&url, example::spec(), pool)?;
    let migrated = migrate_evens(&decant, opts.users).await?;
    let c = connect(&url).await?;
    c.batch_execute("VACUUM ANALYZE")
        .await
        .context("vacuuming")?;
    Ok((decant, migrated, c))
}

async fn leaderboard(opts: &BenchOptions, server: &str) -> Result<String> {
    let (_decant, migrated, c) = half_migrated(opts, server, 4).await?;
    let plain = "SELECT user_id, value FROM user_statistic_all \
                 WHERE mode = 'kidnap' AND statistic_id = 'points' \
                 ORDER BY value DESC NULLS LAST, user_id LIMIT 50";
    let ranked = "SELECT * FROM kidnap_points_top(50)";
    let time = async |sql: &str| -> Result<f64> {
        let plan: serde_json::Value = c
            .query_one(&format!("EXPLAIN (ANALYZE, FORMAT JSON) {sql}"), &[])
            .await
            .with_context(|| format!("explaining {sql}"))?
            .get(0);
        plan[0]["Execution Time"]
            .as_f64()
            .ok_or_else(|| anyhow!("no execution time in {plan}"))
    };
    let same = c.query(plain, &[]).await.context("the plain view")?.len() == 50
        && c.query(plain, &[])
            .await?
            .iter()
            .map(|r| r.get::<_, i64>(0))
            .collect::<Vec<_>>()
            == c.query(ranked, &[])
                .await?
                .iter()
                .map(|r| r.get::<_, i64>(0))
                .collect::<Vec<_>>();
    let (mut tp, mut tr) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        tp.push(time(plain).await?);
        tr.push(time(ranked).await?);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (p, r) = (median(&mut tp), median(&mut tr));
    Ok(format!(
        "{} users, {} migrated (even ids), top-50 kidnap points, EXPLAIN ANALYZE median of 5:\n\
         - plain view `user_statistic_all`: {p:.1} ms\n\
         - ranked path `kidnap_points_top(50)`: {r:.2} ms ({:.3}% of the view's time)\n\
         - same 50 users in the same order: {same}\n",
        opts.users,
        migrated,
        100.0 * r / p
    ))
}

/// Per-call latency of load and patch, through the Rust layer and through
/// the SQL API, on legacy (odd ids) and migrated (even ids) users: calls
/// interleaved so the machine's drift hits every variant alike.
async fn api(opts: &BenchOptions, server: &str) -> Result<String> {
    let (decant, migrated, c) = half_migrated(opts, server, 1).await?;
    // the WAL position is read on a session of its own, so that every
    // call measured finds its session idle since its last call
    let w = connect(&with_dbname(server, "bench_template")?).await?;
    // every variant runs on the library's one pooled session, taken from
    // the pool for each call as the library's calls take it: the floor is
    // a backend's plain read on its pool, and no variant's server process
    // sleeps longer between calls than another's (with a session per
    // variant group, the busier session woke faster)
    let floor = "SELECT data FROM \"user\" WHERE id = $1";
    let sql_load = "SELECT decant.load($1)";
    let sql_patch = "SELECT decant.patch($1, $2)";
    let pooled = async |sql: &str,
                        params: &[&(dyn tokio_postgres::types::ToSql + Sync)]|
           -> Result<serde_json::Value> {
        let s = decant.pool().get().await?;
        let st = s.prepare_cached(sql).await?;
        Ok(s.query_one(&st, params)
            .await?
            .get::<_, serde_json::Value>(0))
    };
    let mut rng = example::Rng::new(7);
    // [variant][state]: the plain read (the floor), Rust load, SQL load,
    // Rust patch, SQL patch; every result decoded into a JSON value
    // states: a random legacy user, a random migrated one, one of the 50
    // heaviest legacy users (largest blobs), one of the 50 heaviest
    // migrated ones (most statistic rows)
    let ids = async |sql: &str| -> Result<Vec<i64>> {
        Ok(c.query(sql, &[])
            .await
            .with_context(|| format!("picking users: {sql}"))?
            .iter()
            .map(|r| r.get(0))
            .collect())
    };
    let heavy_legacy = ids(
        "SELECT id FROM \"user\" WHERE NOT migrated ORDER BY pg_column_size(data) DESC, id LIMIT 50",
    )
    .await?;
    let heavy_migrated = ids(
        "SELECT user_id FROM user_statistic GROUP BY user_id ORDER BY count(*) DESC, user_id LIMIT 50",
    )
    .await?;
    let mut times: Vec<Vec<Vec<f64>>> = vec![vec![Vec::new(); 4]; 5];
    let mut wal = [[0i64; 4]; 5];
    let lsn = async |c: &tokio_postgres::Client| -> Result<i64> {
        Ok(c.query_one(
            "SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint",
            &[],
        )
        .await
        .context("reading the WAL position")?
        .get(0))
    };
    // on-disk size of the source table and of the target tables (with
    // TOAST and indexes): the legacy patches rewrite the one, the
    // migrated patches the other (their residual does not change)
    let sizes = async || -> Result<(i64, i64)> {
        let r = w
            .query_one(
                "SELECT pg_total_relation_size('\"user\"'), \
                        (SELECT sum(pg_total_relation_size(c.oid))::bigint FROM pg_class c \
                          WHERE c.relkind = 'r' AND c.relname LIKE 'user\\_%' \
                            AND c.relnamespace = 'public'::regnamespace)",
                &[],
            )
            .await
            .context("reading table sizes")?;
        Ok((r.get(0), r.get(1)))
    };
    let sizes_before = sizes().await?;
    let calls = 2000;
    for i in 0..calls {
        for state in 0..4 {
            // an even id is migrated (if its user was clean), an odd one legacy
            let mut user = rng.range(1, opts.users as u64 + 1) as i64;
            if (user % 2 == 0) != (state == 1) {
                user = if user > 1 { user - 1 } else { user + 1 };
            }
            if state >= 2 {
                let heavy = if state == 2 {
                    &heavy_legacy
                } else {
                    &heavy_migrated
                };
                user = heavy[rng.range(0, heavy.len() as u64) as usize];
            }
            // each patch call sets new values (a patch repeating the one
            // before would change nothing)
            let patch = |n: u64| serde_json::json!({"pref": {"bench": n}, "marriage": {"stats": {"kidnap": {"points": n}}}});
            // in a fresh random order each time: the call that follows
            // a pause (or another session's call) finds its server process
            // asleep, and a fixed order would hand that cost to one
            // variant
            let mut order = [0usize, 1, 2, 3, 4];
            for k in (1..order.len()).rev() {
                order.swap(k, rng.range(0, k as u64 + 1) as usize);
            }
            for variant in order {
                let v = &mut times[variant];
                // WAL is read around each call (not timed); nothing else
                // writes during the benchmark but autovacuum
                let lsn_before = lsn(&w).await?;
                let t = Instant::now();
                match variant {
                    0 => drop(pooled(floor, &[&user]).await?),
                    1 => drop(decant.load(user).await?),
                    2 => drop(pooled(sql_load, &[&user]).await?),
                    3 => drop(decant.patch(user, &patch(2 * i)).await?),
                    _ => drop(pooled(sql_patch, &[&user, &patch(2 * i + 1)]).await?),
                }
                v[state].push(t.elapsed().as_secs_f64() * 1000.0);
                wal[variant][state] += lsn(&w).await? - lsn_before;
            }
        }
    }
    let pct = |v: &mut Vec<f64>, p: f64| {
        v.sort_by(f64::total_cmp);
        v[((v.len() as f64 - 1.0) * p).round() as usize]
    };
    let mut out = format!(
        "{} users, {migrated} migrated (even ids), {calls} calls of each kind per state, \
         interleaved on one pooled session (ms, p50 / p99; WAL bytes per call, mean); \
         heavy: the 50 largest legacy blobs, the 50 migrated users with the most statistic rows:\n\n\
         | call | legacy | migrated | legacy, heavy | migrated, heavy | WAL: legacy / migrated / heavy legacy / heavy migrated |\n\
         |---|---:|---:|---:|---:|---:|\n",
        opts.users
    );
    let names = [
        "plain `SELECT data` (the floor)",
        "load, Rust layer",
        "`decant.load`, SQL",
        "patch, Rust layer",
        "`decant.patch`, SQL",
    ];
    for (i, (name, v)) in names.iter().zip(times.iter_mut()).enumerate() {
        let cells: Vec<String> = v
            .iter_mut()
            .map(|t| format!("{:.2} / {:.2}", pct(t, 0.5), pct(t, 0.99)))
            .collect();
        let wals: Vec<String> = (0..4)
            .map(|state| (wal[i][state] / calls as i64).to_string())
            .collect();
        out.push_str(&format!(
            "| {name} | {} | {} |\n",
            cells.join(" | "),
            wals.join(" / ")
        ));
    }
    let sizes_after = sizes().await?;
    let p50: Vec<Vec<f64>> = times
        .iter_mut()
        .map(|v| v.iter_mut().map(|t| pct(t, 0.5)).collect())
        .collect();
    // the floor of a user's whole blob: a legacy user's (a migrated
    // user's source row holds only its residual)
    let (floor, heavy_floor) = (p50[0][0], p50[0][2]);
    let mib = |b: i64| b as f64 / (1024.0 * 1024.0);
    out.push_str(&format!(
        "\nAgainst the floor of reading a whole blob (a random legacy user's, {floor:.2} ms; \
         one of the 50 largest, {heavy_floor:.2} ms), p50: Rust load legacy {:.2}x, migrated {:.2}x, \
         heavy legacy {:.2}x, heavy migrated {:.2}x; SQL load legacy {:.2}x, migrated {:.2}x. \
         Migrated patch / legacy patch, p50: Rust {:.2}x random, {:.2}x heavy; \
         SQL {:.2}x random, {:.2}x heavy.\n\
         \nOn disk over the run ({} legacy and {} migrated patches, autovacuum on): \
         the source table (with TOAST and indexes) grew {:.1} MiB, the target tables {:.1} MiB.\n",
        p50[1][0] / floor,
        p50[1][1] / floor,
        p50[1][2] / heavy_floor,
        p50[1][3] / heavy_floor,
        p50[2][0] / floor,
        p50[2][1] / floor,
        p50[3][1] / p50[3][0],
        p50[3][3] / p50[3][2],
        p50[4][1] / p50[4][0],
        p50[4][3] / p50[4][2],
        4 * calls,
        4 * calls,
        mib(sizes_after.0 - sizes_before.0),
        mib(sizes_after.1 - sizes_before.1),
    ));
    Ok(out)
}

/// A quoted SQL identifier.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// One transaction per user, one INSERT per row: what a hand-written
/// migration script typically does.
async fn naive(url: &str, users: i64) -> Result<(i64, i64, f64)> {
    let spec = Arc::new(example::spec());
    let mut client = connect(url).await?;
    let inserts: Vec<tokio_postgres::Statement> =
        {
            let mut v = Vec::new();
            for (ti, t) in spec.tables().iter().enumerate() {
                let cols: Vec<String> = std::iter::once(quote(&t.user_column))
                    .chain(t.columns.iter().map(|c| quote(&c.name)))
                    .collect();
                let params: Vec<String> =
                    std::iter::once("$1".to_string())
                        .chain(t.columns.iter().enumerate().map(|(i, c)| {
                            c.ty.wire_to_column(&format!("${}::{}", i + 2, c.ty.wire()))
                        }))
                        .collect();
                let sql = format!(
                    "INSERT INTO {} ({}) VALUES ({})",
                    spec.qualified_table(ti),
                    cols.join(", "),
                    params.join(", ")
                );
                v.push(
                    client
                        .prepare(&sql)
                        .await
                        .with_context(|| "preparing a naive insert")?,
                );
            }
            v
        };
    let started = Instant::now();
    let (mut done, mut rows) = (0, 0);
    for id in 1..=users {
        let tx = client.transaction().await.with_context(|| "begin")?;
        let row = tx
            .query_one("SELECT data FROM \"user\" WHERE id = $1 FOR UPDATE", &[&id])
            .await
            .with_context(|| "naive read")?;
        let blob: serde_json::Value = row.get(0);
        let Ok(e) = decant::explode(&spec, &blob) else {
            continue;
        };
        for r in &e.rows {
            let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&id];
            params.extend(
                r.values
                    .iter()
                    .map(|v| v as &(dyn tokio_postgres::types::ToSql + Sync)),
            );
            tx.execute(&inserts[r.table], &params)
                .await
                .with_context(|| "naive insert")?;
        }
        tx.execute(
            "UPDATE \"user\" SET data = $2, migrated = true WHERE id = $1",
            &[&id, &e.residual],
        )
        .await
        .with_context(|| "naive update")?;
        tx.commit().await.with_context(|| "commit")?;
        done += 1;
        rows += e.rows.len() as i64;
    }
    Ok((done, rows, started.elapsed().as_secs_f64()))
}

pub(super) struct DaemonRun {
    pub(super) migrated: i64,
    pub(super) failed: i64,
    pub(super) secs: f64,
    pub(super) batch_ms: Option<(f64, f64)>,
    pub(super) peak_mib: Option<f64>,
    /// Seconds held back by database signals, if any.
    pub(super) held_secs: Option<f64>,
}

/// Starts `decant run` as a child process with `args` (its summary on a
/// pipe, read by [`daemon_result`]).
pub(super) fn spawn_daemon(
    opts: &BenchOptions,
    url: &str,
    spec: &Path,
    args: &[&str],
) -> Result<tokio::process::Child> {
    tokio::process::Command::new(&opts.exe)
        .arg("run")
        .arg("--spec")
        .arg(spec)
        .args(args)
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", opts.exe.display()))
}

/// Sends SIGTERM to a child process (the daemon stops after its batch).
pub(super) fn terminate(pid: Option<u32>) {
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
        // SAFETY: kill(2) with a pid and a signal number has no memory
        // effects in this process
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
}

/// Runs `decant run` as a child process (default settings, rate max),
/// stopped by SIGTERM after `limit` if given; parses its summary.
async fn run_daemon(
    opts: &BenchOptions,
    url: &str,
    spec: &Path,
    args: &[&str],
    limit: Option<Duration>,
) -> Result<DaemonRun> {
    let child = spawn_daemon(opts, url, spec, args)?;
    let pid = child.id();
    let stopper = limit.map(|d| {
        tokio::spawn(async move {
            tokio::time::sleep(d).await;
            terminate(pid);
        })
    });
    let result = daemon_result(child).await;
    if let Some(s) = stopper {
        s.abort();
    }
    result
}

/// Waits for a daemon started by [`spawn_daemon`] and parses its summary.
pub(super) async fn daemon_result(child: tokio::process::Child) -> Result<DaemonRun> {
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| anyhow!(format!("waiting for the daemon: {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // 3: done, some users failed (they are counted below)
    if !matches!(out.status.code(), Some(0 | 3)) {
        return Err(anyhow!(format!(
            "the daemon failed ({}): {text}",
            out.status
        )));
    }
    // "done: N users migrated, F failed, R rows in S s (...)"
    let words: Vec<&str> = text.split_whitespace().collect();
    let num = |after: &str, skip: usize| -> Option<f64> {
        let i = words.iter().position(|w| *w == after)?;
        words.get(i + skip)?.trim_end_matches(',').parse().ok()
    };
    let migrated = words.get(1).and_then(|w| w.parse().ok()).unwrap_or(0);
    let failed = num("migrated,", 1).unwrap_or(0.0) as i64;
    let secs = num("in", 1).unwrap_or(f64::NAN);
    let batch_ms = num("p50", 1).zip(num("p99", 1));
    let peak_mib = num("memory", 1);
    let held_secs = num("signals", 1);
    Ok(DaemonRun {
        migrated,
        failed,
        secs,
        batch_ms,
        peak_mib,
        held_secs,
    })
}
