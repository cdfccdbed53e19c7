//! The `decant` command: a thin layer over the library.

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use decant::{Decant, Spec};
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "decant",
    version,
    about = "Migrate a PostgreSQL jsonb blob column into normalized tables, online, user by user"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the database and the spec are.
#[derive(Args)]
struct Target {
    /// Connection string (URL or key=value); defaults to $DATABASE_URL.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// The mapping spec.
    #[arg(long, default_value = "decant.toml")]
    spec: PathBuf,
}

impl Target {
    fn spec(&self) -> Result<Spec> {
        Ok(decant::spec::load(&self.spec)?)
    }

    fn url(&self) -> Result<&str> {
        match &self.database_url {
            Some(u) => Ok(u),
            None => bail!("no database: pass --database-url or set DATABASE_URL"),
        }
    }

    fn decant(&self) -> Result<Decant> {
        Ok(Decant::connect(self.url()?, self.spec()?, 2)?)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Print the DDL of the target tables and of decant's own objects.
    Schema {
        /// The mapping spec.
        #[arg(long, default_value = "decant.toml")]
        spec: PathBuf,
    },
    /// Create the target tables, decant's objects and the flag column
    /// (idempotent).
    Init(Target),
    /// Migrate one user now, in one verified transaction.
    Migrate {
        #[command(flatten)]
        target: Target,
        /// The user id.
        #[arg(long)]
        user: i64,
    },
    /// Roll one user back: rebuild the blob from the tables, clear the flag.
    Rollback {
        #[command(flatten)]
        target: Target,
        /// The user id.
        #[arg(long)]
        user: i64,
    },
    /// Run the whole job on a generated game database in a throwaway
    /// PostgreSQL (or in a new database on $DATABASE_URL's server).
    Demo {
        /// Users to generate.
        #[arg(long, default_value_t = 20_000)]
        users: i64,
        /// Generator seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Parallel migration workers.
        #[arg(long, default_value_t = 2)]
        workers: usize,
        /// Server to use instead of a throwaway cluster.
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
    },
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = run(Cli::parse()).await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Schema { spec } => {
            let spec = decant::spec::load(&spec)?;
            print!("{}", decant::schema::script(&spec));
        }
        Command::Init(target) => {
            let spec = target.spec()?;
            let decant = Decant::connect(target.url()?, spec, 1)?;
            let client = decant.pool().get().await.context("connecting")?;
            decant::schema::init(&client, decant.spec()).await?;
            println!("initialized: target tables, decant schema, flag column and legacy index");
        }
        Command::Migrate { target, user } => {
            let report = target.decant()?.migrate_user(user).await?;
            if let Some(m) = report.migrated.first() {
                println!("user {user}: migrated, {} rows, verified", m.rows);
                for w in &m.warnings {
                    println!("  warning: {w} (kept in the residual)");
                }
            } else if let Some(f) = report.failed.first() {
                bail!("{} (the user stays legacy)", f.error);
            } else {
                println!("user {user}: already migrated");
            }
        }
        Command::Rollback { target, user } => {
            if target.decant()?.rollback_user(user).await? {
                println!("user {user}: rolled back, blob rebuilt from the tables");
            } else {
                println!("user {user}: not migrated, nothing to roll back");
            }
        }
        Command::Demo {
            users,
            seed,
            workers,
            database_url,
        } => {
            let opts = decant::demo::DemoOptions {
                users,
                seed,
                workers,
                database_url,
                ..Default::default()
            };
            let bar = progress_bar(users as u64);
            let summary = decant::demo::run(&opts, &|done, _total| {
                if let Some(bar) = &bar {
                    bar.set_position(done);
                }
            })
            .await?;
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            println!("{summary}");
        }
    }
    Ok(())
}

fn progress_bar(total: u64) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "migrating {bar:40} {pos}/{len} users  {per_sec}  eta {eta}",
        )
        .expect("valid template"),
    );
    Some(bar)
}
