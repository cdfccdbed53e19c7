use crate::harness::TestDb;
use decant::{Decant, Error, Setting, Spec};

#[tokio::test]
async fn init_is_idempotent_and_adds_what_is_missing() {
    let db = TestDb::new().await;
    let client = db.client().await;
    client.batch_execute(crate::example::SCHEMA).await.unwrap();
    client
        .execute("INSERT INTO \"user\" VALUES (1, 'a', '{\"xp\": 1}')", &[])
        .await
        .unwrap();
    let spec = crate::example::spec();
    decant::init(&client, &spec).await.unwrap();
    decant::init(&client, &spec).await.unwrap();

    let flag: bool = client
        .query_one("SELECT migrated FROM \"user\" WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!flag, "the flag column is added, false for existing users");
    let controls: i64 = client
        .query_one("SELECT count(*) FROM decant.control", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(controls, 1, "exactly one control row after two inits");
    let tables: Vec<String> = client
        .query(
            "SELECT table_name::text FROM information_schema.tables
              WHERE table_schema = 'public' AND table_name LIKE 'user_%'
                AND table_type = 'BASE TABLE' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        tables,
        [
            "user_achievement",
            "user_bot",
            "user_config",
            "user_preference",
            "user_selected_bot",
            "user_statistic"
        ]
    );
    let views: i64 = client
        .query_one(
            "SELECT count(*) FROM information_schema.views
              WHERE table_schema = 'public' AND table_name LIKE 'user_%\\_all'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(views, 6, "one cross-user view per target table");
    let pk: String = client
        .query_one(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint
              WHERE conrelid = 'user_statistic'::regclass AND contype = 'p'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(pk, "PRIMARY KEY (user_id, mode, statistic_id)");
    let index: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_indexes WHERE indexname = 'user_decant_legacy_idx')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(index, "the partial index on legacy users exists");
}

#[tokio::test]
async fn init_refuses_a_missing_or_mistyped_source() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let spec = crate::example::spec();
    let err = decant::init(&client, &spec).await.unwrap_err();
    assert!(matches!(err, Error::Setup(_)), "{err}");
    assert!(
        err.to_string()
            .contains("\"public\".\"user\" does not exist"),
        "{err}"
    );

    // a table of that name in another case: named, with the spelling
    client
        .batch_execute("CREATE TABLE \"USER\" (id bigint PRIMARY KEY, data jsonb NOT NULL)")
        .await
        .unwrap();
    let err = decant::init(&client, &spec).await.unwrap_err().to_string();
    assert!(
        err.contains("did you mean \"public\".\"USER\"?") && err.contains("`table = \"USER\"`"),
        "{err}"
    );
    // a table partitioned by another key than the id: its id cannot be
    // unique, and the error says what PostgreSQL allows (one partitioned
    // by the id is taken: `finalize::the_lifecycle_holds_on_a_partitioned_table`)
    client
        .batch_execute(
            "DROP TABLE \"USER\"; \
             CREATE TABLE \"user\" (id bigint, region text, data jsonb NOT NULL, \
               PRIMARY KEY (id, region)) PARTITION BY LIST (region); \
             CREATE TABLE user_eu PARTITION OF \"user\" FOR VALUES IN ('eu')",
        )
        .await
        .unwrap();
    let err = decant::init(&client, &spec).await.unwrap_err().to_string();
    assert!(
        err.contains("is under no unique index")
            && err.contains("partitioned by the id alone (`PARTITION BY HASH (\"id\")`"),
        "{err}"
    );
    // a view: refused up front, nothing made
    client
        .batch_execute(
            "DROP TABLE \"user\"; CREATE TABLE u0 (id bigint PRIMARY KEY, data jsonb NOT NULL); \
             CREATE VIEW \"user\" AS SELECT * FROM u0",
        )
        .await
        .unwrap();
    let err = decant::init(&client, &spec).await.unwrap_err().to_string();
    assert!(
        err.contains("is a view; decant migrates a plain table"),
        "{err}"
    );
    // a table others inherit from: its scans read their rows, under ids
    // its key does not keep unique (by hand: 36 "users" of 30 ids, 12
    // failed); refused by init and by the census, naming the children
    client
        .batch_execute(
            "DROP VIEW \"user\"; \
             CREATE TABLE \"user\" (id bigint PRIMARY KEY, data jsonb NOT NULL); \
             CREATE TABLE user_archive () INHERITS (\"user\")",
        )
        .await
        .unwrap();
    let err = decant::init(&client, &spec).await.unwrap_err().to_string();
    assert!(
        err.contains("has tables inheriting from it (user_archive)") && err.contains("NO INHERIT"),
        "{err}"
    );
    let err = decant::check(
        &db.url,
        spec.clone(),
        &decant::CheckOptions::default(),
        &decant::CheckProgress::default(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("has tables inheriting from it"), "{err}");
    client
        .batch_execute(
            "DROP TABLE user_archive; DROP TABLE \"user\"; \
             CREATE TABLE \"user\" (id bigint PRIMARY KEY, data json NOT NULL)",
        )
        .await
        .unwrap();
    let err = decant::init(&client, &spec).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("\"data\" is json; decant needs jsonb"),
        "{err}"
    );
    // JSON kept as text: the same conversion, and what stops it
    client
        .batch_execute("ALTER TABLE \"user\" ALTER COLUMN data TYPE text")
        .await
        .unwrap();
    let err = decant::init(&client, &spec).await.unwrap_err().to_string();
    assert!(
        err.contains("\"data\" is text; decant needs jsonb")
            && err.contains("TYPE jsonb USING \"data\"::jsonb` converts it")
            && err.contains("a row whose text is not JSON stops it"),
        "{err}"
    );
    // nothing was created
    let schemas: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'decant'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(schemas, 0);

    // an id that is not one row per user: a NULL id panicked the daemon
    // (a user it could not name), a repeated one is two users in one
    let keys = [
        ("id bigint", "may be NULL and is under no unique index"),
        ("id bigint UNIQUE", "may be NULL"),
        ("id bigint NOT NULL", "is under no unique index"),
    ];
    for (column, says) in keys {
        client
            .batch_execute(&format!(
                "DROP TABLE \"user\"; CREATE TABLE \"user\" ({column}, data jsonb NOT NULL)"
            ))
            .await
            .unwrap();
        let err = decant::init(&client, &spec).await.unwrap_err();
        assert!(matches!(err, Error::Setup(_)), "{column}: {err}");
        let text = err.to_string();
        assert!(
            text.contains(says) && text.contains("ADD PRIMARY KEY (\"id\")"),
            "{column}: {text}"
        );
    }
    // a unique index (with included columns) on a NOT NULL id will do
    client
        .batch_execute(
            "DROP TABLE \"user\"; CREATE TABLE \"user\" (id bigint NOT NULL, data jsonb NOT NULL); \
             CREATE UNIQUE INDEX ON \"user\" (id) INCLUDE (data)",
        )
        .await
        .unwrap();
    // a flag column already there that allows NULL (another's, or left
    // half made): a NULL flag is no state; refused with the fix, which works
    client
        .batch_execute(
            "ALTER TABLE \"user\" ADD COLUMN migrated boolean; \
             INSERT INTO \"user\" VALUES (1, '{\"xp\": 1}', NULL), (2, '{\"xp\": 2}', NULL)",
        )
        .await
        .unwrap();
    let err = decant::init(&client, &spec).await.unwrap_err().to_string();
    assert!(err.contains("\"migrated\" exists and allows NULL"), "{err}");
    let fix = err
        .split('`')
        .find(|part| part.starts_with("UPDATE"))
        .expect("the fix, in SQL");
    client.batch_execute(fix).await.unwrap();
    decant::init(&client, &spec).await.unwrap();
    let decant = Decant::connect(&db.url, spec.clone(), 2).unwrap();
    let r = crate::harness::run_all(&decant).await.unwrap();
    assert_eq!(r.migrated, 2);
}

#[tokio::test]
async fn a_bad_connection_string_is_a_clear_error() {
    let err =
        Decant::connect("postgres://a:b@host:notaport/db", crate::example::spec(), 1).unwrap_err();
    assert!(err.to_string().contains("bad connection string"), "{err}");
}

#[tokio::test]
async fn the_ddl_printed_is_the_ddl_applied() {
    let db = TestDb::new().await;
    let client = db.client().await;
    client.batch_execute(crate::example::SCHEMA).await.unwrap();
    let spec = Spec::parse(crate::example::SPEC).unwrap();
    // the printed script applies as is (except CONCURRENTLY inside a
    // transaction block, so run it statement by statement via psql rules)
    for stmt in decant::schema_statements(&spec) {
        client.batch_execute(&stmt).await.unwrap();
    }
    let script = decant::schema_script(&spec);
    assert!(script.contains("CREATE TABLE IF NOT EXISTS \"public\".\"user_statistic\""));
    assert!(script.contains("CREATE SCHEMA IF NOT EXISTS decant"));
    assert!(
        script.contains("ADD COLUMN IF NOT EXISTS \"migrated\" boolean NOT NULL DEFAULT false")
    );
    // each index on the source says how a partitioned one gets it (the
    // legacy index and the two ranked statistics' legacy indexes); those
    // on the target tables do not
    let lines: Vec<&str> = script.lines().collect();
    let mut noted = 0;
    for (i, line) in lines.iter().enumerate() {
        if line.starts_with("CREATE INDEX CONCURRENTLY") {
            let note = lines[i - 1].starts_with("-- <index>_<partition>) and attaches it");
            assert_eq!(note, line.contains(" ON \"public\".\"user\" "), "{line}");
            noted += usize::from(note);
        }
    }
    assert_eq!(noted, 3, "{script}");
    // one semicolon after each statement, whether or not it ends in one
    assert!(!script.contains(";;"), "{script}");
}

/// A table the spec declares but no rule writes into stays empty however
/// the migration goes: the warnings (`check`, `init`, `run`) name it and
/// say what to do; the example spec, whose tables all have rules, gets no
/// such warning (the test below expects exactly one other).
#[tokio::test]
async fn a_table_no_rule_writes_is_named() {
    let db = TestDb::new().await;
    let client = db.client().await;
    client.batch_execute(crate::example::SCHEMA).await.unwrap();
    let spec = Spec::parse(&format!(
        "{}\n[tables.user_orphan.columns]\nthing = \"text\"\n",
        crate::example::SPEC
    ))
    .unwrap();
    let warnings = decant::source_warnings(&client, &spec).await.unwrap();
    let [warning] = &warnings[..] else {
        panic!("one warning: {warnings:?}");
    };
    assert!(
        warning.starts_with("no rule writes rows into table `user_orphan`")
            && warning.contains("give it a rule (`table = \"user_orphan\"`) or remove it"),
        "{warning}"
    );
    // a column of a table with rules that none of them fills
    let spec = Spec::parse(&crate::example::SPEC.replacen(
        "bot_id = { type = \"text\", not_null = true }",
        "bot_id = { type = \"text\", not_null = true }\ncolour = \"text\"",
        1,
    ))
    .unwrap();
    let warnings = decant::source_warnings(&client, &spec).await.unwrap();
    let [warning] = &warnings[..] else {
        panic!("one warning: {warnings:?}");
    };
    assert!(
        warning.starts_with("no rule writes column `colour` of table `user_selected_bot`")
            && warning.contains("or remove it"),
        "{warning}"
    );
    let none = decant::source_warnings(&client, &crate::example::spec())
        .await
        .unwrap();
    assert!(none.is_empty(), "{none:?}");
}

#[tokio::test]
async fn init_refuses_a_target_table_of_another_shape_naming_the_difference() {
    let db = TestDb::new().await;
    let client = db.client().await;
    client.batch_execute(crate::example::SCHEMA).await.unwrap();
    // a table of that name from before, with another shape
    client
        .batch_execute(
            "CREATE TABLE user_statistic (user_id bigint, mode text, statistic_id integer, \
               points numeric NOT NULL, PRIMARY KEY (user_id, mode))",
        )
        .await
        .unwrap();
    // `check` says so first, not that the table lacks the spec's CHECKs
    let warnings = decant::source_warnings(&client, &crate::example::spec())
        .await
        .unwrap();
    let [warning] = &warnings[..] else {
        panic!("one warning: {warnings:?}");
    };
    assert!(
        warning.starts_with(
            "`decant init` refuses this spec here: target tables exist with another shape"
        ) && warning.contains("has no column \"value\" (numeric)"),
        "{warning}"
    );
    let err = decant::init(&client, &crate::example::spec())
        .await
        .unwrap_err()
        .to_string();
    for part in [
        "another shape",
        "\"statistic_id\" is integer, the spec says text",
        "has no column \"value\" (numeric)",
        "\"points\" is NOT NULL without a default",
        "primary key is (mode, user_id), the spec's is (mode, statistic_id, user_id)",
        "rename or drop those tables (they hold no rows)",
    ] {
        assert!(err.contains(part), "{part:?} in {err}");
    }
    // holding rows, it is never to be dropped before a rollback
    client
        .batch_execute("INSERT INTO user_statistic VALUES (1, 'm', 1, 5)")
        .await
        .unwrap();
    let err = decant::init(&client, &crate::example::spec())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("user_statistic\" holds rows")
            && err.contains("roll their users back first")
            && !err.contains("they hold no rows"),
        "{err}"
    );
    // nothing was created or changed
    let flag: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM information_schema.columns \
              WHERE table_name = 'user' AND column_name = 'migrated')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!flag, "init stopped before touching anything");
    // the same table with the spec's shape (an earlier init's) is fine
    client
        .batch_execute("DROP TABLE user_statistic")
        .await
        .unwrap();
    decant::init(&client, &crate::example::spec())
        .await
        .unwrap();
    decant::init(&client, &crate::example::spec())
        .await
        .unwrap();
}

#[tokio::test]
async fn init_failing_part_way_leaves_nothing_behind() {
    let db = TestDb::new().await;
    let client = db.client().await;
    client.batch_execute(crate::example::SCHEMA).await.unwrap();
    // a table where init's last objects (the cross-user views) go: the
    // flag column, decant's schema and the target tables come before
    client
        .batch_execute("CREATE TABLE user_statistic_all (x int)")
        .await
        .unwrap();
    let spec = crate::example::spec();
    let err = decant::init(&client, &spec).await.unwrap_err();
    assert!(err.to_string().contains("user_statistic_all"), "{err}");
    let left: (bool, bool, bool) = {
        let r = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = '\"user\"'::regclass \
                   AND attname = 'migrated'), \
                 EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'decant'), \
                 to_regclass('user_statistic') IS NOT NULL",
                &[],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1), r.get(2))
    };
    assert_eq!(
        left,
        (false, false, false),
        "(flag column, decant schema, a target table) left by a failed init"
    );
    // the session is usable and a second try, once the cause is gone, works
    client
        .batch_execute("DROP TABLE user_statistic_all")
        .await
        .unwrap();
    decant::init(&client, &spec).await.unwrap();
    // a concurrent build that failed leaves its index INVALID, which
    // IF NOT EXISTS would skip: init rebuilds it
    client
        .batch_execute(
            "UPDATE pg_index SET indisvalid = false \
              WHERE indexrelid = 'user_decant_legacy_idx'::regclass",
        )
        .await
        .unwrap();
    // status names it until then
    let decant = Decant::connect(&db.url, spec.clone(), 1).unwrap();
    let status = decant::status(&decant, &Default::default()).await.unwrap();
    assert_eq!(
        status.invalid_indexes,
        vec!["user_decant_legacy_idx".to_string()]
    );
    assert!(
        status
            .to_string()
            .contains("INVALID: user_decant_legacy_idx"),
        "{status}"
    );
    decant::init(&client, &spec).await.unwrap();
    let status = decant::status(&decant, &Default::default()).await.unwrap();
    assert!(status.invalid_indexes.is_empty(), "{status}");
    let valid: bool = client
        .query_one(
            "SELECT bool_and(indisvalid) FROM pg_index WHERE indrelid = '\"user\"'::regclass",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(valid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_role_with_the_printed_grants_can_do_everything_the_library_does() {
    let db = TestDb::new().await;
    let owner = db.game(40).await;
    let client = db.client().await;
    for id in 1..=20 {
        owner.migrate_user(id).await.unwrap();
    }
    let role = crate::harness::fresh_role(&client, "backend").await;
    let url = db.url_as(&role);
    let spec = crate::example::spec();
    let backend = Decant::connect(&url, spec.clone(), 2).unwrap();
    let clean = (21..=40)
        .find(|&i| crate::example::user(1, i).dirt.is_none())
        .unwrap();
    let err = backend.load(1).await.unwrap_err();
    assert!(err.to_string().contains("permission denied"), "{err}");

    decant::apply_grants(&client, &spec, &role).await.unwrap();
    let backend = Decant::connect(&url, spec.clone(), 2).unwrap();
    let patch = serde_json::json!({"pref": {"granted": 1}});
    for id in [1, 2, clean] {
        let before = backend.load(id).await.unwrap();
        let after = backend.patch(id, &patch).await.unwrap();
        let mut want = before;
        decant::merge_patch(&mut want, &patch);
        assert!(decant::json_eq(&after, &want), "user {id}");
        assert!(decant::json_eq(&backend.load(id).await.unwrap(), &want));
    }
    assert_eq!(backend.load_many(&[1, clean]).await.unwrap().len(), 2);
    // on-demand migration, inside the backend's own lock
    decant::set_control(&client, &Setting::AllowList(vec![clean.into()]))
        .await
        .unwrap();
    backend
        .patch(clean, &serde_json::json!({"pref": {"granted": 2}}))
        .await
        .unwrap();
    assert!(crate::harness::is_migrated(&client, clean).await);
    // the SQL API and the cross-user reads, as the role
    let as_role = crate::harness::connect(&url).await;
    as_role
        .query_one("SELECT decant.load(1)", &[])
        .await
        .unwrap();
    as_role
        .query_one(
            "SELECT decant.patch(2, '{\"pref\": {\"granted\": 3}}'::jsonb)",
            &[],
        )
        .await
        .unwrap();
    as_role
        .query("SELECT * FROM user_statistic_all LIMIT 5", &[])
        .await
        .unwrap();
    as_role
        .query("SELECT * FROM kidnap_points_top(5)", &[])
        .await
        .unwrap();
    // and nothing more: the control row stays the operators'
    let err = as_role
        .execute("UPDATE decant.control SET paused = true", &[])
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
    );
    drop((backend, as_role));
    crate::harness::end_sessions_of(&client, &role).await;
}

/// `init` and `finalize` change the schema of tables the backend is using:
/// a lock request left waiting behind a long transaction queues every
/// later statement on the table behind it. They wait briefly and retry,
/// a re-run of `init` does not lock the source table at all, and when the
/// table stays busy they give up naming the session in the way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_changes_wait_briefly_behind_the_backend_s_transactions() {
    let db = TestDb::new().await;
    let client = db.client().await;
    crate::example::load(&client, 60, 1).await.unwrap();
    // (long enough that init keeps retrying through the reads below, each
    // of which may queue up to one brief lock wait, 500 ms, behind it on a
    // loaded machine: with 3 s it gave up before the check it still waits)
    let spec = Spec::parse(&crate::example::SPEC.replace(
        "lock_timeout_ms = 2000",
        "lock_timeout_ms = 2000\nddl_retry_s = 10",
    ))
    .unwrap();
    // a backend's slow request: it read the table and holds its transaction
    let holder = db.client().await;
    holder
        .batch_execute("BEGIN; SELECT count(*) FROM \"user\"")
        .await
        .unwrap();
    let reader = db.client().await;
    reader
        .batch_execute("SET statement_timeout = '1500ms'")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let init = {
        let url = db.url.clone();
        let spec = spec.clone();
        tokio::spawn(async move {
            let client = crate::harness::connect(&url).await;
            decant::init(&client, &spec).await
        })
    };
    // while init waits for the holder, other reads of the table go on
    // (queued behind a waiting ALTER TABLE they would time out)
    for _ in 0..8 {
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        reader
            .query_one("SELECT data FROM \"user\" WHERE id = 1", &[])
            .await
            .expect("a read while init waits for its lock");
    }
    assert!(
        !init.is_finished(),
        "init cannot add the flag while the holder reads"
    );
    holder.batch_execute("COMMIT").await.unwrap();
    init.await.unwrap().expect("init once the holder is gone");
    assert!(started.elapsed() >= std::time::Duration::from_millis(1200));

    // a re-run while a backend transaction holds a user's row: the flag is
    // there, so the source table is not locked and init goes through
    holder
        .batch_execute("BEGIN; UPDATE \"user\" SET data = data WHERE id = 2")
        .await
        .unwrap();
    tokio::time::timeout(
        std::time::Duration::from_secs(20),
        decant::init(&client, &spec),
    )
    .await
    .expect("a re-run of init does not wait for the backend's transaction")
    .unwrap();
    holder.batch_execute("COMMIT").await.unwrap();

    // finalize locks the table against writes for a moment: behind a
    // transaction that stays open it gives up, names it, and changes nothing
    let decant = Decant::connect(&db.url, spec.clone(), 4).unwrap();
    crate::harness::run_all(&decant).await.unwrap();
    client
        .batch_execute("DELETE FROM \"user\" WHERE NOT migrated")
        .await
        .unwrap();
    holder
        .batch_execute("BEGIN; UPDATE \"user\" SET data = data WHERE id = 2")
        .await
        .unwrap();
    let holder_pid: i32 = holder
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let err = decant::finalize(&db.url, &decant, false)
        .await
        .unwrap_err()
        .to_string();
    for says in [
        "finalize: could not take its brief locks on",
        "nothing was changed",
        &format!("pid {holder_pid} (idle in transaction"),
        "ddl_retry_s",
    ] {
        assert!(err.contains(says), "expected `{says}` in: {err}");
    }
    assert!(!err.contains("  "), "a run of spaces in: {err}");
    let finalized: bool = client
        .query_one("SELECT finalized FROM decant.control", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!finalized);
    holder.batch_execute("COMMIT").await.unwrap();
    decant::finalize(&db.url, &decant, true).await.unwrap();
    assert!(!decant::flag_column_exists(&client, &spec).await.unwrap());
}

/// A pattern decant reads but this server cannot compile ("too complex")
/// is refused by `init`, which would otherwise succeed (its constraints
/// go onto empty tables, NOT VALID) and leave the views and every insert
/// into the table failing.
#[tokio::test]
async fn init_refuses_a_pattern_the_server_cannot_compile() {
    let db = TestDb::new().await;
    let client = db.client().await;
    client
        .batch_execute("CREATE TABLE acct (id bigint PRIMARY KEY, data jsonb NOT NULL)")
        .await
        .unwrap();
    let spec = |pattern: &str| {
        decant::Spec::parse(&format!(
            "[source]\ntable = \"acct\"\n\n\
             [tables.acct_stat.columns]\nkind = {{ type = \"text\", pattern = '{pattern}' }}\n\
             value = \"numeric\"\n\n\
             [[rules]]\nname = \"s\"\npath = \"s.{{kind}}\"\ntable = \"acct_stat\"\nvalue = \"value\"\n"
        ))
        .unwrap()
    };
    // (PostgreSQL 14 and later refuse the first half alone; 13 compiles
    // it and refuses the whole; decant's own engine compiles both)
    let err = decant::init(&client, &spec("^([a-z]{1,255}){255}([a-z]{1,255}){100}$"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("column kind: PostgreSQL cannot use the pattern") && err.contains("complex"),
        "{err}"
    );
    let made: bool = client
        .query_one("SELECT to_regclass('acct_stat') IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!made, "nothing made");
    decant::init(&client, &spec("^[a-z]{1,255}$"))
        .await
        .unwrap();
}

/// `init` does not take over objects of decant's names that another role
/// made: a role with CREATE on the database that pre-made the schema
/// `decant` (with a trigger on `decant.control`, `init` run by a
/// superuser would have run it as the superuser), a target table handed
/// to another role, a trigger on decant's own tables.
#[tokio::test]
async fn init_refuses_objects_another_role_controls() {
    let db = TestDb::new().await;
    let client = db.client().await;
    crate::example::load(&client, 5, 1).await.unwrap();
    let mallory = crate::harness::fresh_role(&client, "mallory").await;
    client
        .batch_execute(&format!(
            "DO $$ BEGIN EXECUTE format('GRANT CREATE ON DATABASE %I TO {mallory}', \
               current_database()); END $$; \
             SET ROLE {mallory}; \
             CREATE SCHEMA decant; CREATE TABLE decant.control (x int); \
             RESET ROLE"
        ))
        .await
        .unwrap();
    let spec = crate::example::spec();
    let err = decant::init(&client, &spec).await.unwrap_err().to_string();
    assert!(
        err.contains(&format!("schema decant (owned by {mallory})"))
            && err.contains(&format!("table decant.control (owned by {mallory})"))
            && err.contains("ALTER ... OWNER TO"),
        "{err}"
    );
    let flag: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = '\"user\"'::regclass \
               AND attname = 'migrated')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!flag, "init changed nothing");

    // made by a trusted role, init goes on; a target table handed over
    // to another role, or a trigger on decant's tables, stops it again
    client
        .batch_execute("DROP SCHEMA decant CASCADE")
        .await
        .unwrap();
    decant::init(&client, &spec).await.unwrap();
    client
        .batch_execute(&format!("ALTER TABLE user_bot OWNER TO {mallory}"))
        .await
        .unwrap();
    let err = decant::init(&client, &spec).await.unwrap_err().to_string();
    assert!(
        err.contains(&format!("table public.user_bot (owned by {mallory})")),
        "{err}"
    );
    client
        .batch_execute(
            "ALTER TABLE user_bot OWNER TO CURRENT_USER; \
             CREATE FUNCTION public.sneaky() RETURNS trigger LANGUAGE plpgsql AS \
               $$ BEGIN RETURN NEW; END $$; \
             CREATE TRIGGER sneaky BEFORE UPDATE ON decant.control \
               FOR EACH ROW EXECUTE FUNCTION public.sneaky()",
        )
        .await
        .unwrap();
    let err = decant::init(&client, &spec).await.unwrap_err().to_string();
    assert!(err.contains("trigger sneaky on decant.control"), "{err}");
    client
        .batch_execute("DROP TRIGGER sneaky ON decant.control")
        .await
        .unwrap();
    decant::init(&client, &spec).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_builds_its_indexes_past_the_server_s_statement_timeout() {
    // A role's or a database's statement_timeout (there to stop runaway
    // queries) would cancel an index built CONCURRENTLY half way, and a
    // ranked statistic's index on millions of blobs takes minutes: init
    // builds them without it, and gives the session its timeout back. So
    // with PostgreSQL 17's transaction_timeout, which ends the session
    // (the build waits for the snapshot below about 2.5 s; init's own
    // transaction takes far less than the 1 s allowed).
    let db = TestDb::new().await;
    let client = db.client().await;
    crate::example::load(&client, 60, 1).await.unwrap();
    let name = db.name();
    let has_transaction_timeout = crate::harness::server_version(&client).await >= 170000;
    client
        .batch_execute(&format!(
            "ALTER DATABASE {name} SET statement_timeout = '400ms'"
        ))
        .await
        .unwrap();
    if has_transaction_timeout {
        client
            .batch_execute(&format!(
                "ALTER DATABASE {name} SET transaction_timeout = '1s'"
            ))
            .await
            .unwrap();
    }
    // a snapshot held open: a CONCURRENTLY build waits for it to end
    let holder = db.client().await;
    holder
        .batch_execute(if has_transaction_timeout {
            "SET transaction_timeout = 0; BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1"
        } else {
            "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1"
        })
        .await
        .unwrap();
    let init = {
        let url = db.url.clone();
        tokio::spawn(async move {
            let client = crate::harness::connect(&url).await;
            let done = decant::init(&client, &crate::example::spec()).await;
            let timeouts = crate::harness::column::<String>(
                &client,
                "SELECT current_setting(name) FROM pg_settings \
                  WHERE name IN ('statement_timeout', 'transaction_timeout') ORDER BY name",
                &[],
            )
            .await;
            (done, timeouts)
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    if init.is_finished() {
        let (done, _) = init.await.unwrap();
        panic!("init ended while a snapshot was open (it should wait): {done:?}");
    }
    holder.batch_execute("COMMIT").await.unwrap();
    let (done, timeouts) = init.await.unwrap();
    done.expect("init builds its indexes past the statement and transaction timeouts");
    let mut expected = vec!["400ms".to_string()];
    if has_transaction_timeout {
        expected.push("1s".into());
    }
    assert_eq!(timeouts, expected, "the session's own timeouts come back");
    let invalid: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_index WHERE NOT indisvalid \
             AND indrelid = ANY ('{\"user\",user_statistic}'::regclass[])",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(invalid, 0);
    let ranked: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_indexes WHERE indexname LIKE '%legacy%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(ranked >= 2, "the legacy and ranking indexes are built");
}

/// A blob column of a domain over jsonb is refused with the ALTER that
/// makes it jsonb; a CHECK constraint reading the blob, which a migrated
/// user's residual can break, is named by the warnings (and breaks the
/// user it says, on 23514), and one that accepts migrated users is not.
#[tokio::test]
async fn a_domain_over_jsonb_is_refused_and_a_check_on_the_blob_is_named() {
    let db = TestDb::new().await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE DOMAIN save_t AS jsonb CHECK (jsonb_typeof(VALUE) = 'object'); \
             CREATE TABLE \"user\" (id bigint PRIMARY KEY, name text, data save_t NOT NULL); \
             INSERT INTO \"user\" VALUES (1, 'a', '{\"xp\": 5, \"v\": 1}'), (2, 'b', '{\"xp\": 6}')",
        )
        .await
        .unwrap();
    let spec = crate::example::spec();
    let err = decant::init(&client, &spec).await.unwrap_err().to_string();
    assert!(
        err.contains("is save_t, a domain over jsonb")
            && err.contains("ALTER TABLE \"public\".\"user\" ALTER COLUMN \"data\" TYPE jsonb"),
        "{err}"
    );
    // the fix it names, then a constraint on what the blob holds
    client
        .batch_execute(
            "ALTER TABLE \"user\" ALTER COLUMN data TYPE jsonb; \
             ALTER TABLE \"user\" ADD CONSTRAINT has_xp CHECK (data ? 'xp' OR data ? 'v')",
        )
        .await
        .unwrap();
    decant::init(&client, &spec).await.unwrap();
    let warnings = decant::source_warnings(&client, &spec).await.unwrap();
    assert!(
        warnings.iter().any(|w| w
            .contains("has CHECK constraints that read the column \"data\": has_xp: CHECK")
            && w.contains("CHECK (\"migrated\" OR (...))")),
        "{warnings:?}"
    );
    // what it warns of: user 2's residual has neither key
    let decant = db.decant_with(crate::example::SPEC, 2);
    let r = decant.migrate_batch(&[1, 2]).await.unwrap();
    assert_eq!((r.migrated.len(), r.failed.len()), (1, 1), "{r:?}");
    assert!(format!("{:?}", r.failed).contains("23514"), "{r:?}");
    // made to accept migrated users: user 2 migrates, and no warning
    client
        .batch_execute(
            "ALTER TABLE \"user\" DROP CONSTRAINT has_xp, \
               ADD CONSTRAINT has_xp CHECK (migrated OR data ? 'xp' OR data ? 'v')",
        )
        .await
        .unwrap();
    let r = decant.migrate_batch(&[2]).await.unwrap();
    assert_eq!(r.migrated.len(), 1, "{r:?}");
    let warnings = decant::source_warnings(&client, &spec).await.unwrap();
    assert!(
        !warnings.iter().any(|w| w.contains("CHECK constraints")),
        "{warnings:?}"
    );
}

/// A generated column computed from the blob loses the values the rules
/// move to the tables when its user migrates: the warnings name it (and
/// not one that reads the flag too, nor a column that does not read the
/// blob), and what they say happens.
#[tokio::test]
async fn a_generated_column_on_the_blob_is_named() {
    let db = TestDb::new().await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE \"user\" (id bigint PRIMARY KEY, name text, data jsonb NOT NULL, \
               xp_copy numeric GENERATED ALWAYS AS ((data ->> 'xp')::numeric) STORED, \
               name_len int GENERATED ALWAYS AS (length(name)) STORED); \
             INSERT INTO \"user\" (id, name, data) VALUES (1, 'a', '{\"xp\": 5}')",
        )
        .await
        .unwrap();
    let spec = crate::example::spec();
    decant::init(&client, &spec).await.unwrap();
    let warnings = decant::source_warnings(&client, &spec).await.unwrap();
    let named: Vec<&String> = warnings
        .iter()
        .filter(|w| w.contains("generated columns"))
        .collect();
    assert_eq!(named.len(), 1, "{warnings:?}");
    assert!(
        named[0].contains("computed from the column \"data\": xp_copy = ")
            && !named[0].contains("name_len"),
        "{warnings:?}"
    );
    // what it warns of: migrated, the copy of xp is gone
    let decant = db.decant_with(crate::example::SPEC, 2);
    let r = decant.migrate_batch(&[1]).await.unwrap();
    assert_eq!(r.migrated.len(), 1, "{r:?}");
    let gone: bool = client
        .query_one("SELECT xp_copy IS NULL FROM \"user\" WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert!(gone);
    // computed from the flag too, it can tell a residual: not named
    client
        .batch_execute(
            "ALTER TABLE \"user\" DROP COLUMN xp_copy, ADD COLUMN xp_copy numeric \
               GENERATED ALWAYS AS (CASE WHEN migrated THEN NULL ELSE (data ->> 'xp')::numeric END) STORED",
        )
        .await
        .unwrap();
    let warnings = decant::source_warnings(&client, &spec).await.unwrap();
    assert!(
        !warnings.iter().any(|w| w.contains("generated columns")),
        "{warnings:?}"
    );
    // one added to the table later (its dependencies recorded otherwise)
    client
        .batch_execute(
            "ALTER TABLE \"user\" ADD COLUMN pref jsonb GENERATED ALWAYS AS (data -> 'pref') STORED",
        )
        .await
        .unwrap();
    let warnings = decant::source_warnings(&client, &spec).await.unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("computed from the column \"data\": pref = ")
                && !w.contains("xp_copy")),
        "{warnings:?}"
    );
}

/// A ranked statistic's indexes follow the spec: `init` rebuilds one the
/// spec now defines otherwise (`index_fail_test` turned on or off, another
/// `where`), which `IF NOT EXISTS` kept under its name; an index from
/// before the marks is rebuilt when its fail test disagrees, and a run of
/// `init` that changes nothing rebuilds nothing.
#[tokio::test]
async fn ranked_indexes_are_rebuilt_when_the_spec_defines_them_otherwise() {
    let db = TestDb::new().await;
    let client = db.client().await;
    crate::example::load(&client, 30, 1).await.unwrap();
    let def = async |name: &str| -> (String, i64) {
        let r = client
            .query_one(
                "SELECT pg_get_indexdef(c.oid), c.oid::bigint FROM pg_class c WHERE c.relname = $1",
                &[&name],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    let legacy = "user_kidnap_points_legacy_rank_idx";
    let rows = "user_statistic_kidnap_points_rank_idx";
    let spec = |extra: &str, stat: &str| {
        Spec::parse(
            &crate::example::SPEC
                .replacen(
                    "name = \"kidnap_points\"\n",
                    &format!("name = \"kidnap_points\"\n{extra}"),
                    1,
                )
                .replacen(
                    "where = { mode = \"kidnap\", statistic_id = \"points\" }",
                    &format!("where = {{ mode = \"kidnap\", statistic_id = \"{stat}\" }}"),
                    1,
                ),
        )
        .unwrap()
    };
    let plain = spec("", "points");
    decant::init(&client, &plain).await.unwrap();
    let (first, oid) = def(legacy).await;
    assert!(!first.contains("decant_blob_fails"), "{first}");
    // nothing changed: nothing rebuilt
    decant::init(&client, &plain).await.unwrap();
    assert_eq!(def(legacy).await.1, oid, "rebuilt for nothing");
    // the fail test into the legacy index's predicate, and out again
    decant::init(&client, &spec("index_fail_test = true\n", "points"))
        .await
        .unwrap();
    let (with_test, oid) = def(legacy).await;
    assert!(with_test.contains("user_decant_blob_fails"), "{with_test}");
    decant::init(&client, &plain).await.unwrap();
    assert!(!def(legacy).await.0.contains("decant_blob_fails"));
    // another `where`: the target rows' index follows
    assert!(def(rows).await.0.contains("'points'"));
    decant::init(&client, &spec("", "gamesWon")).await.unwrap();
    let (won, _) = def(rows).await;
    assert!(
        won.contains("'gamesWon'") && !won.contains("'points'"),
        "{won}"
    );
    // an index built before the marks: the fail test is told by its
    // predicate
    decant::init(&client, &plain).await.unwrap();
    client
        .batch_execute(&format!("COMMENT ON INDEX {legacy} IS NULL"))
        .await
        .unwrap();
    decant::init(&client, &spec("index_fail_test = true\n", "points"))
        .await
        .unwrap();
    let (again, new_oid) = def(legacy).await;
    assert!(
        again.contains("user_decant_blob_fails") && new_oid != oid,
        "{again}"
    );
    // and the top-N still equals the view
    let top: Vec<i64> = client
        .query("SELECT user_id FROM kidnap_points_top(10)", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let view: Vec<i64> = client
        .query(
            "SELECT user_id FROM user_statistic_all WHERE mode = 'kidnap' \
               AND statistic_id = 'points' ORDER BY value DESC NULLS LAST, user_id LIMIT 10",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(top, view);
    // a rule's policy changes the fail test (xp's `fail` to `keep`): init
    // replaces the function in place, and the legacy index built on the
    // old one is rebuilt (it kept its old answers: a user the rule no
    // longer fails stayed out of the top-N and the views)
    client
        .batch_execute(
            "UPDATE \"user\" SET data = data || '{\"xp\": \"lots\", \"marriage\": \
             {\"stats\": {\"kidnap\": {\"points\": 999999999}}}}' WHERE id = 1",
        )
        .await
        .unwrap();
    let top1 = async || -> Option<i64> {
        client
            .query_opt("SELECT user_id FROM kidnap_points_top(1)", &[])
            .await
            .unwrap()
            .map(|r| r.get(0))
    };
    assert_ne!(top1().await, Some(1), "its blob fails: not in the top");
    let tested = crate::example::SPEC.replacen(
        "name = \"kidnap_points\"\n",
        "name = \"kidnap_points\"\nindex_fail_test = true\n",
        1,
    );
    let xp_fails =
        "constants = { mode = \"global\", statistic_id = \"xp\" }\non_invalid = \"fail\"";
    assert!(tested.contains(xp_fails));
    let kept =
        Spec::parse(&tested.replacen(xp_fails, &xp_fails.replace("\"fail\"", "\"keep\""), 1))
            .unwrap();
    decant::init(&client, &kept).await.unwrap();
    let (_, kept_oid) = def(legacy).await;
    assert_ne!(kept_oid, new_oid, "the legacy index was not rebuilt");
    assert_eq!(top1().await, Some(1), "no longer failing: first");
    // n NULL or below 1: no rows (NULL gave every row, -1 an error)
    for n in ["NULL", "0", "-1"] {
        let rows = client
            .query(&format!("SELECT * FROM kidnap_points_top({n})"), &[])
            .await
            .unwrap();
        assert!(rows.is_empty(), "top({n}): {} rows", rows.len());
    }
    let in_view: i64 = client
        .query_one(
            "SELECT count(*) FROM user_statistic_all WHERE user_id = 1 AND mode = 'kidnap' \
               AND statistic_id = 'points' AND value = 999999999",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(in_view, 1);
}

/// A user deleted from the source table takes its rows and its state with
/// it (decant's trigger), whoever deletes it: the views and leaderboards
/// stop showing it, and a user made again under its id migrates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_user_takes_its_rows_and_state_with_it() {
    let db = TestDb::new().await;
    let owner = db.game(40).await;
    let client = db.client().await;
    let clean: Vec<i64> = (1..=40)
        .filter(|&i| crate::example::user(1, i).dirt.is_none())
        .collect();
    let (gone, kept, legacy) = (&clean[..2], clean[2], clean[clean.len() - 1]);
    for &id in &clean[..3] {
        owner.migrate_user(id).await.unwrap();
    }
    // a held user (rolled back) has a state row and no rows
    owner.rollback_user(clean[3]).await.unwrap();
    let kept_rows = crate::harness::row_count(&client, kept).await;
    assert!(crate::harness::row_count(&client, gone[0]).await > 0);
    // a second init neither doubles the trigger nor fails on it
    decant::init(&client, &crate::example::spec())
        .await
        .unwrap();
    let triggers: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = '\"user\"'::regclass \
              AND tgname = 'decant_forget_deleted_users'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(triggers, 1);

    // a backend role with the printed grants, and the right to delete users
    let role = crate::harness::fresh_role(&client, "deleter").await;
    decant::apply_grants(&client, &crate::example::spec(), &role)
        .await
        .unwrap();
    client
        .batch_execute(&format!("GRANT DELETE ON \"user\" TO {role}"))
        .await
        .unwrap();
    let as_role = crate::harness::connect(&db.url_as(&role)).await;
    let deleted = as_role
        .execute(
            "DELETE FROM \"user\" WHERE id = ANY ($1)",
            &[&vec![gone[0], gone[1], legacy, clean[3]]],
        )
        .await
        .unwrap();
    assert_eq!(deleted, 4);
    for &id in &[gone[0], gone[1], legacy, clean[3]] {
        assert_eq!(crate::harness::row_count(&client, id).await, 0, "user {id}");
        let state: i64 = client
            .query_one(
                "SELECT count(*) FROM decant.user_state WHERE user_id = $1",
                &[&id],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(state, 0, "user {id}'s state");
        let shown: i64 = client
            .query_one(
                "SELECT count(*) FROM user_statistic_all WHERE user_id = $1",
                &[&id],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(shown, 0, "user {id} in the view");
    }
    let top: Vec<i64> = client
        .query("SELECT user_id FROM kidnap_points_top(100)", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        !top.contains(&gone[0]) && !top.contains(&gone[1]),
        "{top:?}"
    );
    // the others untouched
    assert_eq!(crate::harness::row_count(&client, kept).await, kept_rows);
    assert!(crate::harness::is_migrated(&client, kept).await);
    // a user made again under a deleted one's id starts legacy and migrates
    let blob = serde_json::json!({"xp": 7, "pref": {"sound": true}});
    crate::harness::insert_user(&client, gone[0], &blob).await;
    let report = owner.migrate_user(gone[0]).await.unwrap();
    assert_eq!(report.migrated.len(), 1, "{report:?}");
    assert!(decant::json_eq(&owner.load(gone[0]).await.unwrap(), &blob));
    assert!(crate::harness::row_count(&client, gone[0]).await > 0);
}

/// A flag column the team already had, set for some users, where decant
/// was never initialized, is not taken for decant's: `check` and `init`
/// refuse it, naming users and the spec's way out; another flag column
/// named in the spec is added beside it, and the users stay legacy. A
/// column of that name set for no one is taken (as one an interrupted
/// first `init` would leave).
#[tokio::test]
async fn a_flag_column_decant_did_not_set_is_refused() {
    let db = TestDb::new().await;
    let client = db.client().await;
    crate::example::load(&client, 60, 1).await.unwrap();
    client
        .batch_execute(
            "ALTER TABLE \"user\" ADD COLUMN migrated boolean NOT NULL DEFAULT false; \
             UPDATE \"user\" SET migrated = true WHERE id IN (7, 21)",
        )
        .await
        .unwrap();
    let spec = crate::example::spec();
    for err in [
        decant::init(&client, &spec).await.unwrap_err(),
        decant::check(
            &db.url,
            spec.clone(),
            &decant::CheckOptions::default(),
            &decant::CheckProgress::default(),
        )
        .await
        .unwrap_err(),
    ] {
        let err = err.to_string();
        assert!(
            err.contains("\"migrated\" exists and is true for users (e.g. 7, 21)")
                && err.contains("decant was never initialized")
                && err.contains("`[source] flag = \"decant_migrated\"`"),
            "{err}"
        );
    }
    let exists: bool = client
        .query_one("SELECT to_regclass('decant.control') IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!exists, "init refused before creating anything");

    // the spec's own flag column beside the team's: everyone legacy
    let other = Spec::parse(&crate::example::SPEC.replacen(
        "flag = \"migrated\"",
        "flag = \"decant_migrated\"",
        1,
    ))
    .unwrap();
    assert_eq!(other.source().flag, "decant_migrated");
    decant::init(&client, &other).await.unwrap();
    let legacy: i64 = client
        .query_one(
            "SELECT count(*) FROM \"user\" WHERE NOT decant_migrated",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(legacy, 60);

    // set for no one, in another database: taken
    let db2 = TestDb::new().await;
    let client2 = db2.client().await;
    crate::example::load(&client2, 20, 1).await.unwrap();
    client2
        .batch_execute("ALTER TABLE \"user\" ADD COLUMN migrated boolean NOT NULL DEFAULT false")
        .await
        .unwrap();
    decant::init(&client2, &spec).await.unwrap();
}

/// Views the team made on the source table that read the blob are named
/// by the warnings (they miss the moved values once users migrate);
/// decant's own `_all` views, views that do not read the blob, and the
/// example alone are not.
#[tokio::test]
async fn views_reading_the_blob_are_named() {
    let db = TestDb::new().await;
    let client = db.client().await;
    crate::example::load(&client, 30, 1).await.unwrap();
    let spec = crate::example::spec();
    let named = async || warnings_saying(&client, &spec, "views read the column \"data\"").await;
    decant::init(&client, &spec).await.unwrap();
    assert_eq!(
        named().await,
        Vec::<String>::new(),
        "the _all views are decant's"
    );
    client
        .batch_execute(
            "CREATE SCHEMA reports; \
             CREATE VIEW reports.top_xp AS SELECT id, (data ->> 'xp')::numeric AS xp FROM \"user\"; \
             CREATE MATERIALIZED VIEW everything AS SELECT * FROM \"user\"; \
             CREATE VIEW ids AS SELECT id, migrated FROM \"user\"",
        )
        .await
        .unwrap();
    let warned = named().await;
    let [w] = &warned[..] else {
        panic!("one warning: {warned:?}");
    };
    assert!(
        w.contains("everything (materialized view), reports.top_xp (view)")
            && !w.contains("ids")
            && w.contains("`<table>_all` views"),
        "{w}"
    );
}

/// A publication that carries the source table without the target tables
/// is named with the tables it lacks and the statement that adds them;
/// once they are added, or for a publication of all tables or of other
/// tables only, nothing is said.
#[tokio::test]
async fn publications_without_the_target_tables_are_named() {
    let db = TestDb::new().await;
    let client = db.client().await;
    crate::example::load(&client, 30, 1).await.unwrap();
    let spec = crate::example::spec();
    decant::init(&client, &spec).await.unwrap();
    let named =
        async || warnings_saying(&client, &spec, "is published without the target tables").await;
    let name = db.name().to_string();
    client
        .batch_execute(&format!(
            "CREATE TABLE other (id int PRIMARY KEY); \
             CREATE PUBLICATION {name}_other FOR TABLE other; \
             CREATE PUBLICATION {name}_users FOR TABLE \"user\", user_bot"
        ))
        .await
        .unwrap();
    let warned = named().await;
    let [w] = &warned[..] else {
        panic!("one warning: {warned:?}");
    };
    assert!(
        w.contains(&format!(
            "\"{name}_users\" lacks \"public\".\"user_achievement\", \"public\".\"user_config\""
        )) && !w.contains("\"public\".\"user_bot\",")
            && !w.contains("_other")
            && w.contains(&format!("`ALTER PUBLICATION \"{name}_users\" ADD TABLE")),
        "{w}"
    );
    // the statement it gives mends it
    let add = w
        .split('`')
        .find(|s| s.starts_with("ALTER PUBLICATION"))
        .unwrap()
        .to_string();
    client.batch_execute(&add).await.unwrap();
    assert_eq!(named().await, Vec::<String>::new());
    client
        .batch_execute(&format!("CREATE PUBLICATION {name}_all FOR ALL TABLES"))
        .await
        .unwrap();
    assert_eq!(named().await, Vec::<String>::new());
}

/// The warnings of `source_warnings` that say `text`.
async fn warnings_saying(client: &tokio_postgres::Client, spec: &Spec, text: &str) -> Vec<String> {
    decant::source_warnings(client, spec)
        .await
        .unwrap()
        .into_iter()
        .filter(|w| w.contains(text))
        .collect()
}

/// Row-level security on the source table: a role its policies apply to
/// sees only the users they let through (on a target table, their rows). `check`, `status`, the daemon
/// (migrating or rolling back) and `finalize` run as such a role refused
/// (they said "done" with every hidden user legacy, and `finalize`
/// passed and recorded the phase finalized: the views then read the
/// tables alone, hiding those users' data); the same role with BYPASSRLS
/// migrates every user. `init`, `check` and `run` name the target tables
/// that lack row-level security while the source has it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_level_security_hiding_users_from_decant_is_refused() {
    let db = TestDb::new().await;
    let users = 60;
    let decant = db.game(users).await;
    let spec = decant.spec().clone();
    let client = db.client().await;
    // the policy lets a session see the even users only
    let role = crate::harness::fresh_role(&client, "rls_ops").await;
    client
        .batch_execute(&format!(
            "ALTER TABLE \"user\" ENABLE ROW LEVEL SECURITY; \
             CREATE POLICY evens ON \"user\" USING (id % 2 = 0); \
             GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA decant TO {role}"
        ))
        .await
        .unwrap();
    decant::apply_grants(&client, &spec, &role).await.unwrap();
    let as_role = Decant::connect(&db.url_as(&role), spec.clone(), 4).unwrap();
    let refused = |what: &str, e: Error| {
        let e = e.to_string();
        assert!(
            e.contains(&format!("row-level security applies to role \"{role}\""))
                && e.contains("BYPASSRLS"),
            "{what}: {e}"
        );
    };
    refused(
        "status",
        decant::status(&as_role, &decant::Schedule::default())
            .await
            .unwrap_err(),
    );
    refused("run", crate::harness::run_all(&as_role).await.unwrap_err());
    refused(
        "finalize",
        decant::finalize(&db.url_as(&role), &as_role, false)
            .await
            .unwrap_err(),
    );
    refused(
        "check",
        decant::check(
            &db.url_as(&role),
            spec.clone(),
            &decant::CheckOptions::default(),
            &decant::CheckProgress::default(),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(crate::harness::count_migrated(&client).await, 0);
    let phase: bool = client
        .query_one("SELECT finalized FROM decant.control", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!phase, "finalize recorded nothing");
    // the owner names the target tables without policies, until they have
    let unguarded = async || warnings_saying(&client, &spec, "row-level security is on").await;
    let warned = unguarded().await;
    let [w] = &warned[..] else {
        panic!("one warning: {warned:?}");
    };
    for t in spec.tables() {
        assert!(
            w.contains(&format!("\"public\".\"{}\"", t.name)),
            "{t:?}: {w}",
            t = t.name
        );
    }
    for t in spec.tables() {
        client
            .batch_execute(&format!(
                "ALTER TABLE \"{t}\" ENABLE ROW LEVEL SECURITY; \
                 CREATE POLICY evens ON \"{t}\" USING (user_id % 2 = 0)",
                t = t.name
            ))
            .await
            .unwrap();
    }
    assert_eq!(unguarded().await, Vec::<String>::new());
    // policies on the target tables alone hide rows from the role too
    client
        .batch_execute("ALTER TABLE \"user\" DISABLE ROW LEVEL SECURITY")
        .await
        .unwrap();
    let e = decant::status(&as_role, &decant::Schedule::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("\"public\".\"user_statistic\"")
            && !e.contains("\"public\".\"user\",")
            && !e.contains("\"public\".\"user\":"),
        "{e}"
    );
    // let past the policies, the same role migrates every user
    client
        .batch_execute(&format!("ALTER ROLE {role} BYPASSRLS"))
        .await
        .unwrap();
    drop(as_role);
    crate::harness::end_sessions_of(&client, &role).await;
    let as_role = Decant::connect(&db.url_as(&role), spec.clone(), 4).unwrap();
    let report = crate::harness::run_all(&as_role).await.unwrap();
    assert_eq!(report.migrated + report.failed, users as u64, "{report:?}");
    assert_eq!(
        crate::harness::count_migrated(&client).await,
        report.migrated as i64
    );
    drop(as_role);
    crate::harness::end_sessions_of(&client, &role).await;
}
