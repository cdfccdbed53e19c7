use crate::harness::{
    TestDb, clean_user, dirty_user, insert_user, is_migrated, raw_blob, row_count,
};
use decant::json_eq;
use decant::{Error, explode};
use serde_json::{Value, json};

#[tokio::test]
async fn migrating_a_user_writes_rows_residual_flag_and_state() {
    let db = TestDb::new().await;
    let decant = db.game(200).await;
    let client = db.client().await;
    // a clean user with deprecated keys, which must stay in the residual
    let id = (1..=200)
        .find(|&i| {
            let u = crate::example::user(1, i);
            u.dirt.is_none() && u.blob.get("legacyCoins").is_some()
        })
        .unwrap();
    let original = raw_blob(&client, id).await;
    let exploded = explode(decant.spec(), &original).unwrap();

    let report = decant.migrate_user(id).await.unwrap();
    assert_eq!(report.migrated.len(), 1);
    assert_eq!(report.migrated[0].rows, exploded.rows.len());
    assert!(is_migrated(&client, id).await);
    assert_eq!(row_count(&client, id).await, exploded.rows.len() as i64);
    let residual = raw_blob(&client, id).await;
    assert_eq!(residual, exploded.residual);
    assert!(residual.get("legacyCoins").is_some());
    assert!(
        residual.get("marriage").is_none(),
        "claimed data left the blob: {residual}"
    );
    let state = client
        .query_one("SELECT state, attempts, migrated_at IS NOT NULL FROM decant.user_state WHERE user_id = $1", &[&id])
        .await
        .unwrap();
    assert_eq!(state.get::<_, String>(0), "migrated");
    assert_eq!(state.get::<_, i32>(1), 0);
    assert!(state.get::<_, bool>(2));
    assert!(json_eq(&decant.load(id).await.unwrap(), &original));

    // a second migration is a no-op
    let again = decant.migrate_user(id).await.unwrap();
    assert_eq!(again.skipped, [id]);
    assert_eq!(row_count(&client, id).await, exploded.rows.len() as i64);
}

#[tokio::test]
async fn a_dirty_user_fails_precisely_and_stays_legacy() {
    let db = TestDb::new().await;
    let decant = db.game(300).await;
    let client = db.client().await;
    let dirty = dirty_user(300);
    let original = raw_blob(&client, dirty).await;
    for attempt in 1..=2 {
        let report = decant.migrate_user(dirty).await.unwrap();
        assert!(report.migrated.is_empty());
        let failure = &report.failed[0];
        let msg = failure.error.to_string();
        assert!(msg.starts_with(&format!("user {dirty}: rule `")), "{msg}");
        assert!(msg.contains(" at $."), "names the JSON path: {msg}");
        assert!(matches!(failure.error, Error::Invalid { .. }));
        let state = client
            .query_one(
                "SELECT state, attempts, last_error FROM decant.user_state WHERE user_id = $1",
                &[&dirty],
            )
            .await
            .unwrap();
        assert_eq!(state.get::<_, String>(0), "failed");
        assert_eq!(state.get::<_, i32>(1), attempt);
        assert_eq!(state.get::<_, String>(2), msg);
    }
    assert!(!is_migrated(&client, dirty).await);
    assert_eq!(raw_blob(&client, dirty).await, original);
    assert_eq!(row_count(&client, dirty).await, 0);
    // the user stays usable through the compatibility layer
    let patched = decant
        .patch(dirty, &json!({"pref": {"sound": false}}))
        .await
        .unwrap();
    assert_eq!(patched["pref"]["sound"], json!(false));
}

#[tokio::test]
async fn a_database_error_mid_migration_rolls_everything_back() {
    let db = TestDb::new().await;
    let decant = db.game(20).await;
    let client = db.client().await;
    let id = clean_user();
    client
        .batch_execute(&format!(
            "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN IF NEW.user_id = {id} THEN RAISE EXCEPTION 'disk on fire'; END IF; RETURN NEW; END $$;
             CREATE TRIGGER boom BEFORE INSERT ON user_achievement FOR EACH ROW EXECUTE FUNCTION boom();"
        ))
        .await
        .unwrap();
    let original = raw_blob(&client, id).await;
    let report = decant.migrate_user(id).await.unwrap();
    assert_eq!(report.failed.len(), 1);
    assert!(report.failed[0].error.to_string().contains("disk on fire"));
    assert!(!is_migrated(&client, id).await);
    assert_eq!(raw_blob(&client, id).await, original);
    assert_eq!(
        row_count(&client, id).await,
        0,
        "no table keeps a partial write"
    );
    let attempts: i32 = client
        .query_one(
            "SELECT attempts FROM decant.user_state WHERE user_id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(attempts, 1);

    // in a batch, the failing user does not hold back the others
    let report = decant
        .migrate_batch(&(1..=20).collect::<Vec<_>>())
        .await
        .unwrap();
    assert!(report.failed.iter().any(|f| f.user == id));
    assert!(report.migrated.len() >= 17, "{report:?}");
    assert!(!is_migrated(&client, id).await);
}

/// A trigger that silently adds one to every `gamesPlayed` row written.
async fn corrupt_games_played(client: &tokio_postgres::Client) {
    client
        .batch_execute(
            "CREATE FUNCTION corrupt() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN IF NEW.statistic_id = 'gamesPlayed' THEN NEW.value := NEW.value + 1; END IF; RETURN NEW; END $$;
             CREATE TRIGGER corrupt BEFORE INSERT ON user_statistic FOR EACH ROW EXECUTE FUNCTION corrupt();",
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn verification_catches_rows_that_do_not_rebuild_the_blob() {
    let db = TestDb::new().await;
    let decant = db.game(20).await;
    let client = db.client().await;
    let id = clean_user();
    corrupt_games_played(&client).await;
    let original = raw_blob(&client, id).await;
    let report = decant.migrate_user(id).await.unwrap();
    let failure = &report.failed[0];
    assert!(
        matches!(failure.error, Error::Verification { .. }),
        "{}",
        failure.error
    );
    assert!(
        failure.error.to_string().contains("gamesPlayed"),
        "{}",
        failure.error
    );
    assert!(!is_migrated(&client, id).await);
    assert_eq!(raw_blob(&client, id).await, original);
    assert_eq!(row_count(&client, id).await, 0);
}

/// The catalog check before a plain insert is skipped while the last one
/// found the tables plain: a trigger created between two batches of the
/// same handle is still caught by the check after the insert, and the
/// user's rows are inserted again with `RETURNING` and compared.
#[tokio::test]
async fn a_trigger_created_after_a_plain_batch_is_still_caught() {
    let db = TestDb::new().await;
    let decant = db.game(20).await;
    let client = db.client().await;
    let clean: Vec<i64> = (1..=20)
        .filter(|&i| crate::example::user(1, i).dirt.is_none())
        .collect();
    let (first, second) = (clean[0], clean[1]);
    // plain tables: migrated by COPY/INSERT without RETURNING
    let report = decant.migrate_user(first).await.unwrap();
    assert_eq!(report.migrated.len(), 1, "{report:?}");
    corrupt_games_played(&client).await;
    let original = raw_blob(&client, second).await;
    let report = decant.migrate_user(second).await.unwrap();
    assert_eq!(report.failed.len(), 1, "{report:?}");
    let failure = &report.failed[0];
    assert!(
        matches!(failure.error, Error::Verification { .. })
            && failure.error.to_string().contains("gamesPlayed"),
        "{}",
        failure.error
    );
    assert!(!is_migrated(&client, second).await);
    assert_eq!(raw_blob(&client, second).await, original);
    assert_eq!(row_count(&client, second).await, 0);
    assert!(is_migrated(&client, first).await);
}

#[tokio::test]
async fn a_column_that_rounds_what_it_stores_is_caught_too() {
    let db = TestDb::new().await;
    let decant = db.game(20).await;
    let client = db.client().await;
    // a DBA narrowed a column: numeric(20,0) rounds 12.5 to 13 without a
    // word, so the plain insert must not be trusted for this table
    client
        // (the cross-user view reads the column: it goes first, as a DBA
        // must drop it before changing a column's type)
        .batch_execute(
            "DROP VIEW user_statistic_all;
             ALTER TABLE user_statistic ALTER COLUMN value TYPE numeric(20,0)",
        )
        .await
        .unwrap();
    let id = 1_000_001;
    let blob = json!({"xp": 12.5, "marriage": {"stats": {"kidnap": {"points": 3}}}});
    insert_user(&client, id, &blob).await;
    let report = decant.migrate_user(id).await.unwrap();
    assert_eq!(report.migrated.len(), 0, "a rounded value was trusted");
    assert!(
        matches!(report.failed[0].error, Error::Verification { .. }),
        "{}",
        report.failed[0].error
    );
    assert!(!is_migrated(&client, id).await);
    assert!(json_eq(&raw_blob(&client, id).await, &blob));

    // an exact value of the same user shape migrates through the same path
    let other = 1_000_002;
    let exact = json!({"xp": 12, "marriage": {"stats": {"kidnap": {"points": 3}}}});
    insert_user(&client, other, &exact).await;
    let report = decant.migrate_user(other).await.unwrap();
    assert_eq!(report.migrated.len(), 1, "{:?}", report.failed);
}

#[tokio::test]
async fn rollback_rebuilds_the_whole_blob_and_clears_the_flag() {
    let db = TestDb::new().await;
    let decant = db.game(20).await;
    let client = db.client().await;
    let id = clean_user();
    let original = raw_blob(&client, id).await;
    decant.migrate_user(id).await.unwrap();
    assert!(decant.rollback_user(id).await.unwrap());
    assert!(!is_migrated(&client, id).await);
    assert!(json_eq(&raw_blob(&client, id).await, &original));
    assert_eq!(row_count(&client, id).await, 0);
    let state: String = client
        .query_one(
            "SELECT state FROM decant.user_state WHERE user_id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    // held out of the migration until released
    assert_eq!(state, "held");
    assert!(
        !decant.rollback_user(id).await.unwrap(),
        "nothing left to roll back"
    );
    // and it can migrate again when asked for by id
    assert_eq!(decant.migrate_user(id).await.unwrap().migrated.len(), 1);
    assert!(json_eq(&decant.load(id).await.unwrap(), &original));
}

#[tokio::test]
async fn unknown_users_are_named() {
    let db = TestDb::new().await;
    let decant = db.game(3).await;
    let err = decant.migrate_user(999).await.unwrap_err();
    assert!(
        matches!(err, Error::UserNotFound(decant::UserId::Int(999))),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "user 999: no such user in the source table"
    );
    assert!(matches!(
        decant.rollback_user(999).await,
        Err(Error::UserNotFound(decant::UserId::Int(999)))
    ));
    assert!(matches!(
        decant.load(999).await,
        Err(Error::UserNotFound(decant::UserId::Int(999)))
    ));
}

#[tokio::test]
async fn every_generated_user_migrates_and_rebuilds_exactly() {
    let db = TestDb::new().await;
    let n = 400;
    let decant = db.game(n).await;
    let ids: Vec<i64> = (1..=n).collect();
    let mut migrated = 0;
    let mut failed = 0;
    for chunk in ids.chunks(50) {
        let r = decant.migrate_batch(chunk).await.unwrap();
        migrated += r.migrated.len();
        failed += r.failed.len();
    }
    let dirty = (1..=n)
        .filter(|&i| crate::example::user(1, i).dirt.is_some())
        .count();
    assert_eq!(failed, dirty, "exactly the dirty users fail");
    assert_eq!(migrated + failed, n as usize);
    for id in ids {
        let want = crate::example::user(1, id).blob;
        let got = decant.load(id).await.unwrap();
        assert!(json_eq(&got, &want), "user {id} differs");
    }
}

/// A blob for [`ALL_TYPES`] with every type's extreme values, nulls, an
/// unknown key, an empty object and a key no rule claims.
pub const EXTREMES: &str = r#"{"items": {
    "max": {"b": true, "i2": 32767, "i4": -2147483648, "i8": 9223372036854775807,
            "f": 1.7976931348623157e308, "n": 123456789012345678901234567890.123456789012345678901,
            "s": "ünïcödé \" \\ \n 💥", "ms": 1669702024365.123, "sec": 253402300799.999999, "iso": "2022-11-29T06:07:04.365123Z",
            "isoms": "2022-11-29T06:07:04.360Z", "d": "9999-12-31", "py": "2022-11-29T06:07:04.365123+00:00", "go": "2022-11-29T06:07:04.5+00:00", "j": {"deep": [1, {"x": null}], "e": {}}},
    "min": {"b": false, "i2": -32768, "i4": 0, "i8": -9223372036854775808, "f": 5e-324,
            "n": 1e-40, "s": "", "ms": -62135596800000, "sec": -62135596800, "iso": "0001-01-01T00:00:00Z", "isoms": "0001-01-01T00:00:00.000Z", "d": "0001-01-01", "py": "0001-01-01T00:00:00.000000+00:00", "go": "1970-01-01T00:00:00+00:00", "j": null},
    "nulls": {"b": null, "extra_key": [1, 2]},
    "empty": {}
}, "other": {"kept": 1.50}}"#;

pub const ALL_TYPES: &str = r#"
[source]
table = "user"

[tables.t.columns]
k = "text"
b = "bool"
i2 = "int2"
i4 = "int4"
i8 = "int8"
f = "float8"
n = "numeric"
s = "text"
ms = "timestamptz"
sec = "timestamptz_s"
iso = "timestamptz_iso"
isoms = "timestamptz_iso_ms"
d = "date"
py = "timestamptz_iso_us_offset"
go = "timestamptz_iso_offset"
j = "jsonb"
extra = "jsonb"

[[rules]]
name = "all"
path = "items.{k}"
table = "t"
keys = { b = "b", i2 = "i2", i4 = "i4", i8 = "i8", f = "f", n = "n", s = "s", ms = "ms", sec = "sec", iso = "iso", isoms = "isoms", d = "d", py = "py", go = "go", j = "j" }
"#;

#[tokio::test]
async fn every_column_type_round_trips_through_postgres_exactly() {
    let db = TestDb::new().await;
    let client = db.client().await;
    client.batch_execute(crate::example::SCHEMA).await.unwrap();
    let blob: Value = serde_json::from_str(EXTREMES).unwrap();
    client
        .execute("INSERT INTO \"user\" VALUES (1, 'a', $1)", &[&blob])
        .await
        .unwrap();
    let decant = db.decant_with(ALL_TYPES, 2);
    decant::init(&client, decant.spec()).await.unwrap();
    let report = decant.migrate_user(1).await.unwrap();
    assert_eq!(report.migrated.len(), 1, "{report:?}");
    assert_eq!(report.migrated[0].rows, 4);
    let loaded = decant.load(1).await.unwrap();
    assert!(json_eq(&loaded, &blob), "{loaded}");
    // the big numeric is exact in the table, not a float
    let n: String = client
        .query_one("SELECT n::text FROM t WHERE k = 'max'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, "123456789012345678901234567890.123456789012345678901");
    let ts: String = client
        .query_one("SELECT to_char(ms AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') FROM t WHERE k = 'max'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(ts, "2022-11-29 06:07:04.365123");
    assert!(decant.rollback_user(1).await.unwrap());
    let back: Value = client
        .query_one("SELECT data FROM \"user\" WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert!(json_eq(&back, &blob));
}

/// Numbers of many shapes: up to 40 digits each side of the point, trailing
/// zeros, zeros, powers of ten, negatives (a fixed pseudo-random sequence).
fn numeric_texts(n: usize) -> Vec<String> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move |m: u64| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) % m
    };
    let mut out: Vec<String> = [
        "0",
        "-0",
        "0.0000",
        "1",
        "10000",
        "9999.9999",
        "0.0001",
        "100000000",
        "1e-40",
        "1e100",
        "-1.5e3",
        "2.50E-2",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    while out.len() < n {
        let mut s = String::new();
        if next(3) == 0 {
            s.push('-');
        }
        let int_len = 1 + next(40) as usize;
        let first = if int_len == 1 { next(10) } else { 1 + next(9) };
        s.push(char::from(b'0' + first as u8));
        for _ in 1..int_len {
            s.push(char::from(b'0' + next(10) as u8));
        }
        let frac_len = next(41) as usize;
        if frac_len > 0 {
            s.push('.');
            for i in 0..frac_len {
                // runs of zeros now and then
                let d = if next(4) == 0 || (i > 0 && next(3) == 0) {
                    0
                } else {
                    next(10)
                };
                s.push(char::from(b'0' + d as u8));
            }
        }
        out.push(s);
    }
    out
}

#[tokio::test]
async fn the_binary_copy_stores_what_postgres_makes_of_each_value() {
    let db = TestDb::new().await;
    let client = db.client().await;
    client.batch_execute(crate::example::SCHEMA).await.unwrap();
    let numbers = numeric_texts(4_500); // over COPY_MIN_ROWS: the COPY path
    let items: Vec<String> = numbers
        .iter()
        .enumerate()
        .map(|(i, n)| {
            format!(
                r#""n{i}": {{"n": {n}, "f": {n}, "i4": {}, "ms": {}, "iso": "2022-11-29T06:07:{:02}.{:05}1Z", "b": {}, "s": "s{i} ü", "j": {{"v": {n}}}}}"#,
                (i as i64 - 2_250) * 954_437,
                (i as i64 - 2_250) * 13_333_123_457,
                i % 60,
                i * 7919 % 100_000,
                i % 2 == 0
            )
        })
        .collect();
    let mut blob: Value =
        serde_json::from_str(&format!(r#"{{"items": {{{}}}}}"#, items.join(", "))).unwrap();
    // floats must be exact in float8 to be taken: keep the ones that are
    for item in blob["items"].as_object_mut().unwrap().values_mut() {
        let f = item["f"].clone();
        // exact: the shortest text of the nearest double is the same number
        let exact = f.as_f64().is_some_and(|x| {
            x.is_finite()
                && serde_json::from_str::<Value>(&format!("{x}"))
                    .is_ok_and(|back| decant::json_eq(&back, &f))
        });
        if !exact {
            item.as_object_mut().unwrap().remove("f");
        }
    }
    client
        .execute("INSERT INTO \"user\" VALUES (1, 'a', $1)", &[&blob])
        .await
        .unwrap();
    client
        .batch_execute("CREATE TABLE original AS SELECT data FROM \"user\" WHERE id = 1")
        .await
        .unwrap();
    let decant = db.decant_with(ALL_TYPES, 2);
    decant::init(&client, decant.spec()).await.unwrap();
    let report = decant.migrate_batch(&[1]).await.unwrap();
    assert_eq!(report.migrated.len(), 1, "{report:?}");
    assert_eq!(report.migrated[0].rows, numbers.len());
    // each stored value equals what PostgreSQL's own input functions make
    // of the blob's text, to the display scale of every numeric (epoch
    // milliseconds through decant.epoch_ms: extract(epoch) is a double
    // before PostgreSQL 14)
    let wrong: Vec<(String, String, Option<String>)> = client
        .query(
            "SELECT t.k, e.value::text, t.n::text FROM t, original o, jsonb_each(o.data->'items') e \
             WHERE e.key = t.k AND ( \
                t.n::text IS DISTINCT FROM (e.value->>'n')::numeric::text \
                OR t.f IS DISTINCT FROM (e.value->>'f')::float8 \
                OR t.i4 IS DISTINCT FROM (e.value->>'i4')::int4 \
                OR decant.epoch_ms(t.ms) IS DISTINCT FROM (e.value->>'ms')::numeric \
                OR t.iso IS DISTINCT FROM (e.value->>'iso')::timestamptz \
                OR t.b IS DISTINCT FROM (e.value->>'b')::bool \
                OR t.s IS DISTINCT FROM e.value->>'s' \
                OR t.j IS DISTINCT FROM e.value->'j')",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert!(
        wrong.is_empty(),
        "{} differ, first: {:?}",
        wrong.len(),
        wrong.first()
    );
    let rows: i64 = client
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, numbers.len() as i64);
}

#[tokio::test]
async fn a_null_blob_fails_its_user_and_stays_legacy() {
    let db = TestDb::new().await;
    let decant = db.game(3).await;
    let client = db.client().await;
    client
        .batch_execute(
            "ALTER TABLE \"user\" ALTER COLUMN data DROP NOT NULL; \
             INSERT INTO \"user\" (id, name, data) VALUES (4, 'n', NULL)",
        )
        .await
        .unwrap();
    let report = decant.migrate_batch(&[1, 4]).await.unwrap();
    assert_eq!(report.migrated.len(), 1, "{report:?}");
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].user, 4);
    let message = report.failed[0].error.to_string();
    assert!(
        message.contains("rule `(blob)`") && message.contains("a JSON object at the root"),
        "{message}"
    );
    assert!(!is_migrated(&client, 4).await);
    assert_eq!(decant.load(4).await.unwrap(), Value::Null);
}

/// `{"pref": {...}, "deep": [[...[n]...]]}`: `depth` objects and arrays
/// nested in all (the root object counts one), with a number innermost.
fn nested(depth: usize, n: i64) -> Value {
    let mut v = json!(n);
    for _ in 0..depth - 1 {
        v = json!([v]);
    }
    json!({"pref": {"sound": true}, "deep": v})
}

/// The spec's depth limit at its default (128: serde_json alone stops
/// short of it), at its ceiling and set low (below what serde_json
/// accepts): a blob at the limit migrates, loads, patches and rolls back;
/// one level more fails its user with the reason and nothing panics; a
/// client may not write one.
#[tokio::test]
async fn one_depth_limit_on_every_path() {
    let db = TestDb::new().await;
    drop(db.game(2).await);
    let client = db.client().await;
    for (limit, setting) in [
        (128, ""),
        (512, "max_depth = 512\n"),
        (6, "max_depth = 6\n"),
    ] {
        let spec_text =
            crate::example::SPEC.replacen("[settings]\n", &format!("[settings]\n{setting}"), 1);
        let decant = db.decant_with(&spec_text, 2);
        assert_eq!(decant.spec().settings().max_depth, limit);
        // (init again: the SQL API takes the limit from the spec)
        decant::init(&client, decant.spec()).await.unwrap();
        let (ok_id, deep_id) = (100 + limit as i64, 2000 + limit as i64);
        let ok = nested(limit, 7);
        if limit >= 128 {
            assert!(
                serde_json::from_str::<Value>(&ok.to_string()).is_err(),
                "serde_json refuses it"
            );
        }
        insert_user(&client, ok_id, &ok).await;
        assert_eq!(decant.load(ok_id).await.unwrap(), ok, "limit {limit}");
        let report = decant.migrate_user(ok_id).await.unwrap();
        assert_eq!(
            report.migrated.len(),
            1,
            "limit {limit}: {:?}",
            report.failed
        );
        assert_eq!(decant.load(ok_id).await.unwrap(), ok);
        let patched = decant
            .patch(ok_id, &json!({"pref": {"sound": false}}))
            .await
            .unwrap();
        assert_eq!(patched["deep"], ok["deep"]);
        // a patch nesting one level more is refused and changes nothing
        let deeper = json!({"deep": ok["deep"].clone(), "more": {"deep": ok["deep"].clone()}});
        let err = decant.patch(ok_id, &deeper).await.unwrap_err().to_string();
        assert!(
            err.contains(&format!("nested deeper than {limit} levels")),
            "{err}"
        );
        assert_eq!(decant.load(ok_id).await.unwrap(), patched);
        assert!(decant.rollback_user(ok_id).await.unwrap());
        // (compared in SQL: serde_json cannot read it back)
        let same: bool = client
            .query_one(
                "SELECT data = $1::text::jsonb AND NOT migrated FROM \"user\" WHERE id = $2",
                &[&patched.to_string(), &ok_id],
            )
            .await
            .unwrap()
            .get(0);
        assert!(
            same,
            "limit {limit}: the rolled-back blob is the patched one"
        );
        let many = decant.load_many(&[1, ok_id]).await.unwrap();
        assert_eq!(many[1].1, patched);
        // a legacy user's save past the limit is refused too
        let err = decant.save(ok_id, &nested(limit + 1, 1)).await.unwrap_err();
        assert!(err.to_string().contains("nested deeper than"), "{err}");
        assert_eq!(decant.load(ok_id).await.unwrap(), patched);
        // and through the SQL API
        let sql_save = |blob: Value| {
            let client = &client;
            async move {
                client
                    .query_one(
                        "SELECT decant.save($1, $2::text::jsonb)",
                        &[&ok_id, &blob.to_string()],
                    )
                    .await
                    .map(drop)
            }
        };
        let err = sql_save(nested(limit + 1, 1)).await.unwrap_err();
        let msg = err
            .as_db_error()
            .map(|e| e.message().to_string())
            .unwrap_or_default();
        assert!(
            msg.contains(&format!("nested deeper than {limit} levels")),
            "{err:?}"
        );
        assert_eq!(decant.load(ok_id).await.unwrap(), patched);
        sql_save(nested(limit, 3)).await.unwrap();
        sql_save(patched.clone()).await.unwrap();

        // one level more, stored by another writer: the user fails with
        // the reason and stays legacy; nothing panics
        insert_user(&client, deep_id, &nested(limit + 1, 7)).await;
        let report = decant.migrate_user(deep_id).await.unwrap();
        assert_eq!(report.failed.len(), 1, "{report:?}");
        let why = report.failed[0].error.to_string();
        let reason = format!("nested deeper than {limit} levels");
        assert!(why.contains(&reason) && why.contains("max_depth"), "{why}");
        assert!(!is_migrated(&client, deep_id).await);
        // grouped by what is wrong (it is no failed verification)
        let recorded: String = client
            .query_one(
                "SELECT reason FROM decant.user_state WHERE user_id = $1",
                &[&deep_id],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(recorded, format!("cannot read the blob: {reason}"));
        let err = decant.load(deep_id).await.unwrap_err().to_string();
        assert!(err.contains(&reason), "{err}");
        assert!(decant.load_many(&[deep_id]).await.is_err());
        // the census says so too
        let opts = decant::CheckOptions {
            selection: decant::Selection::Ids(vec![deep_id.into()]),
            ..Default::default()
        };
        let check = decant::check(&db.url, decant.spec().clone(), &opts, &Default::default())
            .await
            .unwrap();
        let fails = &check.census.failures;
        assert!(
            fails.len() == 1
                && fails[0].examples[0].id == deep_id
                && fails[0].examples[0].value.contains(&reason),
            "{fails:?}"
        );
    }
}

/// A value nested past serde_json's 128 levels in a target table's jsonb
/// column (the spec's `max_depth` raised to let it migrate) reads back on
/// every path that reads rows: load, the census, rollback, finalize. They
/// panicked ("error deserializing column") on it, and a cohort rollback
/// left its whole batch migrated.
#[tokio::test]
async fn a_jsonb_column_holds_what_the_depth_limit_lets_in() {
    let db = TestDb::new().await;
    let client = db.client().await;
    client
        .batch_execute("CREATE TABLE t (id bigint PRIMARY KEY, data jsonb NOT NULL)")
        .await
        .unwrap();
    let spec = "[source]\ntable = \"t\"\n\n[settings]\nmax_depth = 200\n\n\
        [tables.t_a.columns]\nk = \"text\"\nv = \"jsonb\"\n\n\
        [[rules]]\nname = \"a\"\npath = \"a.{k}\"\ntable = \"t_a\"\nvalue = \"v\"\n";
    let mut deep = json!(1);
    for _ in 0..150 {
        deep = json!({ "n": deep });
    }
    let blob = json!({"a": {"k": deep, "j": 2}, "b": true});
    for (id, b) in [(1i64, &blob), (2, &json!({"a": {"k": 1}}))] {
        client
            .execute(
                "INSERT INTO t VALUES ($1, $2::text::jsonb)",
                &[&id, &b.to_string()],
            )
            .await
            .unwrap();
    }
    let decant = db.decant_with(spec, 2);
    decant::init(&client, decant.spec()).await.unwrap();
    let report = decant.migrate_batch(&[1i64, 2]).await.unwrap();
    assert_eq!(report.migrated.len(), 2, "{:?}", report.failed);
    assert_eq!(decant.load(1i64).await.unwrap(), blob);
    assert_eq!(decant.load_many(&[1i64, 2]).await.unwrap().len(), 2);
    let check = decant::check(
        &db.url,
        decant.spec().clone(),
        &Default::default(),
        &Default::default(),
    )
    .await
    .unwrap();
    assert_eq!(check.census.migrated, 2);
    assert!(check.census.migrated_not_rebuilding.is_none());
    // a cohort rollback takes both users of the batch back
    let report = decant::rollback(
        &decant,
        decant::Cohort::All,
        crate::harness::full_speed(),
        Default::default(),
        std::future::pending(),
    )
    .await
    .unwrap();
    assert_eq!((report.migrated, report.failed), (2, 0));
    let same: bool = client
        .query_one(
            "SELECT data = $1::text::jsonb AND NOT migrated FROM t WHERE id = 1",
            &[&blob.to_string()],
        )
        .await
        .unwrap()
        .get(0);
    assert!(same, "the rolled-back blob is the one migrated");
    decant.release(None).await.unwrap();
    decant.migrate_batch(&[1i64, 2]).await.unwrap();
    assert!(decant.rollback_user(1i64).await.unwrap());
    decant.release(None).await.unwrap();
    decant.migrate_user(1i64).await.unwrap();
    let done = decant::finalize(&db.url, &decant, false).await.unwrap();
    assert_eq!(done.users, 2, "{done:?}");
}

/// A trigger on the source table that returns NULL for a row (`BEFORE
/// UPDATE`) skips decant's UPDATE of it without a word. It left users
/// with their rows written but their whole blob and their flag unset
/// (counted migrated by the run, failing the next one on "already has
/// rows"), and a rollback deleted a migrated user's rows while its row
/// kept the residual and the flag. Now such users fail, left as they
/// were, with the reason; the others migrate; a skipped rollback
/// changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trigger_skipping_decants_update_leaves_the_user_as_it_was() {
    let db = TestDb::new().await;
    let users = 40;
    let decant = db.game(users).await;
    let client = db.client().await;
    let before: Vec<Value> = {
        let mut v = Vec::new();
        for u in 1..=users {
            v.push(raw_blob(&client, u).await);
        }
        v
    };
    // skips the flag's flip of every user divisible by 4
    client
        .batch_execute(
            "CREATE FUNCTION skip_fourth() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN IF NEW.id % 4 = 0 AND NEW.migrated IS DISTINCT FROM OLD.migrated THEN RETURN NULL; END IF;
                   RETURN NEW; END $$;
             CREATE TRIGGER skip_fourth BEFORE UPDATE ON \"user\" FOR EACH ROW EXECUTE FUNCTION skip_fourth();",
        )
        .await
        .unwrap();
    let report = crate::harness::run_all(&decant).await.unwrap();
    let migrated = crate::harness::count_migrated(&client).await;
    assert_eq!(
        report.migrated as i64, migrated,
        "the run counts what it did: {report:?}"
    );
    for u in (4..=users).step_by(4) {
        assert!(!is_migrated(&client, u).await, "user {u}");
        assert_eq!(
            row_count(&client, u).await,
            0,
            "user {u}: no rows beside its blob"
        );
        assert!(
            json_eq(&raw_blob(&client, u).await, &before[u as usize - 1]),
            "user {u}"
        );
        let why: String = client
            .query_one(
                "SELECT last_error FROM decant.user_state WHERE user_id = $1",
                &[&u],
            )
            .await
            .unwrap()
            .get(0);
        assert!(
            why.contains("changed nothing") && why.contains("trigger"),
            "user {u}: {why}"
        );
    }
    assert!(migrated >= 20, "the other users migrate: {migrated}");
    // the same trigger skips clearing the flag of a migrated user: its
    // rollback changes nothing
    client
        .batch_execute(
            "CREATE OR REPLACE FUNCTION skip_fourth() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN IF NEW.migrated IS DISTINCT FROM OLD.migrated THEN RETURN NULL; END IF;
                   RETURN NEW; END $$",
        )
        .await
        .unwrap();
    let some: i64 = client
        .query_one("SELECT min(id) FROM \"user\" WHERE migrated", &[])
        .await
        .unwrap()
        .get(0);
    let rows = row_count(&client, some).await;
    let err = decant.rollback_user(some).await.unwrap_err();
    assert!(err.to_string().contains("changed nothing"), "{err}");
    assert!(is_migrated(&client, some).await);
    assert_eq!(row_count(&client, some).await, rows, "its rows stay");
    let loaded = decant.load(some).await.unwrap();
    assert!(
        json_eq(&loaded, &before[some as usize - 1]),
        "user {some}: {loaded}"
    );
}
