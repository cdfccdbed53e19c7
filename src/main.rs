//! The `decant` command: parse the arguments, set up logging, call the
//! library, print `error: ...` and exit non-zero on failure. The commands
//! live in `cli/`; the demo, the benchmark and the example game in `tools/`.

mod cli;
mod tools;

// glibc's allocator spent a third of the daemon's CPU time in malloc/free
// (perf); mimalloc is much cheaper for its many small JSON allocations.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    cli::main().await
}
