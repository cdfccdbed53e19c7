//! Connections: every pooled session has `lock_timeout` and
//! `statement_timeout` set at start-up, so no call waits unboundedly.

use crate::core::spec::Settings;
use crate::error::{Error, Result};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use std::str::FromStr;

/// Parses a connection string (URL or key=value form) with a clear error.
/// Without a password in it, the password comes as libpq finds one:
/// `$PGPASSWORD`, then the password file (`passfile` in the string, else
/// `$PGPASSFILE`, default `~/.pgpass`).
pub fn parse_config(url: &str) -> Result<tokio_postgres::Config> {
    Ok(parse_split(url)?.0)
}

/// [`parse_config`], with the string's split that the TLS connector is
/// made from (a service file is read once).
fn parse_split(url: &str) -> Result<(tokio_postgres::Config, crate::pg::tls::Split)> {
    // a URL of another scheme (a typo, another database's) is named as
    // given, before the split rewrites it (the driver would read it as
    // key=value text and name a fragment of the rewrite)
    if let Some((scheme, _)) = url.trim_start().split_once("://") {
        if !matches!(scheme, "postgres" | "postgresql") && !scheme.contains([' ', '=']) {
            return Err(Error::ConnectionString(format!(
                "bad connection string: `{scheme}://...` is not a PostgreSQL URL; expected e.g. \
                 postgres://user@host:5432/db (or postgresql://...) or \"host=/tmp dbname=db\""
            )));
        }
    }
    let mut split = crate::pg::tls::split(url)?;
    let mut cfg = tokio_postgres::Config::from_str(&split.rest).map_err(|e| {
        // the driver names the option or value in the error's source
        let why = std::error::Error::source(&e).map_or(String::new(), |s| format!(" ({s})"));
        Error::ConnectionString(format!(
            "bad connection string: {e}{why}; expected e.g. postgres://user@host:5432/db or \"host=/tmp dbname=db\""
        ))
    })?;
    fill_from(&mut cfg, split.fallback_application_name.as_deref(), |k| {
        std::env::var(k).ok().filter(|v| !v.is_empty())
    });
    // libpq never negotiates TLS over a Unix socket, whatever sslmode says
    if !cfg.get_hosts().is_empty()
        && cfg
            .get_hosts()
            .iter()
            .all(|h| matches!(h, tokio_postgres::config::Host::Unix(_)))
    {
        cfg.ssl_mode(tokio_postgres::config::SslMode::Disable);
        // nor asks for a root certificate there (a PGSSLMODE=verify-full
        // set for the remote servers refused the local socket)
        split.mode = crate::pg::tls::Mode::Disable;
    }
    if cfg.get_password().is_none() {
        if let Some(p) = password_for(&cfg, split.passfile.as_deref()) {
            cfg.password(p);
        }
    }
    Ok((cfg, split))
}

/// What a connection string leaves out, taken as libpq takes it: the
/// host from `PGHOST` (else the local socket directory, else localhost),
/// the port from `PGPORT`, the user from `PGUSER` (else the login name),
/// the database from `PGDATABASE` (else the user), the application name
/// from `PGAPPNAME`, the connect timeout from `PGCONNECT_TIMEOUT`, and
/// `PGOPTIONS`, `PGHOSTADDR` and `PGTARGETSESSIONATTRS` (`read-write`). So
/// `dbname=game` reaches the server `psql "dbname=game"` reaches.
/// `fallback_application_name` names the session when neither the string
/// nor `PGAPPNAME` does.
fn fill_from(
    cfg: &mut tokio_postgres::Config,
    fallback_application_name: Option<&str>,
    var: impl Fn(&str) -> Option<String>,
) {
    if cfg.get_hosts().is_empty() {
        let hosts = var("PGHOST").unwrap_or_else(default_host);
        for h in hosts.split(',').filter(|h| !h.is_empty()) {
            cfg.host(h);
        }
    }
    if cfg.get_ports().is_empty() {
        if let Some(p) = var("PGPORT").and_then(|p| p.trim().parse::<u16>().ok()) {
            cfg.port(p);
        }
    }
    if cfg.get_user().is_none() {
        if let Some(u) = var("PGUSER")
            .or_else(|| var("USER"))
            .or_else(|| var("LOGNAME"))
        {
            cfg.user(u);
        }
    }
    if cfg.get_dbname().is_none() {
        if let Some(d) = var("PGDATABASE").or_else(|| cfg.get_user().map(str::to_string)) {
            cfg.dbname(d);
        }
    }
    if cfg.get_application_name().is_none() {
        if let Some(a) = var("PGAPPNAME").or_else(|| fallback_application_name.map(str::to_string))
        {
            cfg.application_name(a);
        }
    }
    if cfg.get_options().is_none() {
        if let Some(o) = var("PGOPTIONS") {
            cfg.options(o);
        }
    }
    if cfg.get_hostaddrs().is_empty() {
        for a in var("PGHOSTADDR").iter().flat_map(|a| a.split(',')) {
            if let Ok(ip) = a.trim().parse() {
                cfg.hostaddr(ip);
            }
        }
    }
    if let Some(attrs) = var("PGTARGETSESSIONATTRS") {
        // the driver's default is `any`; only `read-write` changes it
        if attrs == "read-write" {
            cfg.target_session_attrs(tokio_postgres::config::TargetSessionAttrs::ReadWrite);
        }
    }
    if cfg.get_connect_timeout().is_none() {
        if let Some(t) = var("PGCONNECT_TIMEOUT").and_then(|t| t.trim().parse::<u64>().ok()) {
            cfg.connect_timeout(std::time::Duration::from_secs(t));
        }
    }
}

/// libpq's default host: the first local socket directory with a server's
/// socket on port 5432, else localhost.
fn default_host() -> String {
    ["/var/run/postgresql", "/tmp"]
        .into_iter()
        .find(|d| std::path::Path::new(d).join(".s.PGSQL.5432").exists())
        .unwrap_or("localhost")
        .to_string()
}

/// The connection string libpq would build from the environment when none
/// is given: `PGSERVICE` alone when set (see `service`), else `PGHOST`,
/// `PGPORT`, `PGUSER`, `PGDATABASE`, `PGSSLMODE`, `PGAPPNAME`,
/// `PGCONNECT_TIMEOUT` (the password is found later, see
/// `parse_config`). `None` when none of them is set. Unset ones take
/// libpq's defaults: the local socket directory, port 5432, the login
/// name as user, the user as database.
pub fn from_environment() -> Option<String> {
    from_vars(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
}

fn from_vars(var: impl Fn(&str) -> Option<String>) -> Option<String> {
    const KEYS: [(&str, &str); 7] = [
        ("PGHOST", "host"),
        ("PGPORT", "port"),
        ("PGUSER", "user"),
        ("PGDATABASE", "dbname"),
        ("PGSSLMODE", "sslmode"),
        ("PGAPPNAME", "application_name"),
        ("PGCONNECT_TIMEOUT", "connect_timeout"),
    ];
    let quote = crate::pg::conninfo::quote;
    // a service comes before the other variables (libpq's order): the
    // service's parameters are added to the string, then `parse_config`
    // fills what is still unset from the environment
    if let Some(service) = var("PGSERVICE") {
        return Some(format!("service={}", quote(&service)));
    }
    if KEYS.iter().all(|(env, _)| var(env).is_none()) {
        return None;
    }
    let mut parts = Vec::new();
    let host = var("PGHOST").unwrap_or_else(default_host);
    parts.push(format!("host={}", quote(&host)));
    let user = var("PGUSER")
        .or_else(|| var("USER"))
        .or_else(|| var("LOGNAME"));
    for (env, key) in KEYS.iter().skip(1) {
        let value = match *key {
            "user" => user.clone(),
            "dbname" => var(env).or_else(|| user.clone()),
            _ => var(env),
        };
        if let Some(v) = value {
            parts.push(format!("{key}={}", quote(&v)));
        }
    }
    Some(parts.join(" "))
}

/// The password libpq would use for `cfg`: `$PGPASSWORD`, else the first
/// matching line of the password file (`passfile` in the string, else
/// `$PGPASSFILE`, else `~/.pgpass`; `hostname:port:database:username:
/// password`, `*` matching anything, `\:` and `\\` escaped; a file others
/// can read is ignored, as libpq does).
fn password_for(
    cfg: &tokio_postgres::Config,
    passfile: Option<&std::path::Path>,
) -> Option<String> {
    if let Some(p) = std::env::var("PGPASSWORD").ok().filter(|p| !p.is_empty()) {
        return Some(p);
    }
    let file = passfile
        .map(std::path::Path::to_path_buf)
        .or_else(|| std::env::var_os("PGPASSFILE").map(std::path::PathBuf::from))
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".pgpass")))?;
    let meta = std::fs::metadata(&file).ok()?;
    if std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o077 != 0 {
        tracing::warn!(file = %file.display(), "password file ignored: others can read it (chmod 0600)");
        return None;
    }
    let text = std::fs::read_to_string(&file).ok()?;
    let host = match cfg.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        // libpq matches a socket directory as "localhost"
        _ => "localhost".to_string(),
    };
    let port = cfg.get_ports().first().copied().unwrap_or(5432).to_string();
    let user = cfg
        .get_user()
        .map(str::to_string)
        .or_else(|| std::env::var("USER").ok())?;
    let db = cfg
        .get_dbname()
        .map(str::to_string)
        .unwrap_or_else(|| user.clone());
    pgpass_lookup(&text, &[&host, &port, &db, &user])
}

/// The password of the first line of a password file matching `want`
/// (host, port, database, user).
fn pgpass_lookup(text: &str, want: &[&str; 4]) -> Option<String> {
    for line in text.lines() {
        if line.trim_start().starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let mut fields = Vec::new();
        let mut cur = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => cur.extend(chars.next()),
                ':' if fields.len() < 4 => fields.push(std::mem::take(&mut cur)),
                c => cur.push(c),
            }
        }
        fields.push(cur);
        if fields.len() != 5 {
            continue;
        }
        if fields[..4]
            .iter()
            .zip(want)
            .all(|(f, w)| f == "*" || f == w)
        {
            return Some(fields.pop().expect("five fields"));
        }
    }
    None
}

/// A pool of `size` sessions with the spec's timeouts.
pub fn pool(url: &str, settings: &Settings, size: usize) -> Result<Pool> {
    let (mut cfg, split) = parse_split(url)?;
    let tls = crate::pg::tls::connector(&split)?;
    let mut options = cfg.get_options().unwrap_or("").to_string();
    // Plans: the backend's per-user calls (one id, the tables' primary
    // keys) keep PostgreSQL's default, a generic plan once it is as cheap
    // as a custom one, so a call is not re-planned every time; a plan is
    // re-made whenever ANALYZE updates a table's statistics, so one made
    // while the target tables were tiny does not outlive that. The
    // daemon's batch statements (arrays of ids whose length varies) run
    // with custom plans: see `batch_transaction`.
    options.push_str(&format!(
        " -c lock_timeout={} -c statement_timeout={}",
        settings.lock_timeout_ms, settings.statement_timeout_ms
    ));
    cfg.options(options.trim());
    if cfg.get_application_name().is_none() {
        cfg.application_name("decant");
    }
    // a host that does not answer fails the attempt instead of hanging it
    // (the daemon then retries with backoff)
    if cfg.get_connect_timeout().is_none() {
        cfg.connect_timeout(std::time::Duration::from_secs(10));
    }
    let mgr = Manager::from_config(
        cfg,
        tls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    // a call waits for a free session at most this long, then fails with a
    // retryable error: a burst longer than that, or calls on the handle
    // nested inside a wrapper's closure (each holding a session while it
    // waits for another), would otherwise wait for ever
    let limits = (settings.lock_timeout_ms, settings.statement_timeout_ms);
    Pool::builder(mgr)
        .max_size(size.max(1))
        .post_create(deadpool_postgres::Hook::async_fn(move |client, _| {
            Box::pin(async move { check_limits(client, limits).await })
        }))
        .wait_timeout(Some(pool_wait(settings)))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| Error::Setup(format!("cannot build the connection pool: {e}")))
}

/// Checks that a new session of a pool has the lock and statement
/// timeouts its startup options set: a pooler between decant and
/// PostgreSQL told to ignore startup options (pgbouncer's
/// `ignore_startup_parameters = options`) drops them silently, and would
/// then also hand decant's sessions, with their prepared statements, to
/// other clients. One simple query per new session (a plain text query:
/// through such a pooler a prepared one could run on another server
/// session).
async fn check_limits(
    client: &mut deadpool_postgres::ClientWrapper,
    (lock_ms, statement_ms): (u64, u64),
) -> std::result::Result<(), deadpool_postgres::HookError> {
    let rows = client
        .simple_query(
            "SELECT (SELECT setting FROM pg_settings WHERE name = 'lock_timeout'), \
                    (SELECT setting FROM pg_settings WHERE name = 'statement_timeout')",
        )
        .await
        .map_err(deadpool_postgres::HookError::Backend)?;
    let got = rows.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => Some((
            r.get(0).and_then(|v| v.parse::<u64>().ok()),
            r.get(1).and_then(|v| v.parse::<u64>().ok()),
        )),
        _ => None,
    });
    match got {
        Some((Some(l), Some(t))) if (l, t) == (lock_ms, statement_ms) => Ok(()),
        got => {
            let shown = |v: Option<u64>| v.map_or("unknown".to_string(), |v| format!("{v} ms"));
            let (l, t) = got.unwrap_or((None, None));
            Err(deadpool_postgres::HookError::Message(
                format!(
                    "a new session has lock_timeout {} and statement_timeout {}, not the \
                     {lock_ms} ms and {statement_ms} ms decant set as its startup options: \
                     something between decant and PostgreSQL dropped them (a pooler, such as \
                     pgbouncer with `ignore_startup_parameters = options`); {}",
                    shown(l),
                    shown(t),
                    crate::error::POOLER
                )
                .into(),
            ))
        }
    }
}

/// How long a call waits for a free session of its pool: the spec's
/// `lock_timeout_ms`, at least 10 s.
pub(crate) fn pool_wait(settings: &Settings) -> std::time::Duration {
    std::time::Duration::from_millis(settings.lock_timeout_ms.max(10_000))
}

/// Begins a transaction for a batch of users: its statements take arrays
/// of ids whose length varies from batch to batch, and a generic plan
/// would be made blind to it, so the transaction plans each one for its
/// actual parameters ([`CUSTOM_PLANS`], local to it, with the GIN pending
/// list bound it explains).
pub async fn batch_transaction<'a>(
    client: &'a mut deadpool_postgres::Object,
    what: &str,
) -> Result<deadpool_postgres::Transaction<'a>> {
    let tx = begin(client, what).await?;
    tx.batch_execute(CUSTOM_PLANS)
        .await
        .map_err(|e| Error::db(format!("beginning {what}"), e))?;
    Ok(tx)
}

/// The setting of a batch's transaction (see [`batch_transaction`]), for a
/// caller that sends it in front of its first statements instead (one
/// round trip less).
///
/// It also bounds the pending list of a GIN index on the source table
/// (`gin_pending_list_limit`, 256 kB instead of 4 MB; an index that sets
/// its own keeps it): a batch's writes are queued there, and the write
/// that passes the bound merges the whole list into the index under the
/// batch's locks. A user's rollback writes its whole blob back, so at 4 MB
/// one rollback batch in a few dozen held its users 0.5-0.65 s (lock hold
/// p99 514-646 ms against p50 about 100 ms); at 256 kB p99 was 208-228 ms
/// for about a fifth more time, at 64 kB 141-156 ms but a third slower
/// (BENCHMARKS.md, "A GIN index on the blob").
pub const CUSTOM_PLANS: &str =
    "SET LOCAL plan_cache_mode = force_custom_plan; SET LOCAL gin_pending_list_limit = 256";

/// Begins a batch's transaction (it sends [`CUSTOM_PLANS`] first), at
/// `READ COMMITTED` whatever the role's or database's
/// `default_transaction_isolation`: its statements are made for it (one
/// after a lock sees what committed before the lock; a lock on a row
/// changed meanwhile waits and goes on), where under a `serializable`
/// default two workers and a backend writer failed 89 batches in 10 s on
/// serialization conflicts (`decant demo` of 5,000 users, PostgreSQL 17).
pub async fn begin<'a>(
    client: &'a mut deadpool_postgres::Object,
    what: &str,
) -> Result<deadpool_postgres::Transaction<'a>> {
    client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::ReadCommitted)
        .start()
        .await
        .map_err(|e| Error::db(format!("beginning {what}"), e))
}

/// Takes a session from the pool.
pub async fn get(pool: &Pool) -> Result<deadpool_postgres::Object> {
    Ok(pool.get().await?)
}

/// Opens a plain connection (its task runs on the current runtime).
pub async fn connect(url: &str) -> Result<tokio_postgres::Client> {
    connect_with(url, "").await
}

/// Opens a plain connection whose session starts with `settings` (`-c
/// name=value ...`, after any the connection string gives): set at the
/// start they outrank a role's or database's own (`ALTER ROLE ... SET`)
/// before any statement runs under those. A `SET` sent as the first
/// statement runs under them: a database's `statement_timeout = '1ms'`
/// cancelled one in 1.6% of 1,500 sessions on a busy server.
pub(crate) async fn connect_with(url: &str, settings: &str) -> Result<tokio_postgres::Client> {
    let (mut cfg, split) = parse_split(url)?;
    if !settings.is_empty() {
        let options = format!("{} {settings}", cfg.get_options().unwrap_or(""));
        cfg.options(options.trim());
    }
    let tls = crate::pg::tls::connector(&split)?;
    let (client, conn) = cfg
        .connect(tls)
        .await
        .map_err(|e| Error::db(format!("connecting to {}", describe_target(url)), e))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(cause = %e, "connection closed");
        }
    });
    Ok(client)
}

/// The same server as connection string `url`, another database.
pub fn with_dbname(url: &str, db: &str) -> Result<String> {
    parse_config(url)?;
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let (base, query) = match url.split_once('?') {
            Some((b, q)) => (b, format!("?{q}")),
            None => (url, String::new()),
        };
        let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
        let host_part = match base[scheme_end..].find('/') {
            Some(i) => &base[..scheme_end + i],
            None => base,
        };
        Ok(format!("{host_part}/{db}{query}"))
    } else {
        Ok(format!("{url} dbname={db}"))
    }
}

/// Where connection string `url` leads, without its password: `host
/// /tmp port 5432, user app, database game` (for messages about a server
/// that could not be reached).
pub fn describe_target(url: &str) -> String {
    let Ok(cfg) = parse_config(url) else {
        return "(unparsable connection string)".into();
    };
    let hosts: Vec<String> = cfg
        .get_hosts()
        .iter()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    let ports: Vec<String> = cfg.get_ports().iter().map(u16::to_string).collect();
    format!(
        "host {} port {}, user {}, database {}",
        if hosts.is_empty() {
            "(default)".to_string()
        } else {
            hosts.join(",")
        },
        if ports.is_empty() {
            "5432".to_string()
        } else {
            ports.join(",")
        },
        cfg.get_user().unwrap_or("(default)"),
        cfg.get_dbname().or(cfg.get_user()).unwrap_or("(default)"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_of_another_scheme_is_named_as_given() {
        for (url, scheme) in [
            ("postgress://postgres@x/saas", "postgress"),
            ("mysql://root@localhost/db", "mysql"),
        ] {
            let err = parse_config(url).unwrap_err().to_string();
            assert!(
                err.contains(&format!("`{scheme}://...` is not a PostgreSQL URL")),
                "{url}: {err}"
            );
            assert!(!err.contains("sslmode") && !err.contains("byte"), "{err}");
        }
        for ok in [
            "postgres://u@h/db",
            "postgresql://u@h/db",
            "host=h dbname=db application_name=http://x",
        ] {
            assert!(parse_config(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn a_unix_socket_takes_no_tls_whatever_sslmode_says() {
        // libpq connects; decant asked for the root certificate
        // verify-full needs (a PGSSLMODE meant for the remote servers)
        for url in [
            "host=/tmp dbname=db sslmode=verify-full",
            "postgres://u@%2Ftmp/db?sslmode=verify-ca",
        ] {
            let (_, split) = parse_split(url).unwrap();
            assert!(split.mode == crate::pg::tls::Mode::Disable, "{url}");
            assert!(crate::pg::tls::connector(&split).is_ok(), "{url}");
        }
        let (_, split) = parse_split("host=db.example dbname=db sslmode=verify-full").unwrap();
        assert!(crate::pg::tls::connector(&split).is_err());
    }

    #[test]
    fn what_a_connection_string_leaves_out_comes_from_the_environment() {
        let env = |k: &str| match k {
            "PGHOST" => Some("/tmp/sock".to_string()),
            "PGPORT" => Some("5591".to_string()),
            "PGUSER" => Some("ops".to_string()),
            _ => None,
        };
        let mut cfg = tokio_postgres::Config::from_str("dbname=game").unwrap();
        fill_from(&mut cfg, None, env);
        assert!(matches!(
            cfg.get_hosts(),
            [tokio_postgres::config::Host::Unix(p)] if p == std::path::Path::new("/tmp/sock")
        ));
        assert_eq!(cfg.get_ports(), [5591]);
        assert_eq!(cfg.get_user(), Some("ops"));
        assert_eq!(cfg.get_dbname(), Some("game"));
        // what the string gives wins
        let mut cfg =
            tokio_postgres::Config::from_str("host=db.example port=6543 user=app").unwrap();
        fill_from(&mut cfg, None, env);
        assert!(matches!(
            cfg.get_hosts(),
            [tokio_postgres::config::Host::Tcp(h)] if h == "db.example"
        ));
        assert_eq!(cfg.get_ports(), [6543]);
        assert_eq!(cfg.get_user(), Some("app"));
        assert_eq!(cfg.get_dbname(), Some("app"));
    }

    #[test]
    fn the_other_libpq_variables_fill_what_the_string_leaves_out() {
        let vars = |k: &str| {
            match k {
                "PGOPTIONS" => Some("-c search_path=game"),
                "PGHOSTADDR" => Some("127.0.0.1"),
                "PGTARGETSESSIONATTRS" => Some("read-write"),
                "PGCONNECT_TIMEOUT" => Some("7"),
                _ => None,
            }
            .map(str::to_string)
        };
        let mut cfg = tokio_postgres::Config::from_str("host=h user=u").unwrap();
        fill_from(&mut cfg, None, vars);
        assert_eq!(cfg.get_options(), Some("-c search_path=game"));
        assert_eq!(
            cfg.get_hostaddrs(),
            &["127.0.0.1".parse::<std::net::IpAddr>().unwrap()]
        );
        assert_eq!(
            cfg.get_target_session_attrs(),
            tokio_postgres::config::TargetSessionAttrs::ReadWrite
        );
        assert_eq!(
            cfg.get_connect_timeout(),
            Some(&std::time::Duration::from_secs(7))
        );
        // the string's own settings stay
        let mut cfg =
            tokio_postgres::Config::from_str("host=h options='-c a=b' connect_timeout=2").unwrap();
        fill_from(&mut cfg, None, vars);
        assert_eq!(cfg.get_options(), Some("-c a=b"));
        assert_eq!(
            cfg.get_connect_timeout(),
            Some(&std::time::Duration::from_secs(2))
        );
    }

    #[test]
    fn a_fallback_application_name_names_a_session_nothing_else_names() {
        let none = |_: &str| None;
        let appname = |k: &str| (k == "PGAPPNAME").then(|| "env".to_string());
        for (conn, var, want) in [
            ("host=h", &none as &dyn Fn(&str) -> Option<String>, "fb"),
            ("host=h", &appname, "env"),
            ("host=h application_name=a", &appname, "a"),
        ] {
            let mut cfg = tokio_postgres::Config::from_str(conn).unwrap();
            fill_from(&mut cfg, Some("fb"), var);
            assert_eq!(cfg.get_application_name(), Some(want), "{conn}");
        }
        // parse_config takes it out of the string for the driver
        let cfg = parse_config("host=h application_name=a fallback_application_name=fb").unwrap();
        assert_eq!(cfg.get_application_name(), Some("a"));
    }

    #[test]
    fn a_target_is_described_without_its_password() {
        let d = describe_target("postgres://app:secret@db.example:6543/game");
        assert_eq!(d, "host db.example port 6543, user app, database game");
        let d = describe_target("host=/tmp/sock port=5571 user=ops password=secret");
        assert_eq!(d, "host /tmp/sock port 5571, user ops, database ops");
        assert!(!describe_target("host=h password=secret").contains("secret"));
    }

    #[test]
    fn the_environment_makes_a_libpq_connection_string() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(from_vars(env(&[("USER", "ann")])), None);
        // a service alone: its parameters come before the other variables
        assert_eq!(
            from_vars(env(&[("PGSERVICE", "game"), ("PGHOST", "h")])).as_deref(),
            Some("service='game'")
        );
        let s = from_vars(env(&[
            ("PGHOST", "db.example"),
            ("PGPORT", "6543"),
            ("PGUSER", "o'neil"),
            ("PGSSLMODE", "require"),
        ]))
        .unwrap();
        assert_eq!(
            s,
            "host='db.example' port='6543' user='o\\'neil' dbname='o\\'neil' sslmode='require'"
        );
        let cfg = tokio_postgres::Config::from_str(&s).unwrap();
        assert_eq!(cfg.get_user(), Some("o'neil"));
        assert_eq!(cfg.get_dbname(), Some("o'neil"));
        assert_eq!(cfg.get_ports(), &[6543]);
    }

    #[test]
    fn the_password_file_is_read_as_libpq_reads_it() {
        let file = "# comment\n\
                    other:5432:*:ann:wrong\n\
                    db.example:5432:game:ann:s3cr\\:et\\\\x\n\
                    *:*:*:*:fallback\n";
        assert_eq!(
            pgpass_lookup(file, &["db.example", "5432", "game", "ann"]).as_deref(),
            Some("s3cr:et\\x")
        );
        assert_eq!(
            pgpass_lookup(file, &["db.example", "5432", "other", "ann"]).as_deref(),
            Some("fallback")
        );
        assert_eq!(pgpass_lookup("a:b:c:d\n", &["a", "b", "c", "d"]), None);
    }
}
