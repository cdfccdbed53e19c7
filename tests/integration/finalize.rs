//! `decant finalize`: refused until every user is migrated, verified and
//! rebuilds; then the phase stops the daemon, bulk rollback and dry runs,
//! and the views read the tables alone.

use crate::harness::full_speed as opts;
use crate::harness::{TestDb, texts};
use decant::{Cohort, Decant, Fixup, IdType, Progress, RunOptions, Spec};
use std::sync::Arc;

/// A new user's blob, with values in several tables.
fn expected_new() -> serde_json::Value {
    serde_json::json!({
        "marriage": {"stats": {"kidnap": {"points": 7}}},
        "achievements": {"first_win": {"progress": 1}},
        "note": "kept in the residual"
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalize_is_a_gate_and_then_a_phase() {
    let db = TestDb::new().await;
    let n = 400;
    let plain = db.game(n).await;
    let client = db.client().await;
    let refused = async |decant: &Decant, says: &[&str]| {
        let err = decant::finalize(&db.url, decant, false)
            .await
            .unwrap_err()
            .to_string();
        for s in says {
            assert!(err.contains(s), "expected `{s}` in: {err}");
        }
    };
    refused(
        &plain,
        &[
            &format!("{n} users are still legacy (e.g. 1, 2, 3, 4, 5; 0 failed, 0 held)"),
            "`decant release --failed` failed ones",
        ],
    )
    .await;

    // without fixups the dirty users fail and stay legacy
    let r = crate::harness::run_all(&plain).await.unwrap();
    assert!(r.failed > 0);
    refused(
        &plain,
        &[
            &match r.failed {
                1 => "1 user is still legacy".to_string(),
                n => format!("{n} users are still legacy"),
            },
            &format!("{} failed", r.failed),
        ],
    )
    .await;

    // with them everyone migrates; a rollback holds one user out
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/game/fixups");
    let spec = Spec::parse(crate::example::SPEC)
        .unwrap()
        .with_fixups(Fixup::load_dir(&dir).unwrap());
    let decant = Decant::connect(&db.url, spec, 6).unwrap();
    let r = crate::harness::run_all(&decant).await.unwrap();
    assert_eq!(r.failed, 0);
    assert!(decant.rollback_user(7).await.unwrap());
    refused(
        &decant,
        &["1 user is still legacy (e.g. 7; 0 failed, 1 held)"],
    )
    .await;
    decant.release(None).await.unwrap();
    crate::harness::run_all(&decant).await.unwrap();

    // a flag set outside decant (a legacy user's flag set by hand: its
    // whole blob in the column, no rows); rows edited by hand
    let whole = decant.load(12).await.unwrap();
    crate::harness::insert_user(&client, 100002, &whole).await;
    client
        .execute("UPDATE \"user\" SET migrated = true WHERE id = 100002", &[])
        .await
        .unwrap();
    refused(
        &decant,
        &[
            "1 user has the flag set but no rows and no verified state record, the values the spec's \
             rules claim still whole in the blob column (e.g. 100002)",
            "then migrate them with decant",
        ],
    )
    .await;
    client
        .execute("DELETE FROM \"user\" WHERE id = 100002", &[])
        .await
        .unwrap();
    // a state record lost, the user's rows there: its rows rebuild it
    client
        .execute(
            "UPDATE decant.user_state SET state = 'legacy' WHERE user_id = 9",
            &[],
        )
        .await
        .unwrap();
    let (mode, stat, value): (String, String, String) = {
        let r = client
            .query_one(
                "SELECT mode, statistic_id, value::text FROM user_statistic WHERE user_id = 11 ORDER BY 1, 2 LIMIT 1",
                &[],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1), r.get(2))
    };
    let set = async |v: &str| {
        client
            .execute(
                "UPDATE user_statistic SET value = $4::text::numeric WHERE user_id = $1 AND mode = $2 AND statistic_id = $3",
                &[&11i64, &mode, &stat, &v],
            )
            .await
            .unwrap();
    };
    // the table's checks would refuse the tampering
    crate::harness::drop_checks(&client, "user_statistic").await;
    set("-5").await;
    refused(
        &decant,
        &["1 migrated users' rows no longer rebuild their blob (e.g. 11)"],
    )
    .await;
    set(&value).await;
    // every user migrated, not yet finalized: done, with the next step
    let status = decant::status(&decant, &decant::Schedule::default())
        .await
        .unwrap();
    assert_eq!(status.projected_finish, None);
    assert!(
        status
            .to_string()
            .contains("finish     done: every user is migrated (`decant finalize`"),
        "{status}"
    );

    // more top-level keys in residuals than finalize names: one each
    for k in 0..25i64 {
        decant
            .patch(k + 20, &serde_json::json!({ format!("note{k:02}"): k }))
            .await
            .unwrap();
    }
    // finalized
    let f = decant::finalize(&db.url, &decant, false).await.unwrap();
    assert!(!f.already);
    assert_eq!(f.users, n as u64);
    assert!(
        f.drop_sql.contains("DROP COLUMN \"migrated\""),
        "{}",
        f.drop_sql
    );
    assert!(
        f.residual_users > 0 && f.drop_sql.contains("keep \"data\""),
        "{}",
        f.drop_sql
    );
    // what the residuals hold, by top-level key, counted as SQL counts it
    assert!(!f.unclaimed.is_empty(), "{f:?}");
    for u in &f.unclaimed {
        let key = u.path.strip_prefix("$.").expect("an object's key");
        let holding: i64 = client
            .query_one("SELECT count(*) FROM \"user\" WHERE data ? $1", &[&key])
            .await
            .unwrap()
            .get(0);
        assert_eq!(u.users, holding as u64, "{u:?}");
        assert!(!u.examples.is_empty() && u.examples.len() <= 3, "{u:?}");
    }
    // the keys past the first 20 are counted
    let keys: i64 = client
        .query_one(
            "SELECT count(DISTINCT k) FROM \"user\", jsonb_object_keys(data) AS k",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(f.unclaimed.len(), 20, "{f:?}");
    assert_eq!(keys as u64, 20 + f.more_keys, "{f:?}");
    assert!(f.more_keys >= 5, "{f:?}");
    let status = decant::status(&decant, &decant::Schedule::default())
        .await
        .unwrap();
    assert_eq!(status.phase, "finalized");
    assert!(status.to_string().contains("phase      finalized"));
    assert_eq!(status.projected_finish, None, "nothing left to finish");
    assert!(status.to_string().contains("finish     done (finalized)"));
    // a setting for the daemons (none runs any more) is refused, not shown
    for s in [
        decant::Setting::Paused(true),
        decant::Setting::Rate("10/s".parse().unwrap()),
        decant::Setting::Rollout(50.0),
    ] {
        let err = decant.set_control(&s).await.unwrap_err().to_string();
        assert!(err.contains("the migration is finalized"), "{s:?}: {err}");
    }
    let control = decant::status(&decant, &decant::Schedule::default())
        .await
        .unwrap()
        .to_string();
    assert!(!control.contains("PAUSED"), "{control}");
    assert!(
        decant::finalize(&db.url, &decant, false)
            .await
            .unwrap()
            .already
    );

    // nothing migrates or rolls back any more
    let run = crate::harness::run_all(&decant).await;
    let run = run.unwrap_err().to_string();
    assert!(run.contains("finalized"), "{run}");
    let back = crate::harness::rollback_all(&decant, Cohort::All).await;
    assert!(back.unwrap_err().to_string().contains("finalized"));
    // one user neither (`decant rollback --user`): it would bring back a
    // blob the views and the finalized calls no longer read
    let before = decant.load(7).await.unwrap();
    let one = decant.rollback_user(7).await;
    assert!(
        one.as_ref()
            .is_err_and(|e| e.to_string().contains("finalized")),
        "{one:?}"
    );
    assert_eq!(decant.load(7).await.unwrap(), before);
    assert!(crate::harness::is_migrated(&client, 7).await);
    assert!(
        decant::dry_run(&decant, 10, false)
            .await
            .unwrap_err()
            .to_string()
            .contains("finalized")
    );

    // the views read the tables alone: a legacy user slipped in after
    // finalize is not in them, the leaderboard comes from the tables
    client
        .execute(
            "INSERT INTO \"user\" (id, name, data) VALUES (100000, 'late', '{\"marriage\": {\"stats\": {\"kidnap\": {\"points\": 99999999}}}}')",
            &[],
        )
        .await
        .unwrap();
    let in_view: i64 = client
        .query_one(
            "SELECT count(*) FROM user_statistic_all WHERE user_id = 100000",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(in_view, 0);
    let from_tables: i64 = client
        .query_one("SELECT count(*) FROM user_statistic", &[])
        .await
        .unwrap()
        .get(0);
    let from_view: i64 = client
        .query_one("SELECT count(*) FROM user_statistic_all", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(from_view, from_tables);
    let top: Vec<i64> =
        crate::harness::column(&client, "SELECT user_id FROM kidnap_points_top(3)", &[]).await;
    assert_eq!(top.len(), 3);
    assert!(!top.contains(&100000));

    // such a late user is seen (status, finalize) and repaired by the SQL
    // finalize gives: its values reach the tables, the views and the top
    let status = decant::status(&decant, &decant::Schedule::default())
        .await
        .unwrap();
    assert_eq!(status.late, 1);
    assert!(
        status
            .to_string()
            .contains("late       1 user inserted after finalize")
    );
    let err = decant::finalize(&db.url, &decant, true)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("1 user was inserted after finalize with the flag false (e.g. 100000)"),
        "{err}"
    );
    let repair = err.split_once(":\n").expect("the repair's SQL").1;
    client.batch_execute(repair).await.unwrap();
    let late = serde_json::json!({"marriage": {"stats": {"kidnap": {"points": 99999999}}}});
    assert_eq!(decant.load(100000).await.unwrap(), late);
    let sql_load: serde_json::Value = client
        .query_one("SELECT decant.load(100000)", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(sql_load, late);
    let top: i64 = client
        .query_one("SELECT user_id FROM kidnap_points_top(1)", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(top, 100000);
    let residual: serde_json::Value = client
        .query_one("SELECT data FROM \"user\" WHERE id = 100000", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(residual, serde_json::json!({}), "every value in the tables");
    let status = decant::status(&decant, &decant::Schedule::default())
        .await
        .unwrap();
    assert_eq!(status.late, 0);
    // a new user created as the README says (the flag true, an empty
    // blob, then `save`): no state record, its rows written by `save`;
    // it and the repaired late user pass the gate (finalize refused them
    // as "flags set outside decant", and the rollback it advised refuses
    // once finalized)
    client
        .execute(
            "INSERT INTO \"user\" (id, name, data, migrated) VALUES (100001, 'new', '{}', true)",
            &[],
        )
        .await
        .unwrap();
    decant.save(100001, &expected_new()).await.unwrap();
    assert_eq!(decant.load(100001).await.unwrap(), expected_new());
    assert!(
        decant::finalize(&db.url, &decant, false)
            .await
            .unwrap()
            .already
    );

    // --drop-legacy: the flag and its index gone, the views and SQL API
    // regenerated; a new handle reads and writes every user as migrated
    // (the late user, repaired, leaves: the counts below are the game's)
    client
        .execute("DELETE FROM \"user\" WHERE id IN (100000, 100001)", &[])
        .await
        .unwrap();
    let expected = decant.load(12).await.unwrap();
    // a role's grant on a view outlives the views' re-making
    let analyst = crate::harness::fresh_role(&client, "analyst_finalize").await;
    client
        .batch_execute(&format!("GRANT SELECT ON user_statistic_all TO {analyst}"))
        .await
        .unwrap();
    // the team's objects on the flag or on decant's views: named, and
    // the drop refused (it ran DROP COLUMN ... CASCADE and took them
    // silently); one that reads neither outlives the drop
    client
        .batch_execute(
            "CREATE VIEW team_progress AS SELECT count(*) FILTER (WHERE migrated) AS n FROM \"user\";
             CREATE INDEX team_partial ON \"user\" (id) WHERE NOT migrated;
             CREATE VIEW team_stats AS SELECT * FROM user_statistic_all;
             CREATE VIEW team_names AS SELECT id, name FROM \"user\";",
        )
        .await
        .unwrap();
    let err = decant::finalize(&db.url, &decant, true)
        .await
        .unwrap_err()
        .to_string();
    // exactly those: decant's own indexes and views are not named
    assert!(
        err.contains(
            "would drop them too: index team_partial, view team_progress, view team_stats. Drop them"
        ),
        "{err}"
    );
    client
        .batch_execute("DROP VIEW team_progress, team_stats; DROP INDEX team_partial")
        .await
        .unwrap();
    let f = decant::finalize(&db.url, &decant, true).await.unwrap();
    assert!(f.flag_dropped);
    let kept: i64 = client
        .query_one("SELECT count(*) FROM team_names", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(kept, n);
    let can: bool = client
        .query_one(
            "SELECT has_table_privilege($1, 'user_statistic_all', 'SELECT')",
            &[&analyst],
        )
        .await
        .unwrap()
        .get(0);
    assert!(can, "the grant on the view was lost");
    let flag: i64 = client
        .query_one(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'user' AND column_name = 'migrated'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(flag, 0);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/game/fixups");
    let spec = Spec::parse(crate::example::SPEC)
        .unwrap()
        .with_fixups(Fixup::load_dir(&dir).unwrap());
    let fresh = Decant::connect(&db.url, spec.clone(), 2).unwrap();
    assert_eq!(fresh.load(12).await.unwrap(), expected);
    let patched = fresh
        .patch(12, &serde_json::json!({"xp": 424242}))
        .await
        .unwrap();
    assert_eq!(patched["xp"], serde_json::json!(424242));
    assert_eq!(
        fresh.load(12).await.unwrap()["xp"],
        serde_json::json!(424242)
    );
    let sql_load: serde_json::Value = client
        .query_one("SELECT decant.load(12)", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(sql_load["xp"], serde_json::json!(424242));
    let status = decant::status(&fresh, &decant::Schedule::default())
        .await
        .unwrap();
    assert_eq!((status.users, status.migrated), (n, n));
    let census = decant::check(
        &db.url,
        spec.clone(),
        &decant::CheckOptions::default(),
        &decant::CheckProgress::default(),
    )
    .await
    .unwrap()
    .census;
    assert_eq!(census.migrated as i64, n);
    assert!(census.migrated_not_rebuilding.is_none());
    // with the flag gone, a user inserted by the old code path is read as
    // migrated: the census names it (then it leaves, for the counts below)
    client
        .execute(
            "INSERT INTO \"user\" (id, name, data) VALUES (100001, 'late', '{\"xp\": 5}')",
            &[],
        )
        .await
        .unwrap();
    let opts = decant::CheckOptions {
        selection: decant::Selection::Ids(vec![100001.into()]),
        ..Default::default()
    };
    let census = decant::check(
        &db.url,
        spec.clone(),
        &opts,
        &decant::CheckProgress::default(),
    )
    .await
    .unwrap()
    .census;
    let broken = census.migrated_not_rebuilding.expect("the late user");
    assert!(
        broken.examples[0]
            .value
            .contains("its values are in the blob column and none in the tables"),
        "{broken:?}"
    );
    client
        .execute("DELETE FROM \"user\" WHERE id = 100001", &[])
        .await
        .unwrap();
    let from_view: i64 = client
        .query_one("SELECT count(*) FROM user_statistic_all", &[])
        .await
        .unwrap()
        .get(0);
    let from_tables: i64 = client
        .query_one("SELECT count(*) FROM user_statistic", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(from_view, from_tables);
    let top = client
        .query("SELECT user_id FROM kidnap_points_top(3)", &[])
        .await
        .unwrap();
    assert_eq!(top.len(), 3);
    // init again leaves the flag out; finalize again has nothing to do
    decant::init(&client, &spec).await.unwrap();
    let flag: i64 = client
        .query_one(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'user' AND column_name = 'migrated'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(flag, 0);
    assert!(
        decant::finalize(&db.url, &fresh, true)
            .await
            .unwrap()
            .already
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lifecycle_holds_on_an_integer_id_shape() {
    lifecycle_on_another_shape("integer", false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lifecycle_holds_on_a_smallint_id_shape() {
    lifecycle_on_another_shape("smallint", false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lifecycle_holds_on_a_bigint_id_shape() {
    lifecycle_on_another_shape("bigint", false).await
}

/// A hash-partitioned source table, one partition partitioned again and
/// one in another schema: init builds the legacy index online (each
/// leaf's CONCURRENTLY, attached), and everything else works as on a plain
/// table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lifecycle_holds_on_a_partitioned_table() {
    lifecycle_on_another_shape("bigint", true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lifecycle_holds_on_a_partitioned_table_with_text_ids() {
    lifecycle_on_another_shape("text", true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lifecycle_holds_on_a_uuid_id_shape() {
    lifecycle_on_another_shape("uuid", false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lifecycle_holds_on_a_text_id_shape() {
    lifecycle_on_another_shape("text", false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lifecycle_holds_on_a_varchar_id_shape() {
    lifecycle_on_another_shape("varchar(40)", false).await
}

/// The kind of id a column of SQL type `id_type` holds.
fn kind_of(id_type: &str) -> IdType {
    IdType::parse(id_type.split('(').next().unwrap()).unwrap()
}

/// The id of user number `n` in a column of `id_type`, as text: uuids
/// spread over the whole range (not in number order), text ids of mixed
/// case, leading zeros and a non-ASCII letter (byte order, the daemon's,
/// differs from a collation's).
fn id_text(id_type: &str, n: i32) -> String {
    match kind_of(id_type) {
        IdType::Uuid => format!(
            "{:08x}-0000-4000-8000-{n:012x}",
            (n as u32).wrapping_mul(2_654_435_761)
        ),
        IdType::Text => match n % 3 {
            0 => format!("user-{n:04}"),
            1 => format!("User-{n}"),
            _ => format!("\u{e9}l\u{e8}ve-{n:03}"),
        },
        _ => n.to_string(),
    }
}

/// Another shape: an `id_type` id in another schema, a spec written here,
/// odd blobs (deep, empty, a dirty value); census, daemon, cohort rollback,
/// the SQL API and a leaderboard, and finalize with `--drop-legacy`.
async fn lifecycle_on_another_shape(id_type: &str, partitioned: bool) {
    const SPEC: &str = r#"
[source]
schema = "shop"
table = "profile"
id = "uid"
blob = "doc"
flag = "done"
ID_TYPE
[tables.score.columns]
game = "text"
points = { type = "int4", min = 0 }

[[rules]]
name = "scores"
path = "scores.{game}"
table = "score"
value = "points"
on_invalid = "fail"

[[ranked]]
name = "a_points"
table = "score"
value = "points"
where = { game = "a" }
"#;
    // (integer ids need no declaration: bigint is the default)
    let kind = kind_of(id_type);
    let declared = kind != IdType::Int;
    let db = TestDb::new().await;
    let client = db.client().await;
    client
        .batch_execute(&format!(
            "CREATE SCHEMA shop; CREATE TABLE shop.profile (uid {id_type} PRIMARY KEY, doc jsonb NOT NULL){}",
            if partitioned {
                " PARTITION BY HASH (uid); \
                 CREATE TABLE shop.profile_a PARTITION OF shop.profile \
                   FOR VALUES WITH (MODULUS 3, REMAINDER 0); \
                 CREATE TABLE shop.profile_b PARTITION OF shop.profile \
                   FOR VALUES WITH (MODULUS 3, REMAINDER 1) PARTITION BY HASH (uid); \
                 CREATE TABLE shop.profile_b0 PARTITION OF shop.profile_b \
                   FOR VALUES WITH (MODULUS 2, REMAINDER 0); \
                 CREATE TABLE shop.profile_b1 PARTITION OF shop.profile_b \
                   FOR VALUES WITH (MODULUS 2, REMAINDER 1); \
                 CREATE TABLE public.\"Profile C\" PARTITION OF shop.profile \
                   FOR VALUES WITH (MODULUS 3, REMAINDER 2)"
            } else {
                ""
            }
        ))
        .await
        .unwrap();
    let blob = |uid: i32| match uid % 10 {
        0 => serde_json::json!({"scores": {"a": -1}}),
        1 => serde_json::json!({}),
        2 => serde_json::json!({"deep": {"x": {"y": {"z": [1, {"w": null}]}}}, "scores": {}}),
        _ => serde_json::json!({"scores": {"a": uid, "b": uid * 2}, "name": "n"}),
    };
    let id = |n: i32| id_text(id_type, n);
    for uid in 1..=120 {
        client
            .execute(
                &format!("INSERT INTO shop.profile VALUES ($1::text::{id_type}, $2)"),
                &[&id(uid), &blob(uid)],
            )
            .await
            .unwrap();
    }
    let spec_text = SPEC.replace(
        "ID_TYPE",
        &if declared {
            format!("id_type = \"{kind}\"")
        } else {
            String::new()
        },
    );
    if declared {
        // the spec must say so: init names the fix and changes nothing
        let plain = Spec::parse(&SPEC.replace("ID_TYPE", "")).unwrap();
        let err = decant::init(&client, &plain).await.unwrap_err().to_string();
        assert!(err.contains(&format!("id_type = \"{kind}\"")), "{err}");
        let other = if kind == IdType::Uuid { "text" } else { "uuid" };
        let wrong =
            Spec::parse(&SPEC.replace("ID_TYPE", &format!("id_type = \"{other}\""))).unwrap();
        let err = decant::init(&client, &wrong).await.unwrap_err().to_string();
        assert!(err.contains("the spec's id type is"), "{err}");
        let objects: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_namespace WHERE nspname = 'decant'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(objects, 0);
    }
    let spec = Spec::parse(&spec_text).unwrap();
    let census = decant::check(
        &db.url,
        spec.clone(),
        &decant::CheckOptions::default(),
        &decant::CheckProgress::default(),
    )
    .await
    .unwrap()
    .census;
    assert_eq!((census.legacy, census.would_fail), (120, 12));
    // the census names its examples by their ids, and a sample and a list
    // of ids work in the id's kind
    let dirty: Vec<String> = census.failures[0]
        .examples
        .iter()
        .map(|e| e.id.to_string())
        .collect();
    assert!(
        dirty
            .iter()
            .all(|d| (1..=120).any(|n| n % 10 == 0 && id(n) == *d)),
        "{dirty:?}"
    );
    let listed = decant::check(
        &db.url,
        spec.clone(),
        &decant::CheckOptions {
            selection: decant::Selection::Ids(vec![
                decant::UserId::guess(&id(10)),
                decant::UserId::guess(&id(3)),
                decant::UserId::guess("not-there-0"),
            ]),
            ..decant::CheckOptions::default()
        },
        &decant::CheckProgress::default(),
    )
    .await;
    if kind == IdType::Text {
        let listed = listed.unwrap();
        assert_eq!((listed.census.legacy, listed.census.would_fail), (2, 1));
        assert_eq!(
            listed.missing_ids,
            vec![decant::UserId::Text("not-there-0".into())]
        );
    } else {
        // an id that cannot be one of this kind is named
        let err = listed.unwrap_err().to_string();
        assert!(err.contains("not-there-0"), "{err}");
    }
    let sample = decant::check(
        &db.url,
        spec.clone(),
        &decant::CheckOptions {
            selection: decant::Selection::Sample(30),
            ..decant::CheckOptions::default()
        },
        &decant::CheckProgress::default(),
    )
    .await
    .unwrap();
    assert!(sample.census.legacy > 0 && sample.census.legacy <= 30);

    decant::init(&client, &spec).await.unwrap();
    decant::init(&client, &spec).await.unwrap();
    if partitioned {
        // every index on the source valid, each leaf with its own legacy
        // index; a build stopped part-way (the index made on the
        // partitioned table alone, nothing attached) is taken up again
        let indexes = async || {
            texts(
                &client,
                "SELECT c.relname || ':' || i.indisvalid FROM pg_index i \
                   JOIN pg_class c ON c.oid = i.indexrelid \
                  WHERE c.relname LIKE 'profile_decant_legacy_idx%' ORDER BY 1",
                &[],
            )
            .await
            .into_iter()
            .collect::<std::collections::BTreeSet<String>>()
        };
        let built = indexes().await;
        assert_eq!(
            built,
            [
                "profile_decant_legacy_idx:true",
                "profile_decant_legacy_idx_Profile C:true",
                "profile_decant_legacy_idx_profile_a:true",
                "profile_decant_legacy_idx_profile_b:true",
                "profile_decant_legacy_idx_profile_b0:true",
                "profile_decant_legacy_idx_profile_b1:true",
            ]
            .map(String::from)
            .into(),
        );
        let def = texts(
            &client,
            "SELECT pg_get_indexdef('shop.profile_decant_legacy_idx'::regclass)",
            &[],
        )
        .await
        .remove(0);
        assert!(def.contains(" ON ONLY shop.profile "), "{def}");
        client
            .batch_execute(&format!("DROP INDEX shop.profile_decant_legacy_idx; {def}"))
            .await
            .unwrap();
        assert_eq!(
            indexes().await,
            ["profile_decant_legacy_idx:false".to_string()].into()
        );
        decant::init(&client, &spec).await.unwrap();
        assert_eq!(indexes().await, built);
        // a ranked statistic defined otherwise: its index on the source
        // is dropped (a brief lock) and built again, online, then back
        let ranked = async |game: &str| {
            let spec = Spec::parse(&spec_text.replace(
                "where = { game = \"a\" }",
                &format!("where = {{ game = \"{game}\" }}"),
            ))
            .unwrap();
            decant::init(&client, &spec).await.unwrap();
            let defs = texts(
                &client,
                "SELECT i.indisvalid || ' ' || pg_get_indexdef(i.indexrelid) FROM pg_index i \
                   JOIN pg_class c ON c.oid = i.indexrelid \
                  WHERE c.relname LIKE 'profile_a_points_legacy_rank_idx%'",
                &[],
            )
            .await;
            assert_eq!(defs.len(), 6, "{defs:?}");
            for d in defs {
                assert!(
                    d.starts_with("true ") && d.contains(&format!("'{game}'::text")),
                    "{d}"
                );
            }
        };
        ranked("b").await;
        ranked("a").await;
    }
    // the claim's walk (after a cursor, in the claims' order) runs on the
    // legacy index, text ids in byte order
    let order = if kind == IdType::Text {
        " COLLATE \"C\""
    } else {
        ""
    };
    client
        .batch_execute("SET enable_seqscan = off")
        .await
        .unwrap();
    let plan = texts(
        &client,
        &format!(
            "EXPLAIN SELECT uid FROM shop.profile AS s WHERE NOT s.done \
             AND s.uid{order} > $1::text::{id_type} ORDER BY s.uid{order} LIMIT 5"
        ),
        &[&id(7)],
    )
    .await
    .join("\n");
    // (a partitioned table's walk merges its partitions' in order)
    assert!(
        plan.contains("profile_decant_legacy_idx") && !plan.contains("Sort  ("),
        "{plan}"
    );
    // and a rollback's (an evolution's) walk over migrated users: a text
    // id's on decant's index of them (the primary key, in the column's
    // collation, cannot give byte order: every batch sorted the table),
    // the others' on the primary key
    let plan = texts(
        &client,
        &format!(
            "EXPLAIN SELECT uid FROM shop.profile AS s WHERE s.done \
             AND s.uid{order} > $1::text::{id_type} ORDER BY s.uid{order} LIMIT 5"
        ),
        &[&id(7)],
    )
    .await
    .join("\n");
    let index = match kind {
        IdType::Text => "profile_decant_migrated_idx",
        // each partition's own primary key
        _ if partitioned => "_pkey",
        _ => "profile_pkey",
    };
    assert!(plan.contains(index) && !plan.contains("Sort  ("), "{plan}");
    client.batch_execute("RESET enable_seqscan").await.unwrap();
    let decant = Decant::connect(&db.url, spec.clone(), 4).unwrap();
    // one user by hand, through the library, named as text
    let first = decant.migrate_user(id(3).as_str()).await.unwrap();
    assert_eq!(first.migrated.len(), 1);
    assert_eq!(first.migrated[0].user.to_string(), id(3));
    let r = decant::run(
        &decant,
        RunOptions {
            workers: 2,
            max_batch: 7,
            ..opts()
        },
        Arc::new(Progress::default()),
        std::future::pending(),
    )
    .await
    .unwrap();
    assert_eq!((r.migrated, r.failed), (107, 12));
    // the leaderboard mid-migration (the failed users legacy) and the SQL
    // API, called with the id as the database has it
    let top: Vec<(String, i32)> = client
        .query("SELECT user_id::text, value FROM shop.a_points_top(3)", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        top,
        [119, 118, 117].map(|n| (id(n), n)).to_vec(),
        "the top three by points"
    );
    let by_sql: serde_json::Value = client
        .query_one(
            &format!("SELECT decant.patch($1::text::{id_type}, '{{\"name\": \"p\"}}')"),
            &[&id(13)],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(by_sql["name"], "p");
    decant
        .patch(id(13).as_str(), &serde_json::json!({"name": "n"}))
        .await
        .unwrap();
    let many = decant
        .load_many(&[id(13).as_str(), id(10).as_str(), id(5).as_str()])
        .await
        .unwrap();
    assert_eq!(many.len(), 3);
    for (u, b) in &many {
        let n = (1..=120).find(|&n| id(n) == u.to_string()).unwrap();
        assert_eq!(*b, blob(n), "user {u}");
    }
    // an evolution: a table added for the names, every migrated user
    // re-migrated through the daemon's cursor in the id's order
    let grown = format!(
        "{spec_text}\n[tables.naming.columns]\nname = \"text\"\n\n\
         [[rules]]\nname = \"names\"\npath = \"name\"\ntable = \"naming\"\nvalue = \"name\"\n"
    );
    let spec = Spec::parse(&grown).unwrap();
    decant::init_evolving(&client, &spec).await.unwrap();
    let decant = Decant::connect(&db.url, spec.clone(), 4).unwrap();
    let evolved = decant::evolve(
        &decant,
        RunOptions {
            workers: 2,
            max_batch: 5,
            ..opts()
        },
        Arc::new(Progress::default()),
        std::future::pending(),
    )
    .await
    .unwrap();
    assert_eq!((evolved.migrated, evolved.failed), (108, 0));
    let names: i64 = client
        .query_one("SELECT count(*) FROM shop.naming", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(names, 84);
    let back = crate::harness::rollback_all(&decant, Cohort::Percent(50.0))
        .await
        .unwrap();
    assert!(back.migrated > 20 && back.failed == 0, "{back:?}");
    let listed = [4, 5, 6].map(|n| decant::UserId::guess(&id(n))).to_vec();
    crate::harness::rollback_all(&decant, Cohort::Ids(listed))
        .await
        .unwrap();
    for uid in 1..=120i32 {
        let want = blob(uid);
        assert_eq!(
            decant.load(id(uid).as_str()).await.unwrap(),
            want,
            "user {uid}"
        );
    }
    let status = decant::status(&decant, &decant::Schedule::default())
        .await
        .unwrap();
    assert_eq!(status.failures[0].users, 12);
    assert!(
        status.failures[0]
            .examples
            .iter()
            .all(|e| (1..=120).any(|n| n % 10 == 0 && id(n) == e.to_string())),
        "{:?}",
        status.failures[0].examples
    );
    // the dirty ones repaired by a fixup written here; held ones released
    let fixed = spec.clone().with_fixups(vec![
        Fixup::parse("0001-clamp", "op = \"clamp\"\npath = \"scores.*\"\nmin = 0").unwrap(),
    ]);
    let decant = Decant::connect(&db.url, fixed, 4).unwrap();
    assert_eq!(
        decant
            .release(Some(&[decant::UserId::guess(&id(4))]))
            .await
            .unwrap(),
        1
    );
    decant.release(None).await.unwrap();
    let r = crate::harness::run_all(&decant).await.unwrap();
    assert_eq!(r.failed, 0);
    decant::finalize(&db.url, &decant, true).await.unwrap();
    let fresh = Decant::connect(&db.url, spec, 2).unwrap();
    assert_eq!(fresh.load(id(3).as_str()).await.unwrap(), blob(3));
    assert_eq!(
        fresh.load(id(10).as_str()).await.unwrap(),
        serde_json::json!({"scores": {"a": 0}})
    );
    let err = fresh.load("no-such-user").await.unwrap_err();
    match kind {
        IdType::Text => assert!(matches!(err, decant::Error::UserNotFound(_)), "{err}"),
        _ => assert!(err.to_string().contains("no-such-user"), "{err}"),
    }
    if partitioned {
        // a user deleted through its partition takes its rows and state
        // with it, as one deleted through the partitioned table does
        let left = async |n: i32| -> i64 {
            client
                .query_one(
                    &format!(
                        "SELECT (SELECT count(*) FROM shop.score WHERE user_id = $1::text::{id_type}) \
                              + (SELECT count(*) FROM decant.user_state \
                                  WHERE user_id = $1::text::{id_type})"
                    ),
                    &[&id(n)],
                )
                .await
                .unwrap()
                .get(0)
        };
        assert!(left(3).await > 1 && left(5).await > 1);
        let partition = texts(
            &client,
            &format!(
                "SELECT tableoid::regclass::text FROM shop.profile WHERE uid = $1::text::{id_type}"
            ),
            &[&id(3)],
        )
        .await
        .remove(0);
        client
            .execute(
                &format!("DELETE FROM {partition} WHERE uid = $1::text::{id_type}"),
                &[&id(3)],
            )
            .await
            .unwrap();
        client
            .execute(
                &format!("DELETE FROM shop.profile WHERE uid = $1::text::{id_type}"),
                &[&id(5)],
            )
            .await
            .unwrap();
        assert_eq!((left(3).await, left(5).await), (0, 0));
        assert!(left(7).await > 1);
    }
}
