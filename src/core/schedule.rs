//! When and how fast the daemon works: the rate (`50/s`, `3000/min`, `max`)
//! and the low-traffic windows (`01:00-05:00`, crossing midnight allowed) in
//! a time zone; and the projected finish of a migration given both.

use jiff::civil::Time;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, Zoned};
use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;

/// A migration rate in users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rate {
    /// As fast as the database allows (throttling still applies).
    Max,
    /// At most this many users per second.
    PerSecond(NonZeroU32),
    /// At most this many users per minute.
    PerMinute(NonZeroU32),
}

impl Rate {
    /// Users per second (None for `max`).
    pub fn per_second(self) -> Option<f64> {
        match self {
            Rate::Max => None,
            Rate::PerSecond(n) => Some(f64::from(n.get())),
            Rate::PerMinute(n) => Some(f64::from(n.get()) / 60.0),
        }
    }

    /// The governor quota: the rate, with a burst of one second's worth
    /// (at least one user).
    pub(crate) fn quota(self) -> Option<governor::Quota> {
        match self {
            Rate::Max => None,
            Rate::PerSecond(n) => Some(governor::Quota::per_second(n)),
            Rate::PerMinute(n) => Some(
                governor::Quota::per_minute(n)
                    .allow_burst(NonZeroU32::new((n.get() / 60).max(1)).expect("at least one")),
            ),
        }
    }

    /// One of `n` equal shares of the rate (`max` stays `max`): per second
    /// when it divides evenly, else per minute (at least one a minute).
    pub fn share(self, n: usize) -> Rate {
        let n = n.max(1) as u64;
        let per_minute = match self {
            Rate::Max => return Rate::Max,
            _ if n == 1 => return self,
            Rate::PerSecond(r) => u64::from(r.get()) * 60,
            Rate::PerMinute(r) => u64::from(r.get()),
        };
        let share = (per_minute / n).clamp(1, u64::from(u32::MAX)) as u32;
        let nz = |v: u32| NonZeroU32::new(v).expect("at least one");
        if share % 60 == 0 {
            Rate::PerSecond(nz(share / 60))
        } else {
            Rate::PerMinute(nz(share))
        }
    }

    /// The largest batch the rate allows at once.
    pub(crate) fn burst(self) -> Option<u32> {
        match self {
            Rate::Max => None,
            Rate::PerSecond(n) => Some(n.get()),
            Rate::PerMinute(n) => Some((n.get() / 60).max(1)),
        }
    }
}

impl FromStr for Rate {
    type Err = String;

    fn from_str(s: &str) -> Result<Rate, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("max") {
            return Ok(Rate::Max);
        }
        let bad = || format!("rate `{s}`: expected N/s, N/min or max (e.g. 50/s)");
        let (n, unit) = s.split_once('/').ok_or_else(bad)?;
        let n: u32 = n.trim().parse().map_err(|_| bad())?;
        let n = NonZeroU32::new(n).ok_or_else(|| {
            format!("rate `{s}`: must be above zero (use `decant pause` to stop)")
        })?;
        match unit.trim() {
            "s" | "sec" | "second" => Ok(Rate::PerSecond(n)),
            "min" | "m" | "minute" => Ok(Rate::PerMinute(n)),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rate::Max => f.write_str("max"),
            Rate::PerSecond(n) => write!(f, "{n}/s"),
            Rate::PerMinute(n) => write!(f, "{n}/min"),
        }
    }
}

/// A daily window of wall-clock time, `start` inclusive, `end` exclusive;
/// when `end <= start` it crosses midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Opens at.
    pub start: Time,
    /// Closes at.
    pub end: Time,
}

impl Window {
    /// True when wall-clock time `t` is inside the window.
    pub fn contains(&self, t: Time) -> bool {
        if self.start < self.end {
            self.start <= t && t < self.end
        } else {
            t >= self.start || t < self.end
        }
    }
}

impl FromStr for Window {
    type Err = String;

    fn from_str(s: &str) -> Result<Window, String> {
        let bad = || format!("window `{s}`: expected HH:MM-HH:MM (e.g. 01:00-05:00)");
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let parse = |x: &str| -> Result<Time, String> {
            let (h, m) = x.trim().split_once(':').ok_or_else(bad)?;
            let h: i8 = h.parse().map_err(|_| bad())?;
            let m: i8 = m.parse().map_err(|_| bad())?;
            if h == 24 && m == 0 {
                return Ok(Time::MAX);
            }
            Time::new(h, m, 0, 0).map_err(|_| bad())
        };
        let w = Window {
            start: parse(a)?,
            end: parse(b)?,
        };
        if w.start == w.end {
            return Err(format!(
                "window `{s}` is empty (it starts where it ends); to run at any time give no \
                 window (leave out --window, or `decant set window=none`)"
            ));
        }
        Ok(w)
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{}",
            self.start.strftime("%H:%M"),
            self.end.strftime("%H:%M")
        )
    }
}

/// The windows in a time zone; no windows means always open.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// The windows.
    pub windows: Vec<Window>,
    /// Their time zone.
    pub tz: TimeZone,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            windows: Vec::new(),
            tz: TimeZone::UTC,
        }
    }
}

impl Schedule {
    /// Builds a schedule; `tz` is an IANA name such as `Asia/Kathmandu`
    /// (default UTC).
    pub fn new(windows: Vec<Window>, tz: Option<&str>) -> Result<Schedule, String> {
        let tz = match tz {
            None => TimeZone::UTC,
            Some(name) => TimeZone::get(name).map_err(|e| {
                format!("time zone `{name}`: {e} (use an IANA name such as Asia/Kathmandu)")
            })?,
        };
        Ok(Schedule { windows, tz })
    }

    /// True when work may be done at `now`.
    pub fn is_open(&self, now: Timestamp) -> bool {
        if self.windows.is_empty() {
            return true;
        }
        let t = now.to_zoned(self.tz.clone()).time();
        self.windows.iter().any(|w| w.contains(t))
    }

    /// When the next window opens after `now` (None when always open).
    pub fn next_open(&self, now: Timestamp) -> Option<Zoned> {
        if self.windows.is_empty() {
            return None;
        }
        let z = now.to_zoned(self.tz.clone());
        let mut best: Option<Zoned> = None;
        for w in &self.windows {
            for days in 0..2 {
                let date = z.date().checked_add(days.days()).ok()?;
                let Ok(at) = date.to_datetime(w.start).to_zoned(self.tz.clone()) else {
                    continue;
                };
                if at.timestamp() > now {
                    if best.as_ref().is_none_or(|b| at.timestamp() < b.timestamp()) {
                        best = Some(at);
                    }
                    break;
                }
            }
        }
        best
    }

    /// When the window containing `now` closes (None when always open or
    /// closed now).
    pub fn closes_at(&self, now: Timestamp) -> Option<Timestamp> {
        if self.windows.is_empty() || !self.is_open(now) {
            return None;
        }
        // walk forward minute by minute (at most a day) to the first closed
        // minute: simple and right across DST changes and overlapping windows
        let mut t = now;
        for _ in 0..(24 * 60 + 1) {
            t = t.checked_add(1.minute()).ok()?;
            if !self.is_open(t) {
                return Some(t);
            }
        }
        None
    }
    /// [`Schedule::finish`] as people and scripts read it: RFC 3339 to
    /// the second, in the windows' time zone.
    pub fn finish_text(&self, now: Timestamp, work: f64) -> Option<String> {
        self.finish(now, work).map(|t| {
            t.to_zoned(self.tz.clone())
                .strftime("%Y-%m-%dT%H:%M:%S%:z")
                .to_string()
        })
    }

    /// When `work` seconds of migration done only inside the windows,
    /// starting at `now`, will be finished.
    pub fn finish(&self, now: Timestamp, work: f64) -> Option<Timestamp> {
        if !work.is_finite() || work < 0.0 {
            return None;
        }
        let mut left = work;
        let mut t = now;
        // at most ten years of windows
        for _ in 0..(366 * 10 * 4) {
            if self.windows.is_empty() {
                return t
                    .checked_add(jiff::SignedDuration::from_secs_f64(left))
                    .ok();
            }
            if !self.is_open(t) {
                t = self.next_open(t)?.timestamp();
                continue;
            }
            let close = self.closes_at(t)?;
            let span = close.duration_since(t).as_secs_f64();
            if span >= left {
                return t
                    .checked_add(jiff::SignedDuration::from_secs_f64(left))
                    .ok();
            }
            left -= span;
            t = close;
        }
        None
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_rate_shared_among_daemons_sums_to_the_rate() {
        let r = |s: &str| s.parse::<Rate>().unwrap();
        assert_eq!(r("40/s").share(2), r("20/s"));
        assert_eq!(r("40/s").share(1), r("40/s"));
        assert_eq!(r("1/s").share(2), r("30/min"));
        assert_eq!(r("50/s").share(3), r("1000/min"));
        assert_eq!(r("1/min").share(5), r("1/min"), "never zero");
        assert_eq!(r("max").share(4), r("max"));
        assert_eq!(r("40/s").share(0), r("40/s"));
    }
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_finish_reads_to_the_second_in_the_windows_zone() {
        let now: Timestamp = "2026-12-04T20:34:18.470819163Z".parse().unwrap();
        let s = Schedule::new(Vec::new(), Some("Asia/Kathmandu")).unwrap();
        assert_eq!(
            s.finish_text(now, 90.0).as_deref(),
            Some("2026-12-05T02:20:48+05:45")
        );
    }

    #[test]
    fn rates_parse() {
        assert_eq!("max".parse::<Rate>(), Ok(Rate::Max));
        assert_eq!(
            "50/s".parse::<Rate>(),
            Ok(Rate::PerSecond(NonZeroU32::new(50).unwrap()))
        );
        assert_eq!(
            "3000/min".parse::<Rate>(),
            Ok(Rate::PerMinute(NonZeroU32::new(3000).unwrap()))
        );
        assert!("0/s".parse::<Rate>().unwrap_err().contains("above zero"));
        assert!("fast".parse::<Rate>().is_err());
        assert!("5/h".parse::<Rate>().is_err());
        assert_eq!("1/s".parse::<Rate>().unwrap().per_second(), Some(1.0));
        assert_eq!("120/min".parse::<Rate>().unwrap().burst(), Some(2));
    }

    #[test]
    fn windows_parse_and_cross_midnight() {
        let w: Window = "22:30-02:00".parse().unwrap();
        assert!(w.contains(Time::new(23, 0, 0, 0).unwrap()));
        assert!(w.contains(Time::new(1, 59, 0, 0).unwrap()));
        assert!(!w.contains(Time::new(2, 0, 0, 0).unwrap()));
        assert!(!w.contains(Time::new(12, 0, 0, 0).unwrap()));
        let d: Window = "01:00-05:00".parse().unwrap();
        assert!(d.contains(Time::new(1, 0, 0, 0).unwrap()));
        assert!(!d.contains(Time::new(5, 0, 0, 0).unwrap()));
        assert!("25:00-01:00".parse::<Window>().is_err());
        assert!("01:00".parse::<Window>().is_err());
        assert!("01:00-01:00".parse::<Window>().is_err());
        assert_eq!(d.to_string(), "01:00-05:00");
    }

    #[test]
    fn schedules_use_their_time_zone() {
        // Kathmandu is UTC+05:45
        let s =
            Schedule::new(vec!["01:00-05:00".parse().unwrap()], Some("Asia/Kathmandu")).unwrap();
        assert!(s.is_open(ts("2026-11-21T19:30:00Z"))); // 01:15 local
        assert!(!s.is_open(ts("2026-11-21T23:30:00Z"))); // 05:15 local
        let next = s.next_open(ts("2026-11-21T23:30:00Z")).unwrap();
        assert_eq!(next.timestamp(), ts("2026-11-22T19:15:00Z"));
        assert_eq!(
            s.closes_at(ts("2026-11-21T19:30:00Z")),
            Some(ts("2026-11-21T23:15:00Z"))
        );
        assert!(Schedule::new(vec![], Some("Mars/Olympus")).is_err());
    }

    #[test]
    fn the_finish_counts_only_window_time() {
        let always = Schedule::default();
        assert_eq!(
            always.finish(ts("2026-01-01T00:00:00Z"), 3600.0),
            Some(ts("2026-01-01T01:00:00Z"))
        );
        // four hours a day: ten hours of work takes two nights and a half
        let s = Schedule::new(vec!["01:00-05:00".parse().unwrap()], None).unwrap();
        let done = s.finish(ts("2026-01-01T12:00:00Z"), 10.0 * 3600.0).unwrap();
        assert_eq!(done, ts("2026-01-04T03:00:00Z"));
        // two windows, one across midnight
        let s = Schedule::new(
            vec![
                "23:00-01:00".parse().unwrap(),
                "03:00-04:00".parse().unwrap(),
            ],
            None,
        )
        .unwrap();
        let done = s.finish(ts("2026-01-01T22:00:00Z"), 3.0 * 3600.0).unwrap();
        assert_eq!(done, ts("2026-01-02T04:00:00Z"));
    }
}
