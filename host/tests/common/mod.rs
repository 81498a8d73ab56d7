//! Shared helpers of the integration tests: the real `wharf` binary and the
//! real example components, built once per test binary.

#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The `wharf` binary under test.
pub fn wharf() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wharf"));
    c.env("WHARF_LOG", "warn");
    c
}

/// Path of a built Rust example component, building the examples once.
pub fn rust_example(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let root = repo().join("examples/rust");
        let status = Command::new("cargo")
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "--manifest-path",
            ])
            .arg(root.join("Cargo.toml"))
            .env("CARGO_TARGET_DIR", root.join("target"))
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the Rust examples failed");
    });
    let path = repo().join(format!(
        "examples/rust/target/wasm32-wasip2/release/{name}.wasm"
    ));
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// A data directory shared by the tests of this binary, so each component
/// is compiled once; tests that watch compilation use their own.
pub fn shared_data_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("wharf-run-data");
    std::fs::create_dir_all(&dir).expect("create data dir");
    dir
}

/// The result of one `wharf run --json`.
pub struct Run {
    pub output: Output,
    pub json: Value,
}

impl Run {
    pub fn outcome(&self) -> &str {
        self.json["outcome"].as_str().unwrap_or("<none>")
    }
    pub fn code(&self) -> Option<i32> {
        self.output.status.code()
    }
}

/// Runs `wharf run --json MODULE TYPE ARGS...` with the shared data dir.
pub fn run(module: &Path, activity_type: &str, args: &[&str]) -> Run {
    run_in(&shared_data_dir(), module, activity_type, args)
}

/// Same as [`run`], with a given data directory.
pub fn run_in(data_dir: &Path, module: &Path, activity_type: &str, args: &[&str]) -> Run {
    let output = wharf()
        .arg("run")
        .arg(module)
        .arg(activity_type)
        .arg("--json")
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .output()
        .expect("wharf runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let json = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "wharf run printed no JSON ({e}); status {:?}\nstdout: {stdout}\nstderr: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
    });
    Run { output, json }
}

/// Runs `wharf run` expecting it to refuse before running anything.
pub fn run_refused(module: &Path, activity_type: &str) -> (i32, String) {
    let output = wharf()
        .arg("run")
        .arg(module)
        .arg(activity_type)
        .arg("--data-dir")
        .arg(shared_data_dir())
        .output()
        .expect("wharf runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
