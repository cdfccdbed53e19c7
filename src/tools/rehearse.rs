//! `decant rehearse --dump FILE`: the whole migration on a copy of
//! production, with a projection. The dump is restored into a scratch
//! database (a throwaway cluster from the local server binaries, fsync on,
//! or a new database on a server the user names), censused, initialized
//! and migrated at full speed with verification; the report gives what a
//! team needs to choose its rate and windows. Nothing is written anywhere
//! but the scratch database, dropped at the end unless `--keep`.

use super::cluster::{ClusterOptions, TempCluster, find_bindir, tool};
use anyhow::{Context, Result, anyhow, bail};
use decant::{Decant, Rate, Schedule, Spec, connect, with_dbname};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Rehearsal options.
#[derive(Debug, Clone)]
pub struct RehearseOptions {
    /// The `pg_dump` file (custom, tar or plain SQL) or directory.
    pub dump: PathBuf,
    /// The mapping spec.
    pub spec: Spec,
    /// A server to create the scratch database on, instead of a throwaway
    /// cluster.
    pub server: Option<String>,
    /// Keep the scratch database (needs `server`).
    pub keep: bool,
    /// The scratch database's name on `server` (default
    /// `decant_rehearsal_<pid>`).
    pub name: Option<String>,
    /// Production's rate, for the projection (None: full speed only).
    pub rate: Option<Rate>,
    /// Production's windows, for the projection.
    pub schedule: Schedule,
    /// Production's user count (default: the dump's).
    pub users: Option<u64>,
    /// Workers of the rehearsal run.
    pub workers: usize,
    /// How many of the largest blobs to time one by one.
    pub largest: usize,
}

/// What the rehearsal did and projects.
#[derive(Debug, Clone, Serialize)]
pub struct Rehearsal {
    /// The dump.
    pub dump: String,
    /// Its format.
    pub format: &'static str,
    /// Where it was restored (the scratch database).
    pub scratch: String,
    /// Restore time, seconds.
    pub restore_seconds: f64,
    /// Users in the dump.
    pub users: u64,
    /// The census before migrating (what `decant check` reports).
    pub census: decant::CensusReport,
    /// Users migrated and verified.
    pub migrated: u64,
    /// Users that failed (they would stay legacy).
    pub failed: u64,
    /// Users the dump holds migrated already (a dump taken mid-migration):
    /// not rehearsed.
    pub already_migrated: u64,
    /// Users the dump holds rolled back and held out of the migration:
    /// left as they are, neither migrated nor counted as failed.
    pub held: u64,
    /// Failures by reason, with example ids.
    pub failures: Vec<decant::FailureGroup>,
    /// Rows per target table after the run.
    pub rows: BTreeMap<String, u64>,
    /// Wall time of the full-speed run, seconds.
    pub run_seconds: f64,
    /// Users per second over the run.
    pub users_per_second: f64,
    /// Users per second in each 5-second interval of the run.
    pub throughput: Vec<f64>,
    /// Batch transaction time (each user's lock hold), ms: p50, p90, p99, max.
    pub batch_ms: [f64; 4],
    /// Time per user within its batch (batch time / users in it), ms,
    /// weighted by users: p50, p90, p99, max.
    pub per_user_ms: [f64; 4],
    /// The largest blobs, each migrated alone before the run and timed.
    pub largest: Vec<Timed>,
    /// The projection for production.
    pub projection: Projection,
    /// Whether the scratch database was kept.
    pub kept: bool,
}

/// One user migrated alone and timed.
#[derive(Debug, Clone, Serialize)]
pub struct Timed {
    /// The user id.
    pub id: decant::UserId,
    /// Blob size as stored (bytes, compressed).
    pub bytes: i64,
    /// Its own transaction, ms.
    pub ms: f64,
    /// Rows written (0 if it failed).
    pub rows: u64,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

/// How long production will take.
#[derive(Debug, Clone, Serialize)]
pub struct Projection {
    /// Production's users left to migrate.
    pub users: u64,
    /// At full speed on a machine like this one, seconds (None: no speed
    /// was measured, see `unknown`).
    pub full_speed_seconds: Option<f64>,
    /// The rate assumed (users/s): production's `--rate`, capped by the
    /// speed measured here; None without `--rate`.
    pub rate: Option<f64>,
    /// Migration time at that rate, seconds of open windows.
    pub rate_seconds: Option<f64>,
    /// When it would finish if started now, inside the windows (RFC 3339).
    pub finish: Option<String>,
    /// The windows, as given.
    pub windows: String,
    /// Why there is no projection, when there is none: users are left to
    /// migrate but the rehearsal migrated none of them, so no speed was
    /// measured.
    pub unknown: Option<String>,
}

/// The kinds of dump pg_dump writes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Format {
    Custom,
    Tar,
    Directory,
    Plain,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Custom => "custom (pg_dump -Fc)",
            Format::Tar => "tar (pg_dump -Ft)",
            Format::Directory => "directory (pg_dump -Fd)",
            Format::Plain => "plain SQL (pg_dump -Fp)",
        }
    }
}

/// Tells the dump's format from its first bytes, or refuses it.
fn format_of(dump: &Path) -> Result<Format> {
    let meta =
        std::fs::metadata(dump).with_context(|| format!("reading the dump {}", dump.display()))?;
    if meta.is_dir() {
        if dump.join("toc.dat").is_file() {
            return Ok(Format::Directory);
        }
        crate::cli::exit::usage!(
            "{}: a directory without toc.dat is not a directory-format dump (pg_dump -Fd)",
            dump.display()
        );
    }
    let mut head = vec![0u8; 4096];
    let n = std::fs::File::open(dump)
        .and_then(|mut f| f.read(&mut head))
        .with_context(|| format!("reading the dump {}", dump.display()))?;
    head.truncate(n);
    if head.starts_with(b"PGDMP") {
        return Ok(Format::Custom);
    }
    if head.len() > 262 && &head[257..262] == b"ustar" {
        return Ok(Format::Tar);
    }
    if String::from_utf8_lossy(&head).contains("PostgreSQL database dump") {
        return Ok(Format::Plain);
    }
    crate::cli::exit::usage!(
        "{}: not a pg_dump file: expected a custom (-Fc), directory (-Fd), tar (-Ft) or plain SQL (-Fp) dump (a plain SQL dump is known by the header line pg_dump writes, `-- PostgreSQL database dump`)",
        dump.display()
    )
}

/// The tables a dump creates, as (schema, table), read from its
/// `CREATE TABLE` statements: a plain dump's own, or those `pg_restore`
/// writes for an archive's definitions (its `--list` names them by words
/// a space may be part of: `TABLE Social Net accounts owner`).
fn tables_in(dump: &Path, format: Format, bindir: &Path) -> Result<Vec<(String, String)>> {
    if format == Format::Plain {
        let file = std::fs::File::open(dump)?;
        let mut tables = Vec::new();
        for line in std::io::BufReader::new(file).lines() {
            let line = line.with_context(|| format!("reading {}", dump.display()))?;
            tables.extend(created_table(&line));
        }
        return Ok(tables);
    }
    let out = Command::new(tool(bindir, "pg_restore"))
        .args(["--section=pre-data", "--file=-"])
        .arg(dump)
        .output()
        .context("running pg_restore --section=pre-data")?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("unsupported version") {
            bail!(
                "{}: written by a newer pg_dump than this pg_restore ({}) reads: {}\nhint: set \
                 PG_BINDIR to the bin directory of a PostgreSQL at least as new as the pg_dump \
                 that wrote it (pg_restore and initdb there), or dump in plain format \
                 (`pg_dump -Fp`)",
                dump.display(),
                tool(bindir, "pg_restore").display(),
                err.trim()
            );
        }
        bail!(
            "{}: pg_restore cannot read it (truncated or damaged?): {}",
            dump.display(),
            err.trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(created_table)
        .collect())
}

/// The table a `CREATE [UNLOGGED] TABLE` line creates: pg_dump writes
/// `schema.table`, quoting what needs it; a hand-written file may leave
/// the schema to the search path (public).
fn created_table(line: &str) -> Option<(String, String)> {
    let rest = line
        .strip_prefix("CREATE TABLE ")
        .or_else(|| line.strip_prefix("CREATE UNLOGGED TABLE "))?;
    let rest = rest.trim_start_matches("IF NOT EXISTS ");
    let (first, rest) = identifier(rest)?;
    Some(match rest.strip_prefix('.').and_then(identifier) {
        Some((table, _)) => (first, table),
        None => ("public".into(), first),
    })
}

/// An SQL identifier at the start of `s`: a quoted one (`""` a quote in
/// it) as written, an unquoted one folded to lower case as PostgreSQL
/// folds it; and what follows it.
fn identifier(s: &str) -> Option<(String, &str)> {
    if let Some(mut rest) = s.strip_prefix('"') {
        let mut name = String::new();
        loop {
            let at = rest.find('"')?;
            name.push_str(&rest[..at]);
            rest = &rest[at + 1..];
            match rest.strip_prefix('"') {
                Some(r) => {
                    name.push('"');
                    rest = r;
                }
                None => return (!name.is_empty()).then_some((name, rest)),
            }
        }
    }
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
        .unwrap_or(s.len());
    (end > 0).then(|| (s[..end].to_lowercase(), &s[end..]))
}

/// Where the dump is restored: a database, dropped on drop unless kept.
struct Scratch {
    url: String,
    shown: String,
    server: Option<(String, String)>,
    cluster: Option<TempCluster>,
    keep: bool,
}

impl Scratch {
    async fn create(opts: &RehearseOptions) -> Result<Scratch> {
        match &opts.server {
            Some(server) => {
                let name = opts
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("decant_rehearsal_{}", std::process::id()));
                if name.is_empty()
                    || !name
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                {
                    crate::cli::exit::usage!(
                        "--name {name:?}: use lowercase letters, digits and _"
                    );
                }
                let admin = connect(server).await?;
                admin
                    .batch_execute(&format!("CREATE DATABASE {name}"))
                    .await
                    .with_context(|| format!("creating the scratch database {name}"))?;
                Ok(Scratch {
                    url: with_dbname(server, &name)?,
                    shown: format!("database {name} on the server given"),
                    server: Some((server.clone(), name)),
                    cluster: None,
                    keep: opts.keep,
                })
            }
            None => {
                let cluster = tokio::task::spawn_blocking(|| {
                    TempCluster::start(&ClusterOptions {
                        fsync: true,
                        max_connections: 100,
                        shared_buffers: "1GB".into(),
                        tls: None,
                    })
                })
                .await??;
                let admin = connect(&cluster.url("postgres")).await?;
                admin
                    .batch_execute("CREATE DATABASE rehearsal")
                    .await
                    .context("creating the scratch database")?;
                Ok(Scratch {
                    url: cluster.url("rehearsal"),
                    shown: "a throwaway cluster (fsync on), removed at the end".into(),
                    server: None,
                    cluster: Some(cluster),
                    keep: false,
                })
            }
        }
    }

    /// What the scratch is, for a message: the database on the server
    /// given, or the throwaway cluster.
    fn shown_target(&self) -> String {
        match &self.server {
            Some((_, name)) => format!("the scratch database {name}"),
            None => "the throwaway cluster".into(),
        }
    }

    /// Drops the scratch database (or the cluster) unless kept.
    async fn finish(mut self) -> Result<()> {
        if let Some((server, name)) = self.server.take()
            && !self.keep
        {
            let admin = connect(&server).await?;
            admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await
                .with_context(|| format!("dropping the scratch database {name}"))?;
        }
        if let Some(c) = self.cluster.take() {
            tokio::task::spawn_blocking(move || c.stop()).await?;
        }
        Ok(())
    }
}

/// Resolves with the signal's name on SIGINT or SIGTERM.
async fn interrupted() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        // no handler: the signals keep their default action
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

/// Runs the rehearsal; `show` receives progress lines for people.
pub async fn run(opts: &RehearseOptions, show: &(dyn Fn(&str) + Sync)) -> Result<Rehearsal> {
    if opts.keep && opts.server.is_none() {
        crate::cli::exit::usage!("--keep needs --server: a throwaway cluster ends with decant");
    }
    let format = format_of(&opts.dump)?;
    let bindir = find_bindir()?;
    let spec = &opts.spec;
    let source = format!("{}.{}", spec.source().schema, spec.source().table);
    let tables = tables_in(&opts.dump, format, &bindir)?;
    if !tables
        .iter()
        .any(|(s, t)| *s == spec.source().schema && *t == spec.source().table)
    {
        let listed: Vec<String> = tables
            .iter()
            .take(20)
            .map(|(s, t)| format!("{s}.{t}"))
            .collect();
        bail!(
            "{}: the dump has no table {source} (the spec's source); tables in it: {}",
            opts.dump.display(),
            if listed.is_empty() {
                "none".to_string()
            } else {
                listed.join(", ")
            }
        );
    }
    show(&format!(
        "restoring {} ({})",
        opts.dump.display(),
        format.name()
    ));
    let scratch = Scratch::create(opts).await?;
    // SIGINT or SIGTERM ends the rehearsal where it is and removes the
    // scratch database as a failure does (the restore's session, if any,
    // is ended by the drop; before, the signal killed decant and left the
    // database on a server the team named)
    let out = tokio::select! {
        out = rehearse(opts, format, &bindir, &scratch, show) => out,
        signal = interrupted() => Err(anyhow!(
            "the rehearsal was interrupted ({signal}): {} is removed, --keep or not",
            scratch.shown_target()
        )),
    };
    let kept = scratch.keep && out.is_ok();
    if out.is_err() {
        // a failed rehearsal leaves nothing behind, --keep or not
        let mut scratch = scratch;
        scratch.keep = false;
        scratch.finish().await?;
    } else {
        scratch.finish().await?;
    }
    let mut r = out?;
    r.kept = kept;
    Ok(r)
}

async fn rehearse(
    opts: &RehearseOptions,
    format: Format,
    bindir: &Path,
    scratch: &Scratch,
    show: &(dyn Fn(&str) + Sync),
) -> Result<Rehearsal> {
    let spec = &opts.spec;
    let started = Instant::now();
    restore(&opts.dump, format, bindir, &scratch.url, show)
        .await
        .with_context(|| {
            format!(
                "restoring {} failed; the scratch database is removed",
                opts.dump.display()
            )
        })?;
    let restore_seconds = started.elapsed().as_secs_f64();
    let client = connect(&scratch.url).await?;
    client
        .batch_execute("ANALYZE")
        .await
        .context("analyzing the restored tables")?;
    let initialized: bool = client
        .query_one("SELECT to_regclass('decant.control') IS NOT NULL", &[])
        .await
        .context("looking for decant.control in the dump")?
        .get(0);
    let finalized = initialized
        && client
            .query_one("SELECT bool_or(c.finalized) FROM decant.control AS c", &[])
            .await
            .context("reading the dump's migration phase")?
            .get::<_, Option<bool>>(0)
            .unwrap_or(false);
    if finalized {
        bail!(
            "{}: the dump was taken after `decant finalize`: every user in it is migrated and \
             nothing is left to rehearse; rehearse a dump taken before the migration (or during it)",
            opts.dump.display()
        );
    }
    decant::init(&client, spec).await.map_err(|e| {
        let e = anyhow::Error::from(e);
        if initialized || !e.to_string().contains("decant was never initialized") {
            return e;
        }
        // users flagged migrated, decant's schema not in the dump: the
        // source table alone (`pg_dump -t`), its migrated users' values
        // in target tables the dump left out
        e.context(format!(
            "{}: the dump holds users migrated already but not decant's schema (a dump of the \
             source table alone, taken mid-migration): their values are in the target tables \
             it left out. Rehearse a dump of the whole database (`pg_dump -Fc`), or of the \
             source's schema and decant's (`pg_dump -Fc -n <schema> -n decant`)",
            opts.dump.display()
        ))
    })?;
    show("census of the restored users");
    let check = decant::check(
        &scratch.url,
        spec.clone(),
        &decant::CheckOptions::default(),
        &decant::CheckProgress::default(),
    )
    .await?;
    let users = check.table_users;
    // a dump taken mid-migration: its migrated users are not rehearsed,
    // its held users stay held (as the migration would leave them)
    let before = decant::status(
        &Decant::connect(&scratch.url, spec.clone(), 1)?,
        &Schedule::default(),
    )
    .await?;

    // the largest blobs, each alone: the slowest users are among them
    let src = format!(
        "\"{}\".\"{}\"",
        spec.source().schema.replace('"', "\"\""),
        spec.source().table.replace('"', "\"\"")
    );
    let (id, blob, flag) = (
        format!("\"{}\"", spec.source().id.replace('"', "\"\"")),
        format!("\"{}\"", spec.source().blob.replace('"', "\"\"")),
        format!("\"{}\"", spec.source().flag.replace('"', "\"\"")),
    );
    let decant = Decant::connect(&scratch.url, spec.clone(), opts.workers + 2)?;
    let biggest = client
        .query(
            &format!(
                "SELECT {id}::{}, pg_column_size({blob})::bigint FROM {src} AS s \
                 WHERE {blob} IS NOT NULL AND s.{flag} IS NOT TRUE \
                   AND NOT EXISTS (SELECT 1 FROM decant.user_state AS st \
                                    WHERE st.user_id = s.{id} AND st.state = 'held') \
                 ORDER BY pg_column_size({blob}) DESC, {id} LIMIT $1",
                spec.source().id_type.sql()
            ),
            &[&(opts.largest as i64)],
        )
        .await
        .context("finding the largest blobs")?;
    let mut largest = Vec::new();
    for r in &biggest {
        let (uid, bytes): (decant::UserId, i64) = (r.get(0), r.get(1));
        let t = Instant::now();
        let report = decant.migrate_user(&uid).await?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        largest.push(Timed {
            id: uid,
            bytes,
            ms,
            rows: report.migrated.first().map_or(0, |m| m.rows as u64),
            error: report.failed.first().map(|f| f.error.to_string()),
        });
    }

    // the whole migration at full speed
    show("migrating at full speed, with verification");
    let progress = Arc::new(decant::Progress::default());
    let series = Arc::new(std::sync::Mutex::new(Vec::<f64>::new()));
    let sampler = {
        let (progress, series) = (progress.clone(), series.clone());
        tokio::spawn(async move {
            let mut last = 0;
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            tick.tick().await;
            loop {
                tick.tick().await;
                let now = progress.migrated() + progress.failed();
                series
                    .lock()
                    .expect("not poisoned")
                    .push((now - last) as f64 / 5.0);
                last = now;
            }
        })
    };
    // full speed: nothing else uses the scratch database, so nothing to
    // hold back for (the throttle would count this process's own idle
    // session as others working)
    let run_opts = decant::RunOptions {
        workers: opts.workers,
        rate: Some(Rate::Max),
        throttle: decant::Throttle {
            on_lock_waits: false,
            max_replica_lag: Duration::from_secs(3600),
            max_active: None,
            query: None,
            max_commit_slowdown: None,
            whole_server: false,
            load_yield: None,
        },
        ..decant::RunOptions::default()
    };
    let report = decant::run(&decant, run_opts, progress.clone(), std::future::pending()).await?;
    sampler.abort();
    let throughput = series.lock().expect("not poisoned").clone();
    let run_seconds = report.elapsed.as_secs_f64();
    let status = decant::status(&decant, &Schedule::default()).await?;
    let mut rows = BTreeMap::new();
    for t in spec.tables() {
        let n: i64 = client
            .query_one(
                &format!(
                    "SELECT count(*) FROM {}",
                    spec.qualified_table(spec.table(&t.name).expect("a table of the spec"))
                ),
                &[],
            )
            .await
            .with_context(|| format!("counting the rows of {}", t.name))?
            .get(0);
        rows.insert(t.name.clone(), n as u64);
    }
    let batches = progress.batches();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let batch_ms = quantiles(batches.iter().map(|(d, _)| (ms(*d), 1)).collect());
    let per_user_ms = quantiles(
        batches
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(d, n)| (ms(*d) / f64::from(*n), u64::from(*n)))
            .collect(),
    );
    // the largest users were migrated before the run: count them in
    let alone_ok = largest.iter().filter(|t| t.error.is_none()).count() as u64;
    let migrated = report.migrated + alone_ok;
    // users visited, failed ones too: production visits those as well
    // (the projection's users to do count them), and a dump with many
    // failing users read a rate from the migrated ones alone, ten times
    // too slow in an outside trial
    let users_per_second = (report.migrated + report.failed) as f64 / run_seconds.max(1e-9);
    // production has the users this one had to do, not those done before
    let to_do = users.saturating_sub(before.migrated.max(0) as u64 + before.held.max(0) as u64);
    let projection = project(opts, users, to_do, users_per_second);
    Ok(Rehearsal {
        dump: opts.dump.display().to_string(),
        format: format.name(),
        scratch: scratch.shown.clone(),
        restore_seconds,
        users,
        census: check.census,
        migrated,
        failed: (status.legacy - status.held).max(0) as u64,
        already_migrated: before.migrated.max(0) as u64,
        held: status.held.max(0) as u64,
        failures: status.failures,
        rows,
        run_seconds,
        users_per_second,
        throughput,
        batch_ms,
        per_user_ms,
        largest,
        projection,
        kept: false,
    })
}

/// Production's users left to migrate: `production` (all its users, when
/// given) in the share `to_do` is of the dump's `dump_users`, else `to_do`.
fn to_do_of(production: Option<u64>, dump_users: u64, to_do: u64) -> u64 {
    match production {
        Some(n) if dump_users > 0 => (n as f64 * to_do as f64 / dump_users as f64).round() as u64,
        Some(n) => n,
        None => to_do,
    }
}

/// Weighted quantiles p50, p90, p99 and the max of `(value, weight)`.
fn quantiles(mut v: Vec<(f64, u64)>) -> [f64; 4] {
    if v.is_empty() {
        return [0.0; 4];
    }
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total: u64 = v.iter().map(|x| x.1).sum();
    let at = |q: f64| {
        let rank = (total as f64 * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (x, w) in &v {
            seen += w;
            if seen >= rank {
                return *x;
            }
        }
        v[v.len() - 1].0
    };
    [at(0.5), at(0.9), at(0.99), v[v.len() - 1].0]
}

/// Production's duration from the speed measured here, for the `to_do`
/// users of the dump's `dump_users` left to migrate; `--users` (all of
/// production's) in the same share: a dump taken mid-migration stands for a
/// production as far along.
fn project(opts: &RehearseOptions, dump_users: u64, to_do: u64, speed: f64) -> Projection {
    let users = to_do_of(opts.users, dump_users, to_do);
    let windows = if opts.schedule.windows.is_empty() {
        "always open".into()
    } else {
        format!(
            "{} ({})",
            opts.schedule
                .windows
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            opts.schedule.tz.iana_name().unwrap_or("UTC")
        )
    };
    if users > 0 && speed <= 0.0 {
        // every user of the run failed: a speed of 0 would project forever
        return Projection {
            users,
            full_speed_seconds: None,
            rate: None,
            rate_seconds: None,
            finish: None,
            windows,
            unknown: Some(
                "the rehearsal migrated none of the users left, so it measured no speed: \
                 repair what made them fail (the failures above; a fixup or the spec) and \
                 rehearse again"
                    .into(),
            ),
        };
    }
    let full = users as f64 / speed.max(1e-9);
    let rate = opts.rate.map(|r| match r.per_second() {
        Some(per_s) => per_s.min(speed),
        None => speed,
    });
    let rate_seconds = rate.map(|r| users as f64 / r.max(1e-9));
    let work = rate_seconds.unwrap_or(full);
    let finish = opts.schedule.finish_text(jiff::Timestamp::now(), work);
    Projection {
        users,
        full_speed_seconds: Some(full),
        rate,
        rate_seconds,
        finish,
        windows,
        unknown: None,
    }
}

/// Restores the dump into `url`, showing its progress.
async fn restore(
    dump: &Path,
    format: Format,
    bindir: &Path,
    url: &str,
    show: &(dyn Fn(&str) + Sync),
) -> Result<()> {
    let dump = dump.to_path_buf();
    let url = url.to_string();
    let bindir = bindir.to_path_buf();
    // a plain dump sets the session's settings of the pg_dump that wrote
    // it, which an older server lacks (pg_dump 17 writes `SET
    // transaction_timeout = 0;`, unknown before PostgreSQL 17)
    let settings = if format == Format::Plain {
        let client = connect(&url).await?;
        let rows = client
            .query("SELECT name FROM pg_settings", &[])
            .await
            .context("reading the scratch server's settings")?;
        rows.iter().map(|r| r.get::<_, String>(0)).collect()
    } else {
        std::collections::HashSet::new()
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let work = tokio::task::spawn_blocking(move || -> Result<()> {
        if format == Format::Plain {
            restore_plain(&dump, &bindir, &url, &settings, &tx)
        } else {
            restore_archive(&dump, &bindir, &url, &tx)
        }
    });
    let mut last = Instant::now();
    while let Some(line) = rx.recv().await {
        if last.elapsed() > Duration::from_millis(200) {
            show(&line);
            last = Instant::now();
        }
    }
    work.await?
}

fn restore_archive(
    dump: &Path,
    bindir: &Path,
    url: &str,
    tx: &tokio::sync::mpsc::UnboundedSender<String>,
) -> Result<()> {
    let (url, password) = super::cluster::child_target(url)?;
    let list = orphan_trigger_list(dump, bindir)?;
    let mut restore = Command::new(tool(bindir, "pg_restore"));
    if let Some(list) = &list {
        restore.arg("-L").arg(list.path());
    }
    let mut child = super::cluster::with_password(&mut restore, &password)
        .args([
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            "--verbose",
            "-d",
        ])
        .arg(&url)
        .arg(dump)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting pg_restore")?;
    let stderr = child.stderr.take().expect("piped");
    let mut tail = std::collections::VecDeque::new();
    let mut errors = Vec::new();
    for line in std::io::BufReader::new(stderr)
        .lines()
        .map_while(|l| l.ok())
    {
        let _ = tx.send(format!("restore: {line}"));
        if errors.len() < 5 && (line.contains("error:") || line.contains("ERROR:")) {
            errors.push(line.clone());
        }
        tail.push_back(line);
        if tail.len() > 8 {
            tail.pop_front();
        }
    }
    let status = child.wait().context("waiting for pg_restore")?;
    if !status.success() {
        // the cause first: the tail may be the failed command's text alone
        let tail: Vec<String> = tail.into_iter().filter(|l| !errors.contains(l)).collect();
        let mut text = errors.join("\n");
        if !tail.is_empty() {
            text.push_str(&format!("\n(its last lines:)\n{}", tail.join("\n")));
        }
        return Err(anyhow!(
            "pg_restore failed ({status}):\n{}{}",
            text.trim(),
            restore_hint(&errors.join("\n"))
        ));
    }
    Ok(())
}

/// For an archive holding decant's trigger on the source but not the
/// `decant` schema (a `pg_dump -t` of the source taken after `init`; see
/// [`decants_trigger`]), its table of contents without the trigger, for
/// `pg_restore -L`; `None` for any other archive.
fn orphan_trigger_list(dump: &Path, bindir: &Path) -> Result<Option<TempList>> {
    let out = Command::new(tool(bindir, "pg_restore"))
        .arg("-l")
        .arg(dump)
        .stdin(Stdio::null())
        .output()
        .context("running pg_restore -l")?;
    if !out.status.success() {
        // the restore itself says why
        return Ok(None);
    }
    let toc = String::from_utf8_lossy(&out.stdout);
    // `<id>; <oid> <oid> SCHEMA - decant <owner>`, `<id>; <oid> <oid>
    // TRIGGER <schema> <table> decant_forget_deleted_users <owner>`
    let schema = toc.lines().any(|l| l.contains(" SCHEMA - decant "));
    let orphan = |l: &str| {
        !l.starts_with(';') && l.contains(" TRIGGER ") && l.contains(" decant_forget_deleted_user")
    };
    if schema || !toc.lines().any(orphan) {
        return Ok(None);
    }
    let kept: String = toc
        .lines()
        .map(|l| {
            if orphan(l) {
                format!(";{l}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let path = std::env::temp_dir().join(format!("decant-rehearse-{}.list", std::process::id()));
    std::fs::write(&path, kept).with_context(|| format!("writing {}", path.display()))?;
    Ok(Some(TempList(path)))
}

/// A file removed when dropped.
struct TempList(std::path::PathBuf);

impl TempList {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempList {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// What to do about a restore that failed for want of an object a
/// one-table dump (`pg_dump -t`) leaves out.
fn restore_hint(errors: &str) -> String {
    if errors.contains("schema") && errors.contains("does not exist") {
        "\nhint: a `pg_dump -t` dump holds no CREATE SCHEMA for the table's schema: dump the \
         schema (`pg_dump -Fc -n <schema>`) or the whole database"
            .into()
    } else if errors.contains("function") && errors.contains("does not exist") {
        "\nhint: the table needs a function the dump does not hold (a trigger's or a default's): \
         dump its schema with `-n <schema>`, or the whole database"
            .into()
    } else {
        String::new()
    }
}

/// Feeds a plain SQL dump to psql, leaving out ownership and privilege
/// statements (the roles need not exist here) and `SET`s of settings the
/// server does not have (`settings`: the names it has), and shows the
/// bytes done.
fn restore_plain(
    dump: &Path,
    bindir: &Path,
    url: &str,
    settings: &std::collections::HashSet<String>,
    tx: &tokio::sync::mpsc::UnboundedSender<String>,
) -> Result<()> {
    let total = std::fs::metadata(dump)?.len().max(1);
    // psql stops at the first error and closes its input: the write must
    // fail with EPIPE (reported with psql's message), not kill decant
    // SAFETY: setting a signal's action has no precondition
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    let (url, password) = super::cluster::child_target(url)?;
    let mut child =
        super::cluster::with_password(&mut Command::new(tool(bindir, "psql")), &password)
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(&url)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting psql")?;
    let mut stdin = child.stdin.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let errors = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::BufReader::new(stderr).read_to_string(&mut s);
        s
    });
    let file = std::fs::File::open(dump)?;
    let mut reader = std::io::BufReader::new(file);
    let mut line = Vec::new();
    let (mut done, mut in_copy) = (0u64, false);
    let (mut lines, mut lexer) = (0u64, SqlLexer::default());
    let mut decant_schema = false;
    let mut fed = Ok(());
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        done += n as u64;
        lines += 1;
        let skip = if in_copy {
            if line.starts_with(b"\\.") {
                in_copy = false;
            }
            false
        } else {
            let statement_start = lexer.state == Lex::Code;
            // psql would run a backslash command of the dump (`\!` runs a
            // shell command here): only pg_dump's own `\restrict` pair passes
            let restrict = line.starts_with(b"\\restrict ") || line.starts_with(b"\\unrestrict ");
            if !restrict && lexer.meta_command(&line) {
                drop(stdin);
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "the dump's line {lines} holds a psql backslash command outside any string \
                     ({}): psql would run it on this machine (`\\!` runs a shell command). \
                     pg_dump writes none; rehearse a dump made by pg_dump, or take the command out",
                    String::from_utf8_lossy(&line)
                        .trim()
                        .chars()
                        .take(80)
                        .collect::<String>()
                );
            }
            if line.starts_with(b"COPY ") && line.ends_with(b"FROM stdin;\n") {
                in_copy = true;
            }
            if statement_start && line.starts_with(b"CREATE SCHEMA decant;") {
                decant_schema = true;
            }
            let orphan = statement_start && !decant_schema && decants_trigger(&line);
            let unknown =
                statement_start && set_setting(&line).is_some_and(|name| !settings.contains(&name));
            if unknown {
                tracing::info!(
                    "left out the dump's line {lines} `{}`: this PostgreSQL has no such setting \
                     (the dump was written by a newer pg_dump)",
                    String::from_utf8_lossy(&line).trim()
                );
            }
            unknown
                || orphan
                || (line.starts_with(b"ALTER ") && line.windows(10).any(|w| w == b" OWNER TO "))
                || line.starts_with(b"GRANT ")
                || line.starts_with(b"REVOKE ")
        };
        if !skip && let Err(e) = stdin.write_all(&line) {
            // psql stopped (an error): its message says why
            fed = Err(e);
            break;
        }
        if done % (1 << 20) < n as u64 {
            let _ = tx.send(format!(
                "restore: {:.0}% of {:.1} MiB",
                100.0 * done as f64 / total as f64,
                total as f64 / 1048576.0
            ));
        }
    }
    drop(stdin);
    let status = child.wait().context("waiting for psql")?;
    let errors = errors.join().unwrap_or_default();
    if !status.success() {
        return Err(anyhow!(
            "psql failed ({status}):\n{}{}",
            errors.trim(),
            restore_hint(&errors)
        ));
    }
    fed.context("feeding the dump to psql")?;
    Ok(())
}

/// Whether a dump's line creates decant's trigger on the source
/// (`decant_forget_deleted_users`, or `_user` on a partitioned one). A
/// dump of the source table alone (`pg_dump -t`), taken after `init`,
/// holds it but not the `decant` schema its function lives in, so its
/// restore would fail; the rehearsal's own `init` makes it again.
fn decants_trigger(line: &[u8]) -> bool {
    let line = String::from_utf8_lossy(line);
    line.starts_with("CREATE TRIGGER decant_forget_deleted_user")
        && line.contains("EXECUTE FUNCTION decant.forget_deleted_user")
}

/// The setting a line of pg_dump's session preamble sets (`SET
/// transaction_timeout = 0;` gives `transaction_timeout`), lowercased as
/// `pg_settings` names it; `None` for any other line.
fn set_setting(line: &[u8]) -> Option<String> {
    let line = std::str::from_utf8(line).ok()?.trim_end();
    let rest = line.strip_prefix("SET ")?;
    let (name, value) = rest.split_once(" = ")?;
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    (plain && value.ends_with(';')).then(|| name.to_ascii_lowercase())
}

/// Where a SQL script is, line after line, as psql reads it: inside a
/// string, a quoted name, a dollar-quoted body or a comment a backslash is
/// text; anywhere else it starts a psql command.
#[derive(Debug, Default)]
struct SqlLexer {
    state: Lex,
}

#[derive(Debug, Default, PartialEq)]
enum Lex {
    #[default]
    Code,
    /// In `'...'`; `true`: an `E'...'` string (backslash escapes).
    Quote(bool),
    Ident,
    Dollar(Vec<u8>),
    /// Nested `/* */` depth.
    Comment(u32),
}

impl SqlLexer {
    /// Reads one line; whether it holds a backslash outside any string,
    /// quoted name, body or comment (a psql command).
    fn meta_command(&mut self, line: &[u8]) -> bool {
        let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80;
        let mut i = 0;
        while i < line.len() {
            let c = line[i];
            match &mut self.state {
                Lex::Code => match c {
                    b'\\' => return true,
                    b'\'' => {
                        let e = i > 0
                            && (line[i - 1] == b'E' || line[i - 1] == b'e')
                            && (i < 2 || !ident(line[i - 2]));
                        self.state = Lex::Quote(e);
                    }
                    b'"' => self.state = Lex::Ident,
                    b'-' if line.get(i + 1) == Some(&b'-') => return false,
                    b'/' if line.get(i + 1) == Some(&b'*') => {
                        self.state = Lex::Comment(1);
                        i += 1;
                    }
                    b'$' if i == 0 || !ident(line[i - 1]) => {
                        let n = line[i + 1..].iter().take_while(|&&d| ident(d)).count();
                        let tag = &line[i + 1..i + 1 + n];
                        if line.get(i + 1 + n) == Some(&b'$')
                            && tag.first().is_none_or(|d| !d.is_ascii_digit())
                        {
                            self.state = Lex::Dollar(line[i..i + 2 + n].to_vec());
                            i += 1 + n;
                        }
                    }
                    _ => {}
                },
                Lex::Quote(e) => match c {
                    b'\\' if *e => i += 1,
                    b'\'' if line.get(i + 1) == Some(&b'\'') => i += 1,
                    b'\'' => self.state = Lex::Code,
                    _ => {}
                },
                Lex::Ident => {
                    if c == b'"' {
                        if line.get(i + 1) == Some(&b'"') {
                            i += 1;
                        } else {
                            self.state = Lex::Code;
                        }
                    }
                }
                Lex::Dollar(tag) => {
                    if line[i..].starts_with(tag) {
                        i += tag.len() - 1;
                        self.state = Lex::Code;
                    }
                }
                Lex::Comment(depth) => {
                    if c == b'/' && line.get(i + 1) == Some(&b'*') {
                        *depth += 1;
                        i += 1;
                    } else if c == b'*' && line.get(i + 1) == Some(&b'/') {
                        *depth -= 1;
                        i += 1;
                        if *depth == 0 {
                            self.state = Lex::Code;
                        }
                    }
                }
            }
            i += 1;
        }
        false
    }
}

impl std::fmt::Display for Rehearsal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.census;
        writeln!(f, "rehearsal of {} ({})", self.dump, self.format)?;
        writeln!(
            f,
            "restored into {} in {:.1} s",
            self.scratch, self.restore_seconds
        )?;
        writeln!(
            f,
            "\nusers          {}\nmigrated       {} (verified)\nfailed         {} (they would stay legacy)",
            self.users, self.migrated, self.failed
        )?;
        if self.already_migrated > 0 || self.held > 0 {
            writeln!(
                f,
                "mid-migration  the dump holds {} users migrated already (not rehearsed; a dump \
                 of the source table alone holds only their residuals) and {} held (left held)",
                self.already_migrated, self.held
            )?;
        }
        if !self.failures.is_empty() {
            writeln!(f, "\nfailures by reason (users; example ids)")?;
            for g in &self.failures {
                let ex: Vec<String> = g.examples.iter().map(decant::UserId::to_string).collect();
                writeln!(f, "  {}: {}; {}", g.reason, g.users, ex.join(", "))?;
            }
        }
        writeln!(f, "\nrows per table")?;
        for (t, n) in &self.rows {
            writeln!(f, "  {t}: {n}")?;
        }
        writeln!(
            f,
            "\ncensus: {} would migrate cleanly, {} with warnings, {} would fail; {} unclaimed key paths",
            c.would_migrate_cleanly,
            c.would_migrate_with_warnings,
            c.would_fail,
            c.unclaimed.len()
        )?;
        writeln!(
            f,
            "blob size as JSON text, bytes: p50 {} / p90 {} / p99 {} / max {}",
            c.blob_bytes.p50, c.blob_bytes.p90, c.blob_bytes.p99, c.blob_bytes.max
        )?;
        writeln!(
            f,
            "\nfull-speed run: {:.1} s, {:.0} users/s (migrated and failed alike)",
            self.run_seconds, self.users_per_second
        )?;
        if !self.throughput.is_empty() {
            let t: Vec<String> = self.throughput.iter().map(|x| format!("{x:.0}")).collect();
            writeln!(f, "users/s per 5 s: {}", t.join(" "))?;
        }
        let q = |v: &[f64; 4]| {
            format!(
                "p50 {:.2} / p90 {:.2} / p99 {:.2} / max {:.2} ms",
                v[0], v[1], v[2], v[3]
            )
        };
        writeln!(f, "batch transaction (lock hold): {}", q(&self.batch_ms))?;
        writeln!(f, "per user within its batch:     {}", q(&self.per_user_ms))?;
        if !self.largest.is_empty() {
            writeln!(
                f,
                "\nlargest blobs, each migrated alone (slowest first; their size as stored, \
                 after TOAST compression, which can be far below their JSON text)"
            )?;
            let mut l = self.largest.clone();
            l.sort_by(|a, b| b.ms.total_cmp(&a.ms));
            for t in &l {
                writeln!(
                    f,
                    "  user {}: {} bytes stored, {:.1} ms, {}",
                    t.id,
                    t.bytes,
                    t.ms,
                    match &t.error {
                        None => format!("{} rows", t.rows),
                        Some(e) => format!("failed: {e}"),
                    }
                )?;
            }
        }
        let p = &self.projection;
        writeln!(f, "\nprojection for {} users to migrate", p.users)?;
        if let Some(why) = &p.unknown {
            writeln!(f, "  none: {why}")?;
        }
        if let Some(full) = p.full_speed_seconds {
            writeln!(f, "  at full speed: {}", human(full))?;
            if let (Some(r), Some(s)) = (p.rate, p.rate_seconds) {
                writeln!(f, "  at {r:.1} users/s: {} of migration", human(s))?;
            }
            writeln!(
                f,
                "  windows {}: finishes {}",
                p.windows,
                p.finish
                    .as_deref()
                    .unwrap_or("not within ten years of these windows")
            )?;
        }
        if self.kept {
            writeln!(f, "\nthe scratch database is kept ({})", self.scratch)?;
        }
        Ok(())
    }
}

/// Seconds as days, hours and minutes.
fn human(secs: f64) -> String {
    let s = secs.round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        3600..86400 => format!("{} h {} min", s / 3600, (s % 3600) / 60),
        _ => format!("{} d {} h", s / 86400, (s % 86400) / 3600),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_preamble_set_names_its_setting() {
        use super::set_setting;
        let name = |l: &str| set_setting(l.as_bytes());
        assert_eq!(
            name("SET transaction_timeout = 0;\n").as_deref(),
            Some("transaction_timeout")
        );
        assert_eq!(
            name("SET Default_Tablespace = '';\n").as_deref(),
            Some("default_tablespace")
        );
        // not a preamble line: a statement going on, a quoted name, no SET
        assert_eq!(name("SET search_path = a,\n"), None);
        assert_eq!(name("SET \"odd name\" = 1;\n"), None);
        assert_eq!(
            name("SELECT pg_catalog.set_config('search_path', '', false);\n"),
            None
        );
        assert_eq!(name("SET = 1;\n"), None);
    }

    #[test]
    fn production_s_users_are_projected_in_the_dump_s_share_left() {
        // a dump with 1,330 of 3,000 users left: production of 3,000,000
        // has 1,330,000 left; without --users, the dump's own
        assert_eq!(super::to_do_of(Some(3_000_000), 3_000, 1_330), 1_330_000);
        assert_eq!(super::to_do_of(None, 3_000, 1_330), 1_330);
        assert_eq!(super::to_do_of(Some(500), 500, 500), 500);
        assert_eq!(super::to_do_of(Some(7), 0, 0), 7);
    }

    #[test]
    fn a_rehearsal_that_migrated_no_one_projects_nothing() {
        let opts = super::RehearseOptions {
            dump: "x.dump".into(),
            spec: decant::Spec::parse(include_str!("../../fixtures/game/decant.toml")).unwrap(),
            server: None,
            keep: false,
            name: None,
            rate: Some("100/s".parse().unwrap()),
            schedule: decant::Schedule::default(),
            users: Some(2_000_000),
            workers: 2,
            largest: 0,
        };
        // every user of the run failed: it projected "7500000000 d" at
        // "0.0 users/s", finishing "never (no open window)"
        let p = super::project(&opts, 4_000, 1_296, 0.0);
        assert_eq!(p.users, 648_000);
        assert!(p.full_speed_seconds.is_none() && p.rate.is_none() && p.finish.is_none());
        assert!(p.unknown.as_deref().unwrap().contains("migrated none"));
        // nothing left to do: done at once, whatever the speed
        let p = super::project(&opts, 4_000, 0, 0.0);
        assert_eq!(p.full_speed_seconds, Some(0.0));
        assert!(p.unknown.is_none());
        // a measured speed projects as before, the rate capped by it
        let p = super::project(&opts, 4_000, 1_296, 50.0);
        assert_eq!(p.rate, Some(50.0));
        assert_eq!(p.full_speed_seconds, Some(648_000.0 / 50.0));
        assert!(p.finish.is_some() && p.unknown.is_none());
    }

    #[test]
    fn a_backslash_outside_strings_bodies_and_comments_is_a_psql_command() {
        let script = |text: &str| {
            let mut lexer = super::SqlLexer::default();
            text.split_inclusive('\n')
                .position(|l| lexer.meta_command(l.as_bytes()))
        };
        // text wherever psql reads it as text
        assert_eq!(
            script(
                "SET standard_conforming_strings = on;\n\
                 INSERT INTO t VALUES ('a\\', 'it''s', E'\\' \\\\', \"q\\\"\"\"x\");\n\
                 CREATE FUNCTION f() RETURNS text AS $_$ SELECT '\\' $_$ LANGUAGE sql;\n\
                 CREATE FUNCTION g() RETURNS text AS $$\n\\! id\n$$ LANGUAGE sql;\n\
                 /* a /* nested */ \\! comment\n\\! still */ -- \\! and this\n\
                 SELECT 'multi\n\\! line';\n"
            ),
            None
        );
        // a command: at the start of a line, after a statement, after a
        // string or body has closed
        assert_eq!(script("SELECT 1;\n\\! id > /tmp/x\n"), Some(1));
        assert_eq!(script("SELECT 1; \\! id\n"), Some(0));
        assert_eq!(script("SELECT 'a'''; \\o |sh\n"), Some(0));
        assert_eq!(script("SELECT $x$ a $x$ \\gexec\n"), Some(0));
        assert_eq!(script("SELECT a$1 \\g\n"), Some(0));
    }

    use super::*;

    #[test]
    fn a_plain_dumps_tables_are_named_with_their_schema() {
        let file = std::env::temp_dir().join(format!("decant-tables-{}.sql", std::process::id()));
        std::fs::write(
            &file,
            "-- PostgreSQL database dump\n\
             CREATE TABLE public.\"user\" (\n    id bigint\n);\n\
             CREATE TABLE game.scores (\n    id bigint\n);\n\
             CREATE TABLE members (member_id int4 PRIMARY KEY, profile jsonb);\n\
             CREATE TABLE IF NOT EXISTS kept AS SELECT * FROM members;\n\
             CREATE TABLE \"Social Net\".\"the \"\"users\"\"\" (\n    id text\n);\n\
             CREATE TABLE Mixed.Case (id int);\n\
             CREATE UNLOGGED TABLE public.scratch (\n    id bigint\n);\n",
        )
        .unwrap();
        let tables = tables_in(&file, Format::Plain, Path::new("/nonexistent"));
        std::fs::remove_file(&file).unwrap();
        let exact = |s: &str, t: &str| (s.to_string(), t.to_string());
        assert_eq!(
            tables.unwrap(),
            [
                exact("public", "user"),
                exact("game", "scores"),
                exact("public", "members"),
                exact("public", "kept"),
                exact("Social Net", "the \"users\""),
                exact("mixed", "case"),
                exact("public", "scratch"),
            ]
        );
    }
}
