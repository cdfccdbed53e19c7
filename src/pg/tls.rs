//! TLS as libpq does it, with rustls: `sslmode` (`disable`, `allow`,
//! `prefer`, `require`, `verify-ca`, `verify-full`) and `sslrootcert`, from
//! the connection string or `PGSSLMODE` / `PGSSLROOTCERT`, and a client
//! certificate (`sslcert` / `sslkey`, `PGSSLCERT` / `PGSSLKEY`, else
//! `~/.postgresql/postgresql.crt` and `.key`). tokio-postgres
//! knows only disable, prefer and require, so the two verifying modes and
//! the root certificate are taken out of the string here and become the
//! certificate verifier.

use crate::error::{Error, Result};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::PathBuf;
use std::sync::Arc;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl Mode {
    fn parse(s: &str) -> Result<Mode> {
        Ok(match s {
            "disable" => Mode::Disable,
            "allow" | "prefer" => Mode::Prefer,
            "require" => Mode::Require,
            "verify-ca" => Mode::VerifyCa,
            "verify-full" => Mode::VerifyFull,
            other => {
                return Err(Error::ConnectionString(format!(
                    "sslmode {other:?}: expected disable, allow, prefer, require, verify-ca or verify-full"
                )));
            }
        })
    }

    /// What tokio-postgres is told.
    fn driver(self) -> &'static str {
        match self {
            Mode::Disable => "disable",
            Mode::Prefer => "prefer",
            _ => "require",
        }
    }
}

/// What decant takes out of a connection string itself (the TLS settings
/// and the libpq keywords tokio-postgres does not know), and the string
/// without them.
#[derive(Debug)]
pub(crate) struct Split {
    pub rest: String,
    pub mode: Mode,
    pub rootcert: Option<PathBuf>,
    /// The client certificate (`sslcert`) and its key (`sslkey`), for
    /// servers that authenticate clients by certificate.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// The certificate is libpq's default file, not one named: one that
    /// cannot be used is passed over with a warning instead of failing.
    pub cert_is_default: bool,
    /// `ssl_min_protocol_version` / `ssl_max_protocol_version`: TLS 1.3
    /// only, or 1.2 only (rustls speaks no older version).
    pub versions: Option<&'static rustls::SupportedProtocolVersion>,
    /// `passfile`: the password file, in place of `$PGPASSFILE`.
    pub passfile: Option<PathBuf>,
    /// `fallback_application_name`: the application name when none is set.
    pub fallback_application_name: Option<String>,
}

/// The libpq keywords decant reads itself (tokio-postgres refuses them).
const TAKEN: [&str; 21] = [
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "passfile",
    "fallback_application_name",
    "client_encoding",
    "gssencmode",
    "krbsrvname",
    "gsslib",
    "sslsni",
    "sslcompression",
    "sslpassword",
    "sslcrl",
    "sslcrldir",
    "sslcertmode",
    "require_auth",
    "requirepeer",
    "replication",
];

/// Takes the keywords decant reads itself ([`TAKEN`]) out of a connection
/// string (URL or key=value; a named service's parameters added first),
/// putting back the `sslmode` tokio-postgres understands. A keyword whose
/// setting decant cannot honour is refused, naming it.
pub(crate) fn split(conn: &str) -> Result<Split> {
    // a named service's parameters first, so that its sslmode counts
    let conn = &crate::pg::service::expand(conn)?;
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let mut taken = std::collections::BTreeMap::new();
    let rest = if conn.starts_with("postgres://") || conn.starts_with("postgresql://") {
        match conn.split_once('?') {
            None => conn.to_string(),
            Some((base, query)) => {
                let mut kept = Vec::new();
                for pair in query.split('&') {
                    match pair.split_once('=') {
                        Some((k, v)) if TAKEN.contains(&k) => {
                            taken.insert(k.to_string(), crate::pg::conninfo::percent_decode(v));
                        }
                        _ => kept.push(pair),
                    }
                }
                if kept.is_empty() {
                    base.to_string()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
        }
    } else {
        let mut kept = Vec::new();
        for (name, value, raw) in crate::pg::conninfo::key_values(conn) {
            if TAKEN.contains(&name.as_str()) {
                taken.insert(name, value);
            } else {
                kept.push(raw);
            }
        }
        kept.join(" ")
    };
    let mut take = |k: &str| taken.remove(k).filter(|v| !v.is_empty());
    let (mode, rootcert, cert, key) = (
        take("sslmode"),
        take("sslrootcert"),
        take("sslcert"),
        take("sslkey"),
    );
    let refuse = |k: &str, v: &str, why: &str| {
        // a password's value is not shown
        let v = if k == "sslpassword" { "..." } else { v };
        Err(Error::ConnectionString(format!("{k}={v}: {why}")))
    };
    const LEAVE: &str = "leave it out of the connection string";
    // what decant always does, so only the other settings are refused
    match take("client_encoding") {
        Some(v) if !v.eq_ignore_ascii_case("utf8") && !v.eq_ignore_ascii_case("utf-8") => {
            let why = format!("decant's sessions are always UTF8; {LEAVE}");
            return refuse("client_encoding", &v, &why);
        }
        _ => {}
    }
    if let Some(v) = take("gssencmode").filter(|v| v == "require") {
        let why = format!("decant has no GSSAPI encryption (use sslmode); {LEAVE}");
        return refuse("gssencmode", &v, &why);
    }
    for (k, why) in [
        (
            "sslpassword",
            "decant reads only unencrypted keys (openssl pkey -in key -out plain.key)",
        ),
        (
            "sslcrl",
            "decant does not check certificate revocation lists",
        ),
        (
            "sslcrldir",
            "decant does not check certificate revocation lists",
        ),
        (
            "require_auth",
            "decant cannot restrict the server's authentication method",
        ),
        (
            "requirepeer",
            "decant does not check the server's Unix user",
        ),
    ] {
        if let Some(v) = take(k) {
            return refuse(k, &v, &format!("{why}; {LEAVE}"));
        }
    }
    if let Some(v) = take("replication") {
        if !["false", "0", "no", "off"].contains(&v.to_lowercase().as_str()) {
            return refuse(
                "replication",
                &v,
                &format!("decant opens ordinary sessions; {LEAVE}"),
            );
        }
    }
    let certmode = take("sslcertmode");
    let version = |k: &str, v: Option<String>| match v.as_deref() {
        None | Some("TLSv1" | "TLSv1.1" | "TLSv1.2" | "TLSv1.3") => Ok(v),
        Some(other) => Err(Error::ConnectionString(format!(
            "{k}={other}: expected TLSv1, TLSv1.1, TLSv1.2 or TLSv1.3"
        ))),
    };
    let min = version("ssl_min_protocol_version", take("ssl_min_protocol_version"))?;
    let max = version("ssl_max_protocol_version", take("ssl_max_protocol_version"))?;
    let versions = match (min.as_deref(), max.as_deref()) {
        (Some("TLSv1.3"), Some(max)) if max != "TLSv1.3" => {
            return refuse(
                "ssl_max_protocol_version",
                max,
                "it is below ssl_min_protocol_version=TLSv1.3",
            );
        }
        (Some("TLSv1.3"), _) => Some(&rustls::version::TLS13),
        (_, Some("TLSv1.2")) => Some(&rustls::version::TLS12),
        (_, Some(max @ ("TLSv1" | "TLSv1.1"))) => {
            let why = format!("decant speaks TLS 1.2 and 1.3 only; {LEAVE}");
            return refuse("ssl_max_protocol_version", max, &why);
        }
        _ => None,
    };
    let passfile = take("passfile").map(PathBuf::from);
    let fallback_application_name = take("fallback_application_name");
    // the rest change nothing for decant: GSSAPI settings (no GSSAPI
    // encryption is negotiated), SNI (rustls sends it for host names),
    // compression (no server since 14 does it)
    let mode = Mode::parse(
        &mode
            .or_else(|| env("PGSSLMODE"))
            .unwrap_or_else(|| "prefer".into()),
    )?;
    let rootcert = rootcert.or_else(|| env("PGSSLROOTCERT")).map(PathBuf::from);
    // libpq's defaults: ~/.postgresql/postgresql.crt and .key, when there
    let home = |f: &str| {
        env("HOME")
            .map(|h| PathBuf::from(h).join(".postgresql").join(f))
            .filter(|p| p.exists())
    };
    let cert = cert.or_else(|| env("PGSSLCERT")).map(PathBuf::from);
    let cert_is_default = cert.is_none();
    let cert = cert.or_else(|| home("postgresql.crt"));
    // sslcertmode: `disable` sends no certificate, `require` needs one
    let cert = cert.filter(|_| certmode.as_deref() != Some("disable"));
    if certmode.as_deref() == Some("require") && cert.is_none() {
        return refuse(
            "sslcertmode",
            "require",
            "no client certificate is given (sslcert, PGSSLCERT or ~/.postgresql/postgresql.crt)",
        );
    }
    let key = key
        .or_else(|| env("PGSSLKEY"))
        .map(PathBuf::from)
        .or_else(|| home("postgresql.key"));
    let sep = if rest.starts_with("postgres") {
        if rest.contains('?') { "&" } else { "?" }
    } else {
        " "
    };
    Ok(Split {
        rest: format!("{rest}{sep}sslmode={}", mode.driver()),
        mode,
        rootcert,
        cert,
        key,
        cert_is_default,
        versions,
        passfile,
        fallback_application_name,
    })
}

/// The TLS connector for `split`'s settings. `require` with a root
/// certificate verifies the chain as `verify-ca` does (as libpq); the
/// verifying modes need one (`sslrootcert`, `PGSSLROOTCERT`, or
/// `~/.postgresql/root.crt`).
pub(crate) fn connector(split: &Split) -> Result<Connector> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let default_root = std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".postgresql/root.crt"))
        .filter(|p| p.exists());
    let rootcert = split.rootcert.clone().or(default_root);
    let verifier: Arc<dyn ServerCertVerifier> = match (split.mode, &rootcert) {
        (Mode::VerifyCa | Mode::VerifyFull, None) => {
            return Err(Error::Setup(format!(
                "sslmode={} needs the server's root certificate: set sslrootcert \
                 (or PGSSLROOTCERT), or put it at ~/.postgresql/root.crt",
                if split.mode == Mode::VerifyCa {
                    "verify-ca"
                } else {
                    "verify-full"
                }
            )));
        }
        (Mode::Disable | Mode::Prefer, _) | (Mode::Require, None) => {
            Arc::new(Unverified(provider.clone()))
        }
        (mode, Some(path)) => {
            let mut roots = RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| cert_error(path, e))?
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| cert_error(path, e))?;
            if certs.is_empty() {
                return Err(cert_error(path, "no certificate in it"));
            }
            for c in certs {
                roots.add(c).map_err(|e| cert_error(path, e))?;
            }
            let inner =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| cert_error(path, e))?;
            Arc::new(Verified {
                inner,
                check_name: mode == Mode::VerifyFull,
            })
        }
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone());
    let config = match split.versions {
        Some(only) => builder.with_protocol_versions(&[only]),
        None => builder.with_safe_default_protocol_versions(),
    }
    .map_err(|e| Error::Setup(format!("TLS setup: {e}")))?
    .dangerous()
    .with_custom_certificate_verifier(verifier);
    // no certificate where TLS is off; a default file that cannot be used
    // is passed over (libpq would fail only once TLS is negotiated)
    let identity = match (split.mode, &split.cert) {
        (Mode::Disable, _) | (_, None) => None,
        (_, Some(cert)) => match client_auth(cert, split.key.as_deref(), &provider) {
            Ok(identity) => Some(identity),
            Err(e) if split.cert_is_default => {
                tracing::warn!(cause = %e, "the default client certificate is not used");
                None
            }
            Err(e) => return Err(e),
        },
    };
    let config = match identity {
        None => config.with_no_client_auth(),
        Some(certified) => config
            .with_client_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(certified))),
    };
    Ok(Connector(tokio_postgres_rustls::MakeRustlsConnect::new(
        config,
    )))
}

/// The client certificate at `cert` with its key, as rustls signs with
/// them.
fn client_auth(
    cert: &std::path::Path,
    key: Option<&std::path::Path>,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<rustls::sign::CertifiedKey> {
    let (chain, key) = client_identity(cert, key)?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| Error::Setup(format!("sslkey for {}: {e}", cert.display())))?;
    let certified = rustls::sign::CertifiedKey::new(chain, signing);
    // a key of another certificate is refused here; a certificate rustls
    // cannot parse (X.509 v1, as `openssl x509 -req` makes without
    // extensions) is left for the server to judge, as libpq leaves it
    if let Err(e @ rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) =
        certified.keys_match()
    {
        return Err(Error::Setup(format!(
            "sslcert {} and its sslkey: {e}",
            cert.display()
        )));
    }
    Ok(certified)
}

/// The client certificate chain at `cert` and its private key (at `key`,
/// else beside it with `.key` for `.crt`), both PEM. As libpq, a key that
/// others can read is refused: it must be 0600 (0640 when root owns it).
fn client_identity(
    cert: &std::path::Path,
    key: Option<&std::path::Path>,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let setup = |what: &str, path: &std::path::Path, e: &dyn std::fmt::Display| {
        Error::Setup(format!("{what} {}: {e}", path.display()))
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| setup("sslcert", cert, &e))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| setup("sslcert", cert, &e))?;
    if chain.is_empty() {
        return Err(setup(
            "sslcert",
            cert,
            &"no certificate in it (expected PEM)",
        ));
    }
    let key = match key {
        Some(k) => k.to_path_buf(),
        None => cert.with_extension("key"),
    };
    let meta = std::fs::metadata(&key).map_err(|e| {
        setup(
            "sslkey",
            &key,
            &format!("{e} (the client certificate's private key: set sslkey or PGSSLKEY)"),
        )
    })?;
    let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions());
    let owner_is_root = std::os::unix::fs::MetadataExt::uid(&meta) == 0;
    let allowed = if owner_is_root { 0o037 } else { 0o077 };
    if mode & allowed != 0 {
        return Err(setup(
            "sslkey",
            &key,
            &format!(
                "others can read it (mode {:o}): chmod 0600 it, as libpq requires",
                mode & 0o777
            ),
        ));
    }
    let private = PrivateKeyDer::from_pem_file(&key).map_err(|e| {
        setup(
            "sslkey",
            &key,
            &format!("{e} (expected an unencrypted PEM private key)"),
        )
    })?;
    Ok((chain, private))
}

fn cert_error(path: &std::path::Path, e: impl std::fmt::Display) -> Error {
    Error::Setup(format!(
        "sslrootcert {}: {e} (expected PEM certificates)",
        path.display()
    ))
}

/// `require` without a root certificate: encrypted, the server not
/// authenticated (libpq's behaviour); the handshake's signatures are still
/// checked.
#[derive(Debug)]
struct Unverified(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca` (the chain, any host name) and `verify-full` (the chain and
/// the host name).
#[derive(Debug)]
struct Verified {
    inner: Arc<WebPkiServerVerifier>,
    check_name: bool,
}

/// A certificate refusal where libpq accepts the certificate, said with
/// what to do (the verifier's own text was a debug value,
/// `Other(OtherError(CaUsedAsEndEntity))`, or named no remedy).
fn explain(e: rustls::Error) -> rustls::Error {
    if format!("{e:?}").contains("CaUsedAsEndEntity") {
        return rustls::Error::General(
            "the server's certificate is a CA certificate (basicConstraints CA:TRUE, as \
             `openssl req -x509` makes a self-signed one) used as the server's own: decant \
             verifies a server certificate signed by the root, not the root itself (libpq \
             accepts it). Sign a server certificate with that root (`openssl x509 -req -CA \
             root.crt -CAkey root.key ...`, with subjectAltName=DNS:<host>), or use \
             sslmode=require without sslrootcert (encrypted, unverified)"
                .into(),
        );
    }
    match e {
        rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
            expected,
            presented,
        }) if presented.is_empty() => rustls::Error::General(format!(
            "the server's certificate names no host in a subjectAltName, so it is valid for no \
             name (`{}` expected; libpq falls back to its common name, decant does \
             not): reissue it with subjectAltName=DNS:<host> (or IP:<address>), or use \
             sslmode=verify-ca, which verifies the chain and not the name",
            match &expected {
                ServerName::DnsName(d) => d.as_ref().to_string(),
                ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
                other => format!("{other:?}"),
            }
        )),
        e => e,
    }
}

impl ServerCertVerifier for Verified {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other.map_err(explain),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tls_settings_are_taken_out_of_both_forms() {
        let s = split("postgres://u@h:5432/db?sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.pem&application_name=x")
            .unwrap();
        assert_eq!(s.mode, Mode::VerifyFull);
        assert_eq!(
            s.rootcert.as_deref(),
            Some(std::path::Path::new("/tmp/ca.pem"))
        );
        assert_eq!(
            s.rest,
            "postgres://u@h:5432/db?application_name=x&sslmode=require"
        );
        let s = split("host=h dbname='my db' sslmode=verify-ca sslrootcert='/a b/ca.pem'").unwrap();
        assert_eq!(s.mode, Mode::VerifyCa);
        assert_eq!(
            s.rootcert.as_deref(),
            Some(std::path::Path::new("/a b/ca.pem"))
        );
        assert_eq!(s.rest, "host=h dbname='my db' sslmode=require");
        let s = split("host=h sslmode=disable").unwrap();
        assert_eq!(
            (s.mode, s.rest.as_str()),
            (Mode::Disable, "host=h sslmode=disable")
        );
        assert!(split("host=h sslmode=sometimes").is_err());
    }

    #[test]
    fn a_named_client_certificate_must_load_and_the_default_one_may_not() {
        let mut s = split("host=h sslmode=require").unwrap();
        s.cert = Some(PathBuf::from("/nonexistent/decant/client.crt"));
        s.cert_is_default = false;
        let e = connector(&s)
            .err()
            .expect("a named certificate that is not there");
        assert!(
            e.to_string()
                .contains("sslcert /nonexistent/decant/client.crt"),
            "{e}"
        );
        // libpq's default file is passed over with a warning
        s.cert_is_default = true;
        assert!(connector(&s).is_ok());
        // and no certificate is read where TLS is off
        s.cert_is_default = false;
        s.mode = Mode::Disable;
        assert!(connector(&s).is_ok());
    }

    #[test]
    fn libpq_keywords_the_driver_lacks_are_read_or_refused_by_name() {
        let s = split(
            "host=h gssencmode=disable client_encoding=UTF8 sslsni=1 sslcompression=0 \
             passfile='/p/pass' fallback_application_name=psqlish \
             ssl_min_protocol_version=TLSv1.3 sslcertmode=disable replication=false",
        )
        .unwrap();
        assert_eq!(s.rest, "host=h sslmode=prefer");
        assert_eq!(s.passfile.as_deref(), Some(std::path::Path::new("/p/pass")));
        assert_eq!(s.fallback_application_name.as_deref(), Some("psqlish"));
        assert!(std::ptr::eq(s.versions.unwrap(), &rustls::version::TLS13));
        let s = split("postgresql://u@h/db?ssl_max_protocol_version=TLSv1.2&keepalives=1").unwrap();
        assert_eq!(s.rest, "postgresql://u@h/db?keepalives=1&sslmode=prefer");
        assert!(std::ptr::eq(s.versions.unwrap(), &rustls::version::TLS12));
        // the driver reads what it leaves
        let cfg: tokio_postgres::Config = s.rest.parse().unwrap();
        assert!(cfg.get_keepalives());
        for (conn, names) in [
            ("host=h client_encoding=LATIN1", "client_encoding=LATIN1: "),
            ("host=h gssencmode=require", "gssencmode=require: "),
            (
                "host=h require_auth=scram-sha-256",
                "require_auth=scram-sha-256: ",
            ),
            ("host=h sslcrl=/c.pem", "sslcrl=/c.pem: "),
            ("host=h replication=database", "replication=database: "),
            (
                "host=h ssl_max_protocol_version=TLSv1.1",
                "ssl_max_protocol_version=TLSv1.1: ",
            ),
            ("host=h sslcertmode=require", "sslcertmode=require: "),
        ] {
            let e = split(conn).unwrap_err().to_string();
            assert!(e.contains(names), "{conn}: {e}");
        }
        // a key's password is never shown
        let e = split("host=h sslpassword=hunter2").unwrap_err().to_string();
        assert!(
            e.contains("sslpassword=...") && !e.contains("hunter2"),
            "{e}"
        );
    }
}

/// The connector every session uses: rustls for a TCP host; for a Unix
/// socket (a path, which is no server name) none at all, as libpq never
/// negotiates TLS there (the sslmode is `disable` for it, see
/// `parse_config`, so its `connect` is never called).
#[derive(Clone)]
pub(crate) struct Connector(pub tokio_postgres_rustls::MakeRustlsConnect);

/// What [`Connector`] makes per host.
pub(crate) struct MaybeTls<T>(Option<T>);

type BoxError = Box<dyn std::error::Error + Sync + Send>;

type Rustls = tokio_postgres_rustls::MakeRustlsConnect;
type Socket = tokio_postgres::Socket;
type RustlsConnect = <Rustls as tokio_postgres::tls::MakeTlsConnect<Socket>>::TlsConnect;
type RustlsStream = <Rustls as tokio_postgres::tls::MakeTlsConnect<Socket>>::Stream;

impl tokio_postgres::tls::MakeTlsConnect<Socket> for Connector {
    type Stream = RustlsStream;
    type TlsConnect = MaybeTls<RustlsConnect>;
    type Error = BoxError;

    fn make_tls_connect(&mut self, host: &str) -> std::result::Result<Self::TlsConnect, BoxError> {
        if host.is_empty() || host.starts_with('/') || host.starts_with('@') {
            return Ok(MaybeTls(None));
        }
        <Rustls as tokio_postgres::tls::MakeTlsConnect<Socket>>::make_tls_connect(&mut self.0, host)
            .map(|c| MaybeTls(Some(c)))
            .map_err(Into::into)
    }
}

impl tokio_postgres::tls::TlsConnect<Socket> for MaybeTls<RustlsConnect> {
    type Stream = RustlsStream;
    type Error = BoxError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = std::result::Result<RustlsStream, BoxError>> + Send>,
    >;

    fn connect(self, stream: Socket) -> Self::Future {
        match self.0 {
            Some(c) => {
                let f = tokio_postgres::tls::TlsConnect::connect(c, stream);
                Box::pin(async move { f.await.map_err(Into::into) })
            }
            None => Box::pin(async {
                Err::<RustlsStream, BoxError>("TLS over a Unix socket (libpq never does it)".into())
            }),
        }
    }
}
