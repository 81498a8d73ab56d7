//! The precompiled-artifact cache: compile a component once, load it from a
//! memory-mapped file afterwards.
//!
//! Artifacts are keyed by the component's SHA-256 and wasmtime's
//! compatibility hash (engine configuration and version), so a changed engine
//! simply misses the cache. Each artifact has a sidecar with its own SHA-256,
//! checked before loading: a truncated, corrupted or foreign file is never
//! handed to wasmtime's `deserialize`, it is recompiled.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use wasmtime::component::Component;

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
        (base.with_extension("cwasm"), base.with_extension("sha256"))
    }

    /// Loads the artifact of `sha256` if present and intact. Anything else
    /// (missing, truncated, tampered, refused by wasmtime) is `None`, logged.
    pub(super) fn load(&self, engine: &wasmtime::Engine, sha256: &str) -> Option<Component> {
        let (artifact, sidecar) = self.paths(sha256);
        let expected = std::fs::read_to_string(&sidecar).ok()?;
        match file_sha256(&artifact) {
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
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(path = %artifact.display(), "artifact refused ({e:#}); recompiling");
                None
            }
        }
    }

    /// Writes an artifact and its checksum, atomically each.
    pub(super) fn store(&self, sha256: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(&self.dir)?;
        let (artifact, sidecar) = self.paths(sha256);
        write_atomic(&artifact, bytes)?;
        write_atomic(&sidecar, hex::encode(Sha256::digest(bytes)).as_bytes())?;
        Ok(artifact)
    }
}

fn file_sha256(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(hex::encode(h.finalize()))
}

pub(super) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}
