//! Operations a team runs around a migration, above the daemon and the
//! compatibility layer: `status`, the census (`check`); the rehearsal and
//! `finalize` belong here too.

pub(crate) mod check;
pub(crate) mod status;
