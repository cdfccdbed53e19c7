use crate::harness::{TestDb, is_migrated};
use decant::{Decant, Error};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Retries a call while its error is retryable (a lock timeout).
async fn retrying<T, F: Future<Output = Result<T, Error>>>(mut f: impl FnMut() -> F) -> T {
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) if e.is_retryable() => tokio::time::sleep(Duration::from_millis(5)).await,
            Err(e) => panic!("{e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_acknowledged_write_is_lost_while_users_migrate_and_roll_back() {
    let db = TestDb::new().await;
    let decant: Decant = db.game(8).await;
    let users: Vec<i64> = (1..=8)
        .filter(|&i| crate::example::user(1, i).dirt.is_none())
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Vec<AtomicU64>> =
        Arc::new((0..users.len()).map(|_| AtomicU64::new(0)).collect());
    let before: Vec<u64> = {
        let mut v = Vec::new();
        for &u in &users {
            let b = decant.load(u).await.unwrap();
            v.push(
                b["marriage"]["stats"]["kidnap"]["counter"]
                    .as_u64()
                    .unwrap_or(0),
            );
        }
        v
    };

    // writers: increment a counter per user, and set a unique pref key per write
    let mut writers = Vec::new();
    for w in 0..6u64 {
        let (decant, stop, acked, users) =
            (decant.clone(), stop.clone(), acked.clone(), users.clone());
        writers.push(tokio::spawn(async move {
            let mut n = 0u64;
            let mut keys = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let i = ((n + w) % users.len() as u64) as usize;
                let u = users[i];
                retrying(|| {
                    decant.modify(u, |blob| {
                        let c = &mut blob["marriage"]["stats"]["kidnap"]["counter"];
                        *c = json!(c.as_u64().unwrap_or(0) + 1);
                    })
                })
                .await;
                acked[i].fetch_add(1, Ordering::Relaxed);
                let key = format!("w{w}_{n}");
                let patch = json!({"pref": {key.clone(): n}});
                retrying(|| decant.patch(u, &patch)).await;
                keys.push((u, key));
                n += 1;
            }
            keys
        }));
    }

    // underneath: migrate and roll back the same users, over and over
    let migrator = {
        let (decant, stop, users) = (decant.clone(), stop.clone(), users.clone());
        tokio::spawn(async move {
            let mut flips = 0;
            while !stop.load(Ordering::Relaxed) {
                for &u in &users {
                    let r = retrying(|| decant.migrate_user(u)).await;
                    assert!(r.failed.is_empty(), "{:?}", r.failed);
                    flips += 1;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                for &u in users.iter().step_by(2) {
                    retrying(|| decant.rollback_user(u)).await;
                    flips += 1;
                }
            }
            flips
        })
    };

    tokio::time::sleep(Duration::from_secs(6)).await;
    stop.store(true, Ordering::Relaxed);
    let flips = migrator.await.unwrap();
    let mut all_keys = Vec::new();
    for w in writers {
        all_keys.extend(w.await.unwrap());
    }
    assert!(
        flips > 20,
        "the migrator barely ran ({flips} migrations/rollbacks)"
    );
    assert!(
        all_keys.len() > 100,
        "the writers barely ran ({} writes)",
        all_keys.len()
    );

    let client = db.client().await;
    let mut states = (0, 0);
    for (i, &u) in users.iter().enumerate() {
        let blob = decant.load(u).await.unwrap();
        let counter = blob["marriage"]["stats"]["kidnap"]["counter"]
            .as_u64()
            .unwrap();
        assert_eq!(
            counter,
            before[i] + acked[i].load(Ordering::Relaxed),
            "user {u} lost increments"
        );
        if is_migrated(&client, u).await {
            states.0 += 1
        } else {
            states.1 += 1
        }
    }
    for (u, key) in &all_keys {
        let blob = decant.load(*u).await.unwrap();
        assert!(
            blob["pref"].get(key).is_some(),
            "user {u} lost the write of {key}"
        );
    }
    assert!(
        states.0 > 0 && states.1 > 0,
        "both paths were exercised at the end: {states:?}"
    );
}
