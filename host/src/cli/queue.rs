//! `wharf deploy`, `wharf queue ...` and `wharf limit ...`.

use super::args::parse_module_ref;
use super::client::{json_text, Client, ClientArgs};
use super::table;
use crate::api::types::{
    DeployRequest, DeploymentResponse, LimitList, LimitResponse, QueueConfigRequest,
    RateLimitResponse, SetLimitRequest,
};
use crate::service::QueueView;
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
    let (name, version) = parse_module_ref(&args.module)?;
    let name = name.to_owned();
    let c = Client::new(&args.client)?;
    let path = format!(
        "task-queues/{}/deployment",
        urlencoding::encode(&args.task_queue)
    );
    let body = DeployRequest {
        module: name,
        version,
        max_concurrent: args.max_concurrent,
        ramp_percent: args.ramp,
    };
    let resp = c.put::<DeploymentResponse>(&path, &body).await?;
    resp.print(args.client.json, print_deployment);
    Ok(())
}

fn print_deployment(v: &DeploymentResponse) {
    let d = &v.deployment;
    let name = &d.module_name;
    println!(
        "task queue {} now runs {name}@{} (up to {} at once)",
        d.task_queue, d.module_version, d.max_concurrent
    );
    if let Some(p) = d.ramp_percent {
        println!(
            "  rolling out {name}@{} to {p}% of activities",
            json_text(&d.ramp_version)
        );
    }
}

/// A limit's maximum as shown (`null` once removed).
fn max_text(max: Option<u32>) -> String {
    json_text(&max)
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
            let resp = Client::new(&client)?
                .get::<LimitList>("concurrency-limits")
                .await?;
            resp.print(client.json, |v| {
                if v.limits.is_empty() {
                    println!("no concurrency limits");
                    return;
                }
                let mut t = table::new(&["KEY", "MAX", "RUNNING", "WAITING"]);
                table::right(&mut t, &[1, 2, 3]);
                for l in &v.limits {
                    t.add_row(vec![
                        l.key.clone(),
                        max_text(l.max_concurrent),
                        l.running.to_string(),
                        l.waiting.to_string(),
                    ]);
                }
                table::print(&t);
            });
            return Ok(());
        }
    };
    let resp = Client::new(&args)?
        .put::<LimitResponse>(
            "concurrency-limits",
            &SetLimitRequest {
                key: key.clone(),
                max_concurrent: max,
            },
        )
        .await?;
    resp.print(args.json, |_| match max {
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
                .get::<QueueView>(&format!("task-queues/{}", urlencoding::encode(&queue)))
                .await?;
            resp.print(args.json, print_queue);
        }
        QueueCommand::Rollback {
            queue,
            client: args,
        } => {
            let resp = Client::new(&args)?
                .post::<DeploymentResponse>(
                    &format!("task-queues/{}/rollback", urlencoding::encode(&queue)),
                    &json!({}),
                )
                .await?;
            resp.print(args.json, print_deployment);
        }
        QueueCommand::Config {
            queue,
            rate,
            burst,
            clear,
            client: args,
        } => {
            let c = Client::new(&args)?;
            // `--clear` conflicts with the others, so it sends no rate:
            // that removes the limit.
            debug_assert!(!clear || (rate.is_none() && burst.is_none()));
            let body = QueueConfigRequest { rate, burst };
            let resp = c
                .put::<RateLimitResponse>(
                    &format!("task-queues/{}", urlencoding::encode(&queue)),
                    &body,
                )
                .await?;
            resp.print(args.json, |v| match v.rate_limit.rate {
                None => println!("queue {queue}: no rate limit"),
                Some(0.0) => println!("queue {queue}: paused"),
                Some(r) => println!(
                    "queue {queue}: {r} tasks/s, burst {}",
                    json_text(&v.rate_limit.burst)
                ),
            });
        }
    }
    Ok(())
}

fn print_queue(v: &QueueView) {
    println!("queue:       {}", v.name);
    println!(
        "deployment:  {}",
        v.deployment
            .as_deref()
            .unwrap_or("(none: activities wait in the backlog)")
    );
    if let Some(r) = &v.rollout {
        println!(
            "rollout:     {} takes {}% of activities",
            r.module, r.percent
        );
    }
    if let Some(load) = &v.module_load {
        let source = serde_json::to_value(load.source).unwrap_or_default();
        println!(
            "module load: {} in {:.1} ms",
            source.as_str().unwrap_or(""),
            load.ms
        );
    }
    let st = &v.stats;
    println!(
        "backlog:     {} (oldest waiting {} ms)",
        st.backlog, st.backlog_oldest_age_ms
    );
    for p in &st.backlog_by_priority {
        println!(
            "  priority {}: {} (oldest {} ms)",
            p.priority, p.count, p.oldest_age_ms
        );
        for k in &p.fairness_keys {
            println!(
                "    fairness key {:?} (weight {}): {}",
                k.key,
                json_text(&k.weight),
                k.count
            );
        }
    }
    if !v.next_activities.is_empty() {
        println!("next to go:  {}", v.next_activities.join(", "));
    }
    for l in &v.concurrency_limits {
        println!(
            "limit:       {} at most {} (running {}, waiting {})",
            l.key,
            max_text(l.max_concurrent),
            l.running,
            l.waiting
        );
    }
    if st.waiting_on_limits > 0 {
        println!(
            "limited:     {} waiting for a concurrency limit (wharf limit list)",
            st.waiting_on_limits
        );
    }
    let rl = &st.rate_limit;
    let set_by = rl.set_by.as_deref().unwrap_or("?");
    match rl.rate {
        None => println!("rate limit:  none"),
        Some(0.0) => println!("rate limit:  PAUSED (set by {set_by})"),
        Some(r) => println!(
            "rate limit:  {r}/s, burst {} (set by {set_by})",
            json_text(&rl.burst)
        ),
    }
    println!(
        "dispatched:  {:.1}/s (last minute)",
        st.dispatched_per_second
    );
    println!("in backoff:  {}", v.in_backoff);
    println!("running:     {} of {} slots", st.running, st.slots);
    println!("async:       {} awaiting completion", v.awaiting_async);
    println!(
        "throughput:  {:.1} attempts/s (last minute): {:.1} completed, {:.1} not",
        st.finished_per_second, st.completed_per_second, st.failed_per_second
    );
}
