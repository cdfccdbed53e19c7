//! One place for the SQL decant runs on the user's tables: generated once
//! per spec, identifiers validated and quoted, every value a bind parameter
//! (arrays through `unnest`, one statement per table for any number of
//! users). A snapshot test holds the text generated for the example game.
//! Statements on decant's own tables live with them (`state`, `control`);
//! the DDL in `schema`.

use crate::core::spec::{Spec, quote};

/// The daemon's database signals, one row: sessions waiting on locks the
/// daemon's sessions (`$2`) hold (when `$1`), the largest replica replay
/// lag, other active client sessions, and other client sessions working
/// in the last second: on the whole server (when `$3`; else only this
/// database's), never one asleep in `pg_sleep` nor another daemon's (see
/// [`DAEMON_SESSION`]), and the transactions committed or rolled back so
/// far (the same databases; the load yield's count).
pub(crate) const SIGNALS: &str = "SELECT
               (SELECT count(*) FROM pg_stat_activity a
                 WHERE $1::bool AND a.pid <> ALL ($2::int[])
                   AND pg_blocking_pids(a.pid) && $2::int[]),
               (SELECT coalesce(extract(epoch FROM max(replay_lag))::float8, 0) FROM pg_stat_replication),
               (SELECT count(*) FROM pg_stat_activity
                 WHERE state = 'active' AND backend_type = 'client backend'
                   AND pid <> pg_backend_pid() AND pid <> ALL ($2::int[])),
               (SELECT count(*) FROM pg_stat_activity a
                 WHERE a.backend_type = 'client backend'
                   AND ($3::bool OR a.datname = current_database())
                   AND a.pid <> pg_backend_pid() AND a.pid <> ALL ($2::int[])
                   AND (a.state = 'active' OR a.state_change > now() - interval '1 second')
                   AND a.wait_event IS DISTINCT FROM 'PgSleep'
                   AND NOT EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid
                         AND l.locktype = 'advisory' AND l.classid = 1684366177
                         AND l.objid = 1 AND l.objsubid = 2)),
               (SELECT coalesce(sum(xact_commit + xact_rollback), 0)::int8 FROM pg_stat_database
                 WHERE $3::bool OR datname = current_database())";

/// The sessions this session's role can still open in this database, and
/// which limit binds: the server's (`max_connections` less the reserved
/// ones, for a role that is not a superuser), the role's `CONNECTION
/// LIMIT`, the database's (neither binds a superuser).
pub(crate) const FREE_SESSIONS: &str = "SELECT free, what FROM (
      SELECT current_setting('max_connections')::int
               - CASE WHEN r.rolsuper THEN 0
                      ELSE current_setting('superuser_reserved_connections')::int END
               - (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend') AS server,
             CASE WHEN r.rolconnlimit < 0 OR r.rolsuper THEN NULL
                  ELSE r.rolconnlimit - (SELECT count(*) FROM pg_stat_activity WHERE usename = r.rolname) END AS role,
             CASE WHEN d.datconnlimit < 0 OR r.rolsuper THEN NULL
                  ELSE d.datconnlimit - (SELECT count(*) FROM pg_stat_activity WHERE datname = d.datname) END AS db
        FROM pg_roles r, pg_database d
       WHERE r.rolname = current_user AND d.datname = current_database()) AS l,
    LATERAL (VALUES (l.server, 'the server (max_connections)'),
                    (l.role, 'the role (its CONNECTION LIMIT)'),
                    (l.db, 'the database (its CONNECTION LIMIT)')) AS v(free, what)
   WHERE free IS NOT NULL ORDER BY free LIMIT 1";

/// A daemon's heartbeat: writes its row (`$1` id, `$2` host, `$3` pid, `$4`
/// job, `$5` workers, `$6` migrated, `$7` failed, `$8` its rate share,
/// `$9` why it holds back, `$10` and `$11` the windows it obeys and their
/// time zone, NULL for the control row's), removes rows silent for a
/// minute, and counts the other daemons that beat in the last 5 seconds.
/// One statement: a row a peer removed (silent for a minute, as through
/// an outage) comes back whole, windows included, at the next beat.
pub(crate) const HEARTBEAT: &str = "WITH me AS (
      INSERT INTO decant.daemon (id, host, pid, job, workers, migrated, failed, rate_share, holding,
                                      windows, tz)
      VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
      ON CONFLICT (id) DO UPDATE SET beat_at = now(), migrated = $6, failed = $7,
             rate_share = $8, holding = $9, windows = $10, tz = $11),
    gone AS (DELETE FROM decant.daemon WHERE beat_at < now() - interval '1 minute' AND id <> $1)
    SELECT count(*)
      FROM decant.daemon WHERE id <> $1 AND beat_at > now() - interval '5 seconds'";

/// [`HEARTBEAT`] for a `decant.daemon` made by an older decant, without
/// the `windows` and `tz` columns (status then projects with the control
/// row's windows).
pub(crate) const HEARTBEAT_WITHOUT_WINDOWS: &str = "WITH me AS (
      INSERT INTO decant.daemon (id, host, pid, job, workers, migrated, failed, rate_share, holding)
      VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
      ON CONFLICT (id) DO UPDATE SET beat_at = now(), migrated = $6, failed = $7,
             rate_share = $8, holding = $9),
    gone AS (DELETE FROM decant.daemon WHERE beat_at < now() - interval '1 minute' AND id <> $1)
    SELECT count(*)
      FROM decant.daemon WHERE id <> $1 AND beat_at > now() - interval '5 seconds'";

/// Whether a user (its flag and id columns as written) is to be migrated
/// on demand at a write: legacy, in the rollout, neither held (rolled
/// back) nor failed `max_attempts` times, and the migration neither
/// paused nor finalized. The Rust layer's lock and the SQL API's writes
/// test the same.
pub(crate) fn migrates_on_demand(flag: &str, id: &str, max_attempts: &str) -> String {
    format!(
        "coalesce(NOT {flag} AND decant.in_rollout({id}) \
           AND NOT EXISTS (SELECT 1 FROM decant.user_state st WHERE st.user_id = {id} \
                            AND (st.state = 'held' OR (st.state = 'failed' AND st.attempts >= {max_attempts}))) \
           AND NOT (SELECT c.finalized OR c.paused FROM decant.control AS c), false)"
    )
}

/// Marks a daemon's session (workers and monitor) with a shared session
/// advisory lock no one else takes, so that other daemons' throttles do
/// not count it as backend traffic, and returns its pid. Shared: it
/// never blocks anyone; it ends with the session. It also lifts the
/// server's `idle_session_timeout` (PostgreSQL 14 on) for the session: a
/// paced worker idles between batches (seconds at a low rate, hours
/// outside the windows), and a role's or database's limit below that
/// ended its session before every batch.
pub(crate) const DAEMON_SESSION: &str = "SELECT pg_backend_pid(), \
       (SELECT set_config('idle_session_timeout', '0', false) \
         WHERE current_setting('server_version_num')::int >= 140000) \
       FROM (SELECT pg_advisory_lock_shared(1684366177, 1)) AS mark";

/// The commit probe: a statement that takes a transaction id, so its
/// commit is flushed to the WAL like any backend write's.
pub(crate) const COMMIT_PROBE: &str = "SELECT txid_current()";

/// The spec's source table is not in the database.
pub(crate) fn no_source(spec: &Spec) -> crate::error::Error {
    crate::error::Error::Setup(format!(
        "source table {} does not exist; check [source] in the spec and the database you connect to",
        source_table(spec)
    ))
}

/// `"schema"."table"` of the source table.
pub(crate) fn source_table(spec: &Spec) -> String {
    format!(
        "{}.{}",
        quote(&spec.source.schema),
        quote(&spec.source.table)
    )
}

/// A SQL string literal of `s`, safe wherever decant writes one: inside
/// the dollar-quoted bodies of its functions and `DO` blocks too, and
/// whatever the session's `standard_conforming_strings`. A string with a
/// backslash, or with what could close a dollar quote (`$$`, `$tag$`), is
/// written as an escape string (`E'...'`) with every `$` as `\x24` and
/// every backslash doubled; any other as a plain literal.
pub(crate) fn lit(s: &str) -> String {
    if s.contains('\\') || closes_a_dollar_quote(s) {
        let mut out = String::with_capacity(s.len() + 8);
        out.push_str("E'");
        for c in s.chars() {
            match c {
                '\'' => out.push_str("''"),
                '\\' => out.push_str("\\\\"),
                '$' => out.push_str("\\x24"),
                c => out.push(c),
            }
        }
        out.push('\'');
        out
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

/// Whether `s` holds a dollar-quote delimiter (`$$`, `$tag$`): written
/// inside a dollar-quoted body it would end the body there.
fn closes_a_dollar_quote(s: &str) -> bool {
    let b = s.as_bytes();
    b.iter().enumerate().any(|(i, &c)| {
        c == b'$'
            && b[i + 1..]
                .iter()
                .position(|&d| !(d == b'_' || d.is_ascii_alphanumeric() || d >= 0x80))
                .is_some_and(|n| b[i + 1 + n] == b'$')
    })
}

/// A quoted name decant makes from spec identifiers (checked):
/// as it is when it fits PostgreSQL's 63 bytes, else see [`short_name`].
pub(crate) fn index_name(name: &str) -> String {
    quote(&short_name(name))
}

/// A name made from spec identifiers (checked) that fits
/// PostgreSQL's 63 bytes: itself when it fits, else its first 54 bytes and
/// a hash of the whole. PostgreSQL would cut a longer one to 63 bytes
/// with a mere NOTICE, and two names sharing those bytes (the functions of
/// two long table names) would become one object.
pub(crate) fn short_name(name: &str) -> String {
    if name.len() <= 63 {
        return name.to_string();
    }
    let hash = stable_hash(name.bytes());
    let cut = crate::core::spec::floor_char_boundary(name, 54);
    format!("{}_{hash:08x}", &name[..cut])
}

/// FNV-1a of `bytes`: the same on every build and platform, for names
/// that must not change between versions (decant's reader function, the
/// constraints it owns).
pub(crate) fn stable_hash(bytes: impl Iterator<Item = u8>) -> u32 {
    bytes.fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// `"schema"."table"` of a target table.
pub(crate) fn target_table(spec: &Spec, table: usize) -> String {
    spec.qualified_table(table)
}

/// Every target table's qualified name, in the spec's order.
pub(crate) fn target_tables(spec: &Spec) -> impl Iterator<Item = String> + '_ {
    (0..spec.tables.len()).map(|ti| target_table(spec, ti))
}

/// Every statement decant runs on the source and target tables, generated
/// once per spec.
#[derive(Debug)]
pub(crate) struct Sql {
    pub lock_wait: String,
    pub lock_skip: String,
    /// Claims the next legacy users after a cursor (daemon).
    pub claim: String,
    /// As `claim`, only users in the rollout.
    pub claim_rollout: String,
    /// `claim` and `claim_rollout` from the first user (`$1` is NULL).
    pub claim_first: String,
    pub claim_rollout_first: String,
    /// The four claims above without their locks, each user's row
    /// version (`xmin`) beside it: the daemon reads a batch with them,
    /// explodes and verifies it, then locks it with `relock`. At most `$4`
    /// users, cut before the one whose blob takes their stored size over
    /// `$5` bytes (the first is taken whatever its size); each blob's
    /// stored size beside it, and how many users there were before the
    /// cut.
    pub peek: String,
    pub peek_rollout: String,
    pub peek_first: String,
    pub peek_rollout_first: String,
    /// Locks (`SKIP LOCKED`) those of `$1` still claimable (`$2` max
    /// attempts, `$3` run start, `$4` rollout only), with their row
    /// versions: a user whose version is not the one peeked changed since.
    pub relock: String,
    /// Locks the shared pass row and reads the furthest user read.
    pub pass_read: String,
    /// Moves the shared pass on to `$1`.
    pub pass_move: String,
    /// Counts the legacy users a claim could still take.
    pub claimable: String,
    /// Users in the source table, and how many are migrated.
    pub user_counts: String,
    /// Whether a user exists (to tell "not found" from "nothing to do").
    pub exists: String,
    /// Blobs and flags of many users and, for the migrated ones, their
    /// rows: one statement, so one snapshot, no lock, no write. Per table,
    /// the row count then one array per column (in its wire form), all in
    /// the same row order.
    pub snapshot: String,
    /// Of the users `$1`, those with a row in some target table, and the
    /// first such table's name.
    pub has_rows: String,
    /// The census's read of the next page of users after `$1` (at most
    /// `$2`), in id order, each with its flag, blob and a migrated user's
    /// rows, as `snapshot` gives them.
    pub page: String,
    /// `page` from the first user (`$1` is NULL).
    pub page_first: String,
    /// `snapshot` with the tables joined in (not through the reader
    /// function): the census's read of listed users, which works on a
    /// database `init` has not reached yet.
    pub census_ids: String,
    /// The snapshot read of one user (`= $1`: its generic plan costs what
    /// a custom one does, so the session plans it once).
    pub snapshot_one: String,
    /// A migrated user's rows, as `snapshot_one` gives them, without the
    /// blob: sent right behind the lock of a backend write.
    pub rows_one: String,
    /// Locks one user for a backend call and says whether it is a legacy
    /// user in the rollout (to migrate on demand first).
    pub lock_call: String,
    /// Whether a user `lock_call` found to migrate on demand still is, in
    /// a statement of its own under the lock (`lock_call`'s test of the
    /// state and control rows keeps its snapshot from before a wait for
    /// the lock; this one sees what committed meanwhile: a rollback's
    /// `held`, a pause).
    pub on_demand_again: String,
    /// Writes one user's blob and flag: `$1` id, `$2` blob, `$3` flag.
    pub write_one: String,
    /// Writes many users' blobs and flags: arrays of ids, blobs, flags.
    pub write_blobs: String,
    /// Whether the target tables store exactly what is sent (see
    /// `tables_are_plain`), and its parameters: tables, columns, types.
    pub plain_check: String,
    pub plain_params: (Vec<String>, Vec<String>, Vec<String>),
    pub tables: Vec<TableSql>,
}

#[derive(Debug)]
pub(crate) struct TableSql {
    /// `COPY ... FROM STDIN (FORMAT binary)` of the user column and every
    /// spec column, for plain tables.
    pub copy: String,
    pub insert: String,
    pub insert_returning: String,
    pub upsert: String,
    pub select: String,
    pub delete_users: String,
    pub delete_keys: Option<String>,
}

/// `sql` with the source table's flag column read as `true`: the SQL of
/// the finalized phase, when every user is migrated and the flag may be
/// dropped.
pub(crate) fn without_flag(spec: &Spec, sql: &str) -> String {
    flag_as(spec, sql, "true")
}

/// `sql` with the source table's flag column read as `value` (`false`
/// before `init` adds it). Replaces `s."<flag>"` and a bare `"<flag>"`
/// (not a column of another table, `x."<flag>"`).
pub(crate) fn flag_as(spec: &Spec, sql: &str, value: &str) -> String {
    let flag = quote(&spec.source.flag);
    let qualified = format!("s.{flag}");
    let sql = sql.replace(&qualified, value);
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql.as_str();
    while let Some(i) = rest.find(&flag) {
        let (before, after) = rest.split_at(i);
        out.push_str(before);
        if before.ends_with('.') {
            out.push_str(&flag);
        } else {
            out.push_str(value);
        }
        rest = &after[flag.len()..];
    }
    out.push_str(rest);
    out
}

impl Sql {
    /// The statements of the finalized phase: the flag read as `true`, and
    /// a blob write that leaves the flag alone.
    pub fn finalized(spec: &Spec) -> Sql {
        let mut sql = Sql::new(spec);
        for s in [
            &mut sql.lock_wait,
            &mut sql.lock_skip,
            &mut sql.claim,
            &mut sql.claim_rollout,
            &mut sql.claim_first,
            &mut sql.claim_rollout_first,
            &mut sql.peek,
            &mut sql.peek_rollout,
            &mut sql.peek_first,
            &mut sql.peek_rollout_first,
            &mut sql.relock,
            &mut sql.page_first,
            &mut sql.claimable,
            &mut sql.user_counts,
            &mut sql.exists,
            &mut sql.snapshot,
            &mut sql.census_ids,
            &mut sql.has_rows,
            &mut sql.page,
            &mut sql.snapshot_one,
            &mut sql.rows_one,
            &mut sql.lock_call,
            &mut sql.on_demand_again,
        ] {
            *s = without_flag(spec, s);
        }
        let s = &spec.source;
        let it = s.id_type.sql();
        sql.write_one = format!(
            "UPDATE {} SET {} = $2::jsonb WHERE {} = $1::{it} AND $3::boolean",
            source_table(spec),
            quote(&s.blob),
            quote(&s.id)
        );
        sql.write_blobs = format!(
            "UPDATE {} AS s SET {blob} = CASE WHEN v.sql_null THEN NULL ELSE v.blob END \
             FROM unnest($1::{it}[], $2::jsonb[], $3::bool[], $4::bool[]) \
               AS v(id, blob, migrated, sql_null) \
             WHERE s.{id} = v.id AND v.migrated RETURNING s.{id}",
            source_table(spec),
            id = quote(&s.id),
            blob = quote(&s.blob)
        );
        sql
    }

    pub fn new(spec: &Spec) -> Sql {
        let s = &spec.source;
        let src = source_table(spec);
        let (id, blob, flag) = (quote(&s.id), quote(&s.blob), quote(&s.flag));
        let it = s.id_type.sql();
        let lock = format!(
            "SELECT {id}::{it}, {blob}, {flag} FROM {src} WHERE {id} = ANY($1::{it}[]) \
             ORDER BY {id} FOR NO KEY UPDATE"
        );
        let tables = (0..spec.tables.len())
            .map(|ti| table_sql(spec, ti))
            .collect();
        // (lock_call: without a control row, no on-demand migration)
        // Legacy users not held (rolled back), not failed too often nor
        // already failed in this run
        // ($2 = max attempts, $3 = run start), from the partial index. The
        // state rows are bounded by the cursor too: without it the anti
        // join reads every state row behind the cursor (all the users
        // migrated so far) on every claim, 30 ms per claim at 150,000.
        // a state row that keeps its user out of a claim: held (rolled
        // back), failed too often, or failed already in this run; shared by
        // the claim, the peek and the relock so that they cannot drift apart
        let kept_out = "(st.state = 'held' \
             OR (st.state = 'failed' AND (st.attempts >= $2 OR st.updated_at >= $3)))";
        let claimable_where = |first: bool| {
            format!(
                "NOT s.{flag} AND {} AND NOT EXISTS (SELECT 1 FROM decant.user_state st \
                   WHERE st.user_id = s.{id} AND {} AND {kept_out})",
                after(spec, &format!("s.{id}"), 1, first),
                after(spec, "st.user_id", 1, first),
            )
        };
        let order = in_order(spec, &format!("s.{id}"));
        let claim = |extra: &str, first: bool| {
            format!(
                "SELECT s.{id}::{it}, s.{blob}, s.{flag} FROM {src} AS s WHERE {}{extra} \
                 ORDER BY {order} LIMIT $4 FOR NO KEY UPDATE OF s SKIP LOCKED",
                claimable_where(first)
            )
        };
        // The peek stops before the user whose blob would take the batch's
        // stored bytes (`pg_column_size`: compressed or not, read from the
        // row or its TOAST pointer without fetching the value) over `$5`,
        // and takes the first user whatever its size: a run of very large
        // blobs comes a few at a time, not `$4` of them at once.
        let peek = |extra: &str, first: bool| {
            format!(
                "SELECT p.i, p.b, p.f, p.v, p.z, p.m FROM (\
                 SELECT q.i, q.b, q.f, q.v, q.z, sum(q.z) OVER w AS upto, row_number() OVER w AS n, count(*) OVER () AS m FROM (\
                 SELECT s.{id}::{it} AS i, s.{blob} AS b, s.{flag} AS f, s.xmin::text AS v, \
                 coalesce(pg_column_size(s.{blob}), 0) AS z FROM {src} AS s WHERE {}{extra} \
                 ORDER BY {order} LIMIT $4) AS q WINDOW w AS (ORDER BY {qorder} ROWS UNBOUNDED PRECEDING)) AS p \
                 WHERE p.n = 1 OR p.upto <= $5::bigint ORDER BY {porder}",
                claimable_where(first),
                qorder = in_order(spec, "q.i"),
                porder = in_order(spec, "p.i"),
            )
        };
        let rollout = format!(" AND decant.in_rollout(s.{id})");
        let mut plain_params = (Vec::new(), Vec::new(), Vec::new());
        for (ti, t) in spec.tables.iter().enumerate() {
            let name = target_table(spec, ti);
            let cols = std::iter::once((t.user_column.as_str(), it))
                .chain(t.columns.iter().map(|c| (c.name.as_str(), c.ty.sql())));
            for (col, ty) in cols {
                plain_params.0.push(name.clone());
                plain_params.1.push(col.to_string());
                plain_params.2.push(ty.to_string());
            }
        }
        Sql {
            // the tables' names resolved once (`r`), and each column found
            // by the (relation, name) index: a join over the whole of
            // pg_attribute cost 2-4 ms a batch, inside the lock
            plain_check: "SELECT NOT EXISTS (SELECT 1 FROM pg_trigger \
                   WHERE tgrelid = ANY (r.o) AND NOT tgisinternal) \
               AND NOT EXISTS (SELECT 1 FROM pg_rewrite WHERE ev_class = ANY (r.o)) \
               AND NOT EXISTS (SELECT 1 FROM pg_class WHERE oid = ANY (r.o) AND relkind <> 'r') \
               AND coalesce((SELECT bool_and(coalesce(e.ty = \
                     (SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
                       WHERE a.attrelid = e.t AND a.attname = e.col AND NOT a.attisdropped), false)) \
                   FROM unnest(r.o, $2::text[], $3::text[]) AS e(t, col, ty)), true) \
               FROM (SELECT $1::text[]::regclass[]::oid[] AS o) AS r"
                .into(),
            plain_params,
            user_counts: format!("SELECT count(*), count(*) FILTER (WHERE {flag}) FROM {src}"),
            exists: format!("SELECT EXISTS (SELECT 1 FROM {src} WHERE {id} = $1::{it})"),
            snapshot: snapshot_gated(spec, &format!("= ANY($1::{it}[])"), true),
            census_ids: snapshot(spec, &format!("= ANY($1::{it}[])"), true),
            snapshot_one: snapshot_gated(spec, &format!("= $1::{it}"), true),
            has_rows: has_rows(spec),
            page: format!(
                "{} LIMIT $2",
                snapshot(spec, &format!("> $1::{it}"), true)
            ),
            page_first: format!(
                "{} LIMIT $2",
                snapshot(spec, &format!("IS NOT NULL AND $1::{it} IS NULL"), true)
            ),
            rows_one: snapshot_gated(spec, &format!("= $1::{it}"), false),
            claim: claim("", false),
            claim_rollout: claim(&rollout, false),
            claim_first: claim("", true),
            claim_rollout_first: claim(&rollout, true),
            peek: peek("", false),
            peek_rollout: peek(&rollout, false),
            peek_first: peek("", true),
            peek_rollout_first: peek(&rollout, true),
            pass_read: format!("SELECT furthest::{it} FROM decant.pass FOR UPDATE"),
            pass_move: format!("UPDATE decant.pass SET furthest = $1::{it}"),
            relock: format!(
                "SELECT s.{id}::{it}, s.xmin::text FROM {src} AS s \
                 WHERE s.{id} = ANY($1::{it}[]) AND NOT s.{flag} \
                   AND NOT EXISTS (SELECT 1 FROM decant.user_state st WHERE st.user_id = s.{id} \
                     AND {kept_out}) \
                   AND ($4 = false OR decant.in_rollout(s.{id})) \
                 FOR NO KEY UPDATE OF s SKIP LOCKED"
            ),
            claimable: format!(
                "SELECT count(*) FROM {src} AS s WHERE {} \
                 AND ($4 = false OR decant.in_rollout(s.{id}))",
                claimable_where(true)
            ),
            lock_call: format!(
                "SELECT {id}::{it}, {blob}, {flag}, {} \
                 FROM {src} WHERE {id} = $1::{it} FOR NO KEY UPDATE",
                migrates_on_demand(&flag, &id, "$2")
            ),
            on_demand_again: format!(
                "SELECT {} FROM {src} WHERE {id} = $1::{it}",
                migrates_on_demand(&flag, &id, "$2")
            ),
            lock_skip: format!("{lock} SKIP LOCKED"),
            lock_wait: lock,
            write_one: format!(
                "UPDATE {src} SET {blob} = $2::jsonb, {flag} = $3::boolean WHERE {id} = $1::{it}"
            ),
            // a blob that was SQL NULL (read as a JSON null) is written
            // back as SQL NULL, where the column (still) allows it
            write_blobs: format!(
                "UPDATE {src} AS s SET {blob} = CASE WHEN v.sql_null \
                   AND (SELECT NOT a.attnotnull FROM pg_attribute AS a \
                        WHERE a.attrelid = {src_lit}::regclass AND a.attname = {raw_blob}) \
                   THEN NULL ELSE v.blob END, {flag} = v.migrated \
                 FROM unnest($1::{it}[], $2::jsonb[], $3::bool[], $4::bool[]) \
                   AS v(id, blob, migrated, sql_null) \
                 WHERE s.{id} = v.id RETURNING s.{id}",
                src_lit = lit(&src),
                raw_blob = lit(&spec.source.blob),
            ),
            tables,
        }
    }
}

/// The cursor condition of a claim or page on the id `col` (qualified):
/// after `$n`, in the order of [`in_order`]; for the first claim of a pass
/// (`first`, `$n` NULL) a one-time filter, so that no id is too small to
/// be claimed and no plan ranges over an unknown bound.
pub(crate) fn after(spec: &Spec, col: &str, n: usize, first: bool) -> String {
    let it = spec.source.id_type.sql();
    if first {
        format!("${n}::{it} IS NULL")
    } else {
        format!("{} > ${n}::{it}", in_order(spec, col))
    }
}

/// The id `col` in the order claims walk: text ids byte by byte (`COLLATE
/// "C"`, the order the daemon's cursor compares in and the legacy index
/// is built in), others as their type orders them.
pub(crate) fn in_order(spec: &Spec, col: &str) -> String {
    match spec.source.id_type {
        crate::core::id::IdType::Text => format!("{col} COLLATE \"C\""),
        _ => col.to_string(),
    }
}

/// The census's reads before `init` (no flag, no target tables): the
/// shape of `snapshot` with every user legacy and no rows. `ids` as in
/// `snapshot`.
pub(crate) fn snapshot_before_init(spec: &Spec, ids: &str, limit: bool) -> String {
    let s = &spec.source;
    let (id, blob, it) = (quote(&s.id), quote(&s.blob), s.id_type.sql());
    let mut cols = vec![format!("s.{id}::{it}, s.{blob}, false")];
    for t in &spec.tables {
        cols.push("0::bigint".into());
        for c in &t.columns {
            cols.push(format!("NULL::{}[]", c.ty.wire()));
        }
    }
    format!(
        "SELECT {} FROM {} AS s WHERE s.{id} {ids} ORDER BY s.{id}{}",
        cols.join(", "),
        source_table(spec),
        if limit { " LIMIT $2" } else { "" }
    )
}

/// The census's read of the ids and blobs' stored sizes of the users
/// `ids` selects (as in `snapshot`), in the order its pages read them;
/// `limit`: at most `$2`. `pg_column_size` measures a TOASTed blob by its
/// pointer without fetching it.
pub(crate) fn census_sizes(spec: &Spec, ids: &str, limit: bool) -> String {
    let s = &spec.source;
    let (id, blob, it) = (quote(&s.id), quote(&s.blob), s.id_type.sql());
    format!(
        "SELECT s.{id}::{it}, coalesce(pg_column_size(s.{blob}), 0)::int8 FROM {} AS s \
         WHERE s.{id} {ids} ORDER BY s.{id}{}",
        source_table(spec),
        if limit { " LIMIT $2" } else { "" }
    )
}

/// Whether target table `ti` holds rows of the user `id` (an SQL
/// expression) names: an `EXISTS` on the table's user column.
pub(crate) fn has_rows_in(spec: &Spec, ti: usize, id: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM {} AS x WHERE x.{} = {id})",
        target_table(spec, ti),
        quote(&spec.tables[ti].user_column)
    )
}

fn has_rows(spec: &Spec) -> String {
    let it = spec.source.id_type.sql();
    let probes: Vec<String> = spec
        .tables
        .iter()
        .enumerate()
        .map(|(ti, t)| {
            format!(
                "SELECT '{}'::text AS name WHERE {}",
                t.name.replace('\'', "''"),
                has_rows_in(spec, ti, "u.id")
            )
        })
        .collect();
    if probes.is_empty() {
        return format!("SELECT NULL::{it}, NULL::text WHERE false");
    }
    format!(
        "SELECT u.id, t.name FROM unnest($1::{it}[]) AS u(id) \
         CROSS JOIN LATERAL ({} LIMIT 1) AS t",
        probes.join(" UNION ALL ")
    )
}

/// The per-call read of one user: its flag, its blob (unless `with_blob`
/// is false) and, for a migrated user only, its rows from the
/// [`reader`] function, in the columns `snapshot` gives. The target tables
/// are not in this statement's plan: a legacy user's load opens, locks and
/// scans only the source table (with the tables joined in, gated off by
/// the flag, the plan still opened and locked all of them: 0.05 ms of the
/// server's 0.17 ms for a legacy load). `OFFSET 0` keeps the flag a
/// one-time filter in front of the call instead of a join filter behind
/// it.
fn snapshot_gated(spec: &Spec, ids: &str, with_blob: bool) -> String {
    let Some((reader, _)) = reader(spec) else {
        return snapshot(spec, ids, with_blob);
    };
    let s = &spec.source;
    let (id, blob, flag) = (quote(&s.id), quote(&s.blob), quote(&s.flag));
    let it = s.id_type.sql();
    let blob = if with_blob {
        format!("s.{blob}")
    } else {
        "NULL::jsonb".to_string()
    };
    let mut cols = vec![format!("s.{id}::{it}, {blob}, s.{flag}")];
    for (ti, t) in spec.tables.iter().enumerate() {
        cols.push(format!("coalesce(r.t{ti}_n, 0)"));
        cols.extend((0..t.columns.len()).map(|ci| format!("r.t{ti}_a{ci}")));
    }
    format!(
        "SELECT {} FROM {} AS s LEFT JOIN LATERAL \
         (SELECT * FROM {reader}(s.{id}::{it}) WHERE s.{flag} OFFSET 0) AS r ON true \
         WHERE s.{id} {ids} ORDER BY s.{id}",
        cols.join(", "),
        source_table(spec),
    )
}

/// The form of the residual this decant writes, in the reader's name
/// (see [`reader`]): changed when the explode changes what it leaves.
/// 2: an array rule's refused elements stay at their positions, the
/// claimed ones standing as empty objects.
const RESIDUAL_FORM: &str = "2";

/// The function reading one user's rows from every target table (per
/// table the row count, then one array per column in its wire form), and
/// the statement creating it; `None` for a spec without tables. Its name
/// carries a hash of its result columns, so a spec that adds tables
/// (`init --evolve`) creates a new function instead of failing to change
/// the old one's result type. PL/pgSQL: its queries are planned when it
/// is first called, never for a legacy user, and their plans are kept for
/// the session.
pub(crate) fn reader(spec: &Spec) -> Option<(String, String)> {
    if spec.tables.is_empty() {
        return None;
    }
    let mut out_cols = Vec::new();
    let mut cols = Vec::new();
    let mut joins = Vec::new();
    for (ti, t) in spec.tables.iter().enumerate() {
        out_cols.push(format!("t{ti}_n bigint"));
        cols.push(format!("t{ti}.n"));
        let mut aggs = vec!["count(*) AS n".to_string()];
        for (ci, c) in t.columns.iter().enumerate() {
            out_cols.push(format!("t{ti}_a{ci} {}[]", c.ty.wire()));
            cols.push(format!("t{ti}.a{ci}"));
            aggs.push(format!(
                "array_agg({}) AS a{ci}",
                c.ty.column_to_wire(&format!("x.{}", quote(&c.name)))
            ));
        }
        joins.push(format!(
            "(SELECT {} FROM {} AS x WHERE x.{} = $1) AS t{ti}",
            aggs.join(", "),
            target_table(spec, ti),
            quote(&t.user_column)
        ));
    }
    let out_cols = out_cols.join(", ");
    let joins = joins.join(" CROSS JOIN ");
    // the mapping's fingerprint too: `init` with another mapping makes a
    // new function and drops the old (see `drop_readers_but`), so a handle
    // still running with the old spec fails instead of misreading users
    // and the residual's form: a decant that explodes differently gets a
    // reader of its own, so that its library asks for `init` (which brings
    // the SQL API and the views to the same form) instead of reading
    // residuals the installed SQL functions would not rebuild
    let hash = stable_hash(
        out_cols
            .bytes()
            .chain(joins.bytes())
            .chain(spec.fingerprint().bytes())
            .chain(RESIDUAL_FORM.bytes()),
    );
    let name = format!(
        "decant.{}",
        index_name(&format!("rows_{hash:08x}_{}", spec.source.table))
    );
    let ddl = format!(
        "CREATE OR REPLACE FUNCTION {name}({}) RETURNS TABLE ({out_cols})\n    \
         LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp STABLE AS\n$$\n\
         #variable_conflict use_column\n\
         BEGIN\n    RETURN QUERY SELECT {} FROM {joins};\nEND\n$$",
        spec.source.id_type.sql(),
        cols.join(", ")
    );
    Some((name, ddl))
}

/// The statement dropping every reader function (see [`reader`]) but
/// `keep` (its signature, `decant."rows_..."(bigint)`, resolved by the
/// server as it resolves any name, quotes and all), when the mapping recorded before is not
/// `fingerprint`'s (run before `init` records its own): a handle of the
/// old mapping then fails instead of misreading users. With the same
/// mapping recorded (`init` run again, or by a newer decant whose reader
/// has another name) the others stay: backends still running the older
/// library read through theirs while they are upgraded.
pub(crate) fn drop_readers_but(keep: &str, fingerprint: &str) -> String {
    format!(
        "DO $decant$\nDECLARE f regprocedure; recorded text;\nBEGIN\n    \
         IF to_regclass('decant.control') IS NOT NULL THEN\n        \
         SELECT c.spec_fingerprint INTO recorded FROM decant.control AS c LIMIT 1;\n    \
         END IF;\n    \
         IF recorded IS NOT DISTINCT FROM '{}' THEN\n        RETURN;\n    END IF;\n    \
         FOR f IN SELECT p.oid::regprocedure FROM pg_proc AS p \
         WHERE p.pronamespace = 'decant'::regnamespace AND p.proname ~ '^rows_[0-9a-f]{{8}}_' \
         AND p.oid IS DISTINCT FROM to_regprocedure({}) LOOP\n        \
         EXECUTE format('DROP FUNCTION %s', f);\n    \
         END LOOP;\nEND\n$decant$",
        fingerprint.replace('\'', "''"),
        lit(keep)
    )
}

fn snapshot(spec: &Spec, ids: &str, with_blob: bool) -> String {
    let s = &spec.source;
    let (id, blob, flag) = (quote(&s.id), quote(&s.blob), quote(&s.flag));
    let it = s.id_type.sql();
    let blob = if with_blob {
        format!("s.{blob}")
    } else {
        "NULL::jsonb".to_string()
    };
    let mut cols = vec![format!("s.{id}::{it}, {blob}, s.{flag}")];
    let mut joins = Vec::new();
    for (ti, t) in spec.tables.iter().enumerate() {
        let mut aggs = vec![format!("count(*) AS n")];
        cols.push(format!("t{ti}.n"));
        for (ci, c) in t.columns.iter().enumerate() {
            aggs.push(format!(
                "array_agg({}) AS a{ci}",
                c.ty.column_to_wire(&format!("x.{}", quote(&c.name)))
            ));
            cols.push(format!("t{ti}.a{ci}"));
        }
        joins.push(format!(
            "CROSS JOIN LATERAL (SELECT {} FROM {} AS x WHERE s.{flag} AND x.{} = s.{id}) AS t{ti}",
            aggs.join(", "),
            target_table(spec, ti),
            quote(&t.user_column)
        ));
    }
    format!(
        "SELECT {} FROM {} AS s {} WHERE s.{id} {ids} ORDER BY s.{id}",
        cols.join(", "),
        source_table(spec),
        joins.join(" ")
    )
}

fn table_sql(spec: &Spec, ti: usize) -> TableSql {
    let t = &spec.tables[ti];
    let name = target_table(spec, ti);
    let user = quote(&t.user_column);
    let it = spec.source.id_type.sql();
    let cols: Vec<String> = t.columns.iter().map(|c| quote(&c.name)).collect();
    let all_cols = std::iter::once(user.clone())
        .chain(cols.iter().cloned())
        .collect::<Vec<_>>()
        .join(", ");
    let params: Vec<String> = t
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| format!("${}::{}[]", i + 2, c.ty.wire()))
        .collect();
    let aliases: Vec<String> = (0..t.columns.len()).map(|i| format!("c{i}")).collect();
    let converted: Vec<String> = t
        .columns
        .iter()
        .zip(&aliases)
        .map(|(c, a)| c.ty.wire_to_column(a))
        .collect();
    let insert = format!(
        "INSERT INTO {name} ({all_cols}) SELECT u, {} FROM unnest($1::{it}[], {}) AS v(u, {})",
        converted.join(", "),
        params.join(", "),
        aliases.join(", ")
    );
    let key_cols: Vec<String> = std::iter::once(user.clone())
        .chain(t.key.iter().map(|&ci| quote(&t.columns[ci].name)))
        .collect();
    let non_key: Vec<String> = (0..t.columns.len())
        .filter(|ci| !t.key.contains(ci))
        .map(|ci| format!("{0} = EXCLUDED.{0}", quote(&t.columns[ci].name)))
        .collect();
    let upsert = format!(
        "{insert} ON CONFLICT ({}) DO {}",
        key_cols.join(", "),
        if non_key.is_empty() {
            "NOTHING".to_string()
        } else {
            format!("UPDATE SET {}", non_key.join(", "))
        }
    );
    let projection = t
        .columns
        .iter()
        .map(|c| c.ty.column_to_wire(&quote(&c.name)))
        .collect::<Vec<_>>()
        .join(", ");
    let select = format!("SELECT {user}, {projection} FROM {name} WHERE {user} = ANY($1::{it}[])");
    // what the database stored, as it stored it (after any trigger or
    // conversion): the migration verifies these
    let insert_returning = format!("{insert} RETURNING {user}, {projection}");
    let delete_keys = (!t.key.is_empty()).then(|| {
        let keys: Vec<String> = t.key.iter().map(|&ci| quote(&t.columns[ci].name)).collect();
        let wire: Vec<String> = t
            .key
            .iter()
            .enumerate()
            .map(|(i, &ci)| format!("${}::{}[]", i + 2, t.columns[ci].ty.wire()))
            .collect();
        let conv: Vec<String> = t
            .key
            .iter()
            .enumerate()
            .map(|(i, &ci)| t.columns[ci].ty.wire_to_column(&format!("k{i}")))
            .collect();
        let ks: Vec<String> = (0..t.key.len()).map(|i| format!("k{i}")).collect();
        format!(
            "DELETE FROM {name} WHERE {user} = $1 AND ({}) IN (SELECT {} FROM unnest({}) AS v({}))",
            keys.join(", "),
            conv.join(", "),
            wire.join(", "),
            ks.join(", ")
        )
    });
    TableSql {
        copy: format!("COPY {name} ({all_cols}) FROM STDIN (FORMAT binary)"),
        insert: insert.clone(),
        insert_returning,
        upsert,
        select,
        delete_users: format!("DELETE FROM {name} WHERE {user} = ANY($1::{it}[])"),
        delete_keys,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn game() -> Spec {
        Spec::parse(include_str!("../../fixtures/game/decant.toml")).unwrap()
    }

    /// The claim's anti join on the state table starts at the cursor: an
    /// unbounded one reads every state row behind it on every claim, which
    /// made a 200,000-user run a quarter slower (BENCHMARKS.md).
    #[test]
    fn the_claim_bounds_the_state_rows_by_the_cursor() {
        let store = Sql::new(&game());
        for sql in [
            &store.claim,
            &store.claim_rollout,
            &store.peek,
            &store.peek_rollout,
        ] {
            assert!(sql.contains("s.\"id\" > $1"), "{sql}");
            assert!(sql.contains("st.user_id > $1"), "{sql}");
        }
        // from the first user: no bound at all, so no id is too small
        for sql in [
            &store.claim_first,
            &store.claim_rollout_first,
            &store.peek_first,
            &store.peek_rollout_first,
            &store.claimable,
        ] {
            assert!(!sql.contains("> $1"), "{sql}");
            assert!(sql.contains("$1::bigint IS NULL"), "{sql}");
        }
    }

    /// Ids of another kind: every id is bound, returned and stored in
    /// the kind's type, and text ids walk in byte order.
    #[test]
    fn ids_of_every_kind_are_bound_in_their_type() {
        let base = include_str!("../../fixtures/game/decant.toml");
        for (kind, it) in [("uuid", "uuid"), ("text", "text"), ("integer", "bigint")] {
            let text = base.replacen(
                "[source]\n",
                &format!("[source]\nid_type = \"{kind}\"\n"),
                1,
            );
            let spec = Spec::parse(&text).unwrap();
            let sql = Sql::new(&spec);
            let all = render(&spec) + &crate::pg::schema::statements(&spec).join("\n");
            let other = if it == "bigint" { "uuid" } else { "bigint" };
            assert!(!all.contains(&format!("$1::{other}")), "{kind}: {all}");
            assert!(sql.claim.contains(&format!("$1::{it}")), "{}", sql.claim);
            assert!(
                sql.lock_call.contains(&format!("= $1::{it} FOR")),
                "{}",
                sql.lock_call
            );
            assert!(
                all.contains(&format!("user_id     {it} PRIMARY KEY")),
                "{kind}"
            );
            assert!(all.contains(&format!("decant.load({it})")), "{kind}");
            let c_order = sql.claim.contains("ORDER BY s.\"id\" COLLATE \"C\"");
            assert_eq!(c_order, kind == "text", "{}", sql.claim);
        }
    }

    fn put(out: &mut String, label: &str, text: &str) {
        out.push_str(&format!("-- {label}\n{text};\n\n"));
    }

    /// Every statement generated for the example game, labelled, in a
    /// stable order: what the snapshot holds.
    fn render(spec: &Spec) -> String {
        let sql = Sql::new(spec);
        let mut out = String::new();
        for (label, text) in [
            ("lock_wait", &sql.lock_wait),
            ("lock_skip", &sql.lock_skip),
            ("claim", &sql.claim),
            ("claim_rollout", &sql.claim_rollout),
            ("claim_first", &sql.claim_first),
            ("claim_rollout_first", &sql.claim_rollout_first),
            ("peek", &sql.peek),
            ("peek_rollout", &sql.peek_rollout),
            ("peek_first", &sql.peek_first),
            ("peek_rollout_first", &sql.peek_rollout_first),
            ("relock", &sql.relock),
            ("pass_read", &sql.pass_read),
            ("pass_move", &sql.pass_move),
            ("claimable", &sql.claimable),
            ("user_counts", &sql.user_counts),
            ("exists", &sql.exists),
            ("snapshot", &sql.snapshot),
            ("census_ids", &sql.census_ids),
            ("snapshot_one", &sql.snapshot_one),
            ("page", &sql.page),
            ("page_first", &sql.page_first),
            ("has_rows", &sql.has_rows),
            ("rows_one", &sql.rows_one),
            ("lock_call", &sql.lock_call),
            ("on_demand_again", &sql.on_demand_again),
            ("write_one", &sql.write_one),
            ("write_blobs", &sql.write_blobs),
            ("plain_check", &sql.plain_check),
        ] {
            put(&mut out, label, text);
        }
        let (tables, columns, types) = &sql.plain_params;
        for ((t, c), ty) in tables.iter().zip(columns).zip(types) {
            out.push_str(&format!("-- plain_params: {t} {c} {ty}\n"));
        }
        out.push('\n');
        for (ti, t) in sql.tables.iter().enumerate() {
            let name = &spec.tables[ti].name;
            for (label, text) in [
                ("copy", Some(&t.copy)),
                ("insert", Some(&t.insert)),
                ("insert_returning", Some(&t.insert_returning)),
                ("upsert", Some(&t.upsert)),
                ("select", Some(&t.select)),
                ("delete_users", Some(&t.delete_users)),
                ("delete_keys", t.delete_keys.as_ref()),
            ] {
                if let Some(text) = text {
                    put(&mut out, &format!("{name}.{label}"), text);
                }
            }
        }
        put(&mut out, "signals", SIGNALS);
        put(&mut out, "commit_probe", COMMIT_PROBE);
        for (i, stmt) in crate::pg::schema::statements(spec).iter().enumerate() {
            put(&mut out, &format!("init statement {i}"), stmt);
        }
        out
    }

    /// The SQL decant generates for the example game, held against
    /// `tests/snapshots/game.sql`: any change to a statement shows up in
    /// review. After an intended change, rewrite the file with
    /// `DECANT_BLESS=1 cargo test --lib generated_sql`.
    #[test]
    fn the_generated_sql_matches_its_snapshot() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/game.sql");
        let now = render(&game());
        if std::env::var_os("DECANT_BLESS").is_some_and(|v| !v.is_empty()) {
            std::fs::write(&path, &now).unwrap();
        }
        let held = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run with DECANT_BLESS=1 to write it",
                path.display()
            )
        });
        if held != now {
            let line = held
                .lines()
                .zip(now.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(held.lines().count().min(now.lines().count()));
            panic!(
                "the generated SQL differs from {} at line {}:\n  held: {}\n  now:  {}\n\
                 if the change is intended, run DECANT_BLESS=1 cargo test --lib generated_sql",
                path.display(),
                line + 1,
                held.lines().nth(line).unwrap_or("(end)"),
                now.lines().nth(line).unwrap_or("(end)")
            );
        }
    }

    #[test]
    fn a_literal_never_closes_a_dollar_quote_nor_leans_on_the_string_setting() {
        // plain where nothing can go wrong (patterns keep their `$` anchor)
        assert_eq!(lit("it's"), "'it''s'");
        assert_eq!(lit("^[a-z]+$"), "'^[a-z]+$'");
        assert_eq!(lit("$5 off"), "'$5 off'");
        // what would end `$$ ... $$` or `$decant$ ... $decant$`
        assert_eq!(lit("pr$$ice"), "E'pr\\x24\\x24ice'");
        assert_eq!(lit("x$decant$y'"), "E'x\\x24decant\\x24y'''");
        assert_eq!(lit("a$é$"), "E'a\\x24é\\x24'");
        // a backslash, which standard_conforming_strings = off would read
        // as an escape of the closing quote
        assert_eq!(lit("a\\"), "E'a\\\\'");
        for s in ["$$", "$a$", "'$$'", "\\'", "$x_1$ $$ \\$"] {
            let l = lit(s);
            assert!(!l.contains("$$") && !closes_a_dollar_quote(&l), "{s}: {l}");
        }
    }

    /// Names made from a multibyte source name are cut between letters,
    /// never inside one (slicing inside a letter would panic), and stay
    /// distinct.
    #[test]
    fn names_past_63_bytes_are_cut_between_letters() {
        for pad in 0..4 {
            let long = format!("{}{}", "x".repeat(pad), "é".repeat(40));
            let short = short_name(&long);
            assert!(short.len() <= 63 && short.len() >= 61, "{short}");
            assert!(long.starts_with(&short[..short.len() - 9]), "{short}");
            let other = short_name(&format!("{long}é"));
            assert_ne!(short, other);
            let cut = crate::core::spec::cut_name(&long);
            assert!(cut.len() <= 63 && cut.len() >= 62 && long.starts_with(cut));
        }
    }

    /// Identifiers from the spec are quoted everywhere, values never
    /// inlined: a spec whose names need quoting yields them quoted.
    #[test]
    fn identifiers_are_quoted_in_every_statement() {
        let spec = Spec::parse(
            r#"
[source]
table = "User"
id = "Id"
blob = "Data"
[tables.Stats.columns]
Mode = "text"
value = "numeric"
[[rules]]
name = "m"
path = "s.{Mode}"
table = "Stats"
value = "value"
"#,
        )
        .unwrap();
        let text = render(&spec);
        for name in ["\"User\"", "\"Id\"", "\"Data\"", "\"Stats\"", "\"Mode\""] {
            assert!(text.contains(name), "{name} missing in\n{text}");
        }
        assert!(
            !text.contains(" User ") && !text.contains(" Stats "),
            "{text}"
        );
    }
}
