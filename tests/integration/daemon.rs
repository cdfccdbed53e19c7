use crate::harness::{
    TestDb, count_migrated, insert_user, is_migrated, raw_blob, rollback_all, row_count,
};
use decant::Setting;
use decant::json_eq;
use decant::{Decant, Error, UserId};
use decant::{Progress, RunOptions, RunReport, Throttle};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// The daemon's default options without the commit probe and the load
/// yield: a test's own sessions count as others working, and on a busy
/// machine the probe can hold the daemon back for a whole test (and the
/// other tests' databases come and go on the same server).
fn without_probe() -> RunOptions {
    RunOptions {
        throttle: Throttle {
            max_commit_slowdown: None,
            load_yield: None,
            ..Throttle::default()
        },
        ..RunOptions::default()
    }
}

/// A session working (a statement every 50 ms) until its flag is
/// cleared; the task ends then.
fn busy(client: tokio_postgres::Client) -> (Arc<AtomicBool>, tokio::task::JoinHandle<()>) {
    let working = Arc::new(AtomicBool::new(true));
    let w = working.clone();
    let task = tokio::spawn(async move {
        while w.load(Ordering::Relaxed) {
            client.execute("SELECT 1", &[]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    (working, task)
}

/// A daemon running in the background, stopped by `stop()`.
struct Running {
    progress: Arc<Progress>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<decant::Result<RunReport>>,
}

impl Running {
    fn start(decant: &Decant, opts: RunOptions) -> Running {
        let progress = Arc::new(Progress::default());
        let (tx, rx) = oneshot::channel::<()>();
        let (d, p) = (decant.clone(), progress.clone());
        let task = tokio::spawn(async move {
            decant::run(&d, opts, p, async move {
                let _ = rx.await;
            })
            .await
        });
        Running {
            progress,
            stop: Some(tx),
            task,
        }
    }

    fn migrated(&self) -> u64 {
        self.progress.migrated()
    }

    /// Why the daemon holds back now ("" when it works).
    fn holding(&self) -> String {
        self.progress.holding().unwrap_or_default()
    }

    async fn stop(mut self) -> RunReport {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap().unwrap()
    }

    async fn finish(self) -> RunReport {
        tokio::time::timeout(Duration::from_secs(120), self.task)
            .await
            .expect("the daemon finishes")
            .unwrap()
            .unwrap()
    }
}

fn clean(n: i64) -> Vec<i64> {
    (1..=n)
        .filter(|&i| crate::example::user(1, i).dirt.is_none())
        .collect()
}

async fn set(decant: &Decant, s: Setting) {
    decant.set_control(&s).await.unwrap();
}

async fn verify_all(decant: &Decant, n: i64) {
    for id in 1..=n {
        let got = decant.load(id).await.unwrap();
        assert!(
            json_eq(&got, &crate::example::user(1, id).blob),
            "user {id} differs"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_migrates_the_table_and_skips_users_past_the_attempt_limit() {
    let db = TestDb::new().await;
    let n = 700;
    db.game(n).await;
    let decant = db.decant_with(
        &crate::example::SPEC.replace("max_attempts = 5", "max_attempts = 2"),
        6,
    );
    let client = db.client().await;
    let dirty = n as usize - clean(n).len();
    assert!(dirty > 0);

    let two_workers = RunOptions {
        workers: 2,
        ..RunOptions::default()
    };
    let report = Running::start(&decant, two_workers).finish().await;
    assert_eq!(report.migrated as usize, clean(n).len());
    assert_eq!(
        report.failed as usize, dirty,
        "each dirty user tried once per run"
    );
    assert_eq!(count_migrated(&client).await as usize, clean(n).len());
    assert!(report.batch_p50_p99.is_some());
    verify_all(&decant, n).await;
    // only failed users are left: no finish is projected, and it says why
    let status = decant::status(&decant, &Default::default()).await.unwrap();
    assert_eq!(status.retrying as usize, dirty);
    assert_eq!(status.projected_finish, None);
    assert!(
        status.to_string().contains(&format!(
            "the {dirty} legacy users left to try have all failed"
        )),
        "{status}"
    );

    // a second run retries the failed users once; a third skips them all
    let report = Running::start(&decant, RunOptions::default())
        .finish()
        .await;
    assert_eq!((report.migrated, report.failed as usize), (0, dirty));
    assert_eq!(report.over_limit as usize, dirty);
    let report = Running::start(&decant, RunOptions::default())
        .finish()
        .await;
    assert_eq!(
        (report.migrated, report.failed),
        (0, 0),
        "users past the limit are skipped"
    );
    let max_attempts: i32 = client
        .query_one("SELECT max(attempts) FROM decant.user_state", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(max_attempts, 2);
    let status = decant::status(&decant, &Default::default()).await.unwrap();
    assert_eq!(status.over_limit as usize, dirty);
    assert_eq!(status.failed as usize, dirty);
    assert_eq!(status.migrated as usize, clean(n).len());
    let grouped: i64 = status.failures.iter().map(|g| g.users).sum();
    assert_eq!(grouped as usize, dirty);
    assert!(
        status
            .failures
            .iter()
            .all(|g| g.reason.starts_with("rule `") && !g.examples.is_empty())
    );
    // nothing left to try: no finish, and it says how to retry them
    assert_eq!(status.projected_finish, None);
    assert_eq!(status.retrying, 0);
    let text = status.to_string();
    assert!(
        text.contains(&format!("none of the {dirty} legacy users is left to try"))
            && text.contains("decant release --failed"),
        "{text}"
    );

    // after a fix (here one user's blob made clean), their attempts back:
    // one user by id, then every one
    let fixed = (1..=n).find(|u| !clean(n).contains(u)).unwrap();
    client
        .execute(
            "UPDATE \"user\" SET data = $2 WHERE id = $1",
            &[&fixed, &crate::example::user(1, clean(n)[0]).blob],
        )
        .await
        .unwrap();
    assert_eq!(
        decant
            .retry_failed(Some(&[UserId::from(fixed)]))
            .await
            .unwrap(),
        1
    );
    let report = Running::start(&decant, RunOptions::default())
        .finish()
        .await;
    assert_eq!((report.migrated, report.failed), (1, 0), "the fixed user");
    assert_eq!(report.over_limit as usize, dirty - 1);
    assert_eq!(decant.retry_failed(None).await.unwrap() as usize, dirty - 1);
    let report = Running::start(&decant, RunOptions::default())
        .finish()
        .await;
    assert_eq!(
        (report.migrated, report.failed as usize),
        (0, dirty - 1),
        "the rest tried again"
    );

    // users deleted while failed keep their state rows, but are no longer
    // counted as failed, at the limit, or left out
    let report = Running::start(&decant, RunOptions::default())
        .finish()
        .await;
    assert_eq!(report.over_limit as usize, dirty - 1);
    let gone: Vec<i64> = (1..=n)
        .filter(|u| !clean(n).contains(u) && *u != fixed)
        .take(2)
        .collect();
    client
        .execute("DELETE FROM \"user\" WHERE id = ANY($1)", &[&gone])
        .await
        .unwrap();
    let status = decant::status(&decant, &Default::default()).await.unwrap();
    assert_eq!(
        (status.failed as usize, status.over_limit as usize),
        (dirty - 3, dirty - 3)
    );
    let grouped: i64 = status.failures.iter().map(|g| g.users).sum();
    assert_eq!(grouped as usize, dirty - 3);
    assert!(
        status
            .failures
            .iter()
            .flat_map(|g| &g.examples)
            .all(|e| !gone.iter().any(|g| *e == *g)),
        "{status}"
    );
    let report = Running::start(&decant, RunOptions::default())
        .finish()
        .await;
    assert_eq!(report.over_limit as usize, dirty - 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_locked_by_live_traffic_is_skipped_then_revisited() {
    let db = TestDb::new().await;
    let decant = db.game(300).await;
    let busy = clean(300)[3];
    let mut holder = db.client().await;
    let tx = holder.transaction().await.unwrap();
    tx.execute("SELECT 1 FROM \"user\" WHERE id = $1 FOR UPDATE", &[&busy])
        .await
        .unwrap();

    let running = Running::start(&decant, RunOptions::default());
    let client = db.client().await;
    let all_but_one = clean(300).len() as i64 - 1;
    let started = Instant::now();
    while count_migrated(&client).await < all_but_one {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the daemon queued behind a lock"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !is_migrated(&client, busy).await,
        "the locked user was not waited on"
    );
    // the daemon says why it does nothing, and status shows it (the
    // heartbeat, about every second)
    let mut why = String::new();
    let mut listed = String::new();
    for _ in 0..100 {
        why = running.holding();
        listed = decant::status(&decant, &Default::default())
            .await
            .unwrap()
            .to_string();
        if why.contains("every user left is locked") && listed.contains("every user left is locked")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        why.contains("every user left is locked by another session (1 user"),
        "{why}"
    );
    assert!(
        listed.contains("holding back: every user left is locked"),
        "{listed}"
    );
    tx.rollback().await.unwrap();
    let report = running.finish().await;
    assert!(
        is_migrated(&client, busy).await,
        "the user was revisited once free"
    );
    assert_eq!(report.migrated as i64, all_but_one + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_and_rate_are_obeyed_within_a_second() {
    let db = TestDb::new().await;
    let decant = db.game(2500).await;
    let client = db.client().await;
    set(&decant, Setting::Rate("100/s".parse().unwrap())).await;
    // the control row alone is under test: the commit probe, which counts
    // this test's own queries as others working, could hold the daemon back
    // on a loaded machine (CI once saw no progress 1.5 s after the resume)
    let options = without_probe();
    let running = Running::start(&decant, options);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let a = running.migrated();
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let b = running.migrated();
    // 100/s: at most 300 in 3 s, plus one second's burst; at least a
    // quarter of it even on a loaded machine (CI on PostgreSQL 13, the
    // whole suite in parallel, once saw 86 in 2 s)
    assert!(b - a <= 400, "rate 100/s exceeded: {} in 3 s", b - a);
    assert!(b - a >= 75, "far below the rate: {} in 3 s", b - a);

    set(&decant, Setting::Paused(true)).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let c = count_migrated(&client).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        count_migrated(&client).await,
        c,
        "still migrating while paused"
    );
    assert!(running.holding().contains("paused"));
    // status names the daemon as paused (its heartbeat, about every second)
    let status = decant::status(&decant, &Default::default()).await.unwrap();
    assert!(
        status.to_string().contains("holding back: paused"),
        "{status}"
    );

    set(&decant, Setting::Paused(false)).await;
    set(&decant, Setting::Rate("max".parse().unwrap())).await;
    // the monitor reads the control row every 250 ms; a batch commits
    // soon after; allow for a loaded machine, and name what held it if not
    let resumed = Instant::now();
    while count_migrated(&client).await == c {
        assert!(
            resumed.elapsed() < Duration::from_secs(2),
            "did not resume within 2 s; the daemon says: {}",
            running.holding()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let report = running.finish().await;
    assert_eq!(count_migrated(&client).await as usize, clean(2500).len());
    assert!(!report.interrupted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_migrate_disjoint_users_and_finish_the_table() {
    let db = TestDb::new().await;
    let n = 1500;
    db.game(n).await;
    let one = Decant::connect(&db.url, crate::example::spec(), 4).unwrap();
    let two = Decant::connect(&db.url, crate::example::spec(), 4).unwrap();
    // a rate (per process) so that neither can finish the table alone
    // before the other has started
    set(&one, Setting::Rate("400/s".parse().unwrap())).await;
    // each daemon is "another session working" for the other: with the
    // commit probe on, a busy machine can hold one back for the whole run
    let no_probe = without_probe;
    let a = Running::start(&one, no_probe());
    let b = Running::start(&two, no_probe());
    let (ra, rb) = (a.finish().await, b.finish().await);
    assert!(
        ra.migrated > 0 && rb.migrated > 0,
        "both worked: {} and {}",
        ra.migrated,
        rb.migrated
    );
    assert_eq!(
        (ra.migrated + rb.migrated) as usize,
        clean(n).len(),
        "no user migrated twice"
    );
    let client = db.client().await;
    assert_eq!(count_migrated(&client).await as usize, clean(n).len());
    verify_all(&one, n).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_acknowledged_write_is_lost_while_the_daemon_runs_at_full_speed() {
    let db = TestDb::new().await;
    let n = 1500;
    drop(db.game(n).await);
    let users = clean(n);
    // ten "hot" users spread over the table, marked so that a fixup takes
    // 30 ms over each as the daemon prepares its batch (between its read
    // and its lock), while two backends write to them without pause: their
    // rows change in that window, and the daemon must redo them under the
    // lock rather than write what it read
    let hot: Vec<i64> = (0..10).map(|k| users[k * users.len() / 10]).collect();
    let client = db.client().await;
    client
        .execute(
            "UPDATE \"user\" SET data = jsonb_set(data, '{pref}', \
               coalesce(data->'pref', '{}') || '{\"slow\": true}') WHERE id = ANY($1)",
            &[&hot],
        )
        .await
        .unwrap();
    let slow = decant::Fixup::custom(
        "slow",
        |blob| {
            if blob["pref"]["slow"] == json!(true) {
                std::thread::sleep(Duration::from_millis(30));
            }
            None
        },
        |_, _| {},
    );
    let spec = crate::example::spec().with_fixups(vec![slow]);
    let decant = Decant::connect(&db.url, spec, 10).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(
        (0..users.len())
            .map(|_| AtomicU64::new(0))
            .collect::<Vec<_>>(),
    );
    let mut backends = Vec::new();
    // three backends write to users at random, two to the hot users
    for b in 0..5u64 {
        let (decant, stop, acked, users) =
            (decant.clone(), stop.clone(), acked.clone(), users.clone());
        backends.push(tokio::spawn(async move {
            let mut rng = crate::example::Rng::new(b);
            let mut writes = 0;
            let hot = b >= 3;
            while !stop.load(Ordering::Relaxed) {
                let i = if hot {
                    rng.range(0, 10) as usize * users.len() / 10
                } else {
                    rng.range(0, users.len() as u64) as usize
                };
                let r = decant
                    .modify(users[i], |blob| {
                        let c = &mut blob["pref"]["counter"];
                        *c = json!(c.as_u64().unwrap_or(0) + 1);
                    })
                    .await;
                match r {
                    Ok(_) => {
                        acked[i].fetch_add(1, Ordering::Relaxed);
                        writes += 1;
                    }
                    Err(e) if e.is_retryable() => {}
                    Err(e) => panic!("{e}"),
                }
                if !hot {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
            writes
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let full_speed = without_probe();
    let report = Running::start(&decant, full_speed).finish().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut writes = 0;
    for b in backends {
        writes += b.await.unwrap();
    }
    assert!(writes > 300, "the backend barely wrote ({writes})");
    for (i, &u) in users.iter().enumerate() {
        let blob = decant.load(u).await.unwrap();
        let got = blob["pref"]["counter"].as_u64().unwrap_or(0);
        assert_eq!(
            got,
            acked[i].load(Ordering::Relaxed),
            "user {u} lost writes"
        );
    }
    assert_eq!(report.migrated as usize, users.len(), "{report:?}");
    // the daemon reads and explodes each batch before it locks it: users
    // written in between were seen changed, read again and redone (the
    // path whose mistake would lose exactly these writes)
    assert!(
        report.redone > 0,
        "no user changed between read and lock: {report:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_limits_the_daemon_and_writes_migrate_on_demand() {
    let db = TestDb::new().await;
    let n = 600;
    let decant = db.game(n).await;
    let client = db.client().await;
    set(&decant, Setting::Rollout(25.0)).await;
    let opts = RunOptions {
        rollout_only: true,
        ..RunOptions::default()
    };
    Running::start(&decant, opts).finish().await;
    let rows = client
        .query(
            "SELECT id, migrated, decant.in_rollout(id) FROM \"user\" ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    let mut in_rollout = 0;
    for r in &rows {
        let (id, migrated, inside): (i64, bool, bool) = (r.get(0), r.get(1), r.get(2));
        let dirty = crate::example::user(1, id).dirt.is_some();
        assert_eq!(
            migrated,
            inside && !dirty,
            "user {id}: migrated {migrated}, in rollout {inside}"
        );
        in_rollout += inside as i64;
    }
    assert!(
        (100..=200).contains(&in_rollout),
        "25% of 600 by a uniform hash: {in_rollout}"
    );

    // a legacy user outside the rollout stays legacy when written...
    let outside = rows
        .iter()
        .map(|r| (r.get::<_, i64>(0), r.get::<_, bool>(2)))
        .find(|&(id, inside)| !inside && crate::example::user(1, id).dirt.is_none())
        .unwrap()
        .0;
    decant
        .patch(outside, &json!({"pref": {"x": 1}}))
        .await
        .unwrap();
    assert!(!is_migrated(&client, outside).await);
    // ...and is migrated first, inside the same lock, once allowed
    set(&decant, Setting::AllowList(vec![outside.into()])).await;
    decant.load(outside).await.unwrap();
    assert!(!is_migrated(&client, outside).await, "reads do not migrate");
    let after = decant
        .patch(outside, &json!({"pref": {"x": 2}}))
        .await
        .unwrap();
    assert!(is_migrated(&client, outside).await);
    assert_eq!(after["pref"]["x"], json!(2));
    let x: String = client
        .query_one(
            "SELECT value::text FROM user_preference WHERE user_id = $1 AND key = 'x'",
            &[&outside],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(x, "2", "the write landed on the new tables");
    let mut want = crate::example::user(1, outside).blob;
    decant::merge_patch(&mut want, &json!({"pref": {"x": 2}}));
    assert!(json_eq(&decant.load(outside).await.unwrap(), &want));

    // a dirty user in the rollout: the write still lands, on the blob
    let dirty = (1..=n)
        .find(|&i| crate::example::user(1, i).dirt.is_some())
        .unwrap();
    set(&decant, Setting::AllowList(vec![dirty.into()])).await;
    let after = decant
        .patch(dirty, &json!({"pref": {"y": 3}}))
        .await
        .unwrap();
    assert_eq!(after["pref"]["y"], json!(3));
    assert!(!is_migrated(&client, dirty).await);
    assert_eq!(row_count(&client, dirty).await, 0);

    // the wrapper migrates on demand too
    let other = rows
        .iter()
        .map(|r| r.get::<_, i64>(0))
        .find(|&id| {
            id != outside
                && crate::example::user(1, id).dirt.is_none()
                && !is_migrated_sync(&rows, id)
        })
        .unwrap();
    set(&decant, Setting::AllowList(vec![other.into()])).await;
    // ...but not while the migration is paused: the write lands on the blob
    let path = async || {
        decant
            .migration_compatible_transaction(
                other,
                async |_| Ok::<_, Error>("old"),
                async |_| Ok::<_, Error>("new"),
            )
            .await
            .unwrap()
    };
    set(&decant, Setting::Paused(true)).await;
    assert_eq!(path().await, "old", "paused: no on-demand migration");
    assert!(!is_migrated(&client, other).await);
    set(&decant, Setting::Paused(false)).await;
    assert_eq!(path().await, "new");
}

fn is_migrated_sync(rows: &[tokio_postgres::Row], id: i64) -> bool {
    rows.iter()
        .any(|r| r.get::<_, i64>(0) == id && r.get::<_, bool>(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_signals_and_windows_hold_the_daemon_back() {
    let db = TestDb::new().await;
    let decant = db.game(200).await;
    let client = db.client().await;
    let check_held = async |mut opts: RunOptions, why: &str| {
        // the commit probe has its own test; here it would only race the
        // signal under test (a 0.1 ms idle commit is noise-bound)
        opts.throttle.max_commit_slowdown = None;
        let running = Running::start(&decant, opts);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let holding = running.holding();
        let report = running.stop().await;
        assert_eq!(report.migrated, 0, "worked while it should hold ({why})");
        assert!(report.interrupted);
        assert!(
            holding.contains(why),
            "holding: {holding:?}, expected {why:?}"
        );
    };
    check_held(
        RunOptions {
            throttle: Throttle {
                query: Some("SELECT true".into()),
                ..Throttle::default()
            },
            ..RunOptions::default()
        },
        "throttle query",
    )
    .await;
    // a query that fails or gives no single boolean is refused at the
    // start, with the server's message (it held the daemon back for good,
    // said only as "the throttle query failed: db error")
    for (q, says) in [
        (
            "SELECT busy FROM nowhere",
            "relation \"nowhere\" does not exist",
        ),
        ("SELECT 1", "must return one row of one boolean"),
        ("SELECT true, false", "it returned 2 columns"),
    ] {
        let opts = RunOptions {
            throttle: Throttle {
                query: Some(q.into()),
                ..Throttle::default()
            },
            ..RunOptions::default()
        };
        let err = decant::run(
            &decant,
            opts,
            Arc::new(Progress::default()),
            std::future::pending(),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(err.contains(q) && err.contains(says), "{q}: {err}");
    }

    // a busy session over the limit
    let busy = db.client().await;
    let sleeper = tokio::spawn(async move { busy.execute("SELECT pg_sleep(4)", &[]).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    check_held(
        RunOptions {
            throttle: Throttle {
                max_active: Some(0),
                ..Throttle::default()
            },
            ..RunOptions::default()
        },
        "active sessions",
    )
    .await;
    sleeper.await.unwrap().unwrap();

    // a window that opens in two hours
    let now = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC);
    // wall-clock times wrap at midnight: the window may cross it
    let start = now.time().wrapping_add(jiff::SignedDuration::from_hours(2));
    let end = now.time().wrapping_add(jiff::SignedDuration::from_hours(3));
    let window = format!("{}-{}", start.strftime("%H:%M"), end.strftime("%H:%M"));
    let schedule = decant::Schedule::new(vec![window.parse().unwrap()], Some("UTC")).unwrap();
    check_held(
        RunOptions {
            schedule,
            ..RunOptions::default()
        },
        "next opens at",
    )
    .await;
    assert_eq!(count_migrated(&client).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slower_commits_hold_the_daemon_back_only_while_others_work() {
    let db = TestDb::new().await;
    let decant = db.game(150).await;
    // a threshold every probe exceeds: the probe decides whenever it counts
    // (this database only: the other tests' databases share the server)
    let touchy = || RunOptions {
        throttle: Throttle {
            max_commit_slowdown: Some(0.001),
            whole_server: false,
            ..Throttle::default()
        },
        ..RunOptions::default()
    };
    // another session working on the same database
    let (working, traffic) = busy(db.client().await);
    let running = Running::start(&decant, touchy());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let holding = running.holding();
    let report = running.stop().await;
    assert_eq!(
        report.migrated, 0,
        "worked while commits were slow: {holding}"
    );
    assert!(
        holding.contains("commits take") && holding.contains("other sessions work"),
        "holding: {holding:?}"
    );

    // nobody else works: the daemon's own slower commits hurt nobody
    working.store(false, Ordering::Relaxed);
    traffic.await.unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let report = Running::start(&decant, touchy()).finish().await;
    assert_eq!(report.migrated + report.failed, 150);
    assert!(report.migrated > 140);
}

/// Polls `f` every 50 ms until it gives a value or `limit` passes.
async fn poll<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let until = std::time::Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if std::time::Instant::now() > until {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slower_commits_cut_a_running_daemons_rate_step_by_step_instead_of_stopping_it() {
    let db = TestDb::new().await;
    let decant = db.game(4000).await;
    // every probe is "too slow": each second the ceiling is cut to 70% of
    // what the daemon did; the rate set by the daemon's own session
    let opts = RunOptions {
        rate: Some("200/s".parse().unwrap()),
        throttle: Throttle {
            max_commit_slowdown: Some(0.001),
            whole_server: false,
            ..Throttle::default()
        },
        ..RunOptions::default()
    };
    // the sessions that loaded the game count as others working for a
    // second after their last statement: let that second pass
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let running = Running::start(&decant, opts);
    // nobody else works: the daemon runs at the control row's rate with no
    // ceiling. (Should something count as working when it starts, the
    // ceiling it cuts grows back and is lifted once the daemon runs below
    // it; on a loaded machine that takes seconds: wait for it.)
    let alone = poll(Duration::from_secs(30), || {
        (running.migrated() > 100 && running.progress.ceiling().is_none()).then_some(())
    })
    .await;
    assert!(
        alone.is_some(),
        "alone: {} users, ceiling {:?}",
        running.migrated(),
        running.progress.ceiling()
    );

    let (working, traffic) = busy(db.client().await);
    // a ceiling appears and is cut, once a probe window, to 70% of what
    // the daemon did (a second's rate, which its batches of up to 200
    // users make lumpy): wait until it is well below the 200 users/s rate
    let first = poll(Duration::from_secs(10), || running.progress.ceiling()).await;
    let below = poll(Duration::from_secs(10), || {
        running.progress.ceiling().filter(|&c| c < 120.0)
    })
    .await;
    // the batches already under way were paced by the rate alone
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = running.migrated();
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let during = running.migrated() - before;
    let later = running.progress.ceiling();
    let holding = running.holding();
    // status lists the daemon as paced (its heartbeat's reason)
    let beat: Option<String> = db
        .client()
        .await
        .query_one("SELECT holding FROM decant.daemon", &[])
        .await
        .unwrap()
        .get(0);
    working.store(false, Ordering::Relaxed);
    traffic.await.unwrap();
    running.stop().await;
    // slowed: under 80% of the 400 users the rate allows in 2 s (the
    // ceiling falls from under 120 to about 60 users/s meanwhile; the
    // batches under way when it fell, a quarter second's each, count
    // too), but still migrating, and not held back
    let first = first.expect("a ceiling within 10 s of the traffic");
    let below = below.unwrap_or_else(|| panic!("no ceiling under 120 users/s (first {first:.0})"));
    let later = later.expect("a ceiling 2.5 s later");
    assert!(
        below <= first && later < below,
        "ceiling {first:.0}, then {below:.0}, then {later:.0} users/s: not cut step by step"
    );
    assert!(
        during > 0 && during < 320,
        "{during} users in 2 s under a ceiling of {below:.0} then {later:.0} users/s"
    );
    assert_eq!(holding, "", "held back instead of slowed");
    let beat = beat.unwrap_or_default();
    assert!(
        beat.starts_with("paced to ") && beat.contains("others' commits are "),
        "heartbeat: {beat:?}"
    );
}

/// Sessions running small transactions as fast as they can until the
/// flag is cleared.
fn flood(
    clients: Vec<tokio_postgres::Client>,
) -> (Arc<AtomicBool>, Vec<tokio::task::JoinHandle<()>>) {
    let working = Arc::new(AtomicBool::new(true));
    let tasks = clients
        .into_iter()
        .map(|client| {
            let w = working.clone();
            tokio::spawn(async move {
                while w.load(Ordering::Relaxed) {
                    client.execute("SELECT 1", &[]).await.unwrap();
                }
            })
        })
        .collect();
    (working, tasks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_surge_of_other_transactions_makes_the_daemon_yield_until_it_passes() {
    let db = TestDb::new().await;
    let decant = db.game(3000).await;
    // the load yield alone, on this database's transactions (the other
    // tests' databases share the server); slow enough not to finish
    let opts = RunOptions {
        rate: Some("40/s".parse().unwrap()),
        throttle: Throttle {
            max_commit_slowdown: None,
            whole_server: false,
            ..Throttle::default()
        },
        ..RunOptions::default()
    };
    // the usual load: one session, a statement every 50 ms
    let (steady, steady_task) = busy(db.client().await);
    let running = Running::start(&decant, opts);
    // the usual rate needs twenty seconds of history (longer on a busy
    // machine, where the monitor's ticks come late)
    load_until(&running.progress, 120, |_| true)
        .await
        .expect("no view of the load in two minutes");
    // (a busy machine's hiccup may read as a surge for a moment)
    let (usual_now, usual, share) = load_until(&running.progress, 10, |(_, _, share)| share == 1.0)
        .await
        .expect("a view of the load");
    assert_eq!(
        share, 1.0,
        "yields to its usual load: {usual_now:.0}/s, usual {usual:.0}/s"
    );
    // the daemon's own transactions (its batches, about 2 a user here)
    // are not the others': one session at 20 a second, give or take what
    // the server has not published yet and the daemon's few uncounted
    // statements
    assert!(
        (1.0..60.0).contains(&usual),
        "the usual rate {usual:.0}/s is not the steady session's"
    );
    // three sessions as fast as they can: many times the usual load
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(db.client().await);
    }
    let (surging, surge) = flood(clients);
    let seen = load_until(&running.progress, 30, |(_, _, share)| share < 0.5).await;
    let ceiling = running.progress.ceiling();
    let paced = running.progress.paced().unwrap_or_default();
    surging.store(false, Ordering::Relaxed);
    for t in surge {
        t.await.unwrap();
    }
    let (now, _, share) = seen.expect("a view of the load");
    assert!(
        share < 0.5,
        "the daemon took {share:.2} of its rate in the surge ({now:.0}/s against {usual:.0}/s)"
    );
    // (seen at the first moment the share fell: the window may still be
    // partly before the flood, and the server publishes counts late)
    assert!(
        now > 1.25 * usual,
        "the surge ran {now:.0}/s against {usual:.0}/s"
    );
    assert!(
        ceiling.is_some_and(|c| c < 40.0),
        "no ceiling under the surge: {ceiling:?}"
    );
    assert!(
        paced.contains("the server's other transactions run at"),
        "progress: {paced:?}"
    );
    // the surge over, the daemon takes its whole rate again within a
    // window or two
    let after = load_until(&running.progress, 30, |(_, _, share)| share == 1.0).await;
    let report = running.stop().await;
    steady.store(false, Ordering::Relaxed);
    steady_task.await.unwrap();
    let (after, _, share) = after.expect("a view of the load");
    assert_eq!(share, 1.0, "still yielding after the surge: {after:.0}/s");
    assert!(report.migrated > 0);
}

/// Polls the daemon's view of the load every 100 ms until `ok` holds of
/// it or `secs` pass; returns the last view.
async fn load_until(
    progress: &Progress,
    secs: u64,
    ok: impl Fn((f64, f64, f64)) -> bool,
) -> Option<(f64, f64, f64)> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let view = progress.load();
        if view.is_some_and(&ok) || Instant::now() > deadline {
            return view;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_throttle_counts_working_sessions_not_sleepers_nor_other_daemons() {
    let db = TestDb::new().await;
    let decant = db.game(150).await;
    let touchy = |whole_server: bool| RunOptions {
        throttle: Throttle {
            max_commit_slowdown: Some(0.001),
            whole_server,
            ..Throttle::default()
        },
        ..RunOptions::default()
    };
    // a session of another database on the same server working: the
    // whole server's traffic holds the daemon back
    let elsewhere = TestDb::new().await;
    let (working, traffic) = busy(elsewhere.client().await);
    let running = Running::start(&decant, touchy(true));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let holding = running.holding();
    let report = running.stop().await;
    working.store(false, Ordering::Relaxed);
    traffic.await.unwrap();
    assert_eq!(
        report.migrated, 0,
        "worked while another database's session worked"
    );
    assert!(
        holding.contains("other sessions work"),
        "holding: {holding:?}"
    );

    // a session asleep in pg_sleep, and another daemon's session working
    // (marked as every daemon session is): neither is the backend's traffic
    let sleeper = db.client().await;
    let asleep = tokio::spawn(async move {
        let _ = sleeper.execute("SELECT pg_sleep(30)", &[]).await;
    });
    let peer = db.client().await;
    peer.query_one(
        "SELECT 1 FROM (SELECT pg_advisory_lock_shared(1684366177, 1)) AS mark",
        &[],
    )
    .await
    .unwrap();
    let (working, peer_work) = busy(peer);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // (this database only: the other tests' databases share the server)
    let report = Running::start(&decant, touchy(false)).finish().await;
    working.store(false, Ordering::Relaxed);
    peer_work.await.unwrap();
    asleep.abort();
    assert_eq!(
        report.migrated + report.failed,
        150,
        "a sleeper and another daemon's session held the daemon back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_waiting_on_the_daemons_locks_hold_it_back() {
    let db = TestDb::new().await;
    let decant = db.game(60).await;
    let client = db.client().await;
    // slow batches: each config row takes 100 ms to insert
    client
        .batch_execute(
            "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN PERFORM pg_sleep(0.1); RETURN NEW; END $$;
             CREATE TRIGGER slow BEFORE INSERT ON user_config FOR EACH ROW EXECUTE FUNCTION slow();",
        )
        .await
        .unwrap();
    // this test's own sessions would otherwise trip the commit probe first
    let lock_waits_only = without_probe();
    let running = Running::start(&decant, lock_waits_only);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // a backend write to a user of the first batch (ids 1..10) waits
    let backend = db.client().await;
    let write = tokio::spawn(async move {
        backend
            .execute("UPDATE \"user\" SET name = 'waited' WHERE id = 2", &[])
            .await
    });
    let started = Instant::now();
    let mut seen = None;
    while started.elapsed() < Duration::from_secs(5) && seen.is_none() {
        let holding = running.holding();
        seen = Some(holding).filter(|h| h.contains("wait on locks the daemon holds"));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    write.await.unwrap().unwrap();
    running.stop().await;
    assert!(
        seen.is_some(),
        "the daemon did not notice the session it blocked"
    );
}

#[tokio::test]
async fn a_dry_run_claims_and_verifies_a_batch_and_writes_nothing() {
    let db = TestDb::new().await;
    let decant = db.game(300).await;
    let client = db.client().await;
    let snapshot = async || -> (i64, String) {
        let r = client
            .query_one(
                "SELECT (SELECT count(*) FROM decant.user_state) + (SELECT count(*) FROM user_statistic) \
                      + (SELECT count(*) FROM \"user\" WHERE migrated), \
                        (SELECT md5(string_agg(data::text, ',' ORDER BY id)) FROM \"user\")",
                &[],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    let before = snapshot().await;
    let d = decant::dry_run(&decant, 120, false).await.unwrap();
    assert_eq!(
        d.claimed,
        (1..=120i64).map(UserId::from).collect::<Vec<_>>()
    );
    let dirty: Vec<i64> = (1..=120)
        .filter(|&i| crate::example::user(1, i).dirt.is_some())
        .collect();
    let mut failed: Vec<i64> = d
        .report
        .failed
        .iter()
        .map(|f| f.user.as_int().unwrap())
        .collect();
    failed.sort_unstable();
    assert!(
        !failed.is_empty() && failed.iter().all(|u| dirty.contains(u)),
        "{failed:?}"
    );
    assert_eq!(d.report.migrated.len() + failed.len(), 120);
    assert!(d.report.migrated.iter().all(|m| m.rows > 0));
    // nothing written: no state, no row, no flag, the blobs as they were
    assert_eq!(snapshot().await, before);
    assert_eq!(before.0, 0);

    // and the real run after it does what the dry run said
    let real = decant.migrate_batch(&d.claimed).await.unwrap();
    let mut really_failed: Vec<i64> = real
        .failed
        .iter()
        .map(|f| f.user.as_int().unwrap())
        .collect();
    really_failed.sort_unstable();
    assert_eq!(really_failed, failed);
}

async fn migrated_ids(client: &tokio_postgres::Client) -> Vec<i64> {
    crate::harness::column(
        client,
        "SELECT id FROM \"user\" WHERE migrated ORDER BY id",
        &[],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cohort_rollbacks_restore_blobs_and_hold_users_until_released() {
    let db = TestDb::new().await;
    let n = 300;
    let decant = db.game(n).await;
    let client = db.client().await;
    let first: Vec<i64> = (1..=150).collect();
    for chunk in first.chunks(50) {
        decant.migrate_batch(chunk).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let t: std::time::SystemTime = client.query_one("SELECT now()", &[]).await.unwrap().get(0);
    let second: Vec<i64> = (151..=n).collect();
    for chunk in second.chunks(50) {
        decant.migrate_batch(chunk).await.unwrap();
    }
    let all_migrated = migrated_ids(&client).await;
    let original = |id: i64| crate::example::user(1, id).blob;
    let legacy_blob_is_original = async |id: i64| {
        let blob: serde_json::Value = client
            .query_one("SELECT data FROM \"user\" WHERE id = $1", &[&id])
            .await
            .unwrap()
            .get(0);
        json_eq(&blob, &original(id)) && row_count(&client, id).await == 0
    };

    // users migrated after t: exactly the second half
    let r = crate::harness::rollback_all(&decant, decant::Cohort::MigratedAfter(t))
        .await
        .unwrap();
    let now = migrated_ids(&client).await;
    assert!(now.iter().all(|&id| id <= 150), "{now:?}");
    let rolled: Vec<i64> = all_migrated
        .iter()
        .copied()
        .filter(|id| *id > 150)
        .collect();
    assert_eq!(r.migrated as usize, rolled.len());
    for &id in &rolled {
        assert!(legacy_blob_is_original(id).await, "user {id}");
    }

    // a percentage by the rollout hash, then a list
    crate::harness::rollback_all(&decant, decant::Cohort::Percent(30.0))
        .await
        .unwrap();
    let left: i64 = client
        .query_one(
            "SELECT count(*) FROM \"user\" WHERE migrated AND decant.rollout_bucket(id) < 3000",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
    let before = migrated_ids(&client).await;
    let kept: Vec<i64> = before.iter().copied().filter(|id| *id % 7 != 0).collect();
    let listed: Vec<i64> = before.iter().copied().filter(|id| *id % 7 == 0).collect();
    assert!(!listed.is_empty() && !kept.is_empty());
    let r = crate::harness::rollback_all(
        &decant,
        decant::Cohort::Ids(listed.iter().copied().map(UserId::from).collect()),
    )
    .await
    .unwrap();
    assert_eq!(r.migrated as usize, listed.len());
    assert_eq!(migrated_ids(&client).await, kept);

    // held: the daemon leaves them legacy, status shows them
    let held = all_migrated.len() - kept.len();
    let run = crate::harness::run_all(&decant).await.unwrap();
    assert_eq!(run.migrated, 0, "held users were migrated again");
    let status = decant::status(&decant, &decant::Schedule::default())
        .await
        .unwrap();
    assert_eq!(status.held as usize, held);
    assert!(status.to_string().contains(&format!("held       {held}")));

    // released: one, then all
    assert_eq!(
        decant
            .release(Some(&[UserId::from(listed[0])]))
            .await
            .unwrap(),
        1
    );
    assert_eq!(crate::harness::run_all(&decant).await.unwrap().migrated, 1);
    assert_eq!(decant.release(None).await.unwrap() as usize, held - 1);
    assert_eq!(
        crate::harness::run_all(&decant).await.unwrap().migrated as usize,
        held - 1
    );
    assert_eq!(migrated_ids(&client).await, all_migrated);

    // everyone back
    let r = crate::harness::rollback_all(&decant, decant::Cohort::All)
        .await
        .unwrap();
    assert_eq!(r.migrated as usize, all_migrated.len());
    assert!(migrated_ids(&client).await.is_empty());
    for id in 1..=n {
        assert!(legacy_blob_is_original(id).await, "user {id}");
    }
}

/// Two workers at the control row's rate (no write to the control row).
async fn run_at_control_rate(decant: &Decant) -> decant::Result<RunReport> {
    decant::run(
        decant,
        RunOptions {
            workers: 2,
            ..RunOptions::default()
        },
        Arc::new(Progress::default()),
        std::future::pending(),
    )
    .await
}

async fn failed_states(client: &tokio_postgres::Client) -> Vec<(i64, i32)> {
    client
        .query(
            "SELECT user_id, attempts FROM decant.user_state WHERE state = 'failed' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_fault_stops_the_run_without_failing_anyone() {
    let db = TestDb::new().await;
    let decant = db.game(300).await;
    let client = db.client().await;
    client
        .batch_execute("ALTER TABLE user_bot RENAME TO user_bot_away")
        .await
        .unwrap();
    let err = crate::harness::run_all(&decant)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("fault of the tables") && err.contains("user_bot"),
        "{err}"
    );
    assert_eq!(count_migrated(&client).await, 0);
    assert_eq!(failed_states(&client).await, vec![], "no attempt counted");
    client
        .batch_execute("ALTER TABLE user_bot_away RENAME TO user_bot")
        .await
        .unwrap();
    let report = crate::harness::run_all(&decant).await.unwrap();
    assert_eq!(report.migrated + report.failed, 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_database_or_a_revoked_permission_stops_the_run_without_failing_anyone() {
    let db = TestDb::new().await;
    db.game(200).await;
    let client = db.client().await;
    let spec = crate::example::spec();

    // the database made read-only (as a failover to a standby would)
    client
        .batch_execute(
            "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET default_transaction_read_only = on', \
               current_database()); END $$",
        )
        .await
        .unwrap();
    let fresh = Decant::connect(&db.url, spec.clone(), 4).unwrap();
    let err = crate::harness::run_all(&fresh)
        .await
        .unwrap_err()
        .to_string();
    // (the first write is the rate into the control row)
    // and it says what to do: the server's message does not
    assert!(
        err.contains("read-only transaction")
            && err.contains("run this against the primary")
            && !err.contains("decant init"),
        "{err}"
    );
    // at the control row's rate, the first refusal is the claim's
    let err = run_at_control_rate(&fresh).await.unwrap_err().to_string();
    assert!(
        err.contains("read-only transaction") && err.contains("against the primary"),
        "{err}"
    );
    client
        .batch_execute(
            "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I RESET default_transaction_read_only', \
               current_database()); END $$",
        )
        .await
        .unwrap();
    assert_eq!(failed_states(&client).await, vec![], "no attempt counted");
    assert_eq!(count_migrated(&client).await, 0);

    // a role that may write the tables, then loses INSERT on one of them
    let role = format!("daemon_{}", std::process::id());
    client
        .batch_execute(&format!(
            "DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN; \
             GRANT INSERT ON decant.daemon TO {role}; GRANT SELECT, DELETE ON decant.daemon TO {role}; \
             GRANT SELECT, UPDATE ON decant.pass TO {role}"
        ))
        .await
        .unwrap();
    decant::apply_grants(&client, &spec, &role).await.unwrap();
    client
        .batch_execute(&format!("REVOKE INSERT ON user_bot FROM {role}"))
        .await
        .unwrap();
    let url = db.url_as(&role);
    let as_role = Decant::connect(&url, spec.clone(), 4).unwrap();
    let err = run_at_control_rate(&as_role).await.unwrap_err().to_string();
    assert!(
        err.contains("fault of the tables")
            && err.contains("permission denied")
            && err.contains("`decant grants <role>`"),
        "{err}"
    );
    assert_eq!(failed_states(&client).await, vec![], "no attempt counted");
    assert_eq!(count_migrated(&client).await, 0);
    // given back: the same role finishes the table
    client
        .batch_execute(&format!("GRANT INSERT ON user_bot TO {role}"))
        .await
        .unwrap();
    let report = run_at_control_rate(&as_role).await.unwrap();
    assert_eq!(report.migrated + report.failed, 200);
    drop((fresh, as_role));
    crate::harness::end_sessions_of(&client, &role).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_failing_on_a_database_error_counts_one_attempt_and_the_rest_migrate() {
    let db = TestDb::new().await;
    let users = 400;
    let decant = db.game(users).await;
    let client = db.client().await;
    // a trigger that refuses user 57's config row: a database error in
    // whichever batch holds it, no fault of the table's
    client
        .batch_execute(
            "CREATE FUNCTION refuse_57() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN IF NEW.user_id = 57 THEN RAISE EXCEPTION 'user 57 refused'; END IF; RETURN NEW; END $$;
             CREATE TRIGGER refuse_57 BEFORE INSERT ON user_config FOR EACH ROW EXECUTE FUNCTION refuse_57();",
        )
        .await
        .unwrap();
    let report = crate::harness::run_all(&decant).await.unwrap();
    let failed = failed_states(&client).await;
    let f57: Vec<_> = failed.iter().filter(|(u, _)| *u == 57).collect();
    assert_eq!(
        f57,
        vec![&(57, 1)],
        "one attempt for user 57 in one run: {failed:?}"
    );
    assert!(!is_migrated(&client, 57).await);
    assert!(is_migrated(&client, 56).await && is_migrated(&client, 58).await);
    assert_eq!(report.migrated + report.failed, users as u64);
    let why: String = client
        .query_one(
            "SELECT last_error FROM decant.user_state WHERE user_id = 57",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(why.contains("user 57 refused"), "{why}");
    // status groups it by code and table, never by the message's values
    let status = decant::status(&decant, &decant::Schedule::default())
        .await
        .unwrap();
    let group = status
        .failures
        .iter()
        .find(|g| g.reason.starts_with("database error"))
        .unwrap_or_else(|| panic!("{status}"));
    assert_eq!(
        group.reason, "database error P0001 writing rows of table user_config",
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_workers_than_free_sessions_are_refused_naming_the_limit() {
    let db = TestDb::new().await;
    db.game(10).await;
    let client = db.client().await;
    let role = format!("limited_{}", std::process::id());
    client
        .batch_execute(&format!(
            "DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN CONNECTION LIMIT 3"
        ))
        .await
        .unwrap();
    let url = db.url_as(&role);
    let limited = Decant::connect(&url, crate::example::spec(), 8).unwrap();
    let opts = RunOptions {
        workers: 4,
        ..RunOptions::default()
    };
    let err = decant::run(
        &limited,
        opts,
        Arc::new(Progress::default()),
        std::future::pending(),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("--workers 4")
            && err
                .to_string()
                .contains("the role (its CONNECTION LIMIT) has 2 free"),
        "{err}"
    );
    // within the limit, the check passes
    if let Err(err) = decant::run(
        &limited,
        RunOptions::default(),
        Arc::new(Progress::default()),
        std::future::pending(),
    )
    .await
    {
        assert!(!err.to_string().contains("free"), "{err}");
    }
    drop(limited);
    crate::harness::end_sessions_of(&client, &role).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_share_the_rate_and_status_lists_both() {
    let db = TestDb::new().await;
    let decant = db.game(1500).await;
    let client = db.client().await;
    set(&decant, Setting::Rate("40/s".parse().unwrap())).await;
    // (the throttle off: other tests' traffic would only add noise)
    let opts = without_probe;
    let other = Decant::connect(&db.url, crate::example::spec(), 4).unwrap();
    let a = Running::start(&decant, opts());
    let b = Running::start(&other, opts());
    // each notices the other within a beat (a second)
    let mut status = decant::status(&decant, &decant::Schedule::default())
        .await
        .unwrap();
    for _ in 0..50 {
        let both_shared = status.daemons.len() == 2
            && status
                .daemons
                .iter()
                .all(|d| d.rate_share.as_deref() == Some("20/s"));
        if both_shared {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        status = decant::status(&decant, &decant::Schedule::default())
            .await
            .unwrap();
    }
    assert_eq!(status.daemons.len(), 2, "{status}");
    for d in &status.daemons {
        assert_eq!(d.job, "migrate");
        assert_eq!(d.rate_share.as_deref(), Some("20/s"), "{status}");
        assert_eq!(d.pid as u32, std::process::id());
    }
    assert!(status.to_string().contains("rate share 20/s"), "{status}");
    let started = Instant::now();
    let before = a.migrated() + b.migrated();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = a.migrated() + b.migrated() - before;
    let secs = started.elapsed().as_secs_f64();
    a.stop().await;
    b.stop().await;
    // 40/s in all, not 40/s each (80/s); a batch's worth of slack either side
    let rate = during as f64 / secs;
    assert!(
        (25.0..=55.0).contains(&rate),
        "{during} users in {secs:.1} s: {rate:.1}/s for two daemons at 40/s"
    );
    // stopped: their rows are gone
    let rows: i64 = client
        .query_one("SELECT count(*) FROM decant.daemon", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_set_in_the_control_row_bind_every_daemon_started_without_its_own() {
    let db = TestDb::new().await;
    let decant = db.game(100).await;
    // a window that is closed now, in another time zone
    let now = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::get("Asia/Kathmandu").unwrap());
    let start = (now.hour() + 2) % 24;
    let window = format!("{start:02}:00-{:02}:00", (start + 1) % 24);
    for s in [format!("window={window}"), "tz=Asia/Kathmandu".to_string()] {
        set(&decant, s.parse().unwrap()).await;
    }
    let status = decant::status(&decant, &decant::Schedule::default())
        .await
        .unwrap();
    assert_eq!(status.windows, format!("{window} Asia/Kathmandu"));
    let opts = without_probe;
    let running = Running::start(&decant, opts());
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let holding = running.holding();
    assert_eq!(running.migrated(), 0, "worked outside the stored window");
    assert!(holding.contains("outside the windows"), "{holding:?}");
    // status names the daemon as held by the window (its heartbeat, about
    // every second)
    let asked = Instant::now();
    loop {
        let status = decant::status(&decant, &decant::Schedule::default())
            .await
            .unwrap()
            .to_string();
        if status.contains("holding back: outside the windows") {
            break;
        }
        assert!(asked.elapsed() < Duration::from_secs(5), "{status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // changed live: the running daemon goes on within about a second
    set(&decant, "window=none".parse().unwrap()).await;
    let report = running.finish().await;
    assert!(report.migrated > 90, "{report:?}");
    assert!("tz=Mars/Olympus".parse::<Setting>().is_err());
    assert!("window=25:00-26:00".parse::<Setting>().is_err());
}

/// A daemon started with windows of its own (`run --window`): status,
/// asked without windows, projects the finish through those, not the
/// control row's (none: always open), and lists them with the daemon.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_projects_through_a_running_daemon_s_own_windows() {
    let db = TestDb::new().await;
    let decant = db.game(100).await;
    let tz = jiff::tz::TimeZone::get("Asia/Kathmandu").unwrap();
    let now = jiff::Timestamp::now().to_zoned(tz.clone());
    let start = (now.hour() + 2) % 24;
    let window = format!("{start:02}:00-{:02}:00", (start + 1) % 24);
    let schedule =
        decant::Schedule::new(vec![window.parse().unwrap()], Some("Asia/Kathmandu")).unwrap();
    let opening = schedule.next_open(jiff::Timestamp::now()).unwrap();
    let running = Running::start(
        &decant,
        RunOptions {
            schedule,
            rate: Some("50/s".parse().unwrap()),
            ..without_probe()
        },
    );
    let asked = Instant::now();
    let status = loop {
        let status = decant::status(&decant, &decant::Schedule::default())
            .await
            .unwrap();
        if status.daemons.iter().any(|d| d.windows.is_some()) {
            break status;
        }
        assert!(asked.elapsed() < Duration::from_secs(5), "{status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // a row removed by a peer (silent for a minute, as through an outage)
    // is made again at the next beat, its windows with it
    db.client()
        .await
        .execute("DELETE FROM decant.daemon", &[])
        .await
        .unwrap();
    let removed = Instant::now();
    loop {
        let again = decant::status(&decant, &decant::Schedule::default())
            .await
            .unwrap();
        if !again.daemons.is_empty() {
            assert!(again.daemons.iter().all(|d| d.windows.is_some()), "{again}");
            break;
        }
        assert!(removed.elapsed() < Duration::from_secs(5), "{again}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    running.stop().await;
    assert_eq!(
        status.windows,
        format!("{window} Asia/Kathmandu"),
        "{status}"
    );
    assert!(
        status
            .to_string()
            .contains(&format!("its own windows {window} Asia/Kathmandu")),
        "{status}"
    );
    let finish: jiff::Timestamp = status
        .projected_finish
        .as_deref()
        .expect("a projection")
        .parse()
        .unwrap();
    assert!(finish > opening.timestamp(), "{status}");
}

/// A `decant.daemon` made by an older decant, without the `windows` and
/// `tz` columns: a daemon with its own windows still beats (status lists
/// it, without its windows) and the projection uses the control row's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_table_without_windows_columns_still_lists_the_daemon() {
    let db = TestDb::new().await;
    let decant = db.game(50).await;
    db.client()
        .await
        .batch_execute("ALTER TABLE decant.daemon DROP COLUMN windows, DROP COLUMN tz")
        .await
        .unwrap();
    let now = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC);
    let start = (now.hour() + 2) % 24;
    let window = format!("{start:02}:00-{:02}:00", (start + 1) % 24);
    let schedule = decant::Schedule::new(vec![window.parse().unwrap()], Some("UTC")).unwrap();
    let running = Running::start(
        &decant,
        RunOptions {
            schedule,
            ..without_probe()
        },
    );
    let asked = Instant::now();
    let status = loop {
        let status = decant::status(&decant, &decant::Schedule::default())
            .await
            .unwrap();
        if !status.daemons.is_empty() {
            break status;
        }
        assert!(asked.elapsed() < Duration::from_secs(5), "{status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    running.stop().await;
    assert_eq!(status.daemons.len(), 1, "{status}");
    assert_eq!(status.daemons[0].windows, None, "{status}");
    assert_eq!(status.windows, "always open", "{status}");
    assert_eq!(status.migrated, 0, "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_soaks_counted_writes_survive_the_daemon_and_a_lost_one_is_named() {
    use crate::traffic::{Traffic, WriteKind};
    let db = TestDb::new().await;
    let n = 400;
    let decant = db.game(n).await;
    let no_probe = without_probe();
    let traffic = Traffic::start(&decant, n, 400.0, WriteKind::Count("pref", "soak"), 3);
    let report = Running::start(&decant, no_probe).finish().await;
    assert!(report.migrated > 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let writes = traffic.stop().await.unwrap();
    assert!(writes.writes >= 50, "only {} writes", writes.writes);
    assert_eq!(writes.by_task.len(), 4);
    assert!(
        writes.lost(&decant).await.unwrap().is_empty(),
        "every acknowledged write is found"
    );
    // a counter set back behind the traffic's back is a lost write, named
    let (&user, &acked) = writes.by_task[2]
        .iter()
        .max_by_key(|(_, n)| **n)
        .expect("task 2 wrote");
    decant
        .patch(user, &json!({"pref": {"soak2": acked - 1}}))
        .await
        .unwrap();
    assert_eq!(
        writes.lost(&decant).await.unwrap(),
        vec![(user, 2, acked, Some(acked - 1))]
    );
}

/// A game blob of about 1.2 MB: 24,000 achievements.
fn whale(w: i64) -> serde_json::Value {
    let achievements: serde_json::Map<String, serde_json::Value> = (0..24_000)
        .map(|i| {
            (
                format!("a{w}_{i:05}"),
                json!({"unlockedAt": 1669702024365u64 + i as u64, "progress": i % 7}),
            )
        })
        .collect();
    json!({"xp": w, "marriage": {"achievements": achievements}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_of_very_large_blobs_comes_a_few_users_a_batch() {
    // Batches size themselves by blob bytes as well as by count: after
    // thousands of small users a batch holds hundreds of them, and the
    // very large blobs behind them would come a count's worth at once
    // (all in memory together, and locked together for seconds).
    let db = TestDb::new().await;
    let decant = db.game(0).await;
    let client = db.client().await;
    let n: i64 = 3000;
    client
        .execute(
            "INSERT INTO \"user\" (id, name, data) \
             SELECT g, 'r', jsonb_build_object('xp', g) FROM generate_series(1, $1::bigint) AS g",
            &[&n],
        )
        .await
        .unwrap();
    let whales: Vec<i64> = (n + 1..=n + 6).collect();
    for &w in &whales {
        insert_user(&client, w, &whale(w)).await;
    }
    // the batch counts below follow the time targets: the other tests'
    // sessions on this shared server must not halve them (busy_batch)
    let steady = |target: Duration| RunOptions {
        target_batch: target,
        busy_batch: target,
        ..without_probe()
    };
    let report = Running::start(&decant, steady(Duration::from_millis(25)))
        .finish()
        .await;
    assert_eq!(report.migrated as usize, n as usize + whales.len());
    for &w in &whales {
        let got = decant.load(w).await.unwrap();
        assert!(json_eq(&got, &whale(w)), "whale {w} differs");
    }
    // each batch is one transaction, the last writer of its users' rows
    let batches = "SELECT count(DISTINCT xmin::text) FILTER (WHERE id <= $1), \
                          count(DISTINCT xmin::text) FILTER (WHERE id > $1) FROM \"user\"";
    let row = client.query_one(batches, &[&n]).await.unwrap();
    let (small, large): (i64, i64) = (row.get(0), row.get(1));
    assert!(
        large >= 3,
        "six blobs of 1.2 MB came in {large} batches (at most two a batch expected)"
    );
    assert!(
        small <= 100,
        "3,000 small users came in {small} batches: a batch should still hold many"
    );
    // a bulk rollback weighs a migrated user by its rows: the six come
    // back a few a batch too, not a count's worth rebuilt under one lock
    // (at `decant rollback`'s default 100 ms a batch)
    let back = decant::rollback(
        &decant,
        decant::Cohort::All,
        RunOptions {
            workers: 2,
            rate: Some(decant::Rate::Max),
            ..steady(Duration::from_millis(100))
        },
        Arc::new(decant::Progress::default()),
        std::future::pending(),
    )
    .await
    .unwrap();
    assert_eq!(back.migrated as usize, n as usize + whales.len());
    for &w in &whales {
        assert!(!is_migrated(&client, w).await);
        assert!(
            json_eq(&raw_blob(&client, w).await, &whale(w)),
            "whale {w} differs"
        );
    }
    let row = client.query_one(batches, &[&n]).await.unwrap();
    let (small, large): (i64, i64) = (row.get(0), row.get(1));
    assert!(
        large >= 3,
        "six migrated users of 24,000 rows were rolled back in {large} batches"
    );
    assert!(
        small <= 100,
        "3,000 small users were rolled back in {small} batches: a batch should still hold many"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_rollback_goes_past_users_held_by_others() {
    // The rollback sizes its next users unlocked and claims up to the last
    // that fits: when others hold every user it sized (live traffic, or a
    // peer worker), it must go on past them, not wait for them.
    let db = TestDb::new().await;
    let decant = db.game(200).await;
    crate::harness::run_all(&decant).await.unwrap();
    let client = db.client().await;
    let migrated = count_migrated(&client).await;
    assert!(migrated > 150, "{migrated} migrated");
    // a backend holds the first 40 migrated users (more than a first batch)
    let mut holder = db.client().await;
    let tx = holder.transaction().await.unwrap();
    let held: Vec<i64> = crate::harness::column(
        &tx,
        "SELECT id FROM \"user\" WHERE migrated ORDER BY id LIMIT 40 FOR NO KEY UPDATE",
        &[],
    )
    .await;
    let rolling = {
        let decant = decant.clone();
        tokio::spawn(async move { rollback_all(&decant, decant::Cohort::All).await })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while count_migrated(&client).await > held.len() as i64 {
        assert!(
            Instant::now() < deadline,
            "the rollback waits on the {} users a backend holds: {} still migrated",
            held.len(),
            count_migrated(&client).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for &u in &held {
        assert!(is_migrated(&client, u).await, "user {u} is held and stays");
    }
    tx.commit().await.unwrap();
    let report = rolling.await.unwrap().unwrap();
    assert_eq!(report.migrated, migrated as u64);
    assert_eq!(count_migrated(&client).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_takes_a_young_run_s_rate_over_the_time_it_has_run() {
    let db = TestDb::new().await;
    let decant = db.game(3000).await;
    set(&decant, "rate=100/s".parse().unwrap()).await;
    let running = Running::start(&decant, without_probe());
    tokio::time::sleep(Duration::from_secs(4)).await;
    let status = decant::status(&decant, &Default::default()).await.unwrap();
    let done = running.migrated();
    running.stop().await;
    // about 400 users in 4 s: over a whole minute that would read 7/s
    assert!(done >= 120, "{done} users in 4 s at 100/s");
    assert!(
        status.recent_rate > 20.0 && status.recent_rate < 200.0,
        "{} users/s after {done} users in 4 s",
        status.recent_rate
    );
    assert_eq!(status.daemons.len(), 1, "{status}");
    // a daemon started again a while later, paused: its predecessor's
    // users are not its rate (they read as 80/s over its 5 s), and no
    // finish is projected while paused
    tokio::time::sleep(Duration::from_secs(6)).await;
    set(&decant, Setting::Paused(true)).await;
    let again = Running::start(&decant, without_probe());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let status = decant::status(&decant, &Default::default()).await.unwrap();
    again.stop().await;
    assert_eq!(status.recent_rate, 0.0, "{status}");
    assert_eq!(status.projected_finish, None, "{status}");
    assert!(
        status
            .to_string()
            .contains("finish     not projected: paused"),
        "{status}"
    );
}

/// While a rollback runs (here paused before its first batch, every user
/// still migrated), status does not say the migration is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_during_a_rollback_projects_no_finish() {
    let db = TestDb::new().await;
    let decant = db.game(60).await;
    crate::harness::run_all(&decant).await.unwrap();
    let client = db.client().await;
    client
        .batch_execute("DELETE FROM \"user\" WHERE NOT migrated")
        .await
        .unwrap();
    set(&decant, Setting::Paused(true)).await;
    let (tx, rx) = oneshot::channel::<()>();
    let d = decant.clone();
    let task = tokio::spawn(async move {
        decant::rollback(
            &d,
            decant::Cohort::All,
            without_probe(),
            Arc::new(Progress::default()),
            async move {
                let _ = rx.await;
            },
        )
        .await
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let status = decant::status(&decant, &Default::default()).await.unwrap();
    let _ = tx.send(());
    task.await.unwrap().unwrap();
    assert_eq!(status.legacy, 0, "{status}");
    assert!(
        status
            .to_string()
            .contains("finish     not projected: a rollback is running"),
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_fits_its_workers_to_the_handle_s_pool() {
    let db = TestDb::new().await;
    let client = db.client().await;
    crate::example::load(&client, 300, 1).await.unwrap();
    let spec = crate::example::spec();
    decant::init(&client, &spec).await.unwrap();

    // one session: no room for the monitor and a worker
    let one = Decant::connect(&db.url, spec.clone(), 1).unwrap();
    let err = decant::run(
        &one,
        without_probe(),
        Arc::new(Progress::default()),
        std::future::pending(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("at least 2 sessions"), "{err}");

    // two sessions and three workers asked: one worker beside the monitor.
    // The extra workers used to wait for a session until a peer ended and
    // gave up after the pool's wait (10 s; CI saw it when a loaded server
    // held the first worker back): pause the run past that wait
    let two = Decant::connect(&db.url, spec, 2).unwrap();
    // (the control row through the other handle: the run holds all of this one)
    set(&one, Setting::Paused(true)).await;
    let running = Running::start(
        &two,
        RunOptions {
            workers: 3,
            until_done: true,
            ..without_probe()
        },
    );
    let mut workers = None;
    for _ in 0..200 {
        workers = client
            .query_opt("SELECT workers FROM decant.daemon", &[])
            .await
            .unwrap()
            .map(|r| r.get::<_, i32>(0));
        if workers.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(workers, Some(1), "the daemon's row: the workers it runs");
    tokio::time::sleep(Duration::from_millis(10_500)).await;
    assert!(!running.task.is_finished(), "the run ended while paused");
    set(&one, Setting::Paused(false)).await;
    let report = running.finish().await;
    assert_eq!(report.migrated as i64, count_migrated(&client).await);
    assert!(report.migrated as usize >= clean(300).len(), "{report:?}");
}

/// A bulk rollback that meets a user whose rows do not rebuild a blob
/// (here a write that bypassed decant put a claimed value back into its
/// blob column) leaves that user migrated, reports it, and ends: it took
/// the user again pass after pass before, and never ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_ends_past_a_user_that_cannot_be_rebuilt() {
    let db = TestDb::new().await;
    let decant = db.game(40).await;
    let client = db.client().await;
    let migrated = crate::harness::run_all(&decant).await.unwrap().migrated;
    assert!(migrated > 20);
    let broken: i64 = client
        .query_one(
            "SELECT min(id) FROM \"user\" WHERE migrated AND id > 10",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    client
        .execute(
            "UPDATE \"user\" SET data = data || '{\"xp\": 99}' WHERE id = $1",
            &[&broken],
        )
        .await
        .unwrap();
    let r = tokio::time::timeout(
        Duration::from_secs(60),
        crate::harness::rollback_all(&decant, decant::Cohort::All),
    )
    .await
    .expect("the rollback ends")
    .unwrap();
    assert_eq!((r.migrated, r.failed), (migrated - 1, 1), "{r:?}");
    assert_eq!(count_migrated(&client).await, 1);
    assert!(is_migrated(&client, broken).await);
}

/// A server or a proxy ending idle sessions (PostgreSQL 14's
/// `idle_session_timeout` set on the role or database; a proxy's idle
/// limit) ended a paced worker's session while it waited for its turn,
/// before every batch: re-opened, the session waited for another turn and
/// was ended again, and the run stood still (0 users/s). The daemon's
/// sessions now lift the server's limit, and a batch whose session was
/// lost goes at once on the new one (its turn was taken).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paced_daemon_goes_on_where_idle_sessions_are_ended() {
    // a batch of 4 every half second: each worker idles past the limits
    let opts = || RunOptions {
        rate: Some("8/s".parse().unwrap()),
        max_batch: 4,
        workers: 1,
        until_done: true,
        ..without_probe()
    };
    let users = 40;

    // the server's own limit, where there is one
    let db = TestDb::new().await;
    drop(db.game(users).await);
    let admin = db.client().await;
    let version = crate::harness::server_version(&admin).await;
    if version >= 140000 {
        let name = db.name();
        admin
            .batch_execute(&format!(
                "ALTER DATABASE {name} SET idle_session_timeout = '200ms'"
            ))
            .await
            .unwrap();
        let decant = Decant::connect(&db.url, crate::example::spec(), 4).unwrap();
        // the daemon's sessions seen while it runs: its own, kept
        let watcher = crate::harness::Poller::start(
            db.client().await,
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
              AND application_name = 'decant'",
            std::collections::BTreeSet::new(),
            |seen, pids: Vec<i32>| seen.extend(pids),
        );
        let report = tokio::time::timeout(
            Duration::from_secs(60),
            Running::start(&decant, opts()).task,
        )
        .await
        .expect("the daemon ends past the server's idle limit")
        .unwrap()
        .unwrap();
        let sessions = watcher.stop().await.len();
        assert_eq!(report.migrated + report.failed, users as u64, "{report:?}");
        assert_eq!(count_migrated(&admin).await, report.migrated as i64);
        // the run's first, the monitor's and a worker's: none ended
        assert!(
            sessions <= 4,
            "the server ended the daemon's sessions: {sessions} seen"
        );
    }

    // a proxy's: every idle session of decant's older than 200 ms ended
    let db = TestDb::new().await;
    let decant = db.game(users).await;
    let admin = db.client().await;
    let reaper = crate::harness::Poller::start(
        db.client().await,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
          WHERE datname = current_database() AND application_name = 'decant' \
            AND state = 'idle' AND state_change < now() - interval '200 ms'",
        0,
        |ended, n: Vec<i64>| *ended += n[0],
    );
    let report = tokio::time::timeout(
        Duration::from_secs(60),
        Running::start(&decant, opts()).task,
    )
    .await
    .expect("the daemon ends past a proxy's idle limit")
    .unwrap()
    .unwrap();
    let ended = reaper.stop().await;
    assert!(ended >= 5, "the reaper ended sessions: {ended}");
    assert_eq!(report.migrated + report.failed, users as u64, "{report:?}");
    assert_eq!(count_migrated(&admin).await, report.migrated as i64);
}

/// A role's or database's `default_transaction_isolation` of
/// `serializable` ran the daemon's batches under it: its statements are
/// made for `READ COMMITTED` (one after a lock sees what committed before
/// the lock), and two workers and a writer failed 89 batches in 10 s on
/// serialization conflicts. Every batch of a run and of a rollback now
/// runs at `READ COMMITTED`, whatever the default (a trigger on the
/// source table records the isolation of each of their updates).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_s_batches_run_read_committed_whatever_the_default_isolation() {
    let db = TestDb::new().await;
    let users = 300;
    drop(db.game(users).await);
    let admin = db.client().await;
    let name = db.name();
    admin
        .batch_execute(&format!(
            "CREATE TABLE isolation_seen (level text); \
             CREATE FUNCTION isolation_seen() RETURNS trigger LANGUAGE plpgsql AS \
               $$BEGIN INSERT INTO isolation_seen \
                 VALUES (current_setting('transaction_isolation')); RETURN NULL; END$$; \
             CREATE TRIGGER isolation_seen AFTER UPDATE ON \"user\" \
               FOR EACH STATEMENT EXECUTE PROCEDURE isolation_seen(); \
             ALTER DATABASE {name} SET default_transaction_isolation = 'serializable'"
        ))
        .await
        .unwrap();
    let decant = Decant::connect(&db.url, crate::example::spec(), 6).unwrap();
    let report = Running::start(
        &decant,
        RunOptions {
            rate: Some(decant::Rate::Max),
            workers: 2,
            until_done: true,
            ..without_probe()
        },
    )
    .finish()
    .await;
    assert!(report.migrated > 250, "{report:?}");
    let rolled = rollback_all(&decant, decant::Cohort::All).await.unwrap();
    assert_eq!(rolled.migrated, report.migrated, "{rolled:?}");
    let seen = crate::harness::column::<String>(
        &admin,
        "SELECT DISTINCT level FROM isolation_seen ORDER BY 1",
        &[],
    )
    .await;
    assert_eq!(seen, ["read committed"]);
}
