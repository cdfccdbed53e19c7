//! decant moves per-user data out of a PostgreSQL `jsonb` blob column into
//! normalized tables, online, one user at a time, with no lost write.
//!
//! The pieces: the mapping [`Spec`]; the pure [`explode`] and
//! [`reconstruct`]; the compatibility layer [`Decant`] that the backend
//! links (`migration_compatible_transaction`, `load`, `save`, `patch`);
//! migration of users in verified transactions; a throwaway [`cluster`] for
//! tests and the demo; the example game in [`example`].
#![warn(missing_docs)]

pub mod bench;
pub mod cluster;
mod compat;
pub mod control;
pub mod daemon;
mod db;
pub mod demo;
mod error;
pub mod example;
pub mod explode;
pub mod json;
mod migrate;
pub mod schedule;
pub mod schema;
pub mod spec;
pub mod status;
mod store;
pub mod traffic;
pub mod value;

pub use compat::{Decant, merge_patch};
pub use db::{parse_config, with_dbname};
pub use error::{Error, Result};
pub use explode::{Exploded, Invalid, Row, explode, explode_lenient, reconstruct};
pub use migrate::{BatchReport, Failure, LockWait, Migrated};
pub use spec::Spec;

/// The README's examples, compiled as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
