//! Connections: every pooled session has `lock_timeout` and
//! `statement_timeout` set at start-up, so no call waits unboundedly.

use crate::core::spec::Settings;
use crate::error::{Error, Result};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use std::str::FromStr;

/// Parses a connection string (URL or key=value form) with a clear error.
pub fn parse_config(url: &str) -> Result<tokio_postgres::Config> {
    tokio_postgres::Config::from_str(url).map_err(|e| {
        Error::Setup(format!(
            "bad connection string: {e}; expected e.g. postgres://user@host:5432/db or \"host=/tmp dbname=db\""
        ))
    })
}

/// A pool of `size` sessions with the spec's timeouts.
pub fn pool(url: &str, settings: &Settings, size: usize) -> Result<Pool> {
    let mut cfg = parse_config(url)?;
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
        tokio_postgres::NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(mgr)
        .max_size(size.max(1))
        .build()
        .map_err(|e| Error::Setup(format!("cannot build the connection pool: {e}")))
}

/// Begins a transaction for a batch of users: its statements take arrays
/// of ids whose length varies from batch to batch, and a generic plan
/// would be made blind to it, so the transaction plans each one for its
/// actual parameters (`plan_cache_mode = force_custom_plan`, local to it).
pub async fn batch_transaction<'a>(
    client: &'a mut deadpool_postgres::Object,
    what: &str,
) -> Result<deadpool_postgres::Transaction<'a>> {
    let tx = client
        .transaction()
        .await
        .map_err(|e| Error::db(format!("beginning {what}"), e))?;
    tx.batch_execute("SET LOCAL plan_cache_mode = force_custom_plan")
        .await
        .map_err(|e| Error::db(format!("beginning {what}"), e))?;
    Ok(tx)
}

/// Takes a session from the pool.
pub async fn get(pool: &Pool) -> Result<deadpool_postgres::Object> {
    Ok(pool.get().await?)
}

/// Opens a plain connection (its task runs on the current runtime).
pub async fn connect(url: &str) -> Result<tokio_postgres::Client> {
    let cfg = parse_config(url)?;
    let (client, conn) = cfg
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| Error::db(format!("connecting to {}", redact(url)), e))?;
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

fn redact(url: &str) -> String {
    match parse_config(url) {
        Ok(cfg) => format!(
            "{:?} as {:?}",
            cfg.get_hosts(),
            cfg.get_user().unwrap_or("(default user)")
        ),
        Err(_) => "(unparsable connection string)".into(),
    }
}
