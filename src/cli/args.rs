//! Flags several commands share, each group one `#[command(flatten)]`
//! struct: where the database and the spec are, and the windows.

use anyhow::{Result, bail};
use clap::Args;
use decant::{Decant, Spec};
use std::path::PathBuf;

/// Where the database and the spec are.
#[derive(Args)]
pub(super) struct Target {
    /// Connection string (URL or key=value); defaults to $DATABASE_URL.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub(super) database_url: Option<String>,
    /// The mapping spec.
    #[arg(long, default_value = "decant.toml")]
    pub(super) spec: PathBuf,
}

impl Target {
    pub(super) fn spec(&self) -> Result<Spec> {
        Ok(Spec::load(&self.spec)?)
    }

    pub(super) fn url(&self) -> Result<&str> {
        match &self.database_url {
            Some(u) => Ok(u),
            None => bail!("no database: pass --database-url or set DATABASE_URL"),
        }
    }

    pub(super) fn decant(&self) -> Result<Decant> {
        Ok(Decant::connect(self.url()?, self.spec()?, 2)?)
    }
}

/// Low-traffic windows.
#[derive(Args)]
pub(super) struct ScheduleArgs {
    /// A daily window HH:MM-HH:MM (several allowed; may cross midnight).
    #[arg(long = "window")]
    windows: Vec<decant::Window>,
    /// Time zone of the windows (IANA name, e.g. Asia/Kathmandu; default UTC).
    #[arg(long)]
    tz: Option<String>,
}

impl ScheduleArgs {
    pub(super) fn schedule(&self) -> Result<decant::Schedule> {
        decant::Schedule::new(self.windows.clone(), self.tz.as_deref()).map_err(anyhow::Error::msg)
    }
}
