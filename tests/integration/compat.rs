use crate::example::Rng;
use crate::harness::{TestDb, clean_user, is_migrated};
use decant::json_eq;
use decant::{Error, merge_patch};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

#[tokio::test]
async fn the_wrapper_takes_the_old_or_new_path_by_the_flag() {
    let db = TestDb::new().await;
    let decant = db.game(10).await;
    let id = clean_user();
    let which = async || {
        decant
            .migration_compatible_transaction(
                id,
                async |tx| {
                    let row = tx.query_one("SELECT data->'xp' FROM \"user\" WHERE id = $1", &[&id]).await.unwrap();
                    Ok::<_, Error>(("old", row.get::<_, Value>(0)))
                },
                async |tx| {
                    let row = tx
                        .query_one(
                            "SELECT value::text FROM user_statistic WHERE user_id = $1 AND statistic_id = 'xp'",
                            &[&id],
                        )
                        .await
                        .unwrap();
                    Ok::<_, Error>(("new", serde_json::from_str::<Value>(&row.get::<_, String>(0)).unwrap()))
                },
            )
            .await
            .unwrap()
    };
    let (path, xp_old) = which().await;
    assert_eq!(path, "old");
    decant.migrate_user(id).await.unwrap();
    let (path, xp_new) = which().await;
    assert_eq!(path, "new");
    assert!(json_eq(&xp_old, &xp_new));
}

#[tokio::test]
async fn an_error_in_the_closure_rolls_the_transaction_back() {
    let db = TestDb::new().await;
    let decant = db.game(5).await;
    #[derive(Debug)]
    enum AppError {
        Decant(#[allow(dead_code)] Error),
        Refused,
    }
    impl From<Error> for AppError {
        fn from(e: Error) -> Self {
            AppError::Decant(e)
        }
    }
    let result: Result<(), AppError> = decant
        .migration_compatible_transaction(
            1,
            async |tx| {
                tx.execute("UPDATE \"user\" SET name = 'changed' WHERE id = 1", &[])
                    .await
                    .unwrap();
                Err(AppError::Refused)
            },
            async |_tx| unreachable!("user 1 is legacy"),
        )
        .await;
    assert!(matches!(result, Err(AppError::Refused)));
    assert_eq!(
        name_of(&db, 1).await,
        "player1",
        "the closure's write was rolled back"
    );
}

#[tokio::test]
async fn a_held_lock_gives_a_typed_retryable_timeout() {
    let db = TestDb::new().await;
    let game = db.game(3).await;
    drop(game);
    let spec_text = crate::example::SPEC.replace("lock_timeout_ms = 2000", "lock_timeout_ms = 300");
    let decant = db.decant_with(&spec_text, 2);
    // (the SQL API takes the bound from the spec at init)
    let sql = db.client().await;
    decant::init(&sql, decant.spec()).await.unwrap();
    // (without the bound the call would wait until this cancels it)
    sql.batch_execute("SET statement_timeout = '10s'")
        .await
        .unwrap();
    let mut holder = db.client().await;
    let tx = holder.transaction().await.unwrap();
    tx.execute("SELECT 1 FROM \"user\" WHERE id = 2 FOR UPDATE", &[])
        .await
        .unwrap();

    let started = Instant::now();
    let err = decant.patch(2, &json!({"xp": 1})).await.unwrap_err();
    let waited = started.elapsed();
    assert!(
        matches!(
            err,
            Error::LockTimeout {
                user: decant::UserId::Int(2)
            }
        ),
        "{err}"
    );
    assert!(err.is_retryable());
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    let err = decant.migrate_user(2).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::LockTimeout {
                user: decant::UserId::Int(2)
            }
        ),
        "{err}"
    );
    // the SQL API bounds its wait the same way, on a session of the
    // caller's that sets no lock_timeout of its own
    for call in [
        "SELECT decant.patch(2, '{\"xp\": 1}')",
        "SELECT decant.save(2, '{\"xp\": 1}')",
    ] {
        let started = Instant::now();
        let err = sql.query_one(call, &[]).await.unwrap_err();
        let waited = started.elapsed();
        assert_eq!(
            err.code(),
            Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE),
            "{call}: {err:?}"
        );
        assert!(waited < Duration::from_secs(5), "{call}: {waited:?}");
    }
    // other users are not blocked
    decant.patch(1, &json!({"xp": 1})).await.unwrap();
    tx.rollback().await.unwrap();
    // and once the lock is gone the call goes through
    decant.patch(2, &json!({"xp": 1})).await.unwrap();
}

/// A random operation of a backend: what old clients send. Invalid values
/// only when `dirty` (a legacy user holding them could not migrate).
fn random_op(rng: &mut Rng, dirty: bool) -> (&'static str, Value) {
    let mode = *["kidnap", "murder", "classic", "newmode"]
        .get(rng.range(0, 4) as usize)
        .unwrap();
    let stat = *["points", "gamesPlayed", "brandNew"]
        .get(rng.range(0, 3) as usize)
        .unwrap();
    let choice = loop {
        let c = rng.range(0, 12);
        if dirty || !matches!(c, 5 | 7 | 8) {
            break c;
        }
    };
    match choice {
        0 => (
            "patch",
            json!({"marriage": {"stats": {mode: {stat: rng.range(0, 1000)}}}}),
        ),
        1 => (
            "patch",
            json!({"marriage": {"stats": {mode: {stat: null}}}}),
        ),
        2 => ("patch", json!({"marriage": {"stats": {mode: null}}})),
        3 => (
            "patch",
            json!({"pref": {format!("k{}", rng.range(0, 5)): rng.range(0, 3)}}),
        ),
        4 => (
            "patch",
            json!({"bots": {"selected": ["bot_01", format!("bot_{:02}", rng.range(0, 9))]}}),
        ),
        5 => (
            "patch",
            json!({"bots": {"bot_01": {"level": rng.range(0, 200), "hat": "red"}}}),
        ),
        6 => ("patch", json!({"xp": (rng.range(0, 10_000) as f64) / 4.0})),
        // invalid values: kept in the residual for a migrated user
        7 => (
            "patch",
            json!({"marriage": {"stats": {mode: {stat: "12"}}}}),
        ),
        8 => (
            "patch",
            json!({"marriage": {"config": {"mode": "zombie", "mans": -1}}}),
        ),
        9 => (
            "patch",
            json!({"legacy": {"deep": [1, {"x": {}}]}, "pref": {}}),
        ),
        10 => (
            "patch",
            json!({"marriage": {"achievements": {"a1": {"unlockedAt": 1669702024365u64, "progress": rng.range(0, 9)}}}}),
        ),
        _ => loop {
            let u = crate::example::user(rng.next_u64(), 1);
            if u.dirt.is_none() {
                break ("save", u.blob);
            }
        },
    }
}

#[tokio::test]
async fn load_save_patch_agree_for_legacy_and_migrated_users() {
    let db = TestDb::new().await;
    let decant = db.game(30).await;
    let client = db.client().await;
    let a = clean_user();
    let b = 1_000_000;
    client
        .execute("INSERT INTO \"user\" (id, name, data) SELECT $2, name, data FROM \"user\" WHERE id = $1", &[&a, &b])
        .await
        .unwrap();
    let clean = decant.load(a).await.unwrap();
    for seed in 0..6u64 {
        let mut rng = Rng::new(seed);
        let mut model = clean.clone();
        decant.save(a, &model).await.unwrap();
        decant.save(b, &model).await.unwrap();
        let migrate_at = rng.range(0, 25);
        for step in 0..40 {
            if step == migrate_at {
                let r = decant.migrate_user(b).await.unwrap();
                assert!(
                    r.failed.is_empty(),
                    "seed {seed} step {step}: {:?}",
                    r.failed
                );
            }
            let (op, arg) = random_op(&mut rng, step >= migrate_at);
            match op {
                "patch" => {
                    let ra = decant.patch(a, &arg).await.unwrap();
                    let rb = decant.patch(b, &arg).await.unwrap();
                    merge_patch(&mut model, &arg);
                    assert!(
                        json_eq(&ra, &rb),
                        "seed {seed} step {step}: patch results differ"
                    );
                }
                _ => {
                    decant.save(a, &arg).await.unwrap();
                    decant.save(b, &arg).await.unwrap();
                    model = arg.clone();
                }
            }
            let la = decant.load(a).await.unwrap();
            let lb = decant.load(b).await.unwrap();
            assert!(
                json_eq(&la, &model),
                "seed {seed} step {step}: legacy user differs from the model"
            );
            assert!(
                json_eq(&lb, &model),
                "seed {seed} step {step} ({op} {arg}): migrated={} user differs\n got {lb}\nwant {model}",
                is_migrated(&client, b).await
            );
        }
        assert!(is_migrated(&client, b).await);
        assert!(!is_migrated(&client, a).await);
        // rolling back the migrated user rebuilds the same blob
        assert!(decant.rollback_user(b).await.unwrap());
        assert!(json_eq(&decant.load(b).await.unwrap(), &model));
    }
}

/// A driver error inside a closure converts with `?` and keeps its
/// SQLSTATE: a serialization failure raised by the server is retryable,
/// and the transaction is rolled back.
#[tokio::test]
async fn a_serialization_failure_in_a_closure_is_retryable() {
    let db = TestDb::new().await;
    let decant = db.game(3).await;
    let err = decant
        .migration_compatible_transaction(
            1,
            async |tx| {
                tx.execute("UPDATE \"user\" SET name = 'changed' WHERE id = 1", &[])
                    .await?;
                tx.batch_execute(
                    "DO $$ BEGIN RAISE EXCEPTION 'could not serialize access' \
                     USING ERRCODE = 'serialization_failure'; END $$",
                )
                .await?;
                Ok::<_, Error>(())
            },
            async |_tx| unreachable!("user 1 is legacy"),
        )
        .await
        .unwrap_err();
    assert_eq!(err.sqlstate(), Some("40001"), "{err}");
    assert!(err.is_retryable(), "{err}");
    assert!(
        err.to_string().contains("could not serialize access"),
        "{err}"
    );
    assert_eq!(
        name_of(&db, 1).await,
        "player1",
        "the closure's write was rolled back"
    );
}

/// Two backend transactions that lock each other's users deadlock for
/// real; the one PostgreSQL aborts gets a retryable error through `?`.
#[tokio::test]
async fn a_deadlock_between_closures_is_retryable() {
    let db = TestDb::new().await;
    let decant = db.game(3).await;
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(2));
    let cross = |me: i64, other: i64| {
        let (decant, barrier) = (decant.clone(), barrier.clone());
        tokio::spawn(async move {
            decant
                .migration_compatible_transaction(
                    me,
                    async |tx| {
                        // both hold their own user's lock before either
                        // asks for the other's
                        barrier.wait().await;
                        tx.execute("SELECT 1 FROM \"user\" WHERE id = $1 FOR UPDATE", &[&other])
                            .await?;
                        Ok::<_, Error>(())
                    },
                    async |_tx| unreachable!("the users are legacy"),
                )
                .await
        })
    };
    let (a, b) = (cross(1, 2), cross(2, 1));
    let results = [a.await.unwrap(), b.await.unwrap()];
    let errors: Vec<&Error> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(errors.len(), 1, "exactly one side is aborted: {results:?}");
    assert_eq!(errors[0].sqlstate(), Some("40P01"), "{}", errors[0]);
    assert!(errors[0].is_retryable());
}

/// A session killed under a closure (a restart, a failover, an idle
/// timeout) is a dropped connection: retryable, and the next call works.
#[tokio::test]
async fn a_dropped_connection_in_a_closure_is_retryable() {
    let db = TestDb::new().await;
    let decant = db.game(3).await;
    let err = decant
        .migration_compatible_transaction(
            1,
            async |tx| {
                tx.execute("SELECT pg_terminate_backend(pg_backend_pid())", &[])
                    .await?;
                Ok::<_, Error>(())
            },
            async |_tx| unreachable!("user 1 is legacy"),
        )
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err} ({:?})", err.sqlstate());
    decant.patch(1, &json!({"xp": 2})).await.unwrap();
    assert!(json_eq(&decant.load(1).await.unwrap()["xp"], &json!(2)));
}

/// A user's `name` column, read outside decant.
async fn name_of(db: &TestDb, id: i64) -> String {
    db.client()
        .await
        .query_one("SELECT name FROM \"user\" WHERE id = $1", &[&id])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn load_takes_no_lock_and_writes_nothing() {
    let db = TestDb::new().await;
    let game = db.game(6).await;
    for u in [1, 3, 5] {
        game.migrate_user(u).await.unwrap();
    }
    drop(game);
    // every session of this database is read-only: a row lock or a write
    // in load would fail
    let client = db.client().await;
    let dbname = db.name();
    client
        .batch_execute(&format!(
            "ALTER DATABASE {dbname} SET default_transaction_read_only = on"
        ))
        .await
        .unwrap();
    let decant = db.decant_with(crate::example::SPEC, 2);
    for u in 1..=6 {
        let blob = decant.load(u).await.unwrap();
        assert!(json_eq(&blob, &crate::example::user(1, u).blob), "user {u}");
    }
    let many = decant.load_many(&[1, 2, 3, 4, 5, 6, 77]).await.unwrap();
    assert_eq!(many.len(), 6);
    assert!(matches!(
        decant.load(77).await,
        Err(Error::UserNotFound(decant::UserId::Int(77)))
    ));
    client
        .batch_execute(&format!(
            "ALTER DATABASE {dbname} SET default_transaction_read_only = off"
        ))
        .await
        .unwrap();

    // and a writer holding a user's row does not hold up its load
    let decant = db.decant_with(crate::example::SPEC, 2);
    let mut holder = db.client().await;
    let tx = holder.transaction().await.unwrap();
    tx.execute("SELECT 1 FROM \"user\" WHERE id IN (1, 2) FOR UPDATE", &[])
        .await
        .unwrap();
    let started = Instant::now();
    decant.load(1).await.unwrap();
    decant.load(2).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(1));
    tx.rollback().await.unwrap();
}

#[tokio::test]
async fn a_legacy_call_never_opens_the_target_tables() {
    let db = TestDb::new().await;
    let game = db.game(6).await;
    game.migrate_user(2).await.unwrap();
    game.load(2).await.unwrap();
    game.patch(1, &serde_json::json!({"pref": {"warm": 1}}))
        .await
        .unwrap();
    // a session holding every target table ACCESS EXCLUSIVE (as a DDL
    // or a hand-run LOCK would): a plan that so much as opened one of
    // them would wait behind it
    let mut holder = db.client().await;
    let tx = holder.transaction().await.unwrap();
    tx.batch_execute(
        "LOCK TABLE user_achievement, user_bot, user_config, user_preference, \
         user_selected_bot, user_statistic IN ACCESS EXCLUSIVE MODE",
    )
    .await
    .unwrap();
    let legacy = async {
        let blob = game.load(1).await.unwrap();
        assert_eq!(blob["pref"]["warm"], 1);
        game.load(3).await.unwrap();
        game.patch(3, &serde_json::json!({"pref": {"warm": 3}}))
            .await
            .unwrap();
        game.load_many(&[1, 3]).await.unwrap();
    };
    tokio::time::timeout(Duration::from_secs(5), legacy)
        .await
        .expect("a legacy load or patch waited for the target tables");
    // a migrated user's load does read them, so it waits
    let migrated = tokio::time::timeout(Duration::from_millis(300), game.load(2)).await;
    assert!(migrated.is_err(), "a migrated load read past the lock");
    tx.rollback().await.unwrap();
    assert!(game.load(2).await.is_ok());
}

/// A database `init` set up with another version of decant (here: its
/// reader dropped) is refused by the library and the daemon alike, naming
/// `init`; after `init`, both go on.
#[tokio::test]
async fn a_database_initialized_without_the_reader_says_to_run_init() {
    let db = TestDb::new().await;
    let game = db.game(2).await;
    drop(game);
    let client = db.client().await;
    let name: String = client
        .query_one(
            "SELECT p.oid::regprocedure::text FROM pg_proc p \
             WHERE p.pronamespace = 'decant'::regnamespace AND p.proname LIKE 'rows\\_%\\_user'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    client
        .batch_execute(&format!("DROP FUNCTION {name}"))
        .await
        .unwrap();
    let decant = db.decant_with(crate::example::SPEC, 2);
    let err = decant.load(1).await.unwrap_err().to_string();
    assert!(
        err.contains("decant init") && err.contains("rows_"),
        "{err}"
    );
    // nor does the daemon migrate anyone: its residuals would be of a form
    // the installed SQL API and views may not rebuild
    let err = crate::harness::run_all(&decant)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("decant init") && err.contains("another version"),
        "{err}"
    );
    assert_eq!(crate::harness::count_migrated(&client).await, 0);
    decant::init(&client, decant.spec()).await.unwrap();
    crate::harness::run_all(&decant).await.unwrap();
    assert!(crate::harness::count_migrated(&client).await > 0);
}

/// Upgrading decant: a newer version's reader may have another name for
/// the same mapping. Its `init` keeps the older one, which the backends
/// still running the older library call until they are upgraded; an
/// `init` recording another mapping drops it (such a handle must fail).
#[tokio::test]
async fn init_of_the_same_mapping_keeps_an_older_version_s_reader() {
    let db = TestDb::new().await;
    let game = db.game(4).await;
    let users: Vec<i64> = (1..=4)
        .filter(|&i| crate::example::user(1, i).dirt.is_none())
        .collect();
    crate::harness::run_all(&game).await.unwrap();
    let client = db.client().await;
    let readers = async || -> Vec<String> {
        client
            .query(
                "SELECT p.proname::text FROM pg_proc p \
                 WHERE p.pronamespace = 'decant'::regnamespace AND p.proname LIKE 'rows\\_%' \
                 ORDER BY 1",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    };
    let current = readers().await;
    assert_eq!(current.len(), 1, "{current:?}");
    // the older version's reader: the same function under its name
    client
        .batch_execute(&format!(
            "ALTER FUNCTION decant.\"{}\" RENAME TO rows_0badf00d_user",
            current[0]
        ))
        .await
        .unwrap();
    decant::init(&client, &crate::example::spec())
        .await
        .unwrap();
    let both = readers().await;
    assert_eq!(both.len(), 2, "{both:?}");
    assert!(both.contains(&"rows_0badf00d_user".to_string()));
    let old_reads: i64 = client
        .query_one(
            "SELECT count(*) FROM decant.rows_0badf00d_user($1)",
            &[&users[0]],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(old_reads, 1, "the older backends still read through it");
    assert!(game.load(users[0]).await.is_ok());

    // another mapping recorded (the users rolled back first): every
    // reader but its own goes
    crate::harness::rollback_all(&game, decant::Cohort::All)
        .await
        .unwrap();
    let retyped = crate::example::SPEC.replace("path = \"xp\"", "path = \"experience\"");
    decant::init(&client, &decant::Spec::parse(&retyped).unwrap())
        .await
        .unwrap();
    let after = readers().await;
    assert_eq!(after.len(), 1, "{after:?}");
    assert!(!after.contains(&"rows_0badf00d_user".to_string()) && !after.contains(&current[0]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn load_is_consistent_while_users_migrate_and_roll_back() {
    let db = TestDb::new().await;
    let decant = db.game(12).await;
    let users: Vec<i64> = (1..=12)
        .filter(|&i| crate::example::user(1, i).dirt.is_none())
        .collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flipper = {
        let (decant, users, stop) = (decant.clone(), users.clone(), stop.clone());
        tokio::spawn(async move {
            let mut flips = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for &u in &users {
                    decant.migrate_user(u).await.unwrap();
                    decant.rollback_user(u).await.unwrap();
                    decant.migrate_user(u).await.unwrap();
                    flips += 3;
                }
                for &u in users.iter().step_by(2) {
                    decant.rollback_user(u).await.unwrap();
                    flips += 1;
                }
            }
            flips
        })
    };
    // with no writer, every committed moment holds the original blob
    let mut readers = Vec::new();
    for r in 0..3usize {
        let (decant, users) = (decant.clone(), users.clone());
        readers.push(tokio::spawn(async move {
            let mut loads = 0;
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(4) {
                let u = users[(loads + r) % users.len()];
                let blob = decant.load(u).await.unwrap();
                assert!(
                    json_eq(&blob, &crate::example::user(1, u).blob),
                    "user {u}: a load saw a half-migrated or half-rolled-back state"
                );
                let many = decant.load_many(&users).await.unwrap();
                assert_eq!(many.len(), users.len());
                for (id, blob) in many {
                    assert!(
                        json_eq(&blob, &crate::example::user(1, id.as_int().unwrap()).blob),
                        "user {id} in load_many"
                    );
                }
                loads += 1;
            }
            loads
        }));
    }
    let mut loads = 0;
    for r in readers {
        loads += r.await.unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let flips = flipper.await.unwrap();
    assert!(loads > 100 && flips > 20, "{loads} loads, {flips} flips");
}

/// Every row a user has in the target tables and its source row, each
/// with the transaction that wrote it (`xmin`): what a write touched.
async fn versions(client: &tokio_postgres::Client, id: i64) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    for t in [
        "user_achievement",
        "user_bot",
        "user_config",
        "user_preference",
        "user_selected_bot",
        "user_statistic",
    ] {
        let sql = format!(
            "SELECT '{t} ' || x::text || ' @' || xmin::text FROM {t} AS x WHERE user_id = $1"
        );
        for r in client.query(&sql, &[&id]).await.unwrap() {
            out.insert(r.get(0));
        }
    }
    let source: String = client
        .query_one(
            "SELECT 'source @' || xmin::text FROM \"user\" WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    out.insert(source);
    out
}

#[tokio::test]
async fn a_migrated_patch_writes_only_what_changes() {
    let db = TestDb::new().await;
    let decant = db.game(10).await;
    let client = db.client().await;
    let id = clean_user();
    decant.migrate_user(id).await.unwrap();
    let blob = decant.load(id).await.unwrap();
    let (mode, stats) = blob["marriage"]["stats"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(_, v)| v.is_object())
        .unwrap();
    let (stat, value) = stats.as_object().unwrap().iter().next().unwrap();
    let bumped = value.as_i64().unwrap() + 1;
    let changes = |before: &std::collections::BTreeSet<String>,
                   after: &std::collections::BTreeSet<String>| {
        let gone: Vec<_> = before.difference(after).cloned().collect();
        let new: Vec<_> = after.difference(before).cloned().collect();
        (gone, new)
    };

    // one counter: its one row is rewritten, nothing else (not the residual)
    let before = versions(&client, id).await;
    let patch = json!({"marriage": {"stats": {mode: {stat: bumped}}}});
    let written = decant.patch(id, &patch).await.unwrap();
    let after = versions(&client, id).await;
    let (gone, new) = changes(&before, &after);
    assert_eq!(
        (gone.len(), new.len()),
        (1, 1),
        "gone {gone:?}, new {new:?}"
    );
    assert!(gone[0].starts_with("user_statistic ") && new[0].starts_with("user_statistic "));
    assert!(new[0].contains(&bumped.to_string()), "{new:?}");
    assert!(json_eq(&written, &decant.load(id).await.unwrap()));

    // a key no rule claims: the residual (the source row) alone
    let before = after;
    decant
        .patch(id, &json!({"legacyCoins": 424242}))
        .await
        .unwrap();
    let after = versions(&client, id).await;
    let (gone, new) = changes(&before, &after);
    assert_eq!(
        (gone.len(), new.len()),
        (1, 1),
        "gone {gone:?}, new {new:?}"
    );
    assert!(gone[0].starts_with("source @") && new[0].starts_with("source @"));

    // a patch that changes nothing writes nothing; a removed key deletes
    // its row and nothing else
    let before = after;
    decant.patch(id, &patch).await.unwrap();
    assert_eq!(versions(&client, id).await, before);
    decant
        .patch(id, &json!({"marriage": {"stats": {mode: {stat: null}}}}))
        .await
        .unwrap();
    let (gone, new) = changes(&before, &versions(&client, id).await);
    assert_eq!(
        (gone.len(), new.len()),
        (1, 0),
        "gone {gone:?}, new {new:?}"
    );
    assert!(gone[0].starts_with("user_statistic "));
    let mut expected = written;
    expected["marriage"]["stats"][mode]
        .as_object_mut()
        .unwrap()
        .remove(stat);
    expected["legacyCoins"] = json!(424242);
    assert!(json_eq(&decant.load(id).await.unwrap(), &expected));
}

#[tokio::test]
async fn a_failed_write_commits_nothing_and_the_session_is_reused() {
    let db = TestDb::new().await;
    let game = db.game(10).await;
    let client = db.client().await;
    let (legacy, migrated) = two_clean_users();
    game.migrate_user(migrated).await.unwrap();
    drop(game);
    // one session, so a call after a failure runs on the same one
    let decant = db.decant_with(crate::example::SPEC, 1);
    client
        .batch_execute(
            "ALTER TABLE \"user\" ADD CONSTRAINT no_forbidden CHECK (NOT data ? 'forbidden');
             ALTER TABLE user_statistic ADD CONSTRAINT not_this CHECK (value <> 123456789)",
        )
        .await
        .unwrap();
    let before = decant.load_many(&[legacy, migrated]).await.unwrap();

    let err = decant
        .patch(legacy, &json!({"forbidden": 1}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("writing the blob"), "{err}");
    // the row write fails; the residual write sent with it must not land
    let err = decant
        .patch(
            migrated,
            &json!({"legacyCoins": 7, "marriage": {"stats": {"duo": {"kills": 123456789}}}}),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("writing changed rows"), "{err}");
    assert!(
        err.to_string().contains(&format!("user {migrated}")),
        "{err}"
    );
    assert_eq!(decant.load_many(&[legacy, migrated]).await.unwrap(), before);

    // the session is clean: the next calls on it work and commit
    for u in [legacy, migrated] {
        let out = decant.patch(u, &json!({"legacyCoins": 9})).await.unwrap();
        assert_eq!(out["legacyCoins"], json!(9));
        assert_eq!(decant.load(u).await.unwrap()["legacyCoins"], json!(9));
    }
    assert!(matches!(
        decant.patch(10_000, &json!({"a": 1})).await,
        Err(Error::UserNotFound(decant::UserId::Int(10_000)))
    ));
    decant
        .patch(legacy, &json!({"after_not_found": 1}))
        .await
        .unwrap();
}

#[tokio::test]
async fn an_abandoned_write_leaves_no_transaction_open() {
    let db = TestDb::new().await;
    let game = db.game(10).await;
    let (legacy, migrated) = two_clean_users();
    game.migrate_user(migrated).await.unwrap();
    drop(game);
    let decant = db.decant_with(crate::example::SPEC, 1);
    for u in [legacy, migrated] {
        // a writer holds the row; the call is abandoned while it waits
        let mut holder = db.client().await;
        let tx = holder.transaction().await.unwrap();
        tx.execute("SELECT 1 FROM \"user\" WHERE id = $1 FOR UPDATE", &[&u])
            .await
            .unwrap();
        let patch = json!({"legacyCoins": 1});
        let call = decant.patch(u, &patch);
        assert!(
            tokio::time::timeout(Duration::from_millis(300), call)
                .await
                .is_err()
        );
        tx.rollback().await.unwrap();
        // the abandoned session must not keep the row locked in an open
        // transaction (as it would, idle, back in the pool): it is closed,
        // and its server process ends once it has the lock
        let started = Instant::now();
        loop {
            let tx = holder.transaction().await.unwrap();
            let free = tx
                .execute(
                    "SELECT 1 FROM \"user\" WHERE id = $1 FOR UPDATE NOWAIT",
                    &[&u],
                )
                .await
                .is_ok();
            tx.rollback().await.unwrap();
            if free {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "user {u} stays locked"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let started = Instant::now();
        decant.patch(u, &json!({"legacyCoins": 2})).await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(1), "user {u}");
        assert_eq!(decant.load(u).await.unwrap()["legacyCoins"], json!(2));
    }
    let open: i64 = db
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND state LIKE 'idle in transaction%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(open, 0);
}

/// The first two generated users without dirt.
fn two_clean_users() -> (i64, i64) {
    let mut clean = (1..).filter(|&i| crate::example::user(1, i).dirt.is_none());
    (clean.next().unwrap(), clean.next().unwrap())
}

#[tokio::test]
async fn writes_go_on_without_a_control_row() {
    let db = TestDb::new().await;
    let decant = db.game(10).await;
    let (legacy, migrated) = two_clean_users();
    decant.migrate_user(migrated).await.unwrap();
    // someone deleted the control row: no rollout, no on-demand migration,
    // but every write still lands
    db.client()
        .await
        .batch_execute("DELETE FROM decant.control")
        .await
        .unwrap();
    let fresh = db.decant_with(crate::example::SPEC, 2);
    for u in [legacy, migrated] {
        assert!(json_eq(
            &fresh.load(u).await.unwrap(),
            &decant.load(u).await.unwrap()
        ));
        let out = decant.patch(u, &json!({"legacyCoins": 5})).await.unwrap();
        assert_eq!(out["legacyCoins"], json!(5));
        let saved = decant
            .modify(u, |b| b["legacyCoins"] = json!(6))
            .await
            .unwrap();
        assert_eq!(decant.load(u).await.unwrap(), saved);
    }
}

/// A closure that ignores a failed statement and returns `Ok`: PostgreSQL
/// aborted the transaction and answers `COMMIT` with a rollback, so the
/// wrapper must not report the write done.
#[tokio::test]
async fn the_wrapper_reports_a_transaction_a_swallowed_error_aborted() {
    let db = TestDb::new().await;
    let decant = db.game(10).await;
    let (legacy, migrated) = two_clean_users();
    decant.migrate_user(migrated).await.unwrap();
    for u in [legacy, migrated] {
        let err = decant
            .migration_compatible_transaction(
                u,
                async |tx| {
                    tx.execute("UPDATE \"user\" SET name = 'changed' WHERE id = $1", &[&u])
                        .await?;
                    let _ = tx.execute("SELECT 1/0", &[]).await;
                    Ok::<_, Error>("done")
                },
                async |tx| {
                    tx.execute("UPDATE \"user\" SET name = 'changed' WHERE id = $1", &[&u])
                        .await?;
                    let _ = tx.execute("SELECT 1/0", &[]).await;
                    Ok::<_, Error>("done")
                },
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("nothing was committed"), "{err}");
        assert!(!err.is_retryable(), "{err}");
        assert_ne!(name_of(&db, u).await, "changed", "user {u}");
        // the session is fine for the next call
        decant.patch(u, &json!({"legacyCoins": 3})).await.unwrap();
    }
    // a session terminated while the closure ran, its error ignored by
    // nobody: said as a lost session, not as a swallowed error
    let admin = db.client().await;
    let admin = &admin;
    let err = decant
        .migration_compatible_transaction(
            legacy,
            async |tx| {
                let pid: i32 = tx.query_one("SELECT pg_backend_pid()", &[]).await?.get(0);
                admin
                    .execute("SELECT pg_terminate_backend($1)", &[&pid])
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(300)).await;
                Ok::<_, Error>("done")
            },
            async |_tx| Ok::<_, Error>("not this path"),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("the session was lost before the commit")
            && !err.to_string().contains("closure did not return"),
        "{err}"
    );
    assert!(err.is_retryable(), "{err}");
}

/// A wrapper call abandoned mid-statement (a request timeout around it):
/// its session neither comes back busy to the pool nor keeps the user's
/// row locked until the statement would have ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_wrapper_call_frees_its_session_and_the_user() {
    let db = TestDb::new().await;
    let game = db.game(10).await;
    let (legacy, migrated) = two_clean_users();
    game.migrate_user(migrated).await.unwrap();
    drop(game);
    let decant = db.decant_with(crate::example::SPEC, 1);
    for u in [legacy, migrated] {
        let call = decant.migration_compatible_transaction(
            u,
            async |tx| {
                tx.execute("SELECT pg_sleep(8)", &[]).await?;
                Ok::<_, Error>(())
            },
            async |tx| {
                tx.execute("SELECT pg_sleep(8)", &[]).await?;
                Ok::<_, Error>(())
            },
        );
        assert!(
            tokio::time::timeout(Duration::from_millis(300), call)
                .await
                .is_err()
        );
        // the one session of the pool was closed, not handed on busy
        let started = Instant::now();
        decant.load(u + 1).await.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "a load waited {:?} behind the abandoned statement",
            started.elapsed()
        );
        // and its statement was cancelled: the user is free long before 8 s
        let started = Instant::now();
        decant.patch(u, &json!({"legacyCoins": 4})).await.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "user {u} stayed locked {:?}",
            started.elapsed()
        );
    }
}

/// Every session of the pool in use (here: a call on the handle inside a
/// wrapper's closure, with a pool of one) fails after the pool's wait,
/// retryably, instead of waiting for ever.
#[tokio::test]
async fn a_call_waiting_for_a_session_gives_up() {
    let db = TestDb::new().await;
    db.game(10).await;
    let decant = db.decant_with(crate::example::SPEC, 1);
    let started = Instant::now();
    let err = decant
        .migration_compatible_transaction(
            1,
            async |_tx| decant.load(2).await.map(drop),
            async |_tx| decant.load(2).await.map(drop),
        )
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(
        err.to_string().contains("inside a wrapper's closure"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    decant.load(2).await.unwrap();
}

/// A database or role that does not exist is no reason to retry.
#[tokio::test]
async fn a_session_refused_for_good_is_not_retryable() {
    let db = TestDb::new().await;
    db.game(3).await;
    let url = decant::with_dbname(&db.url, "no_such_database_here").unwrap();
    let decant = decant::Decant::connect(&url, crate::example::spec(), 1).unwrap();
    let err = decant.load(1).await.unwrap_err();
    assert_eq!(err.sqlstate(), Some("3D000"), "{err}");
    assert!(!err.is_retryable(), "{err}");
    assert!(!err.is_connection_lost(), "{err}");
}

/// A patch that changes nothing does not write a legacy user's blob again
/// (a new row version of the whole blob, and the daemon would redo it).
#[tokio::test]
async fn a_patch_that_changes_nothing_writes_nothing() {
    let db = TestDb::new().await;
    let decant = db.game(10).await;
    let client = db.client().await;
    let (legacy, _) = two_clean_users();
    decant
        .patch(legacy, &json!({"legacyCoins": 5}))
        .await
        .unwrap();
    let xmin = async || -> String {
        client
            .query_one("SELECT xmin::text FROM \"user\" WHERE id = $1", &[&legacy])
            .await
            .unwrap()
            .get(0)
    };
    let before = xmin().await;
    for patch in [
        json!({}),
        json!({"legacyCoins": 5}),
        json!({"noSuchKey": null}),
    ] {
        decant.patch(legacy, &patch).await.unwrap();
        assert_eq!(xmin().await, before, "{patch}");
    }
    decant
        .patch(legacy, &json!({"legacyCoins": 6}))
        .await
        .unwrap();
    assert_ne!(xmin().await, before);
    assert_eq!(decant.load(legacy).await.unwrap()["legacyCoins"], json!(6));

    // the SQL API alike: its patches that change nothing write nothing,
    // and a number written otherwise (6.0 for 6) is a change
    let sql_patch = async |patch: serde_json::Value| {
        client
            .query_one("SELECT decant.patch($1, $2)", &[&legacy, &patch])
            .await
            .unwrap()
            .get::<_, serde_json::Value>(0)
    };
    let before = xmin().await;
    for patch in [
        json!({}),
        json!({"legacyCoins": 6}),
        json!({"noSuchKey": null}),
    ] {
        assert_eq!(sql_patch(patch.clone()).await["legacyCoins"], json!(6));
        assert_eq!(xmin().await, before, "SQL {patch}");
    }
    sql_patch(json!({"legacyCoins": 6.0})).await;
    let after = xmin().await;
    assert_ne!(after, before, "6.0 for 6");
    let text: String = client
        .query_one(
            "SELECT data->>'legacyCoins' FROM \"user\" WHERE id = $1",
            &[&legacy],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(text, "6.0");
    sql_patch(json!({"legacyCoins": 7})).await;
    assert_ne!(xmin().await, after);
}
