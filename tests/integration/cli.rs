use crate::harness::{TestDb, is_migrated};
use std::process::Command;

/// `decant args` in `dir`, with `url` as DATABASE_URL (none: unset).
fn command(args: &[&str], url: Option<&str>, dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_decant"));
    cmd.args(args)
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .env_remove("DATABASE_URL");
    if let Some(url) = url {
        cmd.env("DATABASE_URL", url);
    }
    cmd
}

fn decant(args: &[&str], url: Option<&str>, dir: &std::path::Path) -> (bool, String, String) {
    let out = command(args, url, dir).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The exit status of `decant args` (None: killed by a signal) and its
/// stderr.
fn decant_status(args: &[&str], url: Option<&str>, dir: &std::path::Path) -> (Option<i32>, String) {
    let out = command(args, url, dir).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("decant-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn schema_init_migrate_rollback_from_the_command_line() {
    let db = TestDb::new().await;
    let client = db.client().await;
    crate::example::load(&client, 20, 1).await.unwrap();
    let dir = temp_dir("flow");
    std::fs::write(dir.join("decant.toml"), crate::example::SPEC).unwrap();

    let (ok, out, err) = decant(&["schema"], None, &dir);
    assert!(ok, "{err}");
    assert!(
        out.contains("CREATE TABLE IF NOT EXISTS \"public\".\"user_statistic\""),
        "{out}"
    );

    let (ok, out, err) = decant(&["views"], None, &dir);
    assert!(ok, "{err}");
    assert!(
        out.contains("CREATE OR REPLACE VIEW \"public\".\"user_statistic_all\""),
        "{out}"
    );

    let (ok, out, err) = decant(&["grants", "app"], None, &dir);
    assert!(ok, "{err}");
    assert!(
        out.contains("GRANT SELECT, UPDATE ON \"public\".\"user\" TO \"app\";"),
        "{out}"
    );

    let (ok, out, err) = decant(&["init"], Some(&db.url), &dir);
    assert!(ok, "{err}");
    assert!(out.contains("initialized"));
    // run again (idempotent), it prints no "already exists" notices
    let again = Command::new(env!("CARGO_BIN_EXE_decant"))
        .arg("init")
        .current_dir(&dir)
        .env("RUST_LOG", "info")
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    let again_err = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{again_err}");
    assert!(!again_err.contains("NOTICE"), "{again_err}");
    // init created the views: every user's statistics, all legacy now
    let n: i64 = client
        .query_one(
            "SELECT count(DISTINCT user_id) FROM user_statistic_all",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(n >= 19, "{n}");

    let (ok, out, err) = decant(&["migrate", "--user", "2"], Some(&db.url), &dir);
    assert!(ok, "{err}");
    assert!(out.contains("user 2: migrated"), "{out}");
    assert!(is_migrated(&client, 2).await);

    let (ok, out, err) = decant(&["rollback", "--user", "2"], Some(&db.url), &dir);
    assert!(ok, "{err}");
    assert!(out.contains("user 2: rolled back"), "{out}");
    assert!(!is_migrated(&client, 2).await);
    // a cohort rollback may turn the throttle off, as `run` may; migrating
    // the held user by hand says it ends the hold
    let (ok, out, err) = decant(&["migrate", "--user", "2"], Some(&db.url), &dir);
    assert!(ok, "{err}");
    assert!(out.contains("migrating it by hand ended the hold"), "{out}");
    let (code, err) = decant_status(
        &["rollback", "--all", "--load-yield=-1"],
        Some(&db.url),
        &dir,
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--load-yield -1"), "{err}");
    let (code, err) = decant_status(
        &["rollback", "--all", "--max-replica-lag=-1"],
        Some(&db.url),
        &dir,
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--max-replica-lag -1"), "{err}");
    let out = command(
        &[
            "rollback",
            "--all",
            "--max-commit-slowdown",
            "0",
            "--load-yield",
            "0",
            "--max-replica-lag",
            "0",
        ],
        Some(&db.url),
        &dir,
    )
    .env("RUST_LOG", "info")
    .output()
    .unwrap();
    let (ok, out, err) = (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(ok, "{err}");
    assert!(out.contains("done: 1 user rolled back"), "{out}");
    // a rollback writes no rows: its log line says none (`rows=0` read
    // as nothing done)
    assert!(
        err.contains("daemon stopped") && err.contains("done=1") && !err.contains("rows="),
        "{err}"
    );
    assert!(!is_migrated(&client, 2).await);

    let (ok, _, err) = decant(&["migrate", "--user", "424242"], Some(&db.url), &dir);
    assert!(!ok);
    assert!(err.contains("error: user 424242: no such user"), "{err}");
    // a negative id as the next argument, not an option
    client
        .batch_execute("INSERT INTO \"user\" (id, name, data) VALUES (-5, 'neg', '{\"xp\": 3}')")
        .await
        .unwrap();
    for (args, says) in [
        (["migrate", "--user", "-5"], "user -5: migrated"),
        (["rollback", "--user", "-5"], "user -5: rolled back"),
        (["release", "--user", "-5"], "released 1 held user:"),
    ] {
        let (ok, out, err) = decant(&args, Some(&db.url), &dir);
        assert!(ok && out.contains(says), "{args:?}: {out}{err}");
    }

    let dirty = (1..=20).find(|&i| crate::example::user(1, i).dirt.is_some());
    if let Some(dirty) = dirty {
        let (ok, _, err) = decant(
            &["migrate", "--user", &dirty.to_string()],
            Some(&db.url),
            &dir,
        );
        assert!(!ok);
        assert!(
            err.contains("rule `") && err.contains("stays legacy"),
            "{err}"
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_input_is_refused_with_a_clear_error() {
    let dir = temp_dir("bad");
    let (ok, _, err) = decant(&["schema"], None, &dir);
    assert!(!ok);
    assert!(
        err.contains("decant.toml") && err.matches("No such file").count() == 1,
        "{err}"
    );

    let broken =
        crate::example::SPEC.replace("type = \"int4\", min = 0", "type = \"int44\", min = 0");
    std::fs::write(dir.join("decant.toml"), &broken).unwrap();
    let line = broken.lines().position(|l| l.contains("int44")).unwrap() + 1;
    let (ok, _, err) = decant(&["schema"], None, &dir);
    assert!(!ok);
    assert!(
        err.contains(&format!(
            "decant.toml:{line}: table `user_achievement` column `progress`: unknown type `int44`"
        )),
        "{err}"
    );

    std::fs::write(dir.join("decant.toml"), crate::example::SPEC).unwrap();
    let (ok, _, err) = decant(&["init"], None, &dir);
    assert!(!ok);
    assert!(err.contains("no database"), "{err}");
    let (ok, _, err) = decant(
        &["init"],
        Some("postgres://x:y@localhost:notaport/db"),
        &dir,
    );
    assert!(!ok);
    assert!(err.contains("bad connection string"), "{err}");

    // daemon settings that cannot work are refused, not clamped
    for (args, says) in [
        (
            &["run", "--workers", "0"][..],
            "--workers must be at least 1",
        ),
        (&["run", "--workers", "100000"][..], "use at most 64"),
        (
            &["run", "--max-batch", "0"][..],
            "--max-batch must be at least 1",
        ),
        (&["run", "--target-batch-ms", "0"][..], "must be at least 1"),
        (
            &["run", "--max-replica-lag", "inf"][..],
            "--max-replica-lag inf",
        ),
        (&["run", "--max-replica-lag=-1"][..], "--max-replica-lag -1"),
        (
            &["run", "--load-yield=-1"][..],
            "--load-yield -1: give a power",
        ),
        (&["run", "--load-yield", "NaN"][..], "--load-yield NaN"),
    ] {
        let (code, err) = decant_status(args, Some("postgres://localhost/db"), &dir);
        assert_eq!(code, Some(2), "{args:?}: a bad argument exits 2; {err}");
        assert!(
            err.contains(says) && !err.contains("panicked"),
            "{args:?}: {err}"
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn live_control_and_status_from_the_command_line() {
    let db = TestDb::new().await;
    let client = db.client().await;
    crate::example::load(&client, 30, 1).await.unwrap();
    let dir = temp_dir("control");
    std::fs::write(dir.join("decant.toml"), crate::example::SPEC).unwrap();
    let url = Some(db.url.as_str());
    assert!(decant(&["init"], url, &dir).0);

    let (ok, _, err) = decant(&["set", "rate=50/s", "rollout=10", "allow=3,4"], url, &dir);
    assert!(ok, "{err}");
    let (ok, _, err) = decant(&["pause"], url, &dir);
    assert!(ok, "{err}");
    let (ok, out, err) = decant(&["migrate", "--user", "2"], url, &dir);
    assert!(ok, "{err}");
    assert!(
        out.contains("migrated"),
        "pause holds the daemon, not explicit migrations: {out}"
    );

    let (ok, out, err) = decant(&["status", "--json"], url, &dir);
    assert!(ok, "{err}");
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["paused"], true);
    assert_eq!(status["rate"], "50/s");
    assert_eq!(status["rollout_percent"], 10.0);
    assert_eq!(status["allow_list"], 2);
    assert_eq!(status["users"], 30);
    assert_eq!(status["migrated"], 1);
    assert_eq!(status["legacy"], 29);

    let (ok, _, _) = decant(&["resume"], url, &dir);
    assert!(ok);
    let (ok, out, _) = decant(
        &[
            "status",
            "--window",
            "01:00-05:00",
            "--tz",
            "Asia/Kathmandu",
        ],
        url,
        &dir,
    );
    assert!(ok);
    assert!(
        out.contains("users      30") && !out.contains("PAUSED"),
        "{out}"
    );

    // control commands and status need only the database: elsewhere, with
    // no spec file, status reads the spec init recorded
    let elsewhere = temp_dir("control-nospec");
    for args in [&["pause"][..], &["set", "rate=20/s"], &["resume"]] {
        let (ok, _, err) = decant(args, url, &elsewhere);
        assert!(ok, "{args:?}: {err}");
    }
    let (ok, out, err) = decant(&["status", "--json"], url, &elsewhere);
    assert!(ok, "{err}");
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (status["users"].clone(), status["rate"].clone()),
        (30.into(), "20/s".into())
    );
    // a spec named on the command line must be there
    let (code, err) = decant_status(&["status", "--spec", "mine.toml"], url, &elsewhere);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("mine.toml"), "{err}");
    client
        .batch_execute("UPDATE decant.control SET spec_text = NULL")
        .await
        .unwrap();
    let (code, err) = decant_status(&["status"], url, &elsewhere);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no spec recorded"), "{err}");
    std::fs::remove_dir_all(elsewhere).unwrap();

    let (ok, _, err) = decant(&["set", "speed=3"], url, &dir);
    assert!(!ok);
    assert!(err.contains("unknown setting `speed`"), "{err}");
    let (ok, _, err) = decant(&["run", "--rate", "fast"], url, &dir);
    assert!(!ok);
    assert!(err.contains("expected N/s, N/min or max"), "{err}");
    // a bad argument's status, 2, as a bad --window (it was 1)
    let (code, err) = decant_status(&["run", "--tz", "Mars/Olympus"], url, &dir);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--tz: time zone `Mars/Olympus`"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn check_from_the_command_line() {
    let db = TestDb::new().await;
    let client = db.client().await;
    crate::example::load(&client, 400, 1).await.unwrap();
    let dir = temp_dir("check");
    std::fs::write(dir.join("decant.toml"), crate::example::SPEC).unwrap();
    let (ok, _, err) = decant(&["init"], Some(&db.url), &dir);
    assert!(ok, "{err}");
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_decant"))
            .args(args)
            .current_dir(&dir)
            .env("RUST_LOG", "warn")
            .env("DATABASE_URL", &db.url)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    // dirty users would fail: the report says which, exit status 3
    let (code, out, err) = run(&["check"]);
    assert_eq!(code, Some(3), "{out}{err}");
    assert!(
        out.contains("would fail") && out.contains("failures (rule"),
        "{out}"
    );
    assert!(out.contains("$.legacyCoins"), "{out}");
    let (code, out, _) = run(&["check", "--json"]);
    assert_eq!(code, Some(3));
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["users"], 400);
    assert!(json["would_fail"].as_u64().unwrap() > 0);
    assert!(json["failures"][0]["examples"][0]["id"].is_i64());

    // a dry run of the daemon's first batch: reported, nothing written
    let (code, out, err) = run(&["run", "--dry-run", "--dry-run-batch", "50"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("claimed 50 users (ids 1 to 50)"), "{out}");
    // a failing user named once on its line
    for line in out.lines().filter(|l| l.starts_with("  user ")) {
        let (who, rest) = line.trim_start().split_once(':').unwrap();
        assert!(!rest.trim_start().starts_with(&format!("{who}:")), "{line}");
    }
    assert!(
        out.contains("would migrate") && out.contains("nothing written"),
        "{out}"
    );
    let migrated: i64 = client
        .query_one("SELECT count(*) FROM \"user\" WHERE migrated", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(migrated, 0);

    // only clean users: exit status 0
    let clean: Vec<String> = (1..=400)
        .filter(|&i| crate::example::user(1, i).dirt.is_none())
        .take(10)
        .map(|i| i.to_string())
        .collect();
    std::fs::write(
        dir.join("ids.txt"),
        format!("# clean users\n{}\n", clean.join(", ")),
    )
    .unwrap();
    let (code, out, err) = run(&["check", "--ids", "ids.txt"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("would fail                   0"), "{out}");

    // bad input: a clear error, exit status 2 (bad arguments)
    std::fs::write(dir.join("bad.txt"), "1\n2\nthree\n").unwrap();
    let (code, _, err) = run(&["check", "--ids", "bad.txt"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("bad.txt:3: `three` is not a user id"), "{err}");
    let (code, _, err) = run(&["check", "--ids", "ids.txt", "--sample", "5"]);
    assert_eq!(code, Some(2), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// `decant` with the libpq variables instead of a connection string.
fn decant_pg_env(
    args: &[&str],
    vars: &[(&str, String)],
    dir: &std::path::Path,
) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_decant"));
    cmd.args(args)
        .current_dir(dir)
        .env("RUST_LOG", "info")
        .env_remove("DATABASE_URL");
    for k in [
        "PGHOST",
        "PGPORT",
        "PGUSER",
        "PGDATABASE",
        "PGPASSWORD",
        "PGSSLMODE",
        "PGPASSFILE",
        "PGSERVICE",
        "PGSERVICEFILE",
        "PGSYSCONFDIR",
    ] {
        cmd.env_remove(k);
    }
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_libpq_variables_are_honoured_and_no_password_is_printed() {
    let db = TestDb::new().await;
    let client = db.client().await;
    crate::example::load(&client, 10, 1).await.unwrap();
    let dir = temp_dir("pgenv");
    std::fs::write(dir.join("decant.toml"), crate::example::SPEC).unwrap();
    let cfg: tokio_postgres::Config = db.url.parse().unwrap();
    let host = match &cfg.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(h) => h.clone(),
        tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
    };
    let secret = "hunter2-never-printed".to_string();
    let vars = vec![
        ("PGHOST", host),
        (
            "PGPORT",
            cfg.get_ports().first().copied().unwrap_or(5432).to_string(),
        ),
        ("PGUSER", cfg.get_user().unwrap().to_string()),
        ("PGDATABASE", cfg.get_dbname().unwrap().to_string()),
        ("PGPASSWORD", secret.clone()),
    ];
    let (ok, out, err) = decant_pg_env(&["init"], &vars, &dir);
    assert!(ok, "{err}");
    let (ok, out2, err2) = decant_pg_env(&["status"], &vars, &dir);
    assert!(ok, "{err2}");
    assert!(out2.contains("10"), "{out2}");
    // a database that does not exist: a clear error, still no password
    let mut wrong = vars.clone();
    wrong[3].1 = "no_such_database_here".into();
    let (ok, out3, err3) = decant_pg_env(&["status"], &wrong, &dir);
    assert!(!ok);
    assert!(err3.contains("no_such_database_here"), "{err3}");
    for text in [&out, &err, &out2, &err2, &out3, &err3] {
        assert!(!text.contains(&secret), "the password was printed: {text}");
    }
    // a connection service (libpq's pg_service.conf): named by PGSERVICE
    // or in the string, its parameters before the variables', the
    // string's before its own
    let services = dir.join("services.conf");
    let section = |name: &str, db: &str| {
        format!(
            "[{name}]\nhost={}\nport={}\nuser={}\ndbname={db}\n",
            vars[0].1, vars[1].1, vars[2].1
        )
    };
    std::fs::write(
        &services,
        format!(
            "# decant's test\n{}\n{}",
            section("other", "no_such_database_here"),
            section("game", &vars[3].1)
        ),
    )
    .unwrap();
    let file = ("PGSERVICEFILE", services.display().to_string());
    let (ok, out4, err4) = decant_pg_env(
        &["status"],
        &[
            file.clone(),
            ("PGSERVICE", "game".into()),
            ("PGDATABASE", "no_such_database_here".into()),
            ("PGPASSWORD", secret.clone()),
        ],
        &dir,
    );
    assert!(ok && out4.contains("10"), "{err4}");
    let by_string = |url: &str| {
        let out = command(&["status", "--database-url", url], None, &dir)
            .env(file.0, &file.1)
            .env_remove("PGSERVICE")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    for url in ["service=game", "postgresql:///?service=game"] {
        let (ok, err) = by_string(url);
        assert!(ok, "{url}: {err}");
    }
    let (ok, err) = by_string(&format!("service=other dbname={}", vars[3].1));
    assert!(ok, "{err}");
    let (ok, err) = by_string("service=other");
    assert!(!ok && err.contains("no_such_database_here"), "{err}");
    let (ok, err) = by_string("service=missing");
    assert!(
        !ok && err.contains("definition of service \"missing\" not found"),
        "{err}"
    );
    for text in [&out4, &err4] {
        assert!(!text.contains(&secret), "the password was printed: {text}");
    }
    // with none of them: says what to set
    let (ok, _, err) = decant_pg_env(&["status"], &[], &dir);
    assert!(!ok);
    assert!(
        err.contains("PGHOST") && err.contains("DATABASE_URL"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn exit_statuses_tell_the_outcomes_apart_and_logs_can_be_json() {
    let db = TestDb::new().await;
    let client = db.client().await;
    // one user whose blob is no object, one whose xp a `fail` rule
    // refuses: they fail
    crate::example::load(&client, 60, 1).await.unwrap();
    client
        .batch_execute(
            "INSERT INTO \"user\" (id, name, data) VALUES (1000, 'x', '[1, 2]'), \
             (1001, 'y', '{\"xp\": \"lots\"}')",
        )
        .await
        .unwrap();
    let dir = temp_dir("exits");
    std::fs::write(dir.join("decant.toml"), crate::example::SPEC).unwrap();
    let url = Some(db.url.as_str());

    let (code, err) = decant_status(&["init"], url, &dir);
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = decant_status(&["run", "--rate", "max"], url, &dir);
    assert_eq!(code, Some(3), "done with users failed: {err}");
    assert!(err.contains("stay legacy"), "{err}");
    // the run's log names each failed user (a failed rule's were logged
    // at debug only, unseen)
    let failed: Vec<i64> = client
        .query(
            "SELECT user_id FROM decant.user_state WHERE state = 'failed'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        failed.contains(&1000) && failed.contains(&1001),
        "{failed:?}"
    );
    for id in failed {
        assert!(
            err.contains(&format!("user={id} ")),
            "user {id} named: {err}"
        );
    }

    // a spec that does not parse, an id file without ids: 2
    std::fs::write(dir.join("bad.toml"), "[source\n").unwrap();
    let (code, err) = decant_status(&["schema", "--spec", "bad.toml"], None, &dir);
    assert_eq!(code, Some(2), "{err}");
    std::fs::write(dir.join("ids.txt"), "# nobody\n").unwrap();
    let (code, err) = decant_status(&["release", "--ids", "ids.txt"], url, &dir);
    assert_eq!(code, Some(2), "{err}");

    // nothing listens there: 4, with the cause
    let (code, err) = decant_status(
        &["status"],
        Some("postgres://nobody@127.0.0.1:1/db?connect_timeout=5"),
        &dir,
    );
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("refused"), "{err}");
    // where it was looked for, the cause said once
    assert!(
        err.contains("(connecting to host 127.0.0.1 port 1, user nobody, database db)"),
        "{err}"
    );
    assert_eq!(err.matches("refused").count(), 1, "{err}");
    // a role the server does not know: its message once, no "db error"
    let unknown = db.url_as("nobody_here");
    let (code, err) = decant_status(&["status"], Some(&unknown), &dir);
    assert_eq!(code, Some(4), "{err}");
    assert_eq!(
        err.matches("\"nobody_here\" does not exist").count(),
        1,
        "{err}"
    );
    assert!(!err.contains("db error"), "{err}");
    // an id that is no integer on an integer spec: a bad argument
    let (code, err) = decant_status(&["migrate", "--user", "abc"], url, &dir);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("id_type (integer"), "{err}");
    let (code, err) = decant_status(&["rollback", "--user", "abc"], url, &dir);
    assert_eq!(code, Some(2), "{err}");

    // JSON logs: one object per line, no colour codes
    let out = Command::new(env!("CARGO_BIN_EXE_decant"))
        .args(["--log-format", "json", "init"])
        .current_dir(&dir)
        .env("RUST_LOG", "info")
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(out.status.success());
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(!logs.trim().is_empty(), "init logs at info");
    for line in logs.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
    }
    assert!(!logs.contains('\u{1b}'));
    // the final error too is a JSON line, with the exit status (it was
    // plain `error: ...` text)
    let out = Command::new(env!("CARGO_BIN_EXE_decant"))
        .args(["--log-format", "json", "status"])
        .current_dir(&dir)
        .env(
            "DATABASE_URL",
            "postgres://nobody@127.0.0.1:1/db?connect_timeout=5",
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    let logs = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    let last = lines.last().expect("a line");
    assert_eq!(last["level"], "ERROR", "{logs}");
    assert_eq!(last["fields"]["exit_status"], 4, "{logs}");
    assert!(
        last["fields"]["message"]
            .as_str()
            .unwrap()
            .contains("refused"),
        "{logs}"
    );
    // an evolution re-migrates migrated users: the legacy user at the
    // attempt limit is not its failure
    client
        .batch_execute("UPDATE decant.user_state SET attempts = 1000 WHERE state = 'failed'")
        .await
        .unwrap();
    std::fs::write(
        dir.join("grown.toml"),
        format!(
            "{}\n[tables.user_coin.columns]\ncoins = \"int8\"\n\n\
             [[rules]]\nname = \"coins\"\npath = \"legacyCoins\"\ntable = \"user_coin\"\nvalue = \"coins\"\n",
            crate::example::SPEC
        ),
    )
    .unwrap();
    // status with a spec edited ahead of `init --evolve`: the recorded
    // mapping's, said so (it refused: "the spec's mapping differs")
    let out = Command::new(env!("CARGO_BIN_EXE_decant"))
        .args(["status", "--spec", "grown.toml"])
        .current_dir(&dir)
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    let (text, err) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{err}");
    assert!(text.contains("phase      migrating"), "{text}");
    assert!(
        err.contains("grown.toml maps otherwise than the mapping recorded by `decant init`"),
        "{err}"
    );
    // a backend role granted before the new table is told of
    let role = crate::harness::fresh_role(&client, "app_evolve").await;
    let (code, err) = decant_status(&["grants", &role, "--apply"], url, &dir);
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = decant_status(&["init", "--evolve", "--spec", "grown.toml"], url, &dir);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains(&format!("warning: {role} had decant's grants but lack")),
        "{err}"
    );
    let (code, err) = decant_status(
        &["grants", &role, "--apply", "--spec", "grown.toml"],
        url,
        &dir,
    );
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = decant_status(&["init", "--evolve", "--spec", "grown.toml"], url, &dir);
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("warning"), "{err}");
    client
        .batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
        .await
        .unwrap();
    // between `init --evolve` and `run --evolve`: the migrated users are
    // said to await it, not to have rows that "no longer rebuild their
    // blob" (check, finalize), nor status "done", nor a plain run silent
    let (_, out, err) = decant(&["status", "--spec", "grown.toml"], url, &dir);
    assert!(
        out.contains("evolving   ") && out.contains("`decant run --evolve` re-migrates them"),
        "{out}{err}"
    );
    let (_, out, err) = decant(&["check", "--spec", "grown.toml"], url, &dir);
    assert!(
        out.contains("migrated users awaiting `decant run --evolve` (not a failure)")
            && !out.contains("no longer rebuild"),
        "{out}{err}"
    );
    let (code, err) = decant_status(&["finalize", "--spec", "grown.toml"], url, &dir);
    assert_ne!(code, Some(0));
    assert!(
        err.contains("of the mapping before `decant init --evolve`")
            && !err.contains("no longer rebuild"),
        "{err}"
    );
    let (_, _, err) = decant(&["run", "--rate", "max", "--spec", "grown.toml"], url, &dir);
    assert!(
        err.contains("this run migrates legacy users only; `decant run --evolve` re-migrates them"),
        "{err}"
    );
    let (code, err) = decant_status(
        &["run", "--evolve", "--rate", "max", "--spec", "grown.toml"],
        url,
        &dir,
    );
    assert_eq!(code, Some(0), "an evolve run with nothing failed: {err}");
    let (_, out, err) = decant(&["check", "--spec", "grown.toml"], url, &dir);
    assert!(!out.contains("awaiting"), "{out}{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn example_refuses_a_user_table_it_did_not_create_unless_forced() {
    let db = TestDb::new().await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE \"user\" (id bigint PRIMARY KEY, name text NOT NULL, data jsonb NOT NULL); \
             INSERT INTO \"user\" VALUES (100000, 'real player', '{}')",
        )
        .await
        .unwrap();
    let dir = temp_dir("example-guard");
    let url = Some(db.url.as_str());
    let count = async || -> i64 {
        client
            .query_one("SELECT count(*) FROM \"user\"", &[])
            .await
            .unwrap()
            .get(0)
    };
    let (code, err) = decant_status(&["example", "--users", "5"], url, &dir);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("did not create") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(count().await, 1, "nothing was inserted");
    let (code, err) = decant_status(&["example", "--users", "5", "--force"], url, &dir);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(count().await, 6);

    // a table example made itself is its own to add to
    let fresh = TestDb::new().await;
    let (code, err) = decant_status(&["example", "--users", "5"], Some(&fresh.url), &dir);
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = decant_status(
        &["example", "--users", "5", "--spec", "other.toml"],
        Some(&fresh.url),
        &dir,
    );
    assert!(!err.contains("did not create"), "{code:?} {err}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// `decant example --example shop` loads the shop's customers and writes
/// its spec and fixups; init, run and status take it from there; an
/// unknown example is a usage error naming the choices.
#[tokio::test]
async fn the_shop_example_goes_through_the_command_line() {
    let db = TestDb::new().await;
    let dir = temp_dir("shop");
    let url = Some(db.url.as_str());
    let (ok, out, err) = decant(
        &["example", "--example", "shop", "--users", "300"],
        url,
        &dir,
    );
    assert!(ok, "{err}");
    assert!(out.contains("into \"customer\""), "{out}");
    let spec = std::fs::read_to_string(dir.join("decant.toml")).unwrap();
    assert_eq!(spec, crate::example::SHOP.spec);
    assert!(dir.join("fixups/0002-negative-orders.toml").exists());
    let (ok, _, err) = decant(&["init"], url, &dir);
    assert!(ok, "{err}");
    // the census names the over-long tags it would keep
    let (ok, out, err) = decant(&["check"], url, &dir);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("tags at tags[{position}]: expected at most 24 characters"),
        "{out}"
    );
    let (ok, out, err) = decant(&["run", "--rate", "max"], url, &dir);
    assert!(ok, "{out}{err}");
    assert!(
        out.starts_with("done: 300 users migrated, 0 failed"),
        "{out}"
    );
    let (ok, out, err) = decant(&["status"], url, &dir);
    assert!(ok && out.contains("300"), "{out}{err}");
    let (code, err) = decant_status(&["example", "--example", "bakery"], url, &dir);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("game (") && err.contains("shop ("), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_serves_prometheus_metrics_while_it_runs() {
    use std::io::{Read, Write};
    let db = TestDb::new().await;
    let client = db.client().await;
    crate::example::load(&client, 400, 1).await.unwrap();
    let dir = temp_dir("metrics");
    std::fs::write(dir.join("decant.toml"), crate::example::SPEC).unwrap();
    let (ok, _, err) = decant(&["init"], Some(&db.url), &dir);
    assert!(ok, "{err}");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let child = Command::new(env!("CARGO_BIN_EXE_decant"))
        .args(["run", "--rate", "50/s", "--metrics-addr", &addr])
        .current_dir(&dir)
        .env("RUST_LOG", "warn")
        .env("DATABASE_URL", &db.url)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let scrape = move |path: &str| -> String {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    // scraped until the first batch shows (the commit probe may hold the
    // daemon back a while when other tests load the shared server: CI once
    // saw no batch in a fixed 2.5 s), then once more for the 404
    let page = tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        let mut metrics = String::new();
        while started.elapsed() < std::time::Duration::from_secs(30) {
            std::thread::sleep(std::time::Duration::from_millis(500));
            metrics = scrape("/metrics");
            if metrics
                .lines()
                .any(|l| l.starts_with("decant_batch_seconds_count ") && !l.ends_with(" 0"))
            {
                break;
            }
        }
        (metrics, scrape("/other"))
    })
    .await
    .unwrap();
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let (metrics, other) = page;
    assert!(metrics.starts_with("HTTP/1.1 200 OK"), "{metrics}");
    assert!(other.starts_with("HTTP/1.1 404"), "{other}");
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(name) && !l.starts_with('#'))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {metrics}"))
    };
    assert!(value("decant_users_migrated_total ") > 0.0, "{metrics}");
    assert!(value("decant_rows_written_total ") > 0.0);
    assert!(
        value("decant_users_remaining ") > 0.0,
        "a 50/s run of 400 users is not done"
    );
    assert!(metrics.contains("# TYPE decant_batch_seconds histogram"));
    let batches = value("decant_batch_seconds_count ");
    assert!(batches > 0.0);
    assert_eq!(value("decant_batch_seconds_bucket{le=\"+Inf\"} "), batches);
    assert!(metrics.contains("decant_holding"));
    // exactly one phase is on: a 50/s run works or holds back between
    // batches
    let phases: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("decant_phase{") && l.ends_with(" 1"))
        .collect();
    assert_eq!(phases.len(), 1, "{metrics}");
    assert!(
        phases[0].contains("\"working\"") || phases[0].contains("\"held_back\""),
        "{metrics}"
    );
    assert_eq!(
        metrics
            .lines()
            .filter(|l| l.starts_with("decant_phase{"))
            .count(),
        decant::Phase::ALL.len()
    );
    assert!(
        crate::harness::run_ended_well(&out),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// A source keyed by uuid, then by text, through every command that names
/// users: check --ids, migrate --user, rollback --user and --ids, run,
/// set allow=, release, status and finalize.
#[tokio::test]
async fn uuid_and_text_ids_go_through_the_command_line() {
    for (kind, ids) in [
        (
            "uuid",
            [
                "0f000000-0000-4000-8000-000000000001",
                "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
                "ffffffff-0000-4000-8000-000000000003",
            ],
        ),
        ("text", ["alice", "Bob", "\u{e9}mile"]),
    ] {
        let db = TestDb::new().await;
        let client = db.client().await;
        client
            .batch_execute(&format!(
                "CREATE TABLE player (pid {kind} PRIMARY KEY, data jsonb NOT NULL)"
            ))
            .await
            .unwrap();
        for (i, id) in ids.iter().enumerate() {
            let data = serde_json::json!({"level": i + 1, "tags": {"a": i, "b": 2}});
            client
                .execute(
                    &format!("INSERT INTO player VALUES ($1::text::{kind}, $2)"),
                    &[id, &data],
                )
                .await
                .unwrap();
        }
        let dir = temp_dir(&format!("ids-{kind}"));
        let spec = format!(
            "[source]\ntable = \"player\"\nid = \"pid\"\nid_type = \"{kind}\"\n\n\
             [tables.tag.columns]\nname = \"text\"\nn = \"int4\"\n\n\
             [[rules]]\nname = \"tags\"\npath = \"tags.{{name}}\"\ntable = \"tag\"\nvalue = \"n\"\n"
        );
        std::fs::write(dir.join("decant.toml"), &spec).unwrap();
        std::fs::write(
            dir.join("ids.txt"),
            format!("{}\n# a comment\n{}, nobody\n", ids[0], ids[1]),
        )
        .unwrap();
        let url = Some(db.url.as_str());
        let (ok, out, err) = decant(&["check", "--ids", "ids.txt", "--json"], url, &dir);
        if kind == "uuid" {
            // "nobody" is no uuid: named, nothing read
            assert!(
                !ok && err
                    .contains("ids.txt:3: `nobody` is not a user id of the spec's id_type (uuid)"),
                "{out}{err}"
            );
            std::fs::write(dir.join("ids.txt"), format!("{}\n{}\n", ids[0], ids[1])).unwrap();
            let (ok, out, err) = decant(&["check", "--ids", "ids.txt", "--json"], url, &dir);
            assert!(ok, "{err}");
            assert!(out.contains("\"legacy\": 2"), "{out}");
        } else {
            assert!(ok, "{err}");
            assert!(
                out.contains("\"missing_ids\": [\n    \"nobody\"\n  ]"),
                "{out}"
            );
            // an empty and a blank-edged id failing: quoted in the
            // report, where a bare one would read as nothing
            client
                .batch_execute(
                    "INSERT INTO player VALUES ('', '{\"tags\": {\"a\": \"x\"}}'), \
                     (' pad', '{\"tags\": {\"a\": \"y\"}}')",
                )
                .await
                .unwrap();
            let (_, out, err) = decant(&["check"], url, &dir);
            assert!(out.contains("user \"\" at $.tags.a: \"x\""), "{out}{err}");
            assert!(
                out.contains("user \" pad\" at $.tags.a: \"y\""),
                "{out}{err}"
            );
            client
                .batch_execute("DELETE FROM player WHERE pid IN ('', ' pad')")
                .await
                .unwrap();
        }
        let (ok, _, err) = decant(&["init"], url, &dir);
        assert!(ok, "{err}");
        // a spec naming another table, after init: said as before init
        std::fs::write(
            dir.join("wrong.toml"),
            spec.replace("table = \"player\"", "table = \"players\""),
        )
        .unwrap();
        let (code, err) = decant_status(&["check", "--spec", "wrong.toml"], url, &dir);
        assert_eq!(code, Some(1), "{err}");
        assert!(
            err.contains("source table \"public\".\"players\" does not exist; check [source]"),
            "{err}"
        );
        // an allowed id of the wrong kind is bad input, said once
        if kind == "uuid" {
            let (code, err) = decant_status(&["set", "allow=1"], url, &dir);
            assert_eq!(code, Some(2), "{err}");
            assert_eq!(err.matches("user id 1 is not a uuid").count(), 1, "{err}");
        }
        let (ok, out, err) = decant(&["migrate", "--user", ids[1]], url, &dir);
        assert!(ok, "{err}");
        assert!(out.contains(&format!("user {}: migrated", ids[1])), "{out}");
        let (ok, out, err) = decant(&["rollback", "--user", ids[1]], url, &dir);
        assert!(ok, "{err}");
        assert!(
            out.contains(&format!("user {}: rolled back", ids[1])),
            "{out}"
        );
        // the command the rollback's message names
        assert!(
            out.contains(&format!("`decant release --user {}`", ids[1])),
            "{out}"
        );
        let (ok, out, err) = decant(&["release", "--user", ids[1]], url, &dir);
        assert!(ok, "{err}");
        assert!(out.starts_with("released 1 held user:"), "{out}");
        let (ok, _, err) = decant(&["release", "--user", "nobody"], url, &dir);
        assert!(!ok && err.contains("nobody"), "{err}");
        // none failed: none has attempts to give back
        let (ok, out, err) = decant(&["release", "--failed", "--ids", "ids.txt"], url, &dir);
        assert!(ok, "{err}");
        assert!(
            out.starts_with("0 failed users have their attempts back"),
            "{out}"
        );
        // an id of the list that names nobody is said, not passed over
        let nobody =
            "warning: 1 of the 3 ids in ids.txt name no user of the table, left alone: nobody";
        assert_eq!(err.contains(nobody), kind == "text", "{err}");
        let (ok, _, err) = decant(&["set", &format!("allow={}", ids[2])], url, &dir);
        assert!(ok, "{err}");
        let allowed: String = client
            .query_one("SELECT allow_list::text FROM decant.control", &[])
            .await
            .unwrap()
            .get(0);
        assert!(allowed.contains(ids[2]), "{allowed}");
        // a role that cannot see other roles' sessions is told so (the
        // run then stops: no rights on the tables)
        let role = crate::harness::fresh_role(&client, &format!("blind_{kind}")).await;
        let (ok, _, err) = decant(&["run", "--rate", "max"], Some(&db.url_as(&role)), &dir);
        assert!(!ok);
        assert!(
            err.contains(&format!("GRANT pg_read_all_stats TO {role}")),
            "{err}"
        );
        client
            .batch_execute(&format!("DROP ROLE {role}"))
            .await
            .unwrap();
        let (ok, out, err) = decant(&["run", "--rate", "max"], url, &dir);
        assert!(ok, "{out}{err}");
        assert!(!err.contains("pg_read_all_stats"), "{err}");
        let migrated: i64 = client
            .query_one("SELECT count(*) FROM player WHERE migrated", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(migrated, 3);
        let (ok, out, err) = decant(&["rollback", "--ids", "ids.txt"], url, &dir);
        assert!(ok, "{out}{err}");
        assert_eq!(err.contains(nobody), kind == "text", "{err}");
        let held = crate::harness::texts(
            &client,
            "SELECT user_id::text FROM decant.user_state WHERE state = 'held' ORDER BY 1",
            &[],
        )
        .await;
        let mut want = vec![ids[0].to_string(), ids[1].to_string()];
        want.sort();
        assert_eq!(held, want);
        let loaded: serde_json::Value = client
            .query_one(&format!("SELECT decant.load($1::text::{kind})"), &[&ids[0]])
            .await
            .unwrap()
            .get(0);
        assert_eq!(
            loaded,
            serde_json::json!({"level": 1, "tags": {"a": 0, "b": 2}})
        );
        let (ok, out, err) = decant(&["status", "--json"], url, &dir);
        assert!(ok, "{err}");
        assert!(out.contains("\"held\": 2"), "{out}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}

/// Indexes on the blob column stop finding moved values as users migrate
/// and are rewritten by every migration and rollback: init, check and run
/// name them (a key column, an expression, a predicate), but not decant's
/// own legacy ranking indexes nor indexes on other columns.
#[tokio::test]
async fn indexes_on_the_blob_are_named_but_not_decants_own() {
    let db = TestDb::new().await;
    let client = db.client().await;
    crate::example::load(&client, 10, 1).await.unwrap();
    client
        .batch_execute(
            "CREATE INDEX data_paths ON \"user\" USING gin (data jsonb_path_ops);
             CREATE INDEX data_xp ON \"user\" (((data ->> 'xp')::numeric));
             CREATE INDEX with_bots ON \"user\" (id) WHERE data ? 'bots';
             CREATE INDEX by_name ON \"user\" (name);",
        )
        .await
        .unwrap();
    let dir = temp_dir("blob_indexes");
    std::fs::write(dir.join("decant.toml"), crate::example::SPEC).unwrap();
    let url = Some(db.url.as_str());
    let named = "\"public\".\"user\" has indexes that read the column \"data\": \
                 data_paths (gin), data_xp (btree), with_bots (btree).";
    let (ok, _, err) = decant(&["init"], url, &dir);
    assert!(ok, "{err}");
    assert!(err.contains(named), "{err}");
    // init made its own indexes on the blob (the legacy side of each
    // ranked statistic); they index legacy users only and are not named
    let own: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_indexes WHERE tablename = 'user' \
               AND indexdef LIKE '%data%' AND indexdef LIKE '%NOT migrated%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        own > 0,
        "the example's ranked statistics index the legacy blobs"
    );
    let (code, err) = decant_status(&["check"], url, &dir);
    assert!(matches!(code, Some(0 | 3)), "{err}");
    assert!(err.contains(named), "{err}");
    let with_xp = "SELECT count(*) FILTER (WHERE data ? 'xp' AND (migrated OR $1)), \
                   count(*) FILTER (WHERE migrated) FROM \"user\"";
    let before = client.query_one(with_xp, &[&true]).await.unwrap();
    assert!(before.get::<_, i64>(0) > 0, "the example's users have xp");
    let (_, _, err) = decant(&["run", "--rate", "max"], url, &dir);
    assert!(err.contains(named), "{err}");
    // what the warning says: a query on the blob no longer finds a value
    // moved to the tables
    let after = client.query_one(with_xp, &[&false]).await.unwrap();
    assert!(after.get::<_, i64>(1) > 0, "users migrated");
    assert_eq!(after.get::<_, i64>(0), 0, "xp left every migrated blob");
    client
        .batch_execute("DROP INDEX data_paths, data_xp, with_bots")
        .await
        .unwrap();
    let (ok, _, err) = decant(&["init"], url, &dir);
    assert!(ok, "{err}");
    assert!(!err.contains("indexes that read the column"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// Triggers on the source table fire on decant's own UPDATEs of it (each
/// user's migration and rollback): init, check and run name the enabled
/// ones; after `finalize --drop-legacy`, init says the flag is gone.
#[tokio::test]
async fn source_triggers_are_named_and_init_after_the_flag_is_dropped_says_so() {
    let db = TestDb::new().await;
    let client = db.client().await;
    crate::example::load(&client, 10, 1).await.unwrap();
    client
        .batch_execute(
            "ALTER TABLE \"user\" ADD COLUMN touched timestamptz;
             CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS
               $$ BEGIN NEW.touched := now(); RETURN NEW; END $$;
             CREATE TRIGGER stamp BEFORE UPDATE ON \"user\" FOR EACH ROW EXECUTE FUNCTION touch();
             CREATE TRIGGER audit AFTER UPDATE ON \"user\" FOR EACH ROW EXECUTE FUNCTION touch();
             CREATE TRIGGER off BEFORE UPDATE ON \"user\" FOR EACH ROW EXECUTE FUNCTION touch();
             ALTER TABLE \"user\" DISABLE TRIGGER off;
             CREATE TRIGGER on_insert BEFORE INSERT ON \"user\" FOR EACH ROW EXECUTE FUNCTION touch();",
        )
        .await
        .unwrap();
    let dir = temp_dir("triggers");
    std::fs::write(dir.join("decant.toml"), crate::example::SPEC).unwrap();
    let url = Some(db.url.as_str());
    let named = "\"public\".\"user\" has triggers that fire on decant's UPDATEs of it \
                 (each user's migration and rollback): audit (AFTER), stamp (BEFORE).";
    let (ok, out, err) = decant(&["init"], url, &dir);
    assert!(ok, "{err}");
    assert!(out.contains("flag column and legacy index"), "{out}");
    assert!(err.contains(named), "{err}");
    let (code, err) = decant_status(&["check"], url, &dir);
    assert!(matches!(code, Some(0 | 3)), "{err}");
    assert!(err.contains(named), "{err}");
    let (ok, _, err) = decant(&["run", "--rate", "max"], url, &dir);
    assert!(err.contains(named), "{err}");
    let _ = ok;
    // every user touched by its migration, as the warning says
    let untouched: i64 = client
        .query_one(
            "SELECT count(*) FROM \"user\" WHERE migrated AND touched IS NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(untouched, 0);
    client
        .batch_execute("DELETE FROM \"user\" WHERE NOT migrated")
        .await
        .unwrap();
    let (ok, _, err) = decant(&["finalize", "--drop-legacy"], url, &dir);
    assert!(ok, "{err}");
    let (ok, out, err) = decant(&["init"], url, &dir);
    assert!(ok, "{err}");
    assert!(
        out.contains("the flag column was dropped by `finalize --drop-legacy`"),
        "{out}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// Rules on the source's UPDATE rewrite decant's own UPDATEs of it: init,
/// check and run name the enabled ones; a conditional DO INSTEAD rule
/// makes every user fail (PostgreSQL refuses the write that returns the
/// ids it wrote), none half-migrated; disabled, the users migrate.
#[tokio::test]
async fn source_rules_on_update_are_named_and_their_users_fail_whole() {
    let db = TestDb::new().await;
    let client = db.client().await;
    crate::example::load(&client, 20, 1).await.unwrap();
    client
        .batch_execute(
            "CREATE TABLE audit (id bigint);
             CREATE RULE keep_even AS ON UPDATE TO \"user\" WHERE old.id % 2 = 0 DO INSTEAD NOTHING;
             CREATE RULE log_it AS ON UPDATE TO \"user\" DO ALSO INSERT INTO audit VALUES (old.id);
             CREATE RULE off AS ON UPDATE TO \"user\" WHERE old.id < 0 DO INSTEAD NOTHING;
             ALTER TABLE \"user\" DISABLE RULE off;
             CREATE RULE on_insert AS ON INSERT TO \"user\" DO ALSO INSERT INTO audit VALUES (new.id);",
        )
        .await
        .unwrap();
    let dir = temp_dir("rules");
    std::fs::write(dir.join("decant.toml"), crate::example::SPEC).unwrap();
    let url = Some(db.url.as_str());
    let named = "\"public\".\"user\" has rules on UPDATE that rewrite decant's UPDATEs of it \
                 (each user's migration and rollback): keep_even (DO INSTEAD), log_it (DO ALSO).";
    let (ok, _, err) = decant(&["init"], url, &dir);
    assert!(ok, "{err}");
    assert!(err.contains(named), "{err}");
    let (code, err) = decant_status(&["check"], url, &dir);
    assert!(matches!(code, Some(0 | 3)), "{err}");
    assert!(err.contains(named), "{err}");
    let (_, _, err) = decant(&["run", "--rate", "max"], url, &dir);
    assert!(err.contains(named), "{err}");
    // every user failed on PostgreSQL's refusal (a conditional DO INSTEAD
    // rule refuses every UPDATE ... RETURNING, whatever row it matches),
    // whole: no rows, blob and flag as they were
    let rows = client
        .query(
            "SELECT u.id, u.migrated, u.data = '{}'::jsonb, \
                    (SELECT count(*) FROM user_statistic s WHERE s.user_id = u.id), \
                    (SELECT f.last_error FROM decant.user_state f WHERE f.user_id = u.id) \
               FROM \"user\" u ORDER BY u.id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 20);
    for r in &rows {
        let (id, migrated, emptied, stats, error): (i64, bool, bool, i64, Option<String>) =
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
        assert!(!migrated && !emptied && stats == 0, "user {id}");
        let error = error.unwrap_or_default();
        assert!(error.contains("UPDATE RETURNING"), "user {id}: {error}");
    }
    // the DO INSTEAD rule disabled: the warning names the DO ALSO one
    // alone, whose action runs for each user migrated
    client
        .batch_execute("ALTER TABLE \"user\" DISABLE RULE keep_even; DELETE FROM audit")
        .await
        .unwrap();
    let (_, _, err) = decant(&["release", "--failed"], url, &dir);
    let (ok, _, err2) = decant(&["run", "--rate", "max"], url, &dir);
    assert!(ok, "{err}{err2}");
    assert!(
        err2.contains("(each user's migration and rollback): log_it (DO ALSO)."),
        "{err2}"
    );
    assert_eq!(crate::harness::count_migrated(&client).await, 20);
    let audited: i64 = client
        .query_one("SELECT count(DISTINCT id) FROM audit", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(audited, 20);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_flag_naming_a_column_of_another_type_is_refused_naming_it() {
    let db = TestDb::new().await;
    let client = db.client().await;
    crate::example::load(&client, 20, 1).await.unwrap();
    decant::init(&client, &crate::example::spec())
        .await
        .unwrap();
    client
        .batch_execute("ALTER TABLE \"user\" ADD COLUMN seen timestamptz")
        .await
        .unwrap();
    let dir = temp_dir("flag-type");
    std::fs::write(
        dir.join("decant.toml"),
        crate::example::SPEC.replace("flag = \"migrated\"", "flag = \"seen\""),
    )
    .unwrap();
    // check, status and run failed on the server's type error ("argument
    // of WHERE must be type boolean", 42804) where they counted migrated
    // users; init named it
    for cmd in ["check", "status", "run", "init"] {
        let (code, err) = decant_status(&[cmd], Some(&db.url), &dir);
        assert_ne!(code, Some(0), "{cmd}: {err}");
        assert!(
            err.contains(
                "source column \"seen\" is timestamp with time zone; decant needs boolean"
            ),
            "{cmd}: {err}"
        );
        assert!(!err.contains("42804"), "{cmd}: {err}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn commands_on_a_database_init_never_set_up_say_to_run_init() {
    let db = TestDb::new().await;
    let client = db.client().await;
    crate::example::load(&client, 20, 1).await.unwrap();
    let dir = temp_dir("no-init");
    std::fs::write(dir.join("decant.toml"), crate::example::SPEC).unwrap();
    // each failed on its first statement (relation "decant.user_state"
    // does not exist), or said init ran with another version
    for cmd in [
        &["status"][..],
        &["run"],
        &["run", "--dry-run"],
        &["pause"],
        &["set", "rate=5/s"],
        &["rollback", "--all"],
        &["migrate", "--user", "1"],
        &["release"],
        &["finalize"],
    ] {
        let (code, err) = decant_status(cmd, Some(&db.url), &dir);
        assert_ne!(code, Some(0), "{cmd:?}: {err}");
        assert!(
            err.contains("decant is not set up in this database")
                && err.contains("run `decant init"),
            "{cmd:?}: {err}"
        );
    }
    // the library says it too; the census needs no init
    let decant = decant::Decant::connect(&db.url, crate::example::spec(), 1).unwrap();
    let err = decant.load(decant::UserId::from(1i64)).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("decant is not set up in this database"),
        "{err}"
    );
    let (code, err) = decant_status(&["check"], Some(&db.url), &dir);
    assert!(
        matches!(code, Some(0 | 3)),
        "check runs before init: {code:?} {err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
