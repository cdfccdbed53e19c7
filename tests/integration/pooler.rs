//! Through a connection pooler (pgbouncer in transaction mode, as Node
//! backends often reach PostgreSQL): the SQL API keeps every acknowledged
//! write while the daemon, connected directly, migrates the same users and
//! users are migrated on demand; decant's own sessions are refused by the
//! pooler with what to do.

use crate::harness::TestDb;
use std::path::PathBuf;
use std::process::Command;
use std::str::FromStr;
use std::time::Duration;

/// A pgbouncer in transaction mode in front of the test server, stopped
/// (and its directory removed) when dropped.
struct Bouncer {
    dir: PathBuf,
    port: u16,
}

impl Bouncer {
    /// `ignore_options`: told to ignore the startup options (which it
    /// refuses otherwise), as a team would to let clients in that send them.
    fn start(server_url: &str, ignore_options: bool) -> Bouncer {
        let cfg = tokio_postgres::Config::from_str(server_url).unwrap();
        let host = match &cfg.get_hosts()[0] {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        };
        let port = cfg.get_ports().first().copied().unwrap_or(5432);
        let user = cfg.get_user().unwrap_or("postgres").to_string();
        let password = cfg
            .get_password()
            .map(|p| format!(" password={}", String::from_utf8_lossy(p)))
            .unwrap_or_default();
        let listen = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir =
            std::env::temp_dir().join(format!("decant-pgbouncer-{}-{listen}", std::process::id()));
        let ignore = if ignore_options { ", options" } else { "" };
        std::fs::create_dir_all(&dir).unwrap();
        let ini = dir.join("pgbouncer.ini");
        std::fs::write(dir.join("users.txt"), format!("\"{user}\" \"\"\n")).unwrap();
        std::fs::write(
            &ini,
            format!(
                "[databases]\n* = host={host} port={port} user={user}{password}\n\
                 [pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {listen}\n\
                 unix_socket_dir =\nauth_type = trust\nauth_file = {d}/users.txt\n\
                 pool_mode = transaction\ndefault_pool_size = 3\nmax_client_conn = 100\n\
                 ignore_startup_parameters = extra_float_digits{ignore}\n\
                 logfile = {d}/log\npidfile = {d}/pid\n",
                d = dir.display()
            ),
        )
        .unwrap();
        let program = ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or("pgbouncer");
        // pgbouncer refuses to run as root, as PostgreSQL does
        let root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
        let mut cmd = if root {
            Command::new("chown")
                .args(["-R", "postgres"])
                .arg(&dir)
                .status()
                .unwrap();
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", program]);
            c
        } else {
            Command::new(program)
        };
        let out = cmd.arg("-d").arg(&ini).output().unwrap_or_else(|e| {
            panic!("starting pgbouncer ({program}): {e}; install it (apt-get install pgbouncer; .ci/run does)")
        });
        assert!(
            out.status.success(),
            "pgbouncer: {}{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(dir.join("log")).unwrap_or_default()
        );
        // `-d` returns once it has forked, maybe before it listens
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", listen)).is_ok() {
                return Bouncer { dir, port: listen };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "pgbouncer does not listen on port {listen}: {}",
            std::fs::read_to_string(dir.join("log")).unwrap_or_default()
        );
    }

    fn url(&self, dbname: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname={dbname}",
            self.port
        )
    }
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A plain session through the pooler.
async fn through(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

/// The one value of a simple query's first row, as text.
async fn one(client: &tokio_postgres::Client, sql: &str) -> Option<String> {
    client
        .simple_query(sql)
        .await
        .unwrap()
        .into_iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_string)),
            _ => None,
        })
        .flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sql_api_runs_through_a_pooler_in_transaction_mode() {
    let db = TestDb::new().await;
    let users = 1000;
    let decant = db.game(users).await;
    let direct = db.client().await;
    // writes through SQL migrate the rollout's users on demand
    decant
        .set_control(&"rollout=100".parse::<decant::Setting>().unwrap())
        .await
        .unwrap();
    let start = |ignore_options| {
        let url = db.url.clone();
        tokio::task::spawn_blocking(move || Bouncer::start(&url, ignore_options))
    };
    let bouncer = start(false).await.unwrap();
    let url = bouncer.url(db.name());

    // decant's own sessions: refused by the pooler, with what to do
    let spec = crate::example::spec();
    let pooled = decant::Decant::connect(&url, spec, 2).unwrap();
    let err = pooled.load(1i64).await.unwrap_err().to_string();
    assert!(
        err.contains("startup parameter")
            && err.contains("connect them to PostgreSQL directly")
            && err.contains("SQL API"),
        "{err}"
    );

    // told to ignore them, it drops the session's limits: refused too
    let dropping = start(true).await.unwrap();
    let pooled =
        decant::Decant::connect(&dropping.url(db.name()), crate::example::spec(), 2).unwrap();
    let err = pooled.load(1i64).await.unwrap_err();
    assert!(!err.is_retryable());
    let err = err.to_string();
    assert!(
        err.contains("a new session has lock_timeout")
            && err.contains("dropped them")
            && err.contains("SQL API"),
        "{err}"
    );
    drop(dropping);

    // four backends patching random users through three pooled server
    // sessions; the daemon, connected directly, starts once each has
    // written ten (migrating those users on demand); each writes 150 (the
    // daemon yields to them, and ends once they stop)
    let started = std::sync::Arc::new(tokio::sync::Barrier::new(5));
    let mut writers = Vec::new();
    for w in 0..4u64 {
        let (url, started) = (url.clone(), started.clone());
        writers.push(tokio::spawn(async move {
            let client = through(&url).await;
            let mut acked = Vec::new();
            let mut seed = w * 7919 + 1;
            while acked.len() < 150 {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let user = (seed >> 33) as i64 % users + 1;
                let key = format!("pz{w}_{}", acked.len());
                let n = acked.len() as i64;
                client
                    .simple_query(&format!(
                        "BEGIN; SELECT decant.patch({user}, '{{\"{key}\": {n}}}'::jsonb); COMMIT"
                    ))
                    .await
                    .unwrap();
                acked.push((user, key.clone(), n));
                // read back through the pooler, maybe on another session
                let seen = one(&client, &format!("SELECT decant.load({user}) ->> '{key}'")).await;
                assert_eq!(seen, Some(n.to_string()), "user {user} key {key}");
                if acked.len() == 10 {
                    started.wait().await;
                }
            }
            acked
        }));
    }
    started.wait().await;
    let report = crate::harness::run_all(&decant).await.unwrap();
    let mut acked = Vec::new();
    for w in writers {
        acked.extend(w.await.unwrap());
    }
    assert_eq!(acked.len(), 600);

    // every acknowledged write is in the user's blob, read directly; every
    // user is migrated now (by the daemon or on demand)
    for (user, key, n) in &acked {
        let row = direct
            .query_one(
                "SELECT (decant.load($1::bigint) ->> $2)::bigint",
                &[user, key],
            )
            .await
            .unwrap();
        assert_eq!(
            row.get::<_, Option<i64>>(0),
            Some(*n),
            "user {user} key {key}"
        );
    }
    let legacy: i64 = direct
        .query_one(
            "SELECT count(*) FROM \"user\" WHERE NOT migrated AND id NOT IN \
             (SELECT user_id FROM decant.user_state WHERE state = 'failed')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(legacy, 0);
    // the first forty writes migrated their users on demand: the daemon
    // found them migrated
    let migrated: i64 = direct
        .query_one("SELECT count(*) FROM \"user\" WHERE migrated", &[])
        .await
        .unwrap()
        .get(0);
    let on_demand = migrated as u64 - report.migrated;
    assert!(on_demand >= 20, "{on_demand} migrated on demand");
    drop(bouncer);
}
