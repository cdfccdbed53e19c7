//! Integration tests against a real PostgreSQL: the server in DATABASE_URL,
//! or one throwaway cluster started once for the whole run. Each test gets
//! its own database.

mod harness;

mod api;
mod check;
mod cli;
mod compat;
mod concurrency;
mod constraints;
mod crash;
mod daemon;
mod differential;
mod finalize;
mod fixups;
mod hostile;
mod identity;
mod migrate;
mod node;
mod outage;
mod pooler;
mod rehearse;
mod schema;
mod tls;
mod views;

// the binary's throwaway cluster and example game, shared with the tests
#[allow(dead_code)]
#[path = "../../src/tools/cluster.rs"]
mod cluster;
#[allow(dead_code)]
#[path = "../../src/tools/demo.rs"]
mod demo;
#[path = "demo_test.rs"]
mod demo_test;
#[allow(dead_code)]
#[path = "../../src/tools/example.rs"]
mod example;
#[allow(dead_code)]
#[path = "../../src/tools/traffic.rs"]
mod traffic;
