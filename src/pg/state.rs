//! The per-user state record (`decant.user_state`): state, attempts, last
//! error and times. Every statement on it lives here; the writes run in the
//! caller's transaction, so a user's record commits with the work it
//! describes.

use crate::core::id::{IdType, UserId};
use crate::core::spec::{Spec, quote};
use crate::error::{Error, Result};
use crate::pg::session::{Pipe, Planned, pipeline};
use crate::pg::sql::source_table;
use serde_json::Value;
use std::time::SystemTime;
use tokio_postgres::GenericClient;

const MIGRATED: &str = "INSERT INTO decant.user_state AS s \
        (user_id, state, attempts, warnings, fixups, fingerprint, migrated_at, updated_at) \
     SELECT u, 'migrated', 0, w, f, $4, now(), now() \
       FROM unnest($1::bigint[], $2::jsonb[], $3::jsonb[]) AS v(u, w, f) \
     ON CONFLICT (user_id) DO UPDATE SET state = 'migrated', warnings = EXCLUDED.warnings, \
        fixups = EXCLUDED.fixups, fingerprint = EXCLUDED.fingerprint, reason = NULL, \
        last_error = NULL, migrated_at = now(), updated_at = now()";

const EVOLVED: &str = "UPDATE decant.user_state AS s SET fingerprint = $2, warnings = v.w, \
        updated_at = now() \
     FROM unnest($1::bigint[], $3::jsonb[]) AS v(u, w) WHERE s.user_id = v.u";

const FIXUPS_OF: &str = "SELECT user_id, fixups FROM decant.user_state \
     WHERE user_id = ANY ($1::bigint[]) AND fixups IS NOT NULL";

const FAILED: &str = "INSERT INTO decant.user_state AS s \
        (user_id, state, attempts, reason, last_error, updated_at) \
     SELECT u, 'failed', 1, r, e, now() FROM unnest($1::bigint[], $2::text[], $3::text[]) AS v(u, r, e) \
     ON CONFLICT (user_id) DO UPDATE SET state = 'failed', attempts = s.attempts + 1, \
        reason = EXCLUDED.reason, last_error = EXCLUDED.last_error, updated_at = now()";

const HELD: &str = "INSERT INTO decant.user_state AS s (user_id, state, updated_at) \
     SELECT u, 'held', now() FROM unnest($1::bigint[]) AS u \
     ON CONFLICT (user_id) DO UPDATE SET state = 'held', migrated_at = NULL, \
        warnings = NULL, fixups = NULL, attempts = 0, reason = NULL, last_error = NULL, \
        updated_at = now()";

const HELD_OF: &str = "SELECT user_id FROM decant.user_state \
     WHERE user_id = ANY ($1::bigint[]) AND state = 'held'";

const RELEASE: &str = "UPDATE decant.user_state SET state = 'legacy', updated_at = now() \
     WHERE state = 'held' AND ($1::bigint[] IS NULL OR user_id = ANY ($1::bigint[]))";

/// Failed users' attempts back to none (their record and reason stay until
/// they migrate): the daemon tries them again (a running one, those whose
/// last failure is older than its start: a run tries a user once).
const RETRY: &str = "UPDATE decant.user_state SET attempts = 0 \
     WHERE state = 'failed' AND attempts > 0 AND ($1::bigint[] IS NULL OR user_id = ANY ($1::bigint[]))";

/// Of claimed users, those a peer failed since the claim's snapshot (the
/// failure is recorded in this table, so the row lock's re-check of the
/// source row cannot see it; a fresh statement can).
const FAILED_MEANWHILE: &str = "SELECT user_id FROM decant.user_state \
     WHERE user_id = ANY($1::bigint[]) \
       AND state = 'failed' AND (attempts >= $2 OR updated_at >= $3)";

/// The state rows of users still in the source table (`{live}` in the
/// statements below): a user deleted while failed or held keeps its state
/// row, and counting it would say users are left out that no longer
/// exist (a projection of none left to try while legacy users remain).
fn live(spec: &Spec, sql: &str) -> String {
    sql.replace(
        "{live}",
        &format!(
            "EXISTS (SELECT 1 FROM {} AS s WHERE s.{} = st.user_id)",
            source_table(spec),
            quote(&spec.source.id)
        ),
    )
}

const OVER_LIMIT: &str = "SELECT count(*) FROM decant.user_state AS st \
     WHERE st.state = 'failed' AND st.attempts >= $1 AND {live}";

const COUNTS: &str = "SELECT count(*) FILTER (WHERE st.state = 'failed' AND {live}),
        count(*) FILTER (WHERE st.state = 'failed' AND st.attempts >= $1 AND {live}),
        count(*) FILTER (WHERE st.migrated_at > now() - make_interval(secs => $2)),
        count(*) FILTER (WHERE st.state = 'held' AND {live})
   FROM decant.user_state AS st";

const FAILURE_GROUPS: &str =
    "SELECT coalesce(st.reason, '?'), count(*), (array_agg(st.user_id ORDER BY st.user_id))[1:5]
       FROM decant.user_state AS st WHERE st.state = 'failed' AND {live}
      GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 50";

/// A statement on user ids written for `bigint` ids, in the ids' type
/// (every `bigint` in these statements is an id). Made once per statement
/// and type and kept for the process's life (a dozen strings at most), so
/// that it can be sent in a pipeline beside statements that borrow it.
fn typed(sql: &'static str, ty: IdType) -> &'static str {
    use std::sync::{Mutex, OnceLock};
    type Made = Vec<(&'static str, IdType, &'static str)>;
    static MADE: OnceLock<Mutex<Made>> = OnceLock::new();
    if ty == IdType::Int {
        return sql;
    }
    let mut made = MADE
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some((_, _, t)) = made.iter().find(|(s, t, _)| *s == sql && *t == ty) {
        return t;
    }
    let t: &'static str = Box::leak(sql.replace("bigint", ty.sql()).into_boxed_str());
    made.push((sql, ty, t));
    t
}

/// The statement that records users as migrated by the mapping
/// `fingerprint`, each with its warnings (a JSON array of texts, or NULL)
/// and what its fixups did (what rollback undoes, or NULL); sent in the
/// caller's pipeline.
pub(crate) fn migrated<'a>(
    ty: IdType,
    users: &'a [UserId],
    warnings: &'a [Option<Value>],
    fixups: &'a [Option<Value>],
    fingerprint: &'a str,
) -> Planned<'a> {
    Planned::new(
        typed(MIGRATED, ty),
        vec![
            Box::new(users),
            Box::new(warnings),
            Box::new(fixups),
            Box::new(fingerprint),
        ],
        "recording migrated users",
    )
}

/// The statement that records failures: attempts + 1, the reason to group
/// by and the error; sent in the caller's pipeline.
pub(crate) fn failed<'a>(
    ty: IdType,
    users: &'a [UserId],
    reasons: &'a [String],
    errors: &'a [String],
) -> Planned<'a> {
    Planned::new(
        typed(FAILED, ty),
        vec![Box::new(users), Box::new(reasons), Box::new(errors)],
        "recording failures",
    )
}

/// Records failures (see [`failed`]).
pub(crate) async fn record_failed(
    conn: &impl Pipe,
    ty: IdType,
    users: &[UserId],
    reasons: &[String],
    errors: &[String],
) -> Result<()> {
    let stmt = failed(ty, users, reasons, errors);
    pipeline(conn, None, &[stmt], None, Error::db_at)
        .await
        .map(drop)
}

/// Records users as re-migrated by the mapping `fingerprint` (an
/// evolution).
pub(crate) async fn record_evolved(
    client: &impl GenericClient,
    ty: IdType,
    users: &[UserId],
    warnings: &[Option<Value>],
    fingerprint: &str,
) -> Result<()> {
    client
        .execute(typed(EVOLVED, ty), &[&users, &fingerprint, &warnings])
        .await
        .map_err(|e| Error::db("recording evolved users", e))?;
    Ok(())
}

/// The fixup records of `users` that have one.
pub(crate) async fn fixups_of(
    client: &impl GenericClient,
    ty: IdType,
    users: &[UserId],
) -> Result<std::collections::HashMap<UserId, Value>> {
    if users.is_empty() {
        return Ok(std::collections::HashMap::new());
    }
    Ok(client
        .query(typed(FIXUPS_OF, ty), &[&users])
        .await
        .map_err(|e| Error::db("reading the fixups applied", e))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

/// Records users as rolled back and held out of the migration.
pub(crate) async fn record_held(
    client: &impl GenericClient,
    ty: IdType,
    users: &[UserId],
) -> Result<()> {
    client
        .execute(typed(HELD, ty), &[&users])
        .await
        .map_err(|e| Error::db("recording rolled back users", e))?;
    Ok(())
}

/// Of `users`, those held out of the migration by a rollback.
pub(crate) async fn held(
    client: &impl GenericClient,
    ty: IdType,
    users: &[UserId],
) -> Result<Vec<UserId>> {
    let rows = client
        .query(typed(HELD_OF, ty), &[&users])
        .await
        .map_err(|e| Error::db("reading which users are held", e))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Releases held users (`None`: all of them) back into the migration;
/// returns how many.
pub(crate) async fn release(
    client: &impl GenericClient,
    ty: IdType,
    users: Option<&[UserId]>,
) -> Result<u64> {
    update_users(client, typed(RELEASE, ty), users, "releasing held users").await
}

/// Gives failed users (`None`: all of them) their attempts back; returns
/// how many.
pub(crate) async fn retry_failed(
    client: &impl GenericClient,
    ty: IdType,
    users: Option<&[UserId]>,
) -> Result<u64> {
    let what = "giving failed users their attempts back";
    update_users(client, typed(RETRY, ty), users, what).await
}

/// Runs `sql`, an update of the users in `$1` (every one when NULL).
async fn update_users(
    client: &impl GenericClient,
    sql: &str,
    users: Option<&[UserId]>,
    what: &str,
) -> Result<u64> {
    let users: Option<Vec<UserId>> = users.map(<[UserId]>::to_vec);
    client
        .execute(sql, &[&users])
        .await
        .map_err(|e| Error::db(what, e))
}

/// The statement that finds, of `users`, those that failed `max_attempts`
/// times or since `since`; sent in the caller's pipeline.
pub(crate) fn failed_meanwhile<'a>(
    ty: IdType,
    users: &'a [UserId],
    max_attempts: i32,
    since: &'a SystemTime,
) -> Planned<'a> {
    Planned::new(
        typed(FAILED_MEANWHILE, ty),
        vec![Box::new(users), Box::new(max_attempts), Box::new(since)],
        "re-checking claimed users",
    )
}

/// Users at the attempt limit (skipped by the daemon), of those still in
/// the source table.
pub(crate) async fn over_limit(
    client: &impl GenericClient,
    spec: &Spec,
    max_attempts: i32,
) -> Result<i64> {
    Ok(client
        .query_one(&live(spec, OVER_LIMIT), &[&max_attempts])
        .await
        .map_err(|e| Error::db("counting users over the attempt limit", e))?
        .get(0))
}

/// Counts of the state table (failed and held: users still in the source
/// table).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Counts {
    /// Users whose last attempt failed.
    pub failed: i64,
    /// Of those, users at the attempt limit.
    pub over_limit: i64,
    /// Users migrated in the last `recent_seconds`.
    pub migrated_recently: i64,
    /// Users rolled back and held out of the migration.
    pub held: i64,
}

/// Reads the state table's counts.
pub(crate) async fn counts(
    client: &impl GenericClient,
    spec: &Spec,
    max_attempts: i32,
    recent_seconds: f64,
) -> Result<Counts> {
    let row = client
        .query_one(&live(spec, COUNTS), &[&max_attempts, &recent_seconds])
        .await
        .map_err(|e| Error::db_own("reading decant.user_state", e))?;
    Ok(Counts {
        failed: row.get(0),
        over_limit: row.get(1),
        migrated_recently: row.get(2),
        held: row.get(3),
    })
}

/// Failed users grouped by reason, largest groups first: (reason, users,
/// up to five example ids).
pub(crate) async fn failure_groups(
    client: &impl GenericClient,
    spec: &Spec,
) -> Result<Vec<(String, i64, Vec<UserId>)>> {
    Ok(client
        .query(&live(spec, FAILURE_GROUPS), &[])
        .await
        .map_err(|e| Error::db("grouping failures", e))?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

/// The condition on a `decant.user_state` row that its user is migrated
/// with a mapping other than the one whose fingerprint is bind parameter
/// `$n`: it awaits `decant run --evolve`.
pub(crate) fn of_another_mapping(n: usize) -> String {
    format!("state = 'migrated' AND fingerprint IS DISTINCT FROM ${n}::text")
}

/// Migrated users of another mapping than the one whose fingerprint is
/// `fingerprint` (the one before `init --evolve`): what `run --evolve`
/// re-migrates.
pub(crate) async fn awaiting_evolution(
    client: &impl GenericClient,
    fingerprint: &str,
) -> Result<i64> {
    Ok(client
        .query_one(
            &format!(
                "SELECT count(*) FROM decant.user_state WHERE {}",
                of_another_mapping(1)
            ),
            &[&fingerprint],
        )
        .await
        .map_err(|e| Error::db("counting users awaiting an evolution", e))?
        .get(0))
}

/// The ids of `ids` that name no row of the source table, in order.
pub(crate) async fn missing_users(
    client: &impl GenericClient,
    spec: &Spec,
    ids: &[UserId],
) -> Result<Vec<UserId>> {
    let sql = format!(
        "SELECT i FROM unnest($1::{}[]) AS i WHERE NOT EXISTS \
         (SELECT 1 FROM {} AS s WHERE s.{} = i) ORDER BY i",
        spec.source.id_type.sql(),
        source_table(spec),
        quote(&spec.source.id)
    );
    Ok(client
        .query(&sql, &[&ids])
        .await
        .map_err(|e| Error::db("looking up the ids asked for", e))?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// Of the legacy users of the source table (those of `ids` when given), how
/// many the daemon leaves alone: held (rolled back, until `decant
/// release`) and failed at the attempt limit (until `release --failed`).
pub(crate) async fn left_out(
    client: &impl GenericClient,
    spec: &Spec,
    ids: Option<&[UserId]>,
) -> Result<(u64, u64)> {
    let it = spec.source.id_type.sql();
    let sql = format!(
        "SELECT count(*) FILTER (WHERE h.state = 'held'), \
                count(*) FILTER (WHERE h.state = 'failed' AND h.attempts >= $1) \
           FROM decant.user_state AS h JOIN {} AS s ON s.{} = h.user_id \
          WHERE NOT s.{} AND ($2::{it}[] IS NULL OR s.{} = ANY ($2::{it}[]))",
        source_table(spec),
        quote(&spec.source.id),
        quote(&spec.source.flag),
        quote(&spec.source.id),
    );
    let row = client
        .query_one(&sql, &[&spec.settings.max_attempts, &ids])
        .await
        .map_err(|e| Error::db("counting the held and failed users", e))?;
    Ok((row.get::<_, i64>(0) as u64, row.get::<_, i64>(1) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_is_typed_once_per_id_type_and_kept() {
        assert_eq!(typed(MIGRATED, IdType::Int), MIGRATED);
        let uuid = typed(MIGRATED, IdType::Uuid);
        assert!(uuid.contains("unnest($1::uuid[]") && !uuid.contains("bigint"));
        assert!(std::ptr::eq(uuid, typed(MIGRATED, IdType::Uuid)));
        let text = typed(MIGRATED, IdType::Text);
        assert!(text.contains("unnest($1::text[]") && !std::ptr::eq(uuid, text));
        // another statement of the same type is another string
        let failed = typed(FAILED, IdType::Uuid);
        assert!(failed.contains("'failed'") && !std::ptr::eq(uuid, failed));
    }
}
