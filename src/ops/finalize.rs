//! `decant finalize`: the gate at the end of a migration. It refuses unless
//! every user is migrated and still rebuilds its blob from its rows, with
//! none held or failed and none flagged outside decant (no state record,
//! no rows, values the rules claim whole in the blob); then it
//! records the phase `finalized`: the generated views read the tables
//! alone, and the daemon, bulk rollback and on-demand migration stop. It
//! drops nothing: it prints the SQL a team runs, when ready, to drop the
//! flag and (when every residual is empty) the blob column.

use crate::compat::Decant;
use crate::core::census::Unclaimed;
use crate::core::id::UserId;
use crate::core::spec::{Spec, quote};
use crate::error::{Error, Result};
use crate::ops::check::{CheckOptions, CheckProgress, check};
use crate::pg::sql::source_table;
use crate::pg::{control, pool};
use serde::Serialize;

/// What `finalize` did.
#[derive(Debug, Clone, Serialize)]
pub struct Finalized {
    /// Users, all migrated and verified.
    pub users: u64,
    /// Whether the migration was finalized before this call.
    pub already: bool,
    /// Users whose residual (the blob column) is not empty: keys no rule
    /// claims, or values a `keep` rule kept there.
    pub residual_users: u64,
    /// What those residuals hold, by top-level key (`$.key`; `$` for a
    /// residual that is no object), most held first, at most 20.
    pub unclaimed: Vec<Unclaimed>,
    /// Top-level keys held in residuals beyond those in `unclaimed`.
    pub more_keys: u64,
    /// The SQL that drops what the old code path needed (what
    /// `--drop-legacy` runs).
    pub drop_sql: String,
    /// Whether the flag column is gone (dropped now or before).
    pub flag_dropped: bool,
}

/// Checks the gate and finalizes the migration of the database at `url`
/// (the same database as `decant`'s). With `drop_legacy`, also drops the
/// flag column and the legacy index, and regenerates the views and the SQL
/// API to read every user as migrated, in one transaction; handles made
/// before (in running backends) read the flag until restarted.
pub async fn finalize(url: &str, decant: &Decant, drop_legacy: bool) -> Result<Finalized> {
    let spec = decant.spec();
    let client = pool::get(decant.pool()).await?;
    crate::pg::identity::require_init(&**client).await?;
    crate::pg::identity::verify(&**client, spec, false).await?;
    // a gate that saw only the users a policy lets through would pass with
    // the others never migrated
    crate::pg::schema::require_every_row(
        &**client,
        spec,
        "the finalize gate (every user migrated)",
    )
    .await?;
    let already = control::read(&**client).await?.finalized;
    let src = source_table(spec);
    if already && !crate::pg::identity::flag_exists(&**client, spec).await? {
        // finalized and the flag dropped: nothing left to check or do
        let users: i64 = client
            .query_one(&format!("SELECT count(*) FROM {src}"), &[])
            .await
            .map_err(|e| Error::db("counting users", e))?
            .get(0);
        return Ok(Finalized {
            users: users as u64,
            already: true,
            residual_users: 0,
            unclaimed: Vec::new(),
            more_keys: 0,
            drop_sql: String::new(),
            flag_dropped: true,
        });
    }
    let it = spec.source.id_type.sql();
    let (id, flag, blob) = (
        quote(&spec.source.id),
        quote(&spec.source.flag),
        quote(&spec.source.blob),
    );
    // legacy users, by state, with examples
    let row = client
        .query_one(
            &format!(
                "SELECT count(*) FILTER (WHERE NOT s.{flag}), \
                        count(*) FILTER (WHERE NOT s.{flag} AND st.state = 'failed'), \
                        count(*) FILTER (WHERE NOT s.{flag} AND st.state = 'held'), \
                        coalesce((array_agg(s.{id}::{it} ORDER BY s.{id}) FILTER (WHERE NOT s.{flag}))[1:5], '{{}}'), \
                        count(*) \
                   FROM {src} AS s LEFT JOIN decant.user_state AS st ON st.user_id = s.{id}"
            ),
            &[],
        )
        .await
        .map_err(|e| Error::db("counting users by state", e))?;
    let (legacy, failed, held): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    let legacy_ids: Vec<UserId> = row.get(3);
    let users: i64 = row.get(4);
    let (unverified, unverified_ids) = hand_set_flags(&client, spec).await?;
    let list = |ids: &[UserId]| ids.iter().map(UserId::shown).collect::<Vec<_>>().join(", ");
    let mut problems = Vec::new();
    if already && legacy > 0 {
        // finalized: nothing migrates any more; a user with the flag false
        // came in since by the old code path
        return Err(Error::Setup(format!(
            "{} {} inserted after finalize with the flag false (e.g. {}): the views \
             and the Rust layer read them as migrated, but their values are in no table or view. \
             Repair them (each blob goes through decant.save as a migrated user's), then insert \
             new users with the flag true and an empty blob, then save them (README):\n{}",
            crate::core::users(legacy),
            if legacy == 1 { "was" } else { "were" },
            list(&legacy_ids),
            crate::ops::status::late_users_repair(spec)
        )));
    }
    if legacy > 0 {
        problems.push(format!(
            "{} {} still legacy (e.g. {}; {failed} failed, {held} held): \
             migrate them (fixups repair dirty ones; `decant release` puts held ones back, \
             `decant release --failed` failed ones `run` no longer retries)",
            crate::core::users(legacy),
            crate::core::is_are(legacy),
            list(&legacy_ids)
        ));
    }
    if unverified > 0 {
        problems.push(format!(
            "{} {} the flag set but no rows and no verified state record, the values the spec's rules \
             claim still whole in the blob column (e.g. {}): flags set outside decant? Clear their flag \
             (`UPDATE {src} SET {flag} = false WHERE ...`), then {}",
            crate::core::users(unverified),
            if unverified == 1 { "has" } else { "have" },
            list(&unverified_ids),
            if already {
                "run `decant finalize` again: it prints the SQL that moves their blobs into the tables"
            } else {
                "migrate them with decant"
            }
        ));
    }
    if drop_legacy {
        let theirs = foreign_dependents(&client, spec).await?;
        if !theirs.is_empty() {
            problems.push(format!(
                "objects decant did not make read the flag column {flag} or decant's views, and \
                 dropping the flag would drop them too: {}. Drop them or make them read no flag (once \
                 finalized every user is migrated), then run `decant finalize --drop-legacy` again \
                 (`decant finalize` alone finalizes and keeps the flag)",
                theirs.join(", ")
            ));
        }
    }
    // every migrated user's rows still rebuild its blob (read-only census)
    let census = check(
        url,
        spec.clone(),
        &CheckOptions::default(),
        &CheckProgress::default(),
    )
    .await?
    .census;
    if let Some(broken) = &census.migrated_not_rebuilding {
        let ids: Vec<UserId> = broken.examples.iter().map(|e| e.id.clone()).collect();
        problems.push(format!(
            "{} migrated users' rows no longer rebuild their blob (e.g. {}): `decant check` says how",
            broken.users,
            list(&ids)
        ));
    }
    if let Some(stale) = &census.migrated_awaiting_evolution {
        let ids: Vec<UserId> = stale.examples.iter().map(|e| e.id.clone()).collect();
        problems.push(format!(
            "{} of the mapping before `decant init --evolve` (e.g. {}): \
             `decant run --evolve` re-migrates them",
            crate::core::users_of(stale.users, "migrated")
                + " "
                + crate::core::is_are(stale.users)
                + " still",
            list(&ids)
        ));
    }
    if !problems.is_empty() {
        return Err(Error::Setup(format!(
            "cannot finalize: {}",
            problems.join("; ")
        )));
    }
    // the phase, under a lock that keeps new legacy users out meanwhile
    // (taken briefly, retried behind the backend's transactions)
    let relations = crate::pg::schema::touched_relations(spec);
    crate::pg::schema::with_brief_locks(&client, spec, "finalize", &relations, || {
        let (tx, src, flag) = (&**client, &src, &flag);
        Box::pin(async move {
            tx.batch_execute(&format!("LOCK TABLE {src} IN SHARE MODE"))
                .await
                .map_err(|e| Error::db(format!("locking {src} against writes for a moment"), e))?;
            let late: bool = tx
                .query_one(
                    &format!("SELECT EXISTS (SELECT 1 FROM {src} WHERE NOT {flag})"),
                    &[],
                )
                .await
                .map_err(|e| Error::db("re-checking for legacy users", e))?
                .get(0);
            if late {
                return Err(Error::Setup(
                    "cannot finalize: a legacy user appeared meanwhile (a new user?); try again"
                        .into(),
                ));
            }
            tx.batch_execute("UPDATE decant.control SET finalized = true, updated_at = now()")
                .await
                .map_err(|e| Error::db("recording the phase finalized", e))
        })
    })
    .await?;
    let (residual_users, unclaimed, more_keys) = residuals(&**client, spec).await?;
    let mut index = crate::pg::schema::legacy_index_qualified(spec);
    if let Some(migrated) = crate::pg::schema::migrated_index_qualified(spec) {
        index = format!("{index}, {migrated}");
    }
    // the views read the flag: they are dropped (no CASCADE: an object
    // of the team's on them or on the flag refuses the drop, never goes
    // with it) and made again below, without the grants roles had on
    // them; those are read first and given again
    let views: Vec<String> = (0..spec.tables.len())
        .map(|ti| crate::pg::views::view_name(spec, ti))
        .collect();
    // what is printed is what runs
    let drops = format!(
        "DROP INDEX IF EXISTS {index};\n\
         DROP VIEW IF EXISTS {};\n\
         ALTER TABLE {src} DROP COLUMN {flag};\n",
        views.join(", ")
    );
    let drop_sql = format!(
        "-- what `decant finalize --drop-legacy` runs, in one transaction (restart the\n\
         -- backends first: a handle made before reads the flag):\n\
         {drops}\
         -- then the views and the SQL API again, reading every user as migrated\n\
         -- (keep {blob}: decant's layer keeps each user's residual there; {})\n",
        residual_note(residual_users),
    );
    if drop_legacy {
        crate::pg::schema::with_brief_locks(
            &client,
            spec,
            "finalize --drop-legacy",
            &relations,
            || {
                let (tx, views, drops) = (&**client, &views, &drops);
                Box::pin(async move {
                let grants: Vec<String> = tx
                    .query(
                        "SELECT format('GRANT %s ON %s TO %s', a.privilege_type, c.oid::regclass, \
                                CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END) \
                           FROM pg_class AS c, aclexplode(c.relacl) AS a \
                          WHERE c.oid = ANY (SELECT to_regclass(v) FROM unnest($1::text[]) AS v) \
                            AND a.grantee <> c.relowner",
                        &[&views],
                    )
                    .await
                    .map_err(|e| Error::db("reading the grants on the views", e))?
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                tx.batch_execute(drops)
                .await
                .map_err(|e| {
                    if e.code().map(|c| c.code()) == Some("55P03") {
                        // retried
                        return Error::db("dropping the flag column and the legacy index", e);
                    }
                    let who = if e.code().map(|c| c.code()) == Some("42501") {
                        " as the source table's owner"
                    } else {
                        " once its cause is fixed"
                    };
                    let e = Error::db("dropping the flag column and the legacy index", e);
                    // the phase is recorded already: only the drop is left to do
                    Error::Setup(format!(
                        "finalized, but the drop failed: {e}; run `decant finalize --drop-legacy` \
                         again{who}"
                    ))
                })?;
                for stmt in crate::pg::schema::reading_statements(spec, true) {
                    // in a transaction: the indexes on the tables exist already
                    let stmt = stmt.replace("CREATE INDEX CONCURRENTLY", "CREATE INDEX");
                    tx.batch_execute(&stmt).await.map_err(|e| {
                        Error::db("creating the views and SQL API without the flag", e)
                    })?;
                }
                for grant in &grants {
                    tx.batch_execute(grant)
                        .await
                        .map_err(|e| Error::db(format!("giving back `{grant}`"), e))?;
                }
                Ok(())
                })
            },
        )
        .await
        .map_err(|e| match e {
            // the phase is recorded already: only the drop is left to do
            Error::Setup(m) if m.starts_with("finalize --drop-legacy: could not take") => {
                Error::Setup(format!("finalized, but the drop of the flag waited in vain: {m}"))
            }
            e => e,
        })?;
        decant.store().set_finalized(true);
        tracing::info!("flag column and legacy index dropped; views and SQL API regenerated");
    }
    Ok(Finalized {
        users: users as u64,
        already,
        residual_users,
        unclaimed,
        more_keys,
        drop_sql,
        flag_dropped: drop_legacy,
    })
}

/// The top-level keys of residuals `finalize` names.
const SHOWN: usize = 20;

/// The users whose residual is not empty, and what the residuals hold by
/// top-level key (`$` for a residual that is no object: `null`, SQL NULL,
/// an array or a scalar), most held first, the first [`SHOWN`], and how
/// many keys more there are.
async fn residuals(
    client: &impl tokio_postgres::GenericClient,
    spec: &crate::core::spec::Spec,
) -> Result<(u64, Vec<Unclaimed>, u64)> {
    let src = source_table(spec);
    let it = spec.source.id_type.sql();
    let (id, blob) = (quote(&spec.source.id), quote(&spec.source.blob));
    let users: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM {src} WHERE {blob} IS DISTINCT FROM '{{}}'::jsonb"),
            &[],
        )
        .await
        .map_err(|e| Error::db("counting non-empty residuals", e))?
        .get(0);
    if users == 0 {
        return Ok((0, Vec::new(), 0));
    }
    let rows = client
        .query(
            &format!(
                "SELECT CASE WHEN jsonb_typeof(s.{blob}) = 'object' THEN k.k END, \
                        count(*), (array_agg(s.{id}::{it} ORDER BY s.{id}))[1:3], \
                        count(*) OVER () \
                   FROM {src} AS s \
                   LEFT JOIN LATERAL jsonb_object_keys( \
                        CASE WHEN jsonb_typeof(s.{blob}) = 'object' THEN s.{blob} END) AS k(k) ON true \
                  WHERE s.{blob} IS DISTINCT FROM '{{}}'::jsonb \
                  GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT {SHOWN}"
            ),
            &[],
        )
        .await
        .map_err(|e| Error::db("reading what the residuals hold", e))?;
    let held = rows
        .iter()
        .map(|r| Unclaimed {
            // as the census writes paths: `$.key`, `$["a.b"]`
            path: match r.get::<_, Option<String>>(0) {
                Some(k) => format!("${}", crate::core::explode::show_key(&k)),
                None => "$".into(),
            },
            users: r.get::<_, i64>(1) as u64,
            examples: r.get(2),
        })
        .collect::<Vec<_>>();
    let keys = rows.first().map_or(0, |r| r.get::<_, i64>(3) as u64);
    let more = keys.saturating_sub(held.len() as u64);
    Ok((users as u64, held, more))
}

/// "N users' residuals are not empty", agreeing with N.
pub fn residual_note(n: u64) -> String {
    if n == 1 {
        "1 user's residual is not empty".into()
    } else {
        format!("{n} users' residuals are not empty")
    }
}

/// The objects decant did not make that read the flag column or decant's
/// views (a team's view, index, trigger, constraint), named as
/// PostgreSQL names them: `--drop-legacy` would drop them with the flag
/// (an index on it goes with the column even without CASCADE) or fail on
/// them. decant's own are its legacy and migrated indexes, its marked
/// indexes (a comment `decant index ...`), its views, and the flag's
/// default and NOT NULL.
async fn foreign_dependents(client: &tokio_postgres::Client, spec: &Spec) -> Result<Vec<String>> {
    let mut indexes = vec![crate::pg::schema::legacy_index_qualified(spec)];
    indexes.extend(crate::pg::schema::migrated_index_qualified(spec));
    let views: Vec<String> = (0..spec.tables.len())
        .map(|ti| crate::pg::views::view_name(spec, ti))
        .collect();
    let rows = client
        .query(
            "WITH col AS (
                 SELECT attrelid, attnum FROM pg_attribute
                  WHERE attrelid = $1::text::regclass AND attname = $2 AND NOT attisdropped),
             ours_idx AS (
                 SELECT to_regclass(v)::oid AS oid FROM unnest($3::text[]) AS v
                  WHERE to_regclass(v) IS NOT NULL),
             ours_views AS (
                 SELECT to_regclass(v)::oid AS oid FROM unnest($4::text[]) AS v
                  WHERE to_regclass(v) IS NOT NULL),
             deps AS (
                 SELECT d.classid, d.objid, d.objsubid
                   FROM pg_depend AS d JOIN col ON d.refobjid = col.attrelid AND d.refobjsubid = col.attnum
                  WHERE d.refclassid = 'pg_class'::regclass AND d.deptype <> 'i'
                 UNION
                 SELECT d.classid, d.objid, d.objsubid FROM pg_depend AS d
                  WHERE d.refclassid = 'pg_class'::regclass AND d.deptype <> 'i'
                    AND d.refobjid IN (SELECT oid FROM ours_views))
             SELECT DISTINCT CASE WHEN d.classid = 'pg_rewrite'::regclass THEN
                        (SELECT CASE c.relkind WHEN 'm' THEN 'materialized view ' ELSE 'view ' END
                                || r.ev_class::regclass::text
                           FROM pg_rewrite AS r JOIN pg_class AS c ON c.oid = r.ev_class
                          WHERE r.oid = d.objid)
                    ELSE pg_describe_object(d.classid, d.objid, d.objsubid) END
               FROM deps AS d
              WHERE NOT (d.classid = 'pg_attrdef'::regclass AND EXISTS (
                        SELECT 1 FROM pg_attrdef AS a JOIN col ON a.adrelid = col.attrelid AND a.adnum = col.attnum
                         WHERE a.oid = d.objid))
                AND NOT (d.classid = 'pg_constraint'::regclass AND EXISTS (
                        SELECT 1 FROM pg_constraint AS k WHERE k.oid = d.objid AND k.contype = 'n'))
                AND NOT (d.classid = 'pg_class'::regclass
                         AND (d.objid IN (SELECT oid FROM ours_idx)
                              OR coalesce(obj_description(d.objid, 'pg_class'), '') LIKE 'decant index %'))
                AND NOT (d.classid = 'pg_rewrite'::regclass AND EXISTS (
                        SELECT 1 FROM pg_rewrite AS r WHERE r.oid = d.objid
                           AND r.ev_class IN (SELECT oid FROM ours_views)))
              ORDER BY 1",
            &[&source_table(spec), &spec.source.flag, &indexes, &views],
        )
        .await
        .map_err(|e| Error::db("reading the objects that depend on the flag column", e))?;
    Ok(rows.iter().filter_map(|r| r.get(0)).collect())
}

/// Migrated users whose flag was set outside decant: no verified state
/// record, no row in any target table, and a blob holding values the
/// spec's rules claim (what a migration would have moved), counted, with
/// the first five. Users created migrated (README: the flag `true`, an
/// empty blob, then `save`) have no state record either, but have their
/// rows or nothing a rule claims: they pass.
async fn hand_set_flags(
    client: &tokio_postgres::Client,
    spec: &Spec,
) -> Result<(i64, Vec<UserId>)> {
    use futures_util::StreamExt;
    let (src, it) = (source_table(spec), spec.source.id_type.sql());
    let (id, flag, blob) = (
        quote(&spec.source.id),
        quote(&spec.source.flag),
        quote(&spec.source.blob),
    );
    let no_rows: Vec<String> = (0..spec.tables.len())
        .map(|ti| {
            format!(
                "NOT {}",
                crate::pg::sql::has_rows_in(spec, ti, &format!("s.{id}"))
            )
        })
        .collect();
    let sql = format!(
        "SELECT s.{id}::{it}, s.{blob} FROM {src} AS s \
           LEFT JOIN decant.user_state AS st ON st.user_id = s.{id} \
          WHERE s.{flag} AND st.state IS DISTINCT FROM 'migrated'{} ORDER BY s.{id}",
        no_rows
            .iter()
            .map(|p| format!(" AND {p}"))
            .collect::<String>()
    );
    let what = "reading migrated users without a state record";
    let rows = client
        .query_raw(&sql, std::iter::empty::<i64>())
        .await
        .map_err(|e| Error::db(what, e))?;
    let mut rows = std::pin::pin!(rows);
    let (mut count, mut examples) = (0i64, Vec::new());
    while let Some(row) = rows.next().await {
        let row = row.map_err(|e| Error::db(what, e))?;
        let user: UserId = row.get(0);
        let Some(stored) = row.get::<_, Option<crate::pg::codec::Blob>>(1) else {
            continue;
        };
        let blob = stored.value(&user, spec.settings.max_depth)?;
        if !crate::core::explode::explode_lenient(spec, &blob)
            .rows
            .is_empty()
        {
            count += 1;
            if examples.len() < 5 {
                examples.push(user);
            }
        }
    }
    Ok((count, examples))
}
