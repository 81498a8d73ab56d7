//! The `wharf` command. Parsing and dispatch live in [`wharf::cli`].

// The server allocates per request and per activity; mimalloc spends fewer
// instructions per activity than the system allocator (README, Benchmarks).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    wharf::allocator::tune();
    wharf::cli::main()
}
