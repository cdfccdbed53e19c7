//! `decant check`: the census, read-only. One `REPEATABLE READ READ ONLY`
//! transaction (one snapshot, no lock beyond a plain `SELECT`'s, no write:
//! it runs on a hot standby) pages through the source table in id order,
//! each page the users' flags, blobs and a migrated user's rows in one
//! statement. A page ends at its count of users or before the user that
//! would take its blobs past [`PAGE_BYTES`] as stored (a cheap read of the
//! ids and stored sizes first, which fetches no blob), so a run of very
//! large blobs comes a few at a time. Pages are censused on blocking
//! threads while the next one is read, at most [`IN_FLIGHT`] at once, and
//! merged in id order: memory is bounded by the page, whatever the table's.

use crate::core::census::{Census, CensusReport};
use crate::core::id::UserId;
use crate::core::json::JsonView;
use crate::core::spec::{Spec, quote};
use crate::error::{Error, Result};
use crate::pg::pool;
use crate::pg::sql::source_table;
use crate::pg::store::{Snapshot, Store};
use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Pages censused at once (one being read, the others on the cores).
pub const IN_FLIGHT: usize = 3;

/// The stored bytes of blobs a page may hold by default (a page's first
/// user is always read, whatever its size). Stored as in the table, after
/// compression: a blob of whales compresses about 7x and parses into about
/// 20 times its stored size, so 2 MiB a page keeps `IN_FLIGHT` pages and
/// the one being read well under half a GiB.
pub const PAGE_BYTES: u64 = 2 << 20;

/// Which users to look at.
#[derive(Debug, Clone, Default)]
pub enum Selection {
    /// Every user.
    #[default]
    All,
    /// About this many users drawn at random (a Bernoulli sample of the
    /// table, then as many as asked, chosen by a hash of the id).
    Sample(u64),
    /// These users.
    Ids(Vec<UserId>),
}

/// How to run the census.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Which users.
    pub selection: Selection,
    /// Users per page.
    pub page: usize,
    /// Stored bytes of blobs per page (the first user of a page always
    /// comes, whatever its size).
    pub page_bytes: u64,
}

impl Default for CheckOptions {
    fn default() -> CheckOptions {
        CheckOptions {
            selection: Selection::All,
            page: 1000,
            page_bytes: PAGE_BYTES,
        }
    }
}

/// Live counters of a census, for a progress bar.
#[derive(Debug, Default)]
pub struct CheckProgress {
    done: AtomicU64,
    total: AtomicU64,
}

impl CheckProgress {
    /// Users censused so far.
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Users to census (known once the snapshot is taken).
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }
}

/// What `decant check` found.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// The census.
    #[serde(flatten)]
    pub census: CensusReport,
    /// Ids asked for (`--ids`) that are not in the table.
    pub missing_ids: Vec<UserId>,
    /// What decant warns of about the source table and the target tables
    /// (`source_warnings`: triggers firing on decant's updates, indexes
    /// and checks reading the blob, validation not the spec's), read in
    /// the census's snapshot.
    pub source_warnings: Vec<String>,
    /// Legacy users censused that the daemon leaves alone: held (rolled
    /// back, until `decant release`); their outcome above is what
    /// migrating them would do once released.
    pub held: u64,
    /// Legacy users censused that failed `max_attempts` times: the daemon
    /// skips them until `decant release --failed`.
    pub at_attempt_limit: u64,
    /// Users in the source table when the snapshot was taken.
    pub table_users: u64,
    /// Wall time of the census, seconds.
    pub seconds: f64,
    /// Users censused per second.
    pub users_per_second: f64,
    /// Pages read (each at most the page's count of users and bytes).
    pub pages: u64,
}

/// Runs the census on the database at `url`.
pub async fn check(
    url: &str,
    spec: Spec,
    opts: &CheckOptions,
    progress: &CheckProgress,
) -> Result<Check> {
    let started = Instant::now();
    let spec = Arc::new(spec);
    let store = Arc::new(Store::new(spec.clone()));
    // one long read-only snapshot, idle between pages while the census
    // works: a role's or database's timeouts (a managed service's) are no
    // bound for it, nor for the statement that begins it. PostgreSQL 17's
    // transaction_timeout (which ends the session) is lifted in the
    // snapshot: a server before 17 refuses its name at connection start.
    let client = pool::connect_with(
        url,
        "-c statement_timeout=0 -c idle_in_transaction_session_timeout=0",
    )
    .await?;
    client
        .batch_execute(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; \
             SELECT set_config('transaction_timeout', '0', true) \
              WHERE current_setting('server_version_num')::int >= 170000",
        )
        .await
        .map_err(|e| Error::db("starting the read-only snapshot", e))?;
    // a census of migrated users needs the mapping that migrated them
    crate::pg::identity::verify(&client, &spec, true).await?;
    // the source's columns, the id of the spec's kind
    crate::pg::schema::check_source(&client, &spec).await?;
    let src = source_table(&spec);
    let table_users: i64 = client
        .query_one(&format!("SELECT count(*) FROM {src}"), &[])
        .await
        .map_err(|e| Error::db(format!("counting the users of {src}"), e))?
        .get(0);
    let ids = match &opts.selection {
        Selection::All => None,
        Selection::Ids(ids) => {
            let mut ids = ids
                .iter()
                .map(|i| spec.source.id_type.coerce(i.clone()))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(Error::Setup)?;
            ids.sort_unstable();
            ids.dedup();
            Some(ids)
        }
        Selection::Sample(n) => {
            let percent = if table_users == 0 {
                100.0
            } else {
                (100.0 * 1.2 * *n as f64 / table_users as f64).clamp(0.0, 100.0)
            };
            let id = quote(&spec.source.id);
            let it = spec.source.id_type.sql();
            // a hash of the id: integers as before, others by their text
            let hash = match spec.source.id_type {
                crate::core::id::IdType::Int => format!("hashint8({id}::bigint)"),
                _ => format!("hashtext({id}::text)"),
            };
            let sql = format!(
                "SELECT {id}::{it} FROM {src} TABLESAMPLE BERNOULLI ($1) REPEATABLE (1) \
                 ORDER BY {hash}, {id} LIMIT $2"
            );
            let rows = client
                .query(&sql, &[&(percent as f32), &(*n as i64)])
                .await
                .map_err(|e| Error::db("drawing the sample", e))?;
            let mut ids: Vec<UserId> = rows.iter().map(|r| r.get(0)).collect();
            ids.sort_unstable();
            Some(ids)
        }
    };
    progress.total.store(
        ids.as_ref().map_or(table_users as u64, |i| i.len() as u64),
        Ordering::Relaxed,
    );
    // before `init` there is no flag (every user is legacy); once
    // finalized it may be gone (every user is migrated)
    let initialized = crate::pg::identity::initialized(&client).await?;
    if initialized && crate::pg::control::read(&client).await?.finalized {
        store.set_finalized(true);
    }
    // before `init`: no flag (every user legacy) and perhaps no tables
    let no_flag_yet =
        !store.is_finalized() && !crate::pg::identity::flag_exists(&client, &spec).await?;
    let names: Vec<String> = crate::pg::sql::target_tables(&spec).collect();
    let tables_exist: bool = client
        .query_one(
            "SELECT coalesce(bool_and(to_regclass(t) IS NOT NULL), true) FROM unnest($1::text[]) AS t",
            &[&names],
        )
        .await
        .map_err(|e| Error::db("looking for the target tables", e))?
        .get(0);
    let it = spec.source.id_type.sql();
    let (page_sql, page_first_sql, ids_sql) = if !tables_exist {
        (
            crate::pg::sql::snapshot_before_init(&spec, &format!("> $1::{it}"), true),
            crate::pg::sql::snapshot_before_init(
                &spec,
                &format!("IS NOT NULL AND $1::{it} IS NULL"),
                true,
            ),
            crate::pg::sql::snapshot_before_init(&spec, &format!("= ANY($1::{it}[])"), false),
        )
    } else if no_flag_yet {
        (
            crate::pg::sql::flag_as(&spec, &store.sql().page, "false"),
            crate::pg::sql::flag_as(&spec, &store.sql().page_first, "false"),
            crate::pg::sql::flag_as(&spec, &store.sql().census_ids, "false"),
        )
    } else {
        (
            store.sql().page.clone(),
            store.sql().page_first.clone(),
            store.sql().census_ids.clone(),
        )
    };
    // the first page, then each after the last id read
    let page_stmts = [
        client
            .prepare(&page_sql)
            .await
            .map_err(|e| Error::db("preparing the census read", e))?,
        client
            .prepare(&page_first_sql)
            .await
            .map_err(|e| Error::db("preparing the census read", e))?,
    ];
    let ids_stmt = client
        .prepare(&ids_sql)
        .await
        .map_err(|e| Error::db("preparing the census read", e))?;
    // without the tables no user can have rows in them
    let has_rows_sql = if tables_exist {
        store.sql().has_rows.clone()
    } else {
        format!("SELECT NULL::{it}, NULL::text WHERE false")
    };
    let has_rows_stmt = client
        .prepare(&has_rows_sql)
        .await
        .map_err(|e| Error::db("preparing the census read", e))?;

    // (decant's state is there once `init` ran)
    let fingerprint = spec.fingerprint();
    let stale_stmt = if initialized {
        Some(
            client
                .prepare(&format!(
                    "SELECT user_id FROM decant.user_state WHERE user_id = ANY($1::{it}[]) AND {}",
                    crate::pg::state::of_another_mapping(2)
                ))
                .await
                .map_err(|e| Error::db("preparing the census read", e))?,
        )
    } else {
        None
    };
    // the ids and stored sizes ahead of a page, to end it by bytes
    let sizes_sql = [
        crate::pg::sql::census_sizes(&spec, &format!("> $1::{it}"), true),
        crate::pg::sql::census_sizes(&spec, &format!("IS NOT NULL AND $1::{it} IS NULL"), true),
        crate::pg::sql::census_sizes(&spec, &format!("= ANY($1::{it}[])"), false),
    ];
    let mut sizes_stmts = Vec::with_capacity(sizes_sql.len());
    for sql in &sizes_sql {
        sizes_stmts.push(
            client
                .prepare(sql)
                .await
                .map_err(|e| Error::db("preparing the census read of blob sizes", e))?,
        );
    }

    let mut census = Census::new(&spec);
    let mut pending = FuturesOrdered::new();
    let mut found = 0usize;
    let mut pages = 0u64;
    let mut after: Option<UserId> = None;
    let count = opts.page.max(1);
    let mut chunks = ids.as_deref().map(|ids| ids.chunks(count));
    // the users of the chunk of ids in hand not read yet, with their sizes
    let mut sized: std::collections::VecDeque<(UserId, i64)> = Default::default();
    loop {
        let rows = match &mut chunks {
            None => {
                let first = usize::from(after.is_none());
                let sizes = client
                    .query(&sizes_stmts[first], &[&after, &(count as i64)])
                    .await
                    .map_err(|e| Error::db("reading the blob sizes of a page of users", e))?;
                let n = crate::core::fits(sizes.iter().map(|r| r.get(1)), opts.page_bytes);
                if n == 0 {
                    break;
                }
                let rows = client
                    .query(&page_stmts[first], &[&after, &(n as i64)])
                    .await
                    .map_err(|e| Error::db("reading a page of users", e))?;
                if rows.is_empty() {
                    break;
                }
                rows
            }
            Some(chunks) => {
                if sized.is_empty() {
                    let Some(chunk) = chunks.next() else { break };
                    sized = client
                        .query(&sizes_stmts[2], &[&chunk])
                        .await
                        .map_err(|e| Error::db("reading the blob sizes of users by id", e))?
                        .iter()
                        .map(|r| (r.get(0), r.get(1)))
                        .collect();
                    if sized.is_empty() {
                        continue;
                    }
                }
                let n = crate::core::fits(sized.iter().map(|(_, z)| *z), opts.page_bytes);
                let these: Vec<UserId> = sized.drain(..n).map(|(id, _)| id).collect();
                client
                    .query(&ids_stmt, &[&these])
                    .await
                    .map_err(|e| Error::db("reading users by id", e))?
            }
        };
        pages += 1;
        found += rows.len();
        let page: Vec<Snapshot> = rows.iter().map(|r| store.decode_snapshot(r)).collect();
        if let Some(last) = page.last() {
            after = Some(last.id.clone());
        }
        // legacy users with rows already there: the migration refuses them
        let legacy: Vec<&UserId> = page.iter().filter(|u| !u.migrated).map(|u| &u.id).collect();
        let has_rows: HashMap<UserId, String> = if legacy.is_empty() || !tables_exist {
            HashMap::new()
        } else {
            client
                .query(&has_rows_stmt, &[&legacy])
                .await
                .map_err(|e| Error::db("checking legacy users for rows already there", e))?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect()
        };
        // migrated users of the mapping before an evolution: not broken
        let migrated: Vec<&UserId> = page.iter().filter(|u| u.migrated).map(|u| &u.id).collect();
        let stale: std::collections::HashSet<UserId> = match &stale_stmt {
            Some(stmt) if !migrated.is_empty() => client
                .query(stmt, &[&migrated, &fingerprint])
                .await
                .map_err(|e| Error::db("reading which migrated users await an evolution", e))?
                .iter()
                .map(|r| r.get(0))
                .collect(),
            _ => Default::default(),
        };
        let spec = spec.clone();
        pending.push_back(tokio::task::spawn_blocking(move || {
            census_of(&spec, page, &has_rows, &stale)
        }));
        while pending.len() >= IN_FLIGHT {
            merge(&mut census, &mut pending, progress).await?;
        }
    }
    while !pending.is_empty() {
        merge(&mut census, &mut pending, progress).await?;
    }
    let missing_ids = match &ids {
        Some(ids) if found < ids.len() && matches!(opts.selection, Selection::Ids(_)) => {
            crate::pg::state::missing_users(&client, &spec, ids).await?
        }
        _ => Vec::new(),
    };
    let (held, at_attempt_limit) = if initialized && !no_flag_yet && !store.is_finalized() {
        crate::pg::state::left_out(&client, &spec, ids.as_deref()).await?
    } else {
        (0, 0)
    };
    // in the snapshot, under its timeouts
    let source_warnings = crate::pg::schema::source_warnings(&client, &spec).await?;
    // the snapshot only read: ending it either way is the same
    client
        .batch_execute("COMMIT")
        .await
        .map_err(|e| Error::db("ending the read-only snapshot", e))?;
    let report = census.report(&spec);
    let seconds = started.elapsed().as_secs_f64();
    Ok(Check {
        users_per_second: report.users as f64 / seconds.max(1e-9),
        census: report,
        missing_ids,
        source_warnings,
        held,
        at_attempt_limit,
        table_users: table_users as u64,
        seconds,
        pages,
    })
}

type Pending = FuturesOrdered<tokio::task::JoinHandle<(Census, u64)>>;

async fn merge(census: &mut Census, pending: &mut Pending, progress: &CheckProgress) -> Result<()> {
    if let Some(done) = pending.next().await {
        let (part, users) = done.map_err(|e| Error::Setup(format!("a census task failed: {e}")))?;
        census.merge(part);
        progress.done.fetch_add(users, Ordering::Relaxed);
    }
    Ok(())
}

/// The census of one page of users.
fn census_of(
    spec: &Spec,
    page: Vec<Snapshot>,
    has_rows: &HashMap<UserId, String>,
    stale: &std::collections::HashSet<UserId>,
) -> (Census, u64) {
    let mut c = Census::new(spec);
    for u in &page {
        if u.migrated && stale.contains(&u.id) {
            c.add_awaiting_evolution(&u.id, &u.rows);
        } else if u.migrated {
            match u.blob.value(&u.id, spec.settings.max_depth) {
                Ok(residual) => c.add_migrated(spec, &u.id, &u.rows, &residual),
                Err(e) => c.add_unreadable_migrated(&u.id, e.to_string()),
            }
        } else if let Some(table) = has_rows.get(&u.id) {
            c.add_has_rows(spec, &u.id, u.blob.text_len(), table);
        } else {
            match u.blob.parse(&u.id, spec.settings.max_depth) {
                Ok(blob) if !spec.fixups.is_empty() => {
                    let mut value = blob.to_value();
                    let applied = crate::core::fixup::Fixup::apply_all(&mut value, &spec.fixups);
                    c.add_fixups(&u.id, &applied);
                    c.add_legacy(spec, &u.id, &value, u.blob.text_len());
                }
                Ok(blob) => c.add_legacy(spec, &u.id, &blob, u.blob.text_len()),
                Err(e) => c.add_unreadable(spec, &u.id, u.blob.text_len(), e.to_string()),
            }
        }
    }
    (c, page.len() as u64)
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.census;
        let pct = |n: u64| crate::core::percent(n, c.legacy, 2);
        writeln!(
            f,
            "users          {} checked of {} in the table ({:.1} s, {:.0} users/s, {} page{}, one read-only snapshot)",
            c.users,
            self.table_users,
            self.seconds,
            self.users_per_second,
            self.pages,
            if self.pages == 1 { "" } else { "s" }
        )?;
        writeln!(f, "migrated       {}", c.migrated)?;
        writeln!(f, "legacy         {}", c.legacy)?;
        writeln!(
            f,
            "  would migrate cleanly        {} ({}%)",
            c.would_migrate_cleanly,
            pct(c.would_migrate_cleanly)
        )?;
        writeln!(
            f,
            "  would migrate with warnings  {} ({}%): invalid values kept in the residual under `keep`",
            c.would_migrate_with_warnings,
            pct(c.would_migrate_with_warnings)
        )?;
        writeln!(
            f,
            "  would fail                   {} ({}%)",
            c.would_fail,
            pct(c.would_fail)
        )?;
        if self.held > 0 {
            writeln!(
                f,
                "  held                         {} of the legacy users: rolled back, the daemon leaves them until `decant release`",
                self.held
            )?;
        }
        if self.at_attempt_limit > 0 {
            writeln!(
                f,
                "  of these, at the attempt limit {}: the daemon skips them until `decant release --failed`",
                self.at_attempt_limit
            )?;
        }
        let groups =
            |f: &mut std::fmt::Formatter<'_>, title: &str, gs: &[crate::core::census::Group]| {
                if gs.is_empty() {
                    return Ok(());
                }
                writeln!(f, "\n{title} (rule, path pattern, reason: users; examples)")?;
                for g in gs {
                    writeln!(
                        f,
                        "  {} at {}: {}: {} {}",
                        g.rule,
                        // the whole blob's pattern is empty
                        if g.pattern.is_empty() {
                            "$"
                        } else {
                            &g.pattern
                        },
                        g.reason,
                        g.users,
                        plural(g.users)
                    )?;
                    for e in &g.examples {
                        writeln!(f, "    user {} at {}: {}", e.id.shown(), e.path, e.value)?;
                    }
                }
                Ok(())
            };
        if !c.fixups.is_empty() {
            writeln!(
                f,
                "\nfixups (applied before explode): users changed; examples (path: value before)"
            )?;
            for e in &c.fixups {
                writeln!(f, "  {}: {} {}", e.fixup, e.users, plural(e.users))?;
                for x in &e.examples {
                    writeln!(f, "    user {} at {}: {}", x.id.shown(), x.path, x.value)?;
                }
            }
        }
        groups(f, "failures", &c.failures)?;
        groups(f, "warnings", &c.warnings)?;
        if let Some(b) = &c.migrated_not_rebuilding {
            groups(
                f,
                "migrated users whose rows no longer rebuild their blob",
                std::slice::from_ref(b),
            )?;
        }
        if let Some(b) = &c.migrated_awaiting_evolution {
            groups(
                f,
                "migrated users awaiting `decant run --evolve` (not a failure)",
                std::slice::from_ref(b),
            )?;
        }
        if !c.unclaimed.is_empty() {
            writeln!(
                f,
                "\nkeys no rule claims (they stay in the residual): users; examples"
            )?;
            for u in c.unclaimed.iter().take(50) {
                let ex: Vec<String> = u.examples.iter().map(UserId::shown).collect();
                writeln!(
                    f,
                    "  {}: {} {}; {}",
                    u.path,
                    u.users,
                    plural(u.users),
                    ex.join(", ")
                )?;
            }
            if c.unclaimed.len() > 50 {
                writeln!(
                    f,
                    "  ... {} more paths (--json lists them all)",
                    c.unclaimed.len() - 50
                )?;
            }
            if c.unclaimed_other_users > 0 {
                writeln!(
                    f,
                    "  and {} user-key pairs beyond the paths counted",
                    c.unclaimed_other_users
                )?;
            }
        }
        if !c.rules_matching_nothing.is_empty() {
            writeln!(
                f,
                "\nrules whose path no legacy blob checked holds (a typo in the path? they \
                 write no rows; the keys stay in the residual)"
            )?;
            for r in &c.rules_matching_nothing {
                writeln!(f, "  {}: {}", r.rule, r.path)?;
            }
        }
        if !c.types.is_empty() {
            writeln!(f, "\nvalue types per rule path")?;
            for t in &c.types {
                let ts: Vec<String> = t.types.iter().map(|(k, n)| format!("{k} {n}")).collect();
                writeln!(f, "  {} ({}): {}", t.path, t.rule, ts.join(", "))?;
            }
        }
        let dist =
            |f: &mut std::fmt::Formatter<'_>, name: &str, s: &crate::core::census::Summary| {
                writeln!(
                    f,
                    "{name} p50 {} / p90 {} / p99 {} / max {} (mean {:.0}, {})",
                    s.p50,
                    s.p90,
                    s.p99,
                    s.max,
                    s.mean,
                    crate::core::users(s.count)
                )
            };
        writeln!(f)?;
        dist(f, "blob bytes (legacy)  ", &c.blob_bytes)?;
        dist(f, "rows per user        ", &c.rows_per_user)?;
        writeln!(f, "\nrows per target table once these users are migrated")?;
        for (t, n) in &c.projected_rows {
            writeln!(f, "  {t}: {n}")?;
        }
        if !self.missing_ids.is_empty() {
            let ids: Vec<String> = self
                .missing_ids
                .iter()
                .take(20)
                .map(UserId::shown)
                .collect();
            writeln!(
                f,
                "\nids not in the table: {} ({})",
                self.missing_ids.len(),
                ids.join(", ")
            )?;
        }
        Ok(())
    }
}

/// "user" or "users" after a count.
fn plural(n: u64) -> &'static str {
    if n == 1 { "user" } else { "users" }
}
