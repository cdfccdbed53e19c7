//! The tables carry the spec's validation: CHECK constraints, the optional
//! foreign key to the source table, declared indexes.

use crate::harness::{TestDb, insert_user, row_count};
use decant::Spec;
use serde_json::json;

async fn constraints(client: &tokio_postgres::Client, table: &str) -> Vec<(String, String, bool)> {
    client
        .query(
            "SELECT conname::text, pg_get_constraintdef(oid), convalidated FROM pg_constraint \
              WHERE conrelid = $1::text::regclass AND contype IN ('c', 'f') ORDER BY 1",
            &[&table],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

/// The users the query an error of init gives (`SELECT DISTINCT ...`)
/// finds.
async fn users_found_by(client: &tokio_postgres::Client, err: &str) -> Vec<i64> {
    let query = err
        .split('`')
        .find(|p| p.starts_with("SELECT DISTINCT"))
        .expect("a query");
    crate::harness::column(client, query, &[]).await
}

fn error_of(r: Result<u64, tokio_postgres::Error>) -> String {
    r.unwrap_err()
        .as_db_error()
        .map(|e| e.message().to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn the_tables_refuse_what_the_spec_refuses_and_writes_keep_it_in_the_residual() {
    let db = TestDb::new().await;
    let game = db.game(4).await;
    let client = db.client().await;
    let stat = constraints(&client, "user_statistic").await;
    let defs: Vec<&str> = stat.iter().map(|(_, d, _)| d.as_str()).collect();
    assert!(
        stat.iter()
            .all(|(n, _, valid)| n.starts_with("decant_") && *valid),
        "{stat:?}"
    );
    assert!(
        defs.iter().any(|d| d.contains("value >= '0'::numeric")),
        "{defs:?}"
    );
    assert!(
        defs.iter().any(|d| d.contains("char_length(mode) <= 64")),
        "{defs:?}"
    );
    assert!(
        constraints(&client, "user_achievement")
            .await
            .iter()
            .any(|(_, d, _)| d.contains("progress") && d.contains(">= '0'::numeric"))
    );
    // a hand-written row breaking a validation is refused by the table
    let bad = client
        .execute(
            "INSERT INTO user_statistic VALUES (1, 'kidnap', 'points', -1)",
            &[],
        )
        .await;
    assert!(error_of(bad).contains("violates check constraint"));
    let long = "m".repeat(65);
    let bad = client
        .execute(
            "INSERT INTO user_statistic VALUES (1, $1, 'points', 1)",
            &[&long],
        )
        .await;
    assert!(error_of(bad).contains("violates check constraint"));

    // the library never sends such a value: a migrated user's write keeps
    // it in the residual, as before
    game.migrate_user(2).await.unwrap();
    let patch = json!({"marriage": {"achievements": {"first_win": {"progress": -5}}}});
    let written = game.patch(2, &patch).await.unwrap();
    assert_eq!(
        written["marriage"]["achievements"]["first_win"]["progress"],
        -5
    );
    assert_eq!(
        game.load(2).await.unwrap()["marriage"]["achievements"]["first_win"]["progress"],
        -5
    );
    let residual: serde_json::Value = client
        .query_one("SELECT data FROM \"user\" WHERE id = 2", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        residual["marriage"]["achievements"]["first_win"]["progress"], -5,
        "the invalid value is in the residual: {residual}"
    );
    // the SQL API too
    client
        .query_one(
            "SELECT decant.patch(2, '{\"marriage\": {\"achievements\": {\"first_win\": {\"progress\": -7}}}}')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        game.load(2).await.unwrap()["marriage"]["achievements"]["first_win"]["progress"],
        -7
    );
}

#[tokio::test]
async fn a_changed_validation_replaces_its_constraint_and_old_rows_that_break_it_stop_init() {
    let db = TestDb::new().await;
    let game = db.game(4).await;
    let client = db.client().await;
    game.migrate_user(2).await.unwrap();
    let before = constraints(&client, "user_statistic").await;
    // init again: nothing changes
    decant::init(&client, &crate::example::spec())
        .await
        .unwrap();
    assert_eq!(constraints(&client, "user_statistic").await, before);
    // a looser bound: the old constraint goes, the new one comes
    let looser = crate::example::SPEC.replacen(
        "value = { type = \"numeric\", not_null = true, min = 0 }",
        "value = { type = \"numeric\", not_null = true, min = -10 }",
        1,
    );
    assert_ne!(looser, crate::example::SPEC);
    decant::init(&client, &Spec::parse(&looser).unwrap())
        .await
        .unwrap();
    let after = constraints(&client, "user_statistic").await;
    assert_eq!(after.len(), before.len());
    let defs: Vec<&str> = after.iter().map(|(_, d, _)| d.as_str()).collect();
    assert!(
        defs.iter().any(|d| d.contains("value >= '-10'::numeric")),
        "{defs:?}"
    );
    assert!(
        !defs.iter().any(|d| d.contains("value >= '0'::numeric")),
        "{defs:?}"
    );
    // a row written under the looser bound breaks a tighter one: init
    // stops at the validation, naming it
    client
        .execute(
            "INSERT INTO user_statistic VALUES (2, 'zz', 'neg', -3)",
            &[],
        )
        .await
        .unwrap();
    let err = decant::init(&client, &crate::example::spec())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("rows already migrated in \"public\".\"user_statistic\" do not meet")
            && err.contains("column \"value\""),
        "{err}"
    );
    // the query it gives finds the user
    assert_eq!(users_found_by(&client, &err).await, [2]);
}

#[tokio::test]
async fn a_dropped_not_null_leaves_the_column_and_a_restored_one_comes_back() {
    // `not_null` is validation, not mapping: init with a spec that drops
    // it must let the column take NULL (or each user holding a null there
    // fails on the table's NOT NULL, error 23502), and one that states it
    // again sets it back, refusing the nulls written meanwhile by name.
    let db = TestDb::new().await;
    let game = db.game(0).await;
    let client = db.client().await;
    let blob = json!({"bots": {"selected": [null, "bot_03"]}, "xp": 1});
    insert_user(&client, 7, &blob).await;
    let strict = "bot_id = { type = \"text\", not_null = true }";
    assert!(crate::example::SPEC.contains(strict));
    let loose =
        Spec::parse(&crate::example::SPEC.replacen(strict, "bot_id = \"text\"", 1)).unwrap();
    drop(game);
    decant::init(&client, &loose).await.unwrap();
    let game = db.decant_with(
        &crate::example::SPEC.replacen(strict, "bot_id = \"text\"", 1),
        2,
    );
    let report = game.migrate_user(7).await.unwrap();
    assert!(
        report.failed.is_empty() && report.migrated[0].warnings.is_empty(),
        "{report:?}"
    );
    assert_eq!(row_count(&client, 7).await, 3, "two bots and the xp");
    let loaded = game.load(7).await.unwrap();
    assert!(decant::json_eq(&loaded, &blob), "{loaded}");
    // the strict spec again: the stored null stops it, naming the column
    let err = decant::init(&client, &crate::example::spec())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("hold NULL in column \"bot_id\"") && err.contains("nothing was changed"),
        "{err}"
    );
    assert_eq!(users_found_by(&client, &err).await, [7]);
    client
        .execute("DELETE FROM user_selected_bot WHERE bot_id IS NULL", &[])
        .await
        .unwrap();
    decant::init(&client, &crate::example::spec())
        .await
        .unwrap();
    let not_null: bool = client
        .query_one(
            "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'user_selected_bot'::regclass \
             AND attname = 'bot_id'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(not_null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_refuses_tables_whose_validation_is_not_its_spec_s() {
    // A spec edited without `init`: under tables stricter than it, every
    // user holding a value it now allows would fail on the server's error
    // one by one; the daemon says so before its first batch, naming each
    // difference. A rollback is never held back by it.
    let db = TestDb::new().await;
    let game = db.game(30).await;
    let client = db.client().await;
    game.migrate_user(1).await.unwrap();
    let edited = crate::example::SPEC
        .replacen(
            "value = { type = \"numeric\", not_null = true, min = 0 }",
            "value = { type = \"numeric\", not_null = true, min = -10 }",
            1,
        )
        .replacen(
            "bot_id = { type = \"text\", not_null = true }",
            "bot_id = \"text\"",
            1,
        );
    let edited_game = db.decant_with(&edited, 4);
    let err = crate::harness::run_all(&edited_game)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("validation is not this spec's")
            && err.contains("lacks the spec's `CHECK (\"value\" >= '-10'::numeric)`")
            && err.contains("which the spec no longer states")
            && err.contains("\"bot_id\" is NOT NULL, the spec lets it be null")
            && err.contains("run `decant init`"),
        "{err}"
    );
    assert_eq!(
        crate::harness::count_migrated(&client).await,
        1,
        "nothing ran"
    );
    // `check` (and init, run) warn of it
    let warnings = decant::source_warnings(&client, edited_game.spec())
        .await
        .unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("validation is not this spec's") && w.contains("\"bot_id\"")),
        "{warnings:?}"
    );
    assert!(
        decant::source_warnings(&client, game.spec())
            .await
            .unwrap()
            .is_empty()
    );
    // a rollback goes on regardless
    let back = crate::harness::rollback_all(&edited_game, decant::Cohort::All)
        .await
        .unwrap();
    assert_eq!(back.migrated, 1);
    // init with the edited spec: the run goes
    decant::init(&client, edited_game.spec()).await.unwrap();
    crate::harness::run_all(&edited_game).await.unwrap();
    // and the old spec is the one refused now
    let err = crate::harness::run_all(&game)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("\"bot_id\" allows NULL, the spec says not_null"),
        "{err}"
    );
}

#[tokio::test]
async fn foreign_keys_cascade_deletes_and_indexes_are_created() {
    let db = TestDb::new().await;
    let client = db.client().await;
    client.batch_execute(crate::example::SCHEMA).await.unwrap();
    for u in 1..=3 {
        insert_user(&client, u, &crate::example::user(1, u).blob).await;
    }
    let text = crate::example::SPEC
        .replacen("[settings]", "[settings]\nforeign_keys = true", 1)
        .replacen(
            "[tables.user_statistic.columns]",
            "[tables.user_statistic]\nindexes = [[\"statistic_id\", \"value\"], [\"user_id\", \"mode\"]]\n\n[tables.user_statistic.columns]",
            1,
        );
    let spec = Spec::parse(&text).unwrap();
    decant::init(&client, &spec).await.unwrap();
    decant::init(&client, &spec).await.unwrap();
    let fks: Vec<_> = constraints(&client, "user_bot")
        .await
        .into_iter()
        .filter(|(_, d, _)| d.starts_with("FOREIGN KEY"))
        .collect();
    assert_eq!(fks.len(), 1, "{fks:?}");
    assert!(fks[0].1.contains("ON DELETE CASCADE") && fks[0].2);
    let indexes: Vec<String> = client
        .query(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'user_statistic' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        indexes.iter().any(|d| d.ends_with("(statistic_id, value)")),
        "{indexes:?}"
    );
    assert!(
        indexes.iter().any(|d| d.ends_with("(user_id, mode)")),
        "{indexes:?}"
    );

    let decant = decant::Decant::connect(&db.url, spec, 2).unwrap();
    decant.migrate_user(1).await.unwrap();
    decant.migrate_user(2).await.unwrap();
    assert!(row_count(&client, 1).await > 0);
    client
        .execute("DELETE FROM \"user\" WHERE id = 1", &[])
        .await
        .unwrap();
    assert_eq!(
        row_count(&client, 1).await,
        0,
        "the user's rows went with it"
    );
    assert!(row_count(&client, 2).await > 0);
    // a row for a user that does not exist is refused
    let bad = client
        .execute("INSERT INTO user_bot VALUES (99, 'b', NULL, 1, true)", &[])
        .await;
    assert!(error_of(bad).contains("foreign key"));

    // turned off again: the key goes
    decant::init(&client, &crate::example::spec())
        .await
        .unwrap();
    assert!(
        !constraints(&client, "user_bot")
            .await
            .iter()
            .any(|(_, d, _)| d.starts_with("FOREIGN KEY"))
    );
}

#[test]
fn a_bad_index_is_named_with_its_table_and_line() {
    let text = crate::example::SPEC.replacen(
        "[tables.user_statistic.columns]",
        "[tables.user_statistic]\nindexes = [[\"nope\"]]\n\n[tables.user_statistic.columns]",
        1,
    );
    let err = Spec::parse(&text).unwrap_err();
    assert!(
        err.message.contains("user_statistic") && err.message.contains("`nope`") && err.line > 0,
        "{err}"
    );
    let text = crate::example::SPEC.replacen("[settings]", "[settings]\nforeign_key = true", 1);
    let err = Spec::parse(&text).unwrap_err().to_string();
    assert!(err.contains("foreign_key"), "{err}");
}
