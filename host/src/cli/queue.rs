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
                println!(
                    "backlog:     {} (oldest waiting {} ms)",
                    v["backlog"], v["backlog_oldest_age_ms"]
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
    }
    Ok(())
}
