//! Operations a team runs around a migration, above the daemon and the
//! compatibility layer: `status`, the census (`check`) and the gate at
//! the end (`finalize`), and the grants a backend role needs (`grants`).

pub(crate) mod check;
pub(crate) mod finalize;
pub(crate) mod grants;
pub(crate) mod status;
