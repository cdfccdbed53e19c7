//! What a run has done so far, shared with whoever shows progress (the
//! command line's bar or log lines), and the process's peak memory.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

/// What a run's workers are doing now (the `decant_phase` metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Connecting, checking and counting, before the first batch.
    Starting = 0,
    /// Migrating (or rolling back, or re-mapping) users.
    Working,
    /// Paused by `decant pause`.
    Paused,
    /// Waiting for a window to open.
    OutsideWindow,
    /// Held back by a database signal (commit probe, lock waits, lag...).
    HeldBack,
    /// No user left; watching for new ones (`--watch`).
    Watching,
    /// Re-opening sessions to a database that went away.
    Reconnecting,
    /// A stop was asked for or the work is done: finishing.
    Stopping,
}

impl Phase {
    /// Every phase, in declaration order.
    pub const ALL: [Phase; 8] = [
        Phase::Starting,
        Phase::Working,
        Phase::Paused,
        Phase::OutsideWindow,
        Phase::HeldBack,
        Phase::Watching,
        Phase::Reconnecting,
        Phase::Stopping,
    ];

    /// The phase's name, as the metric's label shows it.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Working => "working",
            Phase::Paused => "paused",
            Phase::OutsideWindow => "outside_window",
            Phase::HeldBack => "held_back",
            Phase::Watching => "watching",
            Phase::Reconnecting => "reconnecting",
            Phase::Stopping => "stopping",
        }
    }
}

/// Live counters of a run, shared with whoever shows progress.
#[derive(Debug, Default)]
pub struct Progress {
    /// Users migrated by this run.
    pub(crate) migrated: AtomicU64,
    /// Users whose migration failed in this run.
    pub(crate) failed: AtomicU64,
    /// Rows written by this run.
    pub(crate) rows: AtomicU64,
    /// Of the users this run migrated, those with warnings.
    pub(crate) warned: AtomicU64,
    /// Users whose row changed between a batch's read and its lock, read
    /// again and migrated under the lock.
    pub(crate) redone: AtomicU64,
    /// Legacy users claimable when the run started.
    pub(crate) total: AtomicU64,
    /// Why the daemon is not working right now, if it is not.
    pub(crate) holding: Mutex<Option<String>>,
    /// The [`Phase`] as its number.
    pub(crate) phase: AtomicU8,
    /// Time the workers spent held back by database signals, summed over
    /// workers (microseconds).
    pub(crate) held_micros: AtomicU64,
    /// Every batch: its transaction's duration (microseconds) and the
    /// users it claimed.
    pub(crate) batch_micros: Mutex<Vec<(u32, u32)>>,
    /// The commit probe's last second over its idle time (f64 bits; 0
    /// until measured).
    pub(crate) probe_ratio: AtomicU64,
    /// The throttle's ceiling on the rate, users per second (f64 bits;
    /// 0 until measured, infinity for none): the commit probe's or the
    /// load yield's, whichever is lower.
    pub(crate) ceiling: AtomicU64,
    /// The commit probe's limit, the slowdown over which it lowers the
    /// ceiling (f64 bits; 0 with the probe off).
    pub(crate) probe_limit: AtomicU64,
    /// This daemon's share of the set rate, users per second (f64 bits;
    /// 0 for `max`): a ceiling above it holds nothing back.
    pub(crate) rate_share: AtomicU64,
    /// The load yield's last view: the server's other transactions per
    /// second, their usual rate, and the share of its calm rate the daemon
    /// takes (None before it has enough history, or with the yield off).
    pub(crate) load: Mutex<Option<(f64, f64, f64)>>,
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

    /// What the workers are doing now.
    pub fn phase(&self) -> Phase {
        let n = self.phase.load(Ordering::Relaxed);
        Phase::ALL[usize::from(n).min(Phase::ALL.len() - 1)]
    }

    /// Enters [`Phase::Stopping`], for good.
    pub(crate) fn stopping(&self) {
        self.phase.store(Phase::Stopping as u8, Ordering::Relaxed);
    }

    /// Enters `phase` (unless stopping); `why` says why the workers hold back, when they do
    /// (logged when it changes).
    pub(crate) fn hold(&self, phase: Phase, why: Option<String>) {
        // stopping is the last phase
        let _ = self
            .phase
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |p| {
                (p != Phase::Stopping as u8).then_some(phase as u8)
            });
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

impl Progress {
    /// The commit probe's last second over its idle time (None before the
    /// first probe, or with the probe off).
    pub fn probe_ratio(&self) -> Option<f64> {
        let r = f64::from_bits(self.probe_ratio.load(Ordering::Relaxed));
        (r > 0.0).then_some(r)
    }

    /// The commit probe's ceiling on the daemon's rate in users per
    /// second, while it sets one.
    pub fn ceiling(&self) -> Option<f64> {
        let c = f64::from_bits(self.ceiling.load(Ordering::Relaxed));
        (c > 0.0 && c.is_finite()).then_some(c)
    }

    /// The load yield's last view: the server's other transactions per
    /// second, their usual rate, and the share of its calm rate the daemon
    /// takes (1 while it does not yield).
    pub fn load(&self) -> Option<(f64, f64, f64)> {
        *self.load.lock().expect("not poisoned")
    }

    /// What the throttle's ceiling does to the rate, while it sets one
    /// ("paced to N users/s: ..."), for the progress line, the log and the
    /// heartbeat.
    pub fn paced(&self) -> Option<String> {
        let ceiling = self.ceiling()?;
        let share = f64::from_bits(self.rate_share.load(Ordering::Relaxed));
        if share > 0.0 && ceiling >= share {
            // the set rate is lower: the ceiling slows nothing
            return None;
        }
        let limit = f64::from_bits(self.probe_limit.load(Ordering::Relaxed));
        if let Some((now, usual, share)) = self.load() {
            if share < 1.0 {
                return Some(format!(
                    "paced to {ceiling:.0} users/s: the server's other transactions run at \
                     {now:.0}/s, {:.1}x their usual {usual:.0}/s",
                    now / usual.max(1.0)
                ));
            }
        }
        Some(match self.probe_ratio() {
            // the ceiling comes down fast and goes up by steps: commits
            // may be quick again while it still holds
            Some(r) if r <= 1.0 || (limit > 0.0 && r <= limit) => format!(
                "paced to {ceiling:.0} users/s, going up again: others' commits are back to \
                 {r:.1}x their idle time"
            ),
            Some(r) => format!(
                "paced to {ceiling:.0} users/s: others' commits are slow ({r:.1}x their idle time)"
            ),
            None => format!("paced to {ceiling:.0} users/s: others' commits are slow"),
        })
    }

    /// The run's state in the Prometheus text format (version 0.0.4):
    /// counters of users and rows, the users left, why it holds back, the
    /// batch time (lock hold) and size histograms, the commit probe ratio,
    /// and `recent_rate`, users per second since the previous scrape.
    pub fn prometheus(&self, recent_rate: f64) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, lines: &[(String, f64)]| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, v) in lines {
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        };
        let one = |v: f64| vec![(String::new(), v)];
        let (migrated, failed) = (self.migrated(), self.failed());
        metric(
            "decant_users_migrated_total",
            "counter",
            "Users migrated (or rolled back, for a rollback run) by this run.",
            &one(migrated as f64),
        );
        metric(
            "decant_users_failed_total",
            "counter",
            "Users whose migration failed in this run (they stay legacy).",
            &one(failed as f64),
        );
        metric(
            "decant_rows_written_total",
            "counter",
            "Rows written to the target tables by this run.",
            &one(self.rows() as f64),
        );
        metric(
            "decant_users_remaining",
            "gauge",
            "Users claimable at the start not yet done.",
            &one(self.total().saturating_sub(migrated + failed) as f64),
        );
        metric(
            "decant_rate_users_per_second",
            "gauge",
            "Users done per second since the previous scrape.",
            &one(recent_rate),
        );
        let holding = self.holding();
        let reason = holding.as_deref().map(|h| {
            // the reason without its numbers, so a label has few values
            let kind: String = h
                .split(|c: char| c.is_ascii_digit())
                .next()
                .unwrap_or(h)
                .trim()
                .chars()
                .filter(|c| *c != '"' && *c != '\\')
                .collect();
            if kind.is_empty() { h.to_string() } else { kind }
        });
        metric(
            "decant_holding",
            "gauge",
            "1 while the daemon holds back (the reason's kind as a label), else 0.",
            &[match reason {
                Some(r) => (format!("{{reason=\"{r}\"}}"), 1.0),
                None => (String::new(), 0.0),
            }],
        );
        let phase = self.phase();
        metric(
            "decant_phase",
            "gauge",
            "1 for the phase the workers are in, 0 for the others.",
            &Phase::ALL
                .iter()
                .map(|p| {
                    (
                        format!("{{phase=\"{}\"}}", p.name()),
                        f64::from(u8::from(*p == phase)),
                    )
                })
                .collect::<Vec<_>>(),
        );
        metric(
            "decant_held_back_seconds_total",
            "counter",
            "Time the workers spent held back by database signals, summed over workers.",
            &one(self.held_back().as_secs_f64()),
        );
        if let Some(r) = self.probe_ratio() {
            metric(
                "decant_commit_probe_ratio",
                "gauge",
                "A small commit's time over its idle time (past its limit the throttle lowers its ceiling on the rate).",
                &one(r),
            );
        }
        if let Some(c) = self.ceiling() {
            metric(
                "decant_throttle_ceiling_users_per_second",
                "gauge",
                "The throttle's ceiling on the rate: the commit probe's or the load yield's, whichever is lower (absent while neither sets one).",
                &one(c),
            );
        }
        if let Some((now, usual, share)) = self.load() {
            metric(
                "decant_others_transactions_per_second",
                "gauge",
                "The server's transactions per second other than the daemon's (over the last 5 s).",
                &one(now),
            );
            metric(
                "decant_others_usual_transactions_per_second",
                "gauge",
                "The other transactions' usual rate (the 30th percentile of the last 5 minutes).",
                &one(usual),
            );
            metric(
                "decant_load_yield_share",
                "gauge",
                "The share of its calm rate the daemon takes while the others run above their usual rate (1: it does not yield).",
                &one(share),
            );
        }
        let batches = self.batches();
        let histogram = |bounds: &[f64], values: &mut dyn Iterator<Item = f64>| {
            let mut counts = vec![0u64; bounds.len()];
            let (mut n, mut sum) = (0u64, 0.0);
            for v in values {
                n += 1;
                sum += v;
                for (i, b) in bounds.iter().enumerate() {
                    if v <= *b {
                        counts[i] += 1;
                    }
                }
            }
            let mut lines: Vec<(String, f64)> = bounds
                .iter()
                .zip(&counts)
                .map(|(b, c)| (format!("_bucket{{le=\"{b}\"}}"), *c as f64))
                .collect();
            lines.push(("_bucket{le=\"+Inf\"}".into(), n as f64));
            lines.push(("_sum".into(), sum));
            lines.push(("_count".into(), n as f64));
            lines
        };
        metric(
            "decant_batch_seconds",
            "histogram",
            "Batch transaction time: the longest a user's row lock is held.",
            &histogram(
                &[0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0],
                &mut batches.iter().map(|(d, _)| d.as_secs_f64()),
            ),
        );
        metric(
            "decant_batch_users",
            "histogram",
            "Users claimed per batch.",
            &histogram(
                &[1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0],
                &mut batches.iter().map(|(_, u)| f64::from(*u)),
            ),
        );
        // (a histogram's lines are its name plus `_bucket{le=..}`, `_sum`
        // and `_count`: the "labels" above)
        out
    }
}

/// Peak resident memory of this process (VmHWM), when the OS tells.
pub fn peak_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::{Phase, Progress};
    use std::sync::atomic::Ordering;

    #[test]
    fn the_prometheus_text_has_counters_a_reason_label_and_histograms() {
        let p = Progress::default();
        p.migrated.store(7, Ordering::Relaxed);
        p.total.store(10, Ordering::Relaxed);
        p.batch_micros
            .lock()
            .unwrap()
            .extend([(4_000, 3), (30_000, 4)]);
        assert!(
            p.prometheus(0.0)
                .contains("decant_phase{phase=\"starting\"} 1")
        );
        p.hold(Phase::HeldBack, Some("replica replay lag 12.5 s".into()));
        let text = p.prometheus(2.5);
        for line in [
            "# TYPE decant_users_migrated_total counter",
            "decant_users_migrated_total 7",
            "decant_users_remaining 3",
            "decant_rate_users_per_second 2.5",
            "decant_holding{reason=\"replica replay lag\"} 1",
            "decant_phase{phase=\"held_back\"} 1",
            "decant_phase{phase=\"working\"} 0",
            "# TYPE decant_batch_seconds histogram",
            "decant_batch_seconds_bucket{le=\"0.005\"} 1",
            "decant_batch_seconds_bucket{le=\"0.05\"} 2",
            "decant_batch_seconds_bucket{le=\"+Inf\"} 2",
            "decant_batch_seconds_count 2",
            "decant_batch_users_sum 7",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} in\n{text}");
        }
        p.hold(Phase::Working, None);
        let text = p.prometheus(0.0);
        assert!(text.lines().any(|l| l == "decant_holding 0"));
        assert!(
            text.lines()
                .any(|l| l == "decant_phase{phase=\"working\"} 1")
        );
        assert!(
            text.lines()
                .any(|l| l == "decant_phase{phase=\"held_back\"} 0")
        );
        // the load yield's view, and the ceiling it sets, named as such
        assert!(!text.contains("decant_load_yield_share"));
        *p.load.lock().unwrap() = Some((400.0, 200.0, 0.25));
        p.ceiling.store(150.0f64.to_bits(), Ordering::Relaxed);
        let text = p.prometheus(0.0);
        for line in [
            "decant_others_transactions_per_second 400",
            "decant_others_usual_transactions_per_second 200",
            "decant_load_yield_share 0.25",
            "decant_throttle_ceiling_users_per_second 150",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} in\n{text}");
        }
        assert_eq!(
            p.paced().as_deref(),
            Some(
                "paced to 150 users/s: the server's other transactions run at 400/s, \
                 2.0x their usual 200/s"
            )
        );
        // a ceiling above the set rate holds nothing back
        p.rate_share.store(100.0f64.to_bits(), Ordering::Relaxed);
        assert_eq!(p.paced(), None);
        // under the probe's limit, commits are not "slow"
        p.rate_share.store(0.0f64.to_bits(), Ordering::Relaxed);
        *p.load.lock().unwrap() = None;
        p.probe_limit.store(1.5f64.to_bits(), Ordering::Relaxed);
        p.probe_ratio.store(1.1f64.to_bits(), Ordering::Relaxed);
        assert_eq!(
            p.paced().as_deref(),
            Some(
                "paced to 150 users/s, going up again: others' commits are back to 1.1x their \
                 idle time"
            )
        );
        p.probe_ratio.store(2.0f64.to_bits(), Ordering::Relaxed);
        assert_eq!(
            p.paced().as_deref(),
            Some("paced to 150 users/s: others' commits are slow (2.0x their idle time)")
        );
    }
}
