//! `decant rehearse --dump`: every dump format restored, censused and
//! migrated in a scratch database that is removed after, with a
//! projection; bad dumps refused with the cause, leaving nothing behind.

use crate::cluster::{find_bindir, tool};
use crate::harness::{TestDb, admin_url, connect};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("decant-rehearse-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("decant.toml"), crate::example::SPEC).unwrap();
    dir
}

/// `pg_dump` of the test database in `format` (c, p, d, t) into `file`.
fn pg_dump(db: &TestDb, format: &str, file: &Path) {
    pg_dump_with(db, format, file, &[]);
}

/// [`pg_dump`] with more arguments (`-t <table>`).
fn pg_dump_with(db: &TestDb, format: &str, file: &Path, more: &[&str]) {
    let out = Command::new(tool(&find_bindir().unwrap(), "pg_dump"))
        .args(["-F", format, "-f"])
        .arg(file)
        .args(more)
        .args(["-d", &db.url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn rehearse(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_decant"))
        .arg("rehearse")
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A plain dump of a newer pg_dump sets, in its preamble, settings an
/// older server lacks (pg_dump 17 writes `SET transaction_timeout = 0;`):
/// those lines are left out (psql stopped at the first), the rest is
/// restored and rehearsed; the same line in a function body is data.
#[tokio::test]
async fn a_newer_plain_dump_s_unknown_settings_are_left_out() {
    let db = TestDb::new().await;
    let client = db.client().await;
    crate::example::load(&client, 40, 1).await.unwrap();
    client
        .batch_execute(
            "CREATE FUNCTION keep_me() RETURNS text LANGUAGE sql AS $$ SELECT $b$\n\
             SET decant_no_such_setting = 0;\n$b$::text $$",
        )
        .await
        .unwrap();
    let dir = temp_dir("newer-plain");
    pg_dump(&db, "p", &dir.join("game.sql"));
    let sql = std::fs::read_to_string(dir.join("game.sql")).unwrap();
    let at = sql.find("SET statement_timeout = 0;").unwrap();
    let newer = format!(
        "{}SET transaction_timeout = 0;\nSET decant_no_such_setting = 0;\n{}",
        &sql[..at],
        &sql[at..]
    );
    std::fs::write(dir.join("newer.sql"), newer).unwrap();
    let (code, out, err) = rehearse(
        &dir,
        &[
            "--dump",
            "newer.sql",
            "--server",
            &admin_url(),
            "--name",
            "scratch_newer",
            "--keep",
            "--json",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["users"], 40, "{out}");
    let left = leftovers("scratch_newer").await;
    assert_eq!(left.len(), 1, "{left:?}");
    let kept = connect(&decant::with_dbname(&admin_url(), &left[0]).unwrap()).await;
    let body: String = kept
        .query_one("SELECT keep_me()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(body, "\nSET decant_no_such_setting = 0;\n");
    drop(kept);
    connect(&admin_url())
        .await
        .batch_execute(&format!("DROP DATABASE {} WITH (FORCE)", left[0]))
        .await
        .unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

/// Scratch databases named `prefix...` left on the test server.
async fn leftovers(prefix: &str) -> Vec<String> {
    connect(&admin_url())
        .await
        .query(
            "SELECT datname::text FROM pg_database WHERE starts_with(datname, $1)",
            &[&prefix],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn every_dump_format_is_rehearsed_and_projected() {
    let db = TestDb::new().await;
    let client = db.client().await;
    crate::example::load(&client, 300, 1).await.unwrap();
    let dir = temp_dir("formats");
    let server = admin_url();
    for (format, name) in [
        ("c", "game.dump"),
        ("p", "game.sql"),
        ("d", "game.dir"),
        ("t", "game.tar"),
    ] {
        pg_dump(&db, format, &dir.join(name));
        let (code, out, err) = rehearse(
            &dir,
            &[
                "--dump",
                name,
                "--server",
                &server,
                "--name",
                "scratch_formats",
                "--json",
                "--largest",
                "3",
                "--rate",
                "50/s",
                "--window",
                "01:00-05:00",
                "--tz",
                "Asia/Kathmandu",
                "--users",
                "1000000",
            ],
        );
        assert_eq!(code, Some(0), "{name}: {err}");
        let r: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(r["users"], 300, "{name}");
        let (migrated, failed) = (
            r["migrated"].as_u64().unwrap(),
            r["failed"].as_u64().unwrap(),
        );
        assert_eq!(migrated + failed, 300, "{name}");
        assert_eq!(
            failed,
            r["census"]["would_fail"].as_u64().unwrap(),
            "{name}"
        );
        assert!(failed > 0);
        let examples = r["failures"][0]["examples"].as_array().unwrap();
        assert!(!examples.is_empty());
        for e in examples {
            assert!(crate::example::user(1, e.as_i64().unwrap()).dirt.is_some());
        }
        // the rows are what the census projected, every table
        assert_eq!(r["rows"], r["census"]["projected_rows"], "{name}");
        assert!(r["rows"]["user_statistic"].as_u64().unwrap() > 1000);
        assert_eq!(r["largest"].as_array().unwrap().len(), 3);
        // the speed is of every user the run visited, failed ones too (the
        // projection's users to do count them): all but the three largest,
        // each migrated alone before the run
        let visited = r["users_per_second"].as_f64().unwrap() * r["run_seconds"].as_f64().unwrap();
        assert!((visited - 297.0).abs() < 0.5, "{name}: {visited}");
        let p = &r["projection"];
        assert_eq!(p["users"], 1_000_000);
        assert!(p["rate"].as_f64().unwrap() <= 50.0);
        assert!(p["rate_seconds"].as_f64().unwrap() >= 20_000.0);
        assert!(
            p["finish"].is_string() && p["windows"].as_str().unwrap().contains("Asia/Kathmandu")
        );
        assert!(
            leftovers("scratch_formats").await.is_empty(),
            "{name}: the scratch database is left"
        );
    }
    // nothing was written to the database dumped
    let flag: i64 = client
        .query_one(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'user' AND column_name = 'migrated'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(flag, 0);

    // the default: a throwaway cluster of the local binaries; the people's report
    let (code, out, err) = rehearse(&dir, &["--dump", "game.dump", "--largest", "2"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("migrated ") && out.contains("projection for 300 users to migrate"),
        "{out}"
    );
    assert!(out.contains("failures by reason"), "{out}");
    // the census's sizes are JSON text, the largest blobs' as stored: said
    assert!(out.contains("blob size as JSON text, bytes: p50"), "{out}");
    assert!(out.contains("their size as stored, after TOAST"), "{out}");

    // --keep keeps the scratch database on the server given
    let (code, out, err) = rehearse(
        &dir,
        &[
            "--dump",
            "game.dump",
            "--server",
            &server,
            "--keep",
            "--name",
            "scratch_kept",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("kept"), "{out}");
    let left = leftovers("scratch_kept").await;
    assert_eq!(left.len(), 1);
    connect(&admin_url())
        .await
        .batch_execute(&format!("DROP DATABASE {} WITH (FORCE)", left[0]))
        .await
        .unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

/// A source keyed by uuid in a schema whose name holds a space, one of
/// its blobs NULL: restored, censused, migrated and its largest users timed by their uuids.
#[tokio::test]
async fn a_uuid_keyed_dump_in_a_schema_with_a_space_is_rehearsed() {
    let db = TestDb::new().await;
    let client = db.client().await;
    crate::example::load(&client, 120, 1).await.unwrap();
    client
        .batch_execute(
            "ALTER TABLE \"user\" DROP CONSTRAINT user_pkey; \
             ALTER TABLE \"user\" ALTER COLUMN id TYPE uuid USING md5(id::text)::uuid; \
             ALTER TABLE \"user\" ADD PRIMARY KEY (id); \
             ALTER TABLE \"user\" ALTER COLUMN data DROP NOT NULL; \
             UPDATE \"user\" SET data = NULL WHERE id = (SELECT id FROM \"user\" ORDER BY id LIMIT 1); \
             CREATE SCHEMA \"Game Data\"; ALTER TABLE \"user\" SET SCHEMA \"Game Data\"",
        )
        .await
        .unwrap();
    let dir = temp_dir("uuid");
    std::fs::write(
        dir.join("decant.toml"),
        // `pg_restore --list` names it `TABLE Game Data user owner`: it was
        // read as table `Data user` of schema `Game`, and refused as absent
        crate::example::SPEC.replacen(
            "[source]\nschema = \"public\"\n",
            "[source]\nid_type = \"uuid\"\nschema = \"Game Data\"\n",
            1,
        ),
    )
    .unwrap();
    pg_dump(&db, "c", &dir.join("game.dump"));
    let server = admin_url();
    let (code, out, err) = rehearse(
        &dir,
        &[
            "--dump",
            "game.dump",
            "--server",
            &server,
            "--name",
            "scratch_uuid",
            "--json",
            "--largest",
            "2",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["users"], 120);
    assert_eq!(
        r["migrated"].as_u64().unwrap() + r["failed"].as_u64().unwrap(),
        120
    );
    // the user whose blob is NULL fails, and is none of the largest
    assert!(r["failed"].as_u64().unwrap() >= 1, "{out}");
    assert_eq!(r["largest"].as_array().unwrap().len(), 2, "{out}");
    for t in r["largest"].as_array().unwrap() {
        let id = t["id"].as_str().unwrap();
        assert!(decant::IdType::Uuid.id(id).is_ok(), "{id}");
    }
    assert!(leftovers("scratch_uuid").await.is_empty());
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_dump_taken_mid_migration_rehearses_what_is_left() {
    let db = TestDb::new().await;
    let decant = db.game(200).await;
    // 60 migrated, of which 20 rolled back (held)
    let clean: Vec<i64> = (1..=200)
        .filter(|&i| crate::example::user(1, i).dirt.is_none())
        .take(60)
        .collect();
    for &u in &clean {
        assert_eq!(decant.migrate_user(u).await.unwrap().migrated.len(), 1);
    }
    for &u in &clean[..20] {
        assert!(decant.rollback_user(u).await.unwrap());
    }
    let dir = temp_dir("midway");
    pg_dump(&db, "c", &dir.join("game.dump"));
    let (code, out, err) = rehearse(
        &dir,
        &[
            "--dump",
            "game.dump",
            "--server",
            &admin_url(),
            "--name",
            "scratch_midway",
            "--json",
            "--largest",
            "5",
            "--users",
            "2000",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["users"], 200, "{out}");
    // production's 2,000 users are as far along: 140 of 200 left
    assert_eq!(r["projection"]["users"], 1400, "{out}");
    assert_eq!(
        (r["already_migrated"].as_u64(), r["held"].as_u64()),
        (Some(40), Some(20)),
        "{out}"
    );
    // only the 140 legacy users were rehearsed, and held users are no failures
    assert_eq!(
        r["migrated"].as_u64().unwrap() + r["failed"].as_u64().unwrap(),
        140,
        "{out}"
    );
    // none of the largest timed alone was migrated or held in the dump
    for t in r["largest"].as_array().unwrap() {
        let id: i64 = t["id"]
            .as_i64()
            .or_else(|| t["id"].as_str()?.parse().ok())
            .unwrap();
        assert!(!clean.contains(&id), "user {id} was done or held: {out}");
    }
    let (code, text, err) = rehearse(
        &dir,
        &[
            "--dump",
            "game.dump",
            "--server",
            &admin_url(),
            "--name",
            "scratch_midway",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(
        text.contains("the dump holds 40 users migrated already"),
        "{text}"
    );
    assert!(leftovers("scratch_midway").await.is_empty());
    // a dump of the source table alone (`pg_dump -t`) holds decant's
    // trigger but not the schema of its function (the restore failed,
    // "schema \"decant\" does not exist"): mid-migration, its migrated
    // users' rows are not in it, said so; taken after init with no user
    // migrated yet, it is rehearsed whole
    for (format, name) in [("c", "table.dump"), ("p", "table.sql")] {
        pg_dump_with(&db, format, &dir.join(name), &["-t", "public.\"user\""]);
        let (code, _, err) = rehearse(
            &dir,
            &[
                "--dump",
                name,
                "--server",
                &admin_url(),
                "--name",
                "scratch_midway",
            ],
        );
        assert_eq!(code, Some(1), "{name}: {err}");
        assert!(
            err.contains("the dump holds users migrated already but not decant's schema"),
            "{name}: {err}"
        );
        assert!(!err.contains("does not exist"), "{name}: {err}");
        assert!(leftovers("scratch_midway").await.is_empty());
    }
    // (the migrated users gone: a dump after init, none migrated)
    let client = db.client().await;
    client
        .batch_execute("DELETE FROM \"user\" WHERE migrated")
        .await
        .unwrap();
    for (format, name) in [("c", "table.dump"), ("p", "table.sql")] {
        pg_dump_with(&db, format, &dir.join(name), &["-t", "public.\"user\""]);
        let (code, out, err) = rehearse(
            &dir,
            &[
                "--dump",
                name,
                "--server",
                &admin_url(),
                "--name",
                "scratch_midway",
                "--json",
            ],
        );
        assert_eq!(code, Some(0), "{name}: {err}");
        let r: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(r["already_migrated"].as_u64(), Some(0), "{name}: {out}");
        assert_eq!(
            r["migrated"].as_u64().unwrap() + r["failed"].as_u64().unwrap(),
            160,
            "{name}: {out}"
        );
        assert!(leftovers("scratch_midway").await.is_empty());
    }
    // a dump of a finalized migration: nothing to rehearse, said so
    db.client()
        .await
        .batch_execute("UPDATE decant.control SET finalized = true")
        .await
        .unwrap();
    pg_dump(&db, "c", &dir.join("final.dump"));
    let (code, _, err) = rehearse(
        &dir,
        &[
            "--dump",
            "final.dump",
            "--server",
            &admin_url(),
            "--name",
            "scratch_midway",
        ],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("taken after `decant finalize`"), "{err}");
    assert!(leftovers("scratch_midway").await.is_empty());
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn bad_dumps_are_refused_and_leave_nothing() {
    let db = TestDb::new().await;
    let client = db.client().await;
    crate::example::load(&client, 120, 1).await.unwrap();
    let dir = temp_dir("bad");
    let server = admin_url();
    // exit status 2 for a file that is no dump (a bad argument), 1 for
    // a dump that fails to restore
    let refused = async |args: &[&str], says: &str| {
        let mut args = args.to_vec();
        args.extend(["--name", "scratch_bad"]);
        let (code, out, err) = rehearse(&dir, &args);
        let want = if says == "not a pg_dump file" || says.starts_with("--") {
            2
        } else {
            1
        };
        assert_eq!(code, Some(want), "{args:?}: {out}{err}");
        assert!(err.contains(says), "{args:?}: expected `{says}` in: {err}");
        assert!(
            leftovers("scratch_bad").await.is_empty(),
            "{args:?}: the scratch database is left"
        );
    };

    std::fs::write(dir.join("notes.txt"), "this is not a dump\n").unwrap();
    refused(
        &["--dump", "notes.txt", "--server", &server],
        "not a pg_dump file",
    )
    .await;
    refused(
        &["--dump", "missing.dump", "--server", &server],
        "missing.dump",
    )
    .await;

    // truncated: the table of contents reads, the data ends early
    pg_dump(&db, "c", &dir.join("game.dump"));
    let bytes = std::fs::read(dir.join("game.dump")).unwrap();
    std::fs::write(dir.join("cut.dump"), &bytes[..bytes.len() * 2 / 3]).unwrap();
    refused(&["--dump", "cut.dump", "--server", &server], "pg_restore").await;

    // a restore that fails halfway: psql's error is shown
    pg_dump(&db, "p", &dir.join("game.sql"));
    let sql = std::fs::read_to_string(dir.join("game.sql")).unwrap();
    let at = sql.find("COPY ").unwrap();
    let broken = format!("{}SELECT no_such_function();\n{}", &sql[..at], &sql[at..]);
    std::fs::write(dir.join("broken.sql"), broken).unwrap();
    refused(
        &["--dump", "broken.sql", "--server", &server],
        "no_such_function",
    )
    .await;
    // an archive of a newer pg_dump (its format version beyond this
    // pg_restore's): what to do, not "truncated or damaged"
    let mut newer = bytes.clone();
    assert_eq!(&newer[..5], b"PGDMP");
    newer[6] = 99;
    std::fs::write(dir.join("newer.dump"), newer).unwrap();
    refused(
        &["--dump", "newer.dump", "--server", &server],
        "written by a newer pg_dump than this pg_restore",
    )
    .await;
    // a psql command in a plain dump (a shell command) is refused, never
    // run; the same text in a string or body is data
    let touched = dir.join("touched");
    let hostile = format!(
        "{}SELECT 'a \\! not a command', $$ \\! nor this $$;\nSELECT 1; \\! touch {}\n{}",
        &sql[..at],
        touched.display(),
        &sql[at..]
    );
    std::fs::write(dir.join("hostile.sql"), hostile).unwrap();
    refused(
        &["--dump", "hostile.sql", "--server", &server],
        "psql backslash command",
    )
    .await;
    assert!(!touched.exists(), "the dump's shell command ran");

    // no source table; a blob column that is not jsonb
    client
        .batch_execute(
            "DROP TABLE \"user\"; CREATE TABLE other (id bigint PRIMARY KEY, data jsonb)",
        )
        .await
        .unwrap();
    pg_dump(&db, "c", &dir.join("other.dump"));
    refused(
        &["--dump", "other.dump", "--server", &server],
        "has no table public.user",
    )
    .await;
    client
        .batch_execute(
            "CREATE TABLE \"user\" (id bigint PRIMARY KEY, data text); \
             INSERT INTO \"user\" VALUES (1, '{}')",
        )
        .await
        .unwrap();
    pg_dump(&db, "c", &dir.join("text.dump"));
    refused(
        &["--dump", "text.dump", "--server", &server],
        "is text; decant needs jsonb",
    )
    .await;

    refused(&["--dump", "game.dump", "--keep"], "--keep needs --server").await;

    // a one-table dump of a table outside public: the cause, and the fix
    client
        .batch_execute(
            "CREATE SCHEMA \"GameData\"; \
             CREATE TABLE \"GameData\".\"P\" (id bigint PRIMARY KEY, data jsonb NOT NULL); \
             INSERT INTO \"GameData\".\"P\" VALUES (1, '{\"xp\": 1}')",
        )
        .await
        .unwrap();
    let out = Command::new(tool(&find_bindir().unwrap(), "pg_dump"))
        .args(["-Fc", "-t", "\"GameData\".\"P\"", "-f"])
        .arg(dir.join("one.dump"))
        .args(["-d", &db.url])
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::write(
        dir.join("one.toml"),
        crate::example::SPEC
            .replace("schema = \"public\"", "schema = \"GameData\"")
            .replace("table = \"user\"", "table = \"P\""),
    )
    .unwrap();
    refused(
        &[
            "--dump", "one.dump", "--spec", "one.toml", "--server", &server,
        ],
        "schema \"GameData\" does not exist",
    )
    .await;
    refused(
        &[
            "--dump", "one.dump", "--spec", "one.toml", "--server", &server,
        ],
        "hint: a `pg_dump -t` dump holds no CREATE SCHEMA",
    )
    .await;
    std::fs::remove_dir_all(dir).unwrap();
}

/// SIGINT or SIGTERM mid-rehearsal removes the scratch database on the
/// server given and says so (the signal killed decant and left the
/// database, its users half migrated).
#[tokio::test]
async fn an_interrupted_rehearsal_removes_its_scratch_database() {
    let db = TestDb::new().await;
    db.game(5000).await;
    let dir = temp_dir("signal");
    pg_dump(&db, "c", &dir.join("game.dump"));
    for (signal, name) in [(libc::SIGINT, "SIGINT"), (libc::SIGTERM, "SIGTERM")] {
        let child = Command::new(env!("CARGO_BIN_EXE_decant"))
            .args(["rehearse", "--dump", "game.dump", "--server", &admin_url()])
            .args(["--name", "scratch_signal"])
            .current_dir(&dir)
            .env("RUST_LOG", "warn")
            .env_remove("DATABASE_URL")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // the scratch database made, the restore (or more) under way
        let start = std::time::Instant::now();
        while leftovers("scratch_signal").await.is_empty() {
            assert!(start.elapsed().as_secs() < 60, "no scratch database");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        // SAFETY: kill(2) with a pid and a signal number
        unsafe { libc::kill(child.id() as i32, signal) };
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        assert!(
            err.contains(&format!(
                "the rehearsal was interrupted ({name}): the scratch database scratch_signal is removed"
            )),
            "{err}"
        );
        assert!(leftovers("scratch_signal").await.is_empty(), "{name}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}
