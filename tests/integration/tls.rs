//! TLS as libpq does it: every sslmode against a throwaway cluster with
//! ssl=on and a certificate signed by a generated authority.

use crate::cluster::{ClusterOptions, TempCluster};
use std::path::{Path, PathBuf};
use std::process::Command;

fn sh(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate it signs for `localhost` only, and an
/// unrelated CA; readable by the postgres user.
fn certificates() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("decant-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    sh(
        &dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=decant test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    );
    sh(
        &dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=another CA",
            "-keyout",
            "other.key",
            "-out",
            "other.pem",
        ],
    );
    sh(
        &dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(dir.join("san.ext"), "subjectAltName=DNS:localhost\n").unwrap();
    sh(
        &dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.pem",
        ],
    );
    let _ = Command::new("chown")
        .args(["-R", "postgres"])
        .arg(&dir)
        .status();
    let _ = Command::new("chmod")
        .arg("0600")
        .arg(dir.join("server.key"))
        .status();
    let _ = Command::new("chmod").arg("0755").arg(&dir).status();
    dir
}

async fn ssl_in_use(url: &str) -> decant::Result<bool> {
    let c = decant::connect(url).await?;
    Ok(c.query_one(
        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        &[],
    )
    .await
    .unwrap()
    .get(0))
}

#[tokio::test]
async fn every_sslmode_connects_as_libpq_would() {
    let certs = certificates();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let opts = ClusterOptions {
        tls: Some((port, certs.join("server.pem"), certs.join("server.key"))),
        ..ClusterOptions::default()
    };
    let _cluster = tokio::task::spawn_blocking(move || TempCluster::start(&opts))
        .await
        .unwrap()
        .unwrap();
    let ca = certs.join("ca.pem").display().to_string();
    let other = certs.join("other.pem").display().to_string();
    let url =
        |host: &str, extra: &str| format!("postgres://postgres@{host}:{port}/postgres?{extra}");

    assert!(
        !ssl_in_use(&url("localhost", "sslmode=disable"))
            .await
            .unwrap()
    );
    assert!(
        ssl_in_use(&url("localhost", "sslmode=prefer"))
            .await
            .unwrap()
    );
    assert!(
        ssl_in_use(&url("127.0.0.1", "sslmode=require"))
            .await
            .unwrap()
    );
    // the chain checked, any name
    assert!(
        ssl_in_use(&url(
            "127.0.0.1",
            &format!("sslmode=verify-ca&sslrootcert={ca}")
        ))
        .await
        .unwrap()
    );
    // the chain and the name, in the key=value form too
    assert!(
        ssl_in_use(&url(
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={ca}")
        ))
        .await
        .unwrap()
    );
    let kv = format!(
        "host=localhost port={port} user=postgres dbname=postgres sslmode=verify-full sslrootcert='{ca}'"
    );
    assert!(ssl_in_use(&kv).await.unwrap());
    // a name the certificate does not hold
    let err = ssl_in_use(&url(
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    ))
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("certificate") && err.to_lowercase().contains("name"),
        "{err}"
    );
    // another authority: refused by verify-ca, and by require given a root
    for mode in ["verify-ca", "require"] {
        let err = ssl_in_use(&url(
            "localhost",
            &format!("sslmode={mode}&sslrootcert={other}"),
        ))
        .await
        .unwrap_err()
        .to_string();
        assert!(err.contains("certificate"), "{mode}: {err}");
    }
    // no root certificate for a verifying mode: says where to put one
    let err = ssl_in_use(&url("localhost", "sslmode=verify-full"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("sslrootcert") && err.contains("PGSSLROOTCERT"),
        "{err}"
    );

    // the pool (the library and the daemon) and the command line, by the
    // libpq variables
    let decant_url = url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    );
    let pool = decant::Decant::connect(&decant_url, crate::example::spec(), 1).unwrap();
    // (no decant schema here: the call gets as far as asking for it)
    let err = pool.load(1).await.unwrap_err().to_string();
    assert!(
        !err.contains("certificate") && !err.contains("TLS"),
        "{err}"
    );
    std::fs::write(certs.join("decant.toml"), crate::example::SPEC).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_decant"))
        .args(["status", "--spec"])
        .arg(certs.join("decant.toml"))
        .env_remove("DATABASE_URL")
        .env("PGHOST", "localhost")
        .env("PGPORT", port.to_string())
        .env("PGUSER", "postgres")
        .env("PGDATABASE", "postgres")
        .env("PGSSLMODE", "verify-full")
        .env("PGSSLROOTCERT", &ca)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // connected over TLS: it gets as far as finding decant not initialized
    assert!(
        !stderr.contains("certificate") && !stderr.contains("TLS"),
        "{stderr}"
    );
    assert!(
        stderr.contains("decant init") || out.status.success(),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&certs);
}
