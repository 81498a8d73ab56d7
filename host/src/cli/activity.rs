//! `wharf activity start|describe|result|cancel|list|complete|fail|heartbeat`.

use super::args::parse_duration;
use super::client::{parse_json, print, Client, ClientArgs};
use serde_json::{json, Map, Value};
use std::time::Duration;

/// Activity commands.
#[derive(clap::Subcommand)]
pub enum ActivityCommand {
    /// Start an activity (idempotent by --id).
    Start(Box<StartArgs>),
    /// State, options, heartbeat details, last failure and attempt history.
    Describe {
        /// Activity id.
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// The result, waiting for the activity to close.
    Result {
        /// Activity id.
        id: String,
        /// How long to wait.
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        wait: Duration,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Request cancellation.
    Cancel {
        /// Activity id.
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List activities, newest first.
    List {
        /// Only in this state (scheduled, started, completed, failed, cancelled, timed_out).
        #[arg(long)]
        state: Option<String>,
        /// Only of this type.
        #[arg(long = "type")]
        activity_type: Option<String>,
        /// Only on this queue.
        #[arg(long)]
        task_queue: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Complete an attempt that answered "will complete asynchronously".
    Complete {
        #[command(flatten)]
        target: TargetArgs,
        /// The result as JSON.
        #[arg(long, default_value = "null")]
        result: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Fail (or acknowledge cancellation of) the current attempt.
    Fail {
        #[command(flatten)]
        target: TargetArgs,
        /// Failure message.
        #[arg(long, required_unless_present = "cancelled")]
        message: Option<String>,
        /// Failure type.
        #[arg(long = "type")]
        error_type: Option<String>,
        /// Do not retry.
        #[arg(long)]
        non_retryable: bool,
        /// Failure details as JSON; repeat for several.
        #[arg(long = "details")]
        details: Vec<String>,
        /// Report that the activity stopped because it was cancelled.
        #[arg(long, conflicts_with = "message")]
        cancelled: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Heartbeat the current attempt; prints whether cancellation was requested.
    Heartbeat {
        #[command(flatten)]
        target: TargetArgs,
        /// Details as JSON; repeat for several.
        #[arg(long = "details")]
        details: Vec<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// Which attempt an external completion is for.
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
pub struct TargetArgs {
    /// Task token of the attempt.
    #[arg(long)]
    task_token: Option<String>,
    /// Activity id (its current attempt).
    #[arg(long)]
    id: Option<String>,
}

impl TargetArgs {
    fn into_json(self) -> Map<String, Value> {
        let mut m = Map::new();
        if let Some(t) = self.task_token {
            m.insert("task_token".into(), t.into());
        }
        if let Some(id) = self.id {
            m.insert("activity_id".into(), id.into());
        }
        m
    }
}

/// Arguments of `wharf activity start`.
#[derive(clap::Args)]
pub struct StartArgs {
    /// Activity type.
    #[arg(long = "type")]
    activity_type: String,
    /// Task queue.
    #[arg(long)]
    task_queue: String,
    /// An argument as JSON; repeat for several.
    #[arg(long = "input")]
    inputs: Vec<String>,
    /// Activity id (idempotency key); generated if absent.
    #[arg(long)]
    id: Option<String>,
    /// Limit on one attempt.
    #[arg(long)]
    start_to_close: Option<String>,
    /// Limit on the whole activity.
    #[arg(long)]
    schedule_to_close: Option<String>,
    /// Limit on waiting for a worker.
    #[arg(long)]
    schedule_to_start: Option<String>,
    /// An attempt without a heartbeat for this long times out.
    #[arg(long)]
    heartbeat_timeout: Option<String>,
    /// Attempts in all (0: unlimited).
    #[arg(long)]
    max_attempts: Option<u32>,
    /// First retry delay.
    #[arg(long)]
    initial_interval: Option<String>,
    /// Backoff coefficient.
    #[arg(long)]
    backoff: Option<f64>,
    /// Largest retry delay.
    #[arg(long)]
    max_interval: Option<String>,
    /// Priority, 1 (highest) to 5 (lowest); default 3.
    #[arg(long)]
    priority: Option<u8>,
    /// Fairness key: keys share their priority by weight.
    #[arg(long)]
    fairness_key: Option<String>,
    /// Weight of the fairness key (default 1).
    #[arg(long)]
    fairness_weight: Option<f32>,
    /// Concurrency key, counted against the namespace's `key:` limits.
    #[arg(long)]
    concurrency_key: Option<String>,
    /// A failure type never retried; repeat for several.
    #[arg(long = "non-retryable-type")]
    non_retryable_types: Vec<String>,
    /// Wait for the result and print it.
    #[arg(long)]
    wait: bool,
    #[command(flatten)]
    client: ClientArgs,
}

/// Runs an activity command.
pub async fn run(cmd: ActivityCommand) -> anyhow::Result<bool> {
    match cmd {
        ActivityCommand::Start(a) => start(*a).await,
        ActivityCommand::Describe { id, client: args } => {
            let v = Client::new(&args)?.get(&id_path(&id, "")).await?;
            print(args.json, &v, print_describe);
            Ok(true)
        }
        ActivityCommand::Result {
            id,
            wait,
            client: args,
        } => {
            let c = Client::new(&args)?;
            let v = wait_result(&c, &id, wait).await?;
            print(args.json, &v, print_result);
            Ok(v["state"] == "completed")
        }
        ActivityCommand::Cancel { id, client: args } => {
            let v = Client::new(&args)?
                .post(&id_path(&id, "/cancel"), &json!({}))
                .await?;
            print(args.json, &v, |v| {
                println!(
                    "cancellation requested; activity {} is {}",
                    id,
                    v["state"].as_str().unwrap_or("")
                )
            });
            Ok(true)
        }
        ActivityCommand::List {
            state,
            activity_type,
            task_queue,
            limit,
            client: args,
        } => {
            let c = Client::new(&args)?;
            let mut q = vec![format!("limit={limit}")];
            for (k, v) in [
                ("state", state),
                ("type", activity_type),
                ("task_queue", task_queue),
            ] {
                if let Some(v) = v {
                    q.push(format!("{k}={}", urlencoding::encode(&v)));
                }
            }
            let v = c.get(&format!("activities?{}", q.join("&"))).await?;
            print(args.json, &v, |v| {
                println!(
                    "{:<36} {:<16} {:<16} {:<10} {:>7}  LAST FAILURE",
                    "ID", "TYPE", "QUEUE", "STATE", "ATTEMPT"
                );
                for a in v["activities"].as_array().into_iter().flatten() {
                    println!(
                        "{:<36} {:<16} {:<16} {:<10} {:>7}  {}",
                        a["activity_id"].as_str().unwrap_or(""),
                        a["activity_type"].as_str().unwrap_or(""),
                        a["task_queue"].as_str().unwrap_or(""),
                        a["state"].as_str().unwrap_or(""),
                        a["attempt"],
                        a["last_failure"]["type"].as_str().unwrap_or("")
                    );
                }
            });
            Ok(true)
        }
        ActivityCommand::Complete {
            target,
            result,
            client: args,
        } => {
            let mut body = target.into_json();
            body.insert("result".into(), parse_json(&result, "--result")?);
            let v = Client::new(&args)?
                .post("activities/complete", &Value::Object(body))
                .await?;
            print(args.json, &v, |v| {
                println!(
                    "activity {} is {}",
                    v["activity_id"].as_str().unwrap_or(""),
                    v["state"].as_str().unwrap_or("")
                )
            });
            Ok(true)
        }
        ActivityCommand::Fail {
            target,
            message,
            error_type,
            non_retryable,
            details,
            cancelled,
            client: args,
        } => {
            let mut body = target.into_json();
            if cancelled {
                body.insert("cancelled".into(), true.into());
            } else {
                let details = details
                    .iter()
                    .map(|d| parse_json(d, "--details"))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                body.insert(
                    "error".into(),
                    json!({"message": message, "type": error_type, "non_retryable": non_retryable, "details": details}),
                );
            }
            let v = Client::new(&args)?
                .post("activities/fail", &Value::Object(body))
                .await?;
            print(args.json, &v, |v| {
                println!(
                    "activity {} is {} (attempt {})",
                    v["activity_id"].as_str().unwrap_or(""),
                    v["state"].as_str().unwrap_or(""),
                    v["attempt"]
                )
            });
            Ok(true)
        }
        ActivityCommand::Heartbeat {
            target,
            details,
            client: args,
        } => {
            let mut body = target.into_json();
            let details = details
                .iter()
                .map(|d| parse_json(d, "--details"))
                .collect::<anyhow::Result<Vec<_>>>()?;
            body.insert("details".into(), Value::Array(details));
            let v = Client::new(&args)?
                .post("activities/heartbeat", &Value::Object(body))
                .await?;
            print(args.json, &v, |v| {
                println!(
                    "recorded; cancellation requested: {}",
                    v["cancel_requested"]
                )
            });
            Ok(true)
        }
    }
}

fn id_path(id: &str, rest: &str) -> String {
    format!("activities/{}{rest}", urlencoding::encode(id))
}

async fn start(a: StartArgs) -> anyhow::Result<bool> {
    let c = Client::new(&a.client)?;
    let input = a
        .inputs
        .iter()
        .map(|s| parse_json(s, "--input"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut body = json!({
        "activity_id": a.id,
        "activity_type": a.activity_type,
        "task_queue": a.task_queue,
        "input": input,
    });
    let opts = [
        ("start_to_close_timeout", a.start_to_close),
        ("schedule_to_close_timeout", a.schedule_to_close),
        ("schedule_to_start_timeout", a.schedule_to_start),
        ("heartbeat_timeout", a.heartbeat_timeout),
    ];
    for (k, v) in opts {
        if let Some(v) = v {
            body[k] = v.into();
        }
    }
    if let Some(p) = a.priority {
        body["priority"] = p.into();
    }
    if let Some(k) = a.fairness_key {
        body["fairness_key"] = k.into();
    }
    if let Some(w) = a.fairness_weight {
        body["fairness_weight"] = w.into();
    }
    if let Some(k) = a.concurrency_key {
        body["concurrency_key"] = k.into();
    }
    let mut retry = Map::new();
    if let Some(n) = a.max_attempts {
        retry.insert("maximum_attempts".into(), n.into());
    }
    if let Some(d) = a.initial_interval {
        retry.insert("initial_interval".into(), d.into());
    }
    if let Some(b) = a.backoff {
        retry.insert("backoff_coefficient".into(), b.into());
    }
    if let Some(d) = a.max_interval {
        retry.insert("maximum_interval".into(), d.into());
    }
    if !a.non_retryable_types.is_empty() {
        retry.insert(
            "non_retryable_error_types".into(),
            a.non_retryable_types.into(),
        );
    }
    if !retry.is_empty() {
        body["retry_policy"] = Value::Object(retry);
    }
    let started = c.post("activities", &body).await?;
    let id = started["activity"]["activity_id"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    if !a.wait {
        print(a.client.json, &started, |v| {
            let verb = if v["created"] == Value::Bool(true) {
                "started"
            } else {
                "already exists:"
            };
            println!(
                "{verb} activity {id} ({})",
                v["activity"]["state"].as_str().unwrap_or("")
            );
        });
        return Ok(true);
    }
    let v = wait_result(&c, &id, Duration::MAX).await?;
    print(a.client.json, &v, print_result);
    Ok(v["state"] == "completed")
}

/// Long-polls the result endpoint until the activity closes or `wait` passes.
async fn wait_result(c: &Client, id: &str, wait: Duration) -> anyhow::Result<Value> {
    let deadline = std::time::Instant::now().checked_add(wait);
    loop {
        let left = deadline.map_or(Duration::from_secs(30), |d| {
            d.saturating_duration_since(std::time::Instant::now())
        });
        let poll = left.min(Duration::from_secs(30));
        let v = c
            .get(&id_path(
                id,
                &format!("/result?wait={}ms", poll.as_millis()),
            ))
            .await?;
        if v["closed"] == Value::Bool(true) || left.is_zero() || left <= poll {
            return Ok(v);
        }
    }
}

fn print_result(v: &Value) {
    match v["state"].as_str().unwrap_or("") {
        "completed" => println!("{}", v["result"]),
        state if v["closed"] == Value::Bool(true) => {
            let f = &v["failure"];
            println!(
                "{state} after {} attempt(s): {} {}",
                v["attempt"],
                f["type"].as_str().unwrap_or(""),
                f["message"].as_str().unwrap_or("")
            );
        }
        state => println!("not closed yet ({state}, attempt {})", v["attempt"]),
    }
}

fn print_describe(v: &Value) {
    let s = |k: &str| v[k].as_str().unwrap_or("").to_owned();
    println!("activity:   {} (run {})", s("activity_id"), v["run_id"]);
    println!(
        "type:       {} on queue {}",
        s("activity_type"),
        s("task_queue")
    );
    println!(
        "state:      {}{}",
        s("state"),
        if v["cancel_requested"] == Value::Bool(true) {
            " (cancel requested)"
        } else {
            ""
        }
    );
    println!("attempt:    {}", v["attempt"]);
    println!("input:      {}", v["input"]);
    if v["heartbeat_details"]
        .as_array()
        .is_some_and(|a| !a.is_empty())
    {
        println!("heartbeat:  {}", v["heartbeat_details"]);
    }
    if !v["result"].is_null() {
        println!("result:     {}", v["result"]);
    }
    if !v["last_failure"].is_null() {
        let f = &v["last_failure"];
        println!(
            "failure:    {}: {}",
            f["type"].as_str().unwrap_or(""),
            f["message"].as_str().unwrap_or("")
        );
    }
    println!("attempts:");
    for a in v["attempts"].as_array().into_iter().flatten() {
        let took = match (a["started_ms"].as_u64(), a["ended_ms"].as_u64()) {
            (Some(s), Some(e)) => format!("{} ms", e.saturating_sub(s)),
            _ => "running".into(),
        };
        println!(
            "  #{:<3} {:<22} {:<10} {} {} {}",
            a["attempt"],
            a["outcome"].as_str().unwrap_or("running"),
            took,
            a["module"].as_str().unwrap_or(""),
            a["failure_type"].as_str().unwrap_or(""),
            a["failure_message"]
                .as_str()
                .unwrap_or("")
                .lines()
                .next()
                .unwrap_or("")
        );
    }
}
