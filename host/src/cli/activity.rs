//! `wharf activity start|describe|result|cancel|run-now|list|complete|fail|heartbeat`.

use super::args::parse_duration;
use super::client::{parse_json, Client, ClientArgs, Reply};
use super::table;
use crate::api::types::{
    ActivityList, ApplicationError, CompleteRequest, FailByHandRequest, FailRequest,
    HeartbeatRequest, HeartbeatResponse, ResultResponse, RetryPolicy, StartActivityRequest,
    Started,
};
use crate::service::ActivityView;
use crate::store::activities::Closed;
use serde_json::{json, Value};
use std::time::Duration;

/// Activity commands.
#[derive(clap::Subcommand)]
pub enum ActivityCommand {
    /// Start an activity (idempotent by --id), or many from JSON lines (--batch).
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
    /// Start the next attempt of an activity waiting out a retry backoff now.
    RunNow {
        /// Activity id.
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List activities, newest first.
    List {
        /// Only in this state (scheduled, started, completed, failed, cancelled, timed_out),
        /// or retrying: open and past the first attempt.
        #[arg(long)]
        state: Option<String>,
        /// Only of this type.
        #[arg(long = "type")]
        activity_type: Option<String>,
        /// Only on this queue.
        #[arg(long)]
        task_queue: Option<String>,
        /// Only those whose id starts with this.
        #[arg(long)]
        id_prefix: Option<String>,
        /// Only those first scheduled at or after this time (RFC 3339, e.g.
        /// 2026-11-29T20:00:00Z).
        #[arg(long)]
        scheduled_after: Option<String>,
        /// Only those first scheduled before this time (RFC 3339).
        #[arg(long)]
        scheduled_before: Option<String>,
        /// At most this many (1 to 1000).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Complete an attempt that answered "will complete asynchronously".
    Complete {
        #[command(flatten)]
        target: TargetArgs,
        /// The result as JSON, or `@FILE` to read it from a file.
        #[arg(long, default_value = "null")]
        result: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Fail an activity by hand (`fail ID --reason R`: closed as failed, never
    /// retried, an attempt in progress stopped), or fail (or acknowledge
    /// cancellation of) the current attempt as a worker (`--task-token` / `--id`).
    Fail {
        /// Activity id to fail by hand, whatever attempt it is in.
        #[arg(requires = "reason", conflicts_with_all = ["task_token", "id", "message", "cancelled", "non_retryable", "details"])]
        activity: Option<String>,
        /// Why the activity is failed by hand (its failure's message).
        #[arg(long, requires = "activity")]
        reason: Option<String>,
        #[command(flatten)]
        target: TargetArgs,
        /// Failure message.
        #[arg(long, required_unless_present_any = ["cancelled", "activity"])]
        message: Option<String>,
        /// Failure type (by hand: FailedByOperator if absent).
        #[arg(long = "type")]
        error_type: Option<String>,
        /// Do not retry.
        #[arg(long)]
        non_retryable: bool,
        /// Failure details as JSON (or `@FILE`); repeat for several.
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
        /// Details as JSON (or `@FILE`); repeat for several.
        #[arg(long = "details")]
        details: Vec<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// Which attempt an external completion is for (required, but `fail`
/// takes an activity id in its place).
#[derive(clap::Args)]
#[group(required = false, multiple = false)]
pub struct TargetArgs {
    /// Task token of the attempt.
    #[arg(long)]
    task_token: Option<String>,
    /// Activity id (its current attempt).
    #[arg(long)]
    id: Option<String>,
}

impl TargetArgs {
    /// The task token and activity id of a completion, fail or heartbeat.
    fn into_parts(self) -> anyhow::Result<(Option<String>, Option<String>)> {
        if self.task_token.is_none() && self.id.is_none() {
            anyhow::bail!("give --task-token or --id");
        }
        Ok((self.task_token, self.id))
    }
}

/// Arguments of `wharf activity start`.
#[derive(clap::Args)]
pub struct StartArgs {
    /// Activity type.
    #[arg(long = "type", required_unless_present = "batch")]
    activity_type: Option<String>,
    /// Task queue.
    #[arg(long, required_unless_present = "batch")]
    task_queue: Option<String>,
    /// Start many: a file of JSON lines, each the body of one start as the
    /// API takes it (`-`: stdin), sent 1000 to a request; prints a summary
    /// and every refused line. Excludes the other start options.
    #[arg(long, value_name = "FILE", conflicts_with_all = [
        "activity_type", "task_queue", "inputs", "id", "start_to_close", "schedule_to_close",
        "schedule_to_start", "heartbeat_timeout", "max_attempts", "initial_interval", "backoff",
        "max_interval", "priority", "fairness_key", "fairness_weight", "concurrency_key",
        "non_retryable_types", "wait",
    ])]
    batch: Option<String>,
    /// An argument as JSON, or `@FILE` to read it from a file (`@-`:
    /// standard input); repeat for several.
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
            let r = Client::new(&args)?
                .get::<ActivityView>(&id_path(&id, ""))
                .await?;
            r.print(args.json, print_describe);
            Ok(true)
        }
        ActivityCommand::Result {
            id,
            wait,
            client: args,
        } => {
            let c = Client::new(&args)?;
            let r = wait_result(&c, &id, wait).await?;
            r.print(args.json, print_result);
            Ok(r.body.state == Closed::Completed.as_str())
        }
        ActivityCommand::Cancel { id, client: args } => {
            let r = Client::new(&args)?
                .post::<ActivityView>(&id_path(&id, "/cancel"), &json!({}))
                .await?;
            r.print(args.json, |v| {
                println!("cancellation requested; activity {id} is {}", v.state)
            });
            Ok(true)
        }
        ActivityCommand::RunNow { id, client: args } => {
            let r = Client::new(&args)?
                .post::<ActivityView>(&id_path(&id, "/run-now"), &json!({}))
                .await?;
            r.print(args.json, |v| {
                println!("activity {id} runs attempt {} now ({})", v.attempt, v.state)
            });
            Ok(true)
        }
        ActivityCommand::List {
            state,
            activity_type,
            task_queue,
            id_prefix,
            scheduled_after,
            scheduled_before,
            limit,
            client: args,
        } => {
            let c = Client::new(&args)?;
            let mut q = vec![format!("limit={limit}")];
            for (k, v) in [
                ("state", state),
                ("type", activity_type),
                ("task_queue", task_queue),
                ("id_prefix", id_prefix),
                ("scheduled_after", scheduled_after),
                ("scheduled_before", scheduled_before),
            ] {
                if let Some(v) = v {
                    q.push(format!("{k}={}", urlencoding::encode(&v)));
                }
            }
            let r = c
                .get::<ActivityList>(&format!("activities?{}", q.join("&")))
                .await?;
            r.print(args.json, |v| {
                let mut t =
                    table::new(&["ID", "TYPE", "QUEUE", "STATE", "ATTEMPT", "LAST FAILURE"]);
                table::right(&mut t, &[4]);
                for a in &v.activities {
                    t.add_row(vec![
                        a.activity_id.clone(),
                        a.activity_type.clone(),
                        a.task_queue.clone(),
                        a.state.clone(),
                        a.attempt.to_string(),
                        a.last_failure
                            .as_ref()
                            .map(|f| f.error_type.clone())
                            .unwrap_or_default(),
                    ]);
                }
                table::print(&t);
                if v.truncated {
                    println!(
                        "(more activities match than one answer carries; narrow the filter, \
                         or go on with --scheduled-before the last one's scheduled time)"
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
            let (task_token, activity_id) = target.into_parts()?;
            let body = CompleteRequest {
                task_token,
                activity_id,
                result: parse_json(&result, "--result")?,
            };
            let r = Client::new(&args)?
                .post::<ActivityView>("activities/complete", &body)
                .await?;
            r.print(args.json, |v| {
                println!("activity {} is {}", v.activity_id, v.state)
            });
            Ok(true)
        }
        ActivityCommand::Fail {
            activity: Some(id),
            reason,
            error_type,
            client: args,
            ..
        } => {
            let body = FailByHandRequest {
                reason: reason.unwrap_or_default(),
                error_type,
            };
            let r = Client::new(&args)?
                .post::<ActivityView>(&id_path(&id, "/fail"), &body)
                .await?;
            r.print(args.json, |v| {
                println!("activity {id} is {} (attempt {})", v.state, v.attempt)
            });
            Ok(true)
        }
        ActivityCommand::Fail {
            activity: None,
            target,
            message,
            error_type,
            non_retryable,
            details,
            cancelled,
            client: args,
            reason: _,
        } => {
            let (task_token, activity_id) = target.into_parts()?;
            let error = if cancelled {
                None
            } else {
                Some(ApplicationError {
                    message: message.unwrap_or_default(),
                    error_type,
                    non_retryable,
                    details: parse_all(&details, "--details")?,
                    next_retry_delay: None,
                })
            };
            let body = FailRequest {
                task_token,
                activity_id,
                error,
                cancelled,
            };
            let r = Client::new(&args)?
                .post::<ActivityView>("activities/fail", &body)
                .await?;
            r.print(args.json, |v| {
                println!(
                    "activity {} is {} (attempt {})",
                    v.activity_id, v.state, v.attempt
                )
            });
            Ok(true)
        }
        ActivityCommand::Heartbeat {
            target,
            details,
            client: args,
        } => {
            let (task_token, activity_id) = target.into_parts()?;
            let body = HeartbeatRequest {
                task_token,
                activity_id,
                details: parse_all(&details, "--details")?,
            };
            let r = Client::new(&args)?
                .post::<HeartbeatResponse>("activities/heartbeat", &body)
                .await?;
            r.print(args.json, |v| {
                println!("recorded; cancellation requested: {}", v.cancel_requested)
            });
            Ok(true)
        }
    }
}

fn id_path(id: &str, rest: &str) -> String {
    format!("activities/{}{rest}", urlencoding::encode(id))
}

/// Parses repeated JSON arguments.
fn parse_all(items: &[String], flag: &str) -> anyhow::Result<Vec<Value>> {
    items.iter().map(|d| parse_json(d, flag)).collect()
}

/// The `activity start` flag of each field of the start request, so that a
/// refusal names what the user typed.
const START_FLAGS: &[(&str, &str)] = &[
    ("activity_id", "--id"),
    ("activity_type", "--type"),
    ("task_queue", "--task-queue"),
    ("input", "--input"),
    ("start_to_close_timeout", "--start-to-close"),
    ("schedule_to_close_timeout", "--schedule-to-close"),
    ("schedule_to_start_timeout", "--schedule-to-start"),
    ("heartbeat_timeout", "--heartbeat-timeout"),
    ("retry_policy.initial_interval", "--initial-interval"),
    ("retry_policy.backoff_coefficient", "--backoff"),
    ("retry_policy.maximum_interval", "--max-interval"),
    ("retry_policy.maximum_attempts", "--max-attempts"),
    (
        "retry_policy.non_retryable_error_types",
        "--non-retryable-type",
    ),
    ("priority", "--priority"),
    ("fairness_key", "--fairness-key"),
    ("fairness_weight", "--fairness-weight"),
    ("concurrency_key", "--concurrency-key"),
];

/// `message` with the start request's field names (whole words only)
/// replaced by their flags.
fn with_flag_names(message: &str) -> String {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.';
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = rest.find(is_word) {
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let end = rest.find(|c: char| !is_word(c)).unwrap_or(rest.len());
        let word = &rest[..end];
        // A field name may end a sentence: "... is required."
        let bare = word.trim_end_matches('.');
        match START_FLAGS.iter().find(|(field, _)| *field == bare) {
            Some((_, flag)) => {
                out.push_str(flag);
                out.push_str(&word[bare.len()..]);
            }
            None => out.push_str(word),
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

async fn start(a: StartArgs) -> anyhow::Result<bool> {
    if let Some(path) = &a.batch {
        return super::batch::start_batch(path, &a.client).await;
    }
    if a.start_to_close.is_none() && a.schedule_to_close.is_none() {
        anyhow::bail!(
            "an activity needs a time limit: --start-to-close (each attempt, e.g. 10s) \
             or --schedule-to-close (the whole activity, retries included), or both"
        );
    }
    let c = Client::new(&a.client)?;
    let retry = RetryPolicy {
        initial_interval: a.initial_interval,
        backoff_coefficient: a.backoff,
        maximum_interval: a.max_interval,
        maximum_attempts: a.max_attempts,
        non_retryable_error_types: (!a.non_retryable_types.is_empty())
            .then_some(a.non_retryable_types),
    };
    let has_retry = retry.initial_interval.is_some()
        || retry.backoff_coefficient.is_some()
        || retry.maximum_interval.is_some()
        || retry.maximum_attempts.is_some()
        || retry.non_retryable_error_types.is_some();
    let body = StartActivityRequest {
        activity_id: a.id,
        // Clap requires both without --batch.
        activity_type: a.activity_type.unwrap_or_default(),
        task_queue: a.task_queue.unwrap_or_default(),
        input: Some(parse_all(&a.inputs, "--input")?),
        start_to_close_timeout: a.start_to_close,
        schedule_to_close_timeout: a.schedule_to_close,
        schedule_to_start_timeout: a.schedule_to_start,
        heartbeat_timeout: a.heartbeat_timeout,
        retry_policy: has_retry.then_some(retry),
        priority: a.priority,
        fairness_key: a.fairness_key,
        fairness_weight: a.fairness_weight,
        concurrency_key: a.concurrency_key,
        ..StartActivityRequest::default()
    };
    let started = c
        .post::<Started>("activities", &body)
        .await
        .map_err(|e| anyhow::anyhow!(with_flag_names(&format!("{e:#}"))))?;
    let id = started.body.activity.activity_id.clone();
    if !a.wait {
        started.print(a.client.json, |v| {
            let verb = if v.created {
                "started"
            } else {
                "already exists:"
            };
            println!("{verb} activity {id} ({})", v.activity.state);
        });
        return Ok(true);
    }
    let r = wait_result(&c, &id, Duration::MAX).await?;
    r.print(a.client.json, print_result);
    Ok(r.body.state == Closed::Completed.as_str())
}

/// Long-polls the result endpoint until the activity closes or `wait` passes.
async fn wait_result(
    c: &Client,
    id: &str,
    wait: Duration,
) -> anyhow::Result<Reply<ResultResponse>> {
    let deadline = std::time::Instant::now().checked_add(wait);
    loop {
        let left = deadline.map_or(Duration::from_secs(30), |d| {
            d.saturating_duration_since(std::time::Instant::now())
        });
        let poll = left.min(Duration::from_secs(30));
        let r = c
            .get::<ResultResponse>(&id_path(
                id,
                &format!("/result?wait={}ms", poll.as_millis()),
            ))
            .await?;
        if r.body.closed || left.is_zero() || left <= poll {
            return Ok(r);
        }
    }
}

/// A JSON value as the text output shows it (`null` when absent).
fn shown(v: Option<&Value>) -> String {
    v.map_or_else(|| "null".to_owned(), Value::to_string)
}

fn print_result(v: &ResultResponse) {
    match v.state.as_str() {
        s if s == Closed::Completed.as_str() => println!("{}", shown(v.result.as_ref())),
        state if v.closed => {
            let f = v.failure.clone().unwrap_or_default();
            println!(
                "{state} after {} attempt(s): {} {}",
                v.attempt, f.error_type, f.message
            );
        }
        state => println!("not closed yet ({state}, attempt {})", v.attempt),
    }
}

fn print_describe(v: &ActivityView) {
    print!("{}", describe_text(v));
}

/// Width of the labels of `activity describe`'s text; continuation lines
/// are indented to it.
const LABEL: usize = 12;

/// The text form of `activity describe`: what the activity is, its state,
/// the last failure as the retry policy saw it (type, non-retryable flag,
/// message, decoded details) and every attempt with its log tail. The run
/// id, a number counted across the whole server, is left to `--json`.
fn describe_text(v: &ActivityView) -> String {
    let mut out = String::new();
    let mut line = |label: &str, value: &str| {
        let mut lines = value.lines();
        let first = lines.next().unwrap_or("");
        let head = format!("{:<LABEL$}{first}", format!("{label}:"));
        out.push_str(head.trim_end());
        out.push('\n');
        for more in lines {
            out.push_str(&format!("{:LABEL$}{more}\n", ""));
        }
    };
    line("activity", &v.activity_id);
    line(
        "type",
        &format!("{} on queue {}", v.activity_type, v.task_queue),
    );
    let cancel = if v.cancel_requested {
        " (cancel requested)"
    } else {
        ""
    };
    line("state", &format!("{}{cancel}", v.state));
    line("attempt", &v.attempt.to_string());
    line("input", &Value::from(v.input.clone()).to_string());
    if !v.heartbeat_details.is_empty() {
        line(
            "heartbeat",
            &Value::from(v.heartbeat_details.clone()).to_string(),
        );
    }
    if let Some(result) = v.result.as_ref().filter(|r| !r.is_null()) {
        line("result", &result.to_string());
    }
    if let Some(f) = &v.last_failure {
        let retry = match (f.non_retryable, f.next_retry_delay_ms) {
            (true, _) => "non-retryable".to_owned(),
            (false, None) => "retryable".to_owned(),
            (false, Some(ms)) => format!("retryable, next retry after {ms} ms"),
        };
        line(
            "failure",
            &format!("{} ({retry}): {}", f.error_type, f.message),
        );
        let details: Vec<String> = v
            .last_failure_details
            .iter()
            .map(Value::to_string)
            .collect();
        if !details.is_empty() {
            line("details", &details.join("\n"));
        }
    }
    line("attempts", "");
    for a in v.attempts.iter().flatten() {
        let took = match a.ended_ms {
            Some(e) => format!("{} ms", e.saturating_sub(a.started_ms)),
            None => "running".into(),
        };
        let row = format!(
            "  #{:<3} {:<22} {:<10} {} {} {}",
            a.attempt,
            a.outcome.as_deref().unwrap_or("running"),
            took,
            a.module.as_deref().unwrap_or(""),
            a.failure_type.as_deref().unwrap_or(""),
            a.failure_message
                .as_deref()
                .unwrap_or("")
                .lines()
                .next()
                .unwrap_or("")
        );
        out.push_str(row.trim_end());
        out.push('\n');
        for log in a.log_tail.iter().flat_map(|l| l.lines()) {
            out.push_str(&format!("       | {log}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::with_flag_names;

    #[test]
    fn refusals_of_a_start_name_its_flags() {
        assert_eq!(
            with_flag_names(
                "start_to_close_timeout: -1 is not a duration; retry_policy.maximum_interval too."
            ),
            "--start-to-close: -1 is not a duration; --max-interval too."
        );
        // Whole words only.
        assert_eq!(
            with_flag_names("my_task_queue_x and priority_high"),
            "my_task_queue_x and priority_high"
        );
        assert_eq!(with_flag_names("priority is 9"), "--priority is 9");
    }
}
