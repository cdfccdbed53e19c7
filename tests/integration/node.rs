//! The Node/TypeScript example backend (examples/node) runs its scenario
//! against a half-migrated game through the SQL API, type-checked first.
//! Needs node and npm (.ci/run installs them when missing).

use crate::harness::{TestDb, is_migrated};
use std::path::Path;
use std::process::Command;

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start it ({e}); install Node.js 18+ and npm"));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test]
async fn the_node_example_backend_runs_on_the_sql_api() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/node");
    run(
        Command::new("node").arg("--version"),
        "node (the example backend's runtime)",
    );
    if !dir.join("node_modules/.package-lock.json").exists() {
        run(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&dir),
            "npm ci in examples/node",
        );
    }
    run(
        Command::new("npm")
            .args(["run", "--silent", "check"])
            .current_dir(&dir),
        "type-checking examples/node (tsc)",
    );

    let db = TestDb::new().await;
    let decant = db.game(60).await;
    for u in (1..=60).step_by(2) {
        decant.migrate_user(u).await.unwrap();
    }
    let config: tokio_postgres::Config = db.url.parse().unwrap();
    let host = match &config.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(h) => h.clone(),
        tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
    };
    let mut cmd = Command::new("npm");
    cmd.args(["start", "--silent"])
        .current_dir(&dir)
        .env_remove("DATABASE_URL")
        .env("PGHOST", host)
        .env(
            "PGPORT",
            config.get_ports().first().unwrap_or(&5432).to_string(),
        )
        .env("PGUSER", config.get_user().unwrap_or("postgres"))
        .env("PGDATABASE", config.get_dbname().unwrap());
    if let Some(pw) = config.get_password() {
        cmd.env("PGPASSWORD", String::from_utf8_lossy(pw).to_string());
    }
    let out = run(&mut cmd, "the example backend (npm start)");
    assert!(out.contains("all checks passed"), "{out}");
    assert!(out.contains("took the new code path") && out.contains("took the old code path"));

    // what Node wrote, the Rust layer reads: on both paths
    let client = db.client().await;
    let summary: serde_json::Value = out
        .lines()
        .find(|l| l.starts_with("{\"users\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .expect("the backend prints its users");
    let users = [&summary["users"]["legacy"], &summary["users"]["migrated"]]
        .map(|v| v.as_i64().expect("user ids"));
    assert!(!is_migrated(&client, users[0]).await && is_migrated(&client, users[1]).await);
    for u in users {
        let blob = decant.load(u).await.unwrap();
        assert_eq!(
            blob["pref"]["fromNode"],
            serde_json::json!(true),
            "user {u} (migrated: {})",
            is_migrated(&client, u).await
        );
        assert_eq!(blob["bots"]["bot_99"]["level"], serde_json::json!("max"));
    }
    let audited: i64 = client
        .query_one("SELECT count(*) FROM audit", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        audited, 2,
        "the patches committed with the backend's own writes"
    );

    // again as a backend role with decant's grants and INSERT on the
    // audit table made for it: no CREATE on the schema needed (the
    // example's CREATE TABLE IF NOT EXISTS asked for it, table there or
    // not, and PostgreSQL 15 gives ordinary roles none on public)
    let role = crate::harness::fresh_role(&client, "node_app").await;
    decant::apply_grants(&client, decant.spec(), &role)
        .await
        .unwrap();
    client
        .batch_execute(&format!(
            "REVOKE CREATE ON SCHEMA public FROM PUBLIC; GRANT INSERT ON audit TO {role}"
        ))
        .await
        .unwrap();
    cmd.env("PGUSER", &role);
    let out = run(
        &mut cmd,
        "the example backend as a granted role (npm start)",
    );
    assert!(out.contains("all checks passed"), "{out}");
}
