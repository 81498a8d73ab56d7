//! The precompiled-artifact cache: compile a component once, load it from a
//! memory-mapped file afterwards.
//!
//! Artifacts are keyed by the component's SHA-256 and wasmtime's
//! compatibility hash (engine configuration and version), so a changed engine
//! simply misses the cache. Each artifact has a sidecar with its own BLAKE3
//! digest, checked before loading: a truncated, corrupted or foreign file is
//! never handed to wasmtime's `deserialize`, it is recompiled. Only accepted
//! modules get an artifact, written under a temporary name and renamed.
//!
//! The check is on the path of every restart, and JS and Python artifacts are
//! 33-43 MB: SHA-256 (even with the CPU's SHA extensions) took ~27 ms of a
//! ~29 ms restart-to-ready. BLAKE3 is as collision-resistant, so a changed
//! file still never matches its sidecar, and is several times faster per
//! core; it reads the file through a memory map and hashes on all cores.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use wasmtime::component::Component;

/// A compiled artifact written under a temporary name while its module is
/// checked: renamed into the cache by [`ArtifactCache::keep`] once the
/// module is accepted, removed when dropped otherwise.
pub(super) struct Pending {
    path: PathBuf,
    sha256: String,
    digest: String,
    kept: bool,
}

impl Pending {
    pub(super) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.kept {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Where artifacts live, for one engine configuration.
pub(super) struct ArtifactCache {
    dir: PathBuf,
    engine_key: String,
}

/// Feeds `Hash` output into SHA-256, for a hash stable across processes.
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

impl ArtifactCache {
    pub(super) fn new(dir: PathBuf, engine: &wasmtime::Engine) -> Self {
        let mut h = ShaHasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut h);
        let engine_key = hex::encode(&h.0.finalize()[..8]);
        Self { dir, engine_key }
    }

    fn paths(&self, sha256: &str) -> (PathBuf, PathBuf) {
        let base = self.dir.join(format!("{sha256}-{}", self.engine_key));
        (base.with_extension("cwasm"), base.with_extension("blake3"))
    }

    /// Loads the artifact of `sha256` if present and intact. Anything else
    /// (missing, truncated, tampered, refused by wasmtime) is `None`, logged.
    /// With the component comes the file it maps.
    pub(super) fn load(
        &self,
        engine: &wasmtime::Engine,
        sha256: &str,
    ) -> Option<(Component, PathBuf)> {
        let (artifact, sidecar) = self.paths(sha256);
        let expected = std::fs::read_to_string(&sidecar).ok()?;
        match file_digest(&artifact) {
            Ok(actual) if actual == expected.trim() => {}
            Ok(_) => {
                tracing::warn!(path = %artifact.display(), "artifact does not match its checksum; recompiling");
                return None;
            }
            Err(e) => {
                tracing::warn!(path = %artifact.display(), "cannot read artifact ({e}); recompiling");
                return None;
            }
        }
        // SAFETY: the file is one this cache wrote for this engine
        // configuration (its checksum matches the sidecar written with it),
        // and wasmtime checks the header and version again.
        match unsafe { Component::deserialize_file(engine, &artifact) } {
            Ok(c) => Some((c, artifact)),
            Err(e) => {
                tracing::warn!(path = %artifact.display(), "artifact refused ({e:#}); recompiling");
                None
            }
        }
    }

    /// Removes the artifact of `sha256` and its checksum, for this engine
    /// configuration and any other (their names start with the content's).
    pub(super) fn remove(&self, sha256: &str) -> std::io::Result<()> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let prefix = format!("{sha256}-");
        for entry in entries {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                match std::fs::remove_file(entry.path()) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Removes pending artifacts a crashed process left (older than an
    /// hour, so another process's upload in progress is never touched).
    pub(super) fn sweep_pending(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let hour = std::time::Duration::from_secs(3600);
        for entry in entries.flatten() {
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > hour);
            if stale && entry.file_name().to_string_lossy().contains(".pending") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// Writes `bytes`, the artifact of `sha256`, under a temporary name.
    pub(super) fn write_pending(&self, sha256: &str, bytes: &[u8]) -> std::io::Result<Pending> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        std::fs::create_dir_all(&self.dir)?;
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = self.dir.join(format!(
            "{sha256}-{}.pending{}-{n}",
            self.engine_key,
            std::process::id()
        ));
        let mut pending = Pending {
            path,
            sha256: sha256.to_owned(),
            digest: blake3::hash(bytes).to_hex().to_string(),
            kept: true,
        };
        let mut f = std::fs::File::create(&pending.path)?;
        pending.kept = false;
        f.write_all(bytes)?;
        f.sync_all()?;
        Ok(pending)
    }

    /// Moves a pending artifact into the cache, then writes its checksum
    /// (an artifact without one is recompiled, never trusted).
    pub(super) fn keep(&self, pending: &mut Pending) -> std::io::Result<()> {
        if pending.kept {
            return Ok(());
        }
        let (artifact, sidecar) = self.paths(&pending.sha256);
        std::fs::rename(&pending.path, &artifact)?;
        pending.kept = true;
        write_atomic(&sidecar, pending.digest.as_bytes())
    }
}

/// BLAKE3 of a file, the digest its sidecar holds. Read through a memory map
/// (no copy) and hashed on all cores.
pub(crate) fn file_digest(path: &Path) -> std::io::Result<String> {
    let mut h = blake3::Hasher::new();
    h.update_mmap_rayon(path)?;
    Ok(h.finalize().to_hex().to_string())
}

pub(super) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}
