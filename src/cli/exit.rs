//! How the command ends: the exit statuses (distinct, so that a script
//! can tell the outcomes apart; listed in `--help` and the README) and the
//! errors that choose them.

/// The exit statuses, distinct so that a script can tell the outcomes
/// apart (also in `--help` and the README).
pub(crate) mod code {
    /// The command failed; the message says why.
    pub const FAILED: i32 = 1;
    /// The spec or the arguments are wrong (clap's own status for usage).
    pub const USAGE: i32 = 2;
    /// The work is done, but users failed (`check`: users would fail).
    pub const USERS_FAILED: i32 = 3;
    /// The database could not be reached (refused, down, authentication).
    pub const UNREACHABLE: i32 = 4;
}

/// A bad argument: exit status 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Usage(pub String);

/// Finished, but users were left failed: exit status 3.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct UsersFailed(pub String);

/// Returns a [`Usage`] error from the enclosing function.
macro_rules! usage {
    ($($t:tt)*) => {
        return Err(crate::cli::exit::Usage(format!($($t)*)).into())
    };
}
pub(crate) use usage;

/// The connection string the command used, once it has one: an
/// unreachable server's message names where it was looked for.
pub(super) static TARGET: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The error as printed: its context and causes, down to the first of
/// decant's own errors, whose message already holds the driver's cause
/// (its chain would repeat it: "... (28000): db error: db error: FATAL:
/// ..."); for an unreachable server, where it was looked for.
pub(super) fn report(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
        if cause.is::<decant::Error>() {
            break;
        }
    }
    if exit_status(e) == code::UNREACHABLE {
        if let Some(url) = TARGET.get() {
            let target = decant::describe_target(url);
            if !text.contains(&target) {
                text.push_str(&format!(" (connecting to {target})"));
            }
        }
    }
    text
}

/// The exit status for an error: the first cause that tells.
pub(super) fn exit_status(e: &anyhow::Error) -> i32 {
    for cause in e.chain() {
        if cause.is::<Usage>() {
            return code::USAGE;
        }
        if cause.is::<UsersFailed>() {
            return code::USERS_FAILED;
        }
        if let Some(d) = cause.downcast_ref::<decant::Error>() {
            return match d {
                decant::Error::Spec { .. }
                | decant::Error::SpecMismatch { .. }
                | decant::Error::Io { .. }
                | decant::Error::ConnectionString(_) => code::USAGE,
                decant::Error::Pool(_) | decant::Error::Outage { .. } => code::UNREACHABLE,
                decant::Error::Db { source, .. } if unreachable(source) => code::UNREACHABLE,
                _ => code::FAILED,
            };
        }
        if let Some(source) = cause.downcast_ref::<tokio_postgres::Error>() {
            if unreachable(source) {
                return code::UNREACHABLE;
            }
        }
    }
    code::FAILED
}

/// A driver error that means no session: refused, unreachable, TLS or
/// authentication failed, no such database, the server not accepting.
fn unreachable(e: &tokio_postgres::Error) -> bool {
    match e.code() {
        Some(c) => {
            let c = c.code();
            c.starts_with("08") || c.starts_with("28") || c == "3D000" || c == "57P03"
        }
        None => {
            let text = e.to_string();
            ["error connecting", "error performing TLS", "timeout"]
                .iter()
                .any(|p| text.starts_with(p))
        }
    }
}
