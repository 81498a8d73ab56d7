//! The engine's shards: wasmtime engines of their own, each with its pool
//! and its copy of every module, that a thread's attempts stay on. Every
//! shard must run attempts to completion and stop a looping guest at its
//! deadline (its epoch must advance like the first shard's).

mod common;

use std::time::{Duration, Instant};
use wharf::engine::{
    ActivityModule, AttemptLimits, Engine, EngineConfig, Outcome, DEFAULT_CACHE_BYTES,
};
use wharf::registry::Registry;
use wharf::worker::{Attempt, Deadline, Runner, RunnerConfig, Threads};

/// Runs `activity_type` of `module` on the calling thread within
/// `start_to_close`.
fn attempt(
    runner: &Runner,
    module: &ActivityModule,
    activity_type: &str,
    start_to_close: Duration,
) -> Outcome {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let slot = runner.slot("default").await;
        let deadline = Deadline::Timeouts {
            start_to_close: Some(start_to_close),
            schedule_to_close: None,
        };
        let attempt = Attempt::bare(
            module.clone(),
            "adversary",
            "default",
            activity_type,
            deadline,
        );
        runner
            .run(attempt, slot)
            .await
            .expect("the attempt ran")
            .outcome
    })
}

#[test]
fn every_shard_runs_attempts_and_stops_a_loop_at_its_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(&EngineConfig {
        shards: 2,
        ..EngineConfig::default()
    })
    .unwrap();
    assert_eq!(engine.shards(), 2);
    let registry = Registry::new(engine.clone(), dir.path());
    let loaded = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(registry.load_file(&common::rust_example("adversary")))
        .unwrap()
        .0;
    let runner = Runner::new(
        engine,
        RunnerConfig {
            limits: AttemptLimits::default(),
            cache_bytes: DEFAULT_CACHE_BYTES,
            max_running: 2,
            threads: Threads::Caller,
        },
    );
    for shard in 0..2 {
        let (runner, module) = (runner.clone(), loaded.module.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            wharf::engine::shard::pin_thread(shard);
            let done = attempt(&runner, &module, "info", Duration::from_secs(60));
            let _ = tx.send(("info", done));
            let looped = attempt(&runner, &module, "loop", Duration::from_millis(300));
            let _ = tx.send(("loop", looped));
        });
        // A shard whose epoch never advanced would let the loop spin until
        // its fuel ran out: the thread is then left behind.
        let wait = |what| {
            let t = Instant::now();
            let (got, outcome) = rx
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("shard {shard}: {what} did not end in 60 s"));
            assert_eq!(got, what);
            (outcome, t.elapsed())
        };
        let (done, _) = wait("info");
        assert!(
            matches!(done, Outcome::Completed { .. }),
            "shard {shard}: {}",
            done.describe()
        );
        let (looped, took) = wait("loop");
        assert!(
            matches!(looped, Outcome::TimedOut),
            "shard {shard}: {} after {took:?}",
            looped.describe()
        );
    }
}
