//! The demo, small: the whole lifecycle on a generated game with live
//! writes (dirty users repaired by fixups, everyone migrated and verified,
//! finalize passing, the leaderboard from the tables).

use crate::demo::{DemoOptions, run};
use crate::harness::admin_url;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_sees_the_migration_through_to_finalize() {
    let opts = DemoOptions {
        users: 1500,
        database_url: Some(admin_url()),
        ..DemoOptions::default()
    };
    let summary = run(&opts, &|_, _| {}).await.unwrap();
    assert_eq!(summary.migrated, 1500);
    assert_eq!(summary.verified, 1500);
    assert!(summary.failed.is_empty(), "{:?}", summary.failed);
    let repaired: i64 = summary.repaired.iter().map(|r| r.1).sum();
    let dirty = (1..=1500)
        .filter(|&i| crate::example::user(1, i).dirt.is_some())
        .count() as i64;
    assert_eq!(repaired, dirty);
    assert!(summary.finalized.is_ok(), "{:?}", summary.finalized);
    assert_eq!(summary.leaderboard.len(), 5);
    let text = summary.to_string();
    assert!(
        text.contains("finalized  every user migrated and verified"),
        "{text}"
    );
}

/// The demo on the second bundled example, the shop: ISO and epoch-second
/// timestamps, arrays of objects, integer and date keys; its dirty
/// customers repaired by its fixups, everyone migrated and verified with
/// the backend writing, finalize passing, the loyalty leaderboard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_migrates_the_shop_example_too() {
    let opts = DemoOptions {
        users: 1500,
        database_url: Some(admin_url()),
        example: &crate::example::SHOP,
        ..DemoOptions::default()
    };
    let summary = run(&opts, &|_, _| {}).await.unwrap();
    assert_eq!((summary.migrated, summary.verified), (1500, 1500));
    assert!(summary.failed.is_empty(), "{:?}", summary.failed);
    let repaired: i64 = summary.repaired.iter().map(|r| r.1).sum();
    let dirty = (1..=1500)
        .filter(|&i| crate::example::shop_user(1, i).dirt.is_some())
        .count() as i64;
    assert!(dirty > 0);
    assert_eq!(repaired, dirty);
    assert!(summary.writes > 0, "the backend wrote");
    assert!(summary.finalized.is_ok(), "{:?}", summary.finalized);
    let rows: std::collections::BTreeMap<&str, i64> =
        summary.rows.iter().map(|(t, n)| (t.as_str(), *n)).collect();
    for t in [
        "customer_address",
        "customer_yearly",
        "customer_visit",
        "customer_account",
    ] {
        assert!(rows[t] > 500, "{t}: {rows:?}");
    }
    assert_eq!(summary.leaderboard.len(), 5);
    let text = summary.to_string();
    assert!(text.contains("top loyalty points"), "{text}");
    assert!(text.contains("users of the shop example"), "{text}");
}
