//! The `wharf` command line: one module per subcommand group. Each parses its
//! arguments and calls the library; none holds logic of its own. Commands
//! that talk to a server go through `client.rs`, which sends and reads the
//! API's own types (`api/types.rs`); their text output uses `table.rs`.

mod activity;
pub(crate) mod args;
mod batch;
mod bench;
mod client;
mod grants;
mod module;
mod namespace;
mod project;
mod queue;
mod run;
mod serve;
mod table;
mod worker;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Runs Temporal-style activities compiled to WebAssembly components.
#[derive(Parser)]
#[command(name = "wharf", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a project of one activity in Rust, JavaScript or Python.
    New(Box<project::NewArgs>),
    /// Build the project's component into build/NAME.wasm.
    Build(Box<project::BuildArgs>),
    /// Run the activity service: HTTP API, task queues, SQLite.
    Serve(Box<serve::ServeArgs>),
    /// Run one attempt of an activity from a component file.
    Run(Box<run::RunArgs>),
    /// Upload, list and delete modules.
    #[command(subcommand)]
    Module(module::ModuleCommand),
    /// Serve a task queue with a module version.
    Deploy(Box<queue::DeployArgs>),
    /// Start, inspect, cancel and complete activities.
    #[command(subcommand)]
    Activity(activity::ActivityCommand),
    /// Inspect and configure task queues, roll deployments back.
    #[command(subcommand)]
    Queue(queue::QueueCommand),
    /// Concurrency limits by activity type or key, across the host.
    #[command(subcommand)]
    Limit(queue::LimitCommand),
    /// Manage namespaces, their quotas and tokens (admin).
    #[command(subcommand)]
    Namespace(namespace::NamespaceCommand),
    /// Serve a Temporal task queue with Wasm activities.
    Worker(Box<worker::WorkerArgs>),
    /// Measure the host (release builds only give meaningful figures).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

/// Entry point of the binary.
/// A client command whose reader went away (`wharf activity list | head`)
/// ends as other Unix tools do, by SIGPIPE, instead of panicking in
/// `println!`. Rust ignores SIGPIPE by default; the long-running `serve` and
/// `worker` keep it ignored so a closed log pipe never kills them. Sockets
/// are unaffected either way: their writes use `MSG_NOSIGNAL`.
fn quiet_on_closed_stdout() {
    // SAFETY: called before any other thread exists; restoring the default
    // disposition of one signal has no other effect on the process.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Control threads of `wharf worker` unless told: half the cores, at least
/// one. Its control work is waiting on the Temporal server and handing
/// tasks to the guest threads: on a 2-core machine a second thread added
/// mostly wake-ups between the two, and one thread took a fifth off the
/// worker's CPU per activity (README, "Benchmarks").
fn worker_control_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    // `None`: Tokio's default, a thread per core.
    let (serves, control_threads) = match &cli.command {
        Command::Serve(args) => (true, args.control_threads.map(usize::from)),
        Command::Worker(args) => (
            true,
            Some(
                args.control_threads
                    .map_or_else(worker_control_threads, usize::from),
            ),
        ),
        _ => (false, None),
    };
    if !serves {
        quiet_on_closed_stdout();
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = control_threads {
        builder.worker_threads(threads);
    }
    let runtime = match builder
        // The servers' API and dispatch threads preempt guests when they
        // wake; other commands (`wharf run` and the benchmarks run guests on
        // these threads) keep the default.
        .on_thread_start(move || {
            if serves {
                crate::priority::short_slice();
            }
        })
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::New(args) => project::new(*args).map(|()| ExitCode::SUCCESS),
            Command::Build(args) => project::build(*args).map(|()| ExitCode::SUCCESS),
            Command::Serve(args) => serve::run(*args).await.map(|()| ExitCode::SUCCESS),
            Command::Run(args) => run::run(*args).await,
            Command::Module(cmd) => module::run(cmd).await.map(|()| ExitCode::SUCCESS),
            Command::Deploy(args) => queue::deploy(*args).await.map(|()| ExitCode::SUCCESS),
            Command::Activity(cmd) => activity::run(cmd).await.map(|ok| {
                if ok {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }),
            Command::Queue(cmd) => queue::run(cmd).await.map(|()| ExitCode::SUCCESS),
            Command::Limit(cmd) => queue::limit(cmd).await.map(|()| ExitCode::SUCCESS),
            Command::Namespace(cmd) => namespace::run(cmd).await.map(|()| ExitCode::SUCCESS),
            Command::Worker(args) => worker::run(*args).await.map(|()| ExitCode::SUCCESS),
            Command::Bench(cmd) => bench::run(cmd).await.map(|()| ExitCode::SUCCESS),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Logs go to stderr; `WHARF_LOG` (e.g. `debug`, `wharf=trace`) sets the level.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WHARF_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
