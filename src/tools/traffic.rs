//! Simulated backend traffic: tasks writing to random users through the
//! compatibility layer at a steady rate, recording every acknowledged write
//! and its latency. The demo proves with it that no write is lost; the
//! benchmark measures with it what the daemon costs live traffic.

use super::example::Rng;
use anyhow::{Result, anyhow};
use decant::Decant;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The write each call makes, to `<object>.<key>` (`pref.demoWrites`).
#[derive(Debug, Clone, Copy)]
pub enum WriteKind {
    /// `modify`: increments it (read-modify-write under the lock).
    Increment(&'static str, &'static str),
    /// `patch`: sets it to a random number (RFC 7396).
    Patch(&'static str, &'static str),
    /// `patch`: sets `<object>.<key><task>` to the number of this task's
    /// acknowledged writes to the user, this one included, so that the
    /// value left in each user tells whether a write was lost
    /// ([`TrafficReport::lost`]).
    Count(&'static str, &'static str),
}

/// What the traffic did.
#[derive(Debug, Clone, Default)]
pub struct TrafficReport {
    /// Acknowledged writes per user.
    pub acked: HashMap<i64, u64>,
    /// Acknowledged writes in all.
    pub writes: u64,
    /// Latency p50 and p99 of acknowledged writes.
    pub latency: Option<(Duration, Duration)>,
    /// Every acknowledged write: when it began (seconds since the Unix
    /// epoch) and how long it took.
    pub samples: Vec<(f64, Duration)>,
    /// Acknowledged writes per user, task by task.
    pub by_task: Vec<HashMap<i64, u64>>,
    /// What the writes were.
    pub kind: Option<WriteKind>,
}

impl TrafficReport {
    /// For [`WriteKind::Count`] traffic: reads back every user written to
    /// and returns `(user, task, acknowledged, found)` for each counter
    /// that holds fewer writes than were acknowledged (a lost write). A
    /// counter ahead of its acknowledgements is a write that committed
    /// but whose answer was lost (a timeout): not a loss.
    pub async fn lost(&self, decant: &Decant) -> Result<Vec<(i64, usize, u64, Option<u64>)>> {
        let Some(WriteKind::Count(object, key)) = self.kind else {
            return Err(anyhow!(
                "only counting traffic can be checked for lost writes"
            ));
        };
        let mut users: Vec<i64> = self.acked.keys().copied().collect();
        users.sort_unstable();
        let mut lost = Vec::new();
        for chunk in users.chunks(1000) {
            for (id, blob) in decant.load_many(chunk).await? {
                let user = id
                    .as_int()
                    .ok_or_else(|| anyhow!(format!("user {id}: not an integer id")))?;
                for (t, acked) in self.by_task.iter().enumerate() {
                    let Some(&n) = acked.get(&user) else { continue };
                    let found = blob[object][format!("{key}{t}")].as_u64();
                    if found.is_none_or(|f| f < n) {
                        lost.push((user, t, n, found));
                    }
                }
            }
        }
        Ok(lost)
    }
}

/// One task's acknowledged writes per user, and when each began and took.
type TaskResult = (HashMap<i64, u64>, Vec<(f64, Duration)>);

/// Running traffic; [`Traffic::stop`] ends it.
pub struct Traffic {
    stop: Arc<AtomicBool>,
    kind: WriteKind,
    tasks: Vec<tokio::task::JoinHandle<Result<TaskResult>>>,
}

const TASKS: u64 = 4;

impl Traffic {
    /// Starts four tasks writing to random users `1..=users`, `rate` writes
    /// per second in all. A retryable error (a lock timeout) is not an
    /// acknowledged write; any other error ends the traffic with it.
    pub fn start(decant: &Decant, users: i64, rate: f64, kind: WriteKind, seed: u64) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let period = Duration::from_secs_f64(TASKS as f64 / rate.max(0.001));
        let tasks = (0..TASKS)
            .map(|t| {
                let (decant, stop) = (decant.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut rng = Rng::new(seed.wrapping_mul(31).wrapping_add(t));
                    let mut acked: HashMap<i64, u64> = HashMap::new();
                    let mut latencies = Vec::new();
                    let mut tick = tokio::time::interval(period);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    while !stop.load(Ordering::Relaxed) {
                        tick.tick().await;
                        let user = rng.range(1, users as u64 + 1) as i64;
                        let began = Instant::now();
                        let r = match kind {
                            WriteKind::Increment(object, key) => decant
                                .modify(user, |blob| {
                                    let n = &mut blob[object][key];
                                    *n = serde_json::json!(n.as_u64().unwrap_or(0) + 1);
                                })
                                .await
                                .map(drop),
                            WriteKind::Patch(object, key) => {
                                let patch = serde_json::json!({object: {key: rng.range(0, 1000)}});
                                decant.patch(user, &patch).await.map(drop)
                            }
                            WriteKind::Count(object, key) => {
                                let n = acked.get(&user).copied().unwrap_or(0) + 1;
                                let patch = serde_json::json!({object: {format!("{key}{t}"): n}});
                                decant.patch(user, &patch).await.map(drop)
                            }
                        };
                        match r {
                            Ok(()) => {
                                let at = std::time::SystemTime::now()
                                    .checked_sub(began.elapsed())
                                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                                    .map_or(0.0, |d| d.as_secs_f64());
                                latencies.push((at, began.elapsed()));
                                *acked.entry(user).or_default() += 1;
                            }
                            Err(e) if e.is_retryable() => {}
                            Err(e) => return Err(e.into()),
                        }
                    }
                    Ok((acked, latencies))
                })
            })
            .collect();
        Traffic { stop, kind, tasks }
    }

    /// Stops the tasks and gathers what they did.
    pub async fn stop(self) -> Result<TrafficReport> {
        self.stop.store(true, Ordering::Relaxed);
        let mut report = TrafficReport {
            kind: Some(self.kind),
            ..TrafficReport::default()
        };
        for t in self.tasks {
            let (acked, l) = t
                .await
                .map_err(|e| anyhow!(format!("a traffic task: {e}")))??;
            for (&user, &n) in &acked {
                *report.acked.entry(user).or_default() += n;
                report.writes += n;
            }
            report.by_task.push(acked);
            report.samples.extend(l);
        }
        let mut latencies: Vec<Duration> = report.samples.iter().map(|s| s.1).collect();
        report.latency = p50_p99(&mut latencies);
        Ok(report)
    }
}

/// The p50 and p99 of `v` (sorted in place), `None` when it is empty.
pub fn p50_p99(v: &mut [Duration]) -> Option<(Duration, Duration)> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    Some((at(0.5), at(0.99)))
}
