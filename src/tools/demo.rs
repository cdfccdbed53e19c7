//! `decant demo`: the whole job on an embedded default. A throwaway
//! PostgreSQL (or the server in `DATABASE_URL`), a generated database of
//! a bundled example (the game by default, `--example shop`),
//! every user migrated by parallel workers, every migrated user verified
//! against the generator's original blob, and a summary.

use super::cluster::{ClusterOptions, TempCluster};
use super::example;
use super::traffic::{Traffic, WriteKind};
use anyhow::{Context, Result, bail};
use decant::{
    Decant, Progress, Rate, RunOptions, RunReport, Schedule, Throttle, connect, json_diff,
    with_dbname,
};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Demo options.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Users to generate (default 20,000).
    pub users: i64,
    /// Generator seed (default 1).
    pub seed: u64,
    /// Parallel migration workers (default 2: one per core here).
    pub workers: usize,
    /// Writes per second of the simulated backend (default 200).
    pub backend_rate: u32,
    /// A server to use instead of a throwaway cluster; the demo creates and
    /// drops its own database there.
    pub database_url: Option<String>,
    /// The bundled example to migrate (default the game).
    pub example: &'static example::Example,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            users: 20_000,
            seed: 1,
            workers: 2,
            backend_rate: 200,
            database_url: None,
            example: &example::GAME,
        }
    }
}

/// What the demo did.
#[derive(Debug, Clone)]
pub struct DemoSummary {
    /// Users generated.
    pub users: i64,
    /// Users migrated and verified.
    pub migrated: i64,
    /// Rows written, per table.
    pub rows: Vec<(String, i64)>,
    /// Users left legacy: (reason, count, example ids).
    pub failed: Vec<(String, i64, Vec<decant::UserId>)>,
    /// Users whose rebuilt blob was compared with the generator's original.
    pub verified: i64,
    /// Time spent loading users.
    pub load_time: Duration,
    /// Time spent migrating.
    pub migrate_time: Duration,
    /// The daemon's own report.
    pub daemon: RunReport,
    /// Writes the simulated backend had acknowledged (all verified present).
    pub writes: u64,
    /// The backend's write latency p50 and p99 while the daemon ran.
    pub write_latency: Option<(Duration, Duration)>,
    /// Who the users are ("users of the game").
    pub population: String,
    /// The leaderboard's ranked statistic and what it counts
    /// (`kidnap_points`, "kidnap points").
    pub ranked: (&'static str, &'static str),
    /// Its top five: (user, value).
    pub leaderboard: Vec<(i64, String)>,
    /// How long the leaderboard query took.
    pub leaderboard_time: Duration,
    /// Users each fixup repaired: (fixup, users).
    pub repaired: Vec<(String, i64)>,
    /// Whether `finalize` passed (or why not).
    pub finalized: std::result::Result<(), String>,
}

impl fmt::Display for DemoSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.migrate_time.as_secs_f64().max(1e-9);
        let total_rows: i64 = self.rows.iter().map(|r| r.1).sum();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        writeln!(
            f,
            "decant demo: {} generated {}",
            self.users, self.population
        )?;
        writeln!(
            f,
            "  migrated   {} users by the daemon in {:.1} s ({:.0} users/s, {:.0} rows/s)",
            self.daemon.migrated,
            secs,
            self.daemon.migrated as f64 / secs,
            self.daemon.rows as f64 / secs
        )?;
        if let Some((p50, p99)) = self.daemon.batch_p50_p99 {
            writeln!(
                f,
                "             lock hold per batch p50 {:.0} ms, p99 {:.0} ms",
                ms(p50),
                ms(p99)
            )?;
        }
        write!(
            f,
            "  backend    {} writes acknowledged while migrating",
            self.writes
        )?;
        if let Some((p50, p99)) = self.write_latency {
            write!(f, " (latency p50 {:.1} ms, p99 {:.1} ms)", ms(p50), ms(p99))?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "  verified   {} users rebuild their original blob (as its fixups repaired it) plus every acknowledged write: 0 lost",
            self.verified
        )?;
        writeln!(f, "  rows       {total_rows} in all")?;
        for (t, n) in &self.rows {
            writeln!(f, "             {n:>9}  {t}")?;
        }
        let fixed: i64 = self.repaired.iter().map(|r| r.1).sum();
        writeln!(
            f,
            "  repaired   {fixed} dirty users by fixups as they migrated (undone on rollback):"
        )?;
        for (fixup, n) in &self.repaired {
            writeln!(f, "             {n:>9}  {fixup}")?;
        }
        let left: i64 = self.failed.iter().map(|r| r.1).sum();
        writeln!(f, "  legacy     {left} users left legacy")?;
        for (reason, n, ids) in &self.failed {
            let ids: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
            writeln!(
                f,
                "             {n:>9}  {reason} (e.g. users {})",
                ids.join(", ")
            )?;
        }
        match &self.finalized {
            Ok(()) => writeln!(
                f,
                "  finalized  every user migrated and verified: the views read the tables alone"
            )?,
            Err(why) => writeln!(f, "  finalize   refused: {why}")?,
        }
        writeln!(
            f,
            "  top {} ({} users, {}_top(5) in {:.1} ms):",
            self.ranked.1,
            self.migrated,
            self.ranked.0,
            ms(self.leaderboard_time)
        )?;
        for (i, (user, points)) in self.leaderboard.iter().enumerate() {
            writeln!(f, "             {}. user {user}: {points}", i + 1)?;
        }
        write!(f, "  load time  {:.1} s", self.load_time.as_secs_f64())
    }
}

/// Runs the demo; `progress(done, total)` is called as users are migrated.
pub async fn run(opts: &DemoOptions, progress: &(dyn Fn(u64, u64) + Sync)) -> Result<DemoSummary> {
    let cluster;
    let server_url = match &opts.database_url {
        Some(url) => url.clone(),
        None => {
            tracing::info!("starting a throwaway PostgreSQL cluster");
            cluster =
                tokio::task::spawn_blocking(|| TempCluster::start(&ClusterOptions::default()))
                    .await
                    .context("starting the throwaway cluster")??;
            cluster.url("postgres")
        }
    };
    // unique per run, not only per process: one process (a test binary,
    // a library caller) may run several demos at once
    static RUNS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let db_name = format!(
        "decant_demo_{}_{}",
        std::process::id(),
        RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let admin = connect(&server_url).await?;
    admin
        .batch_execute(&format!("CREATE DATABASE {db_name}"))
        .await
        .with_context(|| "creating the demo database")?;
    let url = with_dbname(&server_url, &db_name)?;
    let result = run_in(opts, &url, progress).await;
    let _ = admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"))
        .await;
    result
}

async fn run_in(
    opts: &DemoOptions,
    url: &str,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<DemoSummary> {
    // the example's fixups repair its dirty users as they migrate
    let ex = opts.example;
    let spec = ex.spec().with_fixups(ex.fixups());
    let client = connect(url).await?;
    let started = Instant::now();
    tracing::info!(
        users = opts.users,
        example = ex.name,
        "generating and loading users"
    );
    ex.load(&client, opts.users, opts.seed).await?;
    decant::init(&client, &spec).await?;
    let load_time = started.elapsed();

    let decant = Decant::connect(url, spec, opts.workers + 6)?;
    // The simulated backend: old clients keep writing through the
    // compatibility layer while the daemon migrates underneath.
    let backend = Traffic::start(
        &decant,
        opts.users,
        f64::from(opts.backend_rate),
        WriteKind::Increment(ex.writes_under, "demoWrites"),
        1,
    );
    let started = Instant::now();
    let run_progress = Arc::new(Progress::default());
    let run_opts = RunOptions {
        workers: opts.workers,
        rate: Some(Rate::Max),
        // full speed: the demo shows the daemon racing live writes
        throttle: Throttle {
            max_commit_slowdown: None,
            load_yield: None,
            ..Throttle::default()
        },
        // and the same batches while they come: a locking transaction's
        // fixed part is most of the 10 ms aimed at while others work, so
        // batches shrank to a user or two (212 users/s against ~1,000)
        busy_batch: RunOptions::default().target_batch,
        ..RunOptions::default()
    };
    let run = decant::run(
        &decant,
        run_opts,
        run_progress.clone(),
        std::future::pending(),
    );
    tokio::pin!(run);
    let report = loop {
        tokio::select! {
            r = &mut run => break r?,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                let p = &run_progress;
                progress(p.migrated() + p.failed(), p.total());
            }
        }
    };
    let migrate_time = started.elapsed();
    let writes = backend.stop().await?;

    // Verify every user (migrated or not) against the generator's original
    // blob plus the backend's acknowledged writes: nothing lost.
    let ids: Vec<i64> = (1..=opts.users).collect();
    let migrated_ids: std::collections::HashSet<i64> = client
        .query(
            &format!("SELECT id FROM \"{}\" WHERE migrated", ex.table),
            &[],
        )
        .await
        .with_context(|| "listing migrated users")?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut lost = 0;
    let mut verified = 0;
    for chunk in ids.chunks(500) {
        for (id, loaded) in decant.load_many(chunk).await? {
            let id = id.as_int().context("the example's ids are integers")?;
            // the original, repaired by the fixups when it migrated
            let mut want = (ex.user)(opts.seed, id).blob;
            if migrated_ids.contains(&id) {
                decant::Fixup::apply_all(&mut want, decant.spec().fixups());
            }
            if let Some(n) = writes.acked.get(&id) {
                want[ex.writes_under]["demoWrites"] = serde_json::json!(n);
            }
            if let Some(detail) = json_diff(&loaded, &want, &mut String::new()) {
                lost += 1;
                tracing::error!(user = %id, %detail, "user differs from its original plus its writes");
            }
            verified += 1;
        }
    }
    if lost > 0 {
        bail!(
            "verification failed: {lost} users differ from their original blob plus acknowledged writes"
        );
    }

    let migrated: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM \"{}\" WHERE migrated", ex.table),
            &[],
        )
        .await
        .with_context(|| "counting migrated users")?
        .get(0);
    let mut rows = Vec::new();
    for (ti, t) in decant.spec().tables().iter().enumerate() {
        let n: i64 = client
            .query_one(
                &format!("SELECT count(*) FROM {}", decant.spec().qualified_table(ti)),
                &[],
            )
            .await
            .with_context(|| "counting rows")?
            .get(0);
        rows.push((t.name.clone(), n));
    }
    let failed = decant::status(&decant, &Schedule::default())
        .await?
        .failures
        .into_iter()
        .map(|f| (f.reason, f.users, f.examples.into_iter().take(3).collect()))
        .collect();
    let repaired = client
        .query(
            "SELECT a->>'fixup', count(*) FROM decant.user_state, jsonb_array_elements(fixups) AS a \
              GROUP BY 1 ORDER BY 1",
            &[],
        )
        .await
        .with_context(|| "counting the users fixups repaired")?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    // The end of the lifecycle: every user migrated and verified, so the
    // gate passes and the views read the tables alone.
    let finalized = match decant::finalize(url, &decant, false).await {
        Ok(_) => Ok(()),
        Err(e) => Err(e.to_string()),
    };
    // the ranked top-N: from the tables alone once finalized (merged with
    // an index scan of the legacy blobs otherwise)
    let board_started = Instant::now();
    let leaderboard = client
        .query(
            &format!("SELECT user_id, value::text FROM {}_top(5)", ex.ranked.0),
            &[],
        )
        .await
        .with_context(|| "reading the leaderboard")?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let leaderboard_time = board_started.elapsed();
    Ok(DemoSummary {
        users: opts.users,
        migrated,
        verified,
        rows,
        failed,
        load_time,
        migrate_time,
        daemon: report,
        writes: writes.writes,
        write_latency: writes.latency,
        population: format!("users of the {} example", ex.name),
        ranked: ex.ranked,
        leaderboard,
        leaderboard_time,
        repaired,
        finalized,
    })
}
