//! `wharf new` and `wharf build`: a project made for each language builds
//! with the language's tool and its own test (`test.sh`: `wharf build`, then
//! `wharf run` to completion and to the typed error) passes; building it
//! again from a clean output gives the same bytes (reproducible builds, so a
//! re-upload is the same module version).

mod common;

use std::path::Path;

/// Makes a project of `lang` in a temporary directory and runs its test.sh
/// with this build's `wharf`.
fn new_project_builds_and_its_test_passes(lang: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let name = format!("hello-{lang}");
    let out = common::wharf()
        .current_dir(dir.path())
        .args(["new", &name, "--lang", lang])
        .output()
        .expect("wharf new runs");
    assert!(out.status.success(), "wharf new: {out:?}");
    let project = dir.path().join(&name);
    assert!(project.join("README.md").exists() && project.join("wharf.toml").exists());

    // A Rust project gets the examples' lock file, so its dependencies
    // are the versions `./scripts/build-examples` compiled already.
    let examples = common::repo().join("examples/rust");
    if lang == "rust" {
        std::fs::copy(examples.join("Cargo.lock"), project.join("Cargo.lock")).expect("lock file");
    }
    let bin = Path::new(env!("CARGO_BIN_EXE_wharf"));
    let path = std::env::join_paths(
        std::iter::once(bin.parent().expect("bin dir").to_owned()).chain(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        )),
    )
    .expect("PATH");
    let command = |program: &Path| {
        let mut cmd = std::process::Command::new(program);
        cmd.current_dir(&project)
            .env("PATH", &path)
            .env("WHARF_LOG", "warn")
            // Compiled artifacts shared with the other tests of this binary.
            .env("WHARF_DATA_DIR", common::shared_data_dir())
            // The SDK's dependencies as the examples built them (same release
            // profile, same locked versions; see above).
            .env("CARGO_TARGET_DIR", examples.join("target"));
        cmd
    };
    let out = command(&project.join("test.sh"))
        .output()
        .expect("test.sh runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "test.sh: {stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("ok: {name} completes")),
        "{stdout}"
    );
    let component = project.join(format!("build/{name}.wasm"));
    let first = std::fs::read(&component).expect("the component test.sh built");
    // JS and Python builds are reproducible where guest-sdk/fixed-env can
    // run (it needs ptrace); the build says so where it cannot.
    if lang != "rust" && !fixed_env_runs() {
        eprintln!("skipped the rebuild comparison: scripts/fixed-env cannot run here");
        return;
    }

    std::fs::remove_file(&component).expect("remove the component");
    let out = command(bin)
        .arg("build")
        .output()
        .expect("wharf build runs");
    assert!(out.status.success(), "wharf build again: {out:?}");
    let second = std::fs::read(&component).expect("the component built again");
    assert!(
        first == second,
        "{lang}: the same sources built twice differ ({} and {} bytes)",
        first.len(),
        second.len()
    );
}

/// Whether the tools of reproducible JS/Python builds work on this machine.
fn fixed_env_runs() -> bool {
    std::process::Command::new(common::repo().join("scripts/fixed-env"))
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn a_new_rust_project_builds_and_its_test_passes() {
    new_project_builds_and_its_test_passes("rust");
}

#[test]
fn a_new_js_project_builds_and_its_test_passes() {
    new_project_builds_and_its_test_passes("js");
}

#[test]
fn a_new_python_project_builds_and_its_test_passes() {
    new_project_builds_and_its_test_passes("python");
}

#[test]
fn wharf_new_refuses_a_bad_name_and_an_existing_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let new = |name: &str| {
        common::wharf()
            .current_dir(dir.path())
            .args(["new", name, "--lang", "js"])
            .output()
            .expect("wharf new runs")
    };
    let out = new("Bad_Name");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("lowercase letter"));
    assert!(new("twice").status.success());
    let out = new("twice");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    let out = common::wharf()
        .current_dir(dir.path())
        .arg("build")
        .output()
        .expect("wharf build runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("wharf.toml not found"));
}
