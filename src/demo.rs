//! `decant demo`: the whole job on an embedded default. A throwaway
//! PostgreSQL (or the server in `DATABASE_URL`), a generated game database,
//! every user migrated by parallel workers, every migrated user verified
//! against the generator's original blob, and a summary.

use crate::cluster::{ClusterOptions, TempCluster};
use crate::compat::Decant;
use crate::error::{Error, Result};
use crate::example;
use crate::schema;
use crate::value::json_diff;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// Users per migration transaction (default 100).
    pub batch: usize,
    /// A server to use instead of a throwaway cluster; the demo creates and
    /// drops its own database there.
    pub database_url: Option<String>,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            users: 20_000,
            seed: 1,
            workers: 2,
            batch: 100,
            database_url: None,
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
    pub failed: Vec<(String, i64, Vec<i64>)>,
    /// Users whose rebuilt blob was compared with the generator's original.
    pub verified: i64,
    /// Time spent loading users.
    pub load_time: Duration,
    /// Time spent migrating.
    pub migrate_time: Duration,
}

impl fmt::Display for DemoSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.migrate_time.as_secs_f64();
        let total_rows: i64 = self.rows.iter().map(|r| r.1).sum();
        writeln!(f, "decant demo: {} generated users", self.users)?;
        writeln!(
            f,
            "  migrated   {} users in {:.1} s ({:.0} users/s, {:.0} rows/s)",
            self.migrated,
            secs,
            self.migrated as f64 / secs.max(1e-9),
            total_rows as f64 / secs.max(1e-9)
        )?;
        writeln!(
            f,
            "  verified   {} migrated users rebuild their original blob exactly",
            self.verified
        )?;
        writeln!(f, "  rows       {total_rows} in all")?;
        for (t, n) in &self.rows {
            writeln!(f, "             {n:>9}  {t}")?;
        }
        let left: i64 = self.failed.iter().map(|r| r.1).sum();
        writeln!(f, "  legacy     {left} dirty users left legacy, by reason:")?;
        for (reason, n, ids) in &self.failed {
            let ids: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
            writeln!(
                f,
                "             {n:>9}  {reason} (e.g. users {})",
                ids.join(", ")
            )?;
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
                    .map_err(|e| Error::Cluster(e.to_string()))??;
            cluster.url("postgres")
        }
    };
    let db_name = format!("decant_demo_{}", std::process::id());
    let admin = connect(&server_url).await?;
    admin
        .batch_execute(&format!("CREATE DATABASE {db_name}"))
        .await
        .map_err(|e| Error::db("creating the demo database", e))?;
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
    let spec = example::spec();
    let client = connect(url).await?;
    let started = Instant::now();
    tracing::info!(users = opts.users, "generating and loading users");
    example::load(&client, opts.users, opts.seed).await?;
    schema::init(&client, &spec).await?;
    let load_time = started.elapsed();

    let decant = Decant::connect(url, spec, opts.workers + 1)?;
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(1));
    let done = Arc::new(AtomicU64::new(0));
    let total = opts.users as u64;
    let worker = |_| {
        let (decant, next, done) = (decant.clone(), next.clone(), done.clone());
        let batch = opts.batch as u64;
        async move {
            loop {
                let from = next.fetch_add(batch, Ordering::Relaxed);
                if from > total {
                    return Ok::<_, Error>(());
                }
                let ids: Vec<i64> = (from..(from + batch).min(total + 1))
                    .map(|i| i as i64)
                    .collect();
                decant.migrate_batch(&ids).await?;
                done.fetch_add(ids.len() as u64, Ordering::Relaxed);
            }
        }
    };
    let workers = futures_util::future::try_join_all((0..opts.workers.max(1)).map(worker));
    tokio::pin!(workers);
    loop {
        tokio::select! {
            r = &mut workers => { r?; break; }
            _ = tokio::time::sleep(Duration::from_millis(200)) => progress(done.load(Ordering::Relaxed), total),
        }
    }
    progress(total, total);
    let migrate_time = started.elapsed();

    // Verify every migrated user against the generator's original blob.
    let migrated_ids: Vec<i64> = client
        .query("SELECT id FROM \"user\" WHERE migrated ORDER BY id", &[])
        .await
        .map_err(|e| Error::db("listing migrated users", e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for chunk in migrated_ids.chunks(500) {
        for (id, loaded) in decant.load_many(chunk).await? {
            let original = example::user(opts.seed, id).blob;
            if let Some(detail) = json_diff(&loaded, &original, &mut String::new()) {
                return Err(Error::Verification { user: id, detail });
            }
        }
    }

    let mut rows = Vec::new();
    for (ti, t) in decant.spec().tables.iter().enumerate() {
        let n: i64 = client
            .query_one(
                &format!(
                    "SELECT count(*) FROM {}",
                    schema::target_table(decant.spec(), ti)
                ),
                &[],
            )
            .await
            .map_err(|e| Error::db("counting rows", e))?
            .get(0);
        rows.push((t.name.clone(), n));
    }
    let failed = client
        .query(
            "SELECT reason, count(*), (array_agg(user_id ORDER BY user_id))[1:3] \
               FROM decant.user_state WHERE state = 'failed' GROUP BY reason ORDER BY 2 DESC, 1",
            &[],
        )
        .await
        .map_err(|e| Error::db("grouping failures", e))?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    Ok(DemoSummary {
        users: opts.users,
        migrated: migrated_ids.len() as i64,
        verified: migrated_ids.len() as i64,
        rows,
        failed,
        load_time,
        migrate_time,
    })
}

/// Opens a plain connection (its task runs on the current runtime).
pub(crate) async fn connect(url: &str) -> Result<tokio_postgres::Client> {
    let cfg = crate::db::parse_config(url)?;
    let (client, conn) = cfg
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| Error::db(format!("connecting to {}", redact(url)), e))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(cause = %e, "connection closed");
        }
    });
    Ok(client)
}

/// The same server as connection string `url`, another database.
pub fn with_dbname(url: &str, db: &str) -> Result<String> {
    crate::db::parse_config(url)?;
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let (base, query) = match url.split_once('?') {
            Some((b, q)) => (b, format!("?{q}")),
            None => (url, String::new()),
        };
        let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
        let host_part = match base[scheme_end..].find('/') {
            Some(i) => &base[..scheme_end + i],
            None => base,
        };
        Ok(format!("{host_part}/{db}{query}"))
    } else {
        Ok(format!("{url} dbname={db}"))
    }
}

fn redact(url: &str) -> String {
    match crate::db::parse_config(url) {
        Ok(cfg) => format!(
            "{:?} as {:?}",
            cfg.get_hosts(),
            cfg.get_user().unwrap_or("(default user)")
        ),
        Err(_) => "(unparsable connection string)".into(),
    }
}
