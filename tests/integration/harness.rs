//! The test harness: one server per test run, one fresh database per test,
//! dropped when the test ends (pass or fail).

use crate::cluster::{ClusterOptions, TempCluster};
use decant::{Decant, Spec};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

struct Server {
    /// Connection string to the maintenance database.
    admin_url: String,
    // Kept for the whole run; its watchdog removes it when the test
    // process exits, since statics are never dropped.
    _cluster: Option<TempCluster>,
}

static SERVER: OnceLock<Server> = OnceLock::new();
static NEXT: AtomicU32 = AtomicU32::new(0);

fn server() -> &'static Server {
    SERVER.get_or_init(|| match std::env::var("DATABASE_URL") {
        Ok(url) => Server {
            admin_url: url,
            _cluster: None,
        },
        Err(_) => {
            let cluster = TempCluster::start(&ClusterOptions {
                max_connections: 300,
                ..ClusterOptions::default()
            })
            .expect("starting a throwaway PostgreSQL cluster (or set DATABASE_URL)");
            Server {
                admin_url: cluster.url("postgres"),
                _cluster: Some(cluster),
            }
        }
    })
}

/// Daemon options for a run at full speed on two workers.
pub fn full_speed() -> decant::RunOptions {
    decant::RunOptions {
        workers: 2,
        rate: Some(decant::Rate::Max),
        // the load yield counts the whole server's transactions, and the
        // other tests' databases on this shared server come and go: it
        // would read them as surges (its own test counts its database alone)
        throttle: decant::Throttle {
            load_yield: None,
            ..decant::Throttle::default()
        },
        ..decant::RunOptions::default()
    }
}

/// Migrates every legacy user it can at [`full_speed`] and returns the
/// run's report once none is left to claim.
pub async fn run_all(decant: &decant::Decant) -> decant::Result<decant::RunReport> {
    decant::run(
        decant,
        full_speed(),
        std::sync::Arc::new(decant::Progress::default()),
        std::future::pending(),
    )
    .await
}

/// Rolls `cohort` back at [`full_speed`] to the end.
pub async fn rollback_all(
    decant: &decant::Decant,
    cohort: decant::Cohort,
) -> decant::Result<decant::RunReport> {
    decant::rollback(
        decant,
        cohort,
        full_speed(),
        std::sync::Arc::new(decant::Progress::default()),
        std::future::pending(),
    )
    .await
}

/// Re-migrates every user the evolved mapping finds stale at
/// [`full_speed`] and returns the run's report once none is left.
pub async fn evolve_all(decant: &decant::Decant) -> decant::Result<decant::RunReport> {
    decant::evolve(
        decant,
        full_speed(),
        std::sync::Arc::new(decant::Progress::default()),
        std::future::pending(),
    )
    .await
}

/// The connection string of the test server's maintenance database.
pub fn admin_url() -> String {
    server().admin_url.clone()
}

/// A fresh database for one test.
pub struct TestDb {
    pub url: String,
    name: String,
}

impl TestDb {
    pub async fn new() -> TestDb {
        let server = tokio::task::spawn_blocking(server).await.unwrap();
        let name = format!(
            "decant_test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let admin = connect(&server.admin_url).await;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("creating the test database");
        let url = decant::with_dbname(&server.admin_url, &name).unwrap();
        TestDb { url, name }
    }

    /// This database's name (a plain identifier: `decant_test_<pid>_<n>`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A plain connection to this database.
    pub async fn client(&self) -> tokio_postgres::Client {
        connect(&self.url).await
    }

    /// This database with the game's table, `users` generated users (seed
    /// 1), decant initialized, and a handle on it.
    pub async fn game(&self, users: i64) -> Decant {
        let client = self.client().await;
        crate::example::load(&client, users, 1).await.unwrap();
        let spec = crate::example::spec();
        decant::init(&client, &spec).await.unwrap();
        Decant::connect(&self.url, spec, 8).unwrap()
    }

    /// This database's connection string as another role (a URL gets the
    /// user swapped; in key=value form a later `user=` wins).
    pub fn url_as(&self, role: &str) -> String {
        if self.url.starts_with("postgres") {
            let (scheme, rest) = self.url.split_once("://").unwrap();
            let rest = rest.split_once('@').map_or(rest, |(_, r)| r);
            format!("{scheme}://{role}@{rest}")
        } else {
            format!("{} user={role}", self.url)
        }
    }

    /// A handle on this database with the given spec text.
    pub fn decant_with(&self, spec_text: &str, pool: usize) -> Decant {
        Decant::connect(&self.url, Spec::parse(spec_text).unwrap(), pool).unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let admin_url = server().admin_url.clone();
        let name = self.name.clone();
        // Drop runs inside the test's runtime: use a thread with its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let admin = connect(&admin_url).await;
                let _ = admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
            });
        })
        .join();
    }
}

pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to the test server: {e}"));
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// A login role of its own for this test process (`{prefix}_{pid}`, made
/// again if a crashed run left it), with no rights yet.
pub async fn fresh_role(client: &tokio_postgres::Client, prefix: &str) -> String {
    let role = format!("{prefix}_{}", std::process::id());
    client
        .batch_execute(&format!(
            "DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN"
        ))
        .await
        .unwrap();
    role
}

/// The migrated flag of a user.
pub async fn is_migrated(client: &tokio_postgres::Client, user: i64) -> bool {
    client
        .query_one("SELECT migrated FROM \"user\" WHERE id = $1", &[&user])
        .await
        .unwrap()
        .get(0)
}

/// How many users are migrated.
pub async fn count_migrated(client: &tokio_postgres::Client) -> i64 {
    client
        .query_one("SELECT count(*) FROM \"user\" WHERE migrated", &[])
        .await
        .unwrap()
        .get(0)
}

/// The first column of every row `sql` returns, as text.
pub async fn texts(
    client: &tokio_postgres::Client,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Vec<String> {
    column(client, sql, params).await
}

/// The first column of every row `sql` returns, on a client or inside
/// a transaction.
pub async fn column<T: for<'a> tokio_postgres::types::FromSql<'a>>(
    client: &impl tokio_postgres::GenericClient,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Vec<T> {
    client
        .query(sql, params)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// The server's `server_version_num` (170002 for 17.2).
pub async fn server_version(client: &impl tokio_postgres::GenericClient) -> i32 {
    column::<i32>(
        client,
        "SELECT current_setting('server_version_num')::int",
        &[],
    )
    .await[0]
}

/// A query run every 50 ms on its own session until stopped, each
/// result's first column folded into `T`.
pub struct Poller<T> {
    running: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<T>,
}

impl<T: Send + 'static> Poller<T> {
    /// Starts polling `sql` on `client`.
    pub fn start<C>(
        client: tokio_postgres::Client,
        sql: &'static str,
        mut acc: T,
        mut fold: impl FnMut(&mut T, Vec<C>) + Send + 'static,
    ) -> Self
    where
        C: for<'a> tokio_postgres::types::FromSql<'a> + Send + 'static,
    {
        let running = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let flag = running.clone();
        let task = tokio::spawn(async move {
            while flag.load(std::sync::atomic::Ordering::Relaxed) {
                fold(&mut acc, column::<C>(&client, sql, &[]).await);
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            acc
        });
        Poller { running, task }
    }

    /// Stops polling and returns what was folded.
    pub async fn stop(self) -> T {
        self.running
            .store(false, std::sync::atomic::Ordering::Relaxed);
        self.task.await.expect("the poller does not panic")
    }
}

/// The raw blob column of a user.
pub async fn raw_blob(client: &tokio_postgres::Client, user: i64) -> serde_json::Value {
    client
        .query_one("SELECT data FROM \"user\" WHERE id = $1", &[&user])
        .await
        .unwrap()
        .get(0)
}

/// A user's blob through the SQL API (`decant.load`), panicking with the
/// user and the error when it fails.
pub async fn sql_load(client: &tokio_postgres::Client, user: i64) -> serde_json::Value {
    client
        .query_one("SELECT decant.load($1)", &[&user])
        .await
        .unwrap_or_else(|e| panic!("decant.load({user}): {e:?}"))
        .get(0)
}

/// Adds a legacy user of the game with this blob.
pub async fn insert_user(client: &tokio_postgres::Client, user: i64, blob: &serde_json::Value) {
    client
        .execute(
            "INSERT INTO \"user\" (id, name, data) VALUES ($1, 'r', $2)",
            &[&user, blob],
        )
        .await
        .unwrap();
}

/// The game's target tables.
pub const GAME_TABLES: [&str; 6] = [
    "user_statistic",
    "user_achievement",
    "user_bot",
    "user_selected_bot",
    "user_preference",
    "user_config",
];

/// Rows of a user across every target table of the game spec.
pub async fn row_count(client: &tokio_postgres::Client, user: i64) -> i64 {
    let mut n = 0;
    for t in GAME_TABLES {
        let c: i64 = client
            .query_one(
                &format!("SELECT count(*) FROM {t} WHERE user_id = $1"),
                &[&user],
            )
            .await
            .unwrap()
            .get(0);
        n += c;
    }
    n
}

/// `len` pseudo-random lowercase letters: a key no compression shortens
/// (a junk key, past what an index entry holds once long enough).
pub fn junk_key(len: usize, seed: u32) -> String {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            char::from(b'a' + ((x >> 16) % 26) as u8)
        })
        .collect()
}

/// The first generated user (seed 1) without dirt.
pub fn clean_user() -> i64 {
    (1..)
        .find(|&i| crate::example::user(1, i).dirt.is_none())
        .unwrap()
}

/// The first generated user (seed 1) with dirt, among the first `users`.
pub fn dirty_user(users: i64) -> i64 {
    (1..=users)
        .find(|&i| crate::example::user(1, i).dirt.is_some())
        .expect("a dirty user among the generated ones")
}

/// Drops the CHECK constraints decant put on `table`, for tests that
/// tamper with stored rows by hand (as a stray script could before the
/// tables carried the checks).
pub async fn drop_checks(client: &tokio_postgres::Client, table: &str) {
    client
        .batch_execute(&format!(
            "DO $$ DECLARE c text; BEGIN \
               FOR c IN SELECT conname FROM pg_constraint WHERE conrelid = '{table}'::regclass \
                          AND contype = 'c' AND conname LIKE 'decant\\_%' LOOP \
                 EXECUTE format('ALTER TABLE {table} DROP CONSTRAINT %I', c); \
               END LOOP; END $$"
        ))
        .await
        .unwrap();
}

/// Whether a `decant run` process ended as a run should: exit status 0
/// with no user failed, or 3 ("done, but users failed") when its summary
/// line counts failed users (the example game's dirty users, without
/// fixups).
pub fn run_ended_well(out: &std::process::Output) -> bool {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let failed = stdout
        .lines()
        .find(|l| l.starts_with("done:") || l.starts_with("stopped:"))
        .and_then(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let i = words.iter().position(|w| w.starts_with("failed"))?;
            words.get(i - 1)?.parse::<u64>().ok()
        });
    match (out.status.code(), failed) {
        (Some(0), Some(0)) => true,
        (Some(3), Some(n)) => n > 0 || stdout.contains("at the attempt limit"),
        _ => false,
    }
}

/// Ends the sessions of `role` (before the test's database is dropped).
pub async fn end_sessions_of(client: &tokio_postgres::Client, role: &str) {
    client
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1",
            &[&role],
        )
        .await
        .unwrap();
}
