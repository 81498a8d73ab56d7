//! `wharf deploy`, `wharf queue ...` and `wharf limit ...`.

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
    /// Most attempts running at once on this queue (kept when omitted).
    #[arg(long)]
    max_concurrent: Option<u32>,
    /// Roll the version out to this percentage of activities (1-99) while
    /// the current version serves the rest; 100 completes the rollout.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=100))]
    ramp: Option<u8>,
    #[command(flatten)]
    client: ClientArgs,
}

/// Concurrency limit commands (per namespace, across the host's queues).
#[derive(clap::Subcommand)]
pub enum LimitCommand {
    /// Allow at most N attempts at once under a key.
    Set {
        /// `type:ACTIVITY_TYPE` (every queue), `queue:QUEUE/type:ACTIVITY_TYPE`
        /// (one queue) or `key:CONCURRENCY_KEY` (activities started with
        /// `--concurrency-key`).
        key: String,
        /// Most attempts at once.
        max_concurrent: u32,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Remove a limit.
    Clear {
        /// The limit's key.
        key: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Limits with what runs and waits under each.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
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
    /// Restore the queue's deployment before its last change (also ends a
    /// rollout).
    Rollback {
        /// Queue name.
        queue: String,
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
            &json!({
                "module": name,
                "version": version,
                "max_concurrent": args.max_concurrent,
                "ramp_percent": args.ramp,
            }),
        )
        .await?;
    print(args.client.json, &resp, print_deployment);
    Ok(())
}

fn print_deployment(v: &serde_json::Value) {
    let d = &v["deployment"];
    let name = d["module_name"].as_str().unwrap_or("");
    println!(
        "task queue {} now runs {name}@{} (up to {} at once)",
        d["task_queue"].as_str().unwrap_or(""),
        d["module_version"],
        d["max_concurrent"]
    );
    if let Some(p) = d["ramp_percent"].as_u64() {
        println!(
            "  rolling out {name}@{} to {p}% of activities",
            d["ramp_version"]
        );
    }
}

/// Runs a limit command.
pub async fn limit(cmd: LimitCommand) -> anyhow::Result<()> {
    let (key, max, args) = match cmd {
        LimitCommand::Set {
            key,
            max_concurrent,
            client,
        } => (key, Some(max_concurrent), client),
        LimitCommand::Clear { key, client } => (key, None, client),
        LimitCommand::List { client } => {
            let resp = Client::new(&client)?.get("concurrency-limits").await?;
            print(client.json, &resp, |v| {
                let limits = v["limits"].as_array().cloned().unwrap_or_default();
                if limits.is_empty() {
                    println!("no concurrency limits");
                }
                for l in limits {
                    println!(
                        "{:<40} max {:>5}  running {:>5}  waiting {:>6}",
                        l["key"].as_str().unwrap_or(""),
                        l["max_concurrent"],
                        l["running"],
                        l["waiting"]
                    );
                }
            });
            return Ok(());
        }
    };
    let resp = Client::new(&args)?
        .put(
            "concurrency-limits",
            &json!({"key": key, "max_concurrent": max}),
        )
        .await?;
    print(args.json, &resp, |_| match max {
        Some(n) => println!("{key}: at most {n} at once"),
        None => println!("{key}: no limit"),
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
                if let Some(r) = v["rollout"].as_object() {
                    println!(
                        "rollout:     {} takes {}% of activities",
                        r.get("module").and_then(|m| m.as_str()).unwrap_or(""),
                        r.get("percent").and_then(|p| p.as_u64()).unwrap_or(0)
                    );
                }
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
                    for k in p["fairness_keys"].as_array().into_iter().flatten() {
                        println!(
                            "    fairness key {:?} (weight {}): {}",
                            k["key"].as_str().unwrap_or(""),
                            k["weight"],
                            k["count"]
                        );
                    }
                }
                let next: Vec<&str> = v["next_activities"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|a| a.as_str())
                    .collect();
                if !next.is_empty() {
                    println!("next to go:  {}", next.join(", "));
                }
                for l in v["concurrency_limits"].as_array().into_iter().flatten() {
                    println!(
                        "limit:       {} at most {} (running {}, waiting {})",
                        l["key"].as_str().unwrap_or(""),
                        l["max_concurrent"],
                        l["running"],
                        l["waiting"]
                    );
                }
                if v["waiting_on_limits"].as_u64().unwrap_or(0) > 0 {
                    println!(
                        "limited:     {} waiting for a concurrency limit (wharf limit list)",
                        v["waiting_on_limits"]
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
                    "throughput:  {:.1} attempts/s (last minute): {:.1} completed, {:.1} not",
                    v["finished_per_second"].as_f64().unwrap_or(0.0),
                    v["completed_per_second"].as_f64().unwrap_or(0.0),
                    v["failed_per_second"].as_f64().unwrap_or(0.0)
                );
            });
        }
        QueueCommand::Rollback {
            queue,
            client: args,
        } => {
            let resp = Client::new(&args)?
                .post(
                    &format!("task-queues/{}/rollback", urlencoding::encode(&queue)),
                    &json!({}),
                )
                .await?;
            print(args.json, &resp, print_deployment);
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
