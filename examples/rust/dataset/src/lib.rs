//! `dataset`: load something expensive once per process, then answer many
//! questions from it, routing the questions to the process that holds it.
//!
//! * `load {"limit": N}` builds the dataset (here: a sieve of the primes
//!   below N, standing in for a download), keeps it in the process cache and
//!   returns where it lives: `{"dataset", "primes", "build_ms",
//!   "worker_task_queue"}`.
//! * `query {"limit": N, "n": n}` answers whether `n` is prime from the
//!   cached dataset (`"cache_hit": true`), rebuilding it on a miss — a cache
//!   may be evicted or live on another process, so a miss must still work.
//!
//! Start `load` on the shared queue, then start the `query` activities on
//! the `worker_task_queue` it returned: they run on the same process and hit
//! the cache. See README.md.

use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Instant;
use wharf_guest::{activity, cache, ActivityError};

/// Largest dataset accepted, to keep memory in bounds.
const MAX_LIMIT: u64 = 50_000_000;

#[derive(Deserialize)]
struct Load {
    limit: u64,
}

#[derive(Deserialize)]
struct Query {
    limit: u64,
    n: u64,
}

fn key(limit: u64) -> String {
    format!("primes-below-{limit}")
}

/// One bit per odd number below `limit`: set when it is prime.
fn sieve(limit: u64) -> Result<Vec<u8>, ActivityError> {
    if limit > MAX_LIMIT {
        return Err(
            ActivityError::non_retryable(format!("limit {limit} is above {MAX_LIMIT}"))
                .with_type("InvalidArgument"),
        );
    }
    let odds = (limit / 2) as usize;
    let mut composite = vec![false; odds];
    let mut i = 1;
    while (2 * i + 1) * (2 * i + 1) < limit as usize {
        if !composite[i] {
            let p = 2 * i + 1;
            let mut j = (p * p) / 2;
            while j < odds {
                composite[j] = true;
                j += p;
            }
        }
        i += 1;
    }
    let mut bits = vec![0u8; odds.div_ceil(8)];
    for (i, c) in composite.iter().enumerate().skip(1) {
        if !c {
            bits[i / 8] |= 1 << (i % 8);
        }
    }
    Ok(bits)
}

fn is_prime(bits: &[u8], n: u64) -> bool {
    match n {
        2 => true,
        n if n < 2 || n % 2 == 0 => false,
        n => {
            let i = (n / 2) as usize;
            bits.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0)
        }
    }
}

fn load(args: Load) -> Result<Value, ActivityError> {
    let t0 = Instant::now();
    let bits = sieve(args.limit)?;
    cache::set(&key(args.limit), &bits)?;
    let primes: u32 = bits.iter().map(|b| b.count_ones()).sum::<u32>() + u32::from(args.limit > 2);
    Ok(json!({
        "dataset": key(args.limit),
        "primes": primes,
        "build_ms": t0.elapsed().as_millis() as u64,
        "worker_task_queue": activity::info().worker_task_queue,
    }))
}

fn query(args: Query) -> Result<Value, ActivityError> {
    if args.n >= args.limit {
        return Err(ActivityError::non_retryable(format!(
            "{} is not below the dataset's limit {}",
            args.n, args.limit
        ))
        .with_type("InvalidArgument"));
    }
    let (bits, hit) = match cache::get(&key(args.limit)) {
        Some(bits) => (bits, true),
        None => {
            wharf_guest::info!("cache miss: rebuilding {}", key(args.limit));
            let bits = sieve(args.limit)?;
            cache::set(&key(args.limit), &bits)?;
            (bits, false)
        }
    };
    Ok(json!({ "n": args.n, "is_prime": is_prime(&bits, args.n), "cache_hit": hit }))
}

wharf_guest::export_activities!(load, query);
