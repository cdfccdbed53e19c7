//! The daemon as a process rides out what production does to a long run:
//! its sessions terminated, the server restarted (fast and immediate),
//! the server gone for longer than it may wait. A library writer runs all
//! along; at the end every user is wholly legacy or wholly migrated and
//! rebuilds, and every acknowledged write is there.

use crate::cluster::{ClusterOptions, TempCluster};
use crate::example::Rng;
use crate::harness::{GAME_TABLES, connect};
use decant::{Decant, Error};
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The spec file a spawned daemon reads, in a directory of its own that
/// goes when this is dropped (after the daemon has finished).
struct SpecDir(std::path::PathBuf);

impl Drop for SpecDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn spawn_run(url: &str, args: &[&str]) -> (Child, SpecDir) {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "decant-outage-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let spec = dir.join("decant.toml");
    std::fs::write(&spec, crate::example::SPEC).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_decant"))
        .arg("run")
        .arg("--spec")
        .arg(&spec)
        // not the whole server's load: the other tests' (see full_speed)
        .args(["--load-yield", "0"])
        .args(args)
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    (child, SpecDir(dir))
}

async fn finish(child: Child, limit: Duration) -> std::process::Output {
    let pid = child.id().to_string();
    let mut waiting = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap());
    match tokio::time::timeout(limit, &mut waiting).await {
        Ok(out) => out.unwrap(),
        Err(_) => {
            // what it was doing, for the failure's message
            let _ = Command::new("kill").args(["-9", &pid]).status();
            let out = waiting.await.unwrap();
            panic!(
                "the daemon did not finish in {limit:?}; its log:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// Patches random users (a counter each) until told to stop, retrying
/// through errors: per user, the writes acknowledged and the writes that
/// failed (which may or may not have committed).
struct Writer {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(BTreeMap<i64, i64>, BTreeMap<i64, i64>)>,
}

fn writer(decant: Arc<Decant>, users: i64) -> Writer {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let task = tokio::spawn(async move {
        let (mut acked, mut unsure) = (BTreeMap::new(), BTreeMap::new());
        let mut rng = Rng::new(3);
        while !flag.load(Ordering::Relaxed) {
            let u = rng.range(1, users as u64 + 1) as i64;
            let r = decant
                .modify(u, |b| {
                    let n = b["outage_counter"].as_i64().unwrap_or(0);
                    b["outage_counter"] = (n + 1).into();
                })
                .await;
            match r {
                Ok(_) => *acked.entry(u).or_insert(0) += 1,
                Err(e) => {
                    assert!(
                        e.is_retryable() || matches!(e, Error::Db { .. } | Error::Pool(_)),
                        "{e}"
                    );
                    *unsure.entry(u).or_insert(0) += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        (acked, unsure)
    });
    Writer { stop, task }
}

/// A throwaway cluster of its own holding database `game` with `users`
/// example users and decant initialized, and that database's URL.
async fn game_cluster(opts: ClusterOptions, users: i64) -> (Arc<TempCluster>, String) {
    let cluster = Arc::new(
        tokio::task::spawn_blocking(move || TempCluster::start(&opts))
            .await
            .unwrap()
            .unwrap(),
    );
    let admin = connect(&cluster.url("postgres")).await;
    admin.batch_execute("CREATE DATABASE game").await.unwrap();
    let url = cluster.url("game");
    let client = connect(&url).await;
    crate::example::load(&client, users, 1).await.unwrap();
    decant::init(&client, &crate::example::spec())
        .await
        .unwrap();
    (cluster, url)
}

/// Rows in the target tables that belong to legacy users (a half-done
/// migration or rollback); 0 when every user is whole.
async fn legacy_rows(client: &tokio_postgres::Client) -> i64 {
    let mut n = 0;
    for t in GAME_TABLES {
        n += client
            .query_one(
                &format!(
                    "SELECT count(*) FROM {t} x JOIN \"user\" u ON u.id = x.user_id WHERE NOT u.migrated"
                ),
                &[],
            )
            .await
            .unwrap()
            .get::<_, i64>(0);
    }
    n
}

/// Every user wholly migrated (rows that rebuild its blob) or wholly
/// legacy (no rows); every acknowledged write present.
async fn assert_whole(url: &str, decant: &Decant, users: i64, w: Writer) {
    w.stop.store(true, Ordering::Relaxed);
    let (acked, unsure) = w.task.await.unwrap();
    assert!(
        acked.values().sum::<i64>() > 50,
        "the writer wrote: {acked:?}"
    );
    let client = connect(url).await;
    assert_eq!(legacy_rows(&client).await, 0, "no legacy user has rows");
    let report = decant::check(
        url,
        crate::example::spec(),
        &decant::CheckOptions::default(),
        &decant::CheckProgress::default(),
    )
    .await
    .unwrap();
    assert!(
        report.census.migrated_not_rebuilding.is_none(),
        "{:?}",
        report.census.migrated_not_rebuilding
    );
    // every user migrated but the dirty ones (no fixups here), which fail
    assert!(report.census.would_fail > 0);
    assert_eq!(
        report.census.migrated + report.census.would_fail,
        users as u64,
        "every user migrated or failing: {:?}",
        report.census
    );
    for u in 1..=users {
        let blob = decant.load(u).await.unwrap();
        let n = blob["outage_counter"].as_i64().unwrap_or(0);
        let a = acked.get(&u).copied().unwrap_or(0);
        let maybe = unsure.get(&u).copied().unwrap_or(0);
        assert!(
            n >= a && n <= a + maybe,
            "user {u}: counter {n}, {a} writes acknowledged, {maybe} failed"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_sessions_are_reopened_and_the_run_finishes() {
    let db = crate::harness::TestDb::new().await;
    let users = 3000;
    drop(db.game(users).await);
    let decant = Arc::new(Decant::connect(&db.url, crate::example::spec(), 4).unwrap());
    let w = writer(decant.clone(), users);
    let (child, _spec) = spawn_run(
        &db.url,
        &[
            "--rate",
            "500/s",
            "--workers",
            "2",
            "--max-commit-slowdown",
            "0",
        ],
    );
    let admin = db.client().await;
    let mut terminated = 0;
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        // every session of decant's (the daemon's workers and monitor, the
        // library writer's), mid-batch
        terminated += admin
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                  WHERE datname = current_database() AND application_name = 'decant' \
                    AND pid <> pg_backend_pid()",
                &[],
            )
            .await
            .unwrap()
            .get::<_, i64>(0);
    }
    assert!(terminated >= 10, "sessions were terminated: {terminated}");
    let out = finish(child, Duration::from_secs(120)).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(crate::harness::run_ended_well(&out), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("done:"));
    assert!(stderr.contains("session re-opened"), "{stderr}");
    assert_whole(&db.url, &decant, users, w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_fast_and_immediate_are_ridden_out_and_a_long_outage_stops_the_run() {
    // durable commits: an immediate stop is a crash, and with
    // synchronous_commit off PostgreSQL itself forgets acknowledged commits
    let opts = ClusterOptions {
        fsync: true,
        ..ClusterOptions::default()
    };
    let users = 3000;
    let (cluster, url) = game_cluster(opts, users).await;
    let decant = Arc::new(Decant::connect(&url, crate::example::spec(), 4).unwrap());
    let w = writer(decant.clone(), users);
    let (child, _spec) = spawn_run(
        &url,
        &[
            "--rate",
            "400/s",
            "--workers",
            "2",
            "--max-commit-slowdown",
            "0",
        ],
    );
    for mode in ["fast", "immediate"] {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let c = cluster.clone();
        let mode = mode.to_string();
        tokio::task::spawn_blocking(move || {
            c.halt(&mode).unwrap();
            // down for a while: the daemon and the writer retry meanwhile
            std::thread::sleep(Duration::from_secs(2));
            c.resume().unwrap();
        })
        .await
        .unwrap();
    }
    let out = finish(child, Duration::from_secs(180)).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(crate::harness::run_ended_well(&out), "{stderr}");
    assert!(stderr.contains("session re-opened"), "{stderr}");
    assert_whole(&url, &decant, users, w).await;

    // gone for longer than --max-outage: the run stops, non-zero, saying why
    {
        let client = connect(&url).await;
        for u in users + 1..=users + 2000 {
            crate::harness::insert_user(&client, u, &crate::example::user(1, u).blob).await;
        }
    }
    // while working, and while held back (here by a throttle query that
    // always holds): the workers' sessions close with the server, and
    // the monitor, which cannot reach it either, must not keep them waiting
    for (i, throttle) in [["--rate", "100/s"], ["--throttle-query", "SELECT true"]]
        .iter()
        .enumerate()
    {
        if i > 0 {
            let c = cluster.clone();
            tokio::task::spawn_blocking(move || c.resume().unwrap())
                .await
                .unwrap();
        }
        let (child, _spec) = spawn_run(&url, &[throttle[0], throttle[1], "--max-outage", "3"]);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let c = cluster.clone();
        tokio::task::spawn_blocking(move || c.halt("fast").unwrap())
            .await
            .unwrap();
        let stopped = Instant::now();
        let out = finish(child, Duration::from_secs(60)).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        // exit status 4: "the database is unreachable" (README, --help)
        assert_eq!(out.status.code(), Some(4), "{throttle:?}: {stderr}");
        assert!(stderr.contains("unreachable for"), "{throttle:?}: {stderr}");
        assert!(stderr.contains("--max-outage"), "{throttle:?}: {stderr}");
        assert!(
            stopped.elapsed() < Duration::from_secs(30),
            "{throttle:?}: stopped {:?} after the server",
            stopped.elapsed()
        );
        if i > 0 {
            assert!(stderr.contains("holding back"), "{stderr}");
        }
    }
}

/// SIGTERM is honoured in every state: with the server gone (the daemon
/// waiting to re-open its sessions) the run stops at once and exits 0;
/// with the server frozen mid-batch (it answers nothing), the grace time
/// ends the process with status 1 and the frozen batch rolls back: every
/// user stays wholly legacy or wholly migrated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_is_honoured_while_the_database_is_gone_or_frozen() {
    let (cluster, url) = game_cluster(ClusterOptions::default(), 3000).await;
    let term = |child: &Child| {
        // SAFETY: kill(2) on the daemon's pid has no memory effects here
        assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
        Instant::now()
    };
    let args = ["--rate", "200/s", "--max-outage", "300"];

    // gone: the workers wait to re-open their sessions
    let (child, _spec) = spawn_run(&url, &args);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.halt("fast").unwrap())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let signalled = term(&child);
    let out = finish(child, Duration::from_secs(60)).await;
    let took = signalled.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(crate::harness::run_ended_well(&out), "{stderr}");
    // the outage seen: by a worker retrying its session, or first by the
    // monitor, which then holds the workers back ("holding back
    // reason=database unreachable (...)"; CI on PostgreSQL 16 saw only
    // that one)
    assert!(
        stderr.contains("database unreachable; retrying")
            || stderr.contains("reason=database unreachable"),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("stopped:"));
    assert!(
        took < Duration::from_secs(5),
        "stopped {took:?} after SIGTERM"
    );
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.resume().unwrap())
        .await
        .unwrap();

    // frozen mid-run: nothing the daemon sent is answered. A SIGTERM sent
    // twice in a row, as `timeout` delivers it (to the process, then to
    // its group), is one request: the grace time runs out. A second one a
    // second later ends the run at once.
    let cases = [
        (
            Duration::from_millis(20),
            "stopping at once (the batches under way did not finish",
            Duration::from_secs(9)..Duration::from_secs(20),
        ),
        (
            Duration::from_secs(1),
            "stopping at once (a second signal)",
            // within 5 s of the second
            Duration::from_secs(1)..Duration::from_secs(6),
        ),
    ];
    for (between, message, within) in cases {
        let (child, _spec) = spawn_run(&url, &args);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        cluster.freeze(true).unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let first = term(&child);
        tokio::time::sleep(between).await;
        term(&child);
        let out = finish(child, Duration::from_secs(60)).await;
        let took = first.elapsed();
        cluster.freeze(false).unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(message), "{stderr}");
        assert!(
            within.contains(&took),
            "stopped {took:?} after the first SIGTERM"
        );
    }

    // nothing half done: no legacy user has rows, every migrated one
    // rebuilds, and a new run finishes the rest
    let client = connect(&url).await;
    assert_eq!(legacy_rows(&client).await, 0, "no legacy user has rows");
    let (child, _spec) = spawn_run(&url, &["--rate", "max"]);
    let out = finish(child, Duration::from_secs(120)).await;
    assert!(
        crate::harness::run_ended_well(&out),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = decant::check(
        &url,
        crate::example::spec(),
        &decant::CheckOptions::default(),
        &decant::CheckProgress::default(),
    )
    .await
    .unwrap();
    assert!(report.census.migrated_not_rebuilding.is_none());
    assert_eq!(report.census.migrated + report.census.would_fail, 3000);
}
