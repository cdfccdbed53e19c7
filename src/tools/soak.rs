//! `decant bench --soak 30m`: the daemon at default settings for a long
//! while under both kinds of backend load the live-traffic benchmark uses:
//! the compatibility layer patching users of the game database, and
//! pgbench (TPC-B-like, at a fixed rate, on its own database in the same
//! cluster) standing for the rest of the game. A minute of that load alone
//! comes first and a minute after the daemon stops comes last. Reported
//! per minute: the daemon's users/s and resident memory, and both
//! backends' latency p50 / p99; at the end, every acknowledged write is
//! read back (nothing lost).

use super::bench::{BenchOptions, Setup, daemon_result, drop_db, load_db, spawn_daemon, terminate};
use super::cluster::{find_bindir, tool};
use super::traffic::{Traffic, WriteKind, p50_p99};
use anyhow::{Context, Result, anyhow};
use decant::with_dbname;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Compatibility-layer patches per second (as in the latency benchmark).
const PATCH_RATE: f64 = 200.0;
/// pgbench: transactions per second, clients, scale.
const PGBENCH_RATE: u32 = 200;
const PGBENCH_CLIENTS: u32 = 4;
const PGBENCH_SCALE: u32 = 20;
const MINUTE: Duration = Duration::from_secs(60);

/// Parses a soak length: a whole number with `s`, `m` or `h` (`30m`).
pub fn parse_length(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (n, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = n
        .parse()
        .map_err(|_| format!("`{text}`: expected a number and a unit, as in 30m, 90s or 1h"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("`{text}`: the unit must be s, m or h (as in 30m)")),
    };
    if secs < 60 {
        return Err(format!("`{text}`: a soak lasts at least a minute"));
    }
    Ok(Duration::from_secs(secs))
}

/// One minute's sample of the daemon.
struct Sample {
    /// Users migrated so far (the daemon's metrics), if it answered.
    migrated: Option<u64>,
    /// Its resident memory, KiB, if it still runs.
    rss_kib: Option<u64>,
    /// When the sample was taken: a late one (a busy machine) still gives
    /// the right rate.
    at: Instant,
}

fn epoch_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Each sample's users per second since the last sample that answered (the
/// first since `start`), over the time between them: a sample taken late
/// covers more than a minute. None where the daemon did not answer.
fn minute_rates(start: Instant, samples: &[Sample]) -> Vec<Option<f64>> {
    let (mut prev, mut prev_at) = (0u64, start);
    samples
        .iter()
        .map(|s| {
            let n = s.migrated?;
            let secs =
                s.at.saturating_duration_since(prev_at)
                    .as_secs_f64()
                    .max(1.0);
            let r = n.saturating_sub(prev) as f64 / secs;
            (prev, prev_at) = (n, s.at);
            Some(r)
        })
        .collect()
}

/// Reads `decant_users_migrated_total` from the daemon's metrics endpoint.
async fn scrape(port: u16) -> Option<u64> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut body = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut body))
        .await
        .ok()?
        .ok()?;
    body.lines()
        .find_map(|l| l.strip_prefix("decant_users_migrated_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
}

/// The resident memory of process `pid`, KiB (Linux).
fn rss_kib(pid: Option<u32>) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// A free TCP port on 127.0.0.1 for the daemon's metrics.
fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

/// Resident memory in KiB as whole MiB, or a dash.
fn mib(kib: Option<u64>) -> String {
    kib.map_or("–".into(), |k| format!("{:.0}", k as f64 / 1024.0))
}

fn ms(p: Option<(Duration, Duration)>) -> String {
    match p {
        Some((a, b)) => format!(
            "{:.2} / {:.2}",
            a.as_secs_f64() * 1e3,
            b.as_secs_f64() * 1e3
        ),
        None => "–".into(),
    }
}

/// pgbench's per-transaction log lines (`client xact latency_us script
/// epoch_s epoch_us [lag_us]`) from every file `<prefix>.*` in `dir`: when
/// each transaction began and its latency.
fn pgbench_log(dir: &Path) -> Result<Vec<(f64, Duration)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let named = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("pg."));
        if !named {
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        for line in text.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(lat), Some(s), Some(us)) = (f.get(2), f.get(4), f.get(5)) else {
                continue;
            };
            let (Ok(lat), Ok(s), Ok(us)) =
                (lat.parse::<u64>(), s.parse::<f64>(), us.parse::<f64>())
            else {
                continue;
            };
            let lat = Duration::from_micros(lat);
            // the log stamps the end; the minute is the one it began in
            out.push((s + us / 1e6 - lat.as_secs_f64(), lat));
        }
    }
    Ok(out)
}

/// Runs pgbench with `args` on `url`, failing with its output if it fails.
async fn pgbench(exe: &Path, dir: &Path, url: &str, args: &[String]) -> Result<()> {
    let out = tokio::process::Command::new(exe)
        .args(args)
        .arg(url)
        .current_dir(dir)
        .output()
        .await
        .with_context(|| format!("starting {}", exe.display()))?;
    if !out.status.success() {
        return Err(anyhow!(format!(
            "pgbench {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Runs the soak (see the module's documentation) on a throwaway cluster
/// or `--database-url`'s server and returns its report as Markdown.
/// `length` is the daemon's time; the whole run takes two minutes more,
/// after loading.
pub async fn run(opts: &BenchOptions, length: Duration) -> Result<String> {
    let setup = Setup::new(opts).await?;
    let result = soak(
        opts,
        &setup.admin,
        &setup.server,
        &setup.spec_path,
        &setup.dir,
        length,
    )
    .await;
    setup.clean(&["bench_soak", "bench_pgbench"]).await;
    result
}

async fn soak(
    opts: &BenchOptions,
    admin: &tokio_postgres::Client,
    server: &str,
    spec_path: &Path,
    dir: &Path,
    length: Duration,
) -> Result<String> {
    let pgbench_exe = tool(&find_bindir()?, "pgbench");
    if !pgbench_exe.is_file() {
        return Err(anyhow!(
            "--soak needs pgbench (in PostgreSQL's client package, e.g. apt-get install postgresql-client); none found beside initdb or on PATH"
        ));
    }
    tracing::info!(users = opts.users, "loading the soak's game database");
    load_db(admin, server, "bench_soak", opts.users).await?;
    drop_db(admin, "bench_pgbench").await?;
    admin
        .batch_execute("CREATE DATABASE bench_pgbench")
        .await
        .context("creating bench_pgbench")?;
    let pg_url = with_dbname(server, "bench_pgbench")?;
    let logs = dir.join("pgbench");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    tracing::info!("initialising pgbench's database");
    pgbench(
        &pgbench_exe,
        &logs,
        &pg_url,
        &[
            "-i".into(),
            "-q".into(),
            "-s".into(),
            PGBENCH_SCALE.to_string(),
        ],
    )
    .await?;
    admin
        .batch_execute("CHECKPOINT")
        .await
        .context("checkpoint")?;

    let url = with_dbname(server, "bench_soak")?;
    let decant = decant::Decant::connect(&url, super::example::spec(), 8)?;
    let minutes = length.as_secs().div_ceil(60);
    let total = length + 2 * MINUTE;
    let t0 = epoch_now();
    let started = Instant::now();
    tracing::info!(
        minutes,
        "soak: pgbench and patch traffic, the daemon from the second minute"
    );
    let pgbench_run = {
        let (exe, logs, pg_url) = (pgbench_exe.clone(), logs.clone(), pg_url.clone());
        let args: Vec<String> = [
            "-R",
            &PGBENCH_RATE.to_string(),
            "-c",
            &PGBENCH_CLIENTS.to_string(),
            "-j",
            "2",
            "-T",
            &total.as_secs().to_string(),
            "-l",
            "--log-prefix=pg",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        tokio::spawn(async move { pgbench(&exe, &logs, &pg_url, &args).await })
    };
    let traffic = Traffic::start(
        &decant,
        opts.users,
        PATCH_RATE,
        WriteKind::Count("pref", "soak"),
        7,
    );
    tokio::time::sleep_until((started + MINUTE).into()).await;

    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let daemon = spawn_daemon(opts, &url, spec_path, &["--metrics-addr", &addr])?;
    let pid = daemon.id();
    let daemon_t0 = Instant::now();
    let mut samples = Vec::new();
    for m in 1..=minutes {
        tokio::time::sleep_until(
            (daemon_t0 + MINUTE * m as u32)
                .min(daemon_t0 + length)
                .into(),
        )
        .await;
        let due = daemon_t0 + (MINUTE * m as u32).min(length);
        let s = Sample {
            migrated: scrape(port).await,
            rss_kib: rss_kib(pid),
            at: Instant::now(),
        };
        let late = s.at.saturating_duration_since(due);
        if late > Duration::from_secs(5) {
            tracing::warn!(
                minute = m,
                late_s = late.as_secs(),
                "the sample came late; its rate is over the time it covers"
            );
        }
        tracing::info!(minute = m, migrated = ?s.migrated, rss_kib = ?s.rss_kib, "soak");
        samples.push(s);
    }
    terminate(pid);
    let run = daemon_result(daemon).await?;
    let stopped = Instant::now();
    tokio::time::sleep_until((stopped + MINUTE).into()).await;
    let writes = traffic.stop().await?;
    pgbench_run
        .await
        .map_err(|e| anyhow!(format!("pgbench: {e}")))??;
    let lost = writes.lost(&decant).await?;
    drop(decant);
    let pg = pgbench_log(&logs)?;

    // minute k of the run: 0 alone, 1..=minutes the daemon's, then after
    let daemon_start = t0 + (daemon_t0 - started).as_secs_f64();
    let daemon_stop = t0 + (stopped - started).as_secs_f64();
    let slot = |t: f64| -> usize {
        if t < daemon_start {
            0
        } else if t < daemon_stop {
            1 + (((t - daemon_start) / 60.0) as usize).min(minutes as usize - 1)
        } else {
            minutes as usize + 1
        }
    };
    let slots = minutes as usize + 2;
    let mut patch: Vec<Vec<Duration>> = vec![Vec::new(); slots];
    let mut bench: Vec<Vec<Duration>> = vec![Vec::new(); slots];
    for &(t, d) in &writes.samples {
        patch[slot(t)].push(d);
    }
    for &(t, d) in &pg {
        if t >= t0 {
            bench[slot(t)].push(d);
        }
    }
    let mut during_patch: Vec<Duration> = patch[1..=minutes as usize].concat();
    let mut during_bench: Vec<Duration> = bench[1..=minutes as usize].concat();

    let mut out = format!(
        "Soak: {} users; `decant run` at default settings for {} min (pid {}), after a minute of the backends alone and before a minute after it stops; backends: {PATCH_RATE:.0} compatibility-layer patches/s on the game database, pgbench (TPC-B-like, scale {PGBENCH_SCALE}) -R {PGBENCH_RATE} -c {PGBENCH_CLIENTS} on its own database.\n\n\
         | minute | phase | daemon users/s | daemon RSS MiB | patch p50 / p99 ms | pgbench p50 / p99 ms |\n|---:|---|---:|---:|---:|---:|\n",
        opts.users,
        minutes,
        pid.unwrap_or(0),
    );
    let per_minute = minute_rates(daemon_t0, &samples);
    let rates: Vec<f64> = per_minute.iter().flatten().copied().collect();
    for k in 0..slots {
        let (phase, users, rss) = if k == 0 {
            ("backends alone", "–".to_string(), "–".to_string())
        } else if k <= minutes as usize {
            let users = match per_minute[k - 1] {
                Some(r) => format!("{r:.0}"),
                None => "no answer".into(),
            };
            ("daemon", users, mib(samples[k - 1].rss_kib))
        } else {
            ("after the daemon", "–".to_string(), "–".to_string())
        };
        let _ = writeln!(
            out,
            "| {k} | {phase} | {users} | {rss} | {} | {} |",
            ms(p50_p99(&mut patch[k])),
            ms(p50_p99(&mut bench[k])),
        );
    }
    let idle_patch = p50_p99(&mut patch[0]);
    let idle_bench = p50_p99(&mut bench[0]);
    let ratio =
        |busy: Option<(Duration, Duration)>, idle: Option<(Duration, Duration)>| match (busy, idle)
        {
            (Some((_, b)), Some((_, i))) => format!("{:.1}x", b.as_secs_f64() / i.as_secs_f64()),
            _ => "n/a".into(),
        };
    let dp = p50_p99(&mut during_patch);
    let db = p50_p99(&mut during_bench);
    let rss: Vec<u64> = samples.iter().filter_map(|s| s.rss_kib).collect();
    let _ = write!(
        out,
        "\nWhile the daemon ran: patch p50 / p99 {} ms ({} the idle minute's p99), pgbench {} ms ({}); the daemon migrated {} users ({} failed) in {:.0} s, {:.0} users/s ({}){}{}; resident memory {} MiB in its first minute, {} MiB in its last, {} MiB at most.\n",
        ms(dp),
        ratio(dp, idle_patch),
        ms(db),
        ratio(db, idle_bench),
        run.migrated,
        run.failed,
        run.secs,
        run.migrated as f64 / run.secs,
        if rates.is_empty() {
            "no minute sampled".to_string()
        } else {
            format!(
                "per minute {:.0} to {:.0}",
                rates.iter().copied().fold(f64::INFINITY, f64::min),
                rates.iter().copied().fold(0.0, f64::max)
            )
        },
        match run.held_secs {
            Some(h) => format!(", held back {h:.0} s"),
            None => String::new(),
        },
        match run.batch_ms {
            Some((a, b)) => format!(", lock hold p50 {a:.1} / p99 {b:.1} ms"),
            None => String::new(),
        },
        mib(rss.first().copied()),
        mib(rss.last().copied()),
        mib(rss.iter().max().copied()),
    );
    if run.migrated + run.failed >= opts.users {
        let _ = writeln!(
            out,
            "The daemon ran out of users before the soak ended: give more --users for a soak this long."
        );
    }
    let _ = writeln!(
        out,
        "Acknowledged writes read back: {} writes to {} users, {} lost{}.",
        writes.writes,
        writes.acked.len(),
        lost.len(),
        match lost.first() {
            Some((u, t, n, f)) => format!(
                " (the first: user {u}, task {t}: {n} acknowledged, the blob holds {})",
                f.map_or("nothing".into(), |f| f.to_string())
            ),
            None => String::new(),
        }
    );
    if !lost.is_empty() {
        return Err(anyhow!(format!("writes were lost in the soak:\n{out}")));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::{Sample, minute_rates, parse_length};
    use std::time::{Duration, Instant};

    #[test]
    fn a_minutes_rate_is_over_the_time_its_sample_covers() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let sample = |n: Option<u64>, s: u64| Sample {
            migrated: n,
            rss_kib: None,
            at: at(s),
        };
        let rates = minute_rates(
            t0,
            &[
                sample(Some(600), 60),
                // 52 s late: 1,120 users over 112 s, not over 60
                sample(Some(1720), 172),
                // no answer, then the next covers both minutes
                sample(None, 232),
                sample(Some(2920), 292),
            ],
        );
        assert_eq!(rates, vec![Some(10.0), Some(10.0), None, Some(10.0)]);
    }

    #[test]
    fn soak_lengths_take_a_unit_and_last_a_minute_at_least() {
        assert_eq!(parse_length("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_length("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_length("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_length("30").unwrap_err().contains("unit"));
        assert!(parse_length("m").unwrap_err().contains("number"));
        assert!(
            parse_length("10s")
                .unwrap_err()
                .contains("at least a minute")
        );
    }
}
