//! `decant check`: the census agrees with what migrating does, reads
//! without locking or writing (read-only database, a hot standby, a table
//! locked against writers), and finds migrated users whose rows no longer
//! rebuild.

use crate::cluster::{ClusterOptions, TempCluster};
use crate::harness::{TestDb, connect};
use decant::{Check, CheckOptions, CheckProgress, Selection, UserId};
use std::collections::BTreeMap;
use std::time::Duration;

async fn check(url: &str, selection: Selection) -> Check {
    let opts = CheckOptions {
        selection,
        page: 37, // pages end mid-way through the users
        ..CheckOptions::default()
    };
    decant::check(
        url,
        crate::example::spec(),
        &opts,
        &CheckProgress::default(),
    )
    .await
    .unwrap()
}

async fn table_rows(client: &tokio_postgres::Client) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for t in crate::example::spec().tables() {
        let n: i64 = client
            .query_one(&format!("SELECT count(*) FROM \"{}\"", t.name), &[])
            .await
            .unwrap()
            .get(0);
        out.insert(t.name.clone(), n as u64);
    }
    out
}

#[tokio::test]
async fn the_census_predicts_the_migration() {
    let db = TestDb::new().await;
    let decant = db.game(400).await;
    let client = db.client().await;
    let before = check(&db.url, Selection::All).await;
    let c = &before.census;
    assert_eq!((c.users, c.legacy, c.migrated), (400, 400, 0));
    assert_eq!(before.table_users, 400);
    let dirty = (1..=400)
        .filter(|&i| crate::example::user(1, i).dirt.is_some())
        .count() as u64;
    assert!(
        c.would_fail > 0 && c.would_fail <= dirty,
        "{} of {dirty}",
        c.would_fail
    );
    assert_eq!(
        c.would_migrate_cleanly + c.would_migrate_with_warnings + c.would_fail,
        400
    );
    assert!(before.census.anything_fails());
    // failures grouped by rule, pattern and reason, with examples
    let groups: u64 = c.failures.iter().map(|g| g.users).sum();
    assert_eq!(groups, c.would_fail);
    for g in &c.failures {
        assert!(!g.pattern.is_empty() && !g.reason.is_empty() && !g.examples.is_empty());
        for e in &g.examples {
            assert!(
                crate::example::user(1, e.id.as_int().unwrap())
                    .dirt
                    .is_some(),
                "user {} is clean",
                e.id
            );
            assert!(e.path.starts_with("$."), "{}", e.path);
        }
    }
    // the game's blobs carry keys no rule claims, and their types
    assert!(
        c.unclaimed
            .iter()
            .any(|u| u.path == "$.legacyCoins" && u.users > 20)
    );
    let stats = c
        .types
        .iter()
        .find(|t| t.rule == "mode_statistics")
        .unwrap();
    assert!(stats.types["number"] > 1000);
    assert!(c.blob_bytes.p50 > 100 && c.blob_bytes.max >= c.blob_bytes.p99);

    // migrate everyone: the same users fail, the tables get the rows
    let ids: Vec<i64> = (1..=400).collect();
    let mut failed = Vec::new();
    for chunk in ids.chunks(50) {
        let r = decant.migrate_batch(chunk).await.unwrap();
        failed.extend(r.failed.iter().map(|f| f.user.clone()));
    }
    assert_eq!(failed.len() as u64, c.would_fail);
    for g in &c.failures {
        for e in &g.examples {
            assert!(
                failed.contains(&e.id),
                "user {} was predicted to fail",
                e.id
            );
        }
    }
    assert_eq!(table_rows(&client).await, c.projected_rows);

    // after: the migrated users rebuild, the failed ones still would fail
    let after = check(&db.url, Selection::All).await;
    let a = &after.census;
    assert_eq!((a.migrated, a.legacy), (400 - c.would_fail, c.would_fail));
    assert_eq!(a.would_fail, c.would_fail);
    assert!(a.migrated_not_rebuilding.is_none());
    assert_eq!(a.projected_rows, c.projected_rows);
    assert_eq!((after.held, after.at_attempt_limit), (0, 0));

    // users the daemon leaves alone are said: two rolled back (held), the
    // failed ones pushed to the attempt limit
    let back: Vec<i64> = (1..=400)
        .filter(|i| !failed.contains(&UserId::from(*i)))
        .take(2)
        .collect();
    for u in &back {
        assert!(decant.rollback_user(*u).await.unwrap());
    }
    client
        .execute(
            "UPDATE decant.user_state SET attempts = 1000 WHERE state = 'failed'",
            &[],
        )
        .await
        .unwrap();
    let left = check(&db.url, Selection::All).await;
    assert_eq!(left.census.legacy, c.would_fail + 2);
    assert_eq!((left.held, left.at_attempt_limit), (2, c.would_fail));
    let text = left.to_string();
    assert!(
        text.contains("held                         2 of the legacy users: rolled back"),
        "{text}"
    );
    assert!(text.contains("until `decant release --failed`"), "{text}");
    // a list of ids counts its own
    let one = check(&db.url, Selection::Ids(vec![UserId::from(back[0])])).await;
    assert_eq!((one.held, one.at_attempt_limit), (1, 0));
    decant.release(None).await.unwrap();
    for u in &back {
        decant.migrate_user(*u).await.unwrap();
    }

    // a migrated user's row edited by hand to a value its rule refuses
    let victim: i64 = client
        .query_one("SELECT min(user_id) FROM user_statistic", &[])
        .await
        .unwrap()
        .get(0);
    // the table's checks would refuse the tampering
    crate::harness::drop_checks(&client, "user_statistic").await;
    client
        .execute(
            "UPDATE user_statistic SET value = -5 WHERE user_id = $1 \
             AND ctid = (SELECT min(ctid) FROM user_statistic WHERE user_id = $1)",
            &[&victim],
        )
        .await
        .unwrap();
    let tampered = check(&db.url, Selection::All).await;
    let broken = tampered.census.migrated_not_rebuilding.as_ref().unwrap();
    assert_eq!(broken.users, 1);
    assert_eq!(broken.examples[0].id, victim);
}

#[tokio::test]
async fn a_sample_or_a_list_of_ids_is_censused_alone() {
    let db = TestDb::new().await;
    let _decant = db.game(300).await;
    let sample = check(&db.url, Selection::Sample(40)).await;
    assert_eq!(sample.census.users, 40);
    assert_eq!(sample.table_users, 300);
    let again = check(&db.url, Selection::Sample(40)).await;
    assert_eq!(again.census, sample.census, "a sample is repeatable");

    let dirty = crate::harness::dirty_user(300);
    let ids = check(
        &db.url,
        Selection::Ids([dirty, 5, 5, 1, 9999, 8888].map(UserId::from).to_vec()),
    )
    .await;
    assert_eq!(ids.census.users, 3);
    assert_eq!(ids.missing_ids, vec![8888, 9999]);
    assert_eq!(ids.census.would_fail, 1);
    assert_eq!(ids.census.failures[0].examples[0].id, dirty);
}

#[tokio::test]
async fn the_census_takes_no_lock_and_writes_nothing() {
    let db = TestDb::new().await;
    let decant = db.game(120).await;
    decant
        .migrate_batch(&(1..=60).collect::<Vec<_>>())
        .await
        .unwrap();
    let reference = check(&db.url, Selection::All).await.census;

    // every row locked and the table locked against every writer and
    // every row lock: a census that locked or wrote would wait
    let mut holder = db.client().await;
    let tx = holder.transaction().await.unwrap();
    tx.batch_execute(
        "LOCK TABLE \"user\" IN EXCLUSIVE MODE; LOCK TABLE user_statistic IN EXCLUSIVE MODE",
    )
    .await
    .unwrap();
    let census = tokio::time::timeout(Duration::from_secs(30), check(&db.url, Selection::All))
        .await
        .expect("the census waited for a lock");
    assert_eq!(census.census, reference);
    tx.rollback().await.unwrap();

    // a database whose sessions get tiny timeouts (a managed service's):
    // the census's session sets its own as it starts (a first statement
    // setting them ran under them, and a busy server cancelled it), and
    // its snapshot lifts PostgreSQL 17's transaction timeout (which ends
    // the session), one the census of these users outlasts (45-60 ms) and
    // the statement that begins it does not
    let name = db.name();
    let version = crate::harness::server_version(&holder).await;
    let timeouts = ["statement_timeout", "idle_in_transaction_session_timeout"]
        .iter()
        .map(|t| (*t, "1ms"))
        .chain((version >= 170000).then_some(("transaction_timeout", "20ms")))
        .collect::<Vec<_>>();
    for (setting, value) in &timeouts {
        holder
            .batch_execute(&format!("ALTER DATABASE {name} SET {setting} = '{value}'"))
            .await
            .unwrap();
    }
    let census = check(&db.url, Selection::All).await;
    for (setting, _) in &timeouts {
        holder
            .batch_execute(&format!("ALTER DATABASE {name} RESET {setting}"))
            .await
            .unwrap();
    }
    assert_eq!(census.census, reference);

    // on a database whose sessions are read-only
    let client = db.client().await;
    let name = db.name();
    client
        .batch_execute(&format!(
            "ALTER DATABASE {name} SET default_transaction_read_only = on"
        ))
        .await
        .unwrap();
    assert_eq!(check(&db.url, Selection::All).await.census, reference);
}

#[tokio::test]
async fn the_census_runs_on_a_hot_standby() {
    let primary = tokio::task::spawn_blocking(|| TempCluster::start(&ClusterOptions::default()))
        .await
        .unwrap()
        .unwrap();
    let admin = connect(&primary.url("postgres")).await;
    admin.batch_execute("CREATE DATABASE game").await.unwrap();
    let client = connect(&primary.url("game")).await;
    crate::example::load(&client, 150, 1).await.unwrap();
    let spec = crate::example::spec();
    decant::init(&client, &spec).await.unwrap();
    let decant = decant::Decant::connect(&primary.url("game"), spec, 2).unwrap();
    decant
        .migrate_batch(&(1..=70).collect::<Vec<_>>())
        .await
        .unwrap();
    let on_primary = check(&primary.url("game"), Selection::All).await;

    let standby = tokio::task::spawn_blocking(move || primary.standby().map(|s| (primary, s)))
        .await
        .unwrap()
        .unwrap();
    let (_primary, standby) = standby;
    let replica = connect(&standby.url("game")).await;
    let in_recovery: bool = replica
        .query_one("SELECT pg_is_in_recovery()", &[])
        .await
        .unwrap()
        .get(0);
    assert!(in_recovery, "the standby is a standby");
    let on_standby = check(&standby.url("game"), Selection::All).await;
    assert_eq!(on_standby.census, on_primary.census);
    assert!(on_standby.census.migrated > 0 && on_standby.census.would_fail > 0);
    // the daemon pointed at the standby by mistake says so
    let on_replica =
        decant::Decant::connect(&standby.url("game"), crate::example::spec(), 4).unwrap();
    let err = crate::harness::run_all(&on_replica)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("hot standby") && err.contains("primary"),
        "{err}"
    );
}

#[tokio::test]
async fn a_legacy_user_with_rows_already_there_is_refused_and_listed() {
    let db = TestDb::new().await;
    let decant = db.game(20).await;
    let client = db.client().await;
    let (id, other) = {
        let mut clean = (1..).filter(|&i| crate::example::user(1, i).dirt.is_none());
        (clean.next().unwrap(), clean.next().unwrap())
    };
    // a row left by an earlier tool, under a key the blob does not have
    client
        .execute(
            "INSERT INTO user_statistic (user_id, mode, statistic_id, value) VALUES ($1, 'ghost', 'left_over', 7)",
            &[&id],
        )
        .await
        .unwrap();
    let census = check(&db.url, Selection::All).await.census;
    let group = census
        .failures
        .iter()
        .find(|g| g.rule == "(rows already there)")
        .expect("the census lists the user");
    assert_eq!((group.users, &group.examples[0].id), (1, &id.into()));
    assert!(group.examples[0].value.contains("user_statistic"));

    let report = decant.migrate_user(id).await.unwrap();
    assert!(report.migrated.is_empty());
    let err = report.failed[0].error.to_string();
    assert!(
        err.contains("already has rows in table user_statistic"),
        "{err}"
    );
    assert!(!crate::harness::is_migrated(&client, id).await);
    // the row is left as it was, nothing adopted; others migrate as before
    let left: i64 = client
        .query_one(
            "SELECT count(*) FROM user_statistic WHERE user_id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 1);
    assert_eq!(decant.migrate_user(other).await.unwrap().migrated.len(), 1);
    let status = decant::status(&decant, &decant::Schedule::default())
        .await
        .unwrap();
    assert!(
        status
            .failures
            .iter()
            .any(|f| f.reason == "already has rows in table user_statistic"
                && f.examples == vec![id]),
        "{:?}",
        status.failures
    );
}

#[tokio::test]
async fn the_census_runs_before_init() {
    let db = TestDb::new().await;
    let client = db.client().await;
    crate::example::load(&client, 150, 1).await.unwrap();
    // no flag, no target tables, no decant schema yet
    let all = check(&db.url, Selection::All).await;
    let some = check(
        &db.url,
        Selection::Ids([1i64, 2, 3, 999].map(UserId::from).to_vec()),
    )
    .await;
    assert_eq!(some.census.users, 3);
    assert_eq!(some.missing_ids, vec![999]);
    decant::init(&client, &crate::example::spec())
        .await
        .unwrap();
    let after = check(&db.url, Selection::All).await;
    assert_eq!(all.census, after.census);
    assert!(all.census.would_fail > 0 && all.census.legacy == 150);
}

#[tokio::test]
async fn a_page_ends_at_its_bytes_so_very_large_blobs_come_a_few_at_a_time() {
    let db = TestDb::new().await;
    let _decant = db.game(120).await;
    let client = db.client().await;
    // twelve users mid-table with about 256 KB of incompressible text
    client
        .execute(
            "UPDATE \"user\" SET data = data || jsonb_build_object('junk', \
             (SELECT string_agg(md5(i::text || random()::text), '') \
              FROM generate_series(1, 8000) AS i)) WHERE id BETWEEN 41 AND 52",
            &[],
        )
        .await
        .unwrap();
    let smallest: i32 = client
        .query_one(
            "SELECT min(pg_column_size(data)) FROM \"user\" WHERE id BETWEEN 41 AND 52",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        smallest > 200_000,
        "the large blobs are stored in {smallest} bytes"
    );
    let census = |selection: Selection, page_bytes: u64| {
        let opts = CheckOptions {
            selection,
            page: 1000,
            page_bytes,
        };
        let url = db.url.clone();
        async move {
            decant::check(
                &url,
                crate::example::spec(),
                &opts,
                &CheckProgress::default(),
            )
            .await
            .unwrap()
        }
    };
    // three of them pass 600 KB: at most two a page
    let by_bytes = census(Selection::All, 600_000).await;
    let whole = census(Selection::All, u64::MAX).await;
    assert_eq!(whole.pages, 1);
    assert!(by_bytes.pages >= 6, "{} pages", by_bytes.pages);
    assert_eq!(by_bytes.census.users, 120);
    assert_eq!(
        by_bytes.census, whole.census,
        "the same census, page by page"
    );
    let large: Vec<UserId> = (41..=52).map(UserId::from).collect();
    let listed = census(Selection::Ids(large), 600_000).await;
    assert!(listed.pages >= 6, "{} pages", listed.pages);
    assert_eq!(listed.census.users, 12);
    // a page always takes its first user, however large
    let one_each = census(Selection::All, 1).await;
    assert_eq!((one_each.pages, one_each.census.users), (120, 120));
    assert_eq!(one_each.census, whole.census);
}
