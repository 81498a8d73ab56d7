//! The `wharf` command. Parsing and dispatch live in [`wharf::cli`].

fn main() -> std::process::ExitCode {
    wharf::cli::main()
}
