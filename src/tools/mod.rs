//! Tooling around decant, part of the `decant` binary and not of the
//! library's API: the throwaway PostgreSQL cluster, the example game, the
//! simulated backend traffic, the demo, the benchmark and its soak. The integration
//! tests include `cluster.rs` and `example.rs` as their own modules.

pub(crate) mod bench;
pub(crate) mod cluster;
pub(crate) mod demo;
pub(crate) mod example;
pub(crate) mod rehearse;
pub(crate) mod soak;
pub(crate) mod traffic;
