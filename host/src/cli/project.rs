//! `wharf new` and `wharf build`: a project of one activity in Rust,
//! JavaScript or Python, made from the templates beside the kits
//! (`guest-sdk/templates/`), and built with the language's own tool.
//!
//! A project is a directory with a `wharf.toml` naming it and its language.
//! `wharf build` runs cargo for `wasm32-wasip2` (after `rustup toolchain
//! install`, which fetches the toolchain and target the project's
//! `rust-toolchain.toml` names), the JS kit (`scripts/build-js`, which runs `npm ci` for
//! componentize-js on first use) or the Python kit (`scripts/build-python`,
//! which installs componentize-py), and leaves the component at
//! `build/NAME.wasm` whatever the language. The kits and the Rust SDK are
//! those of the wharf checkout this binary was built from, or of
//! `WHARF_REPO`.

use anyhow::Context as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Arguments of `wharf new`.
#[derive(clap::Args)]
pub struct NewArgs {
    /// Project name, also its activity type and module name: a lowercase
    /// letter, then lowercase letters, digits and '-' (at most 64).
    name: String,
    /// Language of the project.
    #[arg(long, value_enum)]
    lang: Lang,
    /// Directory to create [default: ./NAME].
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// Arguments of `wharf build`.
#[derive(clap::Args)]
pub struct BuildArgs {
    /// The project directory (with its wharf.toml).
    #[arg(default_value = ".")]
    dir: PathBuf,
}

/// A language activities are written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// Rust, with the `wharf-guest` crate.
    Rust,
    /// JavaScript, with the componentize-js kit.
    Js,
    /// Python, with the componentize-py kit.
    Python,
}

impl Lang {
    fn as_str(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Js => "js",
            Lang::Python => "python",
        }
    }

    fn parse(s: &str) -> Option<Lang> {
        [Lang::Rust, Lang::Js, Lang::Python]
            .into_iter()
            .find(|l| l.as_str() == s)
    }

    /// The files of a new project: path in the project, template text.
    fn templates(self) -> Vec<(&'static str, &'static str)> {
        let mut files = vec![
            (
                "README.md",
                include_str!("../../../guest-sdk/templates/README.md.tmpl"),
            ),
            (
                "test.sh",
                include_str!("../../../guest-sdk/templates/test.sh.tmpl"),
            ),
        ];
        files.extend(match self {
            Lang::Rust => vec![
                (
                    "Cargo.toml",
                    include_str!("../../../guest-sdk/templates/rust/Cargo.toml.tmpl"),
                ),
                (
                    "src/lib.rs",
                    include_str!("../../../guest-sdk/templates/rust/lib.rs.tmpl"),
                ),
                // The toolchain the SDK is built and tested with, with its
                // wasm32-wasip2 target: `wharf build` installs both.
                (
                    "rust-toolchain.toml",
                    include_str!("../../../rust-toolchain.toml"),
                ),
                // Versions tested with the SDK; cargo drops what the project
                // does not use at its first build.
                (
                    "Cargo.lock",
                    include_str!("../../../examples/rust/Cargo.lock"),
                ),
            ],
            Lang::Js => vec![(
                "activities.js",
                include_str!("../../../guest-sdk/templates/js/activities.js.tmpl"),
            )],
            Lang::Python => vec![(
                "activities.py",
                include_str!("../../../guest-sdk/templates/python/activities.py.tmpl"),
            )],
        });
        files
    }
}

/// The wharf checkout whose kits and SDK projects use: `WHARF_REPO`, else
/// the one this binary was built from.
fn repo() -> anyhow::Result<PathBuf> {
    let dir = std::env::var_os("WHARF_REPO")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    let dir = dir.canonicalize().with_context(|| {
        format!(
            "the wharf checkout {} (its kits build projects) is not there; set WHARF_REPO",
            dir.display()
        )
    })?;
    anyhow::ensure!(
        dir.join("guest-sdk").is_dir() && dir.join("scripts").is_dir(),
        "{} is not a wharf checkout (no guest-sdk/ and scripts/); set WHARF_REPO",
        dir.display()
    );
    Ok(dir)
}

/// A project name: a lowercase letter, then lowercase letters, digits and
/// '-', at most 64 bytes; usable as a crate, module and activity type name.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
}

/// Runs `wharf new`.
pub fn new(args: NewArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        valid_name(&args.name),
        "{:?}: a project name is a lowercase letter, then lowercase letters, digits and '-' \
         (at most 64, not ending in '-')",
        args.name
    );
    let dir = args.dir.unwrap_or_else(|| PathBuf::from(&args.name));
    anyhow::ensure!(
        !dir.exists(),
        "{} already exists; give another name or --dir",
        dir.display()
    );
    let repo = repo()?;
    let (lang_title, source, build_tool) = match args.lang {
        Lang::Rust => (
            "Rust",
            "src/lib.rs",
            "`cargo build --release --target wasm32-wasip2`",
        ),
        Lang::Js => (
            "JavaScript",
            "activities.js",
            "the JavaScript kit (`scripts/build-js` of the wharf checkout)",
        ),
        Lang::Python => (
            "Python",
            "activities.py",
            "the Python kit (`scripts/build-python` of the wharf checkout)",
        ),
    };
    let guest_sdk = repo.join("guest-sdk");
    let vars = [
        ("{{name}}", args.name.as_str()),
        ("{{lang_title}}", lang_title),
        ("{{source}}", source),
        ("{{build_tool}}", build_tool),
        ("{{guest_sdk}}", guest_sdk.to_str().unwrap_or_default()),
    ];
    for (path, template) in args.lang.templates() {
        let text = vars
            .iter()
            .fold(template.to_owned(), |t, (k, v)| t.replace(k, v));
        let file = dir.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&file, text).with_context(|| format!("cannot write {}", file.display()))?;
    }
    std::fs::write(
        dir.join("wharf.toml"),
        format!(
            "# Written by `wharf new`; `wharf build` reads it.\nname = \"{}\"\nlang = \"{}\"\n",
            args.name,
            args.lang.as_str()
        ),
    )?;
    std::fs::write(dir.join(".gitignore"), "/build/\n/target/\n")?;
    set_executable(&dir.join("test.sh"))?;
    println!(
        "created {} ({lang_title} activity type {:?}); next: cd {} && wharf build",
        dir.display(),
        args.name,
        dir.display()
    );
    Ok(())
}

fn set_executable(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut perms = std::fs::metadata(path)?.permissions();
    perms.set_mode(0o755);
    std::fs::set_permissions(path, perms)?;
    Ok(())
}

/// What `wharf.toml` says: the project's name and language.
fn read_project(dir: &Path) -> anyhow::Result<(String, Lang)> {
    let file = dir.join("wharf.toml");
    let text = std::fs::read_to_string(&file).with_context(|| {
        format!(
            "{} not found: `wharf build` builds a project made by `wharf new`",
            file.display()
        )
    })?;
    // Two `key = "value"` lines; nothing else is written there.
    let value = |key: &str| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == key).then(|| v.trim().trim_matches('"').to_owned())
        })
    };
    let name = value("name")
        .filter(|n| valid_name(n))
        .with_context(|| format!("{}: no valid `name`", file.display()))?;
    let lang = value("lang")
        .and_then(|l| Lang::parse(&l))
        .with_context(|| format!("{}: `lang` must be rust, js or python", file.display()))?;
    Ok((name, lang))
}

/// Runs `wharf build`.
pub fn build(args: BuildArgs) -> anyhow::Result<()> {
    let dir = &args.dir;
    let (name, lang) = read_project(dir)?;
    let out_dir = dir.join("build");
    std::fs::create_dir_all(&out_dir)?;
    let out = out_dir.join(format!("{name}.wasm"));
    let started = std::time::Instant::now();
    match lang {
        Lang::Rust => {
            // The project's rust-toolchain.toml names the toolchain and its
            // wasm32-wasip2 target; rustup no longer fetches them on first
            // use everywhere (RUSTUP_AUTO_INSTALL), so ask for them. A
            // no-op when they are there; without rustup, cargo decides.
            if let Ok(status) = Command::new("rustup")
                .args(["toolchain", "install"])
                .current_dir(dir)
                .stdout(std::process::Stdio::null())
                .status()
            {
                anyhow::ensure!(
                    status.success(),
                    "rustup could not install the toolchain of {} ({status})",
                    dir.join("rust-toolchain.toml").display()
                );
            }
            run(Command::new("cargo")
                .args(["build", "--release", "--target", "wasm32-wasip2"])
                .current_dir(dir))?;
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map_or_else(|| dir.join("target"), PathBuf::from);
            let built = target
                .join("wasm32-wasip2/release")
                .join(format!("{}.wasm", name.replace('-', "_")));
            std::fs::copy(&built, &out)
                .with_context(|| format!("cannot copy {} to {}", built.display(), out.display()))?;
        }
        Lang::Js | Lang::Python => {
            let script = match lang {
                Lang::Js => "scripts/build-js",
                _ => "scripts/build-python",
            };
            run(Command::new(repo()?.join(script))
                .arg(dir)
                .arg("-o")
                .arg(&out))?;
        }
    }
    let size = std::fs::metadata(&out)?.len();
    println!(
        "built {} ({size} bytes) in {:.1} s",
        out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Runs a build tool, its output going to the terminal.
fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let what = format!("{:?}", cmd.get_program());
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {what} (is it installed?)"))?;
    anyhow::ensure!(status.success(), "{what} failed ({status})");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::valid_name;

    #[test]
    fn project_names_suit_every_language() {
        for ok in ["slugify", "a", "resize-2", &"x".repeat(64)] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in [
            "",
            "Slug",
            "2fast",
            "a_b",
            "a-",
            "é",
            "a b",
            &"x".repeat(65),
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
