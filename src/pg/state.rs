//! The per-user state record (`decant.user_state`): state, attempts, last
//! error and times. Every statement on it lives here; the writes run in the
//! caller's transaction, so a user's record commits with the work it
//! describes.

use crate::core::id::{IdType, UserId};
use crate::error::{Error, Result};
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

const EVOLVED: &str = "UPDATE decant.user_state SET fingerprint = $2, updated_at = now() \
     WHERE user_id = ANY ($1::bigint[])";

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

const RELEASE: &str = "UPDATE decant.user_state SET state = 'legacy', updated_at = now() \
     WHERE state = 'held' AND ($1::bigint[] IS NULL OR user_id = ANY ($1::bigint[]))";

/// Of claimed users, those a peer failed since the claim's snapshot (the
/// failure is recorded in this table, so the row lock's re-check of the
/// source row cannot see it; a fresh statement can).
const FAILED_MEANWHILE: &str = "SELECT user_id FROM decant.user_state \
     WHERE user_id = ANY($1::bigint[]) \
       AND state = 'failed' AND (attempts >= $2 OR updated_at >= $3)";

const OVER_LIMIT: &str =
    "SELECT count(*) FROM decant.user_state WHERE state = 'failed' AND attempts >= $1";

const COUNTS: &str = "SELECT count(*) FILTER (WHERE state = 'failed'),
        count(*) FILTER (WHERE state = 'failed' AND attempts >= $1),
        count(*) FILTER (WHERE migrated_at > now() - interval '60 seconds'),
        count(*) FILTER (WHERE state = 'held')
   FROM decant.user_state";

const FAILURE_GROUPS: &str =
    "SELECT coalesce(reason, '?'), count(*), (array_agg(user_id ORDER BY user_id))[1:5]
       FROM decant.user_state WHERE state = 'failed'
      GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 50";

/// A statement on user ids written for `bigint` ids, in the ids' type
/// (every `bigint` in these statements is an id).
fn typed(sql: &'static str, ty: IdType) -> std::borrow::Cow<'static, str> {
    match ty {
        IdType::Int => std::borrow::Cow::Borrowed(sql),
        _ => std::borrow::Cow::Owned(sql.replace("bigint", ty.sql())),
    }
}

/// Records users as migrated by the mapping `fingerprint`, each with its
/// warnings (a JSON array of texts, or NULL) and what its fixups did (what
/// rollback undoes, or NULL).
pub(crate) async fn record_migrated(
    client: &impl GenericClient,
    ty: IdType,
    users: &[UserId],
    warnings: &[Option<Value>],
    fixups: &[Option<Value>],
    fingerprint: &str,
) -> Result<()> {
    client
        .execute(
            &*typed(MIGRATED, ty),
            &[&users, &warnings, &fixups, &fingerprint],
        )
        .await
        .map_err(|e| Error::db("recording migrated users", e))?;
    Ok(())
}

/// Records failures: attempts + 1, the reason to group by and the error.
pub(crate) async fn record_failed(
    client: &impl GenericClient,
    ty: IdType,
    users: &[UserId],
    reasons: &[String],
    errors: &[String],
) -> Result<()> {
    client
        .execute(&*typed(FAILED, ty), &[&users, &reasons, &errors])
        .await
        .map_err(|e| Error::db("recording failures", e))?;
    Ok(())
}

/// Records users as re-migrated by the mapping `fingerprint` (an
/// evolution).
pub(crate) async fn record_evolved(
    client: &impl GenericClient,
    ty: IdType,
    users: &[UserId],
    fingerprint: &str,
) -> Result<()> {
    client
        .execute(&*typed(EVOLVED, ty), &[&users, &fingerprint])
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
        .query(&*typed(FIXUPS_OF, ty), &[&users])
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
        .execute(&*typed(HELD, ty), &[&users])
        .await
        .map_err(|e| Error::db("recording rolled back users", e))?;
    Ok(())
}

/// Releases held users (`None`: all of them) back into the migration;
/// returns how many.
pub(crate) async fn release(
    client: &impl GenericClient,
    ty: IdType,
    users: Option<&[UserId]>,
) -> Result<u64> {
    let users: Option<Vec<UserId>> = users.map(<[UserId]>::to_vec);
    client
        .execute(&*typed(RELEASE, ty), &[&users])
        .await
        .map_err(|e| Error::db("releasing held users", e))
}

/// Of `users`, those that failed `max_attempts` times or since `since`.
pub(crate) async fn failed_meanwhile(
    client: &deadpool_postgres::Transaction<'_>,
    ty: IdType,
    users: &[UserId],
    max_attempts: i32,
    since: SystemTime,
) -> Result<Vec<UserId>> {
    let stmt = client
        .prepare_cached(&typed(FAILED_MEANWHILE, ty))
        .await
        .map_err(|e| Error::db("preparing the claim re-check", e))?;
    Ok(client
        .query(&stmt, &[&users, &max_attempts, &since])
        .await
        .map_err(|e| Error::db("re-checking claimed users", e))?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// Users at the attempt limit (skipped by the daemon).
pub(crate) async fn over_limit(client: &impl GenericClient, max_attempts: i32) -> Result<i64> {
    Ok(client
        .query_one(OVER_LIMIT, &[&max_attempts])
        .await
        .map_err(|e| Error::db("counting users over the attempt limit", e))?
        .get(0))
}

/// Counts of the state table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Counts {
    /// Users whose last attempt failed.
    pub failed: i64,
    /// Of those, users at the attempt limit.
    pub over_limit: i64,
    /// Users migrated in the last 60 seconds.
    pub migrated_last_minute: i64,
    /// Users rolled back and held out of the migration.
    pub held: i64,
}

/// Reads the state table's counts.
pub(crate) async fn counts(client: &impl GenericClient, max_attempts: i32) -> Result<Counts> {
    let row = client
        .query_one(COUNTS, &[&max_attempts])
        .await
        .map_err(|e| Error::db_own("reading decant.user_state", e))?;
    Ok(Counts {
        failed: row.get(0),
        over_limit: row.get(1),
        migrated_last_minute: row.get(2),
        held: row.get(3),
    })
}

/// Failed users grouped by reason, largest groups first: (reason, users,
/// up to five example ids).
pub(crate) async fn failure_groups(
    client: &impl GenericClient,
) -> Result<Vec<(String, i64, Vec<UserId>)>> {
    Ok(client
        .query(FAILURE_GROUPS, &[])
        .await
        .map_err(|e| Error::db("grouping failures", e))?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}
