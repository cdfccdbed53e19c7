//! Connections: every pooled session has `lock_timeout` and
//! `statement_timeout` set at start-up, so no call waits unboundedly.

use crate::error::{Error, Result};
use crate::spec::Settings;
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
    // Custom plans: the target tables start empty and grow fast, and a
    // generic plan made while they were tiny (a sequential scan) would stay
    // cached in the session long after they are large.
    options.push_str(&format!(
        " -c lock_timeout={} -c statement_timeout={} -c plan_cache_mode=force_custom_plan",
        settings.lock_timeout_ms, settings.statement_timeout_ms
    ));
    cfg.options(options.trim());
    if cfg.get_application_name().is_none() {
        cfg.application_name("decant");
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
        .map_err(|e| Error::Pool(e.to_string()))
}

/// Takes a session from the pool.
pub async fn get(pool: &Pool) -> Result<deadpool_postgres::Object> {
    pool.get().await.map_err(|e| Error::Pool(e.to_string()))
}
