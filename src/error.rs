//! The library's one error type. It sits just above the pure core (whose
//! spec errors and invalid values it wraps) and below everything that talks
//! to PostgreSQL: a driver or pool error converts into it with `?` and keeps
//! its SQLSTATE, so [`Error::is_retryable`] works on errors that come out
//! of a user's closure too.

use crate::core::explode::Invalid;
use crate::core::id::UserId;
use crate::core::spec::SpecError;
use std::path::PathBuf;

/// Everything that can go wrong in decant, with the subject at fault named.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The mapping spec could not be read or is not valid.
    #[error("spec {file}:{line}: {message}")]
    Spec {
        /// The spec file (or `<inline>`).
        file: PathBuf,
        /// 1-based line of the offending item (0 when unknown).
        line: usize,
        /// What is wrong, naming the rule when there is one.
        message: String,
    },

    /// A blob value does not satisfy a rule whose policy is `fail`.
    #[error("user {user}: {invalid}")]
    Invalid {
        /// The user whose blob holds the value.
        user: UserId,
        /// Where and why.
        invalid: Invalid,
    },

    /// Rebuilding the blob from the written rows did not give the original.
    #[error("user {user}: verification failed: {detail}")]
    Verification {
        /// The user.
        user: UserId,
        /// The first difference found.
        detail: String,
    },

    /// A user's stored blob cannot be read: nested deeper than the spec's
    /// `max_depth` (every path could write it, none could read it back), or
    /// not JSON as the database sent it. A blob or patch handed to `save`
    /// or `patch` that nests deeper is refused before anything is written,
    /// as [`Error::Verification`].
    #[error("user {user}: cannot read the blob: {detail}")]
    Unreadable {
        /// The user.
        user: UserId,
        /// Why, and what to do.
        detail: String,
    },

    /// A legacy user already has rows in a target table (left by another
    /// tool or a hand fix): decant never adopts rows it did not write.
    #[error(
        "user {user}: already has rows in table {table} while legacy (left by another tool or a hand fix?); \
         decant never adopts rows it did not write: delete them (or move them aside), then retry"
    )]
    HasRows {
        /// The user.
        user: UserId,
        /// The first target table holding rows of the user.
        table: String,
    },

    /// The spec's mapping is not the one recorded by `init` that migrated
    /// the users.
    #[error("{detail}")]
    SpecMismatch {
        /// What differs and what to do.
        detail: String,
    },

    /// The user does not exist in the source table.
    #[error("user {0}: no such user in the source table")]
    UserNotFound(UserId),

    /// The row lock on a user could not be taken within `lock_timeout`:
    /// another transaction holds it. Retry later.
    #[error("user {user}: row is locked by another transaction (lock_timeout exceeded); retry")]
    LockTimeout {
        /// The user.
        user: UserId,
    },

    /// The database or its schema is not in the state decant needs.
    #[error("{0}")]
    Setup(String),

    /// The database stayed unreachable for longer than the daemon's limit
    /// (`--max-outage`); the run ends. Start it again once the server is
    /// back: nothing is lost.
    #[error(
        "the database has been unreachable for {secs:.0} s (the run's --max-outage); \
         the last cause: {cause}"
    )]
    Outage {
        /// How long, in seconds.
        secs: f64,
        /// The last error seen while re-opening a session.
        cause: String,
    },

    /// The connection string does not parse, or names an unknown setting
    /// value (the message says which and gives an example).
    #[error("{0}")]
    ConnectionString(String),

    /// A database error, with the operation that failed (empty when the
    /// error came through `?` from a driver call, e.g. in a closure given to
    /// `migration_compatible_transaction`).
    #[error("{}{}", with_colon(context), describe(source))]
    Db {
        /// What decant was doing.
        context: String,
        /// The driver error (its SQLSTATE tells retryable from fatal).
        #[source]
        source: tokio_postgres::Error,
    },

    /// No connection could be taken from the pool (the server is down,
    /// refused the session, or the pool timed out). Retryable.
    #[error("cannot get a database connection: {}", describe_pool(.0))]
    Pool(#[from] deadpool_postgres::PoolError),

    /// A file could not be read or written.
    #[error("{path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why (in the message, not a separate source: a report of the
        /// error chain would say it twice).
        cause: std::io::Error,
    },
}

fn with_colon(context: &str) -> String {
    if context.is_empty() {
        String::new()
    } else {
        format!("{context}: ")
    }
}

impl From<SpecError> for Error {
    fn from(e: SpecError) -> Error {
        Error::Spec {
            file: e.file,
            line: e.line,
            message: e.message,
        }
    }
}

impl From<tokio_postgres::Error> for Error {
    /// A driver error with no context, as `?` converts it in a caller's
    /// code (decant's own calls say which operation failed). The SQLSTATE
    /// is kept: [`Error::is_retryable`] and [`Error::sqlstate`] see it.
    fn from(source: tokio_postgres::Error) -> Error {
        Error::Db {
            context: String::new(),
            source,
        }
    }
}

fn describe_pool(e: &deadpool_postgres::PoolError) -> String {
    match e {
        deadpool_postgres::PoolError::Backend(source) => describe(source),
        deadpool_postgres::PoolError::Timeout(deadpool_postgres::TimeoutType::Wait) => {
            "every session of the pool stayed in use past the pool's wait (the spec's \
             lock_timeout_ms, at least 10 s): more calls at once than the pool's size, or a call \
             on the handle made inside a wrapper's closure while the closure's own session waits \
             (use the closure's transaction instead)"
                .into()
        }
        // the check of a new session's limits (`pool::check_limits`)
        deadpool_postgres::PoolError::PostCreateHook(deadpool_postgres::HookError::Message(m)) => {
            m.to_string()
        }
        deadpool_postgres::PoolError::PostCreateHook(deadpool_postgres::HookError::Backend(
            source,
        )) => describe(source),
        other => other.to_string(),
    }
}

/// The driver's error with the server's message, detail and hint (its
/// own `Display` says only "db error").
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{} ({})", db.message(), db.code().code());
            if let Some(d) = db.detail() {
                s.push_str(&format!("; {d}"));
            }
            match (db.hint(), advice(db.code().code(), db.message())) {
                (Some(h), _) => s.push_str(&format!("; hint: {h}")),
                (None, Some(a)) => s.push_str(&format!("; {a}")),
                (None, None) => {}
            }
            s
        }
        // the driver's message and its causes (the refused connection,
        // the certificate that failed, ...): "error connecting to server"
        // alone says nothing
        None => {
            let mut s = e.to_string();
            let mut cause = std::error::Error::source(e);
            while let Some(c) = cause {
                let text = c.to_string();
                if !s.contains(&text) {
                    s.push_str(": ");
                    s.push_str(&text);
                }
                cause = c.source();
            }
            if s.contains("password missing") {
                // the driver's words, where libpq would have looked
                s.push_str(
                    "; the server asks for a password: give it in the connection string, \
                     PGPASSWORD, or a password file (~/.pgpass or PGPASSFILE)",
                );
            }
            s
        }
    }
}

/// What to do about a refusal whose cause is the database, the role or
/// what stands between decant and the server rather than the statement,
/// where the server gives no hint of its own: its message alone ("cannot
/// execute UPDATE in a read-only transaction", "prepared statement \"s3\"
/// already exists") does not say that decant was pointed at a standby or
/// through a pooler.
fn advice(code: &str, message: &str) -> Option<&'static str> {
    match code {
        "25006" => Some(
            "the database takes no writes (a hot standby, or `default_transaction_read_only` set \
             for the role or the database): run this against the primary (`decant check` and \
             `decant status` read a standby)",
        ),
        "42501" => Some(
            "the role lacks a privilege: `decant grants <role>` prints what a backend role needs, \
             and the README's list of roles (\"The other roles\") what `init`, the daemon and \
             `check` need",
        ),
        // a pooler in transaction mode gives the session's server
        // connection to other clients between transactions
        "42P05" | "26000" => Some(POOLER),
        // pgbouncer's refusal of the startup options
        "08P01" if message.contains("startup parameter") => Some(POOLER),
        _ => None,
    }
}

/// What a connection pooler between decant and PostgreSQL breaks.
pub(crate) const POOLER: &str = "decant's library, daemon and CLI need sessions of their own: they set \
     lock_timeout and statement_timeout as startup options (pgbouncer refuses those, or drops them \
     when told to ignore them) and prepare each statement once per session (a pool in transaction \
     mode hands the server's session to other clients): connect them to PostgreSQL directly; \
     backends that must go through the pooler call the SQL API (`decant.load`, `decant.patch`), \
     which runs in any pool mode";

/// SQLSTATEs worth a retry: lock_not_available, serialization_failure,
/// deadlock_detected, and the session ended by the server (admin or crash
/// shutdown, cannot connect now: a restart or failover).
const RETRYABLE_SQLSTATES: [&str; 6] = ["55P03", "40001", "40P01", "57P01", "57P02", "57P03"];

/// SQLSTATEs no user causes (see [`Error::is_table_fault`]): undefined
/// table, column, function, schema; wrong object type; datatype mismatch;
/// no unique index for ON CONFLICT; insufficient privilege; read-only
/// transaction.
const TABLE_FAULTS: [&str; 9] = [
    "42P01", "42703", "42883", "3F000", "42809", "42804", "42P10", "42501", "25006",
];

/// A session refused for a reason retrying does not mend: invalid
/// authorization (class 28: no such role, a wrong password, pg_hba.conf),
/// no such database (3D000), insufficient privilege (42501).
fn refused_for_good(code: &str) -> bool {
    code.starts_with("28") || code == "3D000" || code == "42501"
}

/// Connection exceptions (class 08): the session is gone.
fn connection_lost(code: &str) -> bool {
    code.starts_with("08")
}

impl Error {
    /// True when the same call may succeed if tried again later (a lock
    /// timeout, a serialization failure, a deadlock, a dropped connection).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::LockTimeout { .. } => true,
            // the server refused the session for good: no such database or
            // role, a password or pg_hba.conf refusal, a permission
            Error::Pool(deadpool_postgres::PoolError::Backend(source))
                if source.code().is_some_and(|c| refused_for_good(c.code())) =>
            {
                false
            }
            // a pooler dropped the session's limits: retrying gets the same
            Error::Pool(deadpool_postgres::PoolError::PostCreateHook(
                deadpool_postgres::HookError::Message(_),
            )) => false,
            Error::Pool(_) => true,
            Error::Db { source, .. } => {
                source.is_closed()
                    || source.code().is_some_and(|c| {
                        RETRYABLE_SQLSTATES.contains(&c.code()) || connection_lost(c.code())
                    })
            }
            _ => false,
        }
    }

    /// True when the session is gone (closed, terminated, the server
    /// shutting down or starting up) or none could be had from the pool:
    /// retry on a new session.
    pub fn is_connection_lost(&self) -> bool {
        match self {
            Error::Pool(deadpool_postgres::PoolError::Backend(source))
                if source.code().is_some_and(|c| refused_for_good(c.code())) =>
            {
                false
            }
            Error::Pool(deadpool_postgres::PoolError::PostCreateHook(
                deadpool_postgres::HookError::Message(_),
            )) => false,
            Error::Pool(_) => true,
            Error::Db { source, .. } => {
                source.is_closed()
                    || source
                        .code()
                        .is_some_and(|c| connection_lost(c.code()) || c.code().starts_with("57P"))
            }
            _ => false,
        }
    }

    /// True for a fault of the tables or the database rather than of any
    /// one user: a table or column missing or retyped, a function gone, a
    /// permission revoked, a read-only database, disk or memory exhausted.
    /// Retrying the users one by one would fail each and count attempts
    /// against all of them; the daemon stops with the cause instead.
    pub fn is_table_fault(&self) -> bool {
        self.sqlstate().is_some_and(|c| {
            TABLE_FAULTS.contains(&c) || c.starts_with("53") || c.starts_with("58")
        })
    }

    /// The SQLSTATE of a database error, if this is one.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            Error::Db { source, .. }
            | Error::Pool(deadpool_postgres::PoolError::Backend(source)) => {
                source.code().map(|c| c.code())
            }
            _ => None,
        }
    }

    /// Wraps a driver error with what was being done.
    /// [`Error::db`] for a context that is borrowed: a plain function, to
    /// pass where a closure over the statement's name is wanted.
    pub(crate) fn db_at(context: &str, source: tokio_postgres::Error) -> Error {
        Error::db(context, source)
    }

    /// What the migration and rollback say once `decant finalize` passed.
    pub(crate) fn finalized() -> Error {
        Error::Setup(
            "the migration is finalized (`decant finalize`): every user is migrated, \
             and nothing migrates or rolls back any more"
                .into(),
        )
    }

    pub(crate) fn db(context: impl Into<String>, source: tokio_postgres::Error) -> Error {
        Error::Db {
            context: context.into(),
            source,
        }
    }

    /// As [`Error::db`] for a statement on decant's own objects: when
    /// they are missing (undefined table, column or function), the
    /// context asks whether `decant init` ran; any other cause (a
    /// read-only database, a permission) is shown as it is.
    pub(crate) fn db_own(context: impl Into<String>, source: tokio_postgres::Error) -> Error {
        let mut context = context.into();
        if source
            .code()
            .is_some_and(|c| ["42P01", "42703", "42883", "3F000"].contains(&c.code()))
        {
            context.push_str(" (has `decant init` run with this version?)");
        }
        Error::Db { context, source }
    }

    /// As [`Error::db`], but a lock timeout becomes the typed variant.
    pub(crate) fn db_user(user: &UserId, context: &str, source: tokio_postgres::Error) -> Error {
        if source.code().map(|c| c.code()) == Some("55P03") {
            Error::LockTimeout { user: user.clone() }
        } else {
            Error::Db {
                context: format!("user {user}: {context}"),
                source,
            }
        }
    }
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::advice;

    #[test]
    fn refusals_of_the_setup_say_what_to_do() {
        assert!(
            advice("25006", "cannot execute UPDATE in a read-only transaction")
                .unwrap()
                .contains("against the primary")
        );
        assert!(
            advice("42501", "permission denied for table t")
                .unwrap()
                .contains("decant grants")
        );
        for (code, message) in [
            ("42P05", "prepared statement \"s3\" already exists"),
            ("26000", "prepared statement \"s3\" does not exist"),
            ("08P01", "unsupported startup parameter: options"),
        ] {
            assert!(advice(code, message).unwrap().contains("SQL API"), "{code}");
        }
        // a protocol violation of another kind, and statements' own faults
        assert_eq!(advice("08P01", "invalid message length"), None);
        assert_eq!(advice("23505", "duplicate key value"), None);
        assert_eq!(advice("22P02", "invalid input syntax"), None);
    }
}
