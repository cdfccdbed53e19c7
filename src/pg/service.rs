//! Connection services as libpq has them: `service=name` in a connection
//! string (or `?service=name` in a URL, or `$PGSERVICE`) names a section of
//! the service file (`$PGSERVICEFILE`, else `~/.pg_service.conf`, else
//! `pg_service.conf` in `$PGSYSCONFDIR` or `/etc/postgresql-common`) whose
//! `key=value` lines fill in what the string leaves out. As in libpq they
//! come before the `PG*` variables: the string first, then the service,
//! then the environment.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// `conn` with the parameters of the service it names (or `$PGSERVICE`
/// names) that it does not set itself added, and the `service` parameter
/// taken out; `conn` unchanged when no service is named.
pub(crate) fn expand(conn: &str) -> Result<String> {
    expand_with(conn, &|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
}

fn expand_with(conn: &str, var: &dyn Fn(&str) -> Option<String>) -> Result<String> {
    let url = conn.starts_with("postgres://") || conn.starts_with("postgresql://");
    let (named, set, rest) = if url {
        url_parts(conn)
    } else {
        let pairs = crate::pg::conninfo::key_values(conn);
        let named = pairs
            .iter()
            .find(|(k, _, _)| k == "service")
            .map(|(_, v, _)| v.clone());
        let set = pairs.iter().map(|(k, _, _)| k.clone()).collect();
        let rest = pairs
            .into_iter()
            .filter(|(k, _, _)| k != "service")
            .map(|(_, _, raw)| raw)
            .collect::<Vec<_>>()
            .join(" ");
        (named, set, rest)
    };
    let Some(name) = named.or_else(|| var("PGSERVICE")) else {
        return Ok(conn.to_string());
    };
    let params = lookup(&name, var)?;
    let added: Vec<(String, String)> = params
        .into_iter()
        .filter(|(k, _)| !set.contains(k))
        .collect();
    if url {
        let mut out = rest;
        for (k, v) in added {
            let sep = if out.contains('?') { '&' } else { '?' };
            out.push(sep);
            out.push_str(&format!("{k}={}", percent_encode(&v)));
        }
        Ok(out)
    } else {
        let quote = crate::pg::conninfo::quote;
        let mut parts: Vec<String> = (!rest.is_empty()).then_some(rest).into_iter().collect();
        parts.extend(added.iter().map(|(k, v)| format!("{k}={}", quote(v))));
        Ok(parts.join(" "))
    }
}

/// A URL's named service, the parameters it sets (in its authority, path
/// or query) and the URL without the `service` query parameter.
fn url_parts(conn: &str) -> (Option<String>, Vec<String>, String) {
    let (scheme, after) = conn.split_once("://").unwrap_or(("postgresql", conn));
    let (main, query) = match after.split_once('?') {
        Some((m, q)) => (m, Some(q)),
        None => (after, None),
    };
    let (authority, path) = main.split_once('/').unwrap_or((main, ""));
    let (userinfo, hosts) = authority.rsplit_once('@').unwrap_or(("", authority));
    let mut set = Vec::new();
    if !userinfo.is_empty() {
        set.push("user".to_string());
        if userinfo.contains(':') {
            set.push("password".to_string());
        }
    }
    // a port is after the last `:` outside an IPv6 address's brackets
    let port_of = |h: &str| h.rsplit_once(']').map_or(h, |(_, p)| p).contains(':');
    if hosts.split(',').any(|h| !h.is_empty()) {
        set.push("host".to_string());
    }
    if hosts.split(',').any(port_of) {
        set.push("port".to_string());
    }
    if !path.is_empty() {
        set.push("dbname".to_string());
    }
    let mut named = None;
    let mut kept = Vec::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == "service" {
            named = Some(crate::pg::conninfo::percent_decode(v));
        } else {
            set.push(k.to_string());
            kept.push(pair);
        }
    }
    let mut rest = format!("{scheme}://{main}");
    if !kept.is_empty() {
        rest.push('?');
        rest.push_str(&kept.join("&"));
    }
    (named, set, rest)
}

fn percent_encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The service's parameters: from the user's file when it has the
/// service, else from the system's file.
fn lookup(name: &str, var: &dyn Fn(&str) -> Option<String>) -> Result<Vec<(String, String)>> {
    let user_file = var("PGSERVICEFILE")
        .map(PathBuf::from)
        .or_else(|| var("HOME").map(|h| Path::new(&h).join(".pg_service.conf")));
    let system_file =
        Path::new(&var("PGSYSCONFDIR").unwrap_or_else(|| "/etc/postgresql-common".to_string()))
            .join("pg_service.conf");
    let mut searched = Vec::new();
    for file in user_file.into_iter().chain([system_file]) {
        let text = match std::fs::read_to_string(&file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                searched.push(file.display().to_string());
                continue;
            }
            Err(e) => {
                return Err(Error::ConnectionString(format!(
                    "cannot read the service file {}: {e}",
                    file.display()
                )));
            }
        };
        searched.push(file.display().to_string());
        if let Some(params) = section(&text, name) {
            return params.map_err(|line| {
                Error::ConnectionString(format!(
                    "service file {}, line {line}: expected key=value (service \"{name}\")",
                    file.display()
                ))
            });
        }
    }
    Err(Error::ConnectionString(format!(
        "definition of service \"{name}\" not found (searched {}): add a [{name}] section \
         or set PGSERVICEFILE",
        searched.join(", ")
    )))
}

/// The `key=value` lines of the section `[name]` of a service file;
/// `None` without that section, the line number of a malformed line (or of
/// a nested `service`, which libpq refuses too) as the error.
fn section(text: &str, name: &str) -> Option<std::result::Result<Vec<(String, String)>, usize>> {
    let mut found: Option<Vec<(String, String)>> = None;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(header) = line.strip_prefix('[') {
            if found.is_some() {
                break;
            }
            if header.strip_suffix(']') == Some(name) {
                found = Some(Vec::new());
            }
            continue;
        }
        let Some(params) = found.as_mut() else {
            continue;
        };
        match line.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() && k.trim() != "service" => {
                params.push((k.trim().to_string(), v.trim().to_string()));
            }
            _ => return Some(Err(i + 1)),
        }
    }
    found.map(Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# services\n[other]\nhost=elsewhere\n\n[game]\nhost = db.example\nport=6432\ndbname=game\nuser=ann\nsslmode=require\napplication_name=a b'c\n[after]\nhost=x\n";

    fn with_file(text: &str) -> (tempdir::Dir, impl Fn(&str) -> Option<String>) {
        let dir = tempdir::Dir::new();
        let path = dir.0.join("services.conf");
        std::fs::write(&path, text).unwrap();
        let path = path.display().to_string();
        let sys = dir.0.join("nothing").display().to_string();
        (dir, move |k: &str| match k {
            "PGSERVICEFILE" => Some(path.clone()),
            "PGSYSCONFDIR" => Some(sys.clone()),
            _ => None,
        })
    }

    mod tempdir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Dir {
                use std::sync::atomic::{AtomicUsize, Ordering};
                static N: AtomicUsize = AtomicUsize::new(0);
                let p = std::env::temp_dir().join(format!(
                    "decant-service-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[test]
    fn a_named_service_fills_what_the_string_leaves_out() {
        let (_dir, var) = with_file(FILE);
        let out = expand_with("service=game dbname=mine", &var).unwrap();
        assert_eq!(
            out,
            "dbname=mine host='db.example' port='6432' user='ann' sslmode='require' \
             application_name='a b\\'c'"
        );
        // the expanded string is one the driver reads, as libpq would
        let split = crate::pg::tls::split(&out).unwrap();
        let cfg: tokio_postgres::Config = split.rest.parse().unwrap();
        assert_eq!(cfg.get_dbname(), Some("mine"));
        assert_eq!(cfg.get_user(), Some("ann"));
        assert_eq!(cfg.get_ports(), &[6432]);
        assert_eq!(cfg.get_application_name(), Some("a b'c"));
        assert_eq!(split.mode, crate::pg::tls::Mode::Require);
    }

    #[test]
    fn pgservice_names_it_when_the_string_does_not() {
        let (_dir, var) = with_file(FILE);
        let env = |k: &str| {
            if k == "PGSERVICE" {
                Some("game".into())
            } else {
                var(k)
            }
        };
        let out = expand_with("", &env).unwrap();
        assert!(out.starts_with("host='db.example' port='6432'"), "{out}");
        // no service anywhere: the string is left as it is
        assert_eq!(expand_with("host=h", &var).unwrap(), "host=h");
    }

    #[test]
    fn a_url_keeps_what_it_sets_and_takes_the_rest_as_query_parameters() {
        let (_dir, var) = with_file(FILE);
        let out = expand_with(
            "postgresql://bob@h1:5433/x?service=game&connect_timeout=3",
            &var,
        )
        .unwrap();
        assert_eq!(
            out,
            "postgresql://bob@h1:5433/x?connect_timeout=3&sslmode=require&application_name=a%20b%27c"
        );
        let out = expand_with("postgresql:///?service=game", &var).unwrap();
        let cfg: tokio_postgres::Config =
            crate::pg::tls::split(&out).unwrap().rest.parse().unwrap();
        assert_eq!(cfg.get_dbname(), Some("game"));
        assert_eq!(cfg.get_user(), Some("ann"));
        assert_eq!(cfg.get_ports(), &[6432]);
    }

    #[test]
    fn a_missing_service_or_a_bad_line_is_named() {
        let (_dir, var) = with_file(FILE);
        let e = expand_with("service=nope", &var).unwrap_err().to_string();
        assert!(
            e.contains("definition of service \"nope\" not found"),
            "{e}"
        );
        let (_dir, var) = with_file("[game]\nhost=h\njunk\n");
        let e = expand_with("service=game", &var).unwrap_err().to_string();
        assert!(e.contains("line 3"), "{e}");
    }
}
