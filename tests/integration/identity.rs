//! Spec identity: the mapping recorded by init; a different one refused by
//! every command that reads or writes migrated users, naming the
//! difference; an evolution that adds a table, applied by a re-migration.

use crate::harness::TestDb;
use crate::harness::full_speed as opts;
use decant::{Cohort, Decant, Error, Progress, Spec, json_eq};
use std::sync::Arc;

const COINS: &str = "\n[tables.user_coins.columns]\ncoins = \"int8\"\n\n[[rules]]\nname = \"coins\"\npath = \"legacyCoins\"\ntable = \"user_coins\"\nvalue = \"coins\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_different_mapping_is_refused_and_an_added_table_evolves() {
    let db = TestDb::new().await;
    let n = 200;
    let game = db.game(n).await;
    let client = db.client().await;

    // no user migrated yet: a changed mapping is simply recorded by init
    let retyped = crate::example::SPEC.replace("path = \"xp\"", "path = \"experience\"");
    assert_ne!(retyped, crate::example::SPEC);
    decant::init(&client, &Spec::parse(&retyped).unwrap())
        .await
        .unwrap();
    decant::init(&client, &crate::example::spec())
        .await
        .unwrap();
    // a backend with the other spec, nobody migrated: refused, told that
    // `init` records it, not to roll back users there are none of
    let early = Decant::connect(&db.url, Spec::parse(&retyped).unwrap(), 2).unwrap();
    let e = early.load(2).await.unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, Error::SpecMismatch { .. }), "{text}");
    assert!(
        text.contains("No user is migrated yet, so `decant init` with this spec records it")
            && !text.contains("rollback"),
        "{text}"
    );

    let r = crate::harness::run_all(&game).await.unwrap();
    assert!(r.migrated > 150);
    let fp: Vec<Option<String>> = client
        .query(
            "SELECT DISTINCT fingerprint FROM decant.user_state WHERE state = 'migrated'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(fp, vec![Some(crate::example::spec().fingerprint())]);

    // now every command refuses the other mapping, naming the difference
    let other = Decant::connect(&db.url, Spec::parse(&retyped).unwrap(), 2).unwrap();
    let says = |e: Error| {
        let text = e.to_string();
        assert!(matches!(e, Error::SpecMismatch { .. }), "{text}");
        assert!(
            text.contains("recorded `rule xp -> table user_statistic"),
            "{text}"
        );
        assert!(
            text.contains("the spec's `rule experience -> table user_statistic"),
            "{text}"
        );
        assert!(text.contains("users migrated with it"), "{text}");
    };
    says(other.load(2).await.unwrap_err());
    says(
        other
            .patch(2, &serde_json::json!({"xp": 1}))
            .await
            .unwrap_err(),
    );
    says(other.rollback_user(2).await.unwrap_err());
    // a refused run (at full speed) leaves the shared rate alone
    let rate = "SELECT rate FROM decant.control";
    decant::set_control(
        &client,
        &decant::Setting::Rate(decant::Rate::PerSecond(25.try_into().unwrap())),
    )
    .await
    .unwrap();
    let before: String = client.query_one(rate, &[]).await.unwrap().get(0);
    says(crate::harness::run_all(&other).await.unwrap_err());
    let after: String = client.query_one(rate, &[]).await.unwrap().get(0);
    assert_eq!((before.as_str(), after.as_str()), ("25/s", "25/s"));
    says(
        crate::harness::rollback_all(&other, Cohort::All)
            .await
            .unwrap_err(),
    );
    says(
        decant::init(&client, &Spec::parse(&retyped).unwrap())
            .await
            .unwrap_err(),
    );
    let err = decant::init_evolving(&client, &Spec::parse(&retyped).unwrap())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("may only add tables"), "{err}");
    // a column's type changed: said as the mapping that differs (roll the
    // users back first), not as a table of another shape to "rename or
    // drop" (an outside trial did, and lost the migrated users' rows)
    let column_retyped =
        crate::example::SPEC.replace("value = { type = \"numeric\"", "value = { type = \"int8\"");
    assert_ne!(column_retyped, crate::example::SPEC);
    let column_retyped = Spec::parse(&column_retyped).unwrap();
    for err in [
        decant::init(&client, &column_retyped).await.unwrap_err(),
        decant::init_evolving(&client, &column_retyped)
            .await
            .unwrap_err(),
    ] {
        let text = err.to_string();
        assert!(matches!(err, Error::SpecMismatch { .. }), "{text}");
        assert!(text.contains("roll") && !text.contains("drop"), "{text}");
    }
    // `check` says init refuses it: the tables hold rows, so not "drop"
    let warnings = decant::source_warnings(&client, &column_retyped)
        .await
        .unwrap();
    let shape = warnings
        .iter()
        .find(|w| w.contains("another shape"))
        .expect("the shape named");
    assert!(
        shape.contains("holds rows") && shape.contains("roll their users back first"),
        "{shape}"
    );
    // the refused init changed nothing: the views still read `xp`
    let view: String = client
        .query_one("SELECT pg_get_viewdef('user_statistic_all'::regclass)", &[])
        .await
        .unwrap()
        .get(0);
    assert!(
        view.contains("'xp'") && !view.contains("experience"),
        "{view}"
    );

    // an added table: refused by a plain init, accepted as an evolution
    let grown = Spec::parse(&format!("{}{COINS}", crate::example::SPEC)).unwrap();
    says_added(decant::init(&client, &grown).await.unwrap_err());
    // a backend's handle in use with the old spec (its mapping checked),
    // and one deployed with the new spec too early
    let migrated_one: i64 = client
        .query_one("SELECT min(id) FROM \"user\" WHERE migrated", &[])
        .await
        .unwrap()
        .get(0);
    game.load(migrated_one).await.unwrap();
    let evolved = Decant::connect(&db.url, grown.clone(), 4).unwrap();
    assert!(matches!(
        evolved.load(2).await,
        Err(Error::SpecMismatch { .. })
    ));
    decant::init_evolving(&client, &grown).await.unwrap();
    // the old mapping is now the different one: the handle in use finds
    // out at its next call, reads and writes alike, instead of reading
    // users without the keys the evolution moves into the new table
    for e in [
        game.load(migrated_one).await.unwrap_err(),
        game.patch(migrated_one, &serde_json::json!({"legacyCoins": 9}))
            .await
            .unwrap_err(),
        game.load(2).await.unwrap_err(),
    ] {
        assert!(matches!(e, Error::SpecMismatch { .. }), "{e}");
        assert!(e.to_string().contains("restart the backend"), "{e}");
    }
    // the one deployed early works once init has recorded its mapping
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    evolved.load(migrated_one).await.unwrap();
    // users still on the old mapping load alike meanwhile
    let with_coins: Vec<i64> = (1..=n)
        .filter(|&i| {
            let u = crate::example::user(1, i);
            u.dirt.is_none() && u.blob.get("legacyCoins").is_some()
        })
        .collect();
    assert!(!with_coins.is_empty());
    for &id in &with_coins {
        assert!(json_eq(
            &evolved.load(id).await.unwrap(),
            &crate::example::user(1, id).blob
        ));
    }
    let r = crate::harness::evolve_all(&evolved).await.unwrap();
    assert_eq!(r.failed, 0);
    assert_eq!(r.migrated, game_migrated(&client).await as u64);
    let coins: i64 = client
        .query_one("SELECT count(*) FROM user_coins", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(coins as usize, with_coins.len());
    for &id in &with_coins {
        let residual: serde_json::Value = client
            .query_one("SELECT data FROM \"user\" WHERE id = $1", &[&id])
            .await
            .unwrap()
            .get(0);
        assert!(
            residual.get("legacyCoins").is_none(),
            "user {id}: {residual}"
        );
        assert!(json_eq(
            &evolved.load(id).await.unwrap(),
            &crate::example::user(1, id).blob
        ));
    }
    // a second pass has nothing to do; rollback with the evolved mapping
    // gives every original back
    let again = crate::harness::evolve_all(&evolved).await.unwrap();
    assert_eq!(again.migrated, 0);
    crate::harness::rollback_all(&evolved, Cohort::All)
        .await
        .unwrap();
    for row in client
        .query("SELECT id, data FROM \"user\"", &[])
        .await
        .unwrap()
    {
        let (id, blob): (i64, serde_json::Value) = (row.get(0), row.get(1));
        assert!(
            json_eq(&blob, &crate::example::user(1, id).blob),
            "user {id}"
        );
    }
}

fn says_added(e: Error) {
    let text = e.to_string();
    assert!(text.contains("the spec's `table user_coins"), "{text}");
    assert!(text.contains("decant init --evolve"), "{text}");
}

async fn game_migrated(client: &tokio_postgres::Client) -> i64 {
    client
        .query_one("SELECT count(*) FROM \"user\" WHERE migrated", &[])
        .await
        .unwrap()
        .get(0)
}

/// One source table per database: a second table's spec is refused by
/// init and by the calls, naming the table decant serves (with a text id
/// it was "the source's id column changed type", with advice to drop
/// schema decant); before any user depends on the first, init may move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_source_table_in_one_database_is_refused_by_name() {
    let db = TestDb::new().await;
    let game = db.game(20).await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE player (id bigint PRIMARY KEY, data jsonb NOT NULL);
             INSERT INTO player VALUES (1, '{\"xp\": 1}');
             CREATE TABLE guest (id text PRIMARY KEY, data jsonb NOT NULL);",
        )
        .await
        .unwrap();
    let second = |table: &str, id_type: &str| {
        Spec::parse(&format!(
            "[source]\ntable = \"{table}\"\nid_type = \"{id_type}\"\n\n\
             [tables.{table}_xp.columns]\nv = \"int8\"\n\n\
             [[rules]]\nname = \"xp\"\npath = \"xp\"\ntable = \"{table}_xp\"\nvalue = \"v\"\n"
        ))
        .unwrap()
    };
    // nothing migrated yet: init may record another source
    decant::init(&client, &second("player", "bigint"))
        .await
        .unwrap();
    decant::init(&client, &crate::example::spec())
        .await
        .unwrap();
    crate::harness::run_all(&game).await.unwrap();
    let says = |e: Error| {
        let text = e.to_string();
        assert!(
            text.contains("serves the source table public.user")
                && text.contains("one source table per database"),
            "{text}"
        );
    };
    says(
        decant::init(&client, &second("player", "bigint"))
            .await
            .unwrap_err(),
    );
    says(
        decant::init(&client, &second("guest", "text"))
            .await
            .unwrap_err(),
    );
    let other = Decant::connect(&db.url, second("player", "bigint"), 2).unwrap();
    says(other.load(1).await.unwrap_err());
    // release and retry too (they failed on the server's error: with a
    // text id "operator does not exist: text = bigint", with the other
    // table's name "relation does not exist")
    let guest = Decant::connect(&db.url, second("guest", "text"), 2).unwrap();
    let one = [decant::UserId::from("a")];
    says(guest.release(None).await.unwrap_err());
    says(guest.release(Some(&one)).await.unwrap_err());
    says(guest.retry_failed(None).await.unwrap_err());
    says(guest.missing_users(&one).await.unwrap_err());
    // the same table with its flag renamed: the users decant migrated
    // depend on the recorded mapping (with no such flag column, they were
    // counted as none, and init recorded the new flag, all legacy)
    let renamed = crate::example::SPEC.replace("flag = \"migrated\"", "flag = \"moved\"");
    assert_ne!(renamed, crate::example::SPEC);
    let err = decant::init(&client, &Spec::parse(&renamed).unwrap())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("users migrated with it"), "{err}");
    assert!(!err.contains("(0 users migrated"), "{err}");
    let flagged: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = '\"user\"'::regclass \
               AND attname = 'moved')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!flagged, "the refused init added nothing");
}

/// An evolution fails no migrated user for a value its new rule refuses
/// (as the library's writes keep such a value): the value stays in the
/// residual, and the run counts and records the user's warnings, as a
/// migration does for `keep` rules' values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evolution_keeps_and_reports_values_its_new_rule_refuses() {
    let db = TestDb::new().await;
    let n = 160;
    let game = db.game(n).await;
    let client = db.client().await;
    let r = crate::harness::run_all(&game).await.unwrap();
    let warned_rows = "SELECT user_id FROM decant.user_state WHERE warnings IS NOT NULL ORDER BY 1";
    let warned_before: Vec<i64> = crate::harness::column(&client, warned_rows, &[]).await;
    assert_eq!(r.warned, warned_before.len() as u64);

    // at most 4999 coins: about half the users holding coins hold more
    let capped = COINS.replace(
        "coins = \"int8\"",
        "coins = { type = \"int8\", max = 4999 }",
    );
    let grown = Spec::parse(&format!("{}{capped}", crate::example::SPEC)).unwrap();
    decant::init_evolving(&client, &grown).await.unwrap();
    let evolved = Decant::connect(&db.url, grown, 4).unwrap();
    let migrated: Vec<i64> = crate::harness::column(
        &client,
        "SELECT id FROM \"user\" WHERE migrated ORDER BY id",
        &[],
    )
    .await;
    let coins = |id: i64| crate::example::user(1, id).blob.get("legacyCoins").cloned();
    let over: Vec<i64> = migrated
        .iter()
        .copied()
        .filter(|&id| coins(id).is_some_and(|c| c.as_i64().unwrap() > 4999))
        .collect();
    assert!(over.len() > 10, "{over:?}");
    let r = crate::harness::evolve_all(&evolved).await.unwrap();
    assert_eq!((r.migrated, r.failed), (migrated.len() as u64, 0));
    let mut expected: Vec<i64> = warned_before.clone();
    expected.extend(&over);
    expected.sort_unstable();
    expected.dedup();
    assert_eq!(r.warned, expected.len() as u64);
    let warned_after: Vec<i64> = crate::harness::column(&client, warned_rows, &[]).await;
    assert_eq!(warned_after, expected);
    for &id in &over {
        let (residual, warnings): (serde_json::Value, serde_json::Value) = {
            let row = client
                .query_one(
                    "SELECT u.data, st.warnings FROM \"user\" u \
                     JOIN decant.user_state st ON st.user_id = u.id WHERE u.id = $1",
                    &[&id],
                )
                .await
                .unwrap();
            (row.get(0), row.get(1))
        };
        assert_eq!(residual.get("legacyCoins"), coins(id).as_ref(), "user {id}");
        assert!(
            warnings.to_string().contains("coins") && warnings.to_string().contains("4999"),
            "user {id}: {warnings}"
        );
        assert!(json_eq(
            &evolved.load(id).await.unwrap(),
            &crate::example::user(1, id).blob
        ));
    }
    let in_table: i64 = client
        .query_one("SELECT count(*) FROM user_coins", &[])
        .await
        .unwrap()
        .get(0);
    let under = migrated.iter().filter(|&&id| coins(id).is_some()).count() - over.len();
    assert_eq!(in_table as usize, under);
}

/// A daemon running while `init --evolve` records another mapping stops
/// at once with the reason, rather than go on migrating users with the
/// old one (seen: a daemon went on for 45 s after the evolution); the
/// users it migrated before are then evolved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_daemon_stops_when_init_records_another_mapping() {
    let db = TestDb::new().await;
    let n = 300;
    let game = db.game(n).await;
    let client = db.client().await;
    let progress = Arc::new(Progress::default());
    // 10 users a second: 30 s for them all, were it not stopped
    let slow = decant::RunOptions {
        workers: 1,
        rate: Some(decant::Rate::PerSecond(10.try_into().unwrap())),
        ..opts()
    };
    let (g, p) = (game.clone(), progress.clone());
    let task = tokio::spawn(async move { decant::run(&g, slow, p, std::future::pending()).await });
    let started = std::time::Instant::now();
    while progress.migrated() + progress.failed() < 10 {
        assert!(started.elapsed().as_secs() < 60, "the daemon did not start");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let grown = Spec::parse(&format!("{}{COINS}", crate::example::SPEC)).unwrap();
    decant::init_evolving(&client, &grown).await.unwrap();
    let err = tokio::time::timeout(std::time::Duration::from_secs(10), task)
        .await
        .expect("the daemon stops within seconds of the evolution")
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, Error::SpecMismatch { .. }), "{err}");
    assert!(err.to_string().contains("run --evolve"), "{err}");
    let legacy: i64 = client
        .query_one("SELECT count(*) FROM \"user\" WHERE NOT migrated", &[])
        .await
        .unwrap()
        .get(0);
    assert!(legacy > n / 2, "{legacy} users left legacy");
    // what it migrated with the old mapping, an evolution re-migrates
    let migrated = n - legacy;
    let evolved = Decant::connect(&db.url, grown, 4).unwrap();
    let r = crate::harness::evolve_all(&evolved).await.unwrap();
    assert_eq!((r.migrated, r.failed), (migrated as u64, 0));
}
