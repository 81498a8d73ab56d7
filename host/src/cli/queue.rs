//! `wharf deploy` and `wharf queue describe`.

use super::client::{print, Client, ClientArgs};
use serde_json::json;

/// Arguments of `wharf deploy`.
#[derive(clap::Args)]
pub struct DeployArgs {
    /// Task queue to serve.
    #[arg(long)]
    task_queue: String,
    /// Module as NAME or NAME@VERSION (latest version if omitted).
    #[arg(long)]
    module: String,
    /// Most attempts running at once on this queue.
    #[arg(long)]
    max_concurrent: Option<u32>,
    #[command(flatten)]
    client: ClientArgs,
}

/// Queue commands.
#[derive(clap::Subcommand)]
pub enum QueueCommand {
    /// Backlog, running attempts, slots, rates and the deployment of a queue.
    Describe {
        /// Queue name.
        queue: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Set the queue-wide dispatch rate (0 pauses the queue), or clear it.
    Config {
        /// Queue name.
        queue: String,
        /// Tasks dispatched per second; 0 pauses the queue.
        #[arg(long, required_unless_present = "clear")]
        rate: Option<f64>,
        /// Tasks that may go at once after a quiet spell (default: one
        /// second's worth).
        #[arg(long)]
        burst: Option<f64>,
        /// Remove the limit (resumes a paused queue).
        #[arg(long, conflicts_with_all = ["rate", "burst"])]
        clear: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// Runs `wharf deploy`.
pub async fn deploy(args: DeployArgs) -> anyhow::Result<()> {
    let (name, version) = match args.module.split_once('@') {
        Some((n, v)) => (
            n.to_owned(),
            Some(
                v.parse::<u32>()
                    .map_err(|_| anyhow::anyhow!("{v:?} is not a version number"))?,
            ),
        ),
        None => (args.module.clone(), None),
    };
    let c = Client::new(&args.client)?;
    let path = format!(
        "task-queues/{}/deployment",
        urlencoding::encode(&args.task_queue)
    );
    let resp = c
        .put(
            &path,
            &json!({"module": name, "version": version, "max_concurrent": args.max_concurrent}),
        )
        .await?;
    print(args.client.json, &resp, |v| {
        let d = &v["deployment"];
        println!(
            "task queue {} now runs {}@{} (up to {} at once)",
            d["task_queue"].as_str().unwrap_or(""),
            d["module_name"].as_str().unwrap_or(""),
            d["module_version"],
            d["max_concurrent"]
        );
    });
    Ok(())
}

/// Runs a queue command.
pub async fn run(cmd: QueueCommand) -> anyhow::Result<()> {
    match cmd {
        QueueCommand::Describe {
            queue,
            client: args,
        } => {
            let c = Client::new(&args)?;
            let resp = c
                .get(&format!("task-queues/{}", urlencoding::encode(&queue)))
                .await?;
            print(args.json, &resp, |v| {
                println!("queue:       {}", v["name"].as_str().unwrap_or(""));
                println!(
                    "deployment:  {}",
                    v["deployment"]
                        .as_str()
                        .unwrap_or("(none: activities wait in the backlog)")
                );
                if let Some(load) = v["module_load"].as_object() {
                    println!(
                        "module load: {} in {:.1} ms",
                        load.get("source").and_then(|s| s.as_str()).unwrap_or(""),
                        load.get("ms").and_then(|m| m.as_f64()).unwrap_or(0.0)
                    );
                }
                println!(
                    "backlog:     {} (oldest waiting {} ms)",
                    v["backlog"], v["backlog_oldest_age_ms"]
                );
                for p in v["backlog_by_priority"].as_array().into_iter().flatten() {
                    println!(
                        "  priority {}: {} (oldest {} ms)",
                        p["priority"], p["count"], p["oldest_age_ms"]
                    );
                }
                let rl = &v["rate_limit"];
                match rl["rate"].as_f64() {
                    None => println!("rate limit:  none"),
                    Some(0.0) => println!(
                        "rate limit:  PAUSED (set by {})",
                        rl["set_by"].as_str().unwrap_or("?")
                    ),
                    Some(r) => println!(
                        "rate limit:  {r}/s, burst {} (set by {})",
                        rl["burst"],
                        rl["set_by"].as_str().unwrap_or("?")
                    ),
                }
                println!(
                    "dispatched:  {:.1}/s (last minute)",
                    v["dispatched_per_second"].as_f64().unwrap_or(0.0)
                );
                println!("in backoff:  {}", v["in_backoff"]);
                println!("running:     {} of {} slots", v["running"], v["slots"]);
                println!("async:       {} awaiting completion", v["awaiting_async"]);
                println!(
                    "throughput:  {:.1} attempts/s (last minute)",
                    v["finished_per_second"].as_f64().unwrap_or(0.0)
                );
            });
        }
        QueueCommand::Config {
            queue,
            rate,
            burst,
            clear,
            client: args,
        } => {
            let c = Client::new(&args)?;
            let body = if clear {
                json!({"rate": null})
            } else {
                json!({"rate": rate, "burst": burst})
            };
            let resp = c
                .put(
                    &format!("task-queues/{}", urlencoding::encode(&queue)),
                    &body,
                )
                .await?;
            print(args.json, &resp, |v| {
                match v["rate_limit"]["rate"].as_f64() {
                    None => println!("queue {queue}: no rate limit"),
                    Some(0.0) => println!("queue {queue}: paused"),
                    Some(r) => println!(
                        "queue {queue}: {r} tasks/s, burst {}",
                        v["rate_limit"]["burst"]
                    ),
                }
            });
        }
    }
    Ok(())
}
