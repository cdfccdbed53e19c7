//! Any blob PostgreSQL accepts, through every path: generated jsonb of
//! every type, size and depth (huge and tiny numbers, any Unicode key,
//! non-object blobs, nesting past the parser's limit), mostly shaped like
//! the example game so that its rules (fail and keep policies, int2,
//! timestamps, jsonb extras) meet wrong values. Migration, load, patch and
//! rollback must each give an error for the user or a correct result,
//! never a panic, and every user must read back as its blob.

use crate::harness::{TestDb, full_speed};
use decant::{Cohort, Progress};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use std::sync::Arc;

fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// A JSON scalar as text.
fn leaf() -> BoxedStrategy<String> {
    prop_oneof![
        Just("null".to_string()),
        Just("true".to_string()),
        Just("false".to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        (-1e300f64..1e300).prop_map(|f| format!("{f:e}")),
        // beyond f64 and i64: jsonb keeps every digit
        "-?[1-9][0-9]{0,40}(\\.[0-9]{1,40})?([eE][-+]?[0-9]{1,3})?",
        Just("0".to_string()),
        Just("-0.0".to_string()),
        "\\PC{0,12}".prop_map(|s| quoted(&s)),
        Just(quoted("2024-02-29T23:59:59.123456+05:30")),
    ]
    .boxed()
}

fn key() -> BoxedStrategy<String> {
    prop_oneof![
        3 => "[a-z]{1,6}",
        1 => "\\PC{0,8}",
        1 => Just(String::new()),
        1 => Just("{x}".to_string()),
        1 => Just("a.b".to_string()),
    ]
    .boxed()
}

fn object(entries: Vec<(String, String)>) -> String {
    let body: Vec<String> = entries
        .iter()
        .map(|(k, v)| format!("{}: {v}", quoted(k)))
        .collect();
    format!("{{{}}}", body.join(", "))
}

/// Any JSON value as text, up to 4 levels.
fn value() -> BoxedStrategy<String> {
    leaf()
        .prop_recursive(4, 40, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                prop::collection::vec((key(), inner), 0..6).prop_map(object),
            ]
        })
        .boxed()
}

/// Maps from `key()` to `value()`, as an object's text.
fn map_of(v: BoxedStrategy<String>) -> BoxedStrategy<String> {
    prop::collection::vec((key(), v), 0..5)
        .prop_map(object)
        .boxed()
}

/// A blob shaped like the example game's, with any values in it.
fn game_shaped() -> impl Strategy<Value = String> {
    let stats = map_of(map_of(value()));
    let achievement = prop::collection::vec(
        (
            prop_oneof![
                Just("unlockedAt".to_string()),
                Just("progress".to_string()),
                key()
            ],
            value(),
        ),
        0..4,
    )
    .prop_map(object)
    .boxed();
    let config = prop::collection::vec(
        (
            prop_oneof![Just("mans".to_string()), Just("mode".to_string()), key()],
            value(),
        ),
        0..4,
    )
    .prop_map(object);
    let marriage = (stats, map_of(achievement.clone()), config, value()).prop_map(
        |(stats, ach, config, last)| {
            object(vec![
                (
                    "stats".into(),
                    stats
                        .replacen('{', &format!("{{\"lastPlayed\": {last}, "), 1)
                        .replace(", }", "}"),
                ),
                ("achievements".into(), ach),
                ("config".into(), config),
            ])
        },
    );
    let bots =
        (prop::collection::vec(value(), 0..4), map_of(achievement)).prop_map(|(selected, rest)| {
            let selected = format!("[{}]", selected.join(","));
            rest.replacen('{', &format!("{{\"selected\": {selected}, "), 1)
                .replace(", }", "}")
        });
    (marriage, bots, map_of(value()), value(), map_of(value())).prop_map(
        |(marriage, bots, pref, xp, other)| {
            let mut entries = vec![
                ("marriage".to_string(), marriage),
                ("bots".to_string(), bots),
                ("pref".to_string(), pref),
                ("xp".to_string(), xp),
            ];
            entries.push(("other".into(), other));
            object(entries)
        },
    )
}

/// Any blob: mostly game-shaped, some free objects, some that are not
/// objects at all, some nested past the parsers' limit.
fn blob() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => game_shaped(),
        2 => map_of(value()),
        1 => value(),
        1 => (120usize..140).prop_map(|d| format!("{}1{}", "[".repeat(d), "]".repeat(d))),
        1 => (120usize..140).prop_map(|d| format!("{}{}", "{\"a\": ".repeat(d), "}".repeat(d)).replace(": }", ": 1}")),
    ]
}

/// Whether two jsonb texts are equal to PostgreSQL.
async fn same(client: &tokio_postgres::Client, a: &str, b: &str) -> bool {
    client
        .query_one("SELECT $1::text::jsonb = $2::text::jsonb", &[&a, &b])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_jsonb_migrates_loads_patches_and_rolls_back_or_fails_cleanly() {
    let db = TestDb::new().await;
    let client = db.client().await;
    client.batch_execute(crate::example::SCHEMA).await.unwrap();
    let seed = std::env::var("DECANT_HOSTILE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261202u64);
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &bytes),
    );
    let users = 240i64;
    let mut blobs = Vec::new();
    for id in 1..=users {
        let text = blob().new_tree(&mut runner).unwrap().current();
        let patch = prop_oneof![map_of(value()), game_shaped()]
            .new_tree(&mut runner)
            .unwrap()
            .current();
        client
            .execute(
                "INSERT INTO \"user\" (id, name, data) VALUES ($1, 'u', $2::text::jsonb)",
                &[&id, &text],
            )
            .await
            .unwrap_or_else(|e| panic!("seed {seed}: the generator made invalid JSON {text}: {e}"));
        blobs.push((id, text, patch));
    }
    let spec = crate::example::spec();
    decant::init(&client, &spec).await.unwrap();
    let decant = decant::Decant::connect(&db.url, spec, 4).unwrap();

    let report = decant::run(
        &decant,
        full_speed(),
        Arc::new(Progress::default()),
        std::future::pending(),
    )
    .await
    .unwrap_or_else(|e| panic!("seed {seed}: the run failed: {e}"));
    assert_eq!(
        report.migrated + report.failed,
        users as u64,
        "seed {seed}: {report:?}"
    );
    assert!(report.migrated > 0, "seed {seed}: nothing migrated");
    eprintln!(
        "seed {seed}: {} migrated, {} failed",
        report.migrated, report.failed
    );

    // every user reads back as its blob, whatever its state; a blob past
    // the depth limit may be refused, with that reason
    let deep = |e: &decant::Error| e.to_string().contains("deeper than");
    for (id, text, _) in &blobs {
        match decant.load(*id).await {
            Ok(v) => assert!(
                same(&client, &v.to_string(), text).await,
                "seed {seed}: user {id} loads as {v} instead of {text}"
            ),
            Err(e) => assert!(deep(&e), "seed {seed}: user {id}: {e} ({text})"),
        }
    }

    // a random merge patch: the result is the merge, and it is what loads
    let mut expected = Vec::new();
    for (id, text, patch) in &blobs {
        let patch_value: serde_json::Value = serde_json::from_str(patch).unwrap();
        match decant.patch(*id, &patch_value).await {
            Ok(after) => {
                let loaded = decant.load(*id).await.unwrap();
                assert!(
                    same(&client, &after.to_string(), &loaded.to_string()).await,
                    "seed {seed}: user {id}: patch returned {after}, load gives {loaded}"
                );
                let merged: String = client
                    .query_one(
                        "SELECT decant.merge_patch($1::text::jsonb, $2::text::jsonb)::text",
                        &[text, patch],
                    )
                    .await
                    .map(|r| r.get(0))
                    .unwrap_or_else(|_| {
                        let mut m: serde_json::Value = serde_json::from_str(text).unwrap();
                        decant::merge_patch(&mut m, &patch_value);
                        m.to_string()
                    });
                assert!(
                    same(&client, &after.to_string(), &merged).await,
                    "seed {seed}: user {id}: {text} patched with {patch} gave {after}, not {merged}"
                );
                expected.push((*id, after.to_string()));
            }
            Err(e) => {
                assert!(
                    deep(&e),
                    "seed {seed}: user {id}: patch {patch}: {e} ({text})"
                );
                expected.push((*id, text.clone()));
            }
        }
    }

    // the SQL API reads the same blobs
    for (id, want) in &expected {
        let got: String = client
            .query_one("SELECT decant.load($1)::text", &[id])
            .await
            .unwrap_or_else(|e| panic!("seed {seed}: user {id}: decant.load: {e}"))
            .get(0);
        assert!(
            same(&client, &got, want).await,
            "seed {seed}: user {id}: decant.load gives {got} instead of {want}"
        );
    }

    // everyone rolled back: each blob is the patched one, in the column
    let back = decant::rollback(
        &decant,
        Cohort::All,
        full_speed(),
        Arc::new(Progress::default()),
        std::future::pending(),
    )
    .await
    .unwrap_or_else(|e| panic!("seed {seed}: the rollback failed: {e}"));
    assert_eq!(back.failed, 0, "seed {seed}: {back:?}");
    for (id, want) in &expected {
        let stored: String = client
            .query_one("SELECT data::text FROM \"user\" WHERE id = $1", &[id])
            .await
            .unwrap()
            .get(0);
        assert!(
            same(&client, &stored, want).await,
            "seed {seed}: user {id} rolled back to {stored} instead of {want}"
        );
    }
}
