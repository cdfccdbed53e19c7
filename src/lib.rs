//! decant moves per-user data out of a PostgreSQL `jsonb` blob column into
//! normalized tables, online, one user at a time, with no lost write.
//!
//! What a backend links:
//! - [`Spec`], the mapping (`decant.toml`), and the pure [`explode`] /
//!   [`reconstruct`] it drives;
//! - [`Decant`], the compatibility layer: `migration_compatible_transaction`,
//!   `load`, `save`, `patch`, `modify`, and the migration or rollback of
//!   single users;
//! - [`run`], the migration daemon, with its [`RunOptions`] and
//!   [`RunReport`];
//! - [`Error`], one error type whose [`Error::is_retryable`] keeps the
//!   database's SQLSTATE.
//!
//! The layers, each depending only on those below it: the command line
//! (the `decant` binary) → the daemon and operations (`status`) → migration
//! and the compatibility layer → PostgreSQL access (`pg`) → the pure core
//! (spec, JSON, values, explode, schedules).
#![warn(missing_docs)]

mod compat;
mod core;
mod daemon;
mod error;
mod migrate;
mod ops;
mod pg;

// The mapping and what it does to a blob (pure).
/// Counts worded for messages, shared by the library's messages and the
/// command line's.
#[doc(hidden)]
pub mod words {
    pub use crate::core::{is_are, users};
    pub use crate::ops::finalize::residual_note;
}
pub use core::explode::{Exploded, Invalid, Row, explode, reconstruct};
pub use core::id::{IdType, UserId};
pub use core::json::{json_diff, json_eq};
pub use core::spec::{Column, Pattern, Source, Spec, SpecError, Table};
pub use core::value::{ColumnType, ColumnValue, IsoForm};
pub use error::{Error, Result};

// The compatibility layer and single-user migration.
pub use compat::{Decant, merge_patch};
pub use migrate::{BatchReport, Failure, Migrated};

// The daemon, its pace and its live control.
pub use core::schedule::{Rate, Schedule, Window};
pub use daemon::{
    Cohort, DryRun, Phase, Progress, RunOptions, RunReport, Throttle, dry_run, evolve, peak_memory,
    rollback, run,
};
pub use pg::control::{Setting, set as set_control};

// Setting up and looking on.
pub use core::census::{
    CensusReport, Example, FixupEffect, Group, RulePath, Summary, TypesSeen, Unclaimed,
};
pub use core::fixup::{Applied, Change, Fixup};
pub use ops::check::{Check, CheckOptions, CheckProgress, PAGE_BYTES, Selection, check};
pub use ops::finalize::{Finalized, finalize};
pub use ops::grants::{apply_grants, grants, grants_script, roles_missing_grants};
pub use ops::status::{Daemon, FailureGroup, Status, status};
pub use pg::identity::{flag_exists as flag_column_exists, recorded_spec, require_init};
pub use pg::pool::{connect, describe_target, from_environment, with_dbname};
pub use pg::schema::{
    init, init_evolving, script as schema_script, source_triggers, source_triggers_warning,
    source_warnings, statements as schema_statements, views_script,
};

impl Spec {
    /// Reads and validates a spec file; errors name the file and line.
    pub fn load(path: &std::path::Path) -> Result<Spec> {
        let text = std::fs::read_to_string(path).map_err(|cause| Error::Io {
            path: path.to_path_buf(),
            cause,
        })?;
        let spec = Spec::parse_named(&text, path)?;
        // the fixups folder next to the spec
        let dir = path
            .parent()
            .unwrap_or(std::path::Path::new("."))
            .join("fixups");
        let fixups = Fixup::load_dir(&dir).map_err(Error::Setup)?;
        Ok(spec.with_fixups(fixups))
    }
}

/// The README's examples, compiled as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
