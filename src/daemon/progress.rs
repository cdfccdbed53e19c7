//! What a run has done so far, shared with whoever shows progress (the
//! command line's bar or log lines), and the process's peak memory.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Live counters of a run, shared with whoever shows progress.
#[derive(Debug, Default)]
pub struct Progress {
    /// Users migrated by this run.
    pub(crate) migrated: AtomicU64,
    /// Users whose migration failed in this run.
    pub(crate) failed: AtomicU64,
    /// Rows written by this run.
    pub(crate) rows: AtomicU64,
    /// Legacy users claimable when the run started.
    pub(crate) total: AtomicU64,
    /// Why the daemon is not working right now, if it is not.
    pub(crate) holding: Mutex<Option<String>>,
    /// Time the workers spent held back by database signals, summed over
    /// workers (microseconds).
    pub(crate) held_micros: AtomicU64,
    /// Every batch: its transaction's duration (microseconds) and the
    /// users it claimed.
    pub(crate) batch_micros: Mutex<Vec<(u32, u32)>>,
}

impl Progress {
    /// Users migrated so far.
    pub fn migrated(&self) -> u64 {
        self.migrated.load(Ordering::Relaxed)
    }

    /// Users whose migration failed so far (they stay legacy).
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows.load(Ordering::Relaxed)
    }

    /// Legacy users claimable when the run started (0 until it has counted).
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Why the daemon holds back right now, if it does.
    pub fn holding(&self) -> Option<String> {
        self.holding.lock().expect("not poisoned").clone()
    }

    /// Time held back by database signals so far, summed over workers.
    pub fn held_back(&self) -> Duration {
        Duration::from_micros(self.held_micros.load(Ordering::Relaxed))
    }

    pub(crate) fn hold(&self, why: Option<String>) {
        let mut h = self.holding.lock().expect("not poisoned");
        if *h != why {
            if let Some(w) = &why {
                tracing::info!(reason = %w, "holding back");
            } else if h.is_some() {
                tracing::info!("resuming work");
            }
            *h = why;
        }
    }

    /// Duration percentiles (p50, p99) of the batch transactions so far:
    /// the longest any user's row lock was held by this run.
    pub fn batch_percentiles(&self) -> Option<(Duration, Duration)> {
        let mut v: Vec<u32> = self
            .batch_micros
            .lock()
            .expect("not poisoned")
            .iter()
            .map(|b| b.0)
            .collect();
        if v.is_empty() {
            return None;
        }
        v.sort_unstable();
        let at = |q: f64| {
            Duration::from_micros(u64::from(v[((v.len() - 1) as f64 * q).round() as usize]))
        };
        Some((at(0.5), at(0.99)))
    }

    /// Every batch so far: how long its transaction took and how many
    /// users it claimed.
    pub fn batches(&self) -> Vec<(Duration, u32)> {
        self.batch_micros
            .lock()
            .expect("not poisoned")
            .iter()
            .map(|&(us, users)| (Duration::from_micros(u64::from(us)), users))
            .collect()
    }
}

/// Peak resident memory of this process (VmHWM), when the OS tells.
pub fn peak_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
