//! Everything that talks to PostgreSQL, below the migration and the
//! compatibility layer: connections (`pool`, with `conninfo`, `service`
//! and `tls` for the connection string), the wire encoding of values
//! (`codec`), the SQL generated from a spec (`sql`) and its execution
//! (`store`), decant's own tables (`state`, `control`), the DDL
//! (`schema`), the cross-user views (`views`) and the SQL API (`api`), and
//! the pipelined transactions of the compatibility layer (`session`).
//! Depends only on the pure core and the error type.

pub(crate) mod api;
pub(crate) mod codec;
pub(crate) mod conninfo;
pub(crate) mod control;
pub(crate) mod identity;
pub(crate) mod pool;
pub(crate) mod schema;
pub(crate) mod service;
pub(crate) mod session;
pub(crate) mod sql;
pub(crate) mod state;
pub(crate) mod store;
pub(crate) mod tls;
pub(crate) mod views;
