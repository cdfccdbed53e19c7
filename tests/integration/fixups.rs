//! Fixups: the generated game's dirty users repaired as they migrate, the
//! repairs recorded, and rolled back to their exact originals.

use crate::harness::TestDb;
use decant::{Cohort, Decant, Fixup, Spec, json_eq};

fn game_spec_with_fixups() -> Spec {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/game/fixups");
    let fixups = Fixup::load_dir(&dir).unwrap();
    assert_eq!(fixups.len(), 4);
    Spec::parse(crate::example::SPEC)
        .unwrap()
        .with_fixups(fixups)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dirty_users_migrate_with_their_fixups_and_roll_back_to_their_originals() {
    let db = TestDb::new().await;
    let n = 800;
    drop(db.game(n).await);
    let spec = game_spec_with_fixups();
    let decant = Decant::connect(&db.url, spec.clone(), 6).unwrap();
    let client = db.client().await;
    let users: Vec<_> = (1..=n).map(|i| crate::example::user(1, i)).collect();
    let expected = |dirt: &str| match dirt {
        "null where an object belongs" => "0001-null-stats",
        "number as string" => "0002-number-strings",
        "negative count" => "0003-negative-counts",
        "unknown mode" => "0004-unknown-mode",
        other => panic!("a new kind of dirt: {other}"),
    };
    let dirty: Vec<(i64, &str)> = users
        .iter()
        .filter_map(|u| u.dirt.map(|d| (u.id, expected(d))))
        .collect();
    assert!(dirty.len() >= 4, "{dirty:?}");

    // the census: nothing would fail, each fixup names its users
    let check = decant::check(
        &db.url,
        spec.clone(),
        &decant::CheckOptions::default(),
        &decant::CheckProgress::default(),
    )
    .await
    .unwrap();
    assert_eq!(check.census.would_fail, 0, "{:?}", check.census.failures);
    for e in &check.census.fixups {
        let theirs: Vec<i64> = dirty
            .iter()
            .filter(|d| d.1 == e.fixup)
            .map(|d| d.0)
            .collect();
        assert_eq!(e.users as usize, theirs.len(), "{}", e.fixup);
        for x in &e.examples {
            assert!(
                theirs.contains(&x.id.as_int().unwrap()),
                "{}: user {}",
                e.fixup,
                x.id
            );
        }
    }

    // everyone migrates; each dirty user with its fixup, recorded
    let r = crate::harness::run_all(&decant).await.unwrap();
    assert_eq!((r.migrated, r.failed), (n as u64, 0));
    // what the migration recorded of a user's fixups
    let record = async |id: i64| -> serde_json::Value {
        client
            .query_one(
                "SELECT fixups FROM decant.user_state WHERE user_id = $1",
                &[&id],
            )
            .await
            .unwrap()
            .get(0)
    };
    for &(id, fixup) in &dirty {
        let record = record(id).await;
        let names: Vec<&str> = record
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["fixup"].as_str().unwrap())
            .collect();
        assert_eq!(names, vec![fixup], "user {id}");
        // the blob served now is the repaired one: it explodes cleanly
        let now = decant.load(id).await.unwrap();
        assert!(decant::explode(&spec, &now).is_ok(), "user {id}: {now}");
        assert!(
            !json_eq(&now, &users[id as usize - 1].blob),
            "user {id} unchanged"
        );
    }
    let recorded: i64 = client
        .query_one(
            "SELECT count(*) FROM decant.user_state WHERE fixups IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        recorded as usize,
        dirty.len(),
        "clean users have no fixup record"
    );

    // a backend writes over what a fixup repaired (a clamped negative
    // count raised): the rollback keeps that newer write
    let (raised, path) = {
        let &(id, _) = dirty
            .iter()
            .find(|d| d.1 == "0003-negative-counts")
            .expect("a negative count among the dirty users");
        let path: Vec<String> =
            serde_json::from_value(record(id).await[0]["changes"][0]["path"].clone()).unwrap();
        let patch = path
            .iter()
            .rev()
            .fold(serde_json::json!(42), |v, k| serde_json::json!({ k: v }));
        decant.patch(id, &patch).await.unwrap();
        (id, path)
    };

    // rolled back: every blob is its original exactly, dirt included,
    // but for the count written since
    let r = crate::harness::rollback_all(&decant, Cohort::All)
        .await
        .unwrap();
    assert_eq!((r.migrated, r.failed), (n as u64, 0));
    let rows = client
        .query("SELECT id, data FROM \"user\" ORDER BY id", &[])
        .await
        .unwrap();
    for row in rows {
        let (id, blob): (i64, serde_json::Value) = (row.get(0), row.get(1));
        let mut want = users[id as usize - 1].blob.clone();
        if id == raised {
            let at = path
                .iter()
                .fold(&mut want, |v, k| v.get_mut(k.as_str()).unwrap());
            assert!(at.as_i64().unwrap() < 0, "the dirt: {at}");
            *at = serde_json::json!(42);
        }
        assert!(json_eq(&blob, &want), "user {id}: {blob}");
    }
    let left: i64 = client
        .query_one(
            "SELECT count(*) FROM decant.user_state WHERE fixups IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_blobs_migrate_with_a_root_fixup_and_roll_back_to_null() {
    let db = TestDb::new().await;
    let n = 40;
    drop(db.game(n).await);
    let client = db.client().await;
    // players who never saved: a NULL blob (1-3) and a JSON null (4)
    client
        .batch_execute(
            "ALTER TABLE \"user\" ALTER COLUMN data DROP NOT NULL; \
             UPDATE \"user\" SET data = NULL WHERE id <= 3; \
             UPDATE \"user\" SET data = 'null' WHERE id = 4;",
        )
        .await
        .unwrap();
    let run = async |decant: &Decant| crate::harness::run_all(decant).await.unwrap();
    let rollback = async |decant: &Decant| {
        let r = crate::harness::rollback_all(decant, Cohort::All)
            .await
            .unwrap();
        assert_eq!(r.failed, 0);
        decant.release(None).await.unwrap();
    };
    // without a fixup they fail: a blob must be an object
    let plain = Decant::connect(&db.url, crate::example::spec(), 4).unwrap();
    let r = run(&plain).await;
    assert_eq!((r.migrated, r.failed), (n as u64 - 4, 4));
    rollback(&plain).await;
    client
        .batch_execute("DELETE FROM decant.user_state")
        .await
        .unwrap();

    // with `path = "$"` they migrate as `{}`, and come back as they were
    let root = Fixup::parse("0001-null-blob", "op = \"null_to_object\"\npath = \"$\"").unwrap();
    let spec = crate::example::spec().with_fixups(vec![root]);
    let decant = Decant::connect(&db.url, spec, 4).unwrap();
    let r = run(&decant).await;
    assert_eq!((r.migrated, r.failed), (n as u64, 0));
    for id in 1..=4i64 {
        assert_eq!(
            decant.load(id).await.unwrap(),
            serde_json::json!({}),
            "user {id}"
        );
    }
    rollback(&decant).await;
    let nulls = async || -> Vec<(i64, bool)> {
        client
            .query(
                "SELECT id, data IS NULL FROM \"user\" WHERE data IS NULL OR data = 'null' ORDER BY id",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    };
    // each comes back as it was: SQL NULL, or a JSON null
    assert_eq!(nulls().await, [(1, true), (2, true), (3, true), (4, false)]);

    // without the fixup, under rules that keep what they refuse, the
    // whole blob stays as the residual, as it was (SQL NULL or JSON null)
    // while migrated and after the rollback
    client
        .batch_execute("DELETE FROM decant.user_state")
        .await
        .unwrap();
    let keep = db.decant_with(
        &crate::example::SPEC.replace("on_invalid = \"fail\"", "on_invalid = \"keep\""),
        4,
    );
    decant::init(&client, keep.spec()).await.unwrap();
    let r = run(&keep).await;
    assert_eq!((r.migrated, r.failed), (n as u64, 0));
    assert_eq!(nulls().await, [(1, true), (2, true), (3, true), (4, false)]);
    for id in 1..=4i64 {
        assert_eq!(
            keep.load(id).await.unwrap(),
            serde_json::Value::Null,
            "user {id}"
        );
        let sql: Option<serde_json::Value> = client
            .query_one("SELECT decant.load($1::int8)", &[&id])
            .await
            .unwrap()
            .get(0);
        assert!(
            sql.as_ref().is_none_or(|v| v.is_null()),
            "user {id}: {sql:?}"
        );
    }
    rollback(&keep).await;
    assert_eq!(nulls().await, [(1, true), (2, true), (3, true), (4, false)]);
    decant::init(&client, decant.spec()).await.unwrap();

    // a NOT NULL column can only have held JSON nulls: they come back so
    client
        .batch_execute(
            "DELETE FROM decant.user_state; \
             UPDATE \"user\" SET data = 'null' WHERE data IS NULL; \
             ALTER TABLE \"user\" ALTER COLUMN data SET NOT NULL;",
        )
        .await
        .unwrap();
    let r = run(&decant).await;
    assert_eq!((r.migrated, r.failed), (n as u64, 0));
    rollback(&decant).await;
    assert_eq!(
        nulls().await,
        [(1, false), (2, false), (3, false), (4, false)]
    );
}

#[test]
fn bad_fixup_folders_are_refused_with_the_file() {
    let dir = std::env::temp_dir().join(format!("decant-fixups-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("fixups")).unwrap();
    std::fs::write(dir.join("decant.toml"), crate::example::SPEC).unwrap();
    std::fs::write(
        dir.join("fixups/0001-a.toml"),
        "op = \"delete\"\npath = \"x\"",
    )
    .unwrap();
    std::fs::write(
        dir.join("fixups/0001-b.toml"),
        "op = \"delete\"\npath = \"y\"",
    )
    .unwrap();
    let err = Spec::load(&dir.join("decant.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("two fixups with number 1"), "{err}");
    std::fs::remove_file(dir.join("fixups/0001-b.toml")).unwrap();
    std::fs::write(
        dir.join("fixups/note.toml"),
        "op = \"delete\"\npath = \"y\"",
    )
    .unwrap();
    let err = Spec::load(&dir.join("decant.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("note.toml") && err.contains("NNNN-name.toml"),
        "{err}"
    );
    std::fs::remove_file(dir.join("fixups/note.toml")).unwrap();
    std::fs::write(
        dir.join("fixups/0002-c.toml"),
        "op = \"shrink\"\npath = \"y\"",
    )
    .unwrap();
    let err = Spec::load(&dir.join("decant.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("0002-c.toml") && err.contains("unknown op `shrink`"),
        "{err}"
    );
    std::fs::remove_file(dir.join("fixups/0002-c.toml")).unwrap();
    assert_eq!(
        Spec::load(&dir.join("decant.toml")).unwrap().fixups().len(),
        1
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// The SQL API's on-demand migration under a spec with fixups: a blob a
/// fixup would change (the game's dirty users; a `delete` that applies
/// to a fifth of them) stays legacy for the daemon and the Rust layer,
/// which apply the fixups; a blob no fixup changes (a `default` whose key
/// every blob has) is migrated, with no fixups recorded.
#[tokio::test]
async fn sql_on_demand_leaves_blobs_a_fixup_would_change_to_the_daemon() {
    let db = TestDb::new().await;
    let n = 400;
    drop(db.game(n).await);
    let client = db.client().await;
    let mut fixups = game_spec_with_fixups().fixups().to_vec();
    for (name, text) in [
        (
            "0005-no-legacy-coins",
            "op = \"delete\"\npath = \"legacyCoins\"",
        ),
        ("0006-xp", "op = \"default\"\npath = \"xp\"\nvalue = 0"),
    ] {
        fixups.push(Fixup::parse(name, text).unwrap());
    }
    let spec = Spec::parse(crate::example::SPEC)
        .unwrap()
        .with_fixups(fixups.clone());
    decant::init(&client, &spec).await.unwrap();
    let decant = Decant::connect(&db.url, spec, 2).unwrap();
    decant
        .set_control(&"rollout=100".parse::<decant::Setting>().unwrap())
        .await
        .unwrap();
    let (mut migrated, mut left, mut dirty_left) = (0, 0, 0);
    for id in 1..=n {
        let mut blob: serde_json::Value = client
            .query_one("SELECT data FROM \"user\" WHERE id = $1", &[&id])
            .await
            .unwrap()
            .get(0);
        let changes = !Fixup::apply_all(&mut blob, &fixups).is_empty();
        client
            .execute("SELECT decant.patch($1, '{}')", &[&id])
            .await
            .unwrap();
        let on = crate::harness::is_migrated(&client, id).await;
        assert!(!(changes && on), "user {id}: a fixup changes its blob");
        if on {
            migrated += 1;
            let fixed: Option<serde_json::Value> = client
                .query_one(
                    "SELECT fixups FROM decant.user_state WHERE user_id = $1",
                    &[&id],
                )
                .await
                .unwrap()
                .get(0);
            assert_eq!(fixed, None, "user {id}");
        } else {
            left += 1;
            if crate::example::user(1, id).dirt.is_some() {
                dirty_left += 1;
            }
            // every clean user a fixup leaves alone migrates
            assert!(
                changes || crate::example::user(1, id).dirt.is_some(),
                "user {id} stayed legacy"
            );
        }
    }
    assert!(
        migrated > n / 2 && left > n / 10 && dirty_left > 0,
        "{migrated} {left} {dirty_left}"
    );
}

/// A fixup's SQL/JSON test (what the SQL API's on-demand migration reads
/// to leave a blob to the daemon) finds every blob the fixup changes:
/// random blobs of a few keys (objects, arrays, strings, numbers, null,
/// booleans) against fixups of every op, through `*`, indexes and keys
/// with quotes, each applied in Rust and tested by the server.
#[tokio::test]
async fn a_fixup_s_sql_test_finds_every_blob_it_changes() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let fixups: Vec<Fixup> = [
        "op = \"null_to_object\"\npath = \"$\"",
        "op = \"null_to_object\"\npath = \"a.*\"",
        "op = \"coerce_number\"\npath = \"a.*.b\"",
        "op = \"coerce_number\"\npath = \"l.0\"",
        "op = \"clamp\"\npath = \"a.*.*\"\nmin = 0\nmax = 2.5",
        "op = \"clamp\"\npath = \"l.*.b\"\nmin = -1",
        "op = \"rename\"\npath = \"a.\\\"q\\\\\\\"k\\\"\"\nto = \"a.z\"\nunless = [\"x\", true, 1]",
        "op = \"delete\"\npath = \"l.*.*\"\nunless = [\"x\", false]",
        "op = \"delete\"\npath = \"a.b\"",
        "op = \"default\"\npath = \"a.b.c\"\nvalue = 1",
        "op = \"default\"\npath = \"l.*.c\"\nvalue = 1",
    ]
    .iter()
    .enumerate()
    .map(|(i, t)| Fixup::parse(&format!("f{i}"), t).unwrap_or_else(|e| panic!("{t}: {e}")))
    .collect();
    let mut rng = crate::example::Rng::new(7);
    fn value(rng: &mut crate::example::Rng, depth: u32) -> serde_json::Value {
        use serde_json::json;
        let keys = ["a", "b", "c", "l", "q\"k", "z", "0"];
        match rng.range(0, if depth > 2 { 6 } else { 8 }) {
            0 => json!(null),
            1 => json!(rng.pick(&[true, false])),
            2 => json!(rng.pick(&["x", "1", " 2", "-3", "1e2", "nope", ""])),
            3 => json!(rng.pick(&[-5, 0, 1, 2, 3])),
            4 => {
                let n: &&str = rng.pick(&["1.0", "2.5", "2.51", "-0.5", "1e400"]);
                serde_json::from_str::<serde_json::Value>(n).unwrap()
            }
            5 => json!({}),
            6 => (0..rng.range(0, 4))
                .map(|_| value(rng, depth + 1))
                .collect::<Vec<_>>()
                .into(),
            _ => (0..rng.range(1, 5))
                .map(|_| (rng.pick(&keys).to_string(), value(rng, depth + 1)))
                .collect::<serde_json::Map<_, _>>()
                .into(),
        }
    }
    let (mut changed, mut said) = (0, 0);
    for _ in 0..1500 {
        let mut blob = value(&mut rng, 0);
        if rng.range(0, 3) > 0 {
            // mostly objects at the root, holding `a` and `l`
            let mut m = serde_json::Map::new();
            m.insert("a".into(), value(&mut rng, 1));
            m.insert("l".into(), value(&mut rng, 1));
            blob = m.into();
        }
        for f in &fixups {
            let path = f.might_change().unwrap();
            let found: bool = client
                .query_one(
                    "SELECT jsonb_path_exists($1, $2::text::jsonpath, '{}'::jsonb, true)",
                    &[&blob, &path],
                )
                .await
                .unwrap_or_else(|e| panic!("{path}: {e:?}"))
                .get(0);
            let mut b = blob.clone();
            let changes = f.apply(&mut b).is_some();
            assert!(!changes || found, "{}: {path} misses {blob}", f.name);
            changed += changes as u32;
            said += found as u32;
        }
    }
    // the tests say no more than needed, by far
    assert!(
        changed > 200 && said < changed * 2,
        "{changed} changed, {said} found"
    );
}
