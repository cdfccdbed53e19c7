//! The daemon as a process: killed with SIGKILL at random moments, stopped
//! with SIGTERM.

use crate::example::Rng;
use crate::harness::{GAME_TABLES, TestDb, count_migrated};
use decant::json_eq;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn spawn_run(db: &TestDb, spec: &std::path::Path, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_decant"))
        .arg("run")
        .arg("--spec")
        .arg(spec)
        // not the whole server's load: the other tests' (see full_speed)
        .args(["--load-yield", "0"])
        .args(args)
        .env("DATABASE_URL", &db.url)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn spec_file(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("decant-crash-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("decant.toml");
    std::fs::write(&path, crate::example::SPEC).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_kills_then_a_restart_leave_every_user_whole() {
    let db = TestDb::new().await;
    let n = 5000;
    let decant = db.game(n).await;
    let client = db.client().await;
    let spec = spec_file("kill");
    let mut rng = Rng::new(42);
    let mut seen = Vec::new();
    for _ in 0..20 {
        let mut child = spawn_run(&db, &spec, &["--rate", "100/s"]);
        tokio::time::sleep(Duration::from_millis(rng.range(200, 900))).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        seen.push(count_migrated(&client).await);
    }
    assert!(
        seen.windows(2).any(|w| w[1] > w[0]),
        "the killed daemons made progress: {seen:?}"
    );
    let before_final = *seen.last().unwrap();
    assert!(
        before_final < n - 100,
        "the kills did not land mid-run: {seen:?}"
    );

    let child = spawn_run(&db, &spec, &[]);
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(
        crate::harness::run_ended_well(&out),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("done:"), "{stdout}");

    // every user whole: migrated with exactly its rows and residual, or
    // legacy with its blob untouched and no rows
    let spec = decant.spec();
    let ids: Vec<i64> = (1..=n).collect();
    let flags: std::collections::HashMap<i64, (bool, serde_json::Value)> = client
        .query("SELECT id, migrated, data FROM \"user\"", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect();
    let mut rows: std::collections::HashMap<i64, i64> = std::collections::HashMap::new();
    for t in GAME_TABLES {
        for r in client
            .query(
                &format!("SELECT user_id, count(*) FROM {t} GROUP BY 1"),
                &[],
            )
            .await
            .unwrap()
        {
            *rows.entry(r.get(0)).or_default() += r.get::<_, i64>(1);
        }
    }
    let mut loaded = std::collections::HashMap::new();
    for chunk in ids.chunks(500) {
        loaded.extend(decant.load_many(chunk).await.unwrap());
    }
    for id in ids {
        let u = crate::example::user(1, id);
        let (migrated, blob) = &flags[&id];
        let n_rows = rows.get(&id).copied().unwrap_or(0);
        match decant::explode(spec, &u.blob) {
            Ok(e) => {
                assert!(migrated, "user {id} left legacy");
                assert_eq!(n_rows, e.rows.len() as i64, "user {id}: rows");
                assert_eq!(*blob, e.residual, "user {id}: residual");
                assert!(
                    json_eq(&loaded[&id.into()], &u.blob),
                    "user {id}: rebuilt blob"
                );
            }
            Err(_) => {
                assert!(!migrated, "dirty user {id} migrated");
                assert_eq!(n_rows, 0, "dirty user {id} has rows");
                assert_eq!(*blob, u.blob, "dirty user {id}: blob changed");
            }
        }
    }
    let states: i64 = client
        .query_one(
            "SELECT count(*) FROM decant.user_state WHERE state = 'migrated'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        states,
        count_migrated(&client).await,
        "one state row per migrated user"
    );
    std::fs::remove_dir_all(spec_file("kill").parent().unwrap()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_batch_and_exits_zero() {
    let db = TestDb::new().await;
    let n = 2000;
    let decant = db.game(n).await;
    let client = db.client().await;
    let spec = spec_file("term");
    // without the commit probe: on a loaded machine it can hold the
    // daemon back past any fixed wait (CI on PostgreSQL 17 saw nothing
    // migrated after 2.5 s); the signal goes once the run is under way
    let child = spawn_run(
        &db,
        &spec,
        &["--rate", "200/s", "--max-commit-slowdown", "0"],
    );
    let waited = Instant::now();
    while count_migrated(&client).await == 0 {
        assert!(
            waited.elapsed() < Duration::from_secs(60),
            "nothing migrated in a minute"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5), "slow to stop");
    assert!(
        crate::harness::run_ended_well(&out),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("stopped:"), "{stdout}");
    let migrated = count_migrated(&client).await;
    assert!(
        migrated > 0 && migrated < n - 100,
        "stopped midway: {migrated}"
    );
    // every user is whole: rows exist exactly for migrated users
    let partial: i64 = client
        .query_one(
            "SELECT count(*) FROM \"user\" u WHERE NOT migrated
               AND EXISTS (SELECT 1 FROM user_statistic s WHERE s.user_id = u.id)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(partial, 0);
    let reported: u64 = stdout
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("stopped: N users migrated");
    assert_eq!(reported as i64, migrated);
    drop(decant);
    std::fs::remove_dir_all(spec.parent().unwrap()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kills_during_a_bulk_rollback_leave_every_user_whole() {
    let db = TestDb::new().await;
    let n = 3000;
    let decant = db.game(n).await;
    let client = db.client().await;
    let ids: Vec<i64> = (1..=n).collect();
    for chunk in ids.chunks(500) {
        decant.migrate_batch(chunk).await.unwrap();
    }
    let migrated_at_start = count_migrated(&client).await;
    let spec = spec_file("rollback-kill");
    let mut rng = Rng::new(7);
    let mut seen = Vec::new();
    for _ in 0..8 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_decant"))
            .args(["rollback", "--all", "--rate", "200/s", "--spec"])
            .arg(&spec)
            .env("DATABASE_URL", &db.url)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(rng.range(200, 700))).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        seen.push(count_migrated(&client).await);
    }
    assert!(
        *seen.last().unwrap() < migrated_at_start && *seen.last().unwrap() > 0,
        "the kills landed mid-rollback: {seen:?} of {migrated_at_start}"
    );
    // every user whole: migrated and loading its blob, or legacy with its
    // original blob, no row, and held
    let mut loaded = std::collections::HashMap::new();
    for chunk in ids.chunks(500) {
        loaded.extend(decant.load_many(chunk).await.unwrap());
    }
    let rows: std::collections::HashMap<i64, (bool, serde_json::Value, i64, Option<String>)> =
        client
            .query(
                &format!(
                    "SELECT u.id, u.migrated, u.data, ({}) , st.state FROM \"user\" u \
                 LEFT JOIN decant.user_state st ON st.user_id = u.id",
                    GAME_TABLES
                        .iter()
                        .map(|t| format!("(SELECT count(*) FROM {t} x WHERE x.user_id = u.id)"))
                        .collect::<Vec<_>>()
                        .join(" + ")
                ),
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3), r.get(4))))
            .collect();
    for id in ids {
        let u = crate::example::user(1, id);
        let (migrated, blob, n_rows, state) = &rows[&id];
        assert!(json_eq(&loaded[&id.into()], &u.blob), "user {id}: load");
        if *migrated {
            assert!(*n_rows > 0, "user {id}: migrated without rows");
        } else {
            assert_eq!(*n_rows, 0, "user {id}: legacy with rows");
            assert!(json_eq(blob, &u.blob), "user {id}: blob");
            if u.dirt.is_none() {
                assert_eq!(state.as_deref(), Some("held"), "user {id}");
            }
        }
    }
    std::fs::remove_dir_all(spec.parent().unwrap()).unwrap();
}
