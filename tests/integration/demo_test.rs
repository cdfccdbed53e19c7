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
