//! `decant status`: where a migration stands, for people and scripts.

use crate::compat::Decant;
use crate::core::schedule::Schedule;
use crate::error::{Error, Result};
use crate::pg::{control, pool, state};
use serde::Serialize;
use std::fmt;

/// Counts, failures, rate and projection.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// Users in the source table.
    pub users: i64,
    /// Users migrated (flag set).
    pub migrated: i64,
    /// Users still legacy.
    pub legacy: i64,
    /// Legacy users whose last attempt failed.
    pub failed: i64,
    /// Failed users at the attempt limit, which the daemon skips.
    pub over_limit: i64,
    /// Users rolled back and held out of the migration (`decant release`).
    pub held: i64,
    /// The attempt limit.
    pub max_attempts: i32,
    /// Failed users grouped by reason, largest group first.
    pub failures: Vec<FailureGroup>,
    /// Users migrated per second over the last minute (over the time the
    /// running migration daemons have run, when that is shorter).
    pub recent_rate: f64,
    /// `migrating`, or `finalized` once `decant finalize` passed.
    pub phase: String,
    /// The control row.
    pub paused: bool,
    /// The configured rate.
    pub rate: String,
    /// The rollout percentage.
    pub rollout_percent: f32,
    /// The allow-list size.
    pub allow_list: usize,
    /// When the legacy users still to try will be done, at the recent rate
    /// (or the configured one when idle) within the windows; RFC 3339, in
    /// the windows' time zone. None when finalized, paused or nothing is
    /// left to try.
    pub projected_finish: Option<String>,
    /// Failed users below the attempt limit, which the daemon tries again;
    /// when they are all the legacy users left to try, no finish is
    /// projected (they fail again until their blobs, a fixup or the spec
    /// change).
    pub retrying: i64,
    /// The windows the projection goes through, with their time zone
    /// (`always open` without windows).
    pub windows: String,
    /// The daemons running now (a heartbeat in the last 5 seconds).
    pub daemons: Vec<Daemon>,
    /// Once finalized (the flag column still there): users whose flag is
    /// false, inserted since without decant. The views and the Rust layer
    /// read every user as migrated, so their values are in no table or
    /// view until repaired (see `LATE_USERS_REPAIR`).
    pub late: i64,
    /// Migrated users of the mapping before `init --evolve` (rows and
    /// residual of that one), which `run --evolve` re-migrates.
    pub evolving: i64,
    /// Indexes on the source or target tables left INVALID by a build
    /// `CONCURRENTLY` that was interrupted (an `init` stopped part-way):
    /// PostgreSQL maintains them but never reads them, so claims or
    /// leaderboards go without them until `decant init` runs again and
    /// rebuilds them.
    pub invalid_indexes: Vec<String>,
}

/// The repair of users inserted after `finalize` with the flag false (a
/// backend still on the old code path): each one's blob goes through
/// `decant.save` as a migrated user's, which explodes it into the tables.
/// `{src}`, `{id}`, `{blob}`, `{flag}` are the source's quoted names.
pub const LATE_USERS_REPAIR: &str = "BEGIN;
CREATE TEMP TABLE decant_late ON COMMIT DROP AS
  SELECT {id} AS id, {blob} AS blob FROM {src} WHERE NOT {flag} FOR UPDATE;
UPDATE {src} AS s SET {flag} = true, {blob} = '{}' FROM decant_late AS l WHERE s.{id} = l.id;
SELECT count(decant.save(id, blob)) FROM decant_late;
COMMIT;";

/// [`LATE_USERS_REPAIR`] for `spec`'s source table.
pub fn late_users_repair(spec: &crate::core::spec::Spec) -> String {
    use crate::core::spec::quote;
    LATE_USERS_REPAIR
        .replace("{src}", &crate::pg::sql::source_table(spec))
        .replace("{id}", &quote(&spec.source.id))
        .replace("{blob}", &quote(&spec.source.blob))
        .replace("{flag}", &quote(&spec.source.flag))
}

impl Status {
    /// The legacy users the daemon still tries: neither at the attempt
    /// limit nor held.
    pub fn left_to_try(&self) -> i64 {
        left_to_try(self.legacy, self.over_limit, self.held)
    }
}

fn left_to_try(legacy: i64, over_limit: i64, held: i64) -> i64 {
    (legacy - over_limit - held).max(0)
}

/// A running daemon, from its heartbeat row.
#[derive(Debug, Clone, Serialize)]
pub struct Daemon {
    /// Host name.
    pub host: String,
    /// Process id on the host.
    pub pid: i32,
    /// `migrate`, `rollback` or `evolve`.
    pub job: String,
    /// Worker sessions.
    pub workers: i32,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// Users it migrated (or rolled back) so far.
    pub migrated: i64,
    /// Users that failed in its run.
    pub failed: i64,
    /// Its share of the control row's rate.
    pub rate_share: Option<String>,
    /// Why it holds back, if it does.
    pub holding: Option<String>,
    /// The windows it was started with (`--window`) and their time zone,
    /// when not the control row's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub windows: Option<String>,
}

/// The live daemons (none when `decant.daemon` is missing: a database
/// initialized by an older decant).
async fn daemons(client: &impl tokio_postgres::GenericClient) -> Result<Vec<Daemon>> {
    let rows = match client
        .query(
            "SELECT host, pid, job, workers, to_char(started_at AT TIME ZONE 'UTC', \
                    'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), migrated, failed, rate_share, holding, \
                    to_jsonb(d) ->> 'windows', to_jsonb(d) ->> 'tz' \
               FROM decant.daemon AS d WHERE beat_at > now() - interval '5 seconds' \
              ORDER BY started_at, host, pid",
            &[],
        )
        .await
    {
        Ok(rows) => rows,
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => {
            return Ok(Vec::new());
        }
        Err(e) => return Err(Error::db("reading decant.daemon", e)),
    };
    Ok(rows
        .iter()
        .map(|r| Daemon {
            host: r.get(0),
            pid: r.get(1),
            job: r.get(2),
            workers: r.get(3),
            started_at: r.get(4),
            migrated: r.get(5),
            failed: r.get(6),
            rate_share: r.get(7),
            holding: r.get(8),
            windows: r
                .get::<_, Option<String>>(9)
                .filter(|w| !w.is_empty())
                .map(|w| format!("{w} {}", r.get::<_, Option<String>>(10).unwrap_or_default())),
        })
        .collect())
}

/// Failed users sharing a reason.
#[derive(Debug, Clone, Serialize)]
pub struct FailureGroup {
    /// The reason, without user-specific detail.
    pub reason: String,
    /// How many users.
    pub users: i64,
    /// Some of them.
    pub examples: Vec<crate::core::id::UserId>,
}

/// Reads the status; `schedule` is used for the projection.
pub async fn status(decant: &Decant, schedule: &Schedule) -> Result<Status> {
    decant.verified().await?;
    let mut session = pool::get(decant.pool()).await?;
    // every count from one snapshot: counted one after another while the
    // daemon or a rollback runs, they disagree (more users held than
    // legacy); the transaction ends with `client`, committed or not
    let client = session
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(|e| Error::db("beginning the status snapshot", e))?;
    let spec = decant.spec();
    crate::pg::schema::require_every_row(&*client, spec, "the counts").await?;
    let counts = client
        .query_one(&decant.store().sql().user_counts, &[])
        .await
        .map_err(|e| Error::db("counting users", e))?;
    let users: i64 = counts.get(0);
    let migrated: i64 = counts.get(1);
    let max = spec.settings.max_attempts;
    let failures = state::failure_groups(&*client, spec)
        .await?
        .into_iter()
        .map(|(reason, users, examples)| FailureGroup {
            reason,
            users,
            examples,
        })
        .collect();
    let control = control::read(&*client).await?;
    let daemons = daemons(&*client).await?;
    // --window given: those; else those a running migration daemon was
    // started with (`run --window`); else the ones every daemon started
    // without obeys (the control row)
    let own = daemons
        .iter()
        .filter(|d| d.job == "migrate")
        .find_map(|d| d.windows.as_deref().and_then(control::parse_schedule));
    let schedule = if !schedule.windows.is_empty() {
        schedule
    } else if let Some(own) = &own {
        own
    } else {
        &control.schedule
    };
    // the users migrated in the last minute over the minute, or in the
    // time the migration daemons running now have run when that is
    // shorter (4 s into a run, its users over 60 s would say a fifteenth
    // of its rate; a restarted daemon's first seconds over the minute's
    // users, its predecessor's included, would say several times it)
    let now = jiff::Timestamp::now();
    let running = daemons
        .iter()
        .filter(|d| d.job == "migrate")
        .filter_map(|d| d.started_at.parse::<jiff::Timestamp>().ok())
        .map(|t| (now - t).total(jiff::Unit::Second).unwrap_or(60.0))
        .fold(None, |a: Option<f64>, s| Some(a.map_or(s, |a| a.max(s))));
    let window = running.map_or(60.0, |s| s.clamp(5.0, 60.0));
    let state = state::counts(&*client, spec, max, window).await?;
    let recent_rate = state.migrated_recently as f64 / window;
    let over_limit = state.over_limit;
    let legacy = users - migrated;
    let to_do = left_to_try(legacy, over_limit, state.held);
    let rate = if recent_rate > 0.0 {
        Some(recent_rate)
    } else {
        control.rate.per_second()
    };
    let retrying = (state.failed - over_limit).max(0);
    let projected_finish = match rate {
        // finalized, paused, or nothing left to try: no finish
        _ if control.finalized || control.paused || to_do == 0 => None,
        _ if to_do <= retrying => None,
        Some(r) if r > 0.0 => schedule.finish_text(now, to_do as f64 / r),
        _ => None,
    };
    // finalized with the flag still there: a user inserted since by the
    // old code path has it false (counted through the legacy index)
    let late: i64 = if control.finalized && crate::pg::identity::flag_exists(&*client, spec).await?
    {
        client
            .query_one(
                &format!(
                    "SELECT count(*) FROM {} WHERE NOT {}",
                    crate::pg::sql::source_table(spec),
                    crate::core::spec::quote(&spec.source.flag)
                ),
                &[],
            )
            .await
            .map_err(|e| Error::db("counting users inserted after finalize", e))?
            .get(0)
    } else {
        0
    };
    let evolving = crate::pg::state::awaiting_evolution(&*client, &spec.fingerprint()).await?;
    let invalid_indexes: Vec<String> = client
        .query(
            "SELECT i.indexrelid::regclass::text FROM pg_index AS i \
              WHERE NOT i.indisvalid \
                AND i.indrelid IN (SELECT to_regclass(r) FROM unnest($1::text[]) AS r) \
              ORDER BY 1",
            &[&crate::pg::schema::touched_relations(spec)],
        )
        .await
        .map_err(|e| Error::db("looking for invalid indexes", e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok(Status {
        late,
        evolving,
        invalid_indexes,
        users,
        migrated,
        legacy,
        failed: state.failed,
        over_limit,
        held: state.held,
        max_attempts: max,
        failures,
        recent_rate,
        phase: if control.finalized {
            "finalized".into()
        } else {
            "migrating".into()
        },
        paused: control.paused,
        rate: control.rate.to_string(),
        rollout_percent: control.rollout_percent,
        allow_list: control.allow_list.len(),
        projected_finish,
        retrying,
        windows: if schedule.windows.is_empty() {
            "always open".into()
        } else {
            format!(
                "{} {}",
                schedule
                    .windows
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
                schedule.tz.iana_name().unwrap_or("UTC")
            )
        },
        daemons,
    })
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pct = |n: i64| crate::core::percent(n, self.users, 1);
        writeln!(f, "phase      {}", self.phase)?;
        writeln!(f, "users      {}", self.users)?;
        writeln!(f, "migrated   {} ({}%)", self.migrated, pct(self.migrated))?;
        writeln!(f, "legacy     {} ({}%)", self.legacy, pct(self.legacy))?;
        if self.late > 0 {
            writeln!(
                f,
                "late       {} inserted after finalize with the flag false: their values \
                 are in no table or view until repaired (`decant finalize` prints the repair)",
                crate::core::users(self.late)
            )?;
        }
        if self.evolving > 0 {
            writeln!(
                f,
                "evolving   {} of the mapping before `decant init --evolve`: `decant run \
                 --evolve` re-migrates them",
                crate::core::users_of(self.evolving, "migrated")
            )?;
        }
        if !self.invalid_indexes.is_empty() {
            writeln!(
                f,
                "indexes    INVALID: {} (a build CONCURRENTLY was interrupted; PostgreSQL \
                 never reads them): run `decant init` again, which rebuilds them",
                self.invalid_indexes.join(", ")
            )?;
        }
        writeln!(
            f,
            "failed     {} ({} at the attempt limit of {}, skipped by the daemon)",
            self.failed, self.over_limit, self.max_attempts
        )?;
        for g in &self.failures {
            let ids: Vec<String> = g
                .examples
                .iter()
                .map(crate::core::id::UserId::shown)
                .collect();
            writeln!(
                f,
                "  {:>8}  {} (e.g. users {})",
                g.users,
                g.reason,
                ids.join(", ")
            )?;
        }
        if self.held > 0 {
            writeln!(
                f,
                "held       {} (rolled back; not migrated again until `decant release`)",
                self.held
            )?;
        }
        writeln!(
            f,
            "rate       {:.1} users/s recently (the last minute, or since the daemons started)",
            self.recent_rate
        )?;
        writeln!(
            f,
            "control    {}rate {}, rollout {}% + {} allowed",
            if self.paused { "PAUSED, " } else { "" },
            self.rate,
            self.rollout_percent,
            self.allow_list
        )?;
        writeln!(f, "windows    {}", self.windows)?;
        if self.daemons.is_empty() {
            writeln!(f, "daemons    none running")?;
        }
        for (i, d) in self.daemons.iter().enumerate() {
            writeln!(
                f,
                "{} {}:{} {} since {}, {} worker{}, rate share {}, {} done, {} failed{}{}",
                if i == 0 { "daemons   " } else { "          " },
                d.host,
                d.pid,
                d.job,
                d.started_at,
                d.workers,
                if d.workers == 1 { "" } else { "s" },
                d.rate_share.as_deref().unwrap_or("?"),
                d.migrated,
                d.failed,
                d.windows
                    .as_deref()
                    .map(|w| format!(", its own windows {w}"))
                    .unwrap_or_default(),
                d.holding
                    .as_deref()
                    .map(|h| format!("; holding back: {h}"))
                    .unwrap_or_default()
            )?;
        }
        match &self.projected_finish {
            Some(t) => write!(f, "finish     {t} (projected)"),
            None if self.phase == "finalized" => write!(f, "finish     done (finalized)"),
            None if self.daemons.iter().any(|d| d.job == "rollback") => write!(
                f,
                "finish     not projected: a rollback is running (its users are held out of \
                 the migration until `decant release`)"
            ),
            None if self.legacy == 0 && self.evolving > 0 => write!(
                f,
                "finish     not done: every user is migrated, {} of the mapping before \
                 `decant init --evolve` (`decant run --evolve` re-migrates them)",
                crate::core::users_of(self.evolving, "migrated")
            ),
            None if self.legacy == 0 => write!(
                f,
                "finish     done: every user is migrated (`decant finalize` ends the migration)"
            ),
            None if self.paused => write!(
                f,
                "finish     not projected: paused (`decant resume` goes on)"
            ),
            None if self.retrying > 0 && self.left_to_try() <= self.retrying => {
                write!(
                    f,
                    "finish     not projected: the {} legacy users left to try have all failed; \
                     the daemon tries each again (up to {} attempts); unless their blobs were \
                     fixed since their last attempt (the reasons above), by hand, a fixup or a spec \
                     change, they fail again (`decant check` shows whether they now migrate)",
                    self.retrying, self.max_attempts
                )
            }
            None if self.left_to_try() == 0 && self.legacy > 0 => {
                write!(
                    f,
                    "finish     not projected: none of the {} legacy users is left to try \
                     ({} at the attempt limit: after fixing their cause, `decant release --failed`; \
                     {} held: `decant release`)",
                    self.legacy, self.over_limit, self.held
                )
            }
            None => write!(f, "finish     unknown (no recent rate and rate = max)"),
        }
    }
}
