//! Is this a component we can run? Checks in order of what a user most likely
//! got wrong, each with its own error: not wasm at all, a core module, a
//! component of another world or another contract version, an import the host
//! does not provide; and whether it fits its share of the instance pool.

use super::RegistryError;
use crate::engine::{PoolShare, ACTIVITIES_INTERFACE};
use wasmtime::component::Component;

const ACTIVITIES_PREFIX: &str = "wharf:activity/activities@";

/// Cheap checks on the raw bytes, before any compilation.
pub(super) fn check_bytes(bytes: &[u8]) -> Result<(), RegistryError> {
    if bytes.is_empty() {
        return Err(RegistryError::NotWasm("the file is empty".into()));
    }
    if wasmparser::Parser::is_core_wasm(bytes) {
        return Err(RegistryError::CoreModule);
    }
    if !wasmparser::Parser::is_component(bytes) {
        return Err(RegistryError::NotWasm(
            "it does not start with the WebAssembly magic number and component version".into(),
        ));
    }
    Ok(())
}

/// Counts the core instances the component creates (every `instantiate`,
/// nested components included, each once) before anything is compiled, and
/// refuses more than [`PoolShare::CORE_INSTANCES`].
pub(super) fn check_core_instances(bytes: &[u8]) -> Result<(), RegistryError> {
    let mut instances: u64 = 0;
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        // Malformed bytes are left to the compiler, which says what is wrong.
        let Ok(payload) = payload else { return Ok(()) };
        if let wasmparser::Payload::InstanceSection(reader) = payload {
            for instance in reader.into_iter().flatten() {
                if matches!(instance, wasmparser::Instance::Instantiate { .. }) {
                    instances = instances.saturating_add(1);
                }
            }
        }
        if instances > u64::from(PoolShare::CORE_INSTANCES) {
            return Err(over_share(
                "core instances",
                format!("more than {}", PoolShare::CORE_INSTANCES),
                PoolShare::CORE_INSTANCES,
            ));
        }
    }
    Ok(())
}

/// Refuses a compiled component that needs more memories or tables than
/// [`PoolShare`] allows.
pub(super) fn check_pool_share(component: &Component) -> Result<(), RegistryError> {
    let Some(r) = component.resources_required() else {
        return Err(RegistryError::OverPoolShare(
            "it instantiates an imported module, so what it needs cannot be known".into(),
        ));
    };
    if r.num_memories > PoolShare::MEMORIES {
        return Err(over_share(
            "memories",
            r.num_memories.to_string(),
            PoolShare::MEMORIES,
        ));
    }
    if r.num_tables > PoolShare::TABLES {
        return Err(over_share(
            "tables",
            r.num_tables.to_string(),
            PoolShare::TABLES,
        ));
    }
    Ok(())
}

fn over_share(what: &str, has: String, cap: u32) -> RegistryError {
    RegistryError::OverPoolShare(format!(
        "it has {has} {what}; a module may have at most {cap} {what}"
    ))
}

/// Checks that a compiled component exports the activities interface of the
/// version this host speaks.
pub(super) fn check_exports(
    engine: &wasmtime::Engine,
    component: &Component,
) -> Result<(), RegistryError> {
    let ty = component.component_type();
    let exports: Vec<String> = ty
        .exports(engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    if exports.iter().any(|e| e == ACTIVITIES_INTERFACE) {
        return Ok(());
    }
    if let Some(other) = exports.iter().find(|e| e.starts_with(ACTIVITIES_PREFIX)) {
        return Err(RegistryError::WrongVersion {
            found: other.clone(),
        });
    }
    Err(RegistryError::WrongWorld {
        exports: if exports.is_empty() {
            "nothing".into()
        } else {
            exports.join(", ")
        },
    })
}
