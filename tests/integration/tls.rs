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

/// A new RSA key `key` and, for `subject` with `extra` arguments, a
/// self-signed certificate (`x509`) or a signing request into `out`.
fn new_key(dir: &Path, x509: bool, subject: &str, extra: &[&str], key: &str, out: &str) {
    let mut args = vec!["req"];
    if x509 {
        args.extend_from_slice(&["-x509", "-days", "2"]);
    }
    args.extend_from_slice(&["-newkey", "rsa:2048", "-nodes", "-subj", subject]);
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-keyout", key, "-out", out]);
    sh(dir, &args);
}

/// `csr` in `dir` signed by the test CA (`ca.pem`, `ca.key`) into `out`,
/// with `extra` arguments to `openssl x509` (an `-extfile`).
fn sign(dir: &Path, csr: &str, out: &str, extra: &[&str]) {
    let mut args = vec![
        "x509",
        "-req",
        "-in",
        csr,
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-out",
        out,
    ];
    args.extend_from_slice(extra);
    sh(dir, &args);
}

/// A CA, a server certificate it signs for `localhost` only, and an
/// unrelated CA; readable by the postgres user.
fn certificates() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("decant-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    new_key(&dir, true, "/CN=decant test CA", &[], "ca.key", "ca.pem");
    new_key(&dir, true, "/CN=another CA", &[], "other.key", "other.pem");
    new_key(
        &dir,
        false,
        "/CN=localhost",
        &[],
        "server.key",
        "server.csr",
    );
    std::fs::write(dir.join("san.ext"), "subjectAltName=DNS:localhost\n").unwrap();
    sign(&dir, "server.csr", "server.pem", &["-extfile", "san.ext"]);
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

    // the protocol versions libpq's keywords ask for
    for (extra, want) in [
        ("ssl_min_protocol_version=TLSv1.3", "TLSv1.3"),
        ("ssl_max_protocol_version=TLSv1.2", "TLSv1.2"),
    ] {
        let c = decant::connect(&url("127.0.0.1", &format!("sslmode=require&{extra}")))
            .await
            .unwrap();
        let version: String = c
            .query_one(
                "SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(version, want, "{extra}");
    }

    // a client certificate, for a role the server authenticates by one
    client_certificates(&certs, port).await;

    // a role the server asks a password of, none given: says where one
    // goes (the driver's "invalid configuration: password missing" alone)
    let admin = decant::connect(&url("127.0.0.1", "sslmode=require"))
        .await
        .unwrap();
    let hba: String = admin.query_one("SHOW hba_file", &[]).await.unwrap().get(0);
    let before = std::fs::read_to_string(&hba).unwrap();
    std::fs::write(
        &hba,
        format!("host all pwuser 127.0.0.1/32 scram-sha-256\n{before}"),
    )
    .unwrap();
    admin
        // (stored as SCRAM: PostgreSQL 13 stores md5 by default)
        .batch_execute(
            "SET password_encryption = 'scram-sha-256'; \
             CREATE ROLE pwuser LOGIN PASSWORD 'pw-secret'",
        )
        .await
        .unwrap();
    admin
        .query_one("SELECT pg_reload_conf()", &[])
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let err = decant::connect(&format!(
        "postgres://pwuser@127.0.0.1:{port}/postgres?sslmode=require&passfile=/nonexistent"
    ))
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("password missing") && err.contains("PGPASSWORD") && err.contains("~/.pgpass"),
        "{err}"
    );
    assert!(
        decant::connect(&format!(
            "postgres://pwuser:pw-secret@127.0.0.1:{port}/postgres?sslmode=require"
        ))
        .await
        .is_ok()
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

    // certificates libpq takes and decant's TLS refuses: said with what
    // to do (a debug value, `Other(OtherError(CaUsedAsEndEntity))`, and
    // a subjectAltName message without a remedy)
    new_key(
        &certs,
        true,
        "/CN=localhost",
        &["-addext", "subjectAltName=DNS:localhost"],
        "self.key",
        "self.pem",
    );
    std::fs::write(certs.join("nosan.ext"), "basicConstraints=CA:FALSE\n").unwrap();
    sign(
        &certs,
        "server.csr",
        "nosan.pem",
        &["-extfile", "nosan.ext"],
    );
    let _ = Command::new("chown")
        .args(["-R", "postgres"])
        .arg(&certs)
        .status();
    let _ = Command::new("chmod")
        .arg("0600")
        .arg(certs.join("self.key"))
        .status();
    let admin = decant::connect(&url("127.0.0.1", "sslmode=require"))
        .await
        .unwrap();
    let serve = async |cert: &str, key: &str| {
        // the files the server was started with (its command line sets
        // them), rewritten in place: a reload reads them again
        for (from, to) in [(cert, "server.pem"), (key, "server.key")] {
            let text = std::fs::read(certs.join(from)).unwrap();
            std::fs::write(certs.join(to), text).unwrap();
        }
        admin
            .query_one("SELECT pg_reload_conf()", &[])
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    };
    let key = std::fs::read(certs.join("server.key")).unwrap();
    std::fs::write(certs.join("server.orig.key"), key).unwrap();
    serve("self.pem", "self.key").await;
    let own = certs.join("self.pem").display().to_string();
    let err = ssl_in_use(&url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={own}"),
    ))
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("is a CA certificate") && err.contains("Sign a server certificate"),
        "{err}"
    );
    assert!(!err.contains("OtherError"), "{err}");
    serve("nosan.pem", "server.orig.key").await;
    let err = ssl_in_use(&url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    ))
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("names no host in a subjectAltName")
            && err.contains("`localhost` expected")
            && err.contains("sslmode=verify-ca"),
        "{err}"
    );
    assert!(
        ssl_in_use(&url(
            "localhost",
            &format!("sslmode=verify-ca&sslrootcert={ca}")
        ))
        .await
        .unwrap(),
        "verify-ca takes it"
    );
    let _ = std::fs::remove_dir_all(&certs);
}

/// The server made to authenticate `certuser` by a certificate its CA
/// signs (`cert` in pg_hba.conf): decant connects with `sslcert` /
/// `sslkey` (or `PGSSLCERT` / `PGSSLKEY`), not without them, and refuses
/// a key others can read, as libpq does.
async fn client_certificates(certs: &Path, port: u16) {
    let admin = decant::connect(&format!(
        "postgres://postgres@127.0.0.1:{port}/postgres?sslmode=require"
    ))
    .await
    .unwrap();
    let hba: String = admin.query_one("SHOW hba_file", &[]).await.unwrap().get(0);
    let before = std::fs::read_to_string(&hba).unwrap();
    std::fs::write(
        &hba,
        format!("hostssl all certuser 127.0.0.1/32 cert\n{before}"),
    )
    .unwrap();
    admin
        .batch_execute("CREATE ROLE certuser LOGIN")
        .await
        .unwrap();
    admin
        .batch_execute(&format!(
            "ALTER SYSTEM SET ssl_ca_file = '{}'",
            certs.join("ca.pem").display()
        ))
        .await
        .unwrap();
    admin
        .query_one("SELECT pg_reload_conf()", &[])
        .await
        .unwrap();
    new_key(
        certs,
        false,
        "/CN=certuser",
        &[],
        "client.key",
        "client.csr",
    );
    // signed by the CA as X.509 v1 (what `openssl x509 -req` makes
    // without extensions: rustls cannot parse it, servers take it), and
    // as v3 (extensions make it v3)
    sign(certs, "client.csr", "client.crt", &[]);
    std::fs::write(certs.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    sign(
        certs,
        "client.csr",
        "client3.crt",
        &["-extfile", "client.ext"],
    );
    let key = certs.join("client.key");
    let chmod = |mode: &str| {
        assert!(
            Command::new("chmod")
                .arg(mode)
                .arg(&key)
                .status()
                .unwrap()
                .success()
        );
    };
    chmod("0600");
    let as_certuser = |extra: &str| {
        format!("postgres://certuser@127.0.0.1:{port}/postgres?sslmode=require{extra}")
    };
    let with_cert = format!(
        "&sslcert={}&sslkey={}",
        certs.join("client.crt").display(),
        key.display()
    );
    // the reload is asynchronous: wait for the server to ask for the cert
    let mut last = String::new();
    let mut connected = None;
    for _ in 0..50 {
        match decant::connect(&as_certuser(&with_cert)).await {
            Ok(c) => {
                connected = Some(c);
                break;
            }
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let c = connected.unwrap_or_else(|| panic!("with the client certificate: {last}"));
    let who: String = c
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(who, "certuser");
    // the key=value form, the key found beside the certificate
    let kv = format!(
        "host=127.0.0.1 port={port} user=certuser dbname=postgres sslmode=require sslcert='{}'",
        certs.join("client.crt").display()
    );
    decant::connect(&kv).await.unwrap();
    // without it the server refuses the role
    let err = decant::connect(&as_certuser(""))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("certuser") || err.contains("certificate"),
        "{err}"
    );
    // a key others can read is refused before connecting, naming the fix
    chmod("0644");
    let err = decant::connect(&as_certuser(&with_cert))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("sslkey") && err.contains("chmod 0600"),
        "{err}"
    );
    chmod("0600");
    // the v3 certificate
    let v3 = format!(
        "&sslcert={}&sslkey={}",
        certs.join("client3.crt").display(),
        key.display()
    );
    decant::connect(&as_certuser(&v3)).await.unwrap();
    // the key of another certificate (checked where rustls reads the
    // certificate: v3)
    let other_key = certs.join("other.key");
    assert!(
        Command::new("chmod")
            .arg("0600")
            .arg(&other_key)
            .status()
            .unwrap()
            .success()
    );
    let mismatched = format!(
        "&sslcert={}&sslkey={}",
        certs.join("client3.crt").display(),
        other_key.display()
    );
    let err = decant::connect(&as_certuser(&mismatched))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("and its sslkey"), "{err}");
    // a certificate file that holds none
    let bad = format!("&sslcert={}", certs.join("san.ext").display());
    let err = decant::connect(&as_certuser(&bad))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("sslcert") && err.contains("no certificate"),
        "{err}"
    );
}
