//! `wharf activity start --batch FILE`: starts from JSON lines (one start's
//! body per line, `-` for stdin), sent to `activities:batch` in batches of
//! the server's largest size, with a summary and each refused line.

use super::client::{Client, ClientArgs};
use crate::api::types::BatchStartResponse;
use crate::service::bounds::MAX_BATCH_STARTS;
use anyhow::Context as _;
use serde_json::{json, Value};
use std::io::{IsTerminal as _, Read as _, Write as _};

/// Reads the lines of `path` (`-`: stdin) and starts them; true when no
/// line was refused.
pub(super) async fn start_batch(path: &str, args: &ClientArgs) -> anyhow::Result<bool> {
    let text = if path == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("cannot read the starts from stdin")?;
        s
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?
    };
    let c = Client::new(args)?;
    // (line number, its answer) for every non-blank line, in order.
    let mut results: Vec<(usize, Value)> = Vec::new();
    let mut chunk: Vec<(usize, Value)> = Vec::new();
    let lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    // Progress on a terminal only (a pipe or log would get every rewrite).
    let total = lines.clone().count();
    let progress = Progress {
        shown: !args.json && std::io::stderr().is_terminal() && total > MAX_BATCH_STARTS,
        total,
    };
    for (i, line) in lines {
        match serde_json::from_str::<Value>(line) {
            Ok(v) => chunk.push((i + 1, v)),
            Err(e) => results.push((
                i + 1,
                json!({"outcome": "error", "status": 400,
                       "error": {"code": "invalid_argument", "message": format!("invalid JSON: {e}")}}),
            )),
        }
        if chunk.len() == MAX_BATCH_STARTS {
            send(&c, std::mem::take(&mut chunk), &mut results).await?;
            progress.show(results.len());
        }
    }
    if !chunk.is_empty() {
        send(&c, chunk, &mut results).await?;
    }
    progress.done();
    results.sort_by_key(|(line, _)| *line);
    let count = |o: &str| results.iter().filter(|(_, r)| r["outcome"] == o).count();
    let (created, existing, failed) = (count("created"), count("existing"), count("error"));
    if args.json {
        let results: Vec<Value> = results
            .into_iter()
            .map(|(line, mut r)| {
                r["line"] = json!(line);
                r
            })
            .collect();
        let all = json!({"created": created, "existing": existing, "failed": failed,
                         "results": results});
        println!("{}", serde_json::to_string_pretty(&all)?);
    } else {
        for (line, r) in &results {
            if r["outcome"] == "error" {
                let e = &r["error"];
                println!(
                    "line {line}: {} ({})",
                    e["message"].as_str().unwrap_or(""),
                    e["code"].as_str().unwrap_or("")
                );
            }
        }
        println!("{created} started, {existing} already existed, {failed} refused");
    }
    Ok(failed == 0)
}

/// A line on stderr rewritten as batches go.
struct Progress {
    shown: bool,
    total: usize,
}

impl Progress {
    fn show(&self, done: usize) {
        if self.shown {
            eprint!("\rstarted {done} of {} lines...", self.total);
            let _ = std::io::stderr().flush();
        }
    }

    fn done(&self) {
        if self.shown {
            eprintln!();
        }
    }
}

/// Sends one batch; each line's answer goes to `results`.
async fn send(
    c: &Client,
    chunk: Vec<(usize, Value)>,
    results: &mut Vec<(usize, Value)>,
) -> anyhow::Result<()> {
    let (lines, starts): (Vec<usize>, Vec<Value>) = chunk.into_iter().unzip();
    let first = lines.first().copied().unwrap_or(0);
    let answer = c
        .post::<BatchStartResponse>("activities:batch", &json!({ "starts": starts }))
        .await
        .with_context(|| format!("the batch from line {first} was not accepted"))?;
    anyhow::ensure!(
        answer.body.results.len() == lines.len(),
        "the server answered {} of {} starts",
        answer.body.results.len(),
        lines.len()
    );
    for (line, r) in lines.into_iter().zip(answer.body.results) {
        results.push((line, serde_json::to_value(&r)?));
    }
    Ok(())
}
