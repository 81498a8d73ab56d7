//! `wharf module upload|list`.

use super::client::{print, Client, ClientArgs};
use anyhow::Context as _;
use serde_json::Value;
use std::io::Write as _;
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
            let upload = c.post_bytes(&path, bytes);
            tokio::pin!(upload);
            // Compiling a large JS or Python component takes seconds: show
            // that something is happening.
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            tick.tick().await;
            let resp = loop {
                tokio::select! {
                    r = &mut upload => break r?,
                    _ = tick.tick() => if !args.json {
                        eprint!("\ruploading and compiling {} ({:.1} MB)... {}s", file.display(), size as f64 / 1e6, started.elapsed().as_secs());
                        let _ = std::io::stderr().flush();
                    }
                }
            };
            if !args.json && started.elapsed().as_secs() >= 1 {
                eprintln!();
            }
            print(args.json, &resp, |v| {
                let m = &v["module"];
                let verb = if v["created"] == Value::Bool(true) {
                    "uploaded"
                } else {
                    "already uploaded as"
                };
                println!(
                    "{verb} {}@{} ({} bytes, sha256 {}) in {:.1}s",
                    m["name"].as_str().unwrap_or(""),
                    m["version"],
                    m["size"],
                    &m["sha256"].as_str().unwrap_or("")
                        [..12.min(m["sha256"].as_str().unwrap_or("").len())],
                    started.elapsed().as_secs_f64()
                );
                println!("activity types: {}", join(&m["activity_types"]));
            });
        }
        ModuleCommand::List { client: args } => {
            let c = Client::new(&args)?;
            let resp = c.get("modules").await?;
            print(args.json, &resp, |v| {
                println!(
                    "{:<24} {:>7} {:>10}  {:<14} ACTIVITY TYPES",
                    "NAME", "VERSION", "SIZE", "SHA256"
                );
                for m in v["modules"].as_array().into_iter().flatten() {
                    println!(
                        "{:<24} {:>7} {:>10}  {:<14} {}",
                        m["name"].as_str().unwrap_or(""),
                        m["version"].to_string(),
                        m["size"].to_string(),
                        m["sha256"].as_str().unwrap_or("").get(..12).unwrap_or(""),
                        join(&m["activity_types"])
                    );
                }
            });
        }
    }
    Ok(())
}

/// Joins a JSON array of strings with commas.
pub fn join(v: &Value) -> String {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}
