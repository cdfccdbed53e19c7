//! Operations a team runs around a migration, above the daemon and the
//! compatibility layer: `status` today; the census (`check`), the
//! rehearsal and `finalize` belong here too.

pub(crate) mod status;
