//! A throwaway PostgreSQL cluster started from the local server binaries
//! (`initdb`, `pg_ctl`), for tests, the demo and benchmarks.
//!
//! It listens on a unix socket in its own temporary directory (no port is
//! taken). As root it runs as the `postgres` OS user, since PostgreSQL
//! refuses to run as root. A watchdog process stops the cluster and removes
//! its directory when the process that started it exits, however it exits
//! (a failed test, a panic, `kill -9`).

use anyhow::{Result, anyhow};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Options for [`TempCluster::start`].
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// `fsync` on (true: durable and realistic for benchmarks; default false,
    /// faster for tests).
    pub fsync: bool,
    /// `max_connections` (default 100).
    pub max_connections: u32,
    /// `shared_buffers` (default "256MB").
    pub shared_buffers: String,
    /// Also listen on 127.0.0.1 at this port, with TLS from these PEM
    /// files (certificate, key), for the TLS tests (default: Unix socket
    /// only).
    pub tls: Option<(u16, PathBuf, PathBuf)>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            fsync: false,
            max_connections: 100,
            shared_buffers: "256MB".into(),
            tls: None,
        }
    }
}

/// A running throwaway cluster; stopped and removed on drop.
#[derive(Debug)]
pub struct TempCluster {
    dir: PathBuf,
    run_as_postgres: bool,
}

const PORT: u16 = 5432;

impl TempCluster {
    /// Creates and starts a cluster (blocking; a second or two).
    pub fn start(opts: &ClusterOptions) -> Result<TempCluster> {
        let run_as_postgres = is_root();
        let bindir = find_bindir()?;
        let dir = make_dir(run_as_postgres)?;
        let cluster = TempCluster {
            dir: dir.clone(),
            run_as_postgres,
        };
        cluster.watchdog(&bindir)?;
        let data = dir.join("data");
        let mut initdb = Command::new(bindir.join("initdb"));
        initdb.arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-locale",
        ]);
        if !opts.fsync {
            initdb.arg("--no-sync");
        }
        cluster.run(&mut initdb, "initdb")?;
        let (port, listen) = match &opts.tls {
            Some((port, cert, key)) => (
                *port,
                format!(
                    "-c listen_addresses='localhost' -c ssl=on -c ssl_cert_file='{}' -c ssl_key_file='{}'",
                    cert.display(),
                    key.display()
                ),
            ),
            None => (PORT, "-c listen_addresses=''".to_string()),
        };
        let settings = format!(
            "-k {} -p {port} {listen} -c fsync={} -c synchronous_commit={} \
             -c full_page_writes={} -c max_connections={} -c shared_buffers={} \
             -c max_wal_size=4GB -c checkpoint_timeout=30min",
            dir.display(),
            on(opts.fsync),
            on(opts.fsync),
            on(opts.fsync),
            opts.max_connections,
            opts.shared_buffers
        );
        cluster.pg_ctl_start(&bindir, &settings, "pg_ctl start")?;
        tracing::debug!(dir = %dir.display(), "throwaway cluster started");
        Ok(cluster)
    }

    /// A hot standby of this cluster, started: a base backup of it (`-R`,
    /// so it streams from it) in a directory of its own (blocking). For the
    /// tests of what must run on a replica.
    #[allow(dead_code)]
    pub fn standby(&self) -> Result<TempCluster> {
        let bindir = find_bindir()?;
        let dir = make_dir(self.run_as_postgres)?;
        let standby = TempCluster {
            dir: dir.clone(),
            run_as_postgres: self.run_as_postgres,
        };
        standby.watchdog(&bindir)?;
        let data = dir.join("data");
        standby.run(
            Command::new(tool(&bindir, "pg_basebackup"))
                .arg("-h")
                .arg(&self.dir)
                .args([
                    "-p",
                    &PORT.to_string(),
                    "-U",
                    "postgres",
                    "-R",
                    "-X",
                    "stream",
                    "-c",
                    "fast",
                    "-D",
                ])
                .arg(&data),
            "pg_basebackup",
        )?;
        let settings = format!(
            "-k {} -p {PORT} -c listen_addresses='' -c hot_standby=on",
            dir.display()
        );
        standby.pg_ctl_start(&bindir, &settings, "pg_ctl start (standby)")?;
        Ok(standby)
    }

    /// Stops the server (`pg_ctl stop -m <mode>`: `fast` or `immediate`,
    /// a crash), keeping the data directory, for the fault tests
    /// (blocking).
    #[allow(dead_code)]
    pub fn halt(&self, mode: &str) -> Result<()> {
        let bindir = find_bindir()?;
        self.run(
            Command::new(bindir.join("pg_ctl"))
                .arg("-D")
                .arg(self.dir.join("data"))
                .args(["-m", mode, "-w", "stop"]),
            "pg_ctl stop",
        )
    }

    /// Starts a halted server again with the settings it last ran with
    /// (`pg_ctl restart` reuses them; blocking until it accepts
    /// connections, after crash recovery when halted `immediate`).
    #[allow(dead_code)]
    pub fn resume(&self) -> Result<()> {
        let bindir = find_bindir()?;
        self.run(
            Command::new(bindir.join("pg_ctl"))
                .arg("-D")
                .arg(self.dir.join("data"))
                .arg("-l")
                .arg(self.dir.join("log"))
                .args(["-w", "-t", "60", "restart"]),
            "pg_ctl restart",
        )
    }

    /// Freezes (`stop`) or thaws the server: SIGSTOP or SIGCONT to the
    /// postmaster and each of its children, for the fault tests (a server
    /// that stops answering mid-statement).
    #[allow(dead_code)]
    pub fn freeze(&self, stop: bool) -> Result<()> {
        let pidfile = self.dir.join("data").join("postmaster.pid");
        let text = std::fs::read_to_string(&pidfile)
            .map_err(|e| anyhow!("reading {}: {e}", pidfile.display()))?;
        let postmaster: i32 = text.lines().next().unwrap_or("").trim().parse()?;
        // the children by their parent, field 4 of /proc/<pid>/stat (after
        // the command name in parentheses)
        let children = std::fs::read_dir("/proc")?.filter_map(|e| {
            let pid: i32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let ppid: i32 = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            (ppid == postmaster).then_some(pid)
        });
        let signal = if stop { libc::SIGSTOP } else { libc::SIGCONT };
        // the postmaster first: no child starts meanwhile
        for pid in std::iter::once(postmaster).chain(children.collect::<Vec<_>>()) {
            // SAFETY: kill(2) with a pid and a signal number has no memory
            // effects in this process
            unsafe { libc::kill(pid, signal) };
        }
        Ok(())
    }

    /// A connection string to database `db` of this cluster.
    pub fn url(&self, db: &str) -> String {
        format!(
            "host={} port={PORT} user=postgres dbname={db}",
            self.dir.display()
        )
    }

    /// Starts the server of this cluster's data directory with `settings`
    /// and waits until it accepts connections.
    fn pg_ctl_start(&self, bindir: &Path, settings: &str, what: &str) -> Result<()> {
        self.run(
            Command::new(bindir.join("pg_ctl"))
                .arg("-D")
                .arg(self.dir.join("data"))
                .arg("-l")
                .arg(self.dir.join("log"))
                .args(["-w", "-t", "60", "-o", settings, "start"]),
            what,
        )
    }

    fn run(&self, cmd: &mut Command, what: &str) -> Result<()> {
        let mut cmd = if self.run_as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"])
                .arg(cmd.get_program())
                .args(cmd.get_args());
            c
        } else {
            std::mem::replace(cmd, Command::new("true"))
        };
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .map_err(|e| anyhow!(format!("{what}: {e}")))?;
        if !out.status.success() {
            return Err(anyhow!(format!(
                "{what} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
            )));
        }
        Ok(())
    }

    /// Starts a detached shell that waits for this process to exit, then
    /// stops the cluster and removes its directory.
    fn watchdog(&self, bindir: &Path) -> Result<()> {
        let dir = self.dir.display().to_string();
        let pg_ctl = bindir.join("pg_ctl").display().to_string();
        let as_pg = if self.run_as_postgres {
            "runuser -u postgres -- "
        } else {
            ""
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; \
             {as_pg}{pg_ctl} -D '{dir}/data' -m immediate -w stop >/dev/null 2>&1; rm -rf '{dir}'",
            pid = std::process::id()
        );
        let mut cmd = Command::new("sh");
        cmd.args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd.spawn()
            .map_err(|e| anyhow!(format!("starting the watchdog: {e}")))?;
        Ok(())
    }

    /// Stops the cluster now and removes its directory.
    pub fn stop(&self) {
        if let Ok(bindir) = find_bindir() {
            let _ = self.run(
                Command::new(bindir.join("pg_ctl"))
                    .arg("-D")
                    .arg(self.dir.join("data"))
                    .args(["-m", "fast", "-w", "stop"]),
                "pg_ctl stop",
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for TempCluster {
    fn drop(&mut self) {
        if self.dir.exists() {
            self.stop();
        }
    }
}

fn on(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Finds the directory of `initdb` and `pg_ctl`: `$PG_BINDIR`, then `PATH`,
/// then Debian's `/usr/lib/postgresql/<newest>/bin`.
pub fn find_bindir() -> Result<PathBuf> {
    if let Ok(dir) = std::env::var("PG_BINDIR") {
        return Ok(PathBuf::from(dir));
    }
    let has = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    if let Some(path) = std::env::var_os("PATH") {
        if let Some(d) = std::env::split_paths(&path).find(|d| has(d)) {
            return Ok(d);
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|d| has(d))
        .collect();
    versions.sort();
    versions.pop().ok_or_else(|| {
        anyhow!(
            "no initdb/pg_ctl found (PATH, PG_BINDIR, /usr/lib/postgresql/*/bin); \
             install the PostgreSQL server (apt-get install postgresql) or set DATABASE_URL"
        )
    })
}

/// A connection string for a child process (`psql`, `pg_restore`,
/// `pgbench`) and the password taken out of it: a command line is readable
/// by every local user (`ps`, `/proc/*/cmdline`), so the password goes to
/// the child in `PGPASSWORD` (see [`with_password`]). Either form: a URL
/// (`postgres://user:secret@host/db?password=...`) or `key=value` pairs.
pub fn child_target(url: &str) -> Result<(String, Option<String>)> {
    let password = url
        .parse::<tokio_postgres::Config>()
        .map_err(|e| anyhow!("bad connection string: {e}"))?
        .get_password()
        .map(|p| String::from_utf8_lossy(p).into_owned());
    let Some(password) = password else {
        return Ok((url.to_string(), None));
    };
    let stripped = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let scheme = url.find("://").expect("a URL") + 3;
        let (base, query) = match url.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (url, None),
        };
        let authority_end = base[scheme..].find('/').map_or(base.len(), |i| scheme + i);
        let mut out = base[..scheme].to_string();
        let authority = &base[scheme..authority_end];
        match authority.rsplit_once('@') {
            Some((userinfo, hosts)) => {
                out.push_str(userinfo.split(':').next().unwrap_or(""));
                out.push('@');
                out.push_str(hosts);
            }
            None => out.push_str(authority),
        }
        out.push_str(&base[authority_end..]);
        if let Some(q) = query {
            let kept: Vec<&str> = q
                .split('&')
                .filter(|p| !p.starts_with("password="))
                .collect();
            if !kept.is_empty() {
                out.push('?');
                out.push_str(&kept.join("&"));
            }
        }
        out
    } else {
        key_value_pairs(url)
            .ok_or_else(|| anyhow!("cannot read the connection string's key=value pairs"))?
            .into_iter()
            .filter(|(key, _)| *key != "password")
            .map(|(_, pair)| pair)
            .collect::<Vec<_>>()
            .join(" ")
    };
    // taken out for sure, or nothing is started with it
    let left = stripped
        .parse::<tokio_postgres::Config>()
        .map_err(|e| anyhow!("bad connection string: {e}"))?;
    if left.get_password().is_some() {
        return Err(anyhow!(
            "cannot take the password out of the connection string for psql/pg_restore (a \
             command line is readable by every local user): give it in PGPASSWORD or a password \
             file (~/.pgpass) instead"
        ));
    }
    Ok((stripped, Some(password)))
}

/// `key=value` pairs as libpq reads them (spaces around `=`, values in
/// single quotes with backslash escapes): each key with its pair's text.
fn key_value_pairs(s: &str) -> Option<Vec<(&str, &str)>> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == b.len() {
            return Some(out);
        }
        let start = i;
        while i < b.len() && b[i] != b'=' && !b[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = &s[start..i];
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == b.len() || b[i] != b'=' || key.is_empty() {
            return None;
        }
        i += 1;
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i < b.len() && b[i] == b'\'' {
            i += 1;
            loop {
                match b.get(i)? {
                    b'\\' => i += 2,
                    b'\'' => {
                        i += 1;
                        break;
                    }
                    _ => i += 1,
                }
            }
        } else {
            while i < b.len() && !b[i].is_ascii_whitespace() {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
        }
        out.push((key, s.get(start..i.min(b.len()))?));
    }
}

/// `cmd` with `password` (from [`child_target`]) in its environment.
pub fn with_password<'a>(cmd: &'a mut Command, password: &Option<String>) -> &'a mut Command {
    if let Some(p) = password {
        cmd.env("PGPASSWORD", p);
    }
    cmd
}

/// A client program of the server's version (`pg_basebackup`,
/// `pg_restore`): beside `initdb`, beside where its link points, or else
/// the one on `PATH`.
pub fn tool(bindir: &Path, name: &str) -> PathBuf {
    let here = bindir.join(name);
    if here.is_file() {
        return here;
    }
    std::fs::canonicalize(bindir.join("initdb"))
        .ok()
        .and_then(|p| p.parent().map(|d| d.join(name)))
        .filter(|p| p.is_file())
        .or_else(|| {
            std::env::split_paths(&std::env::var_os("PATH")?)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        })
        .unwrap_or(here)
}

fn make_dir(for_postgres: bool) -> Result<PathBuf> {
    let base = std::env::temp_dir();
    for n in 0..1000u32 {
        let dir = base.join(format!("decant-pg-{}-{n}", std::process::id()));
        match std::fs::create_dir(&dir) {
            Ok(()) => {
                if for_postgres {
                    let ok = Command::new("chown")
                        .arg("postgres:postgres")
                        .arg(&dir)
                        .status()
                        .map(|s| s.success())
                        .unwrap_or(false);
                    if !ok {
                        return Err(anyhow!(
                            "running as root needs an OS user `postgres` to own the cluster"
                        ));
                    }
                }
                return Ok(dir);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!("creating {}", dir.display())));
            }
        }
    }
    Err(anyhow!("cannot create a temporary directory"))
}

#[cfg(test)]
mod tests {
    use super::child_target;

    #[test]
    fn a_child_s_connection_string_carries_no_password() {
        for (url, want) in [
            (
                "postgres://ops:S3cret%40x@db.example:5433/game?sslmode=require",
                "postgres://ops@db.example:5433/game?sslmode=require",
            ),
            (
                "postgresql://ops:pw@/game?host=/tmp/s&password=other&port=5601",
                "postgresql://ops@/game?host=/tmp/s&port=5601",
            ),
            (
                "host=/tmp/s port=5601 user=ops password='it\\'s \\\\ x' dbname=game",
                "host=/tmp/s port=5601 user=ops dbname=game",
            ),
            ("host=db password = pw dbname=game", "host=db dbname=game"),
        ] {
            let (stripped, password) = child_target(url).unwrap();
            assert_eq!(stripped, want, "{url}");
            assert!(password.is_some(), "{url}");
        }
        let (same, none) = child_target("postgres://ops@db/game").unwrap();
        assert_eq!((same.as_str(), none), ("postgres://ops@db/game", None));
        assert_eq!(
            child_target("host=db password=pw dbname=game")
                .unwrap()
                .1
                .as_deref(),
            Some("pw")
        );
    }
}
