//! `wharf module upload|list|delete`.

use super::args::parse_module_ref;
use super::client::{Client, ClientArgs};
use super::table;
use crate::api::types::{ModuleDeleted, ModuleList, ModuleUploaded};
use anyhow::Context as _;
use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::time::Instant;

/// Module commands.
#[derive(clap::Subcommand)]
pub enum ModuleCommand {
    /// Upload a component: validated, compiled once, versioned by content.
    Upload {
        /// The component (.wasm).
        file: PathBuf,
        /// Name to upload it under.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List modules and their versions.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Delete a module (every version) or one version: refused while a
    /// task queue deploys it; its files go once no module has its content.
    Delete {
        /// NAME or NAME@VERSION.
        module: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// Runs a module command.
pub async fn run(cmd: ModuleCommand) -> anyhow::Result<()> {
    match cmd {
        ModuleCommand::Upload {
            file,
            name,
            client: args,
        } => {
            let c = Client::new(&args)?;
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let size = bytes.len();
            let started = Instant::now();
            let path = format!("modules?name={}", urlencoding::encode(&name));
            let upload = c.post_bytes::<ModuleUploaded>(&path, bytes);
            tokio::pin!(upload);
            // Compiling a large JS or Python component takes seconds: show
            // that something is happening, on a terminal only (a log or a
            // pipe would get one rewritten line per second).
            let progress = !args.json && std::io::stderr().is_terminal();
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            tick.tick().await;
            let resp = loop {
                tokio::select! {
                    r = &mut upload => break r?,
                    _ = tick.tick() => if progress {
                        eprint!("\ruploading and compiling {} ({:.1} MB)... {}s", file.display(), size as f64 / 1e6, started.elapsed().as_secs());
                        let _ = std::io::stderr().flush();
                    }
                }
            };
            if progress && started.elapsed().as_secs() >= 1 {
                eprintln!();
            }
            resp.print(args.json, |v| {
                let m = &v.module;
                let verb = if v.created {
                    "uploaded"
                } else {
                    "already uploaded as"
                };
                println!(
                    "{verb} {}@{} ({} bytes, sha256 {}) in {:.1}s",
                    m.name,
                    m.version,
                    m.size,
                    short_sha(&m.sha256),
                    started.elapsed().as_secs_f64()
                );
                println!("activity types: {}", m.activity_types.join(", "));
            });
        }
        ModuleCommand::List { client: args } => {
            let c = Client::new(&args)?;
            let resp = c.get::<ModuleList>("modules").await?;
            resp.print(args.json, |v| {
                let mut t = table::new(&["NAME", "VERSION", "SIZE", "SHA256", "ACTIVITY TYPES"]);
                table::right(&mut t, &[1, 2]);
                for m in &v.modules {
                    t.add_row(vec![
                        m.name.clone(),
                        m.version.to_string(),
                        m.size.to_string(),
                        short_sha(&m.sha256).to_owned(),
                        m.activity_types.join(", "),
                    ]);
                }
                table::print(&t);
            });
        }
        ModuleCommand::Delete {
            module,
            client: args,
        } => {
            let (name, version) = parse_module_ref(&module)?;
            let mut path = format!("modules/{}", urlencoding::encode(name));
            if let Some(v) = version {
                path.push_str(&format!("?version={v}"));
            }
            let resp = Client::new(&args)?.delete::<ModuleDeleted>(&path).await?;
            resp.print(args.json, |v| {
                let versions: Vec<String> = v
                    .versions
                    .iter()
                    .map(|n| format!("{}@{n}", v.name))
                    .collect();
                println!("deleted {}", versions.join(", "));
            });
        }
    }
    Ok(())
}

/// The first 12 hex digits of a content hash, as listings show it.
fn short_sha(sha256: &str) -> &str {
    sha256.get(..12).unwrap_or(sha256)
}
