//! decant moves per-user data out of a PostgreSQL `jsonb` blob column into
//! normalized tables, online, one user at a time, with no lost write.
#![warn(missing_docs)]

mod error;
pub mod explode;
pub mod spec;
pub mod value;

pub use error::{Error, Result};
pub use explode::{Exploded, Invalid, Row, explode, explode_lenient, reconstruct};
pub use spec::Spec;
